"""Metric formulas, each defined once, from counts (never from pre-computed ratios).

These are pure functions of the counts that the database aggregates (n, promoters,
detractors, sums, sums of squares), so a metric for any roll-up of periods, units or
segments is exact. The definitions are those of `shared/METRICS.md`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

Z95 = 1.959963984540054

# Below these a test of change is not valid, so none is claimed ("too few answers to test"):
# the normal approximation behind the z-tests needs a sample in each period (CX_MIN_N, the
# same threshold as the "low sample" flag, so the flag and a "significant" claim never stand
# together) and, for counted categories (promoters and detractors, hits and misses), at least
# MIN_EXPECTED of each expected in each period (the usual n p >= 5 rule of thumb).
DEFAULT_MIN_N = 30
MIN_EXPECTED = 5
TOO_FEW = "too few answers to test"


@dataclass(frozen=True)
class Estimate:
    """A metric value with its sample size and 95% interval (None when undefined).

    `low`/`high` bound the 95% interval; `moe` is its half-width ((high - low) / 2), the
    "±" shown beside the value. Small-sample methods give intervals that are not centred on
    the value (and are clipped to the scale), so `low`/`high` are the truth and `moe` the
    summary. `variance` is that of one observation, in the value's units squared (the
    z-tests use it); `counts` the category counts a test's expected-count check needs.
    """

    value: float | None
    n: int
    moe: float | None
    variance: float | None = None
    low: float | None = None
    high: float | None = None
    counts: tuple[float, ...] = ()


def nps(n: int, promoters: int, detractors: int) -> Estimate:
    """NPS = 100 x (promoters - detractors) / n, answers 9-10 promoters and 0-6 detractors.

    Interval: the adjusted Wald interval of Rocks (2016), valid for small n and extreme
    shares where the plain Wald margin collapses to 0: add 3 answers (3/4 promoter, 3/4
    detractor, 3/2 passive), n~ = n + 3, p~ the adjusted shares, NPS~ = p~P - p~D;
    NPS~ +- 1.96 x sqrt((p~P + p~D - NPS~^2) / n~), clipped to [-100, 100] and widened, where
    the shift of the centre leaves it out (n of 1 or 2), to include the observed score.
    """
    if n <= 0:
        return Estimate(None, 0, None, None)
    p_p, p_d = promoters / n, detractors / n
    var = (p_p + p_d - (p_p - p_d) ** 2) * 100**2
    nt = n + 3
    tp, td = (promoters + 0.75) / nt, (detractors + 0.75) / nt
    centre = tp - td
    half = Z95 * math.sqrt((tp + td - centre**2) / nt)
    low = min(max(-1.0, centre - half), p_p - p_d)
    high = max(min(1.0, centre + half), p_p - p_d)
    return Estimate(100 * (p_p - p_d), n, 100 * (high - low) / 2, var, 100 * low, 100 * high,
                    (promoters, detractors))


def share(n: int, hits: float) -> Estimate:
    """A share in percent (CSAT top-2-box, CES % agree) with its Wilson 95% interval, valid
    for small n and for shares of 0 or 100% (its width is never 0)."""
    if n <= 0:
        return Estimate(None, 0, None, None)
    p = hits / n
    lo, hi = wilson(n, hits)
    return Estimate(100 * p, n, 100 * (hi - lo) / 2, p * (1 - p) * 100**2, 100 * lo,
                    100 * hi, (hits, n - hits))


def wilson(n: int, hits: float, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of a proportion, as (low, high) shares."""
    if n <= 0:
        return (0.0, 1.0)
    p = hits / n
    denom = 1 + z**2 / n
    centre = (p + z**2 / (2 * n)) / denom
    half = z * math.sqrt(max(0.0, p * (1 - p)) / n + z**2 / (4 * n**2)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def mean_t(n: int, total: float, total_sq: float,
           bounds: tuple[float, float] | None = None) -> Estimate:
    """Mean score (CES, ticket size) with a t-based 95% interval: mean +- t(0.975, n-1) x s /
    sqrt(n), clipped to `bounds` when the scale has them (CES: 1-7).

    One answer, or answers that do not vary, give no usable s (the t margin would be 0 or
    undefined). On a bounded scale the interval is then the Wilson interval of the mean
    rescaled to 0-1: a bounded variable's variance is at most m (1 - m), so the interval is
    conservative. Without bounds (money) one answer has no margin (None).
    """
    est = mean(n, total, total_sq)
    if est.value is None:
        return est
    m = est.value
    if est.variance is not None and est.variance > 0:
        from scipy.special import stdtrit

        half = float(stdtrit(n - 1, 0.975)) * math.sqrt(est.variance / n)
        low, high = m - half, m + half
        if bounds is not None:
            low, high = max(bounds[0], low), min(bounds[1], high)
        return Estimate(m, n, (high - low) / 2, est.variance, low, high)
    if bounds is None:
        return Estimate(m, n, None if n < 2 else 0.0, est.variance,
                        None if n < 2 else m, None if n < 2 else m)
    lo_b, hi_b = bounds
    scaled = (m - lo_b) / (hi_b - lo_b)
    w_lo, w_hi = wilson(n, scaled * n)
    low, high = lo_b + w_lo * (hi_b - lo_b), lo_b + w_hi * (hi_b - lo_b)
    return Estimate(m, n, (high - low) / 2, est.variance, low, high)


def engagement(respondents: int, item_shares: list[float]) -> Estimate:
    """Engagement = mean over the wave's items of the favourable share (answers 4-5), in %.

    Interval: the Wilson interval with n = respondents. Items answered by the same people are
    correlated, so counting each answer as independent would overstate the precision.
    """
    if respondents <= 0 or not item_shares:
        return Estimate(None, max(respondents, 0), None, None)
    p = sum(item_shares) / len(item_shares)
    est = share(respondents, round(p * respondents))
    return Estimate(100 * p, respondents, est.moe, p * (1 - p) * 100**2, est.low, est.high,
                    est.counts)


def mean(n: int, total: float, total_sq: float) -> Estimate:
    """Mean score with a 1.96 x s / sqrt(n) margin; s is the sample standard deviation."""
    if n <= 0:
        return Estimate(None, 0, None, None)
    m = total / n
    if n == 1:
        return Estimate(m, 1, None, None)
    var = max(0.0, (total_sq - n * m * m) / (n - 1))
    half = Z95 * math.sqrt(var / n)
    return Estimate(m, n, half, var, m - half, m + half)


@dataclass(frozen=True)
class Change:
    """Difference of a metric between two periods and whether it is significant at 95%.

    `significant` is None when no test is valid (`reason` says why, e.g. TOO_FEW);
    `low`/`high` bound the 95% interval of the difference when it is tested.
    """

    delta: float | None
    z: float | None
    significant: bool | None
    low: float | None = None
    high: float | None = None
    reason: str | None = None


def untestable(current: Estimate, previous: Estimate, min_n: int = DEFAULT_MIN_N) -> str | None:
    """Why a change between two estimates cannot be tested, or None when it can.

    The one significance rule of the product: both periods need at least `min_n` answers,
    and every counted category (promoters and detractors; hits and misses) at least
    MIN_EXPECTED answers expected in each period under no change: min(n1, n2) x (c1 + c2) /
    (n1 + n2) >= MIN_EXPECTED.
    """
    n1, n2 = current.n, previous.n
    if n1 < max(min_n, 2) or n2 < max(min_n, 2):
        return TOO_FEW
    for c1, c2 in zip(current.counts, previous.counts, strict=False):
        if min(n1, n2) * (c1 + c2) / (n1 + n2) < MIN_EXPECTED:
            return TOO_FEW
    return None


def change_share(current: Estimate, previous: Estimate, *,
                 min_n: int = DEFAULT_MIN_N) -> Change:
    """Two-proportion z-test (pooled share) between two shares given in percent."""
    return change(current, previous, pooled_share=True, min_n=min_n)


def change(current: Estimate, previous: Estimate, *, pooled_share: bool = False,
           min_n: int = DEFAULT_MIN_N) -> Change:
    """z = (x1 - x2) / sqrt(V1/n1 + V2/n2); significant when |z| >= 1.96.

    With `pooled_share`, the two-proportion z-test with a pooled share is used (CSAT). No
    test (significant None, reason TOO_FEW) when `untestable` says so. The interval of the
    difference is delta +- 1.96 x sqrt(V1/n1 + V2/n2) (unpooled).
    """
    if current.value is None or previous.value is None:
        return Change(None, None, None)
    delta = current.value - previous.value
    reason = untestable(current, previous, min_n)
    if reason is not None:
        return Change(delta, None, None, reason=reason)
    if current.variance is None or previous.variance is None:
        return Change(delta, None, None)
    n1, n2 = current.n, previous.n
    spread = math.sqrt(current.variance / n1 + previous.variance / n2)
    low, high = delta - Z95 * spread, delta + Z95 * spread
    if pooled_share:
        pooled = (current.value * n1 + previous.value * n2) / (100 * (n1 + n2))
        se = 100 * math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    else:
        se = spread
    if se == 0:
        return Change(delta, None if delta == 0 else math.copysign(math.inf, delta), delta != 0,
                      low, high)
    z = delta / se
    return Change(delta, z, abs(z) >= Z95, low, high)
