"""One fit() for every model: a short loop over epochs, with what surrounds it as callbacks (run/callbacks.py).

Every random draw of epoch e (binarisation, minibatch order, reparameterisation noise, corruption) comes
from a named stream (seed, e) of vaebench/streams.py, never from the global RNG. So the run is a pure function
of its config, and resuming after epoch e needs only the weights, the optimiser state and e:
a run killed and resumed ends with the same bytes as a run that never stopped.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from vaebench.config import Params, TrainConfig
from vaebench.core.elbo import elbo_per_image
from vaebench.core.models import VAE, build_model
from vaebench.core.objectives import training_bound
from vaebench.core.variants import PLAIN, Variant
from vaebench.errors import TrainingDiverged
from vaebench.numerics import require_strict_mkl
from vaebench.run.callbacks import Callback, Console, LiveCurves, Resumable, TimeEstimate
from vaebench.run.checkpoint import save_checkpoint
from vaebench.run.data import Mnist, binarize_test, binarize_validation, flip_bits, load_mnist, training_bits
from vaebench.run.fingerprint import run_fingerprint
from vaebench.run.optim import FlatAdam, FlatOptimizer, FlatRMSprop
from vaebench.streams import Draws, Stream, stream_seed


@dataclass(frozen=True)
class FitResult:
    checkpoint: Path
    history: list[dict[str, float]]
    seconds: float
    resumed_from: int


@dataclass
class Run:
    """One training run as the loop and its callbacks see it. `start` and `history` are the finished epochs
    (a resumed run's, set by the Resumable callback); the tensors are on the training device."""

    label: str  # "vae z=5": how the console names the run
    tc: TrainConfig
    variant: Variant
    model: VAE
    opt: FlatOptimizer
    fingerprint: dict[str, Any]
    out_dir: Path
    device: torch.device
    train_x: torch.Tensor  # (N, 784) grey levels on the CPU, binarised afresh each epoch (then moved)
    train_y: torch.Tensor | None  # (N,) labels on the device, for a CVAE only
    held_x: torch.Tensor  # (H, 784) the bits of the monitoring curve (validation images, or test images: train.monitor)
    held_y: torch.Tensor | None
    binarize: str
    log: Callable[[str], None]
    start: int = 0
    history: list[dict[str, float]] = field(default_factory=list)

    @property
    def partial(self) -> Path:
        return self.out_dir.with_name(self.out_dir.name + ".partial")

    @property
    def epochs(self) -> int:
        return self.tc.epochs

    @property
    def batch_size(self) -> int:
        return self.tc.batch_size

    @property
    def steps(self) -> int:
        return -(-len(self.train_x) // self.tc.batch_size)  # ceil: the last batch may be smaller

    @property
    def objective_name(self) -> str:
        """What the training curve measures: the ELBO, or the bound the variant trains on instead."""
        v = self.variant
        if v.objective != "elbo":
            return f"{v.objective.upper()} bound (k={v.k})" + (f" of inputs with {v.noise:g} flipped" if v.noise else "")
        changes = ([f"beta {v.beta:g}"] if v.beta != 1 else []) + (["KL warm-up"] if self.tc.kl_warmup else []) \
            + ([f"free bits {v.free_bits:g}"] if v.free_bits else []) \
            + (["Gumbel-softmax relaxation"] if v.latent == "categorical" else []) \
            + ([f"inputs with {v.noise:g} flipped"] if v.noise else [])
        return f"objective ({', '.join(changes)})" if changes else "ELBO"


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("train.device is 'cuda' but no CUDA device is available")
    return torch.device(name)


def make_optimizer(name: str, params: Any, lr: float, eps: float = 1e-8) -> FlatOptimizer:
    """RMSprop (alpha 0.99) or Adam (betas 0.9, 0.999, as Burda et al. 2016 state), with `eps`: torch's
    arithmetic over one flat buffer (run/optim.py; the same bytes as torch.optim's, in a tenth of the calls)."""
    if name == "rmsprop":
        return FlatRMSprop(params, lr=lr, eps=eps)
    if name == "adam":
        return FlatAdam(params, lr=lr, eps=eps)
    raise ValueError(f"unknown optimizer {name!r}")


def set_lr(opt: torch.optim.Optimizer, lr: float) -> None:
    """Set every parameter group's rate (the staged schedule changes it between epochs, never within one)."""
    for group in opt.param_groups:
        group["lr"] = lr


def heldout_elbo(model: VAE, x: torch.Tensor, y: torch.Tensor | None, seed: int) -> float:
    """Mean single-sample ELBO of the held-out images (nats per image): evaluation's own estimator,
    with the noise of the stream HELDOUT_ELBO(seed), the same every epoch so that epochs compare."""
    return elbo_per_image(model, x, y, Draws(Stream.HELDOUT_ELBO, seed)).double().mean().item()



def seconds_per_step(model: VAE, tc: TrainConfig, x: torch.Tensor, y: torch.Tensor | None, steps: int = 3,
                     variant: Variant = PLAIN) -> float:
    """Wall time of one training step at this batch size, timed on a copy (the run's model, optimiser and
    random streams are untouched, so timing never changes the bytes); one untimed step warms up."""
    net = copy.deepcopy(model).train()
    opt = make_optimizer(tc.optimizer, net.parameters(), tc.lr, tc.eps)
    xb, yb = x[: tc.batch_size], (None if y is None else y[: tc.batch_size])  # (b, 784), (b,)
    g = Draws(Stream.EPOCH, 0, 0)  # a throwaway stream: the run's own streams are not touched
    for i in range(steps + 1):
        if i == 1:
            t0 = time.perf_counter()
        opt.backward_step(-training_bound(net, variant, xb, xb, yb, g, xb.device, variant.tau_start).mean())
    return (time.perf_counter() - t0) / steps



def monitoring_split(data: Mnist, params: Params) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(training grey levels (N, 784), their labels (N,), monitoring bits (H, 784), their labels (H,)).

    train.monitor = validation: the last `heldout` training images are held out of training and binarised once
    (a seeded draw of their own); the test images are not read at all. `test`: every training image is
    trained on, and the curve reads the first `heldout` test bits (the runs before 2026-12-06).
    """
    tc, binarize = params.train, params.data.binarize
    if tc.monitor == "validation":
        n = len(data.train_x) - tc.heldout
        return (data.train_x[:n], data.train_y[:n],
                binarize_validation(data.train_x[n:], binarize, tc.seed), data.train_y[n:])
    test_bits = binarize_test(data.test_x, binarize, params.data.test_seed)
    return data.train_x, data.train_y, test_bits[: tc.heldout], data.test_y[: tc.heldout]


def prepare(model_name: str, zdim: int, params: Params, data: Mnist, out_dir: Path,
            log: Callable[[str], None]) -> Run:
    """The run's data on its device, its model (seeded initialisation), optimiser and fingerprint."""
    variant = params.variant(model_name)
    tc, device = params.train_for(model_name), resolve_device(params.train.device)  # a variant's own epochs
    conditional = model_name == "cvae"
    train_x, train_y, held_x, held_y = monitoring_split(data, params)
    torch.manual_seed(stream_seed(Stream.INIT, tc.seed))  # Xavier init draws from the global RNG
    model = build_model(model_name, zdim, params.model.hidden, params.model.activation, variant).to(device)
    return Run(
        label=f"{model_name} z={zdim}", tc=tc, variant=variant, model=model,
        opt=make_optimizer(tc.optimizer, model.parameters(), tc.lr, tc.eps),
        fingerprint={**run_fingerprint(model_name, zdim, params), "data_manifest_sha256": data.manifest_sha256},
        out_dir=Path(out_dir), device=device, train_x=train_x,
        train_y=train_y.to(device) if conditional else None,
        held_x=held_x.to(device), held_y=held_y.to(device) if conditional else None,
        binarize=params.data.binarize, log=log,
    )


def train_epoch(run: Run, epoch: int, hooks: Sequence[Callback]) -> dict[str, float]:
    """One pass over the training images, then the held-out ELBO: the epoch's row of the curves."""
    tc, v, model, device = run.tc, run.variant, run.model, run.device
    model.train()
    set_lr(run.opt, tc.lr_at(epoch))
    bits = training_bits(run.train_x, run.binarize, tc.seed, epoch).to(device)  # (N, 784) uint8
    g = Draws(Stream.EPOCH, tc.seed, epoch)
    n, bs = len(bits), tc.batch_size
    perm = g.permutation(n).to(device)
    # a stream of its own: with noise = 0 nothing is drawn from it and the run is the VAE's, byte for byte
    flips = Draws(Stream.CORRUPT, tc.seed, epoch) if v.noise > 0 else None
    tau, warm = v.tau_at(epoch, tc.epochs), tc.kl_weight(epoch)  # warm is 1.0 without a KL warm-up
    for h in hooks:
        h.steps_start(run, epoch)
    total = 0.0
    for step, i in enumerate(range(0, n, bs)):
        idx = perm[i:i + bs]
        x = bits.index_select(0, idx).float()  # (b, 784) 0/1: xb[idx] of the float bits, 4x less to gather
        y = None if run.train_y is None else run.train_y[idx]  # (b,)
        x_in = x if flips is None else flip_bits(x, v.noise, flips)  # the denoising VAE's encoder input
        loss = -training_bound(model, v, x_in, x, y, g, device, tau, warm).mean()
        value = loss.item()  # one read of the loss (a synchronisation on a GPU) for the check and the mean
        if not math.isfinite(value):
            raise TrainingDiverged(
                f"{run.label}: loss is {value} at epoch {epoch + 1}, step {step + 1}; the learning "
                f"rate ({tc.lr_at(epoch)}) is the likely cause. The last good checkpoint is untouched.")
        run.opt.backward_step(loss)  # backward, each weight updated as its gradient completes: .grad None after
        total -= value * len(idx)
    for h in hooks:
        h.steps_end(run, epoch)
    model.eval()
    return {"epoch": epoch + 1, "train_elbo": total / n,
            "heldout_elbo": heldout_elbo(model, run.held_x, run.held_y, tc.seed)}


def fit(
    model_name: str,
    zdim: int,
    params: Params,
    data_path: str | Path | None,
    out_dir: str | Path,
    live_dir: str | Path | None = None,
    log: Callable[[str], None] = print,
    progress: bool = True,
    data: Mnist | None = None,
    callbacks: Sequence[Callback] = (),
) -> FitResult:
    """Train `model_name` with latent size `zdim`; write the checkpoint to `out_dir`.

    Epoch state goes to `<out_dir>.partial/` after every epoch and is removed at the end; a rerun after a
    crash continues from there. Curves go to `live_dir` through dvclive. `callbacks` run after the built-in
    ones (resumption, time estimate, curves, console) and see the same hooks.
    """
    require_strict_mkl()
    t0 = time.perf_counter()
    if data is None:
        data = load_mnist(data_path, params.data.train_subset, params.data.test_subset)
    run = prepare(model_name, zdim, params, data, Path(out_dir), log)
    hooks = [Resumable(), TimeEstimate(time_a_step), *([LiveCurves(live_dir)] if live_dir is not None else []),
             Console(progress), *callbacks]
    try:
        for h in hooks:
            h.start(run)
        for epoch in range(run.start, run.epochs):
            for h in hooks:
                h.epoch_start(run, epoch)
            row = train_epoch(run, epoch, hooks)
            run.history.append(row)
            for h in hooks:
                h.epoch_end(run, epoch, row)
        save_checkpoint(run.out_dir, run.model.cpu(), {**run.fingerprint, "epochs_done": run.epochs,
                                                       "final": run.history[-1] if run.history else {}})
        for h in reversed(hooks):
            h.end(run)
    finally:  # a crash or a kill too: the bar is closed (the resumable state stays for the rerun)
        for h in reversed(hooks):
            h.close(run)
    seconds, ran = time.perf_counter() - t0, run.epochs - run.start
    what = f"epochs {run.start + 1}-{run.epochs}" if ran > 1 else f"epoch {run.epochs}" if ran == 1 else "no epoch"
    resumed = f", resumed after epoch {run.start}" if run.start else ""
    log(f"{run.label}: ran {what} ({ran} of {run.epochs}{resumed}) in {seconds:.0f} s -> {run.out_dir}")
    return FitResult(run.out_dir, run.history, seconds, run.start)


def time_a_step(run: Run) -> float:
    bs = run.tc.batch_size
    return seconds_per_step(run.model, run.tc, run.train_x[:bs].to(run.device),
                            None if run.train_y is None else run.train_y[:bs], variant=run.variant)
