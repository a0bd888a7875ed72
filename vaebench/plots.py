"""The benchmark's figures: plain data in (run metrics, arrays of pixels), a matplotlib Figure out.

Nothing here reads files, runs a model or saves: report.py does that. Figures are built with
the object-oriented API (`matplotlib.figure.Figure`), never pyplot, so no global registry of
open figures grows while dozens are drawn, no display backend is needed (savefig renders with
Agg), and nothing here holds state between calls. Every figure has a fixed size in inches;
at `DPI` that fixes its size in pixels (no tight bounding boxes, whose size depends on the text).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np
from matplotlib import colormaps
from matplotlib.colors import BoundaryNorm, ListedColormap
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator

from vaebench import io as vio

DPI = 100  # pixels per inch of every saved figure: figsize (w, h) in inches -> (100 w, 100 h) pixels
SIDE = 28  # MNIST images are SIDE x SIDE pixels
MODEL_COLORS = MappingProxyType({"vae": "tab:blue", "cvae": "tab:orange"})
MODEL_LABELS = MappingProxyType({"vae": "VAE", "cvae": "CVAE"})
NATS = "nats per test image"


@dataclass(frozen=True)
class Curve:
    """One run's dvclive ELBO log: epochs (1-based) and ELBO in nats per image, train and held-out."""

    zdim: int
    train_epoch: np.ndarray
    train_elbo: np.ndarray
    heldout_epoch: np.ndarray
    heldout_elbo: np.ndarray


# ---------------------------------------------------------------- helpers


def figure_of_size(width: float, height: float) -> Figure:
    # constrained layout keeps labels inside a figure of fixed size (unlike bbox_inches="tight")
    return Figure(figsize=(width, height), dpi=DPI, layout="constrained")


def _label(model: str) -> str:
    return MODEL_LABELS.get(model, model)


def _color(model: str) -> str:
    return MODEL_COLORS.get(model, "tab:gray")


def zdim_colors(zdims: Sequence[int]) -> dict[int, Any]:
    """One colour per latent size, ordered small (dark) to large (light) so the order reads off the hue."""
    zs = sorted(set(zdims))
    # stop short of viridis' pale yellow end, which vanishes on white
    shades = colormaps["viridis"](np.linspace(0.0, 0.85, len(zs))) if len(zs) > 1 else [colormaps["viridis"](0.0)]
    return {z: tuple(c) for z, c in zip(zs, shades)}


def _by_model(runs: Sequence[Mapping[str, Any]]) -> dict[str, list[Mapping[str, Any]]]:
    """Runs grouped by model (first-seen order), each group sorted by zdim."""
    groups: dict[str, list[Mapping[str, Any]]] = {}
    for r in runs:
        groups.setdefault(r["model"], []).append(r)
    return {m: sorted(g, key=lambda r: r["zdim"]) for m, g in groups.items()}


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


# ---------------------------------------------------------------- likelihood against zdim


def nll_vs_zdim(runs: Sequence[Mapping[str, Any]], thesis: Sequence[tuple[str, int, float]]) -> Figure:
    """Test -ELBO and IWAE NLL (nats) against latent size, per model; the thesis's points as stars.

    `runs` are the per-run metrics (evaluate.py's keys plus model, zdim); `thesis` holds
    (model, zdim, value) triples. A CVAE gets both its conditional -log p(x|y) and its
    marginal -log p(x), since only the latter compares with a VAE's -log p(x).
    """
    fig = figure_of_size(10.0, 5.5)
    ax = fig.add_subplot()
    handles = []  # in drawing order, model by model (errorbar handles would otherwise sort last)
    for model, group in _by_model(runs).items():
        z = np.array([r["zdim"] for r in group])
        col, name = _color(model), _label(model)
        target = "-log p(x|y)" if model == "cvae" else "-log p(x)"
        handles += ax.plot(z, [r["neg_elbo"] for r in group], "--o", color=col, ms=4, label=f"{name} test -ELBO")
        handles.append(ax.errorbar(
            z, [r["iwae_nll"] for r in group], yerr=[r["iwae_nll_se"] for r in group], fmt="-o", color=col,
            ms=5, capsize=3, label=f"{name} IWAE NLL {target} (k={group[0]['k']}) ± s.e."))
        if all("iwae_nll_marginal" in r for r in group):
            handles.append(ax.errorbar(
                z, [r["iwae_nll_marginal"] for r in group], yerr=[r["iwae_nll_marginal_se"] for r in group],
                fmt=":s", color=col, ms=5, capsize=3, mfc="white",
                label=f"{name} IWAE NLL -log p(x), label marginalised"))
        quad = [r for r in group if "quad_nll" in r]
        if quad:
            handles += ax.plot([r["zdim"] for r in quad], [r["quad_nll"] for r in quad], "x", color=col, ms=10,
                               mew=2, label=f"{name} exact NLL (quadrature)")
    if thesis:
        handles += ax.plot([t[1] for t in thesis], [t[2] for t in thesis], "*", color="black", ms=15, zorder=5,
                           label="thesis (VAE: -log p(x) bound; CVAE: -log p(x|y))")
        for model, zdim, value in thesis:
            ax.annotate(f"thesis {_label(model)} {value:g}", (zdim, value), xytext=(8, -4),
                        textcoords="offset points", fontsize=8)
    zs = sorted({r["zdim"] for r in runs} | {t[1] for t in thesis})
    ax.set_xticks(zs)
    ax.set_xlabel("latent dimension (number of latent units)")
    ax.set_ylabel(f"NLL or -ELBO ({NATS}, lower is better)")
    n = runs[0]["n_images"] if runs else 0
    ax.set_title(f"Test NLL and -ELBO against latent dimension ({n} binarised test images)")
    ax.grid(alpha=0.3)
    # outside the axes: curves fall from left to right, and any corner inside may hide one
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, borderaxespad=0.0)
    return fig


# ---------------------------------------------------------------- training curves


def training_curves(curves: Mapping[str, Sequence[Curve]]) -> Figure:
    """Train (solid) and held-out (dashed) ELBO per epoch; one panel per model, one colour per zdim."""
    models = list(curves)
    fig = figure_of_size(6.5 * max(1, len(models)), 5.0)
    axes = fig.subplots(1, max(1, len(models)), squeeze=False)[0]
    colors = zdim_colors([c.zdim for cs in curves.values() for c in cs])
    for ax, model in zip(axes, models):
        lows, highs = [], []
        for c in sorted(curves[model], key=lambda c: c.zdim):
            ax.plot(c.train_epoch, c.train_elbo, "-", color=colors[c.zdim], lw=1.5)
            ax.plot(c.heldout_epoch, c.heldout_elbo, "--", color=colors[c.zdim], lw=1.5)
            # epoch 1 starts far below the rest and would squash every later epoch into a line
            # at the top: scale the axis to epochs >= 2 when there are enough of them
            late = [v[e >= 2] if len(e) >= 4 else v for e, v in
                    ((c.train_epoch, c.train_elbo), (c.heldout_epoch, c.heldout_elbo))]
            lows.append(min(float(np.min(v)) for v in late if len(v)))
            highs.append(max(float(np.max(v)) for v in late if len(v)))
        handles = [Line2D([], [], color=colors[c.zdim], lw=2, label=f"z = {c.zdim}")
                   for c in sorted(curves[model], key=lambda c: c.zdim)]
        handles += [Line2D([], [], color="black", ls="-", label="train"),
                    Line2D([], [], color="black", ls="--", label="held-out")]
        xlabel = "epoch"
        if lows:
            # both limits from the data of epochs >= 2: matplotlib's own top adds 5% of the whole range,
            # and a first epoch at -5e9 (RMSprop's first step, see README) put it at +2.5e8
            low, high = min(lows), max(highs)
            pad = 0.05 * max(high - low, 1.0)
            bottom, top = low - pad, high + pad
            ax.set_ylim(bottom, top)
            if any(np.min(v) < bottom for c in curves[model] for v in (c.train_elbo, c.heldout_elbo)):
                xlabel = "epoch (epoch 1 lies below the axis)"
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel(xlabel)
        ax.set_ylabel("ELBO (nats per image, higher is better)")
        ax.set_title(f"{_label(model)}: training curves")
        ax.grid(alpha=0.3)
        ax.legend(handles=handles, fontsize=8, ncol=2, loc="lower right")
    return fig


# ---------------------------------------------------------------- digits


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


# ---------------------------------------------------------------- latent usage


def active_units(runs: Sequence[Mapping[str, Any]], threshold: float) -> Figure:
    """Per model, KL per latent unit sorted (one line per zdim); last panel: active units against zdim.

    `threshold` is the activity Cov_x(E_q[z_u]) above which evaluate.py counted a unit as active.
    """
    groups = _by_model(runs)
    fig = figure_of_size(5.0 * (len(groups) + 1), 4.8)
    axes = fig.subplots(1, len(groups) + 1, squeeze=False)[0]
    colors = zdim_colors([r["zdim"] for r in runs])
    for ax, (model, group) in zip(axes, groups.items()):
        for r in group:
            kl = np.sort(np.asarray(r["kl_per_dim"], dtype=float))[::-1]
            ax.plot(np.arange(1, len(kl) + 1), kl, "-o", ms=3, color=colors[r["zdim"]], label=f"z = {r['zdim']}")
        # a linear axis: collapsed units sit visibly on 0, which is what this panel is for
        ax.set_ylim(bottom=0.0)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("latent unit, sorted by KL (rank)")
        ax.set_ylabel("mean KL(q(z_u|x) || N(0, 1)) (nats per image)")
        ax.set_title(f"{_label(model)}: KL per latent unit")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, ncol=2)
    ax = axes[-1]
    zmax = max(r["zdim"] for r in runs)
    ax.plot([0, zmax], [0, zmax], color="gray", lw=1, ls=":", label="all units active")
    # distinct markers and line styles: VAE and CVAE often have the same counts and would hide each other
    for (model, group), (style, size) in zip(groups.items(), (("-o", 8), ("--s", 5), (":^", 5))):
        ax.plot([r["zdim"] for r in group], [r["active_units"] for r in group], style, ms=size,
                color=_color(model), label=_label(model))
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("latent dimension (number of latent units)")
    ax.set_ylabel("active units (count)")
    ax.set_title(f"Active units: Cov_x E_q[z_u] > {threshold:g}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return fig


# ---------------------------------------------------------------- files


def save_figure(fig: Figure, path: Path) -> Path:
    with vio.atomic_path(path) as tmp:
        # fixed dpi and no "Software" text chunk: the same figure gives the same bytes on every run
        fig.savefig(tmp, format="png", dpi=DPI, metadata={"Software": None})
    return path


def figure_names(name: str, zdim: int, categorical: bool = False, restorations: bool = False) -> list[str]:
    """The files vaebench/figures.py draws for run `name`, in the order the report shows them.

    Every run: prior samples and reconstructions; a denoising run (`restorations`): its restorations
    of corrupted images; a 2-D Gaussian latent (not a categorical one of 2 variables): the latent
    scatter and the decoded manifold.
    """
    kinds = ("samples", "reconstructions", *(("restorations",) if restorations else ()),
             *(("latent", "manifold") if zdim == 2 and not categorical else ()))
    return [f"{kind}_{name}.png" for kind in kinds]
