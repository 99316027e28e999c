"""`python -m queries kpis` over any window of months, with the counts behind each value,
checked against the raw survey rows read with pandas."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pandas as pd
import pytest
from sqlalchemy import select

from queries import schema
from queries.settings import ROOT


def _cli(url: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "queries", "kpis", *args], cwd=ROOT,
                          env={**os.environ, "DATABASE_URL": url}, capture_output=True,
                          text=True, timeout=120)


def test_window_counts_and_values_match_the_raw_rows(demo_url: str, demo_engine) -> None:
    sr = schema.survey_response
    with demo_engine.connect() as conn:
        raw = pd.DataFrame(conn.execute(select(sr.c.submitted_at, sr.c.nps, sr.c.csat))
                           .all(), columns=["at", "nps", "csat"])
    raw["at"] = pd.to_datetime(raw["at"])
    window = raw[(raw["at"] >= "2026-05-01") & (raw["at"] < "2026-11-01")]
    nps = window["nps"].dropna()
    promoters, detractors = int((nps >= 9).sum()), int((nps <= 6).sum())
    csat = window["csat"].dropna()

    out = _cli(demo_url, "--from", "2026-05", "--to", "2026-10", "--json")
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout)
    assert (got["first"], got["last"], got["months"]) == ("2026-05", "2026-10", 6)
    c = got["counts"]
    assert (c["responses"], c["nps_n"], c["promoters"], c["detractors"]) == (
        len(window), len(nps), promoters, detractors)
    assert c["passives"] == int(((nps >= 7) & (nps <= 8)).sum())
    assert got["nps"]["value"] == pytest.approx(100 * (promoters - detractors) / len(nps))
    assert (c["csat_n"], c["csat_top2"]) == (len(csat), int((csat >= 4).sum()))
    assert got["csat"]["value"] == pytest.approx(100 * (csat >= 4).mean())

    same = json.loads(_cli(demo_url, "--months", "6", "--to", "2026-10", "--json").stdout)
    assert same["counts"] == c

    text = _cli(demo_url, "--from", "2026-05", "--to", "2026-10").stdout
    assert f"promoters {promoters:,}, passives {c['passives']:,}, detractors {detractors:,}" \
        in text
    assert "May 2026 to October 2026 (6 months)" in text


def test_one_month_report_shows_its_counts(demo_url: str) -> None:
    got = json.loads(_cli(demo_url, "--period", "2026-10", "--json").stdout)
    nps = next(k for k in got["kpis"] if k["key"] == "nps")
    assert got["counts"]["nps_n"] == nps["n"]
    assert got["counts"]["promoters"] + got["counts"]["passives"] \
        + got["counts"]["detractors"] == nps["n"]
    bad = _cli(demo_url, "--period", "2026-10", "--months", "3")
    assert bad.returncode == 2 and "do not mix" in bad.stderr
