"""Subscriptions: which user gets which snapshot, at which address, on what paper, when.

A subscription belongs to a user (`auth.users`): its PDF is rendered, at send time, inside
that user's CURRENT scope. Its own scope is a part of the user's scope (NULL: all of it);
when the user's scope has shrunk since, the report shrinks with it, and when nothing of the
subscription's scope is left, or the user is disabled, or their scope cannot be resolved,
nothing is sent (`resolve` raises Refused; the delivery fails with that reason). Removing a
user removes their subscriptions (ON DELETE CASCADE).

The recipient address is the user's own, or an address whose domain an admin allowed
(`allow_domain`): nobody outside the user list gets a report otherwise.

Every change is written to the audit log (`auth.audit`).
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from auth import audit
from auth.users import User, UserError, get_user, get_user_by_email, user_scope
from queries import schema
from queries.cron import cron_trigger
from queries.scope import Scope, check_units, visible_units

log = logging.getLogger(__name__)

sub_t = schema.subscription
dlv = schema.delivery
ou = schema.org_unit
domains_t = schema.allowed_domain

DEFAULT_SCHEDULE = "0 7 1 * *"
PAPERS = ("A4", "Letter")


class Refused(PermissionError):
    """A subscription cannot be sent now: its user is gone or disabled, their scope cannot
    be resolved, nothing of its scope is left in theirs, or the recipient is not allowed."""


@dataclass(frozen=True)
class Subscription:
    """Who gets which snapshot, on what paper, when. `scope` None: the user's whole scope;
    `user_id` None: made before users existed and matched to none (refused when sent)."""

    id: int
    email: str
    scope: Scope | None
    name: str | None = None
    paper: str = "A4"
    landscape: bool = True
    schedule: str = DEFAULT_SCHEDULE
    active: bool = True
    created_at: dt.datetime | None = None
    user_id: int | None = None

    @property
    def scope_text(self) -> str:
        """'R-WEST,S09', or "user's scope"."""
        return ",".join(self.scope.units) if self.scope else "user's scope"


def _now() -> dt.datetime:
    return dt.datetime.now().replace(microsecond=0)


# ----------------------------------------------------------------------------- checks

_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_DOMAIN = re.compile(rf"^{_LABEL}(?:\.{_LABEL})+$")
_EMAIL = re.compile(rf"^[A-Za-z0-9.!#$%&'*+/=?^_`{{|}}~-]{{1,64}}@{_LABEL}(?:\.{_LABEL})+$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f\u2028\u2029\u0085]")


def check_email(value: str) -> str:
    """`value` as a plain address (domain lower-cased), or ValueError naming the field."""
    text = (value or "").strip()
    if len(text) > 320 or not _EMAIL.match(text) or ".." in text:
        raise ValueError(f"email: {value!r} is not an email address such as ada@example.com")
    local, _, domain = text.rpartition("@")
    return f"{local}@{domain.lower()}"


def check_name(value: str | None) -> str | None:
    """A display name for the To: header, or ValueError: line breaks and control characters
    would break the header (and every run of the subscription after it)."""
    name = (value or "").strip()
    if not name:
        return None
    if _CONTROL.search(name):
        raise ValueError("name: may not contain line breaks or control characters")
    if len(name) > 200:
        raise ValueError("name: at most 200 characters")
    return name


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


def check_domain(value: str) -> str:
    """A domain name, lower-cased ('@Example.com' is fine), or ValueError."""
    domain = (value or "").strip().lstrip("@").lower()
    if len(domain) > 253 or not _DOMAIN.match(domain):
        raise ValueError(f"domain: {value!r} is not a domain such as example.com")
    return domain


# ------------------------------------------------------------------------------ scopes


def _parents(conn: Connection) -> dict[str, str | None]:
    return dict(conn.execute(select(ou.c.id, ou.c.parent_id)).all())


def roots(conn: Connection) -> Scope:
    """The top of the org tree: the scope of someone who sees every unit."""
    return Scope.of(list(conn.execute(select(ou.c.id).where(ou.c.parent_id.is_(None)))
                         .scalars()))


def _minimal(units: Iterable[str], parents: dict[str, str | None]) -> Scope:
    """The units without those already below another one of them."""
    units = set(units)
    keep = []
    for u in units:
        p, seen = parents.get(u), set()
        while p is not None and p not in units and p not in seen:
            seen.add(p)
            p = parents.get(p)
        if p is None or p not in units:
            keep.append(u)
    return Scope.of(keep)


def within(conn: Connection, asked: Scope, held: Scope | None) -> Scope:
    """The part of `asked` that lies inside `held` (None: everything), as a scope: units of
    `asked` inside `held`, and units of `held` inside `asked` (a scope shrunk to a store of
    the region asked). Empty when they do not meet."""
    if held is None:
        return asked
    inside_held, inside_asked = visible_units(conn, held), visible_units(conn, asked)
    meet = [u for u in asked.units if u in inside_held]
    meet += [u for u in held.units if u in inside_asked]
    return _minimal(meet, _parents(conn))


def scope_name(conn: Connection, scope: Scope) -> str:
    """The scope's unit names, as people know them ('West'; 'West, North')."""
    names = dict(conn.execute(select(ou.c.id, ou.c.name).where(ou.c.id.in_(scope.units))).all())
    return ", ".join(names.get(u, u) for u in scope.units)


# ----------------------------------------------------------------------------- domains


def allowed_domains(conn: Connection) -> list[str]:
    """Recipient domains an admin allowed, sorted."""
    return list(conn.execute(select(domains_t.c.domain).order_by(domains_t.c.domain))
                .scalars())


def domain_allowed(conn: Connection, email: str) -> bool:
    """Whether `email`'s domain is one an admin allowed."""
    domain = email.rpartition("@")[2].lower()
    return conn.execute(select(domains_t.c.domain).where(domains_t.c.domain == domain)
                        ).first() is not None


def allow_domain(conn: Connection, domain: str, *, actor: str | None = None) -> str:
    """Allow recipients at `domain` (idempotent); the domain as stored."""
    domain = check_domain(domain)
    if domain not in allowed_domains(conn):
        conn.execute(insert(domains_t).values(domain=domain, added_by=actor,
                                              added_at=_now()))
        audit.record(conn, "domain_allow", actor=actor, target=domain)
    return domain


def disallow_domain(conn: Connection, domain: str, *, actor: str | None = None) -> bool:
    """Stop allowing `domain`; False when it was not allowed. Subscriptions to it stay but
    are refused when sent."""
    domain = check_domain(domain)
    gone = conn.execute(delete(domains_t).where(domains_t.c.domain == domain)).rowcount
    if gone:
        audit.record(conn, "domain_disallow", actor=actor, target=domain)
    return bool(gone)


# ------------------------------------------------------------------------ subscriptions


def _find_user(conn: Connection, user: int | str | User) -> User:
    if isinstance(user, User):
        found = get_user(conn, user.id)
    elif isinstance(user, int) or (isinstance(user, str) and user.isdigit()):
        found = get_user(conn, int(user))
    else:
        found = get_user_by_email(conn, user or "")
    if found is None:
        raise ValueError(f"user: no such user {user!r} (add them with `python -m dashboard "
                         "users add`)")
    if not found.active:
        raise ValueError(f"user: {found.email} is disabled")
    return found


def _check_recipient(conn: Connection, owner: User, email: str) -> None:
    if email.lower() == owner.email.lower():
        return
    if get_user_by_email(conn, email) is None and not domain_allowed(conn, email):
        domain = email.rpartition("@")[2]
        raise ValueError(f"email: {email} is not a user's address and the domain {domain} is "
                         "not allowed: send it to the user's own address, or have an admin "
                         f"allow {domain} for recipients")


def add_subscription(conn: Connection, *, user: int | str | User,
                     scope: Scope | str | Sequence[str] | None = None,
                     email: str | None = None, name: str | None = None, paper: str = "A4",
                     landscape: bool = True, schedule: str = DEFAULT_SCHEDULE,
                     actor: str | None = None, now: dt.datetime | None = None) -> int:
    """Subscribe `user` (id or email) to a monthly PDF rendered in their scope (inside the
    caller's transaction); its id.

    `scope` (default: the user's whole scope, following it when it changes) must lie inside
    the user's scope: an admin can subscribe people only to what they may see. `email`
    (default: the user's address) is another user's address or one at a domain an admin
    allowed. ValueError, with a message starting with the field's name, otherwise, and for
    a bad paper, cron line or name, or a duplicate. Written to the audit log as `actor`.
    """
    owner = _find_user(conn, user)
    try:
        held = user_scope(conn, owner.id)
    except UserError as exc:
        raise ValueError(f"user: {exc}") from None
    recipient = check_email(email) if email else owner.email
    _check_recipient(conn, owner, recipient)
    asked: Scope | None = None
    if scope is not None and not (isinstance(scope, Sequence | str) and not scope):
        asked = scope if isinstance(scope, Scope) else Scope.of(scope)
    if asked is not None and asked.units:
        try:
            check_units(conn, asked)
        except ValueError as exc:
            raise ValueError(f"scope: {exc}") from None
        inside = within(conn, asked, held)
        outside = sorted(set(asked.units) - set(inside.units))
        if outside:
            raise ValueError(f"scope: {', '.join(outside)} is outside {owner.email}'s scope "
                             f"({', '.join(held.units) if held else 'every unit'}): a "
                             "subscription shows only what its user may see")
    else:
        asked = None
    paper = check_paper(paper)
    schedule = check_schedule(schedule)
    name = check_name(name)
    scope_text = ",".join(asked.units) if asked else None
    if scope_text is not None and len(scope_text) > 500:
        raise ValueError("scope: too many org units for one subscription")
    same_scope = sub_t.c.scope.is_(None) if scope_text is None else sub_t.c.scope == scope_text
    existing = conn.execute(select(sub_t.c.id).where(sub_t.c.email == recipient,
                                                     same_scope)).scalar()
    what = scope_text or f"{owner.email}'s whole scope"
    if existing is not None:
        raise ValueError(f"email: {recipient} already has a subscription to {what} "
                         f"(id {existing})")
    try:  # the unique key decides if two admins add the same one at once
        new_id = conn.execute(insert(sub_t).values(
            email=recipient, name=name, scope=scope_text, user_id=owner.id, paper=paper,
            landscape=bool(landscape), schedule=schedule, active=True,
            created_at=now or _now())).inserted_primary_key[0]
    except IntegrityError:
        raise ValueError(f"email: {recipient} already has a subscription to {what}") from None
    audit.record(conn, "subscription_add", actor=actor, user_id=owner.id,
                 target=f"subscription {new_id}",
                 detail=f"{recipient} gets {what}, {paper}, '{schedule}'")
    log.info("subscription %d added: %s for user %s, scope %s, %s", new_id, recipient,
             owner.email, what, schedule)
    return int(new_id)


def assign_subscription(conn: Connection, subscription_id: int, user: int | str | User, *,
                        actor: str | None = None) -> Subscription:
    """Give a subscription (one made before users existed) to `user`, with the same checks
    as adding it: its scope inside theirs, its address theirs or at an allowed domain."""
    sub = get_subscription(conn, subscription_id)
    if sub is None:
        raise ValueError(f"subscription: no subscription with id {subscription_id}")
    owner = _find_user(conn, user)
    try:
        held = user_scope(conn, owner.id)
    except UserError as exc:
        raise ValueError(f"user: {exc}") from None
    _check_recipient(conn, owner, sub.email)
    if sub.scope is not None:
        outside = sorted(set(sub.scope.units) - set(within(conn, sub.scope, held).units))
        if outside:
            raise ValueError(f"scope: {', '.join(outside)} is outside {owner.email}'s scope")
    conn.execute(update(sub_t).where(sub_t.c.id == sub.id).values(user_id=owner.id))
    audit.record(conn, "subscription_assign", actor=actor, user_id=owner.id,
                 target=f"subscription {sub.id}", detail=f"now belongs to {owner.email}")
    found = get_subscription(conn, sub.id)
    assert found is not None
    return found


def remove_subscription(conn: Connection, subscription_id: int, *,
                        actor: str | None = None) -> bool:
    """Delete a subscription and its delivery history; False when there was none."""
    sub = get_subscription(conn, subscription_id)
    conn.execute(delete(dlv).where(dlv.c.subscription_id == subscription_id))
    gone = conn.execute(delete(sub_t).where(sub_t.c.id == subscription_id),
                        execution_options={"preserve_rowcount": True}).rowcount
    if gone and sub is not None:
        audit.record(conn, "subscription_remove", actor=actor, user_id=sub.user_id,
                     target=f"subscription {subscription_id}",
                     detail=f"{sub.email}, {sub.scope_text}")
        log.info("subscription %d removed", subscription_id)
    return bool(gone)


def _subscription(row: Any) -> Subscription:
    return Subscription(id=int(row.id), email=row.email,
                        scope=Scope.of(row.scope) if row.scope else None,
                        name=row.name, paper=row.paper, landscape=bool(row.landscape),
                        schedule=row.schedule, active=bool(row.active),
                        created_at=row.created_at, user_id=row.user_id)


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


# ---------------------------------------------------------------------------- at send


@dataclass(frozen=True)
class Resolved:
    """What a subscription may show now: the scope (the subscription's, inside its user's
    current scope), its name, and the user it is rendered for."""

    scope: Scope
    name: str
    user: User


def resolve(conn: Connection, subscription: Subscription) -> Resolved:
    """The scope to render `subscription` in, now; Refused saying why when there is none
    (fail closed: never the subscription's stored scope alone, never wider than the user's).
    """
    if subscription.user_id is None:
        raise Refused(f"refused: subscription {subscription.id} belongs to no user (it was "
                      "made before users existed and no user has its email); an admin can "
                      f"give it to one with `python -m dashboard subscriptions assign "
                      f"{subscription.id} --user EMAIL`")
    user = get_user(conn, subscription.user_id)
    try:
        held = user_scope(conn, subscription.user_id)
    except UserError as exc:
        raise Refused(f"refused, the user's scope cannot be resolved: {exc}") from None
    assert user is not None  # user_scope raised otherwise
    try:
        _check_recipient(conn, user, subscription.email)
    except ValueError as exc:
        raise Refused(f"refused: {str(exc).removeprefix('email: ')}") from None
    if subscription.scope is None:
        scope = held if held is not None else roots(conn)
    else:
        try:
            check_units(conn, subscription.scope)
        except ValueError as exc:
            raise Refused(f"refused, the subscription's scope cannot be resolved: {exc}"
                          ) from None
        scope = within(conn, subscription.scope, held)
    if not scope.units:
        raise Refused(f"refused: nothing of the subscription's scope "
                      f"({subscription.scope_text}) is inside {user.email}'s scope now "
                      f"({', '.join(held.units) if held else 'every unit'})")
    return Resolved(scope, scope_name(conn, scope), user)
