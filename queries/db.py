"""Engine factory: the only place that knows how to connect to the reporting database."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import InterfaceError, OperationalError


def make_engine(url: str, *, interactive: bool = False, **kwargs: Any) -> Engine:
    """Create an engine for `url`; SQLite gets WAL, foreign keys and a busy timeout.

    WAL lets the web and scheduler processes read while a load writes; the busy timeout
    makes a second writer wait for the first instead of failing at once.

    `interactive` (the dashboard's engines): on PostgreSQL, sessions without JIT
    compilation. The dashboard's queries read summaries and run for milliseconds, but at
    a large company's size their cost estimates pass `jit_above_cost` and PostgreSQL spent
    100-150 ms compiling each (the revenue page's callbacks went from about 200 ms to
    20-45 ms cold with JIT off).
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
    if interactive and sa_url.get_backend_name() == "postgresql":
        # Added to the URL's own `options`, if it has any (a search_path, say).
        given = sa_url.query.get("options")
        given = " ".join(given) if isinstance(given, tuple) else (given or "")
        connect_args = dict(kwargs.pop("connect_args", {}))
        connect_args["options"] = f"{given} -c jit=off".strip()
        kwargs["connect_args"] = connect_args
    return create_engine(url, **kwargs)


class SchemaError(RuntimeError):
    """The reporting database's schema is not the one this code expects."""


class DatabaseUnavailable(RuntimeError):
    """The reporting database cannot be reached; the message is one line naming where
    (host and port, or the SQLite file) and why."""


def describe_unreachable(url: URL, exc: BaseException) -> str:
    """One line for a failed connection: 'cannot connect to the reporting database
    (postgresql) at db.example.com:5432: Connection refused'."""
    cause = str(getattr(exc, "orig", None) or exc).strip()
    first = cause.splitlines()[0] if cause else type(exc).__name__
    # psycopg: 'connection failed: connection to server at "h", port 5432 failed: <why>'
    first = first.rsplit(" failed: ", 1)[-1]
    first = re.sub(r"^(FATAL|ERROR):\s+", "", first).strip() or type(exc).__name__
    backend = url.get_backend_name()
    if backend == "sqlite":
        return f"cannot open the reporting database (sqlite) at {url.database}: {first}"
    where = f"{url.host or 'localhost'}:{url.port or _DEFAULT_PORTS.get(backend, '?')}"
    name = f", database {url.database!r}" if url.database else ""
    return f"cannot connect to the reporting database ({backend}) at {where}{name}: {first}"


_DEFAULT_PORTS = {"postgresql": 5432, "mysql": 3306, "mssql": 1433, "oracle": 1521}


def ensure_reachable(engine: Engine) -> None:
    """Connect once; raise DatabaseUnavailable (one readable line) if that fails."""
    try:
        with engine.connect():
            pass
    except (OperationalError, InterfaceError) as exc:
        raise DatabaseUnavailable(describe_unreachable(engine.url, exc)) from None


def check_schema(engine: Engine) -> None:
    """Raise SchemaError, saying what to run, when the database is not migrated to head
    (DatabaseUnavailable when it cannot be reached at all).

    Without this, code newer than the database fails later with 'no such table'.
    """
    from alembic.migration import MigrationContext
    from alembic.script import ScriptDirectory

    from queries.settings import ROOT

    head = ScriptDirectory(str(ROOT / "migrations")).get_current_head()
    ensure_reachable(engine)
    with engine.connect() as conn:
        current = MigrationContext.configure(conn).get_current_revision()
    if current != head:
        where = "an empty database" if current is None else f"revision {current}"
        raise SchemaError(f"the reporting database is at {where}, this code needs revision "
                          f"{head}: run `python -m etl migrate` (or `make run`)")
