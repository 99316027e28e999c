"""Write validated batches: a set-based upsert through a temporary staging table.

Rows are staged, then one INSERT ... SELECT adds new keys and one UPDATE ... FROM rewrites
rows whose values changed. Both run inside the caller's transaction, so a batch lands whole
or not at all, a rerun of the same input touches nothing, and the counts of inserted and
updated rows are exact on SQLite and PostgreSQL alike.
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import pandas as pd
from sqlalchemy import (
    Column,
    Connection,
    MetaData,
    Table,
    and_,
    delete,
    exists,
    false,
    insert,
    or_,
    select,
    tuple_,
    update,
)

from queries import schema
from queries.sqlfuncs import month_of

_stage_counter = itertools.count()
CHUNK = 5_000


@dataclass
class UpsertCounts:
    """What an upsert did; `old_months` are the months changed rows had before the update."""

    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    old_months: set[str] = field(default_factory=set)


def records(frame: pd.DataFrame) -> list[dict[str, object]]:
    """DataFrame rows as plain Python dicts for the DBAPI (NaN/NaT become None)."""
    out = frame.astype(object).where(frame.notna(), None)
    rows = out.to_dict("records")
    for row in rows:
        for key, value in row.items():
            if isinstance(value, pd.Timestamp):
                row[key] = value.to_pydatetime()
    return rows


def _stage(conn: Connection, table: Table, columns: Sequence[str]) -> Table:
    name = f"stage_{table.name}_{next(_stage_counter)}"
    stage = Table(
        name,
        MetaData(),
        *[Column(c, table.c[c].type) for c in columns],
        prefixes=["TEMPORARY"],
    )
    stage.create(conn)
    return stage


def upsert(
    conn: Connection,
    table: Table,
    frame: pd.DataFrame,
    key: Sequence[str],
    *,
    ignore: Iterable[str] = ("loaded_at",),
    track_month: str | None = None,
) -> UpsertCounts:
    """Insert new keys and update changed rows of `table` from `frame`; count each.

    Columns in `ignore` are written but do not make a row count as changed (the load time).
    With `track_month`, the months of that date column in the rows about to change are
    returned, so rollups can refresh the month a corrected row moved out of.
    """
    if frame.empty:
        return UpsertCounts()
    columns = list(frame.columns)
    stage = _stage(conn, table, columns)
    try:
        rows = records(frame)
        for start in range(0, len(rows), CHUNK):
            conn.execute(insert(stage), rows[start : start + CHUNK])
        match = and_(*[table.c[k] == stage.c[k] for k in key])
        # preserve_rowcount: SQLAlchemy 2.1 drops INSERT ... SELECT rowcounts on psycopg.
        inserted = conn.execute(
            insert(table).from_select(
                columns, select(*[stage.c[c] for c in columns]).where(~exists().where(match))
            ),
            execution_options={"preserve_rowcount": True},
        ).rowcount
        compared = [c for c in columns if c not in key and c not in set(ignore)]
        updated = 0
        old_months: set[str] = set()
        changed = or_(false(), *[table.c[c].is_distinct_from(stage.c[c]) for c in compared])
        if compared and track_month:
            old_months = set(conn.execute(
                select(month_of(table.c[track_month])).distinct().where(match).where(changed)
            ).scalars())
        if compared:
            updated = conn.execute(
                update(table)
                .where(match)
                .where(changed)
                .values({c: stage.c[c] for c in columns if c not in key}),
                execution_options={"preserve_rowcount": True},
            ).rowcount
    finally:
        stage.drop(conn)
    total = len(frame)
    return UpsertCounts(inserted, updated, total - inserted - updated, old_months)


def parent_ids(
    conn: Connection, table: Table, key: Sequence[str], frame: pd.DataFrame
) -> pd.DataFrame:
    """Surrogate ids of the rows of `frame` (by natural key), as a frame with `pk` and `key`."""
    keys = frame[list(key)].drop_duplicates()
    found = []
    rows = [tuple(r) for r in records(keys) for r in [r.values()]]
    for start in range(0, len(rows), 900):
        chunk = rows[start : start + 900]
        stmt = select(table.c.id.label("pk"), *[table.c[k] for k in key]).where(
            tuple_(*[table.c[k] for k in key]).in_(chunk)
        )
        found.extend(conn.execute(stmt).mappings().all())
    return pd.DataFrame(found, columns=["pk", *key])


def replace_children(
    conn: Connection,
    child: Table,
    parent_col: str,
    name_col: str,
    value_col: str,
    long: pd.DataFrame,
    parents: Sequence[int],
) -> None:
    """Make the children of `parents` exactly `long` (parent, name, value): upsert, then
    delete the ones a changed row no longer has."""
    upsert(conn, child, long, key=(parent_col, name_col), ignore=())
    keep = set(zip(long[parent_col], long[name_col], strict=True))
    for start in range(0, len(parents), 900):
        chunk = list(parents[start : start + 900])
        existing = conn.execute(
            select(child.c[parent_col], child.c[name_col]).where(child.c[parent_col].in_(chunk))
        ).all()
        stale = [tuple(r) for r in existing if tuple(r) not in keep]
        if stale:
            conn.execute(
                delete(child).where(tuple_(child.c[parent_col], child.c[name_col]).in_(stale))
            )


def known_values(conn: Connection, kind: str, values: Iterable[str]) -> set[str]:
    """Which of `values` exist as org unit ids or customer ids in the database."""
    table = {"org_unit": schema.org_unit, "customer": schema.customer}[kind]
    wanted = [str(v) for v in values]
    found: set[str] = set()
    for start in range(0, len(wanted), 900):
        chunk = wanted[start : start + 900]
        found.update(conn.execute(select(table.c.id).where(table.c.id.in_(chunk))).scalars())
    return found


def now() -> dt.datetime:
    """Load timestamp (naive, local), one clock for every table."""
    return dt.datetime.now().replace(microsecond=0)
