"""Start and stop the dashboard under gunicorn, as production runs it.

Shared by the load benchmark and the tests that talk to a real server (browser tests,
PDF downloads, two instances behind one Redis), so all of them start it the same way:
the project's `gunicorn.conf.py`, no control socket (gunicorn 27 would open one in
~/.gunicorn), and "started" meaning `/healthz` answered, not "the process exists".
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path

from queries.settings import ROOT


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_gunicorn(port: int, env: Mapping[str, str], log: Path, *,
                   args: Sequence[str] = (), timeout: float = 60.0) -> subprocess.Popen:
    """Serve `dashboard.app:server` on 127.0.0.1:`port` with `env`, its output in `log`;
    return once `/healthz` answers 200. Raises with the log's tail when gunicorn exits or
    does not answer within `timeout` seconds (the process is killed first)."""
    base = f"http://127.0.0.1:{port}"
    with log.open("w") as out:
        # The child keeps its own copy of the descriptor; ours can close at once.
        proc = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "--config", str(ROOT / "gunicorn.conf.py"),
             "--bind", f"127.0.0.1:{port}", "--no-control-socket", *args,
             "dashboard.app:server"],
            cwd=ROOT, env=dict(env), stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(base + "/healthz", timeout=5) as resp:
                if resp.status == 200:
                    return proc
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            stop_gunicorn(proc, timeout=5)
            raise RuntimeError("gunicorn did not start:\n" + log.read_text()[-3000:])
        time.sleep(0.3)


def stop_gunicorn(proc: subprocess.Popen, timeout: float = 15.0) -> None:
    """Stop gunicorn gracefully (SIGTERM lets workers finish their requests), then by force."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
