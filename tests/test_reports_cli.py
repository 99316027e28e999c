"""`python -m dashboard subscriptions|deliveries|send-monthly`: a round trip, and clear errors
(exit 2, the field named) for bad input; and the admin page's writes through the same code."""

from __future__ import annotations

import datetime as dt
import importlib
import os
import subprocess
import sys

import pytest
from etl.delivery import claim
from flask import Flask
from sqlalchemy import Engine, insert, select, update

from dashboard.__main__ import main
from queries import schema
from queries.settings import ROOT, get_settings, load_settings


def add_units(engine: Engine) -> None:
    now = dt.datetime.now().replace(microsecond=0)
    rows = [("ACME", "Acme Home & Garden", "company", None), ("R-WEST", "West", "region", "ACME"),
            ("S09", "Bristol", "store", "R-WEST")]
    with engine.begin() as conn:
        conn.execute(insert(schema.org_unit), [
            {"id": i, "name": n, "kind": k, "parent_id": p, "source": "test", "loaded_at": now}
            for i, n, k, p in rows])


@pytest.fixture
def cli(engine: Engine, tmp_path, monkeypatch):
    """`python -m dashboard` (run in-process by `call`) on the test database."""
    add_units(engine)
    monkeypatch.setenv("DATABASE_URL", engine.url.render_as_string(hide_password=False))
    monkeypatch.setenv("CX_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("SMTP_URL", raising=False)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def call(capsys, *args: str) -> tuple[int, str, str]:
    """Run `python -m dashboard ARGS` in-process: (exit code, stdout, stderr)."""
    try:
        code = main(list(args))
    except SystemExit as exc:  # argparse's own errors
        code = int(exc.code or 0)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_add_list_remove_round_trip(cli, capsys, engine) -> None:
    code, out, _ = call(capsys, "subscriptions", "list")
    assert code == 0 and "no subscriptions" in out
    code, out, err = call(capsys, "subscriptions", "add", "--email", "Ada@Example.COM",
                          "--unit", "R-WEST", "--unit", "S09", "--name", "Ada Lovelace")
    assert code == 0, err
    assert "subscription 1 added: Ada@example.com gets R-WEST, S09" in out
    code, out, err = call(capsys, "subscriptions", "add", "--email", "ceo@example.com",
                          "--unit", "ACME", "--paper", "Letter", "--portrait",
                          "--schedule", "0 6 1 * *")
    assert code == 0, err
    code, out, _ = call(capsys, "subscriptions", "list")
    assert code == 0
    lines = out.splitlines()
    assert "Ada@example.com" in lines[1] and "R-WEST,S09" in lines[1]
    assert "A4" in lines[1] and "landscape" in lines[1] and "0 7 1 * *" in lines[1]
    assert "Letter" in lines[2] and "portrait" in lines[2] and "0 6 1 * *" in lines[2]
    with engine.connect() as conn:
        stored = conn.execute(select(schema.subscription).order_by(schema.subscription.c.id)
                              ).all()
    assert [(s.email, s.scope, s.paper, s.landscape, s.schedule) for s in stored] == [
        ("Ada@example.com", "R-WEST,S09", "A4", True, "0 7 1 * *"),
        ("ceo@example.com", "ACME", "Letter", False, "0 6 1 * *")]
    assert call(capsys, "subscriptions", "remove", "1")[:2] == (0, "subscription 1 removed\n")
    code, out, _ = call(capsys, "subscriptions", "list")
    assert "Ada@example.com" not in out and "ceo@example.com" in out
    code, _, err = call(capsys, "subscriptions", "remove", "1")
    assert code == 2 and "no subscription with id 1" in err


@pytest.mark.parametrize(("args", "message"), [
    (["--email", "not-an-email", "--unit", "R-WEST"], "email: 'not-an-email' is not an email"),
    (["--email", "a@example.com", "--unit", "R-EAST"], "scope: unknown org unit(s) ['R-EAST']"),
    (["--email", "a@example.com", "--unit", "R-WEST", "--schedule", "0 7 32 * *"],
     "schedule: '0 7 32 * *' is not a cron line"),
    (["--email", "a@example.com", "--unit", "R-WEST", "--schedule", "monthly"],
     "expected 5 fields"),
    (["--email", "a@example.com", "--unit", "R-WEST", "--paper", "A3"], "--paper"),
    (["--email", "a@example.com"], "--unit"),
])
def test_bad_input_is_refused_clearly(cli, capsys, engine, args, message) -> None:
    code, _, err = call(capsys, "subscriptions", "add", *args)
    assert code == 2
    assert message in err
    assert "Traceback" not in err
    with engine.connect() as conn:
        assert conn.execute(select(schema.subscription)).all() == []


def test_a_duplicate_subscription_is_refused(cli, capsys) -> None:
    assert call(capsys, "subscriptions", "add", "--email", "a@example.com", "--unit",
                "R-WEST")[0] == 0
    code, _, err = call(capsys, "subscriptions", "add", "--email", "a@example.com", "--unit",
                        "R-WEST")
    assert code == 2 and "already has a subscription to R-WEST (id 1)" in err


def test_deliveries_list_and_retry(cli, capsys, engine) -> None:
    assert call(capsys, "subscriptions", "add", "--email", "a@example.com", "--unit",
                "R-WEST")[0] == 0
    assert call(capsys, "deliveries")[1] == "no deliveries\n"
    delivery = claim(engine, 1, "2026-10", "crashed-host:1")
    with engine.begin() as conn:
        conn.execute(update(schema.delivery).values(
            status="sending", claimed_at=dt.datetime.now() - dt.timedelta(hours=3),
            error="interrupted while sending"))
    code, out, _ = call(capsys, "deliveries", "--period", "2026-10")
    assert code == 0
    assert f"{delivery:>5}  2026-10" in out and "a@example.com" in out and "sending" in out
    assert "interrupted while sending" in out
    assert call(capsys, "deliveries", "--period", "2026-09")[1] == "no deliveries for 2026-09\n"
    code, out, _ = call(capsys, "deliveries", "retry", str(delivery), "--no-send")
    assert code == 0 and f"delivery {delivery} reset" in out
    with engine.connect() as conn:
        got = conn.execute(select(schema.delivery)).one()
    assert (got.status, got.attempts) == ("failed", 0)
    assert "was sending: interrupted while sending" in got.error
    with engine.begin() as conn:
        conn.execute(update(schema.delivery).values(status="sent", sent_at=dt.datetime.now()))
    code, _, err = call(capsys, "deliveries", "retry", str(delivery))
    assert code == 2 and "--force" in err
    code, _, err = call(capsys, "deliveries", "retry", "999")
    assert code == 2 and "no delivery with id 999" in err
    code, _, err = call(capsys, "deliveries", "--period", "October")
    assert code == 2 and "expected YYYY-MM" in err


def test_send_monthly_without_smtp_url_names_the_variable(cli, capsys) -> None:
    assert call(capsys, "subscriptions", "add", "--email", "a@example.com", "--unit",
                "R-WEST")[0] == 0
    code, _, err = call(capsys, "send-monthly", "--period", "2026-10")
    assert code == 2 and "SMTP_URL is not set" in err


def test_the_module_runs_and_exits_2_on_bad_input(engine, tmp_path) -> None:
    env = {**os.environ, "DATABASE_URL": engine.url.render_as_string(hide_password=False),
           "CX_DATA_DIR": str(tmp_path)}
    out = subprocess.run([sys.executable, "-m", "dashboard", "subscriptions", "add", "--email",
                          "nobody", "--unit", "ACME"], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 2 and "error: email: 'nobody'" in out.stderr
    out = subprocess.run([sys.executable, "-m", "dashboard", "subscriptions", "list"], cwd=ROOT,
                         env={**env, "DATABASE_URL": "nonsense"}, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 2 and "DATABASE_URL" in out.stderr


# ---------------------------------------------------------------------------- admin page


@pytest.fixture
def admin_page(dash_app, engine, tmp_path):
    """The subscriptions page's functions, run in a request of an app on `engine`."""
    from dashboard.data import init_cache

    page = importlib.import_module("dashboard.pages.subscriptions")
    add_units(engine)
    server = Flask("subscriptions-test")
    server.config["CX_SETTINGS"] = load_settings(
        _env_file=None, database_url=engine.url.render_as_string(hide_password=False),
        cx_data_dir=str(tmp_path), secret_key="admin-test")
    server.extensions["cx_engine"] = engine
    init_cache(server)

    def run(fn, *args, **kwargs):
        with server.test_request_context("/subscriptions"):
            return fn(*args, **kwargs)

    return page, run


def _text(node) -> str:
    if node is None:
        return ""
    if isinstance(node, str | int | float):
        return str(node)
    if isinstance(node, list | tuple):
        return " ".join(_text(k) for k in node)
    return _text(getattr(node, "children", None))


def test_the_admin_page_adds_lists_and_removes(admin_page, engine) -> None:
    page, run = admin_page
    listing, deliveries, options = run(page.render, {}, 0)
    assert "No subscriptions yet" in _text(listing)
    assert [o["value"] for o in options] == ["ACME", "R-WEST", "S09"]

    feedback, version = run(page.add, email="bad", name=None, units=["R-WEST"], paper="A4",
                            orientation="landscape", schedule="0 7 1 * *", version=0)
    assert "email: 'bad' is not an email address" in _text(feedback)
    feedback, version = run(page.add, email="west@example.com", name="W", units=[],
                            paper="A4", orientation="landscape", schedule="0 7 1 * *",
                            version=0)
    assert "scope: give at least one org unit" in _text(feedback)
    feedback, version = run(page.add, email="west@example.com", name="W", units=["R-WEST"],
                            paper="Letter", orientation="portrait", schedule="0 8 1 * *",
                            version=0)
    assert version == 1 and "Subscription 1 added" in _text(feedback)
    listing, _, _ = run(page.render, {}, version)
    shown = _text(listing)
    assert "west@example.com" in shown and "Letter portrait" in shown and "0 8 1 * *" in shown

    claim(engine, 1, "2026-10", "someone")
    with engine.begin() as conn:
        conn.execute(update(schema.delivery).values(status="failed",
                                                    error="SMTPDataError: 554 rejected"))
    _, deliveries, _ = run(page.render, {}, version)
    assert "failed" in _text(deliveries) and "554 rejected" in _text(deliveries)

    feedback, version = run(page.remove, 1, version)
    assert version == 2 and "Subscription 1 removed" in _text(feedback)
    listing, deliveries, _ = run(page.render, {}, version)
    assert "No subscriptions yet" in _text(listing) and "No deliveries yet" in _text(deliveries)
