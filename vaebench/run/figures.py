"""The per-run figures, drawn from one checkpoint: prior samples, reconstructions, and for a 2-D
latent its test-set scatter and decoded manifold.

The `figures` stage runs this once per grid item, so that each figure depends on its own model
only: the report stage reads none of `models/`, and a checkpoint written there outside the grid
(an ad-hoc `vaebench eval`) leaves every stage up to date. Every PNG is byte-identical across runs.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from vaebench.run import drawing
from vaebench.run.drawing import save_figure
from vaebench.run.checkpoint import load_checkpoint
from vaebench.config import Params, run_name
from vaebench.run.data import binarize_test, flip_bits, load_mnist
from vaebench.streams import Draws, Stream
from vaebench.core.batching import encode_all
from vaebench.core.models import N_LABELS, VAE

SAMPLE_SEED = 0  # prior samples in the figures: the same draw on every run
RECON_GRID = (8, 8)  # the first 64 test digits and their reconstructions
MANIFOLD_N = 20  # 20 x 20 decoded grid points, as in Kingma & Welling 2014, Fig. 4
MANIFOLD_DIGITS = (2, 5, 8)  # a CVAE's manifold is one per label: show a few, not all ten


def _pixels(logits: torch.Tensor, *lead: int) -> np.ndarray:
    """Bernoulli means (sigmoid of the logits) as (*lead, 28, 28) float32 in [0, 1]."""
    return torch.sigmoid(logits).reshape(*lead, drawing.SIDE, drawing.SIDE).numpy().astype(np.float32)


@torch.no_grad()
def prior_samples(model: VAE, rows: int = 10, cols: int = 10) -> np.ndarray:
    """Decoded means of z ~ N(0, I), (rows, cols, 28, 28).

    For a CVAE, row r is digit r and each column shares one z across the rows, so a column
    shows one "style" written as every digit.
    """
    g = torch.Generator().manual_seed(SAMPLE_SEED)
    if model.categorical:  # uniform prior: each variable's class drawn uniformly, one-hot and flattened
        idx = torch.randint(model.classes, (rows * cols, model.zdim), generator=g)
        z = torch.nn.functional.one_hot(idx, model.classes).float().flatten(-2)  # (R C, N K)
        return _pixels(model.decode(z), rows, cols)
    if model.conditional:
        z = torch.randn((cols, model.zdim), generator=g).expand(N_LABELS, cols, model.zdim)  # (10, C, D)
        return _pixels(model.decode(z, torch.arange(N_LABELS)), N_LABELS, cols)  # (10,) labels serve (10, C, D)
    z = torch.randn((rows * cols, model.zdim), generator=g)  # (R C, D)
    return _pixels(model.decode(z), rows, cols)


@torch.no_grad()
def reconstructions(model: VAE, x: torch.Tensor, y: torch.Tensor, rows: int, cols: int,
                    ) -> tuple[np.ndarray, np.ndarray]:
    """The first rows*cols images x (N, 784) and their decoded means at z = q's mean, each (rows, cols, 28, 28).

    With fewer than rows*cols test images (a tiny test_subset), the grid shrinks to what there is.
    """
    cols = min(cols, len(x))
    rows = min(rows, len(x) // cols)
    n = rows * cols
    xb, yb = x[:n], (y[:n] if model.conditional else None)
    return xb.reshape(rows, cols, drawing.SIDE, drawing.SIDE).numpy(), _pixels(model.decode(code(model, xb, yb), yb), rows, cols)


def code(model: VAE, x: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
    """The latent a reconstruction decodes: q's mean (Gaussian), or its most probable one-hot state (categorical)."""
    if model.categorical:
        logits = model.encode_logits(x, y)  # (n, N, K)
        return torch.nn.functional.one_hot(logits.argmax(-1), model.classes).float().flatten(-2)  # (n, N K)
    return model.encode(x, y)[0]  # (n, D)


@torch.no_grad()
def restorations(model: VAE, x: torch.Tensor, rate: float, seed: int, n: int = 16) -> np.ndarray:
    """A denoising VAE at work on the first n test images: rows corrupted input, reconstruction, clean image,
    (3, n, 28, 28). The corruption is the evaluation's (TEST_CORRUPT(eval.seed)), so the figure shows the
    images its restore_nll scores."""
    n = min(n, len(x))
    noisy = flip_bits(x, rate, Draws(Stream.TEST_CORRUPT, seed))[:n]
    recon = _pixels(model.decode(code(model, noisy, None)), n)
    side = (n, drawing.SIDE, drawing.SIDE)
    return np.stack([noisy.reshape(side).numpy(), recon, x[:n].reshape(side).numpy()])


def manifold_z(n: int = MANIFOLD_N) -> torch.Tensor:
    """n prior quantiles 5% .. 95% of N(0, 1).

    Kingma & Welling 2014, Fig. 4: a regular grid on the unit square through the inverse Gaussian CDF.
    """
    return torch.special.ndtri(torch.linspace(0.05, 0.95, n, dtype=torch.float64)).float()


@torch.no_grad()
def manifold_images(model: VAE, q: torch.Tensor, digit: int | None) -> np.ndarray:
    """Decoded means over the grid q x q of a 2-D latent, (n, n, 28, 28); z2 grows upwards (row 0 is the largest)."""
    n = len(q)
    z2, z1 = torch.meshgrid(q.flip(0), q, indexing="ij")  # (n, n) each: rows z2 descending, columns z1 ascending
    z = torch.stack([z1, z2], -1).reshape(n * n, 2)
    y = None if digit is None else torch.full((n * n,), digit, dtype=torch.long)
    return _pixels(model.decode(z, y), n, n)


# ---------------------------------------------------------------- writing


def run_figures(model: VAE, label: str, name: str, x: torch.Tensor, y: torch.Tensor, plots_dir: Path,
                noise: float = 0.0, seed: int = 0) -> list[Path]:
    """The per-run figures: prior samples, reconstructions, and for a 2-D latent its scatter and manifold.

    `x` (N, 784) are the binarised test images and `y` (N,) their labels (used by a CVAE, and to colour the scatter).
    """
    z = model.zdim if not model.categorical else f"{model.zdim}x{model.classes}"
    # the prior prior_samples draws from: N(0, I), or uniform over the K^N one-hot states
    prior = f"z uniform over {model.classes}^{model.zdim} states" if model.categorical else "z ~ N(0, I)"
    if model.conditional:
        samples = drawing.digit_grid(
            prior_samples(model), f"{label} z={z}: samples p(x|z, y), {prior} shared along each column",
            row_labels=[str(d) for d in range(N_LABELS)], ylabel="digit y given to the decoder",
            xlabel="one prior draw of z per column")
    else:
        samples = drawing.digit_grid(prior_samples(model), f"{label} z={z}: samples p(x|z), {prior}")
    written = [save_figure(samples, plots_dir / f"samples_{name}.png")]
    originals, recons = reconstructions(model, x, y, *RECON_GRID)
    written.append(save_figure(drawing.reconstruction_pairs(originals, recons, f"{label} z={z}: reconstructions"),
                               plots_dir / f"reconstructions_{name}.png"))
    if noise > 0:
        rows = restorations(model, x, noise, seed)
        written.append(save_figure(
            drawing.digit_grid(rows, f"{label} z={z}: corrupted input ({noise:g} of bits flipped), its reconstruction, "
                                   "the clean image", row_labels=["corrupted", "restored", "clean"]),
            plots_dir / f"restorations_{name}.png"))
    if z == 2:
        mu, _ = encode_all(model, x, y if model.conditional else None)  # (N, 2)
        what = "q(z|x, y): the label is given, so z holds style and digits overlap" if model.conditional else "q(z|x)"
        written.append(save_figure(
            drawing.latent_scatter(mu.numpy(), y.numpy(), f"{label} z=2: test-set means of {what}"),
            plots_dir / f"latent_{name}.png"))
        q = manifold_z()
        digits = MANIFOLD_DIGITS if model.conditional else (None,)
        panels = {("all digits" if d is None else f"digit y = {d}"): manifold_images(model, q, d) for d in digits}
        title = f"{label} z=2: decoder means over a {len(q)}x{len(q)} grid of prior quantiles"
        written.append(save_figure(
            drawing.manifold(panels, q.numpy(), title),
            plots_dir / f"manifold_{name}.png"))
    return written


def draw_run(params: Params, model_name: str, zdim: int, ckpt: Path, data_path: Path, out_dir: Path) -> list[Path]:
    """The `figures` stage of one grid item: its checkpoint and the shared test bits in, its PNGs out."""
    model, _ = load_checkpoint(ckpt, expect={"model": model_name, "zdim": zdim})
    data = load_mnist(data_path, test_subset=params.data.test_subset)
    x = binarize_test(data.test_x, params.data.binarize, params.data.test_seed)  # the bits every model was scored on
    return run_figures(model, drawing.MODEL_LABELS.get(model_name, model_name), run_name(model_name, zdim), x,
                       data.test_y, Path(out_dir), params.variant(model_name).noise, params.eval.seed)
