"""Map a raw batch onto the reporting model and check every value.

Rows with any bad value go to quarantine, one record per bad field, naming the file, line,
field, value and reason; every other row loads. Checks run column-wise with pandas so a
batch of a million rows is validated in seconds.
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

from etl.config import SourceConfig
from etl.model import ENTITIES, Entity, FieldSpec
from etl.sources import RawBatch, SourceError

TRUE = {"true", "t", "yes", "y", "1"}
FALSE = {"false", "f", "no", "n", "0"}
# Far-future guard: clocks of source systems drift a little, a day of slack is honest.
FUTURE_SLACK = dt.timedelta(days=1)

KnownLookup = Callable[[str, Iterable[str]], set[str]]
# A time with a UTC offset at the end: "T10:30:00Z", " 10:30+02:00", " 10:30 +0100".
UTC_OFFSET = re.compile(r"\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?\s*(?:[zZ]|[+-]\d{2}(?::?\d{2})?)$")


@dataclass
class Problem:
    """One bad value of one row."""

    index: int
    field: str
    value: object
    reason: str


@dataclass
class Validated:
    """A validated batch: good rows typed for the table, ratings, and quarantine records."""

    frame: pd.DataFrame
    ratings: pd.DataFrame | None
    quarantine: list[dict[str, object]]
    read: int
    bad_rows: int = 0
    problems: list[Problem] = field(default_factory=list)


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


def _clean_text(series: pd.Series, na_values: set[str]) -> pd.Series:
    def clean(v: object) -> object:
        if _missing(v):
            return None
        if isinstance(v, str):
            v = v.strip()
            return None if v in na_values else v
        return v

    return pd.Series([clean(v) for v in series], index=series.index, dtype=object)


def _apply_value_map(series: pd.Series, mapping: dict[str, object]) -> pd.Series:
    if not mapping:
        return series
    folded = {_norm(k): v for k, v in mapping.items()}

    def convert(v: object) -> object:
        if _missing(v):
            return None
        key = str(v)
        if key in mapping:
            return mapping[key]
        return folded.get(_norm(key), v)

    return pd.Series([convert(v) for v in series], index=series.index, dtype=object)


def _to_number(series: pd.Series) -> pd.Series:
    text = series.map(lambda v: str(v).replace(",", ".") if isinstance(v, str) and v.count(",") == 1
                      and "." not in v else v)
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
    aware = pd.Series([isinstance(v, str) and UTC_OFFSET.search(v.strip()) is not None
                       for v in text], index=text.index, dtype=bool)
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
            typed = pd.Series([None if pd.isna(v) else v.date() for v in typed],
                              index=values.index, dtype=object)
        return typed, bad, reasons
    if spec.type == "bool":
        low = pd.Series([None if _missing(v) else str(v).strip().lower() for v in values],
                        index=values.index, dtype=object)
        bad = present & ~low.isin(TRUE | FALSE)
        typed = pd.Series([None if _missing(v) else v in TRUE for v in low],
                          index=values.index, dtype=object)
        return typed, bad, _reasons(values.index, (bad, "not a yes/no value"))
    raise AssertionError(spec.type)


def _reason_for(template: str, value: object, spec: FieldSpec, name: str) -> str:
    if spec.choices and template.startswith("unknown value"):
        return (f"unknown value {value!r}; expected one of {', '.join(spec.choices)} "
                f"(map it under [source.values.{name}])")
    return template


def validate_batch(
    batch: RawBatch,
    cfg: SourceConfig,
    known: KnownLookup,
    *,
    now: dt.datetime | None = None,
) -> Validated:
    """Map `batch` through `cfg` and check every row; return good rows and quarantine records.

    `known(kind, values)` answers which of `values` exist in the database (kind is "org_unit"
    or "customer"), so checks scale with the batch, not with the table.
    """
    now = now or dt.datetime.now()
    entity: Entity = ENTITIES[cfg.entity_name]
    raw = batch.frame
    n = len(raw)
    resolved = _resolve_columns(batch, cfg)
    na = set(cfg.na_values)
    problems: list[Problem] = []
    index = raw.index

    counts = raw.attrs.get("field_counts")
    width = raw.attrs.get("width")
    ragged: set[int] = set()
    if counts is not None and width is not None:
        for i, c in enumerate(counts):
            if c != width:
                ragged.add(i)
                problems.append(Problem(i, "(row)", c, f"has {c} fields, the header has {width}"))

    out: dict[str, pd.Series] = {}
    bad_of: dict[str, pd.Series] = {}
    for fname, spec in entity.fields.items():
        if fname in resolved:
            values = _clean_text(raw[resolved[fname]], na)
        elif fname in cfg.constants:
            values = pd.Series([cfg.constants[fname]] * n, index=index, dtype=object)
        else:
            values = pd.Series([spec.default] * n, index=index, dtype=object)
        values = _apply_value_map(values, cfg.values.get(fname, {}))
        typed, bad, reasons = _check_field(fname, spec, values, cfg, now)
        if spec.required:
            missing = typed.isna() & ~bad
            for i in np.flatnonzero(missing.to_numpy()):
                problems.append(Problem(int(i), fname, None, "required field is missing"))
        for i in np.flatnonzero(bad.to_numpy()):
            problems.append(
                Problem(int(i), fname, values.iloc[i], _reason_for(reasons.iloc[i], values.iloc[i],
                                                                     spec, fname))
            )
        out[fname] = typed
        bad_of[fname] = bad

    rating_cols = {k: v for k, v in resolved.items() if "." in k}
    ratings: dict[str, pd.Series] = {}
    lo, hi = entity.rating_range
    rating_spec = FieldSpec(type="int", min=lo, max=hi)
    for target in rating_cols:
        values = _clean_text(raw[rating_cols[target]], na)
        _section, _, rname = target.partition(".")
        values = _apply_value_map(values, cfg.values.get(rname, {}))
        typed, bad, reasons = _check_field(target, rating_spec, values, cfg, now)
        for i in np.flatnonzero(bad.to_numpy()):
            problems.append(Problem(int(i), target, values.iloc[i], reasons.iloc[i]))
        ratings[rname] = typed

    if entity.any_of:
        none = pd.Series(True, index=index)
        for fname in entity.any_of:
            # A score that is there but bad is already quarantined with its own reason; a
            # second "no score" record for the same row would be wrong.
            none &= out[fname].isna() & ~bad_of[fname]
        for i in np.flatnonzero(none.to_numpy()):
            problems.append(Problem(int(i), "|".join(entity.any_of), None,
                                    f"no score: at least one of {', '.join(entity.any_of)} "
                                    "is required"))

    frame = pd.DataFrame(out, index=index)
    if entity.name == "engagement_responses":
        salt = cfg.respondent_salt or cfg.name
        frame["respondent_key"] = [
            None if _missing(v) else hashlib.sha256(f"{salt}:{v}".encode()).hexdigest()[:40]
            for v in frame.pop("respondent")
        ]

    _check_references(frame, entity, known, problems)
    _check_duplicate_keys(frame, entity, batch, problems)
    # A ragged row's values sit under the wrong columns: its "(row)" record says what is wrong;
    # checks of its shifted values would add records blaming fields that are not at fault.
    problems = [p for p in problems if p.index not in ragged or p.field == "(row)"]

    bad_idx = sorted({p.index for p in problems})
    records = [_quarantine_record(p, batch, raw) for p in sorted(problems, key=lambda p: p.index)]
    good = frame.drop(index=frame.index[bad_idx])
    rating_frame = None
    if ratings:
        wide = pd.DataFrame(ratings, index=index).drop(index=index[bad_idx])
        rating_frame = wide
    good = good.reset_index(drop=True)
    if rating_frame is not None:
        rating_frame = rating_frame.reset_index(drop=True)
    return Validated(good, rating_frame, records, n, len(bad_idx), problems)


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


def _quarantine_record(p: Problem, batch: RawBatch, raw: pd.DataFrame) -> dict[str, object]:
    row = raw.iloc[p.index]
    raw_row = {str(k): (None if v is None or (isinstance(v, float) and v != v) else str(v))
               for k, v in row.items()}
    value = p.value
    if isinstance(value, float) and value != value:
        value = None
    return {
        "file": batch.origin,
        "line": batch.lines[p.index],
        "field": p.field,
        "value": None if value is None else str(value),
        "reason": p.reason,
        "raw": json.dumps(raw_row, ensure_ascii=False),
    }
