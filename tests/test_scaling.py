"""The deployment past one box, for real: a read replica for the web tier's reads, and
several web instances sharing one Redis (docs/SCALING.md)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import create_engine, select, text, update
from sqlalchemy.engine import make_url

from benchmarks.serving import free_port, start_gunicorn, stop_gunicorn
from etl.migrate import upgrade
from queries.db import make_engine
from queries.schema import org_unit
from tests.conftest import PG_URL, TEST_USERS, add_test_users, sign_in
from tests.dash_http import Client, request, route

SECRET = "test-secret-key-0123456789abcdefghij"
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/14")


def _load_demo(url: str, demo_dir: Path) -> None:
    from etl.config import load_config
    from etl.run import run_sources

    eng = make_engine(url)
    upgrade(eng)
    results = run_sources(eng, load_config(demo_dir / "sources.toml"))
    eng.dispose()
    assert all(r.ok for r in results), results
    add_test_users(url)


@contextmanager
def _served(tmp: Path, **env: str) -> Iterator[str]:
    """gunicorn (the project's config) with `env` on a free port; yields the base URL."""
    port = free_port()
    tmp.mkdir(parents=True, exist_ok=True)
    full = {**os.environ, "CX_DATA_DIR": str(tmp), "SECRET_KEY": SECRET,
            "CX_BASE_URL": f"http://127.0.0.1:{port}", **env}
    for name in ("CACHE_REDIS_URL", "DATABASE_READ_URL"):
        if name not in env:
            full.pop(name, None)
    proc = start_gunicorn(port, full, tmp / f"gunicorn-{port}.log", args=["--workers", "1"])
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_gunicorn(proc, timeout=10)


def _client(base: str, who: str = "executive") -> Client:
    http = sign_in(base, who)
    cookie = "; ".join(f"{c.name}={c.value}" for c in http.cookies)
    return Client(base, {"Cookie": cookie, "X-CSRFToken": http.headers["X-CSRFToken"],
                         "Origin": base, "Referer": base + "/"})


def _on(client: Client, base: str) -> Client:
    """The same signed-in browser talking to another instance."""
    return Client(base, {**client.headers, "Origin": base, "Referer": base + "/"})


def _count(url: str, sql: str, **params: object) -> int:
    eng = make_engine(url)
    with eng.connect() as conn:
        value = conn.execute(text(sql), params).scalar_one()
    eng.dispose()
    return int(value)


@pytest.mark.skipif(not PG_URL, reason="needs PostgreSQL (TEST_DATABASE_URL)")
def test_pages_read_the_replica_while_sign_ins_and_audit_land_on_the_primary(
        demo_dir: Path, fresh_database_url, tmp_path: Path) -> None:
    primary = fresh_database_url("postgresql")
    _load_demo(primary, demo_dir)
    # The replica: a copy of the primary (as streaming replication would make it), then one
    # figure changed in it alone so a page shows which database it read.
    replica_name = make_url(primary).database + "_replica"
    admin = create_engine(make_url(primary).set(drivername="postgresql+psycopg",
                                                database="postgres"),
                          isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{replica_name}" TEMPLATE '
                          f'"{make_url(primary).database}"'))
    replica = make_url(primary).set(database=replica_name).render_as_string(
        hide_password=False)
    try:
        eng = make_engine(replica)
        with eng.begin() as conn:
            conn.execute(update(org_unit).where(org_unit.c.id == "R-WEST")
                         .values(name="West as the replica has it"))
        eng.dispose()
        audits_before = _count(replica, "SELECT count(*) FROM audit_log")

        with _served(tmp_path / "web", DATABASE_URL=primary, DATABASE_READ_URL=replica,
                     CX_SOURCES=str(demo_dir / "sources.toml")) as base:
            client = _client(base, "executive")
            layout = request(base + "/_dash-layout", headers=client.headers)
            assert layout.status == 200
            assert "West as the replica has it" in layout.text
            page = route(client, "/", "?unit=R-WEST&period=2026-10")
            assert page.status == 200, page.text[:300]

            email = TEST_USERS["executive"][0]
            assert _count(primary, "SELECT count(*) FROM audit_log WHERE action = "
                          "'sign_in' AND actor = :e", e=email) == 1
            assert _count(primary, "SELECT count(*) FROM user_session s JOIN app_user u "
                          "ON u.id = s.user_id WHERE u.email = :e", e=email) == 1
            assert _count(replica, "SELECT count(*) FROM audit_log") == audits_before
            assert _count(replica, "SELECT count(*) FROM user_session") == 0

        # The same app without a replica reads the primary, which was never changed.
        with _served(tmp_path / "web2", DATABASE_URL=primary,
                     CX_SOURCES=str(demo_dir / "sources.toml")) as base:
            client = _client(base, "executive")
            layout = request(base + "/_dash-layout", headers=client.headers)
            assert "West as the replica has it" not in layout.text
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{replica_name}" WITH (FORCE)'))
        admin.dispose()


def test_two_web_instances_share_sessions_and_the_redis_cache(
        demo_dir: Path, fresh_database_url, tmp_path: Path) -> None:
    import redis

    url = fresh_database_url("postgresql" if PG_URL else "sqlite")
    _load_demo(url, demo_dir)
    store = redis.Redis.from_url(REDIS_URL)
    store.flushdb()
    env = {"DATABASE_URL": url, "CACHE_REDIS_URL": REDIS_URL,
           "CX_SOURCES": str(demo_dir / "sources.toml")}
    with _served(tmp_path / "a", **env) as a, _served(tmp_path / "b", **env) as b:
        on_a = _client(a, "executive")
        on_b = _on(on_a, b)
        # A session made on A is good on B: sessions live in the database, not a worker.
        page = request(b + "/", headers=on_b.headers)
        assert page.status == 200 and "/login" not in page.text[:2000]
        reply = route(on_b, "/revenue", "?unit=R-WEST&period=2026-10")
        assert reply.status == 200, reply.text[:300]

        # A reads the filter options (unit names) into the shared cache...
        assert "West" in request(a + "/_dash-layout", headers=on_a.headers).text
        cached_keys = len(store.keys("cx:q:*"))
        assert cached_keys > 0
        # ...then the name changes under both instances without a new ETL run (the data
        # version stays): B still shows what A cached, so B read Redis, not the database.
        eng = make_engine(url)
        with eng.begin() as conn:
            old = conn.execute(select(org_unit.c.name).where(org_unit.c.id == "R-WEST")
                               ).scalar_one()
            conn.execute(update(org_unit).where(org_unit.c.id == "R-WEST")
                         .values(name="Renamed behind the cache"))
        eng.dispose()
        from_b = request(b + "/_dash-layout", headers=on_b.headers).text
        assert old in from_b and "Renamed behind the cache" not in from_b
        store.flushdb()
        assert "Renamed behind the cache" in request(b + "/_dash-layout",
                                                     headers=on_b.headers).text
        # Signing out on B ends the session on A too.
        done = request(b + "/logout", f"csrf_token={on_b.headers['X-CSRFToken']}".encode(),
                       headers={**on_b.headers,
                                "Content-Type": "application/x-www-form-urlencoded"})
        assert done.status in (302, 303), done.status
        again = request(a + "/_dash-layout", headers=on_a.headers)
        assert again.status in (302, 401, 403) or "/login" in again.text[:2000]


def test_database_read_url_is_optional_and_read_like_database_url() -> None:
    from queries.settings import load_settings

    plain = load_settings(_env_file=None, database_url="sqlite:///data/cx.db")
    assert plain.database_read_url is None
    assert plain.read_url == plain.database_url
    split = load_settings(_env_file=None, database_url="postgresql://u@primary/cx",
                          database_read_url="postgres://u@replica/cx")
    assert split.database_url == "postgresql+psycopg://u@primary/cx"
    assert split.read_url == "postgresql+psycopg://u@replica/cx"
    assert load_settings(_env_file=None, database_read_url="").database_read_url is None
