"""The view state lives in the URL query string: parse it, write it, turn it into filters.

A link therefore reproduces a view, and the browser's back button walks back through
filter changes.

The URL is input from anyone: `clean_state` is the one gate every view state passes (the
page router hands pages a cleaned query, and `dashboard.guard` refuses callback requests
carrying anything else), so pages only ever see short strings and a period in range.
"""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode

from queries.comments import MAX_SEARCH
from queries.kpis import Filters
from queries.periods import Month

FILTER_KEYS = ("period", "compare", "unit", "segment", "channel", "device", "interaction",
               "touchpoint")
MAX_KEYS = 30
MAX_KEY_LENGTH = 40
MAX_VALUE_LENGTH = MAX_SEARCH
"""Longest value kept: ids and names are far shorter, and the longest, a comment search, is
bounded by the query (a 5 MB search made SQLite give up: 'LIKE pattern too complex')."""
LONG_VALUES = {"t": 4000}
"""Keys whose values are longer by design (the report page's signed token)."""


def clean_state(raw: object) -> dict[str, str]:
    """The view state in `raw` (a parsed query string) reduced to what pages can use.

    Keys and values must be strings (a repeated key keeps its last string), values are
    stripped and cut to `MAX_VALUE_LENGTH`, blanks are dropped, and a `period` or `compare`
    that is not a month in range (say 9999-12) is dropped so the page falls back to its
    default. Anything else (a number, a list of lists, a dict) yields an empty state.
    """
    if not isinstance(raw, dict):
        return {}
    out: dict[str, str] = {}
    for key, value in raw.items():
        if isinstance(value, list | tuple):
            value = next((v for v in reversed(value) if isinstance(v, str)), None)
        if not isinstance(key, str) or not isinstance(value, str) or len(key) > MAX_KEY_LENGTH:
            continue
        value = value.strip()[: LONG_VALUES.get(key, MAX_VALUE_LENGTH)].strip()
        if not value or (key == "period" and _month(value) is None) or (
                key == "compare" and value not in ("prev", "yoy") and _month(value) is None):
            continue
        out[key] = value
        if len(out) >= MAX_KEYS:
            break
    return out


def is_clean(raw: object) -> bool:
    """True when `raw` is a view state `clean_state` leaves unchanged (or None)."""
    return raw is None or (isinstance(raw, dict) and clean_state(raw) == raw)


def _month(value: object) -> Month | None:
    try:
        return Month.parse(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


def parse_search(search: str | None) -> dict[str, str]:
    """'?period=2026-10&unit=R-WEST' -> {'period': '2026-10', 'unit': 'R-WEST'}, cleaned
    by `clean_state` (blanks, bad periods and over-long values dropped or cut)."""
    text = search if isinstance(search, str) else ""
    return clean_state(dict(parse_qsl(text.lstrip("?"))))


def to_search(values: dict[str, object]) -> str:
    """The query string of `values` (empty values left out; filters first, in a fixed order)."""
    ordered = [(k, values[k]) for k in FILTER_KEYS if values.get(k)]
    ordered += sorted((k, v) for k, v in values.items() if k not in FILTER_KEYS and v)
    return "?" + urlencode([(k, str(v)) for k, v in ordered]) if ordered else ""


def filters_of(state: dict[str, str]) -> Filters:
    """The query filters of a view state."""
    state = clean_state(state)
    return Filters(unit=state.get("unit"), segment=state.get("segment"),
                   channel=state.get("channel"), device=state.get("device"),
                   interaction=state.get("interaction"), touchpoint=state.get("touchpoint"))


def period_of(state: dict[str, str], default: Month) -> Month:
    """The state's period, or `default` when absent, malformed or out of range."""
    return _month(clean_state(state).get("period")) or default


def compare_of(state: dict[str, str], period: Month) -> Month:
    """The comparison period: 'prev' (default), 'yoy' or an explicit YYYY-MM."""
    value = clean_state(state).get("compare") or "prev"
    if value == "yoy":
        return period.shift(-12)
    return _month(value) or period.shift(-1)
