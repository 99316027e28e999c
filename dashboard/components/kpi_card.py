"""The KPI card: value, sample size, margin of error and change, with honest flags."""

from __future__ import annotations

import dash_bootstrap_components as dbc
from dash import html

from queries.formatting import fmt_delta, fmt_moe, fmt_value
from queries.kpis import Kpi
from queries.periods import Month

# Direction in which each KPI gets better; all of ours improve upwards (CES: 7 = easy).
HIGHER_IS_BETTER = {"nps": True, "csat": True, "ces": True, "active_members": True,
                    "engagement": True, "revenue": True}


def _change_line(kpi: Kpi, prefix: str) -> html.Div:
    if kpi.delta is None:
        return html.Div("no comparison", className="kpi-change text-muted",
                        id=f"{prefix}-change")
    compare = Month.parse(kpi.compare_period).label if kpi.compare_period else "previous"
    better = (kpi.delta > 0) == HIGHER_IS_BETTER.get(kpi.key, True)
    arrow = "▲" if kpi.delta > 0 else ("▼" if kpi.delta < 0 else "■")
    if kpi.significant is None:
        tone, verdict = "kpi-neutral", ""
    elif kpi.significant:
        tone = "kpi-good" if better else "kpi-bad"
        verdict = " · significant"
    else:
        tone, verdict = "kpi-neutral", " · not significant"
    return html.Div(
        [html.Span(f"{arrow} {fmt_delta(kpi)}", className="fw-semibold"),
         html.Span(f" vs {compare}{verdict}")],
        className=f"kpi-change {tone}",
        id=f"{prefix}-change",
    )


def kpi_card(kpi: Kpi, id_prefix: str) -> dbc.Card:
    """A card for one KPI; ids are `{id_prefix}-{key}-value|n|change` for tests and links."""
    prefix = f"{id_prefix}-{kpi.key}"
    classes = ["kpi-card", "h-100"]
    badge = None
    if kpi.hidden:
        classes.append("kpi-hidden")
        badge = dbc.Badge("hidden: fewer than the anonymity minimum", color="secondary",
                          className="ms-1")
    elif kpi.low_sample:
        classes.append("kpi-low-sample")
        badge = dbc.Badge("low sample", color="warning", text_color="dark", className="ms-1")
    sample = f"n = {kpi.n:,}"
    moe = fmt_moe(kpi)
    detail = " · ".join(x for x in (sample, moe, kpi.note) if x)
    return dbc.Card(
        dbc.CardBody(
            [
                html.Div([html.Span(kpi.label, className="kpi-label"), badge],
                         className="d-flex align-items-center"),
                html.Div(fmt_value(kpi), className="kpi-value", id=f"{prefix}-value"),
                html.Div(detail, className="kpi-sample text-muted", id=f"{prefix}-n"),
                _change_line(kpi, prefix),
            ]
        ),
        className=" ".join(classes),
        id=prefix,
    )
