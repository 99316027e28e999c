"""The schema migrates up and down on SQLite and PostgreSQL, and matches queries/schema.py."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text

from etl.migrate import downgrade, upgrade
from queries.db import make_engine
from queries.schema import metadata
from tests.conftest import BACKENDS

TABLES = {t.name for t in metadata.sorted_tables}


@pytest.mark.parametrize("backend", BACKENDS)
def test_upgrade_downgrade_upgrade(backend: str, fresh_database_url) -> None:
    engine = make_engine(fresh_database_url(backend))
    try:
        upgrade(engine)
        assert set(inspect(engine).get_table_names()) >= TABLES
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn, opts={
                "compare_type": True}), metadata)
        assert diff == [], f"migrations and queries/schema.py disagree: {diff}"

        downgrade(engine, "base")
        assert set(inspect(engine).get_table_names()) <= {"alembic_version"}

        upgrade(engine)
        assert set(inspect(engine).get_table_names()) >= TABLES
    finally:
        engine.dispose()


def test_sqlite_runs_in_wal_mode_with_foreign_keys(tmp_path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'x.db'}")
    with engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
    engine.dispose()


def test_code_newer_than_the_database_says_what_to_run(tmp_path) -> None:
    import os
    import subprocess
    import sys

    from queries.db import SchemaError, check_schema
    from queries.settings import ROOT

    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = make_engine(url)
    upgrade(engine, "0003")
    with pytest.raises(SchemaError, match=r"at revision 0003.*python -m etl migrate"):
        check_schema(engine)
    out = subprocess.run([sys.executable, "-m", "queries", "kpis"], cwd=ROOT, text=True,
                         env={**os.environ, "DATABASE_URL": url}, capture_output=True)
    assert out.returncode == 2 and "python -m etl migrate" in out.stderr
    upgrade(engine)
    check_schema(engine)  # at head: no complaint
    engine.dispose()
