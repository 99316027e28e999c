"""Source adapters: read a source's files or tables into raw batches of text values.

Every adapter yields `RawBatch`es: one per file (or one per incremental read of a table),
holding the rows as strings with the line (or row) number each came from, so validation can
name the exact place of a bad value. A file that cannot be read at all raises `SourceError`
and contributes nothing.
"""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import glob
import hashlib
import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from etl.config import SourceConfig

CHUNK_ROWS = 50_000
# Rows per batch of an ordered incremental table read: memory stays bounded however big the
# table, and each batch commits with its own watermark.
SQL_BATCH_ROWS = 1_000_000
EXCEL_SUFFIXES = {".xlsx", ".xlsm"}


class SourceError(Exception):
    """A whole file or source cannot be read; nothing from it is loaded."""

    def __init__(self, origin: str, message: str) -> None:
        super().__init__(f"{origin}: {message}")
        self.origin = origin
        self.reason = message


class TransientSourceError(SourceError):
    """The source is unreachable right now (database down, HTTP timeout or 5xx): retry later.

    Nothing was loaded from the failed read; the next run resumes from the stored watermark.
    """


@dataclass
class RawBatch:
    """Rows of one file (or one table read) as text, with their source positions."""

    origin: str
    frame: pd.DataFrame
    lines: list[int]
    sha256: str | None = None
    size: int | None = None
    watermark: str | None = None
    excluded: dict[str, int] = field(default_factory=dict)
    path: Path | None = None
    mtime_ns: int | None = None


def list_files(cfg: SourceConfig) -> list[Path]:
    """Files named by the source's location: one file, a folder, or a glob pattern."""
    location = cfg.resolve()
    if any(ch in cfg.location for ch in "*?["):
        files = [Path(p) for p in sorted(glob.glob(str(location), recursive=True))]
        files = [p for p in files if p.is_file()]
    elif location.is_dir():
        files = sorted(p for p in location.iterdir() if p.is_file() and not p.name.startswith("."))
    else:
        files = [location]
    if not files:
        raise SourceError(str(location), "no files match this location")
    for path in files:
        if not path.exists():
            raise SourceError(str(path), "file not found")
    return files


def file_digest(data: bytes) -> str:
    """SHA-256 of a file's bytes: a changed file is reloaded, an unchanged one skipped."""
    return hashlib.sha256(data).hexdigest()


def _text_value(value: Any) -> str | None:
    """Render a native value (Excel cell, SQL column) as the text a CSV would carry."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if value != value:  # NaN
            return None
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, Decimal):
        return format(value.normalize(), "f") if value == value.to_integral() else str(value)
    if isinstance(value, dt.datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value)


def _text_column(values: tuple[Any, ...]) -> pd.Series:
    """A column of native values as `_text_value` texts, converting each distinct value once
    (integers in one vectorised step): a million rows hold few distinct stores or dates."""
    array = np.empty(len(values), dtype=object)
    array[:] = values
    kind = pd.api.types.infer_dtype(array, skipna=True)
    if kind in ("string", "empty"):
        return pd.Series(array, dtype=object)
    if kind == "integer" and not pd.isna(array).any():
        return pd.Series(array.astype(np.int64).astype(str).astype(object), dtype=object)
    return by_unique(pd.Series(array, dtype=object), _text_value)


def by_unique(series: pd.Series, convert: Callable[[object], object]) -> pd.Series:
    """`convert` applied once per distinct value and spread over the rows (an object column
    of None for missing): a column of a million rows holds a few hundred store codes."""
    values = series.to_numpy(dtype=object)
    present = ~pd.isna(values)
    out = np.full(len(values), None, dtype=object)
    if present.any():
        codes, uniques = pd.factorize(values[present])
        converted = np.empty(len(uniques), dtype=object)
        converted[:] = [convert(u) for u in uniques]
        out[present] = converted[codes]
    return pd.Series(out, index=series.index, dtype=object)


def _unique_header(header: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for raw in header:
        name = (raw or "").strip()
        if name in seen:
            seen[name] += 1
            name = f"{name}.{seen[name]}"
        else:
            seen[name] = 0
        out.append(name)
    return out


def decode(data: bytes, encoding: str, origin: str) -> str:
    """Decode file bytes strictly; a wrong encoding rejects the file with its position.

    A UTF-16 or UTF-32 byte-order mark wins over the configured encoding: Excel's "Unicode
    text" export is UTF-16 with a BOM, and no 8-bit encoding starts a text with those bytes.
    """
    codec = encoding
    if encoding.replace("_", "-").lower() in ("utf-8", "utf8"):
        codec = "utf-8-sig"  # a BOM is noise, not part of the first column's name
    for bom, wide in ((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"),
                      (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16")):
        if data.startswith(bom):
            codec = wide  # the codec reads the BOM's byte order and drops the mark
            break
    try:
        return data.decode(codec)
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        # Name the encoding as configured: "utf-8-sig" is not what the user wrote.
        raise SourceError(
            origin,
            f"cannot be decoded as {encoding} (byte {exc.start}, line {line}); set `encoding` "
            "in the source config (for example latin-1 or cp1252)",
        ) from None


DELIMITERS = ",;\t|"


def sniff_delimiter(text: str, origin: str) -> str:
    """The delimiter of delimited text, among `, ; TAB |`.

    Sniffed on whole lines with their line endings normalised: on text still holding
    `\r\n` the standard sniffer fails and a silent fallback to `,` turned a semicolon file
    into one column. A header that holds exactly one candidate decides alone (most exports);
    otherwise the sniffer weighs the candidates over the first lines. When neither works the
    file is rejected with a message saying how to fix it, instead of guessing.
    """
    lines = [ln for ln in text[:64_000].splitlines() if ln.strip()]
    if len(lines) > 1 and len(text) > 64_000:
        lines = lines[:-1]  # the sample cut the last line short
    if not lines:
        raise SourceError(origin, "file is empty")
    header = lines[0]
    present = [d for d in DELIMITERS if d in header]
    if len(present) == 1:
        return present[0]
    try:
        return csv.Sniffer().sniff("\n".join(lines[:200]) + "\n",
                                   delimiters=DELIMITERS).delimiter
    except csv.Error:
        pass
    # One column is a legitimate file (a list of codes): no delimiter in any line.
    if not present and not any(d in ln for ln in lines[:200] for d in DELIMITERS):
        return ","
    counts = ", ".join(f"{_delimiter_name(d)} x{header.count(d)}" for d in present)
    raise SourceError(
        origin,
        f"could not detect the delimiter (header: {counts or 'none of , ; TAB |'}); set "
        "`delimiter` in the source config, e.g. delimiter = \";\"",
    )


def _delimiter_name(d: str) -> str:
    return {"\t": "TAB", ",": "','", ";": "';'", "|": "'|'"}[d]


def read_records(
    text: str, delimiter: str | None, origin: str
) -> tuple[list[list[str]], list[int]]:
    """Parse delimited text into records and the line on which each record starts."""
    if not text.strip():
        raise SourceError(origin, "file is empty")
    if delimiter is None:
        delimiter = sniff_delimiter(text, origin)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    records: list[list[str]] = []
    lines: list[int] = []
    start = 1
    try:
        for record in reader:
            if record and any(cell.strip() for cell in record):
                records.append(record)
                lines.append(start)
            start = reader.line_num + 1
    except csv.Error as exc:
        # Name where the bad record starts too: an unclosed quote swallows the rest of the
        # file, so the line the parser gave up on is the last one, not the culprit.
        raise SourceError(
            origin, f"malformed or truncated at line {reader.line_num} (in the record starting "
            f"on line {start}): {exc}"
        ) from None
    return records, lines


def frame_from_records(
    records: list[list[str]], lines: list[int], origin: str, header_rows: int = 1
) -> tuple[pd.DataFrame, list[int], list[str]]:
    """Build a text DataFrame from parsed records; the first record is the header."""
    if len(records) <= header_rows - 1 or not records:
        raise SourceError(origin, "file is empty")
    header = _unique_header(records[0])
    body = records[header_rows:]
    body_lines = lines[header_rows:]
    width = len(header)
    if body and len(body[-1]) < width:
        raise SourceError(
            origin,
            f"looks truncated: its last record (line {body_lines[-1]}) has {len(body[-1])} of "
            f"{width} fields",
        )
    fixed = []
    for rec in body:
        if len(rec) < width:
            rec = rec + [None] * (width - len(rec))  # validation quarantines the row
        fixed.append(rec[:width] if len(rec) > width else rec)
    frame = pd.DataFrame(fixed, columns=header, dtype=object)
    # Keep the count of fields so validation can quarantine ragged rows instead of guessing.
    frame.attrs["field_counts"] = [len(r) for r in body]
    frame.attrs["width"] = width
    return frame, body_lines, [str(h) for h in records[0]]


def read_delimited(path: Path, cfg: SourceConfig, header_rows: int = 1,
                   data: bytes | None = None) -> RawBatch:
    """Read one CSV/TSV/semicolon file into a RawBatch."""
    origin = str(path)
    data = path.read_bytes() if data is None else data
    text = decode(data, cfg.encoding, origin)
    records, lines = read_records(text, cfg.delimiter, origin)
    frame, body_lines, raw_header = frame_from_records(records, lines, origin, header_rows)
    batch = RawBatch(origin, frame, body_lines, file_digest(data), len(data), path=path)
    batch.frame.attrs["header_records"] = records[:header_rows]
    batch.frame.attrs["raw_header"] = raw_header
    return batch


def read_excel(path: Path, cfg: SourceConfig, data: bytes | None = None) -> RawBatch:
    """Read one sheet of an .xlsx workbook into a RawBatch (line = Excel row number)."""
    from openpyxl import load_workbook
    from openpyxl.utils.exceptions import InvalidFileException

    origin = str(path)
    data = path.read_bytes() if data is None else data
    if not data:
        raise SourceError(origin, "file is empty")
    try:
        wb = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except (InvalidFileException, OSError, KeyError, ValueError) as exc:
        raise SourceError(origin, f"not a readable Excel workbook ({exc})") from None
    except Exception as exc:  # zipfile.BadZipFile and friends from a truncated file
        raise SourceError(
            origin, f"not a readable Excel workbook ({type(exc).__name__}: {exc})"
        ) from None
    try:
        if cfg.sheet is None:
            ws = wb.worksheets[0]
        elif isinstance(cfg.sheet, int):
            ws = wb.worksheets[cfg.sheet]
        else:
            if cfg.sheet not in wb.sheetnames:
                raise SourceError(origin, f"no sheet {cfg.sheet!r}; sheets: {wb.sheetnames}")
            ws = wb[cfg.sheet]
        records: list[list[str]] = []
        lines: list[int] = []
        for row_no, row in enumerate(ws.iter_rows(values_only=True), start=1):
            values = [_text_value(v) for v in row]
            if any(v not in (None, "") for v in values):
                records.append(["" if v is None else v for v in values])
                lines.append(row_no)
    finally:
        wb.close()
    frame, body_lines, _ = frame_from_records(records, lines, origin)
    frame = frame.replace({"": None})
    return RawBatch(origin, frame, body_lines, file_digest(data), len(data), path=path)


def read_file(path: Path, cfg: SourceConfig, data: bytes | None = None) -> RawBatch:
    """Read one file with the source's adapter (`file` picks by the file's extension).

    Pass the file's `data` when already read, so the hash and the parsed rows are of the
    same bytes even if the file is replaced meanwhile.
    """
    if data is None:
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise SourceError(str(path), f"cannot be read: {exc.strerror or exc}") from None
    if cfg.adapter == "excel" or (cfg.adapter == "file" and path.suffix.lower() in EXCEL_SUFFIXES):
        return read_excel(path, cfg, data)
    if cfg.adapter == "qualtrics":
        from etl.qualtrics import read_qualtrics

        return read_qualtrics(path, cfg, data)
    return read_delimited(path, cfg, data=data)


def read_sql(cfg: SourceConfig, watermark: str | None) -> Iterator[RawBatch]:
    """Read a table or query of another database, incrementally past `watermark`.

    Integer watermarks use `>`; others (timestamps) use `>=` so rows written in the same
    second as the last read are not missed; the upsert makes the re-read harmless.
    """
    from sqlalchemy import MetaData, Table, create_engine, select, text
    from sqlalchemy.exc import OperationalError, SQLAlchemyError

    from queries.db import make_engine

    url = cfg.sql_url()
    origin = f"{cfg.adapter}:{cfg.table or 'query'}"
    engine = make_engine(url) if url.startswith("sqlite") else create_engine(url)
    try:
        with engine.connect() as conn:
            if cfg.query:
                params = {"watermark": watermark} if cfg.watermark else {}
                result = conn.execute(text(cfg.query), params)
                numeric_wm = False
            else:
                table = Table(cfg.table, MetaData(), autoload_with=conn)
                stmt = select(table)
                numeric_wm = False
                if cfg.watermark:
                    if cfg.watermark not in table.c:
                        raise SourceError(origin, f"watermark column {cfg.watermark!r} not in "
                                          f"table {cfg.table!r}")
                    col = table.c[cfg.watermark]
                    numeric_wm = col.type.python_type in (int,) if _has_python_type(col) else False
                    if watermark is not None:
                        bound: Any = int(watermark) if numeric_wm else watermark
                        stmt = stmt.where(col > bound if numeric_wm else col >= bound)
                    stmt = stmt.order_by(col)
                result = conn.execution_options(stream_results=True).execute(stmt)
            columns = list(result.keys())
            wm_index = columns.index(cfg.watermark) if cfg.watermark in columns else None
            # Batches only where rows come in watermark order: then a batch's highest value
            # is a safe place to resume from. A free query is one batch, as before.
            size = SQL_BATCH_ROWS if (not cfg.query and cfg.watermark) else None
            best: Any = None
            read = 0
            while True:
                rows = result.fetchmany(size) if size else result.all()
                if not rows and read:
                    break
                native = list(zip(*rows, strict=True)) if rows else [() for _ in columns]
                if wm_index is not None:
                    present = [v for v in native[wm_index] if v is not None]
                    if present:
                        top = max(present)
                        best = top if best is None or top > best else best
                frame = pd.DataFrame({c: _text_column(v) for c, v in zip(columns, native,
                                                                          strict=True)},
                                     columns=columns, dtype=object)
                new_wm = _text_value(best) if best is not None else watermark
                yield RawBatch(origin, frame, list(range(read + 1, read + len(frame) + 1)),
                               watermark=new_wm)
                read += len(frame)
                if size is None or len(rows) < size:
                    break
    except OperationalError as exc:
        raise TransientSourceError(origin, f"database unreachable: {exc.orig or exc}") from None
    except SQLAlchemyError as exc:
        raise SourceError(origin, f"database error: {exc.__class__.__name__}: {exc}") from None
    finally:
        engine.dispose()


def _has_python_type(col: Any) -> bool:
    try:
        col.type.python_type  # noqa: B018 - some dialect types raise NotImplementedError
    except NotImplementedError:
        return False
    return True
