"""Tests of the demo data generator.

They read the written FILES with pandas, sqlite3 and openpyxl, independently of the ETL,
and check both the exact formats the sources config promises and the relations the demo
data must carry (the stories the dashboard is expected to tell).
"""

from __future__ import annotations

import re
import sqlite3
import tomllib
from datetime import date
from itertools import pairwise
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from openpyxl import load_workbook

from etl.demo import DemoSummary, default_end_month, generate

SMALL = {"seed": 7, "customers": 4000, "months": 13, "end": "2026-10"}
FULL = {"seed": 42, "customers": 20_000, "months": 24, "end": "2026-10"}

NPS = "How likely are you to recommend Acme to a friend or colleague?"
CSAT = "Overall, how satisfied were you with your experience?"
CES = "Acme made it easy for me to handle my issue."
WAIT = "Wait time (minutes)"
ATTRS = [
    "Staff friendliness",
    "Speed of service",
    "Product availability",
    "Value for money",
    "Ease of website/app",
]
SURVEY_HEADER = (
    "Response ID,Submitted,Survey,Member number,Store,Touchpoint,Channel,Device,Interaction,"
    "How likely are you to recommend Acme to a friend or colleague?,"
    '"Overall, how satisfied were you with your experience?",'
    "Acme made it easy for me to handle my issue.,Staff friendliness,Speed of service,"
    "Product availability,Value for money,Ease of website/app,Wait time (minutes),Comment"
)
ITEMS = [
    "I am proud to work for Acme",
    "I would recommend Acme's products",
    "I have what I need to do my job well",
    "My manager cares about my wellbeing",
    "I see myself working here in two years",
]
ENPS = "How likely are you to recommend Acme as a place to work? (0-10)"
ENGAGEMENT_HEADER = ["Employee ID", "Store", "Wave", *ITEMS, ENPS, "Comment"]
CSAT_VALUE = {
    "Very dissatisfied": 1,
    "Dissatisfied": 2,
    "Neither satisfied nor dissatisfied": 3,
    "Satisfied": 4,
    "Very satisfied": 5,
}
STORES = {f"S{i:02d}" for i in range(1, 13)}
REGION = {f"S{i:02d}": "North" if i <= 4 else "South" if i <= 8 else "West" for i in range(1, 13)}


# ---------------------------------------------------------------------------
# Fixtures: generate once, read the files plainly
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> DemoSummary:
    return generate(tmp_path_factory.mktemp("demo_a"), **SMALL)


@pytest.fixture(scope="module")
def small_again(tmp_path_factory: pytest.TempPathFactory) -> DemoSummary:
    return generate(tmp_path_factory.mktemp("demo_b"), **SMALL)


@pytest.fixture(scope="module")
def full(tmp_path_factory: pytest.TempPathFactory) -> DemoSummary:
    return generate(tmp_path_factory.mktemp("demo_full"), **FULL)


def read_surveys(out: Path) -> pd.DataFrame:
    """All survey files as text (blank = ''), plus parsed helper columns."""
    frames = [
        pd.read_csv(f, encoding="utf-8-sig", dtype=str, keep_default_na=False)
        for f in sorted((out / "surveys").glob("*.csv"))
    ]
    sv = pd.concat(frames, ignore_index=True)
    sv["ts"] = pd.to_datetime(sv["Submitted"], format="%d/%m/%Y %H:%M")
    sv["month"] = sv["ts"].dt.strftime("%Y-%m")
    sv["region"] = sv["Store"].map(REGION)
    sv["nps"] = pd.to_numeric(sv[NPS].replace("", np.nan))
    sv["csat"] = sv[CSAT].map(CSAT_VALUE)
    sv["ces"] = pd.to_numeric(sv[CES].replace("", np.nan))
    sv["wait"] = pd.to_numeric(sv[WAIT].replace("", np.nan))
    sv["top2"] = np.where(sv["csat"].isna(), np.nan, (sv["csat"] >= 4).astype(float))
    sv["nps_points"] = np.select([sv["nps"] >= 9, sv["nps"] <= 6], [100.0, -100.0], 0.0)
    sv.loc[sv["nps"].isna(), "nps_points"] = np.nan
    return sv


def read_engagement(out: Path) -> pd.DataFrame:
    frames = []
    for f in sorted((out / "engagement").glob("wave_*.*")):
        if f.suffix == ".xlsx":
            frame = pd.read_excel(f, sheet_name="Responses", dtype=object)
        else:
            frame = pd.read_csv(f, dtype=object)
        frames.append(frame.assign(file=f.name))
    eng = pd.concat(frames, ignore_index=True)
    for col in [*ITEMS, ENPS]:
        eng[col] = pd.to_numeric(eng[col])
    return eng


def read_table(out: Path, sql: str) -> pd.DataFrame:
    con = sqlite3.connect(out / "loyalty.db")
    try:
        return pd.read_sql_query(sql, con)
    finally:
        con.close()


@pytest.fixture(scope="module")
def surveys(small: DemoSummary) -> pd.DataFrame:
    return read_surveys(small.out_dir)


@pytest.fixture(scope="module")
def members(small: DemoSummary) -> pd.DataFrame:
    return read_table(small.out_dir, "SELECT * FROM members")


@pytest.fixture(scope="module")
def transactions(small: DemoSummary) -> pd.DataFrame:
    return read_table(small.out_dir, "SELECT * FROM transactions")


@pytest.fixture(scope="module")
def engagement(small: DemoSummary) -> pd.DataFrame:
    return read_engagement(small.out_dir)


def window_bounds(args: dict) -> tuple[pd.Timestamp, pd.Timestamp]:
    """First instant of the window and first instant after it."""
    end = pd.Period(args["end"], "M")
    return (end - (args["months"] - 1)).start_time, (end + 1).start_time


# ---------------------------------------------------------------------------
# Determinism and summary
# ---------------------------------------------------------------------------


def all_files(out: Path) -> list[str]:
    return sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())


def test_same_arguments_give_identical_files(small: DemoSummary, small_again: DemoSummary):
    a, b = small.out_dir, small_again.out_dir
    assert all_files(a) == all_files(b)
    text_files = [f for f in all_files(a) if f.endswith((".csv", ".toml"))]
    assert len(text_files) >= 6
    for name in text_files:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    for table in ("members", "transactions"):
        sql = f"SELECT * FROM {table} ORDER BY 1"
        pd.testing.assert_frame_equal(read_table(a, sql), read_table(b, sql))
    xlsx = [f for f in all_files(a) if f.endswith(".xlsx")]
    assert xlsx
    for name in xlsx:
        cells_a = list(load_workbook(a / name)["Responses"].iter_rows(values_only=True))
        cells_b = list(load_workbook(b / name)["Responses"].iter_rows(values_only=True))
        assert cells_a == cells_b, name
        # No wall clock inside: even the zip archive is byte-identical.
        assert (a / name).read_bytes() == (b / name).read_bytes(), name


def test_different_seed_gives_different_surveys(small: DemoSummary, tmp_path: Path):
    other = generate(tmp_path, **{**SMALL, "seed": SMALL["seed"] + 1})
    name = "surveys/responses_2026.csv"
    assert (small.out_dir / name).read_bytes() != (other.out_dir / name).read_bytes()


def test_summary_matches_files(small: DemoSummary, surveys, members, transactions, engagement):
    out = small.out_dir
    assert small.first_month == "2025-10" and small.last_month == "2026-10"
    assert small.org_units == len(pd.read_csv(out / "org_units.csv")) == 16
    assert small.members == len(members) == SMALL["customers"]
    assert small.transactions == len(transactions)
    assert small.survey_responses == len(surveys)
    assert small.engagement_responses == len(engagement)
    assert sorted(str(p.relative_to(out)) for p in small.files) == all_files(out)


def test_rerun_with_other_window_removes_stale_survey_and_wave_files(tmp_path: Path):
    generate(tmp_path, seed=1, customers=200, months=13, end="2026-10")
    assert (tmp_path / "surveys" / "responses_2025.csv").exists()
    summary = generate(tmp_path, seed=1, customers=200, months=2, end="2024-01")
    assert summary.first_month == "2023-12" and summary.last_month == "2024-01"
    assert sorted(p.name for p in (tmp_path / "surveys").iterdir()) == [
        "responses_2023.csv",
        "responses_2024.csv",
    ]
    assert sorted(p.name for p in (tmp_path / "engagement").iterdir()) == [
        "headcount.csv",
        "wave_2023-12.xlsx",
    ]


# ---------------------------------------------------------------------------
# Exact shapes of the source files
# ---------------------------------------------------------------------------


def test_org_units(small: DemoSummary):
    org = pd.read_csv(small.out_dir / "org_units.csv", dtype=str, keep_default_na=False)
    assert list(org.columns) == ["Code", "Name", "Level", "Parent"]
    assert len(org) == 16
    assert org.iloc[0].tolist() == ["ACME", "Acme Home & Garden", "Company", ""]
    regions = org[org["Level"] == "Region"]
    assert regions[["Code", "Name"]].values.tolist() == [
        ["R-NORTH", "North"],
        ["R-SOUTH", "South"],
        ["R-WEST", "West"],
    ]
    assert set(regions["Parent"]) == {"ACME"}
    stores = org[org["Level"] == "Store"].set_index("Code")
    assert list(stores.index) == [f"S{i:02d}" for i in range(1, 13)]
    assert stores.loc["S01", "Name"] == "Leeds" and stores.loc["S12", "Name"] == "Cardiff"
    for code, region in REGION.items():
        assert stores.loc[code, "Parent"] == f"R-{region.upper()}"
    assert stores.groupby("Parent").size().tolist() == [4, 4, 4]


def test_survey_files_have_bom_crlf_and_exact_header(small: DemoSummary):
    files = sorted((small.out_dir / "surveys").glob("*.csv"))
    assert [f.name for f in files] == ["responses_2025.csv", "responses_2026.csv"]
    for f in files:
        raw = f.read_bytes()
        assert raw.startswith(b"\xef\xbb\xbf"), f.name
        assert raw[3:].split(b"\r\n", 1)[0].decode("utf-8") == SURVEY_HEADER


def test_survey_values(small: DemoSummary, surveys: pd.DataFrame, members: pd.DataFrame):
    sv = surveys
    start, stop = window_bounds(SMALL)
    assert sv["ts"].min() >= start and sv["ts"].max() < stop
    assert sv["Submitted"].str.fullmatch(r"\d{2}/\d{2}/\d{4} \d{2}:\d{2}").all()
    assert sv["Response ID"].str.fullmatch(r"R_\d{7}").all()
    assert sv["Response ID"].is_unique
    # Each yearly file holds only its own year.
    for f in (small.out_dir / "surveys").glob("*.csv"):
        year = f.stem.split("_")[1]
        frame = pd.read_csv(f, encoding="utf-8-sig", dtype=str, keep_default_na=False)
        assert frame["Submitted"].str[6:10].eq(year).all()
    assert set(sv["Store"]) == STORES
    assert set(sv["Survey"]) == {"Relationship", "Transactional"}
    assert 0.15 < (sv["Survey"] == "Relationship").mean() < 0.25
    member_rows = sv[sv["Member number"] != ""]
    assert 0.80 < len(member_rows) / len(sv) < 0.90
    assert set(member_rows["Member number"]) <= set(members["member_id"])
    # Members answer only once enrolled.
    enrolled = member_rows["Member number"].map(members.set_index("member_id")["enrolled_on"])
    assert (member_rows["ts"] >= pd.to_datetime(enrolled)).all()


def test_survey_volume_per_member(surveys: pd.DataFrame):
    per_member_24m = (surveys["Member number"] != "").sum() / SMALL["customers"] * 24
    per_member_24m /= SMALL["months"]
    assert 2.0 <= per_member_24m <= 2.5


def test_survey_touchpoint_channel_device_interaction(surveys: pd.DataFrame):
    sv = surveys
    rel = sv[sv["Survey"] == "Relationship"]
    assert set(rel["Touchpoint"]) == {"Overall"} and set(rel["Channel"]) == {"Email"}
    assert set(rel["Interaction"]) == {""} and set(rel[CES]) == {""}
    assert set(rel["Device"]) == {"Desktop", "Mobile", "Tablet"}
    tx = sv[sv["Survey"] == "Transactional"]
    assert set(tx["Touchpoint"]) == {
        "Store visit",
        "Online order",
        "Delivery",
        "Customer support",
        "Returns",
    }
    assert set(tx["Interaction"]) == {"Self-service", "Assisted"}
    combos = set(map(tuple, tx[["Touchpoint", "Channel", "Device", "Interaction"]].values))
    allowed_devices = {
        "Store": {"In person"},
        "Web": {"Desktop", "Mobile", "Tablet"},
        "App": {"Mobile"},
        "Phone": {"Phone"},
        "Chat": {"Desktop", "Mobile", "Tablet"},
        "Email": {"Desktop", "Mobile", "Tablet"},
    }
    for touchpoint, channel, device, interaction in combos:
        assert device in allowed_devices[channel], (touchpoint, channel, device)
        if touchpoint in ("Store visit", "Customer support", "Delivery"):
            assert interaction == "Assisted"
        if touchpoint == "Online order":
            assert channel in ("Web", "App") and interaction == "Self-service"
        if touchpoint == "Returns":
            assert interaction == ("Assisted" if channel == "Store" else "Self-service")
    assert {c[1] for c in combos if c[0] == "Customer support"} == {"Phone", "Chat"}


def test_survey_scores_and_blanks(surveys: pd.DataFrame):
    sv = surveys
    nps = sv[NPS]
    assert nps[nps != ""].astype(int).between(0, 10).all()
    assert 0.005 < (nps == "").mean() < 0.04
    assert set(sv[CSAT]) == {*CSAT_VALUE, ""}
    assert 0.01 < (sv[CSAT] == "").mean() < 0.05
    assert ((sv[NPS] != "") | (sv[CSAT] != "") | (sv[CES] != "")).all()
    tx_ces = sv.loc[sv["Survey"] == "Transactional", CES]
    assert tx_ces.astype(int).between(1, 7).all()
    for col in ATTRS:
        values = sv.loc[sv[col] != "", col].astype(int)
        assert values.between(1, 5).all() and values.nunique() == 5, col
    self_service = sv[sv["Interaction"] == "Self-service"]
    assert (self_service["Staff friendliness"] == "").all()
    digital = sv["Channel"].isin(["Web", "App", "Chat", "Email"])
    assert (sv.loc[~digital, "Ease of website/app"] == "").all()
    assert (sv.loc[digital, "Ease of website/app"] != "").mean() > 0.9


def test_wait_time_only_for_support_and_store_visits(surveys: pd.DataFrame):
    sv = surveys
    waited = sv["Touchpoint"].isin(["Customer support", "Store visit"])
    assert (sv.loc[~waited, WAIT] == "").all()
    assert sv.loc[waited, WAIT].str.fullmatch(r"\d+\.\d").all()
    support = sv.loc[sv["Touchpoint"] == "Customer support", "wait"]
    assert (support > 15).sum() >= 30 and (support < 5).sum() >= 30


def test_comments(surveys: pd.DataFrame):
    comments = surveys.loc[surveys["Comment"] != "", "Comment"]
    assert 0.15 < len(comments) / len(surveys) < 0.25
    assert comments.str.contains(",").any()
    assert comments.str.contains('"').any()
    assert comments.str.contains("\n").any()
    for char in ("é", "£", "’"):
        assert comments.str.contains(char).any(), char
    # Tone follows the score: complaints come from detractors, praise from promoters.
    complaint = comments.str.contains("nightmare|rude|Out of stock|too long|expensive")
    scores = surveys.loc[comments.index, "nps"]
    assert scores[complaint].mean() < 6 < 9 < scores[comments.str.contains("brilliant")].mean()


def test_loyalty_schema(small: DemoSummary):
    con = sqlite3.connect(small.out_dir / "loyalty.db")
    try:
        cols = {
            t: [r[1] for r in con.execute(f"PRAGMA table_info({t})")]
            for t in ("members", "transactions")
        }
        indexes = [r[1] for r in con.execute("PRAGMA index_list(transactions)")]
        index_cols = [[c[2] for c in con.execute(f"PRAGMA index_info({name})")] for name in indexes]
        fks = list(con.execute("PRAGMA foreign_key_list(transactions)"))
    finally:
        con.close()
    assert cols["members"] == [
        "member_id",
        "enrolled_on",
        "tier",
        "segment",
        "home_store",
        "email_opt_in",
        "updated_at",
    ]
    assert cols["transactions"] == [
        "txn_id",
        "member_id",
        "store",
        "occurred_at",
        "channel",
        "amount",
        "points_earned",
        "points_redeemed",
    ]
    assert ["occurred_at"] in index_cols
    assert [(f[2], f[3], f[4]) for f in fks] == [("members", "member_id", "member_id")]


def test_members(members: pd.DataFrame):
    m = members
    assert m["member_id"].tolist() == [f"M{i:06d}" for i in range(1, len(m) + 1)]
    assert set(m["tier"]) == {"Bronze", "Silver", "Gold"}
    assert set(m["segment"]) == {"Families", "Young professionals", "Retirees", "Trade"}
    assert set(m["home_store"]) == STORES
    assert set(m["email_opt_in"]) == {0, 1}
    start, stop = window_bounds(SMALL)
    enrolled = pd.to_datetime(m["enrolled_on"], format="%Y-%m-%d")
    updated = pd.to_datetime(m["updated_at"], format="%Y-%m-%d %H:%M:%S")
    assert enrolled.min() >= start - pd.Timedelta(days=3 * 366)
    assert 0.1 < (enrolled >= start).mean() < 0.4  # some enrol during the window
    assert (enrolled < stop).all() and (updated < stop).all() and (updated >= enrolled).all()


def test_transactions(transactions: pd.DataFrame, members: pd.DataFrame):
    t = transactions
    occurred = pd.to_datetime(t["occurred_at"], format="%Y-%m-%d %H:%M:%S")
    start, stop = window_bounds(SMALL)
    assert occurred.min() >= start and occurred.max() < stop
    assert t["txn_id"].is_monotonic_increasing and occurred.is_monotonic_increasing
    per_member_24m = len(t) / SMALL["customers"] * 24 / SMALL["months"]
    assert 12 <= per_member_24m <= 16
    anon = t["member_id"].isna()
    assert 0.70 < 1 - anon.mean() < 0.80
    assert (t.loc[anon, ["points_earned", "points_redeemed"]] == 0).all().all()
    mem = t[~anon]
    assert (mem["points_earned"] == np.floor(mem["amount"])).all()
    redeemed = mem.loc[mem["points_redeemed"] > 0, "points_redeemed"]
    assert 0.04 < len(redeemed) / len(mem) < 0.08
    assert (redeemed % 100 == 0).all() and redeemed.between(200, 1000).all()
    assert (t["amount"].round(2) == t["amount"]).all() and (t["amount"] > 0).all()
    assert 38 < t["amount"].mean() < 55
    assert set(t["channel"]) == {"Store", "Web", "App"} and set(t["store"]) == STORES
    enrolled = pd.to_datetime(mem["member_id"].map(members.set_index("member_id")["enrolled_on"]))
    assert (occurred[~anon] >= enrolled).all()


def test_engagement_files(small: DemoSummary, engagement: pd.DataFrame):
    folder = small.out_dir / "engagement"
    waves = ["2025-12", "2026-03", "2026-06", "2026-09"]
    expected = [f"wave_{w}.{'xlsx' if i % 2 == 0 else 'csv'}" for i, w in enumerate(waves)]
    assert sorted(p.name for p in folder.glob("wave_*")) == sorted(expected)
    for name in expected:
        if name.endswith(".csv"):
            header = (folder / name).read_text(encoding="utf-8").split("\n", 1)[0]
            assert header == ",".join(f'"{c}"' if "," in c else c for c in ENGAGEMENT_HEADER)
        else:
            wb = load_workbook(folder / name)
            assert wb.sheetnames == ["Responses"]
            assert [c.value for c in wb["Responses"][1]] == ENGAGEMENT_HEADER
    head = pd.read_csv(folder / "headcount.csv", dtype={"Wave": str})
    assert list(head.columns) == ["Store", "Wave", "Headcount"]
    assert len(head) == 12 * len(waves) and set(head["Store"]) == STORES
    assert sorted(set(head["Wave"])) == [f"{w}-01" for w in waves]


def test_engagement_values(small: DemoSummary, engagement: pd.DataFrame):
    eng = engagement
    assert eng["Employee ID"].str.fullmatch(r"E\d{5}").all()
    assert set(eng["Store"]) == STORES
    assert set(eng["Wave"]) == {"2025-12-01", "2026-03-01", "2026-06-01", "2026-09-01"}
    assert not eng.duplicated(["Employee ID", "Wave"]).any()
    items = eng[ITEMS].stack().dropna()
    assert items.between(1, 5).all() and 0 < eng[ITEMS].isna().mean().mean() < 0.05
    assert eng[ENPS].between(0, 10).all() and eng[ENPS].notna().all()
    assert 0.08 < eng["Comment"].notna().mean() < 0.22
    # Same person, same ID across waves; some staff leave and are replaced.
    ids = eng.groupby("Wave")["Employee ID"].apply(set).sort_index().tolist()
    for before, after in pairwise(ids):
        assert len(before & after) > 0.4 * len(after)
    staff = eng.groupby("Employee ID")["Store"].nunique()
    assert (staff == 1).all()
    head = pd.read_csv(small.out_dir / "engagement" / "headcount.csv", dtype={"Wave": str})
    counts = eng.groupby(["Store", "Wave"]).size().rename("n")
    joined = head.set_index(["Store", "Wave"]).join(counts).fillna({"n": 0})
    assert (joined["n"] <= joined["Headcount"]).all()
    big = joined.drop(index="S12", level="Store")
    assert big["Headcount"].between(20, 45).all() and (big["n"] >= 5).all()
    assert 0.55 < big["n"].sum() / big["Headcount"].sum() < 0.9
    cardiff = joined.loc["S12"]
    assert cardiff["Headcount"].between(7, 8).all()
    assert (cardiff["n"] < 5).any() and (cardiff["n"] >= 5).any()


def test_sources_toml_maps_the_files(small: DemoSummary, surveys: pd.DataFrame):
    text = (small.out_dir / "sources.toml").read_text(encoding="utf-8")
    assert text.startswith(
        '# Sources of the demo company "Acme Home & Garden", written by `python -m etl demo`.\n'
    )
    cfg = {s["name"]: s for s in tomllib.loads(text)["source"]}
    assert list(cfg) == [
        "org_units",
        "loyalty_members",
        "loyalty_transactions",
        "customer_survey",
        "engagement_waves",
        "headcount",
    ]
    out = small.out_dir
    headers = {
        "org_units": pd.read_csv(out / "org_units.csv").columns,
        "loyalty_members": read_table(out, "SELECT * FROM members LIMIT 1").columns,
        "loyalty_transactions": read_table(out, "SELECT * FROM transactions LIMIT 1").columns,
        "customer_survey": surveys.columns,
        "engagement_waves": ENGAGEMENT_HEADER,
        "headcount": pd.read_csv(out / "engagement" / "headcount.csv").columns,
    }
    for name, src in cfg.items():
        mapped = [*src["columns"].values(), *src.get("attributes", {}).values()]
        mapped += [*src.get("items", {}).values()]
        assert set(mapped) <= set(headers[name]), name
        assert list(out.glob(src["location"])) or src["location"].startswith("sqlite:///")
    survey = cfg["customer_survey"]
    assert set(surveys[survey["columns"]["csat"]]) - {""} == set(survey["values"]["csat"])
    for key in ("touchpoint", "channel", "device", "interaction", "survey_kind"):
        column = survey["columns"][key]
        assert set(surveys[column]) - {""} == set(survey["values"][key]), key
    # Every column the survey export has is mapped by the config.
    mapped = {*survey["columns"].values(), *survey["attributes"].values()}
    assert set(pd.read_csv(out / "surveys" / "responses_2026.csv", nrows=0).columns) == mapped


# ---------------------------------------------------------------------------
# The relations the dashboard must be able to show
# ---------------------------------------------------------------------------


def test_a_promoters_spend_more_and_churn_less(surveys: pd.DataFrame, transactions):
    _, stop = window_bounds(SMALL)
    answers = surveys[(surveys["Member number"] != "") & surveys["nps"].notna()]
    answers = answers[answers["ts"] <= stop - pd.Timedelta(days=180)]
    tx = transactions.dropna(subset=["member_id"]).copy()
    tx["t"] = pd.to_datetime(tx["occurred_at"])
    pairs = answers[["Response ID", "Member number", "ts", "nps"]].merge(
        tx[["member_id", "t", "amount"]], left_on="Member number", right_on="member_id"
    )
    after = pairs[(pairs["t"] > pairs["ts"]) & (pairs["t"] <= pairs["ts"] + pd.Timedelta(days=180))]
    spend = after.groupby("Response ID")["amount"].sum()
    answers = answers.assign(spend=answers["Response ID"].map(spend).fillna(0.0))
    within_90 = after[after["t"] <= after["ts"] + pd.Timedelta(days=90)]
    answers = answers.assign(silent_90=~answers["Response ID"].isin(within_90["Response ID"]))
    promoters, detractors = answers[answers["nps"] >= 9], answers[answers["nps"] <= 6]
    assert len(promoters) > 500 and len(detractors) > 150
    assert promoters["spend"].mean() >= 1.25 * detractors["spend"].mean()
    assert detractors["silent_90"].mean() > promoters["silent_90"].mean() + 0.05


def test_a_churn_means_members_go_quiet_for_good(transactions, members):
    # Churned and dormant members stay quiet: a good share of members enrolled
    # before the window have not transacted in its last 120 days, and loyal (Gold)
    # members far less often than Bronze ones.
    start, stop = window_bounds(SMALL)
    last = pd.to_datetime(transactions.groupby("member_id")["occurred_at"].max())
    m = members.set_index("member_id")
    m = m[pd.to_datetime(m["enrolled_on"]) < start]
    last = last.reindex(m.index).fillna(start)
    quiet = last < stop - pd.Timedelta(days=120)
    assert 0.3 < quiet.mean() < 0.7
    by_tier = quiet.groupby(m["tier"]).mean()
    assert by_tier["Gold"] < by_tier["Silver"] < by_tier["Bronze"]


def test_b_engaged_stores_have_happier_customers(surveys: pd.DataFrame, engagement):
    answers = engagement.melt(id_vars=["Store"], value_vars=ITEMS)["value"].dropna()
    stores = engagement.melt(id_vars=["Store"], value_vars=ITEMS).dropna()["Store"]
    favourable = (answers >= 4).groupby(stores).mean()
    csat_top2 = surveys.groupby("Store")["top2"].mean()
    r = np.corrcoef(favourable.sort_index(), csat_top2.sort_index())[0, 1]
    assert r > 0.5


def test_c_slow_support_lowers_csat(surveys: pd.DataFrame):
    support = surveys[surveys["Touchpoint"] == "Customer support"]
    fast = support.loc[support["wait"] < 5, "top2"].mean()
    slow = support.loc[support["wait"] > 15, "top2"].mean()
    assert fast - slow >= 0.15


def monthly_region(sv: pd.DataFrame) -> pd.DataFrame:
    """NPS and CES per region and month, with their standard errors."""
    return sv.groupby(["region", "month"]).agg(
        nps=("nps_points", "mean"),
        nps_se=("nps_points", lambda x: x.std() / np.sqrt(x.count())),
        ces=("ces", "mean"),
        ces_se=("ces", lambda x: x.std() / np.sqrt(x.count())),
        n=("nps_points", "size"),
    )


def z_change(stats: pd.DataFrame, measure: str, before: str, after: str) -> float:
    """z statistic of the change of `measure` between two months."""
    diff = stats.loc[after, measure] - stats.loc[before, measure]
    return diff / np.hypot(stats.loc[after, f"{measure}_se"], stats.loc[before, f"{measure}_se"])


def test_d_west_nps_up_while_ces_worsens(full: DemoSummary):
    monthly = monthly_region(read_surveys(full.out_dir))
    months = sorted(monthly.index.get_level_values("month").unique())
    assert len(months) == 24
    last, prev, year_ago = months[-1], months[-2], months[-13]
    west = monthly.loc["West"]
    assert 550 <= west["n"].mean() <= 850 and west["n"].min() >= 350
    assert west.loc[last, "nps"] >= west.loc[prev, "nps"] + 8
    assert west.loc[last, "nps"] >= west.loc[year_ago, "nps"] + 8
    assert west.loc[last, "ces"] <= west.loc[prev, "ces"] - 0.3
    # ...and both shifts are far beyond what West's monthly sample could produce by chance.
    assert z_change(west, "nps", prev, last) > 3 and z_change(west, "nps", year_ago, last) > 3
    assert z_change(west, "ces", prev, last) < -3
    # West trends up before the jump too; the other regions stay flat: no trend, and
    # their month-to-month moves are sampling noise (a 4-sigma bound over 23 moves x 2
    # measures; the last month, where the West story is, gets a 3-sigma bound).
    x = np.arange(len(months) - 1)
    assert np.polyfit(x, west["nps"].iloc[:-1].to_numpy(), 1)[0] > 0.2
    for region in ("North", "South"):
        other = monthly.loc[region]
        assert abs(np.polyfit(x, other["nps"].iloc[:-1].to_numpy(), 1)[0]) < 0.35, region
        for before, after in pairwise(months):
            assert abs(z_change(other, "nps", before, after)) < 4, (region, after)
            assert abs(z_change(other, "ces", before, after)) < 4, (region, after)
        assert abs(z_change(other, "nps", prev, last)) < 3, region
        assert abs(z_change(other, "ces", prev, last)) < 3, region
        assert abs(other.loc[last, "ces"] - other.loc[prev, "ces"]) < 0.3, region


def test_e_mobile_self_service_takes_more_effort(surveys: pd.DataFrame):
    mobile_self = surveys[
        (surveys["Device"] == "Mobile") & (surveys["Interaction"] == "Self-service")
    ]
    store_assisted = surveys[
        (surveys["Touchpoint"] == "Store visit") & (surveys["Interaction"] == "Assisted")
    ]
    assert len(mobile_self) > 300 and len(store_assisted) > 1000
    assert mobile_self["ces"].mean() <= store_assisted["ces"].mean() - 0.3
    assert mobile_self["top2"].mean() < store_assisted["top2"].mean()


def test_f_realistic_overall_levels(surveys: pd.DataFrame, engagement: pd.DataFrame):
    assert 20 <= surveys["nps_points"].mean() <= 50
    assert 0.65 <= surveys["top2"].mean() <= 0.85
    assert 5.0 <= surveys["ces"].mean() <= 6.0
    favourable = (engagement[ITEMS].stack().dropna() >= 4).mean()
    assert 0.55 <= favourable <= 0.80
    counts = surveys.groupby(["region", "month"]).size()
    assert len(counts) == 3 * SMALL["months"] and counts.min() >= 50


def test_key_driver_order(surveys: pd.DataFrame):
    corr = {a: surveys["nps"].corr(pd.to_numeric(surveys[a].replace("", np.nan))) for a in ATTRS}
    assert min(corr["Staff friendliness"], corr["Speed of service"]) > max(
        corr["Product availability"], corr["Ease of website/app"]
    )
    assert corr["Value for money"] == min(corr.values()) and corr["Value for money"] > 0


# ---------------------------------------------------------------------------
# Arguments
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"customers": 99}, "customers must be an integer >= 100"),
        ({"customers": 2.5e3}, "customers must be an integer >= 100"),
        ({"months": 1}, "months must be an integer >= 2"),
        ({"end": "2026-13"}, "end must be a month formatted 'YYYY-MM'"),
        ({"end": "10/2026"}, "end must be a month formatted 'YYYY-MM'"),
        ({"end": "2026-1"}, "end must be a month formatted 'YYYY-MM'"),
    ],
)
def test_invalid_arguments(tmp_path: Path, kwargs: dict, message: str):
    with pytest.raises(ValueError, match=re.escape(message)):
        generate(tmp_path / "out", **kwargs)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("today", "expected"),
    [
        (date(2026, 11, 15), "2026-10"),
        (date(2026, 11, 1), "2026-10"),
        (date(2026, 1, 31), "2025-12"),
    ],
)
def test_default_end_month(today: date, expected: str):
    assert default_end_month(today) == expected


def test_default_end_month_uses_today():
    today = date.today()
    expected = (pd.Period(today, "M") - 1).strftime("%Y-%m")
    assert default_end_month() == expected


# ---------------------------------------------------------------------------
# A bigger org and other rates (the benchmark's large company)
# ---------------------------------------------------------------------------


def test_regions_stores_and_rates_scale_the_company(tmp_path: Path):
    args = {"seed": 3, "customers": 3000, "months": 13, "end": "2026-10"}
    base = generate(tmp_path / "base", **args)
    big = generate(tmp_path / "big", **args, regions=5, stores=23,
                   responses_per_member=4.4, transactions_per_member=7.5)
    org = pd.read_csv(big.out_dir / "org_units.csv", dtype=str, keep_default_na=False)
    regions = org[org["Level"] == "Region"]
    stores = org[org["Level"] == "Store"]
    assert big.org_units == len(org) == 1 + 5 + 23
    assert set(regions["Parent"]) == {"ACME"} and set(stores["Parent"]) <= set(regions["Code"])
    # Stores spread evenly: 23 over 5 regions is 4 or 5 each.
    assert sorted(stores.groupby("Parent").size().tolist()) == [4, 4, 5, 5, 5]
    surveys = pd.concat(pd.read_csv(p, dtype=str, keep_default_na=False, encoding="utf-8-sig")
                        for p in sorted((big.out_dir / "surveys").glob("*.csv")))
    txn = read_table(big.out_dir, "SELECT store FROM transactions")
    members = read_table(big.out_dir, "SELECT home_store FROM members")
    assert set(surveys["Store"]) == set(stores["Code"])
    assert set(members["home_store"]) <= set(stores["Code"])
    assert set(txn["store"]) <= set(stores["Code"])
    # Twice the answers and half the sales per member, within sampling noise.
    assert 1.8 < big.survey_responses / base.survey_responses < 2.2
    assert 0.45 < big.transactions / base.transactions < 0.55
    assert big.members == base.members == 3000


@pytest.mark.parametrize("kwargs", [{"regions": 0, "stores": 12}, {"regions": 4, "stores": 7},
                                    {"responses_per_member": 0.0}])
def test_invalid_org_or_rates(tmp_path: Path, kwargs: dict):
    with pytest.raises(ValueError):
        generate(tmp_path, customers=200, months=2, end="2026-10", **kwargs)
