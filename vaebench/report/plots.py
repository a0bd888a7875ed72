"""The report's figures of the whole grid: plain data in (run metrics, curves), a matplotlib Figure out.

Nothing here reads files, runs a model or saves: report/build.py does that, with run/drawing.py's helpers. Figures are built with
the object-oriented API (`matplotlib.figure.Figure`), never pyplot, so no global registry of
open figures grows while dozens are drawn, no display backend is needed (savefig renders with
Agg), and nothing here holds state between calls. Every figure has a fixed size in inches;
at `DPI` that fixes its size in pixels (no tight bounding boxes, whose size depends on the text).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator

from vaebench.report.labels import dodge, label_line_ends
from vaebench.run.drawing import MODEL_LABELS, figure_of_size

MODEL_COLORS = MappingProxyType({"vae": "tab:blue", "cvae": "tab:orange"})
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


def distinct_zdim_colors(zdims: Sequence[int]) -> dict[int, Any]:
    """One clearly different colour per latent size (tab10, then tab20's), for curves that lie on top of each
    other (the training curves of z >= 15 end within a nat): the labels at their ends give the order."""
    zs = sorted(set(zdims))
    palette = list(colormaps["tab10"].colors) + list(colormaps["tab20"].colors[1::2])
    return {z: tuple(palette[i % len(palette)]) for i, z in enumerate(zs)}


def _by_model(runs: Sequence[Mapping[str, Any]]) -> dict[str, list[Mapping[str, Any]]]:
    """Runs grouped by model (first-seen order), each group sorted by zdim."""
    groups: dict[str, list[Mapping[str, Any]]] = {}
    for r in runs:
        groups.setdefault(r["model"], []).append(r)
    return {m: sorted(g, key=lambda r: r["zdim"]) for m, g in groups.items()}


# ---------------------------------------------------------------- likelihood against zdim


def _bars(group: Sequence[Mapping[str, Any]], key: str, se: str | None) -> tuple[Any, str]:
    """Error bars of `key` and the words for the legend: the 95 % interval of the seed mean where every point
    has one (report/seeds.py), else the s.e. over images (`se`), else none."""
    if all(np.isfinite(r.get(f"{key}_lo", np.nan)) for r in group):
        lo = [r[key] - r[f"{key}_lo"] for r in group]
        hi = [r[f"{key}_hi"] - r[key] for r in group]
        return np.array([lo, hi]), f", mean of {group[0][f'{key}_n']} seeds ± 95 % interval"
    if se is not None:
        return [r[se] for r in group], " ± s.e."
    return None, ""


def nll_vs_zdim(runs: Sequence[Mapping[str, Any]], thesis: Sequence[tuple[str, int, float]]) -> Figure:
    """Test -ELBO and IWAE NLL (nats) against latent size, per model; the thesis's points as stars.

    `runs` are the per-run metrics (core/estimators.py's keys plus model, zdim); `thesis` holds
    (model, zdim, value) triples. A CVAE gets both its conditional -log p(x|y) and its
    marginal -log p(x), since only the latter compares with a VAE's -log p(x).
    """
    fig = figure_of_size(10.0, 5.5)
    ax = fig.add_subplot()
    handles = []  # in drawing order, model by model (errorbar handles would otherwise sort last)
    models = _by_model(runs)
    # the VAE's and the CVAE's points at one latent size side by side (a model's own series lie nats apart)
    offsets = dict(zip(models, dodge([[r["zdim"] for r in g] for g in models.values()], span=0.03)))
    for model, group in models.items():
        z = np.array([r["zdim"] for r in group]) + np.array(offsets[model])
        col, name = _color(model), _label(model)
        target = "-log p(x|y)" if model == "cvae" else "-log p(x)"
        elbo_err, elbo_bars = _bars(group, "neg_elbo", None)
        handles.append(ax.errorbar(z, [r["neg_elbo"] for r in group], yerr=elbo_err, fmt="--o", color=col, ms=4,
                                   capsize=2, elinewidth=0.8, label=f"{name} test -ELBO{elbo_bars}"))
        iwae_err, iwae_bars = _bars(group, "iwae_nll", "iwae_nll_se")
        handles.append(ax.errorbar(
            z, [r["iwae_nll"] for r in group], yerr=iwae_err, fmt="-o", color=col,
            ms=5, capsize=3, label=f"{name} IWAE NLL {target} (k={group[0]['k']}){iwae_bars}"))
        if all("iwae_nll_marginal" in r for r in group):
            marg_err, marg_bars = _bars(group, "iwae_nll_marginal", "iwae_nll_marginal_se")
            handles.append(ax.errorbar(
                z, [r["iwae_nll_marginal"] for r in group], yerr=marg_err,
                fmt=":s", color=col, ms=5, capsize=3, mfc="white",
                label=f"{name} IWAE NLL -log p(x), label marginalised{marg_bars}"))
        quad = [(x, r) for x, r in zip(z, group) if "quad_nll" in r]
        if quad:
            handles += ax.plot([x for x, _ in quad], [r["quad_nll"] for _, r in quad], "x", color=col, ms=10,
                               mew=2, label=f"{name} exact NLL (quadrature)")
    # a thesis point of a model and latent size this grid lacks would set the axes (157 at z = 2 beside a grid of
    # z = 50 alone put every run of it in a corner) without a run to compare with: left out, and said so
    sizes, cells = {r["zdim"] for r in runs}, {(r["model"], r["zdim"]) for r in runs}
    missing = [t for t in thesis if (t[0], t[1]) not in cells]
    thesis = [t for t in thesis if (t[0], t[1]) in cells]
    if thesis:
        # on its model's column: beside the run it compares with
        at = {(m, r["zdim"]): r["zdim"] + d for m, g in models.items() for r, d in zip(g, offsets[m])}
        handles += ax.plot([at[t[0], t[1]] for t in thesis], [t[2] for t in thesis], "*", color="black", ms=15,
                           zorder=5, label="thesis (VAE: -log p(x) bound; CVAE: -log p(x|y))")
        for model, zdim, value in thesis:
            ax.annotate(f"thesis {_label(model)} {value:g}", (at[model, zdim], value), xytext=(8, -4),
                        textcoords="offset points", fontsize=8)
    ax.set_xticks(sorted(sizes))
    if len(sizes) == 1:  # one latent size: its two columns, not the edges of an axis as wide as their gap
        ax.margins(x=0.75)
    if missing:
        ax.text(0.01, 0.01, "not drawn, no run of this grid to compare with: the thesis's "
                + ", ".join(f"{_label(m)} z = {z} ({v:g})" for m, z, v in missing),
                transform=ax.transAxes, fontsize=7, color="gray", va="bottom")
    ax.set_xlabel("latent dimension (number of latent units)")
    ax.set_ylabel(f"NLL or -ELBO ({NATS}, lower is better)")
    n = runs[0]["n_images"] if runs else 0
    ax.set_title(f"Test NLL and -ELBO against latent dimension ({n} binarised test images)")
    ax.grid(alpha=0.3)
    # outside the axes: curves fall from left to right, and any corner inside may hide one
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, borderaxespad=0.0)
    return fig


# ---------------------------------------------------------------- training curves


def training_curves(curves: Mapping[str, Sequence[Curve]], n_seeds: int = 1) -> Figure:
    """Train (solid) and held-out (dashed) ELBO per epoch; one panel per model, one colour per zdim; each curve the
    mean of `n_seeds` training seeds' (the title says so when there are several)."""
    models = list(curves)
    fig = figure_of_size(6.5 * max(1, len(models)), 5.0)
    axes = fig.subplots(1, max(1, len(models)), squeeze=False)[0]
    colors = distinct_zdim_colors([c.zdim for cs in curves.values() for c in cs])
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
        ax.set_title(f"{_label(model)}: training curves" + (f", mean of {n_seeds} training seeds" if n_seeds > 1 else ""))
        ax.grid(alpha=0.3)
        ax.legend(handles=handles, fontsize=8, ncol=2, loc="lower right")
    for ax, model in zip(axes, models):  # last: the layout of every panel is set
        ends = [c for c in sorted(curves[model], key=lambda c: c.zdim) if len(c.train_epoch)]
        label_line_ends(ax, [(float(c.train_epoch[-1]), float(c.train_elbo[-1])) for c in ends],
                        [f"z={c.zdim}" for c in ends], [colors[c.zdim] for c in ends])
    return fig


# ---------------------------------------------------------------- digits


# ---------------------------------------------------------------- latent usage


def active_units(runs: Sequence[Mapping[str, Any]], threshold: float) -> Figure:
    """Per model, KL per latent unit sorted (one line per zdim); last panel: active units against zdim.

    `threshold` is the activity Cov_x(E_q[z_u]) above which core/estimators.py counted a unit as active.
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


