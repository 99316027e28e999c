"""Concurrent users: the real app under gunicorn, driven by locust, with each cache.

For every database of the run: benchmark people are created (executives, region and store
managers), the app is served by gunicorn with the project's `gunicorn.conf.py` on a free
loopback port, a real Chromium opens each page once to record the callback requests a
browser sends, and then locust (headless, a subprocess: its gevent must not monkey-patch
this process) runs `ctx.scale.users` simulated people for `ctx.scale.load_seconds` each,
first with the in-process cache, then with Redis (`CACHE_REDIS_URL`). Each run starts a
fresh gunicorn and an empty cache, so every run pays its own cold misses.

Figures: requests/s, p50/p95/p99 of every request (sign-ins included), failed requests and
their most common kinds, the slowest request kinds, and the peak resident memory (VmHWM)
of each gunicorn worker. The floor beside the latency is `/healthz` under the same load
(one SQL `SELECT 1` through the whole stack): what serving costs before any dashboard work.
"""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select

from benchmarks.common import BenchContext, served_databases
from benchmarks.serving import free_port, start_gunicorn, stop_gunicorn
from queries.db import make_engine
from queries.settings import ROOT

REDIS_URL = os.environ.get("CX_BENCH_REDIS", "redis://127.0.0.1:6379/13")
PAGES = ("/", "/revenue", "/employees", "/segments", "/drivers")
PASSWORD = "bench-password-1"
SECRET = "bench-secret-key-0123456789abcdefghijklmn"
CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run",
                 "--disable-quic"]


def org_units(url: str) -> tuple[list[str], dict[str, list[str]]]:
    """Region ids and, for each region, its store ids (sorted)."""
    from queries.schema import org_unit

    engine = make_engine(url)
    with engine.connect() as conn:
        rows = conn.execute(select(org_unit.c.id, org_unit.c.kind, org_unit.c.parent_id)).all()
    engine.dispose()
    regions = sorted(str(r.id) for r in rows if r.kind == "region")
    stores = {reg: sorted(str(r.id) for r in rows if r.kind == "store" and r.parent_id == reg)
              for reg in regions}
    return regions, stores


def bench_people(url: str) -> list[dict[str, Any]]:
    """Create (or reset) the benchmark's people; return them with the units each opens.

    Two executives (every unit, or the whole company), and managers of different regions
    and stores, so concurrent users ask for different slices of the data."""
    from auth.users import add_user, get_user_by_email, set_password

    regions, stores = org_units(url)
    everything = regions + [s for reg in regions for s in stores[reg]]
    people: list[dict[str, Any]] = [
        {"email": f"exec{i}@bench.example", "role": "executive", "scope": None,
         "units": everything, "whole_scope": True} for i in (1, 2)]
    for i, reg in enumerate(regions[:4]):
        people.append({"email": f"region{i}@bench.example", "role": "manager", "scope": reg,
                       "units": [reg, *stores[reg]], "whole_scope": False})
    store_list = [s for reg in regions for s in stores[reg]]
    step = max(1, len(store_list) // 4)
    for i, store in enumerate(store_list[::step][:4]):
        people.append({"email": f"store{i}@bench.example", "role": "manager", "scope": store,
                       "units": [store], "whole_scope": False})
    engine = make_engine(url)
    with engine.begin() as conn:
        for p in people:
            if get_user_by_email(conn, p["email"]) is None:
                add_user(conn, email=p["email"], role=p["role"], scope=p["scope"],
                         password=PASSWORD)
            else:
                set_password(conn, p["email"], PASSWORD)
    engine.dispose()
    return [{**p, "password": PASSWORD} for p in people]


@dataclass
class Served:
    """A gunicorn master serving the dashboard, its base URL and log."""

    proc: subprocess.Popen
    base: str
    log: Path
    extra_env: dict[str, str] = field(default_factory=dict)

    def workers(self) -> list[int]:
        """Pids of the master's worker processes."""
        try:
            kids = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text()
        except OSError:
            return []
        return [int(k) for k in kids.split()]

    def stop(self) -> None:
        """Stop gunicorn (graceful, then forced)."""
        stop_gunicorn(self.proc, timeout=20)


def serve(url: str, work: Path, *, redis: bool, extra_env: dict[str, str] | None = None,
          args: list[str] | None = None) -> Served:
    """Start gunicorn (the project's config, `--no-control-socket`) on a free loopback
    port against `url`; return once /healthz answers."""
    port = free_port()
    data_dir = work / "web-data"
    data_dir.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "DATABASE_URL": url, "CX_DATA_DIR": str(data_dir),
           "CX_SOURCES": str(work / "demo" / "sources.toml"), "SECRET_KEY": SECRET,
           "CX_BASE_URL": f"http://127.0.0.1:{port}", **(extra_env or {})}
    env.pop("CACHE_REDIS_URL", None)
    if redis:
        env["CACHE_REDIS_URL"] = REDIS_URL
    log = work / f"gunicorn-{port}.log"
    proc = start_gunicorn(port, env, log, timeout=120,
                          args=["--access-logfile", "/dev/null", *(args or [])])
    base = f"http://127.0.0.1:{port}"
    served = Served(proc, base, log, extra_env or {})
    # Every worker imports the app at boot; wait until all of them answer.
    time.sleep(1.0)
    return served


def flush_redis() -> None:
    """Empty the benchmark's own Redis database (CX_BENCH_REDIS), so each run starts cold."""
    import redis

    redis.Redis.from_url(REDIS_URL).flushdb()


def sign_in_cookies(base: str, email: str, password: str) -> list[dict[str, Any]]:
    """Cookies of a session signed in through the real form (for the recording browser)."""
    import requests

    http = requests.Session()
    form = http.get(base + "/login", timeout=60)
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', form.text).group(1)
    done = http.post(base + "/login", data={"csrf_token": csrf, "email": email,
                                            "password": password, "next": "/"},
                     allow_redirects=False, timeout=60)
    if done.status_code != 302:
        raise RuntimeError(f"benchmark sign-in failed: HTTP {done.status_code}")
    return [{"name": c.name, "value": c.value, "domain": "127.0.0.1", "path": "/"}
            for c in http.cookies]


def record_flows(base: str, person: dict[str, Any], unit: str, period: str) -> dict[str, list]:
    """For each page: the callback bodies a real Chromium posts while opening it on `unit`
    and `period` (in the order it sent them)."""
    from playwright.sync_api import sync_playwright

    flows: dict[str, list] = {}
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        context.add_cookies(sign_in_cookies(base, person["email"], person["password"]))
        for path in PAGES:
            posts: list[str] = []
            page = context.new_page()
            page.on("request", lambda r, posts=posts: posts.append(r.post_data)
                    if r.method == "POST" and "/_dash-update-component" in r.url
                    else None)
            # The app's own links put the period first (dashboard.state.FILTER_KEYS): another
            # order makes the page canonicalise its URL and render a second time.
            page.goto(f"{base}{path}?period={period}&unit={unit}", timeout=120_000)
            page.wait_for_load_state("networkidle", timeout=180_000)
            # Chained callbacks may fire after a quiet moment: wait until none came for 1.5 s.
            seen = -1
            while seen != len(posts):
                seen = len(posts)
                page.wait_for_timeout(1500)
            page.close()
            flows[path] = [p for p in posts if p]
        browser.close()
    return flows


def run_locust(base: str, flows_file: Path, users: int, seconds: int,
               prefix: Path, think: str = "2,8") -> None:
    """locust headless against `base`: `users` people, all started within a second or two,
    for `seconds`; CSV stats at `prefix`."""
    env = {**os.environ, "CX_LOAD_FLOWS": str(flows_file), "CX_LOAD_THINK": think}
    locust = Path(sys.executable).with_name("locust")
    cmd = [str(locust), "-f", str(Path(__file__).with_name("locustfile.py")), "--headless",
           "--host", base, "-u", str(users), "-r", str(max(users // 2, 1)),
           "--run-time", f"{seconds}s", "--stop-timeout", "30", "--csv", str(prefix),
           "--only-summary", "--loglevel", "WARNING", "--exit-code-on-error", "0"]
    out = prefix.with_suffix(".log")
    with out.open("w") as fh:
        subprocess.run(cmd, cwd=ROOT, env=env, stdout=fh, stderr=subprocess.STDOUT,
                       check=False, timeout=seconds + 180)


@dataclass
class LoadResult:
    """Figures of one locust run."""

    requests: int
    failures: int
    rps: float
    p50: float
    p95: float
    p99: float
    slowest: list[tuple[str, float, int]]
    errors: list[tuple[str, int]]
    healthz_p95: float | None
    rss_mib: list[float]
    cpu_seconds: float = 0.0
    load_average: float = 0.0


def read_stats(prefix: Path) -> tuple[dict[str, dict[str, str]], list[tuple[str, int]]]:
    """locust's CSV stats by request name, and failures (kind, count) most common first."""
    rows = {}
    with Path(f"{prefix}_stats.csv").open() as fh:
        for row in csv.DictReader(fh):
            rows[row["Name"]] = row
    errors: dict[str, int] = {}
    failures = Path(f"{prefix}_failures.csv")
    if failures.exists():
        with failures.open() as fh:
            for row in csv.DictReader(fh):
                kind = f"{row['Name']}: {row['Error'][:90]}"
                errors[kind] = errors.get(kind, 0) + int(row["Occurrences"])
    return rows, sorted(errors.items(), key=lambda kv: -kv[1])


def _num(row: dict[str, str], key: str) -> float:
    value = row.get(key, "")
    return float(value) if value not in ("", "N/A") else float("nan")


class PeakRss:
    """Polls the peak resident memory (VmHWM) of a gunicorn's workers while it runs; a
    worker that is replaced keeps its last reading."""

    def __init__(self, served: Served) -> None:
        self.served = served
        self.peaks: dict[int, float] = {}
        self.cpu_first: dict[int, float] = {}
        self.cpu_last: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()

    def _poll(self) -> None:
        while not self._stop.wait(0.5):
            self.sample()

    def sample(self) -> None:
        """Read every worker's VmHWM now."""
        for pid in self.served.workers():
            try:
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmHWM:"):
                        self.peaks[pid] = int(line.split()[1]) / 1024
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
            except (OSError, IndexError, ValueError):
                continue
            self.cpu_first.setdefault(pid, cpu)
            self.cpu_last[pid] = cpu

    @property
    def cpu_seconds(self) -> float:
        """CPU seconds the workers spent since polling began (their boot excluded)."""
        return sum(self.cpu_last[p] - self.cpu_first[p] for p in self.cpu_last)

    def stop(self) -> list[float]:
        """Stop polling; the peak of each worker seen, MiB."""
        self.sample()
        self._stop.set()
        self._thread.join()
        return sorted(self.peaks.values())


def healthz_probe(base: str, stop: threading.Event, out: list[float]) -> None:
    """/healthz once a second while the load runs: the floor of serving one request."""
    while not stop.wait(1.0):
        started = time.perf_counter()
        try:
            with urllib.request.urlopen(base + "/healthz", timeout=60) as resp:
                resp.read()
            out.append(time.perf_counter() - started)
        except OSError:
            pass


def measure(url: str, work: Path, flows_file: Path, users: int, seconds: int, *,
            redis: bool, label: str, extra_env: dict[str, str] | None = None,
            args: list[str] | None = None, think: str = "2,8") -> LoadResult:
    """One locust run against a fresh gunicorn with an empty cache."""
    from benchmarks.common import percentile

    if redis:
        flush_redis()
    served = serve(url, work, redis=redis, extra_env=extra_env, args=args)
    rss = PeakRss(served)
    stop = threading.Event()
    probe: list[float] = []
    prober = threading.Thread(target=healthz_probe, args=(served.base, stop, probe),
                              daemon=True)
    prober.start()
    prefix = work / f"locust-{label}-{users}"
    rss.sample()
    try:
        run_locust(served.base, flows_file, users, seconds, prefix, think)
        load_average = os.getloadavg()[0]
    finally:
        stop.set()
        prober.join()
        peaks = rss.stop()
        served.stop()
    rows, errors = read_stats(prefix)
    agg = rows.get("Aggregated", {})
    by_p95 = sorted(((name, _num(r, "95%"), int(r["Request Count"]))
                     for name, r in rows.items() if name != "Aggregated"),
                    key=lambda t: -t[1])
    return LoadResult(
        requests=int(agg.get("Request Count", 0) or 0),
        failures=int(agg.get("Failure Count", 0) or 0),
        rps=_num(agg, "Requests/s"), p50=_num(agg, "50%") / 1000,
        p95=_num(agg, "95%") / 1000, p99=_num(agg, "99%") / 1000,
        slowest=by_p95[:3], errors=errors[:3],
        healthz_p95=percentile(probe, 95) if probe else None, rss_mib=peaks,
        cpu_seconds=rss.cpu_seconds, load_average=load_average)


def prepare(url: str, work: Path) -> Path:
    """Benchmark people and the recorded page flows for the database at `url`; returns the
    flows file for locust."""
    from queries.kpis import latest_full_month

    people = bench_people(url)
    engine = make_engine(url)
    with engine.connect() as conn:
        latest = latest_full_month(conn)
    engine.dispose()
    periods = [str(latest.shift(-i)) for i in range(12)]
    template_unit = people[2]["scope"]  # a region: its pages show stores below it
    served = serve(url, work, redis=False)
    try:
        pages = record_flows(served.base, people[0], template_unit, periods[0])
    finally:
        served.stop()
    flows = {"users": people, "pages": pages, "template_unit": template_unit,
             "template_period": periods[0], "periods": periods}
    path = work / f"flows-{make_engine(url).url.get_backend_name()}.json"
    path.write_text(json.dumps(flows))
    return path


def run(ctx: BenchContext) -> None:
    """Measure concurrent users on every database, with the in-process cache and Redis."""
    seconds = ctx.scale.load_seconds
    for backend, url in served_databases(ctx).items():
        flows_file = prepare(url, ctx.work)
        flows = json.loads(flows_file.read_text())
        calls = sum(len(v) for v in flows["pages"].values())
        print(f"recorded {calls} callback requests over {len(flows['pages'])} pages; "
              f"{len(flows['users'])} people", flush=True)
        for cache in ctx.scale.caches:
            redis = cache == "redis"
            for users in ctx.scale.users:
                res = measure(url, ctx.work, flows_file, users, seconds, redis=redis,
                              label=f"{backend}-{cache}")
                report(ctx, backend, cache, users, res)


def report(ctx: BenchContext, backend: str, cache: str, users: int, res: LoadResult) -> None:
    """Add one run's figures to the report."""
    what = f"{users} users, {cache} cache"
    r = ctx.report
    r.add("load", f"{what}: requests/s", backend, res.rps, "req/s",
          note=f"{res.requests} requests in {ctx.scale.load_seconds} s; machine load "
               f"average {res.load_average:.1f} at the end")
    if res.requests:
        r.add("load", f"{what}: worker CPU per request", backend,
              res.cpu_seconds / res.requests, "s",
              note=f"{res.cpu_seconds:.0f} CPU s in all workers: the capacity figure, "
                   "independent of other processes on the machine")
    r.add("load", f"{what}: p50", backend, res.p50, "s")
    big = users >= 50
    r.add("load", f"{what}: p95", backend, res.p95, "s", floor=res.healthz_p95,
          target="< 1 s" if big else "", met=(res.p95 < 1.0) if big else None,
          note="slowest p95: " + "; ".join(f"{n} {p / 1000:.2f} s (n={c})"
                                           for n, p, c in res.slowest))
    r.add("load", f"{what}: p99", backend, res.p99, "s")
    r.add("load", f"{what}: errors", backend, res.failures, "req",
          target="0" if big else "", met=(res.failures == 0) if big else None,
          note="; ".join(f"{k} x{n}" for k, n in res.errors))
    if res.rss_mib:
        r.add("load", f"{what}: peak RSS of a web worker", backend, max(res.rss_mib), "MiB",
              target="< 300 MB", met=max(res.rss_mib) * 1.048576 < 300,
              note=f"{len(res.rss_mib)} workers: "
                   + ", ".join(f"{v:.0f}" for v in res.rss_mib))
