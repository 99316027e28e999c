"""Statistics behind the experience-to-revenue views: pure functions, no database.

Inputs are the counts and sums SQL returns (n, sum, sum of squares, sums of products) or a
few hundred per-unit points, so every number here is reproducible by hand. Conventions:

* 95% by default; `confidence` is two-sided everywhere.
* A statistic that is undefined for the data (too few observations, zero variance) is
  None, never NaN or a made-up 0, so the dashboard can say "not enough data".
* Sample (n - 1) variances throughout.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import special as _sp

from queries import metrics


def _two_sided(confidence: float) -> float:
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence!r}")
    return 1 - (1 - confidence) / 2


def z_quantile(confidence: float = 0.95) -> float:
    """Two-sided normal quantile: 1.96 for 95%."""
    return float(_sp.ndtri(_two_sided(confidence)))


def t_margin(n: int, sd: float | None, confidence: float = 0.95) -> float | None:
    """Half-width of the t interval of a mean: t(1 - alpha/2, n - 1) x sd / sqrt(n).

    None for n < 2 (no degrees of freedom) or an unknown sd.
    """
    if n < 2 or sd is None:
        return None
    return float(_sp.stdtrit(n - 1, _two_sided(confidence))) * sd / math.sqrt(n)


@dataclass(frozen=True)
class MeanCI:
    """A mean with its sample standard deviation and t-based confidence interval."""

    mean: float | None
    sd: float | None
    n: int
    moe: float | None
    low: float | None
    high: float | None


def mean_ci(n: int, total: float, total_sq: float, confidence: float = 0.95) -> MeanCI:
    """Mean = total / n; sd = sqrt((total_sq - n x mean^2) / (n - 1)); mean +- t_margin.

    From the sums SQL returns. n = 0: everything None; n = 1: the mean only.
    """
    n = int(n)
    if n <= 0:
        return MeanCI(None, None, 0, None, None, None)
    m = float(total) / n
    if n == 1:
        return MeanCI(m, None, 1, None, None, None)
    # Rounding can push the difference of two large sums a hair below zero.
    var = max(0.0, (float(total_sq) - n * m * m) / (n - 1))
    sd = math.sqrt(var)
    moe = t_margin(n, sd, confidence)
    assert moe is not None
    return MeanCI(m, sd, n, moe, m - moe, m + moe)


def wilson(hits: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval (low, high) of the share hits / n; (0, 1) when n = 0."""
    return metrics.wilson(int(n), int(hits), z_quantile(confidence))


@dataclass(frozen=True)
class Test:
    """A two-sample comparison: difference (group 1 - group 2), statistic and p-value.

    `z` is set by the z-test, `t` and `df` by Welch's t-test; `low`/`high` bound the
    difference where the test gives an interval.
    """

    diff: float | None
    p: float | None
    significant: bool | None
    z: float | None = None
    t: float | None = None
    df: float | None = None
    low: float | None = None
    high: float | None = None

    @property
    def statistic(self) -> float | None:
        """z or t, whichever the test computed."""
        return self.z if self.t is None else self.t


def two_proportion_z(h1: int, n1: int, h2: int, n2: int, confidence: float = 0.95) -> Test:
    """Pooled two-proportion z-test of p1 = h1/n1 against p2 = h2/n2.

    diff = p1 - p2; z = diff / sqrt(p (1 - p) (1/n1 + 1/n2)) with p = (h1 + h2) / (n1 + n2);
    p-value two-sided from the normal. An empty group gives an empty Test; p of 0 or 1 in
    both groups (no variance, no difference) gives z None and not significant.
    """
    if n1 <= 0 or n2 <= 0:
        return Test(None, None, None)
    p1, p2 = h1 / n1, h2 / n2
    diff = p1 - p2
    pooled = (h1 + h2) / (n1 + n2)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    if se == 0:
        return Test(diff, None, False)
    z = diff / se
    p = float(2 * _sp.ndtr(-abs(z)))
    return Test(diff, p, p < 1 - confidence, z=z)


def welch_t(m1: float | None, v1: float | None, n1: int, m2: float | None, v2: float | None,
            n2: int, confidence: float = 0.95) -> Test:
    """Welch's t-test of mean 1 against mean 2 (sample variances v1, v2, unequal).

    diff = m1 - m2; se = sqrt(v1/n1 + v2/n2); t = diff / se;
    df = se^4 / ((v1/n1)^2/(n1 - 1) + (v2/n2)^2/(n2 - 1)) (Welch-Satterthwaite);
    interval diff +- t(1 - alpha/2, df) x se. Needs n >= 2 in both groups. When both
    variances are 0 the difference is exact: t = +-inf (p = 0) if it is not 0, else None.
    """
    if n1 < 2 or n2 < 2 or None in (m1, v1, m2, v2):
        diff = None if m1 is None or m2 is None else m1 - m2
        return Test(diff, None, None)
    assert m1 is not None and m2 is not None and v1 is not None and v2 is not None
    diff = m1 - m2
    a, b = v1 / n1, v2 / n2
    se = math.sqrt(a + b)
    if se == 0:
        if diff == 0:
            return Test(0.0, None, False, low=0.0, high=0.0)
        return Test(diff, 0.0, True, t=math.copysign(math.inf, diff), low=diff, high=diff)
    df = (a + b) ** 2 / (a * a / (n1 - 1) + b * b / (n2 - 1))
    t = diff / se
    p = float(2 * _sp.stdtr(df, -abs(t)))
    half = float(_sp.stdtrit(df, _two_sided(confidence))) * se
    return Test(diff, p, p < 1 - confidence, t=t, df=df, low=diff - half, high=diff + half)


@dataclass(frozen=True)
class Correlation:
    """Pearson r with its Fisher-z interval and p-value, and the OLS line y = a + b x.

    r, low, high and p are None below 4 points or when x or y does not vary; slope and
    intercept need only 2 points and a varying x.
    """

    r: float | None
    n: int
    low: float | None
    high: float | None
    p: float | None
    slope: float | None
    intercept: float | None

    @property
    def significant(self) -> bool | None:
        """Whether the interval excludes 0 (equivalently p < 0.05 at 95%)."""
        if self.low is None or self.high is None:
            return None
        return self.low > 0 or self.high < 0


def pearson(x: Sequence[float] | np.ndarray, y: Sequence[float] | np.ndarray,
            confidence: float = 0.95) -> Correlation:
    """Pearson correlation of paired points, pairs with a missing value dropped.

    r = Sxy / sqrt(Sxx Syy); interval tanh(atanh(r) +- z(1 - alpha/2) / sqrt(n - 3));
    p from t = r sqrt((n - 2) / (1 - r^2)) with n - 2 df; slope = Sxy / Sxx,
    intercept = mean(y) - slope x mean(x).
    """
    xa = np.asarray(x, dtype=float)
    ya = np.asarray(y, dtype=float)
    if xa.shape != ya.shape or xa.ndim != 1:
        raise ValueError("pearson needs two one-dimensional sequences of the same length")
    keep = np.isfinite(xa) & np.isfinite(ya)
    xa, ya = xa[keep], ya[keep]
    n = len(xa)
    if n < 2:
        return Correlation(None, n, None, None, None, None, None)
    dx, dy = xa - xa.mean(), ya - ya.mean()
    sxx, syy, sxy = float(dx @ dx), float(dy @ dy), float(dx @ dy)
    slope = intercept = None
    # Relative test: deviations of identical floats can be rounding dust, not variance.
    x_varies = sxx > 1e-24 * max(1.0, float(xa @ xa))
    y_varies = syy > 1e-24 * max(1.0, float(ya @ ya))
    if x_varies:
        slope = sxy / sxx
        intercept = float(ya.mean()) - slope * float(xa.mean())
    if n < 4 or not (x_varies and y_varies):
        return Correlation(None, n, None, None, None, slope, intercept)
    r = max(-1.0, min(1.0, sxy / math.sqrt(sxx * syy)))
    if abs(r) == 1.0:
        return Correlation(r, n, r, r, 0.0, slope, intercept)
    t = r * math.sqrt((n - 2) / (1 - r * r))
    p = float(2 * _sp.stdtr(n - 2, -abs(t)))
    half = z_quantile(confidence) / math.sqrt(n - 3)
    zr = math.atanh(r)
    return Correlation(r, n, math.tanh(zr - half), math.tanh(zr + half), p, slope, intercept)


@dataclass(frozen=True, eq=False)
class Moments:
    """Sample means, covariance (n - 1), standard deviations and correlations of k variables.

    A correlation involving a constant variable is NaN.
    """

    n: int
    mean: np.ndarray
    cov: np.ndarray
    sd: np.ndarray
    corr: np.ndarray


def correlation_from_sums(n: int, sums: Sequence[float] | np.ndarray,
                          cross: Sequence[Sequence[float]] | np.ndarray) -> Moments:
    """Covariance and correlation matrices from n, the sums S_i and cross sums S_ij = sum x_i x_j.

    cov_ij = (S_ij - S_i S_j / n) / (n - 1); corr_ij = cov_ij / (sd_i sd_j). Needs n >= 2.
    """
    if n < 2:
        raise ValueError(f"a covariance needs at least 2 observations, got n={n}")
    s = np.asarray(sums, dtype=float)
    c = np.asarray(cross, dtype=float)
    if c.shape != (len(s), len(s)):
        raise ValueError("cross must be a k x k matrix for k sums")
    mean = s / n
    cov = (c - np.outer(s, s) / n) / (n - 1)
    cov = (cov + cov.T) / 2
    sd = np.sqrt(np.clip(np.diag(cov), 0.0, None))
    with np.errstate(divide="ignore", invalid="ignore"):
        corr = cov / np.outer(sd, sd)
    corr[~np.isfinite(corr)] = np.nan
    for i in range(len(s)):
        if sd[i] > 0:
            corr[i, i] = 1.0
    return Moments(n, mean, cov, sd, np.clip(corr, -1.0, 1.0))


@dataclass(frozen=True)
class RelativeWeights:
    """Johnson's relative weights: each predictor's share of R^2.

    `weights` sum to `r_squared`; `rescaled` are the weights in % of R^2 (sum 100).
    """

    weights: tuple[float, ...]
    r_squared: float
    rescaled: tuple[float, ...]


def relative_weights(corr_xx: Sequence[Sequence[float]] | np.ndarray,
                     corr_xy: Sequence[float] | np.ndarray) -> RelativeWeights:
    """Johnson (2000) relative weights from the predictors' correlation matrix Rxx and their
    correlations rxy with the outcome.

    Rxx = Q diag(e) Q'; Lambda = Q diag(sqrt(e)) Q' (the symmetric root, the correlations of
    the predictors with their closest orthogonal counterparts); beta = Lambda^-1 rxy (the
    outcome regressed on those counterparts); weight_j = sum_k Lambda_jk^2 beta_k^2. The
    weights sum to R^2 = rxy' Rxx^-1 rxy. Collinear predictors (e ~ 0) use the
    pseudo-inverse, whose R^2 is still that of the least-squares fit.
    """
    rxx = np.asarray(corr_xx, dtype=float)
    rxy = np.asarray(corr_xy, dtype=float)
    k = len(rxy)
    if rxx.shape != (k, k):
        raise ValueError("corr_xx must be k x k for k correlations in corr_xy")
    if not (np.isfinite(rxx).all() and np.isfinite(rxy).all()):
        raise ValueError("correlations must be finite (a constant predictor or outcome?)")
    if k == 0:
        return RelativeWeights((), 0.0, ())
    eig, q = np.linalg.eigh((rxx + rxx.T) / 2)
    tol = max(1e-12, 1e-10 * float(eig.max(initial=0.0)))
    root = np.sqrt(np.clip(eig, 0.0, None))
    inv_root = np.where(eig > tol, 1.0 / np.where(root > 0, root, 1.0), 0.0)
    lam = q @ np.diag(root) @ q.T
    beta = q @ np.diag(inv_root) @ q.T @ rxy
    weights = (lam**2) @ (beta**2)
    r2 = float(weights.sum())
    rescaled = weights / r2 * 100 if r2 > 0 else np.zeros(k)
    return RelativeWeights(tuple(float(w) for w in weights), r2,
                           tuple(float(w) for w in rescaled))
