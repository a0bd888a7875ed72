"""The bounds, as pure functions of tensors: no model, no state, no I/O.

Shapes: B images, S importance samples, D latent dimensions, P = 784 pixels.
All log-densities are in nats and summed over the event dimension (the last one).
Training (train.py) and evaluation (evaluate.py) both call these; nothing else computes a bound.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

LOG_2PI = math.log(2 * math.pi)


def gaussian_kl_per_dim(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, exp(logvar)) || N(0, 1)) for each coordinate, (..., D) -> (..., D).

    Kingma & Welling 2014, Appendix B: -KL = 1/2 sum_j (1 + log s_j^2 - mu_j^2 - s_j^2).
    exp(lv) - 1 - lv is written expm1(lv) - lv: in fp32, exp(lv) - 1 cancels for |lv| << 1 and the
    KL came out negative (down to -3e-8); expm1(lv) >= lv holds after rounding too, so KL >= 0.
    """
    return 0.5 * (mu.square() + torch.expm1(logvar) - logvar)


def gaussian_kl(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(q(z|x) || N(0, I)) for a diagonal Gaussian q, (..., D) -> (...)."""
    return gaussian_kl_per_dim(mu, logvar).sum(-1)


def bernoulli_log_lik(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """log p(x | logits) = sum_p x_p l_p - softplus(l_p), (..., P) -> (...).

    Computed from the logits, never as log(sigmoid(l)), which underflows to -inf for l < -88 in fp32.
    Identity: log sigmoid(l) = l - softplus(l) and log(1 - sigmoid(l)) = -softplus(l).
    `x` broadcasts against `logits`, so (B, 1, P) images score (B, S, P) decoded samples.
    """
    return (x * logits - F.softplus(logits)).sum(-1)


def gaussian_log_prob(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """log N(z; mu, diag exp(logvar)), (..., D) -> (...)."""
    return -0.5 * (LOG_2PI + logvar + (z - mu).square() * torch.exp(-logvar)).sum(-1)


def standard_normal_log_prob(z: torch.Tensor) -> torch.Tensor:
    """log N(z; 0, I), (..., D) -> (...)."""
    return -0.5 * (LOG_2PI + z.square()).sum(-1)


def reparameterize(mu: torch.Tensor, logvar: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """z = mu + sigma * eps (Kingma & Welling 2014, eq. 4 with g = location-scale); eps ~ N(0, I) given."""
    return mu + torch.exp(0.5 * logvar) * eps


def elbo(x: torch.Tensor, logits: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """Per-image evidence lower bound with the analytic KL, (B, P), (B, P), (B, D), (B, D) -> (B,).

    Kingma & Welling 2014, eq. 10: L = -KL(q(z|x) || p(z)) + log p(x|z), z ~ q(z|x) (one sample, in `logits`).
    """
    return bernoulli_log_lik(logits, x) - gaussian_kl(mu, logvar)


def log_importance_weights(
    log_px_given_z: torch.Tensor, z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor
) -> torch.Tensor:
    """log w = log p(x|z) + log p(z) - log q(z|x), (B, S), (B, S, D), (B, 1, D), (B, 1, D) -> (B, S)."""
    return log_px_given_z + standard_normal_log_prob(z) - gaussian_log_prob(z, mu, logvar)


def log_mean_exp(log_w: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """log (1/k) sum_i exp(log_w_i) along `dim`, stable (max-shifted by logsumexp)."""
    return torch.logsumexp(log_w, dim) - math.log(log_w.shape[dim])


def iwae_bound(log_w: torch.Tensor) -> torch.Tensor:
    """The k-sample importance-weighted bound from k log-weights, (B, k) -> (B,).

    Burda, Grosse & Salakhutdinov 2016, eq. 8: L_k = E[log (1/k) sum_i p(x, z_i) / q(z_i|x)].
    L_1 is the ELBO; L_k rises with k towards log p(x) (their Theorem 1).
    """
    return log_mean_exp(log_w, -1)
