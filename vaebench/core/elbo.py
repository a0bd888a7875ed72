"""The ELBO estimator: training's held-out curve and evaluation's test ELBO both call `elbo_per_image`.

It lives apart from core/estimators.py so that the training stage does not depend on the IWAE code.
"""

from __future__ import annotations

import torch

from vaebench.core import bounds
from vaebench.core.batching import DECODE_ROWS, decode_rows, encode_all, encode_logits_all
from vaebench.core.models import VAE
from vaebench.streams import Draws


def elbo_per_image(model: VAE, x: torch.Tensor, y: torch.Tensor | None, g: Draws) -> torch.Tensor:
    """Single-sample ELBO of each image, (N, P) -> (N,): log p(x|z) - KL(q(z|x) || p(z)), z ~ q(z|x).

    Kingma & Welling 2014, eq. 10 (analytic KL, one reparameterised sample per image). The one
    estimator of the ELBO: evaluation's test ELBO and training's held-out curve both call it.
    The noise (N, D) is drawn from the stream `g` in row order, so image i gets the same row
    whatever the block sizes and however many images follow it.
    """
    with torch.no_grad():
        if model.categorical:  # the discrete model itself: a hard sample of q, and the exact categorical KL
            logits_q = encode_logits_all(model, x, y)  # (N, Nvars, K)
            z = bounds.one_hot_sample(logits_q, g.gumbel(tuple(logits_q.shape)).to(x.device))  # (N, Nvars, K)
            logits = decode_rows(model, z.flatten(-2), y, DECODE_ROWS)  # (N, P)
            return bounds.bernoulli_log_lik(logits, x) - bounds.categorical_kl(logits_q)
        mu, logvar = encode_all(model, x, y)  # (N, D) each
        eps = g.normal(tuple(mu.shape)).to(mu.device)  # (N, D)
        z = bounds.reparameterize(mu, logvar, eps)
        logits = decode_rows(model, z, y, DECODE_ROWS)  # (N, P)
        return bounds.elbo(x, logits, mu, logvar)
