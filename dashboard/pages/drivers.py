"""Drivers & comments: which parts of the experience move NPS or CSAT, how well each is
done, and what customers say in their own words.

Data: `queries.links.key_drivers` (relative weights: importance as % of R², performance as
the mean 1-5 rating) and `queries.comments.comments`, both over the survey answers of the
window ending with the view's period, within the filters. Page state in the URL besides
the filters: `outcome=csat` (default NPS), `months=1|3|12` (the window, default 3: drivers
need a few hundred complete answers), `q=` (comment search), `group=` (promoter, passive
or detractor comments only), `topic=` (a topic id) and `tone=` (negative, neutral or
positive comments only), and `limit=` (comments shown, "show more" adds 10).
Topics and sentiment: `queries.comment_topics.topic_summary` over the analyses the ETL stored
(`etl/comments_nlp.py`), drawn by `dashboard.components.topics`.
"""

from __future__ import annotations

import re

import dash
import dash_bootstrap_components as dbc
import pandas as pd
import plotly.graph_objects as go
from dash import Input, Output, State, callback, ctx, dcc, html, no_update

from dashboard import context
from dashboard.components import theme
from dashboard.components.charts import place_labels
from dashboard.components.controls import toggle
from dashboard.components.download import downloadable, panel
from dashboard.components.filter_bar import pretty
from dashboard.components.topics import topics_figure, topics_table
from dashboard.data import cached, resolve_period, scope_name
from dashboard.state import filters_of, parse_search, to_search
from queries.comment_topics import TopicSummary, topic_summary
from queries.comments import GROUPS, MAX_SEARCH, TONES, Comments, comments
from queries.formatting import attribute_label
from queries.kpis import SURVEY_DIMS
from queries.links import Drivers, key_drivers
from queries.periods import Month
from queries.stats import t_margin

dash.register_page(__name__, path="/drivers", name="Drivers & comments",
                   title="Drivers & comments · CX dashboard", order=4)

PREFIX = "drivers"
OUTCOMES = {"nps": "NPS", "csat": "CSAT"}
WINDOWS = (1, 3, 12)
DEFAULT_WINDOW = 3
PAGE = 10
MAX_LIMIT = 500
QUADRANTS = {  # (high importance, high performance) -> words, colour, advice
    (True, False): ("Fix first", theme.BAD, "matters most, done worst: improve it first"),
    (True, True): ("Keep up", theme.GOOD, "matters most, done well: protect it"),
    (False, False): ("Nice to have", theme.NEUTRAL, "matters less, done less well"),
    (False, True): ("Maintain", theme.NEUTRAL, "matters less, done well: no need for more"),
}
PRIORITY = {"Fix first": 0, "Keep up": 1, "Nice to have": 2, "Maintain": 3}
GROUP_WORDS = {"promoter": "Promoter", "passive": "Passive", "detractor": "Detractor"}
GROUP_FILTERS = {"": "All", "detractor": "Detractors", "passive": "Passives",
                 "promoter": "Promoters"}


# --------------------------------------------------------------------------- the state


def _get(state: dict, key: str) -> str | None:
    value = (state or {}).get(key)
    return value.strip() if isinstance(value, str) and value.strip() else None


def outcome_of(state: dict) -> str:
    """The outcome the drivers explain: 'nps' (default) or 'csat'."""
    return "csat" if _get(state, "outcome") == "csat" else "nps"


def months_of(state: dict) -> int:
    """Months in the window (1, 3 or 12; default 3)."""
    value = _get(state, "months")
    return int(value) if value and value.isdigit() and int(value) in WINDOWS else DEFAULT_WINDOW


def group_of(state: dict) -> str | None:
    """Only the comments of this NPS group (None: all)."""
    value = _get(state, "group")
    return value if value in GROUPS else None


def limit_of(state: dict) -> int:
    """How many comments are shown (10 more at each "show more")."""
    value = _get(state, "limit")
    if value and value.isdigit():
        return max(PAGE, min(MAX_LIMIT, int(value)))
    return PAGE


def window_of(state: dict) -> tuple[Month, Month] | None:
    """The first and last month of the window, ending with the view's period."""
    period, _ = resolve_period(state or {})
    if period is None:
        return None
    return period.shift(-(months_of(state) - 1)), period


def window_label(first: Month, last: Month) -> str:
    """'October 2026', or 'August to October 2026', 'November 2025 to October 2026'."""
    if first == last:
        return last.label
    if first.year == last.year:
        return f"{first.start:%B} to {last.label}"
    return f"{first.label} to {last.label}"


def _scope(state: dict) -> str:
    return scope_name({"unit": _get(state, "unit")} if _get(state, "unit") else {})


def _filter_words(state: dict) -> str:
    return ", ".join(f"{d} {pretty(_get(state, d) or '')}" for d in SURVEY_DIMS
                     if _get(state, d))


# --------------------------------------------------------------------------- the data


def drivers_of(state: dict) -> Drivers | None:
    """The key-driver analysis of the view (cached); None without data."""
    window = window_of(state)
    if window is None:
        return None
    f = filters_of(state or {})
    return cached(key_drivers, start=window[0].start, end=window[1].end,
                  outcome=outcome_of(state), unit=f.unit, segment=f.segment,
                  channel=f.channel, device=f.device, interaction=f.interaction,
                  touchpoint=f.touchpoint)


def quadrants(frame: pd.DataFrame) -> pd.DataFrame:
    """The drivers with their quadrant: importance and performance against their means."""
    data = frame.dropna(subset=["importance", "performance"]).copy()
    if data.empty:
        return data.assign(quadrant=pd.Series(dtype=object))
    hi_imp = data["importance"] >= data["importance"].mean()
    hi_perf = data["performance"] >= data["performance"].mean()
    data["quadrant"] = [QUADRANTS[(bool(i), bool(p))][0]
                        for i, p in zip(hi_imp, hi_perf, strict=True)]
    return data


@downloadable("drivers-table")
def drivers_frame(state: dict) -> pd.DataFrame:
    """The drivers as shown in the table and the matrix, first to fix first."""
    cols = ["attribute", "priority", "importance_pct_of_r2", "relative_weight", "r",
            "performance_mean_1_5", "margin_95", "sd", "ratings", "coverage_pct"]
    result = drivers_of(state)
    if result is None or result.frame.empty:
        return pd.DataFrame(columns=cols)
    data = quadrants(result.frame)
    rest = result.frame[~result.frame["attribute"].isin(data["attribute"])]
    data = pd.concat([data, rest.assign(quadrant="not estimated")], ignore_index=True)
    out = pd.DataFrame({
        "attribute": [attribute_label(a) for a in data["attribute"]],
        "priority": data["quadrant"],
        "importance_pct_of_r2": data["importance"], "relative_weight": data["weight"],
        "r": data["r"], "performance_mean_1_5": data["performance"],
        "margin_95": [t_margin(int(n), None if pd.isna(sd) else float(sd))
                      for n, sd in zip(data["n"], data["sd"], strict=True)],
        "sd": data["sd"], "ratings": data["n"], "coverage_pct": 100 * data["coverage"],
    }, columns=cols)
    order = out["priority"].map(PRIORITY).fillna(9)
    return (out.assign(_o=order).sort_values(["_o", "importance_pct_of_r2"],
                                             ascending=[True, False], kind="stable")
            .drop(columns="_o").reset_index(drop=True))


def comments_of(state: dict) -> Comments | None:
    """The comments shown (cached); None without data."""
    window = window_of(state)
    if window is None:
        return None
    return cached(comments, start=window[0].start, end=window[1].end,
                  filters=filters_of(state or {}), search=_get(state, "q"),
                  limit=limit_of(state), offset=0, group=group_of(state),
                  topic=topic_of(state), tone=tone_of(state))


@downloadable("drivers-comments")
def comments_frame(state: dict) -> pd.DataFrame:
    """The comments shown, newest first, with their scores."""
    result = comments_of(state)
    if result is None:
        return pd.DataFrame(columns=["submitted_at", "unit_name", "comment"])
    return result.rows.drop(columns=["id"])


# --------------------------------------------------------------------------- the figures


def matrix_figure(state: dict) -> go.Figure:
    """The priority matrix: importance across, performance up, quadrants at the means."""
    result = drivers_of(state)
    outcome = OUTCOMES[outcome_of(state)]
    if result is None:
        return theme.empty_figure("No survey data has been loaded yet.")
    window = window_of(state)
    assert window is not None
    where = f"{_scope(state)}, {window_label(*window)}"
    if result.responses == 0:
        return theme.empty_figure(f"No {outcome} answers for {where}.", height=380)
    if result.frame.empty:
        return theme.empty_figure(f"Too few attribute ratings for {where}.", height=380)
    data = quadrants(result.frame)
    if data.empty or result.r_squared is None:
        return theme.empty_figure(
            f"Only {result.n} complete answers for {where}: too few to weigh the attributes."
            "\nWiden the window or the selection.", height=380)
    x_mid, y_mid = float(data["importance"].mean()), float(data["performance"].mean())
    moes = [t_margin(int(n), None if pd.isna(sd) else float(sd)) or 0.0
            for n, sd in zip(data["n"], data["sd"], strict=True)]
    labels = [attribute_label(a) for a in data["attribute"]]
    texts, spots = place_labels(labels, data["importance"].astype(float).tolist(),
                                data["performance"].astype(float).tolist(),
                                width_px=380, height_px=250, font_px=12, marker_px=8)
    text_of = dict(zip(data["attribute"], texts, strict=True))
    spot_of = dict(zip(data["attribute"], spots, strict=True))
    fig = go.Figure()
    for name, colour, _advice in QUADRANTS.values():
        part = data["quadrant"] == name
        if not part.any():
            continue
        sub = data[part]
        fig.add_trace(go.Scatter(
            x=[float(v) for v in sub["importance"]], y=[float(v) for v in sub["performance"]],
            mode="markers+text", name=name,
            text=[theme.plain(text_of[a]) for a in sub["attribute"]],
            textposition=[spot_of[a] for a in sub["attribute"]],
            hovertext=[theme.plain(attribute_label(a)) for a in sub["attribute"]],
            textfont={"size": 12, "color": "#212529"},
            marker={"size": 13, "color": colour, "line": {"color": "white", "width": 1}},
            error_y={"type": "data", "array": [m for m, p in zip(moes, part, strict=True) if p],
                     "color": colour, "thickness": 1, "width": 3},
            customdata=list(zip(sub["r"].astype(float), sub["n"].astype(int), strict=True)),
            hovertemplate=("<b>%{hovertext}</b><br>importance %{x:.1f}% of R²<br>"
                           "performance %{y:.2f} of 5<br>r = %{customdata[0]:.2f} · "
                           "%{customdata[1]:,} ratings<extra>" + name + "</extra>"),
        ))
    fig.add_vline(x=x_mid, line={"color": "#ADB5BD", "dash": "dash", "width": 1})
    fig.add_hline(y=y_mid, line={"color": "#ADB5BD", "dash": "dash", "width": 1})
    corners = [("Keep up", 0.99, 0.99, "right", "top"),
               ("Fix first", 0.99, 0.01, "right", "bottom"),
               ("Maintain", 0.01, 0.99, "left", "top"),
               ("Nice to have", 0.01, 0.01, "left", "bottom")]
    colours = {v[0]: v[1] for v in QUADRANTS.values()}
    # Set at once: add_annotation checks every annotation again each time.
    fig.update_layout(annotations=[
        {"x": x, "y": y, "xref": "paper", "yref": "paper", "xanchor": xa, "yanchor": ya,
         "showarrow": False, "text": f"<b>{words}</b>",
         "font": {"size": 13, "color": colours[words]}, "opacity": 0.9}
        for words, x, y, xa, ya in corners])
    x_max = float(data["importance"].max())
    y_lo = float((data["performance"] - pd.Series(moes, index=data.index)).min())
    y_hi = float((data["performance"] + pd.Series(moes, index=data.index)).max())
    pad = max(0.1, (y_hi - y_lo) * 0.2)
    theme.base_layout(
        fig, height=400,
        title=(f"What drives {outcome} · R² = {result.r_squared:.2f} · "
               f"n = {result.n:,} complete answers"))
    fig.update_layout(showlegend=False, dragmode=False, hovermode="closest",
                      margin={"l": 64, "r": 24, "t": 52, "b": 52})
    fig.update_xaxes(title="Importance (% of explained variance)", ticksuffix="%",
                     range=[-x_max * 0.12 - 1, x_max * 1.2 + 1], zeroline=False)
    fig.update_yaxes(title="Performance (mean rating, 1–5)", tickformat=".1f",
                     range=[y_lo - pad, y_hi + pad * 1.6])
    return fig


def summary_words(state: dict) -> list[str]:
    """What the matrix says, in sentences."""
    result = drivers_of(state)
    if result is None or result.r_squared is None:
        return []
    data = quadrants(result.frame)
    if data.empty:
        return []
    outcome = OUTCOMES[outcome_of(state)]
    top = data.loc[data["importance"].idxmax()]
    worst = data.loc[data["performance"].idxmin()]
    fix = data[data["quadrant"] == "Fix first"].sort_values("importance", ascending=False)
    words = [f"{attribute_label(top['attribute'])} matters most: "
             f"{top['importance']:.0f}% of what the ratings explain of {outcome}, rated "
             f"{top['performance']:.2f} of 5."]
    if fix.empty:
        words.append("Nothing to fix first: every attribute that matters more than average "
                     "is rated above average.")
    else:
        names = ", ".join(attribute_label(a) for a in fix["attribute"])
        words.append(f"Fix first: {names}. "
                     + ("It matters" if len(fix) == 1 else "They matter")
                     + " more than average and " + ("is" if len(fix) == 1 else "are")
                     + " rated below average.")
    if worst["attribute"] != top["attribute"] and worst["quadrant"] != "Fix first":
        words.append(f"Rated lowest: {attribute_label(worst['attribute'])} "
                     f"({worst['performance']:.2f}), though it matters less than average "
                     f"({worst['importance']:.0f}%).")
    words.append(f"Together the ratings explain {100 * result.r_squared:.0f}% of the "
                 f"differences in {outcome} between customers (R²); the rest lies elsewhere.")
    return words


def _drivers_table(state: dict) -> object:
    frame = drivers_frame(state)
    result = drivers_of(state)
    if frame.empty:
        return html.Div("No attribute ratings in this selection.", className="text-muted",
                        id=f"{PREFIX}-table")
    colours = {v[0]: v[1] for v in QUADRANTS.values()}
    body = []
    for _, r in frame.iterrows():
        imp = r["importance_pct_of_r2"]
        moe = r["margin_95"]
        body.append(html.Tr([
            html.Td(r["attribute"], className="text-nowrap"),
            html.Td(r["priority"], className="text-nowrap", style={
                "color": colours.get(r["priority"], theme.NEUTRAL),
                "fontWeight": 600 if r["priority"] == "Fix first" else 400}),
            html.Td("–" if pd.isna(imp) else f"{imp:.1f}%", className="text-end",
                    title="" if pd.isna(r["r"]) else f"r = {r['r']:.2f} with the outcome"),
            html.Td(f"{r['performance_mean_1_5']:.2f}"
                    + ("" if moe is None or pd.isna(moe) else f" ±{moe:.2f}"),
                    className="text-end"),
            html.Td(f"{int(r['ratings']):,}", className="text-end",
                    title=f"{r['coverage_pct']:.0f}% of the answers rate it"),
        ]))
    table = dbc.Table(
        [html.Thead(html.Tr([html.Th("Attribute"), html.Th("Priority"),
                             html.Th("Importance", className="text-end"),
                             html.Th("Performance", className="text-end"),
                             html.Th("Ratings", className="text-end")])),
         html.Tbody(body)],
        size="sm", hover=True, responsive=True, className="mb-1", id=f"{PREFIX}-table")
    notes = ["Importance: share of the explained variance (relative weights, sums to 100%). "
             "Performance: mean rating of 5 with its 95% margin."]
    if result is not None and result.dropped:
        notes.append("Not modelled, rated by under half the answers: "
                     + ", ".join(attribute_label(a) for a in result.dropped) + ".")
    summary = summary_words(state)
    return html.Div([
        table, html.Div(" ".join(notes), className="small text-muted"),
        html.Ul([html.Li(w) for w in summary], className="cx-drivers-summary mt-3 mb-0 ps-3",
                id=f"{PREFIX}-summary") if summary else None])


# --------------------------------------------------------------------------- comments


def _highlight(text: str, term: str | None) -> list:
    """`text` with every case-insensitive occurrence of `term` marked."""
    if not term:
        return [text]
    parts = re.split(f"({re.escape(term)})", text, flags=re.IGNORECASE)
    return [html.Mark(p, className="p-0") if i % 2 else p for i, p in enumerate(parts) if p]


def _chip(group: str | None, nps: object) -> html.Span:
    colour = theme.GROUP_COLOURS.get(group or "", "#E9ECEF")
    words = (f"{GROUP_WORDS[group]} · {int(nps)}" if group in GROUP_WORDS and not pd.isna(nps)
             else "No NPS answer")
    return html.Span(words, className=f"cx-chip cx-chip-{group or 'none'}", style={
        "backgroundColor": colour, "color": "white" if group in ("promoter", "detractor")
        else "#212529", "borderRadius": "1rem", "padding": ".05rem .55rem",
        "fontSize": ".75rem", "fontWeight": 600, "whiteSpace": "nowrap"})


def _score_line(r: pd.Series) -> str:
    parts = []
    for key, label, scale in (("nps", "NPS", "/10"), ("csat", "CSAT", "/5"),
                              ("ces", "CES", "/7")):
        if not pd.isna(r[key]):
            parts.append(f"{label} {int(r[key])}{scale}")
    return " · ".join(parts)


def _comment_item(r: pd.Series, term: str | None) -> html.Li:
    when = pd.Timestamp(r["submitted_at"])
    meta = " · ".join(x for x in (f"{when:%d %b %Y}", str(r["unit_name"]),
                                  pretty(str(r["touchpoint"])) if r["touchpoint"] else None,
                                  pretty(str(r["channel"])) if r["channel"] else None) if x)
    colour = theme.GROUP_COLOURS.get(r["nps_group"] or "", "#CED4DA")
    return html.Li(
        [
            html.Div([_chip(r["nps_group"], r["nps"]),
                      html.Span(meta, className="text-muted small ms-2"),
                      html.Span(_score_line(r), className="text-muted small ms-auto ps-2")],
                     className="d-flex align-items-center flex-wrap gap-1"),
            html.Div(_highlight(str(r["comment"]), term), className="cx-comment-text mt-1",
                     style={"whiteSpace": "pre-line"}),
        ],
        className="cx-comment", style={"borderLeft": f"4px solid {colour}",
                                       "padding": ".15rem 0 .15rem .7rem",
                                       "marginBottom": ".75rem", "listStyle": "none"},
    )


def comments_block(state: dict) -> tuple[object, str, str | None]:
    """The comment list, the count line, and the "show more" label (None: all shown)."""
    result = comments_of(state)
    window = window_of(state)
    if result is None or window is None:
        return (html.Div("No survey data has been loaded yet.", className="text-muted"),
                "", None)
    term = _get(state, "q")
    group = group_of(state)
    shown = len(result.rows)
    what = (f"{GROUP_FILTERS[group].lower()}' comments" if group else "comments")
    where = f"{_scope(state)}, {window_label(*window)}"
    extra = _filter_words(state)
    if result.total == 0:
        words = f"No {what} from {where}" + (f" ({extra})" if extra else "")
        words += f" contain “{term}”." if term else "."
        return html.Div(words, className="text-muted py-2", id=f"{PREFIX}-no-comments"), \
            f"0 {what}", None
    count = (f"Showing {shown:,} of {result.total:,} {what}" if shown < result.total
             else f"{result.total:,} {what}")
    count += f" containing “{term}”" if term else ""
    items = html.Ul([_comment_item(r, term) for _, r in result.rows.iterrows()],
                    className="ps-0 mb-0", id=f"{PREFIX}-comment-list")
    more = None
    if shown < result.total and limit_of(state) < MAX_LIMIT:
        more = f"Show {min(PAGE, result.total - shown)} more"
    return items, count, more


# --------------------------------------------------------------------------- topics


TONE_WORDS = {"": "Any sentiment", "negative": "Negative", "neutral": "Neutral",
              "positive": "Positive"}


def topic_of(state: dict) -> int | None:
    """Only the comments of this topic (an id; None: all)."""
    value = _get(state, "topic")
    return int(value) if value and value.isdigit() else None


def tone_of(state: dict) -> str | None:
    """Only the comments of this sentiment (None: all)."""
    value = _get(state, "tone")
    return value if value in TONES else None


def compare_window_of(state: dict) -> tuple[Month, Month] | None:
    """The comparison window: as long as the view's, ending with the comparison period."""
    _, compare = resolve_period(state or {})
    if compare is None:
        return None
    return compare.shift(-(months_of(state) - 1)), compare


def topics_of(state: dict) -> TopicSummary | None:
    """The topics of the view's comments, with the comparison window (cached)."""
    window = window_of(state)
    if window is None:
        return None
    cmp = compare_window_of(state)
    return cached(topic_summary, start=window[0].start, end=window[1].end,
                  filters=filters_of(state or {}),
                  compare_start=cmp[0].start if cmp else None,
                  compare_end=cmp[1].end if cmp else None)


@downloadable("drivers-topics")
def topics_frame(state: dict) -> pd.DataFrame:
    """The topics as shown in the chart and table, most talked-about first."""
    result = topics_of(state)
    if result is None:
        return pd.DataFrame(columns=["topic_id", "label", "comments"])
    return result.frame


def topics_section(query: dict) -> object:
    """The panel "What comments are about" (chart and table; filled by `render_topics`)."""
    return panel(
        "What comments are about",
        html.Div([
            dcc.Loading(dcc.Graph(id=f"{PREFIX}-topics-chart",
                                  config={"displayModeBar": False, "responsive": True}),
                        type="dot", delay_show=300),
            dcc.Loading(html.Div(id=f"{PREFIX}-topics-box"), type="dot", delay_show=300),
        ]),
        target="drivers-topics", id_=f"{PREFIX}-topics-panel",
        note="Topics and sentiment are found by the ETL in the comments' own words "
             "(docs/COMMENTS.md). NPS is that of the customers who wrote them. Change: against "
             "the comparison window of the same length; * significant at 95%. Detractors · "
             "promoters: the share of each group's comments on the topic, compared by a "
             "two-proportion z-test.")


def comment_filters(query: dict) -> object:
    """Topic and sentiment filters of the comment list."""
    return dbc.Row(
        [
            dbc.Col(dcc.Dropdown(id=f"{PREFIX}-topic", value=topic_of(query), options=[],
                                 placeholder="Any topic", clearable=True),
                    xs=12, md=5, className="mb-1"),
            dbc.Col(toggle(f"{PREFIX}-tone", TONE_WORDS, tone_of(query) or ""),
                    xs="auto", className="mb-1 d-print-none"),
        ],
        className="g-2 align-items-center mb-2",
    )


@callback(
    Output(f"{PREFIX}-topics-chart", "figure"),
    Output(f"{PREFIX}-topics-box", "children"),
    Output(f"{PREFIX}-topic", "options"),
    Input(f"{PREFIX}-state", "data"),
)
def render_topics(state: dict):
    """The topics chart and table, and the topic filter's options, for the view state."""
    state = state or {}
    window = window_of(state)
    if window is None:
        return theme.empty_figure("No survey data has been loaded yet."), None, []
    result = topics_of(state)
    min_n = context.settings().cx_min_n
    where = f"{_scope(state)}, {window_label(*window)}"
    options = ([] if result is None else
               [{"label": f"{r.label} ({r.comments:,})", "value": int(r.topic_id)}
                for r in result.frame.itertuples()])
    return (topics_figure(result, where=where, min_n=min_n),
            topics_table(result, id_=f"{PREFIX}-topics-table", min_n=min_n,
                         compared=compare_window_of(state) is not None), options)


@callback(
    Output("app-url", "search", allow_duplicate=True),
    Input(f"{PREFIX}-topic", "value"),
    Input(f"{PREFIX}-tone", "value"),
    State("app-url", "search"),
    prevent_initial_call=True,
)
def navigate_topics(topic: int | None, tone: str | None, search: str | None):
    """Write the comment list's topic and sentiment filters into the URL."""
    state = parse_search(search)
    new = dict(state)
    if ctx.triggered_id == f"{PREFIX}-topic":
        new["topic"] = str(int(topic)) if topic is not None else ""
    elif ctx.triggered_id == f"{PREFIX}-tone":
        new["tone"] = tone if tone in TONES else ""
    else:
        return no_update
    if to_search(new) == to_search(state):
        return no_update  # a control redrawn with the URL's own value: keep "show more"
    new.pop("limit", None)
    return to_search(new)


# --------------------------------------------------------------------------- the layout


def layout(**query: str) -> html.Div:
    """The page skeleton; the view state (from the URL) drives the callbacks below."""
    return html.Div(
        [
            dcc.Store(id=f"{PREFIX}-state", data=query),
            dbc.Row(
                [
                    dbc.Col(html.H1("Drivers & comments", className="h4 mb-0"), width="auto"),
                    dbc.Col(html.Div(id=f"{PREFIX}-caption", className="text-muted small")),
                ],
                className="align-items-center mb-2 g-2",
            ),
            dbc.Row(
                [
                    dbc.Col([html.Span("Explain", className="small text-muted me-2"),
                             toggle(f"{PREFIX}-outcome", OUTCOMES, outcome_of(query))],
                            xs="auto", className="d-flex align-items-center mb-1"),
                    dbc.Col([html.Span("Window", className="small text-muted me-2"),
                             toggle(f"{PREFIX}-months",
                                    {str(m): f"{m} month{'s' if m > 1 else ''}"
                                     for m in WINDOWS}, str(months_of(query)))],
                            xs="auto", className="d-flex align-items-center mb-1"),
                ],
                className="g-3 mb-2 d-print-none",
            ),
            dbc.Row(
                [
                    dbc.Col(panel(
                        "Priority matrix",
                        dcc.Loading(dcc.Graph(id=f"{PREFIX}-matrix",
                                              config={"displayModeBar": False,
                                                      "responsive": True}),
                                    type="dot", delay_show=300),
                        target="drivers-table",
                        note="Fix first: what matters most to customers and is rated worst. "
                             "Lines are the averages; whiskers are 95% margins of the "
                             "ratings.", fill=True), xs=12, xl=6, className="mb-3"),
                    dbc.Col(panel(
                        "Drivers",
                        dcc.Loading(html.Div(id=f"{PREFIX}-table-box"), type="dot",
                                    delay_show=300),
                        target="drivers-table", fill=True), xs=12, xl=6, className="mb-3"),
                ],
                className="g-3",
            ),
            topics_section(query),
            panel(
                "What customers say",
                html.Div([
                    comment_filters(query),
                    dbc.Row(
                        [
                            dbc.Col(dbc.Input(
                                id=f"{PREFIX}-search", type="search", debounce=True,
                                value=_get(query, "q") or "", size="sm",
                                placeholder="Search comments (press Enter)…",
                                autoComplete="off", maxLength=MAX_SEARCH),
                                xs=12, md=5, className="mb-1"),
                            dbc.Col(toggle(f"{PREFIX}-group", GROUP_FILTERS,
                                           group_of(query) or ""),
                                    xs="auto", className="mb-1 d-print-none"),
                            dbc.Col(dcc.Loading(html.Div(id=f"{PREFIX}-count",
                                                         className="small text-muted"),
                                                type="dot", delay_show=300),
                                    className="mb-1 text-md-end"),
                        ],
                        className="g-2 align-items-center mb-2",
                    ),
                    dcc.Loading(html.Div(id=f"{PREFIX}-comments"), type="dot",
                                delay_show=300),
                    dbc.Button("Show more", id=f"{PREFIX}-more", color="secondary",
                               outline=True, size="sm", class_name="mt-1 d-print-none",
                               style={"display": "none"}),
                ]),
                target="drivers-comments", id_=f"{PREFIX}-comments-panel",
            ),
        ]
    )


# --------------------------------------------------------------------------- callbacks


@callback(
    Output(f"{PREFIX}-matrix", "figure"),
    Output(f"{PREFIX}-table-box", "children"),
    Output(f"{PREFIX}-caption", "children"),
    Input(f"{PREFIX}-state", "data"),
)
def render(state: dict):
    """The priority matrix, the drivers table and the caption for the view state."""
    state = state or {}
    window = window_of(state)
    if window is None:
        return (theme.empty_figure("No survey data has been loaded yet: run "
                                   "`python -m etl run`."), None, None)
    result = drivers_of(state)
    extra = _filter_words(state)
    caption = (f"{_scope(state)} · {window_label(*window)}" + (f" · only {extra}" if extra
                                                                else "")
               + f" · {result.responses:,} {OUTCOMES[outcome_of(state)]} answers"
               if result is not None else "")
    return matrix_figure(state), _drivers_table(state), caption


@callback(
    Output(f"{PREFIX}-comments", "children"),
    Output(f"{PREFIX}-count", "children"),
    Output(f"{PREFIX}-more", "children"),
    Output(f"{PREFIX}-more", "style"),
    Input(f"{PREFIX}-state", "data"),
)
def render_comments(state: dict):
    """The newest comments of the selection, the count and "show more"."""
    items, count, more = comments_block(state or {})
    return items, count, more or "", {} if more else {"display": "none"}


@callback(
    Output("app-url", "search", allow_duplicate=True),
    Input(f"{PREFIX}-outcome", "value"),
    Input(f"{PREFIX}-months", "value"),
    Input(f"{PREFIX}-search", "value"),
    Input(f"{PREFIX}-group", "value"),
    Input(f"{PREFIX}-more", "n_clicks"),
    State("app-url", "search"),
    prevent_initial_call=True,
)
def navigate(outcome: str | None, months: str | None, search_text: str | None,
             group: str | None, more: int | None, search: str | None):
    """Write a page control into the URL (which redraws the page)."""
    state = parse_search(search)
    new = dict(state)
    trigger = ctx.triggered_id
    if trigger == f"{PREFIX}-outcome":
        new["outcome"] = outcome if outcome == "csat" else ""
    elif trigger == f"{PREFIX}-months":
        new["months"] = months if months and months != str(DEFAULT_WINDOW) else ""
        new.pop("limit", None)
    elif trigger == f"{PREFIX}-search":
        new["q"] = (search_text or "").strip()
        new.pop("limit", None)
    elif trigger == f"{PREFIX}-group":
        new["group"] = group if group in GROUPS else ""
        new.pop("limit", None)
    elif trigger == f"{PREFIX}-more":
        if not more:
            return no_update
        new["limit"] = str(min(MAX_LIMIT, limit_of(state) + PAGE))
    else:
        return no_update
    out = to_search(new)
    return out if out != to_search(state) else no_update

