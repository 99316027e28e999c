"""Call a served Dash app's callbacks over plain HTTP, the way its browser client does.

An attacker does not need the browser: any JSON can be posted to `/_dash-update-component`.
These helpers build that request from the app's own `/_dash-dependencies`, so tests can send
exactly what a crafted URL or a hand-made request would.
"""

from __future__ import annotations

import contextlib
import http.client
import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit


@dataclass(frozen=True)
class Client:
    """A served app and the headers of a signed-in session (cookie and CSRF token)."""

    base: str
    headers: dict[str, str]


def signed_in(base: str, who: str = "admin") -> Client:
    """A client signed in through the real sign-in form as the conftest user `who`."""
    from tests.conftest import sign_in

    http = sign_in(base, who)
    cookie = "; ".join(f"{c.name}={c.value}" for c in http.cookies)
    return Client(base, {"Cookie": cookie, "X-CSRFToken": http.headers["X-CSRFToken"],
                         "Origin": base, "Referer": base + "/"})


@dataclass
class Reply:
    """Status and body of one HTTP reply (body parsed as JSON when it is JSON)."""

    status: int
    body: Any
    text: str


def request(url: str, data: bytes | None = None, *, headers: dict[str, str] | None = None,
            timeout: float = 60) -> Reply:
    """GET (or POST `data`) and return the reply whatever its status.

    A server may answer a too-large body before reading it all and close the connection:
    the reply is still read after the broken send.
    """
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    try:
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            conn.request("POST" if data is not None else "GET",
                         parts.path + (f"?{parts.query}" if parts.query else ""),
                         body=data, headers=headers or {})
        resp = conn.getresponse()
        status, raw = resp.status, resp.read()
    finally:
        conn.close()
    text = raw.decode("utf-8", "replace")
    try:
        body = json.loads(text)
    except ValueError:
        body = None
    return Reply(status, body, text)


def _outputs(output: str) -> list[dict[str, str]]:
    parts = output[2:-2].split("...") if output.startswith("..") else [output]
    out = []
    for part in parts:
        ident, _, prop = part.rpartition(".")
        out.append({"id": ident, "property": prop.split("@")[0]})
    return out


def dependencies(client: Client) -> list[dict]:
    """The app's callback declarations."""
    return request(client.base + "/_dash-dependencies", headers=client.headers).body


def post(client: Client, body: object) -> Reply:
    """POST a callback request body as the browser client does."""
    return request(client.base + "/_dash-update-component", json.dumps(body).encode(),
                   headers={**client.headers, "Content-Type": "application/json"})


def call(client: Client, inputs: dict[str, Any], state: dict[str, Any] | None = None, *,
         output_starts: str | None = None) -> Reply:
    """Run the callback whose inputs are exactly `inputs` ('id.prop' -> value), optionally
    the one whose output string starts with `output_starts` when several share inputs."""
    state = state or {}
    wanted = set(inputs)
    for dep in dependencies(client):
        ids = {f"{i['id']}.{i['property']}" for i in dep["inputs"]}
        if ids != wanted or (output_starts and not dep["output"].lstrip(".").startswith(
                output_starts)):
            continue
        body = {
            "output": dep["output"],
            "outputs": _outputs(dep["output"]) if dep["output"].startswith("..")
            else _outputs(dep["output"])[0],
            "inputs": [{"id": i["id"], "property": i["property"],
                        "value": inputs[f"{i['id']}.{i['property']}"]} for i in dep["inputs"]],
            "changedPropIds": list(inputs),
            "state": [{"id": s["id"], "property": s["property"],
                       "value": state.get(f"{s['id']}.{s['property']}")} for s in dep["state"]],
        }
        return post(client, body)
    raise LookupError(f"no callback with inputs {sorted(wanted)} ({output_starts})")


def route(client: Client, path: str, search: str) -> Reply:
    """The page router's reply for `path` + `search` (what opening that URL renders)."""
    return call(client, {"_pages_location.pathname": path, "_pages_location.search": search})


def find_store(layout: Any, store_id: str) -> Any:
    """The `data` of the dcc.Store `store_id` inside a serialised layout."""
    if isinstance(layout, dict):
        props = layout.get("props", {})
        if props.get("id") == store_id and layout.get("type") == "Store":
            return props.get("data")
        for value in [*props.values(), *layout.values()]:
            found = find_store(value, store_id)
            if found is not None:
                return found
    elif isinstance(layout, list):
        for item in layout:
            found = find_store(item, store_id)
            if found is not None:
                return found
    return None
