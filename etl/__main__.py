"""Command line of the ETL process: `python -m etl COMMAND` (see `--help`)."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from etl.config import ConfigError, load_config
from queries.db import DatabaseUnavailable, SchemaError
from queries.settings import SettingsError, get_settings


def _engine(check: bool = True):
    from queries.db import check_schema, ensure_reachable, make_engine

    engine = make_engine(get_settings().database_url)
    if check:
        check_schema(engine)  # anything but migrating needs the schema at head
    else:
        ensure_reachable(engine)
    return engine


def cmd_migrate(args: argparse.Namespace) -> int:
    """Create or upgrade the reporting schema."""
    from etl.migrate import upgrade

    upgrade(_engine(check=False))
    print("database migrated to head")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """Write the demo company's source files and config."""
    from etl.demo import generate

    out = Path(args.out) if args.out else get_settings().cx_sources.parent
    summary = generate(out, seed=args.seed, customers=args.customers, months=args.months,
                       end=args.end, regions=args.regions, stores=args.stores,
                       responses_per_member=args.responses_per_member,
                       transactions_per_member=args.transactions_per_member)
    print(
        f"demo sources written to {summary.out_dir} ({summary.first_month} .. "
        f"{summary.last_month}): {summary.org_units} org units, {summary.members} members, "
        f"{summary.transactions} transactions, {summary.survey_responses} survey responses, "
        f"{summary.engagement_responses} engagement responses"
    )
    print(f"config: {summary.out_dir / 'sources.toml'}")
    return 0


def _print_results(results) -> bool:
    """Print one line per source run, then its notes, warnings and errors; True if all ok."""
    ok = True
    header = (f"{'source':<24}{'status':<9}{'read':>9}{'excluded':>9}{'unchanged':>10}"
              f"{'loaded':>9}{'updated':>9}{'quarant.':>9}{'partial':>9}{'seconds':>9}")
    print(header)
    for r in results:
        print(f"{r.source:<24}{r.status:<9}{r.read:>9}{r.excluded:>9}{r.unchanged:>10}"
              f"{r.inserted:>9}{r.updated:>9}{r.quarantined:>9}{r.partial:>9}{r.seconds:>9.1f}")
        excluded = {k.removeprefix("excluded_"): v for k, v in sorted(r.notes.items())
                    if k.startswith("excluded_")}
        if excluded:
            print("  excluded: " + ", ".join(f"{k} {v}" for k, v in excluded.items()))
        shown = {k: v for k, v in sorted(r.notes.items()) if not k.startswith("excluded_")}
        if shown:
            print("  " + ", ".join(f"{k.replace('_', ' ')}: {v}" for k, v in shown.items()))
        if r.status == "warning":
            for warning in r.warnings:
                print(f"  warning: {warning}")
            print("  top reasons:")
            for reason, count in r.top_reasons():
                print(f"    {count:>8,}  {reason}")
        elif r.error:
            print(f"  {'skipped' if r.status == 'skipped' else 'error'}: {r.error}")
        ok &= r.ok
    return ok


def _progress_bar():
    """A progress callback drawing one tqdm bar per source, only on a terminal."""
    if not sys.stderr.isatty():
        return None
    from tqdm import tqdm

    bars: dict[str, tqdm] = {}

    def progress(source: str, batches: int, rows: int) -> None:
        bar = bars.get(source)
        if bar is None:
            for other in bars.values():
                other.close()
            bar = bars[source] = tqdm(desc=f"{source:<24}", unit=" rows", leave=False)
        bar.update(rows - bar.n)
        bar.set_postfix(batches=batches)

    return progress


def cmd_run(args: argparse.Namespace) -> int:
    """Run sources now and print a summary per source."""
    from etl.run import run_sources

    config = load_config(get_settings().cx_sources)
    results = run_sources(_engine(), config, args.sources or None, progress=_progress_bar(),
                          wait=args.wait_timeout if args.wait else None)
    return 0 if _print_results(results) else 1


def _text(value: object) -> str:
    import pandas as pd

    return "-" if value is None or pd.isna(value) else str(value)


def _stamp(value: object) -> str:
    """'2026-10-05 06:20', or '-' for a missing time (a run still going has no finish)."""
    import pandas as pd

    return "-" if value is None or pd.isna(value) else f"{pd.Timestamp(value):%Y-%m-%d %H:%M}"


def _count(value: object) -> str:
    import pandas as pd

    return "" if value is None or pd.isna(value) else f"{int(value)}"


def _blank(value: object) -> bool:
    import pandas as pd

    return value is None or (not isinstance(value, str) and bool(pd.isna(value)))


def cmd_status(args: argparse.Namespace) -> int:
    """Print each source's last run, watermark and next run."""
    import datetime as dt
    from zoneinfo import ZoneInfo

    from etl.cron import cron_trigger
    from etl.run import ABANDONED, holder_alive, lock_holder
    from queries.health import last_runs, quarantine_counts

    settings = get_settings()
    config = load_config(settings.cx_sources)
    engine = _engine()
    with engine.connect() as conn:
        runs = last_runs(conn).set_index("source")
        quarantined = quarantine_counts(conn).groupby("source")["rows"].sum()
    tz = ZoneInfo(settings.cx_timezone)
    now = dt.datetime.now(tz)
    # One quarantine column: the rows waiting in quarantine (the last run's own count is in
    # `etl run`'s summary and on the Data health page).
    print(f"{'source':<22}{'last run':<18}{'outcome':<9}{'read':>8}{'loaded':>8}{'updated':>8}"
          f"  {'watermark':<20}{'next run':<18}{'quarantined':>11}")
    for src in config.sources:
        row = runs.loc[src.name] if src.name in runs.index else None
        next_run = "disabled" if not src.enabled else "not scheduled"
        if src.enabled and src.schedule:
            fire = cron_trigger(src.schedule, tz).get_next_fire_time(None, now)
            next_run = f"{fire:%Y-%m-%d %H:%M}"
        holder = lock_holder(engine, src.name)
        if row is None:
            print(f"{src.name:<22}{'never':<18}{'-':<9}{'':>8}{'':>8}{'':>8}  {'':<20}"
                  f"{next_run:<18}{int(quarantined.get(src.name, 0)):>11}")
            continue
        unfinished = row["status"] == "running"
        alive = holder_alive(holder) if holder else False
        # A run logged as running is going on only while a live process holds the source:
        # a killed run keeps its log row (and maybe its claim) until the next run takes over.
        status = ("running" if unfinished and alive is not False
                  else ABANDONED if unfinished else row["status"])
        when = row["started_at"] if unfinished else row["finished_at"]
        counts = ["", "", ""] if unfinished else [
            _count(row[c]) for c in ("rows_read", "rows_inserted", "rows_updated")]
        print(f"{src.name:<22}{_stamp(when):<18}{status:<9}{counts[0]:>8}{counts[1]:>8}"
              f"{counts[2]:>8}  {_text(row['watermark'])[:19]:<20}"
              f"{next_run:<18}{int(quarantined.get(src.name, 0)):>11}")
        if status == "running":
            print(f"  running since {_stamp(row['started_at'])} in {holder or 'another process'}")
        elif unfinished:
            print(f"  the run started {_stamp(row['started_at'])} did not finish: its process "
                  + (f"({holder}) " if holder else "") + "is gone; the next run takes over")
        elif row["status"] == "warning" and isinstance(row["error"], str):
            print(f"  warning: {row['error'][:600]}")
        elif holder:
            print(f"  running now in {holder}")
        if row["status"] in ("failed", ABANDONED) and isinstance(row["error"], str):
            print(f"  last error: {row['error'][:300]}")
    return 0


def cmd_quarantine(args: argparse.Namespace) -> int:
    """Print the newest quarantined rows."""
    from queries.health import quarantined_rows

    with _engine().connect() as conn:
        rows = quarantined_rows(conn, source=args.source, limit=args.limit)
    if rows.empty:
        print("no quarantined rows" + (f" for {args.source}" if args.source else ""))
        return 0
    for r in rows.itertuples():
        where = f"{r.file}:{int(r.line)}" if not _blank(r.line) else r.file
        value = "(empty)" if _blank(r.value) else repr(r.value)
        column = "" if _blank(r.column) or r.column == r.field else f"column {r.column!r} -> "
        field = f" [{column}{r.field} = {value}]" if not _blank(r.field) else ""
        print(f"#{r.id} {r.source} {where}{field}: {r.reason}")
    return 0


def cmd_bootstrap(args: argparse.Namespace) -> int:
    """Migrate; on an empty database write the demo sources if needed and load them."""
    from sqlalchemy import func, select

    from etl.migrate import upgrade
    from etl.run import run_sources
    from queries import schema

    settings = get_settings()
    engine = _engine(check=False)
    upgrade(engine)
    with engine.connect() as conn:
        facts = conn.execute(select(func.count()).select_from(schema.survey_response)).scalar()
    if facts:
        print(f"database already holds {facts} survey responses; nothing to load")
        return 0
    if not settings.cx_sources.exists():
        from etl.demo import generate

        print(f"writing demo sources to {settings.cx_sources.parent} ...")
        generate(settings.cx_sources.parent)
    results = run_sources(engine, load_config(settings.cx_sources))
    return 0 if _print_results(results) else 1


def cmd_rollup(args: argparse.Namespace) -> int:
    """Rebuild every aggregate table from the facts."""
    from sqlalchemy import delete

    from etl import answer_revenue
    from etl.rollup import refresh_all
    from queries import schema

    engine = _engine()
    with engine.begin() as conn:
        rows = refresh_all(conn)
        conn.execute(delete(schema.answer_revenue))
        answer_revenue.mark_pending(conn)
        answer_revenue.forget_months(conn)
    settings = get_settings()
    rows += answer_revenue.complete(engine, window_days=settings.cx_revenue_days,
                                    churn_days=settings.cx_active_days)
    print(f"aggregates rebuilt from the facts: {rows} rows")
    return 0


def cmd_schedule(args: argparse.Namespace) -> int:
    """Run the scheduler process until stopped."""
    from etl.scheduler import run_scheduler

    _engine().dispose()  # fail at start, in one line, if the database is down or behind

    return run_scheduler(get_settings(), load_config(get_settings().cx_sources),
                         run_now=args.run_now)


def cmd_comments(args: argparse.Namespace) -> int:
    """Analyse new and changed survey comments now (the ETL does it after each load)."""
    from etl.comments_nlp import analyse_comments

    r = analyse_comments(_engine(), refit=args.refit)
    print(f"{r.analysed} analysed, {r.unchanged} unchanged, {r.removed} removed; refitted: "
          f"{', '.join(r.refitted) or 'none'}")
    return 0


def cmd_cases(args: argparse.Namespace) -> int:
    """Open follow-up cases, or email their owners."""
    from etl.cases import notify_cases, open_cases

    engine = _engine()
    if args.action == "open":
        print(f"{len(open_cases(engine))} case(s) opened")
        return 0
    r = notify_cases(engine, digest=args.digest or None)
    print(f"{len(r.sent)} sent, {len(r.skipped)} already sent, {len(r.failed)} failed")
    return 1 if r.failed else 0


def cmd_alerts(args: argparse.Namespace) -> int:
    """Add a KPI alert to a subscription, or check the alerts now."""
    from etl.alerts import add_alert, check_alerts

    engine = _engine()
    if args.action == "add":
        if args.subscription is None:
            raise ValueError("subscription: give --subscription ID")
        with engine.begin() as conn:
            alert = add_alert(conn, subscription_id=args.subscription, kpi=args.kpi,
                              on_change=not args.no_change, on_target=not args.no_target,
                              silent_days=args.silent_days)
        print(f"alert {alert} added")
        return 0
    r = check_alerts(engine)
    print(f"{len(r.sent)} sent, {len(r.skipped)} already sent, {len(r.failed)} failed")
    return 1 if r.failed else 0


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    parser = argparse.ArgumentParser(prog="python -m etl", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="log each batch")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("migrate", help="create or upgrade the reporting schema").set_defaults(
        func=cmd_migrate)
    demo = sub.add_parser("demo", help="write realistic demo source files and their config")
    demo.add_argument("--out", help="folder (default: the folder of CX_SOURCES)")
    demo.add_argument("--seed", type=int, default=42)
    demo.add_argument("--customers", type=int, default=20_000)
    demo.add_argument("--months", type=int, default=24)
    demo.add_argument("--end", help="last month, YYYY-MM (default: last full month)")
    demo.add_argument("--regions", type=int, default=3)
    demo.add_argument("--stores", type=int, default=12,
                      help="stores, spread evenly over the regions (default: 12 named stores)")
    demo.add_argument("--responses-per-member", type=float, default=2.2,
                      help="survey answers per active member over 24 months")
    demo.add_argument("--transactions-per-member", type=float, default=15.0,
                      help="purchases per active member over 24 months")
    demo.set_defaults(func=cmd_demo)
    run = sub.add_parser("run", help="run sources now (default: all enabled)")
    run.add_argument("sources", nargs="*", metavar="SOURCE")
    run.add_argument("--wait", action="store_true",
                     help="wait for a source running elsewhere to finish, then run it "
                          "(default: skip it)")
    run.add_argument("--wait-timeout", type=float, default=7200.0, metavar="SECONDS",
                     help="with --wait: give up after this long (default 7200)")
    run.set_defaults(func=cmd_run)
    sub.add_parser("bootstrap", help="migrate, then load the demo data into an empty database"
                   ).set_defaults(func=cmd_bootstrap)
    sub.add_parser("rollup", help="rebuild every aggregate table from the facts"
                   ).set_defaults(func=cmd_rollup)
    sub.add_parser("status", help="last run, outcome, counts, watermark and next run per source"
                   ).set_defaults(func=cmd_status)
    quar = sub.add_parser("quarantine", help="list quarantined rows (newest first)")
    quar.add_argument("source", nargs="?")
    quar.add_argument("--limit", type=int, default=100)
    quar.set_defaults(func=cmd_quarantine)
    sched = sub.add_parser("schedule", help="run the scheduler process (blocks)")
    sched.add_argument("--run-now", action="store_true",
                       help="also run every scheduled source once at start")
    sched.set_defaults(func=cmd_schedule)
    com = sub.add_parser("comments", help="analyse new and changed survey comments now")
    com.add_argument("--refit", action="store_true", help="refit every language's models")
    com.set_defaults(func=cmd_comments)
    cas = sub.add_parser("cases", help="open follow-up cases, or email their owners")
    cas.add_argument("action", choices=("open", "notify"))
    cas.add_argument("--digest", action="store_true", help="one email per owner and day")
    cas.set_defaults(func=cmd_cases)
    ale = sub.add_parser("alerts", help="add a KPI alert to a subscription, or check now")
    ale.add_argument("action", choices=("add", "check"))
    ale.add_argument("--subscription", type=int, help="subscription id (add)")
    ale.add_argument("--kpi", help="KPI key: nps, csat, ces, retention, ...")
    ale.add_argument("--no-change", action="store_true", help="not on significant changes")
    ale.add_argument("--no-target", action="store_true", help="not on target crossings")
    ale.add_argument("--silent-days", type=int, help="alert when a source is silent this long")
    ale.set_defaults(func=cmd_alerts)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if args.verbose:
        logging.getLogger("etl").setLevel(logging.INFO)
    try:
        return args.func(args)
    except (SettingsError, ConfigError, SchemaError, DatabaseUnavailable, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
