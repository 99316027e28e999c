"""How numbers are written, shared by the dashboard, the PDF, emails and the command line."""

from __future__ import annotations

from queries.kpis import Kpi

SIGNED = {"nps", "enps"}  # net scores: the sign is half the message


def _money(v: float, signed: bool = False) -> str:
    sign = ("+" if v >= 0 else "-") if signed else ("-" if v < 0 else "")
    body = f"{abs(v):,.2f}" if abs(v) < 1000 else f"{abs(v):,.0f}"
    return f"{sign}£{body}"


def fmt_value(kpi: Kpi, value: float | None = None) -> str:
    """A KPI's value as shown: '+34.2', '78.4%', '5.62', '12,345', '£49.24', '£1,234,567';
    'n/a' when it cannot be computed for the filters (`fmt_reason` says why), 'no data'
    when nothing was counted, 'hidden' below the anonymity minimum."""
    v = kpi.value if value is None else value
    if v is None:
        if kpi.hidden:
            return "hidden"
        return NOT_APPLICABLE if kpi.not_applicable else "no data"
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
    """The 95% interval: '±3.1 pts', '±0.09', '±£1.50' when it is (nearly) centred on the
    value; '95% CI +47.5 to +100.0' when a small sample or an extreme share makes it lopsided
    (a '±' would then cross the scale's end); empty for a census or a single answer."""
    if kpi.moe is None:
        return ""
    if (kpi.low is not None and kpi.high is not None and kpi.value is not None
            and abs((kpi.high - kpi.value) - (kpi.value - kpi.low)) > 0.2 * kpi.moe):
        return f"95% CI {fmt_value(kpi, kpi.low)} to {fmt_value(kpi, kpi.high)}"
    if kpi.unit == "/7":
        return f"±{kpi.moe:.2f}"
    if kpi.unit == "£":
        return f"±{_money(kpi.moe)}"
    return f"±{kpi.moe:.1f} pts"


NOT_APPLICABLE = "n/a"
TOO_FEW = "too few answers to test"


def fmt_reason(kpi: Kpi) -> str:
    """Why a KPI shows no value: 'not applicable: transactions have no chat channel',
    'hidden: fewer than 5 respondents', 'no data: nothing counted'; empty when it has one."""
    if kpi.value is not None:
        return ""
    if kpi.hidden:
        return f"hidden: {kpi.note}" if kpi.note else "hidden"
    if kpi.not_applicable:
        return f"not applicable: {kpi.not_applicable}"
    return "no data: nothing counted for this selection"


def fmt_n(kpi: Kpi) -> str:
    """What the count behind a KPI is: 'n = 1,234' for answers (a sample); for a complete
    count, what is counted: '8,765 members, all counted'."""
    if kpi.hidden or kpi.not_applicable:
        return ""
    if kpi.sampled:
        unit = "" if kpi.n_unit == "answers" else f" {kpi.n_unit}"
        return f"n = {kpi.n:,}{unit}"
    return f"{kpi.n:,} {kpi.n_unit}, all counted"


def fmt_significance(kpi: Kpi, second: bool = False) -> str:
    """The verdict on a KPI's change: 'significant', 'not significant', 'too few answers to
    test', or '' for a complete count (nothing to test) or no comparison. `second`: the
    verdict on the second comparison (`Kpi.yoy`)."""
    cmp = kpi.yoy if second else kpi.compare
    if cmp is None or cmp.delta is None:
        return ""
    if cmp.reason:
        return cmp.reason
    return {True: "significant", False: "not significant"}.get(cmp.significant, "")


# One label per figure, for every surface (screens, PDF, email, CLI): the definitions are in
# queries.links.RevenueLink.
FIGURE_LABELS = {
    "revenue_at_risk": "Revenue at risk",
    "detractor_revenue": "Revenue from detractors",
    "churn_gap": "Extra churn of detractors",
}


def figure_label(key: str) -> str:
    """The one label of a shared figure ('Revenue at risk')."""
    return FIGURE_LABELS[key]


def fmt_money(v: float | None, signed: bool = False) -> str:
    """Money as the KPIs write it: '£49.24' below £1,000, '£1,234,567' above; 'n/a' for
    None."""
    return NOT_APPLICABLE if v is None else _money(v, signed)


# Rating attributes by their column names; names not listed read as 'Staff friendliness'.
ATTRIBUTE_LABELS = {"digital_ease": "Ease of website/app"}


def attribute_label(name: str) -> str:
    """A rating attribute as every surface names it: 'digital_ease' -> 'Ease of website/app',
    'staff_friendliness' -> 'Staff friendliness'."""
    return ATTRIBUTE_LABELS.get(name, name.replace("_", " ").capitalize())


def fmt_nps_estimate(value: float | None, moe: float | None, n: int, min_n: int = 30) -> str:
    """An NPS with its margin and sample: '+34 ±9 (n 255)'; 'low sample (n 12)' under
    `min_n`; '–' without answers."""
    if value is None or n <= 0:
        return "–"
    if n < min_n:
        return f"low sample (n {n:,})"
    margin = f" ±{moe:.0f}" if moe is not None else ""
    return f"{value:+.0f}{margin} (n {n:,})"


def fmt_p(p: float | None) -> str:
    """A p-value as read: 'p < 0.001', 'p = 0.03'; '–' when there is no test."""
    if p is None:
        return "–"
    return "p < 0.001" if p < 0.001 else f"p = {p:.3f}" if p < 0.01 else f"p = {p:.2f}"
