"""ETL throughput: the demo at the run's scale loaded into every database, beside a floor.

Per database and source: rows read, seconds and rows/s of the ETL (read, validate, upsert,
rollups, in one transaction per batch), beside the floor of the same rows bulk-loaded into a
plain table of the target table's columns (COPY on PostgreSQL, executemany in one
transaction on SQLite), from a CSV dump of what the ETL wrote. The comment NLP, cases and
alerts that follow a survey load are timed apart ("after load"). Then a rerun with nothing
new, an incremental run with one day added (a new survey file and one day of transactions in
the loyalty database), and the peak resident memory of the ETL process.

Each ETL run happens in a child process (`python -m benchmarks.etl_bench URL CONFIG`) so its
peak memory is its own, not the benchmark's.
"""

from __future__ import annotations

import csv
import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from sqlalchemy import create_engine
from sqlalchemy.engine import make_url

from benchmarks.common import BenchContext, Scale, timed

# The large company: about 10 answers and 30 transactions per customer over 5 years.
ANSWERS_PER_CUSTOMER_MONTH = 10 / 60
TXNS_PER_CUSTOMER_MONTH = 30 / 60
SOURCES = ("org_units", "loyalty_members", "loyalty_transactions", "customer_survey",
           "engagement_waves", "headcount")
# Target table of each source whose floor is measured (the big ones).
FLOOR_TABLES = {"loyalty_members": "customer", "loyalty_transactions": "loyalty_transaction",
                "customer_survey": "survey_response"}
ROWS_PER_S = 100_000
FLOOR_RATIO = 3.0
RERUN_SECONDS = 2.0
INCREMENT = "bench_increment.csv"


def demo_args(scale: Scale) -> dict[str, object]:
    """Generator arguments of `scale`: its org, and the issue's answers and sales per customer.

    The generator's own rates are per member over 24 months; members are 85% of answers
    and 75% of transactions, the rest anonymous.
    """
    return {
        "seed": 42, "customers": scale.customers, "months": scale.months,
        "regions": scale.regions, "stores": scale.stores,
        "responses_per_member": ANSWERS_PER_CUSTOMER_MONTH * 24 * 0.85,
        "transactions_per_member": TXNS_PER_CUSTOMER_MONTH * 24,
    }


def _generate(ctx: BenchContext) -> Path:
    from etl.demo import generate

    demo = ctx.work / "demo"
    marker = demo / "bench_demo.json"
    wanted = demo_args(ctx.scale)
    if marker.exists() and json.loads(marker.read_text()).get("args") == wanted:
        print(f"demo reused from {demo}", flush=True)
        return demo
    with timed() as t:
        summary = generate(demo, **wanted)  # type: ignore[arg-type]
    with sqlite3.connect(demo / "loyalty.db") as con:
        max_txn = con.execute("SELECT max(txn_id) FROM transactions").fetchone()[0]
    marker.write_text(json.dumps({"args": wanted, "max_txn": max_txn}))
    note = (f"{summary.members:,} customers, {summary.transactions:,} transactions, "
            f"{summary.survey_responses:,} answers, {summary.org_units} org units")
    ctx.report.add("etl", "demo generation", "-", t[0], "s", note=note)
    return demo


def _restore_demo(demo: Path) -> None:
    """Undo an earlier incremental day, so the first load is exactly the generated demo."""
    base = json.loads((demo / "bench_demo.json").read_text())["max_txn"]
    (demo / "surveys" / INCREMENT).unlink(missing_ok=True)
    with sqlite3.connect(demo / "loyalty.db") as con:
        con.execute("DELETE FROM transactions WHERE txn_id > ?", (base,))


def _add_day(demo: Path) -> tuple[int, int]:
    """Append one new day: the last day's answers and sales again, a day later, new keys."""
    with sqlite3.connect(demo / "loyalty.db") as con:
        last = con.execute("SELECT max(occurred_at) FROM transactions").fetchone()[0][:10]
        top = con.execute("SELECT max(txn_id) FROM transactions").fetchone()[0]
        cur = con.execute(
            "INSERT INTO transactions SELECT txn_id - (SELECT min(txn_id) FROM transactions "
            "WHERE occurred_at >= ?) + ? + 1, member_id, store, "
            "datetime(occurred_at, '+1 day'), channel, amount, points_earned, points_redeemed "
            "FROM transactions WHERE occurred_at >= ? ORDER BY txn_id", (last, top, last))
        txns = cur.rowcount
    files = sorted((demo / "surveys").glob("responses_*.csv"))
    with open(files[-1], encoding="utf-8-sig", newline="") as fh:
        rows = list(csv.reader(fh))
    header, body = rows[0], rows[1:]
    sub, rid = header.index("Submitted"), header.index("Response ID")
    # Submitted is dd/mm/yyyy hh:mm; the file is in time order, so the last day ends it.
    def day_key(v: str) -> str:
        return v[6:10] + v[3:5] + v[0:2]
    last_day = max(day_key(r[sub]) for r in body[-5000:])
    day_rows = [r for r in body if day_key(r[sub]) == last_day]
    import datetime as dt

    out = []
    for i, r in enumerate(day_rows):
        when = dt.datetime.strptime(r[sub], "%d/%m/%Y %H:%M") + dt.timedelta(days=1)
        r = list(r)
        r[sub] = when.strftime("%d/%m/%Y %H:%M")
        r[rid] = f"R_INC{i:07d}"
        out.append(r)
    with open(demo / "surveys" / INCREMENT, "w", encoding="utf-8-sig", newline="") as fh:
        csv.writer(fh, lineterminator="\r\n").writerows([header, *out])
    return len(out), txns


def _child_run(url: str, config: Path) -> dict[str, object]:
    """Run the ETL as its own process; its per-source figures and peak RSS, as JSON."""
    env = {**os.environ, "DATABASE_URL": url, "CX_SOURCES": str(config)}
    proc = subprocess.run([sys.executable, "-m", "benchmarks.etl_bench", url, str(config)],
                          env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"ETL child failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _dump_csv(url: str, table: str, columns: list[str], path: Path) -> int:
    """The rows the ETL wrote to `table`, as CSV (not timed: the floor's input file)."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            raw = conn.connection.driver_connection
            cols = ", ".join(columns)
            if engine.dialect.name == "postgresql":
                sql = f"COPY (SELECT {cols} FROM {table}) TO STDOUT WITH (FORMAT csv)"
                with raw.cursor() as cur, open(path, "wb") as fh, \
                        cur.copy(sql) as copy:  # type: ignore[union-attr]
                    for block in copy:
                        fh.write(block)
                return -1
            cur = raw.cursor()  # type: ignore[union-attr]
            cur.execute(f"SELECT {cols} FROM {table}")
            n = 0
            with open(path, "w", newline="", encoding="utf-8") as fh:
                writer = csv.writer(fh)
                while chunk := cur.fetchmany(50_000):
                    writer.writerows(chunk)
                    n += len(chunk)
            return n
    finally:
        engine.dispose()


def _floor(url: str, table: str, path: Path) -> float:
    """Seconds to bulk-load `path` into a plain copy of `table` (no keys, no indexes)."""
    from queries import schema

    source = schema.metadata.tables[table]
    columns = [c for c in source.columns if c.name != "id" or table == "customer"]
    engine = create_engine(url)
    plain = f"floor_{table}"
    try:
        with engine.begin() as conn:
            ddl = ", ".join(f"{c.name} {c.type.compile(engine.dialect)}" for c in columns)
            conn.exec_driver_sql(f"DROP TABLE IF EXISTS {plain}")
            conn.exec_driver_sql(f"CREATE TABLE {plain} ({ddl})")
        with engine.begin() as conn:
            raw = conn.connection.driver_connection
            names = ", ".join(c.name for c in columns)
            started = time.perf_counter()
            if engine.dialect.name == "postgresql":
                sql = f"COPY {plain} ({names}) FROM STDIN WITH (FORMAT csv)"
                with raw.cursor() as cur, open(path, "rb") as fh, \
                        cur.copy(sql) as cp:  # type: ignore[union-attr]
                    while block := fh.read(1 << 20):
                        cp.write(block)
            else:
                marks = ", ".join("?" for _ in columns)
                with open(path, newline="", encoding="utf-8") as fh:
                    rows = ([None if v == "" else v for v in r] for r in csv.reader(fh))
                    raw.cursor().executemany(  # type: ignore[union-attr]
                        f"INSERT INTO {plain} ({names}) VALUES ({marks})", rows)
            seconds = time.perf_counter() - started
        with engine.begin() as conn:
            conn.exec_driver_sql(f"DROP TABLE {plain}")
        return seconds
    finally:
        engine.dispose()


def _migrate(url: str) -> None:
    from etl.migrate import upgrade
    from queries.db import make_engine

    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()


def _fresh_sqlite(url: str) -> None:
    path = Path(make_url(url).database or "")
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


def run(ctx: BenchContext) -> None:
    """Generate the demo, load it into every database and print the ETL figures."""
    demo = _generate(ctx)
    config = demo / "sources.toml"
    rep = ctx.report
    for backend, url in ctx.databases.items():
        _restore_demo(demo)
        if backend == "sqlite":
            _fresh_sqlite(url)
        _migrate(url)
        first = _child_run(url, config)
        total_rows = 0
        total_seconds = 0.0
        for name in SOURCES:
            res = first["sources"].get(name)  # type: ignore[union-attr]
            if res is None:
                continue
            rows, seconds = res["read"], res["seconds"]
            total_rows += rows
            total_seconds += seconds
            rate = rows / seconds if seconds else 0.0
            floor_rate = None
            met = rate >= ROWS_PER_S if rows >= 100_000 else None
            note = (f"{rows:,} rows in {seconds:.2f} s "
                    f"({res['inserted']:,} new, {res['quarantined']:,} quarantined)")
            table = FLOOR_TABLES.get(name)
            if table:
                from queries import schema

                cols = [c.name for c in schema.metadata.tables[table].columns
                        if c.name != "id" or table == "customer"]
                dump = ctx.work / f"floor_{backend}_{table}.csv"
                _dump_csv(url, table, cols, dump)
                floor_s = _floor(url, table, dump)
                dump.unlink()
                floor_rate = rows / floor_s if floor_s else None
                if floor_rate:
                    within = floor_rate / rate <= FLOOR_RATIO if rate else False
                    met = bool(met is not False and within) if rows >= 100_000 else within
                note += f"; floor {floor_s:.2f} s"
            rep.add("etl", f"load {name}", backend, rate, "rows/s", floor=floor_rate,
                    target=">= 100k rows/s, floor/3" if table else "", met=met, note=note)
            if res.get("summary", 0) > 0.05:
                rep.add("etl", f"  of which summaries after the batches ({name})", backend,
                        res["summary"], "s",
                        note="member activity, answer revenue: counted once after the "
                             "batches, inside the load's figure")
            if res.get("after_load"):
                rep.add("etl", f"after load {name} (comment NLP, cases, alerts)", backend,
                        res["after_load"], "s", note="runs after the load has committed")
        rep.add("etl", "full load, all sources", backend, total_seconds, "s",
                note=f"{total_rows:,} rows; {first['seconds']:.1f} s with process start "
                     "and after-load steps")
        rep.add("etl", "peak RSS of the ETL process", backend, first["peak_rss_mib"], "MiB")

        again = _child_run(url, config)
        rep.add("etl", "no-change rerun, all sources", backend, again["seconds"], "s",
                target="< 2 s", met=again["seconds"] < RERUN_SECONDS,
                note="wall time of run_sources, without interpreter start")

        answers, txns = _add_day(demo)
        inc = _child_run(url, config)
        changed = sum(r["inserted"] + r["updated"]
                      for r in inc["sources"].values())  # type: ignore[union-attr]
        sources = inc["sources"].values()  # type: ignore[union-attr]
        after = sum(r["after_load"] for r in sources)
        rep.add("etl", "incremental run, one day added", backend, inc["seconds"] - after, "s",
                note=f"{answers:,} answers + {txns:,} transactions added; "
                     f"{changed:,} rows written; without the after-load step")
        rep.add("etl", "incremental run: after load (comment NLP, cases, alerts)", backend,
                after, "s", note="refits the comment models when comments grew enough")
        _restore_demo(demo)


def _child(url: str, config: Path) -> None:
    """Child process: run every source once and print one JSON line of figures."""
    import logging

    from etl import run as etl_run
    from etl.config import load_config
    from queries.db import make_engine

    logging.disable(logging.WARNING)
    engine = make_engine(url)
    cfg = load_config(config)
    figures: dict[str, dict[str, object]] = {}
    started = time.perf_counter()
    for source in etl_run.ordered([s for s in cfg.sources if s.enabled]):
        t0 = time.perf_counter()
        res = etl_run.run_source(engine, source)
        wall = time.perf_counter() - t0
        if not res.ok:
            raise SystemExit(f"{source.name}: {res.status}: {res.error}")
        figures[source.name] = {
            "read": res.read, "inserted": res.inserted, "updated": res.updated,
            "unchanged": res.unchanged, "quarantined": res.quarantined,
            "seconds": res.seconds, "summary": res.summary_seconds,
            "after_load": max(wall - res.seconds, 0.0)
            if source.entity_name == "survey_responses" and (res.inserted or res.updated)
            else 0.0,
        }
    seconds = time.perf_counter() - started
    engine.dispose()
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"sources": figures, "seconds": seconds, "peak_rss_mib": peak}))


if __name__ == "__main__":
    _child(sys.argv[1], Path(sys.argv[2]))
