"""The ETL's member activity counts (agg_member_activity) on a hand-made company, counted by
hand; and the readers' fallback to the facts when the counts cannot answer."""

from __future__ import annotations

import datetime as dt
import textwrap
from pathlib import Path

from sqlalchemy import func, insert, select, update

from etl.config import load_config
from etl.rollup import (
    activity_months,
    clear_member_activity,
    missing_activity_months,
    refresh_member_activity,
    refresh_transactions,
)
from etl.run import run_sources
from queries import schema
from queries.kpis import (
    Filters,
    MemberActivity,
    member_activity_series,
    members_earning_by_month,
)
from queries.periods import Month
from tests.sources_kit import ORG_SOURCE

NOW = dt.datetime(2026, 5, 1)
MARCH = Month(2026, 3)
# As of 1 April the 90-day window starts on 1 January; as of 1 March, on 1 December.
UNITS = [("C", "company", None), ("R1", "region", "C"), ("R2", "region", "C"),
         ("S1", "store", "R1"), ("S2", "store", "R1"), ("S3", "store", "R2")]
PEOPLE = [("a", "X", True), ("b", "Y", True), ("c", "X", True), ("d", "X", False)]
SALES = [  # customer, store, channel, when, points earned
    ("a", "S1", "web", dt.datetime(2026, 1, 10), 10),
    ("a", "S3", "store", dt.datetime(2026, 3, 15), 5),
    ("b", "S2", "store", dt.datetime(2026, 2, 20), 0),
    ("c", "S1", "app", dt.datetime(2025, 12, 5), 3),
    ("d", "S1", "store", dt.datetime(2026, 3, 1), 7),  # not a member: never counted
]
# Members earning points during March: a (S3, store, segment X); in January: a (S1, web).
EARNING = {
    Filters(): {MARCH: 1, Month(2026, 1): 1, Month(2026, 2): 0},
    Filters(unit="R1"): {MARCH: 0, Month(2026, 1): 1, Month(2026, 2): 0},
    Filters(unit="R2", segment="X"): {MARCH: 1, Month(2026, 1): 0, Month(2026, 2): 0},
    Filters(channel="web"): {MARCH: 0, Month(2026, 1): 1, Month(2026, 2): 0},
}
# March: active as of 1 April {a, b}; as of 1 March {a, b, c}; both {a, b}.
EXPECTED = {
    Filters(): MemberActivity(2, 3, 2),
    Filters(unit="R1"): MemberActivity(2, 3, 2),
    Filters(unit="R2"): MemberActivity(1, 0, 0),
    Filters(unit="S1"): MemberActivity(1, 2, 1),
    Filters(channel="web"): MemberActivity(1, 1, 1),
    Filters(segment="X"): MemberActivity(1, 2, 1),
    Filters(unit="R1", segment="X", channel="web"): MemberActivity(1, 1, 1),
    Filters(unit="S2", segment="X"): MemberActivity(0, 0, 0),
}


def _load(engine) -> None:
    with engine.begin() as conn:
        for unit, kind, parent in UNITS:
            conn.execute(insert(schema.org_unit).values(
                id=unit, name=unit, kind=kind, parent_id=parent, source="t", loaded_at=NOW))
        for ident, segment, member in PEOPLE:
            conn.execute(insert(schema.customer).values(
                id=ident, segment=segment, loyalty_member=member, source="t", loaded_at=NOW))
        for i, (who, store, channel, when, points) in enumerate(SALES):
            conn.execute(insert(schema.loyalty_transaction).values(
                source="t", txn_id=str(i), customer_id=who, org_unit_id=store,
                occurred_at=when, channel=channel, amount=10.0, points_earned=points,
                points_redeemed=0, loaded_at=NOW))
        refresh_transactions(conn)


def test_counts_by_hand_from_the_summary_and_from_the_facts(engine) -> None:
    _load(engine)
    ama = schema.agg_member_activity
    pair = [(MARCH.end, MARCH.start)]
    with engine.connect() as conn:
        stored = conn.execute(select(ama.c.active, ama.c.active_before, ama.c.retained).where(
            ama.c.month == "2026-03", ama.c.scope_unit == "R1", ama.c.segment == "",
            ama.c.channel == "", ama.c.window_days == 90)).one()
        assert tuple(stored) == (2, 3, 2)
        months = {m for (m,) in conn.execute(select(ama.c.month).where(
            ama.c.scope_unit == "*", ama.c.segment == "", ama.c.channel == ""))}
        # From the first sale's month to the month after the last one.
        assert months == {"2025-12", "2026-01", "2026-02", "2026-03", "2026-04"}
        for filters, want in EXPECTED.items():
            assert member_activity_series(conn, pairs=pair, filters=filters) == [want], filters
            assert member_activity_series(conn, pairs=pair, filters=filters,
                                          summary=False) == [want], filters
        for filters, want in EARNING.items():
            months = list(want)
            assert members_earning_by_month(conn, months=months, filters=filters) == want
            assert members_earning_by_month(conn, months=months, filters=filters,
                                            summary=False) == want
        stored = conn.execute(select(ama.c.earning).where(
            ama.c.month == "2026-03", ama.c.scope_unit == "R2", ama.c.segment == "X",
            ama.c.channel == "", ama.c.window_days == 90)).scalar_one()
        assert stored == 1


def test_a_changed_org_tree_is_counted_from_the_facts(engine) -> None:
    _load(engine)
    with engine.begin() as conn:
        # S3 moves to R1: the stored R2 counts (1, 0, 0) no longer hold.
        conn.execute(update(schema.org_unit).where(schema.org_unit.c.id == "S3")
                     .values(parent_id="R1"))
    pair = [(MARCH.end, MARCH.start)]
    with engine.connect() as conn:
        assert member_activity_series(conn, pairs=pair, filters=Filters(unit="R2")) == [
            MemberActivity(0, 0, 0)]
        assert member_activity_series(conn, pairs=pair, filters=Filters(unit="R1")) == [
            MemberActivity(2, 3, 2)]


def test_months_a_load_touches() -> None:
    first, last = Month(2025, 12), Month(2026, 5)
    # A February sale counts as of the ends of February, March and April (within 90 days),
    # and May's retention looks back to the end of April.
    assert activity_months(["2026-02"], first, last, 90) == [
        Month(2026, 2), Month(2026, 3), Month(2026, 4), Month(2026, 5)]
    assert activity_months(None, first, last, 90) == [
        Month(2025, 12), Month(2026, 1), Month(2026, 2), Month(2026, 3), Month(2026, 4),
        Month(2026, 5)]
    assert activity_months([], first, last, 90) == []


def _summary(conn) -> list[tuple]:
    ama = schema.agg_member_activity
    return [tuple(r) for r in conn.execute(
        select(ama.c.month, ama.c.scope_unit, ama.c.segment, ama.c.channel, ama.c.active,
               ama.c.active_before, ama.c.retained, ama.c.earning)
        .order_by(ama.c.month, ama.c.scope_unit, ama.c.segment, ama.c.channel))]


def test_a_load_clears_the_months_it_moves_and_they_are_counted_again(engine) -> None:
    _load(engine)
    pair = [(MARCH.end, MARCH.start)]
    with engine.begin() as conn:
        full = _summary(conn)
        assert missing_activity_months(conn) == []
        # A February sale moves February to April (April's start is within 90 days of it);
        # December, January and the month after the last sale (April) stay.
        clear_member_activity(conn, ["2026-02"])
        assert missing_activity_months(conn) == ["2026-02", "2026-03", "2026-04"]
        assert {r[0] for r in _summary(conn)} == {"2025-12", "2026-01"}
        # Meanwhile the readers count March from the sales: the same hand-counted numbers.
        for filters, want in EXPECTED.items():
            assert member_activity_series(conn, pairs=pair, filters=filters) == [want]
        assert refresh_member_activity(conn, missing=True) > 0
        assert missing_activity_months(conn) == []
        assert _summary(conn) == full
        # Counting every month again gives the same rows (nothing is counted twice).
        refresh_member_activity(conn)
        assert _summary(conn) == full


def test_a_changed_org_tree_leaves_every_month_to_count_again(engine) -> None:
    _load(engine)
    with engine.begin() as conn:
        conn.execute(update(schema.org_unit).where(schema.org_unit.c.id == "S3")
                     .values(parent_id="R1"))
        assert missing_activity_months(conn) == [
            "2025-12", "2026-01", "2026-02", "2026-03", "2026-04"]
        refresh_member_activity(conn, missing=True)
        assert missing_activity_months(conn) == []
        rows = {r[1:4]: r[4:7] for r in _summary(conn) if r[0] == "2026-03"}
    # R1 now holds every store with a member's sale: a, b (active 1 April), c too on 1 March.
    assert rows[("R1", "", "")] == (2, 3, 2)
    assert rows[("*", "", "")] == (2, 3, 2)
    assert ("R2", "", "") not in rows


def test_a_run_of_many_batches_counts_the_summary_once_after_them(engine, tmp_path: Path
                                                                 ) -> None:
    """Three files of sales, each its own batch: the batches clear the months they move and
    the run counts them once at the end; the result equals counting everything afresh and
    the hand-counted March."""
    org = "Code,Name,Level,Parent\nC,Acme,Company,\nR1,North,Region,C\nR2,South,Region,C\n" \
          "S1,Leeds,Store,R1\nS2,York,Store,R1\nS3,Bath,Store,R2\n"
    (tmp_path / "org.csv").write_text(org)
    (tmp_path / "members.csv").write_text(
        "Member,Segment,Member?\n" + "".join(f"{i},{s},{'yes' if m else 'no'}\n"
                                              for i, s, m in PEOPLE))
    sales = tmp_path / "sales"
    sales.mkdir()
    for n, part in enumerate((SALES[:2], SALES[2:4], SALES[4:])):
        lines = [f"{n}-{i},{who},{store},{chan},{when:%Y-%m-%d %H:%M:%S},10.00,{points}\n"
                 for i, (who, store, chan, when, points) in enumerate(part)]
        (sales / f"part{n}.csv").write_text("Id,Member,Store,Channel,When,Amount,Points\n"
                                            + "".join(lines))
    (tmp_path / "sources.toml").write_text(ORG_SOURCE + textwrap.dedent("""
        [[source]]
        name = "members"
        kind = "loyalty"
        entity = "customers"
        adapter = "csv"
        location = "members.csv"
        [source.columns]
        id = "Member"
        segment = "Segment"
        loyalty_member = "Member?"
        [source.values.loyalty_member]
        yes = true
        no = false

        [[source]]
        name = "sales"
        kind = "loyalty"
        entity = "transactions"
        adapter = "csv"
        location = "sales/*.csv"
        [source.columns]
        txn_id = "Id"
        customer_id = "Member"
        org_unit_id = "Store"
        channel = "Channel"
        occurred_at = "When"
        amount = "Amount"
        points_earned = "Points"
    """))
    results = {r.source: r for r in run_sources(engine, load_config(tmp_path / "sources.toml"))}
    assert all(r.ok for r in results.values()), {k: r.error for k, r in results.items()}
    assert results["sales"].inserted == len(SALES)
    assert 0 < results["sales"].summary_seconds <= results["sales"].seconds
    ama = schema.agg_member_activity
    with engine.begin() as conn:
        assert missing_activity_months(conn) == []
        loaded = _summary(conn)
        stored = conn.execute(select(ama.c.active, ama.c.active_before, ama.c.retained).where(
            ama.c.month == "2026-03", ama.c.scope_unit == "R1", ama.c.segment == "",
            ama.c.channel == "")).one()
        assert tuple(stored) == (2, 3, 2)
        refresh_member_activity(conn)
        assert _summary(conn) == loaded
        assert conn.execute(select(func.count()).select_from(ama)).scalar_one() == len(loaded)
    # A rerun reads no new file and counts nothing again.
    again = {r.source: r for r in run_sources(engine, load_config(tmp_path / "sources.toml"))}
    assert again["sales"].inserted == 0
    with engine.connect() as conn:
        assert _summary(conn) == loaded
