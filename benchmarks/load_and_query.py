"""Benchmark: generate the default demo, load it, and time the dashboard's main queries.

    python benchmarks/load_and_query.py [--database-url URL] [--customers N] [--months N]

Prints seconds and rows per second per source, peak memory of the process, and the time of
each overview query cold (first call) and warm. The targets it speaks to: the default demo
(about 20k customers, 24 months) loads in well under a minute; an overview renders in well
under a second once the scipy import is paid. It prints figures; it asserts nothing.
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from etl.config import load_config
from etl.demo import generate
from etl.migrate import upgrade
from etl.run import run_sources
from queries.db import make_engine
from queries.kpis import Filters, kpis, latest_full_month
from queries.links import revenue_after_survey
from queries.trends import kpi_trend


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> int:
    """Run the benchmark and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", help="default: a fresh SQLite file")
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--months", type=int, default=24)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="cx-bench-"))
    url = args.database_url or f"sqlite:///{work / 'cx.db'}"

    started = time.perf_counter()
    summary = generate(work / "demo", customers=args.customers, months=args.months)
    print(f"generate demo: {time.perf_counter() - started:6.1f} s  ({summary.members:,} members, "
          f"{summary.transactions:,} transactions, {summary.survey_responses:,} responses)")

    engine = make_engine(url)
    upgrade(engine)
    started = time.perf_counter()
    results = run_sources(engine, load_config(work / "demo" / "sources.toml"))
    total = time.perf_counter() - started
    for r in results:
        rate = r.read / r.seconds if r.seconds else 0
        print(f"  {r.source:<22} {r.status:<8} {r.read:>9,} rows {r.seconds:6.1f} s "
              f"{rate:>10,.0f} rows/s")
    print(f"load all sources: {total:6.1f} s   peak memory {_peak_mib():,.0f} MiB")

    with engine.connect() as conn:
        period = latest_full_month(conn)
        for label, call in (
            ("kpis (company)", lambda: kpis(conn, period=period)),
            ("kpis (region)", lambda: kpis(conn, period=period, filters=Filters(unit="R-WEST"))),
            ("13-month trend", lambda: kpi_trend(conn, end=period)),
            ("revenue after survey", lambda: revenue_after_survey(
                conn, start=period.shift(-11).start, end=period.end)),
        ):
            cold = time.perf_counter()
            call()
            warm = time.perf_counter()
            call()
            again = time.perf_counter() - warm
            print(f"{label:<22} first {warm - cold:6.3f} s   again {again:6.3f} s")
    print(f"work folder: {work}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
