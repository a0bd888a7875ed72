"""The variants' figures: the rate-distortion plane and the likelihood of each model family by latent size.

Pure like report/plots.py: plain rows in (the rows of report/variants.py: run, model,
setting, latent, size, classes, rate, distortion, iwae_nll, iwae_nll_se, k, exact_method,
exact_nll), a matplotlib Figure of fixed size out; nothing here reads or writes files.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from vaebench.report.plots import MODEL_COLORS, NATS
from vaebench.report.labels import dodge, label_points
from vaebench.run.drawing import MODEL_LABELS, figure_of_size

MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "<", ">")

Row = Mapping[str, Any]


def family_styles(families: Sequence[str]) -> dict[str, tuple[Any, str]]:
    """A colour and a marker per family, in the order given; the VAE keeps its colour of the grid's figures.

    tab10's first two colours are the VAE's and the CVAE's: the variants take the other eight, so that
    no variant is mistaken for either.
    """
    others = colormaps["tab10"].colors[2:]
    styles, i = {}, 0
    for j, fam in enumerate(families):
        if fam in MODEL_COLORS:
            color = MODEL_COLORS[fam]
        else:
            color, i = others[i % len(others)], i + 1
        styles[fam] = (color, MARKERS[j % len(MARKERS)])
    return styles


def latent_label(r: Row) -> str:
    """`z=20` for a Gaussian latent, `2×10` (N variables × K classes) for a categorical one."""
    return f"{r['size']}×{r['classes']}" if r["latent"] == "categorical" else f"z={r['size']}"


def _family_label(r: Row) -> str:
    return f"{MODEL_LABELS[r['model']]} (the grid's runs)" if r["model"] in MODEL_LABELS else f"{r['model']}: {r['setting']}"


def _by_family(rows: Sequence[Row]) -> dict[str, list[Row]]:
    """Rows grouped by model family (first-seen order), each group sorted by latent size."""
    groups: dict[str, list[Row]] = {}
    for r in rows:
        groups.setdefault(r["model"], []).append(r)
    return {m: sorted(g, key=lambda r: r["size"]) for m, g in groups.items()}


def _empty(ax: Any, text: str) -> None:
    ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center", fontsize=12, color="gray")


def _interval_bars(group: Sequence[Row], key: str) -> Any:
    """Asymmetric error bars (2, n) of the 95 % interval of `key`'s seed mean where every row has one
    (variants.csv's `<key>_lo` / `_hi`, report/seeds.py), else None."""
    if group and all(r.get(f"{key}_lo") is not None and r.get(f"{key}_hi") is not None for r in group):
        return np.array([[r[key] - r[f"{key}_lo"] for r in group], [r[f"{key}_hi"] - r[key] for r in group]])
    return None


def _seeds_words(rows: Sequence[Row]) -> str:
    n = max((r.get("n_seeds") or 1 for r in rows), default=1)
    return f"; each point the mean of {n} training seeds, bars its 95 % interval" if n > 1 else ""


def _in(box: tuple[float, float, float, float], p: Sequence[Any]) -> bool:
    """Whether point p = (x, y, ...) lies in box = (x0, x1, y0, y1)."""
    return box[0] <= p[0] <= box[1] and box[2] <= p[1] <= box[3]


def _crowded(points: Sequence[tuple[float, float]], xlim: tuple[float, float], ylim: tuple[float, float],
             radius: float = 0.06) -> list[int]:
    """Indices of the points that have two or more others within `radius` (in axes fractions), with those
    neighbours: the cluster whose labels would overlap at the full plane's scale."""
    xy = np.array([((x - xlim[0]) / (xlim[1] - xlim[0]), (y - ylim[0]) / (ylim[1] - ylim[0])) for x, y in points])
    if len(xy) < 3:
        return []
    near = np.hypot(*(xy[:, None, :] - xy[None, :, :]).transpose(2, 0, 1)) < radius  # (n, n)
    dense = near.sum(axis=1) >= 3  # itself and two others
    return sorted(set(np.flatnonzero(near[dense].any(axis=0)).tolist())) if dense.any() else []


def rate_distortion(rows: Sequence[Row], reference: Row | None = None, note: str = "") -> Figure:
    """Every run as a point (rate, distortion), one colour and marker per family, labelled by its latent size.

    -ELBO = rate + distortion (Alemi et al. 2018), so the runs with the same ELBO lie on a line of slope -1:
    the dashed one goes through `reference` (a VAE row), and a run below it has the better ELBO. Where points
    crowd (the grid's VAEs at z >= 15 lie within a few nats), an inset draws that region enlarged, labelled there.
    """
    fig = figure_of_size(10.0, 6.5)
    ax = fig.add_subplot()
    groups = _by_family(rows)
    styles = family_styles(list(groups))
    handles, points = [], []

    def draw(target: Any, group: Sequence[Row], color: Any, marker: str, **kw: Any) -> Any:
        return target.errorbar([r["rate"] for r in group], [r["distortion"] for r in group],
                               xerr=_interval_bars(group, "rate"), yerr=_interval_bars(group, "distortion"),
                               ls="none", marker=marker, color=color, capsize=2, elinewidth=0.8, **kw)

    for fam, group in groups.items():
        color, marker = styles[fam]
        handles.append(draw(ax, group, color, marker, ms=8, label=_family_label(group[0])))
        points += [(r["rate"], r["distortion"], latent_label(r), color, marker) for r in group]
    (x0, x1), (y0, y1) = ax.get_xlim(), ax.get_ylim()  # as the points set them, which no line may widen
    if reference is not None:
        c = reference["rate"] + reference["distortion"]
        xs = np.array([x0, x1])
        handles += ax.plot(xs, c - xs, ls="--", color="gray", lw=1,
                           label=f"rate + distortion = {c:.1f}, the -ELBO of {reference['run']}")
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)
    if not rows:
        _empty(ax, "no runs")
    ax.set_xlabel(f"rate: mean KL(q(z|x) || p(z)) ({NATS})")
    ax.set_ylabel(f"distortion: -E_q log p(x|z) ({NATS})")
    ax.set_title("Rate-distortion plane (Alemi et al. 2018): -ELBO = rate + distortion; below the dashed line, "
                 "a better ELBO" + (f"\n{_seeds_words(rows).lstrip('; ')}" if _seeds_words(rows) else "")
                 + (f"\n{note}" if note else ""), fontsize=10)
    ax.grid(alpha=0.3)
    if handles:
        ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, borderaxespad=0.0)
    crowd = _crowded([(p[0], p[1]) for p in points], (x0, x1), (y0, y1))
    if crowd:
        # the crowd's box, padded by a fifth of its size (and at least a nat), drawn enlarged below the legend
        cx, cy = [points[i][0] for i in crowd], [points[i][1] for i in crowd]
        px, py = max(0.2 * (max(cx) - min(cx)), 1.0), max(0.2 * (max(cy) - min(cy)), 1.0)
        box = (min(cx) - px, max(cx) + px, min(cy) - py, max(cy) + py)
        inset = ax.inset_axes((1.04, 0.0, 0.42, 0.5))
        for fam, group in groups.items():
            inside = [r for r in group if _in(box, (r["rate"], r["distortion"]))]
            if inside:
                draw(inset, inside, *styles[fam], ms=6)
        if reference is not None:
            inset.plot(np.array(box[:2]), c - np.array(box[:2]), ls="--", color="gray", lw=1)
        inset.set_xlim(box[0], box[1])
        inset.set_ylim(box[2], box[3])
        inset.tick_params(labelsize=7)
        inset.grid(alpha=0.3)
        inset.set_title("the crowded region, enlarged", fontsize=8)
        ax.indicate_inset_zoom(inset, edgecolor="gray")
        label_points(inset, *zip(*[p[:4] for p in points if _in(box, p)]), fontsize=7, marker_pt=4)
    # every point is labelled once: in the inset if it lies in its box, else here, clear of the inset's markers
    rest = [p[:4] for p in points if not (crowd and _in(box, p))]
    if rest:  # last: the limits, the titles and the legend set where the axes sit
        label_points(ax, *zip(*rest), obstacles=[p[:2] for p in points if crowd and _in(box, p)])
    return fig


def nll_by_family(rows: Sequence[Row], note: str = "") -> Figure:
    """IWAE NLL ± s.e. against latent size, one line per family; exact NLLs (quadrature, enumeration) as crosses.

    Gaussian latents against their dimension; categorical ones, whose size is N variables of K classes
    and not comparable with a dimension, in a second panel against N.
    """
    panels = [("gaussian", "latent dimension (number of latent units)", "Gaussian latents"),
              ("categorical", "categorical variables N (K classes each, K in the legend's setting)", "categorical latents")]
    panels = [p for p in panels if p[0] == "gaussian" or any(r["latent"] == p[0] for r in rows)]
    fig = figure_of_size(8.0 * len(panels), 6.0)
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    groups = _by_family(rows)
    styles = family_styles(list(groups))
    for ax, (latent, xlabel, title) in zip(axes, panels):
        handles = []
        here = {fam: [r for r in group if r["latent"] == latent] for fam, group in groups.items()}
        here = {fam: group for fam, group in here.items() if group}
        # families at one size (the variants at z = 20, beside the VAE) side by side, so that no bar hides another
        offsets = dict(zip(here, dodge([[r["size"] for r in group] for group in here.values()])))
        for fam, group in here.items():
            color, marker = styles[fam]
            xs = [r["size"] + d for r, d in zip(group, offsets[fam])]
            bars = _interval_bars(group, "iwae_nll")  # the seeds' 95 % interval, else the s.e. over images
            handles.append(ax.errorbar(xs, [r["iwae_nll"] for r in group],
                                       yerr=bars if bars is not None else [r["iwae_nll_se"] for r in group],
                                       fmt="-" + marker, color=color, ms=6, capsize=3, label=_family_label(group[0])))
            exact = [(x, r) for x, r in zip(xs, group) if r["exact_nll"] is not None]
            ax.plot([x for x, _ in exact], [r["exact_nll"] for _, r in exact], "x", color=color, ms=10, mew=2)
        if any(r["exact_nll"] is not None and r["latent"] == latent for r in rows):
            method = "quadrature" if latent == "gaussian" else "enumeration of all K^N states"
            handles.append(Line2D([], [], ls="none", marker="x", color="black", ms=10, mew=2,
                                  label=f"exact NLL ({method})"))
        sizes = sorted({r["size"] for r in rows if r["latent"] == latent})
        if sizes:
            ax.set_xticks(sizes)
            if len(sizes) == 1:  # one size: its families side by side, not at the edges of an axis as wide as them
                ax.margins(x=0.75)
        else:
            _empty(ax, "no runs")
        ks = sorted({r["k"] for r in rows if r["latent"] == latent})
        ax.set_xlabel(xlabel)
        ax.set_ylabel(f"IWAE NLL, -log p(x) ({NATS}, lower is better)")
        shown = [r for r in rows if r["latent"] == latent]
        bars = ("mean of " f"{max((r.get('n_seeds') or 1) for r in shown)} training seeds ± 95 % interval"
                if shown and all(r.get("iwae_nll_lo") is not None for r in shown) else "± s.e.")
        side = "; families at one size drawn side by side" if any(
            d for ds in offsets.values() for d in ds) else ""
        ax.set_title(f"{title}: IWAE NLL (k={', '.join(map(str, ks))}), {bars}{side}" + (f"\n{note}" if note else ""),
                     fontsize=10)
        ax.grid(alpha=0.3)
        if handles:
            ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.12), fontsize=8, ncol=2)
    return fig
