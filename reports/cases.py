"""Changes to follow-up cases from the web and the command line: a case's status and note,
by someone whose scope holds the case's unit (the cases themselves are opened by the ETL,
`etl/cases.py`)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Connection, func, select, update

from queries import schema
from queries.kpis import in_scope
from queries.scope import Scope

fc = schema.follow_up_case
ou = schema.org_unit


def _now() -> dt.datetime:
    return dt.datetime.now().replace(microsecond=0)


class CaseError(ValueError):
    """A case change that is not allowed; the message says why."""


def update_case(conn: Connection, case_id: int, *, scope: Scope | None, actor: str,
                status: str | None = None, note: str | None = None,
                now: dt.datetime | None = None) -> None:
    """Move a case to `status` and/or set its note, as `actor` whose scope (None: every unit)
    must hold the case's unit; CaseError otherwise or for an unknown status."""
    row = conn.execute(select(fc.c.org_unit_id, fc.c.status).where(fc.c.id == case_id)).first()
    if row is None:
        raise CaseError(f"case: no case {case_id}")
    if scope is not None:
        inside = conn.execute(select(func.count()).select_from(ou).where(
            ou.c.id == row.org_unit_id, in_scope(ou.c.id, scope.units))).scalar_one()
        if not inside:
            raise CaseError(f"case: {case_id} is outside your units")
    if status is not None and status not in schema.CASE_STATUSES:
        raise CaseError(f"status: expected one of {schema.CASE_STATUSES}, got {status!r}")
    stamp = now or _now()
    values: dict = {"updated_at": stamp, "updated_by": actor}
    if status is not None:
        values["status"] = status
        values["closed_at"] = stamp if status == "resolved" else None
    if note is not None:
        values["note"] = note.strip() or None
    conn.execute(update(fc).where(fc.c.id == case_id).values(**values))



__all__ = ["CaseError", "update_case"]
