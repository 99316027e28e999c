"""Experience and revenue: what a promoter is worth, who stops buying, and whether stores
with better CX grow faster.

Data: `queries.links.revenue_after_survey` (revenue and churn after a survey answer, by NPS
group) and `queries.links.unit_cx_revenue` (store x month CX score against revenue growth).
Page state in the URL besides the filters: `metric=csat` (the scatter's score, default NPS)
and `lag=1` (the previous month's score against this month's growth).
"""

from __future__ import annotations

import dash
import dash_bootstrap_components as dbc
import pandas as pd
import plotly.graph_objects as go
from dash import Input, Output, State, callback, dcc, html, no_update

from dashboard import context
from dashboard.components import theme
from dashboard.components.charts import graph_slot
from dashboard.components.controls import toggle
from dashboard.components.download import downloadable, panel
from dashboard.data import cached, resolve_period, scope_name
from dashboard.state import filters_of, parse_search, to_search
from queries.formatting import (
    currency_symbol,
    figure_label,
    fmt_money,
    money,
    money_affixes,
    money_template,
)
from queries.links import (
    MEASURES,
    RevenueLink,
    UnitLink,
    ValueByGroup,
    revenue_after_survey,
    unit_cx_revenue,
    value_by_nps_group,
)
from queries.periods import Month

dash.register_page(__name__, path="/revenue", name="Revenue",
                   title="Revenue · CX dashboard", order=1)

PREFIX = "revenue"
WINDOW_MONTHS = 12  # survey answers of the 12 months ending with the view's period
DIMS = ("segment", "channel", "device", "interaction", "touchpoint")
GROUP_LABELS = {"promoter": "Promoters (9–10)", "passive": "Passives (7–8)",
                "detractor": "Detractors (0–6)"}
METRICS = {"nps": "NPS", "csat": "CSAT"}
# ------------------------------------------------------------------------------ state


def metric_of(state: dict[str, str]) -> str:
    """The scatter's CX score: 'nps' (default) or 'csat'."""
    return "csat" if state.get("metric") == "csat" else "nps"


def lag_of(state: dict[str, str]) -> int:
    """0: score and growth of the same month; 1: last month's score against this growth."""
    return 1 if state.get("lag") == "1" else 0


def window_of(state: dict[str, str]) -> tuple[Month, Month] | None:
    """First and last month of the survey window (12 months ending with the period)."""
    period, _ = resolve_period(state)
    if period is None:
        return None
    return period.shift(-(WINDOW_MONTHS - 1)), period


def _dims(state: dict[str, str]) -> dict[str, str | None]:
    f = filters_of(state)
    return {"unit": f.unit, **{k: getattr(f, k) for k in DIMS}}


def link_of(state: dict[str, str]) -> RevenueLink | None:
    """Revenue and churn after survey answers in the view's window (cached)."""
    window = window_of(state)
    if window is None:
        return None
    s = context.settings()
    return cached(revenue_after_survey, start=window[0].start, end=window[1].end,
                  window_days=s.cx_revenue_days, churn_days=s.cx_active_days, **_dims(state))


def units_of(state: dict[str, str]) -> UnitLink | None:
    """Store x month CX score against revenue growth over the window (cached)."""
    window = window_of(state)
    if window is None:
        return None
    first, last = window
    months = tuple(first.shift(i) for i in range(WINDOW_MONTHS))
    assert months[-1] == last
    return cached(unit_cx_revenue, months=months, metric=metric_of(state), lag=lag_of(state),
                  level="store", **_dims(state))


# ------------------------------------------------------------------------- formatting


def _gbp(value: float | None, *, per_head: bool = False) -> str:
    """Money as the rest of the product writes it: totals '£1,234', per answer '£49.24'."""
    if value is None:
        return "no data"
    return fmt_money(value, per_head=per_head)


def _pct(share: float | None) -> str:
    return "no data" if share is None else f"{100 * share:.1f}%"


def _p(p: float | None) -> str:
    if p is None:
        return ""
    return "p < 0.001" if p < 0.001 else f"p = {p:.3f}"


def _short(m: Month) -> str:
    return m.start.strftime("%b %Y")


def _scope_name(state: dict[str, str]) -> str:
    return scope_name(state)


def _set_filters(state: dict[str, str], names: tuple[str, ...]) -> list[str]:
    return [n for n in names if state.get(n)]


# ---------------------------------------------------------------------- the data shown


@downloadable("revenue-groups")
def groups_frame(state: dict[str, str]) -> pd.DataFrame:
    """Revenue per answer in the window after it, by NPS group: the bars and their error bars."""
    cols = ["group", "answers", "revenue_per_answer", "ci95_low", "ci95_high", "sd",
            "total_revenue", "window_days"]
    link = link_of(state)
    if link is None:
        return pd.DataFrame(columns=cols)
    g = link.frame()
    return pd.DataFrame({
        "group": g["group"], "answers": g["n"], "revenue_per_answer": g["mean"],
        "ci95_low": g["low"], "ci95_high": g["high"], "sd": g["sd"],
        "total_revenue": g["total"], "window_days": link.window_days,
    }, columns=cols)


@downloadable("revenue-churn")
def churn_frame(state: dict[str, str]) -> pd.DataFrame:
    """Churn after the answer by NPS group with Wilson intervals: the three numbers shown."""
    cols = ["group", "answers", "churned", "churn_pct", "ci95_low_pct", "ci95_high_pct",
            "churn_days"]
    link = link_of(state)
    if link is None:
        return pd.DataFrame(columns=cols)
    rows = []
    for g in (link.promoter, link.passive, link.detractor):
        rows.append({
            "group": g.group, "answers": g.n, "churned": g.churned,
            "churn_pct": None if g.churn is None else 100 * g.churn,
            "ci95_low_pct": None if not g.n or g.churn_low is None else 100 * g.churn_low,
            "ci95_high_pct": None if not g.n or g.churn_high is None else 100 * g.churn_high,
            "churn_days": link.churn_days,
        })
    return pd.DataFrame(rows, columns=cols)


def _value_col() -> str:
    """The money column of a download names its currency: value_gbp, value_eur..."""
    return f"value_{context.settings().cx_currency.lower()}"


@downloadable("revenue-risk")
def risk_frame(state: dict[str, str]) -> pd.DataFrame:
    """Revenue at risk and the detractors' revenue it is computed from, with the churn gap."""
    value = _value_col()
    cols = ["measure", value, "detractor_answers", "churn_gap_pts", "churn_gap_p",
            "churn_gap_significant"]
    link = link_of(state)
    if link is None:
        return pd.DataFrame(columns=cols)
    gap = link.churn_gap
    common = {"detractor_answers": link.detractor.n,
              "churn_gap_pts": None if gap.diff is None else 100 * gap.diff,
              "churn_gap_p": gap.p, "churn_gap_significant": gap.significant}
    return pd.DataFrame([
        {"measure": figure_label("revenue_at_risk")
         + ": (detractor churn - promoter churn) x revenue from detractors",
         value: link.revenue_at_risk, **common},
        {"measure": figure_label("detractor_revenue")
         + f" in the {link.window_days} days after answering",
         value: link.detractor_revenue, **common},
    ], columns=cols)


@downloadable("revenue-units")
def units_frame(state: dict[str, str]) -> pd.DataFrame:
    """Every store x month point of the scatter (score, answers, revenue, growth)."""
    link = units_of(state)
    cols = ["unit", "name", "month", "score_month", "score", "n", "revenue", "prev_revenue",
            "growth"]
    if link is None:
        return pd.DataFrame(columns=cols)
    return link.points.assign(metric=metric_of(state), lag=lag_of(state)).reset_index(drop=True)


# ----------------------------------------------------------------------------- layout


def _toggle(id_: str, options: list[tuple[str, str]], value: str) -> dbc.RadioItems:
    return toggle(id_, dict(options), value)


def layout(**query: str) -> html.Div:
    """The page skeleton; the view state (from the URL) drives the callbacks below."""
    metric, lag = metric_of(query), lag_of(query)
    days = context.settings().cx_revenue_days
    groups = panel(
        f"Revenue in the {days} days after answering, by NPS group",
        html.Div([
            graph_slot(f"{PREFIX}-groups-graph", 330,
                   html.Div(id=f"{PREFIX}-gap", className="mt-1"),
                   html.Div(id=f"{PREFIX}-groups-note",
                            className="cx-note text-muted small mt-1")),
        ]),
        target="revenue-groups", id_=f"{PREFIX}-groups-panel")
    churn = panel(
        "Churn after answering",
        dcc.Loading(html.Div(id=f"{PREFIX}-churn"), type="dot", delay_show=300),
        target="revenue-churn", id_=f"{PREFIX}-churn-panel")
    risk = panel(
        figure_label("revenue_at_risk"),
        dcc.Loading(html.Div(id=f"{PREFIX}-risk"), type="dot", delay_show=300),
        target="revenue-risk", id_=f"{PREFIX}-risk-panel")
    controls = dbc.Row(
        [
            dbc.Col([html.Span("Score", className="small text-muted me-2"),
                     _toggle(f"{PREFIX}-metric", [("nps", "NPS"), ("csat", "CSAT")], metric)],
                    width="auto", className="d-flex align-items-center"),
            dbc.Col([html.Span("Timing", className="small text-muted me-2"),
                     _toggle(f"{PREFIX}-lag", [("0", "Same month"),
                                               ("1", "Score one month earlier")], str(lag))],
                    width="auto", className="d-flex align-items-center"),
        ],
        className="g-3 mb-1 mt-1 d-print-none",
    )
    units = panel(
        "Do stores with better CX grow revenue faster?",
        html.Div([
            controls,
            graph_slot(f"{PREFIX}-units-graph", 400,
                   html.Div(id=f"{PREFIX}-units-words", className="mt-1"),
                   html.Div(id=f"{PREFIX}-units-note",
                            className="cx-note text-muted small mt-1")),
        ]),
        target="revenue-units", id_=f"{PREFIX}-units-panel")
    return html.Div(
        [
            dcc.Store(id=f"{PREFIX}-state", data=query),
            dbc.Row(
                [
                    dbc.Col(html.H1("Experience and revenue", className="h4 mb-0"),
                            width="auto"),
                    dbc.Col(html.Div(id=f"{PREFIX}-caption", className="text-muted")),
                ],
                className="align-items-center mb-2 g-2",
            ),
            html.Div(id=f"{PREFIX}-scope-note"),
            dbc.Row(
                [
                    dbc.Col(groups, lg=7),
                    dbc.Col([churn, risk], lg=5),
                ],
                className="g-3",
            ),
            units,
            value_panel(),
        ]
    )


# -------------------------------------------------------------------------- callbacks


def groups_figure(frame: pd.DataFrame, days: int) -> go.Figure:
    """Bars of revenue per answer by group with their 95% intervals as error bars."""
    shown = frame[frame["answers"] > 0]
    if shown.empty or shown["revenue_per_answer"].isna().all():
        return theme.empty_figure(
            f"No survey answer in this selection has a complete {days}-day revenue window yet",
            height=330)
    mean = shown["revenue_per_answer"].astype(float)
    hi = (shown["ci95_high"].astype(float) - mean).fillna(0)
    lo = (mean - shown["ci95_low"].astype(float)).fillna(0)
    fig = go.Figure(go.Bar(
        x=[GROUP_LABELS[g] for g in shown["group"]], y=mean.tolist(),
        marker={"color": [theme.GROUP_COLOURS[g] for g in shown["group"]]},
        error_y={"type": "data", "symmetric": False, "array": hi.tolist(),
                 "arrayminus": lo.tolist(), "color": "#343a40", "thickness": 1.5, "width": 8},
        customdata=shown[["answers", "ci95_low", "ci95_high", "total_revenue"]].to_numpy(),
        texttemplate=money_template("y:,.2f"), textposition="inside",
        insidetextanchor="start", textfont={"color": "white", "size": 13},
        hovertemplate=("<b>%{x}</b><br>" + money_template("y:,.2f") + " per answer in the "
                       + str(days) + " days after<br>95% CI "
                       + money_template("customdata[1]:,.2f") + " to "
                       + money_template("customdata[2]:,.2f")
                       + "<br>n = %{customdata[0]:,} answers · "
                       + money_template("customdata[3]:,.0f") + " in all<extra></extra>"),
        name="Revenue per answer",
    ))
    fig.update_yaxes(title=f"{currency_symbol()} per answer, {days} days after",
                     **money_affixes(), separatethousands=True, rangemode="tozero")
    fig.update_layout(showlegend=False, bargap=0.35)
    return theme.base_layout(fig, height=330)


def _gap_words(link: RevenueLink) -> html.Div:
    gap = link.gap
    if gap.diff is None:
        return html.Div("Too few answers in a group to compare promoters with detractors.",
                        className="text-muted", id=f"{PREFIX}-gap-text")
    more = "more" if gap.diff >= 0 else "less"
    head = (f"Promoters spent {_gbp(abs(gap.diff), per_head=True)} {more} per answer than "
            "detractors "
            f"in the {link.window_days} days after answering")
    ci = (f" (95% CI {_gbp(gap.low, per_head=True)} to "
          f"{_gbp(gap.high, per_head=True)})"
          if gap.low is not None and gap.high is not None else "")
    if gap.significant is None:
        verdict, tone = "Too few answers to test the gap.", "text-muted"
    elif gap.significant:
        verdict = f"Significant: a gap this size is very unlikely to be chance ({_p(gap.p)})."
        tone = ""
    else:
        verdict = (f"Not significant: the interval includes {money(0)}, so the gap could be "
                   f"chance "
                   f"({_p(gap.p)}).")
        tone = "text-muted"
    return html.Div([html.Strong(head + ci + ". "), html.Span(verdict, className=tone)],
                    id=f"{PREFIX}-gap-text")


def _groups_note(link: RevenueLink, window: tuple[Month, Month]) -> str:
    observed = (f"the latest purchase on record ({link.observed_until:%d %b %Y})"
                if link.observed_until else "any purchase on record")
    horizon = max(link.window_days, link.churn_days)
    parts = [f"NPS answers from {_short(window[0])} to {_short(window[1])}: "
             f"{link.n:,} analysed."]
    if link.left_out:
        parts.append(f"{link.left_out:,} left out because their {horizon}-day window runs "
                     f"past {observed}.")
    if link.unlinked:
        parts.append(f"{link.unlinked:,} from people outside the loyalty programme (no "
                     f"purchases to follow).")
    parts.append("Revenue counts each customer's purchases in any store and channel. "
                 "Error bars: 95% intervals.")
    return " ".join(parts)


def _churn_row(label: str, value: str, detail: object, colour: str, id_: str) -> html.Div:
    return html.Div(
        dbc.Row([
            dbc.Col(html.Div(label, className="kpi-label"), xs=4),
            dbc.Col(html.Div(value, className="fw-semibold", style={"fontSize": "1.5rem"},
                             id=f"{id_}-value"), xs=3),
            dbc.Col(html.Div(detail, className="kpi-sample text-muted", id=f"{id_}-detail"),
                    xs=5),
        ], className="align-items-center g-1"),
        className="ps-2 mb-2", style={"borderLeft": f"4px solid {colour}"}, id=id_)


def _churn_block(frame: pd.DataFrame, link: RevenueLink) -> html.Div:
    rows = []
    for row in frame.itertuples():
        if not row.answers:
            value, detail = "no data", "no answers"
        else:
            value = f"{row.churn_pct:.1f}%"
            detail = [f"95% CI {row.ci95_low_pct:.1f}–{row.ci95_high_pct:.1f}%", html.Br(),
                      f"{row.churned:,} of {row.answers:,} answers"]
        label = GROUP_LABELS[row.group].split(" (")[0]
        rows.append(_churn_row(label, value, detail, theme.GROUP_COLOURS[row.group],
                               f"{PREFIX}-churn-{row.group}"))
    gap = link.churn_gap
    if gap.diff is None:
        words = "Too few promoters or detractors to compare their churn."
    else:
        direction = "more" if gap.diff >= 0 else "less"
        verdict = ("significant" if gap.significant else "not significant, could be chance"
                   if gap.significant is not None else "not testable")
        words = (f"Detractors stopped buying {100 * abs(gap.diff):.1f} pts {direction} often "
                 f"than promoters ({verdict}{', ' + _p(gap.p) if gap.p is not None else ''}).")
    return html.Div([
        html.Div(f"Share with no purchase in the {link.churn_days} days after answering "
                 "(95% Wilson intervals).", className="small text-muted mb-2"),
        *rows,
        html.Div(words, className="small mt-1", id=f"{PREFIX}-churn-words"),
    ])


def _risk_block(frame: pd.DataFrame, link: RevenueLink) -> html.Div:
    at_risk, det_revenue = frame[_value_col()].tolist()
    at_risk = None if pd.isna(at_risk) else at_risk
    gap = link.churn_gap
    gap_pts = "n/a" if gap.diff is None else f"{100 * gap.diff:+.1f} pts"
    caveat = "" if gap.significant else (
        " The churn gap is not significant: treat this as indicative." if gap.significant
        is False else "")
    return html.Div([
        dbc.Row([
            dbc.Col([
                html.Div(figure_label("revenue_at_risk"), className="kpi-label",
                         id=f"{PREFIX}-at-risk-label"),
                html.Div(fmt_money(at_risk), className="kpi-value", id=f"{PREFIX}-at-risk",
                         style={"color": theme.DETRACTOR}),
                html.Div(f"detractors' extra churn ({gap_pts} vs promoters) × their revenue",
                         className="kpi-sample text-muted"),
            ], xs=6),
            dbc.Col([
                html.Div(figure_label("detractor_revenue"), className="kpi-label",
                         id=f"{PREFIX}-detractor-revenue-label"),
                html.Div(fmt_money(det_revenue), className="kpi-value",
                         id=f"{PREFIX}-detractor-revenue"),
                html.Div(f"spent by {link.detractor.n:,} detractors in the "
                         f"{link.window_days} days after answering",
                         className="kpi-sample text-muted"),
            ], xs=6),
        ], className="g-2"),
        html.Div("These cover the surveyed customers in the window, not every customer."
                 + caveat, className="small text-muted mt-2"),
    ])


@callback(
    Output(f"{PREFIX}-groups-graph", "figure"),
    Output(f"{PREFIX}-gap", "children"),
    Output(f"{PREFIX}-groups-note", "children"),
    Output(f"{PREFIX}-churn", "children"),
    Output(f"{PREFIX}-risk", "children"),
    Output(f"{PREFIX}-caption", "children"),
    Output(f"{PREFIX}-scope-note", "children"),
    Input(f"{PREFIX}-state", "data"),
)
def render_groups(state: dict[str, str] | None):
    """Revenue by NPS group, the gap in words, churn and revenue at risk."""
    state = state or {}
    window = window_of(state)
    if window is None:
        msg = "No survey or sales data yet: load data with `python -m etl run`."
        return (theme.empty_figure(msg, height=330), None, None, msg, msg, None,
                dbc.Alert(msg, color="info"))
    days = context.settings().cx_revenue_days
    caption = (f"{_scope_name(state)} · survey answers {_short(window[0])} – "
               f"{_short(window[1])}")
    scope_note = None
    if state.get("compare"):
        scope_note = html.Div("This page does not compare periods: the comparison filter is "
                              "not used here.", className="small text-muted mb-2",
                              id=f"{PREFIX}-compare-note")
    try:
        link = link_of(state)
        assert link is not None
        frame = groups_frame(state)
        churn = churn_frame(state)
        risk = risk_frame(state)
    except Exception as exc:  # say what failed instead of a blank page
        msg = f"Revenue after the survey could not be computed: {exc}"
        return (theme.empty_figure(msg, height=330), None, None,
                dbc.Alert(msg, color="danger"), None, caption, scope_note)
    if link.n == 0:
        empty = html.Div(f"No answer in this selection has a complete {days}-day window yet.",
                         className="text-muted")
        return (groups_figure(frame, days), None, _groups_note(link, window), empty, empty,
                caption, scope_note)
    return (groups_figure(frame, days), _gap_words(link), _groups_note(link, window),
            _churn_block(churn, link), _risk_block(risk, link), caption, scope_note)


def units_figure(frame: pd.DataFrame, link: UnitLink, metric: str, lag: int) -> go.Figure:
    """Store x month points (score against growth), the OLS line, r with its CI in the title."""
    label = METRICS[metric]
    if frame.empty:
        return theme.empty_figure("No store-month in this selection has both a "
                                  f"{label} score and revenue the month before", height=400)
    score_fmt = "%{x:+.1f}" if metric == "nps" else "%{x:.1f}%"
    # One label per distinct month, not per point, and the hover data as one numpy array:
    # Plotly validates a list of tuples value by value (a year of 220 stores is 2,640 points,
    # 40-100 ms of the callback), an array at once.
    short = {m: _short(Month.parse(m)) for m in set(frame["month"]) | set(frame["score_month"])}
    custom = theme.columns_array(frame["name"].map(theme.plain), frame["month"].map(short),
                                 frame["score_month"].map(short), frame["n"], frame["revenue"])
    fig = go.Figure(go.Scatter(
        x=frame["score"].to_numpy(dtype=float), y=frame["growth"].to_numpy(dtype=float),
        mode="markers", name="Store-months",
        marker={"color": theme.GOOD, "size": 8, "opacity": 0.65,
                "line": {"width": 0.5, "color": "white"}},
        customdata=custom,
        hovertemplate=("<b>%{customdata[0]}</b> · %{customdata[1]}<br>" + label + " "
                       + score_fmt + " (%{customdata[2]}, n = %{customdata[3]:,})"
                       "<br>Revenue growth %{y:+.1%} (" + money_template("customdata[4]:,.0f")
                       + ")<extra></extra>"),
    ))
    corr = link.correlation
    if corr.slope is not None and corr.intercept is not None:
        xs = [float(frame["score"].min()), float(frame["score"].max())]
        fig.add_trace(go.Scatter(
            x=xs, y=[corr.intercept + corr.slope * x for x in xs], mode="lines",
            name="Regression line", line={"color": "#343a40", "width": 2, "dash": "dash"},
            hoverinfo="skip"))
    fig.add_hline(y=0, line={"color": "#adb5bd", "width": 1})
    fig.update_xaxes(title=(f"{label} of the same month" if lag == 0
                            else f"{label} of the month before")
                     + (" (promoters − detractors)" if metric == "nps"
                        else " (% answering 4–5)"))
    if metric == "csat":
        fig.update_xaxes(ticksuffix="%")
    fig.update_yaxes(title="Revenue growth vs the month before", tickformat="+.0%")
    fig.update_layout(showlegend=False)
    return theme.base_layout(fig, title=r_title(corr, "store-month"), height=400)


def r_title(corr, what: str) -> str:
    """'r = 0.35 (95% CI 0.12 to 0.55) · 144 store-months'."""
    if corr.r is None:
        return f"r not defined: too few {what}s ({corr.n}) or no spread"
    ci = (f" (95% CI {corr.low:.2f} to {corr.high:.2f})"
          if corr.low is not None and corr.high is not None else "")
    return f"r = {corr.r:.2f}{ci} · {corr.n:,} {what}s"


def _units_words(corr, metric: str, lag: int) -> html.Div:
    label = METRICS[metric]
    timing = "the same month's" if lag == 0 else "the previous month's"
    if corr.r is None:
        text = (f"Too few store-months to correlate {label} with revenue growth: widen the "
                "selection.")
    elif corr.significant:
        way = "faster" if corr.r > 0 else "slower"
        strength = "weak" if abs(corr.r) < 0.3 else "moderate" if abs(corr.r) < 0.5 \
            else "strong"
        text = (f"A {strength} link: store-months with a higher {label} ({timing} score) grew "
                f"revenue {way} ({_p(corr.p)}). A correlation, not proof of cause.")
    else:
        text = (f"No clear link between {timing} {label} and revenue growth: the 95% interval "
                f"for r includes zero ({_p(corr.p)}).")
    return html.Div(text, id=f"{PREFIX}-units-text")


def _units_note(state: dict[str, str], link: UnitLink, window: tuple[Month, Month]) -> str:
    parts = [f"One point per store and month, {_short(window[0])} to {_short(window[1])}; "
             "growth = revenue of the month / revenue of the month before − 1."]
    if link.excluded:
        parts.append(f"{link.excluded:,} store-months left out (no score, or no revenue the "
                     "month before).")
    score_only = _set_filters(state, ("device", "interaction", "touchpoint"))
    if score_only:
        parts.append("The " + ", ".join(score_only) + " filter narrows the score only: "
                     "revenue is not recorded by " + " or ".join(score_only) + ".")
    if state.get("unit"):
        parts.append(f"Stores of {_scope_name(state)} only.")
    return " ".join(parts)


@callback(
    Output(f"{PREFIX}-units-graph", "figure"),
    Output(f"{PREFIX}-units-words", "children"),
    Output(f"{PREFIX}-units-note", "children"),
    Input(f"{PREFIX}-state", "data"),
)
def render_units(state: dict[str, str] | None):
    """The store x month scatter of CX score against revenue growth."""
    state = state or {}
    window = window_of(state)
    if window is None:
        return theme.empty_figure("No survey or sales data yet", height=400), None, None
    metric, lag = metric_of(state), lag_of(state)
    try:
        link = units_of(state)
        assert link is not None
        frame = units_frame(state)
    except Exception as exc:
        msg = f"The store scatter could not be computed: {exc}"
        return theme.empty_figure(msg, height=400), dbc.Alert(msg, color="danger"), None
    return (units_figure(frame, link, metric, lag), _units_words(link.correlation, metric, lag),
            _units_note(state, link, window))


@callback(
    Output("app-url", "search", allow_duplicate=True),
    Input(f"{PREFIX}-metric", "value"),
    Input(f"{PREFIX}-lag", "value"),
    State("app-url", "search"),
    prevent_initial_call=True,
)
def write_toggles(metric: str | None, lag: str | None, search: str | None):
    """The score and timing toggles are page state: write them to the URL (defaults left out)."""
    state = parse_search(search)
    state["metric"] = "csat" if metric == "csat" else ""
    state["lag"] = "1" if str(lag) == "1" else ""
    new = to_search(state)
    return new if new != (search or "") else no_update


# ------------------------------------------- ticket and visit frequency by NPS group


MEASURE_LABELS = {"ticket": "Ticket", "visits": "Visits", "value": "Value per customer"}


def value_of(state: dict[str, str]) -> ValueByGroup | None:
    """Ticket, visits and their product by NPS group over the window (cached)."""
    window = window_of(state)
    if window is None:
        return None
    return cached(value_by_nps_group, start=window[0].start, end=window[1].end,
                  window_days=context.settings().cx_revenue_days, **_dims(state))


@downloadable("revenue-value")
def value_frame(state: dict[str, str]) -> pd.DataFrame:
    """Per NPS group and measure (ticket, visits, value): answers, mean and 95% interval."""
    value = value_of(state)
    if value is None:
        return pd.DataFrame(columns=["group", "measure", "n", "mean", "ci95_low", "ci95_high",
                                     "basis"])
    return value.frame().assign(basis=value.basis)


def value_panel() -> dbc.Card:
    """Panel: is a promoter worth more because of a bigger basket or more visits?"""
    return panel(
        "Ticket and visit frequency by NPS group",
        graph_slot(f"{PREFIX}-value-graph", 300,
                   html.Div(id=f"{PREFIX}-value-words", className="mt-1"),
                   html.Div(id=f"{PREFIX}-value-note",
                            className="cx-note text-muted small mt-1")),
        target="revenue-value", id_=f"{PREFIX}-value-panel")


def value_figure(value: ValueByGroup) -> go.Figure:
    """Three small bar charts (ticket, visits, value) of the groups with 95% error bars."""
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=1, cols=3, subplot_titles=[MEASURE_LABELS[m] for m in MEASURES],
                        horizontal_spacing=0.09)
    for col, measure in enumerate(MEASURES, start=1):
        cis = [getattr(value.groups[g], measure) for g in GROUP_LABELS]
        keep = [(g, ci) for g, ci in zip(GROUP_LABELS, cis, strict=True) if ci.mean is not None]
        if not keep:
            continue
        money_measure = measure != "visits"
        fig.add_trace(go.Bar(
            x=[GROUP_LABELS[g].split(" (")[0] for g, _ in keep],
            y=[ci.mean for _, ci in keep],
            marker={"color": [theme.GROUP_COLOURS[g] for g, _ in keep]},
            error_y={"type": "data", "symmetric": False, "color": "#343a40",
                     "array": [(ci.high - ci.mean) if ci.high is not None else 0
                               for _, ci in keep],
                     "arrayminus": [(ci.mean - ci.low) if ci.low is not None else 0
                                    for _, ci in keep]},
            text=[money(ci.mean) if money_measure else f"{ci.mean:.1f}" for _, ci in keep],
            textposition="inside", insidetextanchor="start",
            textfont={"color": "white", "size": 12},
            customdata=[[ci.n] for _, ci in keep],
            hovertemplate=("<b>%{x}</b><br>" + MEASURE_LABELS[measure] + " "
                           + (money_template("y:,.2f") if money_measure else "%{y:.2f}")
                           + "<br>n = %{customdata[0]:,}<extra></extra>"),
            showlegend=False), row=1, col=col)
        if money_measure:
            fig.update_yaxes(**money_affixes(), rangemode="tozero", row=1, col=col)
        else:
            fig.update_yaxes(rangemode="tozero", row=1, col=col)
    return theme.base_layout(fig, height=300)


def _value_note(value: ValueByGroup) -> str:
    if value.basis == "survey":
        basis = ("From the answers' own ticket and visit count; value = ticket × visits per "
                 "answer.")
    elif value.basis == "transactions":
        basis = (f"From loyalty purchases in the {value.window_days} days after each answer: "
                 "visits = purchases, ticket = revenue / purchases, value = revenue.")
    else:
        basis = ""
    tests = []
    for measure in ("ticket", "visits"):
        t = value.gaps[(measure, "passive")]
        if t.diff is not None and t.p is not None:
            tests.append(f"{MEASURE_LABELS[measure].lower()} promoters − passives "
                         f"{t.diff:+.2f} ({_p(t.p)})")
    return " ".join([basis, "Error bars: 95% intervals.",
                     ("Welch tests: " + "; ".join(tests) + ".") if tests else ""]).strip()


@callback(
    Output(f"{PREFIX}-value-graph", "figure"),
    Output(f"{PREFIX}-value-words", "children"),
    Output(f"{PREFIX}-value-note", "children"),
    Input(f"{PREFIX}-state", "data"),
)
def render_value(state: dict[str, str] | None):
    """Ticket, visits and value per customer by NPS group, and what separates them."""
    value = value_of(state or {})
    if value is None or value.basis == "none":
        msg = ("No ticket or visit data: map `spend` and `visits` in the survey source, or "
               "load loyalty transactions.")
        return theme.empty_figure(msg, height=300), None, None
    return (value_figure(value),
            html.Strong(value.sentence, id=f"{PREFIX}-value-text"), _value_note(value))
