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


LABELS = {"period": "Period", "compare": "Compared with", "unit": "Unit", "segment": "Segment",
          "channel": "Channel", "device": "Device", "interaction": "Interaction",
          "touchpoint": "Touchpoint"}


def _dropdown(key: str, options: list[dict], placeholder: str) -> dbc.Col:
    # Two rows of four from a tablet up: one row of eight cut "September 2026" and "Same
    # month last year" at 1440 px. The label sits above, so the box holds only the value.
    return dbc.Col(
        [html.Label(LABELS[key], htmlFor=IDS[key], className="cx-filter-label"),
         dcc.Dropdown(id=IDS[key], options=options, placeholder=placeholder, clearable=True,
                      className="cx-filter", persistence=False, optionHeight=30)],
        xs=6, md=3, className="mb-1",
    )


def filter_bar(options: FilterOptions, latest: Month | None, *,
               unit_placeholder: str = "Whole company") -> html.Div:
    """Period, comparison, org unit and the survey dimensions, as labelled dropdowns."""
    months = [{"label": Month.parse(m).label, "value": m} for m in options.months]
    latest_label = f"Latest ({latest.start:%b %Y})" if latest else "Latest full month"
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
                _dropdown("compare", [{"label": "Previous month", "value": "prev"},
                                      {"label": "Same month last year", "value": "yoy"}],
                          "Previous month"),
                _dropdown("unit", units, unit_placeholder),
                *[_dropdown(k, [{"label": pretty(v), "value": v} for v in vals], f"All {k}s")
                  for k, vals in simple.items()],
            ],
            className="g-2",
        ),
        className="cx-filter-bar d-print-none mb-2",
        id="filters",
    )
