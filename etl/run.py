"""Run sources: extract, validate, load, roll up, and record every run in the run log.

Each file (or each incremental read of a table or HTTP export) is one batch and one
transaction: its good rows, its quarantine records, the aggregates of the months it touched
and the note that the file was loaded (or the new watermark) commit together. A crash leaves
nothing half-written, and the next run resumes where the last good batch ended.

A run of a source first claims the source's row in `etl_lock`, so two processes (two
schedulers started by mistake, a scheduler and a manual run) never load one source at once.
A source claimed by another live process is skipped ("running elsewhere"), or waited for.
A process killed mid-run leaves its run logged as `running` and its claim in place; the next
run takes the claim over and marks that run `abandoned`.
"""

from __future__ import annotations

import json
import logging
import os
import re
import secrets
import socket
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import closing
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TypeVar

import pandas as pd
from sqlalchemy import Connection, Engine, delete, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from etl import answer_revenue
from etl.alerts import alerts_after_load
from etl.cases import cases_after_load
from etl.comments_nlp import analyse_after_load, settle_after_load
from etl.config import FILE_ADAPTERS, SourceConfig, SourcesConfig
from etl.load import UpsertCounts, known_values, now, replace_children, upsert
from etl.model import ENTITIES, ENTITY_ORDER, Entity
from etl.prefetch import Prepared, prefetched
from etl.rollup import (
    REFRESH,
    clear_member_activity,
    refresh_driver_moments,
    refresh_member_activity,
    refresh_survey,
    refresh_topic_months,
    refresh_transactions,
)
from etl.sources import (
    RawBatch,
    SourceError,
    TransientSourceError,
    file_digest,
    list_files,
    read_file,
    read_sql,
)
from etl.validate import Validated, validate_batch
from queries import schema
from queries.periods import Month

log = logging.getLogger(__name__)

# A lock older than this is taken to belong to a process that died without releasing it.
LOCK_TTL = timedelta(hours=2)
RETRIES = 3
BACKOFF_SECONDS = 2.0
SKIPPED = "skipped"
"""Status of a run that did not start: another process holds the source (never logged)."""
ABANDONED = "abandoned"
"""Status of a run whose process died mid-run (set when its claim is taken over)."""
WAIT_POLL_SECONDS = 1.0
T = TypeVar("T")

Progress = Callable[[str, int, int], None]
"""progress(source, batches_done, rows_read_so_far)"""


@dataclass
class RunResult:
    """Summary of one source's run, as printed by `python -m etl run` and kept in etl_run."""

    source: str
    status: str = "running"
    read: int = 0
    excluded: int = 0
    unchanged: int = 0
    inserted: int = 0
    updated: int = 0
    quarantined: int = 0
    partial: int = 0
    seconds: float = 0.0
    error: str | None = None
    run_id: int | None = None
    watermark: str | None = None
    rejected: list[str] = field(default_factory=list)
    touched_months: set[str] = field(default_factory=set)
    notes: dict[str, int] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    reasons: Counter[str] = field(default_factory=Counter)
    summary_seconds: float = 0.0
    """Of `seconds`, the time spent after the batches completing the summaries the ETL
    keeps (member activity, answer revenue)."""

    @property
    def ok(self) -> bool:
        """True when the run loaded everything it could read without too many bad rows, or
        was skipped because the source is being loaded elsewhere at this moment."""
        return self.status in ("success", SKIPPED)

    @property
    def skipped(self) -> int:
        """Rows read but not written: excluded non-answers plus unchanged rows."""
        return self.excluded + self.unchanged

    def top_reasons(self, limit: int = 5) -> list[tuple[str, int]]:
        """The most frequent quarantine reasons of this run, with their counts."""
        return self.reasons.most_common(limit)

    def note(self, key: str, count: int = 1) -> None:
        """Count something worth reporting (excluded rows by reason, skipped files...)."""
        if count:
            self.notes[key] = self.notes.get(key, 0) + count


def holder_id() -> str:
    """Who holds a lock: this host and process."""
    return f"{socket.gethostname()}:{os.getpid()}"


def acquire_lock(engine: Engine, source: str, holder: str | None = None) -> str | None:
    """Claim `source` for this process; None (and the current holder) if someone else runs it.

    The claim is a row keyed by source: inserting it is atomic on every database, and an
    expired claim (its process died) is taken over with a conditional UPDATE.
    """
    holder = holder or holder_id()
    table = schema.etl_lock
    stamp = now()
    try:
        with engine.begin() as conn:
            conn.execute(insert(table).values(source=source, holder=holder, acquired_at=stamp,
                                              expires_at=stamp + LOCK_TTL))
            _abandon_runs(conn, source, None, stamp)
        return holder
    except IntegrityError:
        pass
    current = lock_holder(engine, source)
    # A claim whose process on this machine is gone is void, whatever its expiry says.
    stale = current if current is not None and _dead_here(current) else holder
    with engine.begin() as conn:
        taken = conn.execute(
            update(table)
            .where(table.c.source == source,
                   or_(table.c.expires_at < stamp, table.c.holder.in_([holder, stale])))
            .values(holder=holder, acquired_at=stamp, expires_at=stamp + LOCK_TTL),
            execution_options={"preserve_rowcount": True},
        ).rowcount
        if taken and current != holder:
            _abandon_runs(conn, source, current, stamp)
    return holder if taken else None


def _abandon_runs(conn: Connection, source: str, previous: str | None,
                  stamp: datetime) -> None:
    """Mark the source's unfinished runs `abandoned`: whoever holds the claim is the only
    one running it, so a run still logged as running belongs to a process that is gone."""
    run = schema.etl_run
    why = (f"abandoned: {previous} stopped without finishing; its claim was taken over"
           if previous else "abandoned: its process stopped without finishing")
    conn.execute(update(run).where(run.c.source == source, run.c.status == "running",
                                   run.c.finished_at.is_(None))
                 .values(status=ABANDONED, finished_at=stamp, error=why))


def holder_alive(holder: str) -> bool | None:
    """Whether the process holding a claim is alive: True/False on this machine, None when
    it runs on another machine (this one cannot tell)."""
    host, _, pid = holder.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return None
    return not _dead_here(holder)


def _dead_here(holder: str) -> bool:
    host, _, pid = holder.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def release_lock(engine: Engine, source: str, holder: str) -> None:
    """Release a claim made by `acquire_lock`."""
    table = schema.etl_lock
    with engine.begin() as conn:
        conn.execute(delete(table).where(table.c.source == source, table.c.holder == holder))


def lock_holder(engine: Engine, source: str) -> str | None:
    """Who currently holds `source`, if anyone."""
    with engine.connect() as conn:
        return conn.execute(select(schema.etl_lock.c.holder)
                            .where(schema.etl_lock.c.source == source)).scalar_one_or_none()


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
                rows_excluded=result.excluded,
                rows_unchanged=result.unchanged,
                watermark=result.watermark,
                error=result.error,
                notes=json.dumps(result.notes, sort_keys=True) if result.notes else None,
            )
        )


def _quarantine_file(engine: Engine, run_id: int, source: str, err: SourceError) -> None:
    q = schema.quarantine
    reason = f"file rejected: {err.reason}"
    with engine.begin() as conn:
        # A file rejected before is rejected again on every run until it is fixed: the run
        # still fails, but the quarantine keeps one record of it.
        known = conn.execute(select(q.c.id).where(
            q.c.source == source, q.c.file == err.origin, q.c.line.is_(None),
            q.c.reason == reason)).first()
        if known is not None:
            return
        conn.execute(
            insert(schema.quarantine).values(
                run_id=run_id, source=source, file=err.origin, line=None, field=None,
                value=None, reason=reason, raw=None, created_at=now(),
            )
        )


def _seen_file(conn: Connection, source: str, path: str):
    """The file's last load (sha256, size, mtime_ns), or None."""
    sf = schema.source_file
    return conn.execute(select(sf.c.sha256, sf.c.size, sf.c.mtime_ns).where(
        sf.c.source == source, sf.c.path == path)).first()


def stored_watermark(engine: Engine, source: str) -> str | None:
    """The watermark the last successful batch of `source` stored."""
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


def _read_with_retries(read: Callable[[], T], cfg: SourceConfig,
                       sleep: Callable[[float], None] = time.sleep) -> T:
    """Read a database or HTTP source, retrying while it is unreachable (backoff doubles)."""
    delay = BACKOFF_SECONDS
    for attempt in range(1, RETRIES + 1):
        try:
            return read()
        except TransientSourceError as err:
            if attempt == RETRIES:
                raise TransientSourceError(
                    err.origin, f"{err.reason} (gave up after {RETRIES} attempts)") from None
            log.warning("%s: %s; retrying in %.0f s", cfg.name, err.reason, delay)
            sleep(delay)
            delay *= 2
    raise AssertionError("unreachable")


def _batches(engine: Engine, cfg: SourceConfig, result: RunResult) -> Iterator[RawBatch]:
    if cfg.adapter in FILE_ADAPTERS:
        for path in list_files(cfg):
            with engine.connect() as conn:
                seen = _seen_file(conn, cfg.name, str(path))
            try:
                stat = path.stat()
                # Same size and modification time as when it was last loaded: not read or
                # hashed again (gigabytes of unchanged exports on every run otherwise).
                same_stat = seen is not None and (seen.size, seen.mtime_ns) == \
                    (stat.st_size, stat.st_mtime_ns)
                data = b"" if same_stat else path.read_bytes()
            except OSError as exc:
                _reject(engine, cfg, result,
                        SourceError(str(path), f"cannot be read: {exc.strerror or exc}"))
                continue
            digest = None if same_stat else file_digest(data)
            if same_stat or (seen is not None and seen.sha256 == digest):
                if not same_stat:
                    # Touched, not changed: remember its time so the next run need not
                    # hash it.
                    sf = schema.source_file
                    with engine.begin() as conn:
                        conn.execute(update(sf).where(sf.c.source == cfg.name,
                                                      sf.c.path == str(path))
                                     .values(mtime_ns=stat.st_mtime_ns))
                result.note("files_unchanged")
                log.info("%s: %s unchanged since its last load, skipped", cfg.name, path)
                continue
            try:
                batch = read_file(path, cfg, data)
            except SourceError as err:
                _reject(engine, cfg, result, err)
                continue
            batch.mtime_ns = stat.st_mtime_ns
            yield batch
    elif cfg.adapter == "sql":
        wm = stored_watermark(engine, cfg.name) if cfg.watermark else None

        def open_read() -> tuple[RawBatch | None, Iterator[RawBatch]]:
            batches = read_sql(cfg, wm)
            return next(batches, None), batches

        # Retried until the first batch is read; the rest stream one batch (and one
        # transaction) at a time, so a table of millions never sits in memory at once.
        first, rest = _read_with_retries(open_read, cfg)
        if first is not None:
            yield first
        yield from rest
    elif cfg.adapter == "http_json":
        from etl.http_source import read_http_json

        wm = stored_watermark(engine, cfg.name) if cfg.watermark else None
        # The HTTP reader retries each request itself; a whole-read failure is final here.
        yield from read_http_json(cfg, wm)
    else:  # pragma: no cover - the config model rejects unknown adapters
        raise SourceError(cfg.name, f"adapter {cfg.adapter!r} is not implemented")


def _validated_ahead(engine: Engine, cfg: SourceConfig, result: RunResult,
                     salt: str | None) -> Iterator[Prepared[RawBatch, Validated | None]]:
    """The source's batches, each read and validated while the one before is written
    (`etl.prefetch`), for streamed sources (SQL, HTTP: bounded batches). Files come as they
    are, validated in their transaction: one file can be a whole year (two million answers)
    and two of them at once would double the ETL's memory."""
    stream = _batches(engine, cfg, result)
    if cfg.adapter in FILE_ADAPTERS:
        yield from (Prepared(batch, None, None) for batch in stream)
        return

    def validate(batch: RawBatch) -> Validated:
        # Its own connection: the references it looks up (customers, org units) come from
        # other sources, committed before this run, so the batch being written cannot
        # change the answer.
        with engine.connect() as conn:
            return validate_batch(batch, cfg, _known_lookup(conn, cfg), salt=salt)

    with closing(prefetched(stream, validate, name=f"etl-{cfg.name}")) as ahead:
        yield from ahead


def _reject(engine: Engine, cfg: SourceConfig, result: RunResult, err: SourceError) -> None:
    _quarantine_file(engine, result.run_id or 0, cfg.name, err)
    result.rejected.append(str(err))
    result.note("files_rejected")


def _month_keys(series: pd.Series) -> set[str]:
    return set(pd.to_datetime(series.dropna()).dt.strftime("%Y-%m").unique())


def _known_lookup(conn: Connection, cfg: SourceConfig) -> Callable[[str, object], set[str]]:
    def known(kind: str, values: object) -> set[str]:
        if kind == "org_unit" and cfg.auto_create_org_units is not None:
            return {str(v) for v in values}  # type: ignore[union-attr]
        return known_values(conn, kind, values)  # type: ignore[arg-type]

    return known


def _auto_create_units(conn: Connection, cfg: SourceConfig, entity: Entity,
                       frame: pd.DataFrame, result: RunResult) -> None:
    rule = cfg.auto_create_org_units
    if rule is None:
        return
    codes: set[str] = set()
    for fname, spec in entity.fields.items():
        if spec.org_ref and fname in frame:
            codes |= {str(v) for v in frame[fname].dropna().unique()}
    missing = sorted(codes - known_values(conn, "org_unit", codes))
    if not missing:
        return
    if not known_values(conn, "org_unit", [rule.parent]):
        raise SourceError(cfg.name, f"auto_create_org_units.parent {rule.parent!r} is not a "
                          "known org unit: load the org source first or fix the config")
    stamp = now()
    conn.execute(insert(schema.org_unit), [
        {"id": code, "name": code, "kind": rule.kind, "parent_id": rule.parent,
         "source": cfg.name, "loaded_at": stamp} for code in missing])
    result.note("org_units_created", len(missing))


def _replace_quarantine(conn: Connection, cfg: SourceConfig,
                        row_keys: Callable[[], Sequence[str]],
                        records: list[dict[str, object]], run_id: int) -> None:
    """Keep one record set per bad row: this batch's rows replace their earlier records.

    A re-exported file (a row added, rows moved) or an incremental re-read of the boundary
    row used to quarantine the same bad rows again on every run; a row that now loads
    cleanly leaves quarantine. Rows are matched by natural key, or by a hash of their
    content where the key is missing; `row_keys` computes them only when the source has
    quarantine records to replace.
    """
    q = schema.quarantine
    has_any = conn.execute(select(q.c.id).where(q.c.source == cfg.name,
                                                q.c.row_key.is_not(None)).limit(1)).first()
    if has_any is not None:
        keys = sorted(set(row_keys()))
        for start in range(0, len(keys), 900):
            conn.execute(delete(q).where(q.c.source == cfg.name,
                                         q.c.row_key.in_(keys[start:start + 900])))
    if records:
        stamp = now()
        conn.execute(insert(q), [{**r, "run_id": run_id, "source": cfg.name,
                                  "created_at": stamp} for r in records])


def _reason_label(record: dict[str, object]) -> str:
    """A quarantine reason without its row's values, naming the field and the source column,
    so that equal problems count together in the run summary."""
    reason = str(record["reason"]).removesuffix(" (value dropped, row loaded)")
    reason = re.sub(r" \(first seen on line \d+\)|\s*'[^']*'|\s*\"[^\"]*\"", "", reason)
    field_name, column = record.get("field"), record.get("column")
    if field_name in (None, "(row)"):
        return reason
    shown = f"{field_name}" + (f" (column {column!r})" if column and column != field_name
                               and column != "(constant)" else "")
    return f"{shown}: {reason}"


def load_batch(conn: Connection, cfg: SourceConfig, batch: RawBatch, run_id: int,
               result: RunResult, salt: str | None = None,
               checked: Validated | None = None) -> None:
    """Validate and write one batch inside the caller's transaction, then refresh rollups.
    `checked`: the batch validated already (`_validated_ahead`)."""
    entity: Entity = ENTITIES[cfg.entity_name]
    if checked is None:
        checked = validate_batch(batch, cfg, _known_lookup(conn, cfg), salt=salt)
    excluded = sum(batch.excluded.values())
    result.read += checked.read + excluded
    result.excluded += excluded
    result.quarantined += checked.bad_rows
    result.partial += checked.partial_rows
    result.note("rows_without_score", checked.unscored)
    result.note("rows_with_values_dropped", checked.partial_rows)
    for reason, count in batch.excluded.items():
        result.note(f"excluded_{reason}", count)
    result.reasons.update(_reason_label(r) for r in checked.quarantine)
    bad = checked.bad_rows + checked.partial_rows
    if checked.read and bad / checked.read > cfg.max_quarantine_share:
        result.warnings.append(
            f"{batch.origin}: {bad:,} of {checked.read:,} rows ({bad / checked.read:.1%}) "
            f"quarantined or loaded without a bad value, above max_quarantine_share "
            f"{cfg.max_quarantine_share:.0%}")
    _replace_quarantine(conn, cfg, lambda: checked.row_keys, checked.quarantine, run_id)
    stamp = now()
    frame = checked.frame
    months: set[str] = set()
    if not frame.empty:
        frame = frame.copy()
        _auto_create_units(conn, cfg, entity, frame, result)
        frame["loaded_at"] = stamp
        if "source" in entity.table.c:
            frame["source"] = cfg.name
        key = [*(("source",) if entity.per_source_key else ()), *entity.key]
        key = ["respondent_key" if k == "respondent" else k for k in key]
        date_col = next((c for c in ("submitted_at", "occurred_at", "wave") if c in frame), None)
        log.info("%s: writing %d rows from %s", cfg.name, len(frame), batch.origin)
        has_ratings = checked.ratings is not None and not checked.ratings.empty
        counts = upsert(conn, entity.table, frame, key, track_month=date_col,
                        return_ids=has_ratings)
        result.inserted += counts.inserted
        result.updated += counts.updated
        result.unchanged += counts.unchanged
        if date_col:
            months = _month_keys(frame[date_col]) | counts.old_months
        if has_ratings and counts.ids is not None:
            _write_ratings(conn, cfg, entity, frame, checked.ratings, key, counts.ids,
                           new_parents=counts.inserted == len(frame))
        if entity.name == "customers" and (counts.inserted or counts.updated):
            if counts.inserted:
                # A new member's earlier answers now count for the revenue page, in any
                # month (a changed segment or tier changes nothing there).
                answer_revenue.mark_pending(conn)
                answer_revenue.forget_months(conn)
            # Segments live on customers: every survey and sale month may regroup.
            refresh_survey(conn)
            refresh_transactions(conn, activity=False)
            clear_member_activity(conn)
        elif entity.name == "transactions" and (counts.inserted or counts.updated):
            # The activity counts of a month read three months of sales: counted once after
            # the whole run (`complete_member_activity`), not once per batch. Until then
            # readers count these months from the sales, which this transaction holds.
            refresh_transactions(conn, months, activity=False)
            clear_member_activity(conn, months)
            _clear_answer_revenue(conn, frame, counts)
            result.touched_months |= months
        elif entity.name in REFRESH and (counts.inserted or counts.updated):
            REFRESH[entity.name](conn, months)
            if entity.name == "survey_responses":
                refresh_driver_moments(conn, months)
                refresh_topic_months(conn, months)
                answer_revenue.clear_months(conn, months)
            result.touched_months |= months
    if batch.path is not None and batch.sha256:
        _record_file(conn, cfg.name, str(batch.path), batch.sha256, batch.size or 0, run_id,
                     batch.mtime_ns)
    if cfg.watermark:
        _set_watermark(conn, cfg.name, batch.watermark)
        result.watermark = batch.watermark


def _clear_answer_revenue(conn: Connection, frame: pd.DataFrame, counts: UpsertCounts) -> None:
    """Delete the answer revenue rows a sales batch may change: its customers' answers
    whose windows reach its sales, and where sales were corrected (they may have moved to
    another customer or day) every answer whose window reaches their old months."""
    from queries.settings import get_settings

    settings = get_settings()
    horizon = max(settings.cx_revenue_days, settings.cx_active_days)
    when = pd.to_datetime(frame["occurred_at"])
    customers = (frame["customer_id"].dropna().unique().tolist()
                 if "customer_id" in frame else [])
    if customers and when.notna().any():
        answer_revenue.clear_span(conn, when.min().to_pydatetime(),
                                  when.max().to_pydatetime(), horizon, customers=customers)
    if counts.updated and counts.old_months:
        spans = [Month.parse(m) for m in counts.old_months]
        answer_revenue.clear_span(conn, min(m.start for m in spans),
                                  max(m.end for m in spans), horizon)


def _write_ratings(conn: Connection, cfg: SourceConfig, entity: Entity, frame: pd.DataFrame,
                   ratings: pd.DataFrame | None, key: Sequence[str],
                   ids: pd.DataFrame, *, new_parents: bool = False) -> None:
    assert ratings is not None
    child = schema.survey_rating if entity.ratings == "attributes" else schema.engagement_score
    name_col = "attribute" if entity.ratings == "attributes" else "item"
    value_col = "rating" if entity.ratings == "attributes" else "score"
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
    # Each answer keeps the scale it was asked on; NULL is the default 1-5 scale.
    scales = {name: cfg.scale_of(name) for name in ratings.columns}
    for part, attr in (("scale_min", "min"), ("scale_max", "max"), ("favourable", "favourable")):
        # One lookup per rated name, spread over its rows: no Python per answer.
        per_name = {n: getattr(s, attr) if s is not None else None for n, s in scales.items()}
        long[part] = long[name_col].map(per_name).astype("Int64")
    replace_children(conn, child, "response_pk", name_col, value_col, long,
                     merged["pk"].dropna().astype("int64").tolist(), new_parents=new_parents)


def _record_file(conn: Connection, source: str, path: str, digest: str, size: int,
                 run_id: int, mtime_ns: int | None = None) -> None:
    table = schema.source_file
    changed = conn.execute(
        update(table).where(table.c.source == source, table.c.path == path)
        .values(sha256=digest, size=size, run_id=run_id, loaded_at=now(), mtime_ns=mtime_ns),
        execution_options={"preserve_rowcount": True},
    ).rowcount
    if not changed:
        conn.execute(insert(table).values(source=source, path=path, sha256=digest, size=size,
                                          run_id=run_id, loaded_at=now(), mtime_ns=mtime_ns))


def run_source(engine: Engine, cfg: SourceConfig, progress: Progress | None = None, *,
               wait: float | None = None) -> RunResult:
    """Run one source now: claim it, load every batch in its own transaction, log the run.

    A source another process is running is skipped (status `skipped`, not logged: that
    process logs its own run), unless `wait` gives seconds to wait for it to finish first.
    """
    started = time.perf_counter()
    result = RunResult(cfg.name)
    holder = acquire_lock(engine, cfg.name)
    deadline = time.monotonic() + (wait or 0)
    while holder is None and time.monotonic() < deadline:
        time.sleep(WAIT_POLL_SECONDS)
        holder = acquire_lock(engine, cfg.name)
    if holder is None:
        elsewhere = lock_holder(engine, cfg.name) or "another process"
        result.status = SKIPPED if not wait else "failed"
        result.error = (f"running elsewhere ({elsewhere})" if not wait else
                        f"still running elsewhere ({elsewhere}) after waiting {wait:g} s")
        result.seconds = time.perf_counter() - started
        return result
    try:
        result.run_id = _start_run(engine, cfg.name)
        log.info("%s: run %d started, claimed by %s", cfg.name, result.run_id, holder)
        salt = respondent_salt(cfg) if ENTITIES[cfg.entity_name].name == \
            "engagement_responses" else None
        with closing(_validated_ahead(engine, cfg, result, salt)) as items:
            for done, item in enumerate(items, start=1):
                batch = item.batch
                try:
                    with engine.begin() as conn:
                        load_batch(conn, cfg, batch, result.run_id, result, salt=salt,
                                   checked=item.get())
                except TransientSourceError:
                    raise
                except SourceError as err:
                    if cfg.adapter not in FILE_ADAPTERS:
                        raise
                    _reject(engine, cfg, result, err)
                except Exception as err:
                    if cfg.adapter not in FILE_ADAPTERS:
                        raise
                    # One file's surprise must not keep the source's other files from loading.
                    log.exception("%s: %s failed", cfg.name, batch.origin)
                    _reject(engine, cfg, result, SourceError(
                        batch.origin, f"could not be loaded ({type(err).__name__}: {err})"))
                if progress:
                    progress(cfg.name, done, result.read)
        if ENTITIES[cfg.entity_name].name in ACTIVITY_ENTITIES or \
                result.notes.get("org_units_created"):
            complete_member_activity(engine, result)
        if ENTITIES[cfg.entity_name].name in ANSWER_REVENUE_ENTITIES:
            complete_answer_revenue(engine, result)
        result.status = ("failed" if result.rejected else "warning" if result.warnings
                         else "success")
        if result.inserted + result.updated > 1000:
            refresh_statistics(engine, cfg.entity_name)
        if result.rejected:
            result.error = "; ".join(result.rejected)
        elif result.warnings:
            top = "; ".join(f"{reason}: {count:,}" for reason, count in result.top_reasons())
            result.error = "; ".join(result.warnings) + (f". Top reasons: {top}" if top else "")
    except SourceError as err:
        result.status = "failed"
        result.error = str(err)
    except Exception as err:  # the run log must say why, whatever broke
        log.exception("source %s failed", cfg.name)
        result.status = "failed"
        result.error = f"{type(err).__name__}: {err}"
    finally:
        result.seconds = time.perf_counter() - started
        if result.run_id is not None:
            _finish_run(engine, result)
        release_lock(engine, cfg.name, holder)
    if cfg.entity_name == "survey_responses" and (result.inserted or result.updated):
        analyse_after_load(engine)
        cases_after_load(engine)
        alerts_after_load(engine)
    elif cfg.entity_name == "survey_responses":
        # Nothing to analyse, but the comment sums may still be stale (just after the
        # upgrade that adds them, or after an analysis cut short): one read when current.
        settle_after_load(engine)
    return result


ACTIVITY_ENTITIES = ("org_units", "customers", "transactions")
"""Loads that can leave months of the member activity summary uncounted: sales and members
change its counts, a changed org tree its subtrees (as does any load that creates units)."""

ANSWER_REVENUE_ENTITIES = ("customers", "transactions", "survey_responses")
"""Loads after which answers may lack their answer revenue row: new answers, sales that
cleared rows, customers that link answers to the loyalty programme."""


def _after_batches(result: RunResult, what: str, meanwhile: str,
                   step: Callable[[], int]) -> None:
    """Run a summary's completion `step` after the batches. A failure loses no data (the
    dashboard reads `meanwhile` until a later run completes it): a warning, not a failed
    run. Its time counts in `result.summary_seconds`."""
    started = time.perf_counter()
    try:
        written = step()
        if written:
            log.info("%s: %s: %d rows counted", result.source, what, written)
    except Exception as err:
        log.exception("%s: %s was not completed", result.source, what)
        result.warnings.append(f"{what} not completed ({type(err).__name__}: {err}); "
                               f"{meanwhile} until the next run completes it")
    finally:
        result.summary_seconds += time.perf_counter() - started


def complete_member_activity(engine: Engine, result: RunResult) -> None:
    """Count the member activity summary's missing months (cleared by this run's batches,
    never counted, or counted on an older org tree) in one transaction of its own."""
    def step() -> int:
        with engine.begin() as conn:
            return refresh_member_activity(conn, missing=True)

    _after_batches(result, "member activity summary",
                   "the dashboard counts those months from the sales", step)


def complete_answer_revenue(engine: Engine, result: RunResult) -> None:
    """`answer_revenue.complete` with the configured windows after a run."""
    from queries.settings import get_settings

    settings = get_settings()
    _after_batches(result, "answer revenue", "the revenue page joins the sales itself",
                   lambda: answer_revenue.complete(engine, window_days=settings.cx_revenue_days,
                                                   churn_days=settings.cx_active_days))


def respondent_salt(cfg: SourceConfig, data_dir: Path | None = None) -> str:
    """The salt of `cfg`'s respondent hashes: the configured one (`${VAR}` read from the
    environment), else one generated once and kept in CX_DATA_DIR/respondent_salt.

    The source's name used to be the salt when none was set: anyone holding the database
    could then hash every employee id and find each respondent.
    """
    value = cfg.respondent_salt
    if value is not None:
        if value.startswith("${") and value.endswith("}"):
            name = value[2:-1]
            got = os.environ.get(name, "")
            if len(got) < 16:
                raise SourceError(cfg.name, f"respondent_salt: environment variable {name} is "
                                  "unset or shorter than 16 characters")
            return got
        return value
    if data_dir is None:
        from queries.settings import get_settings

        data_dir = get_settings().cx_data_dir
    path = data_dir / "respondent_salt"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".respondent_salt.{os.getpid()}")
        tmp.write_text(secrets.token_urlsafe(32))
        tmp.chmod(0o600)
        try:
            os.link(tmp, path)  # atomic and exclusive: two processes agree on one salt
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
    salt = path.read_text().strip()
    if len(salt) < 16:
        raise SourceError(str(path), "respondent salt file is empty or too short; delete it "
                          "only if no engagement data was loaded with it")
    return f"{salt}:{cfg.name}"


def refresh_statistics(engine: Engine, entity_name: str) -> None:
    """Let the planner see a bulk load: PostgreSQL's autovacuum analyses later, and until it
    does, queries over a freshly loaded table can pick plans a hundred times slower."""
    entity = ENTITIES[entity_name]
    tables = [entity.table, *(t for t in (schema.agg_survey_daily, schema.agg_txn_daily,
                                          schema.agg_survey_monthly, schema.agg_txn_monthly,
                                          schema.agg_dim_value, schema.agg_engagement,
                                          schema.agg_engagement_unit))]
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            quote = conn.dialect.identifier_preparer.quote
            for table in tables:
                conn.exec_driver_sql("ANALYZE " + quote(table.name))
        elif conn.dialect.name == "sqlite":
            conn.exec_driver_sql("PRAGMA optimize")


def ordered(sources: Sequence[SourceConfig]) -> list[SourceConfig]:
    """Sources in load order: org units, then customers, then facts that reference them."""
    return sorted(sources, key=lambda s: ENTITY_ORDER.index(s.entity_name))


def run_sources(engine: Engine, config: SourcesConfig, names: Sequence[str] | None = None,
                progress: Progress | None = None, *,
                wait: float | None = None) -> list[RunResult]:
    """Run the named sources (default: every enabled one) in dependency order.

    A failing source does not stop the others; one running elsewhere is skipped, or with
    `wait` (seconds) waited for.
    """
    chosen = [config.get(n) for n in names] if names else [s for s in config.sources if s.enabled]
    return [run_source(engine, cfg, progress, wait=wait) for cfg in ordered(chosen)]
