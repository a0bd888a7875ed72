"""RMSprop's fused kernel against torch's ops, side by side in one process: the training step's time either way.

    python bench/fused_step.py                 # batch 256 and 64, one thread, 8 rounds of 25 steps per path
    python bench/fused_step.py --batch 256 --rounds 16

One model and optimiser train on MNIST's training bits (data/mnist.npz; synthetic bits without it) as fit()
trains them (uint8 bits gathered per minibatch, one reparameterised sample, the VAE's ELBO); the update path
alternates every `--steps` steps between the fused kernel (vaebench/run/fused.py) and torch's six passes, so
both see the same machine: a shared VM's speed drifts within minutes, and bench.py's separate runs of each
path differed by more than the gain measured here. The first 3 steps of each block are not counted (the
switch). Printed: the median and 10th-percentile step of each path, their ratio, the load beside them.
The weights are the same bytes either way (tests/test_optim.py), so the two paths share one run.
"""

from __future__ import annotations

import argparse
import time

import vaebench  # noqa: F401  (first: MKL's strict mode before any matrix product)
import torch

from vaebench.core.models import build_model
from vaebench.core.objectives import training_bound
from vaebench.core.variants import PLAIN
from vaebench.numerics import require_strict_mkl
from vaebench.run import fused
from vaebench.run.fit import make_optimizer
from vaebench.streams import Draws, Stream

from bench import load, print_paths, step_bits  # bench/bench.py's (bench/ is first on sys.path when this runs as a script)

def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, nargs="+", default=[256, 64])
    ap.add_argument("--rounds", type=int, default=8, help="blocks per path, alternating")
    ap.add_argument("--steps", type=int, default=25, help="steps per block")
    ap.add_argument("--zdim", type=int, default=50)
    a = ap.parse_args()
    torch.set_num_threads(1)  # the kernel's setting (one thread, as vaebench-grid runs a stage)
    require_strict_mkl()
    k, why = fused.kernel()
    if k is None:
        raise SystemExit(f"no fused kernel here: {why}")
    bits, what = step_bits()  # (N, 784) uint8
    print(f"RMSprop update: fused kernel vs torch ops; vae z={a.zdim} hidden 500, {what}, one thread; {load()}")
    paths = {"fused": (k, why), "torch ops": (None, "torch ops")}
    real = fused.kernel
    try:
        for bs in a.batch:
            model = build_model("vae", a.zdim, 500)
            opt = make_optimizer("rmsprop", model.parameters(), 1e-3)
            g = Draws(Stream.EPOCH, 0, 0)
            perm = g.permutation(len(bits))
            times: dict[str, list[float]] = {p: [] for p in paths}
            step = 0
            for _ in range(a.rounds):
                for name, answer in paths.items():
                    fused.kernel = lambda answer=answer: answer  # type: ignore[assignment]
                    for i in range(a.steps):
                        t0 = time.perf_counter()
                        lo = (step * bs) % (len(bits) - bs)
                        x = bits.index_select(0, perm[lo:lo + bs]).float()
                        loss = -training_bound(model, PLAIN, x, x, None, g, torch.device("cpu"), 1.0).mean()
                        loss.item()
                        opt.zero_grad(set_to_none=True)
                        loss.backward()
                        opt.step()
                        step += 1
                        if i >= 3:
                            times[name].append(time.perf_counter() - t0)
            med = print_paths(f"batch {bs:4d}", times)
            print(f"batch {bs:4d}  fused / torch ops: {med['fused'] / med['torch ops']:.3f} of the step "
                  f"({(med['torch ops'] - med['fused']) * 1e3:.2f} ms saved)", flush=True)
    finally:
        fused.kernel = real


if __name__ == "__main__":
    main()
