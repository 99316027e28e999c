"""The `http_json` adapter: read a paginated JSON export over HTTP into one raw batch.

All pages are fetched before anything is yielded, so the whole read is one batch and one
transaction: a failure on page 7 loads nothing, stores no watermark, and the next run reads
again from the last stored watermark. An export with no records yields no batch at all,
which leaves the stored watermark as it was (an empty frame would fail validation for its
missing columns).

Header values may hold secrets (`${VAR}` is taken from the environment): they are never
logged nor put into error messages, and query values that look like secrets are masked in
the URLs that errors show.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from collections.abc import Iterator
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit

import pandas as pd
import requests

from etl.config import HttpOptions, SourceConfig
from etl.sources import RawBatch, SourceError, TransientSourceError, _text_value

log = logging.getLogger(__name__)

RETRY_AFTER_CAP = 60.0
# 408 is the server saying the request timed out: as transient as a client-side timeout.
RETRY_STATUSES = frozenset({408, 429})
RETRY_AFTER_STATUSES = frozenset({429, 503})
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_SECRET_NAME = re.compile(r"token|key|secret|passw|sig|auth|credential", re.IGNORECASE)
_MISSING = object()

# Indirection so tests can observe the backoff delays without waiting for them.
_sleep = time.sleep


def read_http_json(cfg: SourceConfig, watermark: str | None) -> Iterator[RawBatch]:
    """Read every page of the JSON export at `cfg.location`; yield one batch, or none.

    `watermark` is the value stored by the last successful run; with `http.since_param` it is
    sent so the server returns only newer records. The batch's watermark is the highest value
    of the record field `cfg.watermark` (numeric order when every value is a number), or
    `watermark` unchanged when that field is null everywhere. Raises `SourceError` for
    configuration problems (4xx, bad JSON, wrong paths) and `TransientSourceError` when the
    server stays unreachable after the configured retries.
    """
    opts = cfg.http or HttpOptions()
    headers = _headers(opts, cfg.location)
    params = {k: _text_value(v) for k, v in opts.params.items()}
    if opts.since_param and watermark is not None:
        params[opts.since_param] = watermark

    records: list[dict[str, Any]] = []
    with requests.Session() as session:
        session.headers.update(headers)
        for page in _pages(session, cfg.location, params, opts):
            records.extend(page)
    if not records:
        incremental = bool(opts.since_param and watermark is not None)
        log.info("%s: the export has no records%s", cfg.name,
                 " newer than the stored watermark" if incremental else "")
        return

    rows = [_flatten(rec) for rec in records]
    columns = list(dict.fromkeys(key for row in rows for key in row))
    frame = pd.DataFrame([[row.get(c) for c in columns] for row in rows], columns=columns,
                         dtype=object)
    new_wm = _max_watermark(rows, cfg, columns, watermark) if cfg.watermark else None
    yield RawBatch(cfg.location, frame, list(range(1, len(rows) + 1)), watermark=new_wm)


def _headers(opts: HttpOptions, origin: str) -> dict[str, str]:
    out: dict[str, str] = {"Accept": "application/json"}
    for name, value in opts.headers.items():

        def env(match: re.Match[str], header: str = name) -> str:
            var = match.group(1)
            found = os.environ.get(var)
            if not found:
                # Sending "Bearer " would earn a puzzling 401; say which variable to set.
                raise SourceError(origin, f"header {header!r} uses ${{{var}}} but the "
                                  f"environment variable {var} is not set (or empty)")
            return found

        out[name] = _ENV_REF.sub(env, value)
    return out


def _pages(session: requests.Session, first: str, params: dict[str, str | None],
           opts: HttpOptions) -> Iterator[list[dict[str, Any]]]:
    """The records of each page, following next links or cursors."""
    url = _with_params(first, params)
    seen_urls: set[str] = set()
    seen_cursors: set[str] = set()
    page_no = 0
    while True:
        page_no += 1
        if url in seen_urls:
            raise SourceError(_shown(url), f"page {page_no} links back to a page already read; "
                              "the server's paging loops (check [source.http] next/cursor)")
        seen_urls.add(url)
        body, final_url = _fetch(session, url, opts, page_no)
        yield _records(body, opts.records, final_url, page_no)

        if opts.next:
            link = _lookup(body, opts.next)
            if link is _MISSING or link is None or link == "":
                return
            if not isinstance(link, str):
                raise SourceError(_shown(final_url), f"page {page_no}: next link at "
                                  f"{opts.next!r} is a {type(link).__name__}, expected a URL "
                                  "string")
            following = urljoin(final_url, link)
        elif opts.cursor:
            cursor = _lookup(body, opts.cursor)
            if cursor is _MISSING or cursor is None or cursor == "":
                return
            if isinstance(cursor, (dict, list, bool)):
                raise SourceError(_shown(final_url), f"page {page_no}: cursor at "
                                  f"{opts.cursor!r} is a {type(cursor).__name__}, expected "
                                  "a string or number")
            cursor_text = _text_value(cursor) or ""
            if cursor_text in seen_cursors:
                raise SourceError(_shown(final_url), f"page {page_no} repeats cursor "
                                  f"{cursor_text!r}; the server's paging loops")
            seen_cursors.add(cursor_text)
            following = _with_params(first, {**params, opts.cursor_param: cursor_text})
        else:
            return
        if page_no >= opts.max_pages:
            raise SourceError(_shown(first), f"server kept sending next pages after "
                              f"{opts.max_pages} pages (max_pages); raise [source.http] "
                              "max_pages if the export is really that long")
        url = following


def _with_params(url: str, params: dict[str, str | None]) -> str:
    req = requests.models.PreparedRequest()
    try:
        req.prepare_url(url, {k: v for k, v in params.items() if v is not None})
    except (requests.RequestException, ValueError) as exc:
        raise SourceError(_shown(url), f"not a usable URL ({exc})") from None
    return req.url or url


def _fetch(session: requests.Session, url: str, opts: HttpOptions,
           page_no: int) -> tuple[Any, str]:
    """GET one page with retries; return the parsed body and the URL it finally came from."""
    attempts = opts.retries + 1
    last_error = ""
    for attempt in range(1, attempts + 1):
        delay = opts.backoff * 2 ** (attempt - 1)
        log.debug("GET %s (page %d, attempt %d of %d)", _shown(url), page_no, attempt, attempts)
        try:
            resp = session.get(url, timeout=opts.timeout)
        except requests.Timeout:
            last_error = f"no answer within {opts.timeout:g} s (timeout)"
        except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError) as exc:
            last_error = f"connection failed ({_cause(exc)})"
        except requests.RequestException as exc:
            # A malformed next link or a redirect loop: retrying cannot help.
            raise SourceError(_shown(url), f"page {page_no}: request failed "
                              f"({_cause(exc)})") from None
        else:
            status = resp.status_code
            if status < 400:
                return _json(resp, page_no), resp.url
            reason = f"HTTP {status} {resp.reason or ''}".rstrip()
            if status not in RETRY_STATUSES and status < 500:
                raise SourceError(_shown(url), f"page {page_no}: {reason}{_hint(status)}"
                                  f"{_snippet(resp)}")
            last_error = reason
            wait = _retry_after(resp) if status in RETRY_AFTER_STATUSES else None
            if wait is not None:
                delay = wait
        if attempt < attempts:
            log.warning("%s: page %d attempt %d of %d failed: %s; retrying in %.2g s",
                        _shown(url), page_no, attempt, attempts, last_error, delay)
            _sleep(delay)
    raise TransientSourceError(_shown(url), f"page {page_no}: {attempts} attempt(s) failed "
                               f"(1 + {opts.retries} retries); last error: {last_error}")


def _cause(exc: requests.RequestException) -> str:
    """The root cause of a requests error, without the URL urllib3 puts in its message
    (its query string may carry a key)."""
    inner = exc.args[0] if exc.args and isinstance(exc.args[0], BaseException) else exc
    reason = getattr(inner, "reason", None)
    cause = reason if isinstance(reason, BaseException) else inner
    return _short(f"{type(cause).__name__}: {cause}")


def _retry_after(resp: requests.Response) -> float | None:
    # Only the delay-seconds form: an HTTP-date needs a trustworthy clock on both ends.
    value = resp.headers.get("Retry-After", "").strip()
    try:
        seconds = float(value)
    except ValueError:
        return None
    if seconds != seconds or seconds < 0:
        return None
    return min(seconds, RETRY_AFTER_CAP)


def _hint(status: int) -> str:
    if status in (401, 403):
        return " (check the credentials in [source.http] headers)"
    if status == 404:
        return " (check the source's location and paging settings)"
    return ""


def _snippet(resp: requests.Response) -> str:
    text = _short(resp.text.strip(), 200)
    return f"; the server said: {text}" if text else ""


def _short(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _json(resp: requests.Response, page_no: int) -> Any:
    try:
        return json.loads(resp.content)
    except (ValueError, UnicodeDecodeError) as exc:
        kind = resp.headers.get("Content-Type", "no content type")
        raise SourceError(_shown(resp.url), f"page {page_no}: not valid JSON ({exc}; "
                          f"{kind}){_snippet(resp)}") from None


def _lookup(body: Any, path: str) -> Any:
    """The value at dotted `path` in `body` ('' = the body), or _MISSING."""
    current = body
    for part in path.split(".") if path else []:
        if isinstance(current, dict) and part in current:
            current = current[part]
        elif isinstance(current, list) and part.isdigit() and int(part) < len(current):
            current = current[int(part)]
        else:
            return _MISSING
    return current


def _records(body: Any, path: str, url: str, page_no: int) -> list[dict[str, Any]]:
    found = _lookup(body, path)
    where = f"at {path!r}" if path else "as the body"
    if found is _MISSING or not isinstance(found, list):
        if found is _MISSING:
            problem = f"no list of records {where}"
        else:
            problem = f"the value {where} is a {type(found).__name__}, not a list of records"
        raise SourceError(_shown(url), f"page {page_no}: {problem} (set [source.http] records "
                          f"to the dotted path of the list); {_keys_along(body, path)}")
    for i, rec in enumerate(found, start=1):
        if not isinstance(rec, dict):
            raise SourceError(_shown(url), f"page {page_no}: record {i} {where} is a "
                              f"{type(rec).__name__}, expected a JSON object")
    return found


def _keys_along(body: Any, path: str) -> str:
    """Describe the keys at the deepest point of `path` that exists, to show what to use."""
    current, reached = body, []
    for part in path.split(".") if path else []:
        if isinstance(current, dict) and part in current:
            current = current[part]
            reached.append(part)
        else:
            break
    label = f"{'.'.join(reached)!r}" if reached else "the body"
    if isinstance(current, dict):
        keys = ", ".join(repr(k) for k in list(current)[:40])
        return f"{label} has keys: {keys or '(none)'}"
    return f"{label} is a {type(current).__name__}"


def _flatten(record: dict[str, Any], prefix: str = "") -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for key, value in record.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_flatten(value, f"{name}."))
        elif isinstance(value, list):
            out[name] = json.dumps(value, ensure_ascii=False)
        else:
            out[name] = _text_value(value)
    return out


def _max_watermark(rows: list[dict[str, str | None]], cfg: SourceConfig, columns: list[str],
                   incoming: str | None) -> str | None:
    field = cfg.watermark or ""
    if field not in columns:
        have = ", ".join(repr(c) for c in columns[:40])
        raise SourceError(cfg.location, f"watermark field {field!r} is in none of the "
                          f"records; they have: {have}")
    values = [v for row in rows if (v := row.get(field)) is not None]
    if not values:
        return incoming
    numbers = [_number(v) for v in values]
    if all(n is not None for n in numbers):
        # Decimal keeps 64-bit ids exact, where float would round them.
        return max(zip(numbers, values, strict=True), key=lambda nv: nv[0])[1]
    return max(values)


def _number(text: str) -> Decimal | None:
    try:
        value = Decimal(text.strip())
    except InvalidOperation:
        return None
    return value if value.is_finite() else None


def _shown(url: str) -> str:
    """`url` for messages: passwords and query values with secret-looking names masked."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        creds, _, host = netloc.rpartition("@")
        user = creds.split(":", 1)[0]
        netloc = f"{user}:***@{host}" if ":" in creds else netloc
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        query = urlencode([(k, "***" if _SECRET_NAME.search(k) else v) for k, v in pairs],
                          safe="*:,/")
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))
