"""How much the IWAE NLL of a trained model moves with the evaluation seed, against its standard error over images.

    python bench/iwae_seeds.py          # every grid item, eval.seed and the next two, first 2,000 test images
    python bench/iwae_seeds.py --items vae-2 cvae-35 --seeds 0 1 2 3 --images 10000

Reads params.yaml, data/mnist.npz and the trained checkpoints in models/ (run `dvc repro` first) and
scores each model with `vaebench.evaluate.iwae_log_px` exactly as the evaluate stage does (eval.k,
eval.chunk; for a CVAE the conditional log p(x|y)), once per seed. Image i's samples depend only on
(seed, i, label), so seed 0 on the first N images gives the pipeline's own per-image values.

Printed per item, in nats per image:
  nll[s]       the mean IWAE NLL over the N images for each seed s
  se_images    standard error over images, sd_i(log p_i) / sqrt(N), from seed 0 (what the tables print as ±)
  sd_seeds     the spread across seeds of a mean over the whole test set (10,000 images), predicted from
               the per-image variance across seeds: sqrt(mean_i var_s(log p_i) / 10000). The seeds are
               independent for every image, so the N images give N estimates of that variance and the
               prediction is far steadier than the sd of a handful of seed means (`sd_means`, printed too,
               for these N images).
Not a test: nothing asserts; it prints figures for the checkpoints at hand.
"""

from __future__ import annotations

import argparse
import math
import time

import pipeline_inputs
import torch

from vaebench.core.estimators import eval_seed_spread, iwae_log_px
from vaebench.config import run_name

TEST_IMAGES = 10_000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--items", nargs="*", help="grid items such as vae-2 cvae-35 (default: the whole grid)")
    ap.add_argument("--seeds", nargs="+", type=int, help="evaluation seeds (default: eval.seed and the next two)")
    ap.add_argument("--images", type=int, default=2000, help="first N test images")
    pipeline_inputs.add_arguments(ap)
    a = ap.parse_args()
    p, data, bits = pipeline_inputs.load(a)
    a.seeds = a.seeds or [p.eval.seed, p.eval.seed + 1, p.eval.seed + 2]
    if len(set(a.seeds)) < 2:
        ap.error("--seeds: give at least two different seeds")
    x = bits[: a.images]  # (N, 784): the pipeline's bits
    labels = data.test_y[: a.images]
    items = a.items or [run_name(m, z, p.grid.seeds[0]) for m in p.grid.models for z in p.grid.zdims]
    print(f"IWAE NLL across evaluation seeds {a.seeds}: k={p.eval.k}, first {len(x)} test images, "
          f"torch threads {torch.get_num_threads()}")
    # se_images: standard error over the N images; sd_pred: predicted SD across seeds of an N-image mean;
    # sd_means: the observed SD of the seeds' N-image means (comparable with sd_pred); sd_10k: sd_pred
    # scaled to the 10,000-image mean, which is what the evaluate stage reports as iwae_nll_eval_sd
    print(f"{'item':>8}  {'nll per seed':>{9 * len(a.seeds)}}  {'se_images':>9}  {'sd_pred':>8}  {'sd_means':>8}  "
          f"{'sd_10k':>8}  {'s':>5}")
    for item in items:
        model = pipeline_inputs.trained_model(item, p, data, a.models)
        y = labels if model.conditional else None
        t0 = time.perf_counter()
        per_seed = torch.stack([iwae_log_px(model, x, y, p.eval.k, s, p.eval.chunk).double() for s in a.seeds])  # (S, N)
        nll = -per_seed.mean(1)  # (S,)
        se_images = per_seed[0].std().item() / math.sqrt(per_seed.shape[1])
        sd_pred = eval_seed_spread(per_seed, per_seed.shape[1])  # of an N-image mean, like sd_means
        sd_10k = eval_seed_spread(per_seed, TEST_IMAGES)  # what the evaluate stage reports as iwae_nll_eval_sd
        print(f"{item:>8}  {' '.join(f'{v:8.3f}' for v in nll.tolist())}  {se_images:9.3f}  {sd_pred:8.4f}  "
              f"{nll.std().item():8.4f}  {sd_10k:8.4f}  {time.perf_counter() - t0:5.0f}", flush=True)


if __name__ == "__main__":
    main()
