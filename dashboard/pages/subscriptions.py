"""Subscriptions (admins only): which user gets last month's dashboard as a PDF by email, at
which address, and how the latest deliveries went; and the recipient domains admins allow.

A subscription belongs to a user and shows only what that user may see: the scope picker
offers the chosen user's units (none chosen: their whole scope, following it when it
changes), and the PDF is rendered in the user's scope as it is at send time. The page writes
through `reports.subscriptions`, the same functions as `python -m dashboard subscriptions`,
with the same validation and audit entries. Its tables read the database directly instead of
through `dashboard.data.cached`: the cache is keyed by the ETL data version, which a new
subscription or a delivery does not change.
"""

from __future__ import annotations

import dash
import dash_bootstrap_components as dbc
import pandas as pd
from dash import ALL, Input, Output, State, callback, ctx, dcc, html, no_update

from auth.users import list_users
from auth.web import current_principal
from dashboard import context
from dashboard.components.download import downloadable, panel
from dashboard.data import cached
from queries.deliveries import deliveries, subscriptions
from queries.kpis import org_units
from queries.scope import visible_units
from reports.subscriptions import (
    DEFAULT_SCHEDULE,
    add_subscription,
    allow_domain,
    allowed_domains,
    disallow_domain,
    remove_subscription,
)

dash.register_page(__name__, path="/subscriptions", name="Subscriptions",
                   title="Subscriptions · CX dashboard", order=6, roles=("admin",))

PREFIX = "subscriptions"
DEPTH = {"company": 0, "region": 1, "store": 2, "team": 3}
STATUS_COLOUR = {"sent": "success", "failed": "danger", "sending": "warning",
                 "claimed": "info"}


def layout(**query: str) -> html.Div:
    """Skeleton: the forms, and the tables the callback fills."""
    return html.Div([
        dcc.Store(id=f"{PREFIX}-state", data=query),
        dcc.Store(id=f"{PREFIX}-version", data=0),
        html.H1("Subscriptions", className="h4"),
        html.P("For admins: on the first morning of each month every subscriber gets an email "
               "with the KPI values in text and last month's dashboard as a PDF, rendered in "
               "the scope their user has at that moment. Each (subscription, month) is sent "
               "once.", className="text-muted"),
        dbc.Card(dbc.CardBody([
            html.H2("Add a subscription", className="h6"),
            dbc.Row([
                dbc.Col([dbc.Label("User", html_for=f"{PREFIX}-user"),
                         dcc.Dropdown(id=f"{PREFIX}-user", placeholder="Choose a user")], md=4),
                dbc.Col([dbc.Label("Scope: part of the user's units",
                                   html_for=f"{PREFIX}-units"),
                         dcc.Dropdown(id=f"{PREFIX}-units", multi=True,
                                      placeholder="The user's whole scope")], md=4),
                dbc.Col([dbc.Label("Send to (optional)", html_for=f"{PREFIX}-email"),
                         dbc.Input(id=f"{PREFIX}-email", type="text",
                                   placeholder="the user's own address"),
                         dbc.FormText("Another address only at an allowed domain.")], md=4),
            ], className="g-2 mb-2"),
            dbc.Row([
                dbc.Col([dbc.Label("Name on the email (optional)", html_for=f"{PREFIX}-name"),
                         dbc.Input(id=f"{PREFIX}-name", type="text")], md=3),
                dbc.Col([dbc.Label("Paper"), dbc.RadioItems(
                    id=f"{PREFIX}-paper", value="A4", inline=True,
                    options=[{"label": p, "value": p} for p in ("A4", "Letter")])], md=2),
                dbc.Col([dbc.Label("Orientation"), dbc.RadioItems(
                    id=f"{PREFIX}-orientation", value="landscape", inline=True,
                    options=[{"label": "Landscape", "value": "landscape"},
                             {"label": "Portrait", "value": "portrait"}])], md=2),
                dbc.Col([dbc.Label("Schedule (cron, company time)",
                                   html_for=f"{PREFIX}-schedule"),
                         dbc.Input(id=f"{PREFIX}-schedule", value=DEFAULT_SCHEDULE,
                                   type="text"),
                         dbc.FormText("Default: the 1st of each month, 07:00.")], md=3),
                dbc.Col(dbc.Button("Add subscription", id=f"{PREFIX}-add", color="primary",
                                   className="mt-4"), md=2),
            ], className="g-2 align-items-start"),
            html.Div(id=f"{PREFIX}-feedback", className="mt-2"),
        ]), className="cx-panel mb-3 d-print-none"),
        dcc.Loading(html.Div(id=f"{PREFIX}-list"), type="dot", delay_show=300),
        dcc.Loading(html.Div(id=f"{PREFIX}-deliveries"), type="dot", delay_show=300),
        dbc.Card(dbc.CardBody([
            html.H2("Allowed recipient domains", className="h6"),
            html.P("A subscription goes to its user's own address, or to an address at one of "
                   "these domains.", className="small text-muted"),
            html.Div(id=f"{PREFIX}-domains"),
            dbc.InputGroup([dbc.Input(id=f"{PREFIX}-domain", placeholder="example.com"),
                            dbc.Button("Allow", id=f"{PREFIX}-allow", color="secondary")],
                           size="sm", className="mt-2", style={"maxWidth": "24rem"}),
        ]), className="cx-panel mb-3 d-print-none"),
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


def _scope(value: object) -> str:
    text = _text(value)
    return text.replace(",", ", ") if text else "the user's whole scope"


def _actor() -> str | None:
    user = current_principal()
    return user.email if user is not None else None


def user_options() -> list[dict[str, str]]:
    """Active users, with their role and scope, for the user picker."""
    with context.engine().connect() as conn:
        people = [u for u in list_users(conn) if u.active]
    return [{"label": f"{u.display} · {u.role}"
                      + (f" ({', '.join(u.scope_units)})" if u.scope_units else ""),
             "value": str(u.id), "search": f"{u.email} {u.name or ''}"} for u in people]


def unit_options(user_id: str | int | None = None) -> list[dict[str, str]]:
    """The org units, indented by level, for the scope picker: only those inside the
    chosen user's scope (all of them for a user who sees every unit)."""
    units = cached(org_units)
    if user_id:
        with context.engine().connect() as conn:
            from auth.users import get_user

            user = get_user(conn, int(user_id))
            if user is None:
                return []
            if user.scope is not None:
                inside = visible_units(conn, user.scope)
                units = [u for u in units if str(u["id"]) in inside]
    return [{"label": "\u2003" * DEPTH.get(str(u["kind"]), 2) + f"{u['name']} ({u['id']})",
             "value": str(u["id"]), "search": f"{u['name']} {u['id']}"} for u in units]


def _subscriptions_panel(frame: pd.DataFrame) -> dbc.Card:
    if frame.empty:
        body = html.Div("No subscriptions yet: add one above.", className="text-muted",
                        id=f"{PREFIX}-none")
        return panel("Subscriptions", body, target="subscriptions-list")
    head = html.Thead(html.Tr([html.Th(h) for h in (
        "Id", "User", "Send to", "Name", "Scope", "Paper", "Schedule", "")]))
    rows = []
    for r in frame.itertuples():
        remove = dcc.ConfirmDialogProvider(
            dbc.Button("Remove", size="sm", color="outline-danger"),
            id={"type": f"{PREFIX}-remove", "id": int(r.id)},
            message=f"Remove the subscription of {r.email} ({_scope(r.scope)}) and its "
                    "delivery history?")
        owner = _text(r.user_email) or html.Span("no user: refused when sent",
                                                 className="text-danger")
        rows.append(html.Tr([
            html.Td(int(r.id)), html.Td(owner), html.Td(r.email), html.Td(_text(r.name)),
            html.Td(_scope(r.scope)),
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
            html.Td(_scope(r.scope)), html.Td(badges), html.Td(int(r.attempts)),
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


def _domains_panel() -> html.Div:
    with context.engine().connect() as conn:
        domains = allowed_domains(conn)
    if not domains:
        return html.Div("None: subscriptions go to their users' own addresses only.",
                        className="small text-muted", id=f"{PREFIX}-domain-list")
    return html.Ul([html.Li([html.Code(d), " ", dcc.ConfirmDialogProvider(
        dbc.Button("Remove", size="sm", color="link", className="p-0 ms-2"),
        id={"type": f"{PREFIX}-disallow", "id": d},
        message=f"Stop allowing recipients at {d}? Subscriptions to it will be refused.")])
        for d in domains], className="small mb-0", id=f"{PREFIX}-domain-list")


@callback(
    Output(f"{PREFIX}-list", "children"),
    Output(f"{PREFIX}-deliveries", "children"),
    Output(f"{PREFIX}-user", "options"),
    Output(f"{PREFIX}-domains", "children"),
    Input(f"{PREFIX}-state", "data"),
    Input(f"{PREFIX}-version", "data"),
)
def render(state: dict[str, str] | None, version: int | None):
    """The tables, the users to choose from and the allowed domains (again after every
    write)."""
    state = state or {}
    try:
        subs, dels = subscriptions_frame(state), deliveries_frame(state)
        people, domains = user_options(), _domains_panel()
    except Exception as exc:  # say what failed instead of an empty page
        alert = dbc.Alert(f"Subscriptions cannot be read: {exc}", color="danger")
        return alert, None, [], None
    return _subscriptions_panel(subs), _deliveries_panel(dels), people, domains


@callback(
    Output(f"{PREFIX}-units", "options"),
    Output(f"{PREFIX}-units", "value"),
    Input(f"{PREFIX}-user", "value"),
)
def units_of_user(user_id: str | None):
    """Only the chosen user's units can be picked (none picked: their whole scope)."""
    return (unit_options(user_id) if user_id else []), []


@callback(
    Output(f"{PREFIX}-feedback", "children"),
    Output(f"{PREFIX}-version", "data"),
    Input(f"{PREFIX}-add", "n_clicks"),
    Input({"type": f"{PREFIX}-remove", "id": ALL}, "submit_n_clicks"),
    Input(f"{PREFIX}-allow", "n_clicks"),
    Input({"type": f"{PREFIX}-disallow", "id": ALL}, "submit_n_clicks"),
    State(f"{PREFIX}-user", "value"),
    State(f"{PREFIX}-email", "value"),
    State(f"{PREFIX}-name", "value"),
    State(f"{PREFIX}-units", "value"),
    State(f"{PREFIX}-paper", "value"),
    State(f"{PREFIX}-orientation", "value"),
    State(f"{PREFIX}-schedule", "value"),
    State(f"{PREFIX}-domain", "value"),
    State(f"{PREFIX}-version", "data"),
    prevent_initial_call=True,
)
def write(add_clicks, remove_clicks, allow_clicks, disallow_clicks, user, email, name, units,
          paper, orientation, schedule, domain, version):
    """Add a subscription (the form), remove one (a confirmed Remove button), allow or stop
    allowing a recipient domain."""
    trigger = ctx.triggered_id
    if trigger is None or not (ctx.triggered and ctx.triggered[0].get("value")):
        return no_update, no_update
    if isinstance(trigger, dict) and trigger.get("type") == f"{PREFIX}-remove":
        return remove(int(trigger["id"]), version)
    if isinstance(trigger, dict):
        return domain_change(str(trigger["id"]), allow=False, version=version)
    if trigger == f"{PREFIX}-allow":
        return domain_change(domain, allow=True, version=version)
    return add(user=user, email=email, name=name, units=units, paper=paper,
               orientation=orientation, schedule=schedule, version=version)


def add(*, user: str | int | None, email: str | None, name: str | None,
        units: list[str] | None, paper: str | None, orientation: str | None,
        schedule: str | None, version: int | None):
    """Validate and add; (feedback, new version)."""
    if not user:
        return (dbc.Alert("user: choose the user the subscription is for", color="danger",
                          id=f"{PREFIX}-error"), no_update)
    try:
        with context.engine().begin() as conn:
            new_id = add_subscription(conn, user=int(user), scope=units or None,
                                      email=(email or "").strip() or None, name=name,
                                      paper=paper or "A4",
                                      landscape=(orientation or "landscape") == "landscape",
                                      schedule=schedule or DEFAULT_SCHEDULE, actor=_actor())
    except ValueError as exc:
        return dbc.Alert(str(exc), color="danger", id=f"{PREFIX}-error"), no_update
    what = ", ".join(sorted(set(units))) if units else "their whole scope"
    msg = f"Subscription {new_id} added: it shows {what}."
    return (dbc.Alert(msg, color="success", id=f"{PREFIX}-added", duration=8000),
            (version or 0) + 1)


def remove(subscription_id: int, version: int | None):
    """Remove one subscription; (feedback, new version)."""
    with context.engine().begin() as conn:
        removed = remove_subscription(conn, subscription_id, actor=_actor())
    if not removed:
        return (dbc.Alert(f"Subscription {subscription_id} no longer exists.", color="warning"),
                (version or 0) + 1)
    return (dbc.Alert(f"Subscription {subscription_id} removed.", color="success",
                      id=f"{PREFIX}-removed", duration=8000), (version or 0) + 1)


def domain_change(domain: str | None, *, allow: bool, version: int | None):
    """Allow a recipient domain or stop allowing it; (feedback, new version)."""
    try:
        with context.engine().begin() as conn:
            if allow:
                done = allow_domain(conn, domain or "", actor=_actor())
                text = f"Recipients at {done} are allowed."
            else:
                disallow_domain(conn, domain or "", actor=_actor())
                text = f"Recipients at {domain} are no longer allowed."
    except ValueError as exc:
        return dbc.Alert(str(exc), color="danger", id=f"{PREFIX}-error"), no_update
    return (dbc.Alert(text, color="success", id=f"{PREFIX}-domain-done", duration=8000),
            (version or 0) + 1)
