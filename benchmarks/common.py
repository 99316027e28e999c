"""What the benchmark parts share: the scales, the run context and the report of figures."""

from __future__ import annotations

import json
import os
import platform
import resource
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Scale:
    """How big a run is. `customers`, `months`, `regions` and `stores` drive the demo
    generator; the rest bound the load test and the PDF run."""

    name: str
    customers: int
    months: int
    regions: int
    stores: int
    load_seconds: int
    users: tuple[int, ...]
    pdf_recipients: int
    repeats: int
    caches: tuple[str, ...] = ("in-process", "redis")
    serve_on: tuple[str, ...] = ()
    """Backends the load and PDF parts serve from (empty: every measured backend)."""


SCALES = {
    # Keeps the benchmark code working in CI and `make bench` (about two minutes): every
    # part runs, the serving parts once (PostgreSQL behind Redis, the production setup).
    "small": Scale("small", customers=2_000, months=13, regions=4, stores=24,
                   load_seconds=6, users=(10, 50), pdf_recipients=3, repeats=3,
                   caches=("redis",), serve_on=("postgresql",)),
    # About the demo's size (its org; the rates of answers and sales per customer):
    # the middle of the growth curve.
    "default": Scale("default", customers=20_000, months=24, regions=3, stores=12,
                     load_seconds=60, users=(10, 50), pdf_recipients=20, repeats=10),
    # The large company: about 10M answers, 1M customers, 30M transactions, 5 years.
    "large": Scale("large", customers=1_000_000, months=60, regions=20, stores=220,
                   load_seconds=60, users=(10, 50), pdf_recipients=20, repeats=20),
}


@dataclass
class Figure:
    """One measured figure, with the floor it is compared to and the target it aims at."""

    part: str
    measure: str
    backend: str
    value: float
    unit: str
    floor: float | None = None
    target: str = ""
    met: bool | None = None
    note: str = ""

    @property
    def ratio(self) -> float | None:
        """value / floor (how many times the floor), when there is a floor."""
        if self.floor in (None, 0) or self.value is None:
            return None
        return self.value / self.floor


@dataclass
class Report:
    """Figures in the order measured; printed as they come and saved as JSON at the end."""

    figures: list[Figure] = field(default_factory=list)
    started: float = field(default_factory=time.time)

    def add(self, part: str, measure: str, backend: str, value: float, unit: str, *,
            floor: float | None = None, target: str = "", met: bool | None = None,
            note: str = "") -> Figure:
        """Record a figure and print its line at once (a long run shows progress)."""
        fig = Figure(part, measure, backend, value, unit, floor, target, met, note)
        self.figures.append(fig)
        print(format_line(fig), flush=True)
        return fig

    def to_json(self, path: Path, meta: dict[str, object]) -> None:
        """Write every figure and the machine description to `path`."""
        rows = [{**asdict(f), "ratio": f.ratio} for f in self.figures]
        path.write_text(json.dumps({"meta": meta, "figures": rows}, indent=2, default=str))


def _num(value: float | None, unit: str = "") -> str:
    if value is None:
        return "-"
    if unit in ("rows/s", "req/s", "rows") or abs(value) >= 1000:
        return f"{value:,.0f}"
    if abs(value) >= 100:
        return f"{value:.0f}"
    if abs(value) >= 1:
        return f"{value:.2f}"
    return f"{value:.3f}"


def format_line(fig: Figure) -> str:
    """One aligned line: part, measure, backend, value unit, floor, ratio, target, verdict."""
    floor = f"floor {_num(fig.floor, fig.unit)}" if fig.floor is not None else ""
    ratio = f"x{fig.ratio:.1f}" if fig.ratio is not None else ""
    verdict = {True: "met", False: "MISSED", None: ""}[fig.met]
    target = f"target {fig.target}" if fig.target else ""
    return (f"{fig.part:<9} {fig.measure:<46} {fig.backend:<10} "
            f"{_num(fig.value, fig.unit):>12} {fig.unit:<7} {floor:<18} {ratio:<7} "
            f"{target:<22} {verdict:<6} {fig.note}").rstrip()


@dataclass
class BenchContext:
    """A run's scale, its databases (backend name -> URL), its work folder and its report.

    The etl part generates the demo into `work / "demo"` and loads it into every database;
    the later parts read those databases."""

    scale: Scale
    databases: dict[str, str]
    work: Path
    report: Report


def served_databases(ctx: BenchContext) -> dict[str, str]:
    """The databases the load and PDF parts serve from: the scale's `serve_on` among those
    measured (all of them when it names none that was measured)."""
    chosen = {b: u for b, u in ctx.databases.items() if b in ctx.scale.serve_on}
    return chosen or dict(ctx.databases)


def peak_rss_mib() -> float:
    """Peak resident memory of this process, MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def rss_mib(pid: int) -> float:
    """Current resident memory of process `pid`, MiB (Linux /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0-100) by linear interpolation, as numpy does by default."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100
    lo = int(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


@contextmanager
def timed() -> Iterator[list[float]]:
    """`with timed() as t: ...` then t[0] is the elapsed seconds."""
    out: list[float] = []
    start = time.perf_counter()
    try:
        yield out
    finally:
        out.append(time.perf_counter() - start)


def machine() -> dict[str, object]:
    """What the figures were measured on."""
    meminfo = Path("/proc/meminfo").read_text().splitlines()[0].split()[1]
    return {"cpus": os.cpu_count(), "memory_gib": round(int(meminfo) / 1024**2, 1),
            "python": platform.python_version(), "platform": platform.platform(),
            "load_average": os.getloadavg()}
