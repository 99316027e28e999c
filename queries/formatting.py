"""How numbers are written, shared by the dashboard, the PDF, emails and the command line.

Money follows CX_CURRENCY and CX_LOCALE (Babel's CLDR data): `money(49.236)` is '£49.24'
with GBP / en_GB and '49,24 €' with EUR / fr_FR. Every screen, PDF, email and download
writes money through `money()` (`fmt_money` adds 'n/a' for None); charts take their axis
prefix or suffix from `money_affixes()` and their templates from `money_template()`.
"""

from __future__ import annotations

from functools import lru_cache

from queries.kpis import MONEY, Kpi

SIGNED = {"nps", "enps"}  # net scores: the sign is half the message
# Money per person (an average ticket or spend) is read to the penny; every other amount
# (totals, revenue, revenue at risk, their changes) in whole pounds. The kind of measure
# decides, never the size of the number: "-£614.71" beside "£39,174" read as two precisions.
PER_HEAD_MONEY = {"spend_per_member", "member_ticket", "non_member_ticket", "per_answer"}


def _currency() -> tuple[str, str]:
    from queries.settings import get_settings

    s = get_settings()
    return s.cx_currency, s.cx_locale


@lru_cache(maxsize=16)
def _patterns(locale: str) -> tuple[str, str]:
    from babel import Locale

    pattern = Locale.parse(locale).currency_formats["standard"].pattern.split(";")[0]
    # Whole units from 1,000 up: cents on a million are noise on an executive screen.
    return pattern, pattern.replace(".00", "")


def money(value: float, *, signed: bool = False, currency: str | None = None,
          locale: str | None = None, cents: bool | None = None) -> str:
    """`value` as money in the configured currency and locale: '£49.24', '£1,234,567',
    '49,24 €', '1 234 567 €'; `signed` adds '+' to gains; `cents` forces (True) or drops
    (False) the minor unit, which otherwise shows below 1,000 only."""
    from babel.numbers import format_currency

    cur, loc = _currency()
    cur, loc = currency or cur, locale or loc
    with_cents, whole = _patterns(loc)
    minor = abs(value) < 1000 if cents is None else cents
    body = format_currency(abs(value), cur, locale=loc, format=with_cents if minor else whole,
                           currency_digits=minor)
    sign = ("+" if value >= 0 else "-") if signed else ("-" if value < 0 else "")
    return sign + body


def money_affixes() -> dict[str, str]:
    """Plotly axis `tickprefix` / `ticksuffix` carrying the currency symbol where the locale
    writes it ('£' before, '€' after with a space in French)."""
    symbol = currency_symbol()
    pattern = _patterns(_currency()[1])[0]
    if pattern.index("¤") < pattern.index("#"):
        return {"tickprefix": symbol + (" " if "¤ " in pattern or "¤\xa0" in pattern else ""),
                "ticksuffix": ""}
    return {"tickprefix": "", "ticksuffix": "\xa0" + symbol}


def currency_symbol() -> str:
    """The configured currency's symbol in the configured locale ('£', '€', 'US$')."""
    from babel.numbers import get_currency_symbol

    cur, loc = _currency()
    return get_currency_symbol(cur, locale=loc)


def money_template(field: str) -> str:
    """A Plotly hover/text template of a money field with the configured symbol:
    money_template("y:,.0f") is '£%{y:,.0f}' for GBP, '%{y:,.0f} €' for EUR in French."""
    affix = money_affixes()
    return f"{affix['tickprefix']}%{{{field}}}{affix['ticksuffix']}"


def plotly_separators() -> str:
    """Plotly's `separators` (decimal mark, then thousands mark) for CX_LOCALE: '.,' in
    en_GB, ', ' in fr_FR, so chart numbers read like the text around them."""
    from babel.numbers import get_decimal_symbol, get_group_symbol

    _, loc = _currency()
    group = get_group_symbol(loc).replace("\u202f", "\xa0")
    return get_decimal_symbol(loc) + group


def number(value: float, decimals: int = 1) -> str:
    """A plain number in CX_LOCALE: '8.9' in en_GB, '8,9' in fr_FR."""
    from babel.numbers import format_decimal

    _, loc = _currency()
    return format_decimal(value, format="#,##0." + "0" * decimals if decimals else "#,##0",
                          locale=loc)


def decimals(key: str, unit: str) -> int:
    """Decimal places a measure is shown with, one rule per kind of measure: net scores and
    percentages 1, 1-7 means 2, money per person 2 and other money 0, counts 0."""
    if key in SIGNED or unit in ("%", "pts"):
        return 1
    if unit == "/7":
        return 2
    if unit == MONEY:
        return 2 if key in PER_HEAD_MONEY else 0
    return 0


def fmt_money(v: float | None, signed: bool = False, *, per_head: bool = False) -> str:
    """Money as every surface writes it, in CX_CURRENCY / CX_LOCALE: totals in whole units
    ('£1,234', '-£615'), money per person or per answer to the penny (`per_head`: '£49.24');
    'n/a' for None."""
    if v is None:
        return NOT_APPLICABLE
    return money(v, signed=signed, cents=per_head)


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
    if kpi.unit == MONEY:
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
    if kpi.unit == MONEY:
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
    if kpi.unit == MONEY:
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
