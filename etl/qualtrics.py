"""Qualtrics CSV exports: three header rows, questions addressed by their ImportId.

Row 1 holds column ids (Q1, Q2 ... which change when a survey is edited), row 2 the question
texts, row 3 a JSON object per column with its stable ImportId (QID1, QID2_TEXT,
startDate ...). Config may name a column by any of the three, so a survey whose questions
were renamed keeps loading. Previews, test and spam responses and unfinished ones are not
survey answers: they are counted and left out.
"""

from __future__ import annotations

import json
from pathlib import Path

from etl.config import SourceConfig
from etl.sources import RawBatch, SourceError, decode, file_digest, frame_from_records, read_records

# Qualtrics' response types ("Status"): 0 IP address (a real answer), 1 survey preview,
# 2 survey test, 4 imported, 8 spam, 9 preview spam, 12 imported spam, 16 offline,
# 17 offline preview.
EXCLUDED_STATUS = {"1": "preview", "2": "test", "8": "spam", "9": "spam", "12": "spam",
                   "17": "preview"}
STATUS_LABELS = {"survey preview": "1", "survey test": "2", "spam": "8", "ip address": "0",
                 "imported": "4", "offline": "16", "offline survey preview": "17"}
FINISHED_FALSE = {"0", "false", "no"}


def import_ids(row: list[str]) -> list[str | None]:
    """The ImportId of each column from the third header row (None where there is none)."""
    out: list[str | None] = []
    for cell in row:
        try:
            value = json.loads(cell) if cell else {}
        except json.JSONDecodeError:
            value = {}
        out.append(value.get("ImportId") if isinstance(value, dict) else None)
    return out


def read_qualtrics(path: Path, cfg: SourceConfig, data: bytes | None = None) -> RawBatch:
    """Read a Qualtrics CSV export, dropping (and counting) non-answers."""
    origin = str(path)
    data = path.read_bytes() if data is None else data
    text = decode(data, cfg.encoding if cfg.encoding != "utf-8" else "utf-8-sig", origin)
    records, lines = read_records(text, cfg.delimiter or ",", origin)
    if len(records) < 3:
        raise SourceError(origin, "not a Qualtrics export: it needs three header rows "
                          "(column ids, question texts, ImportIds)")
    ids = import_ids(records[2])
    if not any(ids):
        raise SourceError(origin, "not a Qualtrics export: row 3 holds no ImportId objects "
                          '(expected cells such as {"ImportId":"QID1"})')
    frame, body_lines, _ = frame_from_records(records, lines, origin, header_rows=3)
    columns = list(frame.columns)
    aliases: dict[str, str] = {}
    for col, qtext, import_id in zip(columns, records[1], ids, strict=False):
        if import_id:
            aliases[import_id] = col
        if qtext and qtext.strip() and qtext.strip() not in aliases:
            aliases[qtext.strip()] = col
    frame.attrs["aliases"] = aliases

    excluded: dict[str, int] = {}
    keep = [True] * len(frame)
    status_col = aliases.get("status") or ("Status" if "Status" in columns else None)
    finished_col = aliases.get("finished") or ("Finished" if "Finished" in columns else None)
    for i in range(len(frame)):
        reason = None
        if status_col is not None:
            raw = str(frame.iat[i, columns.index(status_col)] or "").strip()
            code = STATUS_LABELS.get(raw.lower(), raw)
            reason = EXCLUDED_STATUS.get(code)
        if reason is None and finished_col is not None:
            fin = str(frame.iat[i, columns.index(finished_col)] or "").strip().lower()
            if fin in FINISHED_FALSE:
                reason = "unfinished"
        if reason:
            keep[i] = False
            excluded[reason] = excluded.get(reason, 0) + 1
    counts = frame.attrs.get("field_counts")
    attrs = dict(frame.attrs)
    frame = frame[keep].reset_index(drop=True)
    frame.attrs.update(attrs)
    if counts is not None:
        frame.attrs["field_counts"] = [c for c, k in zip(counts, keep, strict=True) if k]
    kept_lines = [ln for ln, k in zip(body_lines, keep, strict=True) if k]
    return RawBatch(origin, frame, kept_lines, file_digest(data), len(data), excluded=excluded,
                    path=path)
