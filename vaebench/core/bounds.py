"""The bounds, as pure functions of tensors: no model, no state, no I/O.

Shapes: B images, S importance samples, D latent dimensions, P = 784 pixels.
All log-densities are in nats and summed over the event dimension (the last one).
Training (core/objectives.py) and evaluation (core/elbo.py, core/estimators.py) both call these; nothing else computes a bound.
"""

from __future__ import annotations

import math

import torch

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
    Identity: log sigmoid(l) = l - softplus(l) and log(1 - sigmoid(l)) = -softplus(l), with
    softplus(l) = relu(l) + log(1 + e^{-|l|}); only sigmoid(|l|), in [1/2, 1), is ever logged.
    `x` broadcasts against `logits`, so (B, 1, P) images score (B, S, P) decoded samples.
    The gradient is the analytic one, d/dl = x - sigmoid(l) (see _BernoulliLogLik).
    """
    return _BernoulliLogLik.apply(logits, x)


# Products of this many factors sigmoid(|l|) in [1/2, 1) stay above 2^-16 in fp32; see _log1p_exp_neg_abs_sum.
_PRODUCT_GROUP = 16


def _log1p_exp_neg_abs_sum(logits: torch.Tensor) -> torch.Tensor:
    """sum_p log(1 + exp(-|l_p|)), (..., P) -> (...), with one log per 16 pixels.

    Why: torch's CPU softplus, log1p and logaddexp cost several times a sigmoid or a log per element
    (docs/speed-and-tests.md has the measurement); the softplus took a quarter of the IWAE time.
    log(1 + e^{-a}) = -log sigmoid(a), and sigmoid(|l|) lies in [1/2, 1): halving the last
    dimension four times multiplies groups of 16 such factors (each product >= 2^-16, no
    underflow), and one log per group replaces 16.
    Error: each factor (sigmoid is good to ~1 ulp) and each product rounds by ~2^-24 relative, so a
    group's log is off by a few 1e-6 nats; tests/test_bounds.py checks the sum against float64 softplus.
    A factor within 6e-8 of 1 rounds to 1: its term, < 6e-8 nats, is dropped.
    """
    u = logits.abs().sigmoid_()  # (..., P), in [1/2, 1)
    for _ in range(_PRODUCT_GROUP.bit_length() - 1):
        if u.shape[-1] % 2:
            break  # an odd width: the remaining factors get their own logs
        half = u.shape[-1] // 2
        u = u[..., :half] * u[..., half:]  # (..., P / 2^i)
    return -u.log_().sum(-1)


class _BernoulliLogLik(torch.autograd.Function):
    """Forward: sum_p x_p l_p - relu(l_p) - log(1 + e^{-|l_p|}), as softplus(l) = relu(l) + log(1 + e^{-|l|}).

    Backward: d/dl = x - sigmoid(l), d/dx = l (the analytic gradients), instead of autograd's walk
    back through abs, exp, the products and the log.
    """

    @staticmethod
    def forward(ctx: torch.autograd.function.FunctionCtx, logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(logits, x)
        linear = torch.addcmul(logits.relu().neg_(), x, logits)  # x l - relu(l), broadcast to (..., P)
        return linear.sum(-1) - _log1p_exp_neg_abs_sum(logits)

    @staticmethod
    def backward(ctx: torch.autograd.function.FunctionCtx, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        logits, x = ctx.saved_tensors
        g = grad.unsqueeze(-1)  # (..., 1)
        d_logits = d_x = None
        if ctx.needs_input_grad[0]:
            d_logits = ((x - torch.sigmoid(logits)) * g).sum_to_size(logits.shape)
        if ctx.needs_input_grad[1]:
            d_x = (logits * g).sum_to_size(x.shape)
        return d_logits, d_x


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
    return beta_elbo(bernoulli_log_lik(logits, x), gaussian_kl(mu, logvar), 1.0)


def beta_elbo(log_px_z: torch.Tensor, kl: torch.Tensor, beta: float) -> torch.Tensor:
    """E_q[log p(x|z)] - beta KL(q(z|x) || p(z)), (...), (...) -> (...): the beta-VAE objective.

    Higgins et al. 2017, eq. 4. beta = 1 is the ELBO (1.0 * kl is kl exactly, so the bytes are the VAE's);
    beta > 1 buys a smaller rate (the KL) with a larger distortion (-log p(x|z)), beta < 1 the reverse
    (Alemi et al. 2018). Only training uses beta != 1: every model is scored on the true bound.
    """
    return log_px_z - beta * kl


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


# ---------------------------------------------------------------- categorical latents
# Shapes: N categorical variables of K classes; q's parameters are logits (..., N, K), a latent state is
# one-hot (..., N, K) (or its relaxation), and the prior is uniform: p(z) = K^-N.


def categorical_kl(logits: torch.Tensor) -> torch.Tensor:
    """KL(q(z|x) || Uniform) = sum_n sum_k q_nk (log q_nk + log K), (..., N, K) -> (...): exact, not sampled."""
    log_q = torch.log_softmax(logits, -1)
    return (log_q.exp() * (log_q + math.log(logits.shape[-1]))).sum((-2, -1))


def categorical_log_prob(onehot: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """log q(z|x) of one-hot states, (..., N, K) states and logits broadcastable -> (...)."""
    return (onehot * torch.log_softmax(logits, -1)).sum((-2, -1))


def uniform_categorical_log_prob(n_vars: int, classes: int) -> float:
    """log p(z) = -N log K for every state of the uniform prior."""
    return -n_vars * math.log(classes)


def gumbel_softmax(logits: torch.Tensor, gumbel: torch.Tensor, tau: float) -> torch.Tensor:
    """The relaxed one-hot sample softmax((logits + g) / tau), (..., N, K) -> (..., N, K), g ~ Gumbel(0, 1) given.

    Jang, Gu & Poole 2017, eq. 1; Maddison, Mnih & Teh 2017 (the Concrete distribution). As tau -> 0 it tends
    to the one-hot Gumbel-max sample (`one_hot_sample` with the same g); training only: evaluation scores the
    discrete model with hard samples.
    """
    return torch.softmax((logits + gumbel) / tau, -1)


def one_hot_sample(logits: torch.Tensor, gumbel: torch.Tensor) -> torch.Tensor:
    """A hard sample of q by the Gumbel-max trick, one_hot(argmax(logits + g)), (..., N, K) -> (..., N, K) float."""
    idx = (logits + gumbel).argmax(-1)
    return torch.nn.functional.one_hot(idx, logits.shape[-1]).to(logits.dtype)


def categorical_log_importance_weights(log_px_given_z: torch.Tensor, onehot: torch.Tensor,
                                       logits: torch.Tensor) -> torch.Tensor:
    """log w = log p(x|z) + log p(z) - log q(z|x) for hard states, (B, S), (B, S, N, K), (B, 1, N, K) -> (B, S)."""
    n_vars, classes = logits.shape[-2:]
    return log_px_given_z + uniform_categorical_log_prob(n_vars, classes) - categorical_log_prob(onehot, logits)
