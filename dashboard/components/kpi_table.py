"""The signals verdict and the every-measure table, shared by the overview and the report.

Both take their words from `queries/` (`signals.assess`, `formatting`), so the screen, the
PDF, the email and the command line say the same thing about the same numbers.
"""

from __future__ import annotations

from dataclasses import replace

import dash_bootstrap_components as dbc
from dash import html

from queries.formatting import fmt_delta, fmt_moe, fmt_n, fmt_reason, fmt_significance, fmt_value
from queries.kpis import Kpi
from queries.periods import Month
from queries.signals import Assessment


def change_cell(kpi: Kpi, second: bool = False) -> str:
    """'+4.2 pts *' (significant), '+150.0 pts (too few answers to test)', '-124' (a count)."""
    cmp = kpi.yoy if second else kpi.compare
    if kpi.value is None or cmp is None:
        return ""
    shown = fmt_delta(replace(kpi, compare=cmp))
    verdict = fmt_significance(kpi, second)
    if verdict == "significant":
        return shown + " *"
    if cmp.reason:
        return f"{shown} ({cmp.reason})"
    return shown


def kpi_table(items: list[Kpi], *, id_: str, compact: bool = False) -> dbc.Table:
    """Every measure: value, what n counts, 95% interval, both changes, and notes."""
    ref = next((k for k in items if k.compare), None)
    first = Month.parse(ref.compare.period).label if ref and ref.compare else "previous"
    ref2 = next((k for k in items if k.yoy), None)
    second = Month.parse(ref2.yoy.period).label if ref2 and ref2.yoy else "a year ago"
    heads = ("Measure", "Value", "n", "95% margin", f"vs {first}", f"vs {second}", "Note")
    rows = []
    for k in items:
        notes = [fmt_reason(k)] if k.value is None else [
            k.note, "low sample" if k.low_sample else None,
            "not filtered by " + ", ".join(k.ignored_filters) if k.ignored_filters else None]
        rows.append(html.Tr([
            html.Td(k.label), html.Td(fmt_value(k), id=f"{id_}-{k.key}-value"),
            html.Td(fmt_n(k), style={"whiteSpace": "nowrap"}), html.Td(fmt_moe(k)),
            html.Td(change_cell(k)), html.Td(change_cell(k, second=True)),
            html.Td(", ".join(x for x in notes if x), className="small text-muted"),
        ], **{"data-kpi": k.key}))
    return dbc.Table([html.Thead(html.Tr([html.Th(h) for h in heads])), html.Tbody(rows)],
                     size="sm", hover=not compact, striped=compact, responsive=not compact,
                     className="mb-0 cx-kpi-table", id=id_)


TABLE_NOTE = ("* significant at 95%. Margins are 95% intervals (adjusted Wald for NPS, "
              "Wilson for shares); a change is tested only when both periods have enough "
              "answers. Counts (members, transactions, revenue) are complete, not samples.")


def signals_box(verdict: Assessment, id_: str, *, expanded: bool = False) -> html.Div:
    """'Signals disagree · October 2026 against September 2026' with at most three
    sentences and the rest behind 'more' (open when `expanded`: paper cannot click); or
    'Signals agree' with the reason."""
    if verdict.status != "disagree":
        return html.Div([html.Strong(verdict.heading + ". ", className="me-1"),
                         html.Span(verdict.reason)],
                        className=f"cx-signals cx-signals-{verdict.status} small mb-2",
                        id=id_, **{"data-status": verdict.status})
    items = [html.Li(s.text, className=f"cx-signal cx-{s.kind}") for s in verdict.shown]
    more = None
    if verdict.more:
        more = html.Details(open=expanded, children=[
            html.Summary(f"{len(verdict.more)} more", className="small"),
            html.Ul([html.Li(s.text, className=f"cx-signal cx-{s.kind}")
                     for s in verdict.more], className="mb-0")], id=f"{id_}-more")
    return html.Div([html.Strong(verdict.heading), html.Ul(items, className="mb-0 mt-1"), more],
                    className="cx-signals cx-signals-disagree alert alert-light py-2",
                    style={"borderWidth": "0 0 0 4px", "borderColor": "#E69F00"},
                    id=id_, **{"data-status": verdict.status})
