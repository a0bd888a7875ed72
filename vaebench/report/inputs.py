"""The report's inputs: each run's metrics file and figures, checked before the report writes anything.

A missing, unreadable, incomplete or stale input is a ReportError that names the file and the
`dvc repro` stage that makes it, so that the report never mixes numbers of different test sets or
writes half its products.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from vaebench import io as vio
from vaebench.config import Params, run_name
from vaebench.run.data import SHAPES
from vaebench.errors import ReportError

REQUIRED_KEYS = ("model", "zdim", "n_images", "k", "test_elbo", "test_elbo_se", "neg_elbo", "iwae_nll",
                 "iwae_nll_se", "kl", "kl_per_dim", "activity_per_dim", "active_units")
CVAE_KEYS = ("k_marginal", "iwae_nll_marginal", "iwae_nll_marginal_se")
QUAD_KEYS = ("quad_nll", "quad_nll_se", "quad_error_bound", "quad_mean_error", "iwae_gap_to_quad")
ENUMERATION_KEYS = ("exact_nll", "exact_nll_se", "exact_states", "iwae_gap_to_exact")
RESTORE_KEYS = ("restore_noise", "restore_nll", "restore_nll_se", "restore_nll_clean", "restore_nll_clean_se")
# numbers that come together: a file holding the first key of a group and not the others is stale
# (e.g. from before quad_mean_error was recorded), and its table cell would be half empty
GROUPS = {"quad_nll": QUAD_KEYS, "exact_nll": ENUMERATION_KEYS, "restore_nll": RESTORE_KEYS}


# keys renamed on 2026-12-06, when training seeds became a grid axis: the evaluation-seed spread is not the
# training-seed sd the report now prints beside every number. Files written before (the literature runs') are
# read under the new names.
RENAMED = {"iwae_nll_seed_sd": "iwae_nll_eval_sd", "seed_spread_seeds": "eval_spread_seeds",
           "seed_spread_images": "eval_spread_images"}


def read_metrics(path: Path, keys: Sequence[str], what: str, hint: str) -> dict[str, Any]:
    """A stage's metrics JSON holding `keys`; a missing, unreadable or incomplete file is a ReportError ending in `hint`."""
    if not path.exists():
        raise ReportError(f"{path}: missing {what}; {hint}")
    try:
        metrics = vio.read_json(path)
    except (OSError, ValueError) as e:
        raise ReportError(f"{path}: unreadable ({e}); {hint}") from None
    if not isinstance(metrics, dict):
        raise ReportError(f"{path}: not a run's metrics (a JSON object); {hint}")
    metrics = {RENAMED.get(k, k): v for k, v in metrics.items()}
    missing = [k for k in keys if k not in metrics]
    if missing:
        raise ReportError(f"{path}: no key {missing[0]!r}; {hint}")
    return metrics


def n_test_images(params: Params) -> int:
    """The number of test images every run must have been scored on (test_subset = 0: all of them)."""
    return params.data.test_subset or SHAPES["test_labels"][0]


def load_run(path: Path, model: str, zdim: int, n_images: int, stage: str = "evaluate",
             keys: Sequence[str] = (), seed: int | None = None) -> dict[str, Any]:
    """One run's metrics JSON, checked to be this run's, complete (REQUIRED_KEYS and `keys`), scored on the current test set.

    `stage` is the dvc.yaml stage that writes it (`evaluate`, or `evaluate-variant` for a variant run); `seed`
    the training seed of its name (None for a pipeline whose runs are named without one).
    """
    hint = f"run `dvc repro {stage}@{run_name(model, zdim, seed)}`"
    run = read_metrics(path, REQUIRED_KEYS + (CVAE_KEYS if model == "cvae" else ()) + tuple(keys), "run metrics", hint)
    for lead, group in GROUPS.items():
        if lead in run:
            read_metrics(path, group, "run metrics", hint)
    if (run["model"], run["zdim"]) != (model, zdim):
        raise ReportError(f"{path}: holds {run['model']} z={run['zdim']}, not {model} z={zdim}; {hint}")
    if seed is not None and run.get("train_seed", seed) != seed:
        raise ReportError(f"{path}: holds training seed {run['train_seed']}, not {seed}; {hint}")
    if run["n_images"] != n_images:
        # a stale file: scored on another test subset, so not comparable with the others
        raise ReportError(f"{path}: scored on {run['n_images']} test images, not the "
                          f"{n_images} of data.test_subset; {hint}")
    return run


def require_figures(figures_dir: Path, name: str, files: Sequence[str], stage: str = "figures") -> list[Path]:
    """The per-run figures `files` of run `name` in figures_dir/<name>/, each checked to exist."""
    paths = [Path(figures_dir) / name / f for f in files]
    for path in paths:
        if not path.exists():
            raise ReportError(f"{path}: missing; run `dvc repro {stage}@{name}`")
    return paths
