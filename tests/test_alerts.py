"""KPI alerts on hand-built data: a significant fall fires, noise does not; a target crossed
fires; a silent source fires; each event is emailed once through a real SMTP server, and only
for the subscription's scope."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import Engine, insert

from auth.users import add_user
from etl.alerts import add_alert, check_alerts
from etl.rollup import refresh_survey
from queries import schema
from queries.settings import load_settings
from reports.subscriptions import add_subscription
from tests.smtp_server import smtp_server  # noqa: F401  (the fixture)

NOW = dt.datetime(2026, 12, 5, 8, 0)


def _answers(conn, unit: str, month: int, promoters: int, passives: int, detractors: int,
             tag: str) -> None:
    scores = [10] * promoters + [8] * passives + [3] * detractors
    for i, nps in enumerate(scores):
        conn.execute(insert(schema.survey_response).values(
            source="survey", response_id=f"{tag}-{unit}-{month}-{i}",
            submitted_at=dt.datetime(2026, month, 1 + i % 27, 12), org_unit_id=unit, nps=nps,
            loaded_at=NOW))


def _setup(engine: Engine, s1_november: tuple[int, int, int]) -> tuple[int, int]:
    """October NPS +30 in both stores (50/30/20 of 100); November as given in S1 and a
    collapse (20/30/50) in S2. Subscriptions to S1 and to S2."""
    with engine.begin() as conn:
        for uid, kind, parent in (("C", "company", None), ("S1", "store", "C"),
                                  ("S2", "store", "C")):
            conn.execute(insert(schema.org_unit).values(id=uid, name=f"Store {uid}", kind=kind,
                                                        parent_id=parent, source="t",
                                                        loaded_at=NOW))
        for unit in ("S1", "S2"):
            _answers(conn, unit, 10, 50, 30, 20, "o")
        _answers(conn, "S1", 11, *s1_november, "n")
        _answers(conn, "S2", 11, 20, 30, 50, "n")
        refresh_survey(conn)
        add_user(conn, email="leeds@example.com", role="manager", scope="S1")
        add_user(conn, email="york@example.com", role="manager", scope="S2")
        s1 = add_subscription(conn, user="leeds@example.com")
        s2 = add_subscription(conn, user="york@example.com")
    return s1, s2


def test_a_significant_fall_fires_once_and_noise_does_not(engine, smtp_server) -> None:  # noqa: F811
    s1, s2 = _setup(engine, (48, 30, 22))  # S1: +30 -> +26, noise (z about -0.5)
    with engine.begin() as conn:
        add_alert(conn, subscription_id=s1, kpi="nps", on_target=False)
        add_alert(conn, subscription_id=s2, kpi="nps", on_target=False)
    server = smtp_server()
    settings = load_settings(smtp_url=server.url)
    result = check_alerts(engine, settings, now=NOW)
    assert result.sent == ["york@example.com nps:change:2026-11"]
    message = server.inbox.messages[0].message
    assert server.inbox.messages[0].rcpt_tos == ["york@example.com"]
    text = message.get_body(("plain",)).get_content()
    # +30 -> -30: 60 points down, n 100.
    assert ("NPS fell to -30.0 in November 2026 (-60.0 pts against 2026-10, significant at "
            "95%, n 100).") in text
    assert "Scope: Store S2" in text
    again = check_alerts(engine, settings, now=NOW + dt.timedelta(hours=1))
    assert again.sent == [] and again.skipped == ["york@example.com nps:change:2026-11"]
    assert len(server.inbox.messages) == 1


@pytest.mark.parametrize(("target", "fires"), [(28, True), (20, False), (35, False)])
def test_crossing_the_target_fires(engine, smtp_server, target: float,  # noqa: F811
                                   fires: bool) -> None:
    s1, _ = _setup(engine, (48, 30, 22))  # +30 -> +26
    with engine.begin() as conn:
        add_alert(conn, subscription_id=s1, kpi="nps", on_change=False)
    server = smtp_server()
    settings = load_settings(smtp_url=server.url, cx_targets=f"nps={target}")
    result = check_alerts(engine, settings, now=NOW)
    assert result.sent == (["leeds@example.com nps:target:2026-11"] if fires else [])
    if fires:
        text = server.inbox.messages[0].message.get_body(("plain",)).get_content()
        assert "NPS is now below its target of 28: +26.0 in November 2026 (n 100)." in text


@pytest.mark.parametrize(("days", "fires"), [(5, True), (10, False)])
def test_a_silent_source_fires(engine, smtp_server, days: int, fires: bool) -> None:  # noqa: F811
    s1, _ = _setup(engine, (48, 30, 22))  # the last answer: 27 November, 12:00
    with engine.begin() as conn:
        add_alert(conn, subscription_id=s1, silent_days=days)
    server = smtp_server()
    result = check_alerts(engine, load_settings(smtp_url=server.url), now=NOW)
    assert result.sent == (["leeds@example.com silent:survey:2026-11-27"] if fires else [])
    if fires:
        text = server.inbox.messages[0].message.get_body(("plain",)).get_content()
        assert "Source survey has sent no new answer for 7 days" in text


def test_bad_alerts_are_refused(engine) -> None:
    s1, _ = _setup(engine, (48, 30, 22))
    with engine.begin() as conn:
        with pytest.raises(ValueError, match="kpi: expected one of"):
            add_alert(conn, subscription_id=s1, kpi="happiness")
        with pytest.raises(ValueError, match="silent_days: at least 1"):
            add_alert(conn, subscription_id=s1, silent_days=0)
        with pytest.raises(ValueError, match="kpi: give a KPI"):
            add_alert(conn, subscription_id=s1)


def test_the_scheduler_gets_the_hourly_and_digest_jobs(engine) -> None:
    from apscheduler.schedulers.background import BackgroundScheduler

    from etl.alerts import add_follow_up_jobs

    plain = BackgroundScheduler()
    assert add_follow_up_jobs(plain, load_settings(smtp_url="smtp://127.0.0.1:25"),
                              engine) == ["follow-up:hourly"]
    digest = BackgroundScheduler()
    ids = add_follow_up_jobs(digest, load_settings(smtp_url="smtp://127.0.0.1:25",
                                                   cx_case_digest=True), engine)
    assert ids == ["follow-up:hourly", "follow-up:digest"]
    trigger = str(digest.get_job("follow-up:digest").trigger)
    assert "hour='7'" in trigger and "minute='5'" in trigger
    assert "minute='41'" in str(digest.get_job("follow-up:hourly").trigger)
