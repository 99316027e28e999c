"""The KPI card: value, sample size, margin, changes with significance, target, trend.

Honesty rules: a low sample is styled and labelled as such, never shown as a plain number;
a hidden employee group shows no value; an unknown change says so.
"""

from __future__ import annotations

from dataclasses import replace

import dash_bootstrap_components as dbc
import pandas as pd
from dash import dcc, html

from dashboard.components.charts import sparkline
from queries.formatting import fmt_delta, fmt_moe, fmt_n, fmt_reason, fmt_value
from queries.kpis import LOWER_IS_BETTER, Comparison, Kpi
from queries.periods import Month


def _better(kpi: Kpi, delta: float) -> bool:
    return (delta > 0) != (kpi.key in LOWER_IS_BETTER)


def change_line(kpi: Kpi, cmp: Comparison | None, element_id: str, prefix: str,
                missing: str = "no comparison") -> html.Div:
    """'▲ +4.2 pts vs September 2026 · significant' coloured by good/bad when significant."""
    if cmp is None or cmp.delta is None:
        what = missing if cmp is None else f"no data for {Month.parse(cmp.period).label}"
        return html.Div(what, className="kpi-change text-muted", id=element_id)
    arrow = "▲" if cmp.delta > 0 else ("▼" if cmp.delta < 0 else "■")
    shown = fmt_delta(replace(kpi, compare=cmp))
    if cmp.reason:
        tone, verdict = "kpi-neutral", f" · {cmp.reason}"
        title = "both periods need enough answers for a valid test; none is claimed"
    elif cmp.significant is None:
        tone, verdict, title = "kpi-neutral", "", "a count, not a sample: no significance test"
    elif cmp.significant:
        tone = "kpi-good" if _better(kpi, cmp.delta) else "kpi-bad"
        verdict, title = " · significant", f"z = {cmp.z:.2f}: significant at 95%"
    else:
        tone, verdict = "kpi-neutral", " · not significant"
        title = f"z = {cmp.z:.2f}: could be noise" if cmp.z is not None else "not testable"
    return html.Div(
        [html.Span(f"{arrow} {shown}", className="fw-semibold"),
         html.Span(f" {prefix} {Month.parse(cmp.period).label}{verdict}")],
        className=f"kpi-change {tone}", id=element_id, title=title,
    )


def kpi_card(kpi: Kpi, id_prefix: str, *, trend: pd.DataFrame | None = None,
             target: float | None = None) -> dbc.Card:
    """A card for one KPI; ids are `{id_prefix}-{key}-value|n|change|yoy` for tests/links."""
    prefix = f"{id_prefix}-{kpi.key}"
    classes = ["kpi-card", "h-100"]
    badges = []
    if kpi.hidden:
        classes.append("kpi-hidden")
        badges.append(dbc.Badge("hidden", color="secondary", className="ms-1",
                                title="fewer respondents than the anonymity minimum"))
    elif kpi.low_sample:
        classes.append("kpi-low-sample")
        badges.append(dbc.Badge("low sample", color="warning", text_color="dark",
                                className="ms-1", title=f"only {kpi.n} answers"))
    if kpi.ignored_filters:
        badges.append(dbc.Badge("not filtered", color="light", text_color="dark",
                                className="ms-1",
                                title="ignores: " + ", ".join(kpi.ignored_filters)))
    if kpi.value is None:
        detail = fmt_reason(kpi)
    else:
        detail = " · ".join(x for x in (fmt_n(kpi), fmt_moe(kpi), kpi.note) if x)
    target_line = None
    if target is not None and kpi.value is not None and not kpi.hidden:
        met = (kpi.value >= target) != (kpi.key in LOWER_IS_BETTER)
        target_line = html.Div(
            f"target {fmt_value(kpi, target)} · {'met' if met else 'not met'}",
            className=f"kpi-target {'kpi-good' if met else 'kpi-bad'}", id=f"{prefix}-target")
    spark = None
    if (trend is not None and kpi.key in trend.columns and not kpi.hidden
            and trend[kpi.key].notna().any()):
        spark = dcc.Graph(figure=sparkline(trend, kpi.key), config={"displayModeBar": False,
                                                                      "staticPlot": False},
                          className="kpi-spark", id=f"{prefix}-spark")
    return dbc.Card(
        dbc.CardBody(
            [
                html.Div([html.Span(kpi.label, className="kpi-label"), *badges],
                         className="d-flex align-items-center flex-wrap"),
                html.Div(fmt_value(kpi), className="kpi-value", id=f"{prefix}-value"),
                html.Div(detail, className="kpi-sample text-muted", id=f"{prefix}-n"),
                spark,
                None if kpi.not_applicable or kpi.hidden else change_line(
                    kpi, kpi.compare, f"{prefix}-change", "vs", "no earlier period to compare"),
                None if kpi.not_applicable or kpi.hidden else change_line(
                    kpi, kpi.yoy, f"{prefix}-yoy", "vs",
                    "survey waves: compared with the previous wave only"
                    if kpi.n_unit == "respondents" else "no second comparison"),
                target_line,
            ]
        ),
        className=" ".join(classes),
        id=prefix,
    )
