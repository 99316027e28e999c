"""The segments page: its callbacks against the queries, and drilling in real Chromium."""

from __future__ import annotations

import csv
import io
import sys

import pytest
from playwright.sync_api import Page, expect

from queries.breakdown import breakdown
from queries.kpis import Filters, Settings, latest_full_month
from queries.settings import ROOT
from queries.trends import kpi_trend
from tests.browser import collect_errors, wait_for_graphs

SHOTS = ROOT / "docs" / "screenshots"


@pytest.fixture
def seg(dash_app):
    """The page module, imported once the app (and so the page registry) exists."""
    return sys.modules["pages.segments"]  # the module Dash loaded (see conftest page_module)


def _query(engine, filters: Filters, by: str = "unit"):
    with engine.connect() as conn:
        period = latest_full_month(conn)
        return period, breakdown(conn, period=period, compare=period.shift(-1),
                                 filters=filters, by=by, settings=Settings(min_n=30))


def _bars(fig) -> dict[str, tuple[float, float, str]]:
    return {y: (x, e, c[0]) for t in fig.data
            for y, x, e, c in zip(t.y, t.x, t.error_x.array, t.customdata, strict=True)}


def test_a_region_shows_its_stores_with_the_queries_numbers(in_app, seg, demo_engine) -> None:
    state = {"unit": "R-WEST"}
    crumbs, caption, options, by, fig, rows, cols, note = in_app(seg.render, state)
    period, want = _query(demo_engine, Filters(unit="R-WEST"))
    assert by == "unit" and not next(o for o in options if o["value"] == "unit")["disabled"]
    assert caption.startswith(f"West · {period.label} against ")
    assert f"{int(want['responses'].sum()):,} answers" in caption
    assert [r["label"] for r in rows] == list(want["name"])
    for row, (_, w) in zip(rows, want.iterrows(), strict=True):
        assert row["row_id"] == f"unit:{w['key']}" and row["responses"] == w["responses"]
        for key in ("nps", "csat", "ces", "ces_agree", "nps_delta", "revenue"):
            assert row[key] == pytest.approx(w[key]), key
        assert row["nps_low"] == w["nps_low"] and row["ces_low"] == w["ces_low"]
    assert cols[0]["headerName"] == "Store"
    # Every bar is a store's NPS with its margin; the bar knows the unit to drill into.
    assert _bars(fig) == {w["name"]: (pytest.approx(w["nps"]), pytest.approx(w["nps_moe"]),
                                      w["key"]) for _, w in want.iterrows()}
    assert "NPS by store · West" in fig.layout.title.text
    # Each bar's value and answers written at its right, on its row; the scope's own NPS
    # over the dashed line.
    right = {a.y: a.text for a in fig.layout.annotations if a.xref == "paper" and a.x == 1}
    assert right == {w["name"]: f"{w['nps']:+.1f} <span style='color:#6C757D'>"
                                f"n={int(w['responses'])}</span>" for _, w in want.iterrows()}
    assert any(a.text.startswith("West: ") for a in fig.layout.annotations)
    assert [i["label"] for i in crumbs.items] == ["Acme Home & Garden", "West"]
    assert crumbs.items[0]["href"] == "/segments"
    assert "low sample" in note
    # The download is the table as shown.
    frame = in_app(seg.table_frame, state)
    assert list(frame["unit"]) == [r["label"] for r in rows]
    assert list(frame["nps"]) == pytest.approx([r["nps"] for r in rows])
    bars = in_app(seg.bars_frame, state)
    assert set(bars["name"]) == set(_bars(fig)) and list(bars["drill"]) == ["unit"] * len(bars)


def test_a_store_breaks_down_by_touchpoint_and_measures_switch(in_app, seg,
                                                               demo_engine) -> None:
    state = {"unit": "S09", "metric": "csat"}
    crumbs, caption, options, by, fig, rows, _cols, _note = in_app(seg.render, state)
    _, want = _query(demo_engine, Filters(unit="S09"), by="touchpoint")
    assert by == "touchpoint" and caption.startswith("Bristol · ")
    assert next(o for o in options if o["value"] == "unit")["disabled"]
    assert [r["key"] for r in rows] == list(want["key"])
    assert [r["row_id"] for r in rows] == [f"touchpoint:{k}" for k in want["key"]]
    shown = want[want["csat"].notna()]
    assert {k: v[0] for k, v in _bars(fig).items()} == {
        seg.pretty(k): pytest.approx(v) for k, v in zip(shown["key"], shown["csat"],
                                                        strict=True)}
    assert [i["label"] for i in crumbs.items] == ["Acme Home & Garden", "West", "Bristol"]
    assert crumbs.items[1]["href"] == "/segments?unit=R-WEST&metric=csat"
    trend = in_app(seg.render_trend, state)
    with demo_engine.connect() as conn:
        months = kpi_trend(conn, end=latest_full_month(conn), filters=Filters(unit="S09"))
    data = months.dropna(subset=["csat"])
    assert list(trend.data[0].y) == pytest.approx([float(v) for v in data["csat"]])
    assert list(trend.data[0].error_y.array) == pytest.approx(
        [float(v) for v in data["csat_moe"]])


def test_drill_targets_and_empty_states(in_app, seg) -> None:
    state = {"unit": "R-WEST", "by": "device", "channel": "web", "path": "x"}
    assert seg._drill(state, "unit", "S09") == {"unit": "S09", "channel": "web"}
    assert seg._drill(state, "segment", "Trade") == {"unit": "R-WEST", "channel": "web",
                                                     "segment": "Trade", "path": "x"}
    assert in_app(seg.by_of, {"unit": "S09", "touchpoint": "delivery"}) == "channel"
    assert in_app(seg.by_of, {"unit": "S09", "by": "unit"}) == "touchpoint"
    assert in_app(seg.by_of, {"by": "nonsense"}) == "unit"
    _, _, _, _, fig, rows, _, _ = in_app(seg.render, {"period": "2020-01"})
    assert rows == [] or all(r["responses"] == 0 for r in rows)
    assert "No NPS answers for Whole company, January 2020" in fig.layout.annotations[0].text
    trend = in_app(seg.render_trend, {"period": "2020-01"})
    assert "No NPS answers" in trend.layout.annotations[0].text


# ------------------------------------------------------------------------- in Chromium

def _click_bar(page: Page, key: str) -> None:
    """Click the bar whose drill key is `key` (as a person would: on the drawn bar)."""
    where = page.evaluate("""(key) => {
      const gd = document.querySelector('#segments-bars .js-plotly-plot');
      for (let i = 0; i < gd.data.length; i++) {
        const cd = gd.data[i].customdata || [];
        for (let j = 0; j < cd.length; j++) if (cd[j][0] === key) return [i, j];
      }
      return null; }""", key)
    assert where, f"no bar for {key}"
    bar = (page.locator("#segments-bars .barlayer .trace").nth(where[0])
           .locator(".point").nth(where[1]).locator("path"))
    box = bar.bounding_box()
    assert box
    page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)


@pytest.mark.browser
def test_drill_down_breadcrumb_and_back(page: Page, served_demo: str) -> None:
    errors = collect_errors(page)
    page.set_viewport_size({"width": 1366, "height": 900})
    page.goto(served_demo + "/segments")
    grid = page.locator("#segments-grid")
    expect(grid).to_contain_text("North", timeout=30_000)
    wait_for_graphs(page, "#segments-bars, #segments-trend")
    caption = page.locator("#segments-caption")
    expect(caption).to_contain_text("Whole company")
    company_caption = caption.inner_text()

    _click_bar(page, "R-WEST")  # a bar drills in: URL, filter bar, numbers all follow
    page.wait_for_url("**unit=R-WEST**", timeout=15_000)
    expect(grid).to_contain_text("Bristol", timeout=30_000)
    expect(grid).not_to_contain_text("North")
    expect(caption).to_contain_text("West · ")
    assert caption.inner_text() != company_caption
    expect(page.locator("#filters-unit")).to_contain_text("West")

    grid.locator(".ag-row [col-id=label]", has_text="Bristol").click()  # a row drills too
    page.wait_for_url("**unit=S09**", timeout=15_000)
    expect(caption).to_contain_text("Bristol", timeout=30_000)
    expect(grid).to_contain_text("Store visit")
    expect(page.locator("#segments-by input[value=touchpoint]")).to_be_checked()

    page.go_back()  # back: West and its stores again
    page.wait_for_url("**unit=R-WEST", timeout=15_000)
    expect(grid).to_contain_text("Cardiff", timeout=30_000)
    expect(caption).to_contain_text("West · ")

    page.locator("#segments-breadcrumb a", has_text="Acme Home & Garden").click()
    page.wait_for_function("() => !location.search.includes('unit=')", timeout=15_000)
    expect(grid).to_contain_text("North", timeout=30_000)
    expect(page.locator("#filters-unit")).not_to_contain_text("West")

    # Break the company down by segment, then click a segment's bar: it becomes a filter.
    page.locator("#segments-by label", has_text="Segment").click()
    page.wait_for_url("**by=segment**", timeout=15_000)
    expect(grid).to_contain_text("Families", timeout=30_000)
    wait_for_graphs(page, "#segments-bars")
    _click_bar(page, "Trade")
    page.wait_for_url("**segment=Trade**", timeout=15_000)
    assert "by=" not in page.url
    expect(page.locator("#filters-segment")).to_contain_text("Trade", timeout=30_000)
    expect(grid).to_contain_text("North", timeout=30_000)
    expect(caption).to_contain_text("only segment Trade")
    assert errors == []


@pytest.mark.browser
def test_a_url_restores_the_view_the_download_matches_and_it_fits(
        page: Page, served_demo: str, demo_engine) -> None:
    errors = collect_errors(page)
    page.set_viewport_size({"width": 1366, "height": 900})
    page.goto(served_demo + "/segments?unit=R-NORTH&segment=Families&by=channel&metric=csat")
    _, want = _query(demo_engine, Filters(unit="R-NORTH", segment="Families"), by="channel")
    grid = page.locator("#segments-grid")
    expect(grid).to_contain_text("Store", timeout=30_000)
    wait_for_graphs(page, "#segments-bars")
    expect(page.locator("#filters-unit")).to_contain_text("North")
    expect(page.locator("#filters-segment")).to_contain_text("Families")
    expect(page.locator("#segments-by input[value=channel]")).to_be_checked()
    expect(page.locator("#segments-metric input[value=csat]")).to_be_checked()
    expect(page.locator("#segments-caption")).to_contain_text("only segment Families")
    expect(page.locator("#segments-bars .gtitle")).to_contain_text("CSAT by channel · North")
    assert grid.locator(".ag-center-cols-container .ag-row").count() == len(want)

    with page.expect_download() as info:
        page.locator("#segments-table-panel").get_by_text("CSV").click()
    rows = list(csv.DictReader(io.StringIO(info.value.path().read_text())))
    assert "key" not in rows[0] and "Key" not in rows[0]  # an internal join key
    assert len(rows) == len(want)
    # Rounded to the one decimal the grid shows.
    assert [float(r["CSAT (% 4–5)"]) for r in rows] == pytest.approx(
        [round(float(v), 1) for v in want["csat"]], abs=1e-9)
    assert "segment=Families" in page.url and info.value.suggested_filename.startswith(
        "segments-table-")

    # Changing the measure writes the URL and keeps the rest of the view.
    page.locator("#segments-metric label", has_text="CES").click()
    page.wait_for_url("**metric=ces**", timeout=15_000)
    assert "segment=Families" in page.url and "by=channel" in page.url
    expect(page.locator("#segments-bars .gtitle")).to_contain_text("CES by channel",
                                                                   timeout=30_000)

    page.goto(served_demo + "/segments")
    expect(page.locator("#segments-grid")).to_contain_text("West", timeout=30_000)
    wait_for_graphs(page, "#segments-bars, #segments-trend")
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "segments.png"), full_page=True)

    page.set_viewport_size({"width": 1024, "height": 800})
    page.goto(served_demo + "/segments?unit=R-WEST")
    expect(page.locator("#segments-grid")).to_contain_text("Bristol", timeout=30_000)
    wait_for_graphs(page, "#segments-bars, #segments-trend")
    assert page.evaluate("document.documentElement.scrollWidth") <= 1024
    assert errors == []
