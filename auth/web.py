"""Sign-in for the web process: who is asking, what they may reach, and the HTTP guards.

Every request is attributed to a `Principal` before anything else runs:
- a signed-in user (a server-side session, see `auth.sessions`);
- a user named by a trusted authenticating proxy (CX_AUTH_HEADER, only from
  CX_AUTH_HEADER_PROXIES), who then gets a session like anyone else;
- the headless browser printing a report: a valid report token opens `/report` and grants,
  for a few minutes, that report's scope and nothing else.

Anything else gets the sign-in page (or 401 for API requests). On top of that:
- CSRF: every state-changing request carries the session's token (Dash sends the
  `_csrf_token` cookie back as the X-CSRFToken header; forms carry a hidden field);
- page roles: a page registered with `roles=(...)` is refused to other roles, both its
  layout and every callback that touches one of its components (ids are page-prefixed);
- security headers (CSP under which Dash runs, no framing, nosniff, referrer policy) and
  no stack trace ever reaches the browser.
"""

from __future__ import annotations

import datetime as dt
import hmac
import json
import logging
import secrets
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from flask import Flask, Response, abort, g, jsonify, redirect, render_template_string, request
from flask import session as cookie
from sqlalchemy import Engine
from werkzeug.exceptions import HTTPException

from auth import audit
from auth.passwords import verify_password
from auth.sessions import end_session, load_session, start_session
from auth.users import UserError, get_user_by_email, password_hash_of
from queries.scope import Scope, ScopeError
from queries.settings import Settings

log = logging.getLogger(__name__)

CSRF_COOKIE = "_csrf_token"
CSRF_HEADER = "X-CSRFToken"
REPORT_GRANT_SECONDS = 10 * 60
FAILURE_WINDOW = dt.timedelta(minutes=15)
# Reachable without signing in: the sign-in itself, health checks and static files (the
# JavaScript bundles and CSS hold no data).
PUBLIC_PREFIXES = ("/login", "/auth/oidc/", "/healthz", "/_cx/ping", "/assets/",
                   "/_dash-component-suites/", "/_favicon.ico", "/favicon.ico")
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


@dataclass(frozen=True)
class Principal:
    """Who a request is made for, and what they may see (scope None: every unit)."""

    kind: str  # 'user' or 'report'
    email: str
    role: str  # executive, manager, admin; 'report' for a report token
    scope: Scope | None
    user_id: int | None = None
    name: str | None = None
    csrf: str | None = None

    @property
    def is_admin(self) -> bool:
        """Admins manage users, subscriptions and sources."""
        return self.role == "admin"

    @property
    def label(self) -> str:
        """'Name (role)' for the navbar."""
        return f"{self.name or self.email} ({self.role})"


def current_principal() -> Principal | None:
    """The principal of the request being served (None outside a request or signed out)."""
    try:
        return g.get("principal")
    except RuntimeError:  # outside an app context: a CLI or a test calling a query
        return None


def client_ip() -> str:
    """The peer address (a proxy's X-Forwarded-For is only believed from trusted proxies)."""
    return request.remote_addr or ""


# ------------------------------------------------------------------------ page roles

def page_roles(registry: dict[str, dict]) -> tuple[dict[str, tuple[str, ...]],
                                                  dict[str, tuple[str, ...]]]:
    """(roles by component-id prefix, roles by path) of the pages that restrict roles."""
    by_prefix: dict[str, tuple[str, ...]] = {}
    by_path: dict[str, tuple[str, ...]] = {}
    for page in registry.values():
        roles = page.get("roles")
        if roles:
            by_prefix[page["module"].rsplit(".", 1)[-1]] = tuple(roles)
            by_path[page["path"]] = tuple(roles)
    return by_prefix, by_path


def guard_layouts(registry: dict[str, dict]) -> None:
    """Wrap the layout of every role-restricted page: other roles get a refusal, not data."""
    from dash import html

    for page in registry.values():
        roles = page.get("roles")
        layout = page.get("layout")
        if not roles or not callable(layout) or getattr(layout, "_cx_guarded", False):
            continue

        def guarded(*args: Any, _layout: Callable = layout, _roles: tuple = tuple(roles),
                    _name: str = page["name"], **kwargs: Any) -> Any:
            who = current_principal()
            if who is None or who.role not in _roles:
                return html.Div(
                    [html.H1(_name, className="h4"),
                     html.P(f"This page is for {', '.join(_roles)} users. You are signed in "
                            f"as {who.label if who else 'nobody'}.",
                            className="text-muted")],
                    id="auth-refused")
            return _layout(*args, **kwargs)

        guarded._cx_guarded = True  # type: ignore[attr-defined]
        page["layout"] = guarded


def _ids_in(body: dict) -> list[Any]:
    ids: list[Any] = []

    def walk(item: Any) -> None:
        if isinstance(item, list):
            for x in item:
                walk(x)
        elif isinstance(item, dict) and "id" in item:
            ids.append(item["id"])

    for key in ("outputs", "inputs", "state"):
        walk(body.get(key))
    return ids


def _prefixes(component_id: Any) -> set[str]:
    if isinstance(component_id, dict):
        out: set[str] = set()
        for value in component_id.values():
            if isinstance(value, str):
                out.add(value.split("-", 1)[0])
        return out
    return {str(component_id).split("-", 1)[0]}


def callback_denied(body: dict, role: str, by_prefix: dict[str, tuple[str, ...]],
                    by_path: dict[str, tuple[str, ...]]) -> str | None:
    """Why a Dash callback request touching a restricted page is refused (None: allowed)."""
    for component_id in _ids_in(body):
        for prefix in _prefixes(component_id):
            roles = by_prefix.get(prefix)
            if roles and role not in roles:
                return f"components of a page for {', '.join(roles)} users"
    return None


# ------------------------------------------------------------------------ the app side

LOGIN_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Sign in · CX dashboard</title>
<link rel="stylesheet" href="/assets/vendor/bootstrap.min.css">
<link rel="stylesheet" href="/assets/app.css"></head>
<body class="bg-light"><main class="container" style="max-width: 26rem; margin-top: 12vh">
<h1 class="h4 mb-3">CX dashboard</h1>
{% if message %}
<div class="alert alert-{{ tone }} py-2" id="login-message">{{ message }}</div>
{% endif %}
<form method="post" action="/login" class="card card-body mb-3" id="login-form">
  <input type="hidden" name="csrf_token" value="{{ csrf }}">
  <input type="hidden" name="next" value="{{ next }}">
  <label class="form-label" for="login-email">Email</label>
  <input class="form-control mb-2" id="login-email" name="email" type="email"
         autocomplete="username" required value="{{ email }}" autofocus>
  <label class="form-label" for="login-password">Password</label>
  <input class="form-control mb-3" id="login-password" name="password" type="password"
         autocomplete="current-password" required>
  <button class="btn btn-primary" type="submit" id="login-submit">Sign in</button>
</form>
{% if sso %}<a class="btn btn-outline-secondary w-100" id="login-sso"
   href="/auth/oidc/login?next={{ next|urlencode }}">Sign in with single sign-on</a>{% endif %}
<p class="text-muted small mt-3">Forgot your password? An admin can reset it.</p>
</main></body></html>"""


def _safe_next(value: str | None) -> str:
    # Only a path on this site: an absolute URL here would make the sign-in an open redirect.
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return "/"
    parts = urlsplit(value)
    return parts.path + (f"?{parts.query}" if parts.query else "")


class Auth:
    """The sign-in machinery of one Flask server (see the module docstring)."""

    def __init__(self, server: Flask, settings: Settings, engine: Engine) -> None:
        self.server = server
        self.settings = settings
        self.engine = engine
        self.by_prefix: dict[str, tuple[str, ...]] = {}
        self.by_path: dict[str, tuple[str, ...]] = {}
        self.script_hashes: list[str] = []
        self.oidc: Any = None
        server.config.update(
            SESSION_COOKIE_NAME="cx_session",
            SESSION_COOKIE_HTTPONLY=True,
            SESSION_COOKIE_SAMESITE="Lax",
            SESSION_COOKIE_SECURE=settings.secure_cookies,
            PERMANENT_SESSION_LIFETIME=dt.timedelta(hours=settings.cx_session_hours),
            PROPAGATE_EXCEPTIONS=False,
        )
        server.before_request(self.authenticate)
        server.after_request(self.harden)
        server.register_error_handler(ScopeError, self._forbidden)
        server.register_error_handler(PermissionError, self._forbidden)
        server.register_error_handler(Exception, self._error)
        server.add_url_rule("/login", "login", self.login, methods=["GET", "POST"])
        server.add_url_rule("/logout", "logout", self.logout, methods=["POST"])
        if settings.oidc_enabled:
            from auth.oidc import register_oidc

            self.oidc = register_oidc(server, settings, self)

    def finish(self, registry: dict[str, dict], script_hashes: list[str]) -> None:
        """Once the Dash app is built: page roles and the inline scripts the CSP allows."""
        guard_layouts(registry)
        self.by_prefix, self.by_path = page_roles(registry)
        self.script_hashes = list(script_hashes)

    # -- who is asking -------------------------------------------------------------------

    def authenticate(self) -> Response | None:
        """before_request: set g.principal, or refuse."""
        path = request.path
        g.principal = None
        if any(path.startswith(p) for p in PUBLIC_PREFIXES):
            return None
        if request.environ.get("cx.render_only"):
            principal = self._from_report(path)
            if principal is None:
                return _json_error(403, "this address serves the report renderer only")
            return self._guard(principal, path)
        principal = self._from_session()
        header = self.settings.cx_auth_header
        if header and request.headers.get(header) is not None and (
                principal is None
                or principal.email != request.headers[header].strip().lower()):
            # Behind an authenticating proxy the header names the person: a cookie left by
            # someone else on the same browser does not outrank it.
            principal = self._from_header()
        principal = principal or self._from_report(path)
        if principal is None:
            if request.method in SAFE_METHODS and not path.startswith("/_dash-"):
                return redirect("/login?next=" + _quote(request.full_path.rstrip("?")))
            return _json_error(401, "sign in first")
        return self._guard(principal, path)

    def _guard(self, principal: Principal, path: str) -> Response | None:
        """CSRF, the report grant's reach and page roles, for a known principal."""
        g.principal = principal
        if request.method not in SAFE_METHODS:
            sent = request.headers.get(CSRF_HEADER) or request.form.get("csrf_token") or ""
            if not principal.csrf or not hmac.compare_digest(sent, principal.csrf):
                self._audit("csrf_refused", outcome="denied", target=path)
                return _json_error(403, "missing or wrong CSRF token: reload the page")
        if principal.kind == "report" and path.rstrip("/") not in ("/report", "") \
                and not path.startswith("/_dash-"):
            return _json_error(403, "a report link opens the report only")
        if path == "/_dash-update-component" and request.method == "POST":
            body = request.get_json(silent=True) or {}
            why = callback_denied(body, principal.role, self.by_prefix, self.by_path)
            if why:
                self._audit("access_denied", outcome="denied", target=why)
                return _json_error(403, f"not allowed: {why}")
        return None

    def _from_session(self) -> Principal | None:
        token = cookie.get("sid")
        if not token:
            return None
        with self.engine.begin() as conn:
            live = load_session(conn, token, idle_minutes=self.settings.cx_session_idle_minutes)
        if live is None:
            cookie.pop("sid", None)
            return None
        u = live.user
        return Principal("user", u.email, u.role, u.scope, u.id, u.name, live.csrf_token)

    def _from_header(self) -> Principal | None:
        name = self.settings.cx_auth_header
        if not name or request.headers.get(name) is None:
            return None
        proxies = {p.strip() for p in self.settings.cx_auth_header_proxies.split(",")}
        if client_ip() not in proxies:
            self._audit("sign_in", outcome="denied", actor=request.headers.get(name),
                        target=f"{name} header from an untrusted address")
            return None
        email = request.headers.get(name, "").strip().lower()
        with self.engine.begin() as conn:
            user = get_user_by_email(conn, email)
            if user is None or not user.active:
                audit.record(conn, "sign_in", actor=email, outcome="failed", ip=client_ip(),
                             target="header", detail="no active user with this email")
                return None
            token, live = start_session(conn, user, hours=self.settings.cx_session_hours,
                                        ip=client_ip(),
                                        user_agent=request.headers.get("User-Agent"))
            audit.record(conn, "sign_in", actor=email, user_id=user.id, ip=client_ip(),
                         target="header")
        cookie.clear()
        cookie["sid"] = token
        cookie.permanent = True
        return Principal("user", user.email, user.role, user.scope, user.id, user.name,
                         live.csrf_token)

    def _from_report(self, path: str) -> Principal | None:
        # The report page is opened by the PDF renderer with a signed token; its follow-up
        # requests (Dash's layout and callbacks) carry the grant made here in the cookie.
        if path.rstrip("/") == "/report" and request.method == "GET":
            from reports.token import TokenError, read_token

            try:
                req = read_token(self.settings.secret(), request.args.get("t"))
            except TokenError as exc:
                abort(403, description=str(exc))
            csrf = secrets.token_urlsafe(32)
            cookie.clear()
            cookie["report"] = {"scope": list(req.scope.units),
                                "until": time.time() + REPORT_GRANT_SECONDS, "csrf": csrf}
            return Principal("report", "report-renderer", "report", req.scope, csrf=csrf)
        grant = cookie.get("report")
        if isinstance(grant, dict) and grant.get("until", 0) > time.time():
            return Principal("report", "report-renderer", "report",
                             Scope.of(grant.get("scope") or []), csrf=grant.get("csrf"))
        return None

    # -- sign-in and sign-out ------------------------------------------------------------

    def login(self) -> Response | str:
        """GET: the form. POST: check the password (rate-limited), open a session."""
        nxt = _safe_next(request.values.get("next"))
        if request.method == "GET":
            return self._login_page(nxt)
        sent = request.form.get("csrf_token") or ""
        if not hmac.compare_digest(sent, cookie.get("login_csrf") or "-"):
            return self._login_page(nxt, "The sign-in form expired: please try again.",
                                    "warning", status=400)
        email = (request.form.get("email") or "").strip().lower()
        password = request.form.get("password") or ""
        ip = client_ip()
        with self.engine.begin() as conn:
            since = dt.datetime.now(dt.UTC).replace(tzinfo=None) - FAILURE_WINDOW
            limit = self.settings.cx_signin_max_failures
            if (audit.recent_failures(conn, since=since, actor=email) >= limit
                    or audit.recent_failures(conn, since=since, ip=ip) >= 4 * limit):
                audit.record(conn, "sign_in", actor=email, outcome="denied", ip=ip,
                             detail="rate limited")
                return self._login_page(
                    nxt, "Too many failed sign-ins: try again in 15 minutes, or ask an admin "
                    "to reset your password.", "danger", email=email, status=429)
            user, stored = password_hash_of(conn, email)
            ok = verify_password(stored, password) and user is not None and user.active
            if not ok:
                audit.record(conn, "sign_in", actor=email, outcome="failed", ip=ip,
                             detail="wrong email or password" if user is None or user.active
                             else "user disabled")
                fail = ("Wrong email or password." if user is None or user.active
                        else "This account is disabled.")
                return self._login_page(nxt, fail, "danger", email=email, status=401)
            token, _live = start_session(conn, user, hours=self.settings.cx_session_hours,
                                         ip=ip, user_agent=request.headers.get("User-Agent"))
            audit.record(conn, "sign_in", actor=email, user_id=user.id, ip=ip, target="password")
        self.sign_in_cookie(token)
        return redirect(nxt)

    def sign_in_cookie(self, token: str) -> None:
        """Replace whatever the cookie held by the new session (no session fixation)."""
        cookie.clear()
        cookie["sid"] = token
        cookie.permanent = True

    def _login_page(self, nxt: str, message: str | None = None, tone: str = "info", *,
                    email: str = "", status: int = 200) -> Response:
        csrf = cookie.get("login_csrf") or secrets.token_urlsafe(32)
        cookie["login_csrf"] = csrf
        html = render_template_string(LOGIN_PAGE, message=message, tone=tone, csrf=csrf,
                                      next=nxt, email=email, sso=self.settings.oidc_enabled)
        return Response(html, status=status, mimetype="text/html")

    def logout(self) -> Response:
        """End the session on the server and in the cookie."""
        who = current_principal()
        with self.engine.begin() as conn:
            end_session(conn, cookie.get("sid"))
            if who is not None:
                audit.record(conn, "sign_out", actor=who.email, user_id=who.user_id,
                             ip=client_ip())
        cookie.clear()
        response = redirect("/login")
        response.delete_cookie(CSRF_COOKIE)
        return response

    # -- responses -----------------------------------------------------------------------

    def harden(self, response: Response) -> Response:
        """after_request: security headers, the CSRF cookie, and no caching of data."""
        scripts = " ".join(["'self'", *self.script_hashes])
        response.headers["Content-Security-Policy"] = (
            "default-src 'self'; "
            f"script-src {scripts}; "
            # Plotly and Dash set inline styles; no script can run from a style.
            "style-src 'self' 'unsafe-inline'; "
            "img-src 'self' data: blob:; font-src 'self' data:; connect-src 'self'; "
            "object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'")
        response.headers["X-Frame-Options"] = "DENY"
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "same-origin"
        if self.settings.secure_cookies:
            response.headers["Strict-Transport-Security"] = "max-age=31536000"
        if not request.path.startswith(("/assets/", "/_dash-component-suites/")):
            response.headers["Cache-Control"] = "no-store"
        who = current_principal()
        if who is not None and who.csrf and request.cookies.get(CSRF_COOKIE) != who.csrf:
            # Readable by the page's JavaScript on purpose: Dash echoes it as X-CSRFToken.
            response.set_cookie(CSRF_COOKIE, who.csrf, httponly=False, samesite="Lax",
                                secure=self.settings.secure_cookies)
        return response

    def _forbidden(self, exc: Exception) -> Response:
        self._audit("access_denied", outcome="denied", target=str(exc)[:300])
        return _json_error(403, f"not allowed: {exc}")

    def _error(self, exc: Exception) -> Response:
        if isinstance(exc, HTTPException):
            return _json_error(exc.code or 500, exc.description or exc.name)
        ref = uuid.uuid4().hex[:8]
        log.exception("unhandled error %s on %s %s", ref, request.method, request.path)
        return _json_error(500, f"something went wrong on the server (reference {ref}); "
                                "the details are in the server log")

    def _audit(self, action: str, *, outcome: str = "ok", target: str | None = None,
               actor: str | None = None) -> None:
        who = current_principal()
        try:
            audit.record(self.engine, action, actor=actor or (who.email if who else None),
                         user_id=who.user_id if who else None, outcome=outcome,
                         target=target, ip=client_ip())
        except Exception:  # auditing must never turn a refusal into a 500
            log.exception("could not write the audit log")


def audit_request(engine: Engine, action: str, *, target: str | None = None,
                  detail: str | None = None, outcome: str = "ok") -> None:
    """Audit an action of the current request's principal (an export, a PDF render)."""
    who = current_principal()
    audit.record(engine, action, actor=who.email if who else None,
                 user_id=who.user_id if who else None, outcome=outcome, target=target,
                 detail=detail, ip=client_ip() if request else None)


def _quote(value: str) -> str:
    from urllib.parse import quote

    return quote(value, safe="/")


def _json_error(status: int, message: str) -> Response:
    wants_html = (request.method in SAFE_METHODS and "text/html" in
                  (request.headers.get("Accept") or "") and not request.path.startswith("/_dash"))
    if wants_html:
        from html import escape

        body = (f"<!doctype html><title>{status}</title><link rel='stylesheet' "
                f"href='/assets/vendor/bootstrap.min.css'><main class='container mt-5'>"
                f"<h1 class='h4'>{status}</h1><p>{escape(message)}</p>"
                f"<p><a href='/'>Back to the dashboard</a></p></main>")
        return Response(body, status=status, mimetype="text/html")
    response = jsonify(error=message)
    response.status_code = status
    return response


def init_auth(server: Flask, settings: Settings, engine: Engine) -> Auth:
    """Attach sign-in, CSRF, page roles and security headers to `server`."""
    return Auth(server, settings, engine)


def principal_json(p: Principal | None) -> str:
    """The principal as JSON, for logs and the audit page."""
    if p is None:
        return "null"
    return json.dumps({"kind": p.kind, "email": p.email, "role": p.role,
                       "scope": list(p.scope.units) if p.scope else None})


__all__ = ["Auth", "Principal", "UserError", "current_principal", "init_auth"]
