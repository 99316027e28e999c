"""Follow-up cases: the detractors (and CSAT 1-2 answers) to call back, for the managers who
own them. Managers see the cases of their units only (the read goes through the scope
gateway); executives and admins see every case.

Data: `queries.cases.cases` (opened by the ETL, `etl/cases.py`). Page state in the URL
besides the filters: `status=` (open, contacted or resolved only). A case's status and note
are changed with `reports.cases.update_case`, which refuses a case outside the person's scope;
each change is audited.
"""

from __future__ import annotations

import datetime as dt

import dash
import dash_bootstrap_components as dbc
import pandas as pd
from dash import Input, Output, State, callback, ctx, dcc, html, no_update

from auth import audit
from auth.web import current_principal
from dashboard import context
from dashboard.components.controls import toggle
from dashboard.components.download import downloadable, panel
from dashboard.data import cached
from dashboard.state import filters_of, parse_search, to_search
from queries.cases import STATUSES, cases
from reports.cases import CaseError, update_case

dash.register_page(__name__, path="/cases", name="Cases", title="Cases · CX dashboard",
                   order=5)

PREFIX = "cases"
STATUS_FILTERS = {"": "All", "open": "Open", "contacted": "Contacted", "resolved": "Resolved"}


def status_of(state: dict) -> str | None:
    """Only the cases of this status (None: all)."""
    value = (state or {}).get("status")
    return value if value in STATUSES else None


def as_of() -> dt.datetime:
    """Now, to the minute (so cached results are shared within a minute)."""
    return dt.datetime.now().replace(second=0, microsecond=0)


@downloadable("cases-table")
def cases_frame(state: dict) -> pd.DataFrame:
    """The cases shown: those due first first, resolved last."""
    return cached(cases, filters=filters_of(state or {}), as_of=as_of(),
                  status=status_of(state))


def layout(**query: str) -> html.Div:
    """The case list and the form that updates a case."""
    return html.Div([
        dcc.Store(id=f"{PREFIX}-state", data=query),
        dcc.Store(id=f"{PREFIX}-version", data=0),
        dbc.Row([
            dbc.Col(html.H1("Follow-up cases", className="h4 mb-0"), width="auto"),
            dbc.Col(toggle(f"{PREFIX}-status", STATUS_FILTERS, status_of(query) or ""),
                    width="auto", className="d-print-none"),
        ], className="align-items-center mb-2 g-2"),
        html.P("A detractor (NPS 0-6) or a CSAT 1-2 answer with a customer number or a "
               "comment opens a case for the store's manager, due after the SLA. Call back, "
               "then mark it contacted or resolved with a note.", className="text-muted small"),
        dbc.Card(dbc.CardBody(dbc.Row([
            dbc.Col([dbc.Label("Case", html_for=f"{PREFIX}-case"),
                     dcc.Dropdown(id=f"{PREFIX}-case", options=[])], md=3),
            dbc.Col([dbc.Label("Status", html_for=f"{PREFIX}-new-status"),
                     dcc.Dropdown(id=f"{PREFIX}-new-status", clearable=False, value="contacted",
                                  options=[{"label": s.capitalize(), "value": s}
                                           for s in STATUSES])], md=2),
            dbc.Col([dbc.Label("Note", html_for=f"{PREFIX}-note"),
                     dbc.Input(id=f"{PREFIX}-note", type="text", maxLength=2000)], md=5),
            dbc.Col(dbc.Button("Save", id=f"{PREFIX}-save", color="primary", size="sm"),
                    md="auto", className="align-self-end"),
            html.Div(id=f"{PREFIX}-feedback", className="mt-2"),
        ], className="g-2")), className="cx-panel mb-3 d-print-none"),
        panel("Cases", dcc.Loading(html.Div(id=f"{PREFIX}-table"), type="dot",
                                   delay_show=300), target="cases-table"),
    ])


def _row(r: pd.Series) -> html.Tr:
    score = " · ".join(x for x in (
        f"NPS {int(r['nps'])}" if not pd.isna(r["nps"]) else "",
        f"CSAT {int(r['csat'])}" if not pd.isna(r["csat"]) else "") if x)
    due = f"{pd.Timestamp(r['due_at']):%d %b %H:%M}"
    return html.Tr([
        html.Td(f"#{int(r['id'])}"), html.Td(r["unit_name"]),
        html.Td(r["status"] + (" · overdue" if r["overdue"] else ""),
                className="text-danger fw-semibold" if r["overdue"] else ""),
        html.Td(due), html.Td(score), html.Td(r["customer_id"] or ""),
        html.Td(r["comment"] or "", style={"maxWidth": "28rem"}),
        html.Td(r["note"] or ""), html.Td(r["owner_email"] or "no manager"),
    ], **{"data-case": str(int(r["id"]))})


@callback(
    Output(f"{PREFIX}-table", "children"),
    Output(f"{PREFIX}-case", "options"),
    Input(f"{PREFIX}-state", "data"),
    Input(f"{PREFIX}-version", "data"),
)
def render(state: dict, _version: int | None):
    """The cases of the view (inside the person's scope) and the case picker's options."""
    frame = cases_frame(state or {})
    options = [{"label": f"#{int(r.id)} {r.unit_name} ({r.status})", "value": int(r.id)}
               for r in frame.itertuples()]
    if frame.empty:
        return html.Div("No cases in this selection.", className="text-muted",
                        id=f"{PREFIX}-list"), options
    head = html.Thead(html.Tr([html.Th(h) for h in (
        "Case", "Unit", "Status", "Due", "Scores", "Customer", "Comment", "Note", "Owner")]))
    return dbc.Table([head, html.Tbody([_row(r) for _, r in frame.iterrows()])], size="sm",
                     hover=True, responsive=True, id=f"{PREFIX}-list"), options


def save_case(case_id: int, status: str | None, note: str | None) -> str:
    """Update a case as the signed-in person (inside their scope), audited."""
    who = current_principal()
    if who is None or who.kind != "user":
        raise CaseError("sign in to change a case")
    with context.engine().begin() as conn:
        update_case(conn, case_id, scope=who.scope, actor=who.email, status=status,
                    note=note)
        audit.record(conn, "case_update", actor=who.email, user_id=who.user_id,
                     target=f"case {case_id}", detail=f"status {status}")
    return f"Case #{case_id} is {status}."


@callback(
    Output(f"{PREFIX}-feedback", "children"),
    Output(f"{PREFIX}-version", "data"),
    Input(f"{PREFIX}-save", "n_clicks"),
    State(f"{PREFIX}-case", "value"), State(f"{PREFIX}-new-status", "value"),
    State(f"{PREFIX}-note", "value"), State(f"{PREFIX}-version", "data"),
    prevent_initial_call=True,
)
def save(_clicks, case_id, status, note, version):
    """Apply the form to the chosen case."""
    if case_id is None:
        return dbc.Alert("Choose a case first.", color="warning", className="py-1"), no_update
    try:
        message = save_case(int(case_id), status, note)
    except CaseError as exc:
        return dbc.Alert(str(exc), color="danger", className="py-1"), no_update
    return dbc.Alert(message, color="success", className="py-1"), (version or 0) + 1


@callback(
    Output("app-url", "search", allow_duplicate=True),
    Input(f"{PREFIX}-status", "value"),
    State("app-url", "search"),
    prevent_initial_call=True,
)
def navigate(status: str | None, search: str | None):
    """Write the status filter into the URL."""
    if ctx.triggered_id != f"{PREFIX}-status":
        return no_update
    state = parse_search(search)
    new = {**state, "status": status if status in STATUSES else ""}
    out = to_search(new)
    return out if out != to_search(state) else no_update
