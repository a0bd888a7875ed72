"""How much a trained model's IWAE NLL moves with the draw of the test bits (dynamic binarisation).

    python bench/test_draws.py --params literature/params.yaml --models literature/models --items vae-50
    python bench/test_draws.py --items vae-20 --test-seeds 1234 1 2 --images 2000 --k 500

vaebench scores every model on one draw of the binarised test images (data.test_seed, 1234); Burda et
al. 2016 drew the test bits afresh at each evaluation. This prints, for each draw s of the test bits, the
mean IWAE NLL over the images (the same k, evaluation seed and images for every draw), and beside each
draw after the first its paired difference from the first with the standard error of that difference
over images, and the spread across draws of a mean over the whole test set (10,000 images) that the per-image
differences predict: how far the pipeline's number could move on another draw. The first --test-seeds
entry should be the pipeline's own (its NLL then repeats the evaluate stage's on those images).

Reads the params, data and checkpoints like bench/iwae_seeds.py (the checkpoint must match the params).
Not a test: nothing asserts; it prints figures, with the load average beside each.
"""

from __future__ import annotations

import argparse
import math
import os
import time

import pipeline_inputs
import torch

from vaebench.run.data import binarize_test
from vaebench.core.estimators import iwae_log_px


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--items", nargs="+", required=True, help="runs such as vae-50 (checkpoints under --models)")
    ap.add_argument("--test-seeds", nargs="+", type=int, default=[1234, 1, 2],
                    help="draws of the test bits; the first is the pipeline's (data.test_seed)")
    ap.add_argument("--images", type=int, default=10_000, help="first N test images")
    ap.add_argument("--k", type=int, help="importance samples [eval.k]")
    pipeline_inputs.add_arguments(ap)
    a = ap.parse_args()
    p, data, _ = pipeline_inputs.load(a)
    if p.data.binarize != "dynamic":
        ap.error(f"data.binarize is {p.data.binarize!r}: only a dynamic binarisation has other draws")
    k = a.k or p.eval.k
    labels = data.test_y[: a.images]
    print(f"IWAE NLL across draws of the test bits {a.test_seeds}: k={k}, eval seed {p.eval.seed}, "
          f"first {len(labels)} test images, torch threads {torch.get_num_threads()}")
    for item in a.items:
        model = pipeline_inputs.trained_model(item, p, data, a.models)
        y = labels if model.conditional else None
        first = None
        for s in a.test_seeds:
            t0 = time.perf_counter()
            x = binarize_test(data.test_x, "dynamic", s)[: a.images]  # (N, 784): the draw of the whole test set
            log_p = iwae_log_px(model, x, y, k, p.eval.seed, p.eval.chunk).double()  # (N,)
            line = f"{item} draw {s:>5}: NLL {-log_p.mean().item():8.3f} ± {log_p.std().item() / math.sqrt(len(log_p)):.3f}"
            if first is None:
                first = log_p
            else:  # paired over the same images: the draw's own effect, without the spread across images
                d = first - log_p  # NLL(draw s) - NLL(first draw), per image
                line += f"   minus the first: {d.mean().item():+.3f} ± {d.std().item() / math.sqrt(len(d)):.3f}"
                # var(d_i) = 2 var_draw(NLL_i) (independent draws; plus the IWAE's own noise, small at large k):
                # the spread across draws of a mean over the whole test set, predicted from these N images:
                # var(mean over n) = mean_i var_draw(NLL_i) / n = var(d) / (2 n)
                n_test = len(data.test_x)  # the whole test set the pipeline scores (data.test_subset)
                line += f"; sd of a {n_test:,}-image mean across draws {d.std().item() / math.sqrt(2 * n_test):.4f}"
            print(f"{line}   ({time.perf_counter() - t0:.0f} s, load {os.getloadavg()[0]:.2f})", flush=True)


if __name__ == "__main__":
    main()
