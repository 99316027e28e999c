"""A batch of recipients is printed by one Chromium, and no recipient's page sees another's."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from queries.periods import Month
from queries.scope import Scope
from queries.settings import load_settings
from reports.delivery import _Renderers
from reports.renderer import LoopbackServer, RenderQueue, SnapshotRenderer
from reports.token import ReportRequest

pytestmark = pytest.mark.browser
PERIOD = Month(2026, 10)


def _text(pdf: bytes, tmp_path: Path, name: str) -> str:
    path = tmp_path / f"{name}.pdf"
    path.write_bytes(pdf)
    assert shutil.which("pdftotext"), "pdftotext missing: apt-get install poppler-utils"
    return subprocess.run(["pdftotext", "-layout", str(path), "-"], capture_output=True,
                          text=True, check=True).stdout


@pytest.fixture(scope="module")
def settings(demo_url: str, tmp_path_factory):
    return load_settings(_env_file=None, database_url=demo_url, secret_key="s" * 40,
                         cx_data_dir=str(tmp_path_factory.mktemp("reusedata")))


# The renderer's reuse is the browser's business, not the database's (each scope's numbers
# are checked on both backends in test_reports_renderer.py): SQLite only keeps CI short.
@pytest.mark.parametrize("demo_url", ["sqlite"], indirect=True)
def test_a_batch_starts_chromium_once_and_keeps_each_scope_apart(settings,
                                                                 tmp_path: Path) -> None:
    from dashboard.app import create_app

    batch = [("R-NORTH", "North", ("South", "West", "Brighton", "Bristol")),
             ("R-SOUTH", "South", ("North", "West", "Leeds", "Bristol")),
             ("R-WEST", "West", ("North", "South", "Leeds", "Brighton")),
             ("R-NORTH", "North", ("South", "West", "Brighton", "Bristol"))]
    with LoopbackServer(create_app(settings).server) as server, \
            SnapshotRenderer(settings, ready_timeout=90, base_url=server.url) as renderer:
        for unit, name, others in batch:
            pdf = renderer.render(ReportRequest(scope=Scope.of(unit), period=PERIOD))
            text = _text(pdf, tmp_path, unit)
            assert f"Scope: {name}" in text, unit
            for other in others:
                assert other not in text, (unit, other)
            # The shared browser context carries nothing from one recipient to the next.
            cookies = renderer._thread.submit(renderer._context.cookies).result()
            assert cookies == []
        assert renderer.launches == 1
        assert renderer.renders == len(batch)
        # Two in flight at once (each in its own context): still each its own scope, in order.
        pdfs = renderer.render_batch([ReportRequest(scope=Scope.of(unit), period=PERIOD)
                                      for unit, _name, _others in batch], at_once=2)
        assert len(pdfs) == len(batch) and all(isinstance(p, bytes) for p in pdfs)
        for (unit, name, others), pdf in zip(batch, pdfs, strict=True):
            text = _text(pdf, tmp_path, f"batch-{unit}")
            assert f"Scope: {name}" in text, unit
            for other in others:
                assert other not in text, (unit, other)
        assert renderer.launches == 1
        assert renderer.renders == 2 * len(batch)


def test_the_monthly_jobs_renderer_is_opened_once_for_all_recipients(settings) -> None:
    # The monthly job's holder (reports.delivery) makes its renderer on first use and hands
    # the same one to every recipient; the queue behind it holds one SnapshotRenderer.
    made: list[RenderQueue] = []

    def factory(s):
        made.append(RenderQueue(s, base_url="http://127.0.0.1:9", concurrency=1))
        return made[-1]

    with _Renderers(factory, settings) as holder:
        first = holder.get()
        assert all(holder.get() is first for _ in range(5))
    assert len(made) == 1
