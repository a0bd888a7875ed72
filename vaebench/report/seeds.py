"""A cell of the benchmark from its training seeds: every number the mean over seeds, with the seeds' spread beside it.

A cell is one configuration (model or variant, latent size) trained once per seed of grid.seeds. The report
prints cells, not runs: each number is the mean over the cell's seeds, and for the headline metrics
(AGGREGATED) the training-seed sd, n, and the 95 % t-interval of the mean (report/stats.py says why t).
The cell keeps each metric under the runs' own name (`iwae_nll` is the seed mean), so that every table,
figure and summary key reads a cell as it read a single run; the spread sits beside it under
`<metric>_train_sd`, `<metric>_n`, `<metric>_lo`, `<metric>_hi`, and the runs themselves under `seeds`.

What is averaged how: a number is averaged over seeds (every seed must have it, but the exact stage's, which
exact.seeds runs for some seeds only: those are combined over the seeds that have them, with their n); a standard error over test images (`*_se`) is the
seeds' mean, the typical s.e. of one run (the test images are shared by every seed, so it is not the
uncertainty of the mean over seeds: the training sd is); a list per latent unit (kl_per_dim, activity_per_dim) rank by rank, each seed's sorted largest first;
counts and settings (k, n_images, the latent's width) must agree across seeds.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from vaebench.errors import ReportError
from vaebench.report.stats import Aggregate, aggregate

# the metrics whose training-seed spread the report prints: the likelihoods and bounds a reader compares,
# and what explains them (the KL, the active units, rate and distortion)
AGGREGATED = ("neg_elbo", "test_elbo", "iwae_nll", "iwae_nll_marginal", "quad_nll", "iwae_gap_to_quad", "kl",
              "active_units", "rate", "distortion", "exact_nll", "iwae_gap_to_exact", "restore_nll",
              "restore_nll_clean", "iwae_nll_exact_k", "iwae_gap_to_quad_exact_k")
# per latent unit: the seeds' units do not correspond (each run picks its own active units), so each seed's list
# is sorted, largest first, and the cell holds the mean of the largest, the second largest, ... (the active-units
# figure's profile), never the mean of unrelated units
PER_UNIT = ("kl_per_dim", "activity_per_dim")
# the run's own identity: kept in `runs`, not combined
PER_RUN = ("train_seed", "weights_sha256")
# the exact stage's numbers, which exact.seeds computes for some seeds only: combined over those that have them
SOME_SEEDS = ("exact_k", "iwae_nll_exact_k", "iwae_nll_exact_k_se", "iwae_nll_exact_k_eval_sd",
              "iwae_gap_to_quad_exact_k")
# identical for every seed of a cell by construction: a difference means the files are of different settings
SAME = ("model", "zdim", "n_images", "k", "k_marginal", "exact_k", "exact_states", "restore_noise",
        "eval_spread_seeds", "eval_spread_images")


def combine(runs: Sequence[Mapping[str, Any]], seeds: Sequence[int]) -> dict[str, Any]:
    """One cell from the metrics of its seeds' runs (in the order of `seeds`); see the module docstring."""
    if not runs:
        raise ReportError("a cell needs the metrics of at least one training seed")
    cell: dict[str, Any] = {"seeds": list(seeds), "runs": [dict(r) for r in runs], "n_seeds": len(runs)}
    keys = list(dict.fromkeys(k for r in runs for k in r if k not in PER_RUN))
    for key in keys:
        values = [r[key] for r in runs if key in r]
        if len(values) < len(runs) and key not in SOME_SEEDS:  # a stale file of one seed: never averaged silently
            seeds_with = [seed for seed, r in zip(seeds, runs) if key in r]
            raise ReportError(f"{key}: only the seeds {seeds_with} of {runs[0]['model']} z={runs[0]['zdim']} have it; "
                              "their metrics files come from different code or settings: re-run the stale ones")
        if key in SAME or isinstance(values[0], str) or values[0] is None:
            if any(v != values[0] for v in values):
                raise ReportError(f"{key}: the seeds of {runs[0]['model']} z={runs[0]['zdim']} disagree ({values}); "
                                  "their metrics files come from different settings: re-run the stale ones")
            cell[key] = values[0]
        elif isinstance(values[0], list):
            if key in PER_UNIT:  # unit u of one seed is not unit u of another: average the ranks instead
                values = [sorted(v, reverse=True) for v in values]
            cell[key] = [math.fsum(col) / len(col) for col in zip(*values)]
        elif isinstance(values[0], (int, float)) and not isinstance(values[0], bool):
            cell[key] = math.fsum(values) / len(values)
            if key in AGGREGATED:
                try:
                    a = aggregate(values)
                except ValueError as e:  # a non-finite number in a metrics file
                    raise ReportError(f"{key} of {runs[0]['model']} z={runs[0]['zdim']}: {e}") from None
                cell.update(spread_of(a, key))
    return cell


SPREAD_FIELDS = ("train_sd", "n", "lo", "hi")  # what a cell adds beside each AGGREGATED key: `iwae_nll_train_sd`


def spread_columns(keys: Sequence[str]) -> tuple[str, ...]:
    """The spread columns of `keys`, key by key: `neg_elbo_train_sd`, `neg_elbo_n`, `neg_elbo_lo`, ..."""
    return tuple(f"{k}_{s}" for k in keys for s in SPREAD_FIELDS)


def spread_of(a: Aggregate, key: str) -> dict[str, float | int]:
    """`key`'s spread columns from its aggregate over the seeds."""
    return dict(zip(spread_columns([key]), (a.sd, a.n, a.lo, a.hi)))


def spread_keys(keys: Sequence[str]) -> tuple[str, ...]:
    """`keys` followed by the training-seed sd and n of each aggregated one: what summary.json records."""
    return tuple(keys) + tuple(f"{k}_{s}" for k in keys if k in AGGREGATED for s in ("train_sd", "n"))
