"""Every unit's engagement counts from one read of a wave (`subtree_wave_counts`, what the
employees page and the PDF use for units side by side) equal `wave_counts`, which asks the
database for each unit's subtree with a recursive query."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import Engine, select

from queries import schema
from queries.employees import subtree_wave_counts
from queries.kpis import wave_counts


def test_one_read_per_wave_equals_one_query_per_unit(demo_engine: Engine) -> None:
    aeu, ou = schema.agg_engagement_unit, schema.org_unit
    with demo_engine.connect() as conn:
        waves = sorted(set(conn.execute(select(aeu.c.wave)).scalars()))
        units = sorted(conn.execute(select(ou.c.id)).scalars())
        assert len(waves) >= 2 and len(units) >= 10
        checked = 0
        for wave in waves[-2:]:
            counts_of = subtree_wave_counts(conn, wave=wave)
            for unit in units:
                want = wave_counts(conn, wave=wave, unit=unit)
                got = counts_of(unit)
                assert (got.respondents, got.enps_n, got.enps_promoters, got.enps_detractors,
                        got.headcount) == (want.respondents, want.enps_n, want.enps_promoters,
                                           want.enps_detractors, want.headcount), unit
                assert got.item_shares.keys() == want.item_shares.keys()
                for item, share in want.item_shares.items():
                    assert got.item_shares[item] == pytest.approx(share, rel=1e-12)
                checked += want.respondents > 0
        assert checked >= 10
        # A unit that does not exist has nothing, as in the per-unit query.
        assert subtree_wave_counts(conn, wave=waves[-1])("NO-SUCH-UNIT").respondents == 0


def _hidden_by_hand(parents: dict[str, str | None], n: dict[str, int], suppress) -> set[str]:
    """Top down: each parent's children suppressed among themselves, everything below a
    hidden unit hidden."""
    children: dict[str | None, list[str]] = {}
    for u, p in parents.items():
        children.setdefault(p, []).append(u)
    hidden: set[str] = set()
    todo: list[tuple[str | None, bool]] = [(None, False)]
    while todo:
        parent, above_hidden = todo.pop()
        kids = children.get(parent, [])
        here = suppress({k: n[k] for k in kids}, 5)
        for k in kids:
            if above_hidden or k in here:
                hidden.add(k)
            todo.append((k, above_hidden or k in here))
    return hidden


def test_hidden_reasons_of_the_whole_tree_equal_each_breakdown_worked_out_by_hand(
        demo_engine: Engine) -> None:
    """One read of a wave says which units are hidden and why; worked out here parent by
    parent from per-unit counts (`wave_counts`) with the suppression rule, as the breakdown
    of each parent applies it, and with every ancestor's hiding passed down."""
    from queries.employees import SMALL, SUBTRACTION, hidden_reasons, suppress

    aeu, ou = schema.agg_engagement_unit, schema.org_unit
    with demo_engine.connect() as conn:
        parents = dict(conn.execute(select(ou.c.id, ou.c.parent_id)).all())
        waves = sorted(set(conn.execute(select(aeu.c.wave)).scalars()))
        seen_hidden = 0
        for wave in waves:
            n = {u: wave_counts(conn, wave=wave, unit=u).respondents for u in parents}
            hidden = _hidden_by_hand(parents, n, suppress)
            want = {u: SMALL.format(minimum=5) if n[u] < 5 else SUBTRACTION
                    for u in hidden if n[u] > 0}
            assert hidden_reasons(conn, wave=wave, minimum=5) == want
            seen_hidden += len(want)
            # Kept to one subtree: its units' answers, decided among all their siblings.
            root = next(u for u, p in parents.items() if p is None)
            for region in [u for u, p in parents.items() if p == root]:
                below = {u for u in want if u == region or parents.get(u) == region}
                assert hidden_reasons(conn, wave=wave, minimum=5, unit=region) == \
                    {u: want[u] for u in below}
        assert seen_hidden > 0
        # March 2026 in the demo: Cardiff too small, Bristol its complement in West.
        names = dict(conn.execute(select(ou.c.id, ou.c.name)).all())
        march = {names[u]: r for u, r in
                 hidden_reasons(conn, wave=dt.date(2026, 3, 1), unit="R-WEST").items()}
        assert march == {"Cardiff": SMALL.format(minimum=5), "Bristol": SUBTRACTION}
