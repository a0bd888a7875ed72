"""How far a training step is from its matrix products, and what each kind of change could still buy: fit's step
beside two floors, side by side in one process.

    python bench/step_floors.py                 # batch 256 and 64, one thread, 10 rounds of 25 steps per path
    python bench/step_floors.py --batch 256 --rounds 16

Paths, alternating every `--steps` steps on one machine (a shared VM drifts within minutes; the first 3 steps of
each block are not counted), each on its own copy of one model, MNIST's training bits (synthetic without
data/mnist.npz):
- `fit's step`: what fit runs (uint8 bits gathered, the VAE's ELBO, backward with RMSprop's update inside it).
- `free loss`: the same network, autograd and update, but the loss's elementwise passes (the reparameterisation,
  the Bernoulli log-likelihood, the KL, the mean) replaced by a function whose gradient is a constant: the most
  that any rewrite of the loss could save, fusions that change the rounding (and so every trained byte) included.
- `GEMMs + update`: the step's 17 matrix products on fixed operands and the fused RMSprop update on fixed
  gradients, nothing else: no Python around the model, no autograd, no elementwise pass. The floor of this
  step with these GEMMs and this update.
Printed: each path's median step, its share of this machine's fp32 peak (measured first as bench.py measures it, on its
shapes: square `torch.mm`s, the step's own, the IWAE decoder's), the load beside them. Times only: the `free loss` and `GEMMs + update` paths train nothing meaningful.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import vaebench  # noqa: F401  (first: MKL's strict mode before any matrix product)
import torch

from vaebench.core.models import build_model
from vaebench.core.objectives import training_bound
from vaebench.core.variants import PLAIN
from vaebench.numerics import require_strict_mkl
from vaebench.config import load_params
from vaebench.run.fit import make_optimizer
from vaebench.streams import Draws, Stream

from bench import gemm_step, load, matmul_gflops, peak_shapes, step_bits, train_flops_per_image  # bench/bench.py's

REPO = Path(__file__).resolve().parents[1]


class _FreeLoss(torch.autograd.Function):
    """A scalar whose gradient reaches the decoder's logits and q's parameters as constants: the network's backward
    runs in full, the loss's own passes do not."""

    @staticmethod
    def forward(ctx, logits: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        ctx.shapes = logits.shape, mu.shape
        return logits.new_zeros(())

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, ...]:  # type: ignore[override]
        (ls, ms) = ctx.shapes
        return torch.full(ls, 1e-6), torch.full(ms, 1e-6), torch.full(ms, 1e-6)


def _free_loss(model, x: torch.Tensor, g: Draws) -> torch.Tensor:
    mu, logvar = model.encode(x)  # (b, D) each
    return _FreeLoss.apply(model.decode(mu + logvar), mu, logvar)  # no noise, no exp: the cheapest way through


def _gemms_and_update(bs: int, zdim: int, hidden: int):
    """A step of the 17 products (6 forward addmm, 5 input-gradient mm, 6 weight-gradient mm) and the update."""
    products = gemm_step(bs, zdim, hidden)
    model = build_model("vae", zdim, hidden)
    opt = make_optimizer("rmsprop", model.parameters(), 1e-3)
    grads = [torch.full_like(p, 1e-6) for p in model.parameters()]

    def step() -> None:
        products()
        for p, gp in zip(model.parameters(), grads):
            p.grad = gp
        opt.step()

    return step


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, nargs="+", default=[256, 64])
    ap.add_argument("--rounds", type=int, default=10, help="blocks per path, alternating")
    ap.add_argument("--steps", type=int, default=25, help="steps per block")
    ap.add_argument("--zdim", type=int, default=50)
    ap.add_argument("--hidden", type=int, default=500)
    a = ap.parse_args()
    torch.set_num_threads(1)  # the grid's setting (and the fused update's)
    require_strict_mkl()
    bits, what = step_bits()  # (N, 784) uint8
    # the peak as bench.py measures it (its shapes at these batch sizes and params.yaml's eval.chunk)
    peak = max(matmul_gflops(m, k, n, 0.8)
               for _, m, k, n in peak_shapes(a.batch, a.hidden, load_params(REPO / "params.yaml").eval.chunk))
    print(f"training step floors; vae z={a.zdim} hidden {a.hidden}, {what}, one thread; fp32 peak {peak:.1f} GFLOP/s "
          f"(bench.py's: the best of square, step- and IWAE-shaped torch.mm); {load()}")
    for bs in a.batch:
        flop = train_flops_per_image(a.zdim, a.hidden) * bs
        perm = Draws(Stream.EPOCH, 1, 0).permutation(len(bits))
        paths = {}
        for name, loss_fn in (("fit's step", None), ("free loss", _free_loss)):
            torch.manual_seed(0)
            model = build_model("vae", a.zdim, a.hidden)
            paths[name] = (model, make_optimizer("rmsprop", model.parameters(), 1e-3), Draws(Stream.EPOCH, 0, 0), loss_fn)
        ideal = _gemms_and_update(bs, a.zdim, a.hidden)
        times: dict[str, list[float]] = {name: [] for name in (*paths, "GEMMs + update")}
        for r in range(a.rounds):
            for name in times:
                for i in range(a.steps):
                    t0 = time.perf_counter()
                    if name in paths:
                        model, opt, g, loss_fn = paths[name]
                        lo = ((r * a.steps + i) * bs) % (len(bits) - bs)
                        x = bits.index_select(0, perm[lo:lo + bs]).float()  # (b, 784)
                        loss = (-training_bound(model, PLAIN, x, x, None, g, torch.device("cpu"), 1.0).mean()
                                if loss_fn is None else loss_fn(model, x, g))
                        loss.item()
                        opt.backward_step(loss)
                    else:
                        ideal()
                    if i >= 3:
                        times[name].append(time.perf_counter() - t0)
        med = {name: statistics.median(t) for name, t in times.items()}
        for name, t in med.items():
            print(f"batch {bs:4d}  {name:15s} median {t * 1e3:6.2f} ms  {flop / t / 1e9:6.1f} GFLOP/s = "
                  f"{flop / t / 1e9 / peak:5.1%} of peak  ({len(times[name])} steps)  [{load()}]")
        fit = med["fit's step"]
        print(f"batch {bs:4d}  the loss's passes: {(fit - med['free loss']) * 1e3:.2f} ms "
              f"({(fit - med['free loss']) / fit:.1%} of the step); everything but the GEMMs and the update: "
              f"{(fit - med['GEMMs + update']) * 1e3:.2f} ms ({(fit - med['GEMMs + update']) / fit:.1%})", flush=True)


if __name__ == "__main__":
    main()
