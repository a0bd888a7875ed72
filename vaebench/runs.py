"""One run of the grid, (model, zdim): where its files live, whether its checkpoint is current,
training it when needed, and scoring it. The CLI and the DVC stages both go through here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from vaebench.checkpoint import CheckpointError, load_checkpoint
from vaebench.config import Params, check_model, check_zdim
from vaebench.data import Mnist, binarize_test, load_mnist
from vaebench.evaluate import evaluate_model
from vaebench.fingerprint import expected_sidecar, refuse_to_replace
from vaebench.models import VAE
from vaebench.numerics import require_strict_mkl
from vaebench.quadrature import QUAD_THREADS, quadrature
from vaebench.train import fit


def load_data(params: Params, data_path: str | Path) -> Mnist:
    """The verified data with the configured subsets; a broken file is a DataError naming it."""
    return load_mnist(data_path, params.data.train_subset, params.data.test_subset)


def load_current(model: str, zdim: int, params: Params, data: Mnist, ckpt: str | Path) -> tuple[VAE, dict]:
    """The checkpoint at `ckpt` if it was trained for exactly this configuration; CheckpointError otherwise."""
    check_model(model)
    check_zdim(zdim)
    return load_checkpoint(ckpt, expect=expected_sidecar(model, zdim, params, data))


def ensure_trained(
    model: str, zdim: int, params: Params, data: Mnist, ckpt: str | Path,
    log: Callable[[str], None] = print, progress: bool = True,
) -> tuple[VAE, dict]:
    """Load the current checkpoint, or train it first through the pipeline's own fit().

    Only an empty folder, or a damaged checkpoint of this configuration, is trained into: a
    checkpoint of another configuration is refused (refuse_to_replace), never overwritten.
    """
    try:
        return load_current(model, zdim, params, data, ckpt)
    except CheckpointError as e:
        refuse_to_replace(ckpt, model, zdim, params, data,
                          f"pass another --ckpt, or retrain it on purpose: "
                          f"vaebench train --model {model} --zdim {zdim} --out {ckpt} --overwrite")
        log(f"no current checkpoint ({e}); training {model} z={zdim} first")
    fit(model, zdim, params, None, ckpt, log=log, progress=progress, data=data)
    return load_current(model, zdim, params, data, ckpt)


def score(model: VAE, params: Params, data: Mnist, k: int | None = None, progress: bool = True) -> dict[str, Any]:
    """Test metrics of a trained model on the shared binarised test set; `k` overrides eval.k."""
    require_strict_mkl()
    ev = params.eval if k is None else replace(params.eval, k=k)
    x = binarize_test(data.test_x, params.data.binarize, params.data.test_seed)  # (N, 784), same bits for all
    # no timings in here: metrics must be byte-identical across identical runs
    metrics = evaluate_model(model, x, data.test_y, ev, show_progress=progress)
    if model.zdim <= 2 and params.eval.quad_n > 0:
        y = data.test_y if model.conditional else None
        q = quadrature(model, x, y, params.eval.quad_half_width, params.eval.quad_n)
        metrics["quad_nll"] = -q.log_px.mean().item()
        metrics["quad_threads"] = QUAD_THREADS  # the thread count it always runs at (see quadrature.py)
        metrics["quad_nll_se"] = q.log_px.std().item() / len(q.log_px) ** 0.5
        # integration error estimates, not bounds: the worst image's change on the sub-grids, and the
        # mean's change on each (bench/quad_convergence.py: a grid twice as fine moved 716 of 10,000
        # VAE images by more than their own estimate; the mean moved 20x less than estimated)
        metrics["quad_error_bound"] = q.error_bound()
        metrics["quad_refine_delta"] = q.refine_delta()
        metrics["quad_widen_delta"] = q.widen_delta()
        metrics["quad_mean_error"] = q.mean_error()
        metrics["iwae_gap_to_quad"] = metrics["iwae_nll"] - metrics["quad_nll"]
    return metrics
