"""Who may see what: a scope is a set of org units, applied in SQL to every query.

A report recipient (and, later, a signed-in user) carries a scope: the company for an
executive, a region or a store for a manager. `apply_scope` turns a requested view into one
inside the scope, or refuses it; the queries then only ever read rows of units in the scope's
subtrees, so a number outside it cannot appear by any route.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from sqlalchemy import Connection, select

from queries import schema
from queries.kpis import Filters, unit_scope

ou = schema.org_unit


class ScopeError(PermissionError):
    """The requested view lies outside the scope."""


@dataclass(frozen=True)
class Scope:
    """The org units someone may see, each with everything below it."""

    units: tuple[str, ...]

    @classmethod
    def of(cls, units: str | list[str] | tuple[str, ...]) -> Scope:
        """A scope from one id, a list of ids, or 'A,B' text."""
        if isinstance(units, str):
            units = [u for u in units.split(",") if u.strip()]
        return cls(tuple(sorted({u.strip() for u in units})))


def visible_units(conn: Connection, scope: Scope) -> set[str]:
    """Every unit id inside the scope (the scope's units and all below them)."""
    subtree = unit_scope(scope.units)
    return set(conn.execute(subtree).scalars()) if subtree is not None else set()


def check_units(conn: Connection, scope: Scope) -> None:
    """Raise ValueError naming the scope's units that do not exist."""
    known = set(conn.execute(select(ou.c.id).where(ou.c.id.in_(scope.units))).scalars())
    missing = sorted(set(scope.units) - known)
    if missing:
        raise ValueError(f"unknown org unit(s) {missing}")


def apply_scope(conn: Connection, filters: Filters, scope: Scope | None) -> Filters:
    """`filters` narrowed to `scope`: no unit asked means the whole scope; a unit inside the
    scope is kept; a unit outside it raises ScopeError."""
    if scope is None:
        return filters
    if filters.unit is None:
        unit = scope.units[0] if len(scope.units) == 1 else scope.units
        return replace(filters, unit=unit)
    asked = (filters.unit,) if isinstance(filters.unit, str) else tuple(filters.unit)
    outside = sorted(set(asked) - visible_units(conn, scope))
    if outside:
        raise ScopeError(f"unit(s) {outside} are outside this scope")
    return filters
