"""Command line of the dashboard: PDF snapshots and their monthly emails (see `--help`).

    python -m dashboard snapshot --period 2026-10 --unit R-WEST --out west.pdf
    python -m dashboard subscriptions add --user ada@example.com [--unit R-WEST]
    python -m dashboard subscriptions list
    python -m dashboard subscriptions remove 3
    python -m dashboard subscriptions assign 3 --user ada@example.com
    python -m dashboard subscriptions allow-domain partner.example|disallow-domain D|domains
    python -m dashboard send-monthly [--period 2026-10]
    python -m dashboard deliveries [--period 2026-10]
    python -m dashboard deliveries retry 7
    python -m dashboard users add|list|set-role|set-scope|reset-password|remove|demo

Exit codes: 0 done, 1 something failed (a render, a send), 2 bad input or configuration,
or a database that cannot be reached.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from queries.db import DatabaseUnavailable, SchemaError
from queries.settings import SettingsError, get_settings


def _engine():
    from queries.db import check_schema, make_engine

    engine = make_engine(get_settings().database_url)
    check_schema(engine)
    return engine


def _text(value: object, width: int | None = None) -> str:
    import pandas as pd

    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return "-"
    text = " ".join(str(value).split())
    return text if width is None or len(text) <= width else text[: width - 1] + "…"


def _actor() -> str:
    """Who acts, in the audit log: the command line and the OS user running it."""
    import getpass

    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"


class _LocalRenderer:
    """The dashboard on a loopback port of this process and the bounded renderer on it: the
    CLI renders without a running web process."""

    def __init__(self, settings) -> None:
        self.settings = settings
        self.server = None
        self.queue = None

    def __enter__(self):
        from dashboard.app import create_app
        from reports.renderer import LoopbackServer, RenderQueue

        # Built on this thread, not the browser's: Dash keeps page state in context variables
        # of the thread that creates the app.
        self.server = LoopbackServer(create_app(self.settings).server)
        self.queue = RenderQueue(self.settings, base_url=self.server.url, ready_timeout=90,
                                 idle_seconds=0)
        return self.queue

    def __exit__(self, *exc: object) -> None:
        if self.queue is not None:
            self.queue.close()
        if self.server is not None:
            self.server.close()


def _when(value: object) -> str:
    import pandas as pd

    return "-" if value is None or pd.isna(value) else f"{pd.Timestamp(value):%Y-%m-%d %H:%M}"


# ----------------------------------------------------------------------------- snapshot


def cmd_snapshot(args: argparse.Namespace) -> int:
    from sqlalchemy import select

    from queries import schema
    from queries.kpis import latest_full_month
    from queries.periods import Month
    from queries.scope import Scope, check_units
    from reports.renderer import SnapshotError, render_audited
    from reports.subscriptions import scope_name
    from reports.token import ReportRequest

    settings = get_settings()
    engine = _engine()
    with engine.connect() as conn:
        period = Month.parse(args.period) if args.period else latest_full_month(conn)
        if period is None:
            print("error: the reporting database holds no data yet", file=sys.stderr)
            return 2
        units = args.unit
        if not units:
            ou = schema.org_unit
            units = conn.execute(select(ou.c.id).where(ou.c.parent_id.is_(None))
                                 .order_by(ou.c.id)).scalars().all()
            if not units:
                print("error: the reporting database holds no org units", file=sys.stderr)
                return 2
        scope = Scope.of(list(units))
        try:
            check_units(conn, scope)
        except ValueError as exc:
            raise ValueError(f"--unit: {exc}") from None
        label = f"Scope: {scope_name(conn, scope)}"
    out = Path(args.out)
    if not out.parent.exists():
        raise ValueError(f"--out: folder {out.parent} does not exist")
    request = ReportRequest(scope=scope, period=period, paper=args.paper,
                            landscape=not args.portrait, label=label)
    try:
        with _LocalRenderer(settings) as renderer:
            pdf = render_audited(engine, renderer, request, actor=_actor(),
                                 target=f"snapshot {period} to {out.name}")
    except SnapshotError as exc:
        print(f"error: the snapshot could not be made: {exc}", file=sys.stderr)
        return 1
    out.write_bytes(pdf)
    print(f"wrote {out} ({len(pdf):,} bytes): {period.label}, {', '.join(scope.units)}, "
          f"{args.paper} {'portrait' if args.portrait else 'landscape'}")
    return 0


# ------------------------------------------------------------------------ subscriptions


def cmd_subscriptions_add(args: argparse.Namespace) -> int:
    from reports.subscriptions import add_subscription, get_subscription

    with _engine().begin() as conn:
        new_id = add_subscription(conn, user=args.user, email=args.email, scope=args.unit,
                                  name=args.name, paper=args.paper, landscape=not args.portrait,
                                  schedule=args.schedule, actor=_actor())
        sub = get_subscription(conn, new_id)
    assert sub is not None
    what = ", ".join(sub.scope.units) if sub.scope else "the user's whole scope"
    print(f"subscription {sub.id} added: {sub.email} gets {what} "
          f"({sub.paper} {'landscape' if sub.landscape else 'portrait'}) at '{sub.schedule}' "
          f"({get_settings().cx_timezone})")
    return 0


def cmd_subscriptions_assign(args: argparse.Namespace) -> int:
    from auth.users import get_user
    from reports.subscriptions import assign_subscription

    with _engine().begin() as conn:
        sub = assign_subscription(conn, args.id, args.user, actor=_actor())
        owner = get_user(conn, sub.user_id) if sub.user_id else None
    print(f"subscription {sub.id} now belongs to {owner.email if owner else '?'}")
    return 0


def cmd_domains(args: argparse.Namespace) -> int:
    from reports.subscriptions import allow_domain, allowed_domains, disallow_domain

    with _engine().begin() as conn:
        if args.action == "allow-domain":
            print(f"recipients at {allow_domain(conn, args.domain, actor=_actor())} are allowed")
        elif args.action == "disallow-domain":
            if not disallow_domain(conn, args.domain, actor=_actor()):
                print(f"error: {args.domain} was not allowed", file=sys.stderr)
                return 2
            print(f"recipients at {args.domain} are no longer allowed")
        else:
            domains = allowed_domains(conn)
            print("\n".join(domains) if domains else
                  "no allowed domains: subscriptions go to their users' own addresses")
    return 0


def _next_run(schedule: str, tz: str) -> str:
    import datetime as dt
    from zoneinfo import ZoneInfo

    from queries.cron import cron_trigger

    zone = ZoneInfo(tz)
    fire = cron_trigger(schedule, zone).get_next_fire_time(None, dt.datetime.now(zone))
    return f"{fire:%Y-%m-%d %H:%M}" if fire else "-"


def cmd_subscriptions_list(args: argparse.Namespace) -> int:
    from queries.deliveries import subscriptions

    with _engine().connect() as conn:
        frame = subscriptions(conn)
    if frame.empty:
        print("no subscriptions: add one with `python -m dashboard subscriptions add "
              "--user EMAIL`")
        return 0
    tz = get_settings().cx_timezone
    print(f"{'id':>4}  {'user':<28}{'email':<32}{'name':<20}{'scope':<22}{'paper':<7}"
          f"{'orient.':<10}{'schedule':<16}{'next run':<17}")
    for r in frame.itertuples():
        owner = _text(r.user_email, 27)
        owner = "(none: refused)" if owner == "-" else owner
        scope = _text(r.scope, 21)
        scope = "user scope" if scope == "-" else scope
        print(f"{r.id:>4}  {owner:<28}{_text(r.email, 31):<32}{_text(r.name, 19):<20}"
              f"{scope:<22}{r.paper:<7}"
              f"{'landscape' if r.landscape else 'portrait':<10}{r.schedule:<16}"
              f"{_next_run(r.schedule, tz) if r.active else 'inactive':<17}")
    return 0


def cmd_subscriptions_remove(args: argparse.Namespace) -> int:
    from reports.subscriptions import remove_subscription

    with _engine().begin() as conn:
        removed = remove_subscription(conn, args.id, actor=_actor())
    if not removed:
        print(f"error: no subscription with id {args.id}", file=sys.stderr)
        return 2
    print(f"subscription {args.id} removed")
    return 0


# ----------------------------------------------------------------------------- delivery


def _print_results(results) -> bool:
    ok = True
    for r in results:
        line = f"{r.status:<10}{r.email:<32}{r.period}  attempts {r.attempts}"
        if r.error:
            line += f"  {_text(r.error, 300)}"
        print(line)
        ok &= r.status in ("sent", "skipped")
    return ok


def cmd_send_monthly(args: argparse.Namespace) -> int:
    from reports.delivery import deliver_monthly

    results = deliver_monthly(_engine(), get_settings(), period=args.period,
                              renderer_factory=_LocalRenderer)
    if not results:
        print("no active subscriptions")
        return 0
    return 0 if _print_results(results) else 1


def cmd_deliveries(args: argparse.Namespace) -> int:
    from queries.deliveries import deliveries
    from queries.periods import Month

    period = str(Month.parse(args.period)) if args.period else None
    with _engine().connect() as conn:
        frame = deliveries(conn, period=period, limit=args.limit)
    if frame.empty:
        print("no deliveries" + (f" for {period}" if period else ""))
        return 0
    print(f"{'id':>5}  {'period':<9}{'recipient':<32}{'scope':<16}{'status':<9}{'tries':>5}  "
          f"{'sent at':<17}error")
    for r in frame.itertuples():
        print(f"{r.id:>5}  {r.period:<9}{_text(r.recipient, 31):<32}{_text(r.scope, 15):<16}"
              f"{r.status:<9}{r.attempts:>5}  {_when(r.sent_at):<17}"
              f"{'' if r.error is None else _text(r.error, 200)}")
    return 0


def cmd_deliveries_retry(args: argparse.Namespace) -> int:
    from reports.delivery import deliver_monthly, reset_delivery

    engine = _engine()
    subscription_id, period = reset_delivery(engine, args.id, force=args.force)
    print(f"delivery {args.id} reset (subscription {subscription_id}, {period})")
    if args.no_send:
        print("it will be sent by the scheduler's next hourly retry")
        return 0
    results = deliver_monthly(engine, get_settings(), period=period,
                              subscription_ids=[subscription_id],
                              renderer_factory=_LocalRenderer)
    return 0 if _print_results(results) else 1


# --------------------------------------------------------------------------------- main


def _period(text: str) -> str:
    from queries.periods import Month

    try:
        return str(Month.parse(text))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _schedule(text: str) -> str:
    from reports.subscriptions import check_schedule

    try:
        return check_schedule(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exits 2 on bad input, as argparse does)."""
    parser = argparse.ArgumentParser(prog="python -m dashboard", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-v", "--verbose", action="store_true", help="log every step")
    sub = parser.add_subparsers(dest="command", required=True)

    snap = sub.add_parser("snapshot", help="render one PDF snapshot of the report")
    snap.add_argument("--period", type=_period, help="YYYY-MM (default: latest full month)")
    snap.add_argument("--unit", action="append", metavar="ID",
                      help="org unit of the scope (repeat for several; default: the company)")
    snap.add_argument("--paper", choices=["A4", "Letter"], default="A4")
    snap.add_argument("--portrait", action="store_true", help="portrait (default landscape)")
    snap.add_argument("--out", required=True, metavar="FILE.pdf")
    snap.set_defaults(func=cmd_snapshot)

    subs = sub.add_parser("subscriptions", help="who gets the monthly snapshot email")
    subs_sub = subs.add_subparsers(dest="action", required=True)
    add = subs_sub.add_parser("add", help="subscribe a user (to their scope or part of it)")
    add.add_argument("--user", required=True, metavar="EMAIL|ID",
                     help="the user whose current scope the PDF is rendered in")
    add.add_argument("--email", help="send to this address instead of the user's own (it "
                                     "must be at an allowed domain)")
    add.add_argument("--unit", action="append", metavar="ID",
                     help="org unit inside the user's scope (repeat for several; default: "
                          "the user's whole scope, following it when it changes)")
    add.add_argument("--name", help="name on the email's To: line")
    add.add_argument("--paper", choices=["A4", "Letter"], default="A4")
    add.add_argument("--portrait", action="store_true", help="portrait (default landscape)")
    add.add_argument("--schedule", type=_schedule, default="0 7 1 * *",
                     help="cron line in CX_TIMEZONE (default '0 7 1 * *': the 1st, 07:00)")
    add.set_defaults(func=cmd_subscriptions_add)
    subs_sub.add_parser("list", help="list subscriptions").set_defaults(
        func=cmd_subscriptions_list)
    remove = subs_sub.add_parser("remove", help="remove a subscription and its history")
    remove.add_argument("id", type=int)
    remove.set_defaults(func=cmd_subscriptions_remove)
    assign = subs_sub.add_parser("assign", help="give a subscription without a user to one")
    assign.add_argument("id", type=int)
    assign.add_argument("--user", required=True, metavar="EMAIL|ID")
    assign.set_defaults(func=cmd_subscriptions_assign)
    subs_sub.add_parser("domains", help="list the allowed recipient domains").set_defaults(
        func=cmd_domains)
    for action, words in (("allow-domain", "allow recipients at a domain"),
                          ("disallow-domain", "stop allowing a domain")):
        one = subs_sub.add_parser(action, help=words)
        one.add_argument("domain")
        one.set_defaults(func=cmd_domains)

    send = sub.add_parser("send-monthly", help="send the monthly snapshots now (never twice)")
    send.add_argument("--period", type=_period,
                      help="YYYY-MM (default: last full month in CX_TIMEZONE)")
    send.set_defaults(func=cmd_send_monthly)

    dl = sub.add_parser("deliveries", help="latest deliveries (retry one: deliveries retry ID)")
    dl.add_argument("--period", type=_period)
    dl.add_argument("--limit", type=int, default=100)
    dl.set_defaults(func=cmd_deliveries)
    dl_sub = dl.add_subparsers(dest="action")
    retry = dl_sub.add_parser("retry", help="reset a failed or interrupted delivery and send it")
    retry.add_argument("id", type=int)
    retry.add_argument("--force", action="store_true", help="even if it was sent")
    retry.add_argument("--no-send", action="store_true",
                       help="only reset it (the scheduler's hourly job sends it)")
    retry.set_defaults(func=cmd_deliveries_retry)

    from auth.cli import add_commands

    add_commands(sub, _engine)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit code."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    if not args.verbose:  # the renderer's private server would log every asset request
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
    try:
        return args.func(args)
    except (SettingsError, SchemaError, DatabaseUnavailable, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
