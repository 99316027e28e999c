"""Per-app resources reached from callbacks: settings and the database engines.

Callbacks run inside a Flask request, so they find the app's resources on `current_app`
instead of module globals; several apps (tests) can live in one process.

Two engines: `engine()` is the primary (DATABASE_URL), for every write and for reads that
must see a write at once (users, subscriptions, sessions); `read_engine()` is where the
dashboard's data reads go (DATABASE_READ_URL, a replica, when set; else the primary).
"""

from __future__ import annotations

from flask import current_app
from sqlalchemy import Engine

from queries.settings import Settings


def settings() -> Settings:
    """Settings of the app serving this request."""
    return current_app.config["CX_SETTINGS"]


def engine() -> Engine:
    """The primary engine of the app serving this request: writes go here."""
    return current_app.extensions["cx_engine"]


def read_engine() -> Engine:
    """The engine for dashboard data reads: the read replica when DATABASE_READ_URL is set,
    else the primary."""
    return current_app.extensions.get("cx_read_engine") or current_app.extensions["cx_engine"]
