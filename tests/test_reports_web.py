"""The Download PDF button cannot be turned against the server (issue 14, items 1, 2, 7),
through real HTTP against a running gunicorn and real Chromium:

- a forged Host header does not move the renderer: a listener on another loopback port
  receives nothing, and the PDF is still the report;
- a burst of requests is bounded: a capped number of Chromium processes, "busy, try again"
  replies for the rest, and a /healthz that keeps answering;
- report tokens never reach the access log.
"""

from __future__ import annotations

import base64
import os
import re
import socket
import subprocess
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from benchmarks.serving import free_port, start_gunicorn, stop_gunicorn
from queries.periods import Month
from queries.scope import Scope
from queries.settings import load_settings
from reports.renderer import RenderBusy, RenderQueue
from reports.token import ReportRequest
from tests.conftest import add_test_users, sign_in

WORKERS = 2
CONCURRENCY = 1
QUEUE = 1
BURST = 16
PASSWORD = "burst-password-1"


@pytest.fixture(scope="module")
def web(demo_url: str, demo_dir: Path, tmp_path_factory):
    """gunicorn on the demo data with the production config (its access log in a file), and
    BURST more executives; yields (base URL, log path, master pid)."""
    from auth.users import add_user, get_user_by_email, remove_user
    from queries.db import make_engine

    add_test_users(demo_url)
    engine = make_engine(demo_url)
    with engine.begin() as conn:
        for i in range(BURST):
            if get_user_by_email(conn, f"burst{i}@example.com") is None:
                add_user(conn, email=f"burst{i}@example.com", role="executive",
                         password=PASSWORD)
    port = free_port()
    data_dir = tmp_path_factory.mktemp("pdfweb")
    env = {**os.environ, "DATABASE_URL": demo_url, "CX_SOURCES": str(demo_dir / "sources.toml"),
           "CX_DATA_DIR": str(data_dir), "SECRET_KEY": "test-secret-key-0123456789abcdefghij",
           "CX_BASE_URL": f"http://127.0.0.1:{port}", "CX_PDF_CONCURRENCY": str(CONCURRENCY),
           "CX_PDF_QUEUE": str(QUEUE), "CX_PDF_PER_USER": "3", "CX_THREADS": "4"}
    log_path = data_dir / "gunicorn.log"
    proc = start_gunicorn(port, env, log_path, args=["--workers", str(WORKERS)])
    yield f"http://127.0.0.1:{port}", log_path, proc.pid
    stop_gunicorn(proc, timeout=15)
    with engine.begin() as conn:
        for i in range(BURST):
            remove_user(conn, f"burst{i}@example.com")
    engine.dispose()


def signed_in(base: str, i: int):
    """A session of burst user `i`, through the real sign-in form."""
    import re

    import requests

    http = requests.Session()
    form = http.get(base + "/login", timeout=30)
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', form.text).group(1)
    done = http.post(base + "/login", data={"csrf_token": csrf, "password": PASSWORD,
                                            "email": f"burst{i}@example.com", "next": "/"},
                     allow_redirects=False, timeout=30)
    assert done.status_code == 302, done.text[:300]
    assert http.get(base + "/", timeout=30).status_code == 200  # sets the CSRF cookie
    http.headers["X-CSRFToken"] = http.cookies.get("_csrf_token", "")
    return http


def click_download(http, base: str, *, host: str | None = None, state: dict | None = None,
                   timeout: float = 150) -> dict:
    """POST the overview's Download PDF callback as the browser does (signed in as `http`);
    the outputs."""
    body = {
        "output": "..overview-pdf-download.data...overview-pdf-error.children..",
        "outputs": [{"id": "overview-pdf-download", "property": "data"},
                    {"id": "overview-pdf-error", "property": "children"}],
        "inputs": [{"id": "overview-pdf", "property": "n_clicks", "value": 1}],
        "state": [{"id": "overview-state", "property": "data", "value": state or {}}],
        "changedPropIds": ["overview-pdf.n_clicks"],
    }
    # A fresh connection each time: gunicorn closes idle keep-alive connections after 2 s,
    # and a POST sent on one it is closing at that moment would fail in the client.
    headers = {"Connection": "close"}
    if host:
        headers.update({"Host": host, "X-Forwarded-Host": host})
    http.close()
    resp = http.post(base + "/_dash-update-component", json=body, headers=headers,
                     timeout=timeout)
    assert resp.status_code == 200, (resp.status_code, resp.text[:500])
    return resp.json()["response"]


def pdf_of(response: dict) -> bytes | None:
    data = response.get("overview-pdf-download", {}).get("data")
    return base64.b64decode(data["content"]) if data else None


def error_of(response: dict) -> str:
    return str(response.get("overview-pdf-error", {}).get("children") or "")


class Listener:
    """A TCP listener on a loopback port that counts whoever connects (it must stay 0)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            conn.close()

    def close(self) -> None:
        self.sock.close()


def chromium_processes(root_pid: int) -> tuple[int, int]:
    """(Chromium browser processes, all Chromium processes) below `root_pid`."""
    children: dict[int, list[int]] = {}
    parents: dict[int, int] = {}
    cmdlines: dict[int, str] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            cmd = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry))
        parents[int(entry)] = ppid
        cmdlines[int(entry)] = cmd
    below, todo = [], [root_pid]
    while todo:
        pid = todo.pop()
        for child in children.get(pid, []):
            below.append(child)
            todo.append(child)
    chromium = [p for p in below if "chromium" in cmdlines.get(p, "").split(" ")[0]]
    # The browser is the `chromium` executable without --type=, started by Playwright's
    # driver. Its helpers, such as chrome_crashpad_handler, live in the same folder but are
    # not browsers; and each helper the browser starts is, between fork and exec, a copy of
    # the browser with the browser's command line: a process whose parent is Chromium is a
    # helper being born, not another browser.
    chromium_set = set(chromium)
    browsers = [p for p in chromium if "--type=" not in cmdlines[p]
                and Path(cmdlines[p].split(" ")[0]).name in ("chromium", "chrome")
                and parents.get(p) not in chromium_set]
    return len(browsers), len(chromium)


def _text(pdf: bytes, path: Path) -> str:
    path.write_bytes(pdf)
    return subprocess.run(["pdftotext", "-layout", str(path), "-"], capture_output=True,
                          text=True, check=True).stdout


@pytest.mark.browser
@pytest.mark.parametrize("demo_url", ["sqlite"], indirect=True)
def test_a_forged_host_header_does_not_move_the_renderer(web, demo_url, tmp_path) -> None:
    base, _, _ = web
    attacker = Listener()
    try:
        # The region manager asks; the Host header names the attacker's port.
        response = click_download(sign_in(base, "region"), base,
                                  host=f"127.0.0.1:{attacker.port}")
        pdf = pdf_of(response)
        assert pdf is not None and pdf.startswith(b"%PDF-"), error_of(response)
        time.sleep(0.5)
        assert attacker.connections == 0
    finally:
        attacker.close()
    # The PDF is the report, in the signed-in manager's scope, and says so.
    text = _text(pdf, tmp_path / "o.pdf")
    assert "CX snapshot · October 2026" in text and "Scope: West" in text
    assert "for west@example.com" in text
    for other in ("North", "South", "Leeds", "Brighton"):
        assert other not in text, other
    from sqlalchemy import select

    from queries import schema
    from queries.db import make_engine

    engine = make_engine(demo_url)
    with engine.connect() as conn:
        last = conn.execute(select(schema.audit_log).where(
            schema.audit_log.c.action == "pdf_render").order_by(
            schema.audit_log.c.id.desc())).first()
    engine.dispose()
    assert (last.actor, last.outcome) == ("west@example.com", "ok")
    assert last.detail.startswith("scope R-WEST, 2026-10")


@pytest.mark.browser
@pytest.mark.parametrize("demo_url", ["sqlite"], indirect=True)
def test_a_burst_of_pdf_requests_is_bounded_and_healthz_stays_up(web) -> None:
    base, _, master = web
    sessions = [signed_in(base, i) for i in range(BURST)]
    stop = threading.Event()
    peaks = {"browsers": 0, "chromium": 0}
    health: list[float] = []

    def watch() -> None:
        while not stop.is_set():
            browsers, chromium = chromium_processes(master)
            peaks["browsers"] = max(peaks["browsers"], browsers)
            peaks["chromium"] = max(peaks["chromium"], chromium)
            started = time.monotonic()
            with urllib.request.urlopen(base + "/healthz", timeout=5) as resp:
                assert resp.status == 200
            health.append(time.monotonic() - started)
            time.sleep(0.2)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        # BURST people at once.
        with ThreadPoolExecutor(BURST) as pool:
            replies = list(pool.map(lambda http: click_download(http, base), sessions))
    finally:
        stop.set()
        watcher.join()
    pdfs = [r for r in replies if pdf_of(r)]
    busy = [r for r in replies if not pdf_of(r)]
    assert all(pdf_of(r).startswith(b"%PDF-") for r in pdfs)
    assert all("Busy" in error_of(r) and "Try again" in error_of(r) for r in busy), \
        [error_of(r) for r in busy]
    # Each worker admits CONCURRENCY + QUEUE requests; the others are told to try again.
    assert 1 <= len(pdfs) <= WORKERS * (CONCURRENCY + QUEUE)
    assert len(busy) >= BURST - WORKERS * (CONCURRENCY + QUEUE)
    assert peaks["browsers"] <= WORKERS * CONCURRENCY
    assert peaks["chromium"] <= WORKERS * CONCURRENCY * 12
    # Every check answered (urlopen's timeout is 5 s), most at once: the threads that serve
    # pages are not tied up by PDFs (on a shared 2-core machine a single check may be slow).
    assert len(health) >= 5 and sorted(health)[len(health) // 2] < 0.5, health
    print(f"\n{BURST} parallel PDF requests: {len(pdfs)} PDFs, {len(busy)} busy; peak "
          f"{peaks['browsers']} Chromium browsers, {peaks['chromium']} Chromium processes; "
          f"/healthz {len(health)} checks, median {sorted(health)[len(health) // 2]:.2f} s, "
          f"slowest {max(health):.2f} s")


@pytest.mark.browser
@pytest.mark.parametrize("demo_url", ["sqlite"], indirect=True)
def test_report_tokens_never_reach_the_access_log(web, demo_url: str, tmp_path) -> None:
    base, log_path, _ = web
    secrets = ("SECRETQUERYTOKEN", "SECRETREFERERTOKEN", "SECRETHEADERTOKEN")
    req = urllib.request.Request(f"{base}/report?t={secrets[0]}", headers={
        "Referer": f"{base}/report?t={secrets[1]}", "X-CX-Report-Token": secrets[2]})
    with pytest.raises(urllib.error.HTTPError):
        urllib.request.urlopen(req, timeout=30)
    # A real render through this server, as the scheduler does (CX_BASE_URL): its page's
    # requests carry the real token in the query, the Referer and the header.
    settings = load_settings(_env_file=None, database_url=demo_url,
                             secret_key="test-secret-key-0123456789abcdefghij",
                             cx_data_dir=str(tmp_path), cx_base_url=base)
    with RenderQueue(settings, idle_seconds=0) as queue:
        pdf = queue.render(ReportRequest(scope=Scope.of("R-WEST"), period=Month(2026, 10)))
    assert pdf.startswith(b"%PDF-")
    time.sleep(1.0)  # gunicorn writes the access log line after the response
    logged = log_path.read_text()
    assert "/report?[redacted]" in logged
    for secret in secrets:
        assert secret not in logged
    assert not re.search(r"report/?\?t=", logged), "a report token was logged"
    assert re.search(r'"GET /_dash-layout HTTP/1.1" 200 \d+ "[^"]*/report\?\[redacted\]"',
                     logged)


def test_the_render_queue_bounds_people_and_the_machine(tmp_path) -> None:
    """The queue's own rules, with a stand-in renderer that holds each render until told."""
    settings = load_settings(_env_file=None, cx_data_dir=str(tmp_path), secret_key="q" * 40)
    release = threading.Event()
    started = threading.Semaphore(0)

    class Held:
        started = True
        last_used = 0.0

        def render(self, request):
            started.release()
            release.wait(10)
            return b"%PDF-held"

        def close(self):
            pass

    queue = RenderQueue(settings, concurrency=1, max_waiting=1, per_user=2, wait=5,
                        idle_seconds=0, factory=Held)
    request = ReportRequest(scope=Scope.of("ACME"), period=Month(2026, 10))
    with ThreadPoolExecutor(4) as pool:
        first = pool.submit(queue.render, request, who="ada")
        assert started.acquire(timeout=5)  # rendering
        with pytest.raises(RenderBusy, match="previous PDF is still being made"):
            queue.render(request, who="ada")
        second = pool.submit(queue.render, request, who="bob")  # waits for the renderer
        time.sleep(0.2)
        with pytest.raises(RenderBusy, match="Busy: other PDFs are being made"):
            queue.render(request, who="cy")
        release.set()
        assert first.result(5) == second.result(5) == b"%PDF-held"
    assert queue.render(request, who="ada") == b"%PDF-held"  # ada's 2nd PDF
    with pytest.raises(RenderBusy, match=r"You asked for 2 PDFs in the last minute: try "
                                         r"again in \d+ s"):
        queue.render(request, who="ada")
    assert queue.render(request, who="bob") == b"%PDF-held"
