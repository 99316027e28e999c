"""Command line of the read side: `python -m queries kpis|links ...` (see `--help`).

Prints the same numbers the dashboard and the PDF show, computed by the same functions.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from typing import Any

from queries.db import DatabaseUnavailable, SchemaError
from queries.periods import Month
from queries.settings import SettingsError, get_settings


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return None
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value


def _filters(args: argparse.Namespace):
    from queries.kpis import Filters

    return Filters(unit=args.unit, segment=args.segment, channel=args.channel,
                   device=args.device, interaction=args.interaction, touchpoint=args.touchpoint)


def _engine():
    from queries.db import check_schema, make_engine

    engine = make_engine(get_settings().database_url)
    check_schema(engine)
    return engine


def kpi_report(conn: Any, *, period: Month, compare: Month | None, filters: Any) -> dict:
    """The KPI set and what the signals say (the disagreements, or why they agree), as one
    JSON-ready dict."""
    from queries.kpis import Settings, kpis, second_comparison
    from queries.signals import assess

    s = get_settings()
    items = kpis(conn, period=period, compare=compare, filters=filters,
                 settings=Settings(s.cx_min_n, s.cx_anonymity_min, s.cx_active_days))
    verdict = assess(items)
    first = compare or period.shift(-1)
    return {
        "period": str(period),
        "compare": str(first),
        "second_compare": str(second_comparison(period, first)),
        "filters": filters.active(),
        "kpis": [k.as_dict() for k in items],
        "signals": [sig.as_dict() for sig in verdict.signals],
        "signals_verdict": {"status": verdict.status, "heading": verdict.heading,
                            "reason": verdict.reason},
    }


def _counts_line(counts: dict[str, float]) -> str:
    from queries.formatting import money

    return (f"  answers {counts['responses']:,} · NPS answers {counts['nps_n']:,}: promoters "
            f"{counts['promoters']:,}, passives {counts['passives']:,}, detractors "
            f"{counts['detractors']:,} · CSAT answers {counts['csat_n']:,}, top-2-box "
            f"{counts['csat_top2']:,} · CES answers {counts['ces_n']:,}, easy "
            f"{counts['ces_agree']:,} · transactions {counts['txns']:,}, revenue "
            f"{money(counts['revenue'])}")


def cmd_window(args: argparse.Namespace) -> int:
    """Print survey and sales measures over a window of months with their counts."""
    from queries.formatting import money
    from queries.kpis import latest_full_month
    from queries.window import window_kpis

    with _engine().connect() as conn:
        last = Month.parse(args.to) if args.to else latest_full_month(conn)
        if last is None:
            print("error: the reporting database holds no data yet", file=sys.stderr)
            return 1
        first = Month.parse(args.from_) if args.from_ else last.shift(-(args.months - 1))
        result = window_kpis(conn, first=first, last=last, filters=_filters(args))
    if args.json:
        print(json.dumps(_jsonable({**result.as_dict(), "filters": _filters(args).active()}),
                         indent=2, ensure_ascii=False))
        return 0
    print(f"{first.label} to {last.label} ({result.months} months)"
          + (f" · {_filters(args).active()}" if _filters(args).active() else ""))
    rows = [("NPS", result.nps, "{:+.1f}", " pts"), ("CSAT", result.csat, "{:.1f}%", " pts"),
            ("CES", result.ces, "{:.2f}", ""), ("CES % easy", result.ces_agree, "{:.1f}%", " pts")]
    for label, est, fmt, unit in rows:
        value = "no data" if est.value is None else fmt.format(est.value)
        moe = "" if est.moe is None else f"±{est.moe:.2f}{unit}"
        print(f"  {label:<22}{value:>12}  n={est.n:<8,}{moe}")
    print(f"  {'Revenue':<22}{money(result.counts['revenue']):>12}  "
          f"transactions={result.counts['txns']:,}")
    print(_counts_line(result.counts))
    return 0


def cmd_kpis(args: argparse.Namespace) -> int:
    """Print the KPI set (a table, or JSON with --json); over a window with --from/--to or
    --months."""
    from queries.formatting import (
        fmt_delta,
        fmt_moe,
        fmt_n,
        fmt_reason,
        fmt_significance,
        fmt_value,
    )
    from queries.kpis import kpis, latest_full_month
    from queries.window import window_kpis

    if args.from_ or args.to or args.months:
        if args.period or args.compare:
            raise ValueError("--period/--compare and --from/--to/--months do not mix")
        if args.from_ and args.months:
            raise ValueError("give --from or --months, not both")
        args.months = args.months or 1
        return cmd_window(args)
    with _engine().connect() as conn:
        period = Month.parse(args.period) if args.period else latest_full_month(conn)
        if period is None:
            print("error: the reporting database holds no data yet", file=sys.stderr)
            return 1
        compare = Month.parse(args.compare) if args.compare else None
        report = kpi_report(conn, period=period, compare=compare, filters=_filters(args))
        counts = window_kpis(conn, first=period, last=period, filters=_filters(args)).counts
        report["counts"] = counts
        s = get_settings()
        from queries.kpis import Settings

        items = kpis(conn, period=period, compare=compare, filters=_filters(args),
                     settings=Settings(s.cx_min_n, s.cx_anonymity_min, s.cx_active_days)) \
            if not args.json else []
    if args.json:
        print(json.dumps(_jsonable(report), indent=2, ensure_ascii=False))
        return 0
    print(f"{period.label} against {Month.parse(report['compare']).label}"
          + (f" · {report['filters']}" if report["filters"] else ""))
    for k in items:
        flags = f" [{', '.join(k.flags)}]" if k.flags else ""
        change = fmt_delta(k) if k.value is not None else ""
        print(f"  {k.label:<22}{fmt_value(k):>12}  {fmt_n(k):<34}{fmt_moe(k):<24}"
              f"{change:>14} {fmt_significance(k) or fmt_reason(k)}{flags}")
    verdict = report["signals_verdict"]
    print(f"{verdict['heading']}" + (f": {verdict['reason']}" if verdict["reason"] else ""))
    print(_counts_line(counts))
    for sig in report["signals"]:
        print(f"  ! {sig['text']}")
    return 0


def cmd_links(args: argparse.Namespace) -> int:
    """Print the revenue and engagement links as JSON."""
    from queries.links_report import links_report

    with _engine().connect() as conn:
        report = links_report(conn, period=Month.parse(args.period), months=args.months,
                              filters=_filters(args), window_days=args.window)
    print(json.dumps(_jsonable(report), indent=2, ensure_ascii=False))
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit code."""
    parser = argparse.ArgumentParser(prog="python -m queries", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    def filters(p: argparse.ArgumentParser) -> None:
        p.add_argument("--unit", help="org unit id (it and everything below it)")
        p.add_argument("--segment")
        p.add_argument("--channel")
        p.add_argument("--device")
        p.add_argument("--interaction", choices=["self_service", "assisted"])
        p.add_argument("--touchpoint")

    k = sub.add_parser("kpis", help="the KPI set: value, n, margin, change, significance")
    k.add_argument("--period", help="YYYY-MM (default: the last full month with data)")
    k.add_argument("--compare", help="YYYY-MM (default: the month before)")
    k.add_argument("--from", dest="from_", metavar="YYYY-MM",
                   help="first month of a window (with --to; counts summed over it)")
    k.add_argument("--to", metavar="YYYY-MM", help="last month of a window (default: the "
                   "last full month)")
    k.add_argument("--months", type=int, help="window of N months ending with --to")
    k.add_argument("--json", action="store_true")
    filters(k)
    k.set_defaults(func=cmd_kpis)
    links = sub.add_parser("links", help="revenue and engagement links (JSON)")
    links.add_argument("--period", required=True, help="last month of the window, YYYY-MM")
    links.add_argument("--months", type=int, default=12, help="months in the window")
    links.add_argument("--window", type=int, default=None,
                       help="days of revenue after a survey (default CX_REVENUE_DAYS)")
    links.add_argument("--json", action="store_true", help="(always JSON)")
    filters(links)
    links.set_defaults(func=cmd_links)
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (SettingsError, SchemaError, DatabaseUnavailable, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
