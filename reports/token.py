"""Short-lived signed tokens that open the report page inside one recipient's scope.

The headless browser gets a URL whose token carries the scope (org units), the period and
the paper; itsdangerous signs it with SECRET_KEY, as Flask signs its sessions. A missing,
expired or altered token opens nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from queries.periods import Month
from queries.scope import Scope

SALT = "cx-report-v1"
MAX_AGE_SECONDS = 15 * 60


class TokenError(PermissionError):
    """The report token is missing, expired or not ours."""


@dataclass(frozen=True)
class ReportRequest:
    """What one PDF shows: a scope, a period, optional filters, and the paper."""

    scope: Scope
    period: Month
    paper: str = "A4"
    landscape: bool = True
    filters: dict[str, str] = field(default_factory=dict)


def make_token(secret: str, request: ReportRequest) -> str:
    """A signed, timestamped token for `request`."""
    payload = {"scope": list(request.scope.units), "period": str(request.period),
               "paper": request.paper, "landscape": request.landscape,
               "filters": dict(request.filters)}
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
    try:
        return ReportRequest(
            scope=Scope.of(payload["scope"]), period=Month.parse(payload["period"]),
            paper=payload.get("paper", "A4"), landscape=bool(payload.get("landscape", True)),
            filters={k: str(v) for k, v in (payload.get("filters") or {}).items()},
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise TokenError("the report token is malformed") from exc
