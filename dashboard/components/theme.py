"""One visual language across pages: colours that mean the same thing everywhere and
survive colour blindness (Okabe-Ito palette), and figure helpers."""

from __future__ import annotations

import functools
import html

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from queries.formatting import plotly_separators

# Meaning, not decoration: the same colour always says the same thing.
PROMOTER = "#009E73"  # bluish green
PASSIVE = "#999999"  # grey
DETRACTOR = "#D55E00"  # vermillion
GOOD = "#0072B2"  # blue: a change for the better
BAD = "#D55E00"  # vermillion: a change for the worse
NEUTRAL = "#6C757D"
SERIES = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442",
          "#000000"]
GROUP_COLOURS = {"promoter": PROMOTER, "passive": PASSIVE, "detractor": DETRACTOR}

FONT = "DejaVu Sans, Segoe UI, Helvetica, Arial, sans-serif"


def columns_array(*columns: pd.Series) -> np.ndarray:
    """Columns side by side as one 2-D object array, for a trace's `customdata`: Plotly takes
    an array at once where it checks a list of tuples value by value."""
    out = np.empty((len(columns[0]) if columns else 0, len(columns)), dtype=object)
    for j, col in enumerate(columns):
        out[:, j] = col.to_numpy(dtype=object)
    return out


def plain(text: object) -> str:
    """`text` as a figure shows it, letter for letter.

    Plotly reads a subset of HTML in every text of a figure (titles, tick labels, legend
    names, annotations, `text`, hover labels, and values substituted into hovertemplates):
    a touchpoint called `<a href="http://evil/">` would become a live link in a chart. Every
    string that comes from the data (unit, segment, touchpoint and attribute names, reasons,
    comments) passes through here before it enters a figure; Plotly turns the entities back
    into the characters. Titles given to `base_layout` and messages given to `empty_figure`
    are escaped there, so callers pass those unescaped.
    """
    return html.escape(str(text), quote=False)


@functools.cache
def template_json(name: str) -> dict:
    """A Plotly template as the JSON a figure carries, made once per name (validating it
    again for every figure was the slowest step of drawing one). Shared by every figure
    that uses it: read it, never change it."""
    import plotly.io as pio

    return pio.templates[name].to_plotly_json()


def placeholder_figure(message: str, height: int) -> dict:
    """`empty_figure(message, height=height)` as the figure JSON Dash sends, made once per
    message, height and number format: every page layout draws its graphs' "Loading…"
    placeholders, and each cost a full Plotly figure. Shared: read it, never change it."""
    return _placeholder(message, height, plotly_separators())


@functools.lru_cache(maxsize=32)
def _placeholder(message: str, height: int, separators: str) -> dict:
    return empty_figure(message, height=height).to_plotly_json()


def with_template(fig: go.Figure, name: str) -> go.Figure:
    """`fig` with the registered template `name`, as `update_layout(template=name)` sets it
    but without validating the template again (the registered templates are valid; Plotly
    skips the same check when it applies its default template). Validating it took ~16 ms
    per figure, most of a chart callback's time on a warm cache."""
    import plotly.io as pio

    fig.layout._validate = False
    try:
        fig.layout.template = pio.templates[name]
    finally:
        fig.layout._validate = fig._validate
    return fig


def base_layout(fig: go.Figure, *, title: str | None = None, height: int = 360) -> go.Figure:
    """House style: white, quiet grid, readable font, room for hover labels. `title` is
    plain text (it often names a unit or a segment), escaped here."""
    with_template(fig, "plotly_white")
    fig.update_layout(
        title={"text": plain(title), "x": 0, "font": {"size": 15}} if title else None,
        height=height,
        margin={"l": 56, "r": 16, "t": 48 if title else 16, "b": 48},
        font={"family": FONT, "size": 12},
        colorway=SERIES,
        hoverlabel={"font": {"family": FONT}},
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.02, "x": 0},
        separators=plotly_separators(),  # decimal and thousands marks of CX_LOCALE
    )
    return fig


def empty_figure(message: str, *, height: int = 260) -> go.Figure:
    """A figure that says, in words, what is missing (never a blank axis). `message` is
    plain text (escaped here); a newline starts a new line."""
    fig = go.Figure()
    fig.add_annotation(text=plain(message).replace("\n", "<br>"), showarrow=False, x=0.5,
                       y=0.5, xref="paper", yref="paper", font={"size": 14, "color": NEUTRAL})
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    return base_layout(fig, height=height)
