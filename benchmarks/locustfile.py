"""Locust users of the served dashboard: sign in, open pages, change filters.

Run by `benchmarks/load_bench.py` as a subprocess (locust's gevent monkey-patches whatever
imports it, so the harness never imports this file). The flows file (`CX_LOAD_FLOWS`, JSON,
written by load_bench) holds:

- `users`: the people to sign in as, each with the units they may open;
- `pages`: for each page path, the callback requests (POST /_dash-update-component bodies)
  a real Chromium sent while opening that page on `template_unit` and `template_period`;
- `periods`: months a person may switch to.

Each simulated user signs in through the real sign-in form (CSRF field, then the
`_csrf_token` cookie echoed as X-CSRFToken, as Dash does), then either opens a page (the
HTML, `_dash-layout`, `_dash-dependencies`, then the recorded callbacks with its own unit
and period swapped in) or changes the unit or period on the page it is on (the callbacks
again, without the page load). A browser sends a page's callbacks a few at a time; here
they go one after another, which is the slower, more conservative order.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import re
from typing import Any

from locust import between, task
from locust.contrib.fasthttp import FastHttpUser

FLOWS: dict[str, Any] = json.loads(open(os.environ["CX_LOAD_FLOWS"]).read())  # noqa: SIM115
THINK = [float(x) for x in os.environ.get("CX_LOAD_THINK", "2,8").split(",")]
_next_user = itertools.count()
_CSRF_FIELD = re.compile(r'name="csrf_token" value="([^"]+)"')


def swap(value: Any, old_unit: str, new_unit: str | None, old_period: str,
         new_period: str) -> Any:
    """`value` (a parsed callback body) with the recorded unit and period replaced: a
    string equal to them, or a `unit=` / `period=` parameter of a URL query. `new_unit`
    None means the whole scope (the parameter is dropped)."""
    if isinstance(value, dict):
        # A view state holds only strings: the whole scope is the key left out.
        return {k: swap(v, old_unit, new_unit, old_period, new_period)
                for k, v in value.items() if not (new_unit is None and v == old_unit)}
    if isinstance(value, list):
        return [swap(v, old_unit, new_unit, old_period, new_period) for v in value]
    if isinstance(value, str):
        if value == old_unit:
            return new_unit
        if value == old_period:
            return new_period
        if "unit=" in value or "period=" in value:
            if new_unit is None:
                value = re.sub(rf"[?&]unit={re.escape(old_unit)}(?=&|$)", "", value)
                if value.startswith("&"):
                    value = "?" + value[1:]
                elif "?" not in value and "&" in value:
                    value = value.replace("&", "?", 1)
            else:
                value = re.sub(rf"(unit=){re.escape(old_unit)}(?=&|$)", rf"\g<1>{new_unit}",
                               value)
            value = re.sub(rf"(period=){re.escape(old_period)}(?=&|$)",
                           rf"\g<1>{new_period}", value)
        return value
    return value


def _name(body: dict) -> str:
    """A short stats name per callback: its first output id."""
    out = body.get("output", "")
    first = out.lstrip(".").split("...")[0].split("@")[0]
    return "cb " + first[:60]


class DashboardUser(FastHttpUser):
    """One person: signs in once, then opens pages and changes filters."""

    wait_time = between(*THINK)
    network_timeout = 120.0
    connection_timeout = 30.0

    def on_start(self) -> None:
        """Sign in through the form, then pick up the CSRF cookie from the first page."""
        self.me = FLOWS["users"][next(_next_user) % len(FLOWS["users"])]
        self.page = "/"
        self.unit: str | None = None
        self.period = FLOWS["template_period"]
        form = self.client.get("/login", name="GET /login")
        token = _CSRF_FIELD.search(form.text or "")
        with self.client.post("/login", name="POST /login", allow_redirects=False,
                              data={"csrf_token": token.group(1) if token else "",
                                    "email": self.me["email"],
                                    "password": self.me["password"], "next": "/"},
                              catch_response=True) as resp:
            if resp.status_code != 302:
                resp.failure(f"sign-in answered {resp.status_code}")
        self.open_page("/")

    def _headers(self) -> dict[str, str]:
        csrf = next((c.value for c in self.client.cookiejar if c.name == "_csrf_token"), "")
        base = self.host.rstrip("/")
        return {"X-CSRFToken": csrf, "Origin": base, "Referer": base + self.page,
                "Content-Type": "application/json"}

    def _search(self) -> str:
        # The order of the app's own links (period before unit): no re-render on load.
        parts = [f"period={self.period}"] + ([f"unit={self.unit}"] if self.unit else [])
        return "?" + "&".join(parts)

    def callbacks(self) -> None:
        """The page's recorded callbacks, with this user's unit and period."""
        headers = self._headers()
        for raw in FLOWS["pages"][self.page]:
            body = swap(json.loads(raw), FLOWS["template_unit"], self.unit,
                        FLOWS["template_period"], self.period)
            with self.client.post("/_dash-update-component", data=json.dumps(body),
                                  headers=headers, name=_name(body),
                                  catch_response=True) as resp:
                if resp.status_code not in (200, 204):
                    resp.failure(f"HTTP {resp.status_code}: {(resp.text or '')[:80]}")

    def open_page(self, path: str) -> None:
        """What a browser does on a full page load."""
        self.page = path
        self.client.get(path + self._search(), name="GET page")
        self.client.get("/_dash-layout", name="GET /_dash-layout")
        self.client.get("/_dash-dependencies", name="GET /_dash-dependencies")
        self.callbacks()

    def _pick_unit(self) -> str | None:
        units = self.me["units"]
        if self.me.get("whole_scope", False) and random.random() < 0.3:
            return None
        return random.choice(units)

    @task(3)
    def visit(self) -> None:
        """Open another page (a navbar click or a shared link)."""
        self.unit = self._pick_unit()
        self.open_page(random.choice(list(FLOWS["pages"])))

    @task(2)
    def change_filter(self) -> None:
        """Choose another unit or month on the page already open."""
        if random.random() < 0.6:
            self.unit = self._pick_unit()
        else:
            self.period = random.choice(FLOWS["periods"])
        self.callbacks()
