"""The dashboard's read layer: `queries/` functions behind a cache.

Cache keys include the data version (the newest finished ETL run), so a finished load makes
every cached result stale at once, in every worker and process, with no message passing:
that is how the cache is 'cleared when an ETL run finishes'. The simple in-process cache is
the default; CACHE_REDIS_URL shares one cache between workers.
"""

from __future__ import annotations

import hashlib
from typing import Any

from flask import Flask
from flask_caching import Cache
from sqlalchemy import func, select

from dashboard import context
from dashboard.state import compare_of, period_of
from queries import schema
from queries.kpis import Settings as KpiSettings
from queries.kpis import latest_full_month
from queries.periods import Month

cache = Cache()
TIMEOUT = 15 * 60


def init_cache(server: Flask) -> None:
    """Attach the cache to the Flask server (Redis when CACHE_REDIS_URL is set)."""
    settings = server.config["CX_SETTINGS"]
    if settings.cache_redis_url:
        config = {"CACHE_TYPE": "RedisCache", "CACHE_REDIS_URL": settings.cache_redis_url,
                  "CACHE_KEY_PREFIX": "cx:"}
    else:
        config = {"CACHE_TYPE": "SimpleCache", "CACHE_THRESHOLD": 2000}
    cache.init_app(server, config={**config, "CACHE_DEFAULT_TIMEOUT": TIMEOUT})


def data_version() -> int:
    """Id of the newest finished ETL run: part of every cache key."""
    run = schema.etl_run
    with context.engine().connect() as conn:
        return conn.execute(select(func.coalesce(func.max(run.c.id), 0))
                            .where(run.c.finished_at.is_not(None))).scalar_one()


def cached(fn: Any, *args: Any, **kwargs: Any) -> Any:
    """`fn(conn, *args, **kwargs)` from the cache, computed on a miss.

    `fn` is a `queries/` read function; its arguments must have a stable repr (frozen
    dataclasses, strings, numbers), which they do.
    """
    raw = (f"{fn.__module__}.{fn.__qualname__}|v{data_version()}|{args!r}|"
           f"{sorted(kwargs.items())!r}|{context.engine().url!r}")
    key = "q:" + hashlib.sha1(raw.encode()).hexdigest()
    hit = cache.get(key)
    if hit is not None:
        return hit
    with context.engine().connect() as conn:
        value = fn(conn, *args, **kwargs)
    cache.set(key, value)
    return value


def resolve_period(state: dict[str, str]) -> tuple[Month | None, Month | None]:
    """The view's period (default: the latest full month with data) and comparison period."""
    latest = cached(latest_full_month)
    if latest is None:
        return None, None
    period = period_of(state, latest)
    return period, compare_of(state, period)


def kpi_settings() -> KpiSettings:
    """The thresholds of KPI computations, from the app's settings."""
    s = context.settings()
    return KpiSettings(s.cx_min_n, s.cx_anonymity_min, s.cx_active_days)
