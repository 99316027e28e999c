"""KPI alerts: a subscription may ask for an email when a KPI in its scope changes
significantly, or crosses its target (CX_TARGETS), and when a survey source goes silent.

Checked after each load and by the scheduler (`check_alerts`). What fires, per alert:
- change: the KPI of the latest full month against the month before is significant at 95%
  (the same test the overview shows, `queries.kpis.kpis`); noise does not fire;
- target: the KPI was on one side of its target last month and is on the other now;
- silence: a source whose newest answer (in the subscription's scope) is older than
  `silent_days` days.
Each event has a key (`nps:change:2026-11`, `nps:target:2026-11`,
`silent:SOURCE:2026-11-20`, the date of its last answer), claimed before the email is sent
(unique per alert and key), so an event is emailed once whatever reruns.
"""

from __future__ import annotations

import datetime as dt
import logging
import secrets
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

from sqlalchemy import Connection, Engine, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from queries import schema
from queries.formatting import fmt_delta, fmt_value
from queries.kpis import LABELS, Filters, in_scope, kpis, latest_full_month
from queries.scope import apply_scope
from queries.settings import Settings, get_settings
from reports.delivery import MAX_ATTEMPTS, holder_id
from reports.mail import DeliveryUncertain, kpi_settings, send
from reports.subscriptions import Refused, get_subscription, resolve, scope_name

log = logging.getLogger(__name__)

ka = schema.kpi_alert
ev = schema.alert_event
sr = schema.survey_response


def _now() -> dt.datetime:
    return dt.datetime.now().replace(microsecond=0)


def add_alert(conn: Connection, *, subscription_id: int, kpi: str | None = None,
              on_change: bool = True, on_target: bool = True, silent_days: int | None = None,
              now: dt.datetime | None = None) -> int:
    """Add an alert to a subscription; its id. ValueError naming the field for an unknown
    KPI, a silence of less than a day, or an alert that asks for nothing."""
    if kpi is not None and kpi not in LABELS:
        raise ValueError(f"kpi: expected one of {sorted(LABELS)}, got {kpi!r}")
    if silent_days is not None and silent_days < 1:
        raise ValueError("silent_days: at least 1")
    if kpi is None and silent_days is None:
        raise ValueError("kpi: give a KPI, or silent_days for source silence")
    return int(conn.execute(insert(ka).values(
        subscription_id=subscription_id, kpi=kpi, on_change=on_change, on_target=on_target,
        silent_days=silent_days, active=True, created_at=now or _now())).inserted_primary_key[0])


@dataclass(frozen=True)
class Event:
    """Something an alert fires on: its key and what the email says."""

    key: str
    text: str


def kpi_events(conn: Connection, settings: Settings, alert, filters: Filters,
               now: dt.datetime) -> list[Event]:
    """The change and target events of a KPI alert for the latest full month."""
    period = latest_full_month(conn, today=now.date())
    if period is None or alert.kpi is None:
        return []
    item = next((k for k in kpis(conn, period=period, filters=filters,
                                 settings=kpi_settings(settings), with_yoy=False)
                 if k.key == alert.kpi), None)
    if item is None or item.value is None or item.hidden or item.compare is None:
        return []
    out = []
    if alert.on_change and item.significant:
        direction = "rose" if (item.delta or 0) > 0 else "fell"
        out.append(Event(f"{item.key}:change:{period}",
                         f"{item.label} {direction} to {fmt_value(item)} in {period.label} "
                         f"({fmt_delta(item)} against {item.compare_period}, significant at "
                         f"95%, n {item.n:,})."))
    target = settings.targets.get(item.key)
    before = item.compare.value
    crossed = (target is not None and before is not None
               and (before < target) != (item.value < target))
    if alert.on_target and crossed:
        side = "above" if item.value >= target else "below"
        out.append(Event(f"{item.key}:target:{period}",
                         f"{item.label} is now {side} its target of {target:g}: "
                         f"{fmt_value(item)} in {period.label} (n {item.n:,})."))
    return out


def silence_events(conn: Connection, alert, filters: Filters, now: dt.datetime) -> list[Event]:
    """A survey source in the scope without a new answer for `silent_days` days."""
    if alert.silent_days is None:
        return []
    rows = conn.execute(select(sr.c.source, func.max(sr.c.submitted_at)).where(
        in_scope(sr.c.org_unit_id, filters.unit)).group_by(sr.c.source)).all()
    out = []
    for source, last in rows:
        if last is not None and now - last > dt.timedelta(days=alert.silent_days):
            days = (now - last).days
            out.append(Event(f"silent:{source}:{last:%Y-%m-%d}",
                             f"Source {source} has sent no new answer for {days} days "
                             f"(last {last:%d %b %Y %H:%M})."))
    return out


@dataclass
class AlertResult:
    """What one check did: events emailed, already sent, failed."""

    sent: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)


def _claim(engine: Engine, alert_id: int, event: Event, holder: str,
           now: dt.datetime) -> int | None:
    try:
        with engine.begin() as conn:
            return int(conn.execute(insert(ev).values(
                alert_id=alert_id, key=event.key, status="claimed", attempts=1,
                claimed_by=holder, claimed_at=now, text=event.text)).inserted_primary_key[0])
    except IntegrityError:
        pass
    with engine.begin() as conn:
        row = conn.execute(select(ev.c.id, ev.c.status, ev.c.attempts).where(
            ev.c.alert_id == alert_id, ev.c.key == event.key)).first()
        if row is None or row.status != "failed" or row.attempts >= MAX_ATTEMPTS:
            return None
        won = conn.execute(update(ev).where(ev.c.id == row.id, ev.c.status == "failed",
                                            ev.c.attempts == row.attempts)
                           .values(status="claimed", attempts=row.attempts + 1,
                                   claimed_by=holder, claimed_at=now)).rowcount
        return int(row.id) if won else None


def compose(settings: Settings, email: str, where: str, event: Event) -> EmailMessage:
    """The alert email."""
    msg = EmailMessage()
    msg["From"] = settings.smtp_from
    msg["To"] = email
    msg["Date"] = formatdate(localtime=True)
    msg["Message-ID"] = make_msgid(idstring=secrets.token_hex(8), domain="cx-dashboard")
    msg["Subject"] = f"CX alert · {where} · {event.text[:80]}"
    msg.set_content(f"{event.text}\n\nScope: {where}\nDashboard: "
                    f"{settings.cx_base_url.rstrip('/')}/\n")
    return msg


def check_alerts(engine: Engine, settings: Settings | None = None, *,
                 now: dt.datetime | None = None) -> AlertResult:
    """Evaluate every active alert and email each new event once (claimed before sending)."""
    settings = settings or get_settings()
    now = now or _now()
    holder = holder_id()
    result = AlertResult()
    with engine.connect() as conn:
        alerts = conn.execute(select(ka).where(ka.c.active).order_by(ka.c.id)).all()
    for alert in alerts:
        with engine.connect() as conn:
            sub = get_subscription(conn, alert.subscription_id)
            if sub is None or not sub.active:
                continue
            try:  # the subscription's scope inside its user's, now (fail closed)
                scope = resolve(conn, sub).scope
            except Refused as exc:
                log.warning("alert %s skipped: %s", alert.id, exc)
                continue
            filters = apply_scope(conn, Filters(), scope)
            events = (kpi_events(conn, settings, alert, filters, now)
                      + silence_events(conn, alert, filters, now))
            where = scope_name(conn, scope)
        for event in events:
            label = f"{sub.email} {event.key}"
            claimed = _claim(engine, alert.id, event, holder, now)
            if claimed is None:
                result.skipped.append(label)
                continue
            with engine.begin() as conn:
                conn.execute(update(ev).where(ev.c.id == claimed).values(status="sending"))
            try:
                send(settings, compose(settings, sub.email, where, event))
            except DeliveryUncertain as exc:  # may have gone out: left 'sending', no retry
                with engine.begin() as conn:
                    conn.execute(update(ev).where(ev.c.id == claimed).values(error=str(exc)))
                result.failed.append(label)
                continue
            except Exception as exc:  # the row says why; a later check retries it
                with engine.begin() as conn:
                    conn.execute(update(ev).where(ev.c.id == claimed).values(
                        status="failed", error=f"{type(exc).__name__}: {exc}"))
                result.failed.append(label)
                continue
            with engine.begin() as conn:
                conn.execute(update(ev).where(ev.c.id == claimed).values(status="sent",
                                                                         sent_at=_now()))
            result.sent.append(label)
    return result


__all__ = ["AlertResult", "Event", "add_alert", "check_alerts", "kpi_events",
           "silence_events"]


ALERT_MINUTE = 41
"""The hourly follow-up job runs at this minute (away from the snapshot retry job's)."""
DIGEST_TIME = (7, 5)
"""Daily case digests go out at this local time (hour, minute)."""


def follow_up(engine: Engine, settings: Settings) -> None:
    """The hourly job: KPI alerts (silence needs a clock, not a load) and case emails not
    sent yet (retries; with digests only at the digest time, see `add_follow_up_jobs`)."""
    from etl.cases import notify_cases

    if not settings.smtp_url:
        return
    try:
        check_alerts(engine, settings)
        if not settings.cx_case_digest:
            notify_cases(engine, settings)
    except Exception:  # the next hour tries again
        log.exception("follow-up job failed")


def alerts_after_load(engine: Engine) -> None:
    """The ETL's step after a survey load: check the alerts (when email is configured);
    failures logged, never raised into the load."""
    settings = get_settings()
    if not settings.smtp_url:
        return
    try:
        check_alerts(engine, settings)
    except Exception:
        log.exception("KPI alerts failed; checked again by the hourly job")


def add_follow_up_jobs(scheduler, settings: Settings, engine: Engine) -> list[str]:
    """Add the hourly alert/case-email job and, with CX_CASE_DIGEST, the daily digest job
    (in CX_TIMEZONE) to an APScheduler 3 scheduler; their ids."""
    from zoneinfo import ZoneInfo

    from apscheduler.triggers.cron import CronTrigger

    from etl.cases import notify_cases

    tz = ZoneInfo(settings.cx_timezone)
    scheduler.add_job(follow_up, CronTrigger(minute=ALERT_MINUTE, timezone=tz),
                      args=(engine, settings), id="follow-up:hourly",
                      name="KPI alerts and case emails", replace_existing=True, coalesce=True,
                      max_instances=1, misfire_grace_time=30 * 60)
    ids = ["follow-up:hourly"]
    if settings.cx_case_digest and settings.smtp_url:
        scheduler.add_job(notify_cases, CronTrigger(hour=DIGEST_TIME[0], minute=DIGEST_TIME[1],
                                                    timezone=tz),
                          args=(engine, settings), kwargs={"digest": True},
                          id="follow-up:digest", name="Daily digest of new cases",
                          replace_existing=True, coalesce=True, max_instances=1,
                          misfire_grace_time=6 * 3600)
        ids.append("follow-up:digest")
    return ids
