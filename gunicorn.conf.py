"""gunicorn settings for the web process; each value can be overridden on the command line."""

import multiprocessing
import os

bind = os.environ.get("CX_BIND", "127.0.0.1:8050")
# Dash callbacks are short and I/O bound: a few threads per worker serve an executive team.
workers = int(os.environ.get("WEB_CONCURRENCY", min(4, multiprocessing.cpu_count() * 2)))
threads = int(os.environ.get("CX_THREADS", "4"))
timeout = 120
accesslog = "-"
