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

import torch
from pipeline_inputs import add_arguments, load, parse_item, trained_model

from vaebench.run.checkpoint import CheckpointError
from vaebench.run.score import restoration


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", nargs="+", default=["vae-20", "denoise-20"])
    ap.add_argument("--noise", type=float, default=0.2)
    add_arguments(ap)
    a = ap.parse_args()
    params, data, x = load(a)  # x (N, 784): the pipeline's test bits
    print(f"restoration at bit-flip rate {a.noise}, {len(x)} test images, eval.seed {params.eval.seed}; "
          f"torch threads {torch.get_num_threads()}, load {os.getloadavg()[0]:.2f}")
    for run in a.runs:
        if parse_item(run)[0] == "cvae":  # restoration() encodes without labels, as the denoising variants need
            raise SystemExit(f"{run}: a CVAE needs the digit to encode; restoration is scored for unconditional runs")
        try:
            model = trained_model(run, params, data, a.models)
        except CheckpointError as e:
            raise SystemExit(f"{run}: {e}") from None
        r = restoration(model, x, a.noise, params.eval.seed)
        print(f"{run:12s} from the corrupted code {r['restore_nll']:8.2f} ± {r['restore_nll_se']:.2f}   "
              f"from the clean code {r['restore_nll_clean']:8.2f} ± {r['restore_nll_clean_se']:.2f}")


if __name__ == "__main__":
    main()
