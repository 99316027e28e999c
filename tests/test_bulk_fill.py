"""The loader's bulk staging: COPY on PostgreSQL and executemany on SQLite write the same rows.

One frame holding every awkward value (NULLs of each type, dates and times, unicode, quotes,
commas, newlines, tabs, backslashes, a literal \\N, empty text) goes through `etl.load.fill`
on each backend; the rows read back must be exactly the values written, and an upsert of
the same frame must find every row unchanged (the staged values compare equal to the stored
ones, on both paths).
"""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest
from sqlalchemy import (
    Boolean,
    Column,
    Date,
    DateTime,
    Engine,
    Float,
    Integer,
    MetaData,
    SmallInteger,
    String,
    Table,
    Text,
    select,
)

from etl.load import copy_text, fill, upsert
from queries.schema import Money

TEXTS = [
    "plain",
    'quote " inside, and a comma',
    "new\nline and\r\ncrlf",
    "tab\there",
    "back\\slash and \\N and \\t literally",
    "",
    "Café crème – 😀 日本",
    None,
    "\\N",
    "trailing backslash \\",
]


def _frame() -> pd.DataFrame:
    n = len(TEXTS)
    stamps = [dt.datetime(2024, 1, 5, 10, 30, 0), dt.datetime(2024, 2, 29, 23, 59, 59, 123456),
              None, dt.datetime(1999, 12, 31, 0, 0), dt.datetime(2026, 11, 30, 12, 0, 1)]
    days = [dt.date(2024, 1, 5), None, dt.date(2000, 2, 29), dt.date(2026, 12, 1), None]
    return pd.DataFrame({
        "key": [f"k{i}" for i in range(n)],
        "label": pd.Series(TEXTS, dtype=object),
        "note": pd.Series(list(reversed(TEXTS)), dtype=object),
        "small": pd.array([i if i % 3 else None for i in range(n)], dtype="Int64"),
        "ratio": [0.1 * i if i % 4 else float("nan") for i in range(n)],
        "money": [12.34, -0.99, 1e6, float("nan"), 0.0] * (n // 5),
        "flag": pd.Series([True, False, None, True, False] * (n // 5), dtype=object),
        "day": pd.Series(days * (n // 5), dtype=object),
        "at": pd.Series(pd.to_datetime(stamps * (n // 5))).astype("datetime64[us]"),
    })


def _table(metadata: MetaData) -> Table:
    return Table(
        "bulk_fill_check", metadata,
        Column("key", String(16), primary_key=True),
        Column("label", String(200)),
        Column("note", Text),
        Column("small", SmallInteger),
        Column("ratio", Float),
        Column("money", Money),
        Column("flag", Boolean),
        Column("day", Date),
        Column("at", DateTime),
        Column("count", Integer),
    )


def _expected(frame: pd.DataFrame) -> list[tuple]:
    rows = []
    for i in range(len(frame)):
        r = frame.iloc[i]
        rows.append((
            r["key"], r["label"], r["note"],
            None if pd.isna(r["small"]) else int(r["small"]),
            None if pd.isna(r["ratio"]) else float(r["ratio"]),
            None if pd.isna(r["money"]) else float(r["money"]),
            r["flag"], r["day"],
            None if pd.isna(r["at"]) else r["at"].to_pydatetime(),
        ))
    return rows


@pytest.fixture
def table(engine: Engine):
    metadata = MetaData()
    tbl = _table(metadata)
    metadata.create_all(engine)
    yield tbl
    metadata.drop_all(engine)


def test_bulk_fill_writes_every_value_exactly(engine: Engine, table: Table):
    frame = _frame()
    with engine.begin() as conn:
        fill(conn, table, frame)
    with engine.connect() as conn:
        got = conn.execute(select(*[table.c[c] for c in frame.columns])
                           .order_by(table.c.key)).all()
    got = [tuple(r) for r in got]
    want = sorted(_expected(frame))
    assert [(*r[:5], None if r[5] is None else round(r[5], 2), *r[6:]) for r in got] == want


def test_upsert_of_the_same_rows_finds_them_unchanged(engine: Engine, table: Table):
    frame = _frame()
    with engine.begin() as conn:
        first = upsert(conn, table, frame, ["key"], ignore=())
    with engine.begin() as conn:
        again = upsert(conn, table, frame, ["key"], ignore=())
    assert (first.inserted, first.updated, first.unchanged) == (len(frame), 0, 0)
    assert (again.inserted, again.updated, again.unchanged) == (0, 0, len(frame))
    changed = frame.copy()
    changed.loc[2, "note"] = "now\tdifferent\\"
    with engine.begin() as conn:
        third = upsert(conn, table, changed, ["key"], ignore=())
    assert (third.inserted, third.updated, third.unchanged) == (0, 1, len(frame) - 1)


def test_a_failed_batch_leaves_nothing(engine: Engine, table: Table):
    frame = _frame()
    with pytest.raises(RuntimeError), engine.begin() as conn:
        fill(conn, table, frame)
        raise RuntimeError("the rest of the batch failed")
    with engine.connect() as conn:
        assert conn.execute(select(table.c.key)).all() == []


def test_copy_text_escapes_what_postgresql_reads_specially():
    frame = pd.DataFrame({"a": pd.Series(["x\ty", None, "a\\b", "l1\nl2\r", "\\N"],
                                         dtype=object),
                          "b": pd.array([1, None, 3, 4, 5], dtype="Int64")})
    assert copy_text(frame) == ("x\\ty\t1\n\\N\t\\N\na\\\\b\t3\nl1\\nl2\\r\t4\n"
                                "\\\\N\t5\n")
