"""The http_json adapter against a real local HTTP server (no mocked requests).

One ThreadingHTTPServer serves the module; each test installs its own handler function and
reads back the requests the server saw.
"""

from __future__ import annotations

import datetime as dt
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import pytest
from sqlalchemy import Engine, func, insert, select

from etl import http_source
from etl.config import SourceConfig
from etl.http_source import read_http_json
from etl.run import run_source
from etl.sources import RawBatch, SourceError, TransientSourceError
from queries import schema


@dataclass
class Seen:
    """One request as the server received it."""

    path: str
    query: dict[str, str]
    headers: dict[str, str]


@dataclass
class Reply:
    """What the handler function answers: a JSON-able body, or raw bytes."""

    body: Any = None
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    raw: bytes | None = None


Handle = Callable[[Seen, int], Reply]


class FakeApi:
    """Shared, per-test switchable behaviour of the server."""

    def __init__(self) -> None:
        self.base = ""
        self.seen: list[Seen] = []
        self.handle: Handle = lambda req, n: Reply({"data": []})
        self.lock = threading.Lock()

    def reset(self) -> None:
        with self.lock:
            self.seen = []
        self.handle = lambda req, n: Reply({"data": []})


class _Handler(BaseHTTPRequestHandler):
    api: FakeApi

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        req = Seen(parts.path, dict(parse_qsl(parts.query, keep_blank_values=True)),
                   {k.lower(): v for k, v in self.headers.items()})
        with self.api.lock:
            self.api.seen.append(req)
            n = len(self.api.seen)
        reply = self.api.handle(req, n)
        data = reply.raw if reply.raw is not None else json.dumps(reply.body).encode()
        try:
            self.send_response(reply.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)
        except OSError:
            pass  # the client gave up (timeout test); nothing left to tell it

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # broken pipes from clients that timed out are expected here


@pytest.fixture(scope="module")
def _server() -> Iterator[FakeApi]:
    api = FakeApi()
    handler = type("Handler", (_Handler,), {"api": api})
    server = _Server(("127.0.0.1", 0), handler)
    api.base = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield api
    server.shutdown()
    server.server_close()


@pytest.fixture
def api(_server: FakeApi) -> FakeApi:
    """The running fake API, reset to an empty export."""
    _server.reset()
    return _server


def make_cfg(location: str, *, watermark: str | None = None, **http: Any) -> SourceConfig:
    """A survey source on the http_json adapter (columns only matter for loading)."""
    http.setdefault("backoff", 0.01)
    return SourceConfig(
        name="api", kind="survey", adapter="http_json", location=location, watermark=watermark,
        columns={"response_id": "id", "submitted_at": "submitted", "org_unit_id": "store"},
        http=http,
    )


def read_one(cfg: SourceConfig, watermark: str | None = None) -> RawBatch:
    batches = list(read_http_json(cfg, watermark))
    assert len(batches) == 1
    return batches[0]


def rows_of(batch: RawBatch) -> list[dict[str, Any]]:
    return batch.frame.to_dict("records")


def paged(records: list[dict[str, Any]], size: int, since: str = "updated_since",
          field_name: str = "updated_at") -> Handle:
    """A handler serving `records` in pages of `size` with relative next links, filtered
    to `field_name > since` when the since parameter is sent."""

    def handle(req: Seen, n: int) -> Reply:
        chosen = records
        if since in req.query:
            chosen = [r for r in records if r[field_name] > req.query[since]]
        page = int(req.query.get("page", "1"))
        data = chosen[(page - 1) * size : page * size]
        more = page * size < len(chosen)
        link = "?" + urlencode({**req.query, "page": page + 1}) if more else None
        return Reply({"data": data, "links": {"next": link}})

    return handle


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- paging -------------------------------------------------------------------------------


def test_next_links_relative_and_absolute_flatten_nested(api: FakeApi) -> None:
    pages = {
        "/p1": {"result": {"items": [
            {"id": 1, "customer": {"id": "C1", "tier": {"name": "gold"}}, "score": 4.0,
             "ok": True, "tags": ["a", "b"], "note": None},
            {"id": 2, "customer": {"id": "C2"}, "score": 3.5},
        ]}, "paging": {"next": "p2?x=1"}},
        "/p2": {"result": {"items": [{"id": 3, "extra": "é"}]},
                "paging": {"next": f"{api.base}/p3"}},
        "/p3": {"result": {"items": [{"id": 4, "ok": False, "customer": {"id": None}}]},
                "paging": {"next": None}},
    }
    api.handle = lambda req, n: Reply(pages[req.path])
    cfg = make_cfg(api.base + "/p1", records="result.items", next="paging.next")

    batch = read_one(cfg)

    assert [(s.path, s.query) for s in api.seen] == [("/p1", {}), ("/p2", {"x": "1"}),
                                                      ("/p3", {})]
    assert batch.origin == api.base + "/p1"
    assert batch.lines == [1, 2, 3, 4]
    assert batch.watermark is None
    assert list(batch.frame.columns) == ["id", "customer.id", "customer.tier.name", "score",
                                         "ok", "tags", "note", "extra"]
    assert {str(dtype) for dtype in batch.frame.dtypes} == {"object"}
    assert rows_of(batch) == [
        {"id": "1", "customer.id": "C1", "customer.tier.name": "gold", "score": "4",
         "ok": "true", "tags": '["a", "b"]', "note": None, "extra": None},
        {"id": "2", "customer.id": "C2", "customer.tier.name": None, "score": "3.5",
         "ok": None, "tags": None, "note": None, "extra": None},
        {"id": "3", "customer.id": None, "customer.tier.name": None, "score": None,
         "ok": None, "tags": None, "note": None, "extra": "é"},
        {"id": "4", "customer.id": None, "customer.tier.name": None, "score": None,
         "ok": "false", "tags": None, "note": None, "extra": None},
    ]


def test_body_is_the_list_single_page(api: FakeApi) -> None:
    api.handle = lambda req, n: Reply([{"id": "a"}, {"id": "b"}])
    batch = read_one(make_cfg(api.base + "/all", params={"limit": 500, "active": True}))
    assert rows_of(batch) == [{"id": "a"}, {"id": "b"}]
    assert [s.query for s in api.seen] == [{"limit": "500", "active": "true"}]


def test_cursor_paging(api: FakeApi) -> None:
    pages = {
        None: ([{"id": 1}, {"id": 2}], "c2"),
        "c2": ([{"id": 3}], 17),
        "17": ([{"id": 4}], ""),
    }

    def handle(req: Seen, n: int) -> Reply:
        data, cursor = pages[req.query.get("after")]
        return Reply({"rows": data, "meta": {"next_cursor": cursor}})

    api.handle = handle
    cfg = make_cfg(api.base + "/export?fmt=json", records="rows", cursor="meta.next_cursor",
                   cursor_param="after", params={"limit": 2})
    batch = read_one(cfg)
    assert [r["id"] for r in rows_of(batch)] == ["1", "2", "3", "4"]
    assert batch.lines == [1, 2, 3, 4]
    assert [s.query for s in api.seen] == [
        {"fmt": "json", "limit": "2"},
        {"fmt": "json", "limit": "2", "after": "c2"},
        {"fmt": "json", "limit": "2", "after": "17"},
    ]


def test_incremental_since_param_and_watermark(api: FakeApi) -> None:
    records = [
        {"id": "r1", "updated_at": "2024-05-01T10:00:00Z"},
        {"id": "r2", "updated_at": "2024-05-03T08:00:00Z"},
        {"id": "r3", "updated_at": "2024-05-02T09:30:00Z"},
    ]
    api.handle = paged(records, 2)
    cfg = make_cfg(api.base + "/r", watermark="updated_at", records="data", next="links.next",
                   since_param="updated_since")

    first = read_one(cfg, None)
    assert [r["id"] for r in rows_of(first)] == ["r1", "r2", "r3"]
    assert first.watermark == "2024-05-03T08:00:00Z"
    assert [s.query for s in api.seen] == [{}, {"page": "2"}]

    records.append({"id": "r4", "updated_at": "2024-05-04T00:00:00Z"})
    api.seen.clear()
    second = read_one(cfg, first.watermark)
    assert [s.query for s in api.seen] == [{"updated_since": "2024-05-03T08:00:00Z"}]
    assert rows_of(second) == [{"id": "r4", "updated_at": "2024-05-04T00:00:00Z"}]
    assert second.watermark == "2024-05-04T00:00:00Z"

    # Nothing newer: no batch, so the caller keeps its stored watermark.
    api.seen.clear()
    assert list(read_http_json(cfg, second.watermark)) == []
    assert api.seen[0].query == {"updated_since": "2024-05-04T00:00:00Z"}


def test_watermark_numeric_order_and_nulls(api: FakeApi) -> None:
    api.handle = lambda req, n: Reply(
        {"data": [{"seq": 9}, {"seq": None}, {"seq": 100}, {"seq": 10.0}]})
    batch = read_one(make_cfg(api.base, watermark="seq", records="data"), "5")
    assert batch.watermark == "100"  # text order would say "9"

    api.handle = lambda req, n: Reply({"data": [{"seq": None}]})
    assert read_one(make_cfg(api.base, watermark="seq", records="data"), "5").watermark == "5"

    api.handle = lambda req, n: Reply({"data": [{"id": 1, "ts": "x"}]})
    with pytest.raises(SourceError, match=r"watermark field 'seq' is in none of the records; "
                       r"they have: 'id', 'ts'"):
        list(read_http_json(make_cfg(api.base, watermark="seq", records="data"), None))


def test_empty_export_yields_no_batch(api: FakeApi) -> None:
    api.handle = lambda req, n: Reply({"data": [], "links": {"next": None}})
    cfg = make_cfg(api.base, watermark="updated_at", records="data", next="links.next")
    assert list(read_http_json(cfg, "2024-01-01")) == []
    assert len(api.seen) == 1


def test_link_loop_and_max_pages(api: FakeApi) -> None:
    api.handle = lambda req, n: Reply({"data": [{"id": n}], "next": "/same"})
    with pytest.raises(SourceError, match="links back to a page already read"):
        list(read_http_json(make_cfg(api.base + "/same", records="data", next="next"), None))
    assert len(api.seen) == 1

    api.seen.clear()
    api.handle = lambda req, n: Reply({"data": [{"id": n}], "next": f"/p{n + 1}"})
    with pytest.raises(SourceError, match=r"server kept sending next pages after 3 pages"):
        list(read_http_json(make_cfg(api.base + "/p1", records="data", next="next",
                                     max_pages=3), None))
    assert len(api.seen) == 3

    api.seen.clear()
    api.handle = lambda req, n: Reply({"data": [], "c": "again"})
    with pytest.raises(SourceError, match="repeats cursor 'again'"):
        list(read_http_json(make_cfg(api.base, records="data", cursor="c"), None))
    assert len(api.seen) == 2


# --- retries and failures -----------------------------------------------------------------


def test_retries_5xx_then_success(api: FakeApi) -> None:
    api.handle = lambda req, n: Reply({"error": "boom"}, 500) if n <= 2 else Reply(
        {"data": [{"id": "ok"}]})
    batch = read_one(make_cfg(api.base, records="data", retries=2))
    assert rows_of(batch) == [{"id": "ok"}]
    assert len(api.seen) == 3


def test_always_503_is_transient_after_all_attempts(api: FakeApi) -> None:
    api.handle = lambda req, n: Reply({"error": "down"}, 503)
    with pytest.raises(TransientSourceError) as info:
        list(read_http_json(make_cfg(api.base + "/x", records="data", retries=2), None))
    assert len(api.seen) == 3
    assert info.value.origin == api.base + "/x"
    assert info.value.reason == ("page 1: 3 attempt(s) failed (1 + 2 retries); last error: "
                                 "HTTP 503 Service Unavailable")


def test_backoff_doubles_and_retry_after_is_capped(api: FakeApi,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    delays: list[float] = []
    monkeypatch.setattr(http_source, "_sleep", delays.append)
    replies = [Reply(None, 500), Reply(None, 429, {"Retry-After": "120"}),
               Reply(None, 502), Reply(None, 503, {"Retry-After": "2"}),
               Reply({"data": [{"id": 1}]})]
    api.handle = lambda req, n: replies[n - 1]
    batch = read_one(make_cfg(api.base, records="data", retries=4, backoff=0.5))
    assert rows_of(batch) == [{"id": "1"}]
    assert delays == [0.5, 60.0, 2.0, 2.0]


def test_timeouts_are_retried(api: FakeApi) -> None:
    def slow(req: Seen, n: int) -> Reply:
        time.sleep(1)
        return Reply({"data": []})

    api.handle = slow
    started = time.monotonic()
    with pytest.raises(TransientSourceError, match=r"2 attempt\(s\) failed .*timeout"):
        list(read_http_json(make_cfg(api.base, records="data", timeout=0.2, retries=1), None))
    assert time.monotonic() - started < 0.9
    assert len(api.seen) == 2

    api.seen.clear()

    def slow_first(req: Seen, n: int) -> Reply:
        if n == 1:
            time.sleep(1)
        return Reply({"data": [{"id": "late"}]})

    api.handle = slow_first
    batch = read_one(make_cfg(api.base, records="data", timeout=0.2, retries=1))
    assert rows_of(batch) == [{"id": "late"}]
    assert len(api.seen) == 2


def test_connection_refused_is_transient() -> None:
    url = f"http://127.0.0.1:{closed_port()}/x?api_key=hush"
    with pytest.raises(TransientSourceError, match=r"2 attempt\(s\) failed .*connection failed"
                       r" \(NewConnectionError: .*Connection refused") as info:
        list(read_http_json(make_cfg(url, retries=1), None))
    assert "hush" not in str(info.value)


def test_unusable_next_link_is_not_retried(api: FakeApi) -> None:
    api.handle = lambda req, n: Reply({"data": [], "next": "ftp://files.example/p2"})
    with pytest.raises(SourceError, match=r"page 2: request failed .*InvalidSchema") as info:
        list(read_http_json(make_cfg(api.base, records="data", next="next"), None))
    assert not isinstance(info.value, TransientSourceError)
    assert len(api.seen) == 1


def test_404_is_a_config_error_not_retried(api: FakeApi) -> None:
    api.handle = lambda req, n: Reply({"detail": "no such export"}, 404)
    with pytest.raises(SourceError) as info:
        list(read_http_json(make_cfg(api.base + "/nope?api_key=hush&x=1", records="data"),
                            None))
    assert not isinstance(info.value, TransientSourceError)
    assert len(api.seen) == 1
    assert info.value.origin == api.base + "/nope?api_key=***&x=1"
    assert info.value.reason == ("page 1: HTTP 404 Not Found (check the source's location and "
                                 "paging settings); the server said: "
                                 '{"detail": "no such export"}')


def test_invalid_json_and_missing_records_path(api: FakeApi) -> None:
    api.handle = lambda req, n: Reply(raw=b"<html>login</html>")
    with pytest.raises(SourceError, match=r"page 1: not valid JSON .*<html>login</html>"):
        list(read_http_json(make_cfg(api.base, records="data"), None))

    api.handle = lambda req, n: Reply({"items": [], "meta": {}})
    with pytest.raises(SourceError) as info:
        list(read_http_json(make_cfg(api.base, records="data"), None))
    assert "no list of records at 'data'" in info.value.reason
    assert "the body has keys: 'items', 'meta'" in info.value.reason

    api.handle = lambda req, n: Reply({"data": {"rows": []}})
    with pytest.raises(SourceError) as info:
        list(read_http_json(make_cfg(api.base, records="data.items"), None))
    assert "no list of records at 'data.items'" in info.value.reason
    assert "'data' has keys: 'rows'" in info.value.reason

    with pytest.raises(SourceError, match="the value at 'data' is a dict, not a list"):
        list(read_http_json(make_cfg(api.base, records="data"), None))

    api.handle = lambda req, n: Reply({"data": [1, 2]})
    with pytest.raises(SourceError, match="record 1 at 'data' is a int, expected a JSON object"):
        list(read_http_json(make_cfg(api.base, records="data"), None))


def test_header_env_substitution(api: FakeApi, monkeypatch: pytest.MonkeyPatch) -> None:
    def handle(req: Seen, n: int) -> Reply:
        if req.headers.get("authorization") != "Bearer s3cret-token":
            return Reply({"error": "unauthorized"}, 401)
        return Reply({"data": [{"id": "x"}]})

    api.handle = handle
    cfg = make_cfg(api.base, records="data",
                   headers={"Authorization": "Bearer ${CX_TEST_TOKEN}", "X-Team": "cx"})
    monkeypatch.setenv("CX_TEST_TOKEN", "s3cret-token")
    assert rows_of(read_one(cfg)) == [{"id": "x"}]
    assert api.seen[0].headers["x-team"] == "cx"

    monkeypatch.setenv("CX_TEST_TOKEN", "wrong-token")
    with pytest.raises(SourceError) as info:
        list(read_http_json(cfg, None))
    assert "HTTP 401" in str(info.value) and "credentials" in str(info.value)
    assert "wrong-token" not in str(info.value)

    monkeypatch.delenv("CX_TEST_TOKEN")
    api.seen.clear()
    with pytest.raises(SourceError, match=r"header 'Authorization' uses \$\{CX_TEST_TOKEN\} but "
                       "the environment variable CX_TEST_TOKEN is not set"):
        list(read_http_json(cfg, None))
    assert api.seen == []


# --- end to end through the ETL -----------------------------------------------------------


def _survey_rows(engine: Engine) -> list[tuple[Any, ...]]:
    t = schema.survey_response
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(
            select(t.c.response_id, t.c.nps, t.c.csat).order_by(t.c.response_id))]


def _count(engine: Engine, table: Any) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(table)).scalar_one()


def test_end_to_end_run_source(api: FakeApi, engine: Engine, tmp_path: Path) -> None:
    stamp = dt.datetime(2024, 1, 1)
    with engine.begin() as conn:
        conn.execute(insert(schema.org_unit), [
            {"id": "ACME", "name": "Acme", "kind": "company", "parent_id": None,
             "source": "org", "loaded_at": stamp},
            {"id": "S01", "name": "Store 1", "kind": "store", "parent_id": "ACME",
             "source": "org", "loaded_at": stamp},
        ])

    def rec(rid: str, nps: int, csat: int | None, updated: str) -> dict[str, Any]:
        return {"id": rid, "submitted": "2024-05-01 09:00", "store": "S01",
                "scores": {"nps": nps, "csat": csat}, "updated_at": updated}

    records = [
        rec("R1", 9, 5, "2024-05-01T10:00:00Z"),
        rec("R2", 7, 4, "2024-05-01T11:00:00Z"),
        rec("R3", 11, 3, "2024-05-01T12:00:00Z"),
        rec("R4", 10, None, "2024-05-01T13:00:00Z"),
        rec("R5", 0, 2, "2024-05-01T14:00:00Z"),
    ]
    serve = paged(records, 2)
    down = {"on": False}
    api.handle = lambda req, n: Reply({"error": "down"}, 503) if down["on"] else serve(req, n)

    cfg = SourceConfig(**{
        "name": "survey_api", "kind": "survey", "adapter": "http_json",
        "location": api.base + "/responses", "watermark": "updated_at",
        "http": {"records": "data", "next": "links.next", "since_param": "updated_since",
                 "retries": 1, "backoff": 0.01},
        "columns": {"response_id": "id", "submitted_at": "submitted", "org_unit_id": "store",
                    "nps": "scores.nps", "csat": "scores.csat"},
    }, base_dir=tmp_path)

    first = run_source(engine, cfg)
    # R3's NPS 11 is dropped and recorded; its CSAT loads. 1 of 5 rows is above 5%: warning.
    assert first.status == "warning" and "1 of 5 rows (20.0%)" in first.error
    assert (first.read, first.inserted, first.updated, first.quarantined, first.partial) == (
        5, 5, 0, 0, 1)
    assert first.watermark == "2024-05-01T14:00:00Z"
    assert [s.query for s in api.seen] == [{}, {"page": "2"}, {"page": "3"}]
    assert _survey_rows(engine) == [("R1", 9, 5), ("R2", 7, 4), ("R3", None, 3),
                                    ("R4", 10, None), ("R5", 0, 2)]
    q = schema.quarantine
    with engine.connect() as conn:
        bad = [tuple(r) for r in conn.execute(
            select(q.c.source, q.c.file, q.c.line, q.c.field, q.c.value))]
        stored = conn.execute(select(schema.source_state.c.watermark)).scalars().all()
    assert bad == [("survey_api", api.base + "/responses", 3, "nps", "11")]
    assert stored == ["2024-05-01T14:00:00Z"]

    api.seen.clear()
    second = run_source(engine, cfg)
    assert (second.status, second.read, second.inserted, second.updated) == ("success", 0, 0, 0)
    assert [s.query for s in api.seen] == [{"updated_since": "2024-05-01T14:00:00Z"}]

    api.seen.clear()
    down["on"] = True
    failed = run_source(engine, cfg)
    assert failed.status == "failed"
    assert failed.error is not None and "2 attempt(s) failed" in failed.error
    assert "HTTP 503" in failed.error
    assert len(api.seen) == 2
    assert len(_survey_rows(engine)) == 5
    assert _count(engine, q) == 1

    down["on"] = False
    records.append(rec("R6", 8, 4, "2024-05-02T08:00:00Z"))
    records[1] = rec("R2", 7, 5, "2024-05-02T09:00:00Z")  # corrected at the source
    api.seen.clear()
    back = run_source(engine, cfg)
    assert (back.status, back.read, back.inserted, back.updated) == ("success", 2, 1, 1)
    assert [s.query for s in api.seen] == [{"updated_since": "2024-05-01T14:00:00Z"}]
    assert back.watermark == "2024-05-02T09:00:00Z"
    assert _survey_rows(engine) == [("R1", 9, 5), ("R2", 7, 5), ("R3", None, 3), ("R4", 10, None),
                                    ("R5", 0, 2), ("R6", 8, 4)]
    with engine.connect() as conn:
        runs = conn.execute(select(schema.etl_run.c.status, schema.etl_run.c.watermark)
                            .order_by(schema.etl_run.c.id)).all()
    assert [tuple(r) for r in runs] == [("warning", "2024-05-01T14:00:00Z"), ("success", None),
                                        ("failed", None), ("success", "2024-05-02T09:00:00Z")]
