"""Issue 14, probed as an attacker would: every test first makes the request (or runs the
command) that used to break, against a real gunicorn or the real CLI in a subprocess."""

from __future__ import annotations

import csv
import json
import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from queries.settings import ROOT
from tests.conftest import add_test_users, free_port
from tests.dash_http import call, dependencies, find_store, post, request, route, signed_in

PAGES = {"/": "overview", "/revenue": "revenue", "/employees": "employees",
         "/segments": "segments", "/drivers": "drivers", "/health": "health"}


@pytest.fixture(scope="module")
def admin(served_demo: str):
    """The served demo, signed in as its admin (sign-in is its own issue; these attacks
    hold with or without it)."""
    return signed_in(served_demo)


def _state_callbacks(base, prefix: str) -> list[str]:
    """Output strings of the callbacks a page's view state drives."""
    return [d["output"].lstrip(".") for d in dependencies(base)
            if [f"{i['id']}.{i['property']}" for i in d["inputs"]] == [f"{prefix}-state.data"]]


def _render(base, prefix: str, state: object) -> list:
    """Every callback of the page's state, run with `state`: the replies."""
    return [call(base, {f"{prefix}-state.data": state}, output_starts=out[:40])
            for out in _state_callbacks(base, prefix)]


# ------------------------------------------------------------------------ item 5: URL -> 500


@pytest.mark.parametrize("search, kept", [
    ("?period=9999-12", {}),  # "year 10000 is out of range" on four pages
    ("?period=0000-01", {}),  # "year 0 is out of range"
    ("?period=2026-08&compare=9999-12", {"period": "2026-08"}),
    ("?unit=R-NORTH&unit=R-WEST", {"unit": "R-WEST"}),  # a list: "unhashable type: 'list'"
])
def test_crafted_urls_render_every_page(admin, search: str, kept: dict) -> None:
    for path, prefix in PAGES.items():
        page = route(admin, path, search)
        assert page.status == 200, (path, search, page.text[-300:])
        state = find_store(page.body["response"], f"{prefix}-state")
        replies = _render(admin, prefix, state)
        assert replies and all(r.status == 200 for r in replies), (
            path, search, [(r.status, r.text[-200:]) for r in replies])
        assert state == kept, (path, state)
    # The out-of-range period falls back to the default, the latest full month of the demo.
    state = find_store(route(admin, "/", "?period=9999-12").body["response"],
                       "overview-state")
    overview = _render(admin, "overview", state)[0]
    assert overview.body["response"]["overview-caption"]["children"] == (
        "Whole company · October 2026 against September 2026")


def test_hand_made_callback_state_is_refused_not_500(admin) -> None:
    # What no browser sends but anyone can post: non-string values in the view state.
    for bad in ({"unit": ["R-WEST", "R-NORTH"]}, {"period": 202610}, {"unit": {"a": 1}},
                ["not", "a", "state"], {"q": "x" * 100_000}):
        reply = call(admin, {"overview-state.data": bad}, output_starts="overview-kpis")
        assert reply.status == 400, (bad, reply.status, reply.text[-200:])
        assert "view state of overview-state is not valid" in reply.text


def test_huge_search_is_bounded(admin) -> None:
    # 5 MB in the search box: the body is refused before anything reads it.
    reply = route(admin, "/drivers", "?q=" + "a" * (5 * 1024 * 1024))
    assert reply.status == 413
    # 60,000 characters of LIKE wildcards fit in the body; SQLite refused such a pattern
    # ("LIKE pattern too complex"). The search is cut to 200 characters and finds nothing.
    page = route(admin, "/drivers", "?q=" + "%25_" * 30_000)
    assert page.status == 200
    state = find_store(page.body["response"], "drivers-state")
    assert state == {"q": "%_" * 100}
    comments = call(admin, {"drivers-state.data": state},
                    output_starts="drivers-comments")
    assert comments.status == 200, comments.text[-300:]
    reply = comments.body["response"]
    assert reply["drivers-count"]["children"] == "0 comments"
    words = reply["drivers-comments"]["children"]["props"]["children"]
    assert words.startswith("No comments from Whole company") and words.endswith(
        "contain “" + "%_" * 100 + "”.")


def test_unknown_unit_says_so_on_every_page(admin) -> None:
    for path in PAGES:
        page = route(admin, path, "?unit=NO-SUCH-UNIT")
        assert page.status == 200
        text = json.dumps(page.body["response"])
        assert "app-unknown-unit" in text and "Unknown unit" in text, path
        assert "NO-SUCH-UNIT" in text and "Whole company" not in text, path


def test_unknown_download_target_is_a_clear_400(admin) -> None:
    def download(target: str):
        body = {"output": "app-download.data",
                "outputs": {"id": "app-download", "property": "data"},
                "inputs": [[{"id": {"fmt": "csv", "target": target, "type": "download"},
                             "property": "n_clicks", "value": 1}]],
                "changedPropIds": [json.dumps({"fmt": "csv", "target": target,
                                               "type": "download"},
                                              separators=(",", ":")) + ".n_clicks"],
                "state": [{"id": "app-url", "property": "search", "value": ""}]}
        return post(admin, body)

    reply = download("no-such-table")
    assert reply.status == 400 and "unknown download target" in reply.text
    assert "no-such-table" in reply.text
    # A real target still downloads (the check refuses only what is not registered).
    good = download("overview-kpis")
    assert good.status == 200 and good.body["response"]["app-download"]["data"]["filename"] \
        .startswith("overview-kpis")


# ----------------------------------------------------------- item 11: source text in charts

EVIL_TOUCHPOINT = '<a href="http://evil/">delivery</a>'
EVIL_STORE = '<a href="http://evil/">Manchester</a>'


def _serve(url: str, sources: Path, data_dir: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {**os.environ, "DATABASE_URL": url, "CX_SOURCES": str(sources),
           "CX_DATA_DIR": str(data_dir), "SECRET_KEY": "test-secret-key-for-hardening-tests-0123",
           "CX_BASE_URL": f"http://127.0.0.1:{port}"}
    log = (data_dir / "gunicorn.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "--config", str(ROOT / "gunicorn.conf.py"),
         "--bind", f"127.0.0.1:{port}", "--workers", "1", "--no-control-socket",
         "dashboard.app:server"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if request(base + "/_cx/ping", timeout=2).status == 200:
                return proc, base
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError((data_dir / "gunicorn.log").read_text()[-3000:])
        time.sleep(0.3)


@pytest.fixture(scope="module")
def evil_served(tmp_path_factory: pytest.TempPathFactory, fresh_database_url):
    """gunicorn on demo data whose sources name a store and a touchpoint with HTML."""
    from etl.demo import generate

    folder = tmp_path_factory.mktemp("evil")
    generate(folder, seed=5, customers=800, months=4, end="2026-10")
    units = folder / "org_units.csv"
    rows = list(csv.reader(units.open(encoding="utf-8")))
    for row in rows:
        if row[0] == "S04":
            row[1] = EVIL_STORE
    with units.open("w", encoding="utf-8", newline="") as fh:
        csv.writer(fh).writerows(rows)
    config = folder / "sources.toml"
    text = config.read_text()
    assert '"Delivery" = "delivery"' in text
    config.write_text(text.replace('"Delivery" = "delivery"',
                                   f"\"Delivery\" = '{EVIL_TOUCHPOINT}'"))
    url = fresh_database_url("sqlite")
    env = {**os.environ, "DATABASE_URL": url, "CX_SOURCES": str(config),
           "CX_DATA_DIR": str(folder)}
    for args in (["migrate"], ["run"]):
        done = subprocess.run([sys.executable, "-m", "etl", *args], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stdout + done.stderr
    add_test_users(url)
    proc, base = _serve(url, config, folder)
    yield base
    proc.terminate()
    proc.wait(timeout=10)


def _strings(value: object) -> list[str]:
    """Every string a figure can show: all of it but the customdata columns no template
    shows (a drill key rides there as data, never drawn)."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    if not isinstance(value, dict):
        return []
    out = [s for k, v in value.items() if k != "customdata" for s in _strings(v)]
    if "customdata" in value:
        shown = {int(i) for i in re.findall(r"customdata\[(\d+)\]",
                                            str(value.get("hovertemplate", "")))}
        for row in value["customdata"] or []:
            out += [s for i, v in enumerate(row if isinstance(row, list) else [row])
                    if i in shown or "%{customdata}" in str(value.get("hovertemplate", ""))
                    for s in _strings(v)]
    return out


def test_source_html_is_text_in_figures(evil_served: str) -> None:
    admin = signed_in(evil_served)
    seen = []
    for path, prefix, search in (("/segments", "segments", "?by=touchpoint"),
                                 ("/segments", "segments", "?unit=R-NORTH"),
                                 ("/employees", "employees", "?unit=R-NORTH"),
                                 ("/revenue", "revenue", "?unit=R-NORTH")):
        state = find_store(route(admin, path, search).body["response"],
                           f"{prefix}-state")
        for reply in _render(admin, prefix, state):
            assert reply.status == 200, reply.text[-300:]
            figures = [v["figure"] for v in reply.body["response"].values()
                       if isinstance(v, dict) and "figure" in v]
            texts = [s for f in figures for s in _strings(f)]
            assert not [t for t in texts if "<a " in t], (path, search)
            seen += [t for t in texts if "&lt;a href=" in t]
    # Escaped, not dropped: Plotly shows the entities as the characters written.
    assert '&lt;a href="http://evil/"&gt;delivery&lt;/a&gt;' in seen
    assert '&lt;a href="http://evil/"&gt;Manchester&lt;/a&gt;' in seen


def test_source_html_is_no_link_in_the_browser(evil_served: str, browser) -> None:
    from playwright.sync_api import expect

    from tests.browser import wait_for_graphs
    from tests.conftest import sign_in

    cookies = [{"name": c.name, "value": c.value, "domain": "127.0.0.1", "path": "/"}
               for c in sign_in(evil_served).cookies]
    context = browser.new_context(storage_state={"cookies": cookies, "origins": []})
    page = context.new_page()
    page.goto(evil_served + "/segments?unit=R-NORTH")
    wait_for_graphs(page, "#segments-bars")
    bars = page.locator("#segments-bars")
    expect(bars.locator(".ytick", has_text=EVIL_STORE)).to_have_count(1)
    assert bars.locator("a").count() == 0
    page.goto(evil_served + "/segments?by=touchpoint")
    wait_for_graphs(page, "#segments-bars")
    expect(page.locator("#segments-bars .ytick", has_text='href="http://evil/"')).to_have_count(1)
    assert page.locator("#segments-bars a").count() == 0
    context.close()


# ------------------------------------------------ items 6 and 12: runs in progress, killed runs


class Gate:
    """An HTTP export that holds each request until `open` is set, then answers `[]`: a
    source whose run stays in progress for as long as a test needs."""

    def __init__(self) -> None:
        self.arrived = threading.Event()
        self.open = threading.Event()
        gate = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                gate.arrived.set()
                gate.open.wait(120)
                body = b"[]"
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request: object, client_address: object) -> None:
                pass  # the killed run's connection is gone when the gate opens

        self.server = Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/export"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.open.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def gate():
    g = Gate()
    yield g
    g.close()


def _slow_sources(folder: Path, url: str) -> Path:
    (folder / "org.csv").write_text("Code,Name,Level,Parent\nACME,Acme,Company,\n")
    path = folder / "sources.toml"
    path.write_text(textwrap.dedent(f"""
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

        [[source]]
        name = "slow"
        kind = "survey"
        adapter = "http_json"
        location = "{url}"
        [source.http]
        timeout = 120
        [source.columns]
        response_id = "id"
        submitted_at = "submitted"
        org_unit_id = "store"
    """))
    return path


def _cli_env(engine, sources: Path, folder: Path) -> dict[str, str]:
    return {**os.environ, "DATABASE_URL": engine.url.render_as_string(hide_password=False),
            "CX_SOURCES": str(sources), "CX_DATA_DIR": str(folder), "PYTHONUNBUFFERED": "1"}


def _etl(args: list[str], env: dict[str, str], timeout: float = 120):
    return subprocess.run([sys.executable, "-m", "etl", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)


def _start(args: list[str], env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "etl", *args], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _runs(engine, source: str) -> list[dict]:
    from sqlalchemy import select

    from queries import schema

    run = schema.etl_run
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(select(run).where(run.c.source == source)
                                              .order_by(run.c.id)).mappings()]


def _line(out: str, source: str) -> str:
    return next(line for line in out.splitlines() if line.startswith(source + " "))


def test_status_during_a_run_and_after_a_killed_run(engine, tmp_path: Path, gate) -> None:
    env = _cli_env(engine, _slow_sources(tmp_path, gate.url), tmp_path)
    # Another source has finished runs: the runs table then holds real times, and the run
    # in progress a missing one (NaT) where its finish time would be.
    assert _etl(["run", "org"], env).returncode == 0
    first = _start(["run", "slow"], env)
    try:
        assert gate.arrived.wait(60), first.communicate(timeout=5)
        # In progress: the run has no finish time ("NaTType does not support strftime").
        status = _etl(["status"], env)
        assert status.returncode == 0, status.stderr
        started = _runs(engine, "slow")[0]["started_at"]
        assert _line(status.stdout, "slow").split()[1:4] == [
            f"{started:%Y-%m-%d}", f"{started:%H:%M}", "running"]
        assert (f"  running since {started:%Y-%m-%d %H:%M} in "
                f"{socket.gethostname()}:{first.pid}") in status.stdout
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=30)

    # Killed: the log still says running and the claim is still there, but status knows.
    assert [r["status"] for r in _runs(engine, "slow")] == ["running"]
    status = _etl(["status"], env)
    assert status.returncode == 0, status.stderr
    assert _line(status.stdout, "slow").split()[3] == "abandoned"
    assert f"did not finish: its process ({socket.gethostname()}:{first.pid}) is gone" \
        in status.stdout

    # The next run takes the claim over and marks the killed run abandoned, for good.
    gate.open.set()
    rerun = _etl(["run", "slow"], env)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    killed, fresh = _runs(engine, "slow")
    assert killed["status"] == "abandoned" and killed["finished_at"] is not None
    assert f"{socket.gethostname()}:{first.pid} stopped without finishing" in killed["error"]
    assert fresh["status"] == "success"
    assert _line(_etl(["status"], env).stdout, "slow").split()[3] == "success"


def test_a_source_running_elsewhere_is_skipped_or_waited_for(engine, tmp_path: Path,
                                                              gate) -> None:
    env = _cli_env(engine, _slow_sources(tmp_path, gate.url), tmp_path)
    first = _start(["run", "slow"], env)
    try:
        assert gate.arrived.wait(60)
        # A second `etl run` of everything: the busy source is skipped, the rest loads.
        second = _etl(["run"], env)
        assert second.returncode == 0, second.stdout + second.stderr
        assert _line(second.stdout, "slow").split()[1] == "skipped"
        assert _line(second.stdout, "org").split()[1:3] == ["success", "1"]
        assert f"skipped: running elsewhere ({socket.gethostname()}:{first.pid})" \
            in second.stdout
        # Asked to wait, but not long enough: a failure that says so.
        short = _etl(["run", "--wait", "--wait-timeout", "1", "slow"], env)
        assert short.returncode == 1
        assert "still running elsewhere" in short.stdout and "after waiting 1 s" in short.stdout
        # Asked to wait: it runs the source once the other run is done.
        waiting = _start(["run", "--wait", "slow"], env)
        time.sleep(2)
        assert waiting.poll() is None
        gate.open.set()
        out, err = first.communicate(timeout=60)
        assert first.returncode == 0, out + err
        out, err = waiting.communicate(timeout=60)
        assert waiting.returncode == 0, out + err
        assert _line(out, "slow").split()[1] == "success"
    finally:
        for proc in (first,):
            if proc.poll() is None:
                proc.kill()
    runs = _runs(engine, "slow")
    assert [r["status"] for r in runs] == ["success", "success"]
    assert runs[1]["started_at"] >= runs[0]["finished_at"]


# ------------------------------------------------------------- item 8: the secret key file


def _read_secret(data_dir: str, barrier, out) -> None:
    from queries.settings import load_settings

    settings = load_settings(_env_file=None, cx_data_dir=data_dir)
    barrier.wait()  # every process asks for the key at the same moment
    try:
        out.put(settings.secret())
    except Exception as exc:  # reported to the test, which fails on it
        out.put(f"error: {type(exc).__name__}: {exc}")


def test_processes_starting_together_agree_on_one_full_key(tmp_path: Path,
                                                           monkeypatch) -> None:
    import multiprocessing

    monkeypatch.delenv("SECRET_KEY", raising=False)
    ctx = multiprocessing.get_context("fork")
    rounds, width = 25, 8  # eight processes racing, 25 times: a torn write showed within 10
    for n in range(rounds):
        folder = tmp_path / f"round{n}"
        barrier, out = ctx.Barrier(width), ctx.Queue()
        procs = [ctx.Process(target=_read_secret, args=(str(folder), barrier, out))
                 for _ in range(width)]
        for p in procs:
            p.start()
        keys = [out.get(timeout=60) for _ in procs]
        for p in procs:
            p.join(timeout=30)
        stored = (folder / "secret_key").read_text()
        assert len(stored) >= 32 and stored == stored.strip()
        assert keys == [stored] * width, (n, keys)
        assert sorted(f.name for f in folder.iterdir()) == ["secret_key"]  # no temp left
        assert (folder / "secret_key").stat().st_mode & 0o077 == 0


def test_empty_or_short_keys_are_refused(tmp_path: Path) -> None:
    env = {**os.environ, "CX_DATA_DIR": str(tmp_path), "DATABASE_URL": f"sqlite:///{tmp_path}/x.db"}
    for bad in ("", "   ", "short-key"):
        done = subprocess.run([sys.executable, "-m", "dashboard", "subscriptions", "list"],
                              cwd=ROOT, env={**env, "SECRET_KEY": bad}, capture_output=True,
                              text=True, timeout=60)
        assert done.returncode == 2, done.stdout + done.stderr
        assert "SECRET_KEY" in done.stderr and "at least 32 characters" in done.stderr
        assert "Traceback" not in done.stderr
        if bad.strip():
            assert bad not in done.stderr  # a key is never echoed, even a bad one
    # A key file left empty (a process killed while writing the old way) is refused too.
    (tmp_path / "secret_key").write_text("")
    from queries.settings import SettingsError, load_settings

    with pytest.raises(SettingsError, match="empty or short signing key"):
        load_settings(_env_file=None, cx_data_dir=str(tmp_path)).secret()


# --------------------------------------------------------- item 9: the database is not there


def test_unreachable_database_is_one_line_everywhere(tmp_path: Path) -> None:
    port = free_port()  # nothing listens there: the connection is refused
    env = {**os.environ, "DATABASE_URL": f"postgresql://postgres@127.0.0.1:{port}/cx",
           "CX_DATA_DIR": str(tmp_path), "SECRET_KEY": "k" * 40,
           "CX_SOURCES": str(_slow_sources(tmp_path, "http://127.0.0.1:9/export"))}
    expected = (f"error: cannot connect to the reporting database (postgresql) at "
                f"127.0.0.1:{port}, database 'cx': Connection refused")
    for command in (["etl", "status"], ["etl", "migrate"], ["etl", "run"],
                    ["dashboard", "subscriptions", "list"], ["queries", "kpis"]):
        done = subprocess.run([sys.executable, "-m", *command], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 2, (command, done.stderr[-500:])
        assert done.stderr.splitlines() == [expected], (command, done.stderr[-2000:])
    # gunicorn: the master checks before starting workers and exits as "app failed to load".
    boot = subprocess.run(
        [sys.executable, "-m", "gunicorn", "--config", str(ROOT / "gunicorn.conf.py"),
         "--bind", f"127.0.0.1:{free_port()}", "--workers", "2", "--no-control-socket",
         "dashboard.app:server"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert boot.returncode == 4
    output = (boot.stdout + boot.stderr).splitlines()
    assert output.count(expected) == 1 and "Traceback" not in boot.stderr, output
    assert len(output) <= 2, output  # gunicorn's "Starting gunicorn" and the reason
