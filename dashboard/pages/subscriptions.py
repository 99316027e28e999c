"""Subscriptions (for admins): who gets last month's dashboard as a PDF by email, and how
the latest deliveries went.

This page writes (adds and removes subscriptions) through `etl.delivery`, the same
functions as `python -m dashboard subscriptions`, with the same validation. Its tables read
the database directly instead of through `dashboard.data.cached`: the cache is keyed by the
ETL data version, which a new subscription or a delivery does not change.
"""

from __future__ import annotations

import dash
import dash_bootstrap_components as dbc
import pandas as pd
from dash import ALL, Input, Output, State, callback, ctx, dcc, html, no_update

from dashboard import context
from dashboard.components.download import downloadable, panel
from dashboard.data import cached
from etl.delivery import DEFAULT_SCHEDULE, add_subscription, remove_subscription
from queries.deliveries import deliveries, subscriptions
from queries.kpis import org_units

dash.register_page(__name__, path="/subscriptions", name="Subscriptions",
                   title="Subscriptions · CX dashboard", order=6, roles=("admin",))

PREFIX = "subscriptions"
DEPTH = {"company": 0, "region": 1, "store": 2, "team": 3}
STATUS_COLOUR = {"sent": "success", "failed": "danger", "sending": "warning",
                 "claimed": "info"}


def layout(**query: str) -> html.Div:
    """Skeleton: the form, and the tables the callback fills."""
    return html.Div([
        dcc.Store(id=f"{PREFIX}-state", data=query),
        dcc.Store(id=f"{PREFIX}-version", data=0),
        html.H1("Subscriptions", className="h4"),
        html.P("For admins: on the first morning of each month every subscriber gets an email "
               "with the KPI values in text and last month's dashboard as a PDF, showing only "
               "the org units of their scope. Each (subscription, month) is sent once.",
               className="text-muted"),
        dbc.Card(dbc.CardBody([
            html.H2("Add a subscription", className="h6"),
            dbc.Row([
                dbc.Col([dbc.Label("Email", html_for=f"{PREFIX}-email"),
                         dbc.Input(id=f"{PREFIX}-email", type="text",
                                   placeholder="ada@example.com")], md=4),
                dbc.Col([dbc.Label("Name (optional)", html_for=f"{PREFIX}-name"),
                         dbc.Input(id=f"{PREFIX}-name", type="text")], md=3),
                dbc.Col([dbc.Label("Scope: org units they may see",
                                   html_for=f"{PREFIX}-units"),
                         dcc.Dropdown(id=f"{PREFIX}-units", multi=True,
                                      placeholder="Company, region or store")], md=5),
            ], className="g-2 mb-2"),
            dbc.Row([
                dbc.Col([dbc.Label("Paper"), dbc.RadioItems(
                    id=f"{PREFIX}-paper", value="A4", inline=True,
                    options=[{"label": p, "value": p} for p in ("A4", "Letter")])], md=2),
                dbc.Col([dbc.Label("Orientation"), dbc.RadioItems(
                    id=f"{PREFIX}-orientation", value="landscape", inline=True,
                    options=[{"label": "Landscape", "value": "landscape"},
                             {"label": "Portrait", "value": "portrait"}])], md=3),
                dbc.Col([dbc.Label("Schedule (cron, company time)",
                                   html_for=f"{PREFIX}-schedule"),
                         dbc.Input(id=f"{PREFIX}-schedule", value=DEFAULT_SCHEDULE,
                                   type="text"),
                         dbc.FormText("Default: the 1st of each month, 07:00.")], md=4),
                dbc.Col(dbc.Button("Add subscription", id=f"{PREFIX}-add", color="primary",
                                   className="mt-4"), md=3),
            ], className="g-2 align-items-start"),
            html.Div(id=f"{PREFIX}-feedback", className="mt-2"),
        ]), className="cx-panel mb-3 d-print-none"),
        dcc.Loading(html.Div(id=f"{PREFIX}-list"), type="dot", delay_show=300),
        dcc.Loading(html.Div(id=f"{PREFIX}-deliveries"), type="dot", delay_show=300),
    ])


def _read(fn, **kwargs) -> pd.DataFrame:
    with context.engine().connect() as conn:
        return fn(conn, **kwargs)


@downloadable("subscriptions-list")
def subscriptions_frame(state: dict[str, str]) -> pd.DataFrame:
    """Every subscription."""
    return _read(subscriptions)


@downloadable("subscriptions-deliveries")
def deliveries_frame(state: dict[str, str]) -> pd.DataFrame:
    """The latest deliveries, newest first."""
    return _read(deliveries, limit=100)


def _when(value: object) -> str:
    return "—" if value is None or pd.isna(value) else pd.Timestamp(value).strftime(
        "%d %b %Y %H:%M")


def _text(value: object) -> str:
    return "" if value is None or (not isinstance(value, str) and pd.isna(value)) else str(value)


def unit_options() -> list[dict[str, str]]:
    """The org units, indented by level, for the scope picker."""
    return [{"label": "\u2003" * DEPTH.get(str(u["kind"]), 2) + f"{u['name']} ({u['id']})",
             "value": str(u["id"]), "search": f"{u['name']} {u['id']}"}
            for u in cached(org_units)]


def _subscriptions_panel(frame: pd.DataFrame) -> dbc.Card:
    if frame.empty:
        body = html.Div("No subscriptions yet: add one above.", className="text-muted",
                        id=f"{PREFIX}-none")
        return panel("Subscriptions", body, target="subscriptions-list")
    head = html.Thead(html.Tr([html.Th(h) for h in (
        "Id", "Email", "Name", "Scope", "Paper", "Schedule", "")]))
    rows = []
    for r in frame.itertuples():
        remove = dcc.ConfirmDialogProvider(
            dbc.Button("Remove", size="sm", color="outline-danger"),
            id={"type": f"{PREFIX}-remove", "id": int(r.id)},
            message=f"Remove the subscription of {r.email} ({r.scope}) and its delivery "
                    "history?")
        rows.append(html.Tr([
            html.Td(int(r.id)), html.Td(r.email), html.Td(_text(r.name)),
            html.Td(r.scope.replace(",", ", ")),
            html.Td(f"{r.paper} {'landscape' if r.landscape else 'portrait'}"),
            html.Td(html.Code(r.schedule)), html.Td(remove),
        ], id=f"{PREFIX}-row-{int(r.id)}"))
    table = dbc.Table([head, html.Tbody(rows)], size="sm", hover=True, responsive=True,
                      className="mb-0 small", id=f"{PREFIX}-table")
    return panel(f"Subscriptions ({len(frame)})", table, target="subscriptions-list")


def _deliveries_panel(frame: pd.DataFrame) -> dbc.Card:
    if frame.empty:
        body = html.Div("No deliveries yet: the scheduler sends on each subscription's "
                        "schedule, or run `python -m dashboard send-monthly`.",
                        className="text-muted")
        return panel("Latest deliveries", body, target="subscriptions-deliveries")
    head = html.Thead(html.Tr([html.Th(h) for h in (
        "Id", "Period", "Recipient", "Scope", "Status", "Attempts", "Sent", "Error")]))
    rows = []
    for r in frame.itertuples():
        badges = [dbc.Badge(r.status, color=STATUS_COLOUR.get(r.status, "secondary"))]
        if bool(r.stale_data):
            badges.append(dbc.Badge("stale data", color="warning", text_color="dark",
                                    className="ms-1"))
        rows.append(html.Tr([
            html.Td(int(r.id)), html.Td(r.period), html.Td(r.recipient),
            html.Td(r.scope.replace(",", ", ")), html.Td(badges), html.Td(int(r.attempts)),
            html.Td(_when(r.sent_at)),
            html.Td(_text(r.error)[:300], className="text-danger" if r.status != "sent"
                    else "text-muted"),
        ]))
    table = dbc.Table([head, html.Tbody(rows)], size="sm", hover=True, responsive=True,
                      className="mb-0 small", id=f"{PREFIX}-deliveries-table")
    note = ("A delivery left 'sending' may or may not have gone out: check, then "
            "`python -m dashboard deliveries retry ID`.")
    return panel(f"Latest deliveries ({len(frame)})", table, target="subscriptions-deliveries",
                 note=note)


@callback(
    Output(f"{PREFIX}-list", "children"),
    Output(f"{PREFIX}-deliveries", "children"),
    Output(f"{PREFIX}-units", "options"),
    Input(f"{PREFIX}-state", "data"),
    Input(f"{PREFIX}-version", "data"),
)
def render(state: dict[str, str] | None, version: int | None):
    """The tables and the unit choices (again after every write)."""
    state = state or {}
    try:
        subs, dels = subscriptions_frame(state), deliveries_frame(state)
    except Exception as exc:  # say what failed instead of an empty page
        alert = dbc.Alert(f"Subscriptions cannot be read: {exc}", color="danger")
        return alert, None, []
    return _subscriptions_panel(subs), _deliveries_panel(dels), unit_options()


@callback(
    Output(f"{PREFIX}-feedback", "children"),
    Output(f"{PREFIX}-version", "data"),
    Input(f"{PREFIX}-add", "n_clicks"),
    Input({"type": f"{PREFIX}-remove", "id": ALL}, "submit_n_clicks"),
    State(f"{PREFIX}-email", "value"),
    State(f"{PREFIX}-name", "value"),
    State(f"{PREFIX}-units", "value"),
    State(f"{PREFIX}-paper", "value"),
    State(f"{PREFIX}-orientation", "value"),
    State(f"{PREFIX}-schedule", "value"),
    State(f"{PREFIX}-version", "data"),
    prevent_initial_call=True,
)
def write(add_clicks, remove_clicks, email, name, units, paper, orientation, schedule,
          version):
    """Add a subscription (the form) or remove one (a confirmed Remove button)."""
    trigger = ctx.triggered_id
    if trigger is None or not (ctx.triggered and ctx.triggered[0].get("value")):
        return no_update, no_update
    if isinstance(trigger, dict):
        return remove(int(trigger["id"]), version)
    return add(email=email, name=name, units=units, paper=paper, orientation=orientation,
               schedule=schedule, version=version)


def add(*, email: str | None, name: str | None, units: list[str] | None, paper: str | None,
        orientation: str | None, schedule: str | None, version: int | None):
    """Validate and add; (feedback, new version)."""
    try:
        with context.engine().begin() as conn:
            new_id = add_subscription(conn, email=email or "", scope=units or [], name=name,
                                      paper=paper or "A4",
                                      landscape=(orientation or "landscape") == "landscape",
                                      schedule=schedule or DEFAULT_SCHEDULE)
    except ValueError as exc:
        return dbc.Alert(str(exc), color="danger", id=f"{PREFIX}-error"), no_update
    msg = f"Subscription {new_id} added: {email} gets {', '.join(sorted(set(units or [])))}."
    return (dbc.Alert(msg, color="success", id=f"{PREFIX}-added", duration=8000),
            (version or 0) + 1)


def remove(subscription_id: int, version: int | None):
    """Remove one subscription; (feedback, new version)."""
    with context.engine().begin() as conn:
        removed = remove_subscription(conn, subscription_id)
    if not removed:
        return (dbc.Alert(f"Subscription {subscription_id} no longer exists.", color="warning"),
                (version or 0) + 1)
    return (dbc.Alert(f"Subscription {subscription_id} removed.", color="success",
                      id=f"{PREFIX}-removed", duration=8000), (version or 0) + 1)
