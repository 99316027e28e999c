"""Dash application factory. gunicorn serves `dashboard.app:server`.

`server` is built on first access (PEP 562), so importing this module opens no database
connection and reads no data; each gunicorn worker builds its own app.

The shell (navbar, filter bar, URL) is app-wide; each page is a module in `pages/` whose
layout is a function of the URL query string, so a link reproduces a view.
"""

from __future__ import annotations

import sys
from pathlib import Path

import dash
import dash_bootstrap_components as dbc
from dash import ALL, Dash, Input, Output, State, ctx, dcc, html, no_update
from flask import Flask, abort, jsonify, redirect, request

from auth.web import Principal, audit_request, current_principal, init_auth
from dashboard import context, guard
from dashboard.components.download import DOWNLOADS, download_file, file_name
from dashboard.components.filter_bar import IDS, filter_bar
from dashboard.data import cached, init_cache, visible
from dashboard.state import FILTER_KEYS, parse_search, to_search
from queries.db import check_schema, make_engine
from queries.kpis import latest_full_month
from queries.options import filter_options
from queries.settings import ROOT, Settings, get_settings

HERE = Path(__file__).resolve().parent


def _allowed(page: dict, role: str | None) -> bool:
    roles = page.get("roles")
    return not roles or (role is not None and role in roles)


def _pages(role: str | None = "admin") -> list[dict]:
    """The navbar's pages for `role` (default: every page, for registering callbacks)."""
    # One entry per path: a page module imported twice (say by a test) registers twice.
    unique = {p["path"]: p for p in reversed(dash.page_registry.values())
              if not p.get("hidden") and _allowed(p, role)}
    return sorted(unique.values(),
                  key=lambda p: (p.get("order") if p.get("order") is not None else 99,
                                 p["name"]))


def _page_paths() -> set[str]:
    return {p["path"] for p in dash.page_registry.values() if not p.get("hidden")}


def _nav_id(page: dict) -> str:
    return f"nav-{page['module'].rsplit('.', 1)[-1]}"


def _account(who: Principal | None) -> html.Div | None:
    if who is None or who.kind != "user":
        return None
    scope = "every unit" if who.scope is None else ", ".join(who.scope.units)
    return html.Div([
        html.Span(who.label, className="text-light small me-2", id="nav-user",
                  title=f"Signed in as {who.email}; sees {scope}"),
        html.Form([dcc.Input(type="hidden", name="csrf_token", value=who.csrf or ""),
                   html.Button("Sign out", type="submit", id="nav-signout",
                               className="btn btn-outline-light btn-sm")],
                  method="POST", action="/logout", className="d-inline m-0"),
    ], className="d-flex align-items-center")


def navbar() -> dbc.Navbar:
    """Top navigation built from the page registry (pages set `order`; hidden ones and those
    of other roles skip it), with the signed-in person and sign-out."""
    who = current_principal()
    role = who.role if who is not None else None
    shown = {p["path"] for p in _pages(role)}
    # Every page's link exists (the href callback outputs to all); other roles' are hidden.
    links = [dbc.NavItem(dbc.NavLink(p["name"], href=p["relative_path"], active="partial"
                                     if p["relative_path"] != "/" else "exact", id=_nav_id(p)),
                         style=None if p["path"] in shown else {"display": "none"})
             for p in _pages()]
    return dbc.Navbar(
        dbc.Container(
            [
                dbc.NavbarBrand("CX dashboard", href="/", className="fw-semibold"),
                dbc.NavbarToggler(id="nav-toggle"),
                dbc.Collapse(dbc.Nav(links, navbar=True, className="me-auto"),
                             id="nav-collapse", navbar=True),
                _account(who),
            ],
            fluid=True,
        ),
        color="dark",
        dark=True,
        expand="xl",
        className="mb-2 d-print-none",
    )


def shell() -> html.Div:
    """The app-wide layout, built per request so filter options follow the data."""
    try:
        options = cached(filter_options)
        latest = cached(latest_full_month)
        who = current_principal()
        bar = filter_bar(options, latest, unit_placeholder="Whole company"
                         if who is None or who.scope is None else "All your units")
    except Exception as exc:  # a broken database must still give a readable page
        bar = dbc.Alert(f"The reporting database cannot be read: {exc}", color="danger",
                        id="filters-error")
    return html.Div(
        [
            dcc.Location(id="app-url", refresh="callback-nav"),
            dcc.Download(id="app-download"),
            navbar(),
            dbc.Container([bar, dash.page_container], fluid=True, className="pb-4"),
        ]
    )


def register_shell_callbacks(app: Dash) -> None:
    """URL <-> filter bar, navbar links that keep the filters, and downloads."""
    filter_ids = [IDS[k] for k in FILTER_KEYS]

    @app.callback(
        Output("app-url", "search"),
        *[Output(i, "value") for i in filter_ids],
        Input("app-url", "search"),
        *[Input(i, "value") for i in filter_ids],
    )
    def sync_filters(search: str | None, *values: str | None):
        state = parse_search(search)
        if ctx.triggered_id in (None, "app-url"):
            return no_update, *[state.get(k) for k in FILTER_KEYS]
        changed = dict(zip(FILTER_KEYS, values, strict=True))
        if changed.get("unit") != state.get("unit"):
            # A new unit invalidates a drill path or selection made inside the old one.
            state.pop("path", None)
        new = {**{k: v for k, v in state.items() if k not in FILTER_KEYS}, **changed}
        new_search = to_search(new)
        return (new_search if new_search != (search or "") else no_update,
                *[no_update] * len(filter_ids))

    pages = _pages()

    @app.callback([Output(_nav_id(p), "href") for p in pages], Input("app-url", "search"))
    def nav_hrefs(search: str | None) -> list[str]:
        keep = to_search({k: v for k, v in parse_search(search).items() if k in FILTER_KEYS})
        return [p["relative_path"] + keep for p in pages]

    @app.callback(
        Output("app-download", "data"),
        Input({"type": "download", "target": ALL, "fmt": ALL}, "n_clicks"),
        State("app-url", "search"),
        prevent_initial_call=True,
    )
    def download(clicks: list[int | None], search: str | None):
        trigger = ctx.triggered_id
        if not trigger or not any(clicks) or not ctx.triggered[0].get("value"):
            return no_update
        if trigger.get("target") not in DOWNLOADS:
            from werkzeug.exceptions import BadRequest

            raise BadRequest(f"unknown download target {str(trigger.get('target'))[:80]!r}")
        state = parse_search(search)
        frame = DOWNLOADS[trigger["target"]](state)
        name = file_name(trigger["target"], state, trigger["fmt"])
        audit_request(context.engine(), "export", target=name, detail=f"{len(frame)} rows")
        return download_file(trigger["target"], frame, state, trigger["fmt"])


def create_app(settings: Settings | None = None) -> Dash:
    """Build the Dash app (and its Flask server) for `settings`."""
    settings = settings or get_settings()
    server = Flask(__name__)
    server.config["CX_SETTINGS"] = settings
    server.config["SECRET_KEY"] = settings.secret()
    server.extensions["cx_engine"] = make_engine(settings.database_url, interactive=True)
    # Fail at start, with the command to run, rather than on the first page view.
    check_schema(server.extensions["cx_engine"])
    if settings.database_read_url:
        # Dashboard reads go to the replica; sessions, audit and admin changes stay on the
        # primary (auth and the pages' writes use the primary engine).
        server.extensions["cx_read_engine"] = make_engine(settings.database_read_url,
                                                          interactive=True)
        check_schema(server.extensions["cx_read_engine"])
    init_cache(server)
    auth = init_auth(server, settings, server.extensions["cx_engine"])

    app = Dash(
        __name__,
        server=server,
        use_pages=True,
        pages_folder=str(HERE / "pages"),
        assets_folder=str(ROOT / "assets"),
        # Bootstrap is linked first explicitly, so our own CSS can override it.
        assets_path_ignore=["vendor"],
        external_stylesheets=["/assets/vendor/bootstrap.min.css"],
        title="CX dashboard",
        update_title=None,
        suppress_callback_exceptions=True,
        meta_tags=[{"name": "viewport", "content": "width=device-width, initial-scale=1"}],
    )
    app.layout = shell
    guard.install(app, server)
    register_shell_callbacks(app)

    @app.callback(Output("nav-collapse", "is_open"), Input("nav-toggle", "n_clicks"),
                  State("nav-collapse", "is_open"), prevent_initial_call=True)
    def toggle_nav(n: int | None, is_open: bool) -> bool:
        return not is_open

    @server.before_request
    def scope_in_url():
        # A manager's pages open on their own unit (so captions, breadcrumbs and the filter
        # bar say where they are), and a link naming a unit outside their scope is refused
        # before any page code runs; the callbacks enforce the same scope on every read.
        who = current_principal()
        if who is None or who.scope is None or request.method != "GET" \
                or request.path not in _page_paths():
            return None
        unit = request.args.get("unit")
        if unit is None and len(who.scope.units) == 1:
            query = {**request.args.to_dict(), "unit": who.scope.units[0]}
            return redirect(request.path + to_search(query))
        if unit is not None and unit not in visible(who.scope):
            abort(403, description=f"unit {unit!r} is outside your scope")
        return None

    @server.get("/healthz")
    def healthz():
        from sqlalchemy import text

        with server.extensions["cx_engine"].connect() as conn:
            conn.execute(text("SELECT 1"))
        return jsonify(status="ok")

    @server.get("/_cx/ping")
    def ping():
        return jsonify(status="ok")

    # Dash sets itself up in a before-request hook guarded by a plain flag: with threaded
    # workers a second request could be served before the first finished registering the
    # component scripts (a 500 on a .js file). One request now, before any traffic, avoids it.
    server.test_client().get("/_cx/ping")
    # Page roles, and the hashes of Dash's inline scripts for the CSP: Dash adds the pages'
    # clientside script during that first request.
    auth.finish(dash.page_registry, app.csp_hashes())
    return app


def __getattr__(name: str) -> Flask:
    if name == "server":
        from queries.db import DatabaseUnavailable, SchemaError
        from queries.settings import SettingsError

        try:
            return create_app().server
        except (DatabaseUnavailable, SchemaError, SettingsError) as exc:
            # gunicorn would log a long traceback per worker and only then say "Worker
            # failed to boot": say why in one line, and exit as an app that cannot load.
            print(f"error: {exc}", file=sys.stderr, flush=True)
            raise SystemExit(4) from None
    raise AttributeError(name)
