"""Figure builders shared by pages (cards, trends); colours from `theme`."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
from dash import dcc, html

from dashboard.components.theme import (
    GOOD,
    NEUTRAL,
    base_layout,
    placeholder_figure,
    plain,
    template_json,
)
from queries.formatting import currency_symbol, money_template
from queries.kpis import MONEY

GRAPH_CONFIG = {"displaylogo": False, "responsive": True,
                "modeBarButtonsToRemove": ["lasso2d", "select2d", "autoScale2d"]}

HOVER_FORMAT = {"nps": "%{y:+.1f}", "csat": "%{y:.1f}%", "ces": "%{y:.2f}",
                "revenue": MONEY, "active_members": "%{y:,.0f}",
                "retention": "%{y:.1f}%", "engagement": "%{y:.1f}%"}


def hover_format(key: str) -> str:
    """The Plotly template of one KPI's value; money in CX_CURRENCY / CX_LOCALE."""
    value = HOVER_FORMAT.get(key, "%{y}")
    return money_template("y:,.0f") if value == MONEY else value


def sparkline(trend: pd.DataFrame, key: str, *, x: str = "label") -> dict:
    """A small line of the last months of one KPI; the current month is marked.

    Built as the plain figure dict `go.Figure(...).to_plotly_json()` would give: a card page
    draws seven of these, and Plotly's validation of the same small figure (its template
    above all) cost more than every query of the page together.
    """
    data = trend[[x, key]].dropna()
    traces: list[dict] = []
    if not data.empty:
        value = hover_format(key)
        traces = [
            {"x": [plain(v) for v in data[x]], "y": [float(v) for v in data[key]],
             "mode": "lines", "line": {"color": GOOD, "width": 2},
             "hovertemplate": "%{x}: " + value + "<extra></extra>", "type": "scatter"},
            {"x": [plain(data[x].iloc[-1])], "y": [float(data[key].iloc[-1])],
             "mode": "markers", "marker": {"color": GOOD, "size": 7}, "hoverinfo": "skip",
             "type": "scatter"},
        ]
    return {"data": traces, "layout": {
        "height": 56, "margin": {"l": 0, "r": 4, "t": 4, "b": 4}, "showlegend": False,
        "template": template_json("plotly_white"), "paper_bgcolor": "rgba(0,0,0,0)",
        "plot_bgcolor": "rgba(0,0,0,0)", "xaxis": {"visible": False},
        "yaxis": {"visible": False}}}


def trend_chart(trend: pd.DataFrame, key: str, label: str, unit: str) -> go.Figure:
    """Monthly values with their 95% margins as error bars."""
    data = trend.dropna(subset=[key])
    fig = go.Figure(go.Scatter(
        x=[plain(v) for v in data["label"]], y=[float(v) for v in data[key]],
        mode="lines+markers",
        line={"color": GOOD},
        error_y={"type": "data", "array": [float(v) if pd.notna(v) else 0
                                           for v in data.get(f"{key}_moe", [])],
                 "color": NEUTRAL, "thickness": 1} if f"{key}_moe" in data else None,
        customdata=data[[f"{key}_n"]].to_numpy() if f"{key}_n" in data else None,
        hovertemplate=f"%{{x}}<br>{plain(label)}: {hover_format(key)}"
                      + ("<br>n = %{customdata[0]:,}" if f"{key}_n" in data else "")
                      + "<extra></extra>",
        name=plain(label),
    ))
    fig.update_yaxes(title=plain(f"{label} ({currency_symbol() if unit == MONEY else unit})"))
    return base_layout(fig, height=300)


def graph_slot(id_: str, height: int, *text: html.Div) -> dcc.Loading:
    """A graph and the words under it, behind one loading indicator."""
    graph = dcc.Graph(id=id_, config=GRAPH_CONFIG, style={"height": f"{height}px"},
                      figure=placeholder_figure("Loading…", height))
    return dcc.Loading(html.Div([graph, *text]), type="dot", delay_show=300)


LABEL_SPOTS = ("top center", "bottom center", "middle right", "middle left", "top right",
               "top left", "bottom right", "bottom left")


def place_labels(names: list[str], xs: list[float], ys: list[float], *,
                 first: list[int] | None = None, width_px: float = 640,
                 height_px: float = 240, font_px: float = 10,
                 marker_px: float = 6) -> tuple[list[str], list[str]]:
    """Text and text position of each point of a scatter so that no two labels overlap and
    no label covers a marker. Points are served in order (`first`, then farthest from the
    median score first, so the top and bottom few are named); a point whose label finds no
    free spot is named on hover only. The plot is assumed `width_px` x `height_px` (small
    on purpose: on a wider screen labels only get more room)."""
    n = len(xs)
    if n == 0:
        return [], []
    span_x = (max(xs) - min(xs)) or 1.0
    span_y = (max(ys) - min(ys)) or 1.0
    px = [(x - min(xs)) / span_x * width_px * 0.9 for x in xs]
    py = [(y - min(ys)) / span_y * height_px * 0.9 for y in ys]
    r = marker_px  # marker radius, and the gap between a marker and its label
    boxes = [(px[i] - r, py[i] - r, px[i] + r, py[i] + r) for i in range(n)]
    mid = sorted(ys)[n // 2]
    order = list(dict.fromkeys([*(first or []),
                                *sorted(range(n), key=lambda i: -abs(ys[i] - mid))]))
    texts, spots = [""] * n, ["top center"] * n

    def box(i: int, spot: str) -> tuple[float, float, float, float]:
        w, h = 0.62 * font_px * len(names[i]), 1.3 * font_px
        vertical, horizontal = spot.split()
        cx = {"center": px[i], "right": px[i] + r + w / 2, "left": px[i] - r - w / 2}[horizontal]
        cy = {"top": py[i] + r + h / 2, "bottom": py[i] - r - h / 2, "middle": py[i]}[vertical]
        return cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2

    def free(b: tuple[float, float, float, float]) -> bool:
        return not any(b[0] < o[2] and o[0] < b[2] and b[1] < o[3] and o[1] < b[3]
                       for o in boxes)

    for i in order:
        for spot in LABEL_SPOTS:
            b = box(i, spot)
            if free(b):
                texts[i], spots[i] = names[i], spot
                boxes.append(b)
                break
    return texts, spots
