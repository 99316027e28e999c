"""Employees: engagement and eNPS by unit with anonymity kept, its trend over waves, and the
service-profit chain (engaged staff, happier customers?).

Data: `queries.employees.engagement_by_unit` (children of a unit in one wave, with anonymity
and complementary suppression), `queries.trends.engagement_trend` and
`queries.links.engagement_vs_cx`. Page state in the URL besides the filters:
`wave=YYYY-MM-DD` (default: the latest wave at or before the period) and `outcome=nps`
(the chain's customer score, default CSAT).
"""

from __future__ import annotations

import datetime as dt

import dash
import dash_bootstrap_components as dbc
import pandas as pd
import plotly.graph_objects as go
from dash import Input, Output, State, callback, dcc, html, no_update
from plotly.subplots import make_subplots

from dashboard import context
from dashboard.components import theme
from dashboard.components.charts import GRAPH_CONFIG, graph_slot, place_labels
from dashboard.components.controls import toggle
from dashboard.components.download import downloadable, panel
from dashboard.data import cached, resolve_period
from dashboard.state import filters_of, parse_search, to_search
from queries import stats
from queries.employees import engagement_by_unit, hidden_reasons
from queries.kpis import org_units
from queries.links import engagement_vs_cx
from queries.periods import Month
from queries.trends import engagement_trend

dash.register_page(__name__, path="/employees", name="Employees",
                   title="Employees · CX dashboard", order=2)

PREFIX = "employees"
DIMS = ("segment", "channel", "device", "interaction", "touchpoint")
OUTCOMES = {"csat": "CSAT", "nps": "NPS"}
CX_MONTHS = 3  # the chain's customer score: the three months up to the wave's month
HIDDEN_GREY = "#8a9199"
NOWRAP = {"whiteSpace": "nowrap"}
# ------------------------------------------------------------------------------ state


def outcome_of(state: dict[str, str]) -> str:
    """The chain's customer score: 'csat' (default) or 'nps'."""
    return "nps" if state.get("outcome") == "nps" else "csat"


def _anonymity() -> int:
    return context.settings().cx_anonymity_min


def _units() -> dict[str, dict]:
    return {str(u["id"]): u for u in cached(org_units)}


def _root() -> str | None:
    roots = [u for u in cached(org_units) if u["parent_id"] is None]
    return str(roots[0]["id"]) if roots else None


def _name(unit: str | None) -> str:
    units = _units()
    return str(units[unit]["name"]) if unit in units else "Whole company"


def scope_of(state: dict[str, str]) -> str | None:
    """The selected unit (the company when none is, or when the id is unknown)."""
    unit = state.get("unit")
    return unit if unit in _units() else _root()


def breakdown_of(state: dict[str, str]) -> tuple[str | None, str | None]:
    """(parent whose children are shown, unit to highlight): a unit's children, or, for a unit
    with none below it (a store), the store among its siblings."""
    scope = scope_of(state)
    units = _units()
    if scope is None:
        return None, None
    if any(u["parent_id"] == scope for u in units.values()):
        return scope, None
    parent = units[scope]["parent_id"]
    return (str(parent), scope) if parent else (scope, None)


def _raw_trend(state: dict[str, str]) -> pd.DataFrame | None:
    period, _ = resolve_period(state)
    if period is None:
        return None
    return cached(engagement_trend, end=period, unit=state.get("unit") or None,
                  anonymity_min=_anonymity())


def waves_of(state: dict[str, str]) -> list[str]:
    """Engagement waves (YYYY-MM-DD) of the selected unit at or before the period."""
    trend = _raw_trend(state)
    return [] if trend is None else [str(w) for w in trend["wave"]]


def wave_of(state: dict[str, str]) -> tuple[dt.date | None, str | None]:
    """The wave shown: the URL's `wave` when it is one, else the latest; and a note when the
    URL asked for one that is not available."""
    waves = waves_of(state)
    if not waves:
        return None, None
    asked = state.get("wave")
    if asked and asked not in waves:
        return (dt.date.fromisoformat(waves[-1]),
                f"No engagement wave on {asked} at or before the selected period: showing the "
                f"latest, {_wave_label(waves[-1])}.")
    return dt.date.fromisoformat(asked or waves[-1]), None


def _wave_label(wave: str | dt.date) -> str:
    return Month.of(dt.date.fromisoformat(str(wave)[:10])).label


def _wave_short(wave: str | dt.date) -> str:
    return Month.of(dt.date.fromisoformat(str(wave)[:10])).start.strftime("%b %Y")


def _hidden_among_siblings(unit: str, wave: dt.date) -> str | None:
    """Why `unit` is hidden in the breakdown of its parent for `wave` (None: it is shown).

    The breakdown hides a unit that is small or that would let a small sibling be worked
    out by subtraction; the same unit must then stay hidden everywhere else on the page.
    """
    if not _units().get(unit, {}).get("parent_id"):
        return None
    # One answer per wave for every unit of the tree (the chain asks it for each store);
    # `unit=None` is narrowed to a manager's own units by the scope gateway.
    return cached(hidden_reasons, wave=wave, minimum=_anonymity(), unit=None).get(unit)


# ---------------------------------------------------------------------- the data shown


@downloadable("employees-units")
def units_frame(state: dict[str, str]) -> pd.DataFrame:
    """Engagement, eNPS and participation of each unit shown; hidden rows carry no numbers."""
    cols = ["wave", "unit", "name", "respondents", "headcount", "engagement",
            "engagement_moe", "enps", "enps_moe", "participation", "hidden", "reason"]
    wave, _ = wave_of(state)
    parent, _highlight = breakdown_of(state)
    if wave is None or parent is None:
        return pd.DataFrame(columns=cols)
    frame = cached(engagement_by_unit, wave=wave, parent=parent, anonymity_min=_anonymity())
    return frame.assign(wave=str(wave))[cols].reset_index(drop=True)


@downloadable("employees-trend")
def trend_frame(state: dict[str, str]) -> pd.DataFrame:
    """Engagement and eNPS of the selected unit per wave; hidden waves hold no numbers."""
    cols = ["wave", "respondents", "engagement", "engagement_moe", "enps", "hidden", "reason"]
    trend = _raw_trend(state)
    if trend is None or trend.empty:
        return pd.DataFrame(columns=cols)
    frame = trend.copy()
    anonymity = _anonymity()
    frame["reason"] = [f"fewer than {anonymity} respondents" if h else None
                       for h in frame["hidden"]]
    unit = state.get("unit")
    if unit in _units():
        for i, row in frame.iterrows():
            why = _hidden_among_siblings(unit, dt.date.fromisoformat(str(row["wave"])))
            if why:
                frame.loc[i, ["respondents", "engagement", "engagement_moe", "enps"]] = pd.NA
                frame.loc[i, "hidden"] = True
                frame.loc[i, "reason"] = why
    return frame[cols].reset_index(drop=True)


def chain_scope(state: dict[str, str]) -> tuple[str | None, str | None]:
    """(unit whose stores are plotted, store to highlight): a store is shown among its
    region's stores, since a correlation needs several."""
    parent, highlight = breakdown_of(state)
    scope = scope_of(state)
    if highlight is not None:
        return parent, highlight
    return scope, None


def _chain_link(state: dict[str, str]):
    wave, _ = wave_of(state)
    if wave is None:
        return None, None, None
    month = Month.of(wave)
    f = filters_of(state)
    unit, _ = chain_scope(state)
    link = cached(engagement_vs_cx, waves=(wave,), start=month.shift(-(CX_MONTHS - 1)).start,
                  end=month.end, outcome=outcome_of(state), min_respondents=_anonymity(),
                  unit=None if unit == _root() else unit,
                  **{k: getattr(f, k) for k in DIMS})
    return link, wave, month


def chain_data(state: dict[str, str]):
    """The chain's query result, the points shown (stores hidden anywhere else on the page
    for this wave left out) and how many were left out that way."""
    link, wave, _month = _chain_link(state)
    if link is None:
        return None, None, 0
    points = link.points
    keep = pd.Series([_hidden_among_siblings(str(u), wave) is None for u in points["unit"]],
                     index=points.index, dtype=bool)
    # A Series mask, not a list: `points[[]]` would select no columns, not no rows.
    shown = points[keep].reset_index(drop=True)
    return link, shown, len(points) - len(shown)


@downloadable("employees-chain")
def chain_frame(state: dict[str, str]) -> pd.DataFrame:
    """One row per store plotted: engagement in the wave against the customer score."""
    _link, shown, _guarded = chain_data(state)
    if shown is None or shown.empty:
        return pd.DataFrame(columns=["unit", "name", "engagement", "respondents", "waves",
                                     "score", "n", "outcome"])
    return shown.assign(outcome=outcome_of(state))


# ----------------------------------------------------------------------------- layout


def wave_choices(state: dict[str, str]) -> tuple[list[dict], str]:
    """Options and placeholder of the wave selector (newest first).

    Built with the layout, not by a callback: a dropdown whose value is not among its
    options yet would clear it, and the clearing would rewrite the URL.
    """
    try:
        waves = waves_of(state)
    except Exception:  # the callbacks say what failed; the selector just stays empty
        waves = []
    options = [{"label": f"{_wave_label(w)} wave", "value": w} for w in reversed(waves)]
    placeholder = f"Latest wave ({_wave_label(waves[-1])})" if waves else "No wave yet"
    return options, placeholder


def layout(**query: str) -> html.Div:
    """The page skeleton; the view state (from the URL) drives the callbacks below."""
    options, placeholder = wave_choices(query)
    wave = query.get("wave") if any(o["value"] == query.get("wave") for o in options) else None
    units = panel(
        "Engagement and eNPS by unit",
        html.Div([
            dcc.Loading(html.Div([
                html.Div(id=f"{PREFIX}-units-intro", className="small text-muted"),
                dcc.Graph(id=f"{PREFIX}-units-graph", config=GRAPH_CONFIG,
                          style={"height": "260px"},
                          figure=theme.empty_figure("Loading…", height=260)),
            ]), type="dot", delay_show=300),
        ]),
        target="employees-units", id_=f"{PREFIX}-units-panel",
        note="Bars: 95% margins. A group with fewer than the anonymity minimum of respondents "
             "is hidden, and so is any group that would let it be worked out by subtraction.")
    table = panel(
        "By unit, with participation",
        dcc.Loading(html.Div(id=f"{PREFIX}-table-slot"), type="dot", delay_show=300),
        target="employees-units-table", id_=f"{PREFIX}-table-panel")
    trend = panel(
        "Engagement over waves",
        html.Div([
            graph_slot(f"{PREFIX}-trend-graph", 300,
                   html.Div(id=f"{PREFIX}-trend-note",
                            className="cx-note text-muted small mt-1")),
        ]),
        target="employees-trend", id_=f"{PREFIX}-trend-panel")
    chain = panel(
        "Engaged staff, happier customers? (service-profit chain)",
        html.Div([
            dbc.Row(dbc.Col([
                html.Span("Customer score", className="small text-muted me-2"),
                toggle(f"{PREFIX}-outcome", {"csat": "CSAT", "nps": "NPS"},
                       outcome_of(query)),
            ], width="auto", className="d-flex align-items-center"), className="mb-1 mt-1"),
            graph_slot(f"{PREFIX}-chain-graph", 340,
                   html.Div(id=f"{PREFIX}-chain-words", className="mt-1"),
                   html.Div(id=f"{PREFIX}-chain-note",
                            className="cx-note text-muted small mt-1")),
        ]),
        target="employees-chain", id_=f"{PREFIX}-chain-panel")
    return html.Div(
        [
            dcc.Store(id=f"{PREFIX}-state", data=query),
            dbc.Row(
                [
                    dbc.Col(html.H1("Employee engagement", className="h4 mb-0"),
                            width="auto"),
                    dbc.Col(html.Div(id=f"{PREFIX}-caption", className="text-muted")),
                    dbc.Col(
                        html.Div([
                            html.Label("Wave", htmlFor=f"{PREFIX}-wave",
                                       className="small text-muted me-2 mb-0"),
                            dcc.Dropdown(id=f"{PREFIX}-wave", value=wave, options=options,
                                         clearable=True, searchable=False,
                                         placeholder=placeholder, style={"minWidth": "15rem"}),
                        ], className="d-flex align-items-center"),
                        xs=12, lg="auto", className="d-print-none"),
                ],
                className="align-items-center mb-2 g-2",
            ),
            html.Div(id=f"{PREFIX}-scope-note"),
            dbc.Row(
                [dbc.Col(units, xl=7), dbc.Col(table, xl=5)],
                className="g-3",
            ),
            dbc.Row(
                [dbc.Col(trend, xl=6), dbc.Col(chain, xl=6)],
                className="g-3",
            ),
        ]
    )


# -------------------------------------------------------------------------- callbacks


@callback(
    Output(f"{PREFIX}-caption", "children"),
    Output(f"{PREFIX}-scope-note", "children"),
    Input(f"{PREFIX}-state", "data"),
)
def render_header(state: dict[str, str] | None):
    """The caption and what the filters do (or not) on this page."""
    state = state or {}
    wave, wave_note = wave_of(state)
    caption = (f"{_name(scope_of(state))} · " +
               (f"wave of {_wave_label(wave)}" if wave else "no engagement wave yet"))
    notes = []
    if wave_note:
        notes.append(wave_note)
    dims = [k for k in DIMS if state.get(k)]
    if dims:
        notes.append("Engagement is measured per unit only: the " + ", ".join(dims)
                     + " filter narrows the customer score of the service-profit chain and "
                       "nothing else on this page.")
    if state.get("compare"):
        notes.append("The comparison filter is not used here: the trend shows every wave.")
    note = (dbc.Alert(" ".join(notes), color="light", className="py-2 small mb-2",
                      id=f"{PREFIX}-filters-note") if notes else None)
    return caption, note


def units_figure(frame: pd.DataFrame, highlight: str | None) -> go.Figure:
    """Horizontal bars of engagement and eNPS with 95% margins, each panel with its own titled
    axis; hidden units keep their row (named, greyed, no bar) and one note under the chart
    says which are hidden and why."""
    if frame.empty:
        return theme.empty_figure("No unit below this one answered in this wave", height=260)
    # Unit names are source text: escaped once here, they are the categories of the y axis
    # (ticks, hovers and the annotations placed on them).
    frame = frame.assign(name=[theme.plain(n) for n in frame["name"]])
    names = frame["name"].tolist()
    visible = frame[~frame["hidden"].astype(bool)]
    # Wide gap between the panels: their tick labels must not read as one axis.
    fig = make_subplots(rows=1, cols=2, shared_yaxes=True, horizontal_spacing=0.2)
    opacity = [1.0 if highlight in (None, u) else 0.45 for u in visible["unit"]]
    custom = visible[["respondents", "headcount", "participation"]].astype(float).to_numpy()
    for col, key, fmt in ((1, "engagement", "%{x:.1f}%"), (2, "enps", "%{x:+.1f}")):
        fig.add_trace(go.Bar(
            y=visible["name"].tolist(), x=visible[key].astype(float).tolist(), orientation="h",
            marker={"color": theme.GOOD, "opacity": opacity},
            error_x={"type": "data", "array": visible[f"{key}_moe"].astype(float).tolist(),
                     "color": "#343a40", "thickness": 1.2, "width": 5},
            customdata=custom, name="Engagement" if key == "engagement" else "eNPS",
            hovertemplate=("<b>%{y}</b><br>" + ("Engagement " if col == 1 else "eNPS ") + fmt
                           + " ± %{error_x.array:.1f}<br>n = %{customdata[0]:,.0f} of "
                             "%{customdata[1]:,.0f} staff (%{customdata[2]:.0f}%)"
                             "<extra></extra>"),
        ), row=1, col=col)
    hidden = [(i, row) for i, row in enumerate(frame.itertuples()) if row.hidden]
    for i, _row in hidden:
        fig.add_shape(type="rect", xref="paper", x0=0, x1=1, yref="y", y0=i - 0.4, y1=i + 0.4,
                      fillcolor="#eef0f2", line={"width": 0}, layer="below")
    lines = hidden_note_lines([(row.name, row.reason) for _i, row in hidden])
    if lines:
        fig.add_annotation(x=0, xref="paper", xanchor="left", y=0, yref="paper",
                           yanchor="top", yshift=-UNITS_AXIS_ROOM, showarrow=False,
                           align="left", text="<br>".join(lines),
                           font={"color": HIDDEN_GREY, "size": 12})
    ticks = [f"<span style='color:{HIDDEN_GREY}'>{n} (hidden)</span>" if h
             else (f"<b>{n}</b>" if u == highlight else n)
             for n, u, h in zip(names, frame["unit"], frame["hidden"], strict=True)]
    fig.update_yaxes(type="category", categoryorder="array", categoryarray=names,
                     tickvals=names, ticktext=ticks, autorange="reversed")
    fig.update_xaxes(range=[0, 100], ticksuffix="%", title="Engagement, % favourable",
                     row=1, col=1)
    fig.update_xaxes(range=[-100, 100], zeroline=True, zerolinecolor="#adb5bd",
                     tickvals=[-100, -50, 0, 50, 100], ticktext=["−100", "−50", "0", "+50", "+100"],
                     title="eNPS, −100 to +100", row=1, col=2)
    fig.update_xaxes(title_font={"size": 12}, title_standoff=6)
    fig.update_layout(showlegend=False, bargap=0.3)
    theme.base_layout(fig, height=units_height(frame))
    fig.update_layout(margin={"l": 140, "t": 16, "b": UNITS_AXIS_ROOM + 18 * len(lines) + 8})
    return fig


UNITS_AXIS_ROOM = 46  # tick labels and the axis title under each panel, in px


def hidden_note_lines(rows: list[tuple[str, object]]) -> list[str]:
    """One note for a chart's hidden groups: a heading line, then 'name: why' per group."""
    if not rows:
        return []
    return ["<i>Hidden to protect anonymity:</i>"] + [
        f"<i>{theme.plain(name)}: {theme.plain(str(why or 'hidden').removeprefix('hidden: '))}</i>"
        for name, why in rows]


def units_height(frame: pd.DataFrame) -> int:
    """Height of the units chart: room for every row, hidden ones included, and the note."""
    if frame.empty:
        return 260
    hidden = int(frame["hidden"].astype(bool).sum())
    return 100 + 44 * len(frame) + (18 * (hidden + 1) if hidden else 0)


def units_table(frame: pd.DataFrame, highlight: str | None) -> dbc.Table | html.Div:
    """The same rows as a table; hidden rows say 'hidden' and why, with no number at all."""
    if frame.empty:
        return html.Div("No unit below this one answered in this wave.",
                        className="text-muted")

    def hidden_cell() -> html.Td:
        return html.Td(dbc.Badge("hidden", color="light", text_color="secondary",
                                 className="border"), className="cx-value", style=NOWRAP)

    rows = []
    for r in frame.itertuples():
        if r.hidden:
            rows.append(html.Tr([
                html.Td([html.Div(r.name), html.Div(r.reason, className="small fst-italic")],
                        className="cx-unit"),
                hidden_cell(), hidden_cell(), hidden_cell(),
            ], className="text-muted", id=f"{PREFIX}-row-{r.unit}",
                style={"backgroundColor": "#f5f6f8"}))
            continue
        part = (f"{r.participation:.0f}%" if pd.notna(r.participation) else "n/a")
        heads = (f"{int(r.respondents):,} of {int(r.headcount):,}" if pd.notna(r.headcount)
                 else f"{int(r.respondents):,} (headcount unknown)")
        rows.append(html.Tr([
            html.Td(html.Strong(r.name) if r.unit == highlight else r.name, className="cx-unit"),
            html.Td([f"{r.engagement:.1f}%",
                     html.Span(f" ±{r.engagement_moe:.1f}", className="small text-muted")],
                    className="cx-value", style=NOWRAP),
            html.Td([f"{r.enps:+.1f}",
                     html.Span(f" ±{r.enps_moe:.1f}", className="small text-muted")],
                    className="cx-value", style=NOWRAP),
            html.Td([part, html.Div(heads, className="small text-muted")],
                    className="cx-value"),
        ], id=f"{PREFIX}-row-{r.unit}"))
    return dbc.Table(
        [html.Thead(html.Tr([html.Th("Unit"), html.Th("Engagement"), html.Th("eNPS"),
                             html.Th("Participation")])),
         html.Tbody(rows)],
        size="sm", hover=True, responsive=True, className="mb-0 align-middle",
        id=f"{PREFIX}-table")


# The table shows the same rows as the chart: register the builder under its own target too.
downloadable("employees-units-table")(units_frame)


@callback(
    Output(f"{PREFIX}-units-graph", "figure"),
    Output(f"{PREFIX}-units-graph", "style"),
    Output(f"{PREFIX}-table-slot", "children"),
    Output(f"{PREFIX}-units-intro", "children"),
    Input(f"{PREFIX}-state", "data"),
)
def render_units(state: dict[str, str] | None):
    """Children of the selected unit (or a store among its siblings) in the wave shown."""
    state = state or {}
    wave, _ = wave_of(state)
    if wave is None:
        msg = "No engagement wave at or before the selected period"
        return (theme.empty_figure(msg, height=260), {"height": "260px"},
                html.Div(msg, className="text-muted"), None)
    try:
        frame = units_frame(state)
    except Exception as exc:
        msg = f"Engagement by unit could not be computed: {exc}"
        return (theme.empty_figure(msg, height=260), {"height": "260px"},
                dbc.Alert(msg, color="danger"), None)
    parent, highlight = breakdown_of(state)
    if highlight:
        intro = (f"{_name(highlight)} among the units of {_name(parent)}, "
                 f"{_wave_label(wave)} wave.")
    else:
        intro = f"Units of {_name(parent)}, {_wave_label(wave)} wave."
    return (units_figure(frame, highlight), {"height": f"{units_height(frame)}px"},
            units_table(frame, highlight), intro)


def trend_figure(frame: pd.DataFrame, wave: dt.date | None) -> go.Figure:
    """Engagement and eNPS per wave with 95% margins; hidden waves are gaps, labelled."""
    if frame.empty:
        return theme.empty_figure("No engagement wave at or before the selected period",
                                  height=300)
    labels = [_wave_short(w) for w in frame["wave"]]
    hidden = frame["hidden"].astype(bool).tolist()
    selected = [str(w) == str(wave) for w in frame["wave"]]
    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.12,
                        subplot_titles=("Engagement, % favourable", "eNPS"))
    fig.update_annotations(font={"size": 13})

    def values(col: str) -> list[float | None]:
        return [None if pd.isna(v) else float(v) for v in frame[col]]

    resp = [None if pd.isna(v) else float(v) for v in frame["respondents"]]
    for col, key, fmt, moe in ((1, "engagement", "%{y:.1f}%", "engagement_moe"),
                               (2, "enps", "%{y:+.1f}", None)):
        fig.add_trace(go.Scatter(
            x=labels, y=values(key), mode="lines+markers", connectgaps=False,
            line={"color": theme.GOOD, "width": 2},
            marker={"color": theme.GOOD, "size": [12 if s else 7 for s in selected]},
            error_y={"type": "data", "array": [v or 0 for v in values(moe)],
                     "color": "#6c757d", "thickness": 1, "width": 4} if moe else None,
            customdata=resp, name="Engagement" if col == 1 else "eNPS",
            hovertemplate="%{x}: " + fmt + "<br>n = %{customdata:,.0f}<extra></extra>",
        ), row=1, col=col)
    gaps = [label for label, h in zip(labels, hidden, strict=True) if h]
    if gaps:
        # One note for the chart, not a "hidden" per wave and panel printed over each other.
        fig.add_annotation(x=0.5, xref="paper", xanchor="center", y=1, yref="paper",
                           yanchor="bottom", yshift=22, showarrow=False,
                           text="<i>Gaps: " + ", ".join(gaps) + " hidden to protect "
                                "anonymity</i>", font={"color": HIDDEN_GREY, "size": 12})
    # Half a category of room at each end: the first wave's label clears the y ticks.
    fig.update_xaxes(type="category", categoryorder="array", categoryarray=labels,
                     range=[-0.5, len(labels) - 0.5])
    fig.update_yaxes(range=[0, 100], ticksuffix="%", row=1, col=1)
    fig.update_yaxes(range=[-100, 100], zeroline=True, zerolinecolor="#adb5bd", row=1, col=2)
    fig.update_layout(showlegend=False)
    theme.base_layout(fig, height=300)
    fig.update_layout(margin={"t": 56 if gaps else 36})
    return fig


@callback(
    Output(f"{PREFIX}-trend-graph", "figure"),
    Output(f"{PREFIX}-trend-note", "children"),
    Input(f"{PREFIX}-state", "data"),
)
def render_trend(state: dict[str, str] | None):
    """The selected unit's engagement and eNPS over the waves up to the period."""
    state = state or {}
    try:
        frame = trend_frame(state)
    except Exception as exc:
        msg = f"The engagement trend could not be computed: {exc}"
        return theme.empty_figure(msg, height=300), msg
    wave, _ = wave_of(state)
    note = [f"{_name(scope_of(state))}; the larger marker is the wave shown above."]
    gaps = frame[frame["hidden"].astype(bool)]
    if not gaps.empty:
        note.append("Gaps: " + "; ".join(
            f"{_wave_label(w)} hidden ({why})" for w, why in zip(gaps["wave"], gaps["reason"],
                                                                  strict=True)) + ".")
    return trend_figure(frame, wave), " ".join(note)


def chain_figure(shown: pd.DataFrame, corr: stats.Correlation, outcome: str,
                 months: tuple[Month, Month], highlight: str | None) -> go.Figure:
    """Stores' engagement against their customer score, the OLS line, r and its CI."""
    label = OUTCOMES[outcome]
    if shown.empty:
        return theme.empty_figure("No store here has both enough staff answers and "
                                  "customer answers", height=340)
    score_fmt = "%{y:+.1f}" if outcome == "nps" else "%{y:.1f}%"
    colours = [theme.GOOD if highlight in (None, u) else "#9ecae1" for u in shown["unit"]]
    xs, ys = shown["engagement"].astype(float).tolist(), shown["score"].astype(float).tolist()
    names = shown["name"].tolist()
    texts, spots = place_labels(names, xs, ys, first=[i for i, u in enumerate(shown["unit"])
                                                      if u == highlight])
    fig = go.Figure(go.Scatter(
        x=xs, y=ys, mode="markers+text", text=[theme.plain(t) for t in texts],
        textposition=spots, hovertext=[theme.plain(n) for n in names],
        textfont={"size": 10, "color": "#6c757d"},
        marker={"color": colours, "size": 11, "line": {"width": 1, "color": "white"}},
        customdata=shown[["respondents", "n"]].astype(float).to_numpy(), name="Stores",
        hovertemplate=("<b>%{hovertext}</b><br>Engagement %{x:.1f}% (%{customdata[0]:,.0f} "
                       "staff)"
                       "<br>" + label + " " + score_fmt + " (n = %{customdata[1]:,.0f} "
                       "customers)<extra></extra>"),
    ))
    if corr.r is not None and corr.slope is not None and corr.intercept is not None:
        xs = [float(shown["engagement"].min()), float(shown["engagement"].max())]
        fig.add_trace(go.Scatter(x=xs, y=[corr.intercept + corr.slope * x for x in xs],
                                 mode="lines", line={"color": "#343a40", "dash": "dash",
                                                     "width": 2},
                                 hoverinfo="skip", name="Regression line"))
    fig.update_xaxes(title="Engagement in the wave, % favourable", ticksuffix="%")
    first, last = months
    fig.update_yaxes(title=f"{label}, {first.start:%b}–{last.start:%b %Y}"
                     + (" (% answering 4–5)" if outcome == "csat" else ""))
    fig.update_layout(showlegend=False)
    return theme.base_layout(fig, title=r_title(corr), height=340)


def r_title(corr: stats.Correlation) -> str:
    """'r = 0.64 (95% CI 0.11 to 0.89) · 12 stores'."""
    if corr.r is None:
        return f"r not defined: too few stores ({corr.n}) or no spread"
    ci = (f" (95% CI {corr.low:.2f} to {corr.high:.2f})"
          if corr.low is not None and corr.high is not None else "")
    return f"r = {corr.r:.2f}{ci} · {corr.n:,} stores"


def _chain_words(corr: stats.Correlation, outcome: str) -> html.Div:
    label = OUTCOMES[outcome]
    if corr.r is None:
        text = (f"Too few stores to correlate engagement with {label}: pick a larger unit.")
    elif corr.significant:
        way = "higher" if corr.r > 0 else "lower"
        text = (f"Stores with more engaged staff have {way} {label} (p = {corr.p:.3f}). "
                "A correlation across stores, not proof of cause.")
    else:
        text = (f"No clear link between engagement and {label} across these stores: the 95% "
                "interval for r includes zero.")
    return html.Div(text, id=f"{PREFIX}-chain-text")


@callback(
    Output(f"{PREFIX}-chain-graph", "figure"),
    Output(f"{PREFIX}-chain-words", "children"),
    Output(f"{PREFIX}-chain-note", "children"),
    Input(f"{PREFIX}-state", "data"),
)
def render_chain(state: dict[str, str] | None):
    """Engagement against the customer score by store, for the wave shown."""
    state = state or {}
    outcome = outcome_of(state)
    try:
        link, _shown, guarded = chain_data(state)
        frame = chain_frame(state)
    except Exception as exc:
        msg = f"The service-profit chain could not be computed: {exc}"
        return theme.empty_figure(msg, height=340), dbc.Alert(msg, color="danger"), None
    if link is None:
        msg = "No engagement wave at or before the selected period"
        return theme.empty_figure(msg, height=340), None, None
    if frame.empty:
        # Under 50 users a manager's small unit met this: no store both shown (anonymity)
        # and answered by customers, and the empty frame had no columns to correlate.
        msg = ("No store in this view has both an engagement result that may be shown "
               "and customer answers")
        return theme.empty_figure(msg, height=340), None, None
    wave, _ = wave_of(state)
    assert wave is not None
    month = Month.of(wave)
    months = (month.shift(-(CX_MONTHS - 1)), month)
    corr = stats.pearson(frame["engagement"].to_numpy(float), frame["score"].to_numpy(float))
    _unit, highlight = chain_scope(state)
    notes = [f"One point per store: engagement in the {_wave_label(wave)} wave against "
             f"{OUTCOMES[outcome]} from customers in {months[0].start:%b}–"
             f"{months[1].start:%b %Y}."]
    small = link.suppressed + guarded
    if small:
        notes.append(f"{small} store{'s' if small > 1 else ''} left out to protect anonymity "
                     f"(fewer than {_anonymity()} staff answered, or hidden so a smaller "
                     "group cannot be worked out by subtraction).")
    no_cx = link.excluded - link.suppressed
    if no_cx:
        notes.append(f"{no_cx} store{'s' if no_cx > 1 else ''} left out: no customer answers.")
    dims = [k for k in DIMS if state.get(k)]
    if dims:
        notes.append("The " + ", ".join(dims) + " filter narrows the customers only; "
                     "engagement is for all staff of each store.")
    return (chain_figure(frame, corr, outcome, months, highlight), _chain_words(corr, outcome),
            " ".join(notes))


@callback(
    Output("app-url", "search", allow_duplicate=True),
    Input(f"{PREFIX}-wave", "value"),
    Input(f"{PREFIX}-outcome", "value"),
    State("app-url", "search"),
    prevent_initial_call=True,
)
def write_state(wave: str | None, outcome: str | None, search: str | None):
    """The wave and the chain's customer score are page state: write them to the URL."""
    state = parse_search(search)
    state["wave"] = wave or ""
    state["outcome"] = "nps" if outcome == "nps" else ""
    new = to_search(state)
    return new if new != (search or "") else no_update
