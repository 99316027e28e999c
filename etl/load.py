"""Write validated batches: a set-based upsert through a temporary staging table.

Rows are staged (COPY on PostgreSQL, one executemany of plain tuples on SQLite), then one
INSERT ... SELECT adds new keys and one UPDATE ... FROM rewrites
rows whose values changed. Both run inside the caller's transaction, so a batch lands whole
or not at all, a rerun of the same input touches nothing, and the counts of inserted and
updated rows are exact on SQLite and PostgreSQL alike.
"""

from __future__ import annotations

import csv
import datetime as dt
import itertools
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sqlalchemy import (
    Column,
    ColumnElement,
    Connection,
    Date,
    Dialect,
    MetaData,
    Table,
    and_,
    delete,
    exists,
    false,
    func,
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
# A negative cache_size is KiB: 256 MiB. A PRAGMA takes no bound parameter, hence a constant.
SQLITE_CACHE_PRAGMA = "PRAGMA cache_size = -262144"


@dataclass
class UpsertCounts:
    """What an upsert did; `old_months` are the months changed rows had before the update."""

    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    old_months: set[str] = field(default_factory=set)
    ids: pd.DataFrame | None = None


def records(frame: pd.DataFrame) -> list[dict[str, object]]:
    """DataFrame rows as plain Python dicts for the DBAPI (NaN/NaT become None)."""
    out = frame.astype(object).where(frame.notna(), None)
    rows = out.to_dict("records")
    for row in rows:
        for key, value in row.items():
            if isinstance(value, pd.Timestamp):
                row[key] = value.to_pydatetime()
    return rows


def _plain(series: pd.Series) -> list[object]:
    """A column as a list of DBAPI values, None for every missing value."""
    values = series.astype(object).to_numpy(copy=True)
    values[series.isna().to_numpy()] = None
    return values.tolist()


def _sqlite_datetimes(series: pd.Series) -> list[object]:
    """datetime64 values as SQLAlchemy's SQLite DATETIME text ('YYYY-MM-DD HH:MM:SS.ffffff'),
    so staged values compare equal to the ones SQLAlchemy wrote before."""
    stamps = series.to_numpy(dtype="datetime64[us]")
    text = np.datetime_as_string(stamps, unit="us")
    # 'YYYY-MM-DDTHH:MM:SS.ffffff': swap the T in place, on the code points.
    text.view(np.uint32).reshape(len(text), -1)[:, 10] = ord(" ")
    out = text.astype(object)
    out[np.isnat(stamps)] = None
    return out.tolist()


def column_values(series: pd.Series, column: Column, dialect: Dialect) -> list[object]:
    """One column as DBAPI values for `column` on `dialect`: NaN/NaT as None, and the
    values SQLAlchemy's type would have made of them (dates as text on SQLite)."""
    if series.dtype.kind == "M":
        if dialect.name == "sqlite":
            return _sqlite_datetimes(series)
        return [None if v is pd.NaT else v for v in series.dt.to_pydatetime().tolist()]
    values = _plain(series)
    proc = column.type._cached_bind_processor(dialect)
    if proc is None or series.dtype.kind in "iufb":
        return values
    if isinstance(column.type, Date) and dialect.name == "sqlite":
        return [None if v is None else str(v) for v in values]
    return [None if v is None else proc(v) for v in values]


_COPY_ESCAPES = (("\\", "\\\\"), ("\t", "\\t"), ("\n", "\\n"), ("\r", "\\r"))


def copy_text(frame: pd.DataFrame) -> str:
    """`frame` in PostgreSQL's COPY text format: tab-separated, \\N for NULL, backslash
    escapes for backslash, tab, newline and carriage return. Built column by column with
    pandas' CSV writer, no Python per row."""
    out = {}
    for name in frame.columns:
        col = frame[name]
        if col.dtype.kind == "O" or isinstance(col.dtype, pd.StringDtype):
            present = col.notna()
            text = col[present].astype(object)
            if pd.api.types.infer_dtype(text, skipna=True) not in ("string", "empty"):
                text = text.map(str)
            # One C-speed scan of the whole column says whether any value needs escaping;
            # most columns (codes, ids, dates) never do.
            joined = "".join(text.tolist())
            for old, new in _COPY_ESCAPES:
                if old in joined:
                    text = text.str.replace(old, new, regex=False)
            col = pd.Series(None, index=frame.index, dtype=object)
            col[present] = text
        out[name] = col
    return pd.DataFrame(out, index=frame.index).to_csv(
        sep="\t", header=False, index=False, na_rep="\\N", quoting=csv.QUOTE_NONE,
        lineterminator="\n")


def fill(conn: Connection, table: Table, frame: pd.DataFrame) -> None:
    """Bulk-insert `frame` into `table` (a plain staging table) in the caller's transaction:
    COPY on PostgreSQL (psycopg), executemany of plain tuples elsewhere."""
    if frame.empty:
        return
    quote = conn.dialect.identifier_preparer.quote
    names = ", ".join(quote(c) for c in frame.columns)
    raw = conn.connection.driver_connection
    if conn.dialect.name == "postgresql" and hasattr(raw, "cursor") and \
            conn.dialect.driver == "psycopg":
        data = copy_text(frame)
        # The raw connection is the one SQLAlchemy's transaction runs on: the COPY
        # commits or rolls back with the rest of the batch.
        with raw.cursor() as cur, cur.copy(  # type: ignore[union-attr]
                f"COPY {quote(table.name)} ({names}) FROM STDIN") as copy:
            for start in range(0, len(data), 1 << 22):
                copy.write(data[start:start + (1 << 22)])
        return
    columns = [column_values(frame[c], table.c[c], conn.dialect) for c in frame.columns]
    rows = list(zip(*columns, strict=True))
    marks = ", ".join("?" if conn.dialect.paramstyle == "qmark" else "%s" for _ in columns)
    sql = f"INSERT INTO {quote(table.name)} ({names}) VALUES ({marks})"
    for start in range(0, len(rows), CHUNK):
        conn.exec_driver_sql(sql, rows[start:start + CHUNK])


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


@contextmanager
def staged(conn: Connection, table: Table, frame: pd.DataFrame) -> Iterator[Table]:
    """A temporary table of `table`'s column types holding `frame`, dropped afterwards."""
    if conn.dialect.name == "sqlite":
        # SQLite's 2 MB page cache makes index upkeep of a million-row batch read and write
        # the same pages again and again; temporary tables go to a file unless told.
        conn.exec_driver_sql(SQLITE_CACHE_PRAGMA)
        conn.exec_driver_sql("PRAGMA temp_store = MEMORY")
    stage = _stage(conn, table, list(frame.columns))
    try:
        fill(conn, stage, frame)
        yield stage
    finally:
        stage.drop(conn)


def upsert(
    conn: Connection,
    table: Table,
    frame: pd.DataFrame,
    key: Sequence[str],
    *,
    ignore: Iterable[str] = ("loaded_at",),
    track_month: str | None = None,
    return_ids: bool = False,
    all_new: bool = False,
) -> UpsertCounts:
    """Insert new keys and update changed rows of `table` from `frame`; count each.

    Columns in `ignore` are written but do not make a row count as changed (the load time).
    With `track_month`, the months of that date column in the rows about to change are
    returned, so rollups can refresh the month a corrected row moved out of. With
    `return_ids`, `ids` holds the surrogate `id` of every row of `frame` with its key.
    `all_new` says the caller knows no key exists yet (the children of parents this
    transaction just inserted): the rows are inserted without looking for them first.
    """
    if frame.empty:
        return UpsertCounts()
    with staged(conn, table, frame) as stage:
        if all_new:
            counts = _insert_all(conn, table, stage, list(frame.columns))
        else:
            counts = _merge(conn, table, stage, list(frame.columns), key, ignore, track_month)
        if return_ids:
            rows = conn.execute(select(table.c.id.label("pk"), *[stage.c[k] for k in key])
                                .select_from(stage.join(table, _match(table, stage, key))))
            counts.ids = pd.DataFrame(rows.all(), columns=["pk", *key])
    counts.unchanged = len(frame) - counts.inserted - counts.updated
    return counts


def _match(table: Table, stage: Table, key: Sequence[str]) -> ColumnElement[bool]:
    return and_(*[table.c[k] == stage.c[k] for k in key])


def _merge(conn: Connection, table: Table, stage: Table, columns: list[str],
           key: Sequence[str], ignore: Iterable[str], track_month: str | None) -> UpsertCounts:
    """Update the existing rows that changed, then insert the new keys. In this order the
    update compares only rows that were there before, not the ones just inserted."""
    match = _match(table, stage, key)
    existing = conn.execute(select(func.count()).select_from(stage.join(table, match))
                            ).scalar_one()
    if not existing:
        # All keys are new (a first load, a new file, the next day's sales): one plain
        # INSERT ... SELECT, no comparison and no anti-join against the table.
        return _insert_all(conn, table, stage, columns)
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
    # preserve_rowcount: SQLAlchemy 2.1 drops INSERT ... SELECT rowcounts on psycopg.
    inserted = conn.execute(
        insert(table).from_select(
            columns, select(*[stage.c[c] for c in columns]).where(~exists().where(match))
        ),
        execution_options={"preserve_rowcount": True},
    ).rowcount
    return UpsertCounts(inserted, updated, 0, old_months)


def _insert_all(conn: Connection, table: Table, stage: Table, columns: list[str]
                ) -> UpsertCounts:
    # preserve_rowcount: SQLAlchemy 2.1 drops INSERT ... SELECT rowcounts on psycopg.
    return UpsertCounts(conn.execute(
        insert(table).from_select(columns, select(*[stage.c[c] for c in columns])),
        execution_options={"preserve_rowcount": True}).rowcount, 0, 0, set())


def parent_ids(
    conn: Connection, table: Table, key: Sequence[str], frame: pd.DataFrame
) -> pd.DataFrame:
    """Surrogate ids of the rows of `frame` (by natural key), as a frame with `pk` and `key`."""
    keys = frame[list(key)].drop_duplicates()
    with staged(conn, table, keys) as stage:
        rows = conn.execute(select(table.c.id.label("pk"), *[stage.c[k] for k in key])
                            .select_from(stage.join(table, _match(table, stage, key)))).all()
    return pd.DataFrame(rows, columns=["pk", *key])


def replace_children(
    conn: Connection,
    child: Table,
    parent_col: str,
    name_col: str,
    value_col: str,
    long: pd.DataFrame,
    parents: Sequence[int],
    *,
    new_parents: bool = False,
) -> None:
    """Make the children of `parents` exactly `long` (parent, name, value): upsert, then
    delete the ones a changed row no longer has, both set-based through staging tables.

    `new_parents`: every parent was inserted by this transaction, so none has children
    yet: they are inserted, with neither the comparison nor the delete (each a join of
    the batch against the whole child table, which at 50M ratings cost more than the
    insert itself)."""
    upsert(conn, child, long, key=(parent_col, name_col), ignore=(), all_new=new_parents)
    if not len(parents) or new_parents:
        return
    ids = pd.DataFrame({parent_col: pd.array(parents, dtype="Int64")}).drop_duplicates()
    kept = long[[parent_col, name_col]]
    with staged(conn, child, ids) as wanted, staged(conn, child, kept) as keep:
        if conn.dialect.name == "sqlite":
            # Row-value NOT IN: SQLite indexes the subquery once, where a correlated NOT
            # EXISTS would scan the unindexed stage per child row.
            gone = tuple_(child.c[parent_col], child.c[name_col]).not_in(
                select(keep.c[parent_col], keep.c[name_col]))
        else:
            # NOT EXISTS: PostgreSQL plans an anti-join; NOT IN over a subquery bigger than
            # work_mem is re-scanned per row.
            gone = ~exists().where(keep.c[parent_col] == child.c[parent_col],
                                   keep.c[name_col] == child.c[name_col])
        conn.execute(delete(child).where(
            child.c[parent_col].in_(select(wanted.c[parent_col])), gone))


# Above this many values a lookup stages them and joins, instead of chunked IN lists.
STAGE_LOOKUP = 2_000


def known_values(conn: Connection, kind: str, values: Iterable[str]) -> set[str]:
    """Which of `values` exist as org unit ids or customer ids in the database."""
    table = {"org_unit": schema.org_unit, "customer": schema.customer}[kind]
    wanted = [str(v) for v in values]
    found: set[str] = set()
    if len(wanted) > STAGE_LOOKUP:
        frame = pd.DataFrame({"id": pd.Series(wanted, dtype=object)})
        with staged(conn, table, frame) as stage:
            return set(conn.execute(select(table.c.id).join_from(
                stage, table, stage.c.id == table.c.id)).scalars())
    for start in range(0, len(wanted), 900):
        chunk = wanted[start : start + 900]
        found.update(conn.execute(select(table.c.id).where(table.c.id.in_(chunk))).scalars())
    return found


def now() -> dt.datetime:
    """Load timestamp (naive, local), one clock for every table."""
    return dt.datetime.now().replace(microsecond=0)
