"""The one settings object: every configurable value, read from environment variables.

Values come from the process environment and, if present, a `.env` file in the repo root
(the environment wins). `load_settings()` turns pydantic's validation errors into a
`SettingsError` whose message names the environment variable, so a wrong value fails at
start with something a person can act on.
"""

from __future__ import annotations

import os
import secrets
import tempfile
from functools import lru_cache
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, ValidationError, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

ROOT = Path(__file__).resolve().parents[1]
"""The repository root: relative paths in settings are resolved against it."""
MIN_SECRET_LENGTH = 32
"""Shortest signing key accepted: an empty or short key signs tokens anyone can forge."""
NEW_KEY_HINT = "python -c 'import secrets; print(secrets.token_urlsafe(48))'"


class SettingsError(ValueError):
    """A setting has an invalid value; the message names the environment variable."""


class Settings(BaseSettings):
    """Configuration of every process (web, scheduler, CLI). Field name = env variable name."""

    model_config = SettingsConfigDict(
        env_file=str(ROOT / ".env"),
        env_file_encoding="utf-8",
        extra="ignore",
        case_sensitive=False,
    )

    database_url: str = Field(
        "sqlite:///data/cx.db",
        description="SQLAlchemy URL of the reporting database; a relative SQLite path is "
        "relative to the repo. postgresql:// URLs use the psycopg 3 driver.",
    )
    database_read_url: str | None = Field(
        None,
        description="Optional read replica of DATABASE_URL for the web tier's dashboard "
        "reads (pages, downloads, PDFs); every write (sessions, audit, users, subscriptions, "
        "deliveries) still goes to DATABASE_URL. Unset: everything uses DATABASE_URL.",
    )
    cx_sources: Path = Field(
        Path("data/demo/sources.toml"), description="Path of the sources config (TOML)."
    )
    cx_data_dir: Path = Field(Path("data"), description="Folder for local state and demo data.")
    secret_key: SecretStr | None = Field(
        None,
        description="Signs report tokens. Unset: a random key is kept in CX_DATA_DIR/secret_key "
        "(fine for one machine; set it explicitly in production).",
    )
    cx_base_url: str = Field("http://127.0.0.1:8050", description="Public URL of the dashboard.")
    cx_render_url: str | None = Field(
        None,
        description="Where the scheduler's PDF renderer opens the report page (the web app); "
        "default CX_BASE_URL. Set it to the web process's internal address when the public "
        "URL is behind an authenticating proxy.",
    )
    cx_pdf_concurrency: int = Field(
        1, ge=1, le=8, description="PDFs rendered at once per process (each one a Chromium)."
    )
    cx_pdf_queue: int = Field(
        2, ge=0, le=32, description="PDF requests that may wait per process; more are 'busy'."
    )
    cx_pdf_per_user: int = Field(
        3, ge=1, description="PDFs one person may ask for per minute (per web worker)."
    )
    smtp_url: str | None = Field(
        None,
        description="smtp://user:password@host:port (add ?starttls=true), or smtps:// for TLS.",
    )
    smtp_from: str = Field("CX dashboard <cx-dashboard@localhost>", description="Sender address.")
    smtp_timeout: float = Field(30.0, gt=0, description="Seconds before an SMTP call gives up.")
    cx_min_n: int = Field(30, ge=1, description="Below this sample size a KPI is 'low sample'.")
    cx_anonymity_min: int = Field(
        5, ge=2, description="Employee groups with fewer respondents show no value."
    )
    cx_active_days: int = Field(90, ge=1, description="Window defining an active member.")
    cx_comment_languages: str = Field(
        "en,fr,ru", pattern=r"^[a-z]{2}(,[a-z]{2})*$",
        description="Languages comments are detected among (ISO 639-1, comma-separated).")
    cx_comment_topics: int = Field(
        0, ge=0, le=40, description="Topics per language; 0 chooses from the comment count.")
    cx_revenue_days: int = Field(180, ge=1, description="Days of revenue after a survey answer.")
    cx_case_sla_hours: float = Field(
        48, gt=0, description="A follow-up case is due this long after it opens.")
    cx_case_lookback_days: int = Field(
        14, ge=1, description="Cases open for answers this many days before the newest.")
    cx_case_digest: bool = Field(
        False, description="Email case owners one daily digest instead of one email per case.")
    cx_timezone: str = Field("Europe/London", description="Timezone of schedules and periods.")
    cache_redis_url: str | None = Field(None, description="Redis URL for the dashboard cache.")
    cx_targets: str = Field(
        "", description="KPI targets as key=value pairs, e.g. 'nps=45,csat=80,ces=5.5'."
    )
    cx_stale_hours: int = Field(
        48, ge=1, description="A source without a successful load for this long is stale."
    )
    cx_currency: str = Field(
        "GBP", description="ISO 4217 code of the money shown everywhere (EUR, USD, GBP...)."
    )
    cx_locale: str = Field(
        "en_GB", description="Locale of numbers and money (fr_FR writes 1 234,50 €)."
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    # Sign-in and sessions
    cx_session_hours: float = Field(
        12, gt=0, description="A session ends this many hours after sign-in, whatever happens."
    )
    cx_session_idle_minutes: float = Field(
        60, gt=0, description="A session ends after this many minutes without a request."
    )
    cx_cookie_secure: bool | None = Field(
        None, description="Send cookies only over HTTPS; default: when CX_BASE_URL is https."
    )
    cx_signin_max_failures: int = Field(
        5, ge=1, description="Failed sign-ins for one email (x4 for one address) in 15 "
        "minutes before sign-in is refused for a while."
    )
    cx_auth_header: str | None = Field(
        None, description="Trusted-header mode: the header an authenticating proxy sets to the "
        "signed-in user's email (e.g. X-Forwarded-Email). Only requests from "
        "CX_AUTH_HEADER_PROXIES are believed."
    )
    cx_auth_header_proxies: str = Field(
        "127.0.0.1,::1", description="Comma-separated addresses of the trusted proxies."
    )
    oidc_issuer: str | None = Field(
        None, description="OpenID Connect issuer URL (discovery at "
        "ISSUER/.well-known/openid-configuration); enables single sign-on."
    )
    oidc_client_id: str | None = Field(None, description="OIDC client id.")
    oidc_client_secret: SecretStr | None = Field(None, description="OIDC client secret.")
    oidc_scopes: str = Field("openid email profile", description="OIDC scopes requested.")
    oidc_role_claim: str = Field(
        "groups", description="Claim holding the user's groups or role (a list or a string)."
    )
    oidc_role_map: str = Field(
        "", description="group=role pairs, e.g. 'cx-admins=admin,cx-execs=executive,"
        "cx-managers=manager'; the strongest matching role wins."
    )
    oidc_scope_claim: str = Field(
        "cx_units", description="Claim with a manager's org unit ids (a list or 'A,B')."
    )
    oidc_default_role: Literal["executive", "manager", "admin"] | None = Field(
        None, description="Role of a user whose groups map to none (unset: refused)."
    )

    @field_validator("database_url", "database_read_url")
    @classmethod
    def _check_database_url(cls, value: str | None, info: ValidationInfo) -> str | None:
        if info.field_name == "database_read_url" and not value:
            return None
        scheme = urlsplit(value).scheme
        if not scheme or "://" not in value:
            raise ValueError("expected a SQLAlchemy URL such as sqlite:///data/cx.db")
        if scheme in ("postgres", "postgresql"):
            # SQLAlchemy's default PostgreSQL driver is psycopg2, which we do not ship.
            value = "postgresql+psycopg://" + value.split("://", 1)[1]
        if value.startswith("sqlite:///") and not value.startswith("sqlite:////"):
            rel = value[len("sqlite:///") :]
            if rel and rel != ":memory:" and not rel.startswith("file:"):
                value = "sqlite:///" + str((ROOT / rel).resolve())
        return value

    @field_validator("secret_key")
    @classmethod
    def _check_secret_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value().strip()) < MIN_SECRET_LENGTH:
            raise ValueError(f"an empty or short key signs tokens anyone can forge: use at "
                             f"least {MIN_SECRET_LENGTH} characters (make one with "
                             f"{NEW_KEY_HINT}), or unset it to have one generated")
        return value

    @field_validator("cx_sources", "cx_data_dir")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        return value if value.is_absolute() else (ROOT / value).resolve()

    @field_validator("cx_base_url", "cx_render_url")
    @classmethod
    def _check_base_url(cls, value: str | None, info: ValidationInfo) -> str | None:
        if info.field_name == "cx_render_url" and not value:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError("expected an http(s) URL such as http://127.0.0.1:8050")
        return value.rstrip("/")

    @field_validator("smtp_url")
    @classmethod
    def _check_smtp_url(cls, value: str | None) -> str | None:
        if value in (None, ""):
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
            raise ValueError("expected smtp://[user:password@]host[:port] or smtps://...")
        return value

    @field_validator("cx_timezone")
    @classmethod
    def _check_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError("expected an IANA timezone name such as Europe/London") from exc
        return value

    @field_validator("cx_currency")
    @classmethod
    def _check_currency(cls, value: str) -> str:
        from babel.numbers import is_currency

        code = value.strip().upper()
        if not is_currency(code):
            raise ValueError("expected an ISO 4217 currency code such as GBP, EUR or USD")
        return code

    @field_validator("cx_locale")
    @classmethod
    def _check_locale(cls, value: str) -> str:
        from babel import Locale, UnknownLocaleError

        try:
            return str(Locale.parse(value.strip().replace("-", "_")))
        except (UnknownLocaleError, ValueError) as exc:
            raise ValueError("expected a locale such as en_GB, fr_FR or de_DE") from exc

    @field_validator("cx_targets")
    @classmethod
    def _check_targets(cls, value: str) -> str:
        for part in filter(None, (p.strip() for p in value.split(","))):
            key, sep, number = part.partition("=")
            if not sep or not key.strip():
                raise ValueError(f"expected key=value pairs such as 'nps=45', got {part!r}")
            try:
                float(number)
            except ValueError as exc:
                raise ValueError(f"target of {key.strip()!r} is not a number") from exc
        return value

    @property
    def targets(self) -> dict[str, float]:
        """KPI targets by KPI key, from CX_TARGETS."""
        out = {}
        for part in filter(None, (p.strip() for p in self.cx_targets.split(","))):
            key, _, number = part.partition("=")
            out[key.strip()] = float(number)
        return out

    @field_validator("oidc_role_map")
    @classmethod
    def _check_role_map(cls, value: str) -> str:
        for part in filter(None, (p.strip() for p in value.split(","))):
            group, sep, role = part.rpartition("=")
            if not sep or not group.strip() or role.strip() not in ("executive", "manager",
                                                                   "admin"):
                raise ValueError(f"expected group=role pairs with role executive, manager or "
                                 f"admin, got {part!r}")
        return value

    @property
    def role_map(self) -> dict[str, str]:
        """OIDC group -> role, from OIDC_ROLE_MAP."""
        out = {}
        for part in filter(None, (p.strip() for p in self.oidc_role_map.split(","))):
            group, _, role = part.rpartition("=")
            out[group.strip()] = role.strip()
        return out

    @property
    def oidc_enabled(self) -> bool:
        """Single sign-on is on when the issuer and client id are set."""
        return bool(self.oidc_issuer and self.oidc_client_id)

    @property
    def secure_cookies(self) -> bool:
        """Cookies marked Secure: CX_COOKIE_SECURE, else whether CX_BASE_URL is https."""
        if self.cx_cookie_secure is not None:
            return self.cx_cookie_secure
        return self.cx_base_url.startswith("https://")

    @property
    def read_url(self) -> str:
        """Where the web tier's dashboard reads go: DATABASE_READ_URL, else DATABASE_URL."""
        return self.database_read_url or self.database_url

    @property
    def is_sqlite(self) -> bool:
        """True when the reporting database is an SQLite file."""
        return self.database_url.startswith("sqlite")

    def secret(self) -> str:
        """The signing key: SECRET_KEY, else a random key persisted under CX_DATA_DIR.

        Processes starting together (gunicorn workers, the scheduler) must agree on one key
        and none may read a half-written file: the key is written whole to a temporary file
        first and published with a hard link, which fails if another process published first
        (then its key is used). Raises SettingsError for an empty or short key file.
        """
        if self.secret_key is not None:
            return self.secret_key.get_secret_value().strip()
        path = self.cx_data_dir / "secret_key"
        if not path.exists():
            _publish_new_key(path)
        key = path.read_text().strip()
        if len(key) < MIN_SECRET_LENGTH:
            raise SettingsError(f"{path} holds an empty or short signing key "
                                f"({len(key)} characters): delete the file to have a new one "
                                f"generated, or set SECRET_KEY")
        return key


def _publish_new_key(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".secret_key.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as fh:  # mkstemp makes it 0600
            fh.write(secrets.token_urlsafe(48))
            fh.flush()
            os.fsync(fh.fileno())
        # link, not rename: a rename would replace a key another process already uses.
        os.link(tmp, path)
    except FileExistsError:
        pass
    finally:
        os.unlink(tmp)


def load_settings(**overrides: object) -> Settings:
    """Build settings from the environment (plus overrides), or raise a readable SettingsError."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            name = str(err["loc"][0]).upper() if err["loc"] else "settings"
            given = err.get("input")
            shown = f" (got {given!r})" if isinstance(given, str | int | float) else ""
            if name == "SECRET_KEY":  # never echo a key, even a bad one
                shown = f" (got {len(str(given))} characters)"
            lines.append(f"{name}: {err['msg']}{shown}")
        raise SettingsError("Invalid configuration:\n  " + "\n  ".join(lines)) from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Process-wide settings, read once."""
    return load_settings()
