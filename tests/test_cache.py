"""Dashboard cache: keyed by the data version, so a finished ETL run makes it stale; with
CACHE_REDIS_URL one cache is shared by every worker."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from sqlalchemy import Engine, func, insert, select

from dashboard.app import create_app
from dashboard.data import cached
from queries import schema
from queries.settings import load_settings
from tests.conftest import IN_CI

CALLS: list[str] = []


def count_units(conn, *, tag: str) -> int:
    CALLS.append(tag)
    return conn.execute(select(func.count()).select_from(schema.org_unit)).scalar_one()


def _unit(conn, uid: str) -> None:
    conn.execute(insert(schema.org_unit).values(id=uid, name=uid, kind="company",
                                                source="t", loaded_at=dt.datetime(2026, 1, 1)))


def _finished_run(conn) -> None:
    now = dt.datetime.now()
    conn.execute(insert(schema.etl_run).values(source="s", started_at=now, finished_at=now,
                                               status="success"))


def _app(engine: Engine, tmp_path, **extra):
    settings = load_settings(_env_file=None, secret_key="c" * 40, cx_data_dir=str(tmp_path),
                             database_url=engine.url.render_as_string(hide_password=False),
                             **extra)
    return create_app(settings)


def test_a_finished_etl_run_makes_cached_results_stale(engine: Engine, tmp_path) -> None:
    app = _app(engine, tmp_path)
    tag = uuid.uuid4().hex
    CALLS.clear()
    with engine.begin() as conn:
        _unit(conn, "A")
    with app.server.test_request_context("/"):
        assert cached(count_units, tag=tag) == 1
        assert cached(count_units, tag=tag) == 1
        assert [tag] == CALLS  # the second call was a hit
        with engine.begin() as conn:
            _unit(conn, "B")  # data changes while a load is still running: no new version
        assert cached(count_units, tag=tag) == 1
        with engine.begin() as conn:
            _finished_run(conn)  # the load finishes
        # A request reads the data version once: its figures all come from one load.
        assert cached(count_units, tag=tag) == 1
    with app.server.test_request_context("/"):  # the next request sees the new version
        assert cached(count_units, tag=tag) == 2
        assert [tag, tag] == CALLS


def test_redis_shares_one_cache_between_workers(engine: Engine, tmp_path) -> None:
    import redis
    url = "redis://127.0.0.1:6379/15"
    try:
        redis.Redis.from_url(url).ping()
    except redis.exceptions.ConnectionError:
        message = "Redis is not running on 127.0.0.1:6379 (.ci/run starts it)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    first, second = _app(engine, tmp_path, cache_redis_url=url), _app(engine, tmp_path,
                                                                      cache_redis_url=url)
    tag = uuid.uuid4().hex
    CALLS.clear()
    with engine.begin() as conn:
        _unit(conn, "A")
    with first.server.test_request_context("/"):
        assert cached(count_units, tag=tag) == 1
    with second.server.test_request_context("/"):
        assert cached(count_units, tag=tag) == 1
    assert [tag] == CALLS  # computed once, served to the other "worker" from Redis
