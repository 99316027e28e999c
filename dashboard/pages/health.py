"""Data health (for admins): every source's runs, row counts, and what was quarantined."""

from __future__ import annotations

import json

import dash
import dash_ag_grid as dag
import dash_bootstrap_components as dbc
import pandas as pd
import plotly.graph_objects as go
from dash import Input, Output, State, callback, dcc, html

from dashboard import context
from dashboard.components.download import INTERNAL, column_label, downloadable, panel
from dashboard.components.theme import BAD, base_layout, plain
from dashboard.data import cached
from dashboard.state import parse_search, to_search
from queries.deliveries import deliveries
from queries.health import (
    freshness,
    last_runs,
    quarantine_counts,
    quarantined_rows,
    recent_runs,
    source_title,
    source_titles,
    table_counts,
)

dash.register_page(__name__, path="/health", name="Data health",
                   title="Data health · CX dashboard", order=5, roles=("admin", "executive"))

PREFIX = "health"
STATUS_COLOUR = {"success": "success", "warning": "warning", "failed": "danger",
                 "running": "info"}
WRAPPED = ("error", "reason", "notes", "value", "where")  # long text: wraps, never cut
# In a panel about runs "Read" says enough; the downloads keep the full names.
SHORT = {"holds": "Holds", "notes": "Notes or error", "rows_read": "Read",
         "rows_inserted": "Loaded", "rows_updated": "Updated",
         "rows_quarantined": "Quarantined", "rows_skipped": "Skipped", "seconds": "Seconds"}
TABLE_LABELS = {
    "org_unit": "Org units", "customer": "Customers", "survey_response": "Survey answers",
    "survey_rating": "Attribute ratings", "loyalty_transaction": "Loyalty transactions",
    "engagement_response": "Engagement answers", "engagement_score": "Engagement item scores",
    "headcount": "Headcount", "agg_survey_daily": "Survey totals per day",
    "agg_txn_daily": "Transaction totals per day",
    "agg_survey_monthly": "Survey totals per unit and month",
    "agg_txn_monthly": "Transaction totals per unit and month",
    "agg_engagement": "Engagement totals",
    "quarantine": "Quarantined rows",
}
RUN_COUNTS = ("rows_read", "rows_inserted", "rows_updated", "rows_quarantined", "rows_skipped")


def layout(**query: str) -> html.Div:
    """Skeleton; the state store drives the callback."""
    return html.Div([
        dcc.Store(id=f"{PREFIX}-state", data=query),
        html.H1("Data health", className="h4"),
        html.P("For admins: is every source loading, and what did validation reject? "
               "Rows with a bad value wait in quarantine with the file, line, field and reason.",
               className="text-muted"),
        dcc.Loading(html.Div(id=f"{PREFIX}-sources"), type="dot", delay_show=300),
        dbc.Row([
            dbc.Col(dcc.Loading(html.Div(id=f"{PREFIX}-reasons"), type="dot"), lg=7),
            dbc.Col(dcc.Loading(html.Div(id=f"{PREFIX}-tables"), type="dot"), lg=5),
        ]),
        dbc.Row([
            dbc.Col(dcc.Dropdown(id=f"{PREFIX}-source-filter", placeholder="All sources",
                                 value=query.get("source"), clearable=True), md=4),
        ], className="mb-2"),
        dcc.Loading(html.Div(id=f"{PREFIX}-quarantine"), type="dot", delay_show=300),
        dcc.Loading(html.Div(id=f"{PREFIX}-runs"), type="dot", delay_show=300),
        dcc.Loading(html.Div(id=f"{PREFIX}-deliveries"), type="dot", delay_show=300),
    ])


@downloadable("health-deliveries")
def deliveries_frame(state: dict[str, str]) -> pd.DataFrame:
    """The latest snapshot deliveries: recipient, scope, period, status, attempts, error."""
    # Uncached: deliveries change between ETL runs, which is what the cache keys on.
    with context.engine().connect() as conn:
        return deliveries(conn, limit=100)


@callback(Output(f"{PREFIX}-deliveries", "children"), Input(f"{PREFIX}-state", "data"))
def render_deliveries(state: dict[str, str]) -> dbc.Card:
    """The deliveries panel."""
    frame = deliveries_frame(state or {})
    if frame.empty:
        body = html.Div("No snapshot has been sent yet. Add subscriptions on the "
                        "Subscriptions page; the scheduler sends them.", className="text-muted")
    else:
        shown = frame.drop(columns=[c for c in INTERNAL if c in frame]).copy()
        for col in ("claimed_at", "sent_at"):
            if col in shown:
                shown[col] = shown[col].map(_when)
        if "error" in shown:
            shown["error"] = shown["error"].map(
                lambda e: "" if e is None or pd.isna(e) else str(e)[:160])
        if "attempts" in shown:
            shown["attempts"] = shown["attempts"].map(_count)
        body = _table(shown, f"{PREFIX}-deliveries-table")
    return panel("Snapshot deliveries", body, target="health-deliveries")


@downloadable("health-sources")
def sources_frame(state: dict[str, str]) -> pd.DataFrame:
    """Per source: last run, last success, counts, watermark, error."""
    frame = cached(last_runs)
    stale = {f.source: f.stale for f in cached(freshness,
                                               stale_hours=context.settings().cx_stale_hours)}
    frame = frame.assign(stale=frame["source"].map(stale))
    return frame.drop(columns=["notes"])


@downloadable("health-quarantine")
def quarantine_frame(state: dict[str, str]) -> pd.DataFrame:
    """The newest quarantined rows (of the chosen source)."""
    return cached(quarantined_rows, source=state.get("source") or None, limit=200)


@downloadable("health-reasons")
def reasons_frame(state: dict[str, str]) -> pd.DataFrame:
    """Quarantined rows per source and reason."""
    return cached(quarantine_counts)


@downloadable("health-runs")
def runs_frame(state: dict[str, str]) -> pd.DataFrame:
    """The latest runs of every source (or the chosen one)."""
    return cached(recent_runs, source=state.get("source") or None, limit=50)


@downloadable("health-tables")
def tables_frame(state: dict[str, str]) -> pd.DataFrame:
    """Rows per reporting table."""
    return cached(table_counts)


def _count(value: object) -> str:
    return "—" if value is None or pd.isna(value) else f"{int(value):,}"


def _table(frame: pd.DataFrame, id_: str, numeric: tuple[str, ...] = (),
           height: int | None = None, hidden: tuple[str, ...] = (),
           tooltips: dict[str, str] | None = None) -> dag.AgGrid:
    """The rows as one grid component with the headings a person reads.

    One component, not a cell per value: 250 rows of html cells were ~3,000 components,
    and the browser took 10-20 s to mount them (the queries take under 0.2 s). Long text and
    headings wrap, so at 1024 px no column is cut; `height` caps a long list (it scrolls
    down inside the panel, never sideways)."""
    columns = list(frame.columns)
    tooltips = tooltips or {}
    defs = []
    for c in columns:
        if c in hidden:  # in the row data for a tooltip, not a column of its own
            continue
        label = SHORT.get(c) or column_label(c, columns)
        col = {"field": c, "headerName": label, "tooltipField": tooltips.get(c, c)}
        if c in numeric:
            # Wide enough for its heading and its longest number: never cut to '24,…'.
            chars = max([len(label), *(len(str(v)) for v in frame[c])])
            col.update(type="rightAligned", minWidth=int(20 + 7.5 * chars), flex=0)
        else:
            col.update(minWidth=160 if c in WRAPPED else 110, flex=2 if c in WRAPPED else 1,
                       wrapText=True, autoHeight=True, cellClass="cx-wrap-cell")
        defs.append(col)
    records = frame.astype(object).where(frame.notna(), "").to_dict("records")
    return dag.AgGrid(
        id=id_, rowData=records, columnDefs=defs,
        defaultColDef={"sortable": True, "resizable": True, "suppressMovable": True,
                       "wrapHeaderText": True, "autoHeaderHeight": True},
        dashGridOptions={"domLayout": "normal" if height else "autoHeight",
                         "suppressCellFocus": True, "animateRows": False,
                         "tooltipShowDelay": 300},
        columnSize="responsiveSizeToFit",
        style={"width": "100%", **({"height": f"{height}px"} if height else {})},
        className="cx-grid",
    )


def _when(value: object) -> str:
    return "—" if value is None or pd.isna(value) else pd.Timestamp(value).strftime(
        "%d %b %Y %H:%M")


def _notes(raw: object) -> str:
    if raw is None or pd.isna(raw):
        return ""
    notes = json.loads(str(raw))
    return ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in sorted(notes.items())
                     if k != "rows_unchanged")


@callback(
    Output(f"{PREFIX}-sources", "children"),
    Output(f"{PREFIX}-reasons", "children"),
    Output(f"{PREFIX}-tables", "children"),
    Output(f"{PREFIX}-quarantine", "children"),
    Output(f"{PREFIX}-runs", "children"),
    Output(f"{PREFIX}-source-filter", "options"),
    Input(f"{PREFIX}-state", "data"),
)
def render(state: dict[str, str]):
    """Every panel of the page for the view state."""
    state = state or {}
    src = sources_frame(state)
    if src.empty:
        empty = dbc.Alert([html.Div("No data loaded yet", className="fw-semibold"),
                           "No source has run. Load data with `python -m etl run`, or start "
                           "the scheduler; this page then shows every run and what "
                           "validation rejected."], color="info", id=f"{PREFIX}-empty")
        return empty, None, None, None, None, []
    titles = source_titles(context.settings().cx_sources)
    cards = []
    for r in src.itertuples():
        badge = dbc.Badge(r.status, color=STATUS_COLOUR.get(r.status, "secondary"))
        stale = dbc.Badge("stale", color="warning", text_color="dark", className="ms-1") \
            if r.stale else None
        body = [
            html.Div([html.Strong(source_title(r.source, titles), className="me-2"),
                      html.Code(r.source, className="me-2 small"), badge, stale]),
            html.Div(f"last run {_when(r.finished_at or r.started_at)} · last success "
                     f"{_when(r.last_success)}", className="small text-muted"),
            html.Div(f"read {r.rows_read:,} · loaded {r.rows_inserted:,} · updated "
                     f"{r.rows_updated:,} · quarantined {r.rows_quarantined:,} · excluded "
                     f"{r.rows_excluded:,} · unchanged {r.rows_unchanged:,}", className="small"),
        ]
        if r.watermark is not None and not pd.isna(r.watermark):
            body.append(html.Div(f"watermark {r.watermark}", className="small text-muted"))
        if r.status in ("failed", "warning") and isinstance(r.error, str):
            body.append(html.Div(r.error[:400], className="small text-danger"
                                 if r.status == "failed" else "small text-warning-emphasis",
                                 id=f"{PREFIX}-{r.status}-{r.source}"))
        cards.append(dbc.Col(dbc.Card(dbc.CardBody(body), className="h-100",
                                      id=f"{PREFIX}-source-{r.source}"),
                             md=6, xl=4, className="mb-2"))
    sources = panel("Sources", dbc.Row(cards, className="g-2"), target="health-sources")

    reasons = reasons_frame(state)
    if reasons.empty:
        # An empty state in words, not an empty chart with axes.
        reasons_body = html.Div(
            [html.Div("Nothing quarantined", className="fw-semibold"),
             html.Div("Every row of every source passed validation.",
                      className="text-muted small")],
            className="py-3", id=f"{PREFIX}-reasons-empty")
    else:
        top = reasons.groupby("reason", as_index=False)["rows"].sum().nlargest(12, "rows")
        fig = go.Figure(go.Bar(
            x=top["rows"].tolist(), y=[plain(r[:70]) for r in top["reason"]], orientation="h",
            marker_color=BAD, hovertemplate="%{y}: %{x:,} rows<extra></extra>"))
        fig.update_yaxes(autorange="reversed", automargin=True)
        fig.update_xaxes(title="Rows", tickformat=",d", separatethousands=True)
        base_layout(fig, height=max(220, 40 + 26 * len(top)))
        reasons_body = dcc.Graph(figure=fig, id=f"{PREFIX}-reasons-fig",
                                 config={"displaylogo": False})
    reasons_panel = panel("Quarantine by reason", reasons_body, target="health-reasons")

    tables = tables_frame(state)
    tables_panel = panel("Rows per table", _table(
        pd.DataFrame({"holds": [TABLE_LABELS.get(t, t.replace("_", " ").capitalize())
                                for t in tables["table"]],
                      "table": tables["table"], "rows": tables["rows"].map(_count)}),
        f"{PREFIX}-tables-table", numeric=("rows",), hidden=("table",),
        tooltips={"holds": "table"}), target="health-tables")

    rows = quarantine_frame(state)
    if rows.empty:
        which = f" from {source_title(state['source'], titles)}" if state.get("source") else ""
        quarantine = panel("Quarantined rows", html.Div(
            f"No row{which} is waiting in quarantine.", className="text-muted",
            id=f"{PREFIX}-quarantine-empty"), target="health-quarantine")
    else:
        shown = rows.assign(
            where=[f"{f}:{int(line):,}" if pd.notna(line) else str(f)
                   for f, line in zip(rows["file"], rows["line"], strict=True)],
            created_at=rows["created_at"].map(_when),
            column=rows["column"].map(lambda c: "" if c is None or pd.isna(c) else str(c)),
            value=rows["value"].map(lambda v: "(empty)" if v is None or pd.isna(v) else str(v)),
            source=rows["source"].map(lambda v: source_title(v, titles)),
        )[["created_at", "source", "where", "column", "field", "value", "reason"]]
        quarantine = panel(f"Quarantined rows (newest {len(rows):,})",
                           _table(shown, f"{PREFIX}-quarantine-table",
                                  height=420 if len(shown) > 12 else None),
                           target="health-quarantine")

    runs = runs_frame(state)
    runs_shown = runs.assign(
        source=runs["source"].map(lambda v: source_title(v, titles)),
        started_at=runs["started_at"].map(_when),
        seconds=[f"{(pd.Timestamp(f) - pd.Timestamp(s)).total_seconds():,.1f}"
                 if pd.notna(f) else "—"
                 for s, f in zip(runs["started_at"], runs["finished_at"], strict=True)],
        # One text column: a failed run's error, else what the run noted.
        notes=[str(e)[:160] if e is not None and not pd.isna(e) else _notes(n)
               for e, n in zip(runs["error"], runs["notes"], strict=True)],
        **{c: runs[c].map(_count) for c in RUN_COUNTS},
    )[["source", "started_at", "status", *RUN_COUNTS, "seconds", "notes"]]
    runs_panel = panel("Latest runs", _table(runs_shown, f"{PREFIX}-runs-table",
                                             numeric=(*RUN_COUNTS, "seconds"),
                                             height=420 if len(runs_shown) > 12 else None),
                       target="health-runs")
    options = [{"label": f"{source_title(s, titles)} ({s})", "value": s} for s in src["source"]]
    return sources, reasons_panel, tables_panel, quarantine, runs_panel, options


@callback(
    Output("app-url", "search", allow_duplicate=True),
    Input(f"{PREFIX}-source-filter", "value"),
    State("app-url", "search"),
    prevent_initial_call=True,
)
def choose_source(source: str | None, search: str | None) -> str:
    """The source filter is page state: write it to the URL."""
    state = parse_search(search)
    if (state.get("source") or None) == (source or None):
        return dash.no_update
    state["source"] = source or ""
    return to_search(state)


