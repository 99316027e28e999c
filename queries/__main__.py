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


def cmd_kpis(args: argparse.Namespace) -> int:
    """Print the KPI set (a table, or JSON with --json)."""
    from queries.formatting import (
        fmt_delta,
        fmt_moe,
        fmt_n,
        fmt_reason,
        fmt_significance,
        fmt_value,
    )
    from queries.kpis import kpis, latest_full_month

    with _engine().connect() as conn:
        period = Month.parse(args.period) if args.period else latest_full_month(conn)
        if period is None:
            print("error: the reporting database holds no data yet", file=sys.stderr)
            return 1
        compare = Month.parse(args.compare) if args.compare else None
        report = kpi_report(conn, period=period, compare=compare, filters=_filters(args))
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
