"""A small but real OpenID Connect provider for tests, served over HTTP on 127.0.0.1.

Built on Authlib's pieces (PKCE from `authlib.oauth2.rfc7636`, RS256 tokens with joserfc,
Authlib's JOSE library): discovery, an authorization endpoint that requires PKCE S256 and
signs in whoever `user` names, a token endpoint that checks the client secret, the
redirect URI and the code verifier, JWKS and userinfo. What the relying party sent is kept
in `seen`, so a test can assert it used PKCE.
"""

from __future__ import annotations

import secrets
import threading
import time
from typing import Any
from urllib.parse import urlencode

from authlib.oauth2.rfc7636 import create_s256_code_challenge
from flask import Flask, jsonify, redirect, request
from joserfc import jwt
from joserfc.jwk import RSAKey
from werkzeug.serving import make_server

from tests.conftest import free_port


class LocalIdP:
    """Context manager: the provider runs while the block runs."""

    def __init__(self, client_id: str, client_secret: str) -> None:
        self.client_id = client_id
        self.client_secret = client_secret
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.key = RSAKey.generate_key(2048, parameters={"kid": "test-key", "use": "sig"})
        self.user: dict[str, Any] = {}
        self.codes: dict[str, dict[str, Any]] = {}
        self.seen: list[dict[str, Any]] = []
        self.app = self._build()
        self._server = make_server("127.0.0.1", self.port, self.app, threaded=True)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> LocalIdP:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()

    def _build(self) -> Flask:
        app = Flask("test-idp")

        @app.get("/.well-known/openid-configuration")
        def discovery():
            return jsonify(
                issuer=self.url, authorization_endpoint=f"{self.url}/authorize",
                token_endpoint=f"{self.url}/token", jwks_uri=f"{self.url}/jwks",
                userinfo_endpoint=f"{self.url}/userinfo", response_types_supported=["code"],
                subject_types_supported=["public"],
                id_token_signing_alg_values_supported=["RS256"],
                code_challenge_methods_supported=["S256"],
                token_endpoint_auth_methods_supported=["client_secret_basic",
                                                       "client_secret_post"])

        @app.get("/authorize")
        def authorize():
            args = request.args.to_dict()
            self.seen.append({"endpoint": "authorize", **args})
            if args.get("client_id") != self.client_id:
                return "unknown client", 400
            if args.get("code_challenge_method") != "S256" or not args.get("code_challenge"):
                return "PKCE with S256 is required", 400
            code = secrets.token_urlsafe(16)
            self.codes[code] = {"challenge": args["code_challenge"], "nonce": args.get("nonce"),
                                "redirect_uri": args["redirect_uri"], "user": dict(self.user)}
            return redirect(args["redirect_uri"] + "?"
                            + urlencode({"code": code, "state": args.get("state", "")}))

        @app.post("/token")
        def token():
            form = request.form.to_dict()
            auth = request.authorization
            client_id = auth.username if auth else form.get("client_id")
            secret = auth.password if auth else form.get("client_secret")
            grant = self.codes.pop(form.get("code", ""), None)
            verified = bool(grant) and create_s256_code_challenge(
                form.get("code_verifier", "")) == grant["challenge"]
            self.seen.append({"endpoint": "token", "verifier_ok": verified, **form})
            if client_id != self.client_id or secret != self.client_secret:
                return jsonify(error="invalid_client"), 401
            if not grant or form.get("redirect_uri") != grant["redirect_uri"]:
                return jsonify(error="invalid_grant"), 400
            if not verified:
                return jsonify(error="invalid_grant", error_description="PKCE failed"), 400
            now = int(time.time())
            claims = {"iss": self.url, "aud": self.client_id, "iat": now, "exp": now + 300,
                      "sub": grant["user"]["email"], "nonce": grant["nonce"], **grant["user"]}
            id_token = jwt.encode({"alg": "RS256", "kid": "test-key"}, claims, self.key)
            access = secrets.token_urlsafe(16)
            self.codes[f"access:{access}"] = grant
            return jsonify(access_token=access, token_type="Bearer", expires_in=300,
                           id_token=id_token, scope="openid email profile")

        @app.get("/jwks")
        def jwks():
            return jsonify(keys=[self.key.as_dict(private=False)])

        @app.get("/userinfo")
        def userinfo():
            bearer = (request.headers.get("Authorization") or "").removeprefix("Bearer ")
            grant = self.codes.get(f"access:{bearer}")
            if not grant:
                return jsonify(error="invalid_token"), 401
            return jsonify(sub=grant["user"]["email"], **grant["user"])

        return app
