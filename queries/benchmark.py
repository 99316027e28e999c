"""Company-wide benchmarks a manager may see beside their own figures.

The one documented exception to scope enforcement (`dashboard.data.benchmark`): a manager
sees the whole company's NPS, CSAT and CES for the same month, so their own numbers have a
reference point. Nothing below the company is ever returned from here: no region, store,
team or any other unit's figures, and no segment breakdowns.
"""

from __future__ import annotations

from sqlalchemy import Connection

from queries.kpis import Filters, Kpi, kpis
from queries.kpis import Settings as KpiSettings
from queries.periods import Month

BENCHMARK_KPIS = ("nps", "csat", "ces")


def company_benchmark(conn: Connection, *, period: Month,
                      settings: KpiSettings | None = None) -> list[Kpi]:
    """The company's NPS, CSAT and CES in `period` (no unit or other filter applied)."""
    items = kpis(conn, period=period, filters=Filters(), settings=settings, with_yoy=False)
    return [k for k in items if k.key in BENCHMARK_KPIS]
