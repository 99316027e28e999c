"""Engine factory: the only place that knows how to connect to the reporting database."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url


def make_engine(url: str, **kwargs: Any) -> Engine:
    """Create an engine for `url`; SQLite gets WAL, foreign keys and a busy timeout.

    WAL lets the web and scheduler processes read while a load writes; the busy timeout
    makes a second writer wait for the first instead of failing at once.
    """
    sa_url = make_url(url)
    if sa_url.get_backend_name() == "sqlite":
        database = sa_url.database
        if database and database != ":memory:" and not database.startswith("file:"):
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30}, **kwargs)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        return engine
    kwargs.setdefault("pool_pre_ping", True)
    return create_engine(url, **kwargs)


class SchemaError(RuntimeError):
    """The reporting database's schema is not the one this code expects."""


def check_schema(engine: Engine) -> None:
    """Raise SchemaError, saying what to run, when the database is not migrated to head.

    Without this, code newer than the database fails later with 'no such table'.
    """
    from alembic.migration import MigrationContext
    from alembic.script import ScriptDirectory

    from queries.settings import ROOT

    head = ScriptDirectory(str(ROOT / "migrations")).get_current_head()
    with engine.connect() as conn:
        current = MigrationContext.configure(conn).get_current_revision()
    if current != head:
        where = "an empty database" if current is None else f"revision {current}"
        raise SchemaError(f"the reporting database is at {where}, this code needs revision "
                          f"{head}: run `python -m etl migrate` (or `make run`)")
