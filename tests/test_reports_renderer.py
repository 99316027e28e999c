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
    return load_settings(_env_file=None, database_url=demo_url, secret_key="snapshot-secret",
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


def test_a_region_pdf_holds_only_that_region(renderer, demo_url: str, tmp_path: Path) -> None:
    pdf = renderer.render(ReportRequest(scope=Scope.of("R-WEST"), period=PERIOD))
    assert pdf.startswith(b"%PDF-")
    text = _text(pdf, tmp_path)
    assert "CX snapshot · October 2026" in text and "Scope: West" in text
    report = _cli(demo_url, "--period", "2026-10", "--unit", "R-WEST")
    for k in report["kpis"]:
        # The table row: the label, then a column gap (the signals text has single spaces).
        line = next((ln for ln in text.splitlines()
                     if re.match(rf"\s*{re.escape(k['label'])}\s{{2,}}", ln)), None)
        assert line is not None, k["label"]
        assert _shown(k) in line, (k["label"], line)
        assert f"{k['n']:,}" in line
    for other in ("North", "South", *STORES["R-NORTH"], *STORES["R-SOUTH"]):
        assert other not in text, other
    assert "page 1 of" in text  # page numbers in the footer
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "snapshot-west.pdf").write_bytes(pdf)
    subprocess.run(["pdftoppm", "-png", "-r", "80", str(ARTIFACTS / "snapshot-west.pdf"),
                    str(ARTIFACTS / "snapshot-west")], check=True)
    pages = sorted(ARTIFACTS.glob("snapshot-west-*.png"))
    assert len(pages) >= 2
    shutil.copy(pages[0], ROOT / "docs" / "screenshots" / "snapshot-page1.png")


def test_the_company_pdf_matches_the_cli(renderer, demo_url: str, tmp_path: Path) -> None:
    pdf = renderer.render(ReportRequest(scope=Scope.of("ACME"), period=PERIOD, paper="Letter",
                                        landscape=False))
    text = _text(pdf, tmp_path)
    nps = next(k for k in _cli(demo_url, "--period", "2026-10")["kpis"] if k["key"] == "nps")
    assert _shown(nps) in text
    info = subprocess.run(["pdfinfo", "-"], input=pdf, capture_output=True, check=True).stdout
    assert b"612 x 792 pts (letter)" in info  # Letter, portrait


def test_missing_altered_or_expired_tokens_are_refused(settings, served_demo: str) -> None:
    secret = "test-secret-key"  # the served app's SECRET_KEY (conftest)
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
    secret = "test-secret-key"
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
