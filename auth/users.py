"""Users, their role and their scope.

- executive: every org unit (read only);
- manager: a set of org units and everything below them;
- admin: every org unit, plus users, subscriptions and sources.

A user's scope is what `queries.scope` applies in SQL to every read made for them.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, delete, func, insert, select, update

from auth.passwords import check_policy, hash_password
from queries import schema
from queries.scope import Scope, check_units

ROLES = ("executive", "manager", "admin")
AUTH_SOURCES = ("local", "oidc", "header")
EMAIL = re.compile(r"^[^@\s<>,;\"']+@[^@\s<>,;\"']+\.[^@\s<>,;\"']+$")
_NAME_BAD = re.compile(r"[\x00-\x1f\x7f<>]")
users_t = schema.app_user


class UserError(ValueError):
    """A user cannot be added or changed as asked; the message says why."""


@dataclass(frozen=True)
class User:
    """One person who may sign in."""

    id: int
    email: str
    name: str | None
    role: str
    scope_units: tuple[str, ...]
    auth_source: str
    active: bool
    has_password: bool
    last_login_at: dt.datetime | None = None

    @property
    def scope(self) -> Scope | None:
        """The org units this user may see; None means every unit."""
        if self.role == "manager":
            return Scope(self.scope_units)
        return None

    @property
    def is_admin(self) -> bool:
        """Admins manage users, subscriptions and sources."""
        return self.role == "admin"

    @property
    def display(self) -> str:
        """'Name <email>' or the email."""
        return f"{self.name} <{self.email}>" if self.name else self.email


def now() -> dt.datetime:
    """Naive UTC now: every auth timestamp is UTC."""
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def check_email(value: str) -> str:
    """The email lower-cased and stripped, or UserError."""
    email = (value or "").strip().lower()
    if not EMAIL.match(email) or len(email) > 320:
        raise UserError(f"not an email address: {value!r}")
    return email


def check_name(value: str | None) -> str | None:
    """A display name without control characters or markup, or UserError."""
    if value is None or not value.strip():
        return None
    if _NAME_BAD.search(value) or len(value) > 200:
        raise UserError("a name may not contain line breaks, control characters, < or >, "
                        "and has at most 200 characters")
    return value.strip()


def check_role(value: str) -> str:
    """One of ROLES, or UserError."""
    role = (value or "").strip().lower()
    if role not in ROLES:
        raise UserError(f"unknown role {value!r}: expected one of {', '.join(ROLES)}")
    return role


def _scope_text(conn: Connection, role: str, scope: Scope | str | list[str] | None) -> str | None:
    if role != "manager":
        if scope:
            raise UserError(f"a {role} sees every unit: give a scope to managers only")
        return None
    units = Scope.of(scope or [])
    if not units.units:
        raise UserError("a manager needs a scope: one or more org unit ids")
    try:
        check_units(conn, units)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    return ",".join(units.units)


def _user(row: Any) -> User:
    scope = tuple(u for u in (row.scope or "").split(",") if u)
    return User(id=row.id, email=row.email, name=row.name, role=row.role, scope_units=scope,
                auth_source=row.auth_source, active=bool(row.active),
                has_password=row.password_hash is not None, last_login_at=row.last_login_at)


def add_user(conn: Connection, *, email: str, role: str, name: str | None = None,
             scope: Scope | str | list[str] | None = None, password: str | None = None,
             auth_source: str = "local") -> User:
    """Create a user; UserError when the email exists, the role or scope is wrong, or the
    password is too weak."""
    email = check_email(email)
    role = check_role(role)
    if auth_source not in AUTH_SOURCES:
        raise UserError(f"unknown auth source {auth_source!r}")
    if get_user_by_email(conn, email) is not None:
        raise UserError(f"a user with email {email} exists already")
    if password is not None:
        check_policy(password, email=email)
    stamp = now()
    new_id = conn.execute(insert(users_t).values(
        email=email, name=check_name(name), role=role,
        scope=_scope_text(conn, role, scope),
        password_hash=hash_password(password) if password is not None else None,
        auth_source=auth_source, active=True, created_at=stamp, updated_at=stamp,
    ).returning(users_t.c.id)).scalar_one()
    user = get_user(conn, new_id)
    assert user is not None
    return user


def get_user(conn: Connection, user_id: int) -> User | None:
    """The user with this id, or None."""
    row = conn.execute(select(users_t).where(users_t.c.id == user_id)).first()
    return _user(row) if row else None


def get_user_by_email(conn: Connection, email: str) -> User | None:
    """The user with this email (any case), or None."""
    row = conn.execute(select(users_t).where(
        users_t.c.email == (email or "").strip().lower())).first()
    return _user(row) if row else None


def password_hash_of(conn: Connection, email: str) -> tuple[User | None, str | None]:
    """(user, stored hash) for a sign-in check; (None, None) for an unknown email."""
    row = conn.execute(select(users_t).where(
        users_t.c.email == (email or "").strip().lower())).first()
    return (_user(row), row.password_hash) if row else (None, None)


def list_users(conn: Connection) -> list[User]:
    """Every user, by email."""
    return [_user(r) for r in conn.execute(select(users_t).order_by(users_t.c.email))]


def _find(conn: Connection, who: int | str) -> User:
    user = get_user(conn, who) if isinstance(who, int) else get_user_by_email(conn, who)
    if user is None:
        raise UserError(f"no such user: {who}")
    return user


def set_role(conn: Connection, who: int | str, role: str,
             scope: Scope | str | list[str] | None = None) -> User:
    """Change a user's role (a manager needs a scope; others must not have one)."""
    user = _find(conn, who)
    role = check_role(role)
    if role == "manager" and scope is None:
        scope = list(user.scope_units)
    conn.execute(update(users_t).where(users_t.c.id == user.id).values(
        role=role, scope=_scope_text(conn, role, scope), updated_at=now()))
    return _find(conn, user.id)


def set_scope(conn: Connection, who: int | str, scope: Scope | str | list[str]) -> User:
    """Change a manager's org units."""
    user = _find(conn, who)
    if user.role != "manager":
        raise UserError(f"{user.email} is a {user.role} and sees every unit: only managers "
                        "have a scope (change the role to manager first)")
    conn.execute(update(users_t).where(users_t.c.id == user.id).values(
        scope=_scope_text(conn, "manager", scope), updated_at=now()))
    return _find(conn, user.id)


def set_password(conn: Connection, who: int | str, password: str) -> User:
    """Set a new password (an admin's reset, or the user's own change) and end the user's
    sessions, so an old cookie stops working."""
    user = _find(conn, who)
    check_policy(password, email=user.email)
    conn.execute(update(users_t).where(users_t.c.id == user.id).values(
        password_hash=hash_password(password), updated_at=now()))
    end_sessions(conn, user.id)
    return _find(conn, user.id)


def set_active(conn: Connection, who: int | str, active: bool) -> User:
    """Enable or disable a user; disabling ends their sessions."""
    user = _find(conn, who)
    conn.execute(update(users_t).where(users_t.c.id == user.id).values(
        active=active, updated_at=now()))
    if not active:
        end_sessions(conn, user.id)
    return _find(conn, user.id)


def remove_user(conn: Connection, who: int | str) -> User:
    """Delete a user; their sessions go with them (and their subscriptions, by cascade)."""
    user = _find(conn, who)
    if user.is_admin:
        admins = conn.execute(select(func.count()).select_from(users_t).where(
            users_t.c.role == "admin", users_t.c.active.is_(True))).scalar_one()
        if admins <= 1:
            raise UserError("this is the last admin: make another admin first")
    conn.execute(delete(users_t).where(users_t.c.id == user.id))
    return user


def end_sessions(conn: Connection, user_id: int) -> int:
    """Revoke every open session of a user; returns how many."""
    s = schema.user_session
    return conn.execute(update(s).where(s.c.user_id == user_id, s.c.revoked_at.is_(None))
                        .values(revoked_at=now())).rowcount or 0


def user_scope(conn: Connection, user_id: int) -> Scope | None:
    """The current scope of an active user, for a report rendered on their behalf.

    Raises UserError when the user is gone or disabled, or when a manager's scope no longer
    resolves to existing units: a report must then fail closed, not widen.
    """
    user = get_user(conn, user_id)
    if user is None or not user.active:
        raise UserError(f"user {user_id} does not exist or is disabled")
    scope = user.scope
    if scope is not None:
        if not scope.units:
            raise UserError(f"{user.email} has an empty scope")
        try:
            check_units(conn, scope)
        except ValueError as exc:
            raise UserError(f"{user.email}'s scope cannot be resolved: {exc}") from None
    return scope
