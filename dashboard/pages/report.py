"""The printable report (hidden from the navbar): what a subscriber's PDF shows.

Opened only with a signed token (`dashboard.report_token`) that carries the recipient's
scope; every number is computed inside that scope, in SQL, from the same `queries/`
functions as the screen. The whole page is built by the layout function, without callbacks,
so 'ready' means: every graph drawn. `assets/report.js` raises that signal for the PDF
renderer.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import replace

import dash
import dash_bootstrap_components as dbc
import plotly.graph_objects as go
from dash import dcc, html

from dashboard import context
from dashboard.components.theme import GROUP_COLOURS, NEUTRAL, base_layout
from dashboard.data import cached, kpi_settings
from dashboard.report_token import ReportRequest, TokenError, read_token
from dashboard.state import filters_of
from queries.employees import engagement_by_unit
from queries.formatting import fmt_delta, fmt_moe, fmt_value
from queries.health import freshness
from queries.kpis import Kpi, kpis, latest_wave, org_units
from queries.links import key_drivers, revenue_after_survey
from queries.scope import ScopeError, apply_scope
from queries.signals import disagreements
from queries.trends import kpi_trend

dash.register_page(__name__, path="/report", name="Report", title="CX snapshot",
                   hidden=True)

PREFIX = "report"
GRAPH = {"displayModeBar": False, "staticPlot": True}


def layout(t: str | None = None, **_: str) -> html.Div:
    """The report for the token's scope and period (or a refusal)."""
    try:
        req = read_token(context.settings().secret(), t)
    except TokenError as exc:
        return dbc.Alert(f"This report link cannot be opened: {exc}.", color="danger",
                         id=f"{PREFIX}-refused")
    try:
        return build(req)
    except ScopeError as exc:
        return dbc.Alert(f"Not in this report's scope: {exc}.", color="danger",
                         id=f"{PREFIX}-refused")


def _unit_names() -> dict[str, str]:
    return {str(u["id"]): str(u["name"]) for u in cached(org_units)}


def _kpi_table(items: list[Kpi]) -> dbc.Table:
    head = html.Thead(html.Tr([html.Th(h) for h in (
        "Measure", "Value", "n", "95% margin", "vs previous month", "vs a year ago")]))
    rows = []
    for k in items:
        yoy = replace(k, compare=k.yoy)
        flag = " (low sample)" if k.low_sample else ""
        rows.append(html.Tr([
            html.Td(k.label), html.Td(fmt_value(k) + flag, id=f"{PREFIX}-{k.key}-value"),
            html.Td(f"{k.n:,}"), html.Td(fmt_moe(k)),
            html.Td(fmt_delta(k) + (" significant" if k.significant else "")),
            html.Td(fmt_delta(yoy) + (" significant" if yoy.significant else "")),
        ]))
    return dbc.Table([head, html.Tbody(rows)], size="sm", bordered=False, striped=True,
                     className="report-kpis mb-0", id=f"{PREFIX}-kpis")


def _trend_figure(trend) -> go.Figure:
    fig = go.Figure()
    data = trend.dropna(subset=["nps"])
    fig.add_trace(go.Scatter(x=data["label"].tolist(), y=[float(v) for v in data["nps"]],
                             name="NPS", mode="lines+markers",
                             error_y={"type": "data", "array": [float(v) for v in
                                                                data["nps_moe"]],
                                      "color": NEUTRAL, "thickness": 1}))
    data = trend.dropna(subset=["csat"])
    fig.add_trace(go.Scatter(x=data["label"].tolist(), y=[float(v) for v in data["csat"]],
                             name="CSAT %", mode="lines+markers"))
    return base_layout(fig, title="NPS and CSAT, last 13 months (bars: 95% margin)",
                       height=260)


def build(req: ReportRequest) -> html.Div:
    """Every section of the report, computed inside the request's scope."""
    settings = context.settings()
    names = _unit_names()
    with context.engine().connect() as conn:
        filters = apply_scope(conn, filters_of(req.filters), req.scope)
    period = req.period
    items = cached(kpis, period=period, compare=period.shift(-1), filters=filters,
                   settings=kpi_settings())
    trend = cached(kpi_trend, end=period, months=13, filters=filters,
                   active_days=settings.cx_active_days)
    scope_label = ", ".join(names.get(u, u) for u in req.scope.units)
    if isinstance(filters.unit, str) and filters.unit not in req.scope.units:
        scope_label += f" · showing {names.get(filters.unit, filters.unit)}"
    shown_filters = {k: v for k, v in filters.active().items() if k != "unit"}
    fresh = cached(freshness, stale_hours=settings.cx_stale_hours)
    stale = [f for f in fresh if f.failed or f.stale]
    newest = max((f.last_success for f in fresh if f.last_success), default=None)
    graphs: list[dcc.Graph] = []

    def graph(fig: go.Figure, gid: str) -> dcc.Graph:
        g = dcc.Graph(figure=fig, config=GRAPH, id=f"{PREFIX}-{gid}", className="report-graph")
        graphs.append(g)
        return g

    header = html.Div([
        html.H1(f"CX snapshot · {period.label}", className="h4 mb-0"),
        html.Div(f"Scope: {scope_label}" + (f" · filters: {shown_filters}" if shown_filters
                                             else "") + f" · compared with "
                 f"{period.shift(-1).label} and {period.shift(-12).label}",
                 id=f"{PREFIX}-scope", className="small"),
        html.Div(("Data loaded " + newest.strftime("%d %b %Y %H:%M") if newest
                  else "No successful load") + " · generated "
                 + dt.datetime.now().strftime("%d %b %Y %H:%M"),
                 className="small text-muted", id=f"{PREFIX}-freshness"),
    ], className="report-header mb-2")
    sections = [header]
    if stale:
        sections.append(dbc.Alert(
            "Some data may be out of date: " + "; ".join(
                f"{f.source} ({'last run failed' if f.failed else 'no recent load'})"
                for f in stale), color="warning", className="py-1 small",
            id=f"{PREFIX}-stale"))
    signals = disagreements(items)
    sections.append(html.Div([
        html.H2("Signals that disagree", className="h6"),
        html.Ul([html.Li(s.text) for s in signals], id=f"{PREFIX}-signals") if signals
        else html.P("None this month: no significant change points against another.",
                    id=f"{PREFIX}-signals"),
    ], className="report-section"))
    sections.append(html.Div([
        html.H2("Key measures", className="h6"), _kpi_table(items),
        html.Div("Margins are 95% intervals. 'significant': the change is unlikely to be noise "
                 "(95%). Counts (members, revenue) are complete, not samples.",
                 className="small text-muted"),
    ], className="report-section"))
    trend_block = html.Div(graph(_trend_figure(trend), "trend"), className="report-section")

    # Revenue: answers of the 12 months to the period whose 180-day window is observed.
    link = cached(revenue_after_survey, start=period.shift(-11).start, end=period.end,
                  window_days=settings.cx_revenue_days, churn_days=settings.cx_active_days,
                  **_link_filters(filters))
    groups = [g for g in (link.promoter, link.passive, link.detractor) if g.n]
    rev_children: list = [html.H2("Customers' revenue after they answered", className="h6")]
    if groups:
        fig = go.Figure(go.Bar(
            x=[g.group.capitalize() for g in groups], y=[g.mean for g in groups],
            marker_color=[GROUP_COLOURS[g.group] for g in groups],
            error_y={"type": "data", "symmetric": False,
                     "array": [g.high - g.mean for g in groups],
                     "arrayminus": [g.mean - g.low for g in groups]},
            text=[f"£{g.mean:,.0f} (n={g.n:,})" for g in groups], textposition="outside"))
        fig.update_yaxes(title=f"£ in the {settings.cx_revenue_days} days after")
        rev_children.append(graph(base_layout(fig, height=260), "revenue"))
        gap = link.gap
        words = [f"Promoters spent £{gap.diff:,.0f} more than detractors"
                 f" (95% CI £{gap.low:,.0f} to £{gap.high:,.0f}"
                 + (", significant)." if gap.significant else ", not significant).")
                 if gap and gap.diff is not None else "Too few linked answers to compare.",
                 f" Revenue at risk from detractors: £{link.revenue_at_risk:,.0f}."
                 if link.revenue_at_risk is not None else ""]
        rev_children.append(html.P("".join(words), className="small", id=f"{PREFIX}-gap"))
    else:
        rev_children.append(html.P("No survey answers linked to loyalty members with a full "
                                   "revenue window yet.", className="small text-muted"))
    sections.append(dbc.Row([dbc.Col(trend_block, width=6),
                             dbc.Col(html.Div(rev_children, className="report-section"),
                                     width=6)], className="report-break"))

    # Employees: the scope's units one level down, with anonymity rules applied.
    emp_children: list = [html.H2("Employee engagement", className="h6")]
    parent = filters.unit if isinstance(filters.unit, str) else None
    wave = None
    if parent:
        with context.engine().connect() as conn:
            wave = latest_wave(conn, before=period.end, unit=parent)
    if parent and wave:
        frame = cached(engagement_by_unit, wave=wave, parent=parent,
                       anonymity_min=settings.cx_anonymity_min)
        if not frame.empty:
            shown = frame[~frame["hidden"]]
            hidden = frame[frame["hidden"]]
            if not shown.empty:
                fig = go.Figure(go.Bar(
                    y=shown["name"].tolist(), x=[float(v) for v in shown["engagement"]],
                    orientation="h", marker_color="#0072B2",
                    error_x={"type": "data",
                             "array": [float(v) for v in shown["engagement_moe"]]}))
                fig.update_xaxes(title="% favourable", range=[0, 100])
                emp_children.append(graph(base_layout(
                    fig, title=f"Wave of {wave:%B %Y}", height=max(220, 90 + 34 * len(shown))),
                    "engagement"))
            if not hidden.empty:
                emp_children.append(html.P(
                    "Hidden to protect anonymity: " + ", ".join(hidden["name"]) + ".",
                    className="small text-muted"))
        else:
            emp_children.append(html.P("No units below this one.", className="small"))
    else:
        emp_children.append(html.P("No engagement wave for this scope yet, or the scope spans "
                                   "several units (see their own reports).",
                                   className="small text-muted"))

    drivers = cached(key_drivers, start=period.shift(-2).start, end=period.end,
                     outcome="nps", **_link_filters(filters))
    drv_children: list = [html.H2("What drives NPS (last 3 months)", className="h6")]
    if drivers.frame is not None and not drivers.frame.empty:
        top = drivers.frame.head(5)
        drv_children.append(dbc.Table(
            [html.Thead(html.Tr([html.Th(h) for h in ("Attribute", "Importance (% of R²)",
                                                      "Performance (mean 1-5)", "n")])),
             html.Tbody([html.Tr([html.Td(str(r.attribute).replace("_", " ").capitalize()),
                                  html.Td(f"{r.importance:.0f}%"),
                                  html.Td(f"{r.performance:.2f}"), html.Td(f"{int(r.n):,}")])
                         for r in top.itertuples()])],
            size="sm", striped=True, className="mb-0", id=f"{PREFIX}-drivers"))
        drv_children.append(html.Div(f"R² = {drivers.r_squared:.2f} on {drivers.n:,} complete "
                                     "answers.", className="small text-muted"))
    else:
        drv_children.append(html.P("Too few rated answers for a driver analysis.",
                                   className="small text-muted"))
    sections.append(dbc.Row([dbc.Col(html.Div(emp_children, className="report-section"),
                                     width=6),
                             dbc.Col(html.Div(drv_children, className="report-section"),
                                     width=6)], className="report-section"))

    return html.Div(sections, id="report-root", className="report",
                    **{"data-graphs": str(len(graphs)), "data-period": str(period)})


def _link_filters(filters) -> dict:
    return {k: v for k, v in (("unit", filters.unit), ("segment", filters.segment),
                              ("channel", filters.channel), ("device", filters.device),
                              ("interaction", filters.interaction),
                              ("touchpoint", filters.touchpoint)) if v}

