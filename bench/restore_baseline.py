"""The denoising VAE's restoration beside the plain VAE's: how much does training on corrupted inputs help?

    python bench/restore_baseline.py [--runs vae-20 denoise-20] [--noise 0.2]   # about 10 s a run

After `dvc repro`: scores each trained model in models/ with runs.restoration, the function the
evaluate-variant stage uses (-log p(x | z = code of x~) for x~ = x with each bit flipped at --noise, stream
TEST_CORRUPT(eval.seed), and from the clean image's own code), on the pipeline's test bits. The
pipeline reports it for denoising variants only; this prints it for any unconditional run (not a CVAE),
so the denoising VAE's figure has the plain VAE's beside it. Nats per image, ± one standard error over test images.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import torch

from vaebench.checkpoint import CheckpointError
from vaebench.config import load_params, split_run
from vaebench.data import binarize_test
from vaebench.runs import load_current, load_data, restoration


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", nargs="+", default=["vae-20", "denoise-20"])
    ap.add_argument("--noise", type=float, default=0.2)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--data", default="data/mnist.npz")
    ap.add_argument("--models", default="models", help="the folder holding each run's checkpoint")
    a = ap.parse_args()
    params = load_params(a.params)
    data = load_data(params, a.data)
    x = binarize_test(data.test_x, params.data.binarize, params.data.test_seed)  # (N, 784), the pipeline's bits
    print(f"restoration at bit-flip rate {a.noise}, {len(x)} test images, eval.seed {params.eval.seed}; "
          f"torch threads {torch.get_num_threads()}, load {os.getloadavg()[0]:.2f}")
    for run in a.runs:
        model_name, size = split_run(run)
        if model_name == "cvae":  # restoration() encodes without labels, as the denoising variants need
            raise SystemExit(f"{run}: a CVAE needs the digit to encode; restoration is scored for unconditional runs")
        try:
            model, _ = load_current(model_name, size, params, data, Path(a.models) / run)
        except CheckpointError as e:
            raise SystemExit(f"{run}: {e}") from None
        r = restoration(model, x, a.noise, params.eval.seed)
        print(f"{run:12s} from the corrupted code {r['restore_nll']:8.2f} ± {r['restore_nll_se']:.2f}   "
              f"from the clean code {r['restore_nll_clean']:8.2f} ± {r['restore_nll_clean_se']:.2f}")


if __name__ == "__main__":
    main()
