"""Exports nobody here made load right: CRLF and UTF-16 files, re-exports, mostly-bad files,
other rating scales, label-coded items, per-column "n/a", and no employee id kept anywhere.

Every file is written here; expected values are computed from the same rows with pandas or by
hand. Each test runs on SQLite and, with TEST_DATABASE_URL, on PostgreSQL.
"""

from __future__ import annotations

import io
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import Engine, case, func, select

from etl.config import ConfigError, load_config
from etl.run import run_source, run_sources
from queries import schema
from queries.health import freshness, quarantine_counts
from queries.settings import ROOT, get_settings
from tests.sources_kit import ORG_CSV, ORG_SOURCE

SURVEY = """\
[[source]]
name = "survey"
kind = "survey"
adapter = "csv"
location = "{location}"
{extra}
[source.columns]
response_id = "Response ID"
submitted_at = "Submitted"
org_unit_id = "Store"
nps = "Recommend (0-10)"
{columns}
"""


def setup(tmp_path: Path, *sources: str):
    (tmp_path / "org.csv").write_text(ORG_CSV, encoding="utf-8")
    path = tmp_path / "sources.toml"
    path.write_text("\n".join([ORG_SOURCE, *sources]), encoding="utf-8")
    return load_config(path)


def survey(location: str, columns: str = "", extra: str = "") -> str:
    return SURVEY.format(location=location, columns=columns, extra=extra)


def run(engine: Engine, config) -> dict:
    results = {r.source: r for r in run_sources(engine, config)}
    assert results["org"].status == "success"
    return results


def cli(engine: Engine, tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "DATABASE_URL": engine.url.render_as_string(hide_password=False),
           "CX_SOURCES": str(tmp_path / "sources.toml"), "CX_DATA_DIR": str(tmp_path / "data")}
    return subprocess.run([sys.executable, "-m", "etl", *args], cwd=ROOT, env=env, text=True,
                          capture_output=True, timeout=120)


def rows_of(engine: Engine, *cols: str) -> list[tuple]:
    sr = schema.survey_response
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(
            select(*[sr.c[c] for c in cols]).order_by(sr.c.response_id))]


# --- 1. CRLF, ';', latin-1; UTF-16 with TABs ---------------------------------------------

FR_ROWS = [["R1", "2024-01-05 10:30", "S01", "9", "Très bien; rien à dire"],
           ["R2", "2024-01-06 11:00", "S02", "4", "Caisse fermée"],
           ["R3", "2024-01-07 12:15", "S01", "10", ""]]


def _delimited(rows: list[list[str]], sep: str, header=("Response ID", "Submitted", "Store",
                                                       "Recommend (0-10)", "Commentaire")):
    out = io.StringIO()
    pd.DataFrame(rows, columns=list(header)).to_csv(out, sep=sep, index=False,
                                                    lineterminator="\r\n")
    return out.getvalue()


@pytest.mark.parametrize("kind", ["crlf-semicolon-latin1", "utf16-tab"])
def test_excel_exports_load_without_a_delimiter_key(engine: Engine, tmp_path: Path,
                                                    kind: str) -> None:
    if kind == "crlf-semicolon-latin1":
        data = _delimited(FR_ROWS, ";").encode("latin-1")
        extra = 'encoding = "latin-1"'
    else:
        data = _delimited(FR_ROWS, "\t").encode("utf-16")  # BOM + UTF-16-LE, as Excel writes
        extra = ""  # the BOM says UTF-16 whatever `encoding` says
    assert b"\r\n" in data.replace(b"\x00", b"")
    (tmp_path / "export.csv").write_bytes(data)
    config = setup(tmp_path, survey("export.csv", 'comment = "Commentaire"', extra))

    result = run(engine, config)["survey"]

    assert (result.status, result.read, result.inserted) == ("success", 3, 3), result.error
    assert rows_of(engine, "response_id", "org_unit_id", "nps", "comment") == [
        ("R1", "S01", 9, "Très bien; rien à dire"), ("R2", "S02", 4, "Caisse fermée"),
        ("R3", "S01", 10, None)]


def test_undetectable_delimiter_is_named_in_the_error(engine: Engine, tmp_path: Path) -> None:
    # Both ',' and ';' in the header and no consistent pattern below: guessing ',' silently
    # used to turn such files into one column.
    (tmp_path / "odd.csv").write_bytes(b"Response ID;Submitted,Store;x\r\na,b;c\r\nd;e;f,g,h\r\n")
    config = setup(tmp_path, survey("odd.csv"))

    result = run(engine, config)["survey"]

    assert result.status == "failed"
    assert "could not detect the delimiter" in result.error
    assert "set `delimiter`" in result.error


# --- 2. a re-exported file quarantines its bad rows once -------------------------------------

HEAD = "Response ID,Submitted,Store,Recommend (0-10)\r\n"


def _export(rows: list[tuple[str, str, int]]) -> str:
    return HEAD + "".join(f"{r},2024-02-0{1 + i % 9} 10:00,{s},{n}\r\n"
                          for i, (r, s, n) in enumerate(rows))


def test_reexported_file_keeps_one_quarantine_record_per_bad_row(engine: Engine,
                                                                 tmp_path: Path) -> None:
    good = [(f"G{i}", "S01", 9) for i in range(5)]
    bad = [(f"B{i}", "S99", 3) for i in range(10)]  # unknown store: the row cannot load
    path = tmp_path / "export.csv"
    path.write_text(_export(good + bad))
    config = setup(tmp_path, survey("export.csv"))

    counts = []
    for rows in ([*good, *bad],
                 [*good, *bad, ("G5", "S02", 7)],                          # one row added
                 [*reversed(bad), ("G5", "S02", 7), *good, ("G6", "S01", 10)]):  # moved
        path.write_text(_export(rows))
        result = run(engine, config)["survey"]
        assert result.quarantined == 10
        with engine.connect() as conn:
            counts.append(int(quarantine_counts(conn)["rows"].sum()))
    assert counts == [10, 10, 10]

    # Three bad rows fixed in the next export: they load and leave quarantine.
    fixed = [(r, "S02" if r in ("B0", "B1", "B2") else s, n) for r, s, n in bad]
    path.write_text(_export([*good, *fixed]))
    result = run(engine, config)["survey"]
    assert (result.inserted, result.quarantined) == (3, 7)
    q = schema.quarantine
    with engine.connect() as conn:
        left = sorted(json.loads(r)["Response ID"] for r in
                      conn.execute(select(q.c.raw)).scalars())
    assert left == [f"B{i}" for i in range(3, 10)]
    status = cli(engine, tmp_path, "status")
    assert status.returncode == 0, status.stderr
    line = next(ln for ln in status.stdout.splitlines() if ln.startswith("survey"))
    assert line.split()[-1] == "7"  # quarantined rows now, not one per run


def test_keyless_bad_row_is_matched_by_content(engine: Engine, tmp_path: Path) -> None:
    path = tmp_path / "export.csv"
    rows = "R1,2024-02-01 10:00,S01,9\r\n,2024-02-02 10:00,S01,8\r\n"
    path.write_text(HEAD + rows)
    config = setup(tmp_path, survey("export.csv"))
    run(engine, config)
    path.write_text(HEAD + "R0,2024-02-03 10:00,S02,5\r\n" + rows)  # moved one line down
    result = run(engine, config)["survey"]
    assert result.quarantined == 1
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(schema.quarantine)).scalar() == 1


# --- 3. a mostly rejected batch is a warning; a bad optional value keeps the row -------------

def test_mostly_bad_batch_warns_and_keeps_valid_nps(engine: Engine, tmp_path: Path) -> None:
    # A 1-10 satisfaction column mapped to `csat` (1-5): 92 of 100 answers are out of range.
    sat = [6 + i % 5 for i in range(92)] + [1 + i % 5 for i in range(8)]
    nps = [(i * 7) % 11 for i in range(100)]
    frame = pd.DataFrame({"Response ID": [f"R{i:03d}" for i in range(100)],
                          "Submitted": "2024-03-04 09:00", "Store": "S01",
                          "Recommend (0-10)": nps, "Sat (1-10)": sat})
    frame.to_csv(tmp_path / "export.csv", index=False)
    setup(tmp_path, survey("export.csv", 'csat = "Sat (1-10)"'))

    out = cli(engine, tmp_path, "run")

    assert out.returncode == 1, out.stdout + out.stderr
    line = next(ln for ln in out.stdout.splitlines() if ln.startswith("survey"))
    assert line.split()[:9] == ["survey", "warning", "100", "0", "0", "100", "0", "0", "92"]
    assert "92 of 100 rows (92.0%)" in out.stdout
    assert "above max_quarantine_share 5%" in out.stdout
    assert "      92  csat (column 'Sat (1-10)'): out of range (expected 1..5)" in out.stdout
    # Every NPS answer loaded: the bad CSAT values did not take the rows with them.
    loaded = rows_of(engine, "nps", "csat")
    assert [n for n, _ in loaded] == [int(v) for v in frame.sort_values("Response ID")[
        "Recommend (0-10)"]]
    assert sorted(c for _, c in loaded if c is not None) == sorted(sat[92:])
    status = cli(engine, tmp_path, "status")
    assert " warning " in status.stdout and "max_quarantine_share" in status.stdout
    with engine.connect() as conn:
        [fresh] = [f for f in freshness(conn) if f.source == "survey"]
    assert fresh.warning and not fresh.failed


def test_max_quarantine_share_is_configurable(engine: Engine, tmp_path: Path) -> None:
    (tmp_path / "export.csv").write_text(
        HEAD + "R1,2024-02-01 10:00,S01,9\r\nR2,2024-02-01 10:00,S99,9\r\n")
    config = setup(tmp_path, survey("export.csv", extra="max_quarantine_share = 0.5"))
    assert run(engine, config)["survey"].status == "success"  # 1 of 2 is not above 50%


# --- 5. messages name the source column; empty values print as (empty) ---------------------

def test_quarantine_names_the_column_and_prints_empty_values(engine: Engine,
                                                            tmp_path: Path) -> None:
    (tmp_path / "export.csv").write_text(
        HEAD + "R1,2024-02-01 10:00,S01,11\r\n,2024-02-01 10:00,S01,9\r\n")
    setup(tmp_path, survey("export.csv"))
    cli(engine, tmp_path, "run")

    out = cli(engine, tmp_path, "quarantine")

    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert "[column 'Recommend (0-10)' -> nps = '11']: out of range (expected 0..10)" in text
    assert "[column 'Response ID' -> response_id = (empty)]: required field is missing" in text
    assert "nan" not in text


# --- 6. excluded and unchanged rows are counted apart ----------------------------------------

def test_run_log_keeps_excluded_and_unchanged_apart(engine: Engine, tmp_path: Path) -> None:
    path = tmp_path / "export.csv"
    path.write_text(HEAD + "R1,2024-02-01 10:00,S01,9\r\nR2,2024-02-01 10:00,S01,7\r\n")
    config = setup(tmp_path, survey("export.csv"))
    run(engine, config)
    path.write_text(HEAD + "R1,2024-02-01 10:00,S01,9\r\nR2,2024-02-01 10:00,S01,8\r\n"
                    "R3,2024-02-01 10:00,S02,3\r\n")
    result = run_source(engine, config.get("survey"))
    assert (result.read, result.excluded, result.unchanged, result.inserted,
            result.updated) == (3, 0, 1, 1, 1)
    r = schema.etl_run
    with engine.connect() as conn:
        last = conn.execute(select(r.c.rows_read, r.c.rows_excluded, r.c.rows_unchanged,
                                   r.c.rows_inserted, r.c.rows_updated)
                            .order_by(r.c.id.desc()).limit(1)).one()
    assert tuple(last) == (3, 0, 1, 1, 1)


# --- 7. rating scales by config ---------------------------------------------------------------

ENGAGEMENT = """\
[[source]]
name = "hr"
kind = "engagement"
adapter = "csv"
location = "{location}"
respondent_salt = "a-real-salt-of-24-chars!"
{extra}
[source.columns]
respondent = "Employee"
org_unit_id = "Store"
wave = "Wave"
[source.items]
{items}
"""


def test_one_to_four_engagement_scale(engine: Engine, tmp_path: Path) -> None:
    from queries.kpis import wave_counts

    # IBM-HR-like 1-4 answers: favourable is 3 or 4 (top-2-box), not ">= 4".
    a = [1, 2, 3, 3, 4, 2, 3, 3, 1, 3, 4, 3, 2, 3, 3, 4, 2, 3, 1, 3]
    b = [2, 3, 3, 1, 2, 3, 4, 3, 2, 2, 3, 3, 1, 3, 4, 2, 3, 3, 2, 5]  # last: out of scale
    frame = pd.DataFrame({"Employee": [f"E{i}" for i in range(20)], "Store": "S01",
                          "Wave": "2024-03-01", "Involvement": a, "Satisfaction": b})
    frame.to_csv(tmp_path / "wave.csv", index=False)
    config = setup(tmp_path, ENGAGEMENT.format(
        location="wave.csv", extra="scale = { min = 1, max = 4, favourable = 3 }",
        items='involvement = "Involvement"\nsatisfaction = "Satisfaction"'))

    result = run(engine, config)["hr"]

    assert (result.inserted, result.quarantined, result.partial) == (20, 0, 1)
    valid_b = frame["Satisfaction"][frame["Satisfaction"] <= 4]
    expected = {"involvement": (frame["Involvement"] >= 3).mean(),
                "satisfaction": (valid_b >= 3).mean()}
    wrong = ((frame["Involvement"] >= 4).mean() + (valid_b >= 4).mean()) / 2
    with engine.connect() as conn:
        w = wave_counts(conn, wave=pd.Timestamp("2024-03-01").date(), unit="S01")
        stored = conn.execute(select(schema.engagement_score.c.scale_max).distinct()).all()
        reason = conn.execute(select(schema.quarantine.c.reason)).scalar_one()
    assert w.item_shares == pytest.approx(expected)
    engagement = 100 * sum(expected.values()) / 2
    assert engagement == pytest.approx(100 * (13 / 20 + 11 / 19) / 2)  # by hand: 61.4
    assert 100 * wrong == pytest.approx(100 * (3 / 20 + 2 / 19) / 2)  # ">= 4" showed 12.8
    assert stored == [(4,)]
    assert reason.startswith("out of range (expected 1..4)")


def test_csat_and_ces_scales_never_mix_silently(engine: Engine, tmp_path: Path) -> None:
    from queries.kpis import kpis
    from queries.periods import Month

    five = pd.DataFrame({"Response ID": [f"A{i}" for i in range(10)],
                         "Submitted": "2024-03-05 10:00", "Store": "S01",
                         "Recommend (0-10)": 9, "Sat": [1, 2, 3, 4, 5, 5, 4, 3, 4, 5],
                         "Effort": [1, 2, 3, 4, 5, 6, 7, 7, 6, 5]})
    ten = pd.DataFrame({"Response ID": [f"B{i}" for i in range(10)],
                        "Submitted": "2024-03-06 10:00", "Store": "S02",
                        "Recommend (0-10)": 8, "Sat": [1, 4, 7, 8, 9, 10, 10, 9, 8, 6],
                        "Effort": [1, 2, 3, 4, 5, 5, 4, 3, 2, 1]})
    five.to_csv(tmp_path / "five.csv", index=False)
    ten.to_csv(tmp_path / "ten.csv", index=False)
    cols = 'csat = "Sat"\nces = "Effort"'
    config = setup(
        tmp_path, survey("five.csv", cols),
        survey("ten.csv", cols).replace('name = "survey"', 'name = "survey10"') +
        "[source.scales]\ncsat = { min = 1, max = 10, favourable = 9 }\n"
        "ces = { min = 1, max = 5, favourable = 4 }\n")
    results = run(engine, config)
    assert results["survey10"].status == "success", results["survey10"].error

    with engine.connect() as conn:
        got = {k.key: k for k in kpis(conn, period=Month(2024, 3), with_yoy=False)}
    top = (five["Sat"] >= 4).sum() + (ten["Sat"] >= 9).sum()
    assert got["csat"].n == 20
    assert got["csat"].value == pytest.approx(100 * top / 20)  # 6 + 5 of 20 = 55%
    rescaled = pd.concat([five["Effort"], 1 + (ten["Effort"] - 1) * 6 / 4])
    assert got["ces"].value == pytest.approx(rescaled.mean())
    easy = (five["Effort"] >= 5).sum() + (ten["Effort"] >= 4).sum()
    assert got["ces_agree"].value == pytest.approx(100 * easy / 20)


def test_scale_config_is_checked(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"favourable \(5\) must lie in 2\.\.4"):
        setup(tmp_path, ENGAGEMENT.format(location="w.csv", items='a = "A"',
                                          extra="scale = { min = 1, max = 4, favourable = 5 }"))
    with pytest.raises(ConfigError, match=r"'scales': unknown field\(s\) \['nps'\]"):
        setup(tmp_path, survey("x.csv") + "[source.scales]\nnps = { min = 0, max = 5, "
                                          "favourable = 4 }\n")


# --- 8. value maps on items, and "n/a" for one value of one column --------------------------

def test_label_coded_items_and_per_column_not_applicable(engine: Engine, tmp_path: Path) -> None:
    levels = {"Low": 1, "Medium": 2, "High": 3, "Very_High": 4}
    frame = pd.DataFrame({
        "Employee": [f"E{i}" for i in range(8)], "Store": "S02", "Wave": "2024-06-01",
        "EnvironmentSatisfaction": ["Low", "High", "Very_High", "Medium", "High", "Very_High",
                                    "High", "Low"],
        "Overtime hours": [0, 3, 4, 0, 2, 1, 4, 0],  # 0 = not applicable on this column only
        "Manager": [0, 3, 4, 2, 1, 4, 3, 3],         # 0 here is a bad answer
    })
    frame.to_csv(tmp_path / "hr.csv", index=False)
    maps = "\n".join(f'"{k}" = {v}' for k, v in levels.items())
    config = setup(tmp_path, ENGAGEMENT.format(
        location="hr.csv", extra="scale = { min = 1, max = 4, favourable = 3 }",
        items='environment = "EnvironmentSatisfaction"\novertime = "Overtime hours"\n'
              'manager = "Manager"')
        + f"[source.values.environment]\n{maps}\n[source.values.overtime]\n0 = \"n/a\"\n")

    result = run(engine, config)["hr"]

    assert (result.inserted, result.quarantined, result.partial) == (8, 0, 1)
    es = schema.engagement_score
    with engine.connect() as conn:
        got = {item: (n, fav) for item, n, fav in conn.execute(
            select(es.c.item, func.count(), func.sum(case((es.c.score >= 3, 1), else_=0)))
            .group_by(es.c.item))}
        [(field, value)] = conn.execute(select(schema.quarantine.c.field,
                                               schema.quarantine.c.value)).all()
    env = frame["EnvironmentSatisfaction"].map(levels)
    over = frame["Overtime hours"][frame["Overtime hours"] != 0]
    mgr = frame["Manager"][frame["Manager"] != 0]
    assert got == {"environment": (8, int((env >= 3).sum())),
                   "overtime": (len(over), int((over >= 3).sum())),
                   "manager": (len(mgr), int((mgr >= 3).sum()))}
    assert (field, value) == ("items.manager", "0")


def test_per_value_na_on_a_survey_score(engine: Engine, tmp_path: Path) -> None:
    (tmp_path / "export.csv").write_text(
        "Response ID,Submitted,Store,Recommend (0-10),Effort\r\n"
        "R1,2024-02-01 10:00,S01,0,0\r\nR2,2024-02-01 10:00,S01,10,6\r\n")
    config = setup(tmp_path, survey("export.csv", 'ces = "Effort"')
                   + '[source.values.ces]\n"0" = "n/a"\n')
    result = run(engine, config)["survey"]
    assert (result.status, result.inserted, result.partial) == ("success", 2, 0)
    # NPS 0 is an answer (a detractor); CES 0 means "not applicable" in this column only.
    assert rows_of(engine, "response_id", "nps", "ces") == [("R1", 0, None), ("R2", 10, 6)]


# --- 12. answers without a score keep their comments ------------------------------------------

def test_unscored_answers_show_their_comments(engine: Engine, tmp_path: Path) -> None:
    from queries.comments import comments
    from queries.kpis import Filters

    (tmp_path / "export.csv").write_text(
        "Response ID,Submitted,Store,Recommend (0-10),Comment\r\n"
        "R1,2024-02-01 10:00,S01,9,Lovely\r\nR2,2024-02-02 10:00,S01,,No tills open\r\n"
        "R3,2024-02-03 10:00,S01,,\r\n")
    config = setup(tmp_path, survey("export.csv", 'comment = "Comment"'))
    result = run(engine, config)["survey"]
    assert (result.inserted, result.quarantined, result.notes["rows_without_score"]) == (3, 0, 2)
    with engine.connect() as conn:
        found = comments(conn, start=pd.Timestamp("2024-02-01").to_pydatetime(),
                         end=pd.Timestamp("2024-03-01").to_pydatetime(), filters=Filters())
        nps_n = conn.execute(select(func.sum(schema.agg_survey_daily.c.nps_n))).scalar()
    assert sorted(found.rows["comment"]) == ["Lovely", "No tills open"]
    assert nps_n == 1


# --- issue 14, item 4: no employee id anywhere in the database --------------------------------

def _all_text(engine: Engine) -> str:
    parts = []
    with engine.connect() as conn:
        for table in schema.metadata.sorted_tables:
            for row in conn.execute(select(table)):
                parts.extend(str(v) for v in row)
    return "\n".join(parts)


def test_no_employee_id_is_stored_even_in_quarantine(engine: Engine, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CX_DATA_DIR", str(tmp_path / "state"))
    get_settings.cache_clear()
    ids = [f"EMP-4{i:04d}7" for i in range(6)]
    text = ("Employee,Store,Wave,eNPS,Pride,Comment\n"
            f"{ids[0]},S01,2024-03-01,9,4,ok\n"
            f"{ids[1]},S99,2024-03-01,7,3,my manager Bob\n"      # unknown store: rejected
            f"{ids[2]},S01,2024-03-01,12,4,\n"                  # bad eNPS: dropped
            f"{ids[3]},S01,2024-13-01,5,2,\n"                   # bad wave: rejected
            f"{ids[4]},S02,2024-03-01,8,9,\n"                   # item out of range
            f"{ids[4]},S02,2024-03-01,8,4,duplicate\n"          # duplicate respondent
            f"{ids[5]},S02,2024-03-01,6,1,\n")
    (tmp_path / "wave.csv").write_text(text)
    config = setup(tmp_path, ENGAGEMENT.format(location="wave.csv", extra="",
                                               items='pride = "Pride"').replace(
        'respondent_salt = "a-real-salt-of-24-chars!"\n', "")
        .replace('wave = "Wave"', 'wave = "Wave"\nenps = "eNPS"\ncomment = "Comment"'))
    try:
        result = run(engine, config)["hr"]
    finally:
        get_settings.cache_clear()

    assert (result.inserted, result.quarantined) == (4, 3)
    dump = _all_text(engine)
    assert "sha256:" in dump  # quarantined rows are there, with hashed respondents
    for raw_id in ids:
        assert raw_id not in dump
    assert "my manager Bob" not in dump  # free text of a rejected employee row is not kept
    salt = tmp_path / "state" / "respondent_salt"
    assert len(salt.read_text()) >= 32
    assert stat.S_IMODE(salt.stat().st_mode) == 0o600


def test_a_guessable_salt_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"respondent_salt.*too short"):
        setup(tmp_path, ENGAGEMENT.format(location="w.csv", extra="", items='a = "A"')
              .replace("a-real-salt-of-24-chars!", "change-me"))
