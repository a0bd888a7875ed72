"""report/comparisons.py: the questions asked, the fixed rule for each row's interval (and its coverage where
pooling would fail), and rows checked by hand."""

from __future__ import annotations

import math

import pytest

from vaebench.config import params_from_dict
import numpy as np

from vaebench.report.comparisons import (Question, comparison_rows, comparisons_markdown, estimate,
                                      primary_method, questions)
from vaebench.report.seeds import combine
from vaebench.report.stats import compare, homogeneity, pooled_sd

T2 = 4.302653  # t(0.975, 2 df)


def _cell(model: str, zdim: int, iwae: list[float], elbo_gap: float = 5.0, marginal: float | None = None) -> dict:
    runs = []
    for seed, v in enumerate(iwae):
        r = {"model": model, "zdim": zdim, "n_images": 100, "k": 50, "iwae_nll": v, "neg_elbo": v + elbo_gap}
        if marginal is not None:
            r["iwae_nll_marginal"] = v + marginal
        runs.append(r)
    return combine(runs, list(range(len(iwae))))


@pytest.fixture
def params():
    return params_from_dict({"grid": {"models": ["vae", "cvae"], "zdims": [2, 25, 35]},
                             "data": {"train_subset": 1000, "test_subset": 100}, "train": {"heldout": 100},
                             "variants": {"defs": {"beta4": {"beta": 4.0}, "cat10": {"latent": "categorical",
                                                                                      "classes": 10}},
                                          "runs": ["beta4-25", "cat10-2"]}})


@pytest.fixture
def cells():
    # the VAE's seeds spread by 1 nat; the CVAE's likewise; so a pooled sd over a family is near 1
    return [_cell("vae", 2, [150.0, 151.0, 152.0]), _cell("vae", 25, [100.0, 101.0, 102.0]),
            _cell("vae", 35, [99.0, 100.5, 101.0]),
            _cell("cvae", 2, [120.0, 121.0, 122.0], marginal=10.0), _cell("cvae", 25, [90.0, 91.0, 92.0], marginal=9.0),
            _cell("cvae", 35, [89.0, 90.0, 91.5], marginal=8.0)]


@pytest.fixture
def variants():
    # beta = 4 is worse than the VAE at z = 25 by exactly 2 nats seed by seed: pairing removes the seeds' spread
    return [_cell("beta4", 25, [102.0, 103.0, 104.0]), _cell("cat10", 2, [170.0, 171.0, 172.0])]


def test_every_question_the_cells_can_answer_is_asked(params, cells, variants) -> None:
    asked = {(q.kind, q.a, q.b, q.metric) for q in questions(params, cells, variants)}
    assert ("variant vs VAE", "beta4 z=25", "VAE z=25", "iwae_nll") in asked
    assert ("variant vs VAE", "beta4 z=25", "VAE z=25", "neg_elbo") in asked
    assert not any(a.startswith("cat10") for _, a, _, _ in asked)  # a categorical N is no Gaussian z
    assert {("CVAE vs VAE", f"CVAE z={z}", f"VAE z={z}", "-log p(x) (IWAE)") for z in (2, 25, 35)} <= asked
    assert {("z vs smaller z", f"{m} z={b}", f"{m} z={a}", "iwae_nll")
            for m in ("VAE", "CVAE") for a, b in ((2, 25), (25, 35))} <= asked
    assert {("ours vs thesis", "VAE z=2", "thesis VAE z=2", "neg_elbo"), ("ours vs thesis", "VAE z=25", "thesis VAE z=25",
            "neg_elbo"), ("ours vs thesis", "CVAE z=35", "thesis CVAE z=35", "neg_elbo")} <= asked
    assert len(asked) == 2 + 6 + 4 + 3


def test_a_costlier_objective_is_compared_with_a_vae_trained_as_long(cells) -> None:
    """The IWAE objective against the VAE given its training time (a variant whose only piece is `epochs`): one
    row, seed by seed, beside the two `variant vs VAE` rows each; no such row for a VAE that changes anything
    else, an objective variant that changes more than its objective, nor at another latent size."""
    p = params_from_dict({"grid": {"models": ["vae", "cvae"], "zdims": [2, 25, 35]},
                          "data": {"train_subset": 1000, "test_subset": 100}, "train": {"heldout": 100},
                          "variants": {"defs": {"iwae5": {"objective": "iwae"}, "long": {"epochs": 120},
                                                "longb": {"epochs": 120, "beta": 2.0},
                                                "iwaeb": {"objective": "iwae", "free_bits": 0.0, "noise": 0.1}},
                                       "runs": ["iwae5-25", "long-25", "long-35", "longb-25", "iwaeb-25"]}})
    variants = [_cell("iwae5", 25, [97.0, 98.1, 98.9]), _cell("long", 25, [98.0, 99.0, 100.0]),
                _cell("long", 35, [90.0, 90.0, 90.0]), _cell("longb", 25, [90.0, 90.0, 90.0]),
                _cell("iwaeb", 25, [90.0, 90.0, 90.0])]
    rows, _, _ = comparison_rows(p, cells, variants)
    cost = [r for r in rows if r["kind"] == "objective vs longer VAE"]
    assert [(r["a"], r["b"], r["metric"]) for r in cost] == [("iwae5 z=25", "long z=25", "iwae_nll")]
    # d = (-1, -0.9, -1.1): mean -1, sd 0.1, paired t with 2 df
    half = T2 * 0.1 / math.sqrt(3)
    assert cost[0]["method"] == "paired by seed" and cost[0]["diff"] == pytest.approx(-1.0)
    assert (cost[0]["lo"], cost[0]["hi"]) == (pytest.approx(-1.0 - half, abs=1e-4), pytest.approx(-1.0 + half, abs=1e-4))
    assert cost[0]["verdict"] == "iwae5 z=25 lower by 1.00 (resolved at n = 3)"
    assert {(r["a"], r["metric"]) for r in rows if r["kind"] == "variant vs VAE" and r["a"] == "long z=25"} == {
        ("long z=25", "iwae_nll"), ("long z=25", "neg_elbo")}


def test_pairing_by_seed_resolves_a_constant_difference_and_its_gain_is_measured(params, cells, variants) -> None:
    rows, checks, methods = comparison_rows(params, cells, variants)
    method, widths = methods["variant vs VAE"]
    assert method == "paired" and widths["paired"] == 0.0 < widths["welch"]  # the gain over Welch, printed
    row = next(r for r in rows if r["kind"] == "variant vs VAE" and r["metric"] == "iwae_nll")
    assert (row["diff"], row["lo"], row["hi"]) == (2.0, 2.0, 2.0)
    assert row["p_improve"] == 0.0 and "resolved" in row["verdict"] and "not resolved" not in row["verdict"]


def test_the_cvae_against_the_vae_compares_marginal_likelihoods_by_hand(params, cells, variants) -> None:
    rows, checks, methods = comparison_rows(params, cells, variants)
    row = next(r for r in rows if r["kind"] == "CVAE vs VAE" and r["a"] == "CVAE z=25" and r["metric"].startswith("-log"))
    # CVAE -log p(x) = 90+9, 91+9, 92+9 = mean 100; VAE 100, 101, 102 = mean 101: diff -1.0
    assert row["mean_a"] == 100.0 and row["mean_b"] == 101.0 and row["diff"] == -1.0
    method = methods["CVAE vs VAE"][0]
    # seed by seed the CVAE is better by exactly 1 (both spread 0, 1, 2 over the seeds): paired, [-1, -1];
    # unpaired (both sides sd 1, n 3: se sqrt(2/3), Welch df 4), the interval includes 0
    assert method == "paired"  # the rule: both sides ran seeds 0, 1, 2
    assert (row["lo"], row["hi"], row["method"]) == (-1.0, -1.0, "paired by seed")
    assert row["verdict"].startswith("CVAE z=25 lower by 1.00") and row["p_improve"] == 1.0
    c = compare([99.0, 100.0, 101.0], [100.0, 101.0, 102.0], "a", "b")  # the same row unpaired: not resolved
    half = 2.776445 * math.sqrt(2 / 3)
    assert (c.lo, c.hi) == (pytest.approx(-1 - half, abs=1e-5), pytest.approx(-1 + half, abs=1e-5)) and c.lo < 0 < c.hi


def test_a_thesis_number_is_compared_with_the_one_sample_interval_of_our_mean(params, cells, variants) -> None:
    rows, _, methods = comparison_rows(params, cells, variants)
    row = next(r for r in rows if r["kind"] == "ours vs thesis" and r["a"] == "VAE z=25")
    # our -ELBO 105, 106, 107 (IWAE + 5): mean 106, sd 1; the thesis's 102
    assert row["mean_a"] == 106.0 and row["mean_b"] == 102.0 and row["diff"] == 4.0 and row["n_b"] is None
    assert methods["ours vs thesis"][0] == "welch" and row["method"] == "one-sample t"
    half = T2 * 1.0 / math.sqrt(3)
    assert (row["lo"], row["hi"]) == (pytest.approx(4 - half, abs=1e-4), pytest.approx(4 + half, abs=1e-4))
    assert row["lo"] > 0 and "resolved" in row["verdict"]


def test_a_family_with_one_wild_cell_is_not_pooled(params, variants) -> None:
    wild = [_cell("vae", 2, [150.0, 151.0, 152.0]), _cell("vae", 25, [100.0, 100.1, 100.2]),
            _cell("vae", 35, [90.0, 100.0, 110.0]), _cell("cvae", 2, [120.0, 121.0, 122.0], marginal=10.0),
            _cell("cvae", 25, [90.0, 91.0, 92.0], marginal=9.0), _cell("cvae", 35, [89.0, 90.0, 91.5], marginal=8.0)]
    rows, checks, methods = comparison_rows(params, wild, variants)
    check = checks[(("vae",), "iwae_nll")][0]
    assert not check.passed and check.sd_ratio == pytest.approx(100.0)
    vae_rows = [r for r in rows if r["kind"] == "z vs smaller z" and r["a"].startswith("VAE")]
    assert vae_rows and all(r["pooled_lo"] is None and r["method"] == "paired by seed" for r in vae_rows)
    cvae_rows = [r for r in rows if r["kind"] == "z vs smaller z" and r["a"].startswith("CVAE")]
    assert cvae_rows and all(r["pooled_lo"] is not None for r in cvae_rows)  # the CVAE family passes: printed
    md = comparisons_markdown(rows, checks, methods, 3)
    assert "| VAE | iwae_nll |" in md and "| no |" in md


# --- the rule's coverage where pooling would fail -------------------------------------------------

def _family_coverage(reps: int, method_of) -> float:
    """8 cells of a family, 3 shared seeds, true sds spread 0.5 ... 2 (4x; Bartlett at n = 3 rarely sees it),
    seeds uncorrelated; the row that compares the two most variable cells (true difference -0.3)."""
    rng = np.random.default_rng(7)
    sds, means = np.linspace(0.5, 2.0, 8), np.arange(8) * 0.3
    hits = 0
    for _ in range(reps):
        groups = [tuple(m + sd * rng.normal(0.0, 1.0, 3)) for m, sd in zip(means, sds)]
        checks = {(("vae",), "iwae_nll"): (homogeneity(groups), pooled_sd(groups))}
        q = Question("z vs smaller z", "a", "b", "iwae_nll", groups[6], groups[7], (0, 1, 2), (0, 1, 2), ("vae",))
        c = estimate(q, method_of(q, checks), checks)
        hits += c.lo <= means[6] - means[7] <= c.hi
    return hits / reps


def _narrowest(q, checks) -> str:
    """The rule before 2026-12-06, for a kind of one row: whichever valid method gives the narrowest interval."""
    est = {m: estimate(q, m, checks) for m in ("welch", "pooled", "paired")}
    return min((m for m, e in est.items() if e is not None), key=lambda m: est[m].hi - est[m].lo)


def test_the_fixed_rule_covers_where_a_pooled_sd_passed_by_bartlett_does_not() -> None:
    """The rule (paired by seed here) covers 93-97 % (0.956); pooling wherever Bartlett's test passes, which the
    issue suggested, covers ~0.88 for this row, and taking the narrowest valid method ~0.85: the reasons pooled
    intervals are printed but not used, and no method is chosen on the data (the figures comparisons.py cites)."""
    rule = _family_coverage(2000, lambda q, checks: primary_method(q))
    pooled = _family_coverage(1000, lambda q, checks: "pooled" if checks[(("vae",), "iwae_nll")][0].passed else "welch")
    narrowest = _family_coverage(1000, _narrowest)
    print(f"coverage: fixed rule {rule:.3f}, pooled where Bartlett passes {pooled:.3f}, narrowest {narrowest:.3f}")
    assert 0.93 <= rule <= 0.97 and pooled < 0.91 and narrowest < 0.91, (rule, pooled, narrowest)
