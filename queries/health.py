"""Read functions about the data itself: runs, watermarks, quarantine, freshness."""

from __future__ import annotations

import datetime as dt
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from sqlalchemy import Connection, Select, func, select

from queries import schema

run = schema.etl_run
q = schema.quarantine


def _frame(conn: Connection, stmt: Select) -> pd.DataFrame:
    return pd.DataFrame(conn.execute(stmt).mappings().all(),
                        columns=list(stmt.selected_columns.keys()))


def last_runs(conn: Connection) -> pd.DataFrame:
    """Per source: its last run (status, counts, error), last success and watermark."""
    latest = (select(run.c.source, func.max(run.c.id).label("id"))
              .group_by(run.c.source).subquery())
    last_ok = (select(run.c.source, func.max(run.c.finished_at).label("last_success"))
               .where(run.c.status.in_(("success", "warning"))).group_by(run.c.source).subquery())
    stmt = (
        select(
            run.c.source, run.c.started_at, run.c.finished_at, run.c.status, run.c.rows_read,
            run.c.rows_inserted, run.c.rows_updated, run.c.rows_quarantined, run.c.rows_skipped,
            run.c.rows_excluded, run.c.rows_unchanged, run.c.error, run.c.notes,
            last_ok.c.last_success,
            schema.source_state.c.watermark,
        )
        .join(latest, latest.c.id == run.c.id)
        .outerjoin(last_ok, last_ok.c.source == run.c.source)
        .outerjoin(schema.source_state, schema.source_state.c.source == run.c.source)
        .order_by(run.c.source)
    )
    return _frame(conn, stmt)


def quarantine_counts(conn: Connection) -> pd.DataFrame:
    """Quarantined rows per source and reason (file rejections count as one each)."""
    stmt = (select(q.c.source, q.c.reason, func.count().label("rows"))
            .group_by(q.c.source, q.c.reason).order_by(q.c.source, func.count().desc()))
    return pd.DataFrame(conn.execute(stmt).mappings().all(), columns=["source", "reason", "rows"])


def quarantined_rows(conn: Connection, *, source: str | None = None,
                     limit: int = 100) -> pd.DataFrame:
    """The most recent quarantined rows (optionally of one source), newest first."""
    stmt = select(q.c.id, q.c.source, q.c.file, q.c.line, q.c.field, q.c.column, q.c.value,
                  q.c.reason, q.c.created_at, q.c.run_id).order_by(q.c.id.desc()).limit(limit)
    if source:
        stmt = stmt.where(q.c.source == source)
    return _frame(conn, stmt)


@dataclass(frozen=True)
class Freshness:
    """How current one source's data is."""

    source: str
    last_success: dt.datetime | None
    last_status: str | None
    last_error: str | None
    stale: bool
    failed: bool
    warning: bool = False


def freshness(conn: Connection, *, stale_hours: int = 48,
              now: dt.datetime | None = None) -> list[Freshness]:
    """Per source that ever ran: last successful load, and whether it is stale or failing."""
    now = now or dt.datetime.now()
    runs = last_runs(conn)
    out = []
    for r in runs.itertuples():
        ok = None if pd.isna(r.last_success) else pd.Timestamp(r.last_success).to_pydatetime()
        failed = r.status == "failed"
        stale = ok is None or now - ok > dt.timedelta(hours=stale_hours)
        out.append(Freshness(r.source, ok, r.status, None if pd.isna(r.error) else r.error,
                             stale, failed, r.status == "warning"))
    return out


def recent_runs(conn: Connection, *, source: str | None = None, limit: int = 50) -> pd.DataFrame:
    """The most recent runs (optionally of one source), newest first, with their counts."""
    stmt = select(run.c.id, run.c.source, run.c.started_at, run.c.finished_at, run.c.status,
                  run.c.rows_read, run.c.rows_inserted, run.c.rows_updated,
                  run.c.rows_quarantined, run.c.rows_skipped, run.c.watermark, run.c.error,
                  run.c.notes).order_by(run.c.id.desc()).limit(limit)
    if source:
        stmt = stmt.where(run.c.source == source)
    return _frame(conn, stmt)


def table_counts(conn: Connection) -> pd.DataFrame:
    """Rows per reporting table (facts, dimensions, aggregates), for the data-health page."""
    tables = [schema.org_unit, schema.customer, schema.survey_response, schema.survey_rating,
              schema.loyalty_transaction, schema.engagement_response, schema.engagement_score,
              schema.headcount, schema.agg_survey_daily, schema.agg_txn_daily,
              schema.agg_survey_monthly, schema.agg_txn_monthly, schema.agg_engagement,
              schema.quarantine]
    rows = [{"table": t.name, "rows": conn.execute(select(func.count()).select_from(t))
             .scalar_one()} for t in tables]
    return pd.DataFrame(rows)


def source_titles(path: Path | str) -> dict[str, str]:
    """Display name of each source of the sources config at `path` (its `title`, else its
    name in words: 'customer_survey' -> 'Customer survey'). An unreadable config gives {}:
    names are then shown in words, and the ETL reports the config's problem itself."""
    try:
        with open(path, "rb") as fh:
            entries = tomllib.load(fh).get("source", [])
    except (OSError, tomllib.TOMLDecodeError):
        return {}
    out = {}
    for entry in entries if isinstance(entries, list) else []:
        name = entry.get("name") if isinstance(entry, dict) else None
        if isinstance(name, str):
            title = entry.get("title")
            out[name] = title if isinstance(title, str) and title else source_title(name)
    return out


def source_title(name: str, titles: dict[str, str] | None = None) -> str:
    """How a source is named on screen: its configured title, else its name in words."""
    if titles and name in titles:
        return titles[name]
    return name.replace("_", " ").replace("-", " ").strip().capitalize() or name
