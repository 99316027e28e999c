"""Benchmark: how long each dashboard page takes to draw in headless Chromium.

    python benchmarks/page_draw.py BASE_URL [--rounds N] [--chromium PATH]

BASE_URL is a running dashboard (say `make run`, or gunicorn on any database). Each page is
opened `rounds` times in one browser; a page counts as drawn when its main element is on
screen (a KPI value, a grid row, a chart). Prints seconds per page and round, then the
median per page. The target it speaks to: Data health draws as quickly as the other pages
(it took 3-23 s when every table cell was its own component). It prints figures; it asserts
nothing.

To reproduce a busy installation, add runs and quarantined rows to a copy of a demo database
first (`--stress DB_FILE` on a SQLite file: 30,000 runs and 200,000 quarantined rows).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sqlite3
import statistics
import time

from playwright.sync_api import sync_playwright

PAGES = [
    ("/", "#overview-nps-value:not(:empty)"),
    ("/revenue", "#revenue-groups-graph .trace"),
    ("/segments", "#segments-grid .ag-row"),
    ("/drivers", "#drivers-matrix .trace"),
    ("/employees", "#employees-units-graph .trace"),
    ("/health", "#health-runs-table .ag-row"),
]
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]


def stress(path: str) -> None:
    """Add 30,000 finished runs and 200,000 quarantined rows to the SQLite file `path`."""
    sources = ["org_units", "loyalty_members", "loyalty_transactions", "customer_survey",
               "engagement_waves", "headcount"]
    start = dt.datetime(2026, 1, 1)
    reasons = ["out of range (expected 0..10)", "unknown org unit 'S99'", "not a number",
               "duplicate key (first seen on line 4)"]
    con = sqlite3.connect(path)
    with con:
        con.executemany(
            "INSERT INTO etl_run (source, started_at, finished_at, status, rows_read, "
            "rows_inserted, rows_updated, rows_quarantined, rows_skipped, notes) "
            "VALUES (?, ?, ?, 'success', 10, 0, 0, 0, 10, ?)",
            [(s, start + dt.timedelta(hours=h), start + dt.timedelta(hours=h, seconds=3),
              json.dumps({"rows_unchanged": 10})) for h in range(5000) for s in sources])
        con.executemany(
            "INSERT INTO quarantine (run_id, source, file, line, field, value, reason, raw, "
            "created_at) VALUES (1, ?, 'responses.csv', ?, 'nps', ?, ?, '{}', ?)",
            [(sources[3], i, str(i), reasons[i % 4], start) for i in range(200_000)])
    con.close()


def main() -> int:
    """Time every page and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("base_url", nargs="?")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    parser.add_argument("--stress", metavar="DB_FILE", help="add runs and quarantine, exit")
    args = parser.parse_args()
    if args.stress:
        stress(args.stress)
        print(f"added 30,000 runs and 200,000 quarantined rows to {args.stress}")
        return 0
    if not args.base_url:
        parser.error("BASE_URL is required")
    times: dict[str, list[float]] = {p: [] for p, _ in PAGES}
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=args.chromium, args=ARGS)
        page = browser.new_page(viewport={"width": 1440, "height": 900})
        for r in range(args.rounds):
            for path, selector in PAGES:
                t = time.perf_counter()
                page.goto(args.base_url.rstrip("/") + path)
                page.wait_for_selector(selector, timeout=120_000)
                times[path].append(time.perf_counter() - t)
                print(f"round {r + 1}  {path:<12}{times[path][-1]:7.2f} s", flush=True)
        browser.close()
    print("median per page:")
    for path, values in times.items():
        print(f"  {path:<12}{statistics.median(values):7.2f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
