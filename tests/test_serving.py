"""How gunicorn serves the app (gunicorn.conf.py): workers, keep-alive, memory settings."""

from __future__ import annotations

import http.client
import runpy
import time

from queries.settings import ROOT


def test_the_served_config_is_a_threaded_worker_per_core_with_long_keep_alive(
        monkeypatch) -> None:
    monkeypatch.delenv("WEB_CONCURRENCY", raising=False)
    monkeypatch.delenv("CX_THREADS", raising=False)
    conf = runpy.run_path(str(ROOT / "gunicorn.conf.py"))
    import multiprocessing

    assert conf["worker_class"] == "gthread"
    assert conf["workers"] == multiprocessing.cpu_count()
    assert conf["threads"] >= 2
    # Longer than a load balancer's idle timeout (ALB 60 s) and a person's pause.
    assert conf["keepalive"] > 60
    assert conf["max_requests"] > 0 and 0 < conf["max_requests_jitter"] < conf["max_requests"]


def test_a_worker_freezes_what_building_the_app_made() -> None:
    """After the app is built, its objects leave the garbage collector's view (gc.freeze):
    full collections then walk what requests made, not every module and validator."""
    import subprocess
    import sys

    code = ("import gc, runpy, sys; conf = runpy.run_path(sys.argv[1]); "
            "before = gc.get_freeze_count(); conf['post_worker_init'](None); "
            "print(before, gc.get_freeze_count())")
    out = subprocess.run([sys.executable, "-c", code, str(ROOT / "gunicorn.conf.py")],
                         capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-2000:]
    before, after = map(int, out.stdout.split()[-2:])
    assert before == 0 and after > 1000


def test_a_connection_reused_after_a_pause_still_gets_its_answer(served_demo: str) -> None:
    # A browser keeps its connection and sends the next callback after the person looked at
    # the page for a while. With gunicorn's 2 s default keep-alive the server had closed it
    # by then, and a POST on it failed (ReadError / RemoteDisconnected).
    host, port = served_demo.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        conn.request("GET", "/healthz")
        first = conn.getresponse()
        first.read()
        assert first.status == 200
        sock = conn.sock
        time.sleep(4)
        conn.request("POST", "/_dash-update-component", body=b"{}",
                     headers={"Content-Type": "application/json"})
        second = conn.getresponse()
        second.read()
        assert conn.sock is sock  # the same connection carried both
        assert second.status in (200, 302, 400, 401, 403)
    finally:
        conn.close()
