"""Single sign-on through OpenID Connect (Authlib): discovery, authorization code with PKCE.

The identity provider is the authority for SSO users: at every sign-in their role comes from
a claim (OIDC_ROLE_CLAIM, e.g. groups) through OIDC_ROLE_MAP, and a manager's org units from
OIDC_SCOPE_CLAIM. The user row is created or updated to match, so sessions, scope
enforcement, subscriptions and the audit log treat them like everyone else.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from flask import Flask, Response, redirect, request
from flask import session as cookie

from auth import audit
from auth.sessions import start_session
from auth.users import UserError, add_user, get_user_by_email, set_active, set_role
from queries.settings import Settings

if TYPE_CHECKING:
    from auth.web import Auth

STRENGTH = {"manager": 0, "executive": 1, "admin": 2}


class ClaimError(PermissionError):
    """The identity provider's claims do not give this person a role or a scope."""


def _as_list(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [v.strip() for v in value.replace(";", ",").split(",") if v.strip()]
    if isinstance(value, list | tuple):
        return [str(v).strip() for v in value if str(v).strip()]
    return [str(value)]


def role_and_scope(claims: dict[str, Any], settings: Settings) -> tuple[str, list[str]]:
    """(role, org unit ids) from the ID token / userinfo claims, or ClaimError."""
    mapping = settings.role_map
    groups = _as_list(claims.get(settings.oidc_role_claim))
    roles = [mapping[g] for g in groups if g in mapping]
    roles += [g for g in groups if g in STRENGTH and not mapping]
    if roles:
        role = max(roles, key=STRENGTH.__getitem__)
    elif settings.oidc_default_role:
        role = settings.oidc_default_role
    else:
        raise ClaimError(f"none of your groups ({', '.join(groups) or 'none'}) gives access to "
                         "the dashboard")
    units = _as_list(claims.get(settings.oidc_scope_claim)) if role == "manager" else []
    if role == "manager" and not units:
        raise ClaimError(f"a manager needs org units in the '{settings.oidc_scope_claim}' "
                         "claim")
    return role, units


def register_oidc(server: Flask, settings: Settings, auth: Auth) -> Any:
    """Add /auth/oidc/login and /auth/oidc/callback to `server`; returns the Authlib client."""
    from authlib.integrations.flask_client import OAuth

    oauth = OAuth(server)
    client = oauth.register(
        "idp",
        client_id=settings.oidc_client_id,
        client_secret=(settings.oidc_client_secret.get_secret_value()
                       if settings.oidc_client_secret else None),
        server_metadata_url=settings.oidc_issuer.rstrip("/")  # type: ignore[union-attr]
        + "/.well-known/openid-configuration",
        client_kwargs={"scope": settings.oidc_scopes, "code_challenge_method": "S256"},
    )

    def start() -> Response:
        from auth.web import _safe_next

        cookie["oidc_next"] = _safe_next(request.args.get("next"))
        return client.authorize_redirect(settings.cx_base_url + "/auth/oidc/callback")

    def callback() -> Response:
        from authlib.integrations.base_client import OAuthError

        from auth.web import client_ip

        nxt = cookie.get("oidc_next") or "/"
        try:
            token = client.authorize_access_token()
            claims = dict(token.get("userinfo") or client.userinfo(token=token))
            email = str(claims.get("email") or "").strip().lower()
            if not email:
                raise ClaimError("the identity provider sent no email claim")
            if claims.get("email_verified") is False:
                raise ClaimError("the identity provider says this email is not verified")
            role, units = role_and_scope(claims, settings)
        except (OAuthError, ClaimError) as exc:
            audit.record(auth.engine, "sign_in", actor=str(locals().get("email") or ""),
                         outcome="failed", target="oidc", detail=str(exc), ip=client_ip())
            return auth._login_page(nxt, f"Single sign-on failed: {exc}", "danger",
                                    status=403)
        with auth.engine.begin() as conn:
            user = get_user_by_email(conn, email)
            try:
                if user is None:
                    user = add_user(conn, email=email, role=role, scope=units or None,
                                    name=claims.get("name"), auth_source="oidc")
                else:
                    if not user.active:
                        raise UserError("this account is disabled")
                    user = set_role(conn, user.id, role, units or None)
                    user = set_active(conn, user.id, True)
            except UserError as exc:
                audit.record(conn, "sign_in", actor=email, outcome="failed", target="oidc",
                             detail=str(exc), ip=client_ip())
                return auth._login_page(nxt, f"Single sign-on failed: {exc}", "danger",
                                        status=403)
            session_token, _ = start_session(conn, user, hours=settings.cx_session_hours,
                                             ip=client_ip(),
                                             user_agent=request.headers.get("User-Agent"))
            audit.record(conn, "sign_in", actor=email, user_id=user.id, target="oidc",
                         detail=f"role {role}" + (f", units {','.join(units)}" if units else ""),
                         ip=client_ip())
        auth.sign_in_cookie(session_token)
        return redirect(nxt)

    server.add_url_rule("/auth/oidc/login", "oidc_login", start)
    server.add_url_rule("/auth/oidc/callback", "oidc_callback", callback)
    return client
