"""Every unit's engagement counts from one read of a wave (`subtree_wave_counts`, what the
employees page and the PDF use for units side by side) equal `wave_counts`, which asks the
database for each unit's subtree with a recursive query."""

from __future__ import annotations

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
