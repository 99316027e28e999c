"""Map a raw batch onto the reporting model and check every value.

Rows with a bad key, required field or reference go to quarantine, one record per bad field,
naming the file, line, field, the source's column, value and reason; a bad optional value is
dropped and recorded while the rest of its row loads; every other row loads. Checks run
column-wise with pandas so a batch of a million rows is validated in seconds.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from etl.config import DEFAULT_SCALES, NOT_APPLICABLE, SCALED_FIELDS, Scale, SourceConfig
from etl.model import ENTITIES, Entity, FieldSpec
from etl.sources import RawBatch, SourceError, by_unique

TRUE = {"true", "t", "yes", "y", "1"}
FALSE = {"false", "f", "no", "n", "0"}
# Far-future guard: clocks of source systems drift a little, a day of slack is honest.
FUTURE_SLACK = dt.timedelta(days=1)

KnownLookup = Callable[[str, Iterable[str]], set[str]]
# A time with a UTC offset at the end: "T10:30:00Z", " 10:30+02:00", " 10:30 +0100".
UTC_OFFSET = re.compile(r"\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?\s*(?:[zZ]|[+-]\d{2}(?::?\d{2})?)$")


@dataclass
class Problem:
    """One bad value of one row; `fatal` when the row cannot load without it."""

    index: int
    field: str
    value: object
    reason: str
    column: str | None = None
    fatal: bool = True


@dataclass
class Validated:
    """A validated batch: good rows typed for the table, ratings, and quarantine records."""

    frame: pd.DataFrame
    ratings: pd.DataFrame | None
    quarantine: list[dict[str, object]]
    read: int
    bad_rows: int = 0
    problems: list[Problem] = field(default_factory=list)
    partial_rows: int = 0
    unscored: int = 0
    keys_of: Callable[[], list[str]] | None = field(default=None, repr=False)

    @property
    def row_keys(self) -> list[str]:
        """Per row read: its natural key, or a hash of its content where the key is bad.
        Computed when asked (a hash per row is the dearest step of a clean load)."""
        return self.keys_of() if self.keys_of is not None else []


def _norm(name: str) -> str:
    return " ".join(str(name).split()).casefold()


def find_column(frame: pd.DataFrame, wanted: str) -> str | None:
    """The frame's column called `wanted`: exactly, then by alias (a Qualtrics ImportId or
    question text), then ignoring case and spacing."""
    if wanted in frame.columns:
        return wanted
    aliases: dict[str, str] = frame.attrs.get("aliases", {})
    if wanted in aliases:
        return aliases[wanted]
    target = _norm(wanted)
    for col in frame.columns:
        if _norm(col) == target:
            return col
    for alias, col in aliases.items():
        if _norm(alias) == target:
            return col
    return None


def _resolve_columns(batch: RawBatch, cfg: SourceConfig) -> dict[str, str]:
    mapping = {**cfg.columns}
    if cfg.attributes:
        mapping.update({f"attributes.{k}": v for k, v in cfg.attributes.items()})
    if cfg.items:
        mapping.update({f"items.{k}": v for k, v in cfg.items.items()})
    resolved: dict[str, str] = {}
    missing = []
    for target, source_col in mapping.items():
        found = find_column(batch.frame, source_col)
        if found is None:
            missing.append(f"{source_col!r} (for {target})")
        else:
            resolved[target] = found
    if missing:
        have = ", ".join(repr(c) for c in list(batch.frame.columns)[:40])
        raise SourceError(
            batch.origin, f"missing column(s) {', '.join(missing)}; the file has: {have}"
        )
    return resolved


def _missing(v: object) -> bool:
    """True for None, NaN, NaT and pd.NA: every spelling of 'no value' pandas may hand over."""
    return v is None or (not isinstance(v, str) and bool(pd.isna(v)))


def _all_text(series: pd.Series) -> bool:
    """True when every present value is a str (checked in C, not per row in Python)."""
    return pd.api.types.infer_dtype(series, skipna=True) in ("string", "empty")


def _clean_text(series: pd.Series, na_values: set[str]) -> pd.Series:
    def clean(v: object) -> object:
        if _missing(v):
            return None
        if isinstance(v, str):
            v = v.strip()
            return None if v in na_values else v
        return v

    if not _all_text(series):
        return pd.Series([clean(v) for v in series], index=series.index, dtype=object)
    return by_unique(series, lambda v: None if (t := str(v).strip()) in na_values else t)


def _apply_value_map(series: pd.Series, mapping: dict[str, object]) -> pd.Series:
    if not mapping:
        return series
    folded = {_norm(k): v for k, v in mapping.items()}

    def convert(v: object) -> object:
        if _missing(v):
            return None
        key = str(v)
        out = mapping[key] if key in mapping else folded.get(_norm(key), v)
        # `0 = "n/a"`: this one value means "no answer" in this one column.
        return None if isinstance(out, str) and out.casefold() == NOT_APPLICABLE else out

    return by_unique(series, convert)


def _decimal_comma(v: object) -> object:
    return v.replace(",", ".") if isinstance(v, str) and v.count(",") == 1 and "." not in v else v


def _to_number(series: pd.Series) -> pd.Series:
    if _all_text(series):
        has_comma = series.astype(object).str.contains(",", regex=False).fillna(False)
        text = series.astype(object).copy()
        if has_comma.any():
            text[has_comma] = text[has_comma].map(_decimal_comma)
    else:
        text = series.map(_decimal_comma)
    num = pd.to_numeric(text, errors="coerce")
    # "inf" and "1e400" parse as infinity: not a usable score, wait or spend (one infinite
    # value makes every average infinite), so they count as "not a number".
    return num.where(np.isfinite(num)) if num.dtype.kind == "f" else num


def _reasons(index: pd.Index, *rules: tuple[pd.Series, str]) -> pd.Series:
    """The reason of each bad row: the rows of each (mask, reason) get it; later rules win.

    Per row, not per column: a column holding "ten", "7.5" and "11" used to give all three
    rows one merged reason ("not a valid number in 0..10"), naming none of the problems.
    """
    out = pd.Series("", index=index, dtype=object)
    for mask, reason in rules:
        out[mask.to_numpy(dtype=bool)] = reason
    return out


def _to_datetime(text: pd.Series, fmt: str) -> pd.Series:
    """Parse texts with `fmt` into naive datetimes in the company's time (CX_TIMEZONE).

    A value with a UTC offset ("2024-01-05T10:30:00Z") is an instant and is converted to local
    time. Without utc=True pandas returns a tz-aware column (astype to naive then raises) or
    raises "Mixed timezones": one such value aborted the whole run instead of loading its rows.
    """
    parsed = pd.to_datetime(text, format=fmt, errors="coerce", utc=True)
    aware = pd.Series(False, index=text.index, dtype=bool)
    # Only a value ending in Z or holding + or a '-' after the date can carry an offset:
    # the regex runs on those few, not on every row.
    obj = text.astype(object)
    stripped = obj.str.strip()
    present = stripped.notna().to_numpy()
    maybe = pd.Series(False, index=text.index, dtype=bool)
    if present.any():
        got = stripped[present]
        maybe[present] = (got.str.contains("+", regex=False).to_numpy(dtype=bool)
                          | got.str[-1:].isin(["z", "Z"]).to_numpy(dtype=bool)
                          | got.str[8:].str.contains("-", regex=False).to_numpy(dtype=bool))
    if maybe.any():
        aware[maybe] = [isinstance(v, str) and UTC_OFFSET.search(v.strip()) is not None
                        for v in text[maybe]]
    naive = parsed.dt.tz_localize(None)
    if aware.any():
        from queries.settings import get_settings

        local = parsed.dt.tz_convert(get_settings().cx_timezone).dt.tz_localize(None)
        naive = naive.where(~aware, local)
    return naive.astype("datetime64[us]")


def _check_field(
    name: str, spec: FieldSpec, values: pd.Series, cfg: SourceConfig, now: dt.datetime
) -> tuple[pd.Series, pd.Series, pd.Series]:
    """Convert one column; return (typed values, bad mask, reason template of each row)."""
    present = values.notna()
    none = pd.Series(False, index=values.index)
    if spec.type in ("str", "text"):
        if _all_text(values):
            typed = values.astype(object).where(present, None)
        else:
            typed = pd.Series([None if _missing(v) else str(v) for v in values],
                              index=values.index, dtype=object)
        if spec.choices:
            bad = present & ~typed.isin(spec.choices)
            reason = f"unknown value; expected one of {', '.join(spec.choices)}"
            return typed, bad, _reasons(values.index, (bad, reason))
        return typed, none, _reasons(values.index)
    if spec.type in ("int", "float"):
        num = _to_number(values)
        not_number = present & num.isna()
        frac = present & num.notna() & (num % 1 != 0) if spec.type == "int" else none
        lo, hi = spec.min, spec.max
        out = present & num.notna() & (
            (num < lo if lo is not None else False) | (num > hi if hi is not None else False)
        )
        rng = f"{lo:g}..{hi:g}" if lo is not None and hi is not None else (
            f">= {lo:g}" if lo is not None else f"<= {hi:g}" if hi is not None else "")
        bad = not_number | frac | out
        reasons = _reasons(values.index, (not_number, "not a number"),
                           (frac, "not a whole number"), (out, f"out of range (expected {rng})"))
        typed = num.where(~bad)
        if spec.type == "int":
            typed = typed.astype("Int64")
        return typed, bad, reasons
    if spec.type in ("date", "datetime"):
        if _all_text(values):
            as_text = values.astype(object).where(present, None)
        else:
            as_text = pd.Series([None if _missing(v) else str(v) for v in values],
                                index=values.index, dtype=object)
        if cfg.date_format:
            parsed = _to_datetime(as_text, cfg.date_format)
            fallback = present & parsed.isna()
            if fallback.any():
                # Sheets and databases hand over ISO dates whatever the file's own format is.
                parsed[fallback] = _to_datetime(as_text[fallback], "ISO8601")
        else:
            parsed = _to_datetime(as_text, "ISO8601")
        bad_parse = present & parsed.isna()
        future = present & parsed.notna() & (parsed > pd.Timestamp(now + FUTURE_SLACK))
        bad = bad_parse | future
        fmt = cfg.date_format or "ISO 8601 (YYYY-MM-DD[ HH:MM])"
        reasons = _reasons(values.index, (bad_parse, f"not a date in format {fmt}"),
                           (future, "date is in the future"))
        typed = parsed.where(~bad)
        if spec.type == "date":
            dates = typed.dt.date.to_numpy(dtype=object, copy=True)
            dates[typed.isna().to_numpy()] = None
            typed = pd.Series(dates, index=values.index, dtype=object)
        return typed, bad, reasons
    if spec.type == "bool":
        low = by_unique(values, lambda v: str(v).strip().lower())
        bad = present & ~low.isin(TRUE | FALSE)
        typed = by_unique(low, lambda v: v in TRUE)
        return typed, bad, _reasons(values.index, (bad, "not a yes/no value"))
    raise AssertionError(spec.type)


def _reason_for(template: str, value: object, spec: FieldSpec, name: str) -> str:
    if spec.choices and template.startswith("unknown value"):
        return (f"unknown value {value!r}; expected one of {', '.join(spec.choices)} "
                f"(map it under [source.values.{name}])")
    return template


def respondent_hash(value: object, salt: str) -> str | None:
    """The stored key of an employee id: a salted SHA-256, never the id itself."""
    return None if _missing(value) else hashlib.sha256(f"{salt}:{value}".encode()).hexdigest()[:40]


def _scale_spec(scale: Scale, base: FieldSpec | None = None) -> FieldSpec:
    return FieldSpec(type="int", min=scale.min, max=scale.max,
                     required=base.required if base else False)


def validate_batch(
    batch: RawBatch,
    cfg: SourceConfig,
    known: KnownLookup,
    *,
    now: dt.datetime | None = None,
    salt: str | None = None,
) -> Validated:
    """Map `batch` through `cfg` and check every row; return good rows and quarantine records.

    `known(kind, values)` answers which of `values` exist in the database (kind is "org_unit"
    or "customer"), so checks scale with the batch, not with the table. A bad value of an
    optional field (a CSAT out of its scale next to a valid NPS) drops that field only: the
    row loads and the quarantine records what was dropped. A bad required field, key or
    reference rejects the row. `salt` hashes engagement respondents (default: the source's
    configured salt); their ids never reach the quarantine either.
    """
    now = now or dt.datetime.now()
    entity: Entity = ENTITIES[cfg.entity_name]
    raw = batch.frame
    n = len(raw)
    resolved = _resolve_columns(batch, cfg)
    na = set(cfg.na_values)
    problems: list[Problem] = []
    index = raw.index
    salt = salt if salt is not None else (cfg.respondent_salt or cfg.name)

    counts = raw.attrs.get("field_counts")
    width = raw.attrs.get("width")
    # Every column access copies the frame's attrs, a list as long as the file: drop them.
    raw = raw.copy(deep=False)
    raw.attrs = {}
    ragged: set[int] = set()
    if counts is not None and width is not None:
        for i in np.flatnonzero(np.asarray(counts) != width).tolist():
            c = counts[i]
            ragged.add(i)
            problems.append(Problem(i, "(row)", c, f"has {c} fields, the header has {width}",
                                    fatal=True))

    out: dict[str, pd.Series] = {}
    key_fields = set(entity.key) | {"respondent"}
    for fname, spec in entity.fields.items():
        column = resolved.get(fname)
        if fname in resolved:
            values = _clean_text(raw[resolved[fname]], na)
        elif fname in cfg.constants:
            values = pd.Series([cfg.constants[fname]] * n, index=index, dtype=object)
            column = "(constant)"
        else:
            values = pd.Series([spec.default] * n, index=index, dtype=object)
        values = _apply_value_map(values, cfg.values.get(fname, {}))
        scale = cfg.scale_of(fname) if fname in SCALED_FIELDS else None
        checked_spec = _scale_spec(scale, spec) if scale is not None else spec
        typed, bad, reasons = _check_field(fname, checked_spec, values, cfg, now)
        fatal = spec.required or fname in key_fields
        if spec.required:
            missing = typed.isna() & ~bad
            for i in np.flatnonzero(missing.to_numpy()):
                problems.append(Problem(int(i), fname, None, "required field is missing",
                                        column=column, fatal=True))
        for i in np.flatnonzero(bad.to_numpy()):
            problems.append(Problem(int(i), fname, values.iloc[i],
                                    _reason_for(reasons.iloc[i], values.iloc[i], spec, fname),
                                    column=column, fatal=fatal))
        out[fname] = typed
        if scale is not None and fname in resolved:
            for part, number in (("min", scale.min), ("max", scale.max),
                                 ("top", scale.favourable)):
                scaled = np.full(n, None, dtype=object)
                scaled[typed.notna().to_numpy()] = number
                out[f"{fname}_{part}"] = pd.Series(scaled, index=index, dtype=object)

    rating_cols = {k: v for k, v in resolved.items() if "." in k}
    ratings: dict[str, pd.Series] = {}
    for target in rating_cols:
        values = _clean_text(raw[rating_cols[target]], na)
        _section, _, rname = target.partition(".")
        values = _apply_value_map(values, cfg.values.get(rname, {}))
        scale = cfg.scale_of(rname) or DEFAULT_SCALES["rating"]
        typed, bad, reasons = _check_field(target, _scale_spec(scale), values, cfg, now)
        for i in np.flatnonzero(bad.to_numpy()):
            problems.append(Problem(int(i), target, values.iloc[i], reasons.iloc[i],
                                    column=rating_cols[target], fatal=False))
        ratings[rname] = typed

    frame = pd.DataFrame(out, index=index)
    respondent_col = resolved.get("respondent")
    if entity.name == "engagement_responses":
        frame["respondent_key"] = by_unique(frame.pop("respondent"),
                                             lambda v: respondent_hash(v, salt))

    _check_references(frame, entity, known, problems)
    _check_duplicate_keys(frame, entity, batch, problems)
    for p in problems:
        if p.column is None and p.field in resolved:
            p.column = resolved[p.field]
    # A ragged row's values sit under the wrong columns: its "(row)" record says what is wrong;
    # checks of its shifted values would add records blaming fields that are not at fault.
    problems = [p for p in problems if p.index not in ragged or p.field == "(row)"]

    rejected = sorted({p.index for p in problems if p.fatal})
    rejected_set = set(rejected)
    dropped = [p for p in problems if not p.fatal and p.index not in rejected_set]
    for p in dropped:
        # Only this value is bad: blank it and load the rest of the row.
        if p.field.startswith(("attributes.", "items.")):
            ratings[p.field.partition(".")[2]].iloc[p.index] = pd.NA
        else:
            frame.loc[frame.index[p.index], p.field] = None
            for part in ("min", "max", "top"):
                if f"{p.field}_{part}" in frame:
                    frame.loc[frame.index[p.index], f"{p.field}_{part}"] = None
        p.reason += " (value dropped, row loaded)"
    partial = sorted({p.index for p in dropped})

    bad_rows = sorted({p.index for p in problems})
    bad_keys = dict(zip(bad_rows, _row_keys(frame, entity, raw, ragged, bad_rows), strict=True))
    private = _private_columns(entity, resolved)
    records = _quarantine_records(problems, batch, raw, bad_keys, private, respondent_col, salt)
    key_frame = frame

    def keys_of() -> list[str]:
        return _row_keys(key_frame, entity, raw, ragged)

    good = frame.drop(index=frame.index[rejected])
    rating_frame = None
    if ratings:
        rating_frame = pd.DataFrame(ratings, index=index).drop(index=index[rejected])
        rating_frame = rating_frame.reset_index(drop=True)
    if entity.any_of:
        scored = pd.Series(False, index=good.index)
        for fname in entity.any_of:
            scored |= good[fname].notna()
        unscored = int((~scored).sum())
    else:
        unscored = 0
    good = good.reset_index(drop=True)
    return Validated(good, rating_frame, records, n, len(rejected), problems,
                     partial_rows=len(partial), keys_of=keys_of,
                     unscored=unscored)


def _row_keys(frame: pd.DataFrame, entity: Entity, raw: pd.DataFrame,
              ragged: set[int], rows: list[int] | None = None) -> list[str]:
    """Per row (of `rows`, default all): its natural key, or a hash of its content where the
    key is missing or bad.

    One row keeps one set of quarantine records however often its file is re-exported,
    and a row that later loads clears them.
    """
    if rows is not None and not rows:
        return []
    key = ["respondent_key" if k == "respondent" else k for k in entity.key]
    keyed = frame[key].astype(object)
    if rows is not None:
        keyed = keyed.iloc[rows]
    complete = keyed.notna().all(axis=1).to_numpy()
    texts = ["\x1f".join(str(v) for v in row) for row in keyed.itertuples(index=False)]
    positions = rows if rows is not None else range(len(keyed))
    out: list[str] = []
    content: dict[int, str] = {}
    for j, (i, ok) in enumerate(zip(positions, complete, strict=True)):
        if ok and i not in ragged:
            out.append("k:" + hashlib.sha256(texts[j].encode()).hexdigest()[:40])
            continue
        if not content:
            wanted = rows if rows is not None else list(range(len(raw)))
            content = {r: "\x1f".join("" if _missing(v) else str(v) for v in row)
                       for r, row in zip(wanted, raw.iloc[wanted].itertuples(index=False),
                                         strict=True)}
        out.append("h:" + hashlib.sha256(content[i].encode()).hexdigest()[:40])
    return out


def _private_columns(entity: Entity, resolved: dict[str, str]) -> set[str]:
    """Source columns whose values never go to quarantine: employees' free text."""
    if entity.name != "engagement_responses":
        return set()
    return {resolved[f] for f in ("comment",) if f in resolved}


def _quarantine_records(
    problems: list[Problem], batch: RawBatch, raw: pd.DataFrame, row_keys: dict[int, str],
    private: set[str], respondent_col: str | None, salt: str,
) -> list[dict[str, object]]:
    """Quarantine records of `problems`, built once per bad row, not once per problem:
    `raw.iloc[i]` per problem deep-copied the frame's attrs each time (5x slower loads)."""
    if not problems:
        return []
    rows = sorted({p.index for p in problems})
    sub = raw.iloc[rows]
    columns = [str(c) for c in sub.columns]
    hidden = {c for c in columns if c in private}
    raws: dict[int, str] = {}
    for i, values in zip(rows, sub.itertuples(index=False, name=None), strict=True):
        row = {}
        for col, v in zip(columns, values, strict=True):
            if _missing(v):
                row[col] = None
            elif col == respondent_col:
                row[col] = "sha256:" + str(respondent_hash(v, salt))
            elif col in hidden:
                row[col] = "(not kept)"
            else:
                row[col] = str(v)
        raws[i] = json.dumps(row, ensure_ascii=False)
    records = []
    for p in sorted(problems, key=lambda p: p.index):
        value = p.value
        if _missing(value):
            value = None
        elif p.column is not None and p.column == respondent_col:
            value = "sha256:" + str(respondent_hash(value, salt))
        elif p.column in hidden:
            value = "(not kept)"
        records.append({
            "file": batch.origin,
            "line": batch.lines[p.index],
            "field": p.field,
            "column": p.column,
            "value": None if value is None else str(value),
            "reason": p.reason,
            "raw": raws[p.index],
            "row_key": row_keys[p.index],
        })
    return records


def _check_references(
    frame: pd.DataFrame, entity: Entity, known: KnownLookup, problems: list[Problem]
) -> None:
    org_fields = [f for f, s in entity.fields.items() if s.org_ref and f in frame]
    if entity.name == "org_units":
        org_fields = ["parent_id"]
    for fname in org_fields:
        values = frame[fname]
        wanted = set(values.dropna().unique())
        if not wanted:
            continue
        ok = known("org_unit", wanted)
        if entity.name == "org_units":
            ok |= set(frame["id"].dropna())
        for i in np.flatnonzero((values.notna() & ~values.isin(ok)).to_numpy()):
            problems.append(Problem(int(i), fname, values.iloc[i],
                                    f"unknown org unit {values.iloc[i]!r} (load it in the org "
                                    "source first)"))
    if entity.name == "transactions":
        values = frame["customer_id"]
        wanted = set(values.dropna().unique())
        if wanted:
            ok = known("customer", wanted)
            for i in np.flatnonzero((values.notna() & ~values.isin(ok)).to_numpy()):
                problems.append(Problem(int(i), "customer_id", values.iloc[i],
                                        f"unknown customer {values.iloc[i]!r}"))


def _check_duplicate_keys(
    frame: pd.DataFrame, entity: Entity, batch: RawBatch, problems: list[Problem]
) -> None:
    key = [k if k != "respondent" else "respondent_key" for k in entity.key]
    if any(k not in frame for k in key):
        return
    keyed = frame[key]
    dup = keyed.duplicated(keep="first") & keyed.notna().all(axis=1)
    if not dup.any():
        return
    first_line = {}
    for i, row in enumerate(keyed.itertuples(index=False)):
        first_line.setdefault(tuple(row), batch.lines[i])
    for i in np.flatnonzero(dup.to_numpy()):
        row = tuple(keyed.iloc[i])
        shown = row[0] if len(row) == 1 else row
        problems.append(Problem(int(i), "+".join(entity.key), shown,
                                f"duplicate key {shown!r} (first seen on line {first_line[row]})"))
