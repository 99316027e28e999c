"""The employees page: its callbacks draw what `queries/` computes, hidden groups show no
number anywhere, and in a real browser it loads cleanly, keeps its state in the URL,
restores a view from a link and downloads the rows it shows."""

from __future__ import annotations

import datetime as dt
import io
import re
import sys

import pandas as pd
import pytest
from dash import no_update
from playwright.sync_api import Page, expect

from dashboard.components.download import file_frame
from queries.employees import engagement_by_unit
from queries.kpis import latest_full_month, latest_wave
from queries.links import engagement_vs_cx
from queries.periods import Month
from queries.settings import ROOT
from queries.trends import engagement_trend
from tests.browser import collect_errors, wait_for_graphs

browser = pytest.mark.browser
MARCH = dt.date(2026, 3, 1)  # the demo wave where two West stores are hidden


@pytest.fixture
def employees(dash_app):
    """The page module (imported once the app, which registers the pages, exists)."""
    return sys.modules["pages.employees"]  # the module Dash loaded (see conftest page_module)


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


def _latest(conn) -> dt.date:
    return latest_wave(conn, before=latest_full_month(conn).end)


def _latest_wave(demo_engine) -> dt.date:
    with demo_engine.connect() as conn:
        return _latest(conn)


def _chain(conn, wave: dt.date, outcome: str = "csat", unit: str | None = None):
    month = Month.of(wave)
    return engagement_vs_cx(conn, waves=[wave], start=month.shift(-2).start, end=month.end,
                            outcome=outcome, min_respondents=5, unit=unit)


# ------------------------------------------------------------------- callbacks vs queries


def test_company_breakdown_equals_the_query(employees, in_app, demo_engine) -> None:
    with demo_engine.connect() as conn:
        wave = _latest(conn)
        exp = engagement_by_unit(conn, wave=wave, parent="ACME")
    fig, style, table, intro = in_app(employees.render_units, {})
    eng, enps = fig.data
    assert list(eng.y) == exp["name"].tolist() == ["North", "South", "West"]
    assert list(eng.x) == pytest.approx(exp["engagement"].astype(float).tolist())
    assert list(eng.error_x.array) == pytest.approx(exp["engagement_moe"].astype(float).tolist())
    assert list(enps.x) == pytest.approx(exp["enps"].astype(float).tolist())
    assert list(enps.error_x.array) == pytest.approx(exp["enps_moe"].astype(float).tolist())
    assert style["height"] == f"{fig.layout.height}px"
    for row in exp.itertuples():
        cells = find(table, f"employees-row-{row.unit}").children
        assert text(cells[1]).startswith(f"{row.engagement:.1f}%")
        assert f"{int(row.respondents)} of {int(row.headcount)}" in text(cells[3])
    assert Month.of(wave).label in intro


def test_hidden_units_show_no_number_and_say_why(employees, in_app, demo_engine) -> None:
    state = {"unit": "R-WEST", "wave": "2026-03-01"}
    with demo_engine.connect() as conn:
        exp = engagement_by_unit(conn, wave=MARCH, parent="R-WEST")
    hidden = exp[exp["hidden"]]
    assert set(hidden["name"]) == {"Bristol", "Cardiff"}
    fig, _style, table, _intro = in_app(employees.render_units, state)
    visible = exp[~exp["hidden"]]
    for trace in fig.data:
        assert list(trace.y) == visible["name"].tolist()
    assert list(fig.data[0].x) == pytest.approx(visible["engagement"].astype(float).tolist())
    # every unit keeps its row on the axis; the hidden ones say so, with the query's reason
    assert list(fig.layout.yaxis.categoryarray) == exp["name"].tolist()
    notes = [a.text for a in fig.layout.annotations]
    assert len(notes) == 1  # one note for every hidden group, not one label each
    for row in hidden.itertuples():
        assert f"{row.name}: {row.reason}" in notes[0]
    # Each panel its own titled axis, so "100%" and "-100" never read as one scale.
    assert fig.layout.xaxis.title.text == "Engagement, % favourable"
    assert fig.layout.xaxis2.title.text == "eNPS, −100 to +100"
    for row in hidden.itertuples():
        cells = find(table, f"employees-row-{row.unit}").children
        assert row.reason in text(cells[0])
        assert [text(c) for c in cells[1:]] == ["hidden"] * 3
        assert not re.search(r"\d", " ".join(text(c) for c in cells[1:]))
    frame = in_app(employees.units_frame, state)
    numbers = ["respondents", "headcount", "engagement", "engagement_moe", "enps", "enps_moe",
               "participation"]
    assert frame.loc[frame["hidden"], numbers].isna().all().all()
    assert frame["reason"].tolist()[:2] == hidden["reason"].tolist()


def test_trend_equals_the_query_with_hidden_waves_as_gaps(employees, in_app,
                                                          demo_engine) -> None:
    with demo_engine.connect() as conn:
        period = latest_full_month(conn)
        exp = engagement_trend(conn, end=period, unit="S12")
    fig, note = in_app(employees.render_trend, {"unit": "S12"})
    eng, enps = fig.data
    assert list(eng.x) == [Month.of(dt.date.fromisoformat(w)).start.strftime("%b %Y")
                           for w in exp["wave"]]
    expected = [None if pd.isna(v) else pytest.approx(float(v)) for v in exp["engagement"]]
    assert list(eng.y) == expected
    assert list(enps.y) == [None if pd.isna(v) else pytest.approx(float(v))
                            for v in exp["enps"]]
    assert eng.connectgaps is False
    assert "March 2026 hidden (fewer than 5 respondents)" in note
    hidden_notes = [a.text for a in fig.layout.annotations if "hidden" in a.text]
    assert len(hidden_notes) == 1 and "Mar 2026" in hidden_notes[0]


def test_a_store_hidden_among_its_siblings_stays_hidden_in_its_trend(employees, in_app,
                                                                     demo_engine) -> None:
    # Bristol has enough respondents in March, but showing it would reveal Cardiff by
    # subtraction from West: the breakdown hides it, so its own trend must too.
    with demo_engine.connect() as conn:
        raw = engagement_trend(conn, end=latest_full_month(conn), unit="S09")
    march = raw["wave"].tolist().index("2026-03-01")
    assert raw["hidden"][march]  # the query itself applies the subtraction rule
    fig, note = in_app(employees.render_trend, {"unit": "S09"})
    assert fig.data[0].y[march] is None and fig.data[1].y[march] is None
    assert "worked out by subtraction" in note
    frame = in_app(employees.trend_frame, {"unit": "S09"})
    assert frame["engagement"].isna().tolist()[march]


@pytest.mark.parametrize("outcome", ["csat", "nps"])
def test_chain_scatter_equals_the_query(employees, in_app, demo_engine, outcome) -> None:
    with demo_engine.connect() as conn:
        link = _chain(conn, _latest(conn), outcome)
    state = {"outcome": outcome} if outcome == "nps" else {}
    fig, words, note = in_app(employees.render_chain, state)
    dots, line = fig.data
    corr = link.correlation
    assert list(dots.x) == pytest.approx(link.points["engagement"].tolist())
    assert list(dots.y) == pytest.approx(link.points["score"].tolist())
    assert list(line.y) == pytest.approx([corr.intercept + corr.slope * x for x in line.x])
    assert f"r = {corr.r:.2f} (95% CI {corr.low:.2f} to {corr.high:.2f}) · {corr.n} stores" \
        in fig.layout.title.text
    assert outcome.upper() in fig.layout.yaxis.title.text
    assert ("more engaged staff have higher" in text(words)) == (corr.significant and corr.r > 0)
    assert Month.of(_latest_wave(demo_engine)).label in note


def test_chain_leaves_out_small_and_complementary_stores(employees, in_app,
                                                         demo_engine) -> None:
    state = {"unit": "R-WEST", "wave": "2026-03-01"}
    with demo_engine.connect() as conn:
        link = _chain(conn, MARCH, unit="R-WEST")
    # The query drops Cardiff (too few) and Bristol (it would reveal Cardiff by subtraction).
    assert set(link.points["name"]) == {"Exeter", "Plymouth"}
    fig, _words, note = in_app(employees.render_chain, state)
    assert set(fig.data[0].text) == {"Exeter", "Plymouth"}  # and Bristol, its complement
    assert "2 stores left out to protect anonymity" in note
    assert set(in_app(employees.chain_frame, state)["name"]) == {"Exeter", "Plymouth"}


def test_chain_of_a_store_with_no_point_shown_says_so(employees, dash_app,
                                                      demo_engine) -> None:
    # Cardiff's own manager in the March wave: the only store in scope is under the
    # anonymity threshold, so the chain has no point (a load test of managers hit a
    # KeyError here: a list mask of no rows selected no columns).
    from flask import g

    from auth.web import Principal
    from queries.scope import Scope

    state = {"wave": "2026-03-01"}
    with demo_engine.connect() as conn:
        assert _chain(conn, MARCH, unit="S12").points.empty
    with dash_app.server.test_request_context("/"):
        g.principal = Principal("user", "m@example.com", "manager", Scope(("S12",)))
        fig, words, note = employees.render_chain(state)
        frame = employees.chain_frame(state)
    assert "No store in this view has both" in fig.layout.annotations[0].text
    assert words is None and note is None
    assert frame.empty and "engagement" in frame.columns


def test_a_region_manager_sees_the_same_stores_left_out(employees, dash_app) -> None:
    """West's manager in March: the chain leaves out Cardiff (too few) and Bristol (its
    complement) as it does for the whole company, and Bristol's trend hides March too.
    The anonymity check reads the wave once for the whole tree; inside a manager's scope it
    is narrowed to their units (a first version of it was refused by the scope gateway)."""
    from flask import g

    from auth.web import Principal
    from queries.scope import Scope

    with dash_app.server.test_request_context("/"):
        g.principal = Principal("user", "west@example.com", "manager", Scope(("R-WEST",)))
        fig, _words, note = employees.render_chain({"wave": "2026-03-01"})
        chain = employees.chain_frame({"wave": "2026-03-01"})
        trend = employees.trend_frame({"unit": "S09"})
    assert set(fig.data[0].text) == {"Exeter", "Plymouth"}
    assert "2 stores left out to protect anonymity" in note
    assert set(chain["name"]) == {"Exeter", "Plymouth"}
    march = trend[trend["wave"] == "2026-03-01"].iloc[0]
    assert bool(march["hidden"]) and "subtraction" in march["reason"]


def test_page_state_is_written_to_the_url(employees, in_app) -> None:
    assert in_app(employees.write_state, "2026-03-01", "nps", "?unit=R-WEST") == \
        "?unit=R-WEST&outcome=nps&wave=2026-03-01"
    assert in_app(employees.write_state, None, "csat", "?unit=R-WEST&wave=2026-03-01") == \
        "?unit=R-WEST"
    assert in_app(employees.write_state, None, "csat", "?unit=R-WEST") is no_update


def test_filters_that_do_not_apply_are_named(employees, in_app) -> None:
    caption, note = in_app(employees.render_header, {"channel": "web", "wave": "1999-01-01"})
    assert "channel filter narrows the customer score" in text(note)
    assert "No engagement wave on 1999-01-01" in text(note)
    assert "wave of" in caption


# ------------------------------------------------------------------------------ browser


@browser
def test_employees_page_in_a_browser(page: Page, served_demo: str, demo_engine, in_app,
                                     employees) -> None:
    errors = collect_errors(page)
    page.set_viewport_size({"width": 1366, "height": 900})
    page.goto(served_demo + "/employees")
    wait_for_graphs(page)
    with demo_engine.connect() as conn:
        wave = _latest(conn)
        csat = _chain(conn, wave).correlation
        nps = _chain(conn, wave, "nps").correlation
        exp = engagement_by_unit(conn, wave=wave, parent="ACME").set_index("unit")
    chain_title = page.locator("#employees-chain-graph .gtitle")
    expect(chain_title).to_contain_text(f"r = {csat.r:.2f} (95% CI {csat.low:.2f}")
    expect(page.locator("#employees-row-R-NORTH")).to_contain_text(
        f"{exp.loc['R-NORTH', 'engagement']:.1f}%")
    shots = ROOT / "docs" / "screenshots"
    shots.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(shots / "employees.png"), full_page=True)

    page.get_by_text("NPS", exact=True).click()
    page.wait_for_url("**/employees?outcome=nps")
    expect(chain_title).to_contain_text(f"r = {nps.r:.2f} (95% CI {nps.low:.2f}")
    expect(page.locator("#employees-chain-graph .ytitle")).to_contain_text("NPS")
    wait_for_graphs(page)
    with page.expect_download() as info:
        page.locator("#employees-chain-panel .cx-downloads button", has_text="CSV").click()
    got = pd.read_csv(info.value.path())
    shown = in_app(employees.chain_frame, {"outcome": "nps"})
    pd.testing.assert_frame_equal(
        got, pd.read_csv(io.StringIO(file_frame(shown).to_csv(index=False))))
    # The customer score as the chart's hover writes it: one decimal.
    assert got["Customer score"].tolist() == pytest.approx(
        [round(v, 1) for v in _chain_points(demo_engine, wave, "nps")["score"]], abs=1e-9)
    assert errors == []


def _chain_points(demo_engine, wave: dt.date, outcome: str) -> pd.DataFrame:
    with demo_engine.connect() as conn:
        return _chain(conn, wave, outcome).points


@browser
def test_a_link_restores_hidden_groups_at_1024_px(page: Page, served_demo: str, demo_engine,
                                                  in_app, employees) -> None:
    errors = collect_errors(page)
    page.set_viewport_size({"width": 1024, "height": 800})
    page.goto(served_demo + "/employees?unit=R-WEST&wave=2026-03-01")
    wait_for_graphs(page)
    expect(page.locator("#filters-unit")).to_contain_text("West")
    expect(page.locator("#employees-wave")).to_contain_text("March 2026 wave")
    expect(page.locator("#employees-row-S12")).to_contain_text("fewer than 5 respondents")
    expect(page.locator("#employees-row-S09")).to_contain_text("worked out by subtraction")
    with demo_engine.connect() as conn:
        exp = engagement_by_unit(conn, wave=MARCH, parent="R-WEST").set_index("unit")
    expect(page.locator("#employees-row-S10")).to_contain_text(
        f"{exp.loc['S10', 'engagement']:.1f}%")
    expect(page.locator("#employees-units-graph")).to_contain_text("fewer than 5 respondents")
    with page.expect_download() as info:
        page.locator("#employees-units-panel .cx-downloads button", has_text="CSV").click()
    got = pd.read_csv(info.value.path())
    shown = in_app(employees.units_frame, {"unit": "R-WEST", "wave": "2026-03-01"})
    pd.testing.assert_frame_equal(
        got, pd.read_csv(io.StringIO(file_frame(shown).to_csv(index=False))))
    assert got.loc[got["Hidden"], "Engagement (% favourable)"].isna().all()
    assert info.value.suggested_filename == "employees-units-R-WEST-wave-2026-03-01.csv"
    assert page.evaluate("document.documentElement.scrollWidth") <= 1024
    assert errors == []
