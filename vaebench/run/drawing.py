"""Drawing one run's figures: digit mosaics, reconstructions, the latent scatter, the manifold; saving them.

Plain arrays in, a matplotlib Figure out (saving apart, in `save_figure`). Figures are built with the
object-oriented API (`matplotlib.figure.Figure`), never pyplot, so no global registry of open figures grows
while dozens are drawn, no display backend is needed (savefig renders with Agg), and nothing here holds state
between calls. Every figure has a fixed size in inches; at `DPI` that fixes its size in pixels (no tight
bounding boxes, whose size depends on the text). The report's own figures (report/plots.py) use the same
size and saving helpers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np
from matplotlib import colormaps
from matplotlib.colors import BoundaryNorm, ListedColormap
from matplotlib.figure import Figure

from vaebench import io as vio

DPI = 100  # pixels per inch of every saved figure: figsize (w, h) in inches -> (100 w, 100 h) pixels
SIDE = 28  # MNIST images are SIDE x SIDE pixels
MODEL_LABELS = MappingProxyType({"vae": "VAE", "cvae": "CVAE"})


def figure_of_size(width: float, height: float) -> Figure:
    # constrained layout keeps labels inside a figure of fixed size (unlike bbox_inches="tight")
    return Figure(figsize=(width, height), dpi=DPI, layout="constrained")


def mosaic(images: np.ndarray, pad: int = 1, fill: float = 0.5) -> np.ndarray:
    """(R, C, 28, 28) grey levels in [0, 1] -> one (R (28+pad) + pad, C (28+pad) + pad) image.

    Grey `fill` lines between the digits keep neighbouring strokes from merging.
    """
    r, c, h, w = images.shape
    out = np.full((r * (h + pad) + pad, c * (w + pad) + pad), fill, dtype=np.float32)
    for i in range(r):
        for j in range(c):
            top, left = pad + i * (h + pad), pad + j * (w + pad)
            out[top:top + h, left:left + w] = images[i, j]
    return out


def _cell_centres(n: int, pad: int = 1) -> np.ndarray:
    """Pixel coordinate of the centre of each of n mosaic cells along one axis."""
    return pad + np.arange(n) * (SIDE + pad) + (SIDE - 1) / 2


def _show_mosaic(ax: Any, images: np.ndarray) -> None:
    # black background, white strokes: how MNIST is usually shown; fixed [0, 1] range, no autoscaling
    ax.imshow(mosaic(images), cmap="gray", vmin=0.0, vmax=1.0)
    ax.set_xticks([])
    ax.set_yticks([])


def digit_grid(images: np.ndarray, title: str, row_labels: Sequence[str] | None = None,
               ylabel: str | None = None, xlabel: str | None = None) -> Figure:
    """A grid of digits (R, C, 28, 28) in [0, 1]; rows may be labelled (a CVAE's digit per row)."""
    r, c = images.shape[:2]
    fig = figure_of_size(6.0, 6.0 * r / c + 0.7)
    ax = fig.add_subplot()
    _show_mosaic(ax, images)
    if row_labels is not None:
        ax.set_yticks(_cell_centres(r), list(row_labels))
        ax.tick_params(axis="y", length=0)
    if ylabel:
        ax.set_ylabel(ylabel)
    if xlabel:
        ax.set_xlabel(xlabel)
    ax.set_title(title, fontsize=10)
    return fig


def reconstruction_pairs(originals: np.ndarray, recons: np.ndarray, title: str) -> Figure:
    """Test digits (left) and their reconstructions at the same grid positions (right), each (R, C, 28, 28)."""
    r, c = originals.shape[:2]
    fig = figure_of_size(11.0, 5.5 * r / c + 0.9)
    left, right = fig.subplots(1, 2)
    _show_mosaic(left, originals)
    left.set_title("binarised test digits (input)", fontsize=10)
    _show_mosaic(right, recons)
    right.set_title("reconstructions: Bernoulli means decoded at z = the encoder's mean", fontsize=10)
    fig.suptitle(title)
    return fig


def latent_scatter(mu: np.ndarray, labels: np.ndarray, title: str) -> Figure:
    """Latent means (N, 2) of test images, coloured by digit, over circles at 1 and 2 prior s.d."""
    fig = figure_of_size(7.5, 6.5)
    ax = fig.add_subplot()
    # draw in a fixed shuffled order, so no digit class is painted over all the others
    order = np.random.default_rng(0).permutation(len(mu))
    cmap = ListedColormap(colormaps["tab10"].colors)
    norm = BoundaryNorm(np.arange(-0.5, 10.5), cmap.N)
    pts = ax.scatter(mu[order, 0], mu[order, 1], c=labels[order], cmap=cmap, norm=norm,
                     s=4, alpha=0.7, linewidths=0)
    t = np.linspace(0.0, 2 * np.pi, 200)
    for radius in (1.0, 2.0):
        ax.plot(radius * np.cos(t), radius * np.sin(t), color="black", lw=0.8, ls="--", alpha=0.6)
    bar = fig.colorbar(pts, ax=ax, ticks=range(10))
    bar.set_label("digit")
    ax.set_aspect("equal", adjustable="datalim")
    ax.set_xlabel("z1: encoder mean (in prior standard deviations)")
    ax.set_ylabel("z2: encoder mean (in prior standard deviations)")
    ax.set_title(f"{title}\ndashed: 1 and 2 s.d. of the N(0, I) prior", fontsize=10)
    ax.grid(alpha=0.3)
    return fig


def manifold(panels: Mapping[str, np.ndarray], z_values: np.ndarray, title: str) -> Figure:
    """Decoder means over a grid of prior quantiles (Kingma & Welling 2014, Fig. 4), one panel per entry.

    Each panel is (n, n, 28, 28): cell [i, j] decodes z1 = z_values[j], z2 = z_values[::-1][i]
    (z2 grows upwards, as in latent_scatter).
    """
    names = list(panels)
    # a 20 x 20 mosaic is 581 px wide: 6.6 in at 100 dpi leaves each panel ~600 px, no pixel dropped
    fig = figure_of_size(6.6 * len(names), 7.0)
    axes = fig.subplots(1, len(names), squeeze=False)[0]
    n = len(z_values)
    ticks = sorted({0, n // 4, n - 1 - n // 4, n - 1})  # symmetric about 0 (an even n has no centre cell)
    for ax, name in zip(axes, names):
        _show_mosaic(ax, panels[name])
        centres = _cell_centres(n)
        ax.set_xticks(centres[ticks], [f"{z_values[k]:.2f}" for k in ticks], fontsize=8)
        ax.set_yticks(centres[ticks], [f"{z_values[::-1][k]:.2f}" for k in ticks], fontsize=8)
        ax.set_xlabel("z1 (prior quantiles 5% to 95%)")
        ax.set_ylabel("z2 (prior quantiles 5% to 95%)")
        ax.set_title(name, fontsize=10)
    fig.suptitle(title)
    return fig


def save_figure(fig: Figure, path: Path) -> Path:
    with vio.atomic_path(path) as tmp:
        # fixed dpi and no "Software" text chunk: the same figure gives the same bytes on every run
        fig.savefig(tmp, format="png", dpi=DPI, metadata={"Software": None})
    return path


def figure_names(name: str, zdim: int, categorical: bool = False, restorations: bool = False) -> list[str]:
    """The files run/figures.py draws for run `name`, in the order the report shows them.

    Every run: prior samples and reconstructions; a denoising run (`restorations`): its restorations
    of corrupted images; a 2-D Gaussian latent (not a categorical one of 2 variables): the latent
    scatter and the decoded manifold.
    """
    kinds = ("samples", "reconstructions", *(("restorations",) if restorations else ()),
             *(("latent", "manifold") if zdim == 2 and not categorical else ()))
    return [f"{kind}_{name}.png" for kind in kinds]
