"""queries.breakdown and queries.comments against pandas on the demo SOURCE files, the exact
re-aggregation of a parent from its rows, and literal search on hand-made comments."""

from __future__ import annotations

import datetime as dt
import itertools
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import Connection, Engine, insert

from etl.rollup import refresh_all
from queries import metrics, schema
from queries.breakdown import breakdown
from queries.comments import comments, like_pattern
from queries.kpis import Filters, Settings, survey_counts
from queries.periods import Month
from tests import demo_truth as truth

PERIOD = Month(2026, 10)
COMPARE = PERIOD.shift(-1)
SETTINGS = Settings(min_n=30)
CHANNEL = {"Store": "store", "Web": "web", "App": "app", "Phone": "phone", "Chat": "chat",
           "Email": "email"}
TOUCHPOINT = {"Store visit": "store_visit", "Online order": "online_order",
              "Delivery": "delivery", "Customer support": "support", "Returns": "returns",
              "Overall": "relationship"}


@pytest.fixture(scope="module")
def source(demo_dir: Path) -> pd.DataFrame:
    members, _txns = truth.loyalty(demo_dir)
    s = truth.surveys(demo_dir)
    s = s[s["loadable"]].copy()
    s["segment"] = s["Member number"].map(members.set_index("member_id")["segment"])
    s["channel"] = s["Channel"].map(CHANNEL)
    s["touchpoint"] = s["Touchpoint"].map(TOUCHPOINT)
    s["comment"] = s["Comment"].str.replace("\r\n", "\n").str.strip()
    return s


def _truth(rows: pd.DataFrame) -> dict[str, float]:
    nps, csat, ces = rows["nps"].dropna(), rows["csat"].dropna(), rows["ces"].dropna()
    return {
        "responses": len(rows), "nps_n": len(nps),
        "nps": 100 * ((nps >= 9).sum() - (nps <= 6).sum()) / len(nps) if len(nps) else None,
        "csat": 100 * (csat >= 4).mean() if len(csat) else None,
        "ces": ces.mean() if len(ces) else None,
        "ces_agree": 100 * (ces >= 5).mean() if len(ces) else None,
    }


def _in(df: pd.DataFrame, month: Month) -> pd.DataFrame:
    return df[(df["submitted"] >= month.start) & (df["submitted"] < month.end)]


def _check(row: pd.Series, want: dict[str, float]) -> None:
    assert row["responses"] == want["responses"], row["key"]
    assert row["nps_n"] == want["nps_n"], row["key"]
    for key in ("nps", "csat", "ces", "ces_agree"):
        if want[key] is None:
            assert pd.isna(row[key]), (row["key"], key)
        else:
            assert row[key] == pytest.approx(want[key], abs=1e-9), (row["key"], key)
    assert row["low_sample"] == (want["nps_n"] < SETTINGS.min_n)


def test_region_breakdown_matches_the_source_files(demo_engine: Engine, demo_dir: Path,
                                                   source: pd.DataFrame) -> None:
    with demo_engine.connect() as conn:
        got = breakdown(conn, period=PERIOD, compare=COMPARE, filters=Filters(unit="R-WEST"),
                        settings=SETTINGS)
    org = truth.org(demo_dir)
    stores = org[org["Parent"] == "R-WEST"].sort_values("Name")
    assert list(got["key"]) == list(stores["Code"])
    assert list(got["name"]) == list(stores["Name"])
    assert not got["has_children"].any() and not got["direct"].any()
    _members, txns = truth.loyalty(demo_dir)
    month_txns = txns[(txns["occurred"] >= PERIOD.start) & (txns["occurred"] < PERIOD.end)]
    for _, row in got.iterrows():
        mine = source[source["Store"] == row["key"]]
        cur, prev = _truth(_in(mine, PERIOD)), _truth(_in(mine, COMPARE))
        _check(row, cur)
        assert row["nps_compare"] == pytest.approx(prev["nps"], abs=1e-9)
        assert row["nps_delta"] == pytest.approx(cur["nps"] - prev["nps"], abs=1e-9)
        sold = month_txns[month_txns["store"] == row["key"]]["amount"]
        assert row["revenue"] == pytest.approx(sold.sum(), abs=0.005 * max(len(sold), 1))


def test_company_breakdown_by_region_and_by_dimension(demo_engine: Engine,
                                                      source: pd.DataFrame) -> None:
    with demo_engine.connect() as conn:
        regions = breakdown(conn, period=PERIOD, compare=COMPARE, filters=Filters(),
                            settings=SETTINGS)
        channels = breakdown(conn, period=PERIOD, compare=COMPARE,
                             filters=Filters(unit="R-NORTH"), by="channel", settings=SETTINGS)
        points = breakdown(conn, period=PERIOD, compare=COMPARE,
                           filters=Filters(segment="Families"), by="touchpoint",
                           settings=SETTINGS)
        # A scope of several units (queries.scope) breaks down into those units.
        scoped = breakdown(conn, period=PERIOD, compare=COMPARE,
                           filters=Filters(unit=("R-WEST", "R-NORTH")), settings=SETTINGS)
    month = _in(source, PERIOD)
    assert list(regions["key"]) == ["R-NORTH", "R-SOUTH", "R-WEST"]
    pd.testing.assert_frame_equal(
        scoped, regions[regions["key"] != "R-SOUTH"].reset_index(drop=True))
    assert regions["has_children"].all()
    for _, row in regions.iterrows():
        _check(row, _truth(month[month["region"] == row["key"]]))
    north = month[month["region"] == "R-NORTH"]
    assert set(channels["key"]) == set(north["channel"])
    for _, row in channels.iterrows():
        _check(row, _truth(north[north["channel"] == row["key"]]))
    # Revenue where sales know the dimension (store, web, app), NaN where they do not.
    assert channels.set_index("key").loc[["phone", "chat", "email"], "revenue"].isna().all()
    assert channels.set_index("key").loc["store", "revenue"] > 0
    families = month[month["segment"] == "Families"]
    assert set(points["key"]) == set(families["touchpoint"])
    for _, row in points.iterrows():
        _check(row, _truth(families[families["touchpoint"] == row["key"]]))
    assert points["revenue"].isna().all()  # sales do not record touchpoints
    assert list(points["responses"]) == sorted(points["responses"], reverse=True)


COUNT_COLS = ["responses", "nps_n", "nps_promoters", "nps_detractors", "csat_n", "csat_top2",
              "ces_n", "ces_sum", "ces_sumsq", "ces_agree_count"]


def _reaggregate(rows: pd.DataFrame) -> dict[str, float | None]:
    t = rows[COUNT_COLS].sum()
    return {
        "nps": metrics.nps(int(t["nps_n"]), int(t["nps_promoters"]),
                           int(t["nps_detractors"])).value,
        "csat": metrics.share(int(t["csat_n"]), int(t["csat_top2"])).value,
        "ces": metrics.mean(int(t["ces_n"]), float(t["ces_sum"]), float(t["ces_sumsq"])).value,
        "ces_agree": metrics.share(int(t["ces_n"]), int(t["ces_agree_count"])).value,
        "responses": int(t["responses"]),
    }


@pytest.mark.parametrize("filters", [Filters(), Filters(channel="store"),
                                     Filters(segment="Trade", device="mobile")])
def test_a_parent_reaggregates_exactly_from_its_rows(demo_engine: Engine,
                                                     filters: Filters) -> None:
    with demo_engine.connect() as conn:
        regions = breakdown(conn, period=PERIOD, compare=COMPARE, filters=filters,
                            settings=SETTINGS).set_index("key")
        for region in regions.index:
            scoped = Filters(**{**filters.active(), "unit": region})
            stores = breakdown(conn, period=PERIOD, compare=COMPARE, filters=scoped,
                               settings=SETTINGS)
            parent = regions.loc[region]
            again = _reaggregate(stores)
            assert again["responses"] == parent["responses"]
            for key in ("nps", "csat", "ces", "ces_agree"):
                if pd.isna(parent[key]):
                    assert again[key] is None
                else:
                    assert again[key] == pytest.approx(parent[key], abs=1e-9), (region, key)
            # ... and a dimension breakdown of the region adds up to the same counts.
            by_segment = breakdown(conn, period=PERIOD, compare=COMPARE, filters=scoped,
                                   by="segment", settings=SETTINGS)
            assert _reaggregate(by_segment) == pytest.approx(again, abs=1e-9)
        whole = survey_counts(conn, months=[PERIOD], filters=filters)
    company = _reaggregate(regions.reset_index())
    assert company["responses"] == whole["responses"]
    assert company["nps"] == pytest.approx(metrics.nps(
        whole["nps_n"], whole["nps_promoters"], whole["nps_detractors"]).value, abs=1e-9)


# ------------------------------------------------------------------ comments on the demo


def _comment_truth(source: pd.DataFrame, start: dt.datetime, end: dt.datetime,
                   region: str | None = None) -> pd.DataFrame:
    rows = source[(source["submitted"] >= start) & (source["submitted"] < end)
                  & (source["comment"] != "")]
    if region:
        rows = rows[rows["region"] == region]
    return rows


def test_comments_match_the_source_files(demo_engine: Engine,
                                         source: pd.DataFrame) -> None:
    start, end = PERIOD.shift(-2).start, PERIOD.end
    want = _comment_truth(source, start, end, "R-WEST")
    with demo_engine.connect() as conn:
        page = comments(conn, start=start, end=end, filters=Filters(unit="R-WEST"), limit=15)
        everything = comments(conn, start=start, end=end, filters=Filters(unit="R-WEST"),
                              limit=10_000)
        second = comments(conn, start=start, end=end, filters=Filters(unit="R-WEST"),
                          limit=15, offset=15)
        detractors = comments(conn, start=start, end=end, filters=Filters(unit="R-WEST"),
                              group="detractor")
        families = comments(conn, start=start, end=end,
                            filters=Filters(unit="R-WEST", segment="Families", channel="app"))
    assert page.total == everything.total == len(want) > 15
    assert len(page.rows) == 15
    # Newest first; the next page continues where the first stopped.
    stamps = list(everything.rows["submitted_at"])
    assert stamps == sorted(stamps, reverse=True)
    assert list(page.rows["id"]) + list(second.rows["id"]) == list(everything.rows["id"][:30])
    assert list(pd.to_datetime(everything.rows["submitted_at"])) == sorted(
        want["submitted"], reverse=True)
    assert sorted(everything.rows["comment"]) == sorted(want["comment"])
    assert set(everything.rows["unit"]) <= {"S09", "S10", "S11", "S12"}
    # Scores and the NPS group ride along.
    nps = everything.rows["nps"].dropna().astype(int)
    groups = everything.rows.loc[nps.index, "nps_group"]
    assert all(g == ("promoter" if v >= 9 else "passive" if v >= 7 else "detractor")
               for v, g in zip(nps, groups, strict=True))
    assert detractors.total == int((want["nps"] <= 6).sum())
    assert families.total == int(((want["segment"] == "Families")
                                  & (want["channel"] == "app")).sum())


def test_comment_search_is_case_insensitive_and_literal(demo_engine: Engine,
                                                        source: pd.DataFrame) -> None:
    start, end = PERIOD.shift(-11).start, PERIOD.end
    want = _comment_truth(source, start, end)
    with demo_engine.connect() as conn:
        def total(term: str) -> int:
            return comments(conn, start=start, end=end, filters=Filters(), search=term,
                            limit=5).total

        for term in ("APP", "compost", "Out Of Stock", "£", "café", '"not my'):
            expected = int(want["comment"].str.contains(term, case=False, regex=False).sum())
            assert total(term) == expected, term
            assert expected > 0, term
        for term in ("%", "_", "e%e", "s_a", "!"):  # wildcards and the escape: literal text
            expected = int(want["comment"].str.contains(term, regex=False).sum())
            assert total(term) == expected, term
        assert total("   ") == len(want)  # a blank search is no search
        hits = comments(conn, start=start, end=end, filters=Filters(), search="APP", limit=50)
    assert all("app" in c.lower() for c in hits.rows["comment"])


# ------------------------------------------------------------------ hand-made edge cases

_ids = itertools.count(1)
LOADED = dt.datetime(2026, 11, 1)


def _respond(conn: Connection, unit: str, at: dt.datetime, nps: int, comment: str | None,
             channel: str = "web") -> None:
    conn.execute(insert(schema.survey_response).values(
        source="t", response_id=f"R{next(_ids)}", submitted_at=at, org_unit_id=unit,
        survey_kind="transactional", channel=channel, nps=nps, comment=comment,
        loaded_at=LOADED))


def test_answers_on_a_parent_and_literal_wildcards(engine: Engine) -> None:
    day = dt.datetime(2026, 10, 5, 12)
    with engine.begin() as conn:
        for uid, kind, parent in (("ACME", "company", None), ("R1", "region", "ACME"),
                                  ("S1", "store", "R1"), ("S2", "store", "R1"),
                                  ("T1", "team", "S1")):
            conn.execute(insert(schema.org_unit).values(id=uid, name=f"Unit {uid}", kind=kind,
                                                        parent_id=parent, source="t",
                                                        loaded_at=LOADED))
        texts = ["Got 50% off!", "50 off today", "snake_case name", "snakeXcase name",
                 "SNAKE_CASE shouting", "  ", None, "back\\slash"]
        for i, text in enumerate(texts):
            _respond(conn, ["S1", "T1", "S2", "R1"][i % 4], day + dt.timedelta(hours=i),
                     (10, 3, 8, 9)[i % 4], text)
        refresh_all(conn)
    with engine.connect() as conn:
        rows = breakdown(conn, period=PERIOD, compare=COMPARE, filters=Filters(unit="R1"),
                         settings=SETTINGS)
        top = breakdown(conn, period=PERIOD, compare=COMPARE, filters=Filters(),
                        settings=SETTINGS)

        def found(term: str | None) -> list[str]:
            return list(comments(conn, start=PERIOD.start, end=PERIOD.end, filters=Filters(),
                                 search=term).rows["comment"])

        assert found("50%") == ["Got 50% off!"]
        assert found("e_c") == ["SNAKE_CASE shouting", "snake_case name"]
        assert found("!") == ["Got 50% off!"]
        assert found("\\") == ["back\\slash"]
        assert len(found(None)) == 6  # blank and missing comments are no comments
        s1 = comments(conn, start=PERIOD.start, end=PERIOD.end, filters=Filters(unit="S1"))
    # S1 stands for its team too; the answers recorded on R1 itself get their own row.
    assert list(rows["key"]) == ["S1", "S2", "R1"]
    assert list(rows["direct"]) == [False, False, True]
    assert list(rows["has_children"]) == [True, False, False]
    assert list(rows["responses"]) == [4, 2, 2]
    assert top["responses"].sum() == 8 and list(top["key"]) == ["R1"]
    assert _reaggregate(rows)["nps"] == pytest.approx(top.loc[0, "nps"])
    assert set(s1.rows["unit"]) == {"S1", "T1"}
    assert like_pattern("5%_!") == "%5!%!_!!%"
