"""Reading and validating a streamed source's next batch while the current one is written:
order kept, at most two batches held, the two sides overlapping, errors raised where they
were before, the worker gone when the caller stops; and a SQL source whose third batch
fails keeps the batches before it and resumes from their watermark."""

from __future__ import annotations

import sqlite3
import threading
from contextlib import closing
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select

import etl.run
import etl.sources
from etl.config import load_config
from etl.prefetch import prefetched
from etl.run import run_sources
from queries import schema
from tests.test_sql_source import _config, _make_source

WAIT = 10  # seconds: only ever reached when the behaviour under test is missing


def test_batches_come_in_order_prepared_one_ahead_and_never_more_than_two_held() -> None:
    events: list[str] = []
    lock = threading.Lock()
    second_prepared = threading.Event()

    def source():
        for i in range(1, 6):
            with lock:
                events.append(f"read {i}")
            yield i

    def prepare(i: int) -> int:
        if i == 2:
            second_prepared.set()
        return i * 10

    got = []
    with closing(prefetched(source(), prepare)) as items:
        for item in items:
            if item.batch == 1:
                # Batch 2 is read and prepared while batch 1 is still being written.
                assert second_prepared.wait(WAIT)
            with lock:
                events.append(f"done {item.batch}")
            got.append((item.batch, item.get()))
    assert got == [(1, 10), (2, 20), (3, 30), (4, 40), (5, 50)]
    # Batch i + 2 is read only after batch i is done: two held at most.
    for i in range(1, 4):
        assert events.index(f"read {i + 2}") > events.index(f"done {i}")


def test_a_failed_read_is_raised_where_the_next_batch_was_asked_for() -> None:
    def source():
        yield 1
        yield 2
        raise ValueError("source went away after two batches")

    got = []
    with pytest.raises(ValueError, match="went away"), \
            closing(prefetched(source(), lambda i: i)) as items:
        for item in items:
            got.append(item.get())
    assert got == [1, 2]


def test_a_failed_preparation_comes_with_its_batch_and_the_rest_follow() -> None:
    def prepare(i: int) -> int:
        if i == 2:
            raise KeyError("bad batch")
        return i

    outcomes = []
    with closing(prefetched(iter([1, 2, 3]), prepare)) as items:
        for item in items:
            try:
                outcomes.append(item.get())
            except KeyError:
                outcomes.append(f"batch {item.batch} failed")
    assert outcomes == [1, "batch 2 failed", 3]


def test_stopping_early_closes_the_source_and_ends_the_worker() -> None:
    closed = threading.Event()

    def source():
        try:
            yield from range(100)
        finally:
            closed.set()

    with closing(prefetched(source(), lambda i: i, name="prefetch-under-test")) as items:
        for item in items:
            if item.batch == 1:
                break
    assert closed.wait(WAIT)
    assert not [t for t in threading.enumerate() if t.name == "prefetch-under-test"]


def _loaded(engine: Engine) -> tuple[int, str | None]:
    with engine.connect() as conn:
        n = conn.execute(select(func.count()).select_from(schema.loyalty_transaction)
                         ).scalar_one()
        wm = conn.execute(select(schema.source_state.c.watermark)
                          .where(schema.source_state.c.source == "txns")).scalar()
    return n, wm


def test_a_sql_source_failing_mid_stream_keeps_earlier_batches_and_resumes(
        engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with sqlite3.connect(tmp_path / "loyalty.db") as src:
        _make_source(src)
    monkeypatch.setattr(etl.sources, "SQL_BATCH_ROWS", 4)
    config = load_config(_config(tmp_path, "sqlite:///loyalty.db"))
    real = etl.run.validate_batch

    def failing_third(batch, cfg, known, **kw):
        if cfg.name == "txns" and batch.watermark == "10":
            raise RuntimeError("the third batch could not be checked")
        return real(batch, cfg, known, **kw)

    monkeypatch.setattr(etl.run, "validate_batch", failing_third)
    result = {r.source: r for r in run_sources(engine, config)}["txns"]
    assert result.status == "failed" and "third batch" in result.error
    # Two batches of four landed, each with its watermark; the third left nothing.
    assert _loaded(engine) == (8, "8")
    assert not [t for t in threading.enumerate() if t.name == "etl-txns"]

    monkeypatch.setattr(etl.run, "validate_batch", real)
    again = {r.source: r for r in run_sources(engine, config)}["txns"]
    assert again.ok and (again.read, again.inserted) == (2, 2)
    assert _loaded(engine) == (10, "10")
    tx = schema.loyalty_transaction
    with engine.connect() as conn:
        assert float(conn.execute(select(func.sum(tx.c.amount))).scalar_one()) == 550.0
