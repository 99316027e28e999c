"""Ticket and visit frequency by NPS group (loyalty-purchase basis on the demo, checked with
pandas on the raw rows), the Revenue page panel and download that show it, and money written
in CX_CURRENCY / CX_LOCALE down to the PDF's text."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import select

from queries import schema
from queries.kpis import latest_full_month
from queries.links import value_by_nps_group
from queries.settings import ROOT


def _window(conn):
    period = latest_full_month(conn)
    return period.shift(-11), period


def _pandas_truth(engine, start: dt.datetime, end: dt.datetime, days: int) -> pd.DataFrame:
    """Per NPS group: mean purchases, revenue and ticket in the `days` after each answer of
    a loyalty customer whose window is fully observed, from the raw rows."""
    sr, tx, cust = schema.survey_response, schema.loyalty_transaction, schema.customer
    with engine.connect() as conn:
        answers = pd.DataFrame(conn.execute(
            select(sr.c.id, sr.c.nps, sr.c.customer_id, sr.c.submitted_at)
            .join(cust, cust.c.id == sr.c.customer_id)
            .where(sr.c.submitted_at >= start, sr.c.submitted_at < end, sr.c.nps.is_not(None))
        ).all(), columns=["id", "nps", "customer_id", "at"])
        txns = pd.DataFrame(conn.execute(
            select(tx.c.customer_id, tx.c.occurred_at, tx.c.amount)).all(),
            columns=["customer_id", "when", "amount"])
    answers["at"] = pd.to_datetime(answers["at"])
    txns["when"] = pd.to_datetime(txns["when"])
    latest = txns["when"].max()
    answers = answers[answers["at"] <= latest - pd.Timedelta(days=days)]
    pairs = answers.merge(txns, on="customer_id", how="left")
    inside = (pairs["when"] > pairs["at"]) & (pairs["when"] <= pairs["at"] + pd.Timedelta(
        days=days))
    pairs = pairs[inside]
    per = answers.set_index("id")[["nps"]].join(
        pairs.groupby("id").agg(visits=("amount", "size"), revenue=("amount", "sum")))
    per = per.fillna({"visits": 0, "revenue": 0.0})
    per["ticket"] = (per["revenue"] / per["visits"]).where(per["visits"] > 0)
    per["group"] = pd.cut(per["nps"], [-1, 6, 8, 10],
                          labels=["detractor", "passive", "promoter"]).astype(str)
    return per.groupby("group")[["ticket", "visits", "revenue"]].mean()


def test_loyalty_basis_equals_pandas_on_the_raw_rows(demo_engine) -> None:
    days = 180
    with demo_engine.connect() as conn:
        first, last = _window(conn)
        value = value_by_nps_group(conn, start=first.start, end=last.end, window_days=days)
    # The demo survey carries no ticket or visits: purchases after the answer are the basis.
    assert value.basis == "transactions"
    truth = _pandas_truth(demo_engine, first.start, last.end, days)
    for g in ("promoter", "passive", "detractor"):
        assert value.groups[g].ticket.mean == pytest.approx(truth.loc[g, "ticket"], rel=1e-9)
        assert value.groups[g].visits.mean == pytest.approx(truth.loc[g, "visits"], rel=1e-9)
        assert value.groups[g].value.mean == pytest.approx(truth.loc[g, "revenue"], rel=1e-9)
    gap = value.gaps[("visits", "detractor")]
    assert gap.diff == pytest.approx(truth.loc["promoter", "visits"]
                                     - truth.loc["detractor", "visits"], rel=1e-9)
    assert value.driver in ("frequency", "ticket", "both", "neither")
    assert value.sentence


def test_revenue_page_panel_and_download_equal_the_query(dash_app, in_app, demo_engine) -> None:
    revenue = sys.modules["pages.revenue"]
    state = {"unit": "R-NORTH"}
    fig, words, note = in_app(revenue.render_value, dict(state))
    s = dash_app.server.config["CX_SETTINGS"]
    with demo_engine.connect() as conn:
        first, last = _window(conn)
        value = value_by_nps_group(conn, start=first.start, end=last.end,
                                   window_days=s.cx_revenue_days, unit="R-NORTH")
    assert [t.y for t in fig.data] == [
        pytest.approx(tuple(getattr(value.groups[g], m).mean
                            for g in ("promoter", "passive", "detractor")))
        for m in ("ticket", "visits", "value")]
    assert words.children == value.sentence
    assert "From loyalty purchases in the" in note
    frame = in_app(revenue.value_frame, dict(state))
    assert frame["mean"].tolist() == pytest.approx(value.frame()["mean"].tolist())
    assert set(frame["basis"]) == {"transactions"}


def test_survey_basis_from_answers_fields(engine, tmp_path: Path) -> None:
    # Visits and ticket carried by the answers themselves; by hand: promoters 20 x 3 and
    # 40 x 5, passives 30 x 2, detractors 10 x 1 and 30 x 1.
    from etl.config import load_config
    from etl.run import run_sources
    from tests.sources_kit import ORG_CSV, ORG_SOURCE

    (tmp_path / "org.csv").write_text(ORG_CSV)
    (tmp_path / "s.csv").write_text(
        "id,at,store,nps,ticket,visits\n"
        "A,2024-01-02,S01,10,20,3\nB,2024-01-03,S01,9,40,5\nC,2024-01-04,S02,7,30,2\n"
        "D,2024-01-05,S02,2,10,1\nE,2024-01-06,S02,5,30,1\nF,2024-01-07,S02,6,,4\n")
    (tmp_path / "sources.toml").write_text(ORG_SOURCE + """
[[source]]
name = "s"
kind = "survey"
adapter = "csv"
location = "s.csv"
[source.columns]
response_id = "id"
submitted_at = "at"
org_unit_id = "store"
nps = "nps"
spend = "ticket"
visits = "visits"
""")
    run_sources(engine, load_config(tmp_path / "sources.toml"))
    with engine.connect() as conn:
        v = value_by_nps_group(conn, start=dt.datetime(2024, 1, 1), end=dt.datetime(2024, 2, 1))
    assert v.basis == "survey"
    assert (v.groups["promoter"].ticket.mean, v.groups["promoter"].visits.mean) == (30, 4)
    assert v.groups["promoter"].value.mean == (20 * 3 + 40 * 5) / 2
    assert (v.groups["detractor"].ticket.n, v.groups["detractor"].visits.n) == (2, 3)
    assert v.groups["detractor"].visits.mean == pytest.approx(2.0)
    assert v.groups["detractor"].value.mean == (10 + 30) / 2
    assert v.groups["passive"].ticket.mean == 30 and v.groups["passive"].ticket.sd is None


# ------------------------------------------------------------------- currency and locale

def test_money_follows_currency_and_locale() -> None:
    from queries.formatting import money

    def plain(s: str) -> str:
        return s.replace("\u202f", " ").replace("\xa0", " ")

    assert money(49.236, currency="GBP", locale="en_GB") == "£49.24"
    assert money(1234567.5, currency="GBP", locale="en_GB") == "£1,234,568"
    assert money(-3.5, signed=True, currency="GBP", locale="en_GB") == "-£3.50"
    assert plain(money(49.236, currency="EUR", locale="fr_FR")) == "49,24 €"
    assert plain(money(1234567.5, currency="EUR", locale="fr_FR")) == "1 234 568 €"
    assert plain(money(1234.6, currency="EUR", locale="de_DE")) == "1.235 €"
    assert money(12.5, currency="USD", locale="en_US") == "$12.50"


def test_settings_refuse_unknown_currency_and_locale() -> None:
    from queries.settings import SettingsError, load_settings

    with pytest.raises(SettingsError, match=r"CX_CURRENCY: .*ISO 4217"):
        load_settings(_env_file=None, cx_currency="EURO")
    with pytest.raises(SettingsError, match="CX_LOCALE"):
        load_settings(_env_file=None, cx_locale="xx_YY")
    assert load_settings(_env_file=None, cx_currency="eur", cx_locale="fr-FR").cx_currency \
        == "EUR"


@pytest.mark.browser
def test_pdf_writes_money_in_euros_the_french_way(demo_url: str, tmp_path: Path) -> None:
    env = {**os.environ, "DATABASE_URL": demo_url, "CX_CURRENCY": "EUR", "CX_LOCALE": "fr_FR",
           "SECRET_KEY": "eur-test-secret-0123456789abcdefghijkl", "CX_DATA_DIR": str(tmp_path)}
    out = subprocess.run([sys.executable, "-m", "queries", "kpis", "--json", "--period",
                          "2026-10"], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    revenue = next(k for k in json.loads(out.stdout)["kpis"] if k["key"] == "revenue")
    pdf = tmp_path / "eur.pdf"
    made = subprocess.run([sys.executable, "-m", "dashboard", "snapshot", "--period", "2026-10",
                           "--out", str(pdf)], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)
    assert made.returncode == 0, made.stderr
    assert shutil.which("pdftotext"), "pdftotext missing: apt-get install poppler-utils"
    text = subprocess.run(["pdftotext", "-layout", str(pdf), "-"], capture_output=True,
                          text=True, check=True).stdout
    text = text.replace("\u202f", " ").replace("\xa0", " ")
    # Written here, not by Babel: whole euros, space-grouped, the sign after a space.
    whole = f"{round(revenue['value']):,}".replace(",", " ") + " €"
    assert whole in text, (whole, [ln for ln in text.splitlines() if "Revenue" in ln])
    assert "£" not in text
    assert re.search(r"\d+,\d\d €", text)  # amounts under 1 000: a decimal comma
    assert "Ticket and visit frequency by NPS group" in text
