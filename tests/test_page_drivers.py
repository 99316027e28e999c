"""The drivers & comments page: its callbacks against the queries, and in real Chromium."""

from __future__ import annotations

import csv
import io
import sys

import pandas as pd
import pytest
from playwright.sync_api import Page, expect

from dashboard.components.download import neutralise
from queries.comments import comments
from queries.kpis import Filters, latest_full_month
from queries.links import key_drivers
from queries.periods import Month
from queries.settings import ROOT
from tests.browser import collect_errors, wait_for_graphs

SHOTS = ROOT / "docs" / "screenshots"


@pytest.fixture
def drv(dash_app):
    """The page module, imported once the app (and so the page registry) exists."""
    return sys.modules["pages.drivers"]  # the module Dash loaded (see conftest page_module)


def _window(engine, months: int) -> tuple[Month, Month]:
    with engine.connect() as conn:
        period = latest_full_month(conn)
    return period.shift(-(months - 1)), period


def test_the_matrix_and_table_are_the_key_driver_analysis(in_app, drv, demo_engine) -> None:
    state = {"unit": "R-WEST", "outcome": "csat", "months": "12"}
    fig, table, caption = in_app(drv.render, state)
    first, last = _window(demo_engine, 12)
    with demo_engine.connect() as conn:
        want = key_drivers(conn, start=first.start, end=last.end, outcome="csat",
                           unit="R-WEST")
    assert caption.startswith(f"West · {first.label} to {last.label}")
    assert f"{want.responses:,} CSAT answers" in caption
    assert f"R² = {want.r_squared:.2f}" in fig.layout.title.text
    assert f"n = {want.n:,} complete answers" in fig.layout.title.text
    points = {t: (x, y) for tr in fig.data for t, x, y in zip(tr.text, tr.x, tr.y, strict=True)}
    expected = {drv.attribute_label(a): (pytest.approx(i), pytest.approx(p)) for a, i, p in
                zip(want.frame["attribute"], want.frame["importance"],
                    want.frame["performance"], strict=True)}
    assert points == expected
    # Quadrant lines at the means, quadrant names in words.
    assert fig.layout.shapes[0].x0 == pytest.approx(want.frame["importance"].mean())
    assert fig.layout.shapes[1].y0 == pytest.approx(want.frame["performance"].mean())
    words = {a.text for a in fig.layout.annotations}
    assert {"<b>Fix first</b>", "<b>Keep up</b>", "<b>Maintain</b>",
            "<b>Nice to have</b>"} <= words
    frame = in_app(drv.drivers_frame, state)
    assert sorted(frame["attribute"]) == sorted(expected)
    assert set(frame["priority"]) <= {"Fix first", "Keep up", "Nice to have", "Maintain"}
    text = str(table)
    assert all(name in text for name in expected)
    # West's story in the demo: stock matters for CSAT and is rated worst.
    assert "Fix first: Product availability" in " ".join(in_app(drv.summary_words, state))


def test_quadrants_and_window_words(drv) -> None:
    frame = pd.DataFrame({"attribute": list("abcd"), "importance": [40, 30, 20, 10],
                          "performance": [3.0, 4.5, 3.1, 4.4]})
    assert list(drv.quadrants(frame)["quadrant"]) == ["Fix first", "Keep up", "Nice to have",
                                                      "Maintain"]
    assert drv.window_label(Month(2026, 8), Month(2026, 10)) == "August to October 2026"
    assert drv.window_label(Month(2025, 11), Month(2026, 10)) == ("November 2025 to "
                                                                  "October 2026")
    assert drv.months_of({"months": "5"}) == 3 and drv.limit_of({"limit": "99999"}) == 500


def test_comments_callback_shows_the_newest_matching_comments(in_app, drv,
                                                               demo_engine) -> None:
    first, last = _window(demo_engine, 12)
    state = {"unit": "R-WEST", "q": "APP", "months": "12"}
    items, count, more, style = in_app(drv.render_comments, state)
    with demo_engine.connect() as conn:
        want = comments(conn, start=first.start, end=last.end, filters=Filters(unit="R-WEST"),
                        search="APP", limit=10)
    assert count == f"Showing 10 of {want.total} comments containing “APP”"
    assert len(items.children) == 10 and style == {}
    assert more == f"Show {min(10, want.total - 10)} more"
    shown = items.children[0].children[1].children
    assert "".join(c if isinstance(c, str) else c.children for c in shown) == \
        want.rows["comment"].iloc[0]
    assert "Mark" in str(items)  # the search term is marked
    frame = in_app(drv.comments_frame, state)
    assert list(frame["comment"]) == list(want.rows["comment"])

    items, count, more, style = in_app(drv.render_comments,
                                       {"unit": "R-WEST", "q": "no such words"})
    assert "No comments from West" in str(items) and style == {"display": "none"}
    fig, _, _ = in_app(drv.render, {"period": "2020-01"})
    assert "No NPS answers for Whole company" in fig.layout.annotations[0].text


# ------------------------------------------------------------------------- in Chromium

@pytest.mark.browser
def test_drivers_page_search_more_and_screenshot(page: Page, served_demo: str,
                                                  demo_engine) -> None:
    errors = collect_errors(page)
    page.set_viewport_size({"width": 1366, "height": 900})
    page.goto(served_demo + "/drivers")
    wait_for_graphs(page, "#drivers-matrix")
    first, last = _window(demo_engine, 3)
    with demo_engine.connect() as conn:
        drivers = key_drivers(conn, start=first.start, end=last.end)
        everything = comments(conn, start=first.start, end=last.end, filters=Filters(),
                              limit=10)
        app = comments(conn, start=first.start, end=last.end, filters=Filters(),
                       search="app", limit=10)
    expect(page.locator("#drivers-matrix .gtitle")).to_contain_text(
        f"R² = {drivers.r_squared:.2f}")
    count = page.locator("#drivers-count")
    expect(count).to_have_text(f"Showing 10 of {everything.total} comments", timeout=30_000)
    assert page.locator("#drivers-table tbody tr").count() == len(drivers.frame)
    expect(page.locator(".cx-chip").first).to_be_visible()

    search = page.locator("#drivers-search")
    search.fill("app")
    search.press("Enter")
    page.wait_for_url("**q=app**", timeout=15_000)
    expect(count).to_have_text(f"Showing 10 of {app.total} comments containing “app”",
                               timeout=30_000)
    texts = page.locator(".cx-comment-text").all_inner_texts()
    assert len(texts) == 10 and all("app" in t.lower() for t in texts)
    expect(page.locator("#drivers-search")).to_have_value("app")

    page.locator("#drivers-more").click()
    page.wait_for_url("**limit=20**", timeout=15_000)
    expect(page.locator(".cx-comment")).to_have_count(min(20, app.total), timeout=30_000)
    with page.expect_download() as info:
        page.locator("#drivers-comments-panel").get_by_text("CSV").click()
    rows = list(csv.DictReader(io.StringIO(info.value.path().read_text())))
    # The file says "Comment" and carries each comment as shown, made formula-safe.
    assert [r["Comment"] for r in rows] == [
        neutralise(t) for t in page.locator(".cx-comment-text").all_inner_texts()]
    assert info.value.suggested_filename == "drivers-comments.csv"

    page.locator("#drivers-group label", has_text="Detractors").click()
    page.wait_for_url("**group=detractor**", timeout=15_000)
    expect(count).to_contain_text("detractors' comments containing “app”", timeout=30_000)
    expect(page.locator(".cx-chip-detractor").first).to_be_visible()
    expect(page.locator(".cx-chip-promoter")).to_have_count(0)
    assert "limit=" not in page.url and "q=app" in page.url

    search.fill("no such words at all")
    search.press("Enter")
    expect(page.locator("#drivers-no-comments")).to_contain_text("contain “no such words",
                                                                 timeout=30_000)
    page.go_back()  # back to the detractors' comments about the app
    page.wait_for_url("**q=app**", timeout=15_000)
    expect(page.locator("#drivers-search")).to_have_value("app", timeout=30_000)

    # A URL restores the view: West, explaining CSAT over 12 months, where stock is the
    # thing to fix first.
    page.goto(served_demo + "/drivers?unit=R-WEST&outcome=csat&months=12")
    wait_for_graphs(page, "#drivers-matrix")
    expect(page.locator("#drivers-outcome input[value=csat]")).to_be_checked()
    expect(page.locator("#drivers-months input[value='12']")).to_be_checked()
    expect(page.locator("#filters-unit")).to_contain_text("West")
    expect(page.locator("#drivers-table")).to_contain_text("Fix first")
    expect(page.locator("#drivers-count")).to_contain_text("comments", timeout=30_000)
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "drivers.png"), full_page=True)

    page.set_viewport_size({"width": 1024, "height": 800})
    page.reload()
    wait_for_graphs(page, "#drivers-matrix")
    expect(page.locator("#drivers-table")).to_contain_text("Fix first")
    assert page.evaluate("document.documentElement.scrollWidth") <= 1024
    assert errors == []
