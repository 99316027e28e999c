"""Portable SQL date functions: one expression, compiled per database dialect."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Date, DateTime, String, func
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql import ColumnElement
from sqlalchemy.sql.functions import FunctionElement


class day_of(FunctionElement):
    """The calendar day of a timestamp (a DATE)."""

    type = Date()
    inherit_cache = True
    name = "day_of"


class month_of(FunctionElement):
    """The calendar month of a timestamp or date as 'YYYY-MM' text."""

    type = String()
    inherit_cache = True
    name = "month_of"


@compiles(day_of)
def _day_default(element: day_of, compiler: Any, **kw: Any) -> str:
    return f"CAST({compiler.process(element.clauses, **kw)} AS DATE)"


@compiles(day_of, "sqlite")
def _day_sqlite(element: day_of, compiler: Any, **kw: Any) -> str:
    return f"date({compiler.process(element.clauses, **kw)})"


@compiles(month_of)
def _month_default(element: month_of, compiler: Any, **kw: Any) -> str:
    return f"to_char({compiler.process(element.clauses, **kw)}, 'YYYY-MM')"


@compiles(month_of, "sqlite")
def _month_sqlite(element: month_of, compiler: Any, **kw: Any) -> str:
    return f"strftime('%Y-%m', {compiler.process(element.clauses, **kw)})"


class add_days(FunctionElement):
    """A timestamp plus a whole number of days: add_days(column, 180)."""

    type = DateTime()
    inherit_cache = True
    name = "add_days"


@compiles(add_days)
def _add_days_default(element: add_days, compiler: Any, **kw: Any) -> str:
    column, days = list(element.clauses)
    return (f"({compiler.process(column, **kw)} + "
            f"{compiler.process(days, **kw)} * INTERVAL '1 day')")


@compiles(add_days, "sqlite")
def _add_days_sqlite(element: add_days, compiler: Any, **kw: Any) -> str:
    column, days = list(element.clauses)
    # SQLite stores timestamps as 'YYYY-MM-DD HH:MM:SS.ffffff'; keep that shape so text
    # comparisons with stored values stay correct.
    return (f"strftime('%Y-%m-%d %H:%M:%f000', {compiler.process(column, **kw)}, "
            f"'+' || {compiler.process(days, **kw)} || ' days')")


def rescaled(value: ColumnElement, low: ColumnElement, high: ColumnElement,
             default: tuple[int, int], target: tuple[int, int]) -> ColumnElement:
    """`value` asked on the scale [low, high] (NULL bounds: `default`) mapped linearly onto
    `target`: a + (value - low) x (b - a) / (high - low). The rule that lets answers given
    on different scales share one mean; top-box shares use each answer's own threshold."""
    lo = func.coalesce(low, default[0])
    hi = func.coalesce(high, default[1])
    a, b = target
    # 1.0 x: SQLite divides integers as integers.
    return a + (value - lo) * (1.0 * (b - a)) / (hi - lo)
