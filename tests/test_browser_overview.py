"""Overview and data health in real Chromium, and their callbacks called directly."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import subprocess
import sys

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import func, select

from queries import schema
from queries.formatting import fmt_value
from queries.kpis import Filters, kpis, latest_full_month
from queries.periods import Month
from queries.settings import ROOT
from tests.browser import collect_errors, download_button, wait_for_graphs

SHOTS = ROOT / "docs" / "screenshots"
HEADLINE = ("nps", "csat", "ces", "retention", "active_members", "engagement", "revenue")


def _cli_kpis(url: str, *args: str) -> dict:
    out = subprocess.run([sys.executable, "-m", "queries", "kpis", "--json", *args], cwd=ROOT,
                         env={**os.environ, "DATABASE_URL": url}, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_overview_callback_returns_the_queries_numbers(in_app, demo_engine) -> None:
    overview = sys.modules["pages.overview"]  # as Dash loaded it
    state = {"unit": "R-WEST"}
    cards, signals, table, caption, _ = in_app(overview.render, state)
    with demo_engine.connect() as conn:
        want = {k.key: k for k in kpis(conn, period=latest_full_month(conn),
                                       filters=Filters(unit="R-WEST"))}
    text = str(cards)
    for key in HEADLINE:
        assert f"'{fmt_value(want[key])}'" in text, key
    assert caption.startswith("West · ")
    # The demo's West region: NPS up, effort worse, said in words above the cards.
    assert "NPS improved" in str(signals) and "Effort (CES) worsened" in str(signals)
    assert "Signals disagree · October 2026 against September 2026" in str(signals)
    assert str(table).count("Tr(") >= len(want)
    # The sparklines' download is the trend the cards draw.
    from queries.trends import kpi_trend

    with demo_engine.connect() as conn:
        trend = kpi_trend(conn, end=latest_full_month(conn), filters=Filters(unit="R-WEST"))
    shown = in_app(overview.trend_frame, state)
    assert list(shown["month"]) == list(trend["month"])
    assert shown["nps"].astype(float).fillna(-999).tolist() == pytest.approx(
        trend["nps"].astype(float).fillna(-999).tolist())
    frame = in_app(overview.kpi_frame, state)
    assert list(frame["kpi"]) == [k.label for k in want.values()]
    assert list(frame["n"]) == [k.n for k in want.values()]




@pytest.mark.browser
@pytest.mark.both_backends
def test_overview_matches_the_cli_without_console_errors(page: Page, served_demo: str,
                                                         demo_url: str) -> None:
    errors = collect_errors(page)
    page.set_viewport_size({"width": 1366, "height": 900})
    page.goto(served_demo + "/")
    report = _cli_kpis(demo_url)
    by_key = {k["key"]: k for k in report["kpis"]}
    for key in HEADLINE:
        k = by_key[key]
        expect(page.locator(f"#overview-{key}-value")).to_have_text(
            _shown(k), timeout=30_000)
        expect(page.locator(f"#overview-{key}-n")).to_contain_text(_n_shown(k))
    # Sources by the names people know (the demo config's titles), ids only on hover.
    line = page.locator("#overview-freshness-line")
    expect(line).to_contain_text("Customer survey")
    expect(line).to_contain_text("Stores and regions")
    expect(line).not_to_contain_text("customer_survey")
    assert line.locator("span[title='source org_units']").count() == 1
    wait_for_graphs(page, ".kpi-spark")
    expect(page.locator("#overview-caption")).to_contain_text(
        Month.parse(report["period"]).label)
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "overview.png"), full_page=True)
    assert errors == []


def _n_shown(k: dict) -> str:
    """'n = 1,868' for answers, '8,520 members, all counted' for a complete count."""
    from queries.formatting import fmt_n
    from queries.kpis import Kpi

    return fmt_n(Kpi(**{f: k[f] for f in ("key", "label", "unit", "period", "value", "n",
                                          "moe", "hidden", "n_unit", "sampled",
                                          "not_applicable")}))


def _shown(k: dict) -> str:
    from queries.kpis import Kpi

    kpi = Kpi(**{f: k[f] for f in ("key", "label", "unit", "period", "value", "n", "moe",
                                   "hidden")})
    return fmt_value(kpi)


@pytest.mark.browser
def test_a_url_with_filters_restores_the_view_and_back_works(page: Page, served_demo: str,
                                                             demo_url: str) -> None:
    errors = collect_errors(page)
    page.goto(served_demo + "/?period=2026-09&unit=R-NORTH&channel=web")
    report = _cli_kpis(demo_url, "--period", "2026-09", "--unit", "R-NORTH", "--channel",
                       "web")
    nps = next(k for k in report["kpis"] if k["key"] == "nps")
    expect(page.locator("#overview-nps-value")).to_have_text(_shown(nps), timeout=30_000)
    expect(page.locator("#filters-unit")).to_contain_text("North")
    expect(page.locator("#filters-period")).to_contain_text("September 2026")
    expect(page.locator("#overview-caption")).to_contain_text("North · September 2026")

    # Choosing another unit in the filter bar writes the URL; back restores North.
    page.locator("#filters-unit .dash-dropdown-value").click()
    page.locator("[role=option]", has_text="South").first.click()
    page.wait_for_url("**unit=R-SOUTH**", timeout=15_000)
    expect(page.locator("#overview-caption")).to_contain_text("South", timeout=30_000)
    assert "channel=web" in page.url and "period=2026-09" in page.url
    page.go_back()
    page.wait_for_url("**unit=R-NORTH**", timeout=15_000)
    expect(page.locator("#overview-caption")).to_contain_text("North", timeout=30_000)
    expect(page.locator("#overview-nps-value")).to_have_text(_shown(nps), timeout=30_000)
    # The navbar keeps the filters when moving to another page.
    href = page.locator("#nav-health").get_attribute("href")
    assert href.startswith("/health?") and "unit=R-NORTH" in href
    assert errors == []


@pytest.mark.browser
def test_download_returns_the_rows_shown(page: Page, served_demo: str, demo_url: str) -> None:
    page.goto(served_demo + "/?unit=R-WEST")
    expect(page.locator("#overview-table")).to_be_visible(timeout=30_000)
    shown_rows = page.locator("#overview-table tbody tr").count()
    with page.expect_download() as info:
        download_button(page, "overview-kpis").click()
    rows = list(csv.DictReader(io.StringIO(info.value.path().read_text())))
    assert info.value.suggested_filename == "overview-kpis-R-WEST.csv"
    report = _cli_kpis(demo_url, "--unit", "R-WEST")
    assert len(rows) == shown_rows == len(report["kpis"])
    for row, k in zip(rows, report["kpis"], strict=True):
        assert row["Measure"] == k["label"] and int(row["n"]) == k["n"]
        assert row["As shown"] == _shown(k)
        # The value column holds the number as shown: "+43.8" -> 43.8, "£76,227" -> 76227.
        if k["value"] is not None:
            shown = _shown(k).replace("£", "").replace(",", "").rstrip("%")
            assert float(row["Value"]) == pytest.approx(float(shown), abs=1e-9), k["key"]
    with page.expect_download() as info:
        download_button(page, "overview-trend").click()
    months = [r["Month"] for r in csv.DictReader(io.StringIO(info.value.path().read_text()))]
    assert len(months) == 13 and months[-1] == report["period"]


@pytest.mark.browser
def test_data_health_page(page: Page, served_demo: str, demo_engine) -> None:
    errors = collect_errors(page)
    page.set_viewport_size({"width": 1366, "height": 900})
    page.goto(served_demo + "/health")
    expect(page.locator("#health-source-customer_survey")).to_contain_text("success",
                                                                          timeout=30_000)
    expect(page.locator("#health-tables-table")).to_contain_text("Survey answers")
    expect(page.locator("#health-source-customer_survey")).to_contain_text("Customer survey")
    with demo_engine.connect() as conn:
        txns = conn.execute(select(func.count()).select_from(schema.loyalty_transaction)
                            ).scalar_one()
    assert txns > 1000
    expect(page.locator("#health-tables-table")).to_contain_text(f"{txns:,}")  # separators
    expect(page.locator("#health-runs-table")).to_contain_text("Quarantined")
    page.screenshot(path=str(SHOTS / "health.png"), full_page=True)
    page.set_viewport_size({"width": 1024, "height": 800})
    page.goto(served_demo + "/?unit=R-WEST")
    expect(page.locator("#overview-nps-value")).not_to_be_empty(timeout=30_000)
    assert page.evaluate("document.documentElement.scrollWidth") <= 1024
    assert errors == []


@pytest.mark.browser
def test_download_pdf_of_the_current_view(page: Page, served_demo: str, demo_url: str,
                                          tmp_path) -> None:
    page.goto(served_demo + "/?unit=R-SOUTH")
    expect(page.locator("#overview-nps-value")).not_to_be_empty(timeout=30_000)
    with page.expect_download(timeout=120_000) as info:
        page.locator("#overview-pdf").click()
    assert info.value.suggested_filename == "cx-snapshot-2026-10-R-SOUTH.pdf"
    path = tmp_path / "view.pdf"
    info.value.save_as(path)
    text = subprocess.run(["pdftotext", "-layout", str(path), "-"], capture_output=True,
                          text=True, check=True).stdout
    assert "showing South" in text
    nps = next(k for k in _cli_kpis(demo_url, "--unit", "R-SOUTH")["kpis"] if k["key"] == "nps")
    assert _shown(nps) in text


def test_year_on_year_view_shows_the_month_before_as_second_comparison(in_app) -> None:
    """Compared with the same month last year, cards and table show the month before as the
    second comparison, never the year-ago month twice."""
    overview = sys.modules["pages.overview"]
    cards, _signals, table, caption, _ = in_app(overview.render, {"compare": "yoy"})
    assert caption.endswith("October 2026 against October 2025")
    heads = re.findall(r"Th\('([^']+)'\)", str(table))
    assert heads[4:6] == ["vs October 2025", "vs September 2026"]
    text = str(cards)
    assert "vs October 2025" in text and "vs September 2026" in text
    assert "vs a year ago" not in str(table)
