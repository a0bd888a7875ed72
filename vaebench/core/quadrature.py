"""Exact log p(x) for 1- and 2-dimensional latents, by quadrature over the prior's support.

log p(x) = log integral p(x|z) p(z) dz, approximated by the midpoint rule on a uniform grid
over [-L, L]^D with n points per axis (spacing h = 2L/n):
    log p(x) ~= logsumexp_g [log p(x|z_g) + log p(z_g)] + D log h.
The grid is centred on the prior, not on q: a trained 2-D decoder can put posterior mass far
from q's mean, and a q-centred grid then misses it. The prior mass outside [-L, L]^D is
below D * 2 * Phi(-L) (1.5e-23 for L = 10): what lies outside can matter only where the
decoder's likelihood there is e^50 times larger than anywhere inside. A trained 2-D model was
seen to put an image's posterior near z = -7, so L = 6 is not enough.

Cost: the grid is decoded once (G = n^D points) and every image is scored against it at once:
    log p(x|z_g) = sum_p x_p l_gp - softplus(l_gp) = (X @ L^T)[i, g] - c_g,
a matrix product of images (N, 784) and logits (G, 784), then a running logsumexp over g.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from vaebench.core import bounds
from vaebench.core.models import VAE


def grid_points(zdim: int, half_width: float, n: int) -> tuple[torch.Tensor, float]:
    """Midpoints of n^zdim cells covering [-L, L]^zdim, (G, zdim), and log of a cell's volume."""
    if zdim not in (1, 2):
        raise ValueError(f"quadrature is for 1- or 2-dimensional latents, not {zdim}")
    h = 2 * half_width / n
    axis = -half_width + h * (torch.arange(n, dtype=torch.float64) + 0.5)  # (n,)
    if zdim == 1:
        pts = axis[:, None]
    else:
        pts = torch.cartesian_prod(axis, axis)  # (n^2, 2)
    return pts, zdim * math.log(h)


# The quadrature runs at this many torch threads on any machine. Its products of a few rows (the last
# block of a label's images) and its long elementwise passes gave other last bits at 4 threads than at
# 1 or 2 (1e-11 nats in float64 sums), even with MKL's strict mode, while training and the IWAE did not
# (tests/test_determinism.py). Pinned, the exact NLL is the same whatever the caller's thread count;
# the metrics record the count (quad_threads).
QUAD_THREADS = 2


@contextlib.contextmanager
def _torch_threads(n: int) -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


# Images scored against a grid chunk at once: a (256, 8192) block is 8 MB in fp32, 16 MB in fp64, so the
# fp64 conversion, subtraction, masks and logsumexp run in cache; all 10,000 at once made each of them a
# fresh 330-650 MB buffer streamed through DRAM. Per image the arithmetic is unchanged (bit-identical).
IMAGE_BLOCK = 256


@dataclass(frozen=True)
class Quadrature:
    """log p(x) per image (N,) on the full grid, and on two sub-grids of the same decoded points.

    `coarse` keeps every other point per axis (spacing 2h) and `inner` drops the outer band
    (|z_d| > L - 2). For the midpoint rule on a smooth integrand, the error of the full grid
    is usually far below |full - coarse| (refinement) plus |full - inner| (truncation), so these
    two differences estimate the integration error; the report states them. They are estimates,
    not bounds: a posterior narrower than the spacing can move one image by more.
    """

    log_px: torch.Tensor
    coarse: torch.Tensor
    inner: torch.Tensor

    def worst_image_error(self) -> float:
        """Largest per-image |full - coarse| + |full - inner| (nats): an estimate of the worst image's error, not a
        bound; the metrics keep its first name, `quad_error_bound`, so that earlier metrics files still compare."""
        return ((self.log_px - self.coarse).abs() + (self.log_px - self.inner).abs()).max().item()

    def refine_delta(self) -> float:
        """|mean full - mean coarse| (nats): the refinement term of the mean's error, `quad_refine_delta`."""
        return (self.log_px - self.coarse).mean().abs().item()

    def widen_delta(self) -> float:
        """|mean full - mean inner| (nats): the truncation term of the mean's error, `quad_widen_delta`."""
        return (self.log_px - self.inner).mean().abs().item()

    def mean_error(self) -> float:
        """The estimated integration error of the mean log p(x), which the tables report: refinement plus
        truncation, `quad_mean_error`. Far below worst_image_error(): a few images with very sharp posteriors
        dominate the worst image, while the mean moves little (bench/quad_convergence.py measures both)."""
        return self.refine_delta() + self.widen_delta()


@torch.no_grad()
def quadrature(
    model: VAE,
    x: torch.Tensor,
    y: torch.Tensor | None = None,
    half_width: float = 10.0,
    n: int = 800,
    grid_chunk: int = 8192,
) -> Quadrature:
    """log p(x) (or log p(x|y) for a CVAE) of each image, by the midpoint rule on [-L, L]^D.

    For a CVAE the grid is decoded once per label and scores that label's images.
    """
    with _torch_threads(QUAD_THREADS):
        return _quadrature(model, x, y, half_width, n, grid_chunk)


def _quadrature(model: VAE, x: torch.Tensor, y: torch.Tensor | None, half_width: float, n: int,
                grid_chunk: int) -> Quadrature:
    pts, log_cell = grid_points(model.zdim, half_width, n)
    h = 2 * half_width / n
    index = torch.round((pts + half_width) / h - 0.5).long()  # (G, D): each point's cell index per axis
    subsets = {
        "log_px": (torch.ones(len(pts), dtype=torch.bool), log_cell),
        "coarse": ((index % 2 == 0).all(1), log_cell + model.zdim * math.log(2)),
        "inner": ((pts.abs() < half_width - 2).all(1), log_cell),
    }
    out = {name: torch.full((len(x),), -math.inf, dtype=torch.float64) for name in subsets}
    groups = [(None, torch.arange(len(x)))] if y is None else [
        (torch.tensor(lab), (y == lab).nonzero().squeeze(1)) for lab in y.unique().tolist()]
    for lab, idx in groups:
        xs = x[idx].float()  # (M, P)
        acc = {name: torch.full((len(idx),), -math.inf, dtype=torch.float64) for name in subsets}
        for a in range(0, len(pts), grid_chunk):
            z = pts[a:a + grid_chunk]  # (g, D)
            logits = model.decode(z.float(), None if lab is None else lab.expand(len(z)))  # (g, P)
            # x @ logits^T and the softplus run in fp32 (x is 0/1 and |logits| < ~50: good to ~1e-4 nats
            # over 784 pixels); the sums over pixels and grid points run in fp64.
            c = F.softplus(logits).double().sum(-1) - bounds.standard_normal_log_prob(z)  # (g,)
            keeps = {name: mask[a:a + grid_chunk] for name, (mask, _) in subsets.items()}
            for b in range(0, len(xs), IMAGE_BLOCK):  # (m, g) blocks that stay in cache
                log_joint = (xs[b:b + IMAGE_BLOCK] @ logits.T).double() - c  # (m, g): log p(x|z_g) + log p(z_g)
                for name, keep in keeps.items():
                    if keep.any():
                        acc[name][b:b + IMAGE_BLOCK] = torch.logaddexp(
                            acc[name][b:b + IMAGE_BLOCK], torch.logsumexp(log_joint[:, keep], 1))
        for name, (_, log_vol) in subsets.items():
            out[name][idx] = acc[name] + log_vol
    return Quadrature(**out)


def quad_log_px(model: VAE, x: torch.Tensor, y: torch.Tensor | None = None, half_width: float = 10.0,
                n: int = 800, grid_chunk: int = 8192) -> torch.Tensor:
    """log p(x) (or log p(x|y)) of each image (N,) on the full grid; see `quadrature`."""
    return quadrature(model, x, y, half_width, n, grid_chunk).log_px
