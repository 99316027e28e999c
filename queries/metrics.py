"""Metric formulas, each defined once, from counts (never from pre-computed ratios).

These are pure functions of the counts that the database aggregates (n, promoters,
detractors, sums, sums of squares), so a metric for any roll-up of periods, units or
segments is exact. The definitions are those of `shared/METRICS.md`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

Z95 = 1.959963984540054


@dataclass(frozen=True)
class Estimate:
    """A metric value with its sample size and 95% margin of error (None when undefined)."""

    value: float | None
    n: int
    moe: float | None
    variance: float | None = None  # of one observation, in the value's units squared


def nps(n: int, promoters: int, detractors: int) -> Estimate:
    """NPS = 100 x (promoters - detractors) / n, answers 9-10 promoters and 0-6 detractors.

    Margin: 1.96 x 100 x sqrt((pP + pD - (pP - pD)^2) / n).
    """
    if n <= 0:
        return Estimate(None, 0, None, None)
    p_p, p_d = promoters / n, detractors / n
    var = (p_p + p_d - (p_p - p_d) ** 2) * 100**2
    return Estimate(100 * (p_p - p_d), n, Z95 * math.sqrt(var / n), var)


def share(n: int, hits: int) -> Estimate:
    """A share in percent (CSAT top-2-box, CES % agree) with a Wilson 95% half-width."""
    if n <= 0:
        return Estimate(None, 0, None, None)
    p = hits / n
    lo, hi = wilson(n, hits)
    return Estimate(100 * p, n, 100 * (hi - lo) / 2, p * (1 - p) * 100**2)


def wilson(n: int, hits: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of a proportion, as (low, high) shares."""
    if n <= 0:
        return (0.0, 1.0)
    p = hits / n
    denom = 1 + z**2 / n
    centre = (p + z**2 / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z**2 / (4 * n**2)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def mean_t(n: int, total: float, total_sq: float) -> Estimate:
    """Mean score (CES, ticket size) with a t-based 95% margin: t(0.975, n-1) x s / sqrt(n).

    For the sample sizes of a dashboard t and 1.96 agree to a few percent; below 30 answers
    the t quantile is the honest one.
    """
    est = mean(n, total, total_sq)
    if est.variance is None or n < 2:
        return est
    from scipy.stats import t

    return Estimate(est.value, n, float(t.ppf(0.975, n - 1)) * math.sqrt(est.variance / n),
                    est.variance)


def engagement(respondents: int, item_shares: list[float]) -> Estimate:
    """Engagement = mean over the wave's items of the favourable share (answers 4-5), in %.

    Margin: a Wilson half-width with n = respondents. Items answered by the same people are
    correlated, so counting each answer as independent would overstate the precision.
    """
    if respondents <= 0 or not item_shares:
        return Estimate(None, max(respondents, 0), None, None)
    p = sum(item_shares) / len(item_shares)
    est = share(respondents, round(p * respondents))
    return Estimate(100 * p, respondents, est.moe, p * (1 - p) * 100**2)


def mean(n: int, total: float, total_sq: float) -> Estimate:
    """Mean score (CES) with a 1.96 x s / sqrt(n) margin; s is the sample standard deviation."""
    if n <= 0:
        return Estimate(None, 0, None, None)
    m = total / n
    if n == 1:
        return Estimate(m, 1, None, None)
    var = max(0.0, (total_sq - n * m * m) / (n - 1))
    return Estimate(m, n, Z95 * math.sqrt(var / n), var)


@dataclass(frozen=True)
class Change:
    """Difference of a metric between two periods and whether it is significant at 95%."""

    delta: float | None
    z: float | None
    significant: bool | None


def change_share(current: Estimate, previous: Estimate) -> Change:
    """Two-proportion z-test (pooled share) between two shares given in percent."""
    return change(current, previous, pooled_share=True)


def change(current: Estimate, previous: Estimate, *, pooled_share: bool = False) -> Change:
    """z = (x1 - x2) / sqrt(V1/n1 + V2/n2); significant when |z| >= 1.96.

    With `pooled_share`, the two-proportion z-test with a pooled share is used (CSAT).
    """
    if current.value is None or previous.value is None:
        return Change(None, None, None)
    delta = current.value - previous.value
    if pooled_share:
        n1, n2 = current.n, previous.n
        pooled = (current.value * n1 + previous.value * n2) / (100 * (n1 + n2))
        se = 100 * math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    else:
        if current.variance is None or previous.variance is None:
            return Change(delta, None, None)
        se = math.sqrt(current.variance / current.n + previous.variance / previous.n)
    if se == 0:
        return Change(delta, None if delta == 0 else math.copysign(math.inf, delta), delta != 0)
    z = delta / se
    return Change(delta, z, abs(z) >= Z95)
