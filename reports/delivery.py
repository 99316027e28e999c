"""Monthly PDF snapshots by email: subscriptions, claims, the email, SMTP, the scheduler jobs.

On the first morning of each month every subscriber (an executive, a regional or a store
manager) gets last month's dashboard as they are allowed to see it: an email whose HTML
summary carries the KPI values in text, with the PDF attached.

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

The renderer is passed in (`renderer_factory`, default `dashboard.snapshot.SnapshotRenderer`):
one browser renders the PDFs of all recipients of a run, and tests can give a real renderer
pointed elsewhere.
"""

from __future__ import annotations

import datetime as dt
import html
import logging
import os
import re
import secrets
import smtplib
import socket
import ssl
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import formataddr, formatdate, getaddresses, parseaddr
from typing import Any
from urllib.parse import parse_qs, unquote, urlencode, urlsplit
from zoneinfo import ZoneInfo

from apscheduler.triggers.cron import CronTrigger
from sqlalchemy import Connection, Engine, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from etl.cron import cron_trigger
from queries import schema
from queries.formatting import fmt_delta, fmt_moe, fmt_value
from queries.health import Freshness, freshness
from queries.kpis import Filters, Kpi, kpis
from queries.kpis import Settings as KpiSettings
from queries.periods import Month
from queries.scope import Scope, apply_scope, check_units
from queries.settings import Settings, SettingsError
from queries.signals import Signal, disagreements

log = logging.getLogger(__name__)

sub_t = schema.subscription
dlv = schema.delivery
ou = schema.org_unit

DEFAULT_SCHEDULE = "0 7 1 * *"
PAPERS = ("A4", "Letter")
MAX_ATTEMPTS = 3
"""Tries per (subscription, period) in all: each claim and each retry of the send is one."""
CLAIM_TTL = dt.timedelta(minutes=30)
"""A row 'claimed' for longer belongs to a process that died before sending."""
BACKOFF = (1.0, 4.0, 16.0)
"""Seconds to wait before the 2nd, 3rd, ... try of a send within one run."""
SNAPSHOT_MISFIRE_GRACE_SECONDS = 6 * 3600
RETRY_MINUTE = 23
"""The hourly retry job runs at this minute (away from the usual on-the-hour schedules)."""


def _now() -> dt.datetime:
    """Naive local time, the clock of every table (as `etl.load.now`)."""
    return dt.datetime.now().replace(microsecond=0)


def _rowcount(result: Any) -> int:
    return result.rowcount


# ------------------------------------------------------------------------- subscriptions


@dataclass(frozen=True)
class Subscription:
    """Who gets which snapshot, on what paper, when."""

    id: int
    email: str
    scope: Scope
    name: str | None = None
    paper: str = "A4"
    landscape: bool = True
    schedule: str = DEFAULT_SCHEDULE
    active: bool = True
    created_at: dt.datetime | None = None


_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_EMAIL = re.compile(rf"^[A-Za-z0-9.!#$%&'*+/=?^_`{{|}}~-]{{1,64}}@{_LABEL}(?:\.{_LABEL})+$")


def check_email(value: str) -> str:
    """`value` as a plain address (domain lower-cased), or ValueError naming the field."""
    text = (value or "").strip()
    if len(text) > 320 or not _EMAIL.match(text) or ".." in text:
        raise ValueError(f"email: {value!r} is not an email address such as ada@example.com")
    local, _, domain = text.rpartition("@")
    return f"{local}@{domain.lower()}"


def check_paper(value: str) -> str:
    """'A4' or 'Letter' (any case), or ValueError naming the field."""
    for paper in PAPERS:
        if (value or "").strip().lower() == paper.lower():
            return paper
    raise ValueError(f"paper: expected A4 or Letter, got {value!r}")




def check_schedule(value: str) -> str:
    """A valid cron line, whitespace normalised, or ValueError naming the field."""
    text = " ".join((value or "").split())
    try:
        cron_trigger(text)
    except ValueError as exc:
        raise ValueError(f"schedule: {value!r} is not a cron line such as "
                         f"'{DEFAULT_SCHEDULE}' (minute hour day month weekday): {exc}") from None
    return text


def add_subscription(conn: Connection, *, email: str, scope: Scope | str | Sequence[str],
                     name: str | None = None, paper: str = "A4", landscape: bool = True,
                     schedule: str = DEFAULT_SCHEDULE, now: dt.datetime | None = None) -> int:
    """Add a subscription (inside the caller's transaction); its id.

    ValueError, with a message starting with the field's name, for a bad email, an empty
    scope or unknown org units, a paper other than A4/Letter, a bad cron line, or a
    subscription of the same email to the same scope that already exists.
    """
    email = check_email(email)
    scope = scope if isinstance(scope, Scope) else Scope.of(scope)
    if not scope.units:
        raise ValueError("scope: give at least one org unit the recipient may see")
    try:
        check_units(conn, scope)
    except ValueError as exc:
        raise ValueError(f"scope: {exc}") from None
    paper = check_paper(paper)
    schedule = check_schedule(schedule)
    name = (name or "").strip() or None
    if name is not None and len(name) > 200:
        raise ValueError("name: at most 200 characters")
    scope_text = ",".join(scope.units)
    if len(scope_text) > 500:
        raise ValueError("scope: too many org units for one subscription")
    existing = conn.execute(select(sub_t.c.id).where(sub_t.c.email == email,
                                                     sub_t.c.scope == scope_text)).scalar()
    if existing is not None:
        raise ValueError(f"email: {email} already has a subscription to {scope_text} "
                         f"(id {existing})")
    try:  # the unique key decides if two admins add the same one at once
        new_id = conn.execute(insert(sub_t).values(
            email=email, name=name, scope=scope_text, paper=paper, landscape=bool(landscape),
            schedule=schedule, active=True, created_at=now or _now())).inserted_primary_key[0]
    except IntegrityError:
        raise ValueError(f"email: {email} already has a subscription to {scope_text}") from None
    log.info("subscription %d added: %s, scope %s, %s", new_id, email, scope_text, schedule)
    return int(new_id)


def remove_subscription(conn: Connection, subscription_id: int) -> bool:
    """Delete a subscription and its delivery history; False when there was none."""
    conn.execute(delete(dlv).where(dlv.c.subscription_id == subscription_id))
    gone = _rowcount(conn.execute(delete(sub_t).where(sub_t.c.id == subscription_id),
                                  execution_options={"preserve_rowcount": True}))
    if gone:
        log.info("subscription %d removed", subscription_id)
    return bool(gone)


def _subscription(row: Any) -> Subscription:
    return Subscription(id=int(row.id), email=row.email, scope=Scope.of(row.scope),
                        name=row.name, paper=row.paper, landscape=bool(row.landscape),
                        schedule=row.schedule, active=bool(row.active),
                        created_at=row.created_at)


def list_subscriptions(conn: Connection, *, active_only: bool = False,
                       schedule: str | None = None,
                       ids: Iterable[int] | None = None) -> list[Subscription]:
    """Subscriptions by id (only active ones, one schedule's, or the given ids)."""
    stmt = select(sub_t).order_by(sub_t.c.id)
    if active_only:
        stmt = stmt.where(sub_t.c.active.is_(True))
    if schedule is not None:
        stmt = stmt.where(sub_t.c.schedule == schedule)
    if ids is not None:
        stmt = stmt.where(sub_t.c.id.in_(list(ids)))
    return [_subscription(r) for r in conn.execute(stmt)]


def get_subscription(conn: Connection, subscription_id: int) -> Subscription | None:
    """One subscription, or None."""
    found = list_subscriptions(conn, ids=[subscription_id])
    return found[0] if found else None


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


# -------------------------------------------------------------------------------- email


@dataclass(frozen=True)
class Summary:
    """What an email says: the KPIs of the scope, the signals, and any data problem."""

    period: Month
    compare: Month
    scope_name: str
    kpis: list[Kpi]
    signals: list[Signal]
    problems: list[Freshness] = field(default_factory=list)

    @property
    def stale(self) -> bool:
        """True when a source failed or is stale: the numbers may be incomplete."""
        return bool(self.problems)


def kpi_settings(settings: Settings) -> KpiSettings:
    """The KPI thresholds of `settings`."""
    return KpiSettings(settings.cx_min_n, settings.cx_anonymity_min, settings.cx_active_days)


def scope_name(conn: Connection, scope: Scope) -> str:
    """The scope's unit names, as people know them ('West'; 'West, North')."""
    names = dict(conn.execute(select(ou.c.id, ou.c.name).where(ou.c.id.in_(scope.units))).all())
    return ", ".join(names.get(u, u) for u in scope.units)


def summarize(conn: Connection, settings: Settings, subscription: Subscription,
              period: Month, *, now: dt.datetime | None = None) -> Summary:
    """The KPIs of the subscription's scope for `period` (against the month before), the
    signals that disagree, and the sources that failed or are stale."""
    filters = apply_scope(conn, Filters(), subscription.scope)
    items = kpis(conn, period=period, filters=filters, settings=kpi_settings(settings))
    problems = [f for f in freshness(conn, stale_hours=settings.cx_stale_hours, now=now)
                if f.failed or f.stale]
    return Summary(period, period.shift(-1), scope_name(conn, subscription.scope), items,
                   disagreements(items), problems)


def subject(period: Month, name: str) -> str:
    """'CX snapshot · October 2026 · West'."""
    return f"CX snapshot · {period.label} · {name}"


def message_id(settings: Settings, subscription_id: int, period: Month | str) -> str:
    """The same Message-ID for every try of one delivery: a resend is recognisable."""
    host = urlsplit(settings.cx_base_url).hostname or "localhost"
    return f"<cx-{subscription_id}-{period}@{host}>"


def attachment_name(period: Month | str, scope: Scope) -> str:
    """'cx-snapshot-2026-10-R-WEST.pdf'."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", f"cx-snapshot-{period}-{'-'.join(scope.units)}.pdf")


def dashboard_links(settings: Settings, scope: Scope, period: Month) -> list[str]:
    """The dashboard at the period, one link per unit of the scope."""
    return [f"{settings.cx_base_url}/?{urlencode({'period': str(period), 'unit': u})}"
            for u in scope.units]


def _when(value: dt.datetime | None) -> str:
    return f"{value:%d %b %Y %H:%M}" if value is not None else ""


def warning_text(problems: Sequence[Freshness]) -> str:
    """One paragraph naming the sources that failed or are stale."""
    parts = []
    for f in problems:
        since = (f"last successful load {_when(f.last_success)}" if f.last_success
                 else "never loaded successfully")
        if f.failed:
            err = f": {' '.join(f.last_error.split())[:200]}" if f.last_error else ""
            parts.append(f"the last load of {f.source} failed ({since}){err}")
        else:
            parts.append(f"{f.source} has not loaded recently ({since})")
    return ("Data warning: the numbers below may be incomplete or out of date, because "
            + "; ".join(parts) + ".")


def _significance(k: Kpi) -> str:
    return {True: "significant", False: "not significant"}.get(k.significant, "")


def _n(k: Kpi) -> str:
    return "—" if k.hidden else f"{k.n:,}"


def _compared(k: Kpi) -> str:
    return Month.parse(k.compare.period).label if k.compare else ""


def _flag(k: Kpi) -> str:
    if k.hidden:
        return k.note or "hidden"
    return "low sample" if k.low_sample else ""


def text_body(summary: Summary, links: list[str]) -> str:
    """The text/plain alternative."""
    lines = []
    if summary.stale:
        lines += [warning_text(summary.problems), ""]
    lines += [f"CX snapshot · {summary.period.label} · {summary.scope_name}", "",
              f"Last month's dashboard for {summary.scope_name} is attached as a PDF. "
              f"The numbers in brief (change against {summary.compare.label}, 95% margins):", ""]
    for k in summary.kpis:
        change = fmt_delta(k) if k.compare else "no comparison"
        extra = ", ".join(x for x in (_significance(k), _flag(k)) if x)
        lines.append(f"  {k.label:<22}{fmt_value(k):>12}  n={_n(k):<8}{fmt_moe(k):<12}"
                     f"{change:>14}" + (f" ({extra})" if extra else ""))
    if summary.signals:
        lines += ["", "Signals that disagree:"] + [f"  - {s.text}" for s in summary.signals]
    lines += ["", "Open the dashboard:"] + [f"  {u}" for u in links]
    return "\n".join(lines) + "\n"


_CELL = "padding:4px 8px;border-bottom:1px solid #ddd;"


def html_body(summary: Summary, links: list[str]) -> str:
    """The text/html alternative: a warning first (if any), then the KPI table."""
    e = html.escape
    out = ['<!DOCTYPE html><html><head><meta charset="utf-8"></head>'
           '<body style="font-family:Arial,Helvetica,sans-serif;color:#222;font-size:14px">']
    if summary.stale:
        out.append('<div id="cx-data-warning" style="background:#fff3cd;border:1px solid '
                   '#e0b000;padding:8px 12px;margin-bottom:12px"><strong>'
                   f'{e(warning_text(summary.problems))}</strong></div>')
    out.append(f'<h1 style="font-size:18px">{e(subject(summary.period, summary.scope_name))}'
               '</h1>')
    out.append(f"<p>Last month's dashboard for {e(summary.scope_name)} is attached as a PDF. "
               f"The numbers in brief, with 95% margins and the change against "
               f"{e(summary.compare.label)}:</p>")
    heads = ["KPI", "Value", "n", "Margin (95%)", "Change", "Compared with", "Significance"]
    out.append('<table id="cx-kpis" style="border-collapse:collapse"><thead><tr>'
               + "".join(f'<th style="{_CELL}text-align:left">{h}</th>' for h in heads)
               + "</tr></thead><tbody>")
    for k in summary.kpis:
        flag = f' <small style="color:#666">({e(_flag(k))})</small>' if _flag(k) else ""
        cells = [("label", e(k.label) + flag), ("value", e(fmt_value(k))), ("n", e(_n(k))),
                 ("moe", e(fmt_moe(k))),
                 ("change", e(fmt_delta(k) if k.compare else "no comparison")),
                 ("compare", e(_compared(k))), ("significance", e(_significance(k)))]
        out.append(f'<tr data-kpi="{e(k.key)}">' + "".join(
            f'<td data-field="{name}" style="{_CELL}">{body}</td>' for name, body in cells)
            + "</tr>")
    out.append("</tbody></table>")
    if summary.signals:
        out.append('<h2 style="font-size:15px">Signals that disagree</h2><ul id="cx-signals">'
                   + "".join(f"<li>{e(s.text)}</li>" for s in summary.signals) + "</ul>")
    out.append("<p>" + " · ".join(f'<a href="{e(u)}">Open the dashboard</a>' for u in links)
               + "</p>")
    out.append('<p style="color:#666;font-size:12px">Significance: a change that sampling '
               "noise alone would produce less than 5% of the time. Low sample: fewer "
               "responses than the minimum for a reliable value.</p></body></html>")
    return "".join(out)


def compose(conn: Connection, settings: Settings, subscription: Subscription, period: Month,
            pdf: bytes, *, summary: Summary | None = None,
            now: dt.datetime | None = None) -> EmailMessage:
    """The email of one delivery: subject, addresses, a deterministic Message-ID, the text
    and HTML summaries (a data warning first when a source failed or is stale), the PDF."""
    summary = summary or summarize(conn, settings, subscription, period, now=now)
    links = dashboard_links(settings, subscription.scope, period)
    msg = EmailMessage()
    msg["Subject"] = subject(period, summary.scope_name)
    msg["From"] = settings.smtp_from
    msg["To"] = formataddr((subscription.name or "", subscription.email))
    msg["Date"] = formatdate(localtime=True)
    msg["Message-ID"] = message_id(settings, subscription.id, period)
    msg["Auto-Submitted"] = "auto-generated"
    if summary.stale:
        msg["X-CX-Data-Warning"] = "stale"
    msg.set_content(text_body(summary, links))
    msg.add_alternative(html_body(summary, links), subtype="html")
    msg.add_attachment(pdf, maintype="application", subtype="pdf",
                       filename=attachment_name(period, subscription.scope))
    return msg


# --------------------------------------------------------------------------------- SMTP


class DeliveryUncertain(Exception):
    """The connection failed after the message was handed to the server: it may have been
    delivered, so it must not be sent again automatically."""


@dataclass(frozen=True)
class SmtpTarget:
    """SMTP_URL taken apart."""

    tls: bool
    host: str
    port: int
    username: str | None
    password: str | None
    starttls: bool


def smtp_target(url: str | None) -> SmtpTarget:
    """Parse SMTP_URL (smtp://[user:password@]host[:port][?starttls=true] or smtps://...);
    SettingsError naming the variable when it is missing or wrong."""
    if not url:
        raise SettingsError("SMTP_URL is not set: snapshot emails need an SMTP server, "
                            "e.g. smtp://user:password@mail.example.com:587?starttls=true")
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        raise SettingsError("SMTP_URL: the port is not a number") from None
    if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
        raise SettingsError("SMTP_URL: expected smtp://[user:password@]host[:port] or smtps://")
    flag = parse_qs(parts.query).get("starttls", ["false"])[-1].lower()
    tls = parts.scheme == "smtps"
    return SmtpTarget(
        tls=tls, host=parts.hostname, port=port or (465 if tls else 25),
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password is not None else None,
        starttls=flag in ("1", "true", "yes", "on"),
    )


def send(settings: Settings, message: EmailMessage) -> str:
    """Send `message` through SMTP_URL; its Message-ID.

    smtp:// is plain (with ?starttls=true upgraded by STARTTLS), smtps:// is TLS from the
    start; user:password in the URL logs in. Errors before the message is handed over are
    raised as they are (safe to retry); a broken connection after it raises
    DeliveryUncertain.
    """
    target = smtp_target(settings.smtp_url)
    sender = parseaddr(str(message["From"] or settings.smtp_from))[1]
    recipients = [addr for _, addr in getaddresses(
        [str(v) for h in ("To", "Cc") for v in message.get_all(h, [])]) if addr]
    if not sender or not recipients:
        raise ValueError("the message has no sender or no recipient")
    payload = message.as_bytes(policy=message.policy.clone(linesep="\r\n"))
    timeout = settings.smtp_timeout
    if target.tls:
        smtp: smtplib.SMTP = smtplib.SMTP_SSL(target.host, target.port, timeout=timeout,
                                              context=ssl.create_default_context())
    else:
        smtp = smtplib.SMTP(target.host, target.port, timeout=timeout)
    try:
        smtp.ehlo()
        if target.starttls:
            smtp.starttls(context=ssl.create_default_context())
            smtp.ehlo()
        if target.username:
            smtp.login(target.username, target.password or "")
        code, resp = smtp.mail(sender)
        if code != 250:
            raise smtplib.SMTPSenderRefused(code, resp, sender)
        refused = {}
        for rcpt in recipients:
            code, resp = smtp.rcpt(rcpt)
            if code not in (250, 251):
                refused[rcpt] = (code, resp)
        if len(refused) == len(recipients):
            raise smtplib.SMTPRecipientsRefused(refused)
        try:
            code, resp = smtp.data(payload)
        except smtplib.SMTPResponseException:
            raise  # the server answered: it did not take the message
        except OSError as exc:
            raise DeliveryUncertain(
                f"the connection failed after the message was handed to {target.host} "
                f"({type(exc).__name__}: {exc}): it may have been delivered") from exc
        if code != 250:  # the final answer to DATA: smtplib returns it instead of raising
            raise smtplib.SMTPDataError(code, resp)
    finally:
        try:
            smtp.quit()
        except (OSError, smtplib.SMTPException):
            smtp.close()
    return str(message["Message-ID"])


def transient(exc: BaseException) -> bool:
    """Whether trying again later may succeed (connection trouble, 4xx answers)."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        return any(code < 500 for code, _ in exc.recipients.values())
    if isinstance(exc, smtplib.SMTPResponseException):
        return exc.smtp_code < 500
    if isinstance(exc, smtplib.SMTPNotSupportedError | ssl.SSLCertVerificationError):
        return False
    return isinstance(exc, OSError)


def _describe(exc: BaseException) -> str:
    if type(exc).__name__ == "SnapshotError":
        return str(exc)
    if isinstance(exc, smtplib.SMTPResponseException):
        detail = exc.smtp_error.decode(errors="replace") if isinstance(
            exc.smtp_error, bytes) else str(exc.smtp_error)
        return f"{type(exc).__name__}: {exc.smtp_code} {detail}"
    return f"{type(exc).__name__}: {exc}"


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
    """`dashboard.snapshot.SnapshotRenderer`: one Chromium for every render of a run."""
    from dashboard.snapshot import SnapshotRenderer

    return SnapshotRenderer(settings)


def report_request(subscription: Subscription, period: Month) -> Any:
    """What to render for a subscription."""
    from dashboard.snapshot import ReportRequest

    return ReportRequest(scope=subscription.scope, period=period, paper=subscription.paper,
                         landscape=subscription.landscape)


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

    `renderer` is a `_Renderers` or anything with `get()` returning a renderer.
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
        with engine.connect() as conn:
            summary = summarize(conn, settings, subscription, period)
        pdf = renderer.get().render(report_request(subscription, period))
        if not isinstance(pdf, bytes | bytearray) or not bytes(pdf).startswith(b"%PDF-"):
            raise ValueError("the renderer returned something that is not a PDF")
        with engine.connect() as conn:
            message = compose(conn, settings, subscription, period, bytes(pdf), summary=summary)
    except Exception as exc:
        error = f"not sent, the snapshot could not be made: {_describe(exc)}"
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
            last_error = f"attempt {attempts} failed: {_describe(exc)}"
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
                                              "failed", error=_describe(exc)))
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
