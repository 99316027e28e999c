"""Audit log (for admins): sign-ins, exports, PDF renders and admin changes, newest first."""

from __future__ import annotations

import dash
import dash_bootstrap_components as dbc
from dash import Input, Output, callback, dcc, html

from auth.audit import entries
from dashboard import context

dash.register_page(__name__, path="/audit", name="Audit log", title="Audit log · CX dashboard",
                   order=8, roles=("admin",))

PREFIX = "audit"
ACTIONS = {"": "Every action", "sign_in": "Sign-ins", "sign_out": "Sign-outs",
           "export": "Downloads", "pdf_render": "PDF renders", "access_denied": "Refusals",
           "csrf_refused": "CSRF refusals", "user_add": "Users added", "user_role": "Roles",
           "user_scope": "Scopes", "password_reset": "Password resets",
           "user_remove": "Users removed", "subscription_add": "Subscriptions added",
           "subscription_remove": "Subscriptions removed"}
OUTCOME_COLOUR = {"ok": "success", "failed": "danger", "denied": "warning"}


def layout(**_query: str) -> html.Div:
    """A filter and the newest 300 entries."""
    return html.Div([
        html.H1("Audit log", className="h4"),
        html.P("Who signed in (or failed to), downloaded data, printed a PDF, was refused, "
               "or changed users and subscriptions. Times are UTC.", className="text-muted"),
        dcc.Dropdown(id=f"{PREFIX}-action", value="", clearable=False, className="mb-2",
                     style={"maxWidth": "20rem"},
                     options=[{"label": v, "value": k} for k, v in ACTIONS.items()]),
        dcc.Loading(html.Div(id=f"{PREFIX}-table"), type="dot", delay_show=300),
    ])


@callback(Output(f"{PREFIX}-table", "children"), Input(f"{PREFIX}-action", "value"))
def render(action: str | None):
    """The entries of one action (or all)."""
    with context.engine().connect() as conn:
        frame = entries(conn, action=action or None, limit=300)
    if frame.empty:
        return html.P("Nothing recorded yet.", className="text-muted", id=f"{PREFIX}-empty")
    head = html.Thead(html.Tr([html.Th(h) for h in (
        "When (UTC)", "Who", "Action", "Outcome", "What", "Detail", "Address")]))
    rows = [html.Tr([
        html.Td(f"{r.at:%d %b %Y %H:%M:%S}"), html.Td(r.actor or "-"),
        html.Td(ACTIONS.get(r.action, r.action)),
        html.Td(dbc.Badge(r.outcome, color=OUTCOME_COLOUR.get(r.outcome, "secondary"))),
        html.Td(r.target or ""), html.Td(r.detail or "", className="small"),
        html.Td(r.ip or "", className="small text-muted"),
    ]) for r in frame.itertuples()]
    return dbc.Table([head, html.Tbody(rows)], size="sm", hover=True, responsive=True,
                     id=f"{PREFIX}-list")
