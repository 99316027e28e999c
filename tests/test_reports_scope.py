"""Subscriptions belong to users: the PDF is rendered in the user's CURRENT scope at send
time. A shrunk scope gives the smaller report; a removed user gets none; a disabled user, an
unresolvable scope or a subscription without a user fails closed, with the reason on the
delivery and in the audit log; an admin cannot subscribe someone to what they may not see,
nor send to an address outside the user list unless its domain is allowed.

Real SQLite and PostgreSQL, a real SMTP server (aiosmtpd); the renderer records what it was
asked to render (the real Chromium PDF of a shrunk scope: tests/test_reports_e2e.py).
"""

from __future__ import annotations

import datetime as dt
import logging

import pytest
from sqlalchemy import Engine, insert, select, update

from auth import audit
from auth.users import add_user, remove_user, set_active, set_scope
from etl.migrate import upgrade
from queries import schema
from queries.db import make_engine
from queries.scope import Scope
from reports.delivery import deliver_monthly
from reports.subscriptions import (
    add_subscription,
    allow_domain,
    assign_subscription,
    disallow_domain,
    within,
)
from tests.conftest import BACKENDS
from tests.test_reports_delivery import (
    PERIOD,
    FixedPdf,
    add_units,
    db_url,
    make_settings,
    row,
)


@pytest.fixture
def org(engine: Engine) -> Engine:
    """ACME > R-WEST > S09 (Bristol), ACME > R-NORTH, and three users."""
    add_units(engine)
    with engine.begin() as conn:
        add_user(conn, email="admin@example.com", role="admin")
        add_user(conn, email="west@example.com", role="manager", scope=["R-WEST"],
                 name="Wes Manager")
        add_user(conn, email="ceo@example.com", role="executive")
    return engine


def sub(engine: Engine, user: str, scope=None, **kwargs) -> int:
    with engine.begin() as conn:
        return add_subscription(conn, user=user, scope=scope, actor="admin@example.com",
                                **kwargs)


def audits(engine: Engine, action: str = "pdf_render") -> list:
    with engine.connect() as conn:
        return conn.execute(select(schema.audit_log).where(schema.audit_log.c.action == action)
                            .order_by(schema.audit_log.c.id)).all()


def user_id(engine: Engine, email: str) -> int:
    with engine.connect() as conn:
        return conn.execute(select(schema.app_user.c.id).where(
            schema.app_user.c.email == email)).scalar_one()


def test_a_shrunk_scope_gives_the_smaller_report(org, tmp_path, smtp_server) -> None:
    server = smtp_server()
    settings = make_settings(db_url(org), tmp_path, server.url)
    whole = sub(org, "west@example.com")  # follows the user
    region = sub(org, "west@example.com", ["R-WEST"], email="ceo@example.com")
    with org.begin() as conn:
        set_scope(conn, "west@example.com", ["S09"])
    renderer = FixedPdf()
    results = deliver_monthly(org, settings, period=PERIOD, renderer_factory=renderer)
    assert [(r.subscription_id, r.status) for r in results] == [(whole, "sent"),
                                                                (region, "sent")]
    assert [units for units, *_ in renderer.rendered] == [("S09",), ("S09",)]
    subjects = sorted(m.message["Subject"] for m in server.inbox.messages)
    assert subjects == ["CX snapshot · October 2026 · Bristol"] * 2
    [att] = list(server.inbox.messages[0].message.iter_attachments())
    assert att.get_filename() == "cx-snapshot-2026-10-S09.pdf"
    renders = audits(org)
    assert [(r.outcome, r.actor, r.user_id) for r in renders] == [
        ("ok", "scheduler", user_id(org, "west@example.com"))] * 2
    assert "scope S09 (Bristol) for west@example.com" in renders[0].detail


def test_a_grown_scope_grows_only_the_subscriptions_that_follow_it(org, tmp_path,
                                                                  smtp_server) -> None:
    settings = make_settings(db_url(org), tmp_path, smtp_server().url)
    sub(org, "west@example.com")
    sub(org, "west@example.com", ["S09"], email="ceo@example.com")
    with org.begin() as conn:
        set_scope(conn, "west@example.com", ["R-WEST", "R-NORTH"])
    renderer = FixedPdf()
    deliver_monthly(org, settings, period=PERIOD, renderer_factory=renderer)
    assert [units for units, *_ in renderer.rendered] == [("R-NORTH", "R-WEST"), ("S09",)]


def test_a_removed_user_gets_none(org, tmp_path, smtp_server) -> None:
    server = smtp_server()
    settings = make_settings(db_url(org), tmp_path, server.url)
    first = sub(org, "west@example.com")
    renderer = FixedPdf()
    deliver_monthly(org, settings, period=PERIOD.shift(-1), renderer_factory=renderer)
    assert len(server.inbox.messages) == 1 and row(org, subscription_id=first)
    with org.begin() as conn:
        remove_user(conn, "west@example.com")
    # The subscription and its deliveries went with the user.
    with org.connect() as conn:
        assert conn.execute(select(schema.subscription)).all() == []
        assert conn.execute(select(schema.delivery)).all() == []
    assert deliver_monthly(org, settings, period=PERIOD, renderer_factory=renderer) == []
    assert len(server.inbox.messages) == 1 and len(renderer.rendered) == 1


def test_a_disabled_user_gets_none_and_it_is_logged(org, tmp_path, smtp_server,
                                                    caplog) -> None:
    server = smtp_server()
    settings = make_settings(db_url(org), tmp_path, server.url)
    sid = sub(org, "west@example.com")
    with org.begin() as conn:
        set_active(conn, "west@example.com", False)
    renderer = FixedPdf()
    with caplog.at_level(logging.ERROR, logger="reports.delivery"):
        [result] = deliver_monthly(org, settings, period=PERIOD, renderer_factory=renderer)
    assert result.status == "failed"
    assert result.error.startswith("not sent: refused, the user's scope cannot be resolved")
    assert "does not exist or is disabled" in result.error
    assert row(org, subscription_id=sid).status == "failed"
    assert renderer.opened == 0 and server.inbox.messages == []
    [entry] = audits(org)
    assert (entry.outcome, entry.target) == ("denied", f"subscription {sid} 2026-10")
    assert "disabled" in entry.detail
    assert any("disabled" in r.getMessage() for r in caplog.records)


def test_an_unresolvable_scope_fails_closed_and_is_logged(org, tmp_path, smtp_server) -> None:
    server = smtp_server()
    settings = make_settings(db_url(org), tmp_path, server.url)
    sid = sub(org, "west@example.com")
    # The manager's unit is gone from the org tree (renamed upstream, say).
    with org.begin() as conn:
        conn.execute(update(schema.app_user).where(schema.app_user.c.email == "west@example.com")
                     .values(scope="R-GONE"))
    renderer = FixedPdf()
    [result] = deliver_monthly(org, settings, period=PERIOD, renderer_factory=renderer)
    assert result.status == "failed" and "R-GONE" in result.error
    assert "cannot be resolved" in row(org, subscription_id=sid).error
    assert renderer.opened == 0 and server.inbox.messages == []
    [entry] = audits(org)
    assert entry.outcome == "denied" and "R-GONE" in entry.detail


def test_nothing_left_of_the_scope_fails_closed(org, tmp_path, smtp_server) -> None:
    server = smtp_server()
    settings = make_settings(db_url(org), tmp_path, server.url)
    sub(org, "west@example.com", ["S09"])
    with org.begin() as conn:
        set_scope(conn, "west@example.com", ["R-NORTH"])
    renderer = FixedPdf()
    [result] = deliver_monthly(org, settings, period=PERIOD, renderer_factory=renderer)
    assert result.status == "failed"
    assert ("nothing of the subscription's scope (S09) is inside west@example.com's scope "
            "now (R-NORTH)") in result.error
    assert renderer.rendered == [] and server.inbox.messages == []


def test_a_subscription_without_a_user_is_refused_until_assigned(org, tmp_path,
                                                                 smtp_server) -> None:
    server = smtp_server()
    settings = make_settings(db_url(org), tmp_path, server.url)
    with org.begin() as conn:  # as the 0006 migration leaves one no user's email matched
        sid = conn.execute(insert(schema.subscription).values(
            email="old@example.com", scope="R-WEST", paper="A4", landscape=True,
            schedule="0 7 1 * *", active=True, created_at=dt.datetime.now(),
        )).inserted_primary_key[0]
    renderer = FixedPdf()
    [result] = deliver_monthly(org, settings, period=PERIOD, renderer_factory=renderer)
    assert result.status == "failed" and "belongs to no user" in result.error
    assert f"subscriptions assign {sid} --user EMAIL" in result.error
    assert renderer.rendered == [] and server.inbox.messages == []
    # old@example.com is nobody's address: the domain must be allowed first.
    with org.begin() as conn, pytest.raises(ValueError, match=r"example\.com is not allowed"):
        assign_subscription(conn, sid, "west@example.com")
    with org.begin() as conn:
        allow_domain(conn, "example.com", actor="admin@example.com")
        assign_subscription(conn, sid, "west@example.com", actor="admin@example.com")
    [result] = deliver_monthly(org, settings, period=PERIOD, renderer_factory=renderer)
    assert result.status == "sent" and renderer.rendered[0][0] == ("R-WEST",)
    assert server.inbox.messages[0].rcpt_tos == ["old@example.com"]


def test_a_recipient_whose_domain_is_no_longer_allowed_is_refused(org, tmp_path,
                                                                  smtp_server) -> None:
    server = smtp_server()
    settings = make_settings(db_url(org), tmp_path, server.url)
    with org.begin() as conn:
        allow_domain(conn, "partner.example")
    sid = sub(org, "west@example.com", email="pa@partner.example")
    with org.begin() as conn:
        disallow_domain(conn, "partner.example")
    [result] = deliver_monthly(org, settings, period=PERIOD, renderer_factory=FixedPdf())
    assert result.status == "failed" and "partner.example is not allowed" in result.error
    assert server.inbox.messages == [] and row(org, subscription_id=sid).status == "failed"


def test_an_admin_cannot_subscribe_someone_outside_their_scope(org) -> None:
    for scope, outside in ((["R-NORTH"], "R-NORTH"), (["R-WEST", "R-NORTH"], "R-NORTH"),
                           (["ACME"], "ACME")):
        with org.begin() as conn, pytest.raises(ValueError) as err:
            add_subscription(conn, user="west@example.com", scope=scope)
        assert str(err.value).startswith(f"scope: {outside} is outside west@example.com's "
                                         "scope (R-WEST)")
    with org.begin() as conn, pytest.raises(ValueError,
                                            match=r"elsewhere\.example is not allowed"):
        add_subscription(conn, user="west@example.com", email="x@elsewhere.example")
    with org.begin() as conn, pytest.raises(ValueError, match="no such user"):
        add_subscription(conn, user="nobody@example.com")
    with org.begin() as conn:
        set_active(conn, "ceo@example.com", False)
    with org.begin() as conn, pytest.raises(ValueError, match="disabled"):
        add_subscription(conn, user="ceo@example.com")
    assert sub(org, "west@example.com", ["S09"]) > 0  # inside: fine
    with org.connect() as conn:
        stored = conn.execute(select(schema.subscription)).all()
    assert [(s.scope, s.user_id) for s in stored] == [("S09",
                                                      user_id(org, "west@example.com"))]
    [entry] = audits(org, "subscription_add")
    assert entry.actor == "admin@example.com" and "S09" in entry.detail


def test_within_is_the_meeting_of_two_subtrees(org) -> None:
    with org.connect() as conn:
        assert within(conn, Scope.of("R-WEST"), None).units == ("R-WEST",)
        assert within(conn, Scope.of("R-WEST"), Scope.of("S09")).units == ("S09",)
        assert within(conn, Scope.of("S09"), Scope.of("R-WEST")).units == ("S09",)
        assert within(conn, Scope.of("ACME"), Scope.of(["R-WEST", "R-NORTH"])).units == (
            "R-NORTH", "R-WEST")
        assert within(conn, Scope.of(["R-WEST", "S09"]), Scope.of("ACME")).units == (
            "R-WEST",)
        assert within(conn, Scope.of("S09"), Scope.of("R-NORTH")).units == ()


@pytest.mark.parametrize("backend", BACKENDS)
def test_the_migration_gives_old_subscriptions_to_users_by_email(backend,
                                                                fresh_database_url) -> None:
    engine = make_engine(fresh_database_url(backend))
    try:
        upgrade(engine, "0005")
        now = dt.datetime.now().replace(microsecond=0)
        with engine.begin() as conn:
            conn.execute(insert(schema.org_unit.c.id.table).values(
                id="ACME", name="Acme", kind="company", parent_id=None, source="t",
                loaded_at=now))
            conn.execute(schema.app_user.insert().values(
                email="ada@example.com", role="executive", auth_source="local", active=True,
                created_at=now, updated_at=now))
            for email in ("Ada@example.com", "gone@example.com"):
                conn.exec_driver_sql(
                    "INSERT INTO subscription (email, scope, paper, landscape, schedule, "
                    "active, created_at) VALUES (%s, 'ACME', 'A4', true, '0 7 1 * *', true, "
                    "%s)" if backend == "postgresql" else
                    "INSERT INTO subscription (email, scope, paper, landscape, schedule, "
                    "active, created_at) VALUES (?, 'ACME', 'A4', 1, '0 7 1 * *', 1, ?)",
                    (email, now))
        upgrade(engine)
        with engine.connect() as conn:
            got = conn.execute(select(schema.subscription.c.email, schema.subscription.c.user_id)
                               .order_by(schema.subscription.c.id)).all()
            ada = conn.execute(select(schema.app_user.c.id)).scalar_one()
        assert [tuple(r) for r in got] == [("Ada@example.com", ada), ("gone@example.com", None)]
    finally:
        engine.dispose()


def test_audit_entries_carry_who_and_what(org) -> None:
    sid = sub(org, "west@example.com", ["S09"])
    with org.begin() as conn:
        from reports.subscriptions import remove_subscription

        remove_subscription(conn, sid, actor="admin@example.com")
    with org.connect() as conn:
        log = audit.entries(conn)
    assert list(log["action"]) == ["subscription_remove", "subscription_add"]
    assert list(log["actor"]) == ["admin@example.com"] * 2
    assert list(log["target"]) == [f"subscription {sid}"] * 2


def test_a_name_with_line_breaks_stored_earlier_does_not_break_the_run(org, tmp_path,
                                                                       smtp_server) -> None:
    # Names are checked on input now; one stored before that is left off the To: line.
    server = smtp_server()
    settings = make_settings(db_url(org), tmp_path, server.url)
    sid = sub(org, "west@example.com")
    with org.begin() as conn:
        conn.execute(update(schema.subscription).where(schema.subscription.c.id == sid)
                     .values(name="Wes\r\nBcc: spy@evil.example"))
    [result] = deliver_monthly(org, settings, period=PERIOD, renderer_factory=FixedPdf())
    assert result.status == "sent"
    [got] = server.inbox.messages
    assert got.rcpt_tos == ["west@example.com"]
    assert str(got.message["To"]) == "west@example.com" and got.message["Bcc"] is None
