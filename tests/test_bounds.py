"""bounds.py against numbers computed by another route: by hand, by torch.distributions, by sampling.

Every expected value here is either a literal worked out by hand (the arithmetic is in the
comment beside it) or comes from code that shares nothing with bounds.py (torch.distributions,
explicit loops). The statistical tests use fixed seeds and assert with margins of several
standard errors, so they are deterministic and still fail if a bound is wrong.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from torch.distributions import Bernoulli, Normal, kl_divergence

from vaebench.core import bounds
from vaebench.core.models import VAE


# ---------------------------------------------------------------- KL


def test_gaussian_kl_unit_mean_unit_variance_is_half_per_dim():
    # KL(N(1, 1) || N(0, 1)) = 1/2 (mu^2 + s^2 - 1 - log s^2) = 1/2 (1 + 1 - 1 - 0) = 0.5 per dimension
    mu, logvar = torch.ones(3, 4), torch.zeros(3, 4)
    assert torch.equal(bounds.gaussian_kl_per_dim(mu, logvar), torch.full((3, 4), 0.5))
    assert torch.allclose(bounds.gaussian_kl(mu, logvar), torch.full((3,), 2.0), rtol=0, atol=1e-7)


def test_gaussian_kl_hand_computed_with_nonzero_logvar():
    # mu = 0.5, logvar = ln 2 (s^2 = 2): 1/2 (0.25 + 2 - 1 - 0.693147181) = 1/2 * 0.556852819 = 0.278426410
    # mu = -2, logvar = -1 (s^2 = 0.367879441): 1/2 (4 + 0.367879441 - 1 + 1) = 2.183939721
    # mu = 0, logvar = 2 (s^2 = 7.389056099): 1/2 (0 + 7.389056099 - 1 - 2) = 2.194528049
    mu = torch.tensor([0.5, -2.0, 0.0], dtype=torch.float64)
    logvar = torch.tensor([math.log(2.0), -1.0, 2.0], dtype=torch.float64)
    want = torch.tensor([0.278426410, 2.183939721, 2.194528049], dtype=torch.float64)
    assert torch.allclose(bounds.gaussian_kl_per_dim(mu, logvar), want, rtol=0, atol=1e-9)
    assert bounds.gaussian_kl(mu, logvar).item() == pytest.approx(0.278426410 + 2.183939721 + 2.194528049, abs=1e-8)


def test_gaussian_kl_matches_torch_distributions():
    g = torch.Generator().manual_seed(0)
    mu = 3 * torch.randn(50, 7, generator=g, dtype=torch.float64)
    logvar = 4 * torch.randn(50, 7, generator=g, dtype=torch.float64)
    q, p = Normal(mu, torch.exp(0.5 * logvar)), Normal(torch.zeros_like(mu), torch.ones_like(mu))
    ref = kl_divergence(q, p)  # (50, 7)
    assert torch.allclose(bounds.gaussian_kl_per_dim(mu, logvar), ref, rtol=1e-12, atol=1e-12)
    assert torch.allclose(bounds.gaussian_kl(mu, logvar), ref.sum(-1), rtol=1e-12, atol=1e-12)


def test_gaussian_kl_near_zero_logvar_is_nonnegative_and_accurate_in_fp32():
    """Regression: exp(lv) - 1 - lv cancelled in fp32 and gave KL < 0 (down to -3e-8) for |lv| < 0.1."""
    lv64 = torch.cat([torch.logspace(-8, -1, 500, dtype=torch.float64), -torch.logspace(-8, -1, 500, dtype=torch.float64)])
    lv32 = lv64.float()
    kl32 = bounds.gaussian_kl_per_dim(torch.zeros_like(lv32), lv32)
    exact = 0.5 * (torch.expm1(lv32.double()) - lv32.double())  # of the same fp32 inputs, in fp64
    assert (kl32 >= 0).all()
    assert (kl32.double() - exact).abs().max().item() < 1e-8


# ---------------------------------------------------------------- Bernoulli log-likelihood


def test_bernoulli_log_lik_hand_computed():
    # x=1, l=0: log sigmoid(0) = -ln 2 = -0.693147181
    # x=0, l=2: log(1 - sigmoid(2)) = -ln(1 + e^2) = -ln 8.389056099 = -2.126928011
    # x=1, l=-1: log sigmoid(-1) = -ln(1 + e) = -ln 3.718281828 = -1.313261687
    logits = torch.tensor([0.0, 2.0, -1.0], dtype=torch.float64)
    x = torch.tensor([1.0, 0.0, 1.0], dtype=torch.float64)
    want = -(0.693147181 + 2.126928011 + 1.313261687)
    assert bounds.bernoulli_log_lik(logits, x).item() == pytest.approx(want, abs=1e-8)


def test_bernoulli_log_lik_matches_torch_distributions():
    g = torch.Generator().manual_seed(1)
    logits = 8 * torch.randn(20, 5, 784, generator=g)
    x = (torch.rand(20, 1, 784, generator=g) < 0.3).float()
    ref = Bernoulli(logits=logits).log_prob(x.expand_as(logits)).sum(-1)  # (20, 5)
    got = bounds.bernoulli_log_lik(logits, x)  # x (20, 1, 784) broadcasts over the 5 samples
    assert got.shape == (20, 5)
    assert torch.allclose(got, ref, rtol=1e-5, atol=1e-3)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_bernoulli_log_lik_extreme_logits_are_exact(dtype):
    # log sigmoid(200) = -ln(1 + e^-200) = -1.4e-87 (0 in fp32/fp64 sums); log(1 - sigmoid(200)) = -200 - 1.4e-87.
    # Through log(sigmoid(l)) the -200 cases are -inf (fp32: sigmoid(-200) underflows to 0).
    logits = torch.tensor([200.0, 200.0, -200.0, -200.0, -100.0], dtype=dtype)
    x = torch.tensor([1.0, 0.0, 1.0, 0.0, 1.0], dtype=dtype)
    want = [0.0, -200.0, -200.0, 0.0, -100.0]
    per_pixel = torch.stack([bounds.bernoulli_log_lik(logits[i:i + 1], x[i:i + 1]) for i in range(5)])
    assert torch.isfinite(per_pixel).all()
    assert per_pixel.tolist() == pytest.approx(want, abs=1e-6)
    assert bounds.bernoulli_log_lik(logits, x).item() == pytest.approx(-500.0, abs=1e-6)
    ref = Bernoulli(logits=logits.double()).log_prob(x.double())
    assert per_pixel.double().tolist() == pytest.approx(ref.tolist(), abs=1e-6)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_extreme_logits_through_the_grouped_product_at_full_width(dtype):
    # 784 pixels (halved 4 times: groups of 16 factors) mixing |l| = 200, 100, 0 and moderate values: the
    # products of sigmoid(|l|) must neither underflow nor lose the log 2 of the l = 0 pixels.
    g = torch.Generator().manual_seed(0)
    base = torch.tensor([200.0, -200.0, 100.0, -100.0, 0.0, 3.0, -3.0])
    logits = base[torch.randint(0, 7, (4, 784), generator=g)].to(dtype)  # (4, 784)
    x = (torch.rand(4, 784, generator=g) < 0.5).to(dtype)
    l64, x64 = logits.double(), x.double()
    # by hand: x l - softplus(l) with softplus(l) = max(l, 0) + log(1 + e^-|l|), the last term 0 to fp64 for |l| >= 100
    want = (x64 * l64 - l64.clamp(min=0) - torch.log1p(torch.exp(-l64.abs()))).sum(-1)  # (4,)
    got = bounds.bernoulli_log_lik(logits, x)
    assert torch.isfinite(got).all()
    assert torch.allclose(got.double(), want, rtol=0, atol=1e-3 if dtype == torch.float32 else 1e-9)
    assert torch.allclose(want, Bernoulli(logits=l64).log_prob(x64).sum(-1), rtol=0, atol=1e-9)


@pytest.mark.parametrize("width", [1, 3, 16, 49, 98, 784, 800])
def test_grouped_log1p_exp_sum_matches_float64_softplus_in_fp32(width):
    # The one-log-per-16-pixels product against sum_p softplus(-|l_p|) in float64 (torch's own softplus,
    # a route that shares no code with the product): widths that halve 0-4 times, down to an odd width.
    g = torch.Generator().manual_seed(width)
    logits = torch.cat([12 * torch.randn(300, width, generator=g),   # trained-model range, signs mixed
                        torch.randn(100, width, generator=g) / 10])  # |l| ~ 0: factors near 1/2, log 2 each
    want = torch.nn.functional.softplus(-logits.double().abs()).sum(-1)
    got = bounds._log1p_exp_neg_abs_sum(logits)
    assert got.dtype == torch.float32 and got.shape == (400,)
    # ~2e-6 per group of 16, and fp32 rounding of sums up to width * ln 2
    assert (got.double() - want).abs().max().item() < 2e-6 * width + 1e-6 * want.abs().max().item()
    exact = bounds._log1p_exp_neg_abs_sum(logits.double())  # same algorithm in float64: exact to ~1e-14
    assert torch.allclose(exact, want, rtol=0, atol=1e-12)


def test_bernoulli_log_lik_in_fp32_is_as_accurate_as_torch_softplus():
    # On a trained decoder's range of logits, the fp32 result is within what fp32 softplus itself gets.
    g = torch.Generator().manual_seed(3)
    logits = 10 * torch.randn(64, 8, 784, generator=g) - 4
    x = (torch.rand(64, 1, 784, generator=g) < 0.2).float()
    want = (x.double() * logits.double() - torch.nn.functional.softplus(logits.double())).sum(-1)
    err_new = (bounds.bernoulli_log_lik(logits, x).double() - want).abs().max().item()
    err_torch = ((x * logits - torch.nn.functional.softplus(logits)).sum(-1).double() - want).abs().max().item()
    assert err_new < max(2 * err_torch, 1e-4), (err_new, err_torch)


def test_bernoulli_log_lik_gradient_is_the_analytic_one():
    # float64 finite differences (gradcheck) for logits and x, x broadcast over samples as in the IWAE
    g = torch.Generator().manual_seed(4)
    logits = (5 * torch.randn(3, 4, 40, generator=g, dtype=torch.float64)).requires_grad_()
    x = (torch.rand(3, 1, 40, generator=g) < 0.4).double().requires_grad_()
    assert torch.autograd.gradcheck(bounds.bernoulli_log_lik, (logits, x))
    # and in fp32 against autograd through torch's softplus, the formula training used before
    l32 = (8 * torch.randn(256, 784, generator=g)).requires_grad_()
    x32 = (torch.rand(256, 784, generator=g) < 0.2).float()
    w = torch.randn(256, generator=g)
    (bounds.bernoulli_log_lik(l32, x32) * w).sum().backward()
    got = l32.grad.clone()
    l32.grad = None
    ((x32 * l32 - torch.nn.functional.softplus(l32)).sum(-1) * w).sum().backward()
    assert torch.allclose(got, l32.grad, rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------- Gaussian log-densities


def test_gaussian_log_prob_matches_torch_distributions():
    g = torch.Generator().manual_seed(2)
    z = 3 * torch.randn(10, 6, 4, generator=g, dtype=torch.float64)
    mu = torch.randn(10, 1, 4, generator=g, dtype=torch.float64)
    logvar = 2 * torch.randn(10, 1, 4, generator=g, dtype=torch.float64)
    ref = Normal(mu, torch.exp(0.5 * logvar)).log_prob(z).sum(-1)  # (10, 6)
    assert torch.allclose(bounds.gaussian_log_prob(z, mu, logvar), ref, rtol=1e-12, atol=1e-10)
    ref0 = Normal(0.0, 1.0).log_prob(z).sum(-1)
    assert torch.allclose(bounds.standard_normal_log_prob(z), ref0, rtol=1e-12, atol=1e-10)
    # hand value: log N(0; 0, 1) in 4 dimensions = -2 ln(2 pi) = -3.675754133
    assert bounds.standard_normal_log_prob(torch.zeros(4, dtype=torch.float64)).item() == pytest.approx(-3.675754133, abs=1e-8)


def test_reparameterize_hand_computed():
    # z = mu + exp(logvar / 2) eps, sigma = exp(logvar / 2):
    # mu = 1,  logvar = ln 4 (sigma 2),    eps = 0.5  -> 1 + 2 * 0.5 = 2
    # mu = -2, logvar = 0 (sigma 1),       eps = -1.5 -> -2 - 1.5 = -3.5
    # mu = 0,  logvar = -2 ln 10 (sigma 0.1), eps = 3 -> 0.3
    mu = torch.tensor([1.0, -2.0, 0.0], dtype=torch.float64)
    logvar = torch.tensor([math.log(4.0), 0.0, -2 * math.log(10.0)], dtype=torch.float64)
    eps = torch.tensor([0.5, -1.5, 3.0], dtype=torch.float64)
    assert bounds.reparameterize(mu, logvar, eps).tolist() == pytest.approx([2.0, -3.5, 0.3], abs=1e-12)


def test_log_mean_exp_matches_direct_formula():
    w = torch.tensor([[-1.0, -2.0, -3.0], [1000.0, 1000.0, 1000.0]], dtype=torch.float64)
    # row 0: ln((e^-1 + e^-2 + e^-3) / 3) = ln(0.5032147244 / 3) = ln(0.1677382415) = -1.785342  (direct, no shift)
    # row 1: three equal weights: their mean is e^1000, so 1000 (the direct formula overflows here)
    got = bounds.log_mean_exp(w, -1)
    assert got[0].item() == pytest.approx(math.log((math.exp(-1) + math.exp(-2) + math.exp(-3)) / 3), abs=1e-12)
    assert got[1].item() == pytest.approx(1000.0, abs=1e-9)


# ---------------------------------------------------------------- ELBO and IWAE on one model


def _small_vae(zdim: int, seed: int) -> VAE:
    torch.manual_seed(seed)
    return VAE(zdim, hidden=16).eval()


def _binary_images(n: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(n, 784, generator=g) < 0.2).float()


@torch.no_grad()
def test_iwae_with_one_sample_is_the_sampled_kl_elbo_on_the_same_noise():
    model, x = _small_vae(3, 0), _binary_images(6, 0)
    mu, logvar = model.encode(x)  # (6, 3)
    eps = torch.randn(6, 1, 3, generator=torch.Generator().manual_seed(5))
    z = bounds.reparameterize(mu[:, None], logvar[:, None], eps)  # (6, 1, 3)
    logits = model.decode(z)  # (6, 1, 784)
    log_w = bounds.log_importance_weights(bounds.bernoulli_log_lik(logits, x[:, None]), z, mu[:, None], logvar[:, None])
    iwae1 = bounds.iwae_bound(log_w)  # (6,)

    # The ELBO with the KL replaced by its one-sample estimate log q(z|x) - log p(z), from torch.distributions.
    sampled_kl = (Normal(mu, torch.exp(0.5 * logvar)).log_prob(z[:, 0]) - Normal(0.0, 1.0).log_prob(z[:, 0])).sum(-1)
    analytic_kl = kl_divergence(Normal(mu, torch.exp(0.5 * logvar)), Normal(0.0, 1.0)).sum(-1)
    elbo_analytic = bounds.elbo(x, logits[:, 0], mu, logvar)
    elbo_sampled = elbo_analytic + analytic_kl - sampled_kl
    assert torch.allclose(iwae1, elbo_sampled, rtol=0, atol=2e-4)
    # and, directly: log p(x|z) by torch.distributions minus the sampled KL
    direct = Bernoulli(logits=logits[:, 0]).log_prob(x).sum(-1) - sampled_kl
    assert torch.allclose(iwae1, direct, rtol=0, atol=2e-4)


@torch.no_grad()
def test_one_sample_iwae_has_the_analytic_kl_elbo_as_expectation():
    """E_eps[log w] = E_q[log p(x|z)] - KL: the mean of many k=1 estimates meets the analytic-KL ELBO."""
    model, x = _small_vae(3, 1), _binary_images(4, 1)
    mu, logvar = model.encode(x)
    eps = torch.randn(4, 8000, 3, generator=torch.Generator().manual_seed(6))
    z = bounds.reparameterize(mu[:, None], logvar[:, None], eps)  # (4, S, 3)
    logits = model.decode(z)  # (4, S, 784)
    log_px_z = bounds.bernoulli_log_lik(logits, x[:, None])  # (4, S)
    log_w = bounds.log_importance_weights(log_px_z, z, mu[:, None], logvar[:, None])  # (4, S): S one-sample IWAEs
    elbo = bounds.elbo(x[:, None], logits, mu[:, None], logvar[:, None])  # (4, S): analytic KL, same z
    diff = (log_w - elbo).double()  # = KL - (log q - log p): zero mean, nonzero spread
    se = diff.std(1) / math.sqrt(diff.shape[1])
    assert (se > 1e-3).all() and (se < 0.05).all()  # the check below has power
    assert (diff.mean(1).abs() < 4 * se).all(), (diff.mean(1), se)
    # A wrong KL (e.g. without the 1/2) would miss by about half the KL, many standard errors:
    kl = bounds.gaussian_kl(mu, logvar).double()
    assert (0.5 * kl > 10 * se).all()


@torch.no_grad()
def test_iwae_does_not_decrease_with_k_in_expectation():
    """Burda et al. 2016, Theorem 1: E[L_1] <= E[L_5] <= E[L_50] <= log p(x); means over 400 draws per image.

    log p(x) of this 2-D model comes from quadrature (converged: see test_quadrature.py).
    """
    from vaebench.core.quadrature import quad_log_px

    model, x = _small_vae(2, 2), _binary_images(3, 2)
    # At initialisation the decoder hardly depends on z, so all L_k agree within noise; tripling its
    # first layer makes p(x|z) vary with z, the random encoder's q then misses the posterior, and the
    # gaps are large: about 3.5, 0.3 and 0.02 nats for k = 1, 5, 50.
    model.decoder[0].weight.mul_(3.0)
    mu, logvar = model.encode(x)
    reps, means, ses = 400, {}, {}
    g = torch.Generator().manual_seed(7)
    for k in (1, 5, 50):
        eps = torch.randn(3, reps, k, 2, generator=g)
        z = bounds.reparameterize(mu[:, None, None], logvar[:, None, None], eps)  # (3, R, k, 2)
        log_px_z = bounds.bernoulli_log_lik(model.decode(z), x[:, None, None])  # (3, R, k)
        log_w = bounds.log_importance_weights(log_px_z, z, mu[:, None, None], logvar[:, None, None])
        est = bounds.iwae_bound(log_w).double()  # (3, R): R independent L_k estimates per image
        means[k], ses[k] = est.mean(1), est.std(1) / math.sqrt(reps)
    exact = quad_log_px(model, x, half_width=8.0, n=200)
    for a, b in ((1, 5), (5, 50)):
        se = torch.sqrt(ses[a] ** 2 + ses[b] ** 2)
        assert (means[b] - means[a] > 3 * se).all(), (a, b, means[a], means[b], se)
    assert (means[50] <= exact + 3 * ses[50]).all(), (means[50], exact)


# ---------------------------------------------------------------- properties (hypothesis)

_f32 = dict(allow_nan=False, allow_infinity=False, width=32)


@st.composite
def _bound_inputs(draw):
    b, s, d, p = (draw(st.integers(1, n)) for n in (3, 4, 5, 12))
    mu = draw(arrays(np.float32, (b, 1, d), elements=st.floats(-30, 30, **_f32)))
    logvar = draw(arrays(np.float32, (b, 1, d), elements=st.floats(-15, 15, **_f32)))
    eps = draw(arrays(np.float32, (b, s, d), elements=st.floats(-8, 8, **_f32)))
    logits = draw(arrays(np.float32, (b, s, p), elements=st.floats(-1e4, 1e4, **_f32)))
    x = draw(arrays(np.float32, (b, 1, p), elements=st.sampled_from([0.0, 1.0])))
    return tuple(torch.from_numpy(a) for a in (mu, logvar, eps, logits, x))


@settings(max_examples=50, deadline=None)
@given(_bound_inputs())
def test_bounds_are_finite_for_finite_inputs(inputs):
    mu, logvar, eps, logits, x = inputs
    z = bounds.reparameterize(mu, logvar, eps)  # (B, S, D)
    log_px_z = bounds.bernoulli_log_lik(logits, x)  # (B, S)
    log_w = bounds.log_importance_weights(log_px_z, z, mu, logvar)
    for value in (bounds.gaussian_kl(mu[:, 0], logvar[:, 0]), log_px_z, log_w, bounds.iwae_bound(log_w),
                  bounds.elbo(x[:, 0], logits[:, 0], mu[:, 0], logvar[:, 0])):
        assert torch.isfinite(value).all()
    # the log-likelihood is a log-probability of binary data: never positive
    assert (log_px_z <= 0).all()


@settings(max_examples=50, deadline=None)
@given(st.data())
def test_iwae_is_at_least_the_mean_log_weight(data):
    """Jensen: log mean exp(w) >= mean(w), on the same samples; in fp64 up to 1e-12, in fp32 up to a few ulps."""
    b, k = data.draw(st.integers(1, 4)), data.draw(st.integers(1, 60))
    w = torch.from_numpy(data.draw(arrays(np.float64, (b, k), elements=st.floats(-1e3, 1e3, allow_nan=False))))
    assert (bounds.iwae_bound(w) >= w.mean(-1) - 1e-12 * (1 + w.abs().amax(-1))).all()
    w32 = w.float()
    assert (bounds.iwae_bound(w32) >= w32.mean(-1) - 1e-6 * (1 + w32.abs().amax(-1))).all()
    # and it is at most the largest weight (the mean of the exp is at most its max)
    assert (bounds.iwae_bound(w) <= w.amax(-1) + 1e-12 * (1 + w.abs().amax(-1))).all()


@settings(max_examples=50, deadline=None)
@given(st.data())
def test_gaussian_kl_is_nonnegative(data):
    d = data.draw(st.integers(1, 8))
    mu = torch.from_numpy(data.draw(arrays(np.float32, (d,), elements=st.floats(-20, 20, **_f32))))
    logvar = torch.from_numpy(data.draw(arrays(np.float32, (d,), elements=st.floats(-20, 20, **_f32))))
    assert (bounds.gaussian_kl_per_dim(mu, logvar) >= 0).all()
    assert bounds.gaussian_kl(mu, logvar) >= 0
