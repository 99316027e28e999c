"""Who sees what, through real HTTP against gunicorn serving the demo.

Every role signs in through the real sign-in form. A store manager (Leeds, in the North)
then forges requests for the West region: a hand-edited callback, a URL, a download. Each
is refused (403) and no response body carries a West unit's name or figure.
"""

from __future__ import annotations

import json
import re

import pytest
import requests
from sqlalchemy import select, text, update

from auth import audit
from auth.users import add_user, get_user_by_email
from queries import schema
from queries.benchmark import company_benchmark
from queries.db import make_engine
from queries.formatting import fmt_value
from queries.kpis import Filters, kpis
from queries.periods import Month
from tests.conftest import SERVED_LOGS, TEST_USERS, sign_in

WEST_NAMES = ("West", "Bristol", "Exeter", "Plymouth", "Cardiff")
PERIOD = Month.parse("2026-10")
OVERVIEW_OUT = ["overview-kpis", "overview-signals", "overview-more", "overview-caption",
                "overview-freshness"]


def dash_call(http: requests.Session, base: str, outputs: list[tuple[str, str]],
              inputs: list[dict], state: list[dict] | None = None,
              changed: list[str] | None = None) -> requests.Response:
    """POST one callback exactly as the browser does."""
    def key(i):
        return json.dumps(i, sort_keys=True, separators=(",", ":")) if isinstance(i, dict) \
            else i

    body = {
        "output": ("..." .join(f"{key(i)}.{p}" for i, p in outputs)).join(["..", ".."])
        if len(outputs) > 1 else f"{key(outputs[0][0])}.{outputs[0][1]}",
        "outputs": [{"id": i, "property": p} for i, p in outputs] if len(outputs) > 1
        else {"id": outputs[0][0], "property": outputs[0][1]},
        "inputs": inputs,
        "changedPropIds": changed or [],
        "state": state or [],
    }
    return http.post(base + "/_dash-update-component", json=body, timeout=120)


def overview(http: requests.Session, base: str, state: dict) -> requests.Response:
    return dash_call(http, base, [(o, "children") for o in OVERVIEW_OUT],
                     [{"id": "overview-state", "property": "data", "value": state}],
                     changed=["overview-state.data"])


def page_content(http: requests.Session, base: str, path: str) -> requests.Response:
    return dash_call(http, base, [("_pages_content", "children"), ("_pages_store", "data")],
                     [{"id": "_pages_location", "property": "pathname", "value": path},
                      {"id": "_pages_location", "property": "search", "value": ""}],
                     changed=["_pages_location.pathname"])


@pytest.fixture(scope="module")
def west_figures(demo_url: str) -> list[str]:
    """West's KPI values as the dashboard writes them (none may reach a Leeds manager)."""
    eng = make_engine(demo_url)
    with eng.connect() as conn:
        west = kpis(conn, period=PERIOD, filters=Filters(unit="R-WEST"))
        leeds = kpis(conn, period=PERIOD, filters=Filters(unit="S01"))
    eng.dispose()
    mine = {fmt_value(k) for k in leeds}
    return [fmt_value(k) for k in west if k.value is not None and k.key in
            ("nps", "csat", "revenue", "active_members") and fmt_value(k) not in mine]


def nav_visible(layout: str, path: str) -> bool:
    """Whether the navbar item linking to `path` is displayed in a /_dash-layout body."""
    found: list[bool] = []

    def walk(node) -> None:
        if isinstance(node, list):
            for x in node:
                walk(x)
        elif isinstance(node, dict):
            props = node.get("props", {})
            child = props.get("children")
            if node.get("type") == "NavItem" and isinstance(child, dict) \
                    and child.get("props", {}).get("href") == path:
                found.append((props.get("style") or {}).get("display") != "none")
            for value in props.values():
                walk(value)

    walk(json.loads(layout))
    assert len(found) == 1, found
    return found[0]


def text_of(response: requests.Response) -> str:
    """A JSON body as text with its characters unescaped ('·', not '\\u00b7')."""
    return json.dumps(response.json(), ensure_ascii=False)


def assert_nothing_of_west(body: str, figures: list[str]) -> None:
    for name in WEST_NAMES:
        assert name not in body, name
    for figure in figures:
        assert figure not in body, figure


def test_signed_out_requests_are_refused(served_demo: str) -> None:
    http = requests.Session()
    first = http.get(served_demo + "/?unit=R-WEST", allow_redirects=False, timeout=30)
    assert first.status_code == 302
    assert first.headers["Location"] == "/login?next=/%3Funit%3DR-WEST"
    assert http.get(served_demo + "/_dash-layout", timeout=30).status_code == 401
    assert overview(http, served_demo, {"unit": "R-WEST"}).status_code == 401
    assert http.get(served_demo + "/healthz", timeout=30).status_code == 200
    assert http.get(served_demo + "/assets/app.css", timeout=30).status_code == 200


def test_each_role_reaches_only_its_pages(served_demo: str) -> None:
    allowed = {"admin": {"/users", "/audit", "/subscriptions", "/health"},
               "executive": {"/health"}, "region": set(), "store": set()}
    for who, pages in allowed.items():
        http = sign_in(served_demo, who)
        layout = http.get(served_demo + "/_dash-layout", timeout=30).text
        for path in ("/users", "/audit", "/subscriptions", "/health"):
            body = page_content(http, served_demo, path).text
            refused = "This page is for" in body
            assert refused == (path not in pages), (who, path)
            # The navbar link is hidden for pages of other roles.
            assert nav_visible(layout, path) == (path in pages), (who, path)
        if who in ("region", "store"):
            # Forged callbacks of the admin pages are refused before any page code runs.
            forged = dash_call(http, served_demo, [("users-table", "children")],
                               [{"id": "users-version", "property": "data", "value": 1}])
            assert forged.status_code == 403
            assert "admin@example.com" not in forged.text


def test_store_manager_cannot_reach_another_region(served_demo: str,
                                                   west_figures: list[str]) -> None:
    http = sign_in(served_demo, "store")
    # A URL naming another unit is refused before the page loads.
    assert http.get(served_demo + "/?unit=R-WEST", timeout=30).status_code == 403
    assert http.get(served_demo + "/revenue?unit=S09", timeout=30).status_code == 403
    # Without a unit the pages open on the manager's own store.
    opened = http.get(served_demo + "/segments", allow_redirects=False, timeout=30)
    assert opened.headers["Location"] == "/segments?unit=S01"
    # A hand-edited callback asking for the West region.
    forged = overview(http, served_demo, {"unit": "R-WEST"})
    assert forged.status_code == 403
    assert_nothing_of_west(forged.text, west_figures)
    # ... and a download of the West's KPIs.
    download = dash_call(
        http, served_demo, [("app-download", "data")],
        [[{"id": {"fmt": "csv", "target": "overview-kpis", "type": "download"},
           "property": "n_clicks", "value": 1}]],
        state=[{"id": "app-url", "property": "search", "value": "?unit=R-WEST"}],
        changed=['{"fmt":"csv","target":"overview-kpis","type":"download"}.n_clicks'])
    assert download.status_code == 403
    assert_nothing_of_west(download.text, west_figures)
    # The layout (filter options included) lists only the manager's units.
    layout = http.get(served_demo + "/_dash-layout", timeout=30).text
    assert "Leeds" in layout
    assert_nothing_of_west(layout, west_figures)


def test_store_manager_sees_own_numbers_and_the_company_benchmark(
        served_demo: str, demo_url: str, west_figures: list[str]) -> None:
    eng = make_engine(demo_url)
    with eng.connect() as conn:
        leeds = {k.key: k for k in kpis(conn, period=PERIOD, filters=Filters(unit="S01"))}
        company = {k.key: k for k in company_benchmark(conn, period=PERIOD)}
    eng.dispose()
    http = sign_in(served_demo, "store")
    # No unit in the request: the scope fills it in.
    shown = overview(http, served_demo, {"period": "2026-10"})
    assert shown.status_code == 200
    body = text_of(shown)
    assert "Leeds · October 2026" in body
    assert f'"{fmt_value(leeds["nps"])}"' in body
    assert f"n = {leeds['nps'].n:,}" in body
    # The documented exception: the company's NPS, CSAT and CES beside the store's.
    assert (f"Company benchmark, October 2026: NPS {fmt_value(company['nps'])} "
            f"(n = {company['nps'].n:,})") in body
    assert_nothing_of_west(body, west_figures)
    # The same download the admin gets for Leeds.
    csv = dash_call(
        http, served_demo, [("app-download", "data")],
        [[{"id": {"fmt": "csv", "target": "overview-kpis", "type": "download"},
           "property": "n_clicks", "value": 1}]],
        state=[{"id": "app-url", "property": "search", "value": "?unit=S01"}],
        changed=['{"fmt":"csv","target":"overview-kpis","type":"download"}.n_clicks'])
    assert csv.status_code == 200
    assert str(leeds["nps"].n) in csv.text


def test_region_manager_sees_the_region_and_nothing_else(served_demo: str) -> None:
    http = sign_in(served_demo, "region")
    assert overview(http, served_demo, {"unit": "S09"}).status_code == 200
    refused = overview(http, served_demo, {"unit": "S01"})
    assert refused.status_code == 403 and "Leeds" not in refused.text
    layout = http.get(served_demo + "/_dash-layout", timeout=30).text
    assert "Bristol" in layout and "Leeds" not in layout and "North" not in layout


def test_csrf_token_is_required_for_every_callback(served_demo: str) -> None:
    http = sign_in(served_demo, "executive")
    token = http.headers.pop("X-CSRFToken")
    assert overview(http, served_demo, {}).status_code == 403
    http.headers["X-CSRFToken"] = "forged" + token[6:]
    refused = overview(http, served_demo, {})
    assert refused.status_code == 403 and "CSRF" in refused.text
    http.headers["X-CSRFToken"] = token
    assert overview(http, served_demo, {}).status_code == 200
    del http.headers["X-CSRFToken"]
    # Sign-out needs it too (a cross-site form cannot sign people out).
    assert http.post(served_demo + "/logout", allow_redirects=False,
                     timeout=30).status_code == 403


def test_sign_out_ends_the_session_on_the_server(served_demo: str) -> None:
    http = sign_in(served_demo, "executive")
    stolen = dict(http.cookies)
    out = http.post(served_demo + "/logout", data={"csrf_token": http.headers["X-CSRFToken"]},
                    allow_redirects=False, timeout=30)
    assert out.status_code == 302 and out.headers["Location"] == "/login"
    # Replaying the old cookie after sign-out opens nothing.
    replay = requests.Session()
    replay.cookies.update(stolen)
    assert replay.get(served_demo + "/", allow_redirects=False, timeout=30).status_code == 302
    assert replay.get(served_demo + "/_dash-layout", timeout=30).status_code == 401


def test_an_expired_session_is_refused(served_demo: str, demo_url: str) -> None:
    http = sign_in(served_demo, "region")
    assert http.get(served_demo + "/_dash-layout", timeout=30).status_code == 200
    eng = make_engine(demo_url)
    user_id = None
    with eng.begin() as conn:
        user_id = get_user_by_email(conn, TEST_USERS["region"][0]).id
        conn.execute(update(schema.user_session).where(schema.user_session.c.user_id == user_id)
                     .values(expires_at=schema.user_session.c.created_at))
    eng.dispose()
    assert http.get(served_demo + "/_dash-layout", timeout=30).status_code == 401


def test_failed_sign_ins_are_rate_limited_audited_and_never_log_passwords(
        served_demo: str, demo_url: str) -> None:
    eng = make_engine(demo_url)
    with eng.begin() as conn:
        if get_user_by_email(conn, "victim@example.com") is None:
            add_user(conn, email="victim@example.com", role="executive",
                     password="the-real-password-9")
    http = requests.Session()
    csrf = re.search(r'name="csrf_token" value="([^"]+)"',
                     http.get(served_demo + "/login", timeout=30).text).group(1)
    codes = []
    for i in range(5):
        codes.append(http.post(served_demo + "/login", timeout=30, allow_redirects=False, data={
            "csrf_token": csrf, "email": "victim@example.com",
            "password": f"guess-number-{i}-zz"}).status_code)
    right = http.post(served_demo + "/login", timeout=30, allow_redirects=False, data={
        "csrf_token": csrf, "email": "victim@example.com", "password": "the-real-password-9"})
    assert codes == [401] * 5
    assert right.status_code == 429 and "Too many failed sign-ins" in right.text
    with eng.connect() as conn:
        log = audit.entries(conn, actor="victim@example.com")
        assert list(log["outcome"]) == ["denied"] + ["failed"] * 5
        # No password, right or wrong, anywhere in the database.
        dump = []
        for table in schema.metadata.sorted_tables:
            for row in conn.execute(select(table)):
                dump.append(" ".join(str(v) for v in row))
        everything = "\n".join(dump)
    eng.dispose()
    for secret in ["the-real-password-9", *[f"guess-number-{i}-zz" for i in range(5)],
                   *[u[3] for u in TEST_USERS.values()]]:
        assert secret not in everything
        assert secret not in SERVED_LOGS[served_demo].read_text()
    assert "$argon2id$" in everything


def test_security_headers_cookies_and_no_stack_traces(served_demo: str) -> None:
    login = requests.get(served_demo + "/login", timeout=30)
    for response in (login, sign_in(served_demo, "admin").get(served_demo + "/", timeout=30)):
        csp = response.headers["Content-Security-Policy"]
        assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp
        assert "'unsafe-inline'" not in csp.split("script-src", 1)[1].split(";")[0]
        assert response.headers["X-Frame-Options"] == "DENY"
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["Referrer-Policy"] == "same-origin"
    cookie = login.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    http = sign_in(served_demo, "admin")
    broken = http.post(served_demo + "/_dash-update-component", timeout=30,
                       json={"output": "overview-kpis.children", "inputs": "not a list"})
    # Refused by the view-state gate (dashboard/guard.py) before any callback code runs:
    # a 400 that says why, not a 500 with a reference.
    assert broken.status_code == 400
    assert "Traceback" not in broken.text and ".py" not in broken.text
    assert "the request is not a callback" in broken.text


def test_anonymity_inside_a_scope_matches_the_company_view(dash_app, demo_url) -> None:
    """A store hidden in the company's employee view stays hidden for its own manager."""
    from flask import g

    from auth.web import Principal
    from dashboard.data import cached
    from queries.kpis import Settings as KpiSettings
    from queries.scope import Scope

    strict = KpiSettings(min_n=30, anonymity_min=30, active_days=90)
    eng = make_engine(demo_url)
    with eng.connect() as conn:
        stores = conn.execute(text("SELECT id FROM org_unit WHERE kind = 'store'")
                              ).scalars().all()
        company_view = {s: {k.key: k for k in kpis(conn, period=PERIOD,
                                                  filters=Filters(unit=s), settings=strict)}
                        for s in stores}
    eng.dispose()
    hidden = [s for s in stores if company_view[s]["engagement"].hidden]
    shown = [s for s in stores if not company_view[s]["engagement"].hidden]
    assert hidden and shown, "the check needs both hidden and shown stores"
    for store in (hidden[0], shown[0]):
        with dash_app.server.test_request_context("/"):
            g.principal = Principal("user", "m@example.com", "manager", Scope((store,)))
            mine = {k.key: k for k in cached(kpis, period=PERIOD, filters=Filters(),
                                             settings=strict)}
        assert mine["engagement"].hidden == company_view[store]["engagement"].hidden
        assert mine["engagement"].value == company_view[store]["engagement"].value


def _forge_all_state_callbacks(http: requests.Session, base: str, state: dict
                               ) -> list[tuple[str, requests.Response]]:
    """Call every callback fed by a page's `*-state` store with `state`, as a browser would
    after loading a URL carrying it."""
    calls = []
    for cb in http.get(base + "/_dash-dependencies", timeout=30).json():
        ids = [i["id"] for i in cb["inputs"]]
        if not any(isinstance(i, str) and i.endswith("-state") for i in ids):
            continue
        inputs = [{"id": i["id"], "property": i["property"],
                   "value": state if str(i["id"]).endswith("-state") else None}
                  for i in cb["inputs"]]
        outputs = [(o.rsplit(".", 1)[0], o.rsplit(".", 1)[1])
                   for o in cb["output"].strip(".").split("...")]
        response = dash_call(http, base, outputs, inputs,
                             state=[{**s, "value": None} for s in cb["state"]],
                             changed=[f"{inputs[0]['id']}.{inputs[0]['property']}"])
        calls.append((cb["output"], response))
    return calls


def test_every_page_callback_refuses_another_region(served_demo: str,
                                                    west_figures: list[str]) -> None:
    # The admin's calls succeed, so the forged requests below are well-formed.
    admin = _forge_all_state_callbacks(sign_in(served_demo, "admin"), served_demo,
                                       {"unit": "R-WEST", "period": "2026-10"})
    assert len(admin) >= 13
    assert [o for o, r in admin if r.status_code != 200] == []
    assert any("Bristol" in text_of(r) for _o, r in admin)
    store = _forge_all_state_callbacks(sign_in(served_demo, "store"), served_demo,
                                       {"unit": "R-WEST", "period": "2026-10"})
    assert len(store) == len(admin)
    for output, response in store:
        # Refused outright, or (where a page turns errors into a message) an empty result
        # that says why.
        assert response.status_code == 403 or "outside your scope" in response.text, output
        assert_nothing_of_west(response.text, west_figures)
    assert sum(r.status_code == 403 for _o, r in store) >= 9


def test_admin_adds_a_manager_on_the_users_page_who_then_signs_in(served_demo: str,
                                                                   demo_url: str) -> None:
    http = sign_in(served_demo, "admin")
    buttons = ["add", "set-role", "reset", "disable", "enable", "remove"]

    def act(action: str, email: str, role: str = "manager", units=("S09",)):
        return dash_call(
            http, served_demo, [("users-feedback", "children"), ("users-version", "data")],
            [{"id": f"users-{b}", "property": "n_clicks", "value": 1 if b == action else None}
             for b in buttons],
            state=[{"id": "users-email", "property": "value", "value": email},
                   {"id": "users-name", "property": "value", "value": "Bea Bristol"},
                   {"id": "users-role", "property": "value", "value": role},
                   {"id": "users-units", "property": "value", "value": list(units)},
                   {"id": "users-version", "property": "data", "value": 0}],
            changed=[f"users-{action}.n_clicks"])

    added = text_of(act("add", "bea@example.com"))
    password = re.search(r"Password, shown once: (\S+)\"", added).group(1)
    # The new manager signs in with it and sees Bristol, not the rest of the West.
    browser = requests.Session()
    csrf = re.search(r'name="csrf_token" value="([^"]+)"',
                     browser.get(served_demo + "/login", timeout=30).text).group(1)
    browser.post(served_demo + "/login", timeout=30, data={
        "csrf_token": csrf, "email": "bea@example.com", "password": password})
    layout = browser.get(served_demo + "/_dash-layout", timeout=30).text
    assert "Bristol" in layout and "Exeter" not in layout
    # A reset ends her session; her old password stops working.
    reset = text_of(act("reset", "bea@example.com"))
    assert "New password for bea@example.com, shown once" in reset
    assert browser.get(served_demo + "/_dash-layout", timeout=30).status_code == 401
    assert password not in SERVED_LOGS[served_demo].read_text()
    eng = make_engine(demo_url)
    with eng.connect() as conn:
        log = audit.entries(conn, actor=TEST_USERS["admin"][0])
    eng.dispose()
    assert {"user_add", "password_reset"} <= set(log["action"])
    assert set(log[log["action"] == "user_add"]["target"]) >= {"bea@example.com"}
    assert "already" in text_of(act("add", "bea@example.com"))
