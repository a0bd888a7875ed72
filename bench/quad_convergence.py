"""Convergence of the pipeline's exact NLL (quadrature) as its grid is refined and widened.

    python bench/quad_convergence.py                  # the z <= 2 grid items, first 2,000 test images (~15 min)
    python bench/quad_convergence.py --images 10000   # all test images (~50 min on 2 cores)
    python bench/quad_convergence.py --items vae-2 --refine 0.5 1 2 4 --widen -2 0 2

Reads params.yaml, data/mnist.npz and the trained checkpoints in models/ (run `dvc repro` first) and
recomputes `vaebench.quadrature.quad_log_px` on the same test images with other grids around the
pipeline's (n = eval.quad_n points per axis over [-L, L], L = eval.quad_half_width):

  refine   n' = f * n points over the same [-L, L] for each factor f (--refine). The grids' midpoints
           interleave, so each is an independent evaluation of the integral, not a sub-grid of another.
  widen    [-(L + w), L + w] with the pipeline's spacing 2L/n, for each w (--widen): how much mass the
           prior's tails beyond the pipeline's window hold for these models.

Printed per item, in nats per image (NLL = -log p(x), or -log p(x|y) for a CVAE): the mean NLL on each
grid and its difference from the pipeline's; for the finest grid also quantiles of the per-image
difference (single images with posteriors narrower than the spacing are rougher than the mean,
whose errors largely cancel), and the pipeline's own statement of its mean's error
(quad_refine_delta + quad_widen_delta, from the coarse and inner sub-grids of its one grid).
Not a test: nothing asserts.
"""

from __future__ import annotations

import argparse
import time

import pipeline_inputs
import torch

from vaebench.core.quadrature import quadrature
from vaebench.config import run_name

QUANTILES = (0.5, 0.9, 0.99, 1.0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--items", nargs="*", help="grid items with zdim 1 or 2, such as vae-2 (default: all of them)")
    ap.add_argument("--images", type=int, default=2000, help="first N test images (10000 for all)")
    ap.add_argument("--refine", nargs="+", type=float, default=[0.125, 0.25, 0.5, 2.0],
                    help="factors f: grids of f * eval.quad_n points per axis over the same window")
    ap.add_argument("--widen", nargs="+", type=float, default=[-6.0, -4.0, -2.0, 2.0],
                    help="w: windows [-(L + w), L + w] at the pipeline's spacing")
    pipeline_inputs.add_arguments(ap)
    a = ap.parse_args()
    p, data, bits = pipeline_inputs.load(a)
    items = a.items or [run_name(m, z, p.grid.seeds[0]) for m in p.grid.models for z in p.grid.zdims if z <= 2]
    if bad := [i for i in items if pipeline_inputs.parse_item(i)[1] not in (1, 2)]:
        ap.error(f"--items: the quadrature is for zdim 1 or 2 only, not {', '.join(bad)}")
    n, half = p.eval.quad_n, p.eval.quad_half_width
    h = 2 * half / n
    grids = [(round(f * n), half) for f in a.refine] + [(round(n * (half + w) / half), half + w) for w in a.widen]
    if bad := [(g, L) for g, L in grids if g < 2 or L <= 0]:
        ap.error(f"--refine/--widen: grids with fewer than 2 points or an empty window: {bad}")
    x, labels = bits[: a.images], data.test_y[: a.images]  # (N, 784), (N,): the pipeline's bits
    print(f"exact NLL on the first {len(x)} test images; the pipeline's grid: {n} points per axis over "
          f"[-{half:g}, {half:g}] (spacing {h:g}); torch threads {torch.get_num_threads()}")
    for item in items:
        model = pipeline_inputs.trained_model(item, p, data, a.models)
        y = labels if model.conditional else None
        t0 = time.perf_counter()
        q = quadrature(model, x, y, half, n)
        stated = q.mean_error()
        print(f"\n{item}: pipeline grid NLL {-q.log_px.mean().item():.5f}, its stated error of the mean {stated:.5f}")
        print(f"  {'points/axis':>11} {'window':>10} {'spacing':>8} {'NLL':>10} {'minus pipe.':>11}")
        finest, finest_h = None, h
        for g, L in sorted(grids, key=lambda gl: (gl[1] != half, gl[1], gl[0])):
            lp = quadrature(model, x, y, L, g).log_px  # (N,)
            print(f"  {g:>11} {f'±{L:g}':>10} {2 * L / g:8.4f} {-lp.mean().item():10.5f} "
                  f"{(q.log_px - lp).mean().item():11.5f}   [{time.perf_counter() - t0:.0f} s]", flush=True)
            if L == half and 2 * L / g < finest_h:
                finest, finest_h = lp, 2 * L / g
        if finest is not None:
            per_image = (q.log_px - finest).abs()  # (N,)
            quant = torch.quantile(per_image, torch.tensor(QUANTILES, dtype=per_image.dtype)).tolist()
            print(f"  per image |pipeline - spacing {finest_h:g}|: "
                  + ", ".join(f"{'max' if qq == 1 else f'q{qq:g}'} {v:.4f}" for qq, v in zip(QUANTILES, quant)))


if __name__ == "__main__":
    main()
