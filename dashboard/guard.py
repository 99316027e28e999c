"""What a URL or a hand-made request may put in front of the pages.

Every page gets its view state from the URL's query string, and anyone can write a URL or
post to Dash's callback endpoint directly. Three gates keep that input from reaching code
that was written for well-formed state (where it made 500s: a period in year 10000, a list
where a unit id belongs, a 5 MB comment search):

- the page router hands each page's `layout` a query cleaned by `state.clean_state`, and a
  unit id that names no org unit gets a plain "unknown unit" message instead of the page
  (which would otherwise show the whole company with no answers);
- a callback request whose view-state store (`<page>-state`) holds anything `clean_state`
  would change is refused with 400: the browser only ever sends what the router stored;
- request bodies are bounded (`MAX_CONTENT_LENGTH`), so no upload or callback can make a
  worker read megabytes.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import dash
import dash_bootstrap_components as dbc
from dash import Dash, html
from flask import Flask, abort, request

from dashboard.state import clean_state, is_clean

MAX_CONTENT_LENGTH = 1024 * 1024
"""Largest request body accepted (bytes); a callback request is a few kilobytes."""
STATE_SUFFIX = "-state"


def unknown_unit(unit: str) -> html.Div:
    """The message a page shows instead of itself when its unit id names no org unit."""
    return dbc.Alert(
        [html.Strong("Unknown unit. "),
         f"No org unit has the id “{unit}”: choose a unit in the filter bar above, or clear "
         "it to see the whole company."],
        color="warning", id="app-unknown-unit")


def _known_unit(unit: str) -> bool:
    from dashboard.data import cached
    from queries.kpis import org_units

    return any(str(u["id"]) == unit for u in cached(org_units))


def _guarded(layout: Callable[..., Any]) -> Callable[..., Any]:
    if getattr(layout, "_cx_state_guarded", False):
        return layout

    @functools.wraps(layout)
    def guarded(**query: Any) -> Any:
        state = clean_state(query)
        unit = state.get("unit")
        if unit and not _known_unit(unit):
            return unknown_unit(unit)
        return layout(**state)

    guarded._cx_state_guarded = True  # type: ignore[attr-defined]
    return guarded


def guard_pages() -> None:
    """Put the cleaning gate in front of every registered page's layout function."""
    for page in dash.page_registry.values():
        if callable(page.get("layout")):
            page["layout"] = _guarded(page["layout"])


def _bad_state(body: object) -> str | None:
    if not isinstance(body, dict):
        return "the request is not a callback"
    items = []
    for item in [*(body.get("inputs") or []), *(body.get("state") or [])]:
        # A pattern-matching input (ALL) arrives as a list of the matched components.
        items.extend(item if isinstance(item, list) else [item])
    for item in items:
        if not isinstance(item, dict):
            return "the request is not a callback"
        ident = item.get("id")
        if (isinstance(ident, str) and ident.endswith(STATE_SUFFIX)
                and item.get("property") == "data" and not is_clean(item.get("value"))):
            return f"the view state of {ident} is not valid"
    return None


def install(app: Dash, server: Flask) -> None:
    """Install the gates on `app` and its Flask `server`."""
    server.config["MAX_CONTENT_LENGTH"] = MAX_CONTENT_LENGTH
    update_path = app.config.requests_pathname_prefix + "_dash-update-component"
    # Pages are imported when the app is built; `layout` entries are read at each request.
    guard_pages()

    @server.before_request
    def refuse_bad_view_state():
        if request.method == "POST" and request.path == update_path:
            problem = _bad_state(request.get_json(silent=True))
            if problem:
                abort(400, description=problem)
        return None
