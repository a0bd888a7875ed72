"""How long would Burda et al. (2016)'s one-layer VAE take here? Throughput of its architecture.

    python bench/burda_throughput.py [--threads 1] [--seconds 8]

The literature-grade run (784-200-200-50 with tanh units, Adam, 3280 epochs of 60,000 images in the
paper's staged schedule, k = 5000 at evaluation) is sized from these figures before it is started:
training steps per second at several batch sizes (the paper's 20 and larger ones), and the cost of
the k = 5000 IWAE per test image. The network is built here with plain torch (the same layers and
loss as vaebench's, with tanh), on random binary images: only the speed is measured. The load
average is printed beside each figure (the machine is shared).
"""

from __future__ import annotations

import argparse
import os
import time

import torch
from torch import nn
from torch.nn import functional as F


def mlp(sizes: list[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes, sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(nn.Tanh())
    return nn.Sequential(*layers)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seconds", type=float, default=8.0, help="time spent on each batch size")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    z, h = 50, 200
    enc, dec = mlp([784, h, h, 2 * z]), mlp([z, h, h, 784])
    opt = torch.optim.Adam([*enc.parameters(), *dec.parameters()], lr=1e-3, eps=1e-4)
    data = torch.bernoulli(torch.full((60000, 784), 0.13))
    print(f"784-{h}-{h}-{z} tanh VAE, Adam, {a.threads} thread(s)")
    for batch in (20, 100, 256):
        steps, t0, load = 0, time.time(), os.getloadavg()[0]
        while time.time() - t0 < a.seconds:
            x = data[(steps * batch) % 59000:(steps * batch) % 59000 + batch]
            mu, logvar = enc(x).chunk(2, -1)
            zs = mu + torch.randn_like(mu) * (0.5 * logvar).exp()
            rec = F.binary_cross_entropy_with_logits(dec(zs), x, reduction="sum")
            kl = 0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar).sum()
            opt.zero_grad()
            ((rec + kl) / batch).backward()
            opt.step()
            steps += 1
        per_epoch = (time.time() - t0) / steps * (60000 / batch)
        print(f"  batch {batch:3d}: {steps / (time.time() - t0):7.0f} steps/s, {per_epoch:6.1f} s per epoch; "
              f"3280 epochs {per_epoch * 3280 / 3600:6.1f} h, 328 epochs {per_epoch * 328 / 3600:5.2f} h "
              f"(load {load:.2f})", flush=True)
    with torch.no_grad():  # k = 5000 importance samples for one image, in chunks of 1000
        x, t0, n, load = data[:1], time.time(), 0, os.getloadavg()[0]
        while time.time() - t0 < a.seconds:
            mu, logvar = enc(x).chunk(2, -1)
            for _ in range(5):
                zs = mu + torch.randn(1000, z) * (0.5 * logvar).exp()
                F.binary_cross_entropy_with_logits(dec(zs), x.expand(1000, -1), reduction="none").sum(-1)
            n += 1
        per_image = (time.time() - t0) / n
        print(f"  IWAE k=5000: {per_image * 1000:.1f} ms per image, {per_image * 10000 / 60:.1f} min for the "
              f"10,000 test images (load {load:.2f})")


if __name__ == "__main__":
    main()
