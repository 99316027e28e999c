"""Monthly PDF snapshots by email: claims, deliveries, the monthly run and its scheduler jobs.

On the first morning of each month every subscription's user (an executive, a regional or a
store manager) gets last month's dashboard as they are allowed to see it NOW: an email whose
HTML summary carries the KPI values in text, with the PDF attached. The scope is resolved at
send time from the user's current scope (`reports.subscriptions.resolve`): a removed user
gets nothing, a disabled user or an unresolvable scope fails closed with the reason.

Never twice. Before anything is rendered or sent, a `delivery` row keyed by (subscription,
period) is claimed: the INSERT wins for exactly one process, so a rerun, a second scheduler or
a restart after a crash finds the row and does not send again. The row then walks
claimed -> sending -> sent, or -> failed (with the error and the attempt count):

- a failed send is retried with backoff in the same run, and a later run (the hourly retry
  job) takes a failed row over while it has attempts left (MAX_ATTEMPTS in all);
- a row still 'claimed' after CLAIM_TTL belongs to a process that died before sending: it is
  taken over;
- a row left 'sending' (the process died mid-send, or the connection broke after the message
  was handed to the server) may or may not have gone out: it is never retried automatically;
  an admin checks and runs `python -m dashboard deliveries retry ID`.

Every takeover is a compare-and-set UPDATE (same status and attempt count as read), so of two
processes racing for a row exactly one gets it.

The renderer is passed in (`renderer_factory`, default: the bounded `RenderQueue` opening
the web app's report page at CX_RENDER_URL or CX_BASE_URL): one browser renders the PDFs of
all recipients of a run, and tests can give a real renderer pointed elsewhere.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import secrets
import socket
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from apscheduler.triggers.cron import CronTrigger
from sqlalchemy import Engine, insert, select, update
from sqlalchemy.exc import IntegrityError

from auth import audit
from queries import schema
from queries.cron import cron_trigger
from queries.periods import Month
from queries.settings import Settings
from reports.mail import (
    DeliveryUncertain,
    compose,
    describe,
    send,
    smtp_target,
    summarize,
    transient,
)
from reports.renderer import RenderQueue
from reports.subscriptions import (
    Refused,
    Resolved,
    Subscription,
    list_subscriptions,
    resolve,
)
from reports.token import ReportRequest

log = logging.getLogger(__name__)

dlv = schema.delivery

MAX_ATTEMPTS = 3
"""Tries per (subscription, period) in all: each claim and each retry of the send is one."""
CLAIM_TTL = dt.timedelta(minutes=30)
"""A row 'claimed' for longer belongs to a process that died before sending."""
BACKOFF = (1.0, 4.0, 16.0)
"""Seconds to wait before the 2nd, 3rd, ... try of a send within one run."""
SNAPSHOT_MISFIRE_GRACE_SECONDS = 6 * 3600
RETRY_MINUTE = 23
"""The hourly retry job runs at this minute (away from the usual on-the-hour schedules)."""
ACTOR = "scheduler"
"""Who renders in the audit log: the monthly job, for the subscription's user."""


def _now() -> dt.datetime:
    """Naive local time, the clock of every table (as `etl.load.now`)."""
    return dt.datetime.now().replace(microsecond=0)


def _rowcount(result: Any) -> int:
    return result.rowcount


def _when(value: dt.datetime | None) -> str:
    return f"{value:%d %b %Y %H:%M}" if value is not None else ""


# ----------------------------------------------------------------------------- claiming


def holder_id() -> str:
    """Who claims a delivery: host, process and a token (two runs in one process differ)."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


def _row(engine: Engine, subscription_id: int, period: str) -> Any:
    with engine.connect() as conn:
        return conn.execute(select(dlv).where(dlv.c.subscription_id == subscription_id,
                                              dlv.c.period == period)).one_or_none()


def _interrupted(row: Any) -> str:
    return (f"interrupted while sending (claimed by {row.claimed_by} at "
            f"{_when(row.claimed_at)}): it is unknown whether the email went out, so it is "
            f"not sent again automatically; check the recipient's mailbox or the SMTP "
            f"server's log, then `python -m dashboard deliveries retry {row.id}` if it did "
            f"not arrive")


def claim(engine: Engine, subscription_id: int, period: Month | str, holder: str, *,
          now: dt.datetime | None = None) -> int | None:
    """Claim the delivery of `subscription_id` for `period`: the delivery id, or None when
    it is not this caller's to send (sent, being sent, or out of attempts).

    A new row is INSERTed ('claimed', attempts 1); the unique key makes one caller win. An
    existing row is taken over (attempts + 1) only when it 'failed' with attempts left or is
    'claimed' for longer than CLAIM_TTL, by a compare-and-set UPDATE. A row left 'sending'
    is never taken: whether that email went out is unknown (the error says so).
    """
    period = str(period)
    stamp = now or _now()
    try:
        with engine.begin() as conn:
            return int(conn.execute(insert(dlv).values(
                subscription_id=subscription_id, period=period, status="claimed", attempts=1,
                claimed_by=holder, claimed_at=stamp, stale_data=False,
            )).inserted_primary_key[0])
    except IntegrityError:
        pass
    row = _row(engine, subscription_id, period)
    if row is None:  # no such subscription (the foreign key refused the row)
        log.warning("cannot claim a delivery for subscription %s: it does not exist",
                    subscription_id)
        return None
    old = row.claimed_at is not None and row.claimed_at < stamp - CLAIM_TTL
    if row.status == "sending":
        said = row.error or ""
        if old and not (said.startswith("interrupted") or "may have been delivered" in said):
            with engine.begin() as conn:
                conn.execute(update(dlv).where(dlv.c.id == row.id, dlv.c.status == "sending",
                                               dlv.c.attempts == row.attempts)
                             .values(error=_interrupted(row)))
            log.error("delivery %d (subscription %d, %s): %s", row.id, subscription_id, period,
                      _interrupted(row))
        return None
    if row.status == "failed" and row.attempts < MAX_ATTEMPTS:
        extra = []
    elif row.status == "claimed" and old:
        extra = [dlv.c.claimed_at < stamp - CLAIM_TTL]
    else:
        return None
    with engine.begin() as conn:
        taken = _rowcount(conn.execute(
            update(dlv)
            .where(dlv.c.id == row.id, dlv.c.status == row.status,
                   dlv.c.attempts == row.attempts, *extra)
            .values(status="claimed", attempts=row.attempts + 1, claimed_by=holder,
                    claimed_at=stamp),
            execution_options={"preserve_rowcount": True}))
    if taken and row.status == "claimed":
        log.warning("delivery %d (subscription %d, %s): taken over from %s, which claimed it at "
                    "%s and never sent it", row.id, subscription_id, period, row.claimed_by,
                    row.claimed_at)
    return int(row.id) if taken else None


def _set(engine: Engine, delivery_id: int, holder: str, expect: str, expect_attempts: int,
         /, **values: Any) -> bool:
    """Compare-and-set: change the row only if it is still ours, in status `expect`, at
    `expect_attempts` attempts."""
    with engine.begin() as conn:
        return bool(_rowcount(conn.execute(
            update(dlv).where(dlv.c.id == delivery_id, dlv.c.status == expect,
                              dlv.c.attempts == expect_attempts, dlv.c.claimed_by == holder)
            .values(**values),
            execution_options={"preserve_rowcount": True})))


def _fail(engine: Engine, delivery_id: int, holder: str, expect: str, attempts: int,
          error: str) -> bool:
    return _set(engine, delivery_id, holder, expect, attempts, status="failed",
                error=error[:4000])


def reset_delivery(engine: Engine, delivery_id: int, *, force: bool = False) -> tuple[int, str]:
    """Make a delivery sendable again (an admin's decision): attempts back to 0, status
    'failed', so the next run claims it. Returns (subscription id, period).

    Refuses a delivery being sent right now, and one already sent unless `force`.
    """
    with engine.connect() as conn:
        row = conn.execute(select(dlv).where(dlv.c.id == delivery_id)).one_or_none()
    if row is None:
        raise ValueError(f"delivery: no delivery with id {delivery_id}")
    if row.status == "sent" and not force:
        raise ValueError(f"delivery {delivery_id} was sent at {row.sent_at:%Y-%m-%d %H:%M}; "
                         "pass --force to send it again")
    if row.status == "claimed" and row.claimed_at >= _now() - CLAIM_TTL:
        raise ValueError(f"delivery {delivery_id} is being delivered right now (claimed by "
                         f"{row.claimed_by} at {row.claimed_at:%H:%M})")
    note = f"reset by an admin at {_now():%Y-%m-%d %H:%M} (was {row.status}"
    note += f": {row.error})" if row.error else ")"
    with engine.begin() as conn:
        done = _rowcount(conn.execute(
            update(dlv).where(dlv.c.id == delivery_id, dlv.c.status == row.status,
                              dlv.c.attempts == row.attempts)
            .values(status="failed", attempts=0, claimed_by=None, error=note[:4000]),
            execution_options={"preserve_rowcount": True}))
    if not done:
        raise ValueError(f"delivery {delivery_id} changed meanwhile; look again")
    log.warning("delivery %d (subscription %d, %s) reset by an admin", delivery_id,
                row.subscription_id, row.period)
    return int(row.subscription_id), str(row.period)


# ------------------------------------------------------------------------ the monthly run


@dataclass(frozen=True)
class DeliveryResult:
    """The outcome of one subscription in a run: sent, failed, skipped (not this run's to
    send: already sent, in progress, or out of attempts) or uncertain (left 'sending')."""

    subscription_id: int
    email: str
    period: str
    status: str
    delivery_id: int | None = None
    attempts: int = 0
    error: str | None = None
    message_id: str | None = None
    stale_data: bool = False


RendererFactory = Callable[[Settings], Any]
"""settings -> a context manager whose `render(ReportRequest) -> bytes` makes a PDF."""


def default_renderer(settings: Settings) -> Any:
    """The bounded renderer (`reports.renderer.RenderQueue`) on the web app's report page
    (CX_RENDER_URL, else CX_BASE_URL): one Chromium for every render of a run."""
    return RenderQueue(settings)


def report_request(subscription: Subscription, period: Month, resolved: Resolved
                   ) -> ReportRequest:
    """What to render for a subscription: its resolved scope, labelled with whose it is."""
    return ReportRequest(scope=resolved.scope, period=period, paper=subscription.paper,
                         landscape=subscription.landscape,
                         label=f"Scope: {resolved.name} · for {resolved.user.email}")


class _Renderers:
    """Opens the renderer on first use (a run with nothing to send starts no browser) and
    closes it at the end."""

    def __init__(self, factory: RendererFactory, settings: Settings) -> None:
        self.factory, self.settings = factory, settings
        self.manager: Any = None
        self.renderer: Any = None
        self.error: Exception | None = None

    def get(self) -> Any:
        if self.error is not None:  # it could not start: do not launch it once per recipient
            raise self.error
        if self.renderer is None:
            try:
                manager = self.factory(self.settings)
                self.renderer = manager.__enter__()
            except Exception as exc:
                self.error = exc
                raise
            self.manager = manager
        return self.renderer

    def __enter__(self) -> _Renderers:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.manager is not None:
            try:
                self.manager.__exit__(None, None, None)
            except Exception:
                log.exception("closing the snapshot renderer failed")


def default_period(settings: Settings, *, now: dt.datetime | None = None) -> Month:
    """The last full calendar month in CX_TIMEZONE."""
    tz = ZoneInfo(settings.cx_timezone)
    today = (now.astimezone(tz) if now and now.tzinfo else now or dt.datetime.now(tz)).date()
    return Month.of(today).shift(-1)


def _skip_reason(row: Any) -> str:
    if row is None:
        return "no delivery row"
    if row.status == "sent":
        return f"already sent at {_when(row.sent_at)}"
    if row.status == "sending":
        return row.error or f"being sent by {row.claimed_by}"
    if row.status == "claimed":
        return f"being delivered by {row.claimed_by} (claimed at {_when(row.claimed_at)})"
    if row.attempts < MAX_ATTEMPTS:
        return f"another process took it over first (last error: {row.error})"
    return (f"failed {row.attempts} time(s), no attempts left: {row.error}; `python -m "
            f"dashboard deliveries retry {row.id}` sends it again")


def deliver_one(engine: Engine, settings: Settings, subscription: Subscription, period: Month,
                renderer: Any, *, holder: str, sleep: Callable[[float], Any] = time.sleep,
                backoff: Sequence[float] = BACKOFF) -> DeliveryResult:
    """Claim, render, compose and send one subscription's snapshot (see `deliver_monthly`).

    `renderer` is a `_Renderers` or anything with `get()` returning a renderer. The scope
    rendered is the subscription's inside its user's current scope (`subscriptions.resolve`);
    a refusal fails the delivery with the reason and is written to the audit log, as is
    every render.
    """
    base = {"subscription_id": subscription.id, "email": subscription.email,
            "period": str(period)}
    delivery_id = claim(engine, subscription.id, period, holder)
    if delivery_id is None:
        row = _row(engine, subscription.id, str(period))
        reason = _skip_reason(row)
        log.info("snapshot %s for %s (subscription %d): not sent now: %s", period,
                 subscription.email, subscription.id, reason)
        return DeliveryResult(**base, status="skipped", delivery_id=row.id if row else None,
                              attempts=row.attempts if row else 0, error=reason)
    attempts = _row(engine, subscription.id, str(period)).attempts
    try:
        # The user's scope as it is now: a shrunk scope gives the smaller report; a
        # disabled user or an unresolvable scope gives none (Refused).
        with engine.connect() as conn:
            resolved = resolve(conn, subscription)
    except Refused as exc:
        error = f"not sent: {exc}"
        _fail(engine, delivery_id, holder, "claimed", attempts, error)
        audit.record(engine, "pdf_render", actor=ACTOR, user_id=subscription.user_id,
                     outcome="denied", target=f"subscription {subscription.id} {period}",
                     detail=error)
        log.error("snapshot %s for %s (subscription %d, delivery %d): %s", period,
                  subscription.email, subscription.id, delivery_id, error)
        return DeliveryResult(**base, status="failed", delivery_id=delivery_id,
                              attempts=attempts, error=error, stale_data=False)
    request = report_request(subscription, period, resolved)
    target = f"subscription {subscription.id} {period}"
    try:
        with engine.connect() as conn:
            summary = summarize(conn, settings, resolved.scope, period)
        pdf = renderer.get().render(request)
        if not isinstance(pdf, bytes | bytearray) or not bytes(pdf).startswith(b"%PDF-"):
            raise ValueError("the renderer returned something that is not a PDF")
        audit.record(engine, "pdf_render", actor=ACTOR, user_id=resolved.user.id,
                     target=target, detail=f"scope {','.join(resolved.scope.units)} "
                     f"({resolved.name}) for {resolved.user.email}, to {subscription.email}")
        with engine.connect() as conn:
            message = compose(conn, settings, subscription, period, bytes(pdf),
                              scope=resolved.scope, summary=summary)
    except Exception as exc:
        error = f"not sent, the snapshot could not be made: {describe(exc)}"
        audit.record(engine, "pdf_render", actor=ACTOR, user_id=resolved.user.id,
                     outcome="failed", target=target, detail=error)
        _fail(engine, delivery_id, holder, "claimed", attempts, error)
        log.error("snapshot %s for %s (subscription %d, delivery %d): %s", period,
                  subscription.email, subscription.id, delivery_id, error)
        return DeliveryResult(**base, status="failed", delivery_id=delivery_id,
                              attempts=attempts, error=error, stale_data=False)
    mid = str(message["Message-ID"])
    stale = summary.stale
    last_error: str | None = None
    tries = 0
    while True:
        new_attempts = attempts + (1 if tries else 0)
        if not _set(engine, delivery_id, holder, "claimed", attempts, status="sending",
                    attempts=new_attempts, claimed_at=_now(), message_id=mid,
                    stale_data=stale):
            error = "not sent: the delivery was taken over or reset by someone else"
            log.error("snapshot %s for %s (delivery %d): %s", period, subscription.email,
                      delivery_id, error)
            return DeliveryResult(**base, status="skipped", delivery_id=delivery_id,
                                  attempts=attempts, error=error, stale_data=stale)
        attempts, tries = new_attempts, tries + 1
        try:
            send(settings, message)
        except DeliveryUncertain as exc:
            error = (f"{exc}; not sent again automatically: check the recipient's mailbox or "
                     f"the SMTP server's log, then `python -m dashboard deliveries retry "
                     f"{delivery_id}` if it did not arrive")
            _set(engine, delivery_id, holder, "sending", attempts, error=error[:4000])
            log.error("snapshot %s for %s (delivery %d, attempt %d): %s", period,
                      subscription.email, delivery_id, attempts, error)
            return DeliveryResult(**base, status="uncertain", delivery_id=delivery_id,
                                  attempts=attempts, error=error, message_id=mid,
                                  stale_data=stale)
        except Exception as exc:
            last_error = f"attempt {attempts} failed: {describe(exc)}"
            retry = transient(exc) and attempts < MAX_ATTEMPTS and tries <= len(backoff)
            if not retry:
                _fail(engine, delivery_id, holder, "sending", attempts, last_error)
                log.error("snapshot %s for %s (delivery %d): %s; giving up (%d attempt(s))",
                          period, subscription.email, delivery_id, last_error, attempts)
                return DeliveryResult(**base, status="failed", delivery_id=delivery_id,
                                      attempts=attempts, error=last_error, message_id=mid,
                                      stale_data=stale)
            wait = backoff[tries - 1]
            _set(engine, delivery_id, holder, "sending", attempts, status="claimed",
                 claimed_at=_now(), error=last_error[:4000])
            log.warning("snapshot %s for %s (delivery %d): %s; retrying in %g s", period,
                        subscription.email, delivery_id, last_error, wait)
            sleep(wait)
            continue
        if not _set(engine, delivery_id, holder, "sending", attempts, status="sent",
                    sent_at=_now()):
            log.warning("delivery %d was sent but changed meanwhile (reset by an admin?)",
                        delivery_id)
        log.info("snapshot %s for %s (subscription %d) sent as %s after %d attempt(s)%s",
                 period, subscription.email, subscription.id, mid, attempts,
                 " with a data warning" if stale else "")
        return DeliveryResult(**base, status="sent", delivery_id=delivery_id,
                              attempts=attempts, error=last_error, message_id=mid,
                              stale_data=stale)


def deliver_monthly(engine: Engine, settings: Settings, *, period: Month | str | None = None,
                    renderer_factory: RendererFactory = default_renderer,
                    sleep: Callable[[float], Any] = time.sleep,
                    backoff: Sequence[float] = BACKOFF, schedule: str | None = None,
                    subscription_ids: Iterable[int] | None = None,
                    holder: str | None = None) -> list[DeliveryResult]:
    """Send `period`'s snapshot (default: the last full month in CX_TIMEZONE) to every
    active subscription (of one `schedule`, or the given ids); one result per subscription.

    For each: claim -> summary -> render (one renderer for the whole run) -> 'sending' ->
    send, retried with `backoff` on SMTP errors that may pass -> 'sent' or 'failed'. A
    snapshot that cannot be rendered is 'failed' and nothing is sent; one subscription's
    failure never stops the others. Raises SettingsError when SMTP_URL is missing or wrong
    (before anything is claimed).
    """
    smtp_target(settings.smtp_url)
    period = Month.parse(period) if isinstance(period, str) else period
    period = period or default_period(settings)
    holder = holder or holder_id()
    with engine.connect() as conn:
        subs = list_subscriptions(conn, active_only=True, schedule=schedule,
                                  ids=subscription_ids)
    results: list[DeliveryResult] = []
    with _Renderers(renderer_factory, settings) as renderers:
        for subscription in subs:
            try:
                results.append(deliver_one(engine, settings, subscription, period, renderers,
                                           holder=holder, sleep=sleep, backoff=backoff))
            except Exception as exc:  # a database hiccup with one must not stop the others
                log.exception("snapshot %s for %s (subscription %d) failed", period,
                              subscription.email, subscription.id)
                results.append(DeliveryResult(subscription.id, subscription.email, str(period),
                                              "failed", error=describe(exc)))
    counts = {s: sum(r.status == s for r in results)
              for s in ("sent", "failed", "uncertain", "skipped")}
    log.info("snapshots %s: %s", period, ", ".join(f"{n} {s}" for s, n in counts.items()))
    return results


# ------------------------------------------------------------------------------ scheduler

JOB_PREFIX = "snapshot:cron:"
RETRY_JOB_ID = "snapshot:retry"


def due_subscriptions(engine: Engine, settings: Settings, *,
                      now: dt.datetime | None = None) -> tuple[Month, list[int]]:
    """The period due now and the subscriptions whose schedule has fired this month (since
    they subscribed) and whose snapshot is not sent yet nor out of attempts."""
    tz = ZoneInfo(settings.cx_timezone)
    now = now.astimezone(tz) if now else dt.datetime.now(tz)
    period = Month.of(now.date()).shift(-1)
    month_start = dt.datetime(now.year, now.month, 1, tzinfo=tz)
    with engine.connect() as conn:
        subs = list_subscriptions(conn, active_only=True)
        done = set(conn.execute(select(dlv.c.subscription_id).where(
            dlv.c.period == str(period),
            (dlv.c.status == "sent") | ((dlv.c.status == "failed")
                                       & (dlv.c.attempts >= MAX_ATTEMPTS)))).scalars())
    due = []
    for s in subs:
        if s.id in done:
            continue
        fire = cron_trigger(s.schedule, tz).get_next_fire_time(None, month_start)
        if fire is None or fire > now:
            continue
        # Subscribed after this month's run: the first snapshot is next month's.
        if s.created_at is not None and s.created_at.astimezone(tz) > fire:
            continue
        due.append(s.id)
    return period, due


def run_schedule(engine: Engine, settings: Settings, schedule: str,
                 renderer_factory: RendererFactory = default_renderer) -> list[DeliveryResult]:
    """The job of one cron schedule: deliver to its subscriptions; never raises (a raised
    error would only reach APScheduler's log: the delivery rows are what admins read)."""
    try:
        return deliver_monthly(engine, settings, schedule=schedule,
                               renderer_factory=renderer_factory)
    except Exception:
        log.exception("snapshot job %r failed", schedule)
        return []


def retry_due(engine: Engine, settings: Settings, *,
              renderer_factory: RendererFactory = default_renderer,
              sleep: Callable[[float], Any] = time.sleep, backoff: Sequence[float] = BACKOFF,
              now: dt.datetime | None = None) -> list[DeliveryResult]:
    """The hourly job: retry failed deliveries of the current period that have attempts
    left, take over ones a dead process claimed, and catch up on a run the scheduler missed
    (it was down at the scheduled time)."""
    period, due = due_subscriptions(engine, settings, now=now)
    if not due:
        return []
    return deliver_monthly(engine, settings, period=period, subscription_ids=due,
                           renderer_factory=renderer_factory, sleep=sleep, backoff=backoff)


def sync_snapshot_jobs(scheduler: Any, settings: Settings, engine: Engine,
                       renderer_factory: RendererFactory = default_renderer) -> list[str]:
    """One cron job per distinct schedule of the active subscriptions (added, and removed
    when no subscription uses it any more); the schedules."""
    tz = ZoneInfo(settings.cx_timezone)
    with engine.connect() as conn:
        schedules = sorted({s.schedule for s in list_subscriptions(conn, active_only=True)})
    wanted = {JOB_PREFIX + s: s for s in schedules}
    for job in scheduler.get_jobs():
        if job.id.startswith(JOB_PREFIX) and job.id not in wanted:
            scheduler.remove_job(job.id)
    existing = {job.id for job in scheduler.get_jobs()}
    for job_id, schedule in wanted.items():
        if job_id in existing:
            continue
        scheduler.add_job(run_schedule, cron_trigger(schedule, tz),
                          args=(engine, settings, schedule, renderer_factory), id=job_id,
                          name=f"Snapshot emails ({schedule})", replace_existing=True,
                          coalesce=True, max_instances=1,
                          misfire_grace_time=SNAPSHOT_MISFIRE_GRACE_SECONDS)
        log.info("scheduled snapshot emails at %r (%s)", schedule, settings.cx_timezone)
    return schedules


def _hourly(scheduler: Any, settings: Settings, engine: Engine,
            renderer_factory: RendererFactory) -> None:
    try:
        sync_snapshot_jobs(scheduler, settings, engine, renderer_factory)
        retry_due(engine, settings, renderer_factory=renderer_factory)
    except Exception:
        log.exception("snapshot retry job failed")


def add_snapshot_jobs(scheduler: Any, settings: Settings, engine: Engine, *,
                      renderer_factory: RendererFactory = default_renderer) -> list[str]:
    """Add the snapshot jobs to an APScheduler 3 scheduler (call before `start()`).

    One cron job per distinct subscription schedule (in CX_TIMEZONE, coalescing, with a
    misfire grace time), and an hourly job (first run a minute after start) that picks up
    new schedules, retries failed deliveries of the current period and catches up on a run
    missed while the scheduler was down. Returns the schedules.
    """
    schedules = sync_snapshot_jobs(scheduler, settings, engine, renderer_factory)
    tz = ZoneInfo(settings.cx_timezone)
    # Also a minute after start: jobs live in memory, so a run missed while the scheduler was
    # down is not replayed by APScheduler; this catches up on it.
    scheduler.add_job(_hourly, CronTrigger(minute=RETRY_MINUTE, timezone=tz),
                      args=(scheduler, settings, engine, renderer_factory), id=RETRY_JOB_ID,
                      name="Snapshot emails: retries and catch-up", replace_existing=True,
                      coalesce=True, max_instances=1, misfire_grace_time=30 * 60,
                      next_run_time=dt.datetime.now(tz) + dt.timedelta(minutes=1))
    return schedules
