"""What the filters can offer: periods with data and the values each dimension takes."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, select, union

from queries import schema
from queries.kpis import org_units
from queries.periods import Month

asm = schema.agg_survey_monthly
atm = schema.agg_txn_monthly
adv = schema.agg_dim_value


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


def _values(conn: Connection, fact: str | None, dim: str) -> list[str]:
    facts = [fact] if fact else ["survey", "sales"]
    rows = conn.execute(select(adv.c.value).where(adv.c.fact.in_(facts), adv.c.dim == dim)
                        .distinct()).scalars().all()
    return sorted(str(r) for r in rows)


def filter_options(conn: Connection) -> FilterOptions:
    """Every value the filter bar may offer, newest month first. Read from the monthly
    rollups and the values the ETL listed per month, not from the daily rows."""
    months = sorted(set(conn.execute(union(select(asm.c.month), select(atm.c.month)))
                        .scalars()), reverse=True)
    return FilterOptions(
        months=[str(Month.parse(m)) for m in months],
        units=org_units(conn),
        segments=_values(conn, "survey", "segment"),
        channels=_values(conn, None, "channel"),
        devices=_values(conn, "survey", "device"),
        interactions=_values(conn, "survey", "interaction"),
        touchpoints=_values(conn, "survey", "touchpoint"),
    )
