"""Real exports made by others load through config alone, and the numbers are right.

`shared/data/public/` holds a French garden-centre chain's NPS survey (latin-1, `NA`, an
unnamed index column, negative receipts for refunds) and a real Qualtrics export (three
header rows). Expected values are computed here with pandas straight from the files.
"""

from __future__ import annotations

import csv
import io
import math
import os
import subprocess
import textwrap
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import case, func, select

from etl.config import load_config
from etl.run import run_sources
from queries import schema
from queries.settings import ROOT


def _public_folder() -> Path:
    """CX_SHARED_DATA when set, else `shared/data/public` beside this checkout, else beside
    the repository it was cloned from (a clean clone in /tmp). Missing, the tests below
    fail: these exports are the proof, not an optional extra."""
    tried = [ROOT.parent / "shared" / "data" / "public"]
    origin = subprocess.run(["git", "config", "--get", "remote.origin.url"], cwd=ROOT,
                            capture_output=True, text=True, check=False).stdout.strip()
    if origin and Path(origin).is_dir():
        tried.append(Path(origin).resolve().parent / "shared" / "data" / "public")
    if os.environ.get("CX_SHARED_DATA"):
        tried.insert(0, Path(os.environ["CX_SHARED_DATA"]))
    return next((t for t in tried if t.is_dir()), tried[0])


PUBLIC = _public_folder()
BOTANIC = PUBLIC / "botanic_nps.csv"
QUALTRICS = PUBLIC / "qualtrics_sample.csv"

ORG = "Code,Name,Level,Parent\nBOTANIC,Botanic,Company,\n"
ORG_SOURCE = """
[[source]]
name = "org"
kind = "org"
adapter = "csv"
location = "org.csv"
[source.columns]
id = "Code"
name = "Name"
kind = "Level"
parent_id = "Parent"
[source.values.kind]
Company = "company"
"""


def _config(tmp_path: Path, body: str) -> Path:
    (tmp_path / "org.csv").write_text(ORG)
    path = tmp_path / "sources.toml"
    path.write_text(ORG_SOURCE + textwrap.dedent(body))
    return path


@pytest.fixture(scope="module")
def botanic_truth() -> dict[str, object]:
    df = pd.read_csv(BOTANIC, encoding="latin-1")
    scored = df[df["nps"].notna()]
    group = pd.cut(scored["nps"], [-1, 6, 8, 10], labels=["detractor", "passive", "promoter"])
    return {
        "n": len(scored),
        "promoters": int((scored["nps"] >= 9).sum()),
        "detractors": int((scored["nps"] <= 6).sum()),
        "unscored": int(df["nps"].isna().sum()),
        "spend": scored.groupby(group, observed=True)["CaTicket"].mean().to_dict(),
        "visits": scored.groupby(group, observed=True)["NbPassageKS"].mean().to_dict(),
        "value": (scored["CaTicket"] * scored["NbPassageKS"]).groupby(
            group, observed=True).mean().to_dict(),
        "ticket_sd": scored.groupby(group, observed=True)["CaTicket"].std().to_dict(),
        "ticket_n": scored.groupby(group, observed=True)["CaTicket"].count().to_dict(),
        "comments": int(df["explication"].notna().sum()),
        "unscored_comments": int(df.loc[df["nps"].isna(), "explication"].notna().sum()),
        "rows": len(df),
    }


def test_botanic_nps_survey_loads_through_config(engine, tmp_path, botanic_truth) -> None:
    config = _config(tmp_path, f"""
        [[source]]
        name = "botanic"
        kind = "survey"
        adapter = "csv"
        location = "{BOTANIC}"
        encoding = "latin-1"
        [source.columns]
        response_id = "id"
        nps = "nps"
        spend = "CaTicket"
        visits = "NbPassageKS"
        comment = "explication"
        [source.constants]
        # The export carries no date (its `t` is a wave index) and no store.
        submitted_at = "2017-06-01"
        org_unit_id = "BOTANIC"
    """)
    results = {r.source: r for r in run_sources(engine, load_config(config))}
    run = results["botanic"]
    assert run.status == "success", run.error
    assert run.read == botanic_truth["rows"] == 13954
    # Answers without an NPS score load too (the question was optional): their comments
    # count, they enter no metric's n.
    assert run.inserted == 13954 and run.quarantined == 0
    assert run.notes["rows_without_score"] == botanic_truth["unscored"] == 342

    sr = schema.survey_response
    group = case((sr.c.nps >= 9, "promoter"), (sr.c.nps >= 7, "passive"), else_="detractor")
    with engine.connect() as conn:
        n, promoters, detractors = conn.execute(select(
            func.count(sr.c.nps),
            func.sum(case((sr.c.nps >= 9, 1), else_=0)),
            func.sum(case((sr.c.nps <= 6, 1), else_=0)),
        )).one()
        spend = dict(conn.execute(select(group, func.avg(sr.c.spend))
                                  .where(sr.c.nps.is_not(None)).group_by(group)).all())
        comments = conn.execute(select(func.count(sr.c.comment))).scalar_one()
        unscored_comments = conn.execute(select(func.count(sr.c.comment))
                                         .where(sr.c.nps.is_(None))).scalar_one()
        accented = conn.execute(select(sr.c.comment).where(sr.c.response_id == "2482")).scalar()
        agg = schema.agg_survey_daily
        rolled = conn.execute(select(func.sum(agg.c.nps_n), func.sum(agg.c.nps_promoters),
                                     func.sum(agg.c.nps_detractors))).one()
    assert (n, promoters, detractors) == (13612, 8465, 1194)
    assert (n, promoters, detractors) == (botanic_truth["n"], botanic_truth["promoters"],
                                          botanic_truth["detractors"])
    assert tuple(rolled) == (n, promoters, detractors)
    for key, mean in botanic_truth["spend"].items():
        assert float(spend[key]) == pytest.approx(mean, abs=1e-6), key
    assert comments == botanic_truth["comments"]
    assert unscored_comments == botanic_truth["unscored_comments"] == 37
    # The read side on the same data: NPS, n and its margin as the dashboard shows them,
    # against the formula of METRICS.md computed here on the raw file.
    from queries.kpis import Filters, kpis
    from queries.periods import Month

    with engine.connect() as conn:
        nps = next(k for k in kpis(conn, period=Month(2017, 6), filters=Filters(unit="BOTANIC"))
                   if k.key == "nps")
    p, d = botanic_truth["promoters"] / 13612, botanic_truth["detractors"] / 13612
    assert nps.n == 13612
    assert nps.value == pytest.approx(100 * (p - d))
    # Adjusted Wald (METRICS.md): 3/4 promoter and 3/4 detractor added, n + 3.
    pa = (botanic_truth["promoters"] + 0.75) / 13615
    da = (botanic_truth["detractors"] + 0.75) / 13615
    assert nps.moe == pytest.approx(1.959964 * 100 * math.sqrt((pa + da - (pa - da) ** 2)
                                                               / 13615), rel=1e-6)
    # Ticket and visit frequency by NPS group, from the survey's own fields: frequency, not
    # basket, separates promoters from passives.
    from queries.links import value_by_nps_group

    with engine.connect() as conn:
        value = value_by_nps_group(conn, start=Month(2017, 6).start, end=Month(2017, 6).end)
    assert value.basis == "survey"
    ticket = {g: round(value.groups[g].ticket.mean, 2) for g in value.groups}
    visits = {g: round(value.groups[g].visits.mean, 2) for g in value.groups}
    assert ticket == {g: round(v, 2) for g, v in botanic_truth["spend"].items()}
    assert ticket == {"detractor": 64.32, "passive": 76.30, "promoter": 76.18}
    assert visits == {g: round(v, 2) for g, v in botanic_truth["visits"].items()}
    assert visits == {"detractor": 6.91, "passive": 7.44, "promoter": 8.98}
    for g, mean in botanic_truth["value"].items():
        assert value.groups[g].value.mean == pytest.approx(mean, rel=1e-9)
    # The interval of promoters' ticket, against the t formula on the raw file.
    n, sd = botanic_truth["ticket_n"]["promoter"], botanic_truth["ticket_sd"]["promoter"]
    from scipy import stats as st

    half = st.t.ppf(0.975, n - 1) * sd / math.sqrt(n)
    assert value.groups["promoter"].ticket.high - value.groups["promoter"].ticket.mean == (
        pytest.approx(half, rel=1e-6))
    assert value.gaps[("ticket", "passive")].significant is False
    assert value.gaps[("visits", "passive")].significant is True
    assert value.driver == "frequency"
    assert value.sentence.startswith(
        "Visit frequency, not ticket, separates promoters from passives")
    assert "frequency drives the revenue gap" in value.sentence
    # The same numbers and words from the command line.
    import json
    import os
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "queries", "links", "--period", "2017-06",
                          "--months", "1"], cwd=ROOT, capture_output=True, text=True,
                         env={**os.environ, "DATABASE_URL": engine.url.render_as_string(
                             hide_password=False)}, timeout=120)
    assert out.returncode == 0, out.stderr
    section = json.loads(out.stdout)["ticket_and_visits_by_nps_group"]
    assert section["sentence"] == value.sentence and section["driver"] == "frequency"
    shown = {(r["group"], r["measure"]): round(r["mean"], 2) for r in section["groups"]}
    assert [shown[(g, "ticket")] for g in ("detractor", "passive", "promoter")] == [
        64.32, 76.30, 76.18]
    assert [shown[(g, "visits")] for g in ("detractor", "passive", "promoter")] == [
        6.91, 7.44, 8.98]
    # latin-1 decoded, not mangled: the second row's comment as a person wrote it.
    assert accented == ("Il y a très peu de caisse ouverte et le délai d'attente est "
                        "particulièrement long!!!!")


def _qualtrics_variant(tmp_path: Path) -> Path:
    """The real export, its question renamed in row 1, plus rows Qualtrics marks as non-answers."""
    rows = list(csv.reader(io.StringIO(QUALTRICS.read_text(encoding="utf-8-sig"))))
    header, texts, import_ids, real = rows[0], rows[1], rows[2], rows[3]
    header = ["Q1_renamed" if h == "Q1" else h for h in header]
    col = {h: i for i, h in enumerate(rows[0])}

    def variant(response_id: str, status: str, finished: str, answer: str) -> list[str]:
        row = list(real)
        row[col["ResponseId"]] = response_id
        row[col["Status"]] = status
        row[col["Finished"]] = finished
        row[col["Q1"]] = answer
        return row

    extra = [
        variant("R_preview", "1", "1", "9"),
        variant("R_test", "2", "1", "9"),
        variant("R_spam", "8", "1", "9"),
        variant("R_unfinished", "0", "0", "9"),
        variant("R_second", "0", "1", "10"),
    ]
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerows([header, texts, import_ids, real, *extra])
    path = tmp_path / "qualtrics_export.csv"
    path.write_text(out.getvalue(), encoding="utf-8-sig")
    return path


QUALTRICS_SOURCE = """
    [[source]]
    name = "qualtrics"
    kind = "survey"
    adapter = "qualtrics"
    location = "{location}"
    [source.columns]
    # ImportIds: stable when question ids or texts are edited in Qualtrics.
    response_id = "_recordId"
    submitted_at = "recordedDate"
    nps = "QID1"
    comment = "QID2_TEXT"
    [source.constants]
    org_unit_id = "BOTANIC"
"""


def test_real_qualtrics_export_loads_by_import_id(engine, tmp_path) -> None:
    config = _config(tmp_path, QUALTRICS_SOURCE.format(location=QUALTRICS))
    run = {r.source: r for r in run_sources(engine, load_config(config))}["qualtrics"]
    assert run.status == "success", run.error
    sr = schema.survey_response
    with engine.connect() as conn:
        rows = conn.execute(select(sr.c.response_id, sr.c.submitted_at, sr.c.nps,
                                   sr.c.comment)).all()
    real = pd.read_csv(QUALTRICS, skiprows=[1, 2])
    assert len(rows) == 1 == len(real)
    response_id, submitted, nps, comment = rows[0]
    assert response_id == real.loc[0, "ResponseId"] == "R_2YPOQ602ER1jkf1"
    assert str(submitted)[:19] == real.loc[0, "RecordedDate"] == "2017-07-18 08:28:48"
    assert nps == int(real.loc[0, "Q1"]) == 2
    assert comment == real.loc[0, "Q2"] == "Hello World!"


def test_qualtrics_non_answers_are_counted_not_loaded(engine, tmp_path) -> None:
    path = _qualtrics_variant(tmp_path)
    config = _config(tmp_path, QUALTRICS_SOURCE.format(location=path))
    run = {r.source: r for r in run_sources(engine, load_config(config))}["qualtrics"]
    assert run.status == "success", run.error
    assert run.notes["excluded_preview"] == 1
    assert run.notes["excluded_test"] == 1
    assert run.notes["excluded_spam"] == 1
    assert run.notes["excluded_unfinished"] == 1
    # read counts every answer row of the file; the excluded ones are reported apart.
    assert (run.read, run.excluded, run.unchanged, run.inserted) == (6, 4, 0, 2)
    sr = schema.survey_response
    with engine.connect() as conn:
        got = dict(conn.execute(select(sr.c.response_id, sr.c.nps)).all())
    # Column "Q1" was renamed in row 1; the ImportId QID1 still finds it.
    assert got == {"R_2YPOQ602ER1jkf1": 2, "R_second": 10}
