"""quadrature.py against integrals computed by another route.

quad_log_px needs only an object with `.zdim` and `.decode(z, y)` -> Bernoulli logits (..., P);
P need not be 784. So each test builds a *fixed* decoder whose log p(x) = log int p(x|z) N(z; 0, I) dz
is known independently:

- logits that do not depend on z: log p(x) = log p(x|.) exactly;
- a probit decoder, p(x_p = 1 | z) = Phi(a.z + b): int Phi(a.z + b) N(z; 0, I) dz = Phi(b / sqrt(1 + |a|^2))
  (the probability that a.z - e < b with e ~ N(0, 1) independent of z), in 1-D and in a genuinely 2-D case;
- a small tanh network, integrated by scipy.integrate.quad / dblquad over the whole real line;
- a likelihood whose posterior sits far from the origin (z ~ 3.5), integrated by scipy.integrate.quad.

Tolerance: 1e-5 nats (the target was 1e-3); 1e-4 with 784 pixels. The budget: the grid's truncation
(prior mass outside [-6, 6]^D is 2e-9 D), the midpoint rule (spectrally accurate for these smooth
integrands at h = 0.02), fp32 logits, and the fp32 x @ logits^T product, which is the largest term
with 784 pixels (8e-6 measured). Errors measured when these tests were written: 2e-7 at most with
up to 40 pixels, 8e-6 with 784.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import integrate
from torch.distributions import Bernoulli

from vaebench.core.quadrature import grid_points, quad_log_px

TOL = 1e-5  # nats, for a few dozen pixels
TOL_784 = 1e-4  # nats, for 784 pixels (fp32 x @ logits^T)


class FixedDecoder:
    """A 'VAE' for quad_log_px: `.zdim` and `.decode(z, y)`; the logits are a fixed function of (z, y).

    The function runs in fp64; quad_log_px receives fp32 logits, as from a real model.
    """

    def __init__(self, zdim: int, fn):
        self.zdim, self.fn = zdim, fn

    def decode(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return self.fn(z.double(), y).float()


def probit_logits(t: torch.Tensor) -> torch.Tensor:
    """Logits l with sigmoid(l) = Phi(t): l = log Phi(t) - log Phi(-t), stable for large |t|."""
    return torch.special.log_ndtr(t) - torch.special.log_ndtr(-t)


# ---------------------------------------------------------------- the grid


@pytest.mark.parametrize("zdim", [1, 2])
def test_grid_points_are_cell_midpoints_and_integrate_the_prior(zdim):
    pts, log_cell = grid_points(zdim, 6.0, 600)
    h = 12.0 / 600
    assert pts.shape == (600 ** zdim, zdim) and pts.dtype == torch.float64
    assert log_cell == pytest.approx(zdim * math.log(h), abs=1e-12)
    axis = torch.unique(pts[:, 0])
    assert len(axis) == 600
    assert axis[0].item() == pytest.approx(-6.0 + h / 2, abs=1e-12) and axis[-1].item() == pytest.approx(6.0 - h / 2, abs=1e-12)
    assert torch.allclose(axis.diff(), torch.full((599,), h, dtype=torch.float64), atol=1e-12)
    if zdim == 2:  # every pair of axis values occurs once
        assert len(torch.unique(pts, dim=0)) == 600 ** 2 and torch.equal(torch.unique(pts[:, 1]), axis)
    # sum_g N(z_g) h^D = P(|z_i| < 6 for all i) = erf(6 / sqrt 2)^D, to the midpoint rule's accuracy
    mass = torch.exp(-0.5 * (pts ** 2).sum(1)).sum().item() * h ** zdim / (2 * math.pi) ** (zdim / 2)
    assert mass == pytest.approx(math.erf(6.0 / math.sqrt(2.0)) ** zdim, abs=1e-10)


def test_grid_points_refuse_other_dimensions():
    with pytest.raises(ValueError, match="1- or 2-dimensional"):
        grid_points(3, 6.0, 10)


# ---------------------------------------------------------------- closed forms


@pytest.mark.parametrize("zdim", [1, 2])
def test_decoder_independent_of_z_gives_the_likelihood_exactly(zdim):
    g = torch.Generator().manual_seed(0)
    b = (4 * torch.rand(784, generator=g) - 2).float()  # logits in [-2, 2], the same for every z
    x = (torch.rand(5, 784, generator=g) < 0.4).float()
    model = FixedDecoder(zdim, lambda z, y: b.double().expand(*z.shape[:-1], 784))
    want = Bernoulli(logits=b.double()).log_prob(x.double()).sum(-1)  # log p(x) = log p(x|.)
    got = quad_log_px(model, x, n=600 if zdim == 1 else 150)  # the integrand is N(z): a coarse 2-D grid is exact
    assert torch.allclose(got, want, rtol=0, atol=TOL_784), (got - want).abs().max()


@pytest.mark.parametrize(("a", "b"), [([2.0], 0.7), ([5.0], -1.0), ([-0.5], 2.0),
                                      ([1.5, -2.0], 0.3), ([0.2, 4.0], 2.5), ([3.0, 3.0], -1.5)])
def test_probit_decoder_matches_closed_form(a, b):
    """int Phi(a.z + b) N(z) dz = Phi(b / sqrt(1 + |a|^2)); for x = 0 it is Phi(-b / sqrt(1 + |a|^2))."""
    a_t = torch.tensor(a, dtype=torch.float64)
    model = FixedDecoder(len(a), lambda z, y: probit_logits(z @ a_t + b)[..., None])  # (..., 1): one pixel
    x = torch.tensor([[1.0], [0.0]])
    s = b / math.sqrt(1.0 + sum(v * v for v in a))
    want = torch.special.log_ndtr(torch.tensor([s, -s], dtype=torch.float64))
    got = quad_log_px(model, x)
    assert torch.allclose(got, want, rtol=0, atol=TOL), (got, want)


def test_conditional_decoder_scores_each_image_with_its_own_label():
    """A 'CVAE' whose probit offset depends on the label: b_y = -1 + 0.25 y; labels mixed in one call."""
    a = torch.tensor([1.2, -0.7], dtype=torch.float64)

    def fn(z, y):
        return probit_logits(z @ a - 1.0 + 0.25 * y.double())[..., None]

    model = FixedDecoder(2, fn)
    y = torch.tensor([3, 0, 9, 3, 7, 0])
    x = torch.tensor([[1.0], [1.0], [0.0], [0.0], [1.0], [0.0]])
    s = (-1.0 + 0.25 * y.double()) / math.sqrt(1.0 + float(a @ a))
    want = torch.special.log_ndtr(torch.where(x[:, 0] == 1, s, -s))
    got = quad_log_px(model, x, y, n=300)
    assert torch.allclose(got, want, rtol=0, atol=TOL), (got, want)


# ---------------------------------------------------------------- scipy.integrate over the whole real line

_rng = np.random.default_rng(0)
_H, _P = 5, 6
_W1, _B1 = 1.5 * _rng.normal(size=(_H, 2)), _rng.normal(size=_H)
_W2, _B2 = 2.0 * _rng.normal(size=(_P, _H)), _rng.normal(size=_P)
_X = (_rng.random((3, _P)) < 0.5).astype(np.float64)


def _tanh_logits(z: torch.Tensor, zdim: int) -> torch.Tensor:
    w1, b1 = torch.from_numpy(_W1[:, :zdim]), torch.from_numpy(_B1)
    w2, b2 = torch.from_numpy(_W2), torch.from_numpy(_B2)
    return torch.tanh(z @ w1.T + b1) @ w2.T + b2


_W1L, _B1L, _W2L, _B2L = _W1.tolist(), _B1.tolist(), _W2.tolist(), _B2.tolist()


def _py_log_joint(z: list[float], xi: list[float]) -> float:
    """log p(x|z) + log N(z; 0, I) in plain Python floats (fast for scipy's scalar calls): the same network, written again."""
    h = [math.tanh(sum(w * t for w, t in zip(row, z)) + c) for row, c in zip(_W1L, _B1L)]
    total = -0.5 * sum(t * t for t in z) - 0.5 * len(z) * math.log(2 * math.pi)
    for row, c, xp in zip(_W2L, _B2L, xi):
        logit = c + sum(w * v for w, v in zip(row, h))
        softplus = logit + math.log1p(math.exp(-logit)) if logit > 0 else math.log1p(math.exp(logit))
        total += xp * logit - softplus
    return total


def test_tanh_decoder_1d_matches_scipy_quad():
    model = FixedDecoder(1, lambda z, y: _tanh_logits(z, 1))
    got = quad_log_px(model, torch.from_numpy(_X).float())
    for i, xi in enumerate(_X.tolist()):
        val, err = integrate.quad(lambda t: math.exp(_py_log_joint([t], xi)), -np.inf, np.inf, epsabs=0, epsrel=1e-11)
        assert err < 1e-9 * val
        assert got[i].item() == pytest.approx(math.log(val), abs=TOL)


def test_tanh_decoder_2d_matches_scipy_dblquad():
    model = FixedDecoder(2, lambda z, y: _tanh_logits(z, 2))
    got = quad_log_px(model, torch.from_numpy(_X[:2]).float())
    for i, xi in enumerate(_X[:2].tolist()):  # two images: dblquad over R^2 needs ~130,000 calls each
        val, err = integrate.dblquad(lambda t2, t1: math.exp(_py_log_joint([t1, t2], xi)),
                                     -np.inf, np.inf, -np.inf, np.inf, epsabs=0, epsrel=1e-7)
        assert err < 1e-6 * val
        assert got[i].item() == pytest.approx(math.log(val), abs=TOL)


# ---------------------------------------------------------------- a posterior far from the origin

C, M = 2.0, 3.5  # logit slope and the z where the likelihood of each group peaks


def _far_logits(z: torch.Tensor, centres: list[float], per_group: int) -> torch.Tensor:
    """Group j of `per_group` pixels has logit C (z_j - centres[j]); with half its pixels on and half off,
    the likelihood peaks at z_j = centres[j] with width ~ 1 / (C sqrt(per_group / 4))."""
    return torch.cat([(C * (z[..., j:j + 1] - c)).expand(*z.shape[:-1], per_group) for j, c in enumerate(centres)], -1)


def _far_images(n_groups: int, per_group: int) -> torch.Tensor:
    x = torch.zeros(2, n_groups * per_group)
    x[0, 0::2] = 1.0  # image 0: alternate pixels on
    x[1, : n_groups * per_group // 2] = 1.0  # image 1: another arrangement
    x[1] = x[1][torch.randperm(x.shape[1], generator=torch.Generator().manual_seed(0))]
    return x


def _scipy_log_1d(centre: float, x_group: np.ndarray) -> float:
    """log int prod_p Bern(x_p; sigmoid(C (t - centre))) N(t) dt over R, shifted by its maximum for accuracy,
    split at the mode so that quad sees the peak."""
    n_on, n_pix = float(x_group.sum()), len(x_group)

    def log_f(t):  # scalar or array
        l = C * (t - centre)
        return n_on * l - n_pix * np.logaddexp(0.0, l) - 0.5 * t * t - 0.5 * math.log(2 * math.pi)

    ts = np.linspace(-10, 10, 20001)
    mode = float(ts[np.argmax(log_f(ts))])
    top = float(log_f(mode))
    total = 0.0
    for lo, hi in ((-np.inf, mode - 1), (mode - 1, mode + 1), (mode + 1, np.inf)):
        val, _ = integrate.quad(lambda t: math.exp(log_f(t) - top), lo, hi, epsabs=1e-14, epsrel=1e-12)
        total += val
    return top + math.log(total)


def test_far_posterior_1d_matches_scipy_and_converges():
    per_group = 40
    model = FixedDecoder(1, lambda z, y: _far_logits(z, [M], per_group))
    x = _far_images(1, per_group)
    want = torch.tensor([_scipy_log_1d(M, xi.numpy()) for xi in x], dtype=torch.float64)
    default = quad_log_px(model, x)  # the defaults: L = 10, n = 800
    assert torch.allclose(default, want, rtol=0, atol=TOL), (default, want)
    # refining the grid and widening it moves the answer by less than the tolerance
    for half_width, n in ((8.0, 1200), (12.0, 3000)):
        assert torch.allclose(quad_log_px(model, x, half_width=half_width, n=n), default, rtol=0, atol=TOL)
    # a grid of half-width 2 never reaches the posterior (mode ~ 3.4, sd ~ 0.16): it misses by many nats
    narrow = quad_log_px(model, x, half_width=2.0, n=600)
    assert (want - narrow > 10).all(), want - narrow


def test_far_posterior_2d_matches_scipy_and_converges():
    """Posterior near (3.5, -3.0); the likelihood factorises over the two pixel groups, and so does the
    prior, so the exact log p(x) is a sum of two 1-D scipy integrals."""
    per_group, centres = 20, [M, -3.0]
    model = FixedDecoder(2, lambda z, y: _far_logits(z, centres, per_group))
    x = _far_images(2, per_group)
    want = torch.tensor([_scipy_log_1d(centres[0], xi[:per_group].numpy()) + _scipy_log_1d(centres[1], xi[per_group:].numpy())
                         for xi in x], dtype=torch.float64)
    default = quad_log_px(model, x)  # the defaults: L = 10, n = 800: 640,000 points
    assert torch.allclose(default, want, rtol=0, atol=TOL), (default, want)
    wider = quad_log_px(model, x, half_width=9.0, n=750)
    assert torch.allclose(wider, default, rtol=0, atol=TOL)
    narrow = quad_log_px(model, x, half_width=2.0, n=200)
    assert (want - narrow > 10).all(), want - narrow


def test_subgrid_error_estimates_are_what_they_claim():
    """`quadrature` scores one decoded grid three ways; check each against a separate computation."""
    from vaebench.core.quadrature import quadrature

    per_group, centres = 20, [M, -3.0]
    model = FixedDecoder(2, lambda z, y: _far_logits(z, centres, per_group))
    x = _far_images(2, per_group)
    q = quadrature(model, x, half_width=10.0, n=400)  # h = 0.05
    # inner = the same points with |z_d| < 8: exactly the midpoint grid on [-8, 8] with n = 320
    assert torch.allclose(q.inner, quad_log_px(model, x, half_width=8.0, n=320), rtol=0, atol=1e-9)
    # coarse = every other point per axis: spacing 2h, offset by h/2 from a midpoint grid; still a valid rule
    want = torch.tensor([_scipy_log_1d(centres[0], xi[:per_group].numpy()) + _scipy_log_1d(centres[1], xi[per_group:].numpy())
                         for xi in x], dtype=torch.float64)
    for est in (q.log_px, q.coarse, q.inner):
        assert torch.allclose(est, want, rtol=0, atol=TOL)
    assert q.worst_image_error() < 1e-3
    # when the grid misses the posterior, the estimates say so
    narrow = quadrature(model, x, half_width=4.5, n=180)  # inner band stops at 2.5 < 3.5: truncation shows
    assert narrow.worst_image_error() > 1.0
    # the mean's terms against the definitions, computed here in float64 from the three estimates
    assert narrow.widen_delta() == pytest.approx((narrow.log_px.double() - narrow.inner.double()).mean().abs().item(), abs=1e-9)
    assert narrow.refine_delta() == pytest.approx((narrow.log_px.double() - narrow.coarse.double()).mean().abs().item(), abs=1e-9)
    assert narrow.mean_error() == narrow.refine_delta() + narrow.widen_delta() and narrow.widen_delta() > 0.1
    coarse_grid = quadrature(model, x, half_width=10.0, n=40)  # h = 0.5, wider than the posterior sd
    assert coarse_grid.worst_image_error() > 10 * q.worst_image_error()


# ---------------------------------------------------------------- a grid small enough to sum by hand


@pytest.mark.parametrize("zdim", [1, 2])
def test_five_point_grid_and_its_subgrids_summed_by_hand(zdim):
    """L = 2.5, n = 5: h = 1 and the axis is -2, -1, 0, 1, 2, so every estimate is a short sum by hand.

    The decoder is one pixel with logit 0 whatever z is: log p(x|z) = -ln 2 for x = 0 and x = 1, and each
    estimate is -ln 2 + zdim * ln(1-D sum) (the prior factorises, so the 2-D sums are squares):
      full:   h * sum_g phi(z_g) = phi(0) + 2 phi(1) + 2 phi(2) = 0.398942280 + 0.483941449 + 0.107981933
              = 0.990865662, ln = -0.009176311
      coarse: every other point from the first (-2, 0, 2), spacing 2h:
              2 (phi(0) + 2 phi(2)) = 2 * 0.506924213 = 1.013848427, ln = 0.013753414
              (the other half, -1 and 1, would give 4 phi(1) = 0.967882898, ln = -0.032644172)
      inner:  |z_d| < L - 2 = 0.5 keeps only z = 0: phi(0) = 0.398942280, ln = -0.918938533
    Every point carries weight here, so a sum that skips one (the first, at the corner) or takes the
    wrong half for `coarse` misses by more than 1e-2 nats.
    """
    from vaebench.core.quadrature import quadrature

    model = FixedDecoder(zdim, lambda z, y: torch.zeros(*z.shape[:-1], 1, dtype=torch.float64))  # (g, 1)
    x = torch.tensor([[1.0], [0.0]])  # (2, 1)
    ln2 = 0.693147181
    want = {"log_px": -ln2 - zdim * 0.009176311, "coarse": -ln2 + zdim * 0.013753414,
            "inner": -ln2 - zdim * 0.918938533}
    # 1-D in one chunk; 2-D (25 points) in chunks of 7, 7, 7 and 4: the masks must follow the chunks
    q = quadrature(model, x, half_width=2.5, n=5, grid_chunk=8192 if zdim == 1 else 7)
    for name, value in want.items():
        assert getattr(q, name).tolist() == pytest.approx([value, value], abs=1e-8), name
    assert quad_log_px(model, x, half_width=2.5, n=5).tolist() == pytest.approx([want["log_px"]] * 2, abs=1e-8)
    # the error estimates from the same hand values: |full - coarse| = 0.022929725 zdim, |full - inner| = 0.909762222 zdim
    assert q.refine_delta() == pytest.approx(zdim * 0.022929725, abs=1e-8)
    assert q.widen_delta() == pytest.approx(zdim * 0.909762222, abs=1e-8)
    assert q.mean_error() == pytest.approx(zdim * 0.932691947, abs=1e-8)
    assert q.worst_image_error() == pytest.approx(zdim * 0.932691947, abs=1e-8)


def test_quad_log_px_defaults_are_the_pipelines():
    """Called without a grid, the quadrature uses params.yaml's defaults (eval.quad_n, eval.quad_half_width)."""
    import inspect

    from vaebench.config import EvalConfig

    sig = inspect.signature(quad_log_px).parameters
    assert sig["n"].default == EvalConfig().quad_n == 800
    assert sig["half_width"].default == EvalConfig().quad_half_width == 10.0
