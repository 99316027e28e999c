"""The printable report (hidden from the navbar): what a subscriber's PDF shows.

Opened only with a signed token (`dashboard.report_token`) that carries the recipient's
scope; every number is computed inside that scope, in SQL, from the same `queries/`
functions as the screen. The whole page is built by the layout function, without callbacks,
so 'ready' means: every graph drawn. `assets/report.js` raises that signal for the PDF
renderer.
"""

from __future__ import annotations

import datetime as dt

import dash
import dash_bootstrap_components as dbc
import plotly.graph_objects as go
from dash import dcc, html
from plotly.subplots import make_subplots

from dashboard import context
from dashboard.components.kpi_card import kpi_card
from dashboard.components.kpi_table import TABLE_NOTE, kpi_table, signals_box
from dashboard.components.theme import GOOD, GROUP_COLOURS, NEUTRAL, base_layout, plain
from dashboard.components.topics import detractor_topics
from dashboard.data import cached, kpi_settings
from dashboard.report_token import ReportRequest, TokenError, read_token
from dashboard.state import filters_of
from queries.comment_topics import topic_summary
from queries.employees import engagement_by_unit
from queries.formatting import (
    attribute_label,
    currency_symbol,
    figure_label,
    fmt_money,
    money,
    money_affixes,
    number,
)
from queries.health import freshness
from queries.kpis import kpis, latest_wave, org_units, second_comparison
from queries.links import MEASURES, key_drivers, revenue_after_survey, value_by_nps_group
from queries.scope import ScopeError, apply_scope
from queries.signals import assess
from queries.trends import kpi_trend

dash.register_page(__name__, path="/report", name="Report", title="CX snapshot",
                   hidden=True)

PREFIX = "report"
GRAPH = {"displayModeBar": False, "staticPlot": True}
GROUP_NAMES = {"promoter": "Promoters (9–10)", "passive": "Passives (7–8)",
               "detractor": "Detractors (0–6)"}
FILTER_NAMES = {"segment": "segment", "channel": "channel", "device": "device",
                "interaction": "interaction", "touchpoint": "touchpoint"}


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


HEADLINE = ("nps", "csat", "ces", "retention", "active_members", "engagement", "revenue")


def _trend_figure(trend) -> go.Figure:
    """NPS (points) and CSAT (%) in two panels, each with its own titled axis: one axis for
    both would put points and percentages on one unlabelled scale."""
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.12)
    data = trend.dropna(subset=["nps"])
    fig.add_trace(go.Scatter(
        x=data["label"].tolist(), y=[float(v) for v in data["nps"]], name="NPS",
        mode="lines+markers", line={"color": GOOD},
        error_y={"type": "data", "array": [float(v) if v == v else 0 for v in data["nps_moe"]],
                 "color": NEUTRAL, "thickness": 1, "width": 3}), row=1, col=1)
    data = trend.dropna(subset=["csat"])
    fig.add_trace(go.Scatter(
        x=data["label"].tolist(), y=[float(v) for v in data["csat"]], name="CSAT",
        mode="lines+markers", line={"color": "#E69F00"},
        error_y={"type": "data", "array": [float(v) if v == v else 0
                                           for v in data["csat_moe"]],
                 "color": NEUTRAL, "thickness": 1, "width": 3}), row=2, col=1)
    fig.update_yaxes(title_text="NPS (points)", row=1, col=1)
    fig.update_yaxes(title_text="CSAT (% satisfied)", ticksuffix="%", row=2, col=1)
    fig.update_xaxes(tickangle=-45, tickfont={"size": 10}, row=2, col=1)
    base_layout(fig, height=290)
    fig.update_layout(showlegend=False, margin={"l": 56, "r": 12, "t": 8, "b": 56})
    return fig


def _revenue_figure(groups, days: int) -> go.Figure:
    """Revenue per answer by NPS group: value labels inside the bars, at their base, so the
    error-bar caps at the top never cross them; a money axis (CX_CURRENCY)."""
    fig = go.Figure(go.Bar(
        x=[GROUP_NAMES[g.group] for g in groups], y=[g.mean for g in groups],
        marker_color=[GROUP_COLOURS[g.group] for g in groups],
        error_y={"type": "data", "symmetric": False, "color": "#343a40", "thickness": 1.5,
                 "width": 6,
                 # A group of one answer has no interval: no bar, rather than a crash.
                 "array": [None if g.high is None or g.mean is None else g.high - g.mean
                           for g in groups],
                 "arrayminus": [None if g.low is None or g.mean is None else g.mean - g.low
                                for g in groups]},
        text=[f"{fmt_money(g.mean, per_head=True)}<br>n = {g.n:,}" for g in groups],
        textposition="inside",
        insidetextanchor="start", textfont={"color": "white", "size": 11}))
    fig.update_yaxes(title=f"{currency_symbol()} per answer, {days} days after",
                     **money_affixes(), separatethousands=True, rangemode="tozero")
    base_layout(fig, height=230)
    fig.update_layout(showlegend=False, bargap=0.35, margin={"l": 64, "r": 12, "t": 8,
                                                             "b": 32})
    return fig


def _risk_card(link) -> dbc.Card:
    """Revenue at risk beside the KPIs, labelled and computed as on the revenue page."""
    gap = link.churn_gap
    detail = (f"detractors' extra churn ({100 * gap.diff:+.1f} pts vs promoters) × their "
              f"{fmt_money(link.detractor_revenue)} in the {link.window_days} days after "
              "answering" if gap.diff is not None else "too few promoters or detractors")
    return dbc.Card(dbc.CardBody([
        html.Div(figure_label("revenue_at_risk"), className="kpi-label",
                 id=f"{PREFIX}-card-at-risk-label"),
        html.Div(fmt_money(link.revenue_at_risk), className="kpi-value",
                 id=f"{PREFIX}-card-at-risk"),
        html.Div(detail, className="kpi-sample text-muted"),
        html.Div("" if gap.significant else "churn gap not significant: indicative"
                 if gap.significant is False else "", className="kpi-change text-muted"),
    ]), className="kpi-card h-100", id=f"{PREFIX}-risk-card")


def _filter_words(filters) -> str:
    shown = {k: v for k, v in filters.active().items() if k != "unit"}
    if not shown:
        return "all customers, channels and touchpoints"
    return ", ".join(f"{FILTER_NAMES.get(k, k)} {str(v).replace('_', ' ')}"
                     for k, v in shown.items())


def build(req: ReportRequest) -> html.Div:
    """Every section of the report, computed inside the request's scope: page 1 the KPI cards
    and the signals, then the table of every measure, trends, revenue, employees, drivers.
    The running head (scope, filters, comparisons) repeats on every printed page."""
    settings = context.settings()
    names = _unit_names()
    with context.engine().connect() as conn:
        filters = apply_scope(conn, filters_of(req.filters), req.scope)
    period = req.period
    compare = period.shift(-1)
    second = second_comparison(period, compare)
    items = cached(kpis, period=period, compare=compare, filters=filters,
                   settings=kpi_settings())
    by_key = {k.key: k for k in items}
    trend = cached(kpi_trend, end=period, months=13, filters=filters,
                   active_days=settings.cx_active_days)
    scope_label = ", ".join(names.get(u, u) for u in req.scope.units)
    if isinstance(filters.unit, str) and filters.unit not in req.scope.units:
        scope_label += f" · showing {names.get(filters.unit, filters.unit)}"
    fresh = cached(freshness, stale_hours=settings.cx_stale_hours)
    stale = [f for f in fresh if f.failed or f.stale or f.warning]
    newest = max((f.last_success for f in fresh if f.last_success), default=None)
    graphs: list[dcc.Graph] = []

    def graph(fig: go.Figure, gid: str) -> dcc.Graph:
        g = dcc.Graph(figure=fig, config=GRAPH, id=f"{PREFIX}-{gid}", className="report-graph")
        graphs.append(g)
        return g

    scope_line = (f"Scope: {scope_label} · {_filter_words(filters)} · {period.label} compared "
                  f"with {compare.label} and {second.label}")
    running_head = html.Div([html.Span(f"CX snapshot · {period.label}", className="fw-semibold"),
                             html.Span(" · " + scope_line)],
                            className="report-running small text-muted", id=f"{PREFIX}-running")
    header = html.Div([
        html.H1(f"CX snapshot · {period.label}", className="h4 mb-0"),
        html.Div(scope_line, id=f"{PREFIX}-scope", className="small"),
        html.Div(("Data loaded " + newest.strftime("%d %b %Y %H:%M") if newest
                  else "No successful load") + " · generated "
                 + dt.datetime.now().strftime("%d %b %Y %H:%M"),
                 className="small text-muted", id=f"{PREFIX}-freshness"),
    ], className="report-header mb-2")
    page1: list = [header]
    if stale:
        page1.append(dbc.Alert(
            "Some data may be out of date: " + "; ".join(
                f"{f.source} ({_why_stale(f)})"
                for f in stale), color="warning", className="py-1 small",
            id=f"{PREFIX}-stale"))
    # Revenue: answers of the 12 months to the period whose 180-day window is observed.
    days = settings.cx_revenue_days
    link = cached(revenue_after_survey, start=period.shift(-11).start, end=period.end,
                  window_days=days, churn_days=settings.cx_active_days,
                  **_link_filters(filters))
    cards = [dbc.Col(kpi_card(by_key[key], PREFIX, trend=trend,
                              target=settings.targets.get(key)), width=3, className="mb-2")
             for key in HEADLINE]
    cards.append(dbc.Col(_risk_card(link), width=3, className="mb-2"))
    page1.append(dbc.Row(cards, className="g-2 report-cards"))
    sparks = sum(len(_graphs_in(c)) for c in cards)
    # Side by side, so the one-pager stays one page.
    page1.append(dbc.Row([
        dbc.Col(signals_box(assess(items), f"{PREFIX}-signals", expanded=True), width=7),
        dbc.Col(detractor_topics_block(filters, period), width=5, className="small"),
    ], className="g-3"))

    table = html.Div([
        html.H2(f"Every measure · {period.label}", className="h6"),
        kpi_table(items, id_=f"{PREFIX}-kpis", compact=True),
        html.Div(TABLE_NOTE, className="small text-muted"),
    ], className="report-section report-break")
    trend_block = html.Div([
        html.H2("NPS and CSAT, last 13 months", className="h6"),
        graph(_trend_figure(trend), "trend"),
        html.Div("Bars: 95% intervals.", className="small text-muted"),
    ], className="report-section")

    groups = [g for g in (link.promoter, link.passive, link.detractor) if g.n]
    rev_children: list = [html.H2(f"Revenue in the {days} days after answering, by NPS group",
                                  className="h6")]
    if groups:
        rev_children.append(graph(_revenue_figure(groups, days), "revenue"))
        gap = link.gap
        rev_children.append(html.P(
            f"Promoters spent {fmt_money(abs(gap.diff or 0), per_head=True)} "
            f"{'more' if (gap.diff or 0) >= 0 else 'less'} per answer than detractors (95% CI "
            f"{fmt_money(gap.low, per_head=True)} to {fmt_money(gap.high, per_head=True)}, "
            + ("significant)." if gap.significant else "not significant).")
            if gap.diff is not None else "Too few linked answers to compare promoters with "
                                         "detractors.", className="small mb-1",
            id=f"{PREFIX}-gap"))
        rev_children.append(html.Div([
            html.Div([html.Span(figure_label("revenue_at_risk") + ": ",
                                id=f"{PREFIX}-at-risk-label"),
                      html.Strong(fmt_money(link.revenue_at_risk), id=f"{PREFIX}-at-risk")]),
            html.Div([html.Span(figure_label("detractor_revenue") + ": ",
                                id=f"{PREFIX}-detractor-revenue-label"),
                      html.Strong(fmt_money(link.detractor_revenue),
                                  id=f"{PREFIX}-detractor-revenue")]),
            html.Div("Revenue at risk = detractors' extra churn over promoters × their "
                     "revenue.", className="text-muted"),
        ], className="small", id=f"{PREFIX}-risk"))
    else:
        rev_children.append(html.P("No survey answers linked to loyalty members with a full "
                                   "revenue window yet.", className="small text-muted"))
    sections = [*page1, table,
                dbc.Row([dbc.Col(trend_block, width=6),
                         dbc.Col(html.Div(rev_children, className="report-section"), width=6)],
                        className="report-section"),
                _value_section(period, filters, settings.cx_revenue_days)]
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
                    y=[plain(n) for n in shown["name"]],
                    x=[float(v) for v in shown["engagement"]],
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
    # No model (too few complete answers in a small scope) leaves r_squared None and every
    # importance NaN: say so instead of printing "nan%".
    if drivers.r_squared is not None and drivers.frame is not None \
            and not drivers.frame.empty:
        top = drivers.frame.head(5)
        drv_children.append(dbc.Table(
            [html.Thead(html.Tr([html.Th(h) for h in (
                "Attribute", "Share of what the ratings explain", "Average rating (1-5)",
                "n")])),
             html.Tbody([html.Tr([html.Td(attribute_label(str(r.attribute))),
                                  html.Td(f"{r.importance:.0f}%"),
                                  html.Td(f"{r.performance:.2f}"), html.Td(f"{int(r.n):,}")])
                         for r in top.itertuples()])],
            size="sm", striped=True, className="mb-0", id=f"{PREFIX}-drivers"))
        drv_children.append(html.Div(
            f"Together the ratings explain {100 * drivers.r_squared:.0f}% of the differences "
            f"in NPS between answers ({drivers.n:,} answers with every rating).",
            className="small text-muted"))
    else:
        drv_children.append(html.P("Too few rated answers for a driver analysis.",
                                   className="small text-muted"))
    sections.append(dbc.Row([dbc.Col(html.Div(emp_children, className="report-section"),
                                     width=6),
                             dbc.Col(html.Div(drv_children, className="report-section"),
                                     width=6)], className="report-section"))

    # A table's head repeats on every printed page: the scope and filters on each page.
    frame = html.Table([html.Thead(html.Tr(html.Td(running_head))),
                        html.Tbody(html.Tr(html.Td(sections)))], className="report-frame")
    return html.Div(frame, id="report-root", className="report",
                    **{"data-graphs": str(len(graphs) + sparks), "data-period": str(period)})


def _graphs_in(component: object) -> list[dcc.Graph]:
    """The graphs inside a component tree (the cards' sparklines count for readiness)."""
    if isinstance(component, dcc.Graph):
        return [component]
    children = getattr(component, "children", None)
    if children is None:
        return []
    if not isinstance(children, list | tuple):
        children = [children]
    return [g for c in children for g in _graphs_in(c)]


def detractor_topics_block(filters, period) -> html.Div:
    """"What detractors talk about" over the last 3 months, within the report's filters
    (self-contained: place it anywhere in the one-pager)."""
    summary = cached(topic_summary, start=period.shift(-2).start, end=period.end,
                     filters=filters)
    # Three on the one-pager: more would push the page's end onto a second sheet.
    return detractor_topics(summary, limit=3, id_=f"{PREFIX}-detractor-topics")


def _link_filters(filters) -> dict:
    return {k: v for k, v in (("unit", filters.unit), ("segment", filters.segment),
                              ("channel", filters.channel), ("device", filters.device),
                              ("interaction", filters.interaction),
                              ("touchpoint", filters.touchpoint)) if v}



def _why_stale(f) -> str:
    if f.failed:
        return "last run failed"
    return "too many rows quarantined" if f.warning else "no recent load"


def _value_section(period, filters, window_days: int) -> html.Div:
    """Ticket, visit frequency and value per customer by NPS group over the 12 months to the
    period, with 95% intervals, and the sentence saying which of the two drives the gap."""
    value = cached(value_by_nps_group, start=period.shift(-11).start, end=period.end,
                   window_days=window_days, **_link_filters(filters))
    children: list = [html.H2("Ticket and visit frequency by NPS group", className="h6")]
    if value.basis == "none":
        children.append(html.P("No ticket or visit data for this scope.",
                               className="small text-muted", id=f"{PREFIX}-value"))
        return html.Div(children, className="report-section")

    def cell(measure: str, group: str) -> str:
        ci = getattr(value.groups[group], measure)
        if ci.mean is None:
            return "no data"
        show = money if measure != "visits" else (lambda v: number(v, 1))
        interval = (f" ({show(ci.low)}–{show(ci.high)})" if ci.low is not None
                    and ci.high is not None else "")
        return show(ci.mean) + interval

    labels = {"ticket": "Ticket", "visits": "Visits", "value": "Value per customer"}
    children.append(dbc.Table(
        [html.Thead(html.Tr([html.Th("")] + [html.Th(g.capitalize() + "s") for g in
                                               ("promoter", "passive", "detractor")])),
         html.Tbody([html.Tr([html.Td(labels[m])] + [html.Td(cell(m, g)) for g in
                                                       ("promoter", "passive", "detractor")])
                     for m in MEASURES])],
        size="sm", striped=True, className="mb-1", id=f"{PREFIX}-value-table"))
    children.append(html.P(value.sentence, className="small", id=f"{PREFIX}-value"))
    children.append(html.Div("Means with 95% intervals; "
                             + ("from the answers' own ticket and visit count."
                                if value.basis == "survey" else
                                f"from loyalty purchases in the {value.window_days} days after "
                                "each answer."), className="small text-muted"))
    return html.Div(children, className="report-section")
