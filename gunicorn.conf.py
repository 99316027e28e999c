"""gunicorn settings for the web process; each value can be overridden on the command line."""

import multiprocessing
import os
import re

from gunicorn.glogging import Logger

bind = os.environ.get("CX_BIND", "127.0.0.1:8050")
# Dash callbacks are short and I/O bound: a few threads per worker serve an executive team.
workers = int(os.environ.get("WEB_CONCURRENCY", min(4, multiprocessing.cpu_count() * 2)))
threads = int(os.environ.get("CX_THREADS", "4"))
timeout = 120
accesslog = "-"

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
