"""Executive overview: the KPI set for the last full month, with n and change."""

from __future__ import annotations

import dash
import dash_bootstrap_components as dbc
from dash import Input, Output, callback, dcc, html

from dashboard import context
from dashboard.components.kpi_card import kpi_card
from queries.kpis import latest_full_month, org_units, overview_kpis
from queries.periods import Month

dash.register_page(__name__, path="/", name="Overview", title="Overview · CX dashboard", order=0)

PREFIX = "overview"


def _period_options(last: Month, count: int = 24) -> list[dict[str, str]]:
    return [{"label": m.label, "value": str(m)} for m in (last.shift(-i) for i in range(count))]


def layout(period: str | None = None, unit: str | None = None, **_: str) -> html.Div:
    """Page layout; `period` and `unit` come from the URL query string."""
    with context.engine().connect() as conn:
        last = latest_full_month(conn)
        units = org_units(conn)
    if last is None:
        return html.Div(
            dbc.Alert(
                [html.H4("No data loaded yet", className="alert-heading"),
                 html.P("Run `python -m etl run` (or `make run`, which loads the demo data) "
                        "and reload this page.")],
                color="info",
            ),
            id=f"{PREFIX}-empty",
        )
    unit_options = [{"label": ("— " * ["company", "region", "store", "team"].index(u["kind"]))
                     + str(u["name"]), "value": u["id"]} for u in units]
    company = next((u["id"] for u in units if u["kind"] == "company"), None)
    return html.Div(
        [
            dbc.Row(
                [
                    dbc.Col(html.H2("Executive overview", className="h4 mb-0"), md=4),
                    dbc.Col(dcc.Dropdown(id=f"{PREFIX}-period", options=_period_options(last),
                                         value=period or str(last), clearable=False), md=3),
                    dbc.Col(dcc.Dropdown(id=f"{PREFIX}-unit", options=unit_options,
                                         value=unit or company, clearable=False), md=3),
                ],
                className="g-2 align-items-center mb-3",
            ),
            dcc.Loading(html.Div(id=f"{PREFIX}-kpis"), type="dot", delay_show=250),
        ]
    )


@callback(
    Output(f"{PREFIX}-kpis", "children"),
    Input(f"{PREFIX}-period", "value"),
    Input(f"{PREFIX}-unit", "value"),
)
def update_kpis(period: str, unit: str | None) -> list:
    """Cards for the chosen period (against the month before) and unit."""
    settings = context.settings()
    month = Month.parse(period)
    with context.engine().connect() as conn:
        units = {u["id"]: u for u in org_units(conn)}
        is_company = unit is None or units.get(unit, {}).get("kind") == "company"
        kpis = overview_kpis(conn, period=month, unit=None if is_company else unit,
                             min_n=settings.cx_min_n, anonymity_min=settings.cx_anonymity_min,
                             active_days=settings.cx_active_days)
    scope = units.get(unit, {}).get("name", "Company") if unit else "Company"
    cards = dbc.Row([dbc.Col(kpi_card(k, PREFIX), xs=12, sm=6, lg=4, xl=2, className="mb-3")
                     for k in kpis], className="g-3")
    return [
        html.P(f"{scope} · {month.label} against {month.shift(-1).label}",
               className="text-muted", id=f"{PREFIX}-caption"),
        cards,
    ]
