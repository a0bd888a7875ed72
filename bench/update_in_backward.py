"""The optimiser's update inside the backward pass (FlatOptimizer.backward_step) against backward() then step(),
side by side in one process, with the bytes compared at the end.

    python bench/update_in_backward.py                      # the thesis net (RMSprop) at batch 256 and 64,
                                                            # the literature net (Adam, tanh, 200 units) at 100 and 20
    python bench/update_in_backward.py --rounds 16 --nets thesis

Two copies of one model train on the same minibatches and noise (MNIST's training bits from data/mnist.npz;
synthetic bits without it), one thread unless `--threads` says otherwise: one with `zero_grad(); backward();
step()`, the other with `backward_step(loss)`, alternating every `--steps` steps so that both see the same machine
(a shared VM drifts within minutes). The first 3 steps of each block are not counted. Printed: each path's median
and 10th-percentile step, their ratio, the load beside them, and whether the two copies' weights are the same
bytes after the last step (both took every step).
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
from vaebench.run.fit import make_optimizer
from vaebench.streams import Draws, Stream

from bench import load, print_paths, step_bits  # bench/bench.py's (bench/ is first on sys.path when this runs as a script)


NETS = {  # name: (hidden units, activation, optimiser, learning rate, batch sizes)
    "thesis": (500, "relu", "rmsprop", 1e-3, (256, 64)),
    "literature": (200, "tanh", "adam", 1e-3, (100, 20)),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nets", nargs="+", choices=sorted(NETS), default=list(NETS))
    ap.add_argument("--rounds", type=int, default=8, help="blocks per path, alternating")
    ap.add_argument("--steps", type=int, default=25, help="steps per block")
    ap.add_argument("--zdim", type=int, default=50)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1: the grid's setting and the fused "
                    "update's; 2: a plain `dvc repro` here, RMSprop through torch's ops)")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    require_strict_mkl()
    bits, what = step_bits()  # (N, 784) uint8
    print(f"update in backward vs backward() + step(); z={a.zdim}, {what}, {a.threads} thread(s); {load()}")
    for net in a.nets:
        hidden, activation, optimizer, lr, batches = NETS[net]
        for bs in batches:
            copies = {}
            for name in ("step", "in backward"):
                torch.manual_seed(0)
                model = build_model("vae", a.zdim, hidden, activation)
                copies[name] = (model, make_optimizer(optimizer, model.parameters(), lr), Draws(Stream.EPOCH, 0, 0))
            perm = Draws(Stream.EPOCH, 1, 0).permutation(len(bits))
            times: dict[str, list[float]] = {name: [] for name in copies}
            for r in range(a.rounds):
                for name, (model, opt, g) in copies.items():
                    for i in range(a.steps):
                        step = r * a.steps + i  # both copies take the same minibatches, in the same order
                        t0 = time.perf_counter()
                        lo = (step * bs) % (len(bits) - bs)
                        x = bits.index_select(0, perm[lo:lo + bs]).float()  # (b, 784)
                        loss = -training_bound(model, PLAIN, x, x, None, g, torch.device("cpu"), 1.0).mean()
                        loss.item()
                        if name == "step":
                            opt.zero_grad(set_to_none=True)
                            loss.backward()
                            opt.step()
                        else:
                            opt.backward_step(loss)
                        if i >= 3:
                            times[name].append(time.perf_counter() - t0)
            same = all(torch.equal(p, q) for p, q in zip(copies["step"][0].parameters(),
                                                        copies["in backward"][0].parameters()))
            med = print_paths(f"{net:10s} {optimizer:7s} batch {bs:4d}", times)
            print(f"{net:10s} {optimizer:7s} batch {bs:4d}  in backward / step: {med['in backward'] / med['step']:.3f} "
                  f"({(med['step'] - med['in backward']) * 1e3:.2f} ms saved); weights after "
                  f"{a.rounds * a.steps} steps the same bytes: {same}", flush=True)


if __name__ == "__main__":
    main()
