"""Follow-up cases: opened once per qualifying answer for the store's manager, scoped, counted
for the overview, and emailed to the owner once through a real SMTP server (aiosmtpd)."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import Engine, func, insert, select, update

from auth.users import add_user
from etl.cases import notify_cases, open_cases
from queries import schema
from queries.cases import case_counts, cases
from queries.kpis import Filters
from queries.scope import Scope
from queries.settings import load_settings
from reports.cases import CaseError, update_case
from tests.smtp_server import Inbox, smtp_server  # noqa: F401  (the fixture)

NOW = dt.datetime(2026, 11, 20, 9, 0)
UNITS = [("C", "company", None), ("R1", "region", "C"), ("S1", "store", "R1"),
         ("S2", "store", "R1"), ("R2", "region", "C"), ("S3", "store", "R2")]
# (response id, unit, days ago, nps, csat, customer, comment) -> expected case owner
ANSWERS = [
    ("a-det-comment", "S1", 1, 3, None, None, "Waited 20 minutes at the till", "m1"),
    ("a-det-customer", "S2", 2, 6, 4, "C42", None, "m2"),
    ("a-csat-low", "S3", 1, None, 2, None, "Rude staff", "m3"),
    ("a-passive-csat1", "S1", 3, 8, 1, "C7", None, "m1"),
    ("a-det-anonymous", "S1", 1, 2, None, None, "   ", None),  # no way to reach them
    ("a-promoter", "S1", 1, 10, 5, "C1", "Lovely", None),
    ("a-old-detractor", "S1", 16, 0, 1, "C2", "Awful", None),  # before the lookback
]


def _setup(engine: Engine) -> dict[str, int]:
    with engine.begin() as conn:
        for uid, kind, parent in UNITS:
            conn.execute(insert(schema.org_unit).values(id=uid, name=f"Unit {uid}", kind=kind,
                                                        parent_id=parent, source="t",
                                                        loaded_at=NOW))
        for rid, unit, ago, nps, csat, customer, comment, _ in ANSWERS:
            conn.execute(insert(schema.survey_response).values(
                source="t", response_id=rid, submitted_at=NOW - dt.timedelta(days=ago),
                org_unit_id=unit, nps=nps, csat=csat, customer_id=customer, comment=comment,
                loaded_at=NOW))
        add_user(conn, email="m1@example.com", role="manager", scope="S1")
        add_user(conn, email="m2@example.com", role="manager", scope="R1")
        add_user(conn, email="m3@example.com", role="manager", scope="R2")
        add_user(conn, email="boss@example.com", role="executive")
        rows = conn.execute(select(schema.survey_response.c.response_id,
                                   schema.survey_response.c.id)).all()
    return dict(rows)


def _cases(engine: Engine) -> dict[str, dict]:
    fc, sr = schema.follow_up_case, schema.survey_response
    with engine.connect() as conn:
        rows = conn.execute(select(sr.c.response_id, fc).select_from(
            fc.join(sr, sr.c.id == fc.c.response_pk))).mappings().all()
    return {r["response_id"]: dict(r) for r in rows}


def test_cases_open_once_for_the_stores_manager_with_the_sla(engine) -> None:
    _setup(engine)
    settings = load_settings(cx_case_sla_hours=24, cx_case_lookback_days=14)
    opened = open_cases(engine, settings, now=NOW)
    got = _cases(engine)
    want = {a[0]: a[7] for a in ANSWERS if a[7]}
    assert len(opened) == len(want) == 4
    assert {k: v["owner_email"] for k, v in got.items()} == {
        k: f"{v}@example.com" for k, v in want.items()}
    assert got["a-csat-low"]["reason"] == "csat_low"
    assert got["a-passive-csat1"]["reason"] == "csat_low"
    assert got["a-det-customer"]["reason"] == "detractor"
    assert all(v["status"] == "open" and v["due_at"] == NOW + dt.timedelta(hours=24)
               for v in got.values())
    # A rerun (or the next load) opens nothing twice.
    assert open_cases(engine, settings, now=NOW + dt.timedelta(hours=1)) == []
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(
            schema.follow_up_case)).scalar_one() == 4


def test_cases_are_scoped_and_counted(engine) -> None:
    _setup(engine)
    open_cases(engine, load_settings(cx_case_sla_hours=24), now=NOW)
    got = _cases(engine)
    with engine.connect() as conn:
        mine = cases(conn, filters=Filters(unit="S1"), as_of=NOW)
        region = cases(conn, filters=Filters(unit="R1"), as_of=NOW)
    assert set(mine["unit"]) == {"S1"} and len(mine) == 2
    assert set(region["unit"]) == {"S1", "S2"} and len(region) == 3
    # A manager cannot touch another region's case; inside the scope she can.
    with engine.begin() as conn, pytest.raises(CaseError, match="outside your units"):
        update_case(conn, got["a-csat-low"]["id"], scope=Scope.of("S1"), actor="m1",
                    status="contacted")
    with engine.begin() as conn:
        update_case(conn, got["a-det-comment"]["id"], scope=Scope.of("S1"),
                    actor="m1@example.com", status="resolved", note=" Called, apologised ",
                    now=NOW + dt.timedelta(hours=5))
        update_case(conn, got["a-passive-csat1"]["id"], scope=Scope.of("S1"),
                    actor="m1@example.com", status="contacted",
                    now=NOW + dt.timedelta(hours=6))
        update_case(conn, got["a-det-customer"]["id"], scope=None, actor="admin",
                    status="resolved", now=NOW + dt.timedelta(hours=9))
        with pytest.raises(CaseError, match="status: expected one of"):
            update_case(conn, got["a-det-customer"]["id"], scope=None, actor="x",
                        status="closed")
    later = NOW + dt.timedelta(hours=30)  # past every due time (24 h)
    with engine.connect() as conn:
        company = case_counts(conn, filters=Filters(), as_of=later)
        store = case_counts(conn, filters=Filters(unit="S1"), as_of=later)
        early = case_counts(conn, filters=Filters(), as_of=NOW + dt.timedelta(hours=10))
        row = cases(conn, filters=Filters(unit="S1"), as_of=later, status="resolved")
    # Open: contacted (S1) and the CSAT case (S3); both overdue at 30 h, neither at 10 h.
    assert (company.open, company.overdue, company.closed) == (2, 2, 2)
    assert company.median_hours_to_close == pytest.approx((5 + 9) / 2)
    assert (store.open, store.overdue, store.closed, store.median_hours_to_close) == (
        1, 1, 1, 5.0)
    assert early.overdue == 0
    assert row["note"].tolist() == ["Called, apologised"]
    assert row["updated_by"].tolist() == ["m1@example.com"]


def test_new_cases_are_emailed_once_per_case(engine, smtp_server) -> None:  # noqa: F811
    _setup(engine)
    server = smtp_server()
    settings = load_settings(smtp_url=server.url, cx_case_sla_hours=24)
    open_cases(engine, settings, now=NOW)
    first = notify_cases(engine, settings, digest=False, now=NOW)
    assert len(first.sent) == 4 and not first.failed
    assert sorted(m.rcpt_tos[0] for m in server.inbox.messages) == [
        "m1@example.com", "m1@example.com", "m2@example.com", "m3@example.com"]
    subjects = {m.message["Subject"] for m in server.inbox.messages}
    case_id = _cases(engine)["a-det-comment"]["id"]
    assert f"New follow-up case #{case_id} · Unit S1" in subjects
    body = next(m.message for m in server.inbox.messages
                if m.message["Subject"].startswith(f"New follow-up case #{case_id} "))
    text = body.get_body(("plain",)).get_content()
    assert "Waited 20 minutes at the till" in text and "NPS 3" in text
    assert "due 21 Nov 2026 09:00" in text and "/cases" in text
    # Again, or from a second scheduler: nothing more is sent.
    again = notify_cases(engine, settings, digest=False, now=NOW + dt.timedelta(minutes=5))
    assert again.sent == [] and len(server.inbox.messages) == 4
    with engine.connect() as conn:
        notices = conn.execute(select(schema.case_notice.c.status)).scalars().all()
    assert notices == ["sent"] * 4


def test_daily_digest_one_email_per_owner_and_a_failed_send_is_retried(engine,
                                                                      smtp_server) -> None:  # noqa: F811
    _setup(engine)
    server = smtp_server(inbox=Inbox(reply="451 Try again later"))
    settings = load_settings(smtp_url=server.url, cx_case_sla_hours=24, cx_case_digest=True)
    open_cases(engine, settings, now=NOW)
    failed = notify_cases(engine, settings, now=NOW)
    assert len(failed.failed) == 3 and server.inbox.messages == []
    server.inbox.reply = "250 Message accepted for delivery"
    sent = notify_cases(engine, settings, now=NOW + dt.timedelta(minutes=10))
    assert len(sent.sent) == 3
    by_owner = {m.rcpt_tos[0]: m.message for m in server.inbox.messages}
    assert set(by_owner) == {"m1@example.com", "m2@example.com", "m3@example.com"}
    assert by_owner["m1@example.com"]["Subject"] == "2 new follow-up cases"
    assert by_owner["m3@example.com"]["Subject"] == "1 new follow-up case"
    with engine.connect() as conn:
        rows = conn.execute(select(schema.case_notice.c.key, schema.case_notice.c.attempts,
                                   schema.case_notice.c.status)).all()
    assert {tuple(r) for r in rows} == {("digest:2026-11-20", 2, "sent")}
    # A case opened later the same day goes into no second digest of that day ...
    with engine.begin() as conn:
        conn.execute(update(schema.follow_up_case).values(notified_at=None).where(
            schema.follow_up_case.c.owner_email == "m3@example.com"))
    assert notify_cases(engine, settings, now=NOW + dt.timedelta(hours=2)).sent == []
    # ... but into the next day's.
    assert len(notify_cases(engine, settings, now=NOW + dt.timedelta(days=1)).sent) == 1
