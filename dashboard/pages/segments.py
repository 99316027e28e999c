"""Segments: drill from the company to regions and stores, or break a selection down by a
survey dimension, with every measure, its margin and its change.

The selection is the URL's unit and filters. Clicking a bar or a table row drills in by
writing the URL (`unit=`, or the dimension's filter), so the filter bar, the breadcrumb and
every number follow, and the back button walks back up. Page state: `by=` (what the
selection is broken down by), `metric=` (nps, csat or ces).
"""

from __future__ import annotations

import math

import dash
import dash_ag_grid as dag
import dash_bootstrap_components as dbc
import pandas as pd
import plotly.graph_objects as go
from dash import Input, Output, State, callback, ctx, dcc, html, no_update

from dashboard.components import theme
from dashboard.components.charts import trend_chart
from dashboard.components.controls import toggle
from dashboard.components.download import downloadable, panel
from dashboard.components.filter_bar import pretty
from dashboard.data import cached, kpi_settings, resolve_period
from dashboard.state import filters_of, parse_search, to_search
from queries import metrics
from queries.breakdown import breakdown
from queries.formatting import NOT_APPLICABLE, fmt_delta, fmt_moe, fmt_value
from queries.kpis import LABELS, SURVEY_DIMS, Comparison, Kpi, org_units
from queries.periods import Month
from queries.trends import kpi_trend

dash.register_page(__name__, path="/segments", name="Segments",
                   title="Segments · CX dashboard", order=3)

PREFIX = "segments"
MEASURES = ("nps", "csat", "ces")
BY_LABELS = {"unit": "Unit", "segment": "Segment", "channel": "Channel", "device": "Device",
             "interaction": "Interaction", "touchpoint": "Touchpoint"}
# What a leaf unit (a store) is broken down by when the URL does not say.
LEAF_ORDER = ("touchpoint", "channel", "segment", "device", "interaction")
NO_CHANGE = "#A3AFBC"  # slate grey: no significant change
UNTESTED = "#CBD3DC"  # paler: a change too few answers allow no test of
LOW = "#D9DEE4"  # pale: too few answers to read
LOW_STYLE = {"color": theme.NEUTRAL, "fontStyle": "italic"}


# --------------------------------------------------------------------------- the state


def _get(state: dict, key: str) -> str | None:
    value = (state or {}).get(key)
    return value if isinstance(value, str) and value else None


def metric_of(state: dict) -> str:
    """The measure the charts show: nps (default), csat or ces."""
    value = _get(state, "metric")
    return value if value in MEASURES else "nps"


def _units() -> dict[str, dict]:
    return {str(u["id"]): u for u in cached(org_units)}


def _children(unit: str | None, units: dict[str, dict]) -> list[dict]:
    if unit is None:
        roots = [u for u in units.values() if u["parent_id"] is None]
        return ([u for u in units.values() if u["parent_id"] == roots[0]["id"]]
                if len(roots) == 1 else roots)
    return [u for u in units.values() if u["parent_id"] == unit]


def by_of(state: dict) -> str:
    """What the selection is broken down by: the URL's `by`, else its child units, or for a
    unit without children (a store) the first dimension not already filtered."""
    state = state or {}
    unit = _get(state, "unit")
    leaf = not _children(unit, _units())
    wanted = _get(state, "by")
    if wanted in SURVEY_DIMS or (wanted == "unit" and not leaf):
        return wanted
    if not leaf:
        return "unit"
    return next((d for d in LEAF_ORDER if not _get(state, d)), LEAF_ORDER[0])


def _path(unit: str | None, units: dict[str, dict]) -> list[dict]:
    """The root down to `unit`."""
    chain: list[dict] = []
    seen: set[str] = set()
    node = units.get(unit) if unit else None
    while node is not None and node["id"] not in seen:
        seen.add(node["id"])
        chain.insert(0, node)
        node = units.get(node["parent_id"]) if node["parent_id"] else None
    roots = [u for u in units.values() if u["parent_id"] is None]
    if (not chain or chain[0]["parent_id"] is not None) and len(roots) == 1:
        chain.insert(0, roots[0])
    return chain


def _href(state: dict, **changes: str | None) -> str:
    """The segments URL of `state` with `changes` (a new unit forgets the page's `by`)."""
    new = {k: v for k, v in (state or {}).items() if isinstance(v, str)}
    new.update(changes)
    if "unit" in changes:
        new.pop("by", None)
        new.pop("path", None)
    return "/segments" + to_search(new)


def _scope_name(state: dict, units: dict[str, dict]) -> str:
    unit = _get(state, "unit")
    if unit and unit in units:
        return str(units[unit]["name"])
    return "Whole company"


def _filter_words(state: dict) -> str:
    words = [f"{BY_LABELS[d].lower()} {pretty(_get(state, d) or '')}" for d in SURVEY_DIMS
             if _get(state, d)]
    return ", ".join(words)


# --------------------------------------------------------------------------- the data


def breakdown_rows(state: dict) -> pd.DataFrame | None:
    """The breakdown of the view (cached); None when there is no data at all."""
    period, compare = resolve_period(state or {})
    if period is None:
        return None
    return cached(breakdown, period=period, compare=compare, filters=filters_of(state or {}),
                  by=by_of(state), settings=kpi_settings())


def _kpi(key: str, period: Month, compare: Month, value: float | None, n: int,
         moe: float | None, delta: float | None, significant: bool | None) -> Kpi:
    label, unit = LABELS[key]
    cmp = Comparison(str(compare), None, 0, delta, None, significant)
    return Kpi(key=key, label=label, unit=unit, period=str(period), value=value, n=n, moe=moe,
               compare=cmp)


def _num(value: object) -> float | None:
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return None
    return float(value)  # type: ignore[arg-type]


def _yes(value: object) -> bool:
    """True for a true flag; False for false, None and NaN (numpy booleans included)."""
    return value is not None and not pd.isna(value) and bool(value)


def _label(row: pd.Series, by: str) -> str:
    return str(row["name"]) if by == "unit" or row["key"] is None else pretty(str(row["key"]))


@downloadable("segments-table")
def table_frame(state: dict) -> pd.DataFrame:
    """The breakdown table as shown: one row per child unit or dimension value."""
    rows = breakdown_rows(state)
    period, compare = resolve_period(state or {})
    by = by_of(state)
    if rows is None or rows.empty:
        return pd.DataFrame(columns=["name", "key", "responses"])
    out = pd.DataFrame({
        BY_LABELS[by].lower(): [_label(r, by) for _, r in rows.iterrows()],
        "key": rows["key"],
        "period": str(period), "compare_period": str(compare),
        "responses": rows["responses"],
        **{col: rows[col] for m in MEASURES for col in
           (m, f"{m}_moe", f"{m}_n", f"{m}_delta", f"{m}_significant", f"{m}_untested",
            f"{m}_low")},
        "ces_agree": rows["ces_agree"], "ces_agree_moe": rows["ces_agree_moe"],
        "revenue": rows["revenue"], "revenue_not_applicable": rows["revenue_na"],
        "low_sample": rows["low_sample"],
    })
    return out.rename(columns={f"{m}_low": f"{m}_low_sample" for m in MEASURES})


@downloadable("segments-bars")
def bars_frame(state: dict) -> pd.DataFrame:
    """The bars of the chart, top to bottom: the chosen measure per child or value."""
    rows = breakdown_rows(state)
    metric, by = metric_of(state), by_of(state)
    cols = ["name", "key", "drill", metric, "margin_95", "n", "change", "significant",
            "test", "low_sample"]
    if rows is None or rows.empty:
        return pd.DataFrame(columns=cols)
    data = rows[rows[metric].notna()]
    out = pd.DataFrame({
        "name": [_label(r, by) for _, r in data.iterrows()], "key": data["key"],
        "drill": ["" if r["direct"] or r["key"] is None else by for _, r in data.iterrows()],
        metric: data[metric], "margin_95": data[f"{metric}_moe"], "n": data[f"{metric}_n"],
        "change": data[f"{metric}_delta"], "significant": data[f"{metric}_significant"],
        "test": [("" if v is None or v != v else str(v)) for v in data[f"{metric}_untested"]],
        "low_sample": data[f"{metric}_low"],
    }, columns=cols)
    return out.sort_values(metric, ascending=False, kind="stable").reset_index(drop=True)


def _trend(state: dict) -> pd.DataFrame | None:
    period, _ = resolve_period(state or {})
    if period is None:
        return None
    return cached(kpi_trend, end=period, months=13, filters=filters_of(state or {}),
                  active_days=kpi_settings().active_days)


@downloadable("segments-trend")
def trend_frame(state: dict) -> pd.DataFrame:
    """The 13 months of the chosen measure for the selection, with n and margins."""
    trend = _trend(state)
    metric = metric_of(state)
    cols = ["month", metric, f"{metric}_n", f"{metric}_moe"]
    if trend is None:
        return pd.DataFrame(columns=cols)
    return trend[cols].rename(columns={f"{metric}_moe": "margin_95", f"{metric}_n": "n"})


# --------------------------------------------------------------------------- the figures


def _overall(rows: pd.DataFrame, metric: str) -> float | None:
    """The selection's value, re-aggregated from the counts of its rows (exact)."""
    total = rows[["nps_n", "nps_promoters", "nps_detractors", "csat_n", "csat_top2", "ces_n",
                  "ces_sum", "ces_sumsq"]].sum()
    if metric == "nps":
        return metrics.nps(int(total["nps_n"]), int(total["nps_promoters"]),
                           int(total["nps_detractors"])).value
    if metric == "csat":
        return metrics.share(int(total["csat_n"]), int(total["csat_top2"])).value
    return metrics.mean(int(total["ces_n"]), float(total["ces_sum"]),
                        float(total["ces_sumsq"])).value


def bars_figure(state: dict) -> go.Figure:
    """Horizontal bars of the measure per child or value, 95% margins as error bars,
    coloured by the significance of the change; the selection's value as a line."""
    rows = breakdown_rows(state)
    metric, by = metric_of(state), by_of(state)
    label, unit = LABELS[metric]
    period, compare = resolve_period(state or {})
    units = _units()
    scope = _scope_name(state, units)
    if rows is None or period is None:
        return theme.empty_figure("No survey data has been loaded yet.")
    data = bars_frame(state)
    if data.empty:
        where = f"{scope}, {period.label}"
        extra = _filter_words(state)
        return theme.empty_figure(f"No {label} answers for {where}"
                                  + (f" with {extra}" if extra else "") + ".")
    data = data.iloc[::-1].reset_index(drop=True)  # plotly draws the first bar at the bottom
    # Names are source text shown as tick labels and in hovers; the drill uses `key`.
    data["name"] = [theme.plain(n) for n in data["name"]]
    min_n = kpi_settings().min_n
    groups = [
        (f"Up significantly vs {compare.label}", theme.GOOD,
         lambda r: not r["low_sample"] and _yes(r["significant"]) and r["change"] > 0),
        (f"Down significantly vs {compare.label}", theme.BAD,
         lambda r: not r["low_sample"] and _yes(r["significant"]) and r["change"] < 0),
        ("No significant change", NO_CHANGE,
         lambda r: not r["low_sample"] and not _yes(r["significant"]) and not r["test"]),
        ("Too few answers to test the change", UNTESTED,
         lambda r: not r["low_sample"] and bool(r["test"])),
        (f"Low sample (under {min_n} answers)", LOW, lambda r: bool(r["low_sample"])),
    ]
    value_fmt = {"nps": "%{x:+.1f}", "csat": "%{x:.1f}%", "ces": "%{x:.2f}"}[metric]
    moe_fmt = "%{customdata[3]:.2f}" if metric == "ces" else "%{customdata[3]:.1f}"
    fig = go.Figure()
    for name, colour, test in groups:
        part = data[[bool(test(r)) for _, r in data.iterrows()]]
        if part.empty:
            continue
        changes = [fmt_delta(_kpi(metric, period, compare, None, 0, None, _num(c), None))
                   if _num(c) is not None else "no comparison" for c in part["change"]]
        fig.add_trace(go.Bar(
            x=[float(v) for v in part[metric]], y=part["name"].tolist(), orientation="h",
            name=name, marker={"color": colour,
                               "line": {"color": theme.NEUTRAL if colour == LOW else colour,
                                        "width": 1}},
            error_x={"type": "data", "array": [_num(v) or 0.0 for v in part["margin_95"]],
                     "color": "#495057", "thickness": 1.2, "width": 4},
            customdata=list(zip(part["key"].fillna("").tolist(), part["drill"].tolist(),
                                [int(v) for v in part["n"]],
                                [_num(v) or 0.0 for v in part["margin_95"]], changes,
                                strict=True)),
            hovertemplate=("<b>%{y}</b><br>" + f"{label} {value_fmt}"
                           + f" ± {moe_fmt}<br>n = " + "%{customdata[2]:,}<br>"
                           + f"vs {compare.label}: " + "%{customdata[4]}<extra></extra>"),
        ))
    overall = _overall(breakdown_rows(state), metric)
    shown = {"nps": "{:+.1f}", "csat": "{:.1f}%", "ces": "{:.2f}"}[metric]
    notes = []
    if overall is not None:
        fig.add_vline(x=overall, line={"color": theme.NEUTRAL, "dash": "dash", "width": 1})
        notes.append({"x": overall, "y": 1, "yref": "paper", "yanchor": "bottom",
                      "showarrow": False,
                      "text": theme.plain(f"{scope}: {shown.format(overall)}"),
                      "font": {"size": 11, "color": theme.NEUTRAL}})
    # The value and its n at the right of each bar, like a table column. Set at once:
    # Plotly checks every annotation again on each add_annotation, 200 ms for 20 bars.
    notes += [{"x": 1, "xref": "paper", "xanchor": "left", "xshift": 8, "y": name,
               "showarrow": False, "align": "left",
               "text": f"{shown.format(float(value))} <span style='color:"
                       f"{theme.NEUTRAL}'>n={int(n)}</span>",
               "font": {"size": 12}}
              for name, value, n in zip(data["name"], data[metric], data["n"], strict=True)]
    fig.update_layout(annotations=[*fig.layout.annotations, *notes])
    kids = _children(_get(state, "unit"), units) if by == "unit" else []
    what = str(kids[0]["kind"]) if kids else BY_LABELS[by].lower()
    theme.base_layout(fig, title=f"{label} by {what} · {scope} · {period.label}",
                      height=max(300, 36 * len(data) + 130))
    fig.update_layout(
        barmode="overlay", bargap=0.3, dragmode=False, hovermode="closest", showlegend=True,
        margin={"l": 8, "r": 96, "t": 64, "b": 40},
        legend={"orientation": "h", "yanchor": "top", "y": -0.12 if len(data) > 3 else -0.25,
                "x": 0, "font": {"size": 11}},
    )
    fig.update_yaxes(categoryorder="array", categoryarray=data["name"].tolist(),
                     automargin=True, ticklabelstandoff=6)
    fig.update_xaxes(title=None, zeroline=True, zerolinecolor="#ADB5BD",
                     ticksuffix="%" if unit == "%" else "",
                     range=_value_range(data, metric))
    return fig


def _value_range(data: pd.DataFrame, metric: str) -> list[float]:
    """The x range: zero, every bar and its margin, within the scale's own bounds."""
    low, high = {"nps": (-100.0, 100.0), "csat": (0.0, 100.0), "ces": (0.0, 7.0)}[metric]
    values = data[metric].astype(float)
    moe = data["margin_95"].astype(float).fillna(0.0)
    lo = max(low, min(0.0, float((values - moe).min())))
    hi = min(high, max(0.0, float((values + moe).max())))
    pad = (hi - lo) * 0.04 or 1.0
    return [lo - (pad if lo < 0 else 0.0), hi + pad]


def trend_figure(state: dict) -> go.Figure:
    """The chosen measure over 13 months for the selection, with its 95% margins."""
    trend = _trend(state)
    metric = metric_of(state)
    label, unit = LABELS[metric]
    scope = _scope_name(state, _units())
    if trend is None or trend[metric].dropna().empty:
        return theme.empty_figure(f"No {label} answers for {scope} in the last 13 months.")
    fig = trend_chart(trend, metric, label, unit)
    theme.base_layout(fig, title=f"{label} over 13 months · {scope}", height=300)
    fig.update_layout(margin={"l": 56, "r": 16, "t": 48, "b": 40}, dragmode=False)
    labels = trend["label"].tolist()
    fig.update_xaxes(tickangle=0, tickmode="array", tickvals=labels[::-3][::-1])
    return fig


# --------------------------------------------------------------------------- the table


def _cell(key: str, width: int | None = None, **extra: object) -> dict:
    col = {
        "field": key, "type": "rightAligned",
        "valueFormatter": {"function": f"params.data.{key}_shown"},
        "cellStyle": {"styleConditions": [
            {"condition": f"params.data.{key}_low", "style": LOW_STYLE}]},
        "tooltipValueGetter": {"function": f"params.data.{key}_tip"},
    }
    if width:
        col["minWidth"] = width
    col.update(extra)
    return col


def grid_columns(state: dict) -> list[dict]:
    """Column definitions of the breakdown table."""
    by = by_of(state)
    _, compare = resolve_period(state or {})
    units = _units()
    first = "Unit"
    kids = _children(_get(state, "unit"), units) if by == "unit" else []
    if kids:
        first = str(kids[0]["kind"]).capitalize()
    elif by != "unit":
        first = BY_LABELS[by]
    vs = f"NPS vs {compare.start:%b %Y}" if compare else "NPS change"
    return [
        {"field": "label", "headerName": first, "pinned": "left", "minWidth": 150, "flex": 2,
         "cellStyle": {"styleConditions": [
             {"condition": "params.data.drill", "style": {"color": theme.GOOD,
                                                          "cursor": "pointer",
                                                          "fontWeight": 600}}]},
         "tooltipValueGetter": {"function": "params.data.drill ? 'Click to drill into ' + "
                                            "params.data.label : null"}},
        {"field": "responses", "headerName": "Answers", "type": "rightAligned",
         "minWidth": 90, "flex": 1, "valueFormatter": {"function":
                                                       "d3.format(',')(params.value)"}},
        _cell("nps", 120, headerName="NPS ± 95%", flex=1.4),
        {"field": "nps_delta", "headerName": vs, "type": "rightAligned", "minWidth": 120,
         "flex": 1.3, "valueFormatter": {"function": "params.data.nps_delta_shown"},
         "cellStyle": {"styleConditions": [
             {"condition": "params.data.nps_low", "style": LOW_STYLE},
             {"condition": "params.data.nps_delta_tone == 'up'",
              "style": {"color": theme.GOOD, "fontWeight": 600}},
             {"condition": "params.data.nps_delta_tone == 'down'",
              "style": {"color": theme.BAD, "fontWeight": 600}}]},
         "tooltipValueGetter": {"function": "params.data.nps_delta_tip"}},
        _cell("csat", 120, headerName="CSAT ± 95%", flex=1.4),
        _cell("ces", 110, headerName="CES ± 95%", flex=1.3),
        _cell("ces_agree", 90, headerName="CES % easy", flex=1),
        {"field": "revenue", "headerName": "Revenue", "type": "rightAligned", "minWidth": 100,
         "flex": 1.1, "valueFormatter": {"function": "params.data.revenue_shown"},
         "tooltipValueGetter": {"function": "params.data.revenue_tip"}},
    ]


def grid_rows(state: dict) -> list[dict]:
    """The rows of the breakdown table: numbers to sort by, texts to show."""
    rows = breakdown_rows(state)
    period, compare = resolve_period(state or {})
    by = by_of(state)
    if rows is None or rows.empty or period is None:
        return []
    min_n = kpi_settings().min_n
    out = []
    for _, r in rows.iterrows():
        drill = "" if r["direct"] or r["key"] is None else by
        item: dict[str, object] = {
            "row_id": f"{drill or 'none'}:{'' if r['key'] is None else r['key']}",
            "label": _label(r, by), "key": r["key"], "drill": drill,
            "responses": int(r["responses"]),
        }
        for key, n_col in (("nps", "nps_n"), ("csat", "csat_n"), ("ces", "ces_n"),
                           ("ces_agree", "ces_n")):
            value, moe, n = _num(r[key]), _num(r[f"{key}_moe"]), int(r[n_col])
            kpi = _kpi(key, period, compare, value, n, moe, None, None)
            low = n < min_n
            item[key] = value
            item[f"{key}_shown"] = ("no answers" if value is None else
                                    f"{fmt_value(kpi)} {fmt_moe(kpi).replace(' pts', '')}"
                                    .strip())
            item[f"{key}_low"] = low
            item[f"{key}_tip"] = (f"Low sample: {n} answers (under {min_n}); read with care"
                                  if low and value is not None else f"n = {n:,}")
        delta, sig = _num(r["nps_delta"]), _yes(r["nps_significant"])
        kpi = _kpi("nps", period, compare, _num(r["nps"]), int(r["nps_n"]), None, delta, sig)
        item["nps_delta"] = delta
        if delta is None:
            item["nps_delta_shown"] = "no comparison"
            item["nps_delta_tone"] = ""
            item["nps_delta_tip"] = f"No NPS answers in {compare.label}"
        else:
            arrow = "▲" if delta > 0 else ("▼" if delta < 0 else "■")
            item["nps_delta_shown"] = f"{arrow} {fmt_delta(kpi)}" + (" *" if sig else "")
            item["nps_delta_tone"] = ("up" if delta > 0 else "down") if sig else ""
            z = _num(r["nps_z"])
            untested = r.get("nps_untested")
            item["nps_delta_tip"] = (str(untested) if isinstance(untested, str) and untested
                                     else (f"z = {z:.2f}: " if z is not None
                                           and math.isfinite(z) else "")
                                     + ("significant at 95%" if sig else
                                        "could be noise (not significant)"))
        revenue = _num(r["revenue"])
        item["revenue"] = revenue
        if revenue is None:
            item["revenue_shown"] = NOT_APPLICABLE
            na = r.get("revenue_na")
            item["revenue_tip"] = (f"Not applicable: {na}" if isinstance(na, str) and na
                                   else "Sales do not record this dimension")
        else:
            item["revenue_shown"] = fmt_value(_kpi("revenue", period, compare, revenue, 0,
                                                   None, None, None))
            item["revenue_tip"] = f"Sales in {period.label}"
        out.append(item)
    return out


# --------------------------------------------------------------------------- the layout


def layout(**query: str) -> html.Div:
    """The page skeleton; the view state (from the URL) drives the callbacks below."""
    metric = metric_of(query)
    return html.Div(
        [
            dcc.Store(id=f"{PREFIX}-state", data=query),
            dbc.Row(
                [
                    dbc.Col(html.H1("Segments", className="h4 mb-0"), width="auto"),
                    dbc.Col(html.Div(id=f"{PREFIX}-caption", className="text-muted small")),
                ],
                className="align-items-center mb-1 g-2",
            ),
            html.Div(id=f"{PREFIX}-crumbs", className="mb-2"),
            dbc.Row(
                [
                    dbc.Col([html.Span("Break down by", className="small text-muted me-2"),
                             toggle(f"{PREFIX}-by",
                                    [{"label": v, "value": k} for k, v in BY_LABELS.items()],
                                    None)],
                            xs=12, lg="auto", className="d-flex align-items-center flex-wrap "
                                                        "mb-1"),
                    dbc.Col([html.Span("Measure", className="small text-muted me-2"),
                             toggle(f"{PREFIX}-metric",
                                    [{"label": LABELS[m][0], "value": m} for m in MEASURES],
                                    metric)],
                            xs=12, lg="auto", className="d-flex align-items-center mb-1"),
                ],
                className="g-3 mb-2 d-print-none",
            ),
            dbc.Row(
                [
                    dbc.Col(panel(
                        "Breakdown",
                        dcc.Loading(dcc.Graph(id=f"{PREFIX}-bars",
                                              config={"displayModeBar": False,
                                                      "responsive": True}),
                                    type="dot", delay_show=300),
                        target="segments-bars",
                        note="Bars show the 95% margin. Click a bar to drill in.",
                        id_=f"{PREFIX}-bars-panel", fill=True), xs=12, lg=7, className="mb-3"),
                    dbc.Col(panel(
                        "Trend",
                        dcc.Loading(dcc.Graph(id=f"{PREFIX}-trend",
                                              config={"displayModeBar": False,
                                                      "responsive": True}),
                                    type="dot", delay_show=300),
                        target="segments-trend",
                        note="Whiskers are 95% margins: where they overlap, the months may "
                             "not really differ.", fill=True), xs=12, lg=5, className="mb-3"),
                ],
                className="g-3",
            ),
            panel(
                "Every measure",
                html.Div([dcc.Loading(html.Div([
                    dag.AgGrid(
                        id=f"{PREFIX}-grid", rowData=[], columnDefs=[],
                        getRowId="params.data.row_id",
                        # Headings wrap rather than end in "…": at 1024 px
                        # "NPS vs Sep 2026" did not fit its column.
                        defaultColDef={"sortable": True, "resizable": True,
                                       "suppressMovable": True, "wrapHeaderText": True,
                                       "autoHeaderHeight": True},
                        dashGridOptions={"domLayout": "autoHeight", "tooltipShowDelay": 300,
                                         "suppressCellFocus": True, "animateRows": False},
                        columnSize="responsiveSizeToFit",
                        style={"width": "100%"}, className="cx-grid",
                    ),
                ]), type="dot", delay_show=300),
                html.Div(id=f"{PREFIX}-table-note", className="cx-note text-muted small mt-1"),
                ]),
                target="segments-table", id_=f"{PREFIX}-table-panel",
            ),
        ]
    )


# --------------------------------------------------------------------------- callbacks


def _crumbs(state: dict, units: dict[str, dict]) -> object:
    unit = _get(state, "unit")
    chain = _path(unit, units)
    if unit and unit not in units:
        return dbc.Alert(f"Unit {unit!r} is not in the org chart: pick one in the filter bar.",
                         color="warning", className="py-2 mb-0")
    items = []
    for i, node in enumerate(chain):
        last = i == len(chain) - 1
        target = None if node["parent_id"] is None else str(node["id"])
        items.append({"label": str(node["name"]), "active": last,
                      **({} if last else {"href": _href(state, unit=target)})})
    if not items:
        items = [{"label": "Whole company", "active": True}]
    return dbc.Breadcrumb(items=items, id=f"{PREFIX}-breadcrumb", class_name="mb-0 small",
                          item_class_name="cx-crumb")


@callback(
    Output(f"{PREFIX}-crumbs", "children"),
    Output(f"{PREFIX}-caption", "children"),
    Output(f"{PREFIX}-by", "options"),
    Output(f"{PREFIX}-by", "value"),
    Output(f"{PREFIX}-bars", "figure"),
    Output(f"{PREFIX}-grid", "rowData"),
    Output(f"{PREFIX}-grid", "columnDefs"),
    Output(f"{PREFIX}-table-note", "children"),
    Input(f"{PREFIX}-state", "data"),
)
def render(state: dict):
    """Breadcrumb, caption, breakdown chart and table for the view state."""
    state = state or {}
    units = _units()
    by = by_of(state)
    leaf = not _children(_get(state, "unit"), units)
    options = [{"label": v, "value": k, "disabled": k == "unit" and leaf}
               for k, v in BY_LABELS.items()]
    period, compare = resolve_period(state)
    if period is None:
        empty = theme.empty_figure("No survey data has been loaded yet: run "
                                   "`python -m etl run`.")
        return _crumbs(state, units), None, options, by, empty, [], [], None
    rows = breakdown_rows(state)
    extra = _filter_words(state)
    answers = int(rows["responses"].sum()) if rows is not None else 0
    caption = (f"{_scope_name(state, units)} · {period.label} against {compare.label}"
               + (f" · only {extra}" if extra else "") + f" · {answers:,} answers")
    min_n = kpi_settings().min_n
    notes = [f"Grey italics: under {min_n} answers, a low sample; read with care. "
             "* significant change at 95%. Margins are 95% intervals."]
    if rows is not None and len(rows) and rows["revenue"].isna().all():
        na = next((v for v in rows["revenue_na"] if isinstance(v, str) and v), None)
        notes.append(f"Revenue n/a: {na}." if na else
                     "Revenue: sales do not record device, interaction or touchpoint, so "
                     "none is shown under those.")
    if leaf and _get(state, "unit"):
        notes.append(f"{_scope_name(state, units)} has no units below it: broken down by "
                     f"{BY_LABELS[by].lower()} instead. Click a row to filter by it.")
    elif by == "unit":
        notes.append("Click a row to drill into it.")
    else:
        notes.append("Click a row to filter by it.")
    return (_crumbs(state, units), caption, options, by, bars_figure(state), grid_rows(state),
            grid_columns(state), " ".join(notes))


@callback(Output(f"{PREFIX}-trend", "figure"), Input(f"{PREFIX}-state", "data"))
def render_trend(state: dict) -> go.Figure:
    """The 13-month trend of the chosen measure for the selection."""
    state = state or {}
    if resolve_period(state)[0] is None:
        return theme.empty_figure("No survey data has been loaded yet.")
    return trend_figure(state)


def _drill(state: dict, drill: str, key: str) -> dict:
    """The view state after drilling into `key` of `drill` (a unit, or a dimension value)."""
    new = {k: v for k, v in state.items() if isinstance(v, str) and v}
    if drill == "unit":
        new["unit"] = key
        new.pop("path", None)
    elif drill in SURVEY_DIMS:
        new[drill] = key
    new.pop("by", None)  # the new selection's own default
    return new


@callback(
    Output("app-url", "search", allow_duplicate=True),
    Input(f"{PREFIX}-by", "value"),
    Input(f"{PREFIX}-metric", "value"),
    Input(f"{PREFIX}-bars", "clickData"),
    Input(f"{PREFIX}-grid", "cellClicked"),
    State("app-url", "search"),
    prevent_initial_call=True,
)
def navigate(by: str | None, metric: str | None, click: dict | None, cell: dict | None,
             search: str | None):
    """Write a page control or a drill click into the URL (which redraws the page)."""
    state = parse_search(search)
    trigger = ctx.triggered_id
    new = dict(state)
    if trigger == f"{PREFIX}-by":
        if not by or by == by_of(state):
            return no_update
        new["by"] = by
        if by == by_of({k: v for k, v in state.items() if k != "by"}):
            new.pop("by")
    elif trigger == f"{PREFIX}-metric":
        if not metric or metric == metric_of(state):
            return no_update
        new["metric"] = metric
        if metric == "nps":
            new.pop("metric")
    elif trigger == f"{PREFIX}-bars":
        points = (click or {}).get("points") or []
        if not points or not points[0].get("customdata"):
            return no_update
        key, drill = points[0]["customdata"][0], points[0]["customdata"][1]
        if not key or not drill:
            return no_update
        new = _drill(state, drill, str(key))
    elif trigger == f"{PREFIX}-grid":
        row_id = str((cell or {}).get("rowId") or "")
        drill, _, key = row_id.partition(":")
        if drill not in ("unit", *SURVEY_DIMS) or not key:
            return no_update
        new = _drill(state, drill, key)
    else:
        return no_update
    out = to_search(new)
    return out if out != to_search(state) else no_update

