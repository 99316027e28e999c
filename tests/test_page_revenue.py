"""The revenue page: its callbacks draw exactly what `queries.links` computes, and in a real
browser it loads cleanly, keeps its toggles in the URL, restores a view from a link and
downloads the rows it shows."""

from __future__ import annotations

import datetime as dt
import io
import sys

import pandas as pd
import pytest
from dash import no_update
from playwright.sync_api import Page, expect

from dashboard.components.download import file_frame
from queries.kpis import latest_full_month
from queries.links import revenue_after_survey, unit_cx_revenue
from queries.settings import ROOT
from tests.browser import collect_errors, wait_for_graphs

browser = pytest.mark.browser


@pytest.fixture
def revenue(dash_app):
    """The page module (imported once the app, which registers the pages, exists)."""
    return sys.modules["pages.revenue"]  # the module Dash loaded (see conftest page_module)


@pytest.fixture
def days(dash_app) -> tuple[int, int]:
    s = dash_app.server.config["CX_SETTINGS"]
    return s.cx_revenue_days, s.cx_active_days


def _window(conn):
    period = latest_full_month(conn)
    return period.shift(-11), period


def find(node, id_):
    """The component with `id_` in a Dash component tree (None when absent)."""
    if getattr(node, "id", None) == id_:
        return node
    kids = getattr(node, "children", None)
    for kid in kids if isinstance(kids, list | tuple) else [kids]:
        if kid is not None and not isinstance(kid, str | int | float):
            hit = find(kid, id_)
            if hit is not None:
                return hit
    return None


def text(node) -> str:
    """All the text of a component tree."""
    if node is None:
        return ""
    if isinstance(node, str | int | float):
        return str(node)
    if isinstance(node, list | tuple):
        return " ".join(text(k) for k in node)
    return text(getattr(node, "children", None))


def _money(v: float) -> str:
    """How the product writes a money total: whole pounds, whatever its size."""
    return ("-" if v < 0 else "") + "£" + f"{abs(round(v)):,}"


def _link(demo_engine, days, **filters):
    with demo_engine.connect() as conn:
        first, last = _window(conn)
        return revenue_after_survey(conn, start=first.start, end=last.end, window_days=days[0],
                                    churn_days=days[1], **filters)


def _units(demo_engine, lag=0, metric="nps", **filters):
    with demo_engine.connect() as conn:
        first, _ = _window(conn)
        return unit_cx_revenue(conn, months=[first.shift(i) for i in range(12)], metric=metric,
                               lag=lag, level="store", **filters)


# ------------------------------------------------------------------- callbacks vs queries


@pytest.mark.parametrize("state", [{}, {"unit": "R-NORTH"}, {"segment": "Families",
                                                             "device": "mobile"}])
def test_group_bars_churn_and_risk_equal_the_query(revenue, in_app, demo_engine, days,
                                                   state) -> None:
    fig, gap, note, churn, risk, caption, _ = in_app(revenue.render_groups, dict(state))
    link = _link(demo_engine, days, **state)
    groups = [link.promoter, link.passive, link.detractor]
    bar = fig.data[0]
    assert list(bar.x) == ["Promoters (9–10)", "Passives (7–8)", "Detractors (0–6)"]
    assert list(bar.y) == pytest.approx([g.mean for g in groups], rel=1e-12)
    assert list(bar.error_y.array) == pytest.approx([g.high - g.mean for g in groups])
    assert list(bar.error_y.arrayminus) == pytest.approx([g.mean - g.low for g in groups])
    assert list(bar.marker.color) == ["#009E73", "#999999", "#D55E00"]
    assert [int(c[0]) for c in bar.customdata] == [g.n for g in groups]
    assert f"{abs(link.gap.diff):,.2f}" in text(gap)
    assert ("Significant" in text(gap)) == bool(link.gap.significant)
    assert f"{link.n:,} analysed" in note and f"{link.left_out:,} left out" in note
    assert (f"{link.unlinked:,} from people outside" in note) == (link.unlinked > 0)
    for g in groups:
        shown = find(churn, f"revenue-churn-{g.group}-value").children
        assert shown == f"{100 * g.churn:.1f}%"
        assert f"{100 * g.churn_low:.1f}–{100 * g.churn_high:.1f}%" in text(
            find(churn, f"revenue-churn-{g.group}-detail"))
    # One definition, one label: churn gap x detractors' revenue is "Revenue at risk".
    assert link.revenue_at_risk == pytest.approx(link.churn_gap.diff * link.detractor.total)
    assert find(risk, "revenue-at-risk-label").children == "Revenue at risk"
    assert find(risk, "revenue-at-risk").children == _money(link.revenue_at_risk)
    assert find(risk, "revenue-detractor-revenue-label").children == "Revenue from detractors"
    assert find(risk, "revenue-detractor-revenue").children == _money(link.detractor.total)
    assert ("North" in caption) == (state.get("unit") == "R-NORTH")


def test_group_builders_return_the_query_rows(revenue, in_app, demo_engine, days) -> None:
    link = _link(demo_engine, days, unit="R-NORTH")
    frame = in_app(revenue.groups_frame, {"unit": "R-NORTH"})
    assert frame["revenue_per_answer"].tolist() == pytest.approx(
        [link.promoter.mean, link.passive.mean, link.detractor.mean])
    assert frame["answers"].tolist() == [link.promoter.n, link.passive.n, link.detractor.n]
    churn = in_app(revenue.churn_frame, {"unit": "R-NORTH"})
    assert churn["churned"].tolist() == [link.promoter.churned, link.passive.churned,
                                         link.detractor.churned]
    risk = in_app(revenue.risk_frame, {"unit": "R-NORTH"})
    assert risk["value_gbp"].tolist() == pytest.approx([link.revenue_at_risk,
                                                        link.detractor_revenue])


@pytest.mark.parametrize(("lag", "metric", "unit"), [(0, "nps", None), (1, "nps", "R-NORTH"),
                                                     (1, "csat", None)])
def test_unit_scatter_equals_the_query(revenue, in_app, demo_engine, lag, metric,
                                       unit) -> None:
    state = {k: v for k, v in {"lag": str(lag), "metric": metric, "unit": unit}.items() if v}
    fig, words, note = in_app(revenue.render_units, state)
    link = _units(demo_engine, lag=lag, metric=metric, unit=unit)
    points, corr = link.points, link.correlation
    dots, line = fig.data
    assert list(dots.x) == pytest.approx(points["score"].tolist())
    assert list(dots.y) == pytest.approx(points["growth"].tolist())
    # The hover of each point: store, its month, the score's month, answers and revenue.
    label = {m: dt.date.fromisoformat(f"{m}-01").strftime("%b %Y") for m in points["month"]}
    label |= {m: dt.date.fromisoformat(f"{m}-01").strftime("%b %Y")
              for m in points["score_month"]}
    assert [tuple(row[:4]) for row in dots.customdata] == list(zip(
        points["name"], points["month"].map(label), points["score_month"].map(label),
        points["n"].astype(int), strict=True))
    assert [row[4] for row in dots.customdata] == pytest.approx(points["revenue"].tolist())
    assert list(line.y) == pytest.approx([corr.intercept + corr.slope * x for x in line.x])
    title = fig.layout.title.text
    assert f"r = {corr.r:.2f} (95% CI {corr.low:.2f} to {corr.high:.2f})" in title
    assert f"{corr.n:,} store-months" in title
    assert ("month before" in fig.layout.xaxis.title.text) == (lag == 1)
    assert ("No clear link" in text(words)) == (not corr.significant)
    if unit:
        stores = set(points["unit"])
        assert stores == {"S01", "S02", "S03", "S04"}
        assert "Stores of North only" in note
    frame = in_app(revenue.units_frame, state)
    pd.testing.assert_frame_equal(frame.drop(columns=["metric", "lag"]), points,
                                  check_dtype=False)


def test_filters_a_panel_cannot_apply_are_named(revenue, in_app) -> None:
    _fig, _words, note = in_app(revenue.render_units, {"device": "mobile"})
    assert "device filter narrows the score only" in note
    *_, scope_note = in_app(revenue.render_groups, {"compare": "yoy"})
    assert "does not compare periods" in text(scope_note)


def test_no_data_is_said_in_words(revenue, in_app) -> None:
    fig, *_ = in_app(revenue.render_groups, {"period": "2020-01"})
    assert "No survey answer" in fig.layout.annotations[0].text
    fig, *_ = in_app(revenue.render_units, {"period": "2020-01"})
    assert "No store-month" in fig.layout.annotations[0].text


def test_toggles_write_the_url(revenue, in_app) -> None:
    assert in_app(revenue.write_toggles, "nps", "1", "?unit=R-NORTH") == "?unit=R-NORTH&lag=1"
    assert in_app(revenue.write_toggles, "csat", "0", "?unit=R-NORTH&lag=1") == \
        "?unit=R-NORTH&metric=csat"
    assert in_app(revenue.write_toggles, "nps", "0", "?unit=R-NORTH") is no_update


# ------------------------------------------------------------------------------ browser


@browser
def test_revenue_page_in_a_browser(page: Page, served_demo: str, demo_engine, in_app,
                                   revenue, days) -> None:
    errors = collect_errors(page)
    page.set_viewport_size({"width": 1366, "height": 900})
    page.goto(served_demo + "/revenue")
    wait_for_graphs(page)
    link = _link(demo_engine, days)
    expect(page.locator("#revenue-gap-text")).to_contain_text(f"{link.gap.diff:,.2f}")
    lag0 = _units(demo_engine).correlation
    title = page.locator("#revenue-units-graph .gtitle")
    expect(title).to_contain_text(f"r = {lag0.r:.2f}")
    shots = ROOT / "docs" / "screenshots"
    shots.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(shots / "revenue.png"), full_page=True)

    page.get_by_text("Score one month earlier").click()
    page.wait_for_url("**/revenue?lag=1")
    lag1 = _units(demo_engine, lag=1).correlation
    expect(title).to_contain_text(f"r = {lag1.r:.2f} (95% CI {lag1.low:.2f}")
    wait_for_graphs(page)

    with page.expect_download() as info:
        page.locator("#revenue-units-panel .cx-downloads button", has_text="CSV").click()
    got = pd.read_csv(info.value.path())
    shown = in_app(revenue.units_frame, {"lag": "1"})
    pd.testing.assert_frame_equal(
        got, pd.read_csv(io.StringIO(file_frame(shown).to_csv(index=False))))
    assert info.value.suggested_filename == "revenue-units-lag-1.csv"
    assert len(got) == lag1.n
    assert errors == []


@browser
def test_a_link_restores_the_view_at_1024_px(page: Page, served_demo: str, demo_engine,
                                             days) -> None:
    errors = collect_errors(page)
    page.set_viewport_size({"width": 1024, "height": 800})
    page.goto(served_demo + "/revenue?unit=R-NORTH&lag=1")
    wait_for_graphs(page)
    expect(page.get_by_label("Score one month earlier")).to_be_checked()
    expect(page.get_by_label("NPS", exact=True)).to_be_checked()
    expect(page.locator("#filters-unit")).to_contain_text("North")
    north = _units(demo_engine, lag=1, unit="R-NORTH").correlation
    expect(page.locator("#revenue-units-graph .gtitle")).to_contain_text(
        f"r = {north.r:.2f} (95% CI {north.low:.2f} to {north.high:.2f}) · {north.n} ")
    link = _link(demo_engine, days, unit="R-NORTH")
    expect(page.locator("#revenue-churn-detractor-value")).to_have_text(
        f"{100 * link.detractor.churn:.1f}%")
    expect(page.locator("#revenue-caption")).to_contain_text("North")
    assert page.evaluate("document.documentElement.scrollWidth") <= 1024
    assert errors == []
