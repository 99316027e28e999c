"""CSV/XLSX downloads of exactly the data a chart or table shows.

A page registers, per chart, the function that builds the chart's DataFrame from the view
state; the chart's callback and the download both call it, so the file holds the shown rows.
"""

from __future__ import annotations

from collections.abc import Callable

import dash_bootstrap_components as dbc
import pandas as pd
from dash import html

Builder = Callable[[dict[str, str]], pd.DataFrame]
DOWNLOADS: dict[str, Builder] = {}


def downloadable(target: str) -> Callable[[Builder], Builder]:
    """Register `fn(state) -> DataFrame` as the data behind download target `target`."""

    def register(fn: Builder) -> Builder:
        DOWNLOADS[target] = fn
        return fn

    return register


def download_buttons(target: str) -> html.Div:
    """The CSV and XLSX buttons of one chart or table."""
    return html.Div(
        [
            dbc.Button("CSV", id={"type": "download", "target": target, "fmt": "csv"},
                       size="sm", color="link", className="px-1 py-0",
                       title="Download the data shown as CSV"),
            dbc.Button("XLSX", id={"type": "download", "target": target, "fmt": "xlsx"},
                       size="sm", color="link", className="px-1 py-0",
                       title="Download the data shown as an Excel workbook"),
        ],
        className="cx-downloads d-print-none",
    )


def panel(title: str, body: object, *, target: str | None = None, note: str | None = None,
          id_: str | None = None, fill: bool = False) -> dbc.Card:
    """A titled card around a chart or table, with its downloads and a footnote; `fill`
    makes it as tall as its column, so panels side by side line up."""
    header = html.Div(
        [html.H3(title, className="h6 mb-0"), download_buttons(target) if target else None],
        className="d-flex justify-content-between align-items-center",
    )
    children = [header, body]
    if note:
        children.append(html.Div(note, className="cx-note text-muted small mt-1"))
    return dbc.Card(dbc.CardBody(children), className="cx-panel " + ("h-100" if fill else "mb-3"),
                    **({"id": id_} if id_ else {}))
