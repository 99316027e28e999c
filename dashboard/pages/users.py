"""Users (for admins): who may sign in, their role and scope; password resets.

Changes go through `auth.users` (the same functions and checks as `python -m dashboard
users`) and are written to the audit log with the admin who made them. A new or reset
password is generated and shown once, here, to the admin: it is never stored in clear.
"""

from __future__ import annotations

import dash
import dash_bootstrap_components as dbc
from dash import Input, Output, State, callback, ctx, dcc, html, no_update

from auth import audit
from auth.cli import new_password
from auth.passwords import PasswordPolicyError
from auth.users import (
    ROLES,
    UserError,
    add_user,
    list_users,
    remove_user,
    set_active,
    set_password,
    set_role,
)
from auth.web import current_principal
from dashboard import context
from dashboard.data import cached
from queries.kpis import org_units

dash.register_page(__name__, path="/users", name="Users", title="Users · CX dashboard",
                   order=7, roles=("admin",))

PREFIX = "users"


def layout(**_query: str) -> html.Div:
    """The user table and the forms that change it."""
    role_options = [{"label": r.capitalize(), "value": r} for r in ROLES]
    return html.Div([
        dcc.Store(id=f"{PREFIX}-version", data=0),
        html.H1("Users", className="h4"),
        html.P("Executives see every unit; managers see their units and everything below "
               "them; admins also manage users, subscriptions and sources. Changes take "
               "effect on the person's next request.", className="text-muted"),
        dbc.Card(dbc.CardBody([
            html.H2("Add a user, or change one", className="h6"),
            dbc.Row([
                dbc.Col([dbc.Label("Email", html_for=f"{PREFIX}-email"),
                         dbc.Input(id=f"{PREFIX}-email", type="email",
                                   placeholder="ada@example.com")], md=3),
                dbc.Col([dbc.Label("Name", html_for=f"{PREFIX}-name"),
                         dbc.Input(id=f"{PREFIX}-name", type="text")], md=2),
                dbc.Col([dbc.Label("Role", html_for=f"{PREFIX}-role"),
                         dcc.Dropdown(id=f"{PREFIX}-role", options=role_options,
                                      value="manager", clearable=False)], md=2),
                dbc.Col([dbc.Label("Units (managers)", html_for=f"{PREFIX}-units"),
                         dcc.Dropdown(id=f"{PREFIX}-units", multi=True,
                                      options=[{"label": str(u["name"]), "value": str(u["id"])}
                                               for u in cached(org_units)],
                                      placeholder="Region, store or team")], md=5),
            ], className="g-2 mb-2"),
            html.Div([
                dbc.Button("Add user", id=f"{PREFIX}-add", color="primary", size="sm"),
                dbc.Button("Set role and units", id=f"{PREFIX}-set-role", size="sm",
                           color="secondary", outline=True),
                dbc.Button("Reset password", id=f"{PREFIX}-reset", size="sm",
                           color="secondary", outline=True),
                dbc.Button("Disable", id=f"{PREFIX}-disable", size="sm", color="secondary",
                           outline=True),
                dbc.Button("Enable", id=f"{PREFIX}-enable", size="sm", color="secondary",
                           outline=True),
                dbc.Button("Remove", id=f"{PREFIX}-remove", size="sm", color="danger",
                           outline=True),
            ], className="d-flex flex-wrap gap-2"),
            dbc.FormText("Changing, resetting, disabling or removing acts on the user with "
                         "the email above."),
            html.Div(id=f"{PREFIX}-feedback", className="mt-2"),
        ]), className="cx-panel mb-3"),
        dcc.Loading(html.Div(id=f"{PREFIX}-table"), type="dot", delay_show=300),
    ])


@callback(Output(f"{PREFIX}-table", "children"), Input(f"{PREFIX}-version", "data"))
def render(_version: int | None):
    """The users, newest state."""
    with context.engine().connect() as conn:
        users = list_users(conn)
    head = html.Thead(html.Tr([html.Th(h) for h in (
        "Email", "Name", "Role", "Sees", "Sign-in", "Active", "Last sign-in")]))
    rows = [html.Tr([
        html.Td(u.email), html.Td(u.name or ""), html.Td(u.role),
        html.Td(", ".join(u.scope_units) if u.role == "manager" else "every unit"),
        html.Td("single sign-on" if u.auth_source == "oidc" else u.auth_source),
        html.Td("yes" if u.active else "no"),
        html.Td(f"{u.last_login_at:%d %b %Y %H:%M}" if u.last_login_at else "never"),
    ]) for u in users]
    return dbc.Table([head, html.Tbody(rows)], size="sm", hover=True, responsive=True,
                     id=f"{PREFIX}-list")


@callback(
    Output(f"{PREFIX}-feedback", "children"),
    Output(f"{PREFIX}-version", "data"),
    Input(f"{PREFIX}-add", "n_clicks"), Input(f"{PREFIX}-set-role", "n_clicks"),
    Input(f"{PREFIX}-reset", "n_clicks"), Input(f"{PREFIX}-disable", "n_clicks"),
    Input(f"{PREFIX}-enable", "n_clicks"), Input(f"{PREFIX}-remove", "n_clicks"),
    State(f"{PREFIX}-email", "value"), State(f"{PREFIX}-name", "value"),
    State(f"{PREFIX}-role", "value"), State(f"{PREFIX}-units", "value"),
    State(f"{PREFIX}-version", "data"),
    prevent_initial_call=True,
)
def change(*args):
    """Apply the clicked action to the user named by the email field."""
    email, name, role, units, version = args[6:]
    action = str(ctx.triggered_id or "").removeprefix(f"{PREFIX}-")
    if not action or not email:
        return dbc.Alert("Give the user's email first.", color="warning", className="py-1"), \
            no_update
    try:
        message = apply_change(action, email=email, name=name, role=role, units=units or [])
    except (UserError, PasswordPolicyError, ValueError) as exc:
        return dbc.Alert(str(exc), color="danger", className="py-1"), no_update
    return dbc.Alert(message, color="success", className="py-1"), (version or 0) + 1


def apply_change(action: str, *, email: str, name: str | None, role: str | None,
                 units: list[str]) -> str:
    """One admin change, audited with the admin's name; returns what to tell them."""
    admin = current_principal()
    actor = admin.email if admin else None
    with context.engine().begin() as conn:
        if action == "add":
            password = new_password()
            user = add_user(conn, email=email, name=name, role=role or "manager",
                            scope=units if role == "manager" else None, password=password)
            audit.record(conn, "user_add", actor=actor, target=user.email,
                         detail=f"role {user.role}; units {','.join(user.scope_units) or '-'}")
            return (f"{user.email} added as {user.role}. Password, shown once: {password}")
        if action == "set-role":
            user = set_role(conn, email, role or "manager",
                            units if role == "manager" else None)
            audit.record(conn, "user_role", actor=actor, target=user.email,
                         detail=f"role {user.role}; units {','.join(user.scope_units) or '-'}")
            return f"{user.email} is now {user.role}."
        if action == "reset":
            password = new_password()
            user = set_password(conn, email, password)
            audit.record(conn, "password_reset", actor=actor, target=user.email)
            return f"New password for {user.email}, shown once: {password}"
        if action in ("disable", "enable"):
            if admin is not None and email.strip().lower() == admin.email:
                raise UserError("you cannot disable yourself")
            user = set_active(conn, email, action == "enable")
            audit.record(conn, f"user_{action}", actor=actor, target=user.email)
            return f"{user.email} {action}d."
        if action == "remove":
            if admin is not None and email.strip().lower() == admin.email:
                raise UserError("you cannot remove yourself")
            user = remove_user(conn, email)
            audit.record(conn, "user_remove", actor=actor, target=user.email)
            return f"{user.email} removed, with their sessions and subscriptions."
    raise ValueError(f"unknown action {action!r}")
