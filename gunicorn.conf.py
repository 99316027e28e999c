"""gunicorn settings for the web process; each value can be overridden on the command line."""

import contextlib
import multiprocessing
import os
import re

from gunicorn.glogging import Logger

bind = os.environ.get("CX_BIND", "127.0.0.1:8050")
# One worker process per core: a callback's pandas and Plotly work holds the GIL, so a second
# process per core adds memory (every worker imports pandas, SciPy, Plotly and holds its own
# in-process cache, each missing the same views again) but no throughput. Threads cover the
# time a request waits on the database (both drivers release the GIL), and let the many
# light requests of a page (layout, URL sync, nav links) pass a heavy one.
workers = int(os.environ.get("WEB_CONCURRENCY", max(1, multiprocessing.cpu_count())))
worker_class = "gthread"
threads = int(os.environ.get("CX_THREADS", "4"))
timeout = 120
graceful_timeout = 30
# Idle keep-alive connections outlive a browser's (and a load balancer's, ALB: 60 s) pause
# between clicks: with gunicorn's 2 s default the server closed a connection just as the
# client reused it, and the client saw a ReadError / "connection reset" on a callback.
keepalive = 75
# A worker is replaced (gracefully, its requests finished) after this many requests: memory
# a long-lived Python process fragments or caches is given back, keeping workers' RSS flat.
max_requests = int(os.environ.get("CX_MAX_REQUESTS", "2000"))
max_requests_jitter = max_requests // 10
accesslog = "-"


def _limit_malloc_arenas(arenas: int = 2) -> None:
    # glibc gives each thread that allocates its own heap arena (up to 8 per core): pandas
    # frames freed by one thread stay mapped in its arena, and a threaded worker's resident
    # memory grew to double what one thread needs. Set in the master, before the fork, so
    # every worker inherits it (MALLOC_ARENA_MAX in the environment does the same).
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    if name and "MALLOC_ARENA_MAX" not in os.environ:
        # Not glibc (musl, macOS): nothing to limit.
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(name).mallopt(-8, arenas)  # -8: M_ARENA_MAX


_limit_malloc_arenas()

_REPORT_QUERY = re.compile(r"(/report/?)\?[^\s\"]*")


class RedactingLogger(Logger):
    """The access log without report tokens: `/report?t=...` (the request line, the query,
    the Referer of the page's own requests) and the X-CX-Report-Token header are written as
    `[redacted]`, so a log reader cannot open someone's report."""

    def atoms(self, resp, req, environ, request_time):
        atoms = super().atoms(resp, req, environ, request_time)
        for key in ("r", "f", "{referer}i"):
            if isinstance(atoms.get(key), str):
                atoms[key] = _REPORT_QUERY.sub(r"\1?[redacted]", atoms[key])
        if (environ.get("PATH_INFO") or "").rstrip("/") == "/report" and atoms.get("q"):
            atoms["q"] = "[redacted]"
        if "{x-cx-report-token}i" in atoms:
            atoms["{x-cx-report-token}i"] = "[redacted]"
        return atoms


logger_class = RedactingLogger


def on_starting(server):
    """Check the settings and the database once, in the master, before any worker starts:
    an unreachable or unmigrated database is one line and exit code 4, not a traceback
    from every worker."""
    import sys

    from queries.db import DatabaseUnavailable, SchemaError, check_schema, make_engine
    from queries.settings import SettingsError, load_settings

    try:
        engine = make_engine(load_settings().database_url)
        try:
            check_schema(engine)
        finally:
            engine.dispose()
    except (DatabaseUnavailable, SchemaError, SettingsError) as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        sys.exit(4)


def post_worker_init(worker):
    """Once the worker has built the app: its objects (two thousand modules, Dash's layout
    and registry, Plotly's validators) never become garbage, so they leave the collector's
    view. Each full collection then walks only what requests made, not the whole heap:
    under load those walks were the 100-200 ms outliers of otherwise 20-60 ms callbacks."""
    import gc

    gc.freeze()
