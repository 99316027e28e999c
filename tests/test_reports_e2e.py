"""End to end: the monthly job renders real PDFs with Chromium and a real SMTP server
receives them; each attachment's text holds its recipient's numbers, and only those."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from etl.delivery import add_subscription, deliver_monthly
from sqlalchemy import delete

from queries import schema
from queries.db import make_engine
from queries.periods import Month
from queries.scope import Scope
from queries.settings import ROOT, load_settings
from tests.test_delivery import REGIONS, smtp_server  # noqa: F401 - the SMTP fixture

pytestmark = pytest.mark.browser
PERIOD = Month(2026, 10)


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


def test_monthly_job_sends_each_recipient_their_own_pdf_once(demo_url: str, tmp_path: Path,
                                                             smtp_server) -> None:  # noqa: F811
    server = smtp_server()
    settings = load_settings(_env_file=None, database_url=demo_url, smtp_url=server.url,
                             secret_key="e2e-secret", cx_data_dir=str(tmp_path))
    engine = make_engine(demo_url)
    recipients = {"ceo-e2e@example.com": "ACME", "west-e2e@example.com": "R-WEST"}
    ids = []
    try:
        with engine.begin() as conn:
            ids = [add_subscription(conn, email=e, scope=Scope.of(u))
                   for e, u in recipients.items()]
        results = deliver_monthly(engine, settings, period=PERIOD, subscription_ids=ids)
        assert [r.status for r in results] == ["sent", "sent"], results
        assert len(server.inbox.messages) == 2
        for received in server.inbox.messages:
            (to,) = received.rcpt_tos
            unit = recipients[to]
            message = received.message
            (attachment,) = list(message.iter_attachments())
            assert attachment.get_content_type() == "application/pdf"
            pdf = attachment.get_content()
            assert pdf.startswith(b"%PDF-")
            text = _pdf_text(pdf, tmp_path / f"{unit}.pdf")
            for k in _cli(demo_url, unit)["kpis"]:
                row = next((ln for ln in text.splitlines()
                            if re.match(rf"\s*{re.escape(k['label'])}\s{{2,}}", ln)), None)
                assert row is not None and _shown(k) in row, (unit, k["label"], row)
            if unit == "R-WEST":
                for region, names in REGIONS.items():
                    if region != "R-WEST":
                        assert not any(name in text for name in names), region
        # The job again: everything is already sent, nothing goes out twice.
        again = deliver_monthly(engine, settings, period=PERIOD, subscription_ids=ids)
        assert all(r.status != "sent" for r in again)
        assert len(server.inbox.messages) == 2
    finally:
        with engine.begin() as conn:
            if ids:
                conn.execute(delete(schema.subscription).where(schema.subscription.c.id.in_(ids)))
        engine.dispose()
