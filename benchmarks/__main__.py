"""python -m benchmarks [--scale small|large] [--database URL] [--json FILE] [--parts ...]

Generates the demo company at the chosen scale, loads it into SQLite and PostgreSQL, then
measures ETL throughput, dashboard callback server times, concurrent users and PDF
rendering, each beside a floor measured in the same run. It prints figures; it asserts
nothing (docs/BENCHMARKS.md explains each figure and keeps the latest ones).
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import shutil
import sys
import tempfile
import time
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from benchmarks.common import SCALES, BenchContext, Report, machine

PARTS = ("etl", "callbacks", "load", "pdf")
DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/postgres"


def _fresh_pg(admin_url: str, name: str) -> str | None:
    """Create database `name` next to `admin_url`; None when PostgreSQL is unreachable."""
    try:
        engine = create_engine(admin_url, isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        engine.dispose()
    except Exception as exc:  # any failure means: no PostgreSQL here
        print(f"PostgreSQL at {make_url(admin_url).render_as_string()} not used: "
              f"{str(exc).splitlines()[0]}", file=sys.stderr)
        return None
    return make_url(admin_url).set(database=name).render_as_string(hide_password=False)


def _drop_pg(admin_url: str, name: str) -> None:
    engine = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    engine.dispose()


def main(argv: list[str] | None = None) -> int:
    """Run the chosen parts at the chosen scale and print (and optionally save) figures."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", choices=sorted(SCALES), default="small")
    parser.add_argument("--database", metavar="URL",
                        help="PostgreSQL server to create the benchmark database on "
                             f"(default {DEFAULT_PG}); 'none' measures SQLite only")
    parser.add_argument("--json", metavar="FILE", type=Path, help="also write figures here")
    parser.add_argument("--parts", default=",".join(PARTS),
                        help=f"comma-separated subset of {','.join(PARTS)}")
    parser.add_argument("--work", type=Path,
                        help="work folder to reuse (demo files and SQLite database of an "
                             "earlier run with --keep): skips generating when present")
    parser.add_argument("--keep", action="store_true",
                        help="keep the work folder and the PostgreSQL database")
    parser.add_argument("--backends", default="sqlite,postgresql",
                        help="which backends to measure")
    parser.add_argument("--pg-name", help="name of the PostgreSQL benchmark database "
                        "(default cx_bench_<scale>); two runs at once need different names")
    parser.add_argument("--quick", action="store_true",
                        help="every part once, as briefly as it runs (one repeat, 10 users "
                             "for 3 s, 2 PDFs): CI's check that the benchmark code works, "
                             "not figures to quote")
    parser.add_argument("--repeats", type=int, metavar="N",
                        help="repeats of each callback case (default: the scale's, 20 at "
                             "large, where a cold page can take seconds)")
    args = parser.parse_args(argv)

    parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    unknown = [p for p in parts if p not in PARTS]
    if unknown:
        parser.error(f"unknown part(s) {', '.join(unknown)}; choose from {', '.join(PARTS)}")
    scale = SCALES[args.scale]
    if args.quick:
        scale = dataclasses.replace(scale, repeats=1, load_seconds=3, users=(10,),
                                    pdf_recipients=2)
    if args.repeats:
        scale = dataclasses.replace(scale, repeats=args.repeats)
    work = args.work or Path(tempfile.mkdtemp(prefix=f"cx-bench-{scale.name}-"))
    work.mkdir(parents=True, exist_ok=True)
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]

    databases: dict[str, str] = {}
    if "sqlite" in backends:
        databases["sqlite"] = f"sqlite:///{work / 'cx.db'}"
    pg_name = args.pg_name or f"cx_bench_{scale.name}"
    admin = args.database or DEFAULT_PG
    if "postgresql" in backends and admin != "none":
        url = _fresh_pg(admin, pg_name) if "etl" in parts else \
            make_url(admin).set(database=pg_name).render_as_string(hide_password=False)
        if url:
            databases["postgresql"] = url

    meta = {"scale": scale.name, "started": time.strftime("%Y-%m-%d %H:%M:%S"),
            "machine": machine(), "work": str(work), "parts": parts}
    print(f"benchmarks at scale {scale.name} on {meta['machine']['cpus']} cores, "
          f"{meta['machine']['memory_gib']} GiB; work folder {work}; "
          f"backends {', '.join(databases)}", flush=True)
    report = Report()
    ctx = BenchContext(scale=scale, databases=databases, work=work, report=report)
    started = time.perf_counter()
    try:
        for part in parts:
            module = importlib.import_module(f"benchmarks.{part}_bench")
            print(f"--- {part} ---", flush=True)
            module.run(ctx)
    finally:
        meta["seconds"] = round(time.perf_counter() - started, 1)
        meta["machine_after"] = machine()
        if args.json:
            report.to_json(args.json, meta)
            print(f"figures written to {args.json}")
        if not args.keep:
            if "postgresql" in databases and "etl" in parts:
                _drop_pg(admin, pg_name)
            if args.work is None:
                shutil.rmtree(work, ignore_errors=True)
    missed = [f for f in report.figures if f.met is False]
    print(f"done in {meta['seconds']} s: {len(report.figures)} figures, "
          f"{len(missed)} target(s) missed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
