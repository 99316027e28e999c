"""Map a raw batch onto the reporting model and check every value.

Rows with any bad value go to quarantine, one record per bad field, naming the file, line,
field, value and reason; every other row loads. Checks run column-wise with pandas so a
batch of a million rows is validated in seconds.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
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
    return pd.to_numeric(text, errors="coerce")


def _check_field(
    name: str, spec: FieldSpec, values: pd.Series, cfg: SourceConfig, now: dt.datetime
) -> tuple[pd.Series, pd.Series, str]:
    """Convert one column; return (typed values, bad mask, reason template)."""
    present = values.notna()
    if spec.type in ("str", "text"):
        typed = pd.Series([None if _missing(v) else str(v) for v in values],
                          index=values.index, dtype=object)
        if spec.choices:
            bad = present & ~typed.isin(spec.choices)
            return typed, bad, f"unknown value; expected one of {', '.join(spec.choices)}"
        return typed, pd.Series(False, index=values.index), ""
    if spec.type in ("int", "float"):
        num = _to_number(values)
        bad = present & num.isna()
        reason = "not a number"
        if spec.type == "int":
            frac = present & num.notna() & (num % 1 != 0)
            if frac.any():
                bad |= frac
                reason = "not a whole number" if not (bad & ~frac).any() else reason
        lo, hi = spec.min, spec.max
        out = present & num.notna() & (
            (num < lo if lo is not None else False) | (num > hi if hi is not None else False)
        )
        if out.any():
            rng = f"{lo:g}..{hi:g}" if lo is not None and hi is not None else (
                f">= {lo:g}" if lo is not None else f"<= {hi:g}")
            reason = f"out of range (expected {rng})" if not (bad & ~out).any() else (
                f"not a valid number in {rng}")
            bad |= out
        typed = num.where(~bad)
        if spec.type == "int":
            typed = typed.astype("Int64")
        return typed, bad, reason
    if spec.type in ("date", "datetime"):
        as_text = pd.Series([None if _missing(v) else str(v) for v in values],
                            index=values.index, dtype=object)
        if cfg.date_format:
            parsed = pd.to_datetime(as_text, format=cfg.date_format, errors="coerce")
            fallback = present & parsed.isna()
            if fallback.any():
                # Sheets and databases hand over ISO dates whatever the file's own format is.
                iso = pd.to_datetime(as_text[fallback], format="ISO8601", errors="coerce")
                parsed = parsed.astype("datetime64[us]")
                parsed[fallback] = iso.astype("datetime64[us]")
        else:
            parsed = pd.to_datetime(as_text, format="ISO8601", errors="coerce")
        parsed = parsed.astype("datetime64[us]")
        bad_parse = present & parsed.isna()
        future = present & parsed.notna() & (parsed > pd.Timestamp(now + FUTURE_SLACK))
        bad = bad_parse | future
        fmt = cfg.date_format or "ISO 8601 (YYYY-MM-DD[ HH:MM])"
        reason = f"not a date in format {fmt}" if not future.any() else (
            "date is in the future" if not bad_parse.any() else f"not a valid past date ({fmt})")
        typed = parsed.where(~bad)
        if spec.type == "date":
            typed = pd.Series([None if pd.isna(v) else v.date() for v in typed],
                              index=values.index, dtype=object)
        return typed, bad, reason
    if spec.type == "bool":
        low = pd.Series([None if _missing(v) else str(v).strip().lower() for v in values],
                        index=values.index, dtype=object)
        bad = present & ~low.isin(TRUE | FALSE)
        typed = pd.Series([None if _missing(v) else v in TRUE for v in low],
                          index=values.index, dtype=object)
        return typed, bad, "not a yes/no value"
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
    if counts is not None and width is not None:
        for i, c in enumerate(counts):
            if c != width:
                problems.append(Problem(i, "(row)", c, f"has {c} fields, the header has {width}"))

    out: dict[str, pd.Series] = {}
    for fname, spec in entity.fields.items():
        if fname in resolved:
            values = _clean_text(raw[resolved[fname]], na)
        elif fname in cfg.constants:
            values = pd.Series([cfg.constants[fname]] * n, index=index, dtype=object)
        else:
            values = pd.Series([spec.default] * n, index=index, dtype=object)
        values = _apply_value_map(values, cfg.values.get(fname, {}))
        typed, bad, template = _check_field(fname, spec, values, cfg, now)
        if spec.required:
            missing = typed.isna() & ~bad
            for i in np.flatnonzero(missing.to_numpy()):
                problems.append(Problem(int(i), fname, None, "required field is missing"))
        for i in np.flatnonzero(bad.to_numpy()):
            problems.append(
                Problem(int(i), fname, values.iloc[i], _reason_for(template, values.iloc[i], spec,
                                                                     fname))
            )
        out[fname] = typed

    rating_cols = {k: v for k, v in resolved.items() if "." in k}
    ratings: dict[str, pd.Series] = {}
    lo, hi = entity.rating_range
    rating_spec = FieldSpec(type="int", min=lo, max=hi)
    for target in rating_cols:
        values = _clean_text(raw[rating_cols[target]], na)
        _section, _, rname = target.partition(".")
        values = _apply_value_map(values, cfg.values.get(rname, {}))
        typed, bad, template = _check_field(target, rating_spec, values, cfg, now)
        for i in np.flatnonzero(bad.to_numpy()):
            problems.append(Problem(int(i), target, values.iloc[i], template))
        ratings[rname] = typed

    if entity.any_of:
        none = pd.Series(True, index=index)
        for fname in entity.any_of:
            none &= out[fname].isna()
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
