"""The monthly email: a summary of the KPIs in text and HTML with the PDF attached, and
sending it through SMTP_URL.

`send` tells errors that are safe to retry (nothing was handed over) from a connection lost
after the message was handed to the server (DeliveryUncertain: it may have gone out, so it
is never sent again automatically).
"""

from __future__ import annotations

import datetime as dt
import html
import logging
import re
import smtplib
import ssl
from collections.abc import Sequence
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import formataddr, formatdate, getaddresses, parseaddr
from urllib.parse import parse_qs, unquote, urlencode, urlsplit

from sqlalchemy import Connection

from queries.formatting import fmt_delta, fmt_moe, fmt_reason, fmt_significance, fmt_value
from queries.health import Freshness, freshness
from queries.kpis import Filters, Kpi, kpis
from queries.kpis import Settings as KpiSettings
from queries.periods import Month
from queries.scope import Scope, apply_scope
from queries.settings import Settings, SettingsError
from queries.signals import Assessment, Signal, assess
from reports.subscriptions import Subscription, check_name, roots, scope_name

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Summary:
    """What an email says: the KPIs of the scope, the signals, and any data problem."""

    period: Month
    compare: Month
    scope_name: str
    kpis: list[Kpi]
    signals: list[Signal]
    problems: list[Freshness] = field(default_factory=list)
    scope: Scope | None = None
    verdict: Assessment | None = None  # the signals' heading, and why they agree if they do

    @property
    def stale(self) -> bool:
        """True when a source failed or is stale: the numbers may be incomplete."""
        return bool(self.problems)


def kpi_settings(settings: Settings) -> KpiSettings:
    """The KPI thresholds of `settings`."""
    return KpiSettings(settings.cx_min_n, settings.cx_anonymity_min, settings.cx_active_days)


def summarize(conn: Connection, settings: Settings, scope: Scope, period: Month, *,
              now: dt.datetime | None = None) -> Summary:
    """The KPIs of `scope` for `period` (against the month before), the signals that
    disagree, and the sources that failed or are stale."""
    filters = apply_scope(conn, Filters(), scope)
    items = kpis(conn, period=period, filters=filters, settings=kpi_settings(settings))
    problems = [f for f in freshness(conn, stale_hours=settings.cx_stale_hours, now=now)
                if f.failed or f.stale]
    verdict = assess(items)
    return Summary(period, period.shift(-1), scope_name(conn, scope), items,
                   verdict.signals, problems, scope, verdict)


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
    return fmt_significance(k)


def _n(k: Kpi) -> str:
    return "—" if k.hidden else f"{k.n:,}"


def _compared(k: Kpi) -> str:
    return Month.parse(k.compare.period).label if k.compare else ""


def _flag(k: Kpi) -> str:
    if k.hidden:
        return k.note or "hidden"
    if k.not_applicable:
        return fmt_reason(k)
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
        heading = summary.verdict.heading if summary.verdict else "Signals disagree"
        lines += ["", heading + ":"] + [f"  - {s.text}" for s in summary.signals]
    elif summary.verdict:
        lines += ["", f"{summary.verdict.heading}: {summary.verdict.reason}"]
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
        heading = summary.verdict.heading if summary.verdict else "Signals disagree"
        out.append(f'<h2 style="font-size:15px">{e(heading)}</h2><ul id="cx-signals">'
                   + "".join(f"<li>{e(s.text)}</li>" for s in summary.signals) + "</ul>")
    elif summary.verdict:
        out.append(f'<p id="cx-signals"><strong>{e(summary.verdict.heading)}.</strong> '
                   f"{e(summary.verdict.reason)}</p>")
    out.append("<p>" + " · ".join(f'<a href="{e(u)}">Open the dashboard</a>' for u in links)
               + "</p>")
    out.append('<p style="color:#666;font-size:12px">Significance: a change that sampling '
               "noise alone would produce less than 5% of the time. Low sample: fewer "
               "responses than the minimum for a reliable value.</p></body></html>")
    return "".join(out)


def compose(conn: Connection, settings: Settings, subscription: Subscription, period: Month,
            pdf: bytes, *, scope: Scope | None = None, summary: Summary | None = None,
            now: dt.datetime | None = None) -> EmailMessage:
    """The email of one delivery: subject, addresses, a deterministic Message-ID, the text
    and HTML summaries (a data warning first when a source failed or is stale), the PDF.

    `scope` is what the PDF was rendered in (`subscriptions.resolve`); by default the
    summary's, else the subscription's own, else the whole company.
    """
    scope = scope or (summary.scope if summary else None) or subscription.scope or roots(conn)
    summary = summary or summarize(conn, settings, scope, period, now=now)
    links = dashboard_links(settings, scope, period)
    msg = EmailMessage()
    msg["Subject"] = subject(period, summary.scope_name)
    msg["From"] = settings.smtp_from
    try:  # a name stored before names were checked must not break the header
        name = check_name(subscription.name) or ""
    except ValueError:
        log.warning("subscription %d: its name has line breaks or control characters; "
                    "sent without it", subscription.id)
        name = ""
    msg["To"] = formataddr((name, subscription.email))
    msg["Date"] = formatdate(localtime=True)
    msg["Message-ID"] = message_id(settings, subscription.id, period)
    msg["Auto-Submitted"] = "auto-generated"
    if summary.stale:
        msg["X-CX-Data-Warning"] = "stale"
    msg.set_content(text_body(summary, links))
    msg.add_alternative(html_body(summary, links), subtype="html")
    msg.add_attachment(pdf, maintype="application", subtype="pdf",
                       filename=attachment_name(period, scope))
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


def describe(exc: BaseException) -> str:
    """An error as a delivery row says it: our own errors by their message, others with
    their type (and SMTP's code)."""
    if type(exc).__name__ in ("SnapshotError", "RenderBusy", "Refused"):
        return str(exc)
    if isinstance(exc, smtplib.SMTPResponseException):
        detail = exc.smtp_error.decode(errors="replace") if isinstance(
            exc.smtp_error, bytes) else str(exc.smtp_error)
        return f"{type(exc).__name__}: {exc.smtp_code} {detail}"
    return f"{type(exc).__name__}: {exc}"
