"""Follow-up cases (opened by the ETL, `etl/cases.py`): the list a manager works from, and the
counts the overview shows (open, overdue, median time to close). Scoped by `filters.unit`
like every read, so a manager sees only the cases of their units."""

from __future__ import annotations

import datetime as dt
import statistics
from dataclasses import dataclass

import pandas as pd
from sqlalchemy import Connection, case, func, select

from queries import schema
from queries.kpis import Filters, in_scope

fc = schema.follow_up_case
sr = schema.survey_response
ou = schema.org_unit

STATUSES = schema.CASE_STATUSES
COLUMNS = ["id", "unit", "unit_name", "reason", "status", "owner_email", "opened_at", "due_at",
           "closed_at", "overdue", "submitted_at", "customer_id", "nps", "csat", "comment",
           "note", "updated_by"]


def cases(conn: Connection, *, filters: Filters, as_of: dt.datetime,
          status: str | None = None, limit: int = 200) -> pd.DataFrame:
    """Cases of the units in `filters.unit` (with everything below), optionally of one
    `status`, those due first first; `overdue` when not resolved and due before `as_of`."""
    if status is not None and status not in STATUSES:
        raise ValueError(f"status must be one of {STATUSES}, got {status!r}")
    overdue = case(((fc.c.status != "resolved") & (fc.c.due_at < as_of), True), else_=False)
    query = (select(fc.c.id, fc.c.org_unit_id.label("unit"), ou.c.name.label("unit_name"),
                    fc.c.reason, fc.c.status, fc.c.owner_email, fc.c.opened_at, fc.c.due_at,
                    fc.c.closed_at, overdue.label("overdue"), sr.c.submitted_at,
                    sr.c.customer_id, sr.c.nps, sr.c.csat, sr.c.comment, fc.c.note,
                    fc.c.updated_by)
             .select_from(fc.join(sr, sr.c.id == fc.c.response_pk)
                          .join(ou, ou.c.id == fc.c.org_unit_id))
             .where(in_scope(fc.c.org_unit_id, filters.unit))
             .order_by(case((fc.c.status == "resolved", 1), else_=0), fc.c.due_at, fc.c.id)
             .limit(limit))
    if status:
        query = query.where(fc.c.status == status)
    rows = conn.execute(query).mappings().all()
    frame = pd.DataFrame([dict(r) for r in rows], columns=COLUMNS)
    for col in ("nps", "csat"):
        frame[col] = frame[col].astype("Int64")
    frame["overdue"] = frame["overdue"].astype(bool)
    return frame


@dataclass(frozen=True)
class CaseCounts:
    """Open cases (not resolved), those past due, and the median hours from opening to
    resolution of the cases resolved (`closed`, how many) in the last `days` days."""

    open: int
    overdue: int
    closed: int
    median_hours_to_close: float | None
    days: int


def case_counts(conn: Connection, *, filters: Filters, as_of: dt.datetime,
                days: int = 90) -> CaseCounts:
    """Open and overdue cases now, and the median time to close over the last `days`."""
    scope = in_scope(fc.c.org_unit_id, filters.unit)
    row = conn.execute(select(
        func.count().filter(fc.c.status != "resolved"),
        func.count().filter((fc.c.status != "resolved") & (fc.c.due_at < as_of)))
        .where(scope)).one()
    since = as_of - dt.timedelta(days=days)
    closed = conn.execute(select(fc.c.opened_at, fc.c.closed_at).where(
        scope, fc.c.status == "resolved", fc.c.closed_at >= since,
        fc.c.closed_at <= as_of)).all()
    hours = [(c - o).total_seconds() / 3600 for o, c in closed]
    return CaseCounts(int(row[0]), int(row[1]), len(hours),
                      statistics.median(hours) if hours else None, days)


__all__ = ["STATUSES", "CaseCounts", "case_counts", "cases"]
