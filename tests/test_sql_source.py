"""The SQL adapter reads another database incrementally by watermark, and survives it going
down: retried with backoff, marked failed, and the next run picks up where it left off."""

from __future__ import annotations

import sqlite3
import textwrap
from pathlib import Path

import pytest
from sqlalchemy import (
    Column,
    Engine,
    Integer,
    MetaData,
    Numeric,
    String,
    Table,
    func,
    insert,
    select,
)
from sqlalchemy.engine import make_url

import etl.run
from etl.config import load_config
from etl.run import run_sources
from queries import schema
from queries.db import make_engine
from tests.conftest import PG_URL, create_pg_database, drop_pg_database
from tests.tcp_proxy import TcpProxy

ORG = "Code,Name,Level,Parent\nACME,Acme,Company,\nS01,Leeds,Store,ACME\nS02,York,Store,ACME\n"


def _config(tmp_path: Path, url: str) -> Path:
    (tmp_path / "org.csv").write_text(ORG)
    path = tmp_path / "sources.toml"
    path.write_text(textwrap.dedent(f"""
        [[source]]
        name = "org"
        kind = "org"
        adapter = "csv"
        location = "org.csv"
        [source.columns]
        id = "Code"
        name = "Name"
        kind = "Level"
        parent_id = "Parent"
        [source.values.kind]
        Company = "company"
        Store = "store"

        [[source]]
        name = "members"
        kind = "loyalty"
        entity = "customers"
        adapter = "sql"
        location = "{url}"
        table = "members"
        watermark = "updated_at"
        [source.columns]
        id = "member_id"
        tier = "tier"
        home_org_unit_id = "home_store"

        [[source]]
        name = "txns"
        kind = "loyalty"
        entity = "transactions"
        adapter = "sql"
        location = "{url}"
        table = "transactions"
        watermark = "txn_id"
        [source.columns]
        txn_id = "txn_id"
        customer_id = "member_id"
        org_unit_id = "store"
        occurred_at = "occurred_at"
        amount = "amount"
    """))
    return path


def _make_source(conn: sqlite3.Connection) -> None:
    conn.executescript("""
        CREATE TABLE members (member_id TEXT PRIMARY KEY, tier TEXT, home_store TEXT,
                              updated_at TEXT);
        CREATE TABLE transactions (txn_id INTEGER PRIMARY KEY, member_id TEXT, store TEXT,
                                   occurred_at TEXT, amount REAL);
        INSERT INTO members VALUES ('M1', 'Gold', 'S01', '2026-01-01 10:00:00'),
                                   ('M2', 'Bronze', 'S02', '2026-01-02 10:00:00');
    """)
    conn.executemany("INSERT INTO transactions VALUES (?, ?, ?, ?, ?)",
                     [(i, "M1" if i % 2 else None, "S01" if i < 8 else "S02",
                       f"2026-02-{i:02d} 12:00:00", 10.0 * i) for i in range(1, 11)])
    conn.commit()


def _counts(engine: Engine) -> tuple[int, int, float]:
    tx = schema.loyalty_transaction
    with engine.connect() as conn:
        members = conn.execute(select(func.count()).select_from(schema.customer)).scalar_one()
        n, total = conn.execute(select(func.count(), func.sum(tx.c.amount))).one()
    return members, n, float(total or 0)


def test_incremental_reads_by_watermark(engine: Engine, tmp_path: Path) -> None:
    db = tmp_path / "loyalty.db"
    with sqlite3.connect(db) as src:
        _make_source(src)
    config = load_config(_config(tmp_path, "sqlite:///loyalty.db"))
    first = {r.source: r for r in run_sources(engine, config)}
    assert first["txns"].read == 10 and first["txns"].inserted == 10
    assert first["txns"].watermark == "10"
    assert first["members"].watermark == "2026-01-02 10:00:00"
    assert _counts(engine) == (2, 10, 550.0)

    with sqlite3.connect(db) as src:
        src.executemany("INSERT INTO transactions VALUES (?, ?, ?, ?, ?)",
                        [(11, "M2", "S02", "2026-03-01 09:00:00", 5.5),
                         (12, None, "S01", "2026-03-02 09:00:00", 4.5)])
        src.execute("UPDATE members SET tier = 'Silver', updated_at = '2026-03-01 08:00:00' "
                    "WHERE member_id = 'M2'")
        src.execute("INSERT INTO members VALUES ('M3', 'Bronze', 'S01', '2026-03-01 08:00:00')")
    second = {r.source: r for r in run_sources(engine, config)}
    # Only rows past the watermark are read; ids use '>', timestamps '>=' (a re-read is free).
    assert (second["txns"].read, second["txns"].inserted) == (2, 2)
    assert second["txns"].watermark == "12"
    assert (second["members"].read, second["members"].inserted,
            second["members"].updated) == (2, 1, 1)
    assert _counts(engine) == (3, 12, 560.0)
    with engine.connect() as conn:
        tier = conn.execute(select(schema.customer.c.tier)
                            .where(schema.customer.c.id == "M2")).scalar_one()
    assert tier == "Silver"

    third = {r.source: r for r in run_sources(engine, config)}
    assert third["txns"].read == 0 and third["members"].inserted == 0
    assert third["members"].updated == 0


def test_sales_with_unknown_members_or_stores_are_quarantined_not_orphaned(
        engine: Engine, tmp_path: Path) -> None:
    """The sales table has no foreign keys (they cost 44% of an insert): the ETL's own
    set-based check is what keeps every sale pointing at a known member and store."""
    db = tmp_path / "loyalty.db"
    with sqlite3.connect(db) as src:
        _make_source(src)
        src.executemany("INSERT INTO transactions VALUES (?, ?, ?, ?, ?)",
                        [(11, "M9", "S01", "2026-02-11 12:00:00", 7.0),
                         (12, "M2", "S77", "2026-02-12 12:00:00", 8.0),
                         (13, "M2", "S02", "2026-02-13 12:00:00", 9.0)])
    config = load_config(_config(tmp_path, "sqlite:///loyalty.db"))
    result = {r.source: r for r in run_sources(engine, config)}["txns"]
    assert (result.read, result.inserted, result.quarantined) == (13, 11, 2)
    tx, cust, ou, q = (schema.loyalty_transaction, schema.customer, schema.org_unit,
                       schema.quarantine)
    with engine.connect() as conn:
        orphans = conn.execute(
            select(func.count()).select_from(tx)
            .outerjoin(cust, cust.c.id == tx.c.customer_id)
            .outerjoin(ou, ou.c.id == tx.c.org_unit_id)
            .where((tx.c.customer_id.is_not(None) & cust.c.id.is_(None)) | ou.c.id.is_(None))
        ).scalar_one()
        reasons = sorted(conn.execute(select(q.c.reason).where(q.c.source == "txns"))
                         .scalars())
    assert orphans == 0
    assert _counts(engine) == (2, 11, 550.0 + 9.0)
    assert reasons == ["unknown customer 'M9'", "unknown org unit 'S77' (load it in the org "
                       "source first)"]


def test_a_big_table_is_read_in_batches_each_with_its_watermark(
        engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import etl.sources

    db = tmp_path / "loyalty.db"
    with sqlite3.connect(db) as src:
        _make_source(src)
    monkeypatch.setattr(etl.sources, "SQL_BATCH_ROWS", 4)
    config = load_config(_config(tmp_path, "sqlite:///loyalty.db"))
    batches = list(etl.sources.read_sql(config.get("txns"), None))
    assert [len(b.frame) for b in batches] == [4, 4, 2]
    assert [b.watermark for b in batches] == ["4", "8", "10"]
    assert [b.lines[0] for b in batches] == [1, 5, 9]
    first = {r.source: r for r in run_sources(engine, config)}
    assert (first["txns"].read, first["txns"].inserted, first["txns"].watermark) == (
        10, 10, "10")
    assert _counts(engine) == (2, 10, 550.0)
    again = {r.source: r for r in run_sources(engine, config)}
    assert again["txns"].read == 0 and _counts(engine) == (2, 10, 550.0)


@pytest.fixture
def pg_source():
    if not PG_URL:
        pytest.skip("needs TEST_DATABASE_URL (CI sets it; a missing one fails CI at start)")
    url = create_pg_database(PG_URL)
    yield url
    drop_pg_database(PG_URL, url)


def test_source_database_down_is_retried_failed_and_resumed(engine: Engine, tmp_path: Path,
                                                            pg_source: str, monkeypatch) -> None:
    source = make_engine(pg_source)
    meta = MetaData()
    members = Table("members", meta, Column("member_id", String, primary_key=True),
                    Column("tier", String), Column("home_store", String),
                    Column("updated_at", String))
    txns = Table("transactions", meta, Column("txn_id", Integer, primary_key=True),
                 Column("member_id", String), Column("store", String),
                 Column("occurred_at", String), Column("amount", Numeric(10, 2)))
    with source.begin() as conn:
        meta.create_all(conn)
        conn.execute(insert(members), [{"member_id": "M1", "tier": "Gold", "home_store": "S01",
                                        "updated_at": "2026-01-01 10:00:00"}])
        conn.execute(insert(txns), [{"txn_id": i, "member_id": "M1", "store": "S01",
                                     "occurred_at": f"2026-02-{i:02d} 12:00:00", "amount": i}
                                    for i in range(1, 6)])
    target = make_url(pg_source)
    proxy = TcpProxy(target.host or "127.0.0.1", target.port or 5432)
    proxy.start()
    via_proxy = target.set(host="127.0.0.1", port=proxy.port).render_as_string(
        hide_password=False)
    config = load_config(_config(tmp_path, via_proxy))
    monkeypatch.setattr(etl.run, "BACKOFF_SECONDS", 0.05)
    try:
        assert all(r.ok for r in run_sources(engine, config))
        assert _counts(engine) == (1, 5, 15.0)

        with source.begin() as conn:
            conn.execute(insert(txns), [{"txn_id": 6, "member_id": "M1", "store": "S02",
                                         "occurred_at": "2026-03-01 12:00:00", "amount": 100}])
        proxy.stop()
        down = {r.source: r for r in run_sources(engine, config)}
        assert down["txns"].status == "failed"
        assert "gave up after 3 attempts" in down["txns"].error
        assert down["org"].ok  # a failing source does not stop the others
        assert _counts(engine) == (1, 5, 15.0)
        run = schema.etl_run
        with engine.connect() as conn:
            logged = conn.execute(select(run.c.status, run.c.error)
                                  .where(run.c.source == "txns").order_by(run.c.id.desc())
                                  ).first()
            wm = conn.execute(select(schema.source_state.c.watermark)
                              .where(schema.source_state.c.source == "txns")).scalar_one()
        assert logged.status == "failed" and "unreachable" in logged.error
        assert wm == "5"

        proxy.start()
        back = {r.source: r for r in run_sources(engine, config)}
        assert back["txns"].ok and (back["txns"].read, back["txns"].inserted) == (1, 1)
        assert _counts(engine) == (1, 6, 115.0)
    finally:
        proxy.stop()
        source.dispose()
