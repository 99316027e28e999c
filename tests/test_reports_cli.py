"""`python -m dashboard subscriptions|deliveries|send-monthly`: a round trip, and clear errors
(exit 2, the field named) for bad input; and the admin page's writes through the same code.
Subscriptions belong to users: an admin subscribes people only to what they may see, and only
at their own address or an allowed domain; every change is in the audit log."""

from __future__ import annotations

import datetime as dt
import importlib
import os
import subprocess
import sys

import pytest
from flask import Flask
from sqlalchemy import Engine, insert, select, update

from auth import audit
from auth.users import add_user
from dashboard.__main__ import main
from queries import schema
from queries.settings import ROOT, get_settings, load_settings
from reports.delivery import claim


def add_units(engine: Engine) -> None:
    now = dt.datetime.now().replace(microsecond=0)
    rows = [("ACME", "Acme Home & Garden", "company", None), ("R-WEST", "West", "region", "ACME"),
            ("S09", "Bristol", "store", "R-WEST"), ("R-NORTH", "North", "region", "ACME")]
    with engine.begin() as conn:
        conn.execute(insert(schema.org_unit), [
            {"id": i, "name": n, "kind": k, "parent_id": p, "source": "test", "loaded_at": now}
            for i, n, k, p in rows])
        # The people subscriptions are for: an executive (every unit), a region's manager.
        add_user(conn, email="ada@example.com", role="executive", name="Ada Lovelace")
        add_user(conn, email="ceo@example.com", role="executive")
        add_user(conn, email="west@example.com", role="manager", scope=["R-WEST"])


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
    code, out, err = call(capsys, "subscriptions", "add", "--user", "Ada@Example.COM",
                          "--unit", "R-WEST", "--unit", "S09", "--name", "Ada Lovelace")
    assert code == 0, err
    assert "subscription 1 added: ada@example.com gets R-WEST, S09" in out
    code, out, err = call(capsys, "subscriptions", "add", "--user", "ceo@example.com",
                          "--paper", "Letter", "--portrait", "--schedule", "0 6 1 * *")
    assert code == 0, err
    assert "subscription 2 added: ceo@example.com gets the user's whole scope" in out
    code, out, _ = call(capsys, "subscriptions", "list")
    assert code == 0
    lines = out.splitlines()
    assert "ada@example.com" in lines[1] and "R-WEST,S09" in lines[1]
    assert "A4" in lines[1] and "landscape" in lines[1] and "0 7 1 * *" in lines[1]
    assert "user scope" in lines[2] and "Letter" in lines[2] and "portrait" in lines[2]
    assert "0 6 1 * *" in lines[2]
    with engine.connect() as conn:
        stored = conn.execute(select(schema.subscription).order_by(schema.subscription.c.id)
                              ).all()
        users = dict(conn.execute(select(schema.app_user.c.email, schema.app_user.c.id)).all())
    assert [(s.email, s.user_id, s.scope, s.paper, s.landscape, s.schedule) for s in stored] == [
        ("ada@example.com", users["ada@example.com"], "R-WEST,S09", "A4", True, "0 7 1 * *"),
        ("ceo@example.com", users["ceo@example.com"], None, "Letter", False, "0 6 1 * *")]
    assert call(capsys, "subscriptions", "remove", "1")[:2] == (0, "subscription 1 removed\n")
    code, out, _ = call(capsys, "subscriptions", "list")
    assert "ada@example.com" not in out and "ceo@example.com" in out
    code, _, err = call(capsys, "subscriptions", "remove", "1")
    assert code == 2 and "no subscription with id 1" in err
    # Every change is in the audit log, with who made it.
    with engine.connect() as conn:
        log = audit.entries(conn)
    assert list(log["action"])[:3] == ["subscription_remove", "subscription_add",
                                       "subscription_add"]
    assert all(a.startswith("cli") for a in log["actor"][:3])
    assert log["target"][0] == "subscription 1"


@pytest.mark.parametrize(("args", "message"), [
    (["--user", "nobody@example.com"], "user: no such user 'nobody@example.com'"),
    (["--user", "ada@example.com", "--email", "not-an-email"],
     "email: 'not-an-email' is not an email"),
    (["--user", "ada@example.com", "--unit", "R-EAST"], "scope: unknown org unit(s) ['R-EAST']"),
    # An admin subscribes people only to what they may see.
    (["--user", "west@example.com", "--unit", "R-NORTH"],
     "scope: R-NORTH is outside west@example.com's scope (R-WEST)"),
    (["--user", "west@example.com", "--unit", "ACME"],
     "scope: ACME is outside west@example.com's scope"),
    # Nobody outside the user list, unless an admin allowed the domain.
    (["--user", "west@example.com", "--email", "boss@elsewhere.example"],
     "email: boss@elsewhere.example is not a user's address and the domain "
     "elsewhere.example is not allowed"),
    (["--user", "ada@example.com", "--name", "Ada\r\nBcc: spy@evil.example"],
     "name: may not contain line breaks or control characters"),
    (["--user", "ada@example.com", "--schedule", "0 7 32 * *"],
     "schedule: '0 7 32 * *' is not a cron line"),
    (["--user", "ada@example.com", "--schedule", "monthly"], "expected 5 fields"),
    (["--user", "ada@example.com", "--paper", "A3"], "--paper"),
    (["--unit", "R-WEST"], "--user"),
])
def test_bad_input_is_refused_clearly(cli, capsys, engine, args, message) -> None:
    code, _, err = call(capsys, "subscriptions", "add", *args)
    assert code == 2
    assert message in err
    assert "Traceback" not in err
    with engine.connect() as conn:
        assert conn.execute(select(schema.subscription)).all() == []


def test_a_manager_gets_a_part_of_their_scope_and_allowed_domains(cli, capsys, engine) -> None:
    code, out, err = call(capsys, "subscriptions", "add", "--user", "west@example.com",
                          "--unit", "S09")
    assert code == 0 and "west@example.com gets S09" in out, err
    code, _, err = call(capsys, "subscriptions", "add", "--user", "west@example.com",
                        "--email", "pa@partner.example")
    assert code == 2 and "partner.example is not allowed" in err
    assert call(capsys, "subscriptions", "allow-domain", "@Partner.Example")[:2] == (
        0, "recipients at partner.example are allowed\n")
    assert call(capsys, "subscriptions", "domains")[1] == "partner.example\n"
    code, out, err = call(capsys, "subscriptions", "add", "--user", "west@example.com",
                          "--email", "pa@partner.example")
    assert code == 0 and "pa@partner.example gets the user's whole scope" in out, err
    # Another user's address is fine without any domain rule.
    assert call(capsys, "subscriptions", "add", "--user", "west@example.com", "--email",
                "ada@example.com")[0] == 0
    assert call(capsys, "subscriptions", "disallow-domain", "partner.example")[0] == 0
    assert call(capsys, "subscriptions", "disallow-domain", "partner.example")[0] == 2
    code, _, err = call(capsys, "subscriptions", "allow-domain", "not a domain")
    assert code == 2 and "domain: 'not a domain' is not a domain" in err
    with engine.connect() as conn:
        actions = list(audit.entries(conn)["action"])
    assert actions.count("domain_allow") == 1 and actions.count("domain_disallow") == 1


def test_a_duplicate_subscription_is_refused(cli, capsys) -> None:
    assert call(capsys, "subscriptions", "add", "--user", "ada@example.com", "--unit",
                "R-WEST")[0] == 0
    code, _, err = call(capsys, "subscriptions", "add", "--user", "ada@example.com", "--unit",
                        "R-WEST")
    assert code == 2 and "already has a subscription to R-WEST (id 1)" in err


def test_deliveries_list_and_retry(cli, capsys, engine) -> None:
    assert call(capsys, "subscriptions", "add", "--user", "ada@example.com", "--unit",
                "R-WEST")[0] == 0
    assert call(capsys, "deliveries")[1] == "no deliveries\n"
    delivery = claim(engine, 1, "2026-10", "crashed-host:1")
    with engine.begin() as conn:
        conn.execute(update(schema.delivery).values(
            status="sending", claimed_at=dt.datetime.now() - dt.timedelta(hours=3),
            error="interrupted while sending"))
    code, out, _ = call(capsys, "deliveries", "--period", "2026-10")
    assert code == 0
    assert f"{delivery:>5}  2026-10" in out and "ada@example.com" in out and "sending" in out
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
    assert call(capsys, "subscriptions", "add", "--user", "ada@example.com", "--unit",
                "R-WEST")[0] == 0
    code, _, err = call(capsys, "send-monthly", "--period", "2026-10")
    assert code == 2 and "SMTP_URL is not set" in err


def test_the_module_runs_and_exits_2_on_bad_input(engine, tmp_path) -> None:
    add_units(engine)
    env = {**os.environ, "DATABASE_URL": engine.url.render_as_string(hide_password=False),
           "CX_DATA_DIR": str(tmp_path)}
    # A display name with CRLF is refused on input (it used to fail every run later).
    out = subprocess.run([sys.executable, "-m", "dashboard", "subscriptions", "add", "--user",
                          "ada@example.com", "--name", "Ada\r\nBcc: spy@evil.example"],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 2
    assert "error: name: may not contain line breaks" in out.stderr
    out = subprocess.run([sys.executable, "-m", "dashboard", "subscriptions", "add", "--user",
                          "nobody", "--unit", "ACME"], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 2 and "error: user: no such user 'nobody'" in out.stderr
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
        cx_data_dir=str(tmp_path), secret_key="a" * 40)
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
    listing, deliveries, people, domains = run(page.render, {}, 0)
    assert "No subscriptions yet" in _text(listing)
    with engine.connect() as conn:
        ids = dict(conn.execute(select(schema.app_user.c.email, schema.app_user.c.id)).all())
    assert [o["value"] for o in people] == [str(ids[e]) for e in (
        "ada@example.com", "ceo@example.com", "west@example.com")]
    assert "manager (R-WEST)" in people[2]["label"]
    assert "None" in _text(domains)
    west = str(ids["west@example.com"])
    # The scope picker offers only the chosen user's units.
    options, _ = run(page.units_of_user, west)
    assert [o["value"] for o in options] == ["R-WEST", "S09"]
    options, _ = run(page.units_of_user, str(ids["ada@example.com"]))
    assert [o["value"] for o in options] == ["ACME", "R-NORTH", "R-WEST", "S09"]

    form = {"email": None, "name": None, "paper": "A4", "orientation": "landscape",
            "schedule": "0 7 1 * *", "version": 0}
    feedback, _ = run(page.add, user=None, units=[], **form)
    assert "user: choose the user" in _text(feedback)
    # A forged request for a unit outside the user's scope is refused all the same.
    feedback, version = run(page.add, user=west, units=["R-NORTH"], **form)
    assert "scope: R-NORTH is outside west@example.com's scope" in _text(feedback)
    feedback, version = run(page.add, user=west, units=[],
                            **{**form, "email": "pa@partner.example"})
    assert "partner.example is not allowed" in _text(feedback)
    feedback, _ = run(page.add, user=west, units=[],
                      **{**form, "name": "Wes\r\nBcc: spy@evil.example"})
    assert "name: may not contain line breaks or control characters" in _text(feedback)
    feedback, version = run(page.domain_change, "partner.example", allow=True, version=0)
    assert version == 1 and "partner.example are allowed" in _text(feedback)
    feedback, version = run(page.add, user=west, units=[],
                            **{**form, "email": "pa@partner.example", "paper": "Letter",
                               "orientation": "portrait", "schedule": "0 8 1 * *"})
    assert version == 1 and "Subscription 1 added: it shows their whole scope" in _text(
        feedback)
    listing, _, _, domains = run(page.render, {}, version)
    shown = _text(listing)
    assert "west@example.com" in shown and "pa@partner.example" in shown
    assert "the user's whole scope" in shown
    assert "Letter portrait" in shown and "0 8 1 * *" in shown
    assert "partner.example" in _text(domains)

    claim(engine, 1, "2026-10", "someone")
    with engine.begin() as conn:
        conn.execute(update(schema.delivery).values(status="failed",
                                                    error="SMTPDataError: 554 rejected"))
    _, deliveries, _, _ = run(page.render, {}, version)
    assert "failed" in _text(deliveries) and "554 rejected" in _text(deliveries)

    feedback, version = run(page.remove, 1, version)
    assert version == 2 and "Subscription 1 removed" in _text(feedback)
    listing, deliveries, _, _ = run(page.render, {}, version)
    assert "No subscriptions yet" in _text(listing) and "No deliveries yet" in _text(deliveries)
    with engine.connect() as conn:
        actions = list(audit.entries(conn)["action"])
    assert actions == ["subscription_remove", "subscription_add", "domain_allow"]


def test_the_subscriptions_page_is_for_admins() -> None:
    import dash

    page = next(p for p in dash.page_registry.values() if p["path"] == "/subscriptions")
    assert page["roles"] == ("admin",)
