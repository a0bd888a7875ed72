"""Throughput of vaebench against this machine's own fp32 matmul peak.

    python bench/bench.py            # the full run, about 3 minutes on 2 cores
    python bench/bench.py --quick    # the same sections, smaller, under 30 s

Sections (each prints the 1-minute load average beside its figures: other processes on a
shared machine steal cores, and every number here is only as good as the load it ran under):

1. peak      best fp32 matmul GFLOP/s over square sizes and the model's own shapes; beside it,
             for information, oneDNN's prepacked GEMM (not counted: vaebench does not call it).
2. train     the step's 17 matrix products alone (the ceiling of a step), then
             vaebench.train.fit itself, on an in-memory dataset (MNIST from data/mnist.npz
             if present, else synthetic grey levels), one epoch per batch size: images/s,
             seconds per 60k-image epoch, share of peak.
3. iwae      vaebench.evaluate.iwae_log_px on a random-init 500-wide model: samples/s, share of peak.
4. memory    peak RSS of iwae_log_px with k=5000, in a fresh subprocess per measurement,
             and the extrapolated time of k=5000 over the 10,000 test images.
5. quad      vaebench.quadrature.quad_log_px of a z=2 model over 10,000 images at params.yaml's grid.
6. profile   torch.profiler over one training epoch and one IWAE run: the GEMMs' share of the time,
             their own GFLOP/s in place, and the largest other ops (what stands between a
             section's share of peak and the GEMMs').

FLOP counting (only matmul FLOPs; a multiply-add is 2 FLOPs; biases, activations, softplus,
the optimiser and the RNG count for nothing, so a share of peak is "useful work / time"):
  MACs of a 3-layer MLP a -> H -> H -> b:  a*H + H*H + H*b.
  Training, per image: forward 2*(MACs_enc + MACs_dec); backward = 2x forward (weight and
  input gradients) minus the input gradient of the encoder's first layer (x needs none),
  i.e. total = 6*(MACs_enc + MACs_dec) - 2*(784 [+10 for a CVAE])*H.
  IWAE, per image: 2*MACs_enc once (each image is encoded once) + k * 2*MACs_dec.
  Quadrature: n^D grid points decoded once, plus N x 784 x n^D x 2 for the images-by-logits product.

Bench a patched copy of the package with PYTHONPATH=/path/to/copy python bench/bench.py
(the header prints which vaebench it imported).
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

import vaebench
from vaebench.run.callbacks import Callback
from vaebench.run.fit import fit
from vaebench.run.optim import FlatRMSprop
from vaebench.config import Params, load_params
from vaebench.run.data import Mnist, binarize_test, load_mnist, training_bits
from vaebench.core.estimators import iwae_log_px
from vaebench.core.models import N_LABELS, PIXELS, VAE, build_model
from vaebench.core.quadrature import quad_log_px

REPO = Path(__file__).resolve().parents[1]
GiB = 2**30


# ---------------------------------------------------------------- helpers


def load() -> str:
    one, five, _ = os.getloadavg()
    return f"load {one:.2f}/{five:.2f}"


def mlp_macs(n_in: int, hidden: int, n_out: int) -> int:
    return n_in * hidden + hidden * hidden + hidden * n_out


def model_macs(zdim: int, hidden: int, conditional: bool = False) -> tuple[int, int]:
    """(encoder, decoder) multiply-adds per image / per latent sample."""
    extra = N_LABELS if conditional else 0
    return mlp_macs(PIXELS + extra, hidden, 2 * zdim), mlp_macs(zdim + extra, hidden, PIXELS)


def train_flops_per_image(zdim: int, hidden: int, conditional: bool = False) -> int:
    enc, dec = model_macs(zdim, hidden, conditional)
    first = (PIXELS + (N_LABELS if conditional else 0)) * hidden
    return 6 * (enc + dec) - 2 * first


def iwae_flops(n: int, k: int, zdim: int, hidden: int) -> int:
    enc, dec = model_macs(zdim, hidden)
    return n * (2 * enc + k * 2 * dec)


def section(title: str) -> None:
    print(f"\n== {title}  [{load()}]", flush=True)


# ---------------------------------------------------------------- 1. peak


def matmul_gflops(m: int, k: int, n: int, seconds: float) -> float:
    """Best GFLOP/s of (m,k) @ (k,n) over short timed runs (~50 ms each) lasting about `seconds` in all."""
    a, b = torch.randn(m, k), torch.randn(k, n)
    out = torch.empty(m, n)
    return _best_gflops(lambda: torch.mm(a, b, out=out), 2 * m * k * n, seconds)


def peak(args: argparse.Namespace, batch_sizes: list[int], chunk: int) -> float:
    section("1. fp32 matmul peak")
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()} (interop {torch.get_num_interop_threads()}), "
          f"os.cpu_count {os.cpu_count()}, MKL {torch.backends.mkl.is_available()}, "
          f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}")
    t = 0.25 if args.quick else 0.8
    best = 0.0
    for name, m, k, n in peak_shapes(batch_sizes, args.hidden, chunk, args.quick):
        g = matmul_gflops(m, k, n, t)
        best = max(best, g)
        print(f"  {name:<40} {m:>6} x {k:>4} x {n:>4}  {g:7.1f} GFLOP/s  [{load()}]", flush=True)
    print(f"peak: {best:.1f} GFLOP/s (the best of the above)")
    onednn_peak(args.hidden, t, best)
    return best


def peak_shapes(batch_sizes: list[int], h: int, chunk: int, quick: bool = False) -> list[tuple[str, int, int, int]]:
    """The products the peak is the best of: square ones, the training step's own shapes at each batch size, and
    the IWAE decoder's at `chunk` rows: (name, m, k, n)."""
    shapes = [("square", s, s, s) for s in ((512, 1024, 2048) if quick else (512, 1024, 1536, 2048))]
    for bs in sorted(set(batch_sizes)):
        shapes += [(f"train b={bs}: b x 784 @ 784 x {h}", bs, PIXELS, h),
                   (f"train b={bs}: b x {h} @ {h} x 784", bs, h, PIXELS)]
    rows = chunk  # the IWAE decoder's batch: chunk samples at once
    return shapes + [(f"iwae: {rows} x {h} @ {h} x {h}", rows, h, h), (f"iwae: {rows} x {h} @ {h} x 784", rows, h, PIXELS)]


def onednn_peak(h: int, seconds: float, mm_peak: float) -> float | None:
    """torch's other fp32 GEMM: oneDNN with weights prepacked once (torch.ops.mkldnn, what inductor's
    CPU backend calls after freezing). Printed beside the peak, not used as it: vaebench calls
    torch.mm / F.linear (MKL) only, and a private op is no base for a reference benchmark."""
    ops = getattr(torch.ops, "mkldnn", None)
    if not (torch.backends.mkldnn.is_available() and hasattr(ops, "_linear_pointwise")):
        print("oneDNN prepacked GEMM: not available in this torch build")
        return None
    best = 0.0
    for m, k, n in ((2048, 2048, 2048), (1024, h, PIXELS), (1024, h, h)):
        a, w = torch.randn(m, k), torch.randn(n, k)
        packed = ops._reorder_linear_weight(w, m)
        g = _best_gflops(lambda: ops._linear_pointwise(a, packed, None, "none", [], ""), 2 * m * k * n, seconds)
        best = max(best, g)
        print(f"  oneDNN prepacked {m:>6} x {k:>4} x {n:>4}  {g:7.1f} GFLOP/s  [{load()}]", flush=True)
    print(f"oneDNN prepacked best: {best:.1f} GFLOP/s = {best / mm_peak:.0%} of the peak above "
          f"(not counted as the peak: vaebench does not call oneDNN; see bench/README.md)")
    return best


def _best_gflops(fn: Callable[[], Any], flop: int, seconds: float) -> float:
    """Best GFLOP/s of fn over short timed runs lasting about `seconds` in all."""
    fn()
    t0 = time.perf_counter()
    fn()
    reps = max(1, int(0.05 / max(time.perf_counter() - t0, 1e-6)))
    best, deadline = 0.0, time.perf_counter() + seconds
    while True:
        t0 = time.perf_counter()
        for _ in range(reps):
            fn()
        best = max(best, flop * reps / (time.perf_counter() - t0) / 1e9)
        if time.perf_counter() > deadline:
            return best


# ---------------------------------------------------------------- 2. training


@functools.cache
def _mnist(path: Path) -> Mnist:
    return load_mnist(path)  # verifies every hash: about a second, so once per run


def training_data(args: argparse.Namespace, n: int) -> tuple[Mnist, str]:
    path = REPO / "data" / "mnist.npz"
    if path.exists() and not args.synthetic:
        d = _mnist(path)
        reps = -(-n // len(d.train_x))
        return dataclasses.replace(d, train_x=d.train_x.repeat(reps, 1)[:n], train_y=d.train_y.repeat(reps)[:n]), \
            f"MNIST from {path.relative_to(REPO)}"
    g = torch.Generator().manual_seed(0)
    # grey levels with MNIST-like sparsity (about 19% of pixels on); the speed does not depend on the values
    x = (torch.rand(n, PIXELS, generator=g) - 0.81).clamp(min=0) / 0.19
    y = torch.randint(0, N_LABELS, (n,), generator=g)
    tx = (torch.rand(10000, PIXELS, generator=g) - 0.81).clamp(min=0) / 0.19
    ty = torch.randint(0, N_LABELS, (10000,), generator=g)
    return Mnist(x, y, tx, ty, "synthetic"), "synthetic grey levels"


def step_bits() -> tuple[torch.Tensor, str]:
    """Epoch 0's training bits (N, 784) uint8, as fit gathers them, and what they are: MNIST's from data/mnist.npz,
    else a binarisation of uniform grey levels (the side-by-side step benches: the speed does not depend on the values)."""
    path = REPO / "data" / "mnist.npz"
    grey, what = (_mnist(path).train_x, "MNIST") if path.exists() else (torch.rand(60_000, PIXELS), "synthetic grey levels")
    return training_bits(grey, "dynamic", 0, 0), what


def print_paths(prefix: str, times: dict[str, list[float]]) -> dict[str, float]:
    """One line per path of a side-by-side step bench (median and 10th-percentile step, the load); the medians."""
    width = max(map(len, times))
    med = {name: statistics.median(t) for name, t in times.items()}
    for name, t in times.items():
        t = sorted(t)
        print(f"{prefix}  {name:{width}s}  median {med[name] * 1e3:6.2f} ms  p10 {t[len(t) // 10] * 1e3:6.2f} ms"
              f"  ({len(t)} steps)  [{load()}]")
    return med


def trained_exactly(data: Mnist, params: Params) -> Mnist:
    """`data` with the held-out tail that fit() sets aside under train.monitor = validation appended (its first
    images again; the monitoring curve's images cost the same whatever they are): fit() then trains on exactly
    `data`'s images, so that images per second count trained images. (Before 2026-12-06, eleventh session, the
    figures divided by the images given, 2,000 more than trained: 3.4 % too high at 60,000, 20 % at 12,000.)"""
    if params.train.monitor != "validation":
        return data
    h = params.train.heldout
    reps = -(-h // len(data.train_x))
    return dataclasses.replace(data, train_x=torch.cat([data.train_x, data.train_x.repeat(reps, 1)[:h]]),
                               train_y=torch.cat([data.train_y, data.train_y.repeat(reps)[:h]]))


class PhaseClock(Callback):
    """Times fit()'s epoch phases through its callback hooks: the epoch from its start to the end of its
    callbacks (this one runs after the built-in ones, so the state save is inside), and the gradient steps
    inside it; 'other' is the epoch less the steps (binarisation, held-out ELBO, state save)."""

    def __init__(self) -> None:
        self.epochs: list[dict[str, float]] = []

    def epoch_start(self, run: Any, epoch: int) -> None:
        self.epochs.append({"start": time.perf_counter()})

    def steps_start(self, run: Any, epoch: int) -> None:
        self.epochs[-1]["steps_start"] = time.perf_counter()

    def steps_end(self, run: Any, epoch: int) -> None:
        self.epochs[-1]["steps_end"] = time.perf_counter()

    def epoch_end(self, run: Any, epoch: int, row: dict[str, float]) -> None:
        self.epochs[-1]["end"] = time.perf_counter()


def train(args: argparse.Namespace, params: Params, peak_gflops: float) -> None:
    section("2. training: vaebench.train.fit, one epoch per batch size")
    default_bs = params.train.batch_size
    n_default = args.train_images
    data, what = training_data(args, n_default)
    model_name, zdim, h = args.model, args.zdim, args.hidden
    fpi = train_flops_per_image(zdim, h, model_name == "cvae")
    update = f" (update: {FlatRMSprop.update_path()})" if params.train.optimizer == "rmsprop" else ""
    print(f"model {model_name} z={zdim} hidden={h}, optimizer {params.train.optimizer}{update}, data: {what}; "
          f"{fpi / 1e6:.2f} MFLOP per training image (6*MACs - 2*784*H)")
    print(f"best of {args.repeat} epochs per batch size (the peak is a best too); 'median' is the median run's share")
    print(f"{'batch':>6} {'images':>7} {'epoch s':>8} {'steps s':>8} {'other s':>8} {'img/s':>8} "
          f"{'s/60k':>6} {'GFLOP/s':>8} {'of peak':>8} {'median':>7}   (steps only; 'other' = binarise + held-out ELBO + state save)")
    ceiling = train_gemm_gflops(default_bs, zdim, h, model_name == "cvae", 0.25 if args.quick else 1.0)
    print(f"the step's GEMMs alone at batch {default_bs} (6 forward addmm, 11 backward mm, shapes and transposes "
          f"as autograd calls them): {ceiling:.1f} GFLOP/s = {ceiling / peak_gflops:.1%} of peak: the ceiling "
          f"for a step that did nothing else", flush=True)
    sizes = [default_bs] + [b for b in args.train_batches if b != default_bs]
    for bs in sizes:
        n = n_default if bs == default_bs else args.train_images_other
        p = dataclasses.replace(params, train=dataclasses.replace(params.train, batch_size=bs, epochs=1))
        sub = trained_exactly(dataclasses.replace(data, train_x=data.train_x[:n], train_y=data.train_y[:n]), p)
        runs = [timed_epoch(model_name, zdim, p, sub) for _ in range(args.repeat)]  # (epoch s, other s) each
        epoch_s, other = min(runs, key=lambda r: r[0] - r[1])  # the best run, as the peak is a best
        steps = epoch_s - other
        ips = n / steps
        gf = fpi * ips / 1e9
        median = fpi * n / statistics.median(e - o for e, o in runs) / 1e9 / peak_gflops
        mark = "  <- default (params.yaml)" if bs == default_bs else ""
        print(f"{bs:>6} {n:>7} {epoch_s:8.2f} {steps:8.2f} {other:8.2f} {ips:8.0f} {60000 / ips:6.2f} "
              f"{gf:8.1f} {gf / peak_gflops:8.1%} {median:7.1%}   [{load()}]{mark}", flush=True)
        if bs == default_bs:
            print(f"{'':>6} whole epoch incl. other: {n / epoch_s:.0f} img/s, {60000 * epoch_s / n:.2f} s per 60k epoch; "
                  f"target >= 75% of peak = {0.75 * peak_gflops * 1e9 / fpi:.0f} img/s", flush=True)


def timed_epoch(model_name: str, zdim: int, params: Params, data: Mnist) -> tuple[float, float]:
    """One epoch of vaebench's fit: (epoch seconds, seconds of binarisation + held-out ELBO + state save)."""
    clock = PhaseClock()
    with tempfile.TemporaryDirectory(prefix="vaebench-bench-") as tmp:
        fit(model_name, zdim, params, data_path=None, out_dir=Path(tmp) / "model", log=lambda s: None,
            progress=False, data=data, callbacks=[clock])
    ep = clock.epochs[0]
    epoch_s = ep["end"] - ep["start"]
    return epoch_s, epoch_s - (ep["steps_end"] - ep["steps_start"])


def train_gemm_gflops(bs: int, zdim: int, hidden: int, conditional: bool, seconds: float) -> float:
    """GFLOP/s of a training step's matrix products and nothing else, best over `seconds`.

    Per Linear layer W (out, in) on a batch X (b, in) with output gradient G (b, out): forward
    addmm(bias, X, W^T); backward G @ W (the input gradient; not for the encoder's first layer)
    and G^T @ X (the weight gradient). The FLOPs are exactly train_flops_per_image * bs.
    """
    return _best_gflops(gemm_step(bs, zdim, hidden, conditional), train_flops_per_image(zdim, hidden, conditional) * bs,
                        seconds)


def gemm_step(bs: int, zdim: int, hidden: int, conditional: bool = False) -> Callable[[], None]:
    """A training step's 17 matrix products on fixed random operands, nothing else (train_gemm_gflops says which)."""
    extra = N_LABELS if conditional else 0
    layers = [(PIXELS + extra, hidden), (hidden, hidden), (hidden, 2 * zdim),
              (zdim + extra, hidden), (hidden, hidden), (hidden, PIXELS)]
    mats = [(torch.randn(bs, i), torch.randn(o, i), torch.randn(o), torch.randn(bs, o)) for i, o in layers]

    def step() -> None:
        for j, (x, w, b, g) in enumerate(mats):
            torch.addmm(b, x, w.t())
            if j != 0:
                torch.mm(g, w)
            torch.mm(g.t(), x)

    return step


# ---------------------------------------------------------------- 3. IWAE


def test_bits(args: argparse.Namespace, n: int) -> torch.Tensor:
    data, _ = training_data(args, 1)
    x = binarize_test(data.test_x, "dynamic", 1234)
    return x.repeat(-(-n // len(x)), 1)[:n]


def random_model(zdim: int, hidden: int) -> VAE:
    torch.manual_seed(0)
    return build_model("vae", zdim, hidden).eval()


def iwae(args: argparse.Namespace, params: Params, peak_gflops: float) -> dict[int, float]:
    section("3. IWAE: vaebench.evaluate.iwae_log_px, random-init model")
    chunk = params.eval.chunk
    print(f"chunk {chunk} (params.yaml eval.chunk); FLOPs counted: encode each image once + decode k samples")
    print(f"best of {args.repeat} runs each; 'median' is the median run's share")
    print(f"{'z':>3} {'k':>5} {'images':>7} {'s':>7} {'samples/s':>10} {'GFLOP/s':>8} {'of peak':>8} {'median':>7}")
    rate = {}
    for zdim in (50, 2):
        model = random_model(zdim, args.hidden)
        for k in args.iwae_k:
            n = max(1, args.iwae_samples // k)
            x = test_bits(args, n)
            iwae_log_px(model, x[: max(1, chunk // k)], None, k, 0, chunk)  # warm-up: one pass
            times = []
            for _ in range(args.repeat):
                t0 = time.perf_counter()
                iwae_log_px(model, x, None, k, 0, chunk)
                times.append(time.perf_counter() - t0)
            dt, flop = min(times), iwae_flops(n, k, zdim, args.hidden)
            gf = flop / dt / 1e9
            rate[zdim] = n * k / dt
            median = flop / statistics.median(times) / 1e9 / peak_gflops
            print(f"{zdim:>3} {k:>5} {n:>7} {dt:7.2f} {n * k / dt:10.0f} {gf:8.1f} {gf / peak_gflops:8.1%} "
                  f"{median:7.1%}   [{load()}]", flush=True)
    print(f"target >= 80% of peak = {0.8 * peak_gflops * 1e9 / (2 * model_macs(50, args.hidden)[1]):.0f} samples/s at z=50")
    return rate


# ---------------------------------------------------------------- 4. memory


CHILD = textwrap.dedent("""
    import json, resource, sys, time

    def hwm_kib():
        # VmHWM: peak RSS of this process image (reset by exec, unlike ru_maxrss, which a child
        # inherits from the bigger parent that forked it); ru_maxrss where /proc is missing
        try:
            with open("/proc/self/status") as f:
                return int(next(l for l in f if l.startswith("VmHWM:")).split()[1])
        except (OSError, StopIteration):
            return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

    import torch
    from vaebench.core.estimators import iwae_log_px
    from vaebench.core.models import build_model
    zdim, hidden, k, n, chunk, threads = (int(a) for a in sys.argv[1:7])
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = build_model("vae", zdim, hidden).eval()
    x = torch.bernoulli(torch.full((n, 784), 0.2), generator=torch.Generator().manual_seed(0))
    base = hwm_kib()
    t0 = time.perf_counter()
    iwae_log_px(model, x, None, k, 0, chunk)
    dt = time.perf_counter() - t0
    print(json.dumps({"base_kib": base, "peak_kib": hwm_kib(), "seconds": dt,
                      "module": sys.modules["vaebench.core.estimators"].__file__}))
""")


def memory(args: argparse.Namespace, params: Params) -> None:
    section("4. memory: iwae_log_px with k=5000, one fresh subprocess per measurement (VmHWM = peak RSS)")
    k, n, h = 5000, args.mem_images, args.hidden
    chunks = sorted({params.eval.chunk, *args.mem_chunks})
    print(f"{n} images, k={k}, z=50, hidden={h}")
    print(f"{'chunk':>7} {'peak RSS':>9} {'after import':>12} {'IWAE adds':>9} {'s':>6} {'-> 10k images':>13}")
    # the child imports the same vaebench as this process, and runs outside the repo so that its
    # working directory (first on sys.path under -c) cannot shadow a patched copy on PYTHONPATH
    src = str(Path(vaebench.__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [src, os.environ.get("PYTHONPATH")]))}
    for chunk in chunks:
        out = subprocess.run([sys.executable, "-c", CHILD, "50", str(h), str(k), str(n), str(chunk),
                              str(torch.get_num_threads())], capture_output=True, text=True, env=env,
                             cwd=tempfile.gettempdir(), check=False)
        if out.returncode != 0:
            print(f"{chunk:>7} failed: {out.stderr.strip().splitlines()[-1:]}")
            continue
        r = json.loads(out.stdout.strip().splitlines()[-1])
        peak_b, base_b = r["peak_kib"] * 1024, r["base_kib"] * 1024
        assert Path(r["module"]).resolve().parents[2] == Path(src), r["module"]  # measured the same code
        ok = "ok" if peak_b <= 2 * GiB else "OVER 2 GiB"
        mark = " (params.yaml)" if chunk == params.eval.chunk else ""
        print(f"{chunk:>7} {peak_b / GiB:8.2f}G {base_b / GiB:11.2f}G {(peak_b - base_b) / GiB:8.2f}G "
              f"{r['seconds']:6.1f} {r['seconds'] * 10000 / n / 60:10.1f} min  {ok}{mark}   [{load()}]", flush=True)


# ---------------------------------------------------------------- 5. quadrature


def quad(args: argparse.Namespace, params: Params, peak_gflops: float) -> None:
    section("5. quadrature: vaebench.quadrature.quad_log_px, z=2")
    n_grid, half = params.eval.quad_n, params.eval.quad_half_width
    model = random_model(2, args.hidden)
    g = n_grid**2
    print(f"grid n={n_grid} per axis (G={g}), L={half}; FLOPs: G decoded once + images @ logits^T (2*N*784*G)")

    def run(n_img: int) -> float:
        x = test_bits(args, n_img)
        t0 = time.perf_counter()
        quad_log_px(model, x, None, half, n_grid)
        dt = time.perf_counter() - t0
        flop = g * 2 * model_macs(2, args.hidden)[1] + 2 * n_img * PIXELS * g
        print(f"  {n_img:>6} images: {dt:6.1f} s, {flop / dt / 1e9:6.1f} GFLOP/s ({flop / dt / 1e9 / peak_gflops:.0%} of peak)"
              f"   [{load()}]", flush=True)
        return dt

    if args.quad_images >= 10000:
        run(10000)
        return
    small = 16  # about the cost of decoding the grid
    t_small, t_big = run(small), run(args.quad_images)
    per_image = (t_big - t_small) / (args.quad_images - small)
    est = t_small + per_image * (10000 - small)
    print(f"  -> 10,000 images: about {est:.0f} s (grid decode {t_small:.1f} s + {per_image * 1e3:.1f} ms per image); "
          f"time all 10,000 with --quad-images 10000")


# ---------------------------------------------------------------- 6. profile


GEMM_OPS = ("aten::mm", "aten::addmm", "aten::bmm")



UNPROFILED = "vaebench-bench: not counted"


class OutsideSteps(Callback):
    """Marks what fit does outside its gradient steps (binarisation, held-out ELBO, state save) as one profiler
    range per phase, which profiled() leaves out of its sums. Runs after fit's own callbacks: the save is inside."""

    def _open(self) -> None:
        from torch.profiler import record_function

        self.range = record_function(UNPROFILED)
        self.range.__enter__()

    def _close(self) -> None:
        self.range.__exit__(None, None, None)

    def epoch_start(self, run: Any, epoch: int) -> None:
        self._open()

    def steps_start(self, run: Any, epoch: int) -> None:
        self._close()

    def steps_end(self, run: Any, epoch: int) -> None:
        self._open()

    def epoch_end(self, run: Any, epoch: int, row: dict[str, float]) -> None:
        self._close()


def profiled(fn: Callable[[], Any]) -> tuple[float, float, list[tuple[str, float, int]]]:
    """Run fn under torch.profiler: (GEMM seconds, total seconds, [(op, self seconds, calls)] by time).

    Self CPU time per op, so nothing is counted twice; the GEMMs are the ops in GEMM_OPS. Ops inside a
    range named UNPROFILED (OutsideSteps) are left out of the sums.
    """
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        fn()

    def counted(e: Any) -> bool:
        while e is not None:
            if e.name == UNPROFILED:
                return False
            e = e.cpu_parent
        return True

    self_time: dict[str, float] = {}
    calls: dict[str, int] = {}
    for e in prof.events():
        if counted(e):
            self_time[e.name] = self_time.get(e.name, 0.0) + e.self_cpu_time_total / 1e6
            calls[e.name] = calls.get(e.name, 0) + 1
    ops = sorted(((name, t, calls[name]) for name, t in self_time.items()), key=lambda o: -o[1])
    gemm = sum(t for name, t, _ in ops if name in GEMM_OPS)
    return gemm, sum(t for _, t, _ in ops), ops


def print_profile(what: str, fn: Callable[[], Any], flop: float, peak_gflops: float) -> None:
    gemm, total, ops = profiled(fn)
    print(f"{what}: {total:.2f} s of op time under the profiler; GEMMs {gemm / total:.0%} of it, "
          f"running at {flop / gemm / 1e9:.0f} GFLOP/s = {flop / gemm / 1e9 / peak_gflops:.0%} of peak; "
          f"everything at once: {flop / total / 1e9 / peak_gflops:.0%} of peak", flush=True)
    others = [(name, t, n) for name, t, n in ops if name not in GEMM_OPS][:8]
    print("  the largest other ops: " + ", ".join(f"{name.removeprefix('aten::')} {t / total:.1%} ({n}x)"
                                                  for name, t, n in others), flush=True)


def profile(args: argparse.Namespace, params: Params, peak_gflops: float) -> None:
    section("6. profile: where the time goes (torch.profiler, self time per op)")
    print("the profiler adds a few microseconds per op, which weighs on the many small ops; "
          "read the shares, not the absolute times")
    n = 6_000 if args.quick else 12_000
    data, what = training_data(args, n)
    zdim, h = args.zdim, args.hidden
    p = dataclasses.replace(params, train=dataclasses.replace(params.train, epochs=1, heldout=1))  # the held-out ELBO is not profiled (OutsideSteps)
    with tempfile.TemporaryDirectory(prefix="vaebench-bench-") as tmp:
        print_profile(f"training steps, one epoch of {n} images ({what}), batch {p.train.batch_size}, z={zdim} "
                      "(fit's binarisation, held-out ELBO and state save not profiled)",
                      lambda: fit(args.model, zdim, p, data_path=None, out_dir=Path(tmp) / "model", log=lambda _: None,
                                  progress=False, data=data, callbacks=[OutsideSteps()]),
                      train_flops_per_image(zdim, h, args.model == "cvae") * n, peak_gflops)
    model, k = random_model(50, h), 500
    x = test_bits(args, 100 if args.quick else 200)
    iwae_log_px(model, x[:10], None, k, 0, params.eval.chunk)  # warm-up
    print_profile(f"IWAE, {len(x)} images, k={k}, z=50",
                  lambda: iwae_log_px(model, x, None, k, 0, params.eval.chunk),
                  iwae_flops(len(x), k, 50, h), peak_gflops)


# ---------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="smaller runs of every section, under 30 s")
    ap.add_argument("--params", default=str(REPO / "params.yaml"), help="params.yaml to read the defaults from")
    ap.add_argument("--only", nargs="+", choices=["peak", "train", "iwae", "memory", "quad", "profile"],
                    help="run only these sections (the peak is measured anyway when a share of it is printed)")
    ap.add_argument("--model", default="vae", choices=["vae", "cvae"], help="model trained in section 2")
    ap.add_argument("--zdim", type=int, default=50, help="latent size trained in section 2")
    ap.add_argument("--hidden", type=int, default=None, help="hidden width (default: params.yaml model.hidden)")
    ap.add_argument("--threads", type=int, default=None, help="torch.set_num_threads before anything runs")
    ap.add_argument("--repeat", type=int, default=None,
                    help="timed runs per training batch size and IWAE setting, best and median printed (default 3, quick 1)")
    ap.add_argument("--synthetic", action="store_true", help="synthetic images even if data/mnist.npz exists")
    ap.add_argument("--quad-images", type=int, default=None,
                    help="images scored by the quadrature (default 2000, quick 300; the time for 10,000 is extrapolated)")
    ap.add_argument("--train-images", type=int, default=None,
                    help="images per timed epoch at the default batch size (default 60,000, quick 12,000; other batch sizes a third, quick a half)")
    ap.add_argument("--iwae-samples", type=int, default=None,
                    help="images x k decoded per timed IWAE run (default 500,000, quick 100,000)")
    args = ap.parse_args(argv)

    if args.threads:
        torch.set_num_threads(args.threads)
    params = load_params(args.params)
    args.hidden = args.hidden or params.model.hidden
    q = args.quick
    if args.repeat is None:
        args.repeat = 1 if q else 3
    if args.repeat < 1:
        ap.error("--repeat: must be >= 1")
    for name in ("train_images", "iwae_samples"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            ap.error(f"--{name.replace('_', '-')}: must be >= 1")
    args.train_images = args.train_images or (12_000 if q else 60_000)
    args.train_images_other = max(1, args.train_images // (2 if q else 3))  # 6,000 quick, 20,000 full
    args.train_batches = [params.train.batch_size] if q else [64, 128, 256, 512, 1024]
    args.iwae_k = [500] if q else [500, 5000]
    args.iwae_samples = args.iwae_samples or (100_000 if q else 500_000)
    args.mem_images = 20 if q else 40
    args.mem_chunks = [] if q else [10_000]
    args.quad_images = args.quad_images or (300 if q else 2000)
    if q:  # a coarser grid in quick mode keeps it under 30 s
        params = dataclasses.replace(params, eval=dataclasses.replace(params.eval, quad_n=200))

    print(f"vaebench bench ({'quick' if q else 'full'}); vaebench from {Path(vaebench.__file__).parent}; "
          f"{load()}; pid {os.getpid()}")
    t0 = time.perf_counter()
    only = set(args.only or ["peak", "train", "iwae", "memory", "quad", "profile"])
    pk = peak(args, [params.train.batch_size, *args.train_batches], params.eval.chunk) \
        if only & {"peak", "train", "iwae", "quad", "profile"} else 0.0
    if "train" in only:
        train(args, params, pk)
    if "iwae" in only:
        iwae(args, params, pk)
    if "memory" in only:
        memory(args, params)
    if "quad" in only:
        quad(args, params, pk)
    if "profile" in only:
        profile(args, params, pk)
    ru = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print(f"\ndone in {time.perf_counter() - t0:.0f} s, this process's peak RSS {ru:.2f} GiB  [{load()}]")


if __name__ == "__main__":
    main()
