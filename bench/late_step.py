"""The training step late in a run, where RMSprop's state has decayed into fp32's subnormals.

    python bench/late_step.py                                  # a synthetic decayed state (the default VAE, z = 50)
    python bench/late_step.py --state models/cvae-5-1.partial  # a real run's resumable state (its model and z)

Why: a unit that stopped firing gets zero gradients, and its square_avg decays by 0.99 a step: by epoch ~25 of
40 entries reach fp32's subnormal range, where the CPU `sqrt` torch calls takes ~20 ns an element instead of
~0.5. bench/bench.py times one epoch from initialisation and never sees it. This bench times, side by side in
one process, at one thread, on the same state and gradients (one real minibatch's):
  torch.optim.RMSprop's step, FlatRMSprop's step with the root floor (run/optim.py) and without it (floor 0),
  and a whole training step (forward, backward, FlatRMSprop) with the floor, for scale;
and checks that both FlatRMSprop variants give the same bytes as torch's (weights after the step).
The synthetic state: the real fractions of cvae-5-1 at epoch 38 of 40 (21.4 % subnormal, 7.7 % in
[2^-126, 1e-31]), drawn log-uniform within each range, the rest of the state at 1e-6.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import sys
import time
from pathlib import Path

import vaebench  # noqa: F401  (MKL's reproducible mode, before torch's first product)
import torch

from vaebench.core.models import build_model
from vaebench.core.objectives import training_bound
from vaebench.core.variants import PLAIN
from vaebench.run.checkpoint import read_tensors
from vaebench.run.optim import FlatRMSprop, sqrt_floor
from vaebench.streams import Draws, Stream

from bench import load  # bench/bench.py's (bench/ is first on sys.path when this runs as a script)


class NoFloor(FlatRMSprop):
    """FlatRMSprop as it was before the floor (2026-12-07): the root of v itself."""

    def _update(self, p, g, slot, group) -> None:  # type: ignore[no-untyped-def]
        v, d = slot["square_avg"], slot["work"]
        v.mul_(group["alpha"]).addcmul_(g, g, value=1 - group["alpha"])
        torch.sqrt(v, out=d).add_(group["eps"])
        p.addcdiv_(g, d, value=-group["lr"])


def model_and_state(args: argparse.Namespace) -> tuple[torch.nn.Module, str, dict[int, torch.Tensor], str]:
    if args.state:
        info = json.loads((Path(args.state) / "state.json").read_text())
        fp = info["fingerprint"]
        v = fp.get("variant")  # a variant's pieces; only its latent family shapes the net
        if v and v.get("latent") != "gaussian":
            sys.exit(f"late_step: {args.state} is a {v.get('latent')} variant; this bench takes Gaussian VAEs and CVAEs")
        model = build_model("vae" if v else fp["model"], fp["zdim"], fp["hidden"], fp.get("activation", "relu"))
        tensors = read_tensors(Path(args.state) / "state.safetensors")
        model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
        sq = {int(k.split(".")[1]): v for k, v in tensors.items() if k.endswith(".square_avg")}
        return model, "vae" if v else fp["model"], sq, f"{args.state} (epoch {info['epoch']} of {fp['train']['epochs']})"
    torch.manual_seed(0)
    model = build_model("vae", args.zdim, 500)
    g = torch.Generator().manual_seed(1)
    sq = {}
    for i, p in enumerate(model.parameters()):
        u = torch.rand(p.shape, generator=g)
        sub = torch.exp2(-126 - 23 * torch.rand(p.shape, generator=g))  # [2^-149, 2^-126]
        small = torch.exp2(-103 - 23 * torch.rand(p.shape, generator=g))  # [2^-126, 2^-103]
        sq[i] = torch.where(u < 0.214, sub, torch.where(u < 0.291, small, torch.full(p.shape, 1e-6)))
    return model, "vae", sq, f"synthetic vae z={args.zdim}: 21.4 % subnormal, 7.7 % in [2^-126, 1e-31]"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--state", help="a models/<run>.partial folder (default: a synthetic state)")
    ap.add_argument("--zdim", type=int, default=50, help="latent size of the synthetic state's VAE")
    ap.add_argument("--repeat", type=int, default=3, help="rounds of A/B/A/B (each 20 steps per variant)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    model, kind, sq, what = model_and_state(args)
    ps = list(model.parameters())
    n_sub = sum(((v > 0) & (v < torch.finfo(torch.float32).tiny)).sum().item() for v in sq.values())
    n = sum(v.numel() for v in sq.values())
    print(f"late_step: {what}; {n:,} parameters, {n_sub / n:.1%} of square_avg subnormal; "
          f"{os.uname().machine}, 1 thread [{load()}]")
    # one real minibatch's gradients (a batch of 256 random binary images; a CVAE gets labels)
    g = torch.Generator().manual_seed(2)
    x = (torch.rand(256, 784, generator=g) < 0.13).float()
    y = torch.randint(0, 10, (256,), generator=g) if kind == "cvae" else None

    def grads() -> None:
        for p in ps:
            p.grad = None
        (-training_bound(model, PLAIN, x, x, y, Draws(Stream.EPOCH, 0, 0), x.device, 1.0).mean()).backward()

    grads()
    # entries whose state decayed got zero gradients in the run: zero them here too
    for i, p in enumerate(ps):
        p.grad[sq[i] < 1e-20] = 0
    weights = [p.detach().clone() for p in ps]

    def make(kind_: str) -> torch.optim.Optimizer:
        cls = {"torch": torch.optim.RMSprop, "flat, no floor": NoFloor, "flat, floor": FlatRMSprop}[kind_]
        opt = cls(ps, lr=1e-3, eps=1e-8)
        state = {i: {"step": torch.tensor(9000.0), "square_avg": sq[i].clone()} for i in range(len(ps))}
        group = copy.deepcopy(opt.state_dict()["param_groups"])
        opt.load_state_dict({"state": state, "param_groups": group})
        return opt

    variants = ["torch", "flat, no floor", "flat, floor"]
    times: dict[str, list[float]] = {v: [] for v in variants}
    after: dict[str, list[torch.Tensor]] = {}
    for _ in range(args.repeat):
        for v in variants:
            opt = make(v)
            for step in range(21):
                with torch.no_grad():
                    for p, w in zip(ps, weights):
                        p.copy_(w)
                t0 = time.perf_counter()
                opt.step()
                if step:  # the first step warms up
                    times[v].append(time.perf_counter() - t0)
                if step == 0:
                    after[v] = [p.detach().clone() for p in ps]
    print(f"optimiser step alone, best / median of {len(times['torch'])} steps per variant:")
    for v in variants:
        same = all(torch.equal(a, b) for a, b in zip(after[v], after["torch"]))
        print(f"  {v:16s} {min(times[v]) * 1e3:6.2f} ms / {statistics.median(times[v]) * 1e3:6.2f} ms"
              f"   weights after one step {'= torch' if same else 'DIFFER from torch'}  [{load()}]")
    print(f"  floor {sqrt_floor(1e-8):.3g} (eps 1e-8): speed-up "
          f"{statistics.median(times['flat, no floor']) / statistics.median(times['flat, floor']):.2f}x median")
    opt = make("flat, floor")
    steps = []
    for _ in range(10):
        t0 = time.perf_counter()
        grads()
        opt.step()
        steps.append(time.perf_counter() - t0)
    print(f"whole training step (forward, backward, FlatRMSprop with the floor), batch 256: "
          f"{min(steps) * 1e3:.1f} ms best, {statistics.median(steps) * 1e3:.1f} ms median  [{load()}]")


if __name__ == "__main__":
    sys.exit(main())
