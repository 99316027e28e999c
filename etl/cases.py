"""Closing the loop: follow-up cases for detractors, their owners, and the emails about them.

After each survey load (`cases_after_load`), every recent answer from a detractor (NPS 0-6) or
with CSAT 1-2 that carries a customer id or a comment opens one case (the unique key on the
answer makes a rerun open none twice) for the manager of the answer's store: the active
manager whose units hold the store most closely (the store itself, else its region, ...).
A case is due CX_CASE_SLA_HOURS after it opens; its owner moves it open -> contacted ->
resolved and keeps a note (`update_case`, which checks the person's scope).

New cases are emailed to their owner once: one email per case, or with CX_CASE_DIGEST one
daily digest per owner. Every email is claimed before it is sent, as snapshot deliveries are:
a `case_notice` row keyed by (recipient, 'case:ID' | 'digest:DATE') is inserted first, and only
the process whose INSERT wins sends; the row then walks claimed -> sending -> sent | failed.
A failed row is taken over by a later run (compare-and-set on its status and attempts) while
attempts are left; a row left 'sending' may have gone out and is never retried automatically.
"""

from __future__ import annotations

import datetime as dt
import html
import logging
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

from sqlalchemy import Connection, Engine, and_, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from queries import schema
from queries.settings import Settings, get_settings
from reports.cases import CaseError, update_case
from reports.delivery import MAX_ATTEMPTS, holder_id
from reports.mail import DeliveryUncertain, send

log = logging.getLogger(__name__)

sr = schema.survey_response
fc = schema.follow_up_case
cn = schema.case_notice
ou = schema.org_unit
users = schema.app_user


def _now() -> dt.datetime:
    return dt.datetime.now().replace(microsecond=0)


# --------------------------------------------------------------------------- opening


def _ancestry(conn: Connection) -> dict[str, list[str]]:
    """Each unit with its chain up to the top: [itself, parent, grandparent, ...]."""
    parent = dict(conn.execute(select(ou.c.id, ou.c.parent_id)).all())
    out = {}
    for unit in parent:
        chain, seen, cur = [], set(), unit
        while cur is not None and cur not in seen:
            chain.append(cur)
            seen.add(cur)
            cur = parent.get(cur)
        out[unit] = chain
    return out


def owner_for(unit: str, ancestry: dict[str, list[str]],
              managers: Sequence[tuple[int, str, tuple[str, ...]]]) -> tuple[int, str] | None:
    """The manager whose scope holds `unit` most closely (lowest id on a tie), as (id, email);
    None when no manager's scope holds it."""
    chain = ancestry.get(unit, [unit])
    best = None
    for uid, email, scope in managers:
        depth = min((chain.index(u) for u in scope if u in chain), default=None)
        if depth is not None and (best is None or (depth, uid) < best[0]):
            best = ((depth, uid), (uid, email))
    return best[1] if best else None


def _managers(conn: Connection) -> list[tuple[int, str, tuple[str, ...]]]:
    rows = conn.execute(select(users.c.id, users.c.email, users.c.scope).where(
        users.c.role == "manager", users.c.active).order_by(users.c.id)).all()
    return [(int(r.id), str(r.email), tuple(u for u in (r.scope or "").split(",") if u))
            for r in rows]


def open_cases(engine: Engine, settings: Settings | None = None, *,
               now: dt.datetime | None = None) -> list[int]:
    """Open a case for each qualifying answer that has none; the new case ids."""
    settings = settings or get_settings()
    now = now or _now()
    sla = dt.timedelta(hours=settings.cx_case_sla_hours)
    reachable = or_(sr.c.customer_id.is_not(None),
                    and_(sr.c.comment.is_not(None), func.length(func.trim(sr.c.comment)) > 0))
    unhappy = or_(sr.c.nps <= 6, sr.c.csat <= 2)
    opened = []
    with engine.begin() as conn:
        # The lookback counts back from the newest answer (now, for a live source), so a
        # first load of history opens cases only for its last days.
        newest = conn.execute(select(func.max(sr.c.submitted_at)).where(
            sr.c.submitted_at <= now)).scalar_one()
        if newest is None:
            return []
        since = newest - dt.timedelta(days=settings.cx_case_lookback_days)
        rows = conn.execute(
            select(sr.c.id, sr.c.org_unit_id, sr.c.nps)
            .select_from(sr.outerjoin(fc, fc.c.response_pk == sr.c.id))
            .where(fc.c.id.is_(None), sr.c.submitted_at >= since, sr.c.submitted_at <= now,
                   unhappy, reachable).order_by(sr.c.id)).all()
        if not rows:
            return []
        ancestry = _ancestry(conn)
        managers = _managers(conn)
        for r in rows:
            owner = owner_for(r.org_unit_id, ancestry, managers)
            values = dict(response_pk=r.id, org_unit_id=r.org_unit_id,
                          reason="detractor" if r.nps is not None and r.nps <= 6
                          else "csat_low",
                          owner_id=owner[0] if owner else None,
                          owner_email=owner[1] if owner else None, status="open",
                          opened_at=now, due_at=now + sla, updated_at=now)
            try:
                with conn.begin_nested():
                    opened.append(int(conn.execute(insert(fc).values(**values))
                                      .inserted_primary_key[0]))
            except IntegrityError:  # another process opened it first
                continue
    log.info("cases: %d opened", len(opened))
    return opened


# --------------------------------------------------------------------------- emails


@dataclass
class NoticeResult:
    """What one notification pass did."""

    sent: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)


def claim_notice(engine: Engine, email: str, key: str, case_ids: Sequence[int],
                 holder: str, *, now: dt.datetime) -> int | None:
    """Claim the email `key` to `email`: the notice id when this process may send it, None
    when it was sent, is being sent, or has used its attempts."""
    try:
        with engine.begin() as conn:
            return int(conn.execute(insert(cn).values(
                email=email, key=key, status="claimed", attempts=1, claimed_by=holder,
                claimed_at=now, cases=",".join(map(str, case_ids)))).inserted_primary_key[0])
    except IntegrityError:
        pass
    with engine.begin() as conn:
        row = conn.execute(select(cn.c.id, cn.c.status, cn.c.attempts).where(
            cn.c.email == email, cn.c.key == key)).first()
        if row is None or row.status != "failed" or row.attempts >= MAX_ATTEMPTS:
            return None
        won = conn.execute(update(cn).where(
            cn.c.id == row.id, cn.c.status == "failed", cn.c.attempts == row.attempts)
            .values(status="claimed", attempts=row.attempts + 1, claimed_by=holder,
                    claimed_at=now, cases=",".join(map(str, case_ids)))).rowcount
        return int(row.id) if won else None


def _case_rows(conn: Connection, ids: Sequence[int]) -> list:
    return conn.execute(
        select(fc.c.id, fc.c.reason, fc.c.due_at, ou.c.name.label("unit_name"), sr.c.nps,
               sr.c.csat, sr.c.comment, sr.c.customer_id, sr.c.submitted_at)
        .select_from(fc.join(sr, sr.c.id == fc.c.response_pk)
                     .join(ou, ou.c.id == fc.c.org_unit_id))
        .where(fc.c.id.in_(list(ids))).order_by(fc.c.id)).all()


def compose(settings: Settings, email: str, rows: list, *, digest: bool) -> EmailMessage:
    """The email telling `email` about the cases `rows` (one case, or a digest)."""
    msg = EmailMessage()
    msg["From"] = settings.smtp_from
    msg["To"] = email
    msg["Date"] = formatdate(localtime=True)
    msg["Message-ID"] = make_msgid(idstring=secrets.token_hex(8), domain="cx-dashboard")
    link = settings.cx_base_url.rstrip("/") + "/cases"
    if digest:
        msg["Subject"] = f"{len(rows)} new follow-up case{'s' if len(rows) != 1 else ''}"
    else:
        r = rows[0]
        msg["Subject"] = f"New follow-up case #{r.id} · {r.unit_name}"
    lines, items = [], []
    for r in rows:
        score = (f"NPS {r.nps}" if r.nps is not None else "") + (
            f"{' · ' if r.nps is not None else ''}CSAT {r.csat}" if r.csat is not None else "")
        said = f" “{' '.join(str(r.comment).split())[:300]}”" if r.comment else ""
        who = f" · customer {r.customer_id}" if r.customer_id else ""
        text = (f"#{r.id} {r.unit_name} · {score}{who} · due {r.due_at:%d %b %Y %H:%M}"
                f"{said}")
        lines.append(text)
        items.append(f"<li>{html.escape(text)}</li>")
    msg.set_content("Customers to follow up:\n\n" + "\n".join(lines)
                    + f"\n\nOpen your cases: {link}\n")
    msg.add_alternative(f"<p>Customers to follow up:</p><ul>{''.join(items)}</ul>"
                        f"<p><a href=\"{html.escape(link)}\">Open your cases</a></p>",
                        subtype="html")
    return msg


def notify_cases(engine: Engine, settings: Settings | None = None, *,
                 digest: bool | None = None, now: dt.datetime | None = None) -> NoticeResult:
    """Email owners about their cases not yet notified: one email per case, or (digest)
    one per owner and day. Each email is claimed before it is sent; a case is marked
    notified once its email went out."""
    settings = settings or get_settings()
    digest = settings.cx_case_digest if digest is None else digest
    now = now or _now()
    holder = holder_id()
    result = NoticeResult()
    with engine.connect() as conn:
        pending = conn.execute(select(fc.c.id, fc.c.owner_email).where(
            fc.c.notified_at.is_(None), fc.c.owner_email.is_not(None),
            fc.c.status != "resolved").order_by(fc.c.id)).all()
    groups: dict[tuple[str, str], list[int]] = {}
    for r in pending:
        key = f"digest:{now:%Y-%m-%d}" if digest else f"case:{r.id}"
        groups.setdefault((r.owner_email, key), []).append(int(r.id))
    for (email, key), ids in groups.items():
        notice = claim_notice(engine, email, key, ids, holder, now=now)
        label = f"{email} {key}"
        if notice is None:
            result.skipped.append(label)
            continue
        with engine.connect() as conn:
            rows = _case_rows(conn, ids)
        message = compose(settings, email, rows, digest=digest)
        with engine.begin() as conn:
            conn.execute(update(cn).where(cn.c.id == notice).values(
                status="sending", message_id=str(message["Message-ID"])))
        try:
            send(settings, message)
        except DeliveryUncertain as exc:
            with engine.begin() as conn:
                conn.execute(update(cn).where(cn.c.id == notice).values(error=str(exc)))
            result.failed.append(label)
            continue
        except Exception as exc:  # the row must say why; a later run retries it
            with engine.begin() as conn:
                conn.execute(update(cn).where(cn.c.id == notice).values(
                    status="failed", error=f"{type(exc).__name__}: {exc}"))
            result.failed.append(label)
            continue
        with engine.begin() as conn:
            conn.execute(update(cn).where(cn.c.id == notice).values(status="sent",
                                                                    sent_at=_now()))
            conn.execute(update(fc).where(fc.c.id.in_(ids)).values(notified_at=now))
        result.sent.append(label)
    return result


def cases_after_load(engine: Engine) -> None:
    """The ETL's step after a survey load: open cases, then (unless owners get a daily
    digest, sent by the scheduler) email them; failures logged, never raised into the load."""
    try:
        settings = get_settings()
        if open_cases(engine, settings) and settings.smtp_url and not settings.cx_case_digest:
            notify_cases(engine, settings)
    except Exception:  # a load must not fail because of follow-up
        log.exception("follow-up cases failed; retried after the next load")


__all__ = ["CaseError", "NoticeResult", "cases_after_load", "claim_notice", "notify_cases",
           "open_cases", "owner_for", "update_case"]
