"""Real Chromium opens the overview served by gunicorn and sees the KPI values."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from queries.formatting import fmt_value
from queries.kpis import latest_full_month, overview_kpis
from queries.settings import ROOT

pytestmark = pytest.mark.browser


def test_overview_shows_the_kpis_without_console_errors(page: Page, served_demo: str,
                                                         demo_engine) -> None:
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    with demo_engine.connect() as conn:
        period = latest_full_month(conn)
        kpis = overview_kpis(conn, period=period)
    page.set_viewport_size({"width": 1366, "height": 900})
    page.goto(served_demo + "/")
    for kpi in kpis:
        expect(page.locator(f"#overview-{kpi.key}-value")).to_have_text(fmt_value(kpi),
                                                                       timeout=20_000)
        expect(page.locator(f"#overview-{kpi.key}-n")).to_contain_text(f"n = {kpi.n:,}")
    expect(page.locator("#overview-caption")).to_contain_text(period.label)
    shots = ROOT / "docs" / "screenshots"
    shots.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(shots / "overview.png"), full_page=True)
    assert errors == []
