"""How numbers are written, shared by the dashboard, the PDF, emails and the command line."""

from __future__ import annotations

from queries.kpis import Kpi

SIGNED = {"nps", "enps"}  # net scores: the sign is half the message


def _money(v: float, signed: bool = False) -> str:
    sign = ("+" if v >= 0 else "-") if signed else ("-" if v < 0 else "")
    body = f"{abs(v):,.2f}" if abs(v) < 1000 else f"{abs(v):,.0f}"
    return f"{sign}£{body}"


def fmt_value(kpi: Kpi, value: float | None = None) -> str:
    """A KPI's value as shown: '+34.2', '78.4%', '5.62', '12,345', '£49.24', '£1,234,567'."""
    v = kpi.value if value is None else value
    if v is None:
        return "hidden" if kpi.hidden else "no data"
    if kpi.key in SIGNED:
        return f"{v:+.1f}"
    if kpi.unit == "%":
        return f"{v:.1f}%"
    if kpi.unit == "/7":
        return f"{v:.2f}"
    if kpi.unit == "£":
        return _money(v)
    return f"{v:,.0f}"


def fmt_delta(kpi: Kpi) -> str:
    """The change against the comparison period, in the KPI's units: '+4.2 pts', '-0.31'."""
    d = kpi.delta
    if d is None:
        return "no comparison"
    if kpi.key in SIGNED or kpi.unit in ("%", "pts"):
        return f"{d:+.1f} pts"
    if kpi.unit == "/7":
        return f"{d:+.2f}"
    if kpi.unit == "£":
        return _money(d, signed=True)
    return f"{d:+,.0f}"


def fmt_moe(kpi: Kpi) -> str:
    """The 95% margin of error: '±3.1 pts', '±0.09', '±£1.50'; empty for a census."""
    if kpi.moe is None:
        return ""
    if kpi.unit == "/7":
        return f"±{kpi.moe:.2f}"
    if kpi.unit == "£":
        return f"±{_money(kpi.moe)}"
    return f"±{kpi.moe:.1f} pts"
