"""End to end: the monthly job renders real PDFs with Chromium through the running web app
(gunicorn at CX_BASE_URL, as the scheduler does) and a real SMTP server receives them; each
attachment's text holds its recipient's numbers, and only those, in the scope its user holds
at send time, and says which scope that is."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import delete, func, select

from auth.users import add_user, set_scope
from queries import schema
from queries.db import make_engine
from queries.periods import Month
from queries.settings import ROOT, load_settings
from reports.delivery import deliver_monthly
from reports.subscriptions import add_subscription
from tests.test_reports_delivery import REGIONS

pytestmark = pytest.mark.browser
PERIOD = Month(2026, 10)
WEST_STORES = {"S09": "Bristol", "S10": "Exeter", "S11": "Plymouth", "S12": "Cardiff"}


def _cli(url: str, unit: str) -> dict:
    out = subprocess.run([sys.executable, "-m", "queries", "kpis", "--json", "--period",
                          str(PERIOD), "--unit", unit], cwd=ROOT,
                         env={**os.environ, "DATABASE_URL": url}, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def _shown(k: dict) -> str:
    from queries.formatting import fmt_value
    from queries.kpis import Kpi

    return fmt_value(Kpi(**{f: k[f] for f in ("key", "label", "unit", "period", "value", "n",
                                              "moe", "hidden")}))


def _pdf_text(pdf: bytes, path: Path) -> str:
    path.write_bytes(pdf)
    return subprocess.run(["pdftotext", "-layout", str(path), "-"], capture_output=True,
                          text=True, check=True).stdout


def _assert_numbers_of(text: str, demo_url: str, unit: str) -> None:
    table = text[text.index("Every measure"):]  # page 2, after the cards
    for k in _cli(demo_url, unit)["kpis"]:
        row = next((ln for ln in table.splitlines()
                    if re.match(rf"\s*{re.escape(k['label'])}\s{{2,}}", ln)), None)
        assert row is not None and _shown(k) in row, (unit, k["label"], row)


@pytest.fixture
def people(demo_url: str):
    """Users on the demo database, removed afterwards with their subscriptions, deliveries
    and audit entries (the demo database is shared by the session)."""
    engine = make_engine(demo_url)
    log = schema.audit_log
    with engine.connect() as conn:
        first_log = conn.execute(select(func.coalesce(func.max(log.c.id), 0))).scalar_one()
    made: list[int] = []

    def add(email: str, role: str, scope: list[str] | None = None) -> int:
        with engine.begin() as conn:
            made.append(add_user(conn, email=email, role=role, scope=scope).id)
        return made[-1]

    yield engine, add
    with engine.begin() as conn:
        conn.execute(delete(schema.app_user).where(schema.app_user.c.id.in_(made)))
        conn.execute(delete(log).where(log.c.id > first_log))
    engine.dispose()


def test_monthly_job_sends_each_recipient_their_own_pdf_once(demo_url: str, served_demo: str,
                                                             tmp_path: Path, people,
                                                             smtp_server) -> None:
    engine, add = people
    server = smtp_server()
    # The scheduler's settings: it renders through the web app at CX_BASE_URL.
    settings = load_settings(_env_file=None, database_url=demo_url, smtp_url=server.url,
                             secret_key="test-secret-key-0123456789abcdefghij",
                             cx_data_dir=str(tmp_path), cx_base_url=served_demo)
    add("ceo-e2e@example.com", "executive")
    add("west-e2e@example.com", "manager", ["R-WEST"])
    recipients = {"ceo-e2e@example.com": "ACME", "west-e2e@example.com": "R-WEST"}
    with engine.begin() as conn:
        ids = [add_subscription(conn, user=e) for e in recipients]  # their whole scope
    results = deliver_monthly(engine, settings, period=PERIOD, subscription_ids=ids)
    assert [r.status for r in results] == ["sent", "sent"], results
    assert len(server.inbox.messages) == 2
    for received in server.inbox.messages:
        (to,) = received.rcpt_tos
        unit = recipients[to]
        (attachment,) = list(received.message.iter_attachments())
        assert attachment.get_content_type() == "application/pdf"
        pdf = attachment.get_content()
        assert pdf.startswith(b"%PDF-")
        text = _pdf_text(pdf, tmp_path / f"{unit}.pdf")
        _assert_numbers_of(text, demo_url, unit)
        name = "West" if unit == "R-WEST" else "Acme Home & Garden"
        # The PDF says the scope it was rendered for, and for whom (the footer).
        assert f"Scope: {name}" in text and f"for {to}" in text
        if unit == "R-WEST":
            for region, names in REGIONS.items():
                if region != "R-WEST":
                    assert not any(n in text for n in names), region
    # The job again: everything is already sent, nothing goes out twice.
    again = deliver_monthly(engine, settings, period=PERIOD, subscription_ids=ids)
    assert all(r.status != "sent" for r in again)
    assert len(server.inbox.messages) == 2


def test_a_subscription_pdf_follows_its_users_current_scope(demo_url: str, served_demo: str,
                                                            tmp_path: Path, people,
                                                            smtp_server) -> None:
    engine, add = people
    server = smtp_server()
    settings = load_settings(_env_file=None, database_url=demo_url, smtp_url=server.url,
                             secret_key="test-secret-key-0123456789abcdefghij",
                             cx_data_dir=str(tmp_path), cx_base_url=served_demo)
    manager = add("shrinks-e2e@example.com", "manager", ["R-WEST"])
    with engine.begin() as conn:
        whole = add_subscription(conn, user=manager)  # follows the user's scope
        region = add_subscription(conn, user=manager, scope=["R-WEST"],
                                  email="shrinks-e2e@example.com", name="West pack")
        # Since subscribing, the manager moved to one store of the region.
        set_scope(conn, manager, ["S09"])
    results = deliver_monthly(engine, settings, period=PERIOD, subscription_ids=[whole, region])
    assert [r.status for r in results] == ["sent", "sent"], results
    assert len(server.inbox.messages) == 2
    for i, received in enumerate(server.inbox.messages):
        message = received.message
        assert message["Subject"] == "CX snapshot · October 2026 · Bristol"
        (attachment,) = list(message.iter_attachments())
        assert attachment.get_filename() == "cx-snapshot-2026-10-S09.pdf"
        text = _pdf_text(attachment.get_content(), tmp_path / f"shrunk-{i}.pdf")
        assert "Scope: Bristol" in text
        _assert_numbers_of(text, demo_url, "S09")
        for other in ("Exeter", "Plymouth", "Cardiff", "North", "South"):
            assert other not in text, other
    with engine.connect() as conn:
        renders = conn.execute(select(schema.audit_log).where(
            schema.audit_log.c.action == "pdf_render",
            schema.audit_log.c.user_id == manager)).all()
    assert [(r.outcome, r.actor) for r in renders] == [("ok", "scheduler")] * 2
    assert all("scope S09 (Bristol)" in r.detail for r in renders)
