"""Comment topics (for admins): name a topic, merge topics that say the same thing.

The ETL finds topics and labels them with their top terms; an admin gives them readable names
and merges near-duplicates here. A topic keeps its id when the ETL refits its language's model,
so names and merges survive. Changes go through `reports.topics` and are written to the
audit log with the admin's name.
"""

from __future__ import annotations

import dash
import dash_bootstrap_components as dbc
from dash import Input, Output, State, callback, ctx, dcc, html, no_update

from auth import audit
from auth.web import current_principal
from dashboard import context
from queries.comment_topics import topics
from reports.topics import merge_topics, rename_topic, unmerge_topic

dash.register_page(__name__, path="/topics", name="Topics", title="Topics · CX dashboard",
                   order=9, roles=("admin",))

PREFIX = "topics"


def _options() -> list[dict]:
    with context.engine().connect() as conn:
        frame = topics(conn)
    return [{"label": f"#{r.id} [{r.language}] {r.label or r.terms}", "value": int(r.id)}
            for r in frame.itertuples()]


def layout(**_query: str) -> html.Div:
    """The topic table and the rename and merge forms."""
    return html.Div([
        dcc.Store(id=f"{PREFIX}-version", data=0),
        html.H1("Comment topics", className="h4"),
        html.P("Topics are found in the comments by the ETL after each load and labelled "
               "with their top terms. Name them, or merge topics that say the same thing: "
               "merged topics count as one everywhere (Drivers & comments, the PDF).",
               className="text-muted"),
        dbc.Card(dbc.CardBody([
            dbc.Row([
                dbc.Col([dbc.Label("Topic", html_for=f"{PREFIX}-topic"),
                         dcc.Dropdown(id=f"{PREFIX}-topic", options=_options())], md=5),
                dbc.Col([dbc.Label("New name (empty: its top terms)",
                                   html_for=f"{PREFIX}-label"),
                         dbc.Input(id=f"{PREFIX}-label", type="text", maxLength=200)], md=4),
                dbc.Col(dbc.Button("Rename", id=f"{PREFIX}-rename", color="primary",
                                   size="sm"), md="auto", className="align-self-end"),
            ], className="g-2 mb-2"),
            dbc.Row([
                dbc.Col([dbc.Label("Merge into", html_for=f"{PREFIX}-target"),
                         dcc.Dropdown(id=f"{PREFIX}-target", options=_options())], md=5),
                dbc.Col([
                    dbc.Button("Merge the topic into it", id=f"{PREFIX}-merge", size="sm",
                               color="secondary", outline=True, class_name="me-2"),
                    dbc.Button("Unmerge the topic", id=f"{PREFIX}-unmerge", size="sm",
                               color="secondary", outline=True),
                ], md="auto", className="align-self-end"),
            ], className="g-2"),
            html.Div(id=f"{PREFIX}-feedback", className="mt-2"),
        ]), className="cx-panel mb-3"),
        dcc.Loading(html.Div(id=f"{PREFIX}-table"), type="dot", delay_show=300),
    ])


@callback(Output(f"{PREFIX}-table", "children"), Input(f"{PREFIX}-version", "data"))
def render(_version: int | None):
    """Every topic: id, language, name, top terms, merged into, in the current model."""
    with context.engine().connect() as conn:
        frame = topics(conn)
    if frame.empty:
        return html.Div("No topics yet: they are found after a load with comments.",
                        className="text-muted", id=f"{PREFIX}-list")
    head = html.Thead(html.Tr([html.Th(h) for h in (
        "#", "Language", "Name", "Top terms", "Merged into", "Comments", "Current")]))
    rows = [html.Tr([html.Td(int(r.id)), html.Td(r.language), html.Td(r.label or ""),
                     html.Td(r.terms), html.Td("" if r.merged_into is None
                                                or r.merged_into != r.merged_into
                                                else f"#{int(r.merged_into)}"),
                     html.Td(f"{int(r.comments):,}", className="text-end"),
                     html.Td("yes" if r.active else "no")]) for r in frame.itertuples()]
    return dbc.Table([head, html.Tbody(rows)], size="sm", hover=True, responsive=True,
                     id=f"{PREFIX}-list")


def apply_change(action: str, *, topic: int, label: str | None = None,
                 target: int | None = None) -> str:
    """One admin change, audited with the admin's name; returns what to tell them."""
    admin = current_principal()
    actor = admin.email if admin else None
    with context.engine().begin() as conn:
        if action == "rename":
            rename_topic(conn, topic, label)
            audit.record(conn, "topic_rename", actor=actor, target=f"topic {topic}",
                         detail=(label or "").strip() or "(top terms)")
            return f"Topic #{topic} renamed."
        if action == "merge":
            if target is None:
                raise ValueError("merge into: choose the topic to merge into")
            merge_topics(conn, [topic], target)
            audit.record(conn, "topic_merge", actor=actor, target=f"topic {topic}",
                         detail=f"into topic {target}")
            return f"Topic #{topic} now counts as #{target}."
        if action == "unmerge":
            unmerge_topic(conn, topic)
            audit.record(conn, "topic_unmerge", actor=actor, target=f"topic {topic}")
            return f"Topic #{topic} counts on its own again."
    raise ValueError(f"unknown action {action!r}")


@callback(
    Output(f"{PREFIX}-feedback", "children"),
    Output(f"{PREFIX}-version", "data"),
    Output(f"{PREFIX}-topic", "options"),
    Output(f"{PREFIX}-target", "options"),
    Input(f"{PREFIX}-rename", "n_clicks"), Input(f"{PREFIX}-merge", "n_clicks"),
    Input(f"{PREFIX}-unmerge", "n_clicks"),
    State(f"{PREFIX}-topic", "value"), State(f"{PREFIX}-label", "value"),
    State(f"{PREFIX}-target", "value"), State(f"{PREFIX}-version", "data"),
    prevent_initial_call=True,
)
def change(_rename, _merge, _unmerge, topic, label, target, version):
    """Apply the clicked action to the chosen topic."""
    action = str(ctx.triggered_id or "").removeprefix(f"{PREFIX}-")
    if topic is None:
        return (dbc.Alert("Choose a topic first.", color="warning", className="py-1"),
                no_update, no_update, no_update)
    try:
        message = apply_change(action, topic=int(topic), label=label,
                               target=None if target is None else int(target))
    except ValueError as exc:
        return (dbc.Alert(str(exc), color="danger", className="py-1"), no_update, no_update,
                no_update)
    options = _options()
    return (dbc.Alert(message, color="success", className="py-1"), (version or 0) + 1,
            options, options)
