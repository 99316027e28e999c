"""The Cases page and the overview's follow-up line on the demo data (whose recent detractors
the ETL turned into cases when it loaded them), and a store manager seeing only her store's
cases through the real server."""

from __future__ import annotations

import datetime as dt
import json
import sys

from sqlalchemy import func, select

from queries import schema
from queries.cases import case_counts, cases
from queries.kpis import Filters
from tests.conftest import sign_in
from tests.test_access import dash_call


def _now() -> dt.datetime:
    return dt.datetime.now().replace(second=0, microsecond=0)


def test_the_demo_load_opened_cases(demo_engine) -> None:
    with demo_engine.connect() as conn:
        n = conn.execute(select(func.count()).select_from(schema.follow_up_case)).scalar_one()
    assert n > 0


def test_cases_page_and_overview_line_are_the_queries(in_app, dash_app, demo_engine) -> None:
    page = sys.modules["pages.cases"]
    table, options = in_app(page.render, {"unit": "R-WEST"}, 0)
    with demo_engine.connect() as conn:
        want = cases(conn, filters=Filters(unit="R-WEST"), as_of=_now())
        counts = case_counts(conn, filters=Filters(unit="R-WEST"), as_of=_now())
    assert not want.empty
    rows = table.children[1].children
    assert [r.__dict__["data-case"] for r in rows] == [str(int(i)) for i in want["id"]]
    assert [o["value"] for o in options] == [int(i) for i in want["id"]]
    overview = sys.modules["pages.overview"]
    line = in_app(overview.render_cases, {"unit": "R-WEST"})
    assert f"{counts.open:,} open" in str(line) and f"{counts.overdue:,} overdue" in str(line)


def test_a_store_manager_sees_only_her_stores_cases(served_demo: str, demo_engine) -> None:
    http = sign_in(served_demo, "store")
    resp = dash_call(http, served_demo, [("cases-table", "children"), ("cases-case", "options")],
                     [{"id": "cases-state", "property": "data", "value": {}},
                      {"id": "cases-version", "property": "data", "value": 0}],
                     changed=["cases-state.data"])
    assert resp.status_code == 200
    shown = [o["value"] for o in json.loads(resp.text)["response"]["cases-case"]["options"]]
    with demo_engine.connect() as conn:
        mine = cases(conn, filters=Filters(unit="S01"), as_of=_now())
        everyone = cases(conn, filters=Filters(), as_of=_now())
    assert shown == [int(i) for i in mine["id"]]
    assert len(everyone) > len(mine)
    forged = dash_call(http, served_demo, [("cases-table", "children"), ("cases-case", "options")],
                       [{"id": "cases-state", "property": "data", "value": {"unit": "R-WEST"}},
                        {"id": "cases-version", "property": "data", "value": 0}],
                       changed=["cases-state.data"])
    assert forged.status_code == 403
