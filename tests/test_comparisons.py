"""report/comparisons.py: the questions asked, the method chosen for each kind, and rows checked by hand."""

from __future__ import annotations

import math

import pytest

from vaebench.config import params_from_dict
from vaebench.report.comparisons import comparison_rows, comparisons_markdown, questions
from vaebench.report.seeds import combine
from vaebench.report.stats import compare

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


def test_pairing_by_seed_is_chosen_where_it_narrows_and_resolves_a_constant_difference(params, cells, variants) -> None:
    rows, checks, methods = comparison_rows(params, cells, variants)
    method, widths = methods["variant vs VAE"]
    assert method == "paired" and widths["paired"] == 0.0 < widths["welch"]
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
    assert method == "paired"  # the check of the kind: its rows' paired intervals are the narrowest
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
    if methods["ours vs thesis"][0] == "welch":
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
    assert all(r["method"] != "pooled" or "CVAE" in r["a"] for r in rows if r["kind"] == "z vs smaller z"
               and r["a"].startswith("VAE"))
    md = comparisons_markdown(rows, checks, methods, 3)
    assert "| VAE | iwae_nll |" in md and "| no |" in md
