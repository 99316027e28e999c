"""`python -m dashboard users ...`: manage who may sign in.

    python -m dashboard users list
    python -m dashboard users add --email ada@example.com --role manager --unit R-WEST
    python -m dashboard users set-role ada@example.com executive
    python -m dashboard users set-scope ada@example.com --unit S01 --unit S02
    python -m dashboard users reset-password ada@example.com
    python -m dashboard users remove ada@example.com
    python -m dashboard users demo

Passwords are never taken as arguments (they would show in the process list and the shell
history): they are read from a prompt, from standard input with --password-stdin, or
generated and printed once.
"""

from __future__ import annotations

import argparse
import getpass
import secrets
import sys
from collections.abc import Callable

from sqlalchemy import Engine, select

from auth import audit
from auth.passwords import PasswordPolicyError
from auth.users import (
    ROLES,
    UserError,
    add_user,
    list_users,
    remove_user,
    set_active,
    set_password,
    set_role,
    set_scope,
)
from queries import schema


def _actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except Exception:  # no login name in some containers
        return "cli"


def new_password() -> str:
    """A random password that satisfies the policy (printed once, never stored in clear)."""
    return secrets.token_urlsafe(12)


def _password(args: argparse.Namespace) -> tuple[str, bool]:
    """(password, generated?)."""
    if getattr(args, "password_stdin", False):
        return sys.stdin.readline().rstrip("\n"), False
    if getattr(args, "generate", False) or not sys.stdin.isatty():
        return new_password(), True
    first = getpass.getpass("New password: ")
    if first != getpass.getpass("Again: "):
        raise UserError("the two passwords differ")
    return first, False


def _scope_words(units: tuple[str, ...], role: str) -> str:
    return ", ".join(units) if role == "manager" else "every unit"


def cmd_list(engine: Engine, args: argparse.Namespace) -> int:
    with engine.connect() as conn:
        users = list_users(conn)
    if not users:
        print("no users yet: add one with `python -m dashboard users add` "
              "(or `python -m dashboard users demo`)")
        return 0
    print(f"{'email':32} {'role':10} {'sign-in':8} {'active':6} {'last sign-in':16} scope")
    for u in users:
        last = f"{u.last_login_at:%Y-%m-%d %H:%M}" if u.last_login_at else "-"
        print(f"{u.email:32} {u.role:10} {u.auth_source:8} {'yes' if u.active else 'no':6} "
              f"{last:16} {_scope_words(u.scope_units, u.role)}")
    return 0


def cmd_add(engine: Engine, args: argparse.Namespace) -> int:
    password, generated = (None, False) if args.sso else _password(args)
    with engine.begin() as conn:
        user = add_user(conn, email=args.email, role=args.role, name=args.name,
                        scope=args.unit, password=password,
                        auth_source="oidc" if args.sso else "local")
        audit.record(conn, "user_add", actor=_actor(), target=user.email,
                     detail=f"role {user.role}; scope {_scope_words(user.scope_units, user.role)}")
    print(f"user {user.email} added: {user.role}, sees "
          f"{_scope_words(user.scope_units, user.role)}")
    if generated:
        print(f"password (shown once): {password}")
    return 0


def cmd_set_role(engine: Engine, args: argparse.Namespace) -> int:
    with engine.begin() as conn:
        user = set_role(conn, args.email, args.role, args.unit)
        audit.record(conn, "user_role", actor=_actor(), target=user.email,
                     detail=f"role {user.role}; scope {_scope_words(user.scope_units, user.role)}")
    print(f"{user.email} is now {user.role}, sees {_scope_words(user.scope_units, user.role)}")
    return 0


def cmd_set_scope(engine: Engine, args: argparse.Namespace) -> int:
    with engine.begin() as conn:
        user = set_scope(conn, args.email, args.unit)
        audit.record(conn, "user_scope", actor=_actor(), target=user.email,
                     detail=f"scope {', '.join(user.scope_units)}")
    print(f"{user.email} now sees {', '.join(user.scope_units)} (and everything below)")
    return 0


def cmd_reset_password(engine: Engine, args: argparse.Namespace) -> int:
    password, generated = _password(args)
    with engine.begin() as conn:
        user = set_password(conn, args.email, password)
        audit.record(conn, "password_reset", actor=_actor(), target=user.email)
    print(f"password of {user.email} reset; their open sessions are ended")
    if generated:
        print(f"new password (shown once): {password}")
    return 0


def cmd_enable(engine: Engine, args: argparse.Namespace) -> int:
    with engine.begin() as conn:
        user = set_active(conn, args.email, args.action == "enable")
        audit.record(conn, f"user_{args.action}", actor=_actor(), target=user.email)
    print(f"{user.email} {'enabled' if user.active else 'disabled (sessions ended)'}")
    return 0


def cmd_remove(engine: Engine, args: argparse.Namespace) -> int:
    with engine.begin() as conn:
        user = remove_user(conn, args.email)
        audit.record(conn, "user_remove", actor=_actor(), target=user.email)
    print(f"user {user.email} removed (sessions and subscriptions with them)")
    return 0


def demo_users(engine: Engine) -> list[tuple[str, str, str, str]]:
    """On a database without users: an admin, an executive, a region manager and a store
    manager with random passwords. Returns (email, role, scope, password) of those made."""
    with engine.begin() as conn:
        if list_users(conn):
            return []
        ou = schema.org_unit
        region = conn.execute(select(ou.c.id).where(ou.c.kind == "region")
                              .order_by(ou.c.id)).scalars().first()
        store = conn.execute(select(ou.c.id).where(ou.c.kind.in_(("store", "team")))
                             .order_by(ou.c.id)).scalars().first()
        wanted = [("admin@example.com", "Demo Admin", "admin", None),
                  ("ceo@example.com", "Demo Executive", "executive", None)]
        if region:
            wanted.append(("region.manager@example.com", "Demo Region Manager", "manager",
                           region))
        if store:
            wanted.append(("store.manager@example.com", "Demo Store Manager", "manager",
                           store))
        made = []
        for email, name, role, unit in wanted:
            password = new_password()
            add_user(conn, email=email, name=name, role=role, scope=unit, password=password)
            audit.record(conn, "user_add", actor="demo", target=email, detail=f"role {role}")
            made.append((email, role, unit or "every unit", password))
        return made


def cmd_demo(engine: Engine, args: argparse.Namespace) -> int:
    made = demo_users(engine)
    if not made:
        print("users exist already: no demo users made (`python -m dashboard users list`)")
        return 0
    print("Demo users (passwords shown once; reset with "
          "`python -m dashboard users reset-password EMAIL`):")
    for email, role, scope, password in made:
        print(f"  {email:30} {role:10} {scope:10} password: {password}")
    return 0


def add_commands(sub: argparse._SubParsersAction,
                 engine: Callable[[], Engine]) -> None:
    """Register `users ...` on the dashboard command's subparsers."""
    users = sub.add_parser("users", help="who may sign in, their role and scope")
    act = users.add_subparsers(dest="action", required=True)

    def run(fn: Callable[[Engine, argparse.Namespace], int]):
        return lambda args: _guarded(fn, engine, args)

    act.add_parser("list", help="list users").set_defaults(func=run(cmd_list))
    add = act.add_parser("add", help="add a user (password prompted, or generated)")
    add.add_argument("--email", required=True)
    add.add_argument("--role", required=True, choices=ROLES)
    add.add_argument("--name")
    add.add_argument("--unit", action="append", metavar="ID",
                     help="a manager's org unit (repeat for several)")
    add.add_argument("--password-stdin", action="store_true",
                     help="read the password from standard input")
    add.add_argument("--generate", action="store_true", help="generate and print a password")
    add.add_argument("--sso", action="store_true",
                     help="signs in through single sign-on only (no password)")
    add.set_defaults(func=run(cmd_add))
    role = act.add_parser("set-role", help="change a user's role")
    role.add_argument("email")
    role.add_argument("role", choices=ROLES)
    role.add_argument("--unit", action="append", metavar="ID", help="a manager's org unit")
    role.set_defaults(func=run(cmd_set_role))
    scope = act.add_parser("set-scope", help="change a manager's org units")
    scope.add_argument("email")
    scope.add_argument("--unit", action="append", metavar="ID", required=True)
    scope.set_defaults(func=run(cmd_set_scope))
    reset = act.add_parser("reset-password", help="set a new password (ends their sessions)")
    reset.add_argument("email")
    reset.add_argument("--password-stdin", action="store_true")
    reset.add_argument("--generate", action="store_true")
    reset.set_defaults(func=run(cmd_reset_password))
    for name in ("enable", "disable"):
        p = act.add_parser(name, help=f"{name} a user")
        p.add_argument("email")
        p.set_defaults(func=run(cmd_enable))
    remove = act.add_parser("remove", help="delete a user, their sessions and subscriptions")
    remove.add_argument("email")
    remove.set_defaults(func=run(cmd_remove))
    act.add_parser("demo", help="make demo users on a database without any").set_defaults(
        func=run(cmd_demo))


def _guarded(fn: Callable[[Engine, argparse.Namespace], int],
             engine: Callable[[], Engine], args: argparse.Namespace) -> int:
    try:
        return fn(engine(), args)
    except (UserError, PasswordPolicyError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

