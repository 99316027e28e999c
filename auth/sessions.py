"""Server-side sessions: a random token in the cookie, its SHA-256 in `user_session`.

A session ends at its absolute expiry (CX_SESSION_HOURS after sign-in), after
CX_SESSION_IDLE_MINUTES without a request, at sign-out, when its user's password changes,
and when the user is disabled or removed. Keeping the state on the server is what makes
sign-out and removal take effect at once, in every worker.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from dataclasses import dataclass

from sqlalchemy import Connection, insert, select, update

from auth.users import User, _user, now
from queries import schema

s_t = schema.user_session
u_t = schema.app_user
# last_seen_at is written at most this often: a dashboard makes many requests a minute.
TOUCH_EVERY = dt.timedelta(seconds=60)


@dataclass(frozen=True)
class Session:
    """A live session: its user and the CSRF token bound to it."""

    id: str
    user: User
    csrf_token: str
    expires_at: dt.datetime


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def start_session(conn: Connection, user: User, *, hours: float, ip: str | None = None,
                  user_agent: str | None = None) -> tuple[str, Session]:
    """Open a session for `user`; returns (the cookie token, the session)."""
    token = secrets.token_urlsafe(32)
    csrf = secrets.token_urlsafe(32)
    stamp = now()
    expires = stamp + dt.timedelta(hours=hours)
    conn.execute(insert(s_t).values(
        id=_digest(token), user_id=user.id, csrf_token=csrf, created_at=stamp,
        last_seen_at=stamp, expires_at=expires, ip=(ip or "")[:64] or None,
        user_agent=(user_agent or "")[:300] or None))
    conn.execute(update(u_t).where(u_t.c.id == user.id).values(last_login_at=stamp))
    return token, Session(_digest(token), user, csrf, expires)


def load_session(conn: Connection, token: str | None, *, idle_minutes: float) -> Session | None:
    """The live session of a cookie token, or None when unknown, revoked, expired, idle too
    long, or its user is disabled."""
    if not token or not isinstance(token, str) or len(token) > 200:
        return None
    row = conn.execute(select(s_t, u_t).join(u_t, u_t.c.id == s_t.c.user_id)
                       .where(s_t.c.id == _digest(token))).first()
    if row is None:
        return None
    stamp = now()
    if (row.revoked_at is not None or row.expires_at <= stamp or not row.active
            or row.last_seen_at + dt.timedelta(minutes=idle_minutes) <= stamp):
        return None
    if stamp - row.last_seen_at >= TOUCH_EVERY:
        conn.execute(update(s_t).where(s_t.c.id == row.id).values(last_seen_at=stamp))
    user = _user(_UserRow(row))
    return Session(row.id, user, row.csrf_token, row.expires_at)


class _UserRow:
    """The user columns of a session-join row (the join has two `id` columns)."""

    def __init__(self, row: object) -> None:
        m = row._mapping  # type: ignore[attr-defined]
        for col in u_t.c:
            setattr(self, col.name, m[u_t.c[col.name]])


def end_session(conn: Connection, token: str | None) -> bool:
    """Revoke the session of a cookie token (sign-out); True when one was open."""
    if not token:
        return False
    return bool(conn.execute(update(s_t).where(s_t.c.id == _digest(token),
                                               s_t.c.revoked_at.is_(None))
                             .values(revoked_at=now())).rowcount)
