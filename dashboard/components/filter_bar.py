"""The filter bar shared by every page; its values mirror the URL query string."""

from __future__ import annotations

import dash_bootstrap_components as dbc
from dash import dcc, html

from queries.options import FilterOptions
from queries.periods import Month

DEPTH = {"company": 0, "region": 1, "store": 2, "team": 2}
IDS = {
    "period": "filters-period", "compare": "filters-compare", "unit": "filters-unit",
    "segment": "filters-segment", "channel": "filters-channel", "device": "filters-device",
    "interaction": "filters-interaction", "touchpoint": "filters-touchpoint",
}


def pretty(value: str) -> str:
    """'self_service' -> 'Self service', 'in_person' -> 'In person'."""
    return value.replace("_", " ").capitalize()


def _dropdown(key: str, options: list[dict], placeholder: str) -> dbc.Col:
    # Two rows of four on a laptop or tablet, one row of eight on a wide screen.
    return dbc.Col(
        dcc.Dropdown(id=IDS[key], options=options, placeholder=placeholder, clearable=True,
                     className="cx-filter", persistence=False, optionHeight=30),
        xs=6, md=3, xxl=True, className="mb-1",
    )


def filter_bar(options: FilterOptions, latest: Month | None, *,
               unit_placeholder: str = "Whole company") -> html.Div:
    """Period, comparison, org unit and the survey dimensions, as dropdowns."""
    months = [{"label": Month.parse(m).label, "value": m} for m in options.months]
    latest_label = f"Latest full month ({latest.label})" if latest else "Latest full month"
    units = [{"label": "\u2003" * DEPTH.get(str(u["kind"]), 2) + str(u["name"]),
              "value": u["id"], "search": f"{u['name']} {u['id']}"} for u in options.units]
    simple = {
        "segment": options.segments, "channel": options.channels, "device": options.devices,
        "interaction": options.interactions, "touchpoint": options.touchpoints,
    }
    return html.Div(
        dbc.Row(
            [
                _dropdown("period", months, latest_label),
                _dropdown("compare", [{"label": "vs previous month", "value": "prev"},
                                      {"label": "vs same month last year", "value": "yoy"}],
                          "vs previous month"),
                _dropdown("unit", units, unit_placeholder),
                *[_dropdown(k, [{"label": pretty(v), "value": v} for v in vals],
                            f"All {k}s" if k != "interaction" else "Self-service & assisted")
                  for k, vals in simple.items()],
            ],
            className="g-2",
        ),
        className="cx-filter-bar d-print-none mb-2",
        id="filters",
    )
