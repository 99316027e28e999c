"""Helpers for browser tests: wait for graphs to be really drawn, collect console errors."""

from __future__ import annotations

from playwright.sync_api import Page

DRAWN = """(sel) => {
  const graphs = Array.from(document.querySelectorAll(sel));
  return graphs.length > 0 && graphs.every(g => {
    const plot = g.querySelector('.js-plotly-plot');
    return plot && plot._fullLayout && !g.classList.contains('dash-graph--pending')
      && plot.querySelector('.main-svg .trace');
  });
}"""


def wait_for_graphs(page: Page, selector: str = ".dash-graph", timeout: float = 30_000) -> None:
    """Wait until every graph matching `selector` is drawn (layout, not pending, a trace)."""
    page.wait_for_function(DRAWN, arg=selector, timeout=timeout)


def collect_errors(page: Page) -> list[str]:
    """A list that fills with the page's console errors and uncaught exceptions."""
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    return errors


def choose(page: Page, dropdown_id: str, option_text: str) -> None:
    """Pick an option of a Dash 4 dropdown the way a person does: open it, click the option."""
    page.locator(f"#{dropdown_id} .dash-dropdown-trigger").first.click()
    page.locator("[role=option]", has_text=option_text).first.click()


def download_button(page: Page, target: str, fmt: str = "csv"):
    """The CSV/XLSX button of one download target (its Dash pattern-matching id)."""
    return page.locator(f'button[id*=\'"target":"{target}"\'][id*=\'"fmt":"{fmt}"\']')
