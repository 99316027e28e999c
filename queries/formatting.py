"""How numbers are written, shared by the dashboard, the PDF and the command line."""

from __future__ import annotations

from queries.kpis import Kpi


def fmt_value(kpi: Kpi, value: float | None = None) -> str:
    """The KPI's value as shown on a card: '+34.2', '78.4%', '5.62', '12,345', '£1,234,567'."""
    v = kpi.value if value is None else value
    if v is None:
        return "hidden" if kpi.hidden else "no data"
    if kpi.key == "nps":
        return f"{v:+.1f}"
    if kpi.unit == "%":
        return f"{v:.1f}%"
    if kpi.key == "ces":
        return f"{v:.2f}"
    if kpi.unit == "£":
        return f"£{v:,.0f}"
    return f"{v:,.0f}"


def fmt_delta(kpi: Kpi) -> str:
    """The change against the comparison period, in the KPI's units: '+4.2 pts', '-0.31'."""
    d = kpi.delta
    if d is None:
        return "no comparison"
    if kpi.key == "nps":
        return f"{d:+.1f} pts"
    if kpi.unit == "%":
        return f"{d:+.1f} pts"
    if kpi.key == "ces":
        return f"{d:+.2f}"
    if kpi.unit == "£":
        return f"{'+' if d >= 0 else '-'}£{abs(d):,.0f}"
    return f"{d:+,.0f}"


def fmt_moe(kpi: Kpi) -> str:
    """The margin of error as '±3.1 pts' (empty when the KPI is a census, not a sample)."""
    if kpi.moe is None:
        return ""
    if kpi.key == "ces":
        return f"±{kpi.moe:.2f}"
    return f"±{kpi.moe:.1f} pts"
