"""Vector PDF snapshots of the report page, printed by headless Chromium.

The renderer serves the app on a private loopback port (or uses a running one), opens
`/report?t=<signed token>` for each request, waits for the page's explicit readiness signal
(every graph drawn, no callback loading: `assets/report.js`), then prints with Playwright's
`page.pdf()`: selectable text, vector charts, page numbers. One browser serves every
recipient. A page that never becomes ready raises SnapshotError naming what did not render;
nothing half-drawn is ever returned.
"""

from __future__ import annotations

import logging
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

# Re-exported: callers build requests and catch errors from here.
from dashboard.report_token import ReportRequest, make_token
from queries.settings import Settings

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run",
                 "--disable-quic", "--disable-dev-shm-usage"]
# Printable width at 96 dpi with 10 mm margins, so charts are laid out at the size they print.
PAPER_WIDTH_PX = {("A4", True): 1047, ("A4", False): 718, ("Letter", True): 979,
                  ("Letter", False): 739}
FOOTER = ("<div style='font-size:8px;width:100%;padding:0 10mm;color:#666;"
          "font-family:DejaVu Sans,sans-serif;display:flex;justify-content:space-between'>"
          "<span>CX snapshot · {label}</span>"
          "<span>page <span class='pageNumber'></span> of <span class='totalPages'></span>"
          "</span></div>")


class SnapshotError(RuntimeError):
    """The report did not render; the message says what did not render."""


class _LocalServer:
    """The dashboard on 127.0.0.1:<free port>, in a background thread of this process."""

    def __init__(self, settings: Settings) -> None:
        from werkzeug.serving import make_server

        from dashboard.app import create_app

        # Every asset request would be an INFO line in the scheduler's log.
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        self.app = create_app(settings)
        self.server = make_server("127.0.0.1", 0, self.app.server, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()


class SnapshotRenderer:
    """Context manager: one Chromium (and, unless `base_url`, one private server) for many
    renders."""

    def __init__(self, settings: Settings, *, ready_timeout: float = 60.0,
                 base_url: str | None = None) -> None:
        self.settings = settings
        self.ready_timeout = ready_timeout
        self.base_url = base_url
        self._server: _LocalServer | None = None
        self._pw: Any = None
        self._browser: Any = None
        # Playwright's sync API refuses a thread that runs an asyncio loop (a test runner, an
        # async server) and a second instance per thread: it gets a thread of its own.
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="snapshot")

    def __enter__(self) -> SnapshotRenderer:
        try:
            if self.base_url is None:
                # Built here, not on the browser's thread: Dash keeps page state in context
                # variables of the thread that creates the app.
                self._server = _LocalServer(self.settings)
                self.base_url = self._server.url
            return self._thread.submit(self._start).result()
        except BaseException:
            self.__exit__(None, None, None)
            raise

    def _start(self) -> SnapshotRenderer:
        from playwright.sync_api import sync_playwright

        chromium = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
        if not os.path.exists(chromium):
            raise SnapshotError(f"Chromium not found at {chromium}: install it with "
                                "`apt-get install chromium` or set CHROMIUM_PATH")
        self._pw = sync_playwright().start()
        self._browser = self._pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self._thread.submit(self._stop).result()
        finally:
            self._thread.shutdown(wait=True)
            if self._server is not None:
                self._server.close()
                self._server = None

    def _stop(self) -> None:
        if self._browser is not None:
            self._browser.close()
            self._browser = None
        if self._pw is not None:
            self._pw.stop()
            self._pw = None

    def render(self, request: ReportRequest) -> bytes:
        """The PDF of `request`, or SnapshotError when the page does not become ready."""
        return self._thread.submit(self._render, request).result()

    def _render(self, request: ReportRequest) -> bytes:
        if self._browser is None:
            raise SnapshotError("the renderer is not started (use it in a `with` block)")
        from playwright.sync_api import Error as PlaywrightError
        from playwright.sync_api import TimeoutError as PlaywrightTimeout

        token = make_token(self.settings.secret(), request)
        width = PAPER_WIDTH_PX.get((request.paper, request.landscape), 1047)
        page = self._browser.new_page(viewport={"width": width, "height": 900})
        problems: list[str] = []
        page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: problems.append(str(e)))
        try:
            try:
                response = page.goto(f"{self.base_url}/report?t={token}",
                                     timeout=self.ready_timeout * 1000)
            except PlaywrightError as exc:
                raise SnapshotError(f"the report page could not be opened: {exc}") from None
            if response is not None and response.status >= 400:
                raise SnapshotError(f"the report page answered HTTP {response.status}")
            try:
                page.wait_for_function("() => document.body.dataset.reportReady === 'true'",
                                       timeout=self.ready_timeout * 1000, polling=200)
            except PlaywrightTimeout:
                raise SnapshotError(self._diagnose(page, problems)) from None
            return page.pdf(
                format=request.paper, landscape=request.landscape, print_background=True,
                display_header_footer=True, header_template="<span></span>",
                footer_template=FOOTER.format(label=request.period.label),
                margin={"top": "10mm", "bottom": "14mm", "left": "10mm", "right": "10mm"},
            )
        finally:
            page.close()

    def _diagnose(self, page: Any, problems: list[str]) -> str:
        try:
            state = page.evaluate("() => ({pending: window.cxReportPending || null, "
                                  "refused: document.body.innerText.includes("
                                  "'cannot be opened'), root: !!document.getElementById("
                                  "'report-root')})")
        except Exception:  # the page may be wedged: report what we know
            state = {}
        parts = [f"the report was not ready after {self.ready_timeout:.0f} s"]
        pending = state.get("pending") or {}
        if state.get("refused"):
            parts.append("the page refused the report token")
        elif not state.get("root"):
            parts.append("the report content never appeared")
        if pending.get("notDrawn"):
            parts.append("graphs not drawn: " + ", ".join(pending["notDrawn"]))
        if pending and pending.get("found") != pending.get("expected"):
            parts.append(f"{pending.get('found')} of {pending.get('expected')} graphs present")
        if pending.get("loading"):
            parts.append("a callback was still loading")
        if problems:
            parts.append("browser errors: " + " | ".join(p[:200] for p in problems[:3]))
        return "; ".join(parts)
