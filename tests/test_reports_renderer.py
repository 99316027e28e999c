"""Vector PDF snapshots: scoped numbers, refused tokens, and a page that never gets ready."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from itsdangerous import URLSafeTimedSerializer

from queries.periods import Month
from queries.scope import Scope
from queries.settings import ROOT, load_settings
from reports.renderer import LoopbackServer, SnapshotError, SnapshotRenderer
from reports.token import (
    MAX_AGE_SECONDS,
    SALT,
    ReportRequest,
    TokenError,
    make_token,
    read_token,
)

pytestmark = pytest.mark.browser
PERIOD = Month(2026, 10)
STORES = {"R-NORTH": ["Leeds", "York", "Newcastle", "Manchester"],
          "R-SOUTH": ["Brighton", "Southampton", "Canterbury", "Oxford"],
          "R-WEST": ["Bristol", "Exeter", "Plymouth", "Cardiff"]}
ARTIFACTS = ROOT / "test-artifacts"


@pytest.fixture(scope="module")
def settings(demo_url: str, tmp_path_factory):
    return load_settings(_env_file=None, database_url=demo_url, secret_key="s" * 40,
                         cx_data_dir=str(tmp_path_factory.mktemp("snapdata")))


@pytest.fixture(scope="module")
def renderer(settings):
    from dashboard.app import create_app

    with LoopbackServer(create_app(settings).server) as server, \
            SnapshotRenderer(settings, ready_timeout=90, base_url=server.url) as r:
        yield r


def _text(pdf: bytes, tmp_path: Path) -> str:
    path = tmp_path / "s.pdf"
    path.write_bytes(pdf)
    assert shutil.which("pdftotext"), "pdftotext missing: apt-get install poppler-utils"
    return subprocess.run(["pdftotext", "-layout", str(path), "-"], capture_output=True,
                          text=True, check=True).stdout


def _cli(url: str, *args: str) -> dict:
    out = subprocess.run([sys.executable, "-m", "queries", "kpis", "--json", *args], cwd=ROOT,
                         env={**os.environ, "DATABASE_URL": url}, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def _shown(k: dict) -> str:
    from queries.formatting import fmt_value
    from queries.kpis import Kpi

    return fmt_value(Kpi(**{f: k[f] for f in ("key", "label", "unit", "period", "value", "n",
                                              "moe", "hidden")}))


@pytest.mark.both_backends
def test_a_region_pdf_holds_only_that_region(renderer, demo_url: str, tmp_path: Path) -> None:
    pdf = renderer.render(ReportRequest(scope=Scope.of("R-WEST"), period=PERIOD))
    assert pdf.startswith(b"%PDF-")
    text = _text(pdf, tmp_path)
    assert "CX snapshot · October 2026" in text and "Scope: West" in text
    report = _cli(demo_url, "--period", "2026-10", "--unit", "R-WEST")
    for k in report["kpis"]:
        # The table row (page 2, after the cards): the label, then a column gap.
        line = next((ln for ln in text[text.index("Every measure"):].splitlines()
                     if re.match(rf"\s*{re.escape(k['label'])}\s{{2,}}", ln)), None)
        assert line is not None, k["label"]
        assert _shown(k) in line, (k["label"], line)
        assert f"{k['n']:,}" in line
    for other in ("North", "South", *STORES["R-NORTH"], *STORES["R-SOUTH"]):
        assert other not in text, other
    assert "page 1 of" in text  # page numbers in the footer
    # Every page states its scope and filters (the running head repeats on each page).
    pages_text = text.split("\f")
    pages_text = [t for t in pages_text if t.strip()]
    assert len(pages_text) >= 2
    for i, page_text in enumerate(pages_text, 1):
        assert "Scope: West · all customers, channels and touchpoints" in page_text, i
        assert "compared with September 2026 and October 2025" in page_text, i
    # Page 1 is the one-pager: the cards and the signals; the every-measure table after.
    assert "Signals" in pages_text[0] and "Every measure" not in pages_text[0]
    assert "What detractors talk about" in pages_text[0]
    assert "Every measure" in pages_text[1]
    ARTIFACTS.mkdir(exist_ok=True)
    for old in ARTIFACTS.glob("snapshot-west-*.png"):
        old.unlink()
    (ARTIFACTS / "snapshot-west.pdf").write_bytes(pdf)
    # 1440 px wide: the width the pages are looked at and shown in the README.
    subprocess.run(["pdftoppm", "-png", "-scale-to-x", "1440", "-scale-to-y", "-1",
                    str(ARTIFACTS / "snapshot-west.pdf"), str(ARTIFACTS / "snapshot-west")],
                   check=True)
    pages = sorted(ARTIFACTS.glob("snapshot-west-*.png"))
    assert len(pages) >= 2
    shutil.copy(pages[0], ROOT / "docs" / "screenshots" / "snapshot-page1.png")
    shutil.copy(pages[1], ROOT / "docs" / "screenshots" / "snapshot-page2.png")


def test_web_pages_and_pdf_agree_on_every_shared_figure(renderer, page, served_demo: str,
                                                        tmp_path: Path) -> None:
    """The same scope on screen and on paper: every KPI row of the overview's table, the
    cards, and the revenue page's revenue at risk carry the same label and value in the PDF."""
    from tests.browser import wait_for_graphs

    page.set_viewport_size({"width": 1440, "height": 900})
    page.goto(f"{served_demo}/?period=2026-10&unit=R-WEST")
    page.wait_for_selector("#overview-table tbody tr", timeout=60_000)
    wait_for_graphs(page, ".kpi-spark")
    rows = page.eval_on_selector_all(
        "#overview-table tbody tr",
        "rs => rs.map(r => [r.dataset.kpi, ...Array.from(r.cells).map(c => c.innerText)])")
    heads = page.eval_on_selector_all("#overview-table thead th", "hs => hs.map(h => h.innerText)")
    cards = {key: (page.text_content(f"#overview-{key} .kpi-label"),
                   page.inner_text(f"#overview-{key}-value"))
             for key in ("nps", "csat", "ces", "retention", "active_members", "engagement",
                         "revenue")}
    page.goto(f"{served_demo}/revenue?period=2026-10&unit=R-WEST")
    page.wait_for_selector("#revenue-at-risk", timeout=60_000)
    # textContent: the words themselves, not the capitals CSS draws them in.
    risk = {fid: (page.text_content(f"#revenue-{fid}-label"),
                  page.text_content(f"#revenue-{fid}"))
            for fid in ("at-risk", "detractor-revenue")}
    assert risk["at-risk"][0] == "Revenue at risk"
    assert risk["detractor-revenue"][0] == "Revenue from detractors"

    pdf = renderer.render(ReportRequest(scope=Scope.of("R-WEST"), period=PERIOD))
    text = _text(pdf, tmp_path)
    lines = text[text.index("Every measure"):].splitlines()
    # The table: each measure's row has the same value, margin and changes as on screen.
    assert heads[:6] == ["Measure", "Value", "n", "95% margin", "vs September 2026",
                         "vs October 2025"]
    assert len(rows) == 15
    for key, label, value, n, margin, change, second, _note in rows:
        line = next((ln for ln in lines if re.match(rf"\s*{re.escape(label)}\s{{2,}}", ln)),
                    None)
        assert line is not None, label
        cells = re.split(r"\s{2,}", line.strip())
        assert cells[0] == label and cells[1] == value, (key, cells)
        for shown in (margin, change, second):
            if shown:
                assert shown.split(" (")[0] in line, (key, shown, line)
        assert n.split(" ")[0] in line, (key, n, line)
    # The cards on page 1: under each label (printed in capitals) its value, as on screen.
    first = text.split("\f")[0].splitlines()
    for key, (label, value) in cards.items():
        at = next(i for i, ln in enumerate(first) if re.search(
            rf"(^|\s){re.escape(label.upper())}(\s|$)", ln) and "CX snapshot" not in ln)
        assert any(value in ln for ln in first[at + 1:at + 4]), (key, label, value)
    # Revenue at risk: one label, one value, on screen and on paper (card and revenue block).
    for label, value in risk.values():
        assert f"{label}: {value}" in text, (label, value)
    assert text.count(risk["at-risk"][1]) >= 2  # the page-1 card and the revenue section


@pytest.mark.both_backends
def test_the_company_pdf_matches_the_cli(renderer, demo_url: str, tmp_path: Path) -> None:
    pdf = renderer.render(ReportRequest(scope=Scope.of("ACME"), period=PERIOD, paper="Letter",
                                        landscape=False))
    text = _text(pdf, tmp_path)
    nps = next(k for k in _cli(demo_url, "--period", "2026-10")["kpis"] if k["key"] == "nps")
    assert _shown(nps) in text
    info = subprocess.run(["pdfinfo", "-"], input=pdf, capture_output=True, check=True).stdout
    assert b"612 x 792 pts (letter)" in info  # Letter, portrait


def test_missing_altered_or_expired_tokens_are_refused(settings, served_demo: str) -> None:
    secret = "test-secret-key-0123456789abcdefghij"  # the served app's SECRET_KEY (conftest)
    good = make_token(secret, ReportRequest(scope=Scope.of("R-WEST"), period=PERIOD))
    assert read_token(secret, good).scope.units == ("R-WEST",)
    with urllib.request.urlopen(f"{served_demo}/report?t={good}", timeout=30) as resp:
        assert resp.status == 200
    # Widen the scope inside the payload without the key: the signature no longer matches.
    payload = URLSafeTimedSerializer("not-the-key", salt=SALT).loads(
        URLSafeTimedSerializer("not-the-key", salt=SALT).dumps(
            {"scope": ["ACME"], "period": "2026-10"}))
    forged = URLSafeTimedSerializer("not-the-key", salt=SALT).dumps(payload)
    head, _, sig = good.rpartition(".")
    tampered = head.replace(head[:8], head[:7] + ("A" if head[7] != "A" else "B"), 1) + "." + sig
    for bad in ("", forged, tampered):
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(f"{served_demo}/report?t={bad}", timeout=30)
        assert err.value.code == 403
        with pytest.raises(TokenError):
            read_token(secret, bad)
    time.sleep(1.1)  # itsdangerous counts whole seconds
    with pytest.raises(TokenError, match="expired"):
        read_token(secret, good, max_age=0)


def test_tokens_are_single_purpose_and_live_a_minute(served_demo: str, monkeypatch) -> None:
    secret = "test-secret-key-0123456789abcdefghij"
    assert MAX_AGE_SECONDS == 60
    # Signed with the right key and salt, but not made for the report page.
    other = URLSafeTimedSerializer(secret, salt=SALT).dumps(
        {"purpose": "download", "scope": ["ACME"], "period": "2026-10"})
    with pytest.raises(TokenError, match="not a report token"):
        read_token(secret, other)
    # Made 61 seconds ago: past its minute.
    real = time.time()
    monkeypatch.setattr("itsdangerous.timed.time.time", lambda: real - 61)
    old = make_token(secret, ReportRequest(scope=Scope.of("R-WEST"), period=PERIOD))
    monkeypatch.setattr("itsdangerous.timed.time.time", lambda: real - 50)
    fresh = make_token(secret, ReportRequest(scope=Scope.of("R-WEST"), period=PERIOD))
    monkeypatch.undo()
    assert read_token(secret, fresh).scope.units == ("R-WEST",)
    with pytest.raises(TokenError, match="expired"):
        read_token(secret, old)
    for bad in (other, old):
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(f"{served_demo}/report?t={bad}", timeout=30)
        assert err.value.code == 403


class _NeverReady(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"<html><body><div id='report-root' data-graphs='1'>no graph</div></body></html>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def test_a_page_that_never_gets_ready_fails_loudly(settings) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _NeverReady)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with SnapshotRenderer(settings, ready_timeout=3,
                              base_url=f"http://127.0.0.1:{server.server_port}") as r, \
                pytest.raises(SnapshotError, match="not ready after 3 s"):
            r.render(ReportRequest(scope=Scope.of("ACME"), period=PERIOD))
    finally:
        server.shutdown()
