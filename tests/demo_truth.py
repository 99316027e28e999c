"""Independent reading of the demo SOURCE files with pandas, for checking loads and KPIs.

Nothing here imports the ETL or queries code: it is the second method the tests compare
against.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pandas as pd

CSAT = {"Very dissatisfied": 1, "Dissatisfied": 2, "Neither satisfied nor dissatisfied": 3,
        "Satisfied": 4, "Very satisfied": 5}
ATTRIBUTES = ["Staff friendliness", "Speed of service", "Product availability",
              "Value for money", "Ease of website/app"]
ITEMS = ["I am proud to work for Acme", "I would recommend Acme's products",
         "I have what I need to do my job well", "My manager cares about my wellbeing",
         "I see myself working here in two years"]


def org(demo: Path) -> pd.DataFrame:
    return pd.read_csv(demo / "org_units.csv", dtype=str, keep_default_na=False)


def surveys(demo: Path) -> pd.DataFrame:
    frames = [pd.read_csv(p, encoding="utf-8-sig", dtype=str, keep_default_na=False)
              for p in sorted((demo / "surveys").glob("*.csv"))]
    df = pd.concat(frames, ignore_index=True)
    df["submitted"] = pd.to_datetime(df["Submitted"], format="%d/%m/%Y %H:%M")
    df["nps"] = pd.to_numeric(df["How likely are you to recommend Acme to a friend or colleague?"],
                              errors="coerce")
    df["csat"] = df["Overall, how satisfied were you with your experience?"].map(CSAT)
    df["ces"] = pd.to_numeric(df["Acme made it easy for me to handle my issue."], errors="coerce")
    # Our rule: a response with no score at all is quarantined, not loaded.
    df["loadable"] = df[["nps", "csat", "ces"]].notna().any(axis=1)
    units = org(demo).set_index("Code")["Parent"]
    df["region"] = df["Store"].map(units)
    return df


def loyalty(demo: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    with sqlite3.connect(demo / "loyalty.db") as conn:
        members = pd.read_sql_query("SELECT * FROM members", conn)
        txns = pd.read_sql_query("SELECT * FROM transactions", conn)
    txns["occurred"] = pd.to_datetime(txns["occurred_at"])
    return members, txns


def engagement(demo: Path) -> pd.DataFrame:
    frames = []
    for p in sorted((demo / "engagement").glob("wave_*")):
        if p.suffix == ".csv":
            frames.append(pd.read_csv(p, dtype=str, keep_default_na=False))
        else:
            frames.append(pd.read_excel(p, sheet_name="Responses", dtype=str).fillna(""))
    df = pd.concat(frames, ignore_index=True)
    df["wave"] = pd.to_datetime(df["Wave"].str[:10])
    for item in ITEMS:
        df[item] = pd.to_numeric(df[item], errors="coerce")
    return df


def headcount(demo: Path) -> pd.DataFrame:
    return pd.read_csv(demo / "engagement" / "headcount.csv", dtype=str)
