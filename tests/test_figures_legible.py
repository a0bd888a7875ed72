"""The report's figures can be read: no label over another, curves told apart, no axis stretched by points
that compare with nothing (issue 26, item 11). Each check renders the real figure and measures it."""

from __future__ import annotations

import itertools
import shlex

import numpy as np
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.text import Annotation, Text

from vaebench.report import plots, variant_plots
from vaebench.report.build import TITLE
from vaebench.report.labels import dodge


def _rendered(fig):
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return canvas.get_renderer()


def _axes(fig):
    """Every axes, an inset (a child of its parent axes) included."""
    return [a for ax in fig.axes for a in (ax, *ax.child_axes)]


def _label_boxes(fig, renderer, texts):
    # Text's extent: the letters alone (an Annotation's own includes its leader line)
    return [Text.get_window_extent(a, renderer) for ax in _axes(fig) for a in ax.texts
            if isinstance(a, Annotation) and a.get_text() in texts]


def _row(model, size, rate, distortion, latent="gaussian"):
    return {"model": model, "run": f"{model}-{size}", "size": size, "latent": latent, "classes": 10,
            "setting": "beta=4" if model != "vae" else "", "rate": rate, "distortion": distortion,
            "neg_elbo": rate + distortion}


def test_the_rate_distortion_labels_of_a_crowded_cluster_do_not_overlap() -> None:
    """The grid's VAEs at z >= 15 within a nat or two of each other (the 2026-12 run's values): drawn at one
    offset each, as before, half their labels overlapped; now the crowd is enlarged in an inset."""
    cluster = {15: (18.8, 82.6), 20: (20.2, 80.4), 25: (20.7, 79.2), 35: (20.2, 81.9), 50: (20.6, 81.0)}
    rows = [_row("vae", 2, 6.5, 136.2), _row("vae", 5, 12.2, 105.1), _row("vae", 10, 17.9, 85.4)]
    rows += [_row("vae", z, *rd) for z, rd in cluster.items()]
    rows += [_row("beta4", 20, 9.0, 106.4), _row("iwae5", 20, 19.9, 82.7)]
    fig = variant_plots.rate_distortion(rows, rows[4])
    renderer = _rendered(fig)
    labels = {f"z={r['size']}" for r in rows}
    boxes = _label_boxes(fig, renderer, labels)
    assert len(boxes) == len(rows)  # every point labelled once: the crowd in the inset, the others beside them
    overlapping = [(a, b) for a, b in itertools.combinations(boxes, 2) if a.overlaps(b)]
    assert not overlapping, overlapping
    assert any(ax.get_title() == "the crowded region, enlarged" for ax in _axes(fig))


def test_training_curves_of_every_latent_size_differ_in_colour_and_are_labelled_in_order() -> None:
    """Eight latent sizes: viridis gave z = 15-50 four near-identical greens; now each its own hue, and a label
    at each curve's end, stacked in the order the curves end."""
    epochs = np.arange(1, 41, dtype=float)
    finals = {2: -140.0, 5: -113.0, 10: -102.0, 15: -100.5, 20: -99.6, 25: -99.2, 35: -99.4, 50: -99.9}
    curves = {"vae": [plots.Curve(z, epochs, f - 60 * np.exp(-epochs / 4), epochs, f - 62 * np.exp(-epochs / 4))
                      for z, f in finals.items()]}
    fig = plots.training_curves(curves, 3)
    colors = {tuple(np.round(line.get_color(), 3)) for line in fig.axes[0].lines if line.get_linestyle() == "-"
              and len(line.get_xdata()) == 40}
    assert len(colors) == len(finals)
    rgb = np.array(sorted(colors))[:, :3]
    closest = min(np.linalg.norm(a - b) for a, b in itertools.combinations(rgb, 2))
    assert closest > 0.15, closest  # viridis' z = 25 and z = 35 were 0.09 apart
    renderer = _rendered(fig)
    ends = {a.get_text(): Text.get_window_extent(a, renderer) for a in fig.axes[0].texts
            if a.get_text().startswith("z=")}
    assert set(ends) == {f"z={z}" for z in finals}
    by_height = sorted(ends, key=lambda t: ends[t].y0)
    assert by_height == [f"z={z}" for z in sorted(finals, key=finals.get)]  # lowest curve end, lowest label
    assert not any(ends[a].overlaps(ends[b]) for a, b in itertools.combinations(ends, 2))
    # a label that collides with nothing stays at its curve's end (z = 2, z = 5: alone at -140 and -113)
    ax = fig.axes[0]
    for z in (2, 5):
        end_px = ax.transData.transform((40.0, finals[z]))[1]
        assert abs((ends[f"z={z}"].y0 + ends[f"z={z}"].y1) / 2 - end_px) < 0.5 * ends[f"z={z}"].height, z


def test_a_curve_that_ends_early_is_labelled_at_its_own_end() -> None:
    """Each leader starts at its own curve's last point (a run of 20 epochs beside one of 40)."""
    long, short = np.arange(1, 41, dtype=float), np.arange(1, 21, dtype=float)
    curves = {"vae": [plots.Curve(2, long, -140 + 0 * long, long, -141 + 0 * long),
                      plots.Curve(5, short, -113 + 0 * short, short, -114 + 0 * short)]}
    fig = plots.training_curves(curves)
    anchors = {a.get_text(): a.xy for a in fig.axes[0].texts if a.get_text().startswith("z=")}
    assert anchors == {"z=2": (40.0, -140.0), "z=5": (20.0, -113.0)}


def test_spread_1d_moves_only_what_collides() -> None:
    from vaebench.report.labels import spread_1d

    assert list(spread_1d([0.0, 100.0], 10.0)) == [0.0, 100.0]  # apart: untouched
    assert list(spread_1d([50.0, 52.0, 0.0], 10.0)) == [46.0, 56.0, 0.0]  # a pair centred on its mean, 10 apart
    # blocks merge: a, a + 10, a + 20 nearest 0, 10, 11 in least squares: 3a + 9 = 0
    assert list(spread_1d([0.0, 10.0, 11.0], 10.0)) == pytest.approx([-3.0, 7.0, 17.0])
    assert list(spread_1d([0.0, 95.0, 99.0], 10.0, top=100.0)) == pytest.approx([0.0, 90.0, 100.0])  # under the top


def test_thesis_points_at_sizes_the_grid_lacks_do_not_stretch_the_axis() -> None:
    """The literature grid (z = 50 only) drew the thesis's 157 at z = 2 and 102 at z = 25: its own points sat
    in a corner of an axis from 80 to 160."""
    run = {"model": "vae", "zdim": 50, "neg_elbo": 90.9, "iwae_nll": 87.4, "iwae_nll_se": 0.2, "k": 5000,
           "n_images": 10000}
    fig = plots.nll_vs_zdim([run], [("vae", 2, 157.0), ("vae", 25, 102.0), ("cvae", 35, 98.5)])
    ax = fig.axes[0]
    low, high = ax.get_ylim()
    assert high < 95 and low > 80, (low, high)
    assert list(ax.get_xticks()) == [50]
    assert any(t.get_text().endswith("VAE z = 2 (157), VAE z = 25 (102), CVAE z = 35 (98.5)") for t in ax.texts)
    # where the grid has the model at that size, the point is drawn; the CVAE's at z = 35 beside VAEs only is not
    fig = plots.nll_vs_zdim([{**run, "zdim": 25}, {**run, "zdim": 35}], [("vae", 25, 102.0), ("cvae", 35, 98.5)])
    assert fig.axes[0].get_ylim()[1] > 102.0
    assert any(t.get_text().endswith("CVAE z = 35 (98.5)") for t in fig.axes[0].texts)


def test_the_report_title_is_the_pipelines_own() -> None:
    """The literature pipelines name their setting in the tables' heading and the page's title."""
    from pathlib import Path

    import yaml

    root = Path(__file__).resolve().parents[1]
    titles = []
    for dvcfile in (root / "literature" / "dvc.yaml", root / "literature" / "short" / "dvc.yaml"):
        words = shlex.split(yaml.safe_load(dvcfile.read_text())["stages"]["report"]["cmd"])
        assert "--title" in words
        titles.append(words[words.index("--title") + 1])
    assert len(set(titles)) == 2 and TITLE not in titles and all(t.startswith("vaebench, ") for t in titles)


def test_families_at_one_size_are_drawn_side_by_side_and_the_others_stay_on_their_size() -> None:
    """The four Gaussian variants run at z = 20 beside the VAE's z = 20: drawn at z = 20 each, their interval bars
    hid one another (beta = 0.5's inside the VAE's); now they sit side by side within the gap to z = 15 and 25."""
    def row(model, size, nll, latent="gaussian"):
        return {"model": model, "run": f"{model}-{size}", "size": size, "latent": latent, "classes": 10,
                "setting": model, "iwae_nll": nll, "iwae_nll_se": 0.3, "iwae_nll_lo": nll - 2.0, "iwae_nll_hi": nll + 2.0,
                "exact_nll": None, "k": 500, "n_seeds": 3}

    zs = [2, 5, 10, 15, 20, 25, 35, 50]
    rows = [row("vae", z, 95.0 + 40 / z) for z in zs]
    rows += [row(m, 20, v) for m, v in (("beta0_5", 95.4), ("beta4", 108.0), ("iwae5", 91.5), ("denoise", 116.5))]
    fig = variant_plots.nll_by_family(rows)
    ax = fig.axes[0]
    centres = {c.get_label(): c.lines[0].get_xdata() for c in ax.containers}  # each errorbar's data line
    vae = next(x for label, x in centres.items() if label.startswith("VAE"))
    at_20 = sorted([vae[zs.index(20)]] + [x[0] for label, x in centres.items() if not label.startswith("VAE")])
    assert len(set(at_20)) == 5 and 15 < at_20[0] and at_20[-1] < 25  # five places, between the neighbours
    assert np.allclose(np.diff(at_20), np.diff(at_20)[0]) and np.mean(at_20) == pytest.approx(20)  # even, centred
    assert [x for z, x in zip(zs, vae) if z != 20] == [z for z in zs if z != 20]  # the rest of the line unmoved
    assert "side by side" in ax.get_title()
    # at 5, two series over 0.6 x its gap to 2 (3): -0.9 and +0.9, or over 0.05 x the range of sizes (7) where that
    # is less; a size one series has stays put
    assert np.allclose(sum(dodge([[2, 5], [5], [9]], span=1.0), []), [0.0, -0.9, 0.9, 0.0])
    assert np.allclose(sum(dodge([[2, 5], [5], [9]]), []), [0.0, -0.175, 0.175, 0.0])


def test_the_vae_and_the_cvae_at_one_latent_size_are_drawn_side_by_side_with_the_thesis_on_its_models_column() -> None:
    """The VAE's -log p(x) and the CVAE's label-marginalised -log p(x) lie within a nat or two at every z: drawn at
    the same x, their interval bars covered each other. Now the VAE's column sits left of each size, the CVAE's
    right, a little of the axis apart; each thesis star on its model's column."""
    runs = []
    for m in ("vae", "cvae"):
        for z in (2, 5, 10, 20, 50):
            b = 95 + 40 / z
            r = {"model": m, "zdim": z, "k": 500, "n_images": 10000, "neg_elbo": b + 6, "iwae_nll": b,
                 "iwae_nll_se": 0.3}
            if m == "cvae":
                r.update(iwae_nll=b - 2.5, iwae_nll_marginal=b - 0.5, iwae_nll_marginal_se=0.3)
            runs.append(r)
    fig = plots.nll_vs_zdim(runs, [("vae", 2, 157.0), ("cvae", 50, 98.5)])
    ax = fig.axes[0]
    xs = {c.get_label(): list(c.lines[0].get_xdata()) for c in ax.containers}
    vae = [x for label, x in xs.items() if label.startswith("VAE")]
    cvae = [x for label, x in xs.items() if label.startswith("CVAE")]
    assert len(vae) == 2 and len(cvae) == 3 and all(x == vae[0] for x in vae) and all(x == cvae[0] for x in cvae)
    span = 50 - 2
    for z, left, right in zip((2, 5, 10, 20, 50), vae[0], cvae[0]):
        assert left < z < right and right - left == pytest.approx(min(0.03 * span, 0.6 * 3))  # 3: the gap at z = 2
        assert z - left == pytest.approx(right - z)
    star = next(line for line in ax.lines if line.get_marker() == "*")
    assert list(star.get_xdata()) == [vae[0][0], cvae[0][-1]]
