"""Run sources: extract, validate, load, and record every run in the run log.

Each file (or each incremental read of a table) is one batch and one transaction: its good
rows, its quarantine records and the note that the file was loaded commit together, so a
crash leaves nothing half-written and a rerun resumes where the last good batch ended.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import pandas as pd
from sqlalchemy import Connection, Engine, insert, select, update

from etl.config import FILE_ADAPTERS, SourceConfig, SourcesConfig
from etl.load import known_values, now, parent_ids, replace_children, upsert
from etl.model import ENTITIES, ENTITY_ORDER, Entity
from etl.sources import RawBatch, SourceError, file_digest, list_files, read_file, read_sql
from etl.validate import validate_batch
from queries import schema

log = logging.getLogger(__name__)

Progress = Callable[[str, int], None]


@dataclass
class RunResult:
    """Summary of one source's run, as printed by `python -m etl run` and kept in etl_run."""

    source: str
    status: str = "running"
    read: int = 0
    inserted: int = 0
    updated: int = 0
    quarantined: int = 0
    skipped: int = 0
    seconds: float = 0.0
    error: str | None = None
    run_id: int | None = None
    watermark: str | None = None
    rejected: list[str] = field(default_factory=list)
    touched_months: set[str] = field(default_factory=set)

    @property
    def ok(self) -> bool:
        """True when the run loaded everything it could read."""
        return self.status == "success"


def _start_run(engine: Engine, source: str) -> int:
    with engine.begin() as conn:
        return conn.execute(
            insert(schema.etl_run).values(source=source, started_at=now(), status="running")
        ).inserted_primary_key[0]


def _finish_run(engine: Engine, result: RunResult) -> None:
    with engine.begin() as conn:
        conn.execute(
            update(schema.etl_run)
            .where(schema.etl_run.c.id == result.run_id)
            .values(
                finished_at=now(),
                status=result.status,
                rows_read=result.read,
                rows_inserted=result.inserted,
                rows_updated=result.updated,
                rows_quarantined=result.quarantined,
                rows_skipped=result.skipped,
                watermark=result.watermark,
                error=result.error,
            )
        )


def _quarantine_file(engine: Engine, run_id: int, source: str, err: SourceError) -> None:
    with engine.begin() as conn:
        conn.execute(
            insert(schema.quarantine).values(
                run_id=run_id, source=source, file=err.origin, line=None, field=None,
                value=None, reason=f"file rejected: {err.reason}", raw=None, created_at=now(),
            )
        )


def _already_loaded(conn: Connection, source: str, path: str, digest: str) -> bool:
    row = conn.execute(
        select(schema.source_file.c.sha256).where(
            schema.source_file.c.source == source, schema.source_file.c.path == path
        )
    ).first()
    return row is not None and row[0] == digest


def _watermark(engine: Engine, source: str) -> str | None:
    with engine.connect() as conn:
        return conn.execute(
            select(schema.source_state.c.watermark).where(schema.source_state.c.source == source)
        ).scalar_one_or_none()


def _set_watermark(conn: Connection, source: str, value: str | None) -> None:
    if value is None:
        return
    table = schema.source_state
    current = conn.execute(select(table.c.watermark).where(table.c.source == source)).first()
    if current is None:
        conn.execute(insert(table).values(source=source, watermark=value, updated_at=now()))
    elif current[0] != value:
        conn.execute(update(table).where(table.c.source == source)
                     .values(watermark=value, updated_at=now()))


def _batches(engine: Engine, cfg: SourceConfig, result: RunResult) -> Iterator[RawBatch]:
    if cfg.adapter in FILE_ADAPTERS:
        for path in list_files(cfg):
            data = path.read_bytes()
            with engine.connect() as conn:
                if _already_loaded(conn, cfg.name, str(path), file_digest(data)):
                    result.skipped += 1
                    log.info("%s: %s unchanged since its last load, skipped", cfg.name, path)
                    continue
            try:
                yield read_file(path, cfg)
            except SourceError as err:
                _quarantine_file(engine, result.run_id or 0, cfg.name, err)
                result.rejected.append(str(err))
    elif cfg.adapter == "sql":
        yield from read_sql(cfg, _watermark(engine, cfg.name) if cfg.watermark else None)
    elif cfg.adapter == "http_json":
        from etl.http_source import read_http_json

        yield from read_http_json(cfg, _watermark(engine, cfg.name))
    else:  # pragma: no cover - the config model rejects unknown adapters
        raise SourceError(cfg.name, f"adapter {cfg.adapter!r} is not implemented")


def _month_keys(series: pd.Series) -> set[str]:
    return set(pd.to_datetime(series.dropna()).dt.strftime("%Y-%m").unique())


def load_batch(conn: Connection, cfg: SourceConfig, batch: RawBatch, run_id: int,
               result: RunResult) -> None:
    """Validate and write one batch inside the caller's transaction."""
    entity: Entity = ENTITIES[cfg.entity_name]
    checked = validate_batch(batch, cfg, lambda kind, vals: known_values(conn, kind, vals))
    result.read += checked.read
    result.quarantined += checked.bad_rows
    excluded = sum(batch.excluded.values())
    result.skipped += excluded
    stamp = now()
    if checked.quarantine:
        conn.execute(
            insert(schema.quarantine),
            [{**q, "run_id": run_id, "source": cfg.name, "created_at": stamp}
             for q in checked.quarantine],
        )
    frame = checked.frame
    if not frame.empty:
        frame = frame.copy()
        frame["loaded_at"] = stamp
        if "source" in entity.table.c:
            frame["source"] = cfg.name
        key = [*(("source",) if entity.per_source_key else ()),
               *[k for k in entity.key]]
        key = ["respondent_key" if k == "respondent" else k for k in key]
        counts = upsert(conn, entity.table, frame, key)
        result.inserted += counts.inserted
        result.updated += counts.updated
        result.skipped += counts.unchanged
        for col in ("submitted_at", "occurred_at", "wave"):
            if col in frame:
                result.touched_months |= _month_keys(frame[col])
        if checked.ratings is not None and not checked.ratings.empty:
            _write_ratings(conn, entity, frame, checked.ratings, key)
    if batch.path is not None and batch.sha256:
        _record_file(conn, cfg.name, str(batch.path), batch.sha256, batch.size or 0, run_id)
    if cfg.watermark:
        _set_watermark(conn, cfg.name, batch.watermark)
        result.watermark = batch.watermark


def _write_ratings(conn: Connection, entity: Entity, frame: pd.DataFrame, ratings: pd.DataFrame,
                   key: Sequence[str]) -> None:
    child = schema.survey_rating if entity.ratings == "attributes" else schema.engagement_score
    name_col = "attribute" if entity.ratings == "attributes" else "item"
    value_col = "rating" if entity.ratings == "attributes" else "score"
    ids = parent_ids(conn, entity.table, key, frame)
    keyed = frame[list(key)].reset_index(drop=True)
    # The database hands keys back in its own types (dates as date or text): compare as text.
    left = keyed.astype(str)
    right = ids.astype({k: str for k in key})
    merged = left.merge(right, on=list(key), how="left")
    if merged["pk"].isna().any():
        raise RuntimeError(f"{entity.table.name}: {int(merged['pk'].isna().sum())} rows were "
                           "written but not found again by their key")
    wide = ratings.copy()
    wide["response_pk"] = merged["pk"].to_numpy()
    long = wide.melt(id_vars="response_pk", var_name=name_col, value_name=value_col)
    long = long.dropna(subset=[value_col])
    long[value_col] = long[value_col].astype(int)
    replace_children(conn, child, "response_pk", name_col, value_col, long,
                     [int(p) for p in merged["pk"].dropna()])


def _record_file(conn: Connection, source: str, path: str, digest: str, size: int,
                 run_id: int) -> None:
    table = schema.source_file
    changed = conn.execute(
        update(table).where(table.c.source == source, table.c.path == path)
        .values(sha256=digest, size=size, run_id=run_id, loaded_at=now())
    ).rowcount
    if not changed:
        conn.execute(insert(table).values(source=source, path=path, sha256=digest, size=size,
                                          run_id=run_id, loaded_at=now()))


def run_source(engine: Engine, cfg: SourceConfig) -> RunResult:
    """Run one source now: every batch in its own transaction; the run is logged."""
    started = time.perf_counter()
    result = RunResult(cfg.name)
    result.run_id = _start_run(engine, cfg.name)
    try:
        for batch in _batches(engine, cfg, result):
            with engine.begin() as conn:
                load_batch(conn, cfg, batch, result.run_id, result)
        if result.rejected:
            result.status = "failed"
            result.error = "; ".join(result.rejected)
        else:
            result.status = "success"
    except SourceError as err:
        result.status = "failed"
        result.error = str(err)
    except Exception as err:  # the run log must say why, whatever broke
        log.exception("source %s failed", cfg.name)
        result.status = "failed"
        result.error = f"{type(err).__name__}: {err}"
    result.seconds = time.perf_counter() - started
    _finish_run(engine, result)
    return result


def ordered(sources: Sequence[SourceConfig]) -> list[SourceConfig]:
    """Sources in load order: org units, then customers, then facts that reference them."""
    return sorted(sources, key=lambda s: ENTITY_ORDER.index(s.entity_name))


def run_sources(engine: Engine, config: SourcesConfig,
                names: Sequence[str] | None = None) -> list[RunResult]:
    """Run the named sources (default: every enabled one) in dependency order."""
    chosen = [config.get(n) for n in names] if names else [s for s in config.sources if s.enabled]
    return [run_source(engine, cfg) for cfg in ordered(chosen)]


def last_full_month(today: dt.date | None = None) -> str:
    """The calendar month before `today`, as YYYY-MM."""
    today = today or dt.date.today()
    first = today.replace(day=1) - dt.timedelta(days=1)
    return first.strftime("%Y-%m")
