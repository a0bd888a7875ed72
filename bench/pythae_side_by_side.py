"""vaebench against pythae 0.1.2 on the same network, one thread each, in one run.

    python bench/pythae_side_by_side.py --setup    # once: pythae 0.1.2 in its own venv (/tmp/pythae-venv), then stop
    python bench/pythae_side_by_side.py --quick    # smoke check, under a minute
    python bench/pythae_side_by_side.py            # the full comparison (60,000 images, 200 test images)

The network is vaebench's default (params.yaml): encoder 784-500-500 ReLU -> mean and log-variance of
z = 50, decoder 50-500-500-784 ReLU with a Bernoulli (sigmoid) output, RMSprop lr 1e-3, batch 256.
pythae gets it as a BaseEncoder / BaseDecoder subclass pair in a VAE with reconstruction_loss="bce"
(its decoder returns sigmoid probabilities, as pythae's BCE expects).

Measured, each `--repeat` times, alternating vaebench / pythae / vaebench / pythae:

training  images/s of one epoch over the first N MNIST training images (60,000; 12,000 with --quick).
          vaebench: vaebench.run.fit.fit("vae", 50, params with train.epochs = 1) on the grey levels
          (fit binarises them itself), timed through its callback hooks (bench.py's PhaseClock).
          pythae: BaseTrainer(num_epochs=1, no eval set, no checkpoints, no predictions) over the same
          images binarised once (vaebench's own epoch-0 draw), timed through a TrainingCallback.
          Each side warms up untimed first (vaebench: one fit on 512 images, once; pythae: one forward
          and backward of a batch in each fresh process). Three rows each:
            call         fit() / BaseTrainer(...) + .train(), end to end (setup, the epoch, final save;
                         fit's includes its TimeEstimate: 4 steps on a copy of the model);
            whole epoch  epoch start to epoch end: the steps plus each library's per-epoch extras
                         (vaebench: binarisation, held-out ELBO on 2,000 test images, resumable state;
                         pythae: model.update() and a deepcopy of the model as "best on train");
                         the target (vaebench >= 1.5x pythae) is on this row;
            steps        the gradient steps alone (pythae's: its DataLoader, per-image
                         BaseDataset.__getitem__ + collate, forward, loss, backward, step, loss.item()).
          Plus, for pythae only, a bare loop: its model's forward / loss / backward / RMSprop step over
          shuffled slices of one tensor (no DataLoader, no trainer): pythae's network and loss at their
          fastest, labelled apart; the ratio against it is for information.
get_nll   samples/s of the k-sample importance-sampled log-likelihood, z = 50, k = 500, on the first
          200 (50 with --quick) binarised test images (vaebench's test bits), random-init models;
          samples = images x k. vaebench: vaebench.core.estimators.iwae_log_px at params.yaml's
          eval.chunk. pythae: VAE.get_nll(x, n_samples=k, batch_size=--nll-batch, default k: one
          encoder + decoder pass of k rows per image), under torch.no_grad() (pythae does not disable
          autograd itself; without it the graph is built too). Target: vaebench >= 3x pythae.

Each side runs one thread: torch.set_num_threads(1) here; OMP_NUM_THREADS = MKL_NUM_THREADS = 1 and
torch.set_num_threads(1) in the pythae process. pythae never enters this interpreter: it runs in a
subprocess with the venv's python (the child script CHILD below) and answers in JSON. MKL: vaebench
runs under MKL_CBWR=AUTO,STRICT (set by vaebench at import, see vaebench/numerics.py); pythae runs as
its users get it, MKL_CBWR unset, unless --pythae-mkl-cbwr names a mode. tqdm's bar in pythae's trainer
is off (TQDM_DISABLE=1), as vaebench runs with progress=False.

Every figure has the 1-minute/5-minute load average beside it: on a shared 2-core machine another
process halves a figure. Best and median of the repeats are printed, and their ratios.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import vaebench  # noqa: F401  (first: it sets MKL_CBWR before anything runs a matrix product)
import numpy as np
import torch

from vaebench.config import Params, load_params
from vaebench.core.estimators import iwae_log_px
from vaebench.core.models import build_model
from vaebench.numerics import mkl_mode
from vaebench.run.data import Mnist, binarize_test, binarize_train, load_mnist
from vaebench.run.fit import fit

REPO = Path(__file__).resolve().parents[1]
DEFAULT_VENV = Path("/tmp/pythae-venv")
PYTHAE = "pythae==0.1.2"
# pythae 0.1.2 declares: cloudpickle>=2.1.0, imageio, numpy>=1.19, pydantic>=2.0, scikit-learn, scipy>=1.7.1,
# torch>=1.10.1, tqdm, typing-extensions, dataclasses>=0.6, pickle5 (py3.7). It is installed with --no-deps and
# then only these, under constraints that pin this interpreter's torch and numpy: the modules that
# `pythae.models` (VAE, BaseEncoder/BaseDecoder, VAE.save's cloudpickle) and `pythae.trainers` import.
# Left out: scikit-learn and imageio (imported only by pythae.samplers), the dataclasses and pickle5 backports.
PYTHAE_DEPS = ["cloudpickle>=2.1.0", "pydantic>=2.0", "scipy>=1.7.1", "tqdm", "typing-extensions"]
TARGET_TRAIN, TARGET_NLL = 1.5, 3.0


# ---------------------------------------------------------------- the pythae side (runs in the venv)

CHILD = textwrap.dedent(r'''
    """pythae 0.1.2 on vaebench's default network, one thread; prints one line: RESULT <json>."""
    import json, os, sys, tempfile, time

    cfg = json.loads(sys.argv[1])
    import numpy as np
    import torch

    torch.set_num_threads(1)
    from pythae.data.datasets import BaseDataset
    from pythae.models import VAE, VAEConfig
    from pythae.models.base.base_utils import ModelOutput
    from pythae.models.nn import BaseDecoder, BaseEncoder
    from pythae.trainers import BaseTrainer, BaseTrainerConfig
    from pythae.trainers.training_callbacks import TrainingCallback


    class Encoder(BaseEncoder):
        """784 -> H -> H (ReLU) -> mean and log-variance of z."""

        def __init__(self, h, z):
            BaseEncoder.__init__(self)
            self.net = torch.nn.Sequential(torch.nn.Linear(784, h), torch.nn.ReLU(),
                                           torch.nn.Linear(h, h), torch.nn.ReLU())
            self.mu, self.logvar = torch.nn.Linear(h, z), torch.nn.Linear(h, z)

        def forward(self, x):
            e = self.net(x.reshape(x.shape[0], -1))
            return ModelOutput(embedding=self.mu(e), log_covariance=self.logvar(e))


    class Decoder(BaseDecoder):
        """z -> H -> H (ReLU) -> 784 Bernoulli means (sigmoid), for reconstruction_loss="bce"."""

        def __init__(self, h, z):
            BaseDecoder.__init__(self)
            self.net = torch.nn.Sequential(torch.nn.Linear(z, h), torch.nn.ReLU(), torch.nn.Linear(h, h),
                                           torch.nn.ReLU(), torch.nn.Linear(h, 784), torch.nn.Sigmoid())

        def forward(self, z):
            return ModelOutput(reconstruction=self.net(z))


    class Clock(TrainingCallback):
        """Epoch and step-loop boundaries, and the epoch loss pythae logs."""

        def __init__(self):
            self.t, self.loss = {}, None

        def on_epoch_begin(self, training_config, **kw):
            self.t["epoch_begin"] = time.perf_counter()

        def on_train_step_begin(self, training_config, **kw):
            self.t["steps_begin"] = time.perf_counter()

        def on_train_step_end(self, training_config, **kw):
            self.t["steps_end"] = time.perf_counter()  # the last step's wins

        def on_epoch_end(self, training_config, **kw):
            self.t["epoch_end"] = time.perf_counter()

        def on_log(self, training_config, logs, **kw):
            self.loss = logs.get("train_epoch_loss")


    def model(seed):
        torch.manual_seed(seed)
        conf = VAEConfig(input_dim=(784,), latent_dim=cfg["zdim"], reconstruction_loss="bce")
        return VAE(conf, encoder=Encoder(cfg["hidden"], cfg["zdim"]), decoder=Decoder(cfg["hidden"], cfg["zdim"]))


    def train():
        x = torch.from_numpy(np.load(cfg["train_bits"]).astype(np.float32))  # (N, 784) of 0/1
        n, bs = len(x), cfg["batch_size"]
        out = {"images": n}
        warm = model(2).train()  # untimed: this fresh process's first products (MKL's set-up) happen here
        warm({"data": x[:bs]}).loss.backward()
        with tempfile.TemporaryDirectory(prefix="pythae-bench-") as tmp:
            tc = BaseTrainerConfig(output_dir=tmp, num_epochs=1, per_device_train_batch_size=bs,
                                   optimizer_cls="RMSprop", optimizer_params={"eps": cfg["eps"]},
                                   learning_rate=cfg["lr"], steps_saving=None, steps_predict=None, no_cuda=True)
            m, clock = model(0), Clock()
            t0 = time.perf_counter()
            trainer = BaseTrainer(model=m, train_dataset=BaseDataset(x, torch.zeros(n)), eval_dataset=None,
                                  training_config=tc, callbacks=[clock])
            trainer.train()
            out["call_s"] = time.perf_counter() - t0
            out["written"] = sorted(os.path.relpath(os.path.join(d, f), tmp).split(os.sep, 1)[-1]
                                    for d, _, fs in os.walk(tmp) for f in fs)
        t = clock.t
        out.update(epoch_s=t["epoch_end"] - t["epoch_begin"], steps_s=t["steps_end"] - t["steps_begin"],
                   loss=clock.loss, steps=-(-n // bs))
        # the bare loop: pythae's forward / loss, backward, RMSprop step; no DataLoader, no trainer
        m = model(1).train()
        opt = torch.optim.RMSprop(m.parameters(), lr=cfg["lr"], eps=cfg["eps"])
        t0 = time.perf_counter()
        perm = torch.randperm(n)
        for i in range(0, n, bs):
            o = m({"data": x[perm[i:i + bs]]})
            opt.zero_grad()
            o.loss.backward()
            opt.step()
            o.loss.item()  # as the trainer does
        out["bare_s"] = time.perf_counter() - t0
        return out


    def nll():
        x = torch.from_numpy(np.load(cfg["test_bits"]).astype(np.float32))  # (n, 784) of 0/1
        k, b = cfg["k"], cfg["nll_batch"]
        m = model(0).eval()
        with torch.no_grad():
            m.get_nll(x[:1], n_samples=k, batch_size=b)  # warm-up: one image
            t0 = time.perf_counter()
            m.get_nll(x, n_samples=k, batch_size=b)
            dt = time.perf_counter() - t0
        per_image = b if k <= b else (k // b) * b  # get_nll's own rounding: it decodes batch_size rows at a time
        return {"images": len(x), "seconds": dt, "samples": len(x) * per_image}


    result = train() if cfg["mode"] == "train" else nll()
    from importlib.metadata import version
    result.update(pythae=version("pythae"), torch=torch.__version__, threads=torch.get_num_threads(),
                  mkl_cbwr=os.environ.get("MKL_CBWR", "unset"))
    print("RESULT " + json.dumps(result), flush=True)
''')


def venv_python(venv: Path) -> Path:
    """The venv's interpreter."""
    return venv / "bin" / "python"


def setup_venv(venv: Path) -> None:
    """Create the venv (reusing this interpreter's torch and numpy) and install pythae into it."""
    if not venv_python(venv).exists():
        subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True)
    py = str(venv_python(venv))
    with tempfile.NamedTemporaryFile("w", suffix=".txt", prefix="pythae-constraints-", delete=False) as f:
        f.write(f"torch=={torch.__version__}\nnumpy=={np.__version__}\n")  # nothing may replace these
    try:
        subprocess.run([py, "-m", "pip", "install", "--no-deps", PYTHAE], check=True)
        subprocess.run([py, "-m", "pip", "install", "-c", f.name, *PYTHAE_DEPS], check=True)
    finally:
        os.unlink(f.name)
    check = ("import torch, numpy; from importlib.metadata import version; "
             "from pythae.models import VAE; from pythae.trainers import BaseTrainer; "
             "print('pythae', version('pythae'), 'torch', torch.__version__, 'numpy', numpy.__version__, "
             "'from', torch.__file__)")
    subprocess.run([py, "-c", check], check=True, cwd=tempfile.gettempdir())


def venv_ready(venv: Path) -> bool:
    """Whether the venv exists and holds pythae 0.1.2 (asked of the venv's python, not imported here)."""
    if not venv_python(venv).exists():
        return False
    out = subprocess.run([str(venv_python(venv)), "-c", "from importlib.metadata import version; print(version('pythae'))"],
                         capture_output=True, text=True, check=False, cwd=tempfile.gettempdir())
    return out.returncode == 0 and out.stdout.strip() == PYTHAE.split("==")[1]


def run_pythae(venv: Path, cfg: dict[str, Any], mkl_cbwr: str) -> dict[str, Any]:
    """Run CHILD in the venv's python with one thread; its RESULT line as a dict."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "TQDM_DISABLE": "1"}
    env.pop("MKL_CBWR", None)  # vaebench set it in this process's environment at import
    if mkl_cbwr:
        env["MKL_CBWR"] = mkl_cbwr
    out = subprocess.run([str(venv_python(venv)), "-c", CHILD, json.dumps(cfg)], capture_output=True, text=True,
                         env=env, cwd=tempfile.gettempdir(), check=False)
    lines = [line for line in out.stdout.splitlines() if line.startswith("RESULT ")]
    if out.returncode != 0 or not lines:
        tail = "\n".join((out.stderr or out.stdout).strip().splitlines()[-15:])
        raise SystemExit(f"pythae child failed (exit {out.returncode}):\n{tail}")
    return json.loads(lines[-1][len("RESULT "):])


# ---------------------------------------------------------------- the vaebench side (this interpreter)


def bench_module() -> ModuleType:
    """bench/bench.py, loaded by path (bench/ is not a package), for its PhaseClock and trained_exactly."""
    spec = importlib.util.spec_from_file_location("vaebench_bench_bench", Path(__file__).with_name("bench.py"))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def vaebench_epoch(params: Params, data: Mnist, zdim: int, clock_cls: type) -> dict[str, float]:
    """One epoch of vaebench's fit: seconds of the call, the epoch, the steps; the epoch's ELBO."""
    clock = clock_cls()
    with tempfile.TemporaryDirectory(prefix="vaebench-pythae-") as tmp:
        t0 = time.perf_counter()
        result = fit("vae", zdim, params, data_path=None, out_dir=Path(tmp) / "model", log=lambda s: None,
                     progress=False, data=data, callbacks=[clock])
        call_s = time.perf_counter() - t0
    ep = clock.epochs[0]
    return {"call_s": call_s, "epoch_s": ep["end"] - ep["start"], "steps_s": ep["steps_end"] - ep["steps_start"],
            "loss": -result.history[-1]["train_elbo"]}


def vaebench_iwae(model: torch.nn.Module, x: torch.Tensor, k: int, chunk: int) -> dict[str, float]:
    """vaebench's k-sample IWAE log p(x) over x: seconds and samples (images x k)."""
    iwae_log_px(model, x[:1], None, k, 0, chunk)  # warm-up: one image
    t0 = time.perf_counter()
    iwae_log_px(model, x, None, k, 0, chunk)
    return {"seconds": time.perf_counter() - t0, "samples": len(x) * k}


# ---------------------------------------------------------------- reporting


def load() -> str:
    """The 1- and 5-minute load averages, as printed beside every figure."""
    one, five, _ = os.getloadavg()
    return f"load {one:.2f}/{five:.2f}"


def vaebench_source() -> str:
    """Which vaebench this process imported: its folder, commit, and uncommitted files under it."""
    pkg = Path(vaebench.__file__).resolve().parent
    git = ["git", "-C", str(pkg)]
    try:
        head = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True)
        dirty = subprocess.run([*git, "status", "--porcelain", "--", "."], capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return str(pkg)
    changed = [line[3:] for line in dirty.stdout.splitlines()]
    return f"{pkg} at {head.stdout.strip()}" + (f" + uncommitted: {', '.join(changed)}" if changed else "")


def cpu() -> str:
    """The CPU's model name and whether it has AVX-512F (from /proc/cpuinfo)."""
    name, avx512 = "unknown CPU", "avx512f unknown"
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return f"{name}, {avx512}"
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "model name" and name == "unknown CPU":
            name = value.strip()
        if key.strip() == "flags":
            avx512 = "avx512f yes" if "avx512f" in value.split() else "avx512f no"
            break
    return f"{name}, {avx512}, {os.cpu_count()} logical CPUs"


@dataclasses.dataclass
class Series:
    """One measured quantity over the repeats: rates (per second) and the load beside each."""

    label: str
    rates: list[float] = dataclasses.field(default_factory=list)
    loads: list[str] = dataclasses.field(default_factory=list)

    def add(self, rate: float) -> None:
        self.rates.append(rate)
        self.loads.append(load())

    def best(self) -> float:
        return max(self.rates)

    def median(self) -> float:
        return statistics.median(self.rates)

    def line(self, unit: str) -> str:
        i_best = self.rates.index(self.best())
        i_med = min(range(len(self.rates)), key=lambda i: abs(self.rates[i] - self.median()))
        return (f"  {self.label:<34} best {self.best():9.0f} {unit} [{self.loads[i_best]}]   "
                f"median {self.median():9.0f} [{self.loads[i_med]}]")


def ratio_line(name: str, ours: Series, theirs: Series, target: float | None) -> str:
    """vaebench / pythae for best and median, with the target and whether it is met (on both)."""
    best, med = ours.best() / theirs.best(), ours.median() / theirs.median()
    text = f"  {name:<34} best {best:5.2f}x   median {med:5.2f}x"
    if target is not None:
        met = "MET" if min(best, med) >= target else ("met on best only" if best >= target else "NOT met")
        text += f"   target >= {target:g}x: {met}"
    return f"{text}   [{load()}]"


# ---------------------------------------------------------------- the two comparisons


def compare_training(args: argparse.Namespace, params: Params, data: Mnist, tmp: Path) -> None:
    """Training: alternate one vaebench fit epoch and one pythae BaseTrainer epoch (+ its bare loop)."""
    n, tc = len(data.train_x), params.train
    bits = binarize_train(data.train_x, params.data.binarize, tc.seed, 0)  # vaebench's own epoch-0 draw
    np.save(tmp / "train_bits.npy", bits.to(torch.uint8).numpy())
    cfg = {"mode": "train", "train_bits": str(tmp / "train_bits.npy"), "zdim": args.zdim,
           "hidden": params.model.hidden, "batch_size": tc.batch_size, "lr": tc.lr, "eps": tc.eps}
    clock_cls = bench_module().PhaseClock
    print(f"\n== training: one epoch over {n} MNIST training images, batch {tc.batch_size}, {tc.optimizer} "
          f"lr {tc.lr:g}, z={args.zdim}, hidden {params.model.hidden} ({params.model.activation})  [{load()}]",
          flush=True)
    s = {key: Series(label) for key, label in [
        ("vb_call", "vaebench fit() call"), ("vb_epoch", "vaebench whole epoch"), ("vb_steps", "vaebench steps"),
        ("py_call", "pythae BaseTrainer call"), ("py_epoch", "pythae whole epoch"), ("py_steps", "pythae steps"),
        ("py_bare", "pythae bare loop (not its trainer)")]}
    written: list[str] = []
    trained_exactly = bench_module().trained_exactly  # fit() trains exactly these images, as pythae does
    warm = dataclasses.replace(data, train_x=data.train_x[:2 * tc.batch_size], train_y=data.train_y[:2 * tc.batch_size])
    vaebench_epoch(params, trained_exactly(warm, params), args.zdim, clock_cls)  # untimed: this process's first fit
    for r in range(1, args.repeat + 1):
        v = vaebench_epoch(params, trained_exactly(data, params), args.zdim, clock_cls)
        for key in ("call", "epoch", "steps"):
            s[f"vb_{key}"].add(n / v[f"{key}_s"])
        print(f"  run {r} vaebench: call {v['call_s']:6.2f} s, epoch {v['epoch_s']:6.2f} s, steps {v['steps_s']:6.2f} s "
              f"-> {n / v['epoch_s']:6.0f} img/s per epoch, {n / v['steps_s']:6.0f} steps only; "
              f"-ELBO {v['loss']:.1f}  [{load()}]", flush=True)
        p = run_pythae(args.venv, cfg, args.pythae_mkl_cbwr)
        for key in ("call", "epoch", "steps", "bare"):
            s[f"py_{key}"].add(n / p[f"{key}_s"])
        written = p["written"]
        print(f"  run {r} pythae:   call {p['call_s']:6.2f} s, epoch {p['epoch_s']:6.2f} s, steps {p['steps_s']:6.2f} s "
              f"-> {n / p['epoch_s']:6.0f} img/s per epoch, {n / p['steps_s']:6.0f} steps only; loss {p['loss']:.1f}; "
              f"bare loop {p['bare_s']:6.2f} s = {n / p['bare_s']:6.0f} img/s  [{load()}]", flush=True)
    print(f"  pythae {p['pythae']}, torch {p['torch']}, {p['threads']} thread, MKL_CBWR {p['mkl_cbwr']}; "
          f"its trainer wrote: {', '.join(written)}")
    print(f"images/s over {args.repeat} runs (the load beside each is the one that run ended at):")
    for key in s:
        print(s[key].line("img/s"), flush=True)
    print("vaebench / pythae:")
    print(ratio_line("whole epoch", s["vb_epoch"], s["py_epoch"], TARGET_TRAIN))
    print(ratio_line("call (fit vs BaseTrainer+train)", s["vb_call"], s["py_call"], None))
    print(ratio_line("steps only", s["vb_steps"], s["py_steps"], None))
    print(ratio_line("steps vs pythae's bare loop", s["vb_steps"], s["py_bare"], None), flush=True)


def compare_nll(args: argparse.Namespace, params: Params, data: Mnist, tmp: Path) -> None:
    """get_nll: alternate vaebench's iwae_log_px and pythae's VAE.get_nll on the same test bits."""
    x = binarize_test(data.test_x, params.data.binarize, params.data.test_seed)[: args.test_images]
    np.save(tmp / "test_bits.npy", x.to(torch.uint8).numpy())
    k, chunk = args.k, params.eval.chunk
    nll_batch = args.nll_batch or k
    cfg = {"mode": "nll", "test_bits": str(tmp / "test_bits.npy"), "zdim": args.zdim,
           "hidden": params.model.hidden, "k": k, "nll_batch": nll_batch}
    torch.manual_seed(0)
    model = build_model("vae", args.zdim, params.model.hidden, params.model.activation).eval()
    print(f"\n== get_nll: z={args.zdim}, k={k}, {len(x)} binarised test images (random-init models; samples = "
          f"images x k); vaebench iwae_log_px chunk {chunk}, pythae get_nll batch_size {nll_batch}  [{load()}]",
          flush=True)
    ours, theirs = Series("vaebench iwae_log_px"), Series("pythae get_nll")
    for r in range(1, args.repeat + 1):
        v = vaebench_iwae(model, x, k, chunk)
        ours.add(v["samples"] / v["seconds"])
        print(f"  run {r} vaebench: {v['seconds']:6.2f} s, {v['samples'] / v['seconds']:8.0f} samples/s  [{load()}]",
              flush=True)
        p = run_pythae(args.venv, cfg, args.pythae_mkl_cbwr)
        theirs.add(p["samples"] / p["seconds"])
        print(f"  run {r} pythae:   {p['seconds']:6.2f} s, {p['samples'] / p['seconds']:8.0f} samples/s "
              f"({p['samples'] // p['images']} samples per image)  [{load()}]", flush=True)
    print(f"samples/s over {args.repeat} runs:")
    print(ours.line("samples/s"))
    print(theirs.line("samples/s"))
    print("vaebench / pythae:")
    print(ratio_line("get_nll", ours, theirs, TARGET_NLL), flush=True)


# ---------------------------------------------------------------- main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--setup", action="store_true", help="create the pythae venv, install pythae 0.1.2 into it, and stop")
    ap.add_argument("--venv", type=Path, default=DEFAULT_VENV, help=f"pythae's venv (default {DEFAULT_VENV})")
    ap.add_argument("--quick", action="store_true", help="smoke check: 12,000 training and 50 test images")
    ap.add_argument("--repeat", type=int, default=3, help="runs of each side, alternating (default 3)")
    ap.add_argument("--train-images", type=int, default=None, help="training images (default 60000; --quick 12000)")
    ap.add_argument("--test-images", type=int, default=None, help="get_nll test images (default 200; --quick 50)")
    ap.add_argument("--k", type=int, default=500, help="importance samples per image (default 500)")
    ap.add_argument("--zdim", type=int, default=50)
    ap.add_argument("--nll-batch", type=int, default=0, help="pythae get_nll's batch_size (default: k)")
    ap.add_argument("--params", type=Path, default=REPO / "params.yaml")
    ap.add_argument("--data", type=Path, default=REPO / "data" / "mnist.npz")
    ap.add_argument("--only", nargs="+", choices=("train", "nll"), default=("train", "nll"))
    ap.add_argument("--pythae-mkl-cbwr", default="", help="MKL_CBWR for the pythae process (default: unset)")
    args = ap.parse_args(argv)
    args.train_images = args.train_images or (12_000 if args.quick else 60_000)
    args.test_images = args.test_images or (50 if args.quick else 200)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.setup:
        setup_venv(args.venv)
        return 0
    if not venv_ready(args.venv):
        here = Path(__file__).resolve()
        print(f"no pythae 0.1.2 venv at {args.venv}: create it with "
              f"`python {here.relative_to(REPO) if here.is_relative_to(REPO) else here} --setup --venv {args.venv}`")
        return 2
    torch.set_num_threads(1)
    params = load_params(args.params)
    params = dataclasses.replace(params, train=dataclasses.replace(params.train, epochs=1))
    if args.zdim != 50 or params.model.hidden != 500 or params.model.activation != "relu":
        print(f"note: not the default network (z={args.zdim}, hidden {params.model.hidden}, "
              f"{params.model.activation}); pythae's encoder and decoder are ReLU MLPs of that width")
    d = load_mnist(args.data)
    n = min(args.train_images, len(d.train_x))
    data = dataclasses.replace(d, train_x=d.train_x[:n], train_y=d.train_y[:n])
    print(f"vaebench: {vaebench_source()}")
    print(f"vaebench vs pythae 0.1.2 in {args.venv}; torch {torch.__version__}, "
          f"{torch.get_num_threads()} thread each; vaebench MKL mode {mkl_mode()}, pythae MKL_CBWR "
          f"{args.pythae_mkl_cbwr or 'unset'}")
    print(f"CPU: {cpu()}  [{load()}]")
    print(f"{args.repeat} run(s) of each side, alternating vaebench / pythae", flush=True)
    with tempfile.TemporaryDirectory(prefix="pythae-side-") as tmp:
        if "train" in args.only:
            compare_training(args, params, data, Path(tmp))
        if "nll" in args.only:
            compare_nll(args, params, data, Path(tmp))
    return 0


if __name__ == "__main__":
    sys.exit(main())
