"""Monthly snapshot emails through a real SMTP server (aiosmtpd): the numbers equal the CLI's,
a scope shows only its units, stale data is said first, and nothing is ever sent twice: not
on a rerun, not by two schedulers at once, not after a crash, not after a broken connection.

Subscriptions belong to users (executives here; scopes that follow a user are tested in
tests/test_reports_scope.py). Renderers here are tiny classes returning fixed PDF bytes (or
raising SnapshotError), plus the real SnapshotRenderer pointed at a page that never becomes
ready; the end-to-end PDF is tested in tests/test_reports_renderer.py.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import shutil
import subprocess
import threading
import time
from email.message import EmailMessage
from html.parser import HTMLParser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from aiosmtpd.smtp import AuthResult
from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy import Engine, insert, select, update

from auth.users import add_user, get_user_by_email
from queries import schema
from queries.__main__ import kpi_report
from queries.cron import cron_trigger
from queries.kpis import Filters, latest_full_month
from queries.periods import Month
from queries.scope import Scope, apply_scope
from queries.settings import load_settings
from reports.delivery import (
    CLAIM_TTL,
    MAX_ATTEMPTS,
    add_snapshot_jobs,
    claim,
    deliver_monthly,
    due_subscriptions,
    reset_delivery,
    retry_due,
    sync_snapshot_jobs,
)
from reports.mail import compose, send
from reports.renderer import SnapshotError, SnapshotRenderer
from reports.subscriptions import Subscription, add_subscription, remove_subscription
from tests.conftest import CHROMIUM, free_port
from tests.smtp_server import Inbox, Server

PERIOD = Month(2026, 10)
PDF = b"%PDF-1.4\n% a tiny stand-in for the snapshot\n%%EOF\n"
REGIONS = {"R-NORTH": ["North", "Leeds", "York", "Newcastle", "Manchester"],
           "R-SOUTH": ["South", "Brighton", "Southampton", "Canterbury", "Oxford"],
           "R-WEST": ["West", "Bristol", "Exeter", "Plymouth", "Cardiff"]}


# --------------------------------------------------------------------- SMTP server, renderers


class FixedPdf:
    """A renderer (context manager) returning fixed PDF bytes; counts opens and renders.
    `fail` maps a scope's first unit to the SnapshotError message its render raises."""

    def __init__(self, fail: dict[str, str] | None = None) -> None:
        self.fail = fail or {}
        self.opened = 0
        self.rendered: list[tuple[tuple[str, ...], str, str, bool]] = []

    def __call__(self, settings) -> FixedPdf:  # the factory
        return self

    def __enter__(self) -> FixedPdf:
        self.opened += 1
        return self

    def __exit__(self, *exc) -> None:
        pass

    def render(self, request) -> bytes:
        self.rendered.append((request.scope.units, str(request.period), request.paper,
                              request.landscape))
        if request.scope.units[0] in self.fail:
            raise SnapshotError(self.fail[request.scope.units[0]])
        return PDF


def make_settings(url: str, tmp_path: Path, smtp_url: str | None = None, **overrides):
    values = {"smtp_timeout": 5, **overrides}
    return load_settings(_env_file=None, database_url=url, smtp_url=smtp_url,
                         cx_base_url="https://cx.example.com", secret_key="d" * 40,
                         cx_data_dir=str(tmp_path), **values)


def db_url(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=False)


def add_units(engine: Engine) -> None:
    now = dt.datetime.now().replace(microsecond=0)
    rows = [("ACME", "Acme Home & Garden", "company", None), ("R-WEST", "West", "region", "ACME"),
            ("R-NORTH", "North", "region", "ACME"), ("S09", "Bristol", "store", "R-WEST")]
    with engine.begin() as conn:
        conn.execute(insert(schema.org_unit), [
            {"id": i, "name": n, "kind": k, "parent_id": p, "source": "test", "loaded_at": now}
            for i, n, k, p in rows])


def subscribe(engine: Engine, email_: str, *units: str, **kwargs) -> int:
    """A subscription of the user `email_` (an executive, made when missing) to `units`."""
    with engine.begin() as conn:
        if get_user_by_email(conn, email_) is None:
            add_user(conn, email=email_, role="executive")
        return add_subscription(conn, user=email_, scope=Scope.of(list(units)), **kwargs)


def row(engine: Engine, delivery_id: int | None = None, subscription_id: int | None = None):
    d = schema.delivery
    stmt = select(d)
    stmt = stmt.where(d.c.id == delivery_id) if delivery_id else stmt.where(
        d.c.subscription_id == subscription_id)
    with engine.connect() as conn:
        return conn.execute(stmt).one()


def set_row(engine: Engine, delivery_id: int, **values) -> None:
    with engine.begin() as conn:
        conn.execute(update(schema.delivery).where(schema.delivery.c.id == delivery_id)
                     .values(**values))


@pytest.fixture
def units(engine: Engine) -> Engine:
    add_units(engine)
    return engine


# --------------------------------------------------------------------------- HTML summary


class SummaryParser(HTMLParser):
    """Cells of the KPI table by KPI key and field, and the order of landmarks."""

    def __init__(self) -> None:
        super().__init__()
        self.cells: dict[str, dict[str, str]] = {}
        self.landmarks: list[str] = []
        self._kpi: str | None = None
        self._field: str | None = None

    def handle_starttag(self, tag, attrs) -> None:
        a = dict(attrs)
        if a.get("id"):
            self.landmarks.append(a["id"])
        if tag == "h1":
            self.landmarks.append("h1")
        if tag == "tr" and a.get("data-kpi"):
            self._kpi = a["data-kpi"]
            self.cells[self._kpi] = {}
        if tag == "td" and self._kpi and a.get("data-field"):
            self._field = a["data-field"]
            self.cells[self._kpi][self._field] = ""

    def handle_endtag(self, tag) -> None:
        if tag == "td":
            self._field = None
        if tag == "tr":
            self._kpi = None

    def handle_data(self, data) -> None:
        if self._kpi and self._field:
            self.cells[self._kpi][self._field] += data


def parse_html(message: EmailMessage) -> SummaryParser:
    parser = SummaryParser()
    parser.feed(message.get_body(("html",)).get_content())
    return parser


def shown_number(text: str) -> tuple[float, float]:
    """A number as written ('+34.2', '78.4%', '£1,234', '±3.1 pts') and half its last digit."""
    clean = text.replace("£", "").replace("±", "").replace(",", "")
    match = re.search(r"[-+]?\d+(?:\.(\d+))?", clean)
    assert match, f"no number in {text!r}"
    decimals = len(match.group(1) or "")
    return float(match.group(0)), 0.5 * 10 ** -decimals + 1e-9


def assert_shows(cell: str, value: float | None) -> None:
    if value is None:
        assert not re.search(r"\d", cell), cell
        return
    number, tolerance = shown_number(cell)
    assert abs(number - value) <= tolerance, (cell, value)


# ------------------------------------------------------------------- the email on the demo


def demo_subscription(unit: str) -> Subscription:
    return Subscription(id=41, email="ada@example.com", scope=Scope.of(unit), name="Ada Lovelace")


@pytest.mark.parametrize("unit", ["ACME", "R-WEST"])
def test_the_email_carries_the_cli_numbers_for_its_scope(demo_engine, demo_url, tmp_path,
                                                         smtp_server, unit) -> None:
    server = smtp_server()
    settings = make_settings(demo_url, tmp_path, server.url)
    sub = demo_subscription(unit)
    with demo_engine.connect() as conn:
        period = latest_full_month(conn)
        assert period == PERIOD
        message = compose(conn, settings, sub, period, PDF)
        report = kpi_report(conn, period=period, compare=None,
                            filters=apply_scope(conn, Filters(), sub.scope))
    send(settings, message)

    [got] = server.inbox.messages
    assert got.rcpt_tos == ["ada@example.com"]
    assert got.mail_from == "cx-dashboard@localhost"
    received = got.message
    name = "West" if unit == "R-WEST" else "Acme Home & Garden"
    assert received["Subject"] == f"CX snapshot · October 2026 · {name}"
    assert received["To"].addresses[0].addr_spec == "ada@example.com"
    assert received["Message-ID"] == "<cx-41-2026-10@cx.example.com>"
    [pdf] = list(received.iter_attachments())
    assert pdf.get_content_type() == "application/pdf"
    assert pdf.get_filename() == f"cx-snapshot-2026-10-{unit}.pdf"
    assert pdf.get_content() == PDF

    cells = parse_html(received).cells
    assert set(cells) == {k["key"] for k in report["kpis"]}
    for k in report["kpis"]:
        row_ = cells[k["key"]]
        assert k["label"] in row_["label"]
        if k["hidden"]:
            assert row_["value"] == "hidden" and row_["n"] == "—"
            continue
        assert_shows(row_["value"], k["value"])
        assert int(row_["n"].replace(",", "")) == k["n"]
        if k["moe"] is None:
            assert row_["moe"] == ""
        elif row_["moe"].startswith("95% CI "):  # a lopsided small-sample interval
            low, high = row_["moe"].removeprefix("95% CI ").split(" to ")
            assert_shows(low, k["low"])
            assert_shows(high, k["high"])
        else:
            assert_shows(row_["moe"], k["moe"])
        compare = k["compare"]
        if compare is None or compare["delta"] is None:
            assert row_["change"] == "no comparison"
        else:
            assert_shows(row_["change"], compare["delta"])
            assert row_["compare"] == Month.parse(compare["period"]).label
        if compare and compare["reason"]:
            assert row_["significance"] == "too few answers to test"
        else:
            assert row_["significance"] == {True: "significant", False: "not significant",
                                            None: ""}[compare["significant"] if compare
                                                      else None]
    html_text = received.get_body(("html",)).get_content()
    plain = received.get_body(("plain",)).get_content()
    for sig in report["signals"]:
        assert sig["text"] in plain
        assert sig["text"].replace("'", "&#x27;") in html_text
    assert f"https://cx.example.com/?period=2026-10&amp;unit={unit}" in html_text
    assert "Data warning" not in plain  # the demo sources loaded fine
    nps = next(k for k in report["kpis"] if k["key"] == "nps")
    assert f"{nps['n']:,}" in plain


def test_a_region_email_names_no_other_region(demo_engine, demo_url, tmp_path,
                                              smtp_server) -> None:
    server = smtp_server()
    settings = make_settings(demo_url, tmp_path, server.url)
    with demo_engine.connect() as conn:
        message = compose(conn, settings, demo_subscription("R-WEST"), PERIOD, PDF)
    send(settings, message)
    received = server.inbox.messages[0].message
    text = " ".join([received["Subject"], received.get_body(("plain",)).get_content(),
                     received.get_body(("html",)).get_content()])
    assert "West" in text
    for other in ("R-NORTH", "R-SOUTH"):
        for name in [other, *REGIONS[other]]:
            assert name not in text, name


def test_the_message_id_is_the_same_for_every_try(demo_engine, demo_url, tmp_path) -> None:
    settings = make_settings(demo_url, tmp_path)
    with demo_engine.connect() as conn:
        first = compose(conn, settings, demo_subscription("R-WEST"), PERIOD, PDF)
        second = compose(conn, settings, demo_subscription("R-WEST"), PERIOD, PDF)
    assert first["Message-ID"] == second["Message-ID"] == "<cx-41-2026-10@cx.example.com>"


def test_stale_data_is_said_first(units, tmp_path, smtp_server) -> None:
    server = smtp_server()
    settings = make_settings(db_url(units), tmp_path, server.url)
    now = dt.datetime.now().replace(microsecond=0)
    with units.begin() as conn:
        conn.execute(insert(schema.etl_run), [
            {"source": "loyalty", "started_at": now, "finished_at": now, "status": "success",
             "error": None},
            {"source": "surveys", "started_at": now - dt.timedelta(days=3),
             "finished_at": now - dt.timedelta(days=3), "status": "success", "error": None},
            {"source": "surveys", "started_at": now, "finished_at": now, "status": "failed",
             "error": "HTTP 503 from the survey API"},
        ])
    sub_id = subscribe(units, "ada@example.com", "R-WEST")
    [result] = deliver_monthly(units, settings, period=PERIOD, renderer_factory=FixedPdf())
    assert result.status == "sent" and result.stale_data
    assert row(units, result.delivery_id).stale_data is True

    received = server.inbox.messages[0].message
    plain = received.get_body(("plain",)).get_content().replace("\r\n", "\n")
    first = plain.split("\n\n")[0]
    assert first.startswith("Data warning") and "surveys" in first and "HTTP 503" in first
    assert "loyalty" not in first
    landmarks = parse_html(received).landmarks
    assert landmarks[0] == "cx-data-warning" and landmarks.index("h1") > 0
    assert received["X-CX-Data-Warning"] == "stale"
    assert sub_id == result.subscription_id


# ------------------------------------------------------------------------------ claiming


def test_a_sent_delivery_is_never_claimed_again(units) -> None:
    sub = subscribe(units, "ada@example.com", "R-WEST")
    first = claim(units, sub, PERIOD, "host-a:1")
    assert first is not None and row(units, first).attempts == 1
    assert claim(units, sub, PERIOD, "host-b:2") is None  # claimed just now: in progress
    set_row(units, first, status="sent", sent_at=dt.datetime.now())
    assert claim(units, sub, PERIOD, "host-b:2") is None
    set_row(units, first, claimed_at=dt.datetime.now() - dt.timedelta(days=3))
    assert claim(units, sub, PERIOD, "host-b:2") is None
    assert row(units, first).status == "sent"
    assert claim(units, sub, PERIOD.shift(1), "host-b:2") is not None  # next month: new row


def _race(engine: Engine, sub: int, n: int = 4) -> list[int | None]:
    barrier = threading.Barrier(n)
    results: list[int | None] = []

    def run(i: int) -> None:
        barrier.wait()
        results.append(claim(engine, sub, PERIOD, f"host:{i}"))

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def test_of_concurrent_claimers_exactly_one_wins(units) -> None:
    sub = subscribe(units, "ada@example.com", "R-WEST")
    results = _race(units, sub)
    assert sum(r is not None for r in results) == 1
    winner = next(r for r in results if r is not None)
    # A failed row with attempts left is taken over by exactly one of the racers, too.
    set_row(units, winner, status="failed", error="boom")
    results = _race(units, sub)
    assert sum(r is not None for r in results) == 1
    assert row(units, winner).attempts == 2 and row(units, winner).status == "claimed"


def test_failed_is_retried_until_attempts_run_out(units) -> None:
    sub = subscribe(units, "ada@example.com", "R-WEST")
    delivery = claim(units, sub, PERIOD, "a")
    set_row(units, delivery, status="failed", error="smtp down")
    assert claim(units, sub, PERIOD, "b") == delivery
    got = row(units, delivery)
    assert (got.status, got.attempts, got.claimed_by) == ("claimed", 2, "b")
    set_row(units, delivery, status="failed", attempts=MAX_ATTEMPTS)
    assert claim(units, sub, PERIOD, "c") is None
    # An admin's reset makes it sendable again.
    assert reset_delivery(units, delivery) == (sub, str(PERIOD))
    assert row(units, delivery).attempts == 0
    assert claim(units, sub, PERIOD, "c") == delivery


def test_a_crashed_claim_is_taken_over_after_30_minutes(units) -> None:
    sub = subscribe(units, "ada@example.com", "R-WEST")
    delivery = claim(units, sub, PERIOD, "dead-host:1")
    set_row(units, delivery, claimed_at=dt.datetime.now() - CLAIM_TTL + dt.timedelta(minutes=5))
    assert claim(units, sub, PERIOD, "b") is None  # young: its process may still be working
    set_row(units, delivery, claimed_at=dt.datetime.now() - CLAIM_TTL - dt.timedelta(minutes=1))
    assert claim(units, sub, PERIOD, "b") == delivery
    got = row(units, delivery)
    assert (got.status, got.attempts, got.claimed_by) == ("claimed", 2, "b")


def test_sending_is_never_retried_automatically(units, tmp_path, smtp_server) -> None:
    server = smtp_server()
    settings = make_settings(db_url(units), tmp_path, server.url)
    sub = subscribe(units, "ada@example.com", "R-WEST")
    delivery = claim(units, sub, PERIOD, "crashed:1")
    set_row(units, delivery, status="sending",
            claimed_at=dt.datetime.now() - dt.timedelta(hours=2))
    assert claim(units, sub, PERIOD, "b") is None
    got = row(units, delivery)
    assert got.status == "sending" and got.attempts == 1
    assert got.error.startswith("interrupted while sending")
    assert f"deliveries retry {delivery}" in got.error
    [result] = deliver_monthly(units, settings, period=PERIOD, renderer_factory=FixedPdf())
    assert result.status == "skipped" and server.inbox.messages == []
    # The admin checked: it never arrived. `deliveries retry` resets it and it goes out once.
    reset_delivery(units, delivery)
    [result] = deliver_monthly(units, settings, period=PERIOD, renderer_factory=FixedPdf())
    assert result.status == "sent" and len(server.inbox.messages) == 1


# --------------------------------------------------------------------------- the monthly run


def test_running_the_monthly_job_twice_sends_once(units, tmp_path, smtp_server) -> None:
    server = smtp_server()
    settings = make_settings(db_url(units), tmp_path, server.url)
    subs = {subscribe(units, "ceo@example.com", "ACME", name="The CEO"): "ceo@example.com",
            subscribe(units, "west@example.com", "R-WEST", paper="Letter",
                      landscape=False): "west@example.com",
            subscribe(units, "north@example.com", "R-NORTH"): "north@example.com"}
    renderer = FixedPdf()
    first = deliver_monthly(units, settings, period=PERIOD, renderer_factory=renderer)
    assert [r.status for r in first] == ["sent"] * 3
    assert renderer.opened == 1 and len(renderer.rendered) == 3  # one browser for all
    assert (("R-WEST",), "2026-10", "Letter", False) in renderer.rendered
    second = deliver_monthly(units, settings, period=PERIOD, renderer_factory=renderer)
    assert [r.status for r in second] == ["skipped"] * 3
    assert renderer.opened == 1  # nothing to send: no browser started
    got = sorted(m.rcpt_tos[0] for m in server.inbox.messages)
    assert got == sorted(subs.values())
    for r in first:
        delivery = row(units, r.delivery_id)
        assert (delivery.status, delivery.attempts) == ("sent", 1)
        assert delivery.sent_at is not None
        assert delivery.message_id == f"<cx-{r.subscription_id}-2026-10@cx.example.com>"


def test_two_schedulers_at_once_send_once(units, tmp_path, smtp_server) -> None:
    server = smtp_server()
    settings = make_settings(db_url(units), tmp_path, server.url)
    for i in range(4):
        subscribe(units, f"m{i}@example.com", "R-WEST" if i % 2 else "R-NORTH")
    results: list = []
    barrier = threading.Barrier(2)

    def scheduler() -> None:
        barrier.wait()
        results.extend(deliver_monthly(units, settings, period=PERIOD,
                                       renderer_factory=FixedPdf()))

    threads = [threading.Thread(target=scheduler) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(r.status for r in results) == ["sent"] * 4 + ["skipped"] * 4
    assert sorted(m.rcpt_tos[0] for m in server.inbox.messages) == [
        f"m{i}@example.com" for i in range(4)]


def test_smtp_down_on_the_first_try_then_up_sends_one(units, tmp_path, smtp_server,
                                                      caplog) -> None:
    port = free_port()  # nothing listens here yet
    settings = make_settings(db_url(units), tmp_path, f"smtp://127.0.0.1:{port}")
    subscribe(units, "ada@example.com", "R-WEST")
    waits: list[float] = []
    servers: list[Server] = []

    def sleep(seconds: float) -> None:  # the backoff: the server comes up meanwhile
        waits.append(seconds)
        servers.append(smtp_server(port=port))

    with caplog.at_level(logging.WARNING, logger="reports.delivery"):
        [result] = deliver_monthly(units, settings, period=PERIOD, renderer_factory=FixedPdf(),
                                   sleep=sleep)
    assert waits == [1.0]
    assert result.status == "sent" and result.attempts == 2
    assert len(servers[0].inbox.messages) == 1
    delivery = row(units, result.delivery_id)
    assert (delivery.status, delivery.attempts) == ("sent", 2)
    assert delivery.error.startswith("attempt 1 failed: ConnectionRefusedError")
    assert any("attempt 1 failed" in r.getMessage() and r.levelno == logging.WARNING
               for r in caplog.records)
    # Rerun: nothing more.
    deliver_monthly(units, settings, period=PERIOD, renderer_factory=FixedPdf(), sleep=sleep)
    assert len(servers[0].inbox.messages) == 1 and waits == [1.0]


def test_smtp_down_throughout_fails_after_max_attempts(units, tmp_path) -> None:
    settings = make_settings(db_url(units), tmp_path, f"smtp://127.0.0.1:{free_port()}")
    subscribe(units, "ada@example.com", "R-WEST")
    waits: list[float] = []
    [result] = deliver_monthly(units, settings, period=PERIOD, renderer_factory=FixedPdf(),
                               sleep=waits.append)
    assert waits == [1.0, 4.0]
    delivery = row(units, result.delivery_id)
    assert (delivery.status, delivery.attempts) == ("failed", MAX_ATTEMPTS)
    assert "attempt 3 failed: ConnectionRefusedError" in delivery.error
    assert claim(units, delivery.subscription_id, PERIOD, "later") is None


def test_a_permanent_refusal_is_not_retried(units, tmp_path, smtp_server) -> None:
    server = smtp_server(inbox=Inbox(reply="554 5.7.1 Message rejected as spam"))
    settings = make_settings(db_url(units), tmp_path, server.url)
    subscribe(units, "ada@example.com", "R-WEST")
    waits: list[float] = []
    [result] = deliver_monthly(units, settings, period=PERIOD, renderer_factory=FixedPdf(),
                               sleep=waits.append)
    assert waits == [] and result.status == "failed" and result.attempts == 1
    assert "554" in row(units, result.delivery_id).error


def test_a_snapshot_that_does_not_render_sends_nothing(units, tmp_path, smtp_server) -> None:
    server = smtp_server()
    settings = make_settings(db_url(units), tmp_path, server.url)
    subscribe(units, "west@example.com", "R-WEST")
    subscribe(units, "north@example.com", "R-NORTH")
    renderer = FixedPdf(fail={"R-WEST": "the report was not ready after 60 s; graphs not "
                                        "drawn: report-trend"})
    results = {r.email: r for r in deliver_monthly(units, settings, period=PERIOD,
                                                   renderer_factory=renderer)}
    assert results["west@example.com"].status == "failed"
    assert results["north@example.com"].status == "sent"  # one failure stops no other
    delivery = row(units, results["west@example.com"].delivery_id)
    assert delivery.status == "failed" and delivery.attempts == 1
    assert "graphs not drawn: report-trend" in delivery.error
    assert [m.rcpt_tos for m in server.inbox.messages] == [["north@example.com"]]


class NeverReady(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"<!DOCTYPE html><html><body><p>Loading forever</p></body></html>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


@pytest.mark.browser
def test_the_real_renderer_on_a_page_never_ready_sends_nothing(units, tmp_path,
                                                              smtp_server) -> None:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"Chromium not found at {CHROMIUM}: `make test` installs it")
    server = smtp_server()
    settings = make_settings(db_url(units), tmp_path, server.url)
    subscribe(units, "west@example.com", "R-WEST")
    web = ThreadingHTTPServer(("127.0.0.1", 0), NeverReady)
    threading.Thread(target=web.serve_forever, daemon=True).start()
    try:
        [result] = deliver_monthly(
            units, settings, period=PERIOD, renderer_factory=lambda s: SnapshotRenderer(
                s, ready_timeout=1.5, base_url=f"http://127.0.0.1:{web.server_port}"))
    finally:
        web.shutdown()
    assert result.status == "failed"
    assert "the report was not ready after" in result.error
    assert row(units, result.delivery_id).status == "failed"
    assert server.inbox.messages == []


def test_a_connection_lost_after_data_is_not_sent_again(units, tmp_path, smtp_server) -> None:
    # The server takes the message but answers after the client gave up: it did go out.
    server = smtp_server(inbox=Inbox(delay=1.5))
    settings = make_settings(db_url(units), tmp_path, server.url, smtp_timeout=0.5)
    subscribe(units, "ada@example.com", "R-WEST")
    waits: list[float] = []
    [result] = deliver_monthly(units, settings, period=PERIOD, renderer_factory=FixedPdf(),
                               sleep=waits.append)
    assert result.status == "uncertain" and waits == []
    delivery = row(units, result.delivery_id)
    assert delivery.status == "sending" and "may have been delivered" in delivery.error
    assert len(server.inbox.messages) == 1
    [again] = deliver_monthly(units, settings, period=PERIOD, renderer_factory=FixedPdf())
    assert again.status == "skipped"
    # Hours later it is still left alone, and still says why.
    set_row(units, result.delivery_id, claimed_at=dt.datetime.now() - dt.timedelta(hours=5))
    assert claim(units, delivery.subscription_id, PERIOD, "later") is None
    assert "may have been delivered" in row(units, result.delivery_id).error
    time.sleep(0.2)
    assert len(server.inbox.messages) == 1


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
def test_login_with_the_credentials_of_smtp_url(units, tmp_path, smtp_server) -> None:
    def authenticator(server, session, envelope, mechanism, auth_data) -> AuthResult:
        ok = (auth_data.login, auth_data.password) == (b"cx", b"p@ss w")
        # handled=False: the server itself answers (235 or 535).
        return AuthResult(success=ok, handled=False, auth_data=auth_data)

    server = smtp_server(authenticator=authenticator, auth_required=True,
                         auth_require_tls=False)
    subscribe(units, "ada@example.com", "R-WEST")
    wrong = make_settings(db_url(units), tmp_path, f"smtp://cx:nope@127.0.0.1:{server.port}")
    [result] = deliver_monthly(units, wrong, period=PERIOD, renderer_factory=FixedPdf(),
                               sleep=lambda s: None)
    assert result.status == "failed" and result.attempts == 1  # 535: not worth retrying
    assert "SMTPAuthenticationError: 535" in result.error
    right = make_settings(db_url(units), tmp_path,
                          f"smtp://cx:p%40ss%20w@127.0.0.1:{server.port}")
    [result] = deliver_monthly(units, right, period=PERIOD, renderer_factory=FixedPdf())
    assert result.status == "sent" and result.attempts == 2
    assert [m.login for m in server.inbox.messages] == [b"cx"]


@pytest.fixture
def certificate(tmp_path: Path, monkeypatch) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1, trusted by this process's TLS clients."""
    if not shutil.which("openssl"):
        pytest.fail("openssl not installed: apt-get install openssl")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2", "-subj",
                    "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    return cert, key


def test_starttls_and_smtps(units, tmp_path, smtp_server, certificate) -> None:
    import ssl

    cert, key = certificate
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    starttls = smtp_server(tls_context=context, require_starttls=True)
    implicit = smtp_server(ssl_context=context)
    west = subscribe(units, "west@example.com", "R-WEST")
    north = subscribe(units, "north@example.com", "R-NORTH")
    settings = make_settings(db_url(units), tmp_path,
                             f"smtp://127.0.0.1:{starttls.port}?starttls=true")
    [result] = deliver_monthly(units, settings, period=PERIOD, renderer_factory=FixedPdf(),
                               subscription_ids=[west])
    assert result.status == "sent", result.error
    settings = make_settings(db_url(units), tmp_path, f"smtps://127.0.0.1:{implicit.port}")
    [result] = deliver_monthly(units, settings, period=PERIOD, renderer_factory=FixedPdf(),
                               subscription_ids=[north])
    assert result.status == "sent", result.error
    assert [m.rcpt_tos for m in starttls.inbox.messages] == [["west@example.com"]]
    assert [m.rcpt_tos for m in implicit.inbox.messages] == [["north@example.com"]]


def test_no_smtp_url_is_a_settings_error_before_any_claim(units, tmp_path) -> None:
    from queries.settings import SettingsError

    subscribe(units, "ada@example.com", "R-WEST")
    with pytest.raises(SettingsError, match="SMTP_URL"):
        deliver_monthly(units, make_settings(db_url(units), tmp_path), period=PERIOD,
                        renderer_factory=FixedPdf())
    with units.connect() as conn:
        assert conn.execute(select(schema.delivery)).all() == []


# ----------------------------------------------------------------------------- scheduling


def test_cron_weekdays_mean_what_crontab_means() -> None:
    tz = ZoneInfo("Europe/London")
    sunday = dt.datetime(2026, 11, 22, 12, tzinfo=tz)
    for line, weekday in (("0 7 * * 1", "Mon"), ("0 7 * * 0", "Sun"), ("0 7 * * 7", "Sun"),
                          ("0 7 * * mon", "Mon"), ("0 7 * * 6", "Sat")):
        fire = cron_trigger(line, tz).get_next_fire_time(None, sunday)
        assert f"{fire:%a}" == weekday, line
    weekdays = cron_trigger("0 7 * * 1-5", tz)
    fire, days = sunday, []
    for _ in range(6):
        fire = weekdays.get_next_fire_time(None, fire + dt.timedelta(minutes=1))
        days.append(f"{fire:%a}")
    assert days == ["Mon", "Tue", "Wed", "Thu", "Fri", "Mon"]


def test_scheduler_jobs_per_schedule_and_an_hourly_retry(units, tmp_path) -> None:
    settings = make_settings(db_url(units), tmp_path, "smtp://127.0.0.1:25")
    subscribe(units, "a@example.com", "ACME")
    subscribe(units, "b@example.com", "R-WEST")
    weekly = subscribe(units, "c@example.com", "R-NORTH", schedule="30 6 * * 1")
    tz = ZoneInfo("Europe/London")
    scheduler = BackgroundScheduler(timezone=tz)
    assert add_snapshot_jobs(scheduler, settings, units) == ["0 7 1 * *", "30 6 * * 1"]
    jobs = {j.id: j for j in scheduler.get_jobs()}
    assert set(jobs) == {"snapshot:cron:0 7 1 * *", "snapshot:cron:30 6 * * 1",
                         "snapshot:retry"}
    start = dt.datetime(2026, 11, 22, 12, tzinfo=tz)
    monthly = jobs["snapshot:cron:0 7 1 * *"]
    assert monthly.trigger.get_next_fire_time(None, start) == dt.datetime(2026, 12, 1, 7,
                                                                          tzinfo=tz)
    assert str(monthly.trigger.timezone) == "Europe/London"
    assert monthly.coalesce is True and monthly.misfire_grace_time >= 3600
    assert monthly.args[2] == "0 7 1 * *"
    assert jobs["snapshot:cron:30 6 * * 1"].trigger.get_next_fire_time(None, start) == \
        dt.datetime(2026, 11, 23, 6, 30, tzinfo=tz)
    retry = jobs["snapshot:retry"].trigger
    first = retry.get_next_fire_time(None, start)
    assert retry.get_next_fire_time(first, first + dt.timedelta(seconds=1)) - first == \
        dt.timedelta(hours=1)
    with units.begin() as conn:
        remove_subscription(conn, weekly)
    assert sync_snapshot_jobs(scheduler, settings, units) == ["0 7 1 * *"]
    assert {j.id for j in scheduler.get_jobs()} == {"snapshot:cron:0 7 1 * *",
                                                    "snapshot:retry"}


def test_the_hourly_job_catches_up_and_retries(units, tmp_path, smtp_server) -> None:
    server = smtp_server()
    settings = make_settings(db_url(units), tmp_path, server.url)
    tz = ZoneInfo(settings.cx_timezone)
    this_month = Month.of(dt.datetime.now(tz).date())
    nxt = this_month.shift(1)
    now = dt.datetime(nxt.year, nxt.month, 1, 9, 23, tzinfo=tz)  # the 1st, 09:23
    on_time = subscribe(units, "a@example.com", "ACME")
    subscribe(units, "later@example.com", "R-WEST", schedule="0 7 2 * *")  # due tomorrow
    subscribe(units, "new@example.com", "R-NORTH",  # subscribed after the 07:00 run
              now=dt.datetime(nxt.year, nxt.month, 1, 8, 30, tzinfo=tz).astimezone()
              .replace(tzinfo=None))
    period, due = due_subscriptions(units, settings, now=now)
    assert (period, due) == (this_month, [on_time])
    renderer = FixedPdf(fail={"ACME": "the report was not ready"})
    [failed] = retry_due(units, settings, renderer_factory=renderer, now=now)
    assert failed.status == "failed" and failed.period == str(this_month)
    renderer.fail = {}
    [sent] = retry_due(units, settings, renderer_factory=renderer, now=now)  # next hour
    assert sent.status == "sent" and sent.attempts == 2
    assert retry_due(units, settings, renderer_factory=renderer, now=now) == []
    assert [m.rcpt_tos for m in server.inbox.messages] == [["a@example.com"]]


def test_a_renderer_that_cannot_start_is_started_once(units, tmp_path, smtp_server) -> None:
    server = smtp_server()
    settings = make_settings(db_url(units), tmp_path, server.url)
    subscribe(units, "west@example.com", "R-WEST")
    subscribe(units, "north@example.com", "R-NORTH")
    starts: list[int] = []

    def factory(settings_):
        starts.append(1)
        raise SnapshotError("Chromium not found at /nowhere")

    results = deliver_monthly(units, settings, period=PERIOD, renderer_factory=factory)
    assert [r.status for r in results] == ["failed", "failed"] and len(starts) == 1
    assert all("Chromium not found" in r.error for r in results)
    assert server.inbox.messages == []
