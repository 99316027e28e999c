"""The dashboard's PostgreSQL sessions run without JIT compilation (its queries take
milliseconds; compiling them took 100-150 ms each at a large company's size), keep the
URL's own connection options, and the ETL's engine is left with the server's setting."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from queries.db import make_engine
from tests.conftest import PG_URL


@pytest.fixture
def pg_url() -> str:
    if not PG_URL:
        pytest.skip("needs TEST_DATABASE_URL (CI sets it; a missing one fails CI at start)")
    return PG_URL


def _show(url: str, name: str, **kwargs) -> str:
    engine = make_engine(url, **kwargs)
    try:
        with engine.connect() as conn:
            return conn.execute(text(f"SHOW {name}")).scalar_one()
    finally:
        engine.dispose()


def test_dashboard_sessions_have_no_jit_and_keep_the_urls_options(pg_url: str) -> None:
    with make_engine(pg_url).connect() as conn:
        server_default = conn.execute(text("SHOW jit")).scalar_one()
    assert _show(pg_url, "jit", interactive=True) == "off"
    assert _show(pg_url, "jit") == server_default
    with_options = make_url(pg_url).update_query_dict(
        {"options": "-c search_path=cx_elsewhere,public"}).render_as_string(hide_password=False)
    assert _show(with_options, "search_path", interactive=True) == "cx_elsewhere,public"
    assert _show(with_options, "jit", interactive=True) == "off"


def test_the_apps_engines_are_interactive(pg_url: str, tmp_path) -> None:
    from dashboard.app import create_app
    from etl.migrate import upgrade
    from queries.settings import load_settings
    from tests.conftest import create_pg_database, drop_pg_database

    url = create_pg_database(pg_url)
    try:
        upgrade(make_engine(url))
        app = create_app(load_settings(_env_file=None, database_url=url,
                                       database_read_url=url, cx_data_dir=str(tmp_path),
                                       secret_key="test-secret-key-0123456789abcdefghij"))
        for name in ("cx_engine", "cx_read_engine"):
            engine = app.server.extensions[name]
            with engine.connect() as conn:
                assert conn.execute(text("SHOW jit")).scalar_one() == "off", name
            engine.dispose()
    finally:
        drop_pg_database(pg_url, url)
