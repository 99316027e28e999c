"""Aggregates re-aggregate exactly to what the facts give, and refresh only touched months."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import Engine, select, update

from etl.config import load_config
from etl.run import run_sources
from queries import schema

SURVEY_SUMS = ["nps_n", "nps_promoters", "nps_detractors", "csat_n", "csat_top2", "csat_sum",
               "ces_n", "ces_sum", "ces_sumsq", "ces_agree", "responses"]


def _facts(engine: Engine) -> pd.DataFrame:
    """Survey facts with their dimensions, read whole: the independent second method."""
    sr, cust, ou = schema.survey_response, schema.customer, schema.org_unit
    stmt = (select(sr.c.submitted_at, sr.c.org_unit_id, ou.c.parent_id.label("region"),
                   cust.c.segment, sr.c.survey_kind, sr.c.touchpoint, sr.c.channel, sr.c.device,
                   sr.c.interaction, sr.c.nps, sr.c.csat, sr.c.ces)
            .select_from(sr.join(ou, ou.c.id == sr.c.org_unit_id)
                         .outerjoin(cust, cust.c.id == sr.c.customer_id)))
    with engine.connect() as conn:
        df = pd.DataFrame(conn.execute(stmt).mappings().all())
    df["submitted_at"] = pd.to_datetime(df["submitted_at"])
    df["month"] = df["submitted_at"].dt.strftime("%Y-%m")
    df["day"] = df["submitted_at"].dt.strftime("%Y-%m-%d")
    nps, csat, ces = (df[c].astype("Float64") for c in ("nps", "csat", "ces"))
    df["responses"] = 1
    df["nps_n"] = nps.notna().astype(int)
    df["nps_promoters"] = (nps >= 9).fillna(False).astype(int)
    df["nps_detractors"] = (nps <= 6).fillna(False).astype(int)
    df["csat_n"] = csat.notna().astype(int)
    df["csat_top2"] = (csat >= 4).fillna(False).astype(int)
    df["csat_sum"] = csat.fillna(0).astype(int)
    df["ces_n"] = ces.notna().astype(int)
    df["ces_sum"] = ces.fillna(0).astype(int)
    df["ces_sumsq"] = (ces.fillna(0) ** 2).astype(int)
    df["ces_agree"] = (ces >= 5).fillna(False).astype(int)
    return df


def _agg(engine: Engine) -> pd.DataFrame:
    agg, ou = schema.agg_survey_daily, schema.org_unit
    stmt = select(agg, ou.c.parent_id.label("region")).join(ou, ou.c.id == agg.c.org_unit_id)
    with engine.connect() as conn:
        df = pd.DataFrame(conn.execute(stmt).mappings().all())
    df["day"] = df["day"].astype(str).str[:10]
    return df


def _grouped(df: pd.DataFrame, by: list[str], cols: list[str]) -> pd.DataFrame:
    out = df.fillna({c: "∅" for c in by}).groupby(by)[cols].sum().sort_index()
    return out.astype("int64")


@pytest.mark.parametrize("by", [
    ["month"],
    ["region", "month"],
    ["org_unit_id", "day"],
    ["channel", "device", "interaction"],
    ["segment", "touchpoint", "survey_kind"],
    ["region", "segment", "channel", "month"],
])
def test_survey_rollup_reaggregates_exactly(demo_engine: Engine, by: list[str]) -> None:
    facts, agg = _facts(demo_engine), _agg(demo_engine)
    pd.testing.assert_frame_equal(_grouped(agg, by, SURVEY_SUMS), _grouped(facts, by, SURVEY_SUMS))


def test_transaction_rollup_reaggregates_exactly(demo_engine: Engine) -> None:
    tx, cust, agg = schema.loyalty_transaction, schema.customer, schema.agg_txn_daily
    with demo_engine.connect() as conn:
        facts = pd.DataFrame(conn.execute(
            select(tx.c.occurred_at, tx.c.org_unit_id, tx.c.channel, tx.c.amount,
                   tx.c.points_earned, tx.c.points_redeemed, tx.c.customer_id, cust.c.segment)
            .select_from(tx.outerjoin(cust, cust.c.id == tx.c.customer_id))).mappings().all())
        rolled = pd.DataFrame(conn.execute(select(agg)).mappings().all())
    facts["month"] = pd.to_datetime(facts["occurred_at"]).dt.strftime("%Y-%m")
    facts["member"] = facts["customer_id"].notna()
    facts["txns"] = 1
    rolled["member"] = rolled["member"].astype(bool)
    for by in (["month"], ["org_unit_id", "member"], ["segment", "channel", "month"]):
        want = facts.fillna({c: "∅" for c in by}).groupby(by).agg(
            txns=("txns", "sum"), revenue=("amount", "sum"),
            points_earned=("points_earned", "sum"), points_redeemed=("points_redeemed", "sum"))
        got = rolled.fillna({c: "∅" for c in by}).groupby(by)[
            ["txns", "revenue", "points_earned", "points_redeemed"]].sum()
        pd.testing.assert_frame_equal(got.sort_index(), want.sort_index(), check_dtype=False,
                                      atol=0.01)


def test_engagement_rollup_reaggregates_exactly(demo_engine: Engine) -> None:
    er, es = schema.engagement_response, schema.engagement_score
    with demo_engine.connect() as conn:
        facts = pd.DataFrame(conn.execute(
            select(er.c.wave, er.c.org_unit_id, es.c.item, es.c.score)
            .select_from(es.join(er, er.c.id == es.c.response_pk))).mappings().all())
        rolled = pd.DataFrame(conn.execute(select(schema.agg_engagement)).mappings().all())
        units = pd.DataFrame(conn.execute(select(schema.agg_engagement_unit)).mappings().all())
        respondents = pd.DataFrame(conn.execute(
            select(er.c.wave, er.c.org_unit_id, er.c.enps)).mappings().all())
    for df in (facts, rolled, units, respondents):
        df["wave"] = df["wave"].astype(str)
    facts["favourable"] = (facts["score"] >= 4).astype(int)
    want = facts.groupby(["wave", "org_unit_id", "item"]).agg(
        n=("score", "size"), favourable=("favourable", "sum"), score_sum=("score", "sum"))
    got = rolled.groupby(["wave", "org_unit_id", "item"])[["n", "favourable", "score_sum"]].sum()
    pd.testing.assert_frame_equal(got.sort_index(), want.sort_index(), check_dtype=False)
    enps = respondents["enps"].astype("Float64")
    respondents["promoters"] = (enps >= 9).fillna(False).astype(int)
    want_u = respondents.groupby(["wave", "org_unit_id"]).agg(
        respondents=("enps", "size"), enps_promoters=("promoters", "sum"))
    got_u = units.groupby(["wave", "org_unit_id"])[["respondents", "enps_promoters"]].sum()
    pd.testing.assert_frame_equal(got_u.sort_index(), want_u.sort_index(), check_dtype=False)


def test_a_load_refreshes_only_the_months_it_touched(engine: Engine, demo_dir: Path,
                                                     tmp_path: Path) -> None:
    demo = tmp_path / "demo"
    shutil.copytree(demo_dir, demo)
    config = load_config(demo / "sources.toml")
    assert all(r.ok for r in run_sources(engine, config))
    agg = schema.agg_survey_daily
    # Plant a wrong count in an old month: only a refresh of that month could repair it.
    with engine.begin() as conn:
        conn.execute(update(agg).where(agg.c.month == "2025-11").values(nps_n=agg.c.nps_n + 1000))
    header = (demo / "surveys" / "responses_2026.csv").read_text(encoding="utf-8-sig"
                                                                 ).splitlines()[0]
    row = ("R_9999991,15/10/2026 10:00,Transactional,,S01,Store visit,Store,In person,Assisted,"
           "10,Very satisfied,7,5,5,5,5,,2.0,")
    (demo / "surveys" / "responses_extra.csv").write_text(header + "\r\n" + row + "\r\n",
                                                          encoding="utf-8-sig")
    result = {r.source: r for r in run_sources(engine, config, ["customer_survey"])}
    assert result["customer_survey"].inserted == 1
    assert result["customer_survey"].touched_months == {"2026-10"}
    facts, rolled = _facts(engine), _agg(engine)
    by = ["month"]
    got, want = _grouped(rolled, by, SURVEY_SUMS), _grouped(facts, by, SURVEY_SUMS)
    assert got.loc["2026-10"].equals(want.loc["2026-10"])
    n_days = int((rolled["month"] == "2025-11").sum())
    assert got.loc["2025-11", "nps_n"] == want.loc["2025-11", "nps_n"] + 1000 * n_days
    # The unit-month rollup is rebuilt from the daily one for the touched month only: the
    # new answer is in its 2026-10 row and the error planted in the daily 2025-11 rows
    # did not reach it, so every month still equals the facts.
    pd.testing.assert_frame_equal(_grouped(_monthly(engine), by, SURVEY_SUMS), want)


def _monthly(engine: Engine) -> pd.DataFrame:
    with engine.connect() as conn:
        return pd.DataFrame(conn.execute(select(schema.agg_survey_monthly)).mappings().all())


def test_unit_month_rollups_and_dimension_values_match_the_facts(demo_engine: Engine) -> None:
    facts, monthly = _facts(demo_engine), _monthly(demo_engine)
    by = ["month", "org_unit_id"]
    # One row per unit and month, and the same sums as the facts grouped by pandas.
    assert not monthly.duplicated(by).any()
    pd.testing.assert_frame_equal(_grouped(monthly, by, SURVEY_SUMS),
                                  _grouped(facts, by, SURVEY_SUMS))
    tx, cust, dv = schema.loyalty_transaction, schema.customer, schema.agg_dim_value
    with demo_engine.connect() as conn:
        sales = pd.DataFrame(conn.execute(
            select(tx.c.occurred_at, tx.c.org_unit_id, tx.c.channel, tx.c.amount,
                   tx.c.customer_id, cust.c.segment)
            .select_from(tx.outerjoin(cust, cust.c.id == tx.c.customer_id))).mappings().all())
        rolled = pd.DataFrame(conn.execute(select(schema.agg_txn_monthly)).mappings().all())
        values = pd.DataFrame(conn.execute(select(dv)).mappings().all())
    sales["month"] = pd.to_datetime(sales["occurred_at"]).dt.strftime("%Y-%m")
    sales["member"] = sales["customer_id"].notna()
    rolled["member"] = rolled["member"].astype(bool)
    keys = ["month", "org_unit_id", "member"]
    want = sales.groupby(keys).agg(txns=("amount", "size"), revenue=("amount", "sum"))
    got = rolled.set_index(keys)[["txns", "revenue"]].sort_index()
    pd.testing.assert_frame_equal(got, want.sort_index(), check_dtype=False, atol=0.01)
    # Every value a dimension takes in a month, from each fact, and nothing else.
    for fact, frame, dims in (("survey", facts, ["segment", "channel", "device", "interaction",
                                                 "touchpoint"]),
                              ("sales", sales, ["segment", "channel"])):
        for dim in dims:
            want_values = {(m, v) for m, v in frame[["month", dim]].dropna()
                           .itertuples(index=False)}
            mine = values[(values["fact"] == fact) & (values["dim"] == dim)]
            assert {(m, v) for m, v in mine[["month", "value"]].itertuples(index=False)} \
                == want_values, (fact, dim)


def test_unfiltered_and_filtered_reads_agree_with_the_facts(demo_engine: Engine) -> None:
    """A unit-only filter reads the monthly rollup, a dimension filter the daily one: both
    give what pandas counts from the facts."""
    from queries.kpis import Filters, survey_counts
    from queries.options import filter_options
    from queries.periods import Month

    facts = _facts(demo_engine)
    months = sorted(facts["month"].unique())[-3:]
    region = sorted(facts["region"].dropna().unique())[0]
    channel = sorted(facts["channel"].dropna().unique())[0]
    cases = [(Filters(), facts), (Filters(unit=region), facts[facts["region"] == region]),
             (Filters(unit=region, channel=channel),
              facts[(facts["region"] == region) & (facts["channel"] == channel)])]
    with demo_engine.connect() as conn:
        for filters, rows in cases:
            got = survey_counts(conn, months=[Month.parse(m) for m in months], filters=filters)
            want = rows[rows["month"].isin(months)][SURVEY_SUMS].sum()
            for col in ("responses", "nps_n", "nps_promoters", "nps_detractors", "csat_top2"):
                assert int(got[col]) == int(want[col]), (filters, col)
        options = filter_options(conn)
    assert options.devices == sorted(facts["device"].dropna().unique())
    assert options.touchpoints == sorted(facts["touchpoint"].dropna().unique())
    assert options.months[0] == max(facts["month"]) or options.months[0] > max(facts["month"])
