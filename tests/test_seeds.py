"""report/seeds.py: a cell's seeds combined into means with their training-seed spread, checked by hand."""

from __future__ import annotations

import math

import pytest

from vaebench.errors import ReportError
from vaebench.report.seeds import combine, spread_keys


def _run(seed: int, iwae: float, **extra) -> dict:
    return {"model": "vae", "zdim": 5, "n_images": 100, "k": 50, "train_seed": seed, "weights_sha256": f"w{seed}",
            "iwae_nll": iwae, "iwae_nll_se": 0.2 + seed / 10, "neg_elbo": iwae + 4.0, "active_units": 4 + seed % 2,
            "kl_per_dim": [1.0 + seed, 2.0], **extra}


def test_a_cell_is_the_mean_of_its_seeds_with_the_training_sd_n_and_t_interval() -> None:
    cell = combine([_run(0, 90.0), _run(1, 91.0), _run(2, 92.5)], [0, 1, 2])
    mean = (90.0 + 91.0 + 92.5) / 3  # 91.1666...
    sd = math.sqrt(((90.0 - mean) ** 2 + (91.0 - mean) ** 2 + (92.5 - mean) ** 2) / 2)  # n - 1 = 2
    half = 4.302653 * sd / math.sqrt(3)  # t(0.975, 2 df)
    assert cell["iwae_nll"] == pytest.approx(mean, abs=1e-12)
    assert cell["iwae_nll_train_sd"] == pytest.approx(sd, abs=1e-12)
    assert cell["iwae_nll_n"] == 3
    assert (cell["iwae_nll_lo"], cell["iwae_nll_hi"]) == (pytest.approx(mean - half, abs=1e-5),
                                                          pytest.approx(mean + half, abs=1e-5))
    assert cell["neg_elbo"] == pytest.approx(mean + 4.0, abs=1e-12)
    # an s.e. over images is averaged (the typical s.e. of one run), and gets no spread of its own
    assert cell["iwae_nll_se"] == pytest.approx((0.2 + 0.3 + 0.4) / 3, abs=1e-12)
    assert "iwae_nll_se_train_sd" not in cell
    # per unit, rank by rank: seed 0 [1, 2] -> [2, 1], seed 1 [2, 2], seed 2 [3, 2]: means [7/3, 5/3]
    assert cell["active_units"] == pytest.approx(13 / 3) and cell["kl_per_dim"] == pytest.approx([7 / 3, 5 / 3])
    assert (cell["model"], cell["zdim"], cell["k"], cell["n_seeds"], cell["seeds"]) == ("vae", 5, 50, 3, [0, 1, 2])
    # the runs' own identity stays with the runs, not in the cell
    assert "weights_sha256" not in cell and "train_seed" not in cell
    assert [r["weights_sha256"] for r in cell["runs"]] == ["w0", "w1", "w2"]


def test_a_number_only_some_seeds_have_is_combined_over_those_with_its_n() -> None:
    cell = combine([_run(0, 90.0, iwae_nll_exact_k=89.0), _run(1, 91.0), _run(2, 92.0)], [0, 1, 2])
    assert cell["iwae_nll_exact_k"] == 89.0 and cell["iwae_nll_exact_k_n"] == 1
    assert math.isnan(cell["iwae_nll_exact_k_train_sd"])
    assert cell["iwae_nll_n"] == 3


def test_one_seed_is_its_run_with_no_interval() -> None:
    cell = combine([_run(0, 90.0)], [0])
    assert cell["iwae_nll"] == 90.0 and cell["iwae_nll_n"] == 1 and math.isnan(cell["iwae_nll_train_sd"])


@pytest.mark.parametrize("key, other", [("k", 60), ("n_images", 99), ("model", "cvae")])
def test_seeds_that_disagree_on_a_setting_are_refused(key, other) -> None:
    with pytest.raises(ReportError, match=f"^{key}: the seeds of vae z=5 disagree"):
        combine([_run(0, 90.0), {**_run(1, 91.0), key: other}], [0, 1])


def test_no_seed_is_refused() -> None:
    with pytest.raises(ReportError, match="at least one training seed"):
        combine([], [])


def test_the_summary_keys_gain_the_spread_of_the_aggregated_metrics_only() -> None:
    keys = spread_keys(("iwae_nll", "iwae_nll_se", "kl"))
    assert keys == ("iwae_nll", "iwae_nll_se", "kl", "iwae_nll_train_sd", "iwae_nll_n", "kl_train_sd", "kl_n")


def test_a_number_one_seed_lacks_is_refused_unless_it_is_the_exact_stages() -> None:
    with pytest.raises(ReportError, match=r"^quad_nll: only the seeds \[0, 2\] of vae z=5 have it"):
        combine([_run(0, 90.0, quad_nll=89.0), _run(1, 91.0), _run(2, 92.0, quad_nll=91.0)], [0, 1, 2])


def test_a_non_finite_number_is_a_report_error_naming_it() -> None:
    with pytest.raises(ReportError, match=r"^iwae_nll of vae z=5: not a finite number: values\[1\] = nan"):
        combine([_run(0, 90.0), _run(1, float("nan"))], [0, 1])
