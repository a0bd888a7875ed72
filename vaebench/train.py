"""One fit() for every model: seeding, the loop, curves, checkpoints, resumption.

Every random draw of epoch e (binarisation, minibatch order, reparameterisation noise) comes
from a named stream (seed, e) of vaebench/streams.py, never from the global RNG. So the run is a pure function
of its config, and resuming after epoch e needs only the weights, the optimiser state and e:
a run killed and resumed ends with the same bytes as a run that never stopped.
"""

from __future__ import annotations

import copy
import json
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from vaebench import bounds
from vaebench import io as vio
from vaebench.checkpoint import read_tensors, save_checkpoint, tensors_to_bytes
from vaebench.config import PLAIN, Params, TrainConfig, Variant
from vaebench.data import Mnist, binarize_test, binarize_train, flip_bits, load_mnist
from vaebench.elbo import elbo_per_image
from vaebench.fingerprint import run_fingerprint
from vaebench.models import VAE, build_model
from vaebench.numerics import require_strict_mkl
from vaebench.streams import Draws, Stream, stream_seed
from vaebench.errors import TrainingDiverged


@dataclass(frozen=True)
class FitResult:
    checkpoint: Path
    history: list[dict[str, float]]
    seconds: float
    resumed_from: int


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("train.device is 'cuda' but no CUDA device is available")
    return torch.device(name)


def make_optimizer(name: str, params: Any, lr: float, eps: float = 1e-8) -> torch.optim.Optimizer:
    """torch's RMSprop (alpha 0.99) or Adam (betas 0.9, 0.999, as Burda et al. 2016 state), with `eps`."""
    if name == "rmsprop":
        return torch.optim.RMSprop(params, lr=lr, eps=eps)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, eps=eps)
    raise ValueError(f"unknown optimizer {name!r}")


def set_lr(opt: torch.optim.Optimizer, lr: float) -> None:
    """Set every parameter group's rate (the staged schedule changes it between epochs, never within one)."""
    for group in opt.param_groups:
        group["lr"] = lr


def _noise(shape: tuple[int, ...], g: Draws, device: torch.device) -> torch.Tensor:
    # drawn on the CPU and moved, so CPU and GPU runs see the same noise
    return g.normal(shape).to(device)


def heldout_elbo(model: VAE, x: torch.Tensor, y: torch.Tensor | None, seed: int) -> float:
    """Mean single-sample ELBO of the held-out images (nats per image): evaluation's own estimator,
    with the noise of the stream HELDOUT_ELBO(seed), the same every epoch so that epochs compare."""
    if len(x) == 0:
        return float("nan")
    return elbo_per_image(model, x, y, Draws(Stream.HELDOUT_ELBO, seed)).double().mean().item()


def training_bound(model: VAE, v: Variant, x_in: torch.Tensor, x: torch.Tensor, y: torch.Tensor | None, g: Draws,
                   device: torch.device, tau: float, kl_weight: float = 1.0) -> torch.Tensor:
    """The bound a variant trains on, per image, (b,): the pieces of `v` composed over one minibatch.

    x_in (b, 784) is what the encoder sees (x itself, or its corruption for a denoising VAE), x (b, 784)
    what the decoder must reconstruct; the noise comes from the epoch's stream `g` in a fixed order.
    `kl_weight` is the KL warm-up's factor of this epoch (train.kl_warmup), multiplying beta.
    - Gaussian, `elbo`: one reparameterised sample, analytic KL weighted by beta (Kingma & Welling 2014,
      eq. 10; Higgins et al. 2017, eq. 4). With beta = 1 and x_in = x: the thesis's VAE, byte for byte.
    - Gaussian, `iwae`: k reparameterised samples, L_k (Burda et al. 2016, eq. 8); its gradient is theirs,
      eq. 14, the importance-weighted average of the k single-sample gradients (beta is refused with it).
    - Gaussian, `dreg`: the same L_k, the encoder's gradient doubly reparameterised (`_dreg`).
    - categorical: one Gumbel-softmax sample at temperature tau (Jang et al. 2017, eq. 1) through the
      decoder, and the exact KL of q against the uniform prior, weighted by beta.
    """
    if model.categorical:
        logits_q = model.encode_logits(x_in, y)  # (b, N, K)
        z = bounds.gumbel_softmax(logits_q, g.gumbel(tuple(logits_q.shape)).to(device), tau)  # (b, N, K), relaxed
        log_px_z = bounds.bernoulli_log_lik(model.decode(z.flatten(-2), y), x)  # (b,)
        return bounds.beta_elbo(log_px_z, bounds.categorical_kl(logits_q), v.beta * kl_weight)
    mu, logvar = model.encode(x_in, y)  # (b, D) each
    if v.objective in ("iwae", "dreg"):
        eps = _noise((len(x), v.k, model.zdim), g, device)  # (b, k, D)
        z = bounds.reparameterize(mu[:, None], logvar[:, None], eps)  # (b, k, D)
        if v.objective == "dreg":
            return _dreg(model, x, y, z, mu, logvar)
        log_px_z = bounds.bernoulli_log_lik(model.decode(z, y), x[:, None])  # (b, k); (b,) labels serve (b, k, D)
        return bounds.iwae_bound(bounds.log_importance_weights(log_px_z, z, mu[:, None], logvar[:, None]))
    z = bounds.reparameterize(mu, logvar, _noise(tuple(mu.shape), g, device))  # (b, D)
    return bounds.beta_elbo(bounds.bernoulli_log_lik(model.decode(z, y), x), bounds.gaussian_kl(mu, logvar),
                            v.beta * kl_weight)


def _dreg(model: VAE, x: torch.Tensor, y: torch.Tensor | None, z: torch.Tensor, mu: torch.Tensor,
          logvar: torch.Tensor) -> torch.Tensor:
    """L_k (b,) whose gradient is the doubly reparameterised one (Tucker, Lawson, Gu & Maddison 2019, eq. 5).

    z (b, k, D) are the reparameterised samples. Decoder: sum_i w~_i grad log w_i, the IWAE's own (the
    latents held fixed). Encoder: sum_i w~_i^2 d log w_i / d z_i dz_i/dphi, with q's parameters held fixed
    inside log q (its score term, which only adds variance, dropped). Built as two surrogates whose
    gradients reach one side each: the decoder's from log w at detached latents, the encoder's through the
    latents into a decoder with detached weights; two decoder passes, one more than the IWAE's. The value
    returned is L_k itself (the surrogates enter as s - s, exactly 0).
    """
    from torch.func import functional_call

    zd, mu_d, logvar_d = z.detach(), mu.detach()[:, None], logvar.detach()[:, None]
    dec_side = bounds.log_importance_weights(bounds.bernoulli_log_lik(model.decode(zd, y), x[:, None]), zd,
                                             mu_d, logvar_d)  # (b, k): log w, gradients to the decoder only
    frozen = {name: p.detach() for name, p in model.decoder.named_parameters()}
    logits = functional_call(model.decoder, frozen, (model._with_label(z, _labels_for(y, z)),))
    enc_side = bounds.log_importance_weights(bounds.bernoulli_log_lik(logits, x[:, None]), z,
                                             mu_d, logvar_d)  # (b, k): log w, gradients to the encoder only
    w = torch.softmax(dec_side.detach(), -1)  # (b, k): normalised importance weights, constants
    surrogate = (w * dec_side).sum(-1) + (w.square() * enc_side).sum(-1)  # (b,)
    return bounds.iwae_bound(dec_side.detach()) + (surrogate - surrogate.detach())


def _labels_for(y: torch.Tensor | None, z: torch.Tensor) -> torch.Tensor | None:
    """(b,) labels expanded to z's leading dimensions (b, k), as VAE.decode aligns them."""
    if y is None:
        return None
    return y[:, None].expand(z.shape[:-1])


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
        loss = -training_bound(net, variant, xb, xb, yb, g, xb.device, variant.tau_start).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return (time.perf_counter() - t0) / steps


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.0f} min" if seconds < 7200 else f"{seconds / 3600:.1f} h"


# ---------------------------------------------------------------- resumable state


def _state_paths(partial: Path) -> tuple[Path, Path]:
    return partial / "state.safetensors", partial / "state.json"


def save_state(partial: Path, model: VAE, opt: torch.optim.Optimizer, info: dict[str, Any]) -> None:
    """Model and optimiser tensors in one safetensors file, the rest in JSON (written last: it marks completeness)."""
    sd = opt.state_dict()
    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    for pid, st in sd["state"].items():
        for key, val in st.items():
            tensors[f"optim.{pid}.{key}"] = val if torch.is_tensor(val) else torch.tensor(val)
    blob = tensors_to_bytes(tensors)
    weights, meta = _state_paths(partial)
    vio.write_bytes(weights, blob)
    vio.write_json(meta, {**info, "param_groups": sd["param_groups"], "state_sha256": vio.sha256_bytes(blob)})


def load_state(partial: Path, model: VAE, opt: torch.optim.Optimizer, fingerprint: dict[str, Any]) -> dict[str, Any] | None:
    """Restore the last complete epoch if `partial` holds one for this exact fingerprint; else None."""
    weights, meta_path = _state_paths(partial)
    if not meta_path.exists():
        return None
    try:
        info = vio.read_json(meta_path)
        if info.get("fingerprint") != json.loads(json.dumps(fingerprint)):
            return None  # state of another configuration: start afresh
        if vio.sha256_file(weights) != info["state_sha256"]:
            return None
        tensors = read_tensors(weights)
    except Exception:  # any damage to the partial state means: start afresh, never crash
        return None
    model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, val in tensors.items():
        if key.startswith("optim."):
            _, pid, name = key.split(".", 2)
            state.setdefault(int(pid), {})[name] = val
    opt.load_state_dict({"state": state, "param_groups": info["param_groups"]})
    return info


# ---------------------------------------------------------------- the loop


def fit(
    model_name: str,
    zdim: int,
    params: Params,
    data_path: str | Path,
    out_dir: str | Path,
    live_dir: str | Path | None = None,
    log: Callable[[str], None] = print,
    progress: bool = True,
    data: Mnist | None = None,
) -> FitResult:
    """Train `model_name` with latent size `zdim`; write the checkpoint to `out_dir`.

    Epoch state goes to `<out_dir>.partial/` after every epoch and is removed at the end;
    a rerun after a crash continues from there. Curves go to `live_dir` through dvclive.
    """
    require_strict_mkl()
    t0 = time.perf_counter()
    tc, out_dir = params.train, Path(out_dir)
    partial = out_dir.with_name(out_dir.name + ".partial")
    device = resolve_device(tc.device)
    if data is None:
        data = load_mnist(data_path, params.data.train_subset, params.data.test_subset)
    conditional = model_name == "cvae"
    train_x, train_y = data.train_x.to(device), data.train_y.to(device)
    test_bits = binarize_test(data.test_x, params.data.binarize, params.data.test_seed)
    held_x = test_bits[: tc.heldout].to(device)
    held_y = data.test_y[: tc.heldout].to(device) if conditional else None

    torch.manual_seed(stream_seed(Stream.INIT, tc.seed))  # Xavier init draws from the global RNG
    variant = params.variant(model_name)
    model = build_model(model_name, zdim, params.model.hidden, params.model.activation, variant).to(device)
    opt = make_optimizer(tc.optimizer, model.parameters(), tc.lr, tc.eps)
    fingerprint = {**run_fingerprint(model_name, zdim, params), "data_manifest_sha256": data.manifest_sha256}

    for d in (out_dir, partial):  # a run killed mid-write may have left temporaries behind
        vio.remove_stale_temporaries(d)
    info = load_state(partial, model, opt, fingerprint)
    start, history = (info["epoch"], info["history"]) if info else (0, [])
    if start:
        log(f"resuming {model_name} z={zdim} after epoch {start} from {partial}")
    n, bs = len(train_x), tc.batch_size
    steps = -(-n // bs)  # ceil: the last batch may be smaller
    if start < tc.epochs:
        t_step = seconds_per_step(model, tc, train_x, train_y if conditional else None, variant=variant)
        log(f"training {model_name} z={zdim}: epochs {start + 1}-{tc.epochs} of {tc.epochs}, {steps} steps of "
            f"{bs} images each; about {_duration(t_step * steps * (tc.epochs - start))} "
            f"(a step timed at {t_step * 1000:.0f} ms)")

    live = None
    staged = partial / "live"  # dvclive appends to its files in place: it writes here, moved to live_dir at the end
    if live_dir is not None:
        from dvclive import Live  # imported lazily: pulls in much of dvc

        shutil.rmtree(staged, ignore_errors=True)
        live = Live(str(staged), dvcyaml=False, save_dvc_exp=False, report=None)
        for row in history:  # replay the finished epochs, so a resumed run logs what an unbroken one does
            _log_epoch(live, row)

    bar = tqdm(range(start, tc.epochs), desc=f"{model_name} z={zdim}", unit="epoch",
               initial=start, total=tc.epochs, disable=not progress, leave=False)
    t_loop = time.perf_counter()
    for epoch in bar:
        model.train()
        set_lr(opt, tc.lr_at(epoch))
        xb = binarize_train(data.train_x, params.data.binarize, tc.seed, epoch).to(device)  # (N, 784)
        g = Draws(Stream.EPOCH, tc.seed, epoch)
        perm = g.permutation(n).to(device)
        # a stream of its own: with noise = 0 nothing is drawn from it and the run is the VAE's, byte for byte
        flips = Draws(Stream.CORRUPT, tc.seed, epoch) if variant.noise > 0 else None
        tau = variant.tau_at(epoch, tc.epochs)
        warm = tc.kl_weight(epoch)  # 1.0 without a warm-up: then the run is the VAE's, byte for byte
        total = 0.0
        for step, i in enumerate(range(0, n, bs)):
            idx = perm[i:i + bs]
            x, y = xb[idx], (train_y[idx] if conditional else None)  # (b, 784), (b,)
            x_in = x if flips is None else flip_bits(x, variant.noise, flips)  # the denoising VAE's encoder input
            loss = -training_bound(model, variant, x_in, x, y, g, device, tau, warm).mean()
            if not torch.isfinite(loss):
                raise TrainingDiverged(
                    f"{model_name} z={zdim}: loss is {loss.item()} at epoch {epoch + 1}, step {step + 1}; "
                    f"the learning rate ({tc.lr_at(epoch)}) is the likely cause. The last good checkpoint is untouched."
                )
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total -= loss.item() * len(idx)
        model.eval()
        row = {
            "epoch": epoch + 1,
            "train_elbo": total / n,
            "heldout_elbo": heldout_elbo(model, held_x, held_y, tc.seed),
        }
        history.append(row)
        save_state(partial, model, opt, {"epoch": epoch + 1, "history": history, "fingerprint": fingerprint})
        if live is not None:
            _log_epoch(live, row)
        bar.set_postfix(train=f"{row['train_elbo']:.2f}", heldout=f"{row['heldout_elbo']:.2f}")
        if not progress:
            left = (time.perf_counter() - t_loop) / (epoch + 1 - start) * (tc.epochs - epoch - 1)
            log(f"{model_name} z={zdim} epoch {epoch + 1}/{tc.epochs}: "
                f"train ELBO {row['train_elbo']:.2f}, held-out ELBO {row['heldout_elbo']:.2f}"
                + (f" (about {_duration(left)} left)" if epoch + 1 < tc.epochs else ""))
    bar.close()
    if live is not None:
        live.end()

    save_checkpoint(out_dir, model.cpu(), {**fingerprint, "epochs_done": tc.epochs,
                                           "final": history[-1] if history else {}})
    if live is not None:  # the curves appear complete or not at all: a killed run leaves the previous ones (or none)
        shutil.rmtree(live_dir, ignore_errors=True)
        Path(live_dir).parent.mkdir(parents=True, exist_ok=True)
        shutil.move(staged, live_dir)  # a rename on one filesystem, a copy across two
    shutil.rmtree(partial, ignore_errors=True)
    seconds = time.perf_counter() - t0
    ran = tc.epochs - start
    what = f"epochs {start + 1}-{tc.epochs}" if ran > 1 else f"epoch {tc.epochs}" if ran == 1 else "no epoch"
    resumed = f", resumed after epoch {start}" if start else ""
    log(f"{model_name} z={zdim}: ran {what} ({ran} of {tc.epochs}{resumed}) in {seconds:.0f} s -> {out_dir}")
    return FitResult(out_dir, history, seconds, start)


def _log_epoch(live: Any, row: dict[str, float]) -> None:
    # no timestamps: the logs must be byte-identical across identical runs
    live.log_metric("train/elbo", row["train_elbo"])
    live.log_metric("heldout/elbo", row["heldout_elbo"])
    live.next_step()
