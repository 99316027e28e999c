"""The sources config: one TOML file declaring every source, read and checked at start.

A company adds a source by writing a `[[source]]` table, not code. Every mistake is reported
with the source's name, the key and what was expected, before anything runs.
"""

from __future__ import annotations

import codecs
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from etl.model import DEFAULT_ENTITY, ENTITIES

Adapter = Literal["csv", "excel", "file", "qualtrics", "sql", "http_json"]
FILE_ADAPTERS = ("csv", "excel", "file", "qualtrics")


class ConfigError(ValueError):
    """The sources config is wrong; the message says where and what was expected."""


class AutoCreate(BaseModel):
    """`[source.auto_create_org_units]`: unknown org unit codes become new units."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    parent: str = Field(min_length=1, description="Id of the existing parent unit.")
    kind: Literal["region", "store", "team"] = "store"


class Scale(BaseModel):
    """A rating scale: `{min = 1, max = 4, favourable = 3}`.

    `favourable` is the lowest answer counted as favourable (top-box); values outside
    [min, max] are quarantined.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    min: int = Field(ge=0, le=10)
    max: int = Field(ge=1, le=10)
    favourable: int

    @model_validator(mode="after")
    def _ordered(self) -> Scale:
        if self.min >= self.max:
            raise ValueError(f"scale: min ({self.min}) must be below max ({self.max})")
        if not self.min < self.favourable <= self.max:
            raise ValueError(f"scale: favourable ({self.favourable}) must lie in "
                             f"{self.min + 1}..{self.max}")
        return self


# The product's reference scales: what a source without a `scale` declaration is on.
DEFAULT_SCALES = {
    "csat": Scale(min=1, max=5, favourable=4),
    "ces": Scale(min=1, max=7, favourable=5),
    "rating": Scale(min=1, max=5, favourable=4),
}
SCALED_FIELDS = ("csat", "ces")
NOT_APPLICABLE = "n/a"
"""A value map's target meaning "no answer" for that one value (e.g. `0 = "n/a"`)."""


class HttpOptions(BaseModel):
    """`[source.http]`: how to page through a JSON HTTP export."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    records: str = Field("", description="Dotted path of the list of records ('' = the body).")
    next: str | None = Field(None, description="Dotted path of the next page's URL.")
    cursor: str | None = Field(None, description="Dotted path of the next page's cursor.")
    cursor_param: str = Field("cursor", description="Query parameter that sends the cursor.")
    params: dict[str, str | int | float | bool] = Field(default_factory=dict)
    headers: dict[str, str] = Field(
        default_factory=dict, description="Request headers; ${VAR} is read from the environment."
    )
    since_param: str | None = Field(
        None, description="Query parameter sending the stored watermark (incremental reads)."
    )
    timeout: float = Field(30.0, gt=0, description="Seconds per request.")
    retries: int = Field(3, ge=0, le=10, description="Retries of a failed request.")
    backoff: float = Field(1.0, ge=0, description="First retry delay in seconds; doubles.")
    max_pages: int = Field(10_000, ge=1, description="Guard against a server that never ends.")

    @model_validator(mode="after")
    def _one_paging(self) -> HttpOptions:
        if self.next and self.cursor:
            raise ValueError("http: set either `next` (link) or `cursor`, not both")
        return self


class SourceConfig(BaseModel):
    """One `[[source]]` of the config."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    # What people call the source; screens show it beside the name ("Customer survey").
    title: str | None = Field(None, min_length=1, max_length=80, pattern=r"^[^\r\n]*$")
    kind: Literal["org", "survey", "loyalty", "engagement"]
    entity: str | None = None
    adapter: Adapter
    location: str = Field(min_length=1)
    schedule: str | None = None
    enabled: bool = True
    encoding: str = "utf-8"
    delimiter: str | None = None
    date_format: str | None = None
    na_values: list[str] = Field(
        default_factory=lambda: ["", "NA", "N/A", "n/a", "NaN", "null", "NULL", "-"]
    )
    sheet: str | int | None = None
    table: str | None = None
    query: str | None = None
    watermark: str | None = None
    respondent_salt: str | None = None
    max_quarantine_share: float = Field(
        0.05, ge=0, le=1,
        description="A batch with a larger share of quarantined rows ends the run as 'warning'.",
    )
    scale: Scale | None = None
    scales: dict[str, Scale] = Field(default_factory=dict)
    http: HttpOptions | None = None
    auto_create_org_units: AutoCreate | None = None
    columns: dict[str, str] = Field(default_factory=dict)
    values: dict[str, dict[str, Any]] = Field(default_factory=dict)
    constants: dict[str, Any] = Field(default_factory=dict)
    attributes: dict[str, str] = Field(default_factory=dict)
    items: dict[str, str] = Field(default_factory=dict)
    # Folder of the config file: relative locations are resolved against it.
    base_dir: Path = Field(default=Path("."), exclude=True)

    @field_validator("encoding")
    @classmethod
    def _known_encoding(cls, value: str) -> str:
        try:
            codecs.lookup(value)
        except LookupError as exc:
            raise ValueError(f"unknown encoding {value!r}; expected e.g. utf-8, latin-1") from exc
        return value

    @field_validator("respondent_salt")
    @classmethod
    def _real_salt(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if value.startswith("${") and value.endswith("}"):
            return value  # read from the environment when used
        if len(value) < 16:
            raise ValueError(
                "too short to protect employee ids (a guessable salt lets anyone with the "
                "database hash every id and find them): use 16 or more random characters, "
                "'${ENV_VAR}' to read it from the environment, or leave it out to have one "
                "generated and kept in CX_DATA_DIR"
            )
        return value

    @field_validator("delimiter")
    @classmethod
    def _one_char(cls, value: str | None) -> str | None:
        if value is not None and len(value) != 1:
            raise ValueError("expected a single character such as ',', ';' or '\\t'")
        return value

    @field_validator("schedule")
    @classmethod
    def _cron(cls, value: str | None) -> str | None:
        if value is None:
            return None
        from queries.cron import cron_trigger

        try:
            cron_trigger(value)
        except ValueError as exc:
            raise ValueError(
                f"expected a 5-field cron expression such as '0 5 * * *' ({exc})"
            ) from exc
        return value

    @model_validator(mode="after")
    def _coherent(self) -> SourceConfig:
        entity_name = self.entity or DEFAULT_ENTITY[self.kind]
        if entity_name not in ENTITIES:
            raise ValueError(f"entity: expected one of {sorted(ENTITIES)}, got {entity_name!r}")
        entity = ENTITIES[entity_name]
        if entity.kind != self.kind:
            raise ValueError(f"entity {entity_name!r} belongs to kind {entity.kind!r}")
        known = set(entity.fields)
        rated = set(self.attributes) | set(self.items)
        for section in ("columns", "values", "constants"):
            allowed = known | rated if section == "values" else known
            unknown = sorted(set(getattr(self, section)) - allowed)
            if unknown:
                raise ValueError(
                    f"{section}: unknown field(s) {unknown}; expected fields of "
                    f"{entity_name}: {sorted(known)}"
                )
        if self.scale is not None and entity.ratings is None:
            raise ValueError("scale: only survey attributes and engagement items have a scale")
        group = entity.ratings or ""
        scalable = rated | {group} | ({*SCALED_FIELDS} & known)
        unknown = sorted(set(self.scales) - scalable)
        if unknown:
            raise ValueError(
                f"scales: unknown field(s) {unknown}; expected one of {sorted(scalable)} "
                f"('{group or 'items'}' for every rated column at once)"
            )
        if self.attributes and entity.ratings != "attributes":
            raise ValueError("attributes: only survey sources have attribute ratings")
        if self.items and entity.ratings != "items":
            raise ValueError("items: only engagement response sources have items")
        for fname, spec in entity.fields.items():
            if spec.required and fname not in self.columns and fname not in self.constants:
                raise ValueError(
                    f"columns.{fname}: required for {entity_name}; map it to a source column "
                    "or set it in [source.constants]"
                )
        if self.adapter == "sql" and not (self.table or self.query):
            raise ValueError("table: the sql adapter needs `table` or `query`")
        if self.watermark and self.adapter not in ("sql", "http_json"):
            raise ValueError("watermark: only the sql and http_json adapters read incrementally")
        if self.adapter == "http_json" and not self.location.startswith(("http://", "https://")):
            raise ValueError("location: the http_json adapter needs an http(s):// URL")
        if self.http is not None and self.adapter != "http_json":
            raise ValueError("http: only the http_json adapter takes [source.http] options")
        return self

    def scale_of(self, field: str) -> Scale | None:
        """The declared scale of a score field (csat, ces) or of one rated column (an item or
        attribute): its own entry in `scales`, else the group's (`scales.items`, `scale`);
        None when the source keeps the product's default scale."""
        if field in self.scales:
            return self.scales[field]
        if field in SCALED_FIELDS:
            return None
        group = "items" if field in self.items else "attributes"
        return self.scales.get(group) or self.scale

    @property
    def entity_name(self) -> str:
        """The target entity (explicit, or the kind's default)."""
        return self.entity or DEFAULT_ENTITY[self.kind]

    def resolve(self, location: str | None = None) -> Path:
        """A path of this source, relative ones resolved against the config's folder."""
        path = Path(location or self.location).expanduser()
        return path if path.is_absolute() else self.base_dir / path

    def sql_url(self) -> str:
        """The source database URL; relative SQLite paths are resolved against the config."""
        url = self.location
        prefix = "sqlite:///"
        if url.startswith(prefix) and not url.startswith(prefix + "/"):
            rest = url[len(prefix) :]
            if rest and not rest.startswith(":memory:"):
                url = prefix + str(self.resolve(rest))
        return url


class SourcesConfig(BaseModel):
    """The whole file: a list of sources with unique names."""

    model_config = ConfigDict(extra="forbid")

    path: Path
    sources: list[SourceConfig]

    def get(self, name: str) -> SourceConfig:
        """The source called `name`, or a ConfigError listing the known names."""
        for source in self.sources:
            if source.name == name:
                return source
        known = ", ".join(s.name for s in self.sources)
        raise ConfigError(f"{self.path}: no source named {name!r}; known sources: {known}")


def _describe(err: dict[str, Any]) -> str:
    loc = [str(p) for p in err["loc"]]
    key = ".".join(loc) if loc else "(source)"
    msg = err["msg"].removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        return f"key {key!r}: not a known key"
    if err["type"] == "missing":
        return f"key {key!r}: missing, this key is required"
    if err["type"] == "literal_error":
        return f"key {key!r}: {msg}, got {err.get('input')!r}"
    if key == "(source)" and ":" in msg:
        key, _, msg = msg.partition(":")
        return f"key {key.strip()!r}: {msg.strip()}"
    return f"key {key!r}: {msg}"


def load_config(path: Path) -> SourcesConfig:
    """Read and check the sources config at `path`; raise ConfigError naming source and key."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(
            f"sources config {path} does not exist (set CX_SOURCES, or run `python -m etl demo` "
            "to write the demo config)"
        )
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"sources config {path}: not valid TOML: {exc}") from exc
    unknown_top = sorted(set(raw) - {"source"})
    if unknown_top:
        raise ConfigError(f"sources config {path}: unknown top-level key(s) {unknown_top}; "
                          "declare each source as a [[source]] table")
    entries = raw.get("source")
    if not isinstance(entries, list) or not entries:
        raise ConfigError(f"sources config {path}: no [[source]] tables found")
    sources: list[SourceConfig] = []
    problems: list[str] = []
    for index, entry in enumerate(entries, start=1):
        label = f"source {entry.get('name')!r}" if entry.get("name") else f"source #{index}"
        try:
            sources.append(SourceConfig(**entry, base_dir=path.parent.resolve()))
        except ValidationError as exc:
            problems.extend(f"{label}: {_describe(e)}" for e in exc.errors())
    names = [s.name for s in sources]
    problems.extend(
        f"source {n!r}: key 'name': declared more than once"
        for n in sorted({n for n in names if names.count(n) > 1})
    )
    if problems:
        raise ConfigError(f"sources config {path}:\n  " + "\n  ".join(problems))
    return SourcesConfig(path=path, sources=sources)
