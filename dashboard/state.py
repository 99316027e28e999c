"""The view state lives in the URL query string: parse it, write it, turn it into filters.

A link therefore reproduces a view, and the browser's back button walks back through
filter changes.
"""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode

from queries.kpis import Filters
from queries.periods import Month

FILTER_KEYS = ("period", "compare", "unit", "segment", "channel", "device", "interaction",
               "touchpoint")


def parse_search(search: str | None) -> dict[str, str]:
    """'?period=2026-10&unit=R-WEST' -> {'period': '2026-10', 'unit': 'R-WEST'} (blanks dropped)."""
    return {k: v for k, v in parse_qsl((search or "").lstrip("?")) if v}


def to_search(values: dict[str, object]) -> str:
    """The query string of `values` (empty values left out; filters first, in a fixed order)."""
    ordered = [(k, values[k]) for k in FILTER_KEYS if values.get(k)]
    ordered += sorted((k, v) for k, v in values.items() if k not in FILTER_KEYS and v)
    return "?" + urlencode([(k, str(v)) for k, v in ordered]) if ordered else ""


def filters_of(state: dict[str, str]) -> Filters:
    """The query filters of a view state."""
    return Filters(unit=state.get("unit"), segment=state.get("segment"),
                   channel=state.get("channel"), device=state.get("device"),
                   interaction=state.get("interaction"), touchpoint=state.get("touchpoint"))


def period_of(state: dict[str, str], default: Month) -> Month:
    """The state's period, or `default` when absent or malformed."""
    try:
        return Month.parse(state["period"]) if state.get("period") else default
    except ValueError:
        return default


def compare_of(state: dict[str, str], period: Month) -> Month:
    """The comparison period: 'prev' (default), 'yoy' or an explicit YYYY-MM."""
    value = state.get("compare") or "prev"
    if value == "prev":
        return period.shift(-1)
    if value == "yoy":
        return period.shift(-12)
    try:
        return Month.parse(value)
    except ValueError:
        return period.shift(-1)
