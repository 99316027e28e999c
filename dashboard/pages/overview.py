"""Executive overview: the KPI cards, what disagrees, and how fresh the data is."""

from __future__ import annotations

import datetime as dt

import dash
import dash_bootstrap_components as dbc
import pandas as pd
from dash import Input, Output, State, callback, dcc, html

from dashboard import context
from dashboard.components.download import download_buttons, downloadable, panel
from dashboard.components.kpi_card import kpi_card
from dashboard.components.kpi_table import TABLE_NOTE, kpi_table, signals_box
from dashboard.data import (
    benchmark,
    cached,
    current_scope,
    kpi_settings,
    resolve_period,
    scope_name,
)
from dashboard.state import filters_of
from queries.benchmark import company_benchmark
from queries.cases import case_counts
from queries.formatting import decimals, fmt_significance, fmt_value
from queries.health import freshness, source_title, source_titles
from queries.kpis import kpis, org_units
from queries.signals import assess
from queries.trends import kpi_trend

dash.register_page(__name__, path="/", name="Overview", title="Overview · CX dashboard", order=0)

PREFIX = "overview"
HEADLINE = ("nps", "csat", "ces", "retention", "active_members", "engagement", "revenue")


def layout(**query: str) -> html.Div:
    """The page skeleton; the view state (from the URL) drives the callback below."""
    return html.Div(
        [
            dcc.Store(id=f"{PREFIX}-state", data=query),
            html.Div(id=f"{PREFIX}-freshness", className="mb-2"),
            dbc.Row(
                [
                    dbc.Col(html.H1("Executive overview", className="h4 mb-0"), width="auto"),
                    dbc.Col(html.Div(id=f"{PREFIX}-caption", className="text-muted")),
                    dbc.Col(html.Div([
                        dbc.Button("Download PDF", id=f"{PREFIX}-pdf", color="primary",
                                   outline=True, size="sm",
                                   title="The printable report of this view, as the monthly "
                                         "email sends it"),
                        dcc.Loading(dcc.Download(id=f"{PREFIX}-pdf-download"), type="dot"),
                        html.Div(id=f"{PREFIX}-pdf-error", className="small text-danger"),
                    ], className="d-flex align-items-center gap-2"), width="auto",
                        className="d-print-none"),
                ],
                className="align-items-center mb-2 g-2",
            ),
            dcc.Loading(html.Div(id=f"{PREFIX}-signals"), type="dot", delay_show=300),
            dcc.Loading(html.Div(id=f"{PREFIX}-kpis", className="mb-3"), type="dot",
                        delay_show=300),
            dcc.Loading(html.Div(id=f"{PREFIX}-more"), type="dot", delay_show=300),
            html.Div(id=f"{PREFIX}-cases", className="small mt-2"),
        ]
    )


def kpi_set(state: dict[str, str]) -> list:
    """The KPIs of the view state (cached)."""
    period, compare = resolve_period(state)
    return cached(kpis, period=period, compare=compare, filters=filters_of(state),
                  settings=kpi_settings())


@downloadable("overview-kpis")
def kpi_frame(state: dict[str, str]) -> pd.DataFrame:
    """Every KPI of the view as rows: what the cards and the table show."""
    rows = []
    for k in kpi_set(state):
        rows.append({
            "kpi": k.label, "period": k.period, "value": k.value, "shown": fmt_value(k),
            "n": k.n, "margin_95": k.moe, "compare_period": k.compare_period,
            "compare_value": k.compare.value if k.compare else None, "change": k.delta,
            "z": k.compare.z if k.compare else None, "significant": k.significant,
            "test": fmt_significance(k),
            "yoy_period": k.yoy.period if k.yoy else None,
            "yoy_change": k.yoy.delta if k.yoy else None,
            "yoy_significant": k.yoy.significant if k.yoy else None,
            "yoy_test": fmt_significance(k, second=True),
            "not_applicable": k.not_applicable or "",
            "low_sample": k.low_sample, "hidden": k.hidden,
            "filters_not_applied": ", ".join(k.ignored_filters),
        })
    frame = pd.DataFrame(rows)
    # Each row its own measure: the file rounds each as its card shows it.
    frame.attrs["row_decimals"] = [decimals(k.key, k.unit) for k in kpi_set(state)]
    return frame


@downloadable("overview-trend")
def trend_frame(state: dict[str, str]) -> pd.DataFrame:
    """The 13 months behind the cards' sparklines (values, n and margins)."""
    period, _ = resolve_period(state)
    if period is None:
        return pd.DataFrame()
    return cached(kpi_trend, end=period, months=13, filters=filters_of(state),
                  active_days=context.settings().cx_active_days)


def _freshness_banner() -> html.Div:
    s = context.settings()
    items = cached(freshness, stale_hours=s.cx_stale_hours)
    if not items:
        return dbc.Alert("No data has been loaded yet: run `python -m etl run`.", color="info",
                         id=f"{PREFIX}-no-data")
    newest = max((f.last_success for f in items if f.last_success), default=None)
    titles = source_titles(s.cx_sources)
    parts: list = []
    for f in items:
        # The display name people know; the source id (what `etl run` takes) on hover.
        parts += [", " if parts else "", html.Span(
            f"{source_title(f.source, titles)} "
            + (f"{f.last_success:%d %b %H:%M}" if f.last_success else "never"),
            title=f"source {f.source}")]
    line = html.Div(
        [("Data loaded " + newest.strftime("%d %b %Y %H:%M") if newest
          else "No successful load") + " · ", *parts],
        className="cx-freshness small text-muted", id=f"{PREFIX}-freshness-line")
    bad = [f for f in items if f.failed or f.stale or f.warning]
    if not bad:
        return line

    def why(f) -> str:
        detail = f" ({f.last_error[:140]})" if f.last_error else ""
        if f.failed:
            return "last run failed" + detail
        if f.warning:
            # Loaded, but so many rows were quarantined that the figures may mislead.
            return "last run quarantined too many rows" + detail
        return f"no successful load for over {s.cx_stale_hours} hours"

    words = "; ".join(f"{source_title(f.source, titles)}: {why(f)}" for f in bad)
    return html.Div([dbc.Alert([html.Strong("Some data may be out of date. "), words],
                               color="warning", className="py-2 mb-1",
                               id=f"{PREFIX}-stale"), line])


@callback(
    Output(f"{PREFIX}-kpis", "children"),
    Output(f"{PREFIX}-signals", "children"),
    Output(f"{PREFIX}-more", "children"),
    Output(f"{PREFIX}-caption", "children"),
    Output(f"{PREFIX}-freshness", "children"),
    Input(f"{PREFIX}-state", "data"),
)
def render(state: dict[str, str]):
    """Cards, signals and the full KPI table for the view state."""
    state = state or {}
    fresh = _freshness_banner()
    period, compare = resolve_period(state)
    if period is None:
        return (dbc.Alert("No survey or sales data yet. Load data with `python -m etl run` "
                          "(or `make run` for the demo).", color="info"), None, None, None,
                fresh)
    items = kpi_set(state)
    s = context.settings()
    trend = trend_frame(state)
    by_key = {k.key: k for k in items}
    cards = dbc.Row(
        [dbc.Col(kpi_card(by_key[k], PREFIX, trend=trend, target=s.targets.get(k)),
                 xs=12, sm=6, lg=3, xxl=True, className="mb-3") for k in HEADLINE],
        className="g-3",
    )
    signal_box = signals_box(assess(items), f"{PREFIX}-signals-box")
    table = kpi_table(items, id_=f"{PREFIX}-table")
    more = panel("Every measure", html.Div([table, html.Div(
        TABLE_NOTE, className="small text-muted mt-1"),
        html.Div([html.Span("The 13 months behind the sparklines:",
                            className="small text-muted me-1"),
                  download_buttons("overview-trend")], className="d-flex align-items-center")]),
        target="overview-kpis")
    caption = f"{scope_name(state)} · {period.label} against {compare.label}"
    return cards, html.Div([signal_box, _benchmark_line(period)]), more, caption, fresh


def _benchmark_line(period) -> html.Div | None:
    """The company's NPS, CSAT and CES beside a manager's own: the one company-wide figure a
    scoped view shows (queries.benchmark)."""
    if current_scope() is None:
        return None
    items = benchmark(company_benchmark, period=period, settings=kpi_settings())
    words = " · ".join(f"{k.label} {fmt_value(k)} (n = {k.n:,})" for k in items)
    return html.Div(f"Company benchmark, {period.label}: {words}",
                    className="small text-muted mb-2", id=f"{PREFIX}-benchmark")


@callback(
    Output(f"{PREFIX}-pdf-download", "data"),
    Output(f"{PREFIX}-pdf-error", "children"),
    Input(f"{PREFIX}-pdf", "n_clicks"),
    State(f"{PREFIX}-state", "data"),
    prevent_initial_call=True,
    running=[(Output(f"{PREFIX}-pdf", "disabled"), True, False)],
)
def download_pdf(clicks: int | None, state: dict[str, str]):
    """Render the report of this view in the signed-in user's scope (same page, numbers and
    bounded renderer as the monthly email); "busy, try again" when the renderer is full."""
    from flask import current_app
    from flask import request as http

    from auth.web import current_principal
    from queries.scope import Scope, ScopeError, apply_scope
    from reports.renderer import RenderBusy, SnapshotError, render_audited, web_queue
    from reports.token import ReportRequest

    state = state or {}
    period, _ = resolve_period(state)
    if not clicks or period is None:
        return dash.no_update, "No data to print yet."
    scope = current_scope()
    if scope is None:  # every unit: the top of the tree
        scope = Scope.of([str(u["id"]) for u in cached(org_units) if u["parent_id"] is None])
    view = filters_of(state)
    try:
        with context.engine().connect() as conn:
            apply_scope(conn, view, scope)
    except ScopeError:
        return dash.no_update, "That unit is outside what you may see."
    filters = {k: v for k, v in view.active().items()}
    user = current_principal()
    names = {str(u["id"]): str(u["name"]) for u in cached(org_units)}
    label = "Scope: " + ", ".join(names.get(u, u) for u in scope.units)
    request = ReportRequest(scope=scope, period=period, filters=filters,
                            label=label + (f" · for {user.email}" if user else ""))
    # Rendered against a loopback server of this very app, started by this worker: never
    # against an address from the request (its Host header is the client's to choose).
    queue = web_queue(current_app._get_current_object(), context.settings())
    who = f"user:{user.email}" if user else f"ip:{http.remote_addr}"
    try:
        pdf = render_audited(context.engine(), queue, request, who=who,
                             actor=user.email if user else None,
                             user_id=user.user_id if user else None,
                             target=f"overview {period}")
    except RenderBusy as exc:
        return dash.no_update, str(exc)
    except SnapshotError as exc:
        return dash.no_update, f"The PDF could not be made: {exc}"
    name = "-".join(["cx-snapshot", str(period), *filters.values()]) + ".pdf"
    return dcc.send_bytes(pdf, name), None


@callback(Output(f"{PREFIX}-cases", "children"), Input(f"{PREFIX}-state", "data"))
def render_cases(state: dict[str, str]):
    """Follow-up of detractors in the view's scope: open and overdue cases now, and the
    median time to close over the last 90 days."""
    counts = cached(case_counts, filters=filters_of(state or {}),
                    as_of=dt.datetime.now().replace(second=0, microsecond=0))
    median = (f"median time to close {counts.median_hours_to_close:.0f} h "
              f"({counts.closed:,} closed in {counts.days} days)"
              if counts.median_hours_to_close is not None
              else f"none closed in {counts.days} days")
    return html.Div([
        html.Span("Follow-up of detractors: ", className="fw-semibold"),
        html.Span(f"{counts.open:,} open", id=f"{PREFIX}-cases-open"), " · ",
        html.Span(f"{counts.overdue:,} overdue", id=f"{PREFIX}-cases-overdue",
                  className="text-danger fw-semibold" if counts.overdue else ""),
        f" · {median} · ", dcc.Link("Cases", href="/cases"),
    ])
