"""Exact log p(x) of a categorical latent model by enumerating every latent state: the discrete
counterpart of the quadrature (quadrature.py), for latent spaces of up to eval.enum_max states.

p(x) = sum_z p(x|z) p(z) over all K^N one-hot states z, with the uniform prior p(z) = K^-N. The decoder
runs once per state (the states do not depend on the image), and log p(x|z) for every image and state
is one product: sum_p x_p l_p - softplus(l_p) = x . l - sum_p softplus(l_p), in float64.
"""

from __future__ import annotations

import itertools

import torch

from vaebench.core import bounds
from vaebench.core.batching import DECODE_ROWS, decode_rows
from vaebench.core.models import VAE

IMAGE_BLOCK = 1000  # images scored against all states at once: (1000, S) float64, 40 MB at S = 5000


def n_states(n_vars: int, classes: int) -> int:
    return classes ** n_vars


def all_states(n_vars: int, classes: int) -> torch.Tensor:
    """Every one-hot latent state, (K^N, N, K) float32, in lexicographic order of the class indices."""
    idx = torch.tensor(list(itertools.product(range(classes), repeat=n_vars)), dtype=torch.long)  # (S, N)
    return torch.nn.functional.one_hot(idx, classes).float()


@torch.no_grad()
def enumerate_log_px(model: VAE, x: torch.Tensor) -> torch.Tensor:
    """Exact log p(x) of each image, (N, 784) -> (N,) float64, summing over all K^N latent states.

    Unconditional categorical models only (the variants are of the VAE). The log-sum-exp over states
    is taken in float64 after the decoder's float32 logits; its error is the decoder's rounding only.
    """
    if not model.categorical or model.conditional:
        raise ValueError("enumeration needs an unconditional model with categorical latents")
    states = all_states(model.zdim, model.classes)  # (S, N, K)
    logits = decode_rows(model, states.flatten(-2), None, DECODE_ROWS).double()  # (S, P)
    softplus = torch.nn.functional.softplus(logits).sum(-1)  # (S,)
    log_prior = bounds.uniform_categorical_log_prob(model.zdim, model.classes)
    out = []
    for i in range(0, len(x), IMAGE_BLOCK):
        log_px_z = x[i:i + IMAGE_BLOCK].double() @ logits.T - softplus  # (b, S)
        out.append(torch.logsumexp(log_px_z, -1) + log_prior)
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.float64)
