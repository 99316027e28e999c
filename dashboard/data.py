"""The dashboard's read layer: `queries/` functions behind a cache.

Cache keys include the data version (the newest finished ETL run), so a finished load makes
every cached result stale at once, in every worker and process, with no message passing:
that is how the cache is 'cleared when an ETL run finishes'. The simple in-process cache is
the default; CACHE_REDIS_URL shares one cache between workers.

It is also where a signed-in person's scope is enforced, once for every page, download and
callback: `cached` narrows each read to the principal's org units through
`queries.scope` (filters, `unit=` and `parent=` arguments), trims unit lists to those units,
and refuses (fails closed) any read function it does not know how to scope. The company
benchmark shown to managers is the one deliberate exception (`benchmark`).
"""

from __future__ import annotations

import hashlib
from dataclasses import replace
from typing import Any

from flask import Flask, g, has_request_context
from flask_caching import Cache
from sqlalchemy import func, select

from dashboard import context
from dashboard.state import compare_of, period_of
from queries import schema
from queries.health import (
    freshness,
    last_runs,
    quarantine_counts,
    quarantined_rows,
    recent_runs,
    table_counts,
)
from queries.kpis import Filters, latest_full_month, org_units
from queries.kpis import Settings as KpiSettings
from queries.options import FilterOptions, filter_options
from queries.periods import Month
from queries.scope import Scope, ScopeError, apply_scope, visible_units

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
    """Id of the newest finished ETL run: part of every cache key. Read once per request
    (a callback makes a dozen cached reads; one answer for all of them is also what keeps
    a request's figures from straddling a load)."""
    if has_request_context() and "cx_data_version" in g:
        return g.cx_data_version
    run = schema.etl_run
    with context.read_engine().connect() as conn:
        version = conn.execute(select(func.coalesce(func.max(run.c.id), 0))
                               .where(run.c.finished_at.is_not(None))).scalar_one()
    if has_request_context():
        g.cx_data_version = version
    return version


# Read functions that return no unit-level figures: the same for every scope.
SCOPE_FREE = {latest_full_month, freshness, last_runs, quarantine_counts, quarantined_rows,
              recent_runs, table_counts, visible_units}
# Read functions returning the org tree: trimmed to the scope's units afterwards.
UNIT_LISTS = {org_units, filter_options}


def current_scope() -> Scope | None:
    """The org units the person (or report) of this request may see; None: every unit."""
    from auth.web import current_principal

    who = current_principal()
    return who.scope if who is not None else None


def visible(scope: Scope) -> frozenset[str]:
    """Every unit id inside `scope` (cached)."""
    return frozenset(_cached(visible_units, scope))


def _scoped_unit(value: Any, scope: Scope, visible: frozenset[str]) -> Any:
    if value is None:
        return scope.units[0] if len(scope.units) == 1 else tuple(scope.units)
    asked = (value,) if isinstance(value, str) else tuple(value)
    outside = sorted(set(asked) - visible)
    if outside:
        raise ScopeError(f"unit(s) {outside} are outside your scope")
    return value


def scoped_kwargs(fn: Any, kwargs: dict[str, Any], scope: Scope) -> dict[str, Any]:
    """`kwargs` of a read narrowed to `scope`, or ScopeError (also for an unknown read)."""
    seen = visible(scope)
    out = dict(kwargs)
    handled = fn in SCOPE_FREE or fn in UNIT_LISTS
    if isinstance(out.get("filters"), Filters):
        f = out["filters"]
        if f.unit is not None:
            _scoped_unit(f.unit, scope, seen)
        with context.read_engine().connect() as conn:
            out["filters"] = apply_scope(conn, f, scope)
        handled = True
    if "unit" in out:
        out["unit"] = _scoped_unit(out["unit"], scope, seen)
        handled = True
    if "parent" in out:
        _scoped_unit(str(out["parent"]), scope, seen)
        handled = True
    if not handled:
        raise ScopeError(f"{fn.__name__} cannot be read inside a scope")
    return out


def _trim(value: Any, scope: Scope) -> Any:
    seen = visible(scope)

    def units(rows: list[dict]) -> list[dict]:
        # The scope's own units become roots: pages then treat them as the top of the tree.
        return [{**r, "parent_id": r["parent_id"] if r["parent_id"] in seen else None}
                for r in rows if r["id"] in seen]

    if isinstance(value, FilterOptions):
        return replace(value, units=units(value.units))
    return units(value)


def cached(fn: Any, *args: Any, **kwargs: Any) -> Any:
    """`fn(conn, *args, **kwargs)` from the cache, inside the principal's scope.

    `fn` is a `queries/` read function; its arguments must have a stable repr (frozen
    dataclasses, strings, numbers), which they do.
    """
    scope = current_scope()
    if scope is None:
        return _cached(fn, *args, **kwargs)
    if args:
        raise ScopeError(f"{fn.__name__}: pass keyword arguments so the scope can be applied")
    value = _cached(fn, **scoped_kwargs(fn, kwargs, scope))
    return _trim(value, scope) if fn in UNIT_LISTS else value


def scope_name(state: dict[str, str]) -> str:
    """What the view covers, in words: the chosen unit, else the person's units, else the
    whole company."""
    names = {str(u["id"]): str(u["name"]) for u in cached(org_units)}
    unit = state.get("unit")
    if unit:
        return names.get(unit, unit)
    scope = current_scope()
    if scope is None:
        return "Whole company"
    return ", ".join(names.get(u, u) for u in scope.units)


def benchmark(fn: Any, **kwargs: Any) -> Any:
    """A company-wide figure shown beside a scoped view: the one read that ignores the
    scope, allowed only for the functions in `queries.benchmark`."""
    from queries import benchmark as allowed

    if getattr(allowed, fn.__name__, None) is not fn:
        raise ScopeError(f"{fn.__name__} is not a company benchmark")
    return _cached(fn, **kwargs)


def _cached(fn: Any, *args: Any, **kwargs: Any) -> Any:
    raw = (f"{fn.__module__}.{fn.__qualname__}|v{data_version()}|{args!r}|"
           f"{sorted(kwargs.items())!r}|{context.read_engine().url!r}")
    key = "q:" + hashlib.sha1(raw.encode()).hexdigest()
    hit = cache.get(key)
    if hit is not None:
        return hit
    with context.read_engine().connect() as conn:
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
