"""Loading the demo sources: exact row counts, and a second load changes nothing."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select

from etl.config import load_config
from etl.run import run_sources
from queries import schema
from tests import demo_truth as truth


def _count(engine: Engine, table) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(table)).scalar_one()


def _dump(engine: Engine) -> dict[str, list[tuple]]:
    out = {}
    with engine.connect() as conn:
        for table in schema.metadata.sorted_tables:
            if table.name in ("etl_run", "quarantine"):
                continue
            order = list(table.primary_key.columns) or list(table.columns)
            out[table.name] = [tuple(r) for r in conn.execute(select(table).order_by(*order))]
    return out


@pytest.fixture
def loaded(engine: Engine, demo_dir: Path) -> tuple[Engine, list]:
    results = run_sources(engine, load_config(demo_dir / "sources.toml"))
    return engine, results


def test_load_gives_exact_row_counts(loaded, demo_dir: Path) -> None:
    engine, results = loaded
    assert [r.status for r in results] == ["success"] * 6, [r.error for r in results]
    members, txns = truth.loyalty(demo_dir)
    surveys = truth.surveys(demo_dir)
    loadable = surveys[surveys["loadable"]]
    eng = truth.engagement(demo_dir)

    assert _count(engine, schema.org_unit) == len(truth.org(demo_dir)) == 16
    assert _count(engine, schema.customer) == len(members)
    assert _count(engine, schema.loyalty_transaction) == len(txns)
    assert _count(engine, schema.survey_response) == len(loadable)
    ratings = sum(int((loadable[a] != "").sum()) for a in truth.ATTRIBUTES)
    assert _count(engine, schema.survey_rating) == ratings
    assert _count(engine, schema.engagement_response) == len(eng)
    assert _count(engine, schema.engagement_score) == int(eng[truth.ITEMS].notna().sum().sum())
    assert _count(engine, schema.headcount) == len(truth.headcount(demo_dir))
    # Responses with no score at all are quarantined with their line, not dropped silently.
    by_source = {r.source: r for r in results}
    assert by_source["customer_survey"].quarantined == int((~surveys["loadable"]).sum())
    with engine.connect() as conn:
        rows = conn.execute(select(schema.quarantine.c.field, schema.quarantine.c.reason)).all()
    assert len(rows) == int((~surveys["loadable"]).sum())
    assert all(r.field == "nps|csat|ces" and r.reason.startswith("no score") for r in rows)


def test_loading_twice_changes_nothing(loaded, demo_dir: Path) -> None:
    engine, _ = loaded
    before = _dump(engine)
    again = run_sources(engine, load_config(demo_dir / "sources.toml"))
    assert all(r.ok for r in again), [r.error for r in again]
    assert sum(r.inserted for r in again) == 0
    assert sum(r.updated for r in again) == 0
    assert _dump(engine) == before
