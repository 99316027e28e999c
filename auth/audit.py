"""The audit log: sign-ins, exports, PDF renders and admin changes, with who and when."""

from __future__ import annotations

import datetime as dt

import pandas as pd
from sqlalchemy import Connection, Engine, func, insert, select

from queries import schema

log_t = schema.audit_log


def record(conn: Connection | Engine, action: str, *, actor: str | None = None,
           user_id: int | None = None, outcome: str = "ok", target: str | None = None,
           detail: str | None = None, ip: str | None = None) -> None:
    """Append one entry. Given an Engine, it is written in its own transaction (an audit
    entry for a refused request must survive the refusal)."""
    values = dict(at=dt.datetime.now(dt.UTC).replace(tzinfo=None), user_id=user_id,
                  actor=(actor or "")[:320] or None, action=action[:40], outcome=outcome,
                  target=(target or "")[:500] or None, detail=detail, ip=(ip or "")[:64] or None)
    if isinstance(conn, Engine):
        with conn.begin() as c:
            c.execute(insert(log_t).values(**values))
    else:
        conn.execute(insert(log_t).values(**values))


def entries(conn: Connection, *, action: str | None = None, actor: str | None = None,
            limit: int = 200) -> pd.DataFrame:
    """The newest entries first, optionally of one action or actor."""
    stmt = select(log_t.c.at, log_t.c.actor, log_t.c.action, log_t.c.outcome, log_t.c.target,
                  log_t.c.detail, log_t.c.ip).order_by(log_t.c.id.desc()).limit(limit)
    if action:
        stmt = stmt.where(log_t.c.action == action)
    if actor:
        stmt = stmt.where(log_t.c.actor == actor.strip().lower())
    return pd.DataFrame(conn.execute(stmt).mappings().all(),
                        columns=["at", "actor", "action", "outcome", "target", "detail", "ip"])


def recent_failures(conn: Connection, *, since: dt.datetime, actor: str | None = None,
                    ip: str | None = None) -> int:
    """Failed sign-ins since `since` for an email or from an address (rate limiting)."""
    stmt = select(func.count()).select_from(log_t).where(
        log_t.c.action == "sign_in", log_t.c.outcome == "failed", log_t.c.at >= since)
    if actor is not None:
        stmt = stmt.where(log_t.c.actor == actor.strip().lower())
    if ip is not None:
        stmt = stmt.where(log_t.c.ip == ip)
    return conn.execute(stmt).scalar_one()
