"""What the filters can offer: periods with data and the values each dimension takes."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, select

from queries import schema
from queries.kpis import org_units
from queries.periods import Month

asd = schema.agg_survey_daily
atd = schema.agg_txn_daily


@dataclass(frozen=True)
class FilterOptions:
    """Choices for the filter bar, read from the rollups (so they are what the data holds)."""

    months: list[str]
    units: list[dict[str, object]]
    segments: list[str]
    channels: list[str]
    devices: list[str]
    interactions: list[str]
    touchpoints: list[str]


def _values(conn: Connection, column) -> list[str]:
    rows = conn.execute(select(column).where(column.is_not(None)).distinct()).scalars().all()
    return sorted(str(r) for r in rows)


def filter_options(conn: Connection) -> FilterOptions:
    """Every value the filter bar may offer, newest month first."""
    months = sorted(set(_values(conn, asd.c.month)) | set(_values(conn, atd.c.month)),
                    reverse=True)
    return FilterOptions(
        months=[str(Month.parse(m)) for m in months],
        units=org_units(conn),
        segments=_values(conn, asd.c.segment),
        channels=sorted(set(_values(conn, asd.c.channel)) | set(_values(conn, atd.c.channel))),
        devices=_values(conn, asd.c.device),
        interactions=_values(conn, asd.c.interaction),
        touchpoints=_values(conn, asd.c.touchpoint),
    )
