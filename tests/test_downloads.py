"""Downloads: the file a person opens. Human headings, the precision the screen shows, no
internal columns, a name that says the view, an XLSX notes sheet, and no spreadsheet formula
smuggled in through source text (OWASP CSV injection), reproduced end to end: a survey
comment `=HYPERLINK("http://evil","x")` loaded by the ETL, downloaded from the page in real
Chromium against a running gunicorn, on SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import io
import os
import subprocess
import sys
import textwrap
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from openpyxl import load_workbook
from playwright.sync_api import Browser, Page, expect
from sqlalchemy import Engine

from dashboard.components.download import column_label, file_frame, file_name, neutralise
from queries.settings import ROOT
from tests.conftest import TEST_USERS, free_port, sign_in

EVIL = '=HYPERLINK("http://evil","x")'
# Comments as a survey export can carry them (the ETL trims outer whitespace, so a leading
# TAB or CR cannot reach a file through a comment; the rule covers them all the same).
ATTACKS = [EVIL, "+cmd|' /C calc'!A0", "-2+3+cmd|' /C calc'!A0", "@SUM(1+1)*cmd|' /C calc'!A0"]


# ------------------------------------------------------------------ the file, in pandas


def test_file_frame_rounds_names_and_drops_internal_columns() -> None:
    frame = pd.DataFrame({
        "name": ["West", "North"], "key": ["R-WEST", "R-NORTH"], "drill": ["unit", ""],
        "nps": [43.84058, -3.25], "margin_95": [8.811157, 10.06], "n": [276, 80],
        "ces": [5.20614, 5.0], "ces_moe": [0.233587, 0.2], "revenue": [76227.44, 614.71],
        "significant": [True, False],
    })
    out = file_frame(frame)
    assert list(out.columns) == ["Name", "NPS", "95% margin (±)", "n", "CES (mean 1–7)",
                                 "CES 95% margin (±)", "Revenue (£)", "Significant"]
    # NPS to 1 place (+43.8), its margin too; CES to 2; revenue a total: whole pounds.
    # -3.25 rounds half to even, as f"{-3.25:.1f}" on the screen does: -3.2.
    assert out["NPS"].tolist() == [43.8, -3.2] and f"{-3.25:.1f}" == "-3.2"
    assert out["95% margin (±)"].tolist() == [8.8, 10.1]
    assert out["CES (mean 1–7)"].tolist() == [5.21, 5.0]
    assert out["CES 95% margin (±)"].tolist() == [0.23, 0.2]
    assert out["Revenue (£)"].tolist() == [76227, 615]
    assert out["n"].tolist() == [276, 80] and out["Significant"].tolist() == [True, False]


def test_rows_of_mixed_measures_round_row_by_row() -> None:
    frame = pd.DataFrame({"kpi": ["NPS", "CES", "Revenue"], "value": [43.84058, 5.20614, 76227.4],
                          "change": [5.616641, -0.1648, -2893.2]})
    frame.attrs["row_decimals"] = [1, 2, 0]
    out = file_frame(frame)
    assert out["Value"].tolist() == [43.8, 5.21, 76227.0]
    assert out["Change"].tolist() == [5.6, -0.16, -2893.0]


def test_unit_codes_and_names_get_distinct_headings() -> None:
    assert column_label("unit", ["unit", "name"]) == "Unit code"
    assert column_label("name", ["unit", "name"]) == "Unit"
    assert column_label("unit", ["unit", "nps"]) == "Unit"
    assert column_label("csat_delta") == "CSAT change"


@pytest.mark.parametrize("cell", [*ATTACKS, "\tTAB=1+1", "\rCR=1+1", "=1+1", "-A1"])
def test_formula_cells_are_neutralised(cell: str) -> None:
    assert neutralise(cell) == "'" + cell


@pytest.mark.parametrize("cell", ["+43.8", "-0.16", "-£615", "81.7%", "£1,234", "Great",
                                  "It's =fine in the middle", ""])
def test_numbers_and_plain_text_stay_as_written(cell: str) -> None:
    assert neutralise(cell) == cell


def test_file_name_says_the_view() -> None:
    state = {"unit": "R-WEST", "period": "2026-10", "segment": "Families", "by": "channel",
             "metric": "csat", "q": "parking", "path": "x"}
    assert file_name("segments-table", state, "xlsx") == \
        "segments-table-2026-10-R-WEST-Families-by-channel-metric-csat.xlsx"
    assert file_name("health-runs", {"source": "../etc/passwd"}, "csv") == \
        "health-runs-source-.._etc_passwd.csv"


# ------------------------------------------------- the attack, end to end in the browser

ORG = "Code,Name,Level,Parent\nACME,Acme,Company,\nS01,Leeds,Store,ACME\n"
SOURCES = """
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
    Store = "store"

    [[source]]
    name = "survey"
    title = "Web survey"
    kind = "survey"
    adapter = "csv"
    location = "survey.csv"
    [source.columns]
    response_id = "id"
    submitted_at = "when"
    org_unit_id = "store"
    nps = "nps"
    csat = "csat"
    comment = "comment"
"""


@pytest.fixture
def attacked(engine: Engine, tmp_path: Path) -> Iterator[str]:
    """gunicorn serving a database whose survey comments carry spreadsheet formulas."""
    from etl.config import load_config
    from etl.run import run_sources

    (tmp_path / "org.csv").write_text(ORG)
    rows = [["R1", "2026-03-03 10:00", "S01", "2", "1", EVIL]]
    rows += [[f"R{i + 2}", f"2026-03-{4 + i:02d} 10:00", "S01", "3", "2", text]
             for i, text in enumerate(ATTACKS[1:])]
    rows += [["R9", "2026-03-20 10:00", "S01", "10", "5", "Lovely staff"]]
    with (tmp_path / "survey.csv").open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["id", "when", "store", "nps", "csat", "comment"])
        writer.writerows(rows)
    config = tmp_path / "sources.toml"
    config.write_text(textwrap.dedent(SOURCES))
    results = run_sources(engine, load_config(config))
    assert all(r.ok for r in results), results
    from auth.users import add_user

    email, role, scope, password = TEST_USERS["admin"]
    with engine.begin() as conn:
        add_user(conn, email=email, role=role, scope=scope, password=password)

    port = free_port()
    env = {**os.environ, "DATABASE_URL": engine.url.render_as_string(hide_password=False),
           "CX_SOURCES": str(config), "CX_DATA_DIR": str(tmp_path / "data"),
           "SECRET_KEY": "test-secret-key-0123456789abcdefghij", "CX_BASE_URL": f"http://127.0.0.1:{port}"}
    log = (tmp_path / "gunicorn.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "--config", str(ROOT / "gunicorn.conf.py"),
         "--bind", f"127.0.0.1:{port}", "--workers", "1", "--no-control-socket",
         "dashboard.app:server"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(base + "/healthz", timeout=2):
                break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError((tmp_path / "gunicorn.log").read_text()[-3000:]) from None
            time.sleep(0.3)
    try:
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        log.close()


def _download(page: Page, fmt: str):
    with page.expect_download() as info:
        page.locator("#drivers-comments-panel .cx-downloads button", has_text=fmt).click()
    return info.value


@pytest.mark.browser
def test_a_formula_in_a_comment_is_inert_in_csv_and_xlsx(browser: Browser,
                                                         attacked: str) -> None:
    # Signed in to this server (its own database, its own sessions) as an admin.
    http = sign_in(attacked, "admin")
    context = browser.new_context()
    context.add_cookies([{"name": c.name, "value": c.value, "domain": "127.0.0.1",
                          "path": "/"} for c in http.cookies])
    page = context.new_page()
    page.goto(attacked + "/drivers?period=2026-03&months=1&limit=20")
    expect(page.locator(".cx-comment")).to_have_count(len(ATTACKS) + 1, timeout=30_000)
    # On screen the comment is text, as the customer typed it.
    expect(page.locator(".cx-comment-text", has_text="HYPERLINK")).to_have_text(EVIL)

    got = _download(page, "CSV")
    assert got.suggested_filename == "drivers-comments-2026-03-months-1.csv"
    rows = list(csv.DictReader(io.StringIO(got.path().read_bytes().decode("utf-8"),
                                           newline="")))
    comments = {r["Comment"] for r in rows}
    # Every attack starts with an apostrophe: a spreadsheet shows it as text, runs nothing.
    assert {c for c in comments if "Lovely" not in c} == {"'" + a for a in ATTACKS}
    assert "Lovely staff" in comments
    assert not any(c.startswith(("=", "+", "-", "@", "\t", "\r")) for c in comments)

    got = _download(page, "XLSX")
    assert got.suggested_filename == "drivers-comments-2026-03-months-1.xlsx"
    book = load_workbook(io.BytesIO(got.path().read_bytes()))
    assert book.sheetnames == ["data", "about"]
    sheet = book["data"]
    header = [c.value for c in sheet[1]]
    column = header.index("Comment") + 1
    cells = [sheet.cell(row=r, column=column) for r in range(2, sheet.max_row + 1)]
    assert {c.value for c in cells} == {"'" + a for a in ATTACKS} | {"Lovely staff"}
    # Written as strings: no cell of either sheet is a formula.
    assert all(cell.data_type != "f" for ws in book for row in ws.iter_rows() for cell in row)
    assert all(c.data_type == "s" for c in cells)
    assert "key" not in header and "id" not in header

    # Three blocks: the view, the columns' definitions, the data's freshness.
    lines = [[c.value for c in r] for r in book["about"].iter_rows()]
    heads = [i for i, r in enumerate(lines) if r[0] in ("Column", "Data freshness")]
    view = {r[0]: r[1] for r in lines[:heads[0]] if r[0]}
    assert view["Period"] == "March 2026" and view["Compared with"] == "February 2026"
    assert view["Unit"] == "Whole company" and view["Channel"] == "All"
    assert view["Window (months)"] == "1"
    columns = [r[0] for r in lines[heads[0] + 1:heads[1]] if r[0]]
    assert columns == header  # every column of the data sheet is listed
    fresh = {r[0]: r[1] for r in lines[heads[1] + 1:] if r[0]}
    assert fresh["Web survey (survey)"].startswith(time.strftime("%Y-"))
    assert fresh["Org (org)"].startswith(time.strftime("%Y-"))
    context.close()
