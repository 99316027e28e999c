"""Bad input end to end: every kind of bad row is quarantined exactly, every unreadable file is
rejected whole, and the good rows (and good files) next to them still load.

Files are written to tmp_path with a sources.toml next to them and run through `etl.run`.
Line numbers are physical lines of the file (header = line 1): most files here carry a quoted
two-line comment on lines 3-4, so the row after it starts on line 5, not 4.
"""

from __future__ import annotations

import datetime as dt
import json
import random
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, select

from etl.config import SourcesConfig, load_config
from etl.run import RunResult, run_source, run_sources
from queries import schema
from tests.sources_kit import ORG_CSV, ORG_SOURCE, SURVEY_BODY

HEADER = ["Response ID", "Submitted", "Store", "NPS", "CSAT", "CES", "Interaction", "Comment"]
R1 = ["R1", "2024-01-05 10:30", "S01", "9", "5", "2", "Assisted", "Great"]
R2 = ["R2", "2024-01-06 11:00", "S02", "6", "3", "4", "Self-service",
      '"Friendly staff,\nbut slow tills"']  # lines 3-4
R3 = ["R3", "2024-01-07 12:15", "S02", "8", "4", "3", "Self-service", "ok"]
R4 = ["R4", "2024-01-08 09:00", "S01", "10", "", "", "Assisted", ""]

LOADED_R1 = ("R1", dt.datetime(2024, 1, 5, 10, 30), "S01", 9, 5, 2, "assisted", "Great")
LOADED_R2 = ("R2", dt.datetime(2024, 1, 6, 11), "S02", 6, 3, 4, "self_service",
             "Friendly staff,\nbut slow tills")
LOADED_R3 = ("R3", dt.datetime(2024, 1, 7, 12, 15), "S02", 8, 4, 3, "self_service", "ok")
LOADED_R4 = ("R4", dt.datetime(2024, 1, 8, 9), "S01", 10, None, None, "assisted", None)


def survey_source(location: str = "surveys/*.csv", adapter: str = "csv", extra: str = "") -> str:
    return (f'[[source]]\nname = "surveys"\nkind = "survey"\nadapter = "{adapter}"\n'
            f'location = "{location}"\n' + SURVEY_BODY + extra)


def write_config(tmp_path: Path, *sources: str) -> SourcesConfig:
    """Write org.csv and sources.toml (org source first) into tmp_path and load the config."""
    (tmp_path / "org.csv").write_text(ORG_CSV, encoding="utf-8")
    (tmp_path / "sources.toml").write_text("\n".join([ORG_SOURCE, *sources]), encoding="utf-8")
    return load_config(tmp_path / "sources.toml")


def run_all(engine: Engine, config: SourcesConfig) -> RunResult:
    """Run every source (org first); return the result of the last (non-org) one."""
    results = run_sources(engine, config)
    assert (results[0].source, results[0].status, results[0].inserted) == ("org", "success", 4)
    return results[-1]


def csv_bytes(*rows: list[str]) -> bytes:
    return "".join(",".join(r) + "\n" for r in [HEADER, *rows]).encode()


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def responses(engine: Engine) -> list[tuple]:
    t = schema.survey_response
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(
            select(t.c.response_id, t.c.submitted_at, t.c.org_unit_id, t.c.nps, t.c.csat,
                   t.c.ces, t.c.interaction, t.c.comment).order_by(t.c.response_id))]


def quarantine(engine: Engine) -> list[dict[str, Any]]:
    q = schema.quarantine
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(
            select(q.c.source, q.c.file, q.c.line, q.c.field, q.c.value, q.c.reason, q.c.raw)
            .order_by(q.c.id)).mappings()]


def assert_quarantined(engine: Engine, expected: list[tuple]) -> list[dict[str, Any]]:
    """Quarantine holds exactly `expected`: (file, line, field, value, reason fragment)."""
    rows = quarantine(engine)
    assert [(r["file"], r["line"], r["field"], r["value"]) for r in rows] == [
        e[:4] for e in expected]
    for row, (*_, fragment) in zip(rows, expected, strict=True):
        assert fragment in row["reason"], (fragment, row["reason"])
    return rows


# --- one bad row among good ones ---------------------------------------------------------

def _with(row: list[str], **cells: str) -> list[str]:
    names = {"response_id": 0, "submitted": 1, "store": 2, "nps": 3, "csat": 4, "ces": 5,
             "interaction": 6, "comment": 7}
    out = list(row)
    for name, value in cells.items():
        out[names[name]] = value
    return out


# (bad row, field, value, reason fragment); NPS-only rows also check that a bad score does not
# add a second, misleading "no score" record.
ROW_CASES = {
    "required-response-id-missing": (_with(R3, response_id=""), "response_id", None,
                                     "required field is missing"),
    "required-date-missing": (_with(R3, submitted="NA"), "submitted_at", None,
                              "required field is missing"),
    "nps-out-of-range": (_with(R3, nps="11", csat="", ces=""), "nps", "11",
                         "out of range (expected 0..10)"),
    "nps-not-integer": (_with(R3, nps="7.5", csat="", ces=""), "nps", "7.5",
                        "not a whole number"),
    "nps-not-a-number": (_with(R3, nps="ten", csat="", ces=""), "nps", "ten", "not a number"),
    "csat-out-of-range": (_with(R3, csat="6"), "csat", "6", "out of range (expected 1..5)"),
    "ces-out-of-range": (_with(R3, ces="0"), "ces", "0", "out of range (expected 1..7)"),
    "date-unparseable": (_with(R3, submitted="07/13/2024 12:15"), "submitted_at",
                         "07/13/2024 12:15", "not a date in format ISO 8601"),
    "date-in-future": (_with(R3, submitted="2099-01-07 12:15"), "submitted_at",
                       "2099-01-07 12:15", "date is in the future"),
    "unknown-org-unit": (_with(R3, store="S99"), "org_unit_id", "S99",
                         "unknown org unit 'S99'"),
    "unknown-choice": (_with(R3, interaction="Phone-ish"), "interaction", "Phone-ish",
                       "unknown value 'Phone-ish'; expected one of self_service, assisted"),
}

# A bad optional value is dropped and recorded; the rest of its row loads (as this).
_R3 = LOADED_R3
DROPPED = {
    "nps-out-of-range": (*_R3[:3], None, None, None, *_R3[6:]),
    "nps-not-integer": (*_R3[:3], None, None, None, *_R3[6:]),
    "nps-not-a-number": (*_R3[:3], None, None, None, *_R3[6:]),
    "csat-out-of-range": (*_R3[:4], None, *_R3[5:]),
    "ces-out-of-range": (*_R3[:5], None, *_R3[6:]),
    "unknown-choice": (*_R3[:6], None, *_R3[7:]),
}


def test_answer_without_a_score_loads_with_its_comment(engine: Engine, tmp_path: Path) -> None:
    # An optional question left blank is not an error: the answer and its comment load,
    # counted in no metric's n.
    write(tmp_path / "surveys" / "s.csv", csv_bytes(R1, R2, _with(R3, nps="", csat="-",
                                                                  ces="N/A"), R4))
    config = write_config(tmp_path, survey_source())

    result = run_all(engine, config)

    assert (result.status, result.read, result.inserted, result.quarantined) == (
        "success", 4, 4, 0)
    assert result.notes["rows_without_score"] == 1
    assert responses(engine)[2] == (*LOADED_R3[:3], None, None, None, *LOADED_R3[6:])
    assert quarantine(engine) == []


@pytest.mark.parametrize("case", list(ROW_CASES))
def test_bad_row_is_quarantined_and_the_rest_loads(engine: Engine, tmp_path: Path,
                                                   case: str) -> None:
    bad, field, value, fragment = ROW_CASES[case]
    path = write(tmp_path / "surveys" / "s.csv", csv_bytes(R1, R2, bad, R4))
    config = write_config(tmp_path, survey_source())

    result = run_all(engine, config)

    # One row of four with a problem is 25%, above the default max_quarantine_share of 5%.
    if case in DROPPED:
        assert (result.status, result.read, result.inserted, result.quarantined,
                result.partial) == ("warning", 4, 4, 0, 1)
        assert responses(engine) == [LOADED_R1, LOADED_R2, DROPPED[case], LOADED_R4]
        assert quarantine(engine)[0]["reason"].endswith(" (value dropped, row loaded)")
    else:
        assert (result.status, result.read, result.inserted, result.quarantined) == (
            "warning", 4, 3, 1)
        assert responses(engine) == [LOADED_R1, LOADED_R2, LOADED_R4]
    [row] = assert_quarantined(engine, [(str(path), 5, field, value, fragment)])
    assert row["source"] == "surveys"
    assert json.loads(row["raw"]) == dict(zip(HEADER, bad, strict=True))


def test_each_bad_value_gets_its_own_reason(engine: Engine, tmp_path: Path) -> None:
    # Several kinds of bad value in one column of one file: each row names its own problem.
    rows = [R1, _with(R3, response_id="N1", nps="11", csat="", ces=""),
            _with(R3, response_id="N2", nps="7.5"), _with(R3, response_id="N3", nps="ten"),
            _with(R3, response_id="D1", submitted="soon"),
            _with(R3, response_id="D2", submitted="2099-05-01")]
    path = str(write(tmp_path / "surveys" / "s.csv", csv_bytes(*rows)))
    config = write_config(tmp_path, survey_source())

    result = run_all(engine, config)

    # The bad NPS values are dropped (their rows load); the bad dates reject theirs.
    assert (result.read, result.inserted, result.quarantined, result.partial) == (6, 4, 2, 3)
    assert [r[0] for r in responses(engine)] == ["N1", "N2", "N3", "R1"]
    assert_quarantined(engine, [
        (path, 3, "nps", "11", "out of range (expected 0..10)"),
        (path, 4, "nps", "7.5", "not a whole number"),
        (path, 5, "nps", "ten", "not a number"),
        (path, 6, "submitted_at", "soon", "not a date in format"),
        (path, 7, "submitted_at", "2099-05-01", "date is in the future"),
    ])
    reasons = [r["reason"] for r in quarantine(engine)]
    assert "range" not in reasons[1] and "range" not in reasons[2]
    assert "future" not in reasons[3]


def test_duplicate_key_second_occurrence_quarantined(engine: Engine, tmp_path: Path) -> None:
    dup = _with(R2, nps="0", comment="again")
    path = write(tmp_path / "surveys" / "s.csv", csv_bytes(R1, R2, R3, dup))
    config = write_config(tmp_path, survey_source())

    result = run_all(engine, config)

    assert (result.read, result.inserted, result.quarantined) == (4, 3, 1)
    assert responses(engine) == [LOADED_R1, LOADED_R2, LOADED_R3]  # R2 keeps NPS 6
    assert_quarantined(engine, [(str(path), 6, "response_id", "R2", "first seen on line 3")])


def test_unknown_org_unit_auto_created_when_configured(engine: Engine, tmp_path: Path) -> None:
    write(tmp_path / "surveys" / "s.csv", csv_bytes(R1, R2, _with(R3, store="S99"), R4))
    config = write_config(tmp_path, survey_source(
        extra='[source.auto_create_org_units]\nparent = "R1"\n'))

    result = run_all(engine, config)

    assert (result.status, result.inserted, result.quarantined) == ("success", 4, 0)
    assert result.notes.get("org_units_created") == 1
    assert quarantine(engine) == []
    assert responses(engine) == [LOADED_R1, LOADED_R2,
                                 (*LOADED_R3[:2], "S99", *LOADED_R3[3:]), LOADED_R4]
    o = schema.org_unit
    with engine.connect() as conn:
        units = conn.execute(select(o.c.id, o.c.name, o.c.kind, o.c.parent_id, o.c.source)
                             .order_by(o.c.id)).all()
    assert [tuple(u) for u in units] == [
        ("ACME", "Acme", "company", None, "org"),
        ("R1", "North", "region", "ACME", "org"),
        ("S01", "Leeds", "store", "R1", "org"),
        ("S02", "York", "store", "R1", "org"),
        ("S99", "S99", "store", "R1", "surveys"),
    ]


def test_engagement_item_out_of_range(engine: Engine, tmp_path: Path) -> None:
    text = ("Employee ID,Store,Wave,eNPS,My manager supports me,I can grow here\n"
            "E1,S01,2024-03-01,9,5,4\n"
            "E2,S01,2024-03-01,7,6,3\n"
            "E3,S02,2024-03-01,2,1,2\n")
    path = write(tmp_path / "wave" / "march.csv", text.encode())
    config = write_config(tmp_path, """\
[[source]]
name = "engagement"
kind = "engagement"
adapter = "csv"
location = "wave/march.csv"
[source.columns]
respondent = "Employee ID"
org_unit_id = "Store"
wave = "Wave"
enps = "eNPS"
[source.items]
manager = "My manager supports me"
growth = "I can grow here"
""")

    result = run_all(engine, config)

    assert (result.read, result.inserted, result.quarantined, result.partial) == (3, 3, 0, 1)
    assert_quarantined(engine, [(str(path), 3, "items.manager", "6",
                                 "out of range (expected 1..5) (value dropped, row loaded)")])
    r, s = schema.engagement_response, schema.engagement_score
    with engine.connect() as conn:
        rows = conn.execute(select(r.c.org_unit_id, r.c.enps, s.c.item, s.c.score)
                            .join(s, s.c.response_pk == r.c.id)
                            .order_by(r.c.enps, s.c.item)).all()
    assert [tuple(x) for x in rows] == [("S02", 2, "growth", 2), ("S02", 2, "manager", 1),
                                        ("S01", 7, "growth", 3),
                                        ("S01", 9, "growth", 4), ("S01", 9, "manager", 5)]


def test_ragged_rows_in_the_middle(engine: Engine, tmp_path: Path) -> None:
    # An unquoted comma early in the row shifts every later value one column to the right
    # (NPS gets " Briggate", CSAT gets "8"...); a short row lacks its scores. Each is one
    # "(row)" record, not a list of field errors blaming the wrong columns.
    longer = _with(R3, store="Leeds, Briggate")  # 9 fields
    shorter = R4[:3]  # 3 fields
    comment_comma = _with(R3, response_id="R5", comment="ok, thanks")  # 9 fields
    r6 = _with(R1, response_id="R6")
    path = str(write(tmp_path / "surveys" / "s.csv",
                     csv_bytes(R1, R2, longer, shorter, comment_comma, r6)))
    config = write_config(tmp_path, survey_source())

    result = run_all(engine, config)

    assert (result.read, result.inserted, result.quarantined) == (6, 3, 3)
    assert responses(engine) == [LOADED_R1, LOADED_R2, ("R6", *LOADED_R1[1:])]
    rows = assert_quarantined(engine, [
        (path, 5, "(row)", "9", "has 9 fields, the header has 8"),
        (path, 6, "(row)", "3", "has 3 fields, the header has 8"),
        (path, 7, "(row)", "9", "has 9 fields, the header has 8"),
    ])
    assert json.loads(rows[1]["raw"]) == {
        "Response ID": "R4", "Submitted": "2024-01-08 09:00", "Store": "S01", "NPS": None,
        "CSAT": None, "CES": None, "Interaction": None, "Comment": None}


def test_infinite_number_is_not_a_number(engine: Engine, tmp_path: Path) -> None:
    path = write(tmp_path / "s.csv", b"id,at,store,nps,wait\n"
                 b"A1,2024-01-05,S01,9,2.5\nA2,2024-01-05,S01,9,inf\nA3,2024-01-05,S01,9,1e400\n")
    config = write_config(tmp_path, """\
[[source]]
name = "surveys"
kind = "survey"
adapter = "csv"
location = "s.csv"
[source.columns]
response_id = "id"
submitted_at = "at"
org_unit_id = "store"
nps = "nps"
wait_minutes = "wait"
""")

    result = run_all(engine, config)

    assert (result.read, result.inserted, result.quarantined, result.partial) == (3, 3, 0, 2)
    t = schema.survey_response
    with engine.connect() as conn:
        assert conn.execute(select(t.c.response_id, t.c.wait_minutes).order_by(
            t.c.response_id)).all() == [("A1", 2.5), ("A2", None), ("A3", None)]
    assert_quarantined(engine, [(str(path), 3, "wait_minutes", "inf", "not a number"),
                                (str(path), 4, "wait_minutes", "1e400", "not a number")])


def test_line_numbers_are_physical_lines(engine: Engine, tmp_path: Path) -> None:
    # CRLF line ends, a blank line, and a three-line quoted comment with CRLF inside.
    text = ("\r\n".join([
        ",".join(HEADER),
        ",".join(R1),
        "",
        ",".join(_with(R2, comment='"one\r\ntwo\r\nthree"')),
        ",".join(_with(R3, nps="12", csat="", ces="")),
        ",".join(R4),
    ]) + "\r\n").encode()
    path = write(tmp_path / "surveys" / "s.csv", text)
    config = write_config(tmp_path, survey_source())

    result = run_all(engine, config)

    assert (result.read, result.inserted, result.quarantined, result.partial) == (4, 4, 0, 1)
    assert [r[0] for r in responses(engine)] == ["R1", "R2", "R3", "R4"]
    assert responses(engine)[1][-1] == "one\r\ntwo\r\nthree"
    # header 1, R1 2, blank 3, R2 4-6, bad R3 7
    assert_quarantined(engine, [(str(path), 7, "nps", "12", "out of range")])


# --- whole files rejected ----------------------------------------------------------------

GOOD_FILE = csv_bytes(_with(R1, response_id="G1"), _with(R3, response_id="G2"))
LOADED_GOOD = [("G1", *LOADED_R1[1:]), ("G2", *LOADED_R3[1:])]
LATIN1 = ("\n".join([",".join(HEADER), ",".join(R1), ",".join(_with(R3, comment="Très bien"))])
          + "\n").encode("latin-1")
LATIN1_AT = LATIN1.index("è".encode("latin-1"))
HEAD_R1_R2 = csv_bytes(R1, R2)

# name: (file name, bytes, adapter, location, reason fragments)
FILE_CASES = {
    "wrong-encoding": ("a_bad.csv", LATIN1, "csv", "surveys/*.csv",
                       [f"cannot be decoded as utf-8 (byte {LATIN1_AT}, line 3)",
                        "set `encoding`"]),
    "truncated-last-line": ("a_bad.csv", HEAD_R1_R2 + b"R3,2024-01-07 12:15,S0", "csv",
                            "surveys/*.csv",
                            ["truncated", "last record (line 5) has 3 of 8 fields"]),
    "unterminated-quote": ("a_bad.csv",
                           HEAD_R1_R2 + b'R3,2024-01-07 12:15,S02,8,4,3,Assisted,"ok\n'
                           + ",".join(R4).encode() + b"\n",
                           "csv", "surveys/*.csv",
                           ["malformed or truncated at line 6 (in the record starting on line 5)",
                            "end of data"]),
    "missing-column": ("a_bad.csv",
                       b"Response ID,Submitted,Shop,NPS,CSAT,CES,Interaction,Comment\n"
                       + ",".join(R1).encode() + b"\n",
                       "csv", "surveys/*.csv", ["missing column(s) 'Store' (for org_unit_id)"]),
    "empty-file": ("a_bad.csv", b"", "csv", "surveys/*.csv", ["file is empty"]),
    "corrupt-xlsx": ("a_bad.xlsx", random.Random(7).randbytes(3000), "file", "surveys/*",
                     ["not a readable Excel workbook"]),
}


@pytest.mark.parametrize("case", list(FILE_CASES))
def test_unreadable_file_rejected_whole_other_file_loads(engine: Engine, tmp_path: Path,
                                                         case: str) -> None:
    name, data, adapter, location, fragments = FILE_CASES[case]
    bad = write(tmp_path / "surveys" / name, data)
    good = write(tmp_path / "surveys" / "b_good.csv", GOOD_FILE)
    config = write_config(tmp_path, survey_source(location, adapter))

    result = run_all(engine, config)

    assert result.status == "failed"
    assert result.error is not None and str(bad) in result.error
    assert result.notes.get("files_rejected") == 1
    assert (result.read, result.inserted, result.quarantined) == (2, 2, 0)
    assert responses(engine) == LOADED_GOOD  # nothing of the bad file, all of the good one
    [row] = quarantine(engine)
    assert (row["source"], row["file"], row["line"], row["field"], row["value"], row["raw"]) == (
        "surveys", str(bad), None, None, None, None)
    assert row["reason"].startswith("file rejected: ")
    for fragment in fragments:
        assert fragment in row["reason"], (fragment, row["reason"])
        assert fragment in result.error
    with engine.connect() as conn:
        loaded = conn.execute(select(schema.source_file.c.path)
                              .where(schema.source_file.c.source == "surveys")).scalars().all()
    assert loaded == [str(good)]


# --- reruns ------------------------------------------------------------------------------

def test_rerun_of_file_with_bad_rows_adds_no_quarantine(engine: Engine, tmp_path: Path) -> None:
    path = write(tmp_path / "surveys" / "s.csv",
                 csv_bytes(R1, R2, _with(R3, nps="11"), R4))
    config = write_config(tmp_path, survey_source())
    run_all(engine, config)
    first = quarantine(engine)
    assert [(q["file"], q["line"], q["field"]) for q in first] == [(str(path), 5, "nps")]

    again = run_source(engine, config.get("surveys"))

    assert again.status == "success"
    assert again.notes.get("files_unchanged") == 1
    assert (again.read, again.inserted, again.updated, again.quarantined) == (0, 0, 0, 0)
    assert quarantine(engine) == first
    assert [r[0] for r in responses(engine)] == ["R1", "R2", "R3", "R4"]


def test_rerun_of_rejected_file_adds_no_quarantine(engine: Engine, tmp_path: Path) -> None:
    write(tmp_path / "surveys" / "a_bad.csv", b"")
    write(tmp_path / "surveys" / "b_good.csv", GOOD_FILE)
    config = write_config(tmp_path, survey_source())
    run_all(engine, config)
    first = quarantine(engine)
    assert len(first) == 1

    again = run_source(engine, config.get("surveys"))

    assert again.notes.get("files_unchanged") == 1  # the good file
    assert (again.read, again.inserted, again.updated) == (0, 0, 0)
    with engine.connect() as conn:
        count = conn.execute(select(func.count()).select_from(schema.quarantine)).scalar_one()
    assert count == 1
    assert responses(engine) == LOADED_GOOD
