"""Special functions of the report's statistics: the Student t quantile and the chi-square tail.

From the continued fractions of Numerical Recipes (Press et al. 2007, 3rd ed., sec. 6.2 and 6.4), always:
scipy is not a run-time dependency, and one code path keeps the report's bytes the same whatever is
installed. The tests check them against tabled values and against scipy (`_scipy_stats` is the hook they
set to run the same formulas through scipy's functions; report/stats.py's Bartlett test reads it too).
"""

from __future__ import annotations

import math
from statistics import NormalDist

_scipy_stats = None  # a test may set scipy.stats here, to run the same formulas through scipy's functions

BACKEND = "own (Numerical Recipes continued fractions)"

_NORMAL = NormalDist()
_EPS = 1e-15  # relative accuracy the continued fractions iterate to
_MAX_ITER = 10_000


# --- special functions (used only without scipy) ------------------------------------------------


def _betacf(a: float, b: float, x: float) -> float:
    """The continued fraction of the incomplete beta function, modified Lentz (Numerical Recipes 6.4)."""
    tiny = 1e-300
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, _MAX_ITER):
        m2 = 2 * m
        for num in (m * (b - m) * x / ((qam + m2) * (a + m2)), -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))):
            d = 1.0 + num * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + num / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1.0) < _EPS:
            return h
    raise ArithmeticError(f"incomplete beta did not converge (a={a}, b={b}, x={x})")


def _betainc(a: float, b: float, x: float) -> float:
    """The regularised incomplete beta I_x(a, b) (Numerical Recipes 6.4)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_front = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    if x < (a + 1.0) / (a + b + 2.0):  # the fraction converges fast on this side; use symmetry on the other
        return math.exp(log_front) * _betacf(a, b, x) / a
    return 1.0 - math.exp(log_front) * _betacf(b, a, 1.0 - x) / b


def _t_sf(t: float, df: float) -> float:
    """P(T > t) for t >= 0: (1/2) I_{df/(df+t^2)}(df/2, 1/2) (Abramowitz & Stegun 26.7.1)."""
    return 0.5 * _betainc(df / 2.0, 0.5, df / (df + t * t))


def _t_quantile_own(p: float, df: float) -> float:
    """The t quantile by bisection on the tail probability; accurate to ~1e-12 relative."""
    if math.isinf(df):
        return _NORMAL.inv_cdf(p)
    if p == 0.5:
        return 0.0
    if p < 0.5:  # the t distribution is symmetric
        return -_t_quantile_own(1.0 - p, df)
    tail = 1.0 - p
    lo, hi = 0.0, max(1.0, _NORMAL.inv_cdf(p))
    while _t_sf(hi, df) > tail:  # t's tails are heavier than the normal's: widen until bracketed
        lo, hi = hi, 2.0 * hi
    while hi - lo > 1e-13 * hi:
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if _t_sf(mid, df) > tail else (lo, mid)
    return 0.5 * (lo + hi)


def _gammaincc(a: float, x: float) -> float:
    """The regularised upper incomplete gamma Q(a, x): series below a + 1, continued fraction above
    (Numerical Recipes 6.2)."""
    if x <= 0.0:
        return 1.0
    if math.isinf(x):
        return 0.0
    log_front = -x + a * math.log(x) - math.lgamma(a)
    if x < a + 1.0:  # series for P(a, x)
        term = total = 1.0 / a
        ap = a
        for _ in range(_MAX_ITER):
            ap += 1.0
            term *= x / ap
            total += term
            if abs(term) < abs(total) * _EPS:
                return 1.0 - total * math.exp(log_front)
        raise ArithmeticError(f"incomplete gamma series did not converge (a={a}, x={x})")
    tiny = 1e-300  # continued fraction for Q(a, x), modified Lentz
    b = x + 1.0 - a
    c, d = 1.0 / tiny, 1.0 / b
    h = d
    for i in range(1, _MAX_ITER):
        an = -i * (i - a)
        b += 2.0
        d = an * d + b
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = b + an / c
        c = c if abs(c) > tiny else tiny
        h *= d * c
        if abs(d * c - 1.0) < _EPS:
            return math.exp(log_front) * h
    raise ArithmeticError(f"incomplete gamma fraction did not converge (a={a}, x={x})")


def _chi2_sf_own(x: float, df: float) -> float:
    """P(X > x) for X ~ chi-square with df degrees of freedom: Q(df/2, x/2)."""
    return _gammaincc(df / 2.0, x / 2.0)


def t_quantile(p: float, df: float) -> float:
    """The Student t quantile t_{p, df} (df may be fractional, as Welch's is, or math.inf: the normal).

    scipy.stats.t.ppf when a test has set the `_scipy_stats` hook, else bisection on A&S 26.7.1 with Numerical Recipes'
    incomplete beta. Known values: t_{0.975, 2} = 4.302653, t_{0.975, 30} = 2.042272, t_{0.975, inf} = 1.959964.
    """
    if not 0.0 < p < 1.0 or not df > 0:
        raise ValueError(f"t_quantile needs 0 < p < 1 and df > 0, got p={p}, df={df}")
    if _scipy_stats is not None:
        return float(_scipy_stats.t.ppf(p, df))
    return _t_quantile_own(p, df)


def chi2_sf(x: float, df: float) -> float:
    """The chi-square survival function P(X > x); scipy.stats.chi2.sf when a test has set the `_scipy_stats` hook,
    else Q(df/2, x/2)."""
    if _scipy_stats is not None:
        return float(_scipy_stats.chi2.sf(x, df))
    return _chi2_sf_own(x, df)
