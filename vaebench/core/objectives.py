"""The bounds a variant trains on: the pieces of a Variant composed over one minibatch.

Training only. Every model is scored on the true ELBO and the IWAE bound (core/estimators.py), whatever it
was trained on. Each piece's behaviour sits here once, beside the bound it changes; the bounds themselves
are the pure functions of core/bounds.py.
"""

from __future__ import annotations

import torch

from vaebench.core import bounds
from vaebench.core.models import VAE
from vaebench.core.variants import Variant
from vaebench.streams import Draws


def _noise(shape: tuple[int, ...], g: Draws, device: torch.device) -> torch.Tensor:
    # drawn on the CPU and moved, so CPU and GPU runs see the same noise
    return g.normal(shape).to(device)


def training_bound(model: VAE, v: Variant, x_in: torch.Tensor, x: torch.Tensor, y: torch.Tensor | None, g: Draws,
                   device: torch.device, tau: float, kl_weight: float = 1.0) -> torch.Tensor:
    """The bound a variant trains on, per image, (b,): the pieces of `v` composed over one minibatch.

    x_in (b, 784) is what the encoder sees (x itself, or its corruption for a denoising VAE), x (b, 784)
    what the decoder must reconstruct; the noise comes from the epoch's stream `g` in a fixed order.
    `kl_weight` is the KL warm-up's factor of this epoch (train.kl_warmup), multiplying beta.
    - Gaussian, `elbo`: one reparameterised sample, analytic KL weighted by beta (Kingma & Welling 2014,
      eq. 10; Higgins et al. 2017, eq. 4), with free bits if the variant sets them (`free_bits_kl`). With
      beta = 1, no free bits and x_in = x: the thesis's VAE, byte for byte.
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
    kl = free_bits_kl(mu, logvar, v.free_bits) if v.free_bits else bounds.gaussian_kl(mu, logvar)  # (b,)
    return bounds.beta_elbo(bounds.bernoulli_log_lik(model.decode(z, y), x), kl, v.beta * kl_weight)


def free_bits_kl(mu: torch.Tensor, logvar: torch.Tensor, floor: float) -> torch.Tensor:
    """The KL term with free bits, per image, (b, D), (b, D) -> (b,) (Kingma et al. 2016, appendix, "free bits",
    one group per latent dimension): a dimension whose KL, averaged over the minibatch, is below `floor` nats
    counts as `floor`, a constant, so no gradient pulls it further towards the prior. The minibatch mean of the
    result is sum_j max(floor, mean_b KL_bj); a dimension at or above the floor keeps its per-image KL (and, when
    every dimension does, the sum is gaussian_kl's to the bit).
    """
    per_dim = bounds.gaussian_kl_per_dim(mu, logvar)  # (b, D)
    free = per_dim.detach().mean(0) < floor  # (D,)
    return torch.where(free, torch.full_like(per_dim, floor), per_dim).sum(-1)


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
