"""File adapters end to end: real files in tmp_path, a real sources.toml, a real database.

Each test writes small source files and the TOML config next to them, loads the org units
through an org source, runs the survey (or engagement) source with `etl.run` and asserts the
exact rows in the database. Encodings, delimiters, missing-value spellings, folders and globs,
reruns of unchanged and changed files, and Excel workbooks are covered here; bad input is in
`test_bad_input.py`.
"""

from __future__ import annotations

import codecs
import datetime as dt
import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any

import pytest
from openpyxl import Workbook
from sqlalchemy import Engine, select

from etl.config import SourcesConfig, load_config
from etl.run import RunResult, run_source, run_sources
from queries import schema
from tests.sources_kit import ORG_CSV, ORG_SOURCE

SURVEY_COLUMNS = """\
[source.columns]
response_id = "Response ID"
submitted_at = "Submitted"
org_unit_id = "Store"
nps = "NPS"
csat = "CSAT"
ces = "CES"
interaction = "Interaction"
wait_minutes = "Wait (min)"
comment = "Comment"
[source.values.interaction]
"Self-service" = "self_service"
"Assisted" = "assisted"
"""

HEADER = ["Response ID", "Submitted", "Store", "NPS", "CSAT", "CES", "Interaction",
          "Wait (min)", "Comment"]


def source_toml(name: str, kind: str, adapter: str, location: str, body: str,
                **keys: Any) -> str:
    """One [[source]] table; `keys` are top-level scalars (JSON strings are TOML strings)."""
    lines = ["[[source]]", f"name = {json.dumps(name)}", f"kind = {json.dumps(kind)}",
             f"adapter = {json.dumps(adapter)}", f"location = {json.dumps(location)}"]
    lines += [f"{k} = {json.dumps(v)}" for k, v in keys.items()]
    return "\n".join(lines) + "\n" + body


def survey_source(location: str = "surveys/*.csv", adapter: str = "csv", **keys: Any) -> str:
    """The survey source of these tests, reading `location`."""
    return source_toml("surveys", "survey", adapter, location, SURVEY_COLUMNS, **keys)


def write_config(tmp_path: Path, *sources: str) -> SourcesConfig:
    """Write org.csv and sources.toml (org source first) into tmp_path and load the config."""
    (tmp_path / "org.csv").write_text(ORG_CSV, encoding="utf-8")
    (tmp_path / "sources.toml").write_text("\n".join([ORG_SOURCE, *sources]), encoding="utf-8")
    return load_config(tmp_path / "sources.toml")


def run_all(engine: Engine, config: SourcesConfig) -> dict[str, RunResult]:
    """Run every source (org first) and check the org units loaded."""
    results = {r.source: r for r in run_sources(engine, config)}
    assert results["org"].status == "success", results["org"]
    assert results["org"].inserted == 4
    return results


def csv_text(rows: list[list[str]], delimiter: str = ",") -> str:
    """Header plus rows joined by `delimiter`; cells containing it must be pre-quoted."""
    return "".join(delimiter.join(r) + "\n" for r in [HEADER, *rows])


def write(path: Path, data: str | bytes, encoding: str = "utf-8") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data if isinstance(data, bytes) else data.encode(encoding))
    return path


def responses(engine: Engine) -> list[tuple]:
    """The survey_response rows as (response_id, submitted_at, org unit, nps, csat, ces,
    interaction, wait_minutes, comment), ordered by response id."""
    t = schema.survey_response
    with engine.connect() as conn:
        rows = conn.execute(
            select(t.c.response_id, t.c.submitted_at, t.c.org_unit_id, t.c.nps, t.c.csat,
                   t.c.ces, t.c.interaction, t.c.wait_minutes, t.c.comment)
            .order_by(t.c.response_id)
        ).all()
    return [tuple(r) for r in rows]


def whole_table(engine: Engine, table: Any) -> list[tuple]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(select(table).order_by(*table.primary_key))]


def quarantine(engine: Engine) -> list[tuple]:
    q = schema.quarantine
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(
            select(q.c.file, q.c.line, q.c.field, q.c.value, q.c.reason).order_by(q.c.id))]


def at(day: int, hour: int = 10, minute: int = 0) -> dt.datetime:
    return dt.datetime(2024, 1, day, hour, minute)


# --- encodings ---------------------------------------------------------------------------

ENC_ROWS = [
    ["R1", "2024-01-05 10:30", "S01", "9", "5", "2", "Assisted", "4.5", '"Très bien, merci"'],
    ["R2", "2024-01-06 11:00", "S02", "6", "3", "4", "Self-service", "", "Über-freundlich"],
    ["R3", "2024-01-07 12:15", "S01", "10", "4", "1", "", "0", "Paid £12.50 - fair"],
]
ENC_EXPECTED = [
    ("R1", at(5, 10, 30), "S01", 9, 5, 2, "assisted", 4.5, "Très bien, merci"),
    ("R2", at(6, 11), "S02", 6, 3, 4, "self_service", None, "Über-freundlich"),
    ("R3", at(7, 12, 15), "S01", 10, 4, 1, None, 0.0, "Paid £12.50 - fair"),
]
EURO_ROW = ["R4", "2024-01-08 09:00", "S02", "3", "2", "6", "Assisted", "15", "Cost €4 – too much"]
EURO_EXPECTED = ("R4", at(8, 9), "S02", 3, 2, 6, "assisted", 15.0, "Cost €4 – too much")


@pytest.mark.parametrize(
    ("config_encoding", "codec", "euro"),
    [
        ("utf-8", "utf-8", True),
        ("utf-8", "utf-8-sig", True),  # BOM: must not become part of "Response ID"
        ("latin-1", "latin-1", False),  # no € in latin-1
        ("cp1252", "cp1252", True),
    ],
    ids=["utf-8", "utf-8-bom", "latin-1", "cp1252"],
)
def test_encodings_load_identical_values(engine: Engine, tmp_path: Path, config_encoding: str,
                                         codec: str, euro: bool) -> None:
    rows = [*ENC_ROWS, EURO_ROW] if euro else ENC_ROWS
    path = write(tmp_path / "surveys" / "s.csv", csv_text(rows), codec)
    data = path.read_bytes()
    # The files really differ: é is one byte in latin-1/cp1252, two in UTF-8; the BOM is there.
    assert data.startswith(codecs.BOM_UTF8) == (codec == "utf-8-sig")
    assert (b"Tr\xe8s" in data) == (codec in ("latin-1", "cp1252"))
    config = write_config(tmp_path, survey_source(encoding=config_encoding))

    result = run_all(engine, config)["surveys"]

    assert quarantine(engine) == []
    assert (result.status, result.read, result.inserted, result.quarantined) == (
        "success", len(rows), len(rows), 0)
    assert responses(engine) == [*ENC_EXPECTED, *([EURO_EXPECTED] if euro else [])]
    assert quarantine(engine) == []


# --- delimiters --------------------------------------------------------------------------

def _delimited_rows(sep: str, decimal: str) -> list[list[str]]:
    # A quoted comment holding the other delimiters, and a multi-line quoted comment.
    other = ";" if sep == "," else ","
    return [
        ["R1", "2024-01-05 10:30", "S01", "9", "5", "2", "Assisted", f"4{decimal}5",
         f'"Quick{other} friendly{sep} thanks"'],
        ["R2", "2024-01-06 11:00", "S02", "7", "4", "3", "Self-service", f"12{decimal}25",
         '"two\nlines"'],
        ["R3", "2024-01-07 12:15", "S01", "0", "1", "7", "Assisted", "3", "ok"],
    ]


@pytest.mark.parametrize(
    ("sep", "decimal", "configured"),
    [(",", ".", None), (";", ",", None), ("\t", ".", None), ("\t", ",", None), (";", ",", ";")],
    ids=["comma-sniffed", "semicolon-sniffed", "tab-sniffed", "tab-decimal-comma-sniffed",
         "semicolon-explicit"],
)
def test_delimiters_sniffed_or_configured(engine: Engine, tmp_path: Path, sep: str,
                                          decimal: str, configured: str | None) -> None:
    write(tmp_path / "surveys" / "s.csv", csv_text(_delimited_rows(sep, decimal), sep))
    keys = {"delimiter": configured} if configured else {}
    config = write_config(tmp_path, survey_source(**keys))
    assert config.get("surveys").delimiter == configured

    result = run_all(engine, config)["surveys"]

    assert (result.status, result.inserted, result.quarantined) == ("success", 3, 0)
    other = ";" if sep == "," else ","
    assert responses(engine) == [
        ("R1", at(5, 10, 30), "S01", 9, 5, 2, "assisted", 4.5,
         f"Quick{other} friendly{sep} thanks"),
        ("R2", at(6, 11), "S02", 7, 4, 3, "self_service", 12.25, "two\nlines"),
        ("R3", at(7, 12, 15), "S01", 0, 1, 7, "assisted", 3.0, "ok"),
    ]


def test_semicolon_file_with_a_decimal_comma_in_every_row_is_not_sniffed_as_comma(
        engine: Engine, tmp_path: Path) -> None:
    # Every row has exactly one comma (the decimal one): a frequency-based sniffer may take
    # the comma for the delimiter once there are enough rows; the header has none.
    rows = [[f"R{i:02d}", f"2024-01-{i:02d} 09:00", "S01", "8", "4", "3", "Assisted",
             f"{i},5", "fine"] for i in range(1, 31)]
    write(tmp_path / "surveys" / "s.csv", csv_text(rows, ";"))
    config = write_config(tmp_path, survey_source())

    result = run_all(engine, config)["surveys"]

    assert (result.status, result.inserted, result.quarantined) == ("success", 30, 0)
    assert [(r[0], r[7]) for r in responses(engine)] == [
        (f"R{i:02d}", i + 0.5) for i in range(1, 31)]


# --- missing values and column names -----------------------------------------------------

def test_na_spellings_are_null_and_columns_match_ignoring_case_and_spaces(
        engine: Engine, tmp_path: Path) -> None:
    header = "  response   ID ,SUBMITTED, store ,nps , Csat,ces,INTERACTION,wait  (MIN),comment\n"
    text = header + (
        "R1,2024-01-05 10:30,S01, 9 ,NA,N/A,-,,NA\n"
        "R2,2024-01-06 11:00,S02,-,4,,N/A,NA,-\n"
        "R3,2024-01-07 12:15,S01,,,3,,-,\n"
        "R4,2024-01-08 09:00,S02,N/A,-,NA,NA,N/A,N/A\n"
    )
    # R4 has no score at all once NA is missing: it loads with no score (not as zeros) and
    # counts in no metric.
    write(tmp_path / "surveys" / "s.csv", text)
    config = write_config(tmp_path, survey_source())

    result = run_all(engine, config)["surveys"]

    assert (result.read, result.inserted, result.quarantined) == (4, 4, 0)
    assert result.notes["rows_without_score"] == 1
    assert responses(engine) == [
        ("R1", at(5, 10, 30), "S01", 9, None, None, None, None, None),
        ("R2", at(6, 11), "S02", None, 4, None, None, None, None),
        ("R3", at(7, 12, 15), "S01", None, None, 3, None, None, None),
        ("R4", at(8, 9), "S02", None, None, None, None, None, None),
    ]
    assert quarantine(engine) == []


def test_timestamps_with_utc_offset_become_local_time(
        engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Times are stored as naive local times of CX_TIMEZONE; an offset-carrying export (APIs,
    # Qualtrics "...Z") must be converted, not crash the run or keep the UTC wall clock.
    from queries.settings import get_settings

    monkeypatch.setenv("CX_TIMEZONE", "Europe/London")
    get_settings.cache_clear()
    rows = [["Z1", "2024-07-05T10:30:00Z", "S01", "9", "", "", "", "", ""],  # BST: +1 h
            ["P2", "2024-07-05T10:30:00+02:00", "S01", "8", "", "", "", "", ""],
            ["W3", "2024-01-05T10:30:00.000Z", "S01", "7", "", "", "", "", ""],  # GMT
            ["N4", "2024-07-05 10:30", "S01", "6", "", "", "", "", ""]]  # already local
    write(tmp_path / "surveys" / "s.csv", csv_text(rows))
    config = write_config(tmp_path, survey_source())
    try:
        result = run_all(engine, config)["surveys"]
    finally:
        get_settings.cache_clear()

    assert (result.status, result.inserted, result.quarantined) == ("success", 4, 0)
    assert [(r[0], r[1]) for r in responses(engine)] == [
        ("N4", dt.datetime(2024, 7, 5, 10, 30)),
        ("P2", dt.datetime(2024, 7, 5, 9, 30)),
        ("W3", dt.datetime(2024, 1, 5, 10, 30)),
        ("Z1", dt.datetime(2024, 7, 5, 11, 30)),
    ]


# --- folders, globs, reruns --------------------------------------------------------------

FILE_A = [["R1", "2024-01-05 10:30", "S01", "9", "5", "2", "Assisted", "4", "a"],
          ["R2", "2024-01-06 11:00", "S02", "6", "3", "4", "Self-service", "", "b"]]
FILE_B = [["R3", "2024-02-07 12:15", "S01", "10", "4", "1", "", "0", "c"]]
AB_EXPECTED = [
    ("R1", at(5, 10, 30), "S01", 9, 5, 2, "assisted", 4.0, "a"),
    ("R2", at(6, 11), "S02", 6, 3, 4, "self_service", None, "b"),
    ("R3", dt.datetime(2024, 2, 7, 12, 15), "S01", 10, 4, 1, None, 0.0, "c"),
]


@pytest.mark.parametrize(
    ("location", "ignored"),
    [("surveys", ".~lock.a.csv#"), ("surveys/*.csv", "readme.txt")],
    ids=["folder", "glob"],
)
def test_folder_and_glob_load_every_file_and_rerun_skips_unchanged(
        engine: Engine, tmp_path: Path, location: str, ignored: str) -> None:
    write(tmp_path / "surveys" / "a.csv", csv_text(FILE_A))
    write(tmp_path / "surveys" / "b.csv", csv_text(FILE_B))
    # Not a source file: a hidden lock file in a folder, a non-matching name in a glob.
    write(tmp_path / "surveys" / ignored, b"\x00\xffnot a survey")
    config = write_config(tmp_path, survey_source(location))

    first = run_all(engine, config)["surveys"]

    assert (first.status, first.read, first.inserted, first.updated) == ("success", 3, 3, 0)
    assert responses(engine) == AB_EXPECTED
    with engine.connect() as conn:
        files = conn.execute(select(schema.source_file.c.path)
                             .where(schema.source_file.c.source != "org")
                             .order_by(schema.source_file.c.path)).scalars().all()
    assert files == [str(tmp_path / "surveys" / "a.csv"), str(tmp_path / "surveys" / "b.csv")]
    before = whole_table(engine, schema.survey_response)

    again = run_source(engine, config.get("surveys"))

    assert again.status == "success"
    assert again.notes.get("files_unchanged") == 2
    assert (again.read, again.inserted, again.updated) == (0, 0, 0)
    assert whole_table(engine, schema.survey_response) == before
    assert quarantine(engine) == []


def test_changed_file_reloads_as_update(engine: Engine, tmp_path: Path) -> None:
    a = write(tmp_path / "surveys" / "a.csv", csv_text(FILE_A))
    write(tmp_path / "surveys" / "b.csv", csv_text(FILE_B))
    config = write_config(tmp_path, survey_source())
    run_all(engine, config)
    assert responses(engine) == AB_EXPECTED

    changed = [FILE_A[0], [*FILE_A[1][:3], "8", *FILE_A[1][4:]],  # R2: NPS 6 -> 8
               ["R4", "2024-01-09 08:00", "S02", "2", "1", "5", "Assisted", "30", "d"]]
    write(a, csv_text(changed))
    result = run_source(engine, config.get("surveys"))

    assert (result.status, result.read, result.inserted, result.updated) == ("success", 3, 1, 1)
    assert result.notes.get("files_unchanged") == 1  # b.csv
    assert result.unchanged == 1  # R1
    assert responses(engine) == [
        AB_EXPECTED[0],
        ("R2", at(6, 11), "S02", 8, 3, 4, "self_service", None, "b"),
        AB_EXPECTED[2],
        ("R4", at(9, 8), "S02", 2, 1, 5, "assisted", 30.0, "d"),
    ]


def test_a_file_of_the_same_size_and_time_is_not_read_again(engine: Engine,
                                                               tmp_path: Path) -> None:
    """Unchanged exports are recognised by size and modification time without reading them
    (gigabytes on every run otherwise); a touched file is hashed, and reloaded only when its
    bytes changed."""
    a = write(tmp_path / "surveys" / "a.csv", csv_text(FILE_A))
    config = write_config(tmp_path, survey_source())
    run_all(engine, config)
    stat = a.stat()
    sf = schema.source_file

    def seen() -> tuple:
        with engine.connect() as conn:
            return tuple(conn.execute(select(sf.c.size, sf.c.mtime_ns).where(
                sf.c.path == str(a))).one())

    assert seen() == (stat.st_size, stat.st_mtime_ns)
    # Same bytes, a new time (copied again, touched): hashed, found unchanged, its new time
    # remembered.
    os.utime(a, ns=(stat.st_atime_ns, stat.st_mtime_ns + 5_000_000_000))
    touched = run_source(engine, config.get("surveys"))
    assert (touched.read, touched.notes.get("files_unchanged")) == (0, 1)
    assert seen() == (stat.st_size, stat.st_mtime_ns + 5_000_000_000)
    # R2's NPS 6 -> 8: the same size. With its time put back the file counts as unchanged
    # (what make and rsync assume too); once its time moves, it is read and updated.
    changed = [FILE_A[0], [*FILE_A[1][:3], "8", *FILE_A[1][4:]], *FILE_A[2:]]
    write(a, csv_text(changed))
    assert a.stat().st_size == stat.st_size
    os.utime(a, ns=(stat.st_atime_ns, stat.st_mtime_ns + 5_000_000_000))
    assert run_source(engine, config.get("surveys")).read == 0
    assert responses(engine)[1][3] == 6
    os.utime(a, ns=(stat.st_atime_ns, stat.st_mtime_ns + 9_000_000_000))
    moved = run_source(engine, config.get("surveys"))
    assert (moved.read, moved.updated) == (2, 1)
    assert responses(engine)[1][3] == 8


# --- Excel ------------------------------------------------------------------------------

ENGAGEMENT_BODY = """\
[source.columns]
respondent = "Employee ID"
org_unit_id = "Store"
wave = "Wave"
enps = "eNPS"
[source.items]
manager = "My manager supports me"
growth = "I can grow here"
"""
ENG_HEADER = ["Employee ID", "Store", "Wave", "eNPS", "My manager supports me",
              "I can grow here"]


def write_xlsx(path: Path, rows: list[list[Any]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    wb = Workbook()
    ws = wb.active
    ws.title = "Wave"
    for row in [ENG_HEADER, *rows]:
        ws.append(row)
    wb.save(path)
    return path


def engagement(engine: Engine) -> list[tuple]:
    """(respondent_key, wave, org unit, enps, {item: score}) ordered by unit and eNPS."""
    r, s = schema.engagement_response, schema.engagement_score
    with engine.connect() as conn:
        heads = conn.execute(select(r.c.id, r.c.respondent_key, r.c.wave, r.c.org_unit_id,
                                    r.c.enps)).all()
        scores = conn.execute(select(s.c.response_pk, s.c.item, s.c.score)).all()
    items: dict[int, dict[str, int]] = {}
    for pk, item, score in scores:
        items.setdefault(pk, {})[item] = score
    out = [(key, wave, unit, enps, items.get(pk, {})) for pk, key, wave, unit, enps in heads]
    return sorted(out, key=lambda t: (str(t[1]), t[2], t[3]))


def _check_keys(rows: list[tuple], raw_ids: list[str]) -> None:
    for key in {row[0] for row in rows}:
        assert re.fullmatch(r"[0-9a-f]{40}", key), key
        assert key not in raw_ids
        # Salted: not the plain hash of an id either (those are guessable from a staff list).
        assert all(not hashlib.sha256(i.encode()).hexdigest().startswith(key) for i in raw_ids)


def test_excel_engagement_wave_hashes_respondents_and_stores_items(
        engine: Engine, tmp_path: Path) -> None:
    march = dt.datetime(2024, 3, 1)
    write_xlsx(tmp_path / "engagement" / "wave.xlsx", [
        ["E100", "S01", march, 9, 5, 4],
        ["E101", "S01", march, 6, 3, 2],
        [102, "S02", march, 10, 4, None],  # numeric id; a skipped item is no score row
    ])
    config = write_config(tmp_path, source_toml(
        "engagement", "engagement", "excel", "engagement/wave.xlsx", ENGAGEMENT_BODY,
        respondent_salt="pepper-3a8d0c41f29e7b65"))

    result = run_all(engine, config)["engagement"]

    assert (result.status, result.read, result.inserted, result.quarantined) == (
        "success", 3, 3, 0)
    rows = engagement(engine)
    _check_keys(rows, ["E100", "E101", "102"])
    assert len({row[0] for row in rows}) == 3
    wave = dt.date(2024, 3, 1)
    assert [row[1:] for row in rows] == [
        (wave, "S01", 6, {"manager": 3, "growth": 2}),
        (wave, "S01", 9, {"manager": 5, "growth": 4}),
        (wave, "S02", 10, {"manager": 4}),
    ]
    assert quarantine(engine) == []


def test_file_adapter_picks_csv_or_excel_by_extension(engine: Engine, tmp_path: Path) -> None:
    write(tmp_path / "waves" / "2024-03.csv",
          ",".join(ENG_HEADER) + "\nE100,S01,2024-03-01,9,5,4\nE101,S02,2024-03-01,3,2,1\n")
    write_xlsx(tmp_path / "waves" / "2024-06.xlsx", [
        ["E100", "S01", dt.date(2024, 6, 1), 10, 5, 5],
    ])
    config = write_config(tmp_path, source_toml(
        "engagement", "engagement", "file", "waves/*", ENGAGEMENT_BODY))

    result = run_all(engine, config)["engagement"]

    assert (result.status, result.read, result.inserted, result.quarantined) == (
        "success", 3, 3, 0)
    rows = engagement(engine)
    _check_keys(rows, ["E100", "E101"])
    assert [row[1:] for row in rows] == [
        (dt.date(2024, 3, 1), "S01", 9, {"manager": 5, "growth": 4}),
        (dt.date(2024, 3, 1), "S02", 3, {"manager": 2, "growth": 1}),
        (dt.date(2024, 6, 1), "S01", 10, {"manager": 5, "growth": 5}),
    ]
    # One person, two waves: the same key, so trends per respondent stay possible.
    assert rows[0][0] == rows[2][0]
    with engine.connect() as conn:
        files = conn.execute(select(schema.source_file.c.path)
                             .where(schema.source_file.c.source != "org")
                             .order_by(schema.source_file.c.path)).scalars().all()
    assert files == [str(tmp_path / "waves" / "2024-03.csv"),
                     str(tmp_path / "waves" / "2024-06.xlsx")]
