"""Every page at 1024 px in real Chromium: no table or grid with a cut column, no chart text
label over another, no sideways scroll; and the checks themselves catch what they claim."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from tests.browser import collect_errors
from tests.layout_checks import cut_tables, overlapping_labels

# (path, what must be drawn before the layout is judged)
PAGES = [
    ("/", "#overview-table"),
    ("/revenue", "#revenue-groups-graph"),
    ("/employees?unit=R-WEST&wave=2026-03-01", "#employees-table"),  # hidden groups
    ("/employees", "#employees-chain-graph"),
    ("/segments", "#segments-grid .ag-row"),
    ("/segments?unit=R-WEST&by=touchpoint&metric=ces", "#segments-grid .ag-row"),
    ("/drivers", "#drivers-table"),
    ("/health", "#health-runs-table .ag-row"),
]


@pytest.mark.browser
# Layout is the browser's business: the same numbers come from both backends (the data tests
# check that), so the pages are laid out once, on SQLite, to keep CI short.
@pytest.mark.parametrize("demo_url", ["sqlite"], indirect=True)
# 1024 px, the narrowest supported screen: what fits there fits wider.
@pytest.mark.parametrize("width", [1024])
@pytest.mark.parametrize(("path", "ready"), PAGES, ids=[p for p, _ in PAGES])
def test_no_cut_column_and_no_overlapping_label(page: Page, served_demo: str, path: str,
                                                ready: str, width: int) -> None:
    errors = collect_errors(page)
    page.set_viewport_size({"width": width, "height": 900})
    page.goto(served_demo + path)
    expect(page.locator(ready).first).to_be_visible(timeout=30_000)
    # Every chart laid out (an empty one says so in words and has no trace to wait for).
    page.wait_for_function("""() => Array.from(document.querySelectorAll('.dash-graph'))
        .every(g => !g.classList.contains('dash-graph--pending')
                    && g.querySelector('.js-plotly-plot')
                    && g.querySelector('.js-plotly-plot')._fullLayout)""", timeout=30_000)
    page.wait_for_timeout(500)  # AG Grid sizes its columns on the next frame
    assert cut_tables(page) == []
    assert overlapping_labels(page) == []
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    assert errors == []


@pytest.mark.browser
def test_the_checks_catch_a_cut_table_and_overlapping_labels(page: Page) -> None:
    # A 600 px table in a 300 px box and two chart labels drawn at the same place.
    page.set_content("""
      <div id="box" style="width:300px"><table id="wide" style="width:600px">
        <tr><td>a</td><td>b</td></tr></table></div>
      <div id="chart"><div class="js-plotly-plot"><svg width="400" height="100">
        <text x="10" y="50" font-size="14">Plymouth</text>
        <text x="20" y="52" font-size="14">Oxford</text>
        <text x="300" y="50" font-size="14">Leeds</text>
      </svg></div></div>""")
    assert cut_tables(page) == ["table #wide is 600 px wide in a 300 px box"]
    assert overlapping_labels(page) == ['#chart: "Plymouth" overlaps "Oxford"']
