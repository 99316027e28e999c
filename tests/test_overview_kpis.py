"""Overview KPIs equal the same numbers computed independently from the source files."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest
from scipy.stats import t as t_dist

from queries.kpis import latest_full_month, overview_kpis
from queries.periods import Month
from tests import demo_truth as truth

PERIOD = Month(2026, 10)


def _expected(demo: Path, month: Month, region: str | None = None) -> dict[str, float]:
    s = truth.surveys(demo)
    s = s[s["loadable"] & (s["submitted"] >= month.start) & (s["submitted"] < month.end)]
    _members, txns = truth.loyalty(demo)
    org = truth.org(demo)
    stores = set(org.loc[org["Parent"] == region, "Code"]) if region else set(org["Code"])
    if region:
        s = s[s["region"] == region]
        txns = txns[txns["store"].isin(stores)]
    nps = s["nps"].dropna()
    csat = s["csat"].dropna()
    ces = s["ces"].dropna()
    start_active = pd.Timestamp(month.end) - pd.Timedelta(days=90)
    active = txns[(txns["occurred"] >= start_active) & (txns["occurred"] < month.end)
                  & txns["member_id"].notna()]["member_id"].nunique()
    in_month = txns[(txns["occurred"] >= month.start) & (txns["occurred"] < month.end)]
    eng = truth.engagement(demo)
    eng = eng[eng["Store"].isin(stores) & (eng["wave"] < month.end)]
    wave = eng["wave"].max()
    w = eng[eng["wave"] == wave]
    shares = [(w[i].dropna() >= 4).mean() for i in truth.ITEMS]
    return {
        "nps": 100 * ((nps >= 9).sum() - (nps <= 6).sum()) / len(nps),
        "nps_n": len(nps),
        "csat": 100 * (csat >= 4).mean(),
        "csat_n": len(csat),
        "ces": ces.mean(),
        "ces_n": len(ces),
        # t-based: t(0.975, n-1) x s / sqrt(n)
        "ces_moe": t_dist.ppf(0.975, len(ces) - 1) * ces.std(ddof=1) / math.sqrt(len(ces)),
        "active_members": active,
        "engagement": 100 * sum(shares) / len(shares),
        "engagement_n": len(w),
        "revenue": in_month["amount"].sum(),
        "revenue_n": len(in_month),
    }


@pytest.mark.parametrize("region", [None, "R-WEST"])
def test_overview_kpis_match_the_source_files(demo_engine, demo_dir: Path,
                                              region: str | None) -> None:
    with demo_engine.connect() as conn:
        assert latest_full_month(conn) == PERIOD
        kpis = {k.key: k for k in overview_kpis(conn, period=PERIOD, unit=region)}
    exp = _expected(demo_dir, PERIOD, region)
    prev = _expected(demo_dir, PERIOD.shift(-1), region)
    for key in ("nps", "csat", "ces", "engagement"):
        assert kpis[key].value == pytest.approx(exp[key], abs=1e-9), key
        assert kpis[key].n == exp[f"{key}_n"], key
    assert kpis["ces"].moe == pytest.approx(exp["ces_moe"], rel=1e-9)
    assert kpis["active_members"].value == exp["active_members"]
    assert kpis["revenue"].value == pytest.approx(exp["revenue"], abs=0.005 * exp["revenue_n"])
    assert kpis["revenue"].n == exp["revenue_n"]
    for key in ("nps", "csat", "ces"):
        assert kpis[key].compare.value == pytest.approx(prev[key], abs=1e-9)
        assert kpis[key].delta == pytest.approx(exp[key] - prev[key], abs=1e-9)
    assert kpis["revenue"].delta == pytest.approx(exp["revenue"] - prev["revenue"], abs=1.0)


def test_nps_margin_matches_the_metrics_formula(demo_engine, demo_dir: Path) -> None:
    exp_rows = truth.surveys(demo_dir)
    s = exp_rows[(exp_rows["submitted"] >= PERIOD.start) & (exp_rows["submitted"] < PERIOD.end)]
    nps = s["nps"].dropna()
    # The adjusted Wald interval (METRICS.md, Rocks 2016): 3/4 promoter and 3/4 detractor
    # added, n + 3; computed here from the raw answers.
    nt = len(nps) + 3
    p, d = ((nps >= 9).sum() + 0.75) / nt, ((nps <= 6).sum() + 0.75) / nt
    half = 1.96 * 100 * math.sqrt((p + d - (p - d) ** 2) / nt)
    with demo_engine.connect() as conn:
        kpi = next(k for k in overview_kpis(conn, period=PERIOD) if k.key == "nps")
    assert kpi.moe == pytest.approx(half, rel=1e-3)  # METRICS.md rounds z to 1.96
    assert (kpi.low, kpi.high) == (pytest.approx(100 * (p - d) - half, rel=1e-3),
                                   pytest.approx(100 * (p - d) + half, rel=1e-3))
