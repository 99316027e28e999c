"""Per-app resources reached from callbacks: settings and the database engine.

Callbacks run inside a Flask request, so they find the app's resources on `current_app`
instead of module globals; several apps (tests) can live in one process.
"""

from __future__ import annotations

from flask import current_app
from sqlalchemy import Engine

from queries.settings import Settings


def settings() -> Settings:
    """Settings of the app serving this request."""
    return current_app.config["CX_SETTINGS"]


def engine() -> Engine:
    """Engine of the app serving this request."""
    return current_app.extensions["cx_engine"]
