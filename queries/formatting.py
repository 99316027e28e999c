"""How numbers are written, shared by the dashboard, the PDF, emails and the command line."""

from __future__ import annotations

from queries.kpis import Kpi

SIGNED = {"nps", "enps"}  # net scores: the sign is half the message
# Money per person (an average ticket or spend) is read to the penny; every other amount
# (totals, revenue, revenue at risk, their changes) in whole pounds. The kind of measure
# decides, never the size of the number: "-£614.71" beside "£39,174" read as two precisions.
PER_HEAD_MONEY = {"spend_per_member", "member_ticket", "non_member_ticket", "per_answer"}


def decimals(key: str, unit: str) -> int:
    """Decimal places a measure is shown with, one rule per kind of measure: net scores and
    percentages 1, 1-7 means 2, money per person 2 and other money 0, counts 0."""
    if key in SIGNED or unit in ("%", "pts"):
        return 1
    if unit == "/7":
        return 2
    if unit == "£":
        return 2 if key in PER_HEAD_MONEY else 0
    return 0


def fmt_money(v: float | None, signed: bool = False, *, per_head: bool = False) -> str:
    """Money as every surface writes it: totals in whole pounds ('£1,234', '-£615'), money per
    person or per answer to the penny (`per_head`: '£49.24'); 'n/a' for None."""
    if v is None:
        return NOT_APPLICABLE
    sign = ("+" if v >= 0 else "-") if signed else ("-" if v < 0 else "")
    return f"{sign}£{abs(v):,.{2 if per_head else 0}f}"


def _money(kpi: Kpi, v: float, signed: bool = False) -> str:
    return fmt_money(v, per_head=decimals(kpi.key, kpi.unit) == 2, signed=signed)


def fmt_value(kpi: Kpi, value: float | None = None) -> str:
    """A KPI's value as shown: '+34.2', '78.4%', '5.62', '12,345', '£49.24' (money per
    member), '£1,234,567' (other money); 'n/a' when it cannot be computed for the filters
    (`fmt_reason` says why), 'no data' when nothing was counted, 'hidden' below the
    anonymity minimum."""
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
        return _money(kpi, v)
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
        return _money(kpi, d, signed=True)
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
        return f"±{_money(kpi, kpi.moe)}"
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


# Rating attributes by their column names; names not listed read as 'Staff friendliness'.
ATTRIBUTE_LABELS = {"digital_ease": "Ease of website/app"}


def attribute_label(name: str) -> str:
    """A rating attribute as every surface names it: 'digital_ease' -> 'Ease of website/app',
    'staff_friendliness' -> 'Staff friendliness'."""
    return ATTRIBUTE_LABELS.get(name, name.replace("_", " ").capitalize())
