"""Short-lived, single-purpose signed tokens that open the report page inside one scope.

The headless browser gets a URL whose token carries the scope (org units), the period and
the paper; itsdangerous signs it with SECRET_KEY, as Flask signs its sessions. The token
says what it is for (`purpose: "report"`) and lives a minute: long enough for the renderer
to open the page it was made for, too short to be worth lifting from a log. A missing,
expired, altered or other-purpose token opens nothing.

The web app's sign-in treats a valid token as the principal of the report page's requests:
its scope is the token's scope, never wider.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from queries.periods import Month
from queries.scope import Scope

SALT = "cx-report-v2"
PURPOSE = "report"
MAX_AGE_SECONDS = 60


class TokenError(PermissionError):
    """The report token is missing, expired or not ours."""


@dataclass(frozen=True)
class ReportRequest:
    """What one PDF shows: a scope, a period, optional filters, and the paper.

    `label` names the scope as people know it (and whose it is); the PDF's footer prints it.
    """

    scope: Scope
    period: Month
    paper: str = "A4"
    landscape: bool = True
    filters: dict[str, str] = field(default_factory=dict)
    label: str = ""


def make_token(secret: str, request: ReportRequest) -> str:
    """A signed, timestamped report token for `request`."""
    payload = {"purpose": PURPOSE, "scope": list(request.scope.units),
               "period": str(request.period), "paper": request.paper,
               "landscape": request.landscape, "filters": dict(request.filters)}
    return URLSafeTimedSerializer(secret, salt=SALT).dumps(payload)


def read_token(secret: str, token: str | None, *, max_age: int = MAX_AGE_SECONDS
               ) -> ReportRequest:
    """The request a token carries, or TokenError saying why it is refused."""
    if not token:
        raise TokenError("no report token")
    try:
        payload = URLSafeTimedSerializer(secret, salt=SALT).loads(token, max_age=max_age)
    except SignatureExpired as exc:
        raise TokenError("the report token has expired") from exc
    except BadSignature as exc:
        raise TokenError("the report token is not valid") from exc
    if not isinstance(payload, dict) or payload.get("purpose") != PURPOSE:
        raise TokenError("the token is not a report token")
    try:
        scope = Scope.of(payload["scope"])
        if not scope.units:
            raise ValueError("empty scope")
        return ReportRequest(
            scope=scope, period=Month.parse(payload["period"]),
            paper=payload.get("paper", "A4"), landscape=bool(payload.get("landscape", True)),
            filters={k: str(v) for k, v in (payload.get("filters") or {}).items()},
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise TokenError("the report token is malformed") from exc
