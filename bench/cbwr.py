"""What MKL's strict reproducibility mode (MKL_CBWR=AUTO,STRICT) costs, measured side by side.

    python bench/cbwr.py                 # about 2 minutes on 2 cores
    python bench/cbwr.py --rounds 5 --threads 1 2

vaebench asks MKL for AUTO,STRICT so that its bytes do not depend on the thread count
(vaebench/numerics.py). The mode is fixed at MKL's first call in a process, so each measurement
runs in a fresh subprocess: "strict" imports vaebench first, "default" runs one matrix product
before importing it (MKL then stays in its default mode). Both run the same work, alternating
round by round on this noisy shared machine: a training step as fit() takes it (784-500-500-2z MLPs,
RMSprop, batch 256, z = 50, the ELBO of core/bounds.py) and the IWAE of core/estimators.py (k = 1000, z = 50).
Each line prints the load average beside it; the summary is the ratio of the medians.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import textwrap

WORKER = textwrap.dedent("""
    import json, sys, time
    mode, threads, steps, images = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    import torch
    if mode == "default":
        torch.randn(4, 4) @ torch.randn(4, 4)  # MKL's first call: the mode is fixed from here on
    torch.set_num_threads(threads)
    from vaebench.core import bounds
    from vaebench.core.estimators import iwae_log_px
    from vaebench.core.models import build_model
    from vaebench.numerics import mkl_mode

    torch.manual_seed(0)
    model = build_model("vae", 50, 500)
    opt = torch.optim.RMSprop(model.parameters(), lr=1e-3)
    x = (torch.rand(256 * 8, 784) < 0.3).float()
    g = torch.Generator().manual_seed(0)

    def step(i):
        xb = x[(i % 8) * 256:(i % 8 + 1) * 256]
        mu, logvar = model.encode(xb)
        z = bounds.reparameterize(mu, logvar, torch.randn(mu.shape, generator=g))
        loss = -bounds.elbo(xb, model.decode(z), mu, logvar).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for i in range(10):
        step(i)  # warm-up
    t = time.perf_counter()
    for i in range(steps):
        step(i)
    train = steps * 256 / (time.perf_counter() - t)
    model.eval()
    iwae_log_px(model, x[:2], None, 1000, 0)  # warm-up
    t = time.perf_counter()
    iwae_log_px(model, x[:images], None, 1000, 0)
    iwae = images * 1000 / (time.perf_counter() - t)
    print(json.dumps({"mode": mkl_mode(), "train_img_s": train, "iwae_samples_s": iwae}))
""")


def measure(mode: str, threads: int, steps: int, images: int) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "MKL_CBWR"}
    out = subprocess.run([sys.executable, "-c", WORKER, mode, str(threads), str(steps), str(images)],
                         env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def load() -> str:
    one, five, _ = os.getloadavg()
    return f"load {one:.2f}/{five:.2f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=3, help="alternating rounds per thread count")
    ap.add_argument("--threads", type=int, nargs="+", default=[1, os.cpu_count() or 1])
    ap.add_argument("--steps", type=int, default=200, help="training steps timed per run")
    ap.add_argument("--images", type=int, default=60, help="IWAE images timed per run (k = 1000 each)")
    a = ap.parse_args()
    print(f"MKL_CBWR strict vs default: training step (batch 256, z 50, hidden 500) and IWAE (k 1000, z 50); "
          f"{a.rounds} alternating rounds")
    for threads in a.threads:
        res: dict[str, list[dict]] = {"strict": [], "default": []}
        for r in range(a.rounds):
            for mode in ("default", "strict") if r % 2 else ("strict", "default"):
                m = measure(mode, threads, a.steps, a.images)
                res[mode].append(m)
                print(f"  threads {threads} round {r + 1} {mode:>7} (MKL {m['mode']:>11}): "
                      f"train {m['train_img_s']:8.0f} img/s, IWAE {m['iwae_samples_s']:8.0f} samples/s   [{load()}]",
                      flush=True)
        for key, label in (("train_img_s", "training"), ("iwae_samples_s", "IWAE")):
            s = statistics.median(m[key] for m in res["strict"])
            d = statistics.median(m[key] for m in res["default"])
            print(f"threads {threads}: {label:>8} strict/default = {s / d:.3f}  (medians {s:.0f} / {d:.0f})")


if __name__ == "__main__":
    main()
