"""Single sign-on against a real local OpenID Connect provider, and trusted-header mode.

The dashboard runs on a real HTTP server (werkzeug, threaded) in this process; the browser
is a requests session that follows every redirect between the dashboard and the provider.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import requests
from werkzeug.serving import make_server

from auth import audit
from auth.users import get_user_by_email
from queries.db import make_engine
from tests.conftest import add_test_users, free_port
from tests.oidc_idp import LocalIdP


@contextmanager
def serve(demo_url: str, tmp_path, **settings: object) -> Iterator[str]:
    """The dashboard with `settings` on a real HTTP server; yields its base URL."""
    from dashboard.app import create_app
    from queries.settings import load_settings

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    app = create_app(load_settings(_env_file=None, database_url=demo_url,
                                   cx_data_dir=str(tmp_path),
                                   secret_key="test-secret-key-0123456789abcdefghij",
                                   cx_base_url=base, **settings))
    server = make_server("127.0.0.1", port, app.server, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield base
    finally:
        server.shutdown()


def test_oidc_sign_in_with_pkce_maps_groups_to_role_and_scope(demo_url, tmp_path) -> None:
    with LocalIdP("cx-dashboard", "idp-client-secret") as idp, serve(
            demo_url, tmp_path, oidc_issuer=idp.url, oidc_client_id="cx-dashboard",
            oidc_client_secret="idp-client-secret",
            oidc_role_map="cx-admins=admin,cx-execs=executive,cx-managers=manager",
            oidc_role_claim="groups", oidc_scope_claim="cx_units") as base:
        idp.user = {"email": "Sso.Manager@Example.com", "email_verified": True,
                    "name": "Sam Sso", "groups": ["staff", "cx-managers"],
                    "cx_units": ["R-WEST"]}
        browser = requests.Session()
        login = browser.get(base + "/login", timeout=30)
        assert 'id="login-sso"' in login.text
        landed = browser.get(base + "/auth/oidc/login?next=/revenue", timeout=60)
        # The provider got PKCE S256 and the verifier matched at the token endpoint.
        authorize = next(s for s in idp.seen if s["endpoint"] == "authorize")
        token = next(s for s in idp.seen if s["endpoint"] == "token")
        assert authorize["code_challenge_method"] == "S256"
        assert len(authorize["code_challenge"]) == 43 and token["verifier_ok"] is True
        assert landed.status_code == 200 and landed.url == base + "/revenue?unit=R-WEST"
        eng = make_engine(demo_url)
        with eng.connect() as conn:
            user = get_user_by_email(conn, "sso.manager@example.com")
            assert (user.role, user.scope_units, user.auth_source, user.has_password) == (
                "manager", ("R-WEST",), "oidc", False)
            log = audit.entries(conn, actor="sso.manager@example.com", action="sign_in")
        assert list(log["outcome"])[:1] == ["ok"] and list(log["target"])[:1] == ["oidc"]
        layout = browser.get(base + "/_dash-layout", timeout=30).text
        assert "Bristol" in layout and "Leeds" not in layout
        assert browser.get(base + "/?unit=S01", timeout=30).status_code == 403

        # The provider is the authority: a later sign-in with other groups changes the role.
        idp.user = {**idp.user, "groups": ["cx-execs"]}
        browser = requests.Session()
        browser.get(base + "/auth/oidc/login", timeout=60)
        with eng.connect() as conn:
            assert get_user_by_email(conn, "sso.manager@example.com").role == "executive"

        # Groups that map to no role: refused, said, and audited.
        idp.user = {"email": "outsider@example.com", "groups": ["sales"]}
        refused = requests.Session().get(base + "/auth/oidc/login", timeout=60)
        assert refused.status_code == 403
        assert "none of your groups (sales) gives access" in refused.text
        with eng.connect() as conn:
            assert get_user_by_email(conn, "outsider@example.com") is None
            log = audit.entries(conn, actor="outsider@example.com")
        assert list(log["outcome"]) == ["failed"]
        eng.dispose()


def test_trusted_header_signs_in_known_users_from_the_proxy_only(demo_url, tmp_path) -> None:
    add_test_users(demo_url)
    with serve(demo_url, tmp_path, cx_auth_header="X-Forwarded-Email",
               cx_auth_header_proxies="127.0.0.1") as base:
        proxy = requests.Session()
        page = proxy.get(base + "/", headers={"X-Forwarded-Email": "ceo@example.com"},
                         allow_redirects=False, timeout=30)
        assert page.status_code == 200 and "_dash-config" in page.text
        layout = proxy.get(base + "/_dash-layout", timeout=30).text
        assert "(executive)" in layout
        # The proxy now names another person on the same browser: the header wins.
        west = proxy.get(base + "/_dash-layout", timeout=30,
                         headers={"X-Forwarded-Email": "west@example.com"}).text
        assert "(manager)" in west and "Leeds" not in west and "Bristol" in west
        nobody = requests.get(base + "/", headers={"X-Forwarded-Email": "who@example.com"},
                              allow_redirects=False, timeout=30)
        assert nobody.status_code == 302 and nobody.headers["Location"].startswith("/login")
        assert requests.get(base + "/", allow_redirects=False, timeout=30).status_code == 302
    with serve(demo_url, tmp_path, cx_auth_header="X-Forwarded-Email",
               cx_auth_header_proxies="10.9.8.7") as base:
        # The same header from an address that is not the proxy is not believed.
        forged = requests.get(base + "/", headers={"X-Forwarded-Email": "ceo@example.com"},
                              allow_redirects=False, timeout=30)
        assert forged.status_code == 302


def test_the_renderers_loopback_port_opens_only_report_tokens(demo_url, tmp_path) -> None:
    """Any local process can reach the worker's render port: a trusted header or a session
    cookie sent there opens nothing."""
    from dashboard.app import create_app
    from queries.settings import load_settings
    from reports.renderer import LoopbackServer
    from tests.conftest import sign_in

    add_test_users(demo_url)
    settings = load_settings(_env_file=None, database_url=demo_url, cx_data_dir=str(tmp_path),
                             secret_key="test-secret-key-0123456789abcdefghij",
                             cx_auth_header="X-Forwarded-Email")
    app = create_app(settings)
    with LoopbackServer(app.server) as loopback, serve(
            demo_url, tmp_path, cx_auth_header="X-Forwarded-Email") as base:
        header = requests.get(loopback.url + "/_dash-layout", timeout=30,
                              headers={"X-Forwarded-Email": "ceo@example.com"})
        assert header.status_code == 403 and "report renderer only" in header.text
        signed_in = sign_in(base, "admin")
        cookie = requests.get(loopback.url + "/_dash-layout", cookies=signed_in.cookies,
                              timeout=30)
        assert cookie.status_code == 403
        assert signed_in.get(base + "/_dash-layout", timeout=30).status_code == 200
