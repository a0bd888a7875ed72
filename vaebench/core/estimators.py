"""Scores of a trained model on the binarised test set: ELBO, IWAE log-likelihood and its spread, latent diagnostics.

The IWAE estimator encodes each image once and decodes k samples in blocks, so k = 5000 over
10,000 images runs in bounded memory. Each image's noise comes from its own stream
(eval.seed, image index, label; vaebench/streams.py), and every encoder and decoder call has a
fixed number of rows, so the numbers depend neither on `eval.chunk` nor on which other images
share a block (tests/test_evaluate.py checks both bit for bit).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from tqdm.auto import tqdm

from vaebench.core import ACTIVE_THRESHOLD, bounds
from vaebench.config import EvalConfig
from vaebench.core.batching import DECODE_ROWS, decode_rows, encode_all, encode_logits_all
from vaebench.core.elbo import elbo_per_image
from vaebench.core.models import N_LABELS, VAE
from vaebench.streams import Draws, Stream



@torch.no_grad()
def iwae_log_px(
    model: VAE,
    x: torch.Tensor,
    y: torch.Tensor | None,
    k: int,
    seed: int,
    chunk: int = 50_000,
    progress: Callable[[int], None] | None = None,
) -> torch.Tensor:
    """The k-sample IWAE estimate of log p(x) (or log p(x|y) for a CVAE) for each image, (N,).

    Burda et al. 2016, eq. 8, one draw of the k samples per image; image i's samples come from
    the stream (seed, i, label slot). `chunk` bounds the samples held at once (memory only: the
    blocks of the decoder do not depend on it). `progress(n)` is told of each n images done.
    """
    n, out = len(x), []
    if model.categorical:
        q_all = encode_logits_all(model, x, y)  # (N, Nvars, K): each image is encoded once
    else:
        mu_all, logvar_all = encode_all(model, x, y)  # (N, D) each: each image is encoded once
    s = min(k, DECODE_ROWS)  # samples decoded at once per image
    t = max(1, DECODE_ROWS // s)  # images decoded at once: every decoder call has t * s rows
    b = max(1, chunk // k) // t * t or t  # images per pass, a multiple of t: the same t-groups for any chunk
    for i in range(0, n, b):
        xb = x[i:i + b]  # (b, P)
        yb = None if y is None else y[i:i + b]  # (b,)
        draws = [Draws(Stream.IWAE, seed, i + j, 0 if y is None else 1 + int(yb[j])) for j in range(len(xb))]
        if model.categorical:  # hard one-hot samples of q (Gumbel-max): the discrete model, never its relaxation
            q = q_all[i:i + b]  # (b, Nvars, K)
            gumbel = torch.stack([d.gumbel((k, model.zdim, model.classes)) for d in draws]).to(q.device)
            states = bounds.one_hot_sample(q[:, None], gumbel)  # (b, k, Nvars, K)
            z = states.flatten(-2)  # (b, k, Nvars K)
        else:
            mu, logvar = mu_all[i:i + b], logvar_all[i:i + b]  # (b, D) each
            eps = torch.stack([d.normal((k, model.zdim)) for d in draws]).to(mu.device)  # (b, k, D)
            z = bounds.reparameterize(mu[:, None], logvar[:, None], eps)  # (b, k, D)
        log_w = torch.empty(len(xb), k)
        for c in range(0, len(xb), t):
            xt = xb[c:c + t]  # (t', P), t' <= t
            for a in range(0, k, s):
                zs = z[c:c + t, a:a + s]  # (t', s', width)
                ys = None if yb is None else yb[c:c + t, None].expand(zs.shape[:2]).reshape(-1)  # (t' s',)
                logits = decode_rows(model, zs.reshape(-1, model.width), ys, t * s).view(*zs.shape[:2], -1)
                log_px_z = bounds.bernoulli_log_lik(logits, xt[:, None])  # (t', s')
                if model.categorical:
                    log_w[c:c + t, a:a + s] = bounds.categorical_log_importance_weights(
                        log_px_z, states[c:c + t, a:a + s], q[c:c + t, None])
                else:
                    log_w[c:c + t, a:a + s] = bounds.log_importance_weights(
                        log_px_z, zs, mu[c:c + t, None], logvar[c:c + t, None])
        out.append(bounds.iwae_bound(log_w))
        if progress is not None:
            progress(len(xb))
    return torch.cat(out)


def mean_and_se(v: torch.Tensor) -> tuple[float, float]:
    """Mean and its standard error over images (sample std / sqrt(N))."""
    v = v.double()
    se = v.std(unbiased=True).item() / math.sqrt(len(v)) if len(v) > 1 else float("nan")
    return v.mean().item(), se


def eval_seed_spread(per_seed: torch.Tensor, n_images: int) -> float:
    """Predicted SD across evaluation seeds of a mean log p(x) over `n_images` images, (S, N) -> float.

    per_seed[s, i] is image i's IWAE estimate with seed s. The seeds draw independent samples for
    every image, so var_s(per_seed[:, i]) estimates the variance of image i's estimate, and the
    mean over n_images independent images has variance mean_i var_i / n_images. N images give N
    variance estimates: far steadier than the SD of S seed means.
    """
    if per_seed.shape[0] < 2:
        raise ValueError("eval_seed_spread needs estimates from at least two seeds")
    return math.sqrt(per_seed.double().var(0, unbiased=True).mean().item() / n_images)


def categorical_diagnostics(logits: torch.Tensor) -> dict[str, Any]:
    """Mean KL per categorical variable and active variables, from q's logits (N, Nvars, K).

    Burda et al.'s activity, Cov_x(E_q[z_u]), for a one-hot variable: E_q[z_n] is q's probability vector,
    and the variable's activity is the trace of its covariance over images, sum_k Var_x(q_nk).
    """
    log_q = torch.log_softmax(logits.double(), -1)
    kl = (log_q.exp() * (log_q + math.log(logits.shape[-1]))).sum(-1).mean(0)  # (Nvars,)
    probs = log_q.exp()
    activity = probs.var(0, unbiased=True).sum(-1) if len(probs) > 1 else torch.zeros(logits.shape[1], dtype=torch.float64)
    return {
        "kl_per_dim": kl.tolist(),
        "activity_per_dim": activity.tolist(),
        "active_units": int((activity > ACTIVE_THRESHOLD).sum()),
    }


def latent_diagnostics(mu: torch.Tensor, logvar: torch.Tensor) -> dict[str, Any]:
    """Mean KL per latent dimension and active units (Burda et al. 2016, sec. 5.2), from q's parameters (N, D)."""
    kl = bounds.gaussian_kl_per_dim(mu, logvar).double().mean(0)  # (D,)
    activity = mu.double().var(0, unbiased=True) if len(mu) > 1 else torch.zeros(mu.shape[1], dtype=torch.float64)
    return {
        "kl_per_dim": kl.tolist(),
        "activity_per_dim": activity.tolist(),
        "active_units": int((activity > ACTIVE_THRESHOLD).sum()),
    }


def planned_samples(n_images: int, cfg: EvalConfig, conditional: bool) -> int:
    """Importance samples evaluate_model decodes: its progress bar's total.

    k per image, k again per extra seed on the first spread_images images, and for a CVAE
    k_marginal per image for each of the 9 other labels.
    """
    n_spread = min(cfg.spread_images, n_images) if cfg.spread_seeds and n_images > 1 else 0
    return cfg.k * (n_images + cfg.spread_seeds * n_spread) + (
        (N_LABELS - 1) * n_images * cfg.k_marginal if conditional else 0)


def evaluate_model(
    model: VAE, x: torch.Tensor, labels: torch.Tensor, cfg: EvalConfig, show_progress: bool = True,
    progress: Callable[[int], None] | None = None, per_image: dict[str, torch.Tensor] | None = None,
) -> dict[str, Any]:
    """All test metrics of one model on binarised images x (N, 784) with their labels (N,).

    Log-likelihoods are reported as NLL (nats per image, lower is better). For a CVAE:
    `iwae_nll` is -log p(x|y) for the true label, `iwae_nll_marginal` is -log p(x) with
    p(x) = 1/10 sum_y p(x|y) (uniform label prior), each p(x|y) estimated by IWAE.
    """
    model.eval()
    y = labels if model.conditional else None
    n_spread = min(cfg.spread_images, len(x)) if cfg.spread_seeds and len(x) > 1 else 0
    # counted in decoded samples, the unit of work: an image costs k samples, a marginal term k_marginal
    bar = tqdm(total=planned_samples(len(x), cfg, model.conditional), desc="IWAE", unit="sample",
               unit_scale=True, disable=not show_progress, leave=False)

    def done(k: int) -> Callable[[int], None]:
        def tell(n_images: int) -> None:
            bar.update(n_images * k)
            if progress is not None:
                progress(n_images * k)
        return tell

    elbo = elbo_per_image(model, x, y, Draws(Stream.TEST_ELBO, cfg.seed))
    log_px = iwae_log_px(model, x, y, cfg.k, cfg.seed, cfg.chunk, done(cfg.k))
    if per_image is not None:  # the caller pairs them with another estimate of the same images
        per_image["iwae"] = log_px
    if model.categorical:
        logits_q = encode_logits_all(model, x, y)  # (N, Nvars, K)
        kl, diagnostics = bounds.categorical_kl(logits_q), categorical_diagnostics(logits_q)
    else:
        mu, logvar = encode_all(model, x, y)
        kl, diagnostics = bounds.gaussian_kl(mu, logvar), latent_diagnostics(mu, logvar)
    m_elbo, se_elbo = mean_and_se(elbo)
    m_iwae, se_iwae = mean_and_se(log_px)
    out: dict[str, Any] = {
        "n_images": len(x),
        "k": cfg.k,
        "test_elbo": m_elbo,
        "test_elbo_se": se_elbo,
        "neg_elbo": -m_elbo,
        "iwae_nll": -m_iwae,
        "iwae_nll_se": se_iwae,
        "kl": kl.double().mean().item(),
        **diagnostics,
    }
    if n_spread:
        # image i's samples depend only on (seed, i, label), its encoding only on image i: seed `cfg.seed` on the first n_spread
        # images is log_px[:n_spread] itself, and the other seeds re-estimate just those images
        xs, ys = x[:n_spread], (None if y is None else y[:n_spread])
        per_seed = torch.stack([log_px[:n_spread], *(
            iwae_log_px(model, xs, ys, cfg.k, cfg.seed + j, cfg.chunk, done(cfg.k))
            for j in range(1, cfg.spread_seeds + 1))])  # (1 + spread_seeds, n_spread)
        out["iwae_nll_eval_sd"] = eval_seed_spread(per_seed, len(x))
        out["eval_spread_seeds"] = 1 + cfg.spread_seeds
        out["eval_spread_images"] = n_spread
    if model.conditional:
        out["k_marginal"] = cfg.k_marginal
        out["iwae_nll_marginal"], out["iwae_nll_marginal_se"] = _marginal(
            model, x, labels, log_px, cfg, done(cfg.k_marginal))
    bar.close()
    return out


def marginal_log_px(model: VAE, x: torch.Tensor, labels: torch.Tensor, log_px_true: torch.Tensor,
                    cfg: EvalConfig, progress: Callable[[int], None] | None = None) -> torch.Tensor:
    """log p(x) = log 1/10 sum_y p(x|y) for a CVAE, per image (N,).

    The true label's term reuses the k-sample estimate `log_px_true`; the other nine use
    k_marginal samples each. Every term estimates p(x|y) without bias, so the log of their
    mean is again a stochastic lower bound on log p(x), and image by image
    log p(x) >= log p(x|y_true) - ln 10 holds exactly, as it does for the true values.
    """
    terms = torch.empty(len(x), N_LABELS)  # (N, 10)
    terms[torch.arange(len(x)), labels] = log_px_true
    for other in range(1, N_LABELS):
        y_alt = (labels + other) % N_LABELS  # each image's other labels, one pass per offset
        est = iwae_log_px(model, x, y_alt, cfg.k_marginal, cfg.seed, cfg.chunk, progress)
        terms[torch.arange(len(x)), y_alt] = est
    return bounds.log_mean_exp(terms, -1)


def _marginal(model: VAE, x: torch.Tensor, labels: torch.Tensor, log_px_true: torch.Tensor,
              cfg: EvalConfig, progress: Callable[[int], None] | None) -> tuple[float, float]:
    m, se = mean_and_se(marginal_log_px(model, x, labels, log_px_true, cfg, progress))
    return -m, se
