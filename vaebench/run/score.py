"""Scoring one run, (model, zdim): whether its checkpoint is current, and its test metrics.

The `evaluate` stages and `vaebench eval` both go through here; nothing here trains (so the scoring stages
do not depend on the training loop: `vaebench eval` trains a missing model through run/fit.py itself).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from vaebench.run.checkpoint import load_checkpoint
import torch

from vaebench.core import bounds
from vaebench.core.variants import PLAIN, Variant
from vaebench.config import Params, check_zdim
from vaebench.resources import require_iwae_fits
from vaebench.run.data import Mnist, binarize_test, flip_bits, load_mnist
from vaebench.core.batching import DECODE_ROWS, code_all, decode_rows
from vaebench.core.enumeration import enumerate_log_px, n_states
from vaebench.streams import Draws, Stream
from vaebench.core.estimators import evaluate_model, planned_samples
from vaebench.run.fingerprint import expected_sidecar
from vaebench.core.models import VAE
from vaebench.numerics import require_strict_mkl
from vaebench.core.quadrature import QUAD_THREADS, quadrature


def load_data(params: Params, data_path: str | Path) -> Mnist:
    """The verified data with the configured subsets; a broken file is a DataError naming it."""
    return load_mnist(data_path, params.data.train_subset, params.data.test_subset)


def load_current(model: str, zdim: int, params: Params, data: Mnist, ckpt: str | Path) -> tuple[VAE, dict]:
    """The checkpoint at `ckpt` if it was trained for exactly this configuration; CheckpointError otherwise."""
    params.variant(model)
    check_zdim(zdim)
    return load_checkpoint(ckpt, expect=expected_sidecar(model, zdim, params, data))


class Heartbeat:
    """A line every `every` seconds for scoring without a progress bar (a DVC stage's log, `--quiet`):
    the importance samples decoded so far, of how many, and roughly how long the rest takes."""

    def __init__(self, total: int, log: Callable[[str], None], every: float = 60.0) -> None:
        self.total, self.log, self.every = total, log, every
        self.done, self.t0 = 0, time.perf_counter()
        self.last = self.t0

    def __call__(self, n: int) -> None:
        self.done += n
        now = time.perf_counter()
        if now - self.last >= self.every and self.done < self.total:
            self.last = now
            left = (now - self.t0) / self.done * (self.total - self.done)
            self.log(f"IWAE: {self.done:,} of {self.total:,} samples decoded ({self.done / self.total:.0%}), "
                     f"about {left / 60:.0f} min left")


def score(model: VAE, params: Params, data: Mnist, k: int | None = None, progress: bool = True,
          variant: Variant = PLAIN, exact: bool = True, log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Test metrics of a trained model on the shared binarised test set; `k` overrides eval.k.

    `log`: where a line goes every minute when there is no progress bar. `exact`: also the exact log p(x) where the latent space allows it (quadrature for 1-2 Gaussian
    dimensions, enumeration for small categorical spaces); the `exact` stage, which re-scores a model
    with more samples only, turns it off. A variant adds what is its own: a denoising VAE's restoration
    of corrupted test images.
    """
    require_strict_mkl()
    ev = params.eval if k is None else replace(params.eval, k=k)
    x = binarize_test(data.test_x, params.data.binarize, params.data.test_seed)  # (N, 784), same bits for all
    # no timings in here: metrics must be byte-identical across identical runs
    require_iwae_fits("eval.k" if k is None else "--k", ev.k, ev.chunk, model.width)
    beat = None if progress or log is None else Heartbeat(planned_samples(len(x), ev, model.conditional), log)
    per_image: dict[str, torch.Tensor] = {}
    metrics = evaluate_model(model, x, data.test_y, ev, show_progress=progress, progress=beat, per_image=per_image)
    if not variant.is_plain:
        # rate and distortion (Alemi et al. 2018): the mean KL and -E_q log p(x|z), so -ELBO = rate + distortion
        metrics["rate"] = metrics["kl"]
        metrics["distortion"] = metrics["neg_elbo"] - metrics["kl"]
    if variant.noise > 0:
        metrics.update(restoration(model, x, variant.noise, params.eval.seed))
    if exact and model.categorical and 0 < n_states(model.zdim, model.classes) <= params.eval.enum_max:
        log_px = enumerate_log_px(model, x)
        metrics["exact_nll"] = -log_px.mean().item()
        metrics["exact_nll_se"] = log_px.std().item() / len(log_px) ** 0.5
        metrics["exact_states"] = n_states(model.zdim, model.classes)
        # the gap image by image: its standard error is that of the paired differences, far below either
        # NLL's own (which spreads over images), so "the bound never beats the exact value" can be read off
        gap = log_px - per_image["iwae"].double()  # (N,) >= 0 in expectation, by Jensen
        metrics["iwae_gap_to_exact"] = gap.mean().item()
        metrics["iwae_gap_to_exact_se"] = gap.std().item() / len(gap) ** 0.5
    if exact and not model.categorical and model.zdim <= 2 and params.eval.quad_n > 0:
        y = data.test_y if model.conditional else None
        q = quadrature(model, x, y, params.eval.quad_half_width, params.eval.quad_n)
        metrics["quad_nll"] = -q.log_px.mean().item()
        metrics["quad_threads"] = QUAD_THREADS  # the thread count it always runs at (see quadrature.py)
        metrics["quad_nll_se"] = q.log_px.std().item() / len(q.log_px) ** 0.5
        # integration error estimates, not bounds: the worst image's change on the sub-grids, and the
        # mean's change on each (bench/quad_convergence.py: a grid twice as fine moved 716 of 10,000
        # VAE images by more than their own estimate; the mean moved 20x less than estimated)
        metrics["quad_error_bound"] = q.worst_image_error()
        metrics["quad_refine_delta"] = q.refine_delta()
        metrics["quad_widen_delta"] = q.widen_delta()
        metrics["quad_mean_error"] = q.mean_error()
        metrics["iwae_gap_to_quad"] = metrics["iwae_nll"] - metrics["quad_nll"]
    return metrics


@torch.no_grad()
def restoration(model: VAE, x: torch.Tensor, rate: float, seed: int) -> dict[str, Any]:
    """How well a denoising VAE restores corrupted test images: -log p(x | z = code of x~) of each clean
    image x given the code of its corruption x~ (q's mean; for categorical latents q's most probable state) (each bit flipped with probability `rate`, stream
    TEST_CORRUPT(eval.seed)), and the same from the clean image's own code, for scale. Nats per image."""
    noisy = flip_bits(x, rate, Draws(Stream.TEST_CORRUPT, seed))
    out = {"restore_noise": rate}
    for key, inp in (("restore_nll", noisy), ("restore_nll_clean", x)):
        code = code_all(model, inp, None)  # (N, width): q's mean, or its most probable categorical state
        ll = bounds.bernoulli_log_lik(decode_rows(model, code, None, DECODE_ROWS), x).double()  # (N,)
        out[key], out[f"{key}_se"] = -ll.mean().item(), ll.std().item() / len(ll) ** 0.5
    return out
