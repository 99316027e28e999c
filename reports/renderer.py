"""Vector PDF snapshots of the report page, printed by headless Chromium, through one
bounded queue per process.

`SnapshotRenderer` opens `<base>/report?t=<signed token>` for each request (the base is the
web app: CX_RENDER_URL, else CX_BASE_URL, or a loopback server the caller runs), waits for
the page's explicit readiness signal (every graph drawn, no callback loading:
`assets/report.js`), then prints with Playwright's `page.pdf()`: selectable text, vector
charts, page numbers, and a footer naming the scope. One browser serves many renders: a
batch (the monthly job's recipients) starts Chromium once, and its pages share one browser
context, so the page's scripts (Plotly alone is megabytes) are fetched and compiled once, not
once per recipient; cookies are cleared after every render, and each recipient's scope
travels in its own token, never in the browser. A page
that never becomes ready raises SnapshotError naming what did not render; nothing
half-drawn is ever returned.

`RenderQueue` is the one way PDFs are made in a long-running process (the web workers'
Download PDF button, the scheduler's monthly job): a fixed number of renderers (one Chromium
each, started on first use and closed when idle), a short bounded wait, and a per-person
rate limit. Past those bounds it answers RenderBusy at once ("busy, try again") instead of
launching more browsers: a burst of clicks cannot exhaust the machine.

The base URL is never taken from a request (its Host header is the client's to choose): the
web worker renders against a loopback server of its own app (`LoopbackServer`), the
scheduler against the configured URL.
"""

from __future__ import annotations

import collections
import html
import logging
import os
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from auth import audit
from queries.settings import Settings
from reports.token import ReportRequest, make_token

log = logging.getLogger(__name__)

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run",
                 "--disable-quic", "--disable-dev-shm-usage", "--disable-extensions"]
# Printable width at 96 dpi with 10 mm margins, so charts are laid out at the size they print.
PAPER_WIDTH_PX = {("A4", True): 1047, ("A4", False): 718, ("Letter", True): 979,
                  ("Letter", False): 739}
FOOTER = ("<div style='font-size:8px;width:100%;padding:0 10mm;color:#666;"
          "font-family:DejaVu Sans,sans-serif;display:flex;justify-content:space-between'>"
          "<span>CX snapshot · {label}</span>"
          "<span>page <span class='pageNumber'></span> of <span class='totalPages'></span>"
          "</span></div>")
RATE_WINDOW_SECONDS = 60.0
TOKEN_HEADER = "X-CX-Report-Token"


class SnapshotError(RuntimeError):
    """The report did not render; the message says what did not render."""


class RenderBusy(RuntimeError):
    """Too many PDFs are being made (or this person asked for too many): try again later.
    The message is meant for the person who asked."""


def render_base_url(settings: Settings) -> str:
    """Where a process without its own server opens the report page: CX_RENDER_URL, else
    CX_BASE_URL (the web app)."""
    return settings.cx_render_url or settings.cx_base_url


class LoopbackServer:
    """A WSGI app (the dashboard's Flask server) on 127.0.0.1:<free port>, in a background
    thread of this process: the report page as this process serves it, at an address no
    request can redirect."""

    def __init__(self, wsgi_app: Any) -> None:
        from werkzeug.serving import make_server

        # Every asset request of the renderer would be an INFO line in the process's log.
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        def render_only(environ: dict, start_response: Any) -> Any:
            # This port exists for the renderer: only a report token opens anything here,
            # never a session cookie or a trusted proxy header (any local process can
            # reach a loopback port).
            environ["cx.render_only"] = True
            return wsgi_app(environ, start_response)

        self.server = make_server("127.0.0.1", 0, render_only, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True,
                                       name="report-loopback")
        self.thread.start()

    def close(self) -> None:
        """Stop serving."""
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> LoopbackServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class SnapshotRenderer:
    """One Chromium for many renders. A context manager, or `start()` / `close()`."""

    def __init__(self, settings: Settings, *, ready_timeout: float = 60.0,
                 base_url: str | None = None) -> None:
        self.settings = settings
        self.ready_timeout = ready_timeout
        self.base_url = (base_url or render_base_url(settings)).rstrip("/")
        self._pw: Any = None
        self._browser: Any = None
        self._contexts: list[Any] = []
        self.launches = 0
        """How many times Chromium was started (a batch should start it once)."""
        self.renders = 0
        self._thread: ThreadPoolExecutor | None = None
        self.last_used = time.monotonic()

    @property
    def started(self) -> bool:
        """Whether its Chromium is running."""
        return self._browser is not None

    def __enter__(self) -> SnapshotRenderer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> SnapshotRenderer:
        """Launch Chromium (SnapshotError when it is missing)."""
        if self._thread is None:
            # Playwright's sync API refuses a thread that runs an asyncio loop (a test
            # runner, an async server) and a second instance per thread: it gets its own.
            self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="snapshot")
        try:
            return self._thread.submit(self._start).result()
        except BaseException:
            self.close()
            raise

    def _start(self) -> SnapshotRenderer:
        if self._browser is not None:
            return self
        from playwright.sync_api import sync_playwright

        chromium = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
        if not os.path.exists(chromium):
            raise SnapshotError(f"Chromium not found at {chromium}: install it with "
                                "`apt-get install chromium` or set CHROMIUM_PATH")
        self._pw = sync_playwright().start()
        self._browser = self._pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        # Contexts live as long as the browser: their HTTP cache and compiled-script cache
        # keep the Dash and Plotly bundles (static, cacheable assets) between recipients.
        self._contexts = [self._browser.new_context()]
        self.launches += 1
        return self

    def close(self) -> None:
        """Close Chromium (it starts again on the next `start()`)."""
        if self._thread is None:
            return
        try:
            self._thread.submit(self._stop).result()
        finally:
            self._thread.shutdown(wait=True)
            self._thread = None

    @property
    def _context(self) -> Any:
        """The first slot's browser context (the one `render()` uses)."""
        return self._contexts[0] if self._contexts else None

    def _stop(self) -> None:
        self._contexts = []
        if self._browser is not None:
            try:
                self._browser.close()
            finally:
                self._browser = None
        if self._pw is not None:
            self._pw.stop()
            self._pw = None

    def render(self, request: ReportRequest) -> bytes:
        """The PDF of `request`, or SnapshotError when the page does not become ready."""
        if self._thread is None:
            raise SnapshotError("the renderer is not started (use it in a `with` block)")
        try:
            return self._thread.submit(self._render, request).result()
        finally:
            self.last_used = time.monotonic()

    def render_batch(self, requests: list[ReportRequest], *,
                     at_once: int = 2) -> list[bytes | SnapshotError]:
        """The PDFs of `requests` in order, `at_once` of them in flight: while Chromium draws
        and prints one recipient's report, the web app already computes the next one's.
        Each in-flight slot has its own reused browser context (its own cookies, shared by
        no other recipient at the same time). A recipient whose page fails gets its
        SnapshotError in its place; the others are still rendered."""
        if self._thread is None:
            raise SnapshotError("the renderer is not started (use it in a `with` block)")
        try:
            return self._thread.submit(self._render_batch, list(requests),
                                       max(1, at_once)).result()
        finally:
            self.last_used = time.monotonic()

    def _render(self, request: ReportRequest) -> bytes:
        result = self._render_batch([request], 1)[0]
        if isinstance(result, SnapshotError):
            raise result
        return result

    def _slot(self, index: int) -> Any:
        while len(self._contexts) <= index:
            self._contexts.append(self._browser.new_context())
        return self._contexts[index]

    def _render_batch(self, requests: list[ReportRequest],
                      at_once: int) -> list[bytes | SnapshotError]:
        if self._browser is None:
            raise SnapshotError("the renderer is not started (use it in a `with` block)")
        results: list[bytes | SnapshotError] = [SnapshotError("not rendered")] * len(requests)
        flying: collections.deque[tuple[int, int, Any]] = collections.deque()
        free = list(range(at_once - 1, -1, -1))
        upcoming = iter(enumerate(requests))

        def launch() -> None:
            for i, request in upcoming:
                slot = free.pop()
                try:
                    flying.append((i, slot, self._open(self._slot(slot), request)))
                except SnapshotError as exc:
                    results[i] = exc
                    self._done(slot)
                    free.append(slot)
                    continue
                return

        for _ in range(at_once):
            launch()
        while flying:
            i, slot, opened = flying.popleft()
            try:
                results[i] = self._finish(requests[i], *opened)
            except SnapshotError as exc:
                results[i] = exc
            finally:
                self._done(slot, opened[0])
                free.append(slot)
            launch()
        return results

    def _open(self, context: Any, request: ReportRequest) -> tuple[Any, list[str], Any]:
        """A new page on the report of `request`, navigation started (not waited for)."""
        from playwright.sync_api import Error as PlaywrightError

        token = make_token(self.settings.secret(), request)
        width = PAPER_WIDTH_PX.get((request.paper, request.landscape), 1047)
        page = context.new_page()
        page.set_viewport_size({"width": width, "height": 900})
        # Every request of the page (its callbacks too, not only the first GET) carries the
        # token, so the web app's sign-in can take it as the page's principal.
        page.set_extra_http_headers({TOKEN_HEADER: token})
        problems: list[str] = []
        page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: problems.append(str(e)))
        try:
            # "commit": the first bytes arrived; the page goes on loading while this thread
            # finishes another recipient's report.
            response = page.goto(f"{self.base_url}/report?t={token}", wait_until="commit",
                                 timeout=self.ready_timeout * 1000)
        except PlaywrightError as exc:
            page.close()
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise SnapshotError(f"the report page at {self.base_url} could not be "
                                f"opened (is the web app running there?): {first}") from None
        return page, problems, response

    def _finish(self, request: ReportRequest, page: Any, problems: list[str],
                response: Any) -> bytes:
        from playwright.sync_api import Error as PlaywrightError
        from playwright.sync_api import TimeoutError as PlaywrightTimeout

        if response is not None and response.status >= 400:
            raise SnapshotError(f"the report page answered HTTP {response.status}")
        try:
            # The page was only committed when this recipient's turn came: wait for its
            # document before asking it whether the report is drawn.
            page.wait_for_load_state("load", timeout=self.ready_timeout * 1000)
            page.wait_for_function("() => document.body.dataset.reportReady === 'true'",
                                   timeout=self.ready_timeout * 1000, polling=100)
        except PlaywrightTimeout:
            raise SnapshotError(self._diagnose(page, problems)) from None
        except PlaywrightError as exc:  # the page crashed or went away: this recipient only
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise SnapshotError(f"the report page failed: {first}") from None
        label = request.period.label + (f" · {request.label}" if request.label else "")
        return page.pdf(
            format=request.paper, landscape=request.landscape, print_background=True,
            display_header_footer=True, header_template="<span></span>",
            footer_template=FOOTER.format(label=html.escape(label)),
            margin={"top": "10mm", "bottom": "14mm", "left": "10mm", "right": "10mm"},
        )

    def _done(self, slot: int, page: Any = None) -> None:
        if page is not None:
            page.close()
        # Nothing a page was given may reach the next recipient's page in this slot.
        self._contexts[slot].clear_cookies()
        self.renders += 1

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


class RenderQueue:
    """The bounded renderer of a process: at most `concurrency` PDFs at once (one Chromium
    each, started on first use, closed after `idle_seconds` unused), at most `max_waiting`
    more waiting (up to `wait` seconds), at most `per_user` PDFs a minute and one at a time
    per person. Anything beyond raises RenderBusy at once.

    Also a context manager with `render()`, so the monthly job uses it as its renderer.
    """

    def __init__(self, settings: Settings, *, base_url: str | None = None,
                 concurrency: int | None = None, max_waiting: int | None = None,
                 per_user: int | None = None, ready_timeout: float = 60.0,
                 wait: float = 120.0, idle_seconds: float = 300.0,
                 factory: Callable[[], Any] | None = None) -> None:
        self.concurrency = concurrency or settings.cx_pdf_concurrency
        self.max_waiting = settings.cx_pdf_queue if max_waiting is None else max_waiting
        self.per_user = per_user or settings.cx_pdf_per_user
        self.wait = wait
        self.idle_seconds = idle_seconds
        make = factory or (lambda: SnapshotRenderer(settings, ready_timeout=ready_timeout,
                                                    base_url=base_url))
        self._all = [make() for _ in range(self.concurrency)]
        self._free: queue.Queue[Any] = queue.Queue()
        for r in self._all:
            self._free.put(r)
        self._admit = threading.BoundedSemaphore(self.concurrency + self.max_waiting)
        self._lock = threading.Lock()
        self._recent: dict[str, collections.deque[float]] = {}
        self._busy_people: set[str] = set()
        self._reaper: threading.Thread | None = None
        self._closed = threading.Event()

    def _check_person(self, who: str) -> None:
        now = time.monotonic()
        with self._lock:
            if who in self._busy_people:
                raise RenderBusy("Your previous PDF is still being made: wait for it, then "
                                 "try again.")
            recent = self._recent.setdefault(who, collections.deque())
            while recent and recent[0] <= now - RATE_WINDOW_SECONDS:
                recent.popleft()
            if len(recent) >= self.per_user:
                again = int(recent[0] + RATE_WINDOW_SECONDS - now) + 1
                raise RenderBusy(f"You asked for {len(recent)} PDFs in the last minute: try "
                                 f"again in {again} s.")
            recent.append(now)
            self._busy_people.add(who)

    def render(self, request: ReportRequest, *, who: str | None = None) -> bytes:
        """The PDF of `request`; RenderBusy when the queue is full, `who` (a person's key)
        asked too often, or no renderer came free in time; SnapshotError when it fails."""
        if self._closed.is_set():
            raise SnapshotError("the renderer is closed")
        if who is not None:
            self._check_person(who)
        try:
            if not self._admit.acquire(blocking=False):
                raise RenderBusy("Busy: other PDFs are being made right now. Try again in a "
                                 "minute.")
            try:
                try:
                    renderer = self._free.get(timeout=self.wait)
                except queue.Empty:
                    raise RenderBusy("Busy: no PDF renderer came free in time. Try again in "
                                     "a minute.") from None
                try:
                    if not renderer.started:
                        renderer.start()
                    return renderer.render(request)
                finally:
                    self._free.put(renderer)
                    self._start_reaper()
            finally:
                self._admit.release()
        finally:
            if who is not None:
                with self._lock:
                    self._busy_people.discard(who)

    def _start_reaper(self) -> None:
        if self._reaper is None and self.idle_seconds > 0:
            self._reaper = threading.Thread(target=self._reap, daemon=True,
                                            name="render-reaper")
            self._reaper.start()

    def _reap(self) -> None:
        # An idle web worker should hold no Chromium.
        while not self._closed.wait(min(self.idle_seconds, 30.0)):
            for _ in range(len(self._all)):
                try:
                    renderer = self._free.get_nowait()
                except queue.Empty:
                    break
                try:
                    if renderer.started and time.monotonic() - renderer.last_used \
                            > self.idle_seconds:
                        renderer.close()
                except Exception:
                    log.exception("closing an idle PDF renderer failed")
                finally:
                    self._free.put(renderer)

    def close(self) -> None:
        """Close every renderer's Chromium."""
        self._closed.set()
        for renderer in self._all:
            try:
                renderer.close()
            except Exception:
                log.exception("closing a PDF renderer failed")

    def __enter__(self) -> RenderQueue:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_WEB: dict[int, tuple[LoopbackServer, RenderQueue]] = {}
_WEB_LOCK = threading.Lock()


def web_queue(wsgi_app: Any, settings: Settings) -> RenderQueue:
    """The render queue of this web worker: one per process and app, rendering against a
    loopback server of `wsgi_app` itself (started on first use), never against an address
    taken from a request."""
    key = id(wsgi_app)
    with _WEB_LOCK:
        found = _WEB.get(key)
        if found is None:
            server = LoopbackServer(wsgi_app)
            found = (server, RenderQueue(settings, base_url=server.url, ready_timeout=90))
            _WEB[key] = found
            log.info("PDF renderer of process %d serves the report at %s", os.getpid(),
                     server.url)
        return found[1]


def render_audited(engine: Any, renderer: Any, request: ReportRequest, *,
                   who: str | None = None, actor: str | None = None,
                   user_id: int | None = None, target: str = "pdf") -> bytes:
    """`renderer.render(request)` (a RenderQueue: `who` is the person's rate-limit key),
    written to the audit log: 'ok' with the scope, 'denied' when busy, 'failed' with the
    reason. Errors are raised as they are."""
    detail = f"scope {','.join(request.scope.units)}, {request.period}"
    if request.filters:
        detail += f", filters {dict(request.filters)}"
    try:
        pdf = renderer.render(request, who=who) if who is not None else \
            renderer.render(request)
    except RenderBusy as exc:
        audit.record(engine, "pdf_render", actor=actor, user_id=user_id, outcome="denied",
                     target=target, detail=f"{detail}: {exc}")
        raise
    except Exception as exc:
        audit.record(engine, "pdf_render", actor=actor, user_id=user_id, outcome="failed",
                     target=target, detail=f"{detail}: {exc}"[:2000])
        raise
    audit.record(engine, "pdf_render", actor=actor, user_id=user_id, target=target,
                 detail=detail)
    return pdf
