"""Training-seed statistics for the report: every number as a distribution, every comparison as an interval.

Numbers in, numbers out: plain floats (numpy only for sums), no I/O, no torch. Every cell of the
benchmark (a model family or variant at a latent size z) is trained with n training seeds (3 by
default), and each seed gives one value of a metric (e.g. `iwae_nll`, nats, lower is better).

Which estimate is used when
---------------------------
* One cell: `aggregate` -> the mean over seeds, the training-seed sd (n - 1 denominator) and the t
  interval mean +- t_{(1+level)/2, n-1} sd / sqrt(n). The t interval assumes that training-seed noise
  is normal (a metric averaged over 10,000 test images is a smooth function of the weights). At
  n = 3 the sd has 2 degrees of freedom: t_{0.975, 2} = 4.30, and the normal 1.96 in its place would
  make a "95 %" interval cover about 81 % of the time (tests/test_stats.py measures it). A bootstrap
  does not help: 3 values have only 10 distinct resamples, and its interval is too narrow at small
  n. Colas, Sigaud & Oudeyer 2018, "How many random seeds? Statistical power analysis in deep
  reinforcement learning experiments" (arXiv:1806.08295), find the bootstrap's false-positive rate
  far above its nominal level for few seeds and recommend Welch's t-test.
* Two cells, `compare`:
  - default, Welch 1947 ("The generalization of 'Student's' problem when several different
    population variances are involved", Biometrika 34:28-35): no common variance assumed, the
    Welch-Satterthwaite degrees of freedom (Satterthwaite 1946, Biometrics Bulletin 2:110-114).
  - `pooled=(sd, df)` from `pooled_sd`: when a family's cells share one training-seed sd, pooling k
    cells gives sum(n_i - 1) df (16 for 8 cells of 3 seeds) instead of 2 to 4: a much shorter
    interval. Use it only beside `homogeneity`, which the report prints next to every pooled interval.
  - `paired=True`: a and b ran on the same seeds (same minibatch order, binarisation and noise
    streams), so the noise they share cancels in the per-seed differences a_i - b_i; one-sample t
    interval of the differences, n - 1 df.
* One cell against a published number (no spread known), `compare_to_reference`: the one-sample t
  interval of mean(a) - reference.
* Whether cells may be pooled, `homogeneity`: Bartlett's test (Bartlett 1937, "Properties of
  sufficiency and statistical tests", Proc. R. Soc. Lond. A 160:268-282) and the ratio of the largest
  to the smallest cell sd. With 3 seeds per cell each variance rests on 2 df and the test has little
  power: a pass is weak evidence, which is why the report shows the check, not only its verdict.
* `p_improve`: the probability of improvement of Agarwal et al. 2021, "Deep reinforcement learning at
  the edge of the statistical precipice" (NeurIPS; arXiv:2108.13264, sec. 4 and Fig. 1): the fraction
  of pairs of runs (a_i, b_j) in which a is better, ties counting 1/2 (Mann-Whitney U / (n_a n_b)).
  It is a distribution-free description of the overlap of the runs, not a test.

What the intervals do not contain: the per-seed standard errors over the test images (e.g.
`iwae_nll_se`) measure how the metric would move on another 10,000 test images. All cells are scored
on the same images, so the intervals here are conditional on that test set; they answer "would
another training seed give the same result?".

Quantiles and tail probabilities come from the continued fractions of Numerical Recipes (Press et al.
2007, 3rd ed., sec. 6.2 and 6.4), always: scipy is not a run-time dependency, and one code path keeps the
report's bytes the same whatever is installed. The tests check them against tabled values and against scipy
(report/special.py; its `_scipy_stats` is the hook they set to compare the two).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from vaebench.report import special
from vaebench.report.special import _chi2_sf_own, t_quantile  # the tests patch t_quantile here

BACKEND = special.BACKEND


# --- input checks --------------------------------------------------------------------------------


def _finite(values: Sequence[float], name: str) -> np.ndarray:
    """The values as a float array; refuses an empty list and names the position of a NaN or infinity
    (a diverged or unscored seed must not vanish into a mean)."""
    arr = np.asarray(values, dtype=float).reshape(-1)
    if arr.size == 0:
        raise ValueError(f"{name} is empty: no seeds to summarise")
    bad = [f"{name}[{i}] = {v}" for i, v in enumerate(arr) if not math.isfinite(v)]
    if bad:
        raise ValueError(f"not a finite number: {', '.join(bad)}")
    return arr


def _check_level(level: float) -> None:
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must lie in (0, 1), got {level}")


def _sd(arr: np.ndarray) -> float:
    """The sample sd with the n - 1 denominator; nan for one value (no spread can be estimated)."""
    return float(np.std(arr, ddof=1)) if arr.size > 1 else math.nan


def _interval(center: float, se: float, df: float, level: float) -> tuple[float, float]:
    """center +- t_{(1+level)/2, df} se; the point itself when se = 0 (any df, no quantile needed)."""
    if se == 0.0:
        return center, center
    half = t_quantile((1.0 + level) / 2.0, df) * se
    return center - half, center + half


# --- one cell ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Aggregate:
    """One cell's metric over its training seeds: mean, sd (n - 1), and a `level` interval for the mean."""

    mean: float
    sd: float  # training-seed sd, n - 1 denominator; nan for n = 1
    n: int
    lo: float  # interval for the mean; nan for n = 1
    hi: float
    method: str  # e.g. "t, 2 df" or "n = 1: no interval"

    def text(self, digits: int = 2) -> str:
        """'91.17 ± 1.26 [88.04, 94.29] (n = 3)': mean ± sd [interval]; the report's one format."""
        if self.n == 1:
            return f"{self.mean:.{digits}f} (n = 1)"
        m, s, lo, hi = (f"{v:.{digits}f}" for v in (self.mean, self.sd, self.lo, self.hi))
        return f"{m} ± {s} [{lo}, {hi}] (n = {self.n})"


def aggregate(values: Sequence[float], level: float = 0.95) -> Aggregate:
    """The mean over training seeds, their sd and the t interval mean +- t_{(1+level)/2, n-1} sd/sqrt(n).

    Why t and not a bootstrap or the normal quantile: see the module docstring (normal training-seed
    noise; n = 3 gives a bootstrap only 10 distinct resamples; Colas et al. 2018). NaN, infinite and
    empty inputs are refused with a ValueError that names the position.
    """
    _check_level(level)
    arr = _finite(values, "values")
    n, mean, sd = arr.size, float(arr.mean()), _sd(arr)
    if n == 1:
        return Aggregate(mean, sd, 1, math.nan, math.nan, "n = 1: no interval")
    lo, hi = _interval(mean, sd / math.sqrt(n), n - 1, level)
    return Aggregate(mean, sd, n, lo, hi, f"t, {n - 1} df")


# --- a family of cells ---------------------------------------------------------------------------


def pooled_sd(groups: Sequence[Sequence[float]]) -> tuple[float, int]:
    """The pooled within-cell training-seed sd of a family's cells and its df = sum(n_i - 1).

    s_p^2 = sum (n_i - 1) s_i^2 / sum (n_i - 1): every cell's deviations from its own mean, so cells with
    different means (different z, different models) pool fine as long as their spreads agree (check
    with `homogeneity`). A cell with one seed adds no df; at least one df overall is required.
    """
    arrs = [_finite(g, f"groups[{i}]") for i, g in enumerate(groups)]
    df = sum(a.size - 1 for a in arrs)
    if df == 0:
        raise ValueError("pooled_sd needs a cell with two or more seeds: no degrees of freedom")
    ss = sum(float(((a - a.mean()) ** 2).sum()) for a in arrs)
    return math.sqrt(ss / df), df


@dataclass(frozen=True)
class HomogeneityCheck:
    """Bartlett's test that the cells' training-seed variances are equal, and the spread of the sds."""

    statistic: float  # Bartlett's chi-square statistic
    p_value: float
    df: int  # k - 1, k = number of cells with two or more seeds
    passed: bool  # p_value >= 0.05: no evidence against pooling (weak evidence for it at n = 3)
    sd_ratio: float  # largest / smallest cell sd
    method: str


def _bartlett_own(arrs: list[np.ndarray]) -> float:
    """Bartlett's statistic (Bartlett 1937; NIST/SEMATECH e-Handbook 1.3.5.7):
    T = [(N - k) ln s_p^2 - sum (n_i - 1) ln s_i^2] / [1 + (sum 1/(n_i - 1) - 1/(N - k)) / (3 (k - 1))]."""
    k, dfs = len(arrs), np.array([a.size - 1 for a in arrs], dtype=float)
    variances = np.array([np.var(a, ddof=1) for a in arrs])
    n_minus_k = dfs.sum()
    sp2 = float((dfs * variances).sum() / n_minus_k)
    numerator = n_minus_k * math.log(sp2) - float((dfs * np.log(variances)).sum())
    correction = 1.0 + (float((1.0 / dfs).sum()) - 1.0 / n_minus_k) / (3.0 * (k - 1))
    return float(numerator / correction)


def homogeneity(groups: Sequence[Sequence[float]], alpha: float = 0.05) -> HomogeneityCheck:
    """Are the cells' variances similar enough to pool? Bartlett's test (chi-square, k - 1 df) and the
    ratio of the largest to the smallest sd; passed = p >= alpha.

    Bartlett's statistic is chi-square distributed (in the limit) for normal data and sensitive to
    non-normality. With 3 seeds per cell each variance rests on 2 df, so the test has low power: sds
    can differ severalfold and still pass. The
    report therefore prints this check (statistic, p, sd ratio) beside every pooled interval. Cells
    with one seed carry no variance information and are left out. A cell with zero spread makes the
    statistic infinite (p = 0, not passed): identical seeds mean the seeds did not vary the run.
    """
    arrs = [a for a in (_finite(g, f"groups[{i}]") for i, g in enumerate(groups)) if a.size > 1]
    if len(arrs) < 2:
        raise ValueError("homogeneity needs two or more cells with two or more seeds each")
    sds = [_sd(a) for a in arrs]
    k = len(arrs)
    ratio = max(sds) / min(sds) if min(sds) > 0 else math.inf
    if min(sds) == 0.0:
        statistic, p = math.inf, 0.0
    elif special._scipy_stats is not None:
        statistic, p = (float(v) for v in special._scipy_stats.bartlett(*arrs))
    else:
        statistic = _bartlett_own(arrs)
        p = _chi2_sf_own(statistic, k - 1)
    method = f"Bartlett, {k - 1} df, {k} cells; largest/smallest sd = {ratio:.2f}"
    return HomogeneityCheck(float(statistic), float(p), k - 1, bool(p >= alpha), float(ratio), method)


# --- comparisons ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Comparison:
    """a against b on one metric: the difference of means with its interval, and a verdict in words."""

    a: str  # label of the first cell
    b: str  # label of the second cell (or of the published number)
    diff: float  # mean_a - mean_b
    lo: float  # `level` interval of the difference; nan when it cannot be formed
    hi: float
    df: float  # nan when no interval; inf when the spread is exactly 0
    method: str  # "Welch", "pooled (family sd, X df)", "paired by seed", "one-sample t"
    p_improve: float  # P(a better than b): Agarwal et al. 2021, ties count 1/2
    verdict: str


def _better(x: np.ndarray, y: np.ndarray, lower_is_better: bool) -> np.ndarray:
    """1 where x is better than y, 1/2 on a tie, 0 where worse (elementwise, broadcasting)."""
    wins = (x < y) if lower_is_better else (x > y)
    return wins + 0.5 * (x == y)


def p_improve(a: Sequence[float], b: Sequence[float], *, paired: bool = False, lower_is_better: bool = True) -> float:
    """The probability of improvement (Agarwal et al. 2021, sec. 4): over all pairs (a_i, b_j), the
    fraction in which a is better, ties 1/2 (Mann-Whitney U / (n_a n_b)); with paired=True, over seeds i."""
    x, y = _finite(a, "a"), _finite(b, "b")
    if paired:
        _check_paired(x, y)
        return float(_better(x, y, lower_is_better).mean())
    return float(_better(x[:, None], y[None, :], lower_is_better).mean())


def _check_paired(x: np.ndarray, y: np.ndarray) -> None:
    if x.size != y.size:
        raise ValueError(f"paired comparison needs the same seeds on both sides, got {x.size} and {y.size} values")


def _n_text(na: int, nb: int | None) -> str:
    return f"{na}" if nb is None or nb == na else f"{na} and {nb}"


def _verdict(label_a: str, label_b: str, diff: float, lo: float, hi: float, n: str, lower_is_better: bool) -> str:
    """Who is better, in words, when the interval excludes 0; otherwise that it does not."""
    if math.isnan(lo):
        return "not resolved (n = 1)"
    if lo <= 0.0 <= hi:
        return f"not resolved at n = {n}: the interval includes 0"
    a_lower = diff < 0
    winner = label_a if a_lower == lower_is_better else label_b
    word = "lower" if lower_is_better else "higher"
    return f"{winner} {word} by {abs(diff):.2f} (resolved at n = {n})"


def compare(
    a: Sequence[float],
    b: Sequence[float],
    label_a: str,
    label_b: str,
    *,
    pooled: tuple[float, int] | None = None,
    paired: bool = False,
    lower_is_better: bool = True,
    level: float = 0.95,
) -> Comparison:
    """The difference of the seed means of two cells, mean(a) - mean(b), with a `level` interval.

    - default, Welch (1947): se^2 = s_a^2/n_a + s_b^2/n_b, Welch-Satterthwaite df
      se^4 / [(s_a^2/n_a)^2/(n_a - 1) + (s_b^2/n_b)^2/(n_b - 1)]; a side with one seed gives no interval.
    - pooled=(sd, df) from `pooled_sd`: se = sd sqrt(1/n_a + 1/n_b) with the family's df (its variance is
      assumed common to both cells; this also gives an interval for a cell with one seed).
    - paired=True: a_i and b_i share seed i; the one-sample t interval of a_i - b_i, n - 1 df.
    `lower_is_better` decides what p_improve and the verdict call better; the interval does not depend on it.
    """
    _check_level(level)
    x, y = _finite(a, label_a), _finite(b, label_b)
    if paired and pooled is not None:
        raise ValueError("choose one of paired=True and pooled=(sd, df), not both")
    if paired:
        _check_paired(x, y)
        d = x - y
        diff, se, df, method = float(d.mean()), _sd(d) / math.sqrt(d.size), float(d.size - 1), "paired by seed"
        n_text = _n_text(d.size, None)
    else:
        diff, n_text = float(x.mean() - y.mean()), _n_text(x.size, y.size)
        se, df, method = _two_sample_se(x, y, pooled)
    lo, hi = _interval(diff, se, df, level) if not math.isnan(se) else (math.nan, math.nan)
    pi = p_improve(x, y, paired=paired, lower_is_better=lower_is_better)
    verdict = _verdict(label_a, label_b, diff, lo, hi, n_text, lower_is_better)
    return Comparison(label_a, label_b, diff, lo, hi, df if not math.isnan(se) else math.nan, method, pi, verdict)


def _two_sample_se(x: np.ndarray, y: np.ndarray, pooled: tuple[float, int] | None) -> tuple[float, float, str]:
    """(se, df, method) of mean(x) - mean(y): pooled from the family, or Welch's."""
    if pooled is not None:
        sd, df = _check_pooled(pooled)
        return sd * math.sqrt(1.0 / x.size + 1.0 / y.size), float(df), f"pooled (family sd, {df} df)"
    if x.size < 2 or y.size < 2:
        return math.nan, math.nan, "Welch"
    va, vb = _sd(x) ** 2 / x.size, _sd(y) ** 2 / y.size
    if va + vb == 0.0:  # both sides without spread: the point, with nothing left to estimate
        return 0.0, math.inf, "Welch"
    df = (va + vb) ** 2 / (va**2 / (x.size - 1) + vb**2 / (y.size - 1))
    return math.sqrt(va + vb), df, "Welch"


def _check_pooled(pooled: tuple[float, int]) -> tuple[float, int]:
    sd, df = pooled
    if not (math.isfinite(sd) and sd >= 0.0) or df < 1:
        raise ValueError(f"pooled must be (sd >= 0, df >= 1) as pooled_sd returns it, got {pooled}")
    return float(sd), int(df)


def compare_to_reference(
    a: Sequence[float],
    reference: float,
    label_a: str,
    label_ref: str,
    *,
    pooled: tuple[float, int] | None = None,
    lower_is_better: bool = True,
    level: float = 0.95,
) -> Comparison:
    """Our cell against one published number with no known spread (e.g. the thesis's 157, 102, 98.5).

    The reference is treated as exact: the one-sample t interval of mean(a) - reference, se = s/sqrt(n)
    with n - 1 df, or the family's pooled (sd, df) in place of s. p_improve is the fraction of seeds
    better than the reference, ties 1/2. The interval therefore covers only our training-seed noise,
    not the published number's own.
    """
    _check_level(level)
    x = _finite(a, label_a)
    if not math.isfinite(reference):
        raise ValueError(f"reference {label_ref} = {reference}: not a finite number")
    diff = float(x.mean()) - reference
    if pooled is not None:
        sd, df_int = _check_pooled(pooled)
        se, df, method = sd / math.sqrt(x.size), float(df_int), f"pooled (family sd, {df_int} df)"
    elif x.size > 1:
        se, df, method = _sd(x) / math.sqrt(x.size), float(x.size - 1), "one-sample t"
    else:
        se, df, method = math.nan, math.nan, "one-sample t"
    lo, hi = _interval(diff, se, df, level) if not math.isnan(se) else (math.nan, math.nan)
    pi = float(_better(x, np.float64(reference), lower_is_better).mean())
    verdict = _verdict(label_a, label_ref, diff, lo, hi, _n_text(x.size, None), lower_is_better)
    return Comparison(label_a, label_ref, diff, lo, hi, df, method, pi, verdict)
