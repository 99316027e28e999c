"""Monthly PDFs: seconds per recipient with one reused Chromium, as the monthly job renders.

For every database: the app is served by gunicorn (the scheduler's renderer opens the web
process's report page, CX_RENDER_URL), and `ctx.scale.pdf_recipients` reports are rendered
for recipients of different scopes (the company, each region, stores) through ONE
`SnapshotRenderer`: one Chromium, one browser context, a new page and token per recipient.

Figures: the first render (Chromium start, cold caches on both sides), the mean and the
slowest of the others (the per-recipient cost of a batch), the same batch with two reports
in flight at once (`SnapshotRenderer.render_batch`), a few renders each with a browser
of its own (what a batch costs without reuse), and the floor: the same Chromium printing a
static page of similar length (no server, no callbacks).
"""

from __future__ import annotations

import statistics
import time
from typing import Any

from sqlalchemy import select

from benchmarks.common import BenchContext, served_databases
from benchmarks.load_bench import SECRET, org_units, serve
from queries.db import make_engine
from queries.scope import Scope
from queries.settings import load_settings

STATIC = ("<html><body style='font-family:DejaVu Sans'>"
          + "".join(f"<h2>Section {i}</h2><table>"
                    + "".join(f"<tr><td>measure {j}</td><td>{j * 1.5:.1f}</td></tr>"
                              for j in range(30)) + "</table>" for i in range(4))
          + "</body></html>")


def recipients(url: str, count: int) -> list[Scope]:
    """`count` scopes: the whole company, then regions and stores in turn."""
    from queries.schema import org_unit

    regions, stores = org_units(url)
    engine = make_engine(url)
    with engine.connect() as conn:
        top = [str(r.id) for r in conn.execute(
            select(org_unit.c.id).where(org_unit.c.parent_id.is_(None))).all()]
    engine.dispose()
    pool: list[Scope] = [Scope.of(top)]
    store_list = [s for reg in regions for s in stores[reg]]
    i = 0
    while len(pool) < count:
        pool.append(Scope.of([regions[i % len(regions)]]))
        if len(pool) < count and store_list:
            pool.append(Scope.of([store_list[(i * 7) % len(store_list)]]))
        i += 1
    return pool[:count]


def static_floor(renderer: Any, repeats: int = 3) -> float:
    """Seconds for the renderer's Chromium to print a static page (best of `repeats`)."""

    def once() -> float:
        page = renderer._context.new_page()
        try:
            started = time.perf_counter()
            page.set_content(STATIC)
            page.pdf(format="A4", landscape=True, print_background=True)
            return time.perf_counter() - started
        finally:
            page.close()

    return min(renderer._thread.submit(once).result() for _ in range(repeats))


def run(ctx: BenchContext) -> None:
    """PDF seconds per recipient with one reused browser, beside its floors."""
    from queries.kpis import latest_full_month
    from reports.renderer import SnapshotRenderer
    from reports.token import ReportRequest

    for backend, url in served_databases(ctx).items():
        engine = make_engine(url)
        with engine.connect() as conn:
            period = latest_full_month(conn)
        engine.dispose()
        scopes = recipients(url, ctx.scale.pdf_recipients)
        served = serve(url, ctx.work, redis=False)
        settings = load_settings(_env_file=None, database_url=url, secret_key=SECRET,
                                 cx_data_dir=str(ctx.work / "web-data"),
                                 cx_render_url=served.base)
        try:
            times: list[float] = []
            started = time.perf_counter()
            with SnapshotRenderer(settings, ready_timeout=180) as renderer:
                for scope in scopes:
                    t0 = time.perf_counter()
                    pdf = renderer.render(ReportRequest(scope=scope, period=period,
                                                        label=",".join(scope.units)))
                    times.append(time.perf_counter() - t0)
                    assert pdf.startswith(b"%PDF"), "not a PDF"
                first_total = times[0] + 0.0
                floor = static_floor(renderer)
                launches = renderer.launches
            batch = time.perf_counter() - started
            rest = times[1:] or times
            per = statistics.mean(rest)
            r = ctx.report
            r.add("pdf", "first render (Chromium start, cold caches)", backend, first_total,
                  "s")
            r.add("pdf", f"seconds per recipient, reused browser ({len(rest)})", backend, per,
                  "s", floor=floor, target="< 4 s", met=per < 4.0,
                  note=f"slowest {max(rest):.2f} s; {launches} Chromium start(s); batch of "
                       f"{len(scopes)} in {batch:.1f} s; floor: a static page printed")
            with SnapshotRenderer(settings, ready_timeout=180) as renderer:
                renderer.render(ReportRequest(scope=scopes[0], period=period))  # warm start
                t0 = time.perf_counter()
                pdfs = renderer.render_batch([ReportRequest(scope=sc, period=period)
                                              for sc in scopes[1:]], at_once=2)
                two = (time.perf_counter() - t0) / max(len(pdfs), 1)
            failed = [p for p in pdfs if not isinstance(p, bytes)]
            r.add("pdf", f"seconds per recipient, reused browser, 2 at once ({len(pdfs)})",
                  backend, two, "s", floor=floor, target="< 4 s", met=two < 4.0 and not failed,
                  note=f"{len(failed)} failed; the next report computed while one prints")
            fresh: list[float] = []
            for scope in scopes[1:4]:
                t0 = time.perf_counter()
                with SnapshotRenderer(settings, ready_timeout=180) as alone:
                    alone.render(ReportRequest(scope=scope, period=period))
                fresh.append(time.perf_counter() - t0)
            r.add("pdf", "seconds per recipient, a browser each", backend,
                  statistics.mean(fresh), "s", floor=per,
                  note=f"{len(fresh)} renders; floor: the reused browser's figure")
        finally:
            served.stop()
