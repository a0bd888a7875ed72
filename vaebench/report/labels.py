"""Labels that do not overlap: points of a scatter labelled beside them, curves labelled at their right end;
and points of several series at one x set side by side (`dodge`), so that no error bar hides another.

matplotlib places an annotation where it is told, so the labels of points that lie close together (the grid's
VAEs at z >= 15 share a corner of the rate-distortion plane) print on top of each other. These helpers place
them greedily, in a fixed order, from sizes computed from the text itself (TextPath, in points): no renderer,
no randomness, so a figure's bytes stay a function of its data.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.font_manager import FontProperties
from matplotlib.textpath import TextPath

Box = tuple[float, float, float, float]  # x0, y0, x1, y1 in display pixels


def _size_pt(text: str, fontsize: float) -> tuple[float, float]:
    """(width, height) of `text` at `fontsize`, in points."""
    ext = TextPath((0, 0), text, size=fontsize, prop=FontProperties()).get_extents()
    return float(ext.width), float(fontsize)  # one line's height, whatever its letters' extents


def _overlaps(a: Box, b: Box) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def _inside(a: Box, frame: Box) -> bool:
    return a[0] >= frame[0] and a[1] >= frame[1] and a[2] <= frame[2] and a[3] <= frame[3]


def label_points(ax: Axes, xs: Sequence[float], ys: Sequence[float], texts: Sequence[str],
                 colors: Sequence[Any], fontsize: float = 7.0, marker_pt: float = 5.0,
                 obstacles: Sequence[tuple[float, float]] = ()) -> None:
    """Annotate each point (x, y) with its text at the first of a ring of offsets, growing outward, where the
    label overlaps no marker (of these points or of `obstacles`, other points drawn unlabelled here), no label
    placed before and stays inside the axes; a label moved more than one ring away gets a thin leader line to
    its point. Call after the axes' limits are final."""
    fig = ax.figure
    fig.draw_without_rendering()  # constrained layout places the axes: their transform is final from here
    scale = fig.dpi / 72.0  # pixels per point
    pts = ax.transData.transform(np.column_stack([np.asarray(xs, float), np.asarray(ys, float)]))  # (n, 2) px
    m = marker_pt * scale
    others = ax.transData.transform(np.asarray(obstacles, float).reshape(-1, 2)) if len(obstacles) else np.empty((0, 2))
    taken: list[Box] = [(x - m, y - m, x + m, y + m) for x, y in (*pts, *others)]
    frame = tuple(ax.get_window_extent().extents)
    # top to bottom, then left to right: a fixed order, so the same data give the same picture
    for i in sorted(range(len(pts)), key=lambda i: (-round(pts[i][1], 3), round(pts[i][0], 3))):
        w, h = _size_pt(texts[i], fontsize)
        chosen = None
        for ring in (1, 2, 3, 4, 6):
            d = 5.0 * ring
            for dx, dy in ((d, d * 0.4), (d, -h - d * 0.4), (-w - d, d * 0.4), (-w - d, -h - d * 0.4),
                           (-w / 2, d + 2), (-w / 2, -h - d - 2)):
                box = (pts[i][0] + dx * scale, pts[i][1] + dy * scale,
                       pts[i][0] + (dx + w) * scale, pts[i][1] + (dy + h) * scale)
                if _inside(box, frame) and not any(_overlaps(box, t) for t in taken):
                    chosen = (dx, dy, ring, box)
                    break
            if chosen:
                break
        if chosen is None:  # nowhere free: the first place, as before
            chosen = (5.0, 2.0, 1, None)
        dx, dy, ring, box = chosen
        ax.annotate(texts[i], (xs[i], ys[i]), xytext=(dx, dy), textcoords="offset points", fontsize=fontsize,
                    color=colors[i], ha="left", va="bottom",
                    arrowprops=dict(arrowstyle="-", color=colors[i], lw=0.5, shrinkA=0, shrinkB=3) if ring > 1 else None)
        if box is not None:
            taken.append(box)


def spread_1d(targets: Sequence[float], gap: float, top: float | None = None) -> np.ndarray:
    """Positions as close to `targets` as keep `gap` between neighbours, order kept: labels that collide form
    a block centred on their targets' mean, blocks that then collide merge, until none does (least squares for
    a fixed order); then, below `top`, the highest block is pushed down as far as it must (and only the labels
    it then reaches). A label that collides with nothing stays on its target."""
    t = np.asarray(targets, float)
    order = np.argsort(t, kind="stable")
    blocks: list[list[int]] = []  # indices into order, consecutive
    for j in range(len(order)):
        blocks.append([j])
        while len(blocks) > 1:
            a, b = blocks[-2], blocks[-1]
            lo_b = np.mean(t[order[b]]) - (len(b) - 1) * gap / 2
            hi_a = np.mean(t[order[a]]) + (len(a) - 1) * gap / 2
            if hi_a + gap <= lo_b:
                break
            blocks[-2:] = [a + b]
    placed = np.empty(len(t))
    for blk in blocks:
        start = np.mean(t[order[blk]]) - (len(blk) - 1) * gap / 2
        placed[order[blk]] = start + gap * np.arange(len(blk))
    if top is not None and len(t):
        ranked = placed[order]
        if ranked[-1] > top:
            ranked[-1] = top
            for j in range(len(ranked) - 2, -1, -1):
                ranked[j] = min(ranked[j], ranked[j + 1] - gap)
        placed[order] = ranked
    return placed


def label_line_ends(ax: Axes, ends: Sequence[tuple[float, float]], texts: Sequence[str], colors: Sequence[Any],
                    fontsize: float = 7.0) -> None:
    """Label each curve at its own last point (x, y): the x axis is widened by a margin that holds the labels,
    which stand in a column right of the last epoch, each as near its curve's end as keeps a line between
    neighbours (spread_1d), joined to that end by a thin line. Inside the axes, so that the layout (and every
    spacing computed here) stays as it is."""
    if not texts:
        return
    fig = ax.figure
    x0, x1 = ax.get_xlim()
    width = max(_size_pt(t, fontsize)[0] for t in texts)
    fig.draw_without_rendering()
    scale = fig.dpi / 72.0
    axes_px = ax.get_window_extent().width
    # the margin: a leader of 8 points, the widest label and 8 points to spare, as a share of the axes' width
    share = min(0.3, (width + 16.0) * scale / max(axes_px, 1.0))
    ax.set_xlim(x0, x1 + (x1 - x0) * share / (1.0 - share))
    xy = np.asarray(ends, float)  # (n, 2) data
    y_px = ax.transData.transform(xy)[:, 1]
    gap = 1.35 * fontsize * scale  # a line of text with its ascent and descent
    placed = spread_1d(y_px, gap, top=ax.get_window_extent().y1 - gap / 2)  # under the title
    to_data = ax.transData.inverted()
    label_x = x1 + 8.0 * scale * (x1 - x0) / max(axes_px * (1.0 - share), 1.0)  # 8 points right of the old limit
    for i, text in enumerate(texts):
        label_y = to_data.transform((0.0, placed[i]))[1]
        note = ax.annotate(text, xy=tuple(xy[i]), xytext=(label_x, label_y), textcoords="data",
                           fontsize=fontsize, color=colors[i], va="center", ha="left", annotation_clip=False,
                           arrowprops=dict(arrowstyle="-", color=colors[i], lw=0.5, shrinkA=0, shrinkB=0))
        note.set_in_layout(False)


def dodge(series: Sequence[Sequence[float]], width: float = 0.6, span: float = 0.05) -> list[list[float]]:
    """x offsets that set side by side the points several series draw at one size, (series, their sizes) -> the
    same shape: at each size, the series that have it are spread evenly over `width` x the gap to the nearest
    other size (1 where there is none), at most `span` x the sizes' range, centred on the size, in the order
    given; a size one series has stays put."""
    sizes = sorted({x for xs in series for x in xs})
    cap = span * (sizes[-1] - sizes[0]) if len(sizes) > 1 else math.inf
    gap = {x: min(min((abs(x - o) for o in sizes if o != x), default=1.0), cap / width) for x in sizes}
    share = {x: [i for i, xs in enumerate(series) if x in xs] for x in sizes}
    out = []
    for i, xs in enumerate(series):
        row = []
        for x in xs:
            m, j = len(share[x]), share[x].index(i)
            row.append(0.0 if m == 1 else width * gap[x] * (j / (m - 1) - 0.5))
        out.append(row)
    return out
