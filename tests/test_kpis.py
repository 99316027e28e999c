"""The KPI set against an independent pandas computation on the demo SOURCE files."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from scipy.stats import t as t_dist

from queries.employees import engagement_by_unit
from queries.kpis import Filters, kpis, latest_wave
from queries.periods import Month
from queries.settings import ROOT
from tests import demo_truth as truth

PERIOD = Month(2026, 10)
CHANNEL = {"Store": "store", "Web": "web", "App": "app", "Phone": "phone", "Chat": "chat",
           "Email": "email"}
DEVICE = {"In person": "in_person", "Desktop": "desktop", "Mobile": "mobile",
          "Tablet": "tablet", "Phone": "phone"}


@pytest.fixture(scope="module")
def sources(demo_dir: Path) -> dict[str, pd.DataFrame]:
    members, txns = truth.loyalty(demo_dir)
    surveys = truth.surveys(demo_dir)
    surveys = surveys[surveys["loadable"]].copy()
    surveys["segment"] = surveys["Member number"].map(members.set_index("member_id")["segment"])
    surveys["channel"] = surveys["Channel"].map(CHANNEL)
    surveys["device"] = surveys["Device"].map(DEVICE)
    txns["segment"] = txns["member_id"].map(members.set_index("member_id")["segment"])
    txns["channel"] = txns["channel"].str.lower()
    return {"members": members, "txns": txns, "surveys": surveys, "org": truth.org(demo_dir)}


def _month(df: pd.DataFrame, col: str, m: Month) -> pd.DataFrame:
    return df[(df[col] >= m.start) & (df[col] < m.end)]


def _by_key(items) -> dict:
    return {k.key: k for k in items}


@pytest.mark.parametrize("flt", [
    Filters(channel="app"),
    Filters(device="mobile", interaction="self_service"),
    Filters(unit="R-NORTH", touchpoint="support"),
    Filters(segment="Families"),
])
def test_survey_kpis_under_filters(demo_engine, sources, flt: Filters) -> None:
    s = _month(sources["surveys"], "submitted", PERIOD)
    if flt.unit:
        s = s[s["region"] == flt.unit]
    if flt.channel:
        s = s[s["channel"] == flt.channel]
    if flt.device:
        s = s[s["device"] == flt.device]
    if flt.interaction:
        s = s[s["Interaction"] == "Self-service"]
    if flt.touchpoint:
        s = s[s["Touchpoint"] == "Customer support"]
    if flt.segment:
        s = s[s["segment"] == flt.segment]
    nps, csat, ces = s["nps"].dropna(), s["csat"].dropna(), s["ces"].dropna()
    with demo_engine.connect() as conn:
        got = _by_key(kpis(conn, period=PERIOD, filters=flt))
    assert got["nps"].n == len(nps)
    assert got["nps"].value == pytest.approx(100 * ((nps >= 9).mean() - (nps <= 6).mean()))
    assert got["csat"].value == pytest.approx(100 * (csat >= 4).mean())
    assert got["ces"].n == len(ces)
    if len(ces):
        assert got["ces"].value == pytest.approx(ces.mean())
        assert got["ces_agree"].value == pytest.approx(100 * (ces >= 5).mean())
    for key in ("nps", "csat", "ces"):
        assert got[key].low_sample is (got[key].n < 30)
    # Employee data knows only units: every other filter is reported as not applied.
    assert set(got["engagement"].ignored_filters) == set(flt.active()) - {"unit"}


@pytest.mark.parametrize("unit", [None, "R-SOUTH"])
def test_loyalty_kpis(demo_engine, sources, unit: str | None) -> None:
    txns, org = sources["txns"], sources["org"]
    if unit:
        txns = txns[txns["store"].isin(org.loc[org["Parent"] == unit, "Code"])]
    members = txns[txns["member_id"].notna()]

    def active(end) -> set[str]:
        end = pd.Timestamp(end)
        w = members[(members["occurred"] >= end - pd.Timedelta(days=90))
                    & (members["occurred"] < end)]
        return set(w["member_id"])

    now, before = active(PERIOD.end), active(PERIOD.shift(-1).end)
    month = _month(txns, "occurred", PERIOD)
    m_month = month[month["member_id"].notna()]
    nm_month = month[month["member_id"].isna()]
    with demo_engine.connect() as conn:
        got = _by_key(kpis(conn, period=PERIOD, filters=Filters(unit=unit)))
    assert got["active_members"].value == len(now)
    assert got["retention"].n == len(before)
    assert got["retention"].value == pytest.approx(100 * len(before & now) / len(before))
    assert got["churn"].value == pytest.approx(100 - got["retention"].value)
    assert got["redemption"].value == pytest.approx(
        100 * month["points_redeemed"].sum() / month["points_earned"].sum())
    assert got["spend_per_member"].value == pytest.approx(m_month["amount"].sum() / len(now))
    assert got["member_ticket"].value == pytest.approx(m_month["amount"].mean())
    assert got["member_ticket"].moe == pytest.approx(
        t_dist.ppf(0.975, len(m_month) - 1) * m_month["amount"].std(ddof=1)
        / math.sqrt(len(m_month)), rel=1e-6)
    assert got["non_member_ticket"].value == pytest.approx(nm_month["amount"].mean())
    assert got["revenue"].value == pytest.approx(month["amount"].sum(), abs=0.01)
    assert got["revenue"].yoy.period == "2025-10"
    last_year = _month(txns, "occurred", PERIOD.shift(-12))
    assert got["revenue"].yoy.value == pytest.approx(last_year["amount"].sum(), abs=0.01)
    # n counts people, never points: the members who earned points in the month.
    earners = m_month.loc[m_month["points_earned"] > 0, "member_id"].nunique()
    assert got["redemption"].n == earners < month["points_earned"].sum()
    assert (got["redemption"].n_unit, got["redemption"].sampled) == (
        "members earning points", False)
    assert (got["revenue"].n, got["revenue"].n_unit) == (len(month), "transactions")
    assert got["active_members"].n_unit == "members"


def test_employee_breakdown_hides_small_groups_and_their_complement(demo_engine,
                                                                   demo_dir: Path) -> None:
    eng = truth.engagement(demo_dir)
    west = ["S09", "S10", "S11", "S12"]
    waves = sorted(eng["wave"].unique())
    # A wave where Cardiff (S12) has fewer than 5 respondents: the demo guarantees one.
    small_wave = next(w for w in waves
                      if 0 < ((eng["wave"] == w) & (eng["Store"] == "S12")).sum() < 5)
    counts = eng[eng["wave"] == small_wave].groupby("Store").size()
    with demo_engine.connect() as conn:
        frame = engagement_by_unit(conn, wave=pd.Timestamp(small_wave).date(),
                                   parent="R-WEST").set_index("unit")
    assert list(frame.index) == sorted(west, key=lambda u: frame.loc[u, "name"])
    assert bool(frame.loc["S12", "hidden"])
    assert pd.isna(frame.loc["S12", "engagement"]) and pd.isna(frame.loc["S12", "respondents"])
    # The next-smallest sibling is hidden too, so West minus the visible stores reveals
    # nothing about Cardiff alone.
    next_smallest = counts[west].drop("S12").idxmin()
    assert bool(frame.loc[next_smallest, "hidden"])
    assert "subtraction" in frame.loc[next_smallest, "reason"]
    shown = [u for u in west if u not in ("S12", next_smallest)]
    for unit in shown:
        assert not frame.loc[unit, "hidden"]
        assert frame.loc[unit, "respondents"] == counts[unit]
        rows = eng[(eng["wave"] == small_wave) & (eng["Store"] == unit)]
        expected = 100 * sum((rows[i].dropna() >= 4).mean() for i in truth.ITEMS) / 5
        assert frame.loc[unit, "engagement"] == pytest.approx(expected)
    wave_month = Month.of(pd.Timestamp(small_wave).date())
    with demo_engine.connect() as conn:
        assert latest_wave(conn, before=wave_month.end, unit="S12") == pd.Timestamp(
            small_wave).date()
        card = _by_key(kpis(conn, period=wave_month, filters=Filters(unit="S12")))
    for key in ("engagement", "enps", "participation"):
        assert card[key].hidden and card[key].value is None and card[key].compare is None
    # The sibling hidden with it stays hidden everywhere else too: its own card, its trend
    # and the service-profit chain (else West minus it would reveal Cardiff).
    from queries.links import engagement_vs_cx
    from queries.trends import engagement_trend

    with demo_engine.connect() as conn:
        twin = _by_key(kpis(conn, period=wave_month, filters=Filters(unit=next_smallest)))
        trend = engagement_trend(conn, end=wave_month, unit=next_smallest)
        chain = engagement_vs_cx(conn, waves=[pd.Timestamp(small_wave).date()],
                                 outcome="csat")
    assert twin["engagement"].hidden and twin["engagement"].value is None
    row = trend[trend["wave"] == str(pd.Timestamp(small_wave).date())]
    assert bool(row["hidden"].iloc[0]) and pd.isna(row["engagement"].iloc[0])
    assert next_smallest not in set(chain.points["unit"]) and "S12" not in set(
        chain.points["unit"])


def test_cli_json_is_the_same_numbers(demo_url: str, demo_engine) -> None:
    env = {**os.environ, "DATABASE_URL": demo_url}
    out = subprocess.run([sys.executable, "-m", "queries", "kpis", "--period", "2026-10",
                          "--unit", "R-WEST", "--channel", "web", "--json"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["period"] == "2026-10" and report["compare"] == "2026-09"
    assert report["filters"] == {"unit": "R-WEST", "channel": "web"}
    with demo_engine.connect() as conn:
        want = kpis(conn, period=PERIOD, filters=Filters(unit="R-WEST", channel="web"))
    assert [k["key"] for k in report["kpis"]] == [k.key for k in want]
    for got, exp in zip(report["kpis"], want, strict=True):
        assert got["n"] == exp.n
        assert got["value"] == (None if exp.value is None else pytest.approx(exp.value))
        assert got["low_sample"] == exp.low_sample
        if exp.compare:
            assert got["compare"]["significant"] == exp.compare.significant


def test_links_cli_prints_the_link_functions(demo_url: str, demo_engine) -> None:
    from queries.links import revenue_after_survey

    env = {**os.environ, "DATABASE_URL": demo_url}
    out = subprocess.run([sys.executable, "-m", "queries", "links", "--period", "2026-10",
                          "--months", "12", "--json"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    with demo_engine.connect() as conn:
        want = revenue_after_survey(conn, start=Month(2025, 11).start, end=PERIOD.end,
                                    window_days=180)
    groups = {g["group"]: g for g in report["revenue_after_survey"]["groups"]}
    for g in (want.promoter, want.passive, want.detractor):
        assert groups[g.group]["n"] == g.n
        assert groups[g.group]["mean"] == (None if g.mean is None else pytest.approx(g.mean))
    assert report["engagement_vs_cx"]["csat"]["correlation"]["r"] > 0.5
    assert abs(sum(d["weight"] for d in report["key_drivers_nps"]["drivers"])
               - report["key_drivers_nps"]["r_squared"]) < 1e-9


def test_chat_filter_makes_sales_kpis_not_applicable_not_zero(demo_engine, sources) -> None:
    """Transactions carry no chat channel: sales KPIs say so, surveys still count chat."""
    from queries.breakdown import breakdown
    from queries.formatting import fmt_reason, fmt_value
    from queries.kpis import Settings

    assert (sources["txns"]["channel"] == "chat").sum() == 0
    chat = _month(sources["surveys"], "submitted", PERIOD)
    chat = chat[chat["channel"] == "chat"]["nps"].dropna()
    assert len(chat) > 0
    flt = Filters(channel="chat")
    with demo_engine.connect() as conn:
        got = _by_key(kpis(conn, period=PERIOD, filters=flt))
        rows = breakdown(conn, period=PERIOD, compare=PERIOD.shift(-1), filters=flt,
                         settings=Settings())
    assert got["nps"].n == len(chat)
    assert got["nps"].value == pytest.approx(100 * ((chat >= 9).mean() - (chat <= 6).mean()))
    for key in ("active_members", "retention", "churn", "redemption", "spend_per_member",
                "member_ticket", "non_member_ticket", "revenue"):
        k = got[key]
        assert k.value is None and k.compare is None and k.yoy is None, key
        assert k.not_applicable == "transactions have no chat channel", key
        assert fmt_value(k) == "n/a", key
        assert fmt_reason(k) == "not applicable: transactions have no chat channel", key
    # Segments: revenue is n/a with the same reason, never a row of £0.
    assert rows["revenue"].isna().all()
    assert set(rows["revenue_na"]) == {"transactions have no chat channel"}
    # A real zero stays a zero: a channel transactions do carry, in a month without sales.
    with demo_engine.connect() as conn:
        empty = _by_key(kpis(conn, period=Month(2030, 1), filters=Filters(channel="web")))
    assert empty["revenue"].value == 0 and empty["revenue"].not_applicable is None


def test_year_ago_comparison_takes_the_month_before_as_second(demo_engine) -> None:
    """Compared with the same month last year, the second comparison is the month before
    (never the year-ago month twice)."""
    with demo_engine.connect() as conn:
        yoy_first = _by_key(kpis(conn, period=PERIOD, compare=PERIOD.shift(-12)))
        usual = _by_key(kpis(conn, period=PERIOD))
    for key in ("nps", "csat", "revenue", "retention"):
        assert yoy_first[key].compare.period == "2025-10" == usual[key].yoy.period
        assert yoy_first[key].yoy.period == "2026-09" == usual[key].compare.period
        assert yoy_first[key].yoy.delta == pytest.approx(usual[key].compare.delta)
        assert yoy_first[key].compare.delta == pytest.approx(usual[key].yoy.delta)


def test_low_sample_and_significant_never_stand_together(demo_engine) -> None:
    """Every KPI of every store (small samples) in the demo: a low sample is never tested."""
    from queries.kpis import org_units

    with demo_engine.connect() as conn:
        stores = [u["id"] for u in org_units(conn) if u["kind"] == "store"]
        for unit in stores[:4]:
            for k in kpis(conn, period=PERIOD, filters=Filters(unit=unit, channel="app")):
                if k.low_sample:
                    assert k.significant is None, (unit, k.key)
                    assert k.compare is None or k.compare.delta is None or \
                        k.compare.reason == "too few answers to test", (unit, k.key)
                if k.sampled and k.value is not None and k.n > 1:
                    assert k.moe and k.moe > 0, (unit, k.key)
