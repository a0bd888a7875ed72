"""The one ELBO estimator (vaebench/core/elbo.py) against numbers computed by other routes.

- a decoder whose logits do not depend on z: the ELBO is then exact, by hand;
- a 1-D model with q = N(mu(x), 1): the Monte Carlo mean over many draws against
  E_q[log p(x|z)] by Gauss-Hermite quadrature (torch.distributions' Bernoulli, float64) minus
  the KL by hand. Scoring at q's mean instead of sampling (a biased, different quantity) lands
  40 standard errors away, so this test catches that mutation;
- training's held-out curve is this estimator, on the HELDOUT_ELBO stream.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch.distributions import Bernoulli

from vaebench.core import batching as el
from vaebench.core.elbo import elbo_per_image
from vaebench.core.models import build_model
from vaebench.streams import Draws, Stream


def _image(seed: int = 1) -> torch.Tensor:
    return (torch.rand(1, 784, generator=torch.Generator().manual_seed(seed)) < 0.3).float()  # (1, 784)


def test_elbo_is_exact_when_the_decoder_ignores_z():
    torch.manual_seed(0)
    m = build_model("vae", 3, 16).eval()
    with torch.no_grad():
        m.decoder[4].weight.zero_()
        m.decoder[4].bias.copy_(torch.linspace(-3, 3, 784))  # logits b_p, whatever z is
    x = (torch.rand(7, 784, generator=torch.Generator().manual_seed(2)) < 0.4).float()
    got = elbo_per_image(m, x, None, Draws(Stream.TEST_ELBO, 0)).double()  # (7,)
    b = torch.linspace(-3, 3, 784, dtype=torch.float64)
    log_px_z = (x.double() * b - torch.log1p(torch.exp(b))).sum(-1)  # sum_p x_p b_p - log(1 + e^b_p)
    mu, logvar = (t.double() for t in m.encode(x))
    kl = 0.5 * (mu**2 + torch.exp(logvar) - 1 - logvar).sum(-1)  # Kingma & Welling 2014, App. B
    assert torch.allclose(got, log_px_z - kl, rtol=0, atol=2e-3)


def test_monte_carlo_mean_converges_to_the_expectation_by_quadrature():
    torch.manual_seed(0)
    m = build_model("vae", 1, 16).eval()
    with torch.no_grad():
        m.encoder[4].weight[1].zero_()
        m.encoder[4].bias[1] = 0.0  # log-variance 0: q(z|x) = N(mu(x), 1), wide enough for a Jensen gap
    x = _image()
    n = 4000
    est = elbo_per_image(m, x.expand(n, 784).contiguous(), None, Draws(Stream.TEST_ELBO, 0)).double()  # (n,)
    mc, se = est.mean().item(), est.std().item() / math.sqrt(n)

    mu = m.encode(x)[0].item()
    nodes, weights = np.polynomial.hermite_e.hermegauss(60)  # int f(t) e^{-t^2/2} dt = sum w f(t)
    md = m.double()
    with torch.no_grad():
        z = torch.tensor(mu + nodes, dtype=torch.float64)[:, None]  # (60, 1)
        log_lik = Bernoulli(logits=md.decode(z)).log_prob(x.double()).sum(-1).numpy()  # (60,)
        at_mean = Bernoulli(logits=md.decode(torch.tensor([[mu]], dtype=torch.float64))).log_prob(x.double()).sum()
    kl = 0.5 * mu**2  # KL(N(mu, 1) || N(0, 1))
    expected = float((weights * log_lik).sum() / math.sqrt(2 * math.pi)) - kl
    assert abs(mc - expected) < 4 * se, (mc, expected, se)
    # the test can tell the ELBO from its plug-in at q's mean: that one is > 20 standard errors off
    assert abs(at_mean.item() - kl - expected) > 20 * se


def test_the_noise_is_the_stream_s_and_nothing_else():
    torch.manual_seed(0)
    m = build_model("cvae", 2, 16).eval()
    x = (torch.rand(9, 784, generator=torch.Generator().manual_seed(3)) < 0.3).float()
    y = torch.arange(9) % 10
    full = elbo_per_image(m, x, y, Draws(Stream.TEST_ELBO, 5))
    again = elbo_per_image(m, x, y, Draws(Stream.TEST_ELBO, 5))
    other = elbo_per_image(m, x, y, Draws(Stream.TEST_ELBO, 6))
    assert torch.equal(full, again) and not torch.equal(full, other)
    # image i gets row i of the stream whatever follows it: the first 4 images alone, the same bits
    assert torch.equal(elbo_per_image(m, x[:4], y[:4], Draws(Stream.TEST_ELBO, 5)), full[:4])
    # by hand: q's parameters, the stream's (N, D) normal draw, the decoder, the bound
    mu, logvar = m.encode(x, y)
    eps = Draws(Stream.TEST_ELBO, 5).normal(tuple(mu.shape))
    z = mu + torch.exp(0.5 * logvar) * eps
    want = Bernoulli(logits=m.decode(z, y)).log_prob(x).sum(-1) - 0.5 * (mu**2 + logvar.exp() - 1 - logvar).sum(-1)
    assert torch.allclose(full, want.detach(), rtol=0, atol=1e-3)


@pytest.mark.parametrize("n", [1, 2, 499, 500, 501, 1003])
def test_fixed_row_calls_give_every_row_the_bits_of_a_full_block(n):
    # MKL takes another path for 1- and 2-row products; padded blocks keep every call at ENCODE_ROWS rows
    torch.manual_seed(0)
    m = build_model("vae", 5, 500).eval()
    x = (torch.rand(1003, 784, generator=torch.Generator().manual_seed(4)) < 0.3).float()
    mu_all, lv_all = el.encode_all(m, x, None)
    mu, lv = el.encode_all(m, x[-n:], None)  # the last n images, now at other positions in their block
    assert torch.equal(mu, mu_all[-n:]) and torch.equal(lv, lv_all[-n:])


def test_fixed_rows_calls_fn_on_exactly_rows_rows_zero_padded_and_passes_none_through():
    """_fixed_rows' contract, with a row-wise fn whose output is worked out by hand: every call gets exactly
    `rows` rows (the last block zero-padded), `None` keeps its place among the arguments, and the
    output has one row per input row, in order."""
    calls = []

    def fn(a, none, b):  # (R, 3), None, (R,) -> (R, 2), row by row
        calls.append((a.clone(), none, b.clone()))
        return torch.stack([a.sum(1) * b, a[:, 0] - b], 1)

    a = torch.arange(21.0).reshape(7, 3)  # row i: (3i, 3i + 1, 3i + 2), summing to 9i + 3
    b = torch.arange(1.0, 8.0)  # row i: i + 1
    got = el._fixed_rows(fn, 3, a, None, b)  # blocks of rows 0-2, 3-5, 6 (+ 2 zero rows)
    want = torch.tensor([[(9 * i + 3) * (i + 1), 3 * i - (i + 1)] for i in range(7)], dtype=torch.float32)
    assert torch.equal(got, want)
    assert [(ca.shape, none, cb.shape) for ca, none, cb in calls] == [((3, 3), None, (3,))] * 3
    assert torch.equal(calls[-1][0][1:], torch.zeros(2, 3)) and torch.equal(calls[-1][2][1:], torch.zeros(2))
    # a whole number of blocks: no padding, no extra call; no rows: one padded call, an empty result
    calls.clear()
    assert torch.equal(el._fixed_rows(fn, 3, a[:6], None, b[:6]), want[:6]) and len(calls) == 2
    calls.clear()
    empty = el._fixed_rows(fn, 3, a[:0], None, b[:0])
    assert empty.shape == (0, 2) and [c[0].shape for c in calls] == [(3, 3)]
