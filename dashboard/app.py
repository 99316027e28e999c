"""Dash application factory. gunicorn serves `dashboard.app:server`.

`server` is built on first access (PEP 562), so importing this module opens no database
connection and reads no data; each gunicorn worker builds its own app.
"""

from __future__ import annotations

from pathlib import Path

import dash
import dash_bootstrap_components as dbc
from dash import Dash, dcc, html
from flask import Flask, jsonify

from queries.db import make_engine
from queries.settings import ROOT, Settings, get_settings

HERE = Path(__file__).resolve().parent


def navbar() -> dbc.Navbar:
    """Top navigation built from the page registry (pages set `order`; hidden ones skip it)."""
    pages = sorted(
        (p for p in dash.page_registry.values() if not p.get("hidden")),
        key=lambda p: (p.get("order") if p.get("order") is not None else 99, p["name"]),
    )
    links = [
        dbc.NavItem(dbc.NavLink(p["name"], href=p["relative_path"], active="exact",
                                id=f"nav-{p['module'].rsplit('.', 1)[-1]}"))
        for p in pages
    ]
    return dbc.Navbar(
        dbc.Container(
            [
                dbc.NavbarBrand("CX dashboard", href="/", className="fw-semibold"),
                dbc.Nav(links, navbar=True, className="me-auto"),
            ],
            fluid=True,
        ),
        color="dark",
        dark=True,
        className="mb-3",
    )


def create_app(settings: Settings | None = None) -> Dash:
    """Build the Dash app (and its Flask server) for `settings`."""
    settings = settings or get_settings()
    server = Flask(__name__)
    server.config["CX_SETTINGS"] = settings
    server.config["SECRET_KEY"] = settings.secret()
    server.extensions["cx_engine"] = make_engine(settings.database_url)

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
    )
    app.layout = html.Div(
        [
            dcc.Location(id="app-url", refresh="callback-nav"),
            navbar(),
            dbc.Container(dash.page_container, fluid=True, className="pb-4"),
        ]
    )

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
    return app


def __getattr__(name: str) -> Flask:
    if name == "server":
        return create_app().server
    raise AttributeError(name)
