"""The fixed-row encoder and decoder calls every estimator goes through: a row's result never depends on
the other rows it was computed with, so nothing depends on block or chunk sizes."""

from __future__ import annotations

from collections.abc import Callable

import torch

from vaebench.core.models import VAE

# Latent samples decoded at once: keeps the decoder's activations and logits (DECODE_ROWS x 784
# floats, 3.2 MB) in cache and under glibc's 32 MB mmap threshold. With tens of thousands of rows at once
# every temporary was a fresh mapping of 100+ MB, page-faulted and zeroed anew, and each elementwise pass
# (ReLU, bias, softplus, x*l) streamed from DRAM (docs/speed-and-tests.md: the block sizes measured).
DECODE_ROWS = 1024
# Images encoded at once. Every encoder call gets exactly this many rows (the last block is padded):
# MKL takes another code path for products of 1 or 2 rows (gemv), whose rows differ from the same
# rows in a larger product in the last bits (measured: up to 8e-7 in q's mean). At one fixed row
# count a row's result does not depend on the other rows, so nothing depends on the block size.
ENCODE_ROWS = 500


def _fixed_rows(fn: Callable[..., torch.Tensor], rows: int, *args: torch.Tensor | None) -> torch.Tensor:
    """fn over blocks of exactly `rows` leading rows of each arg (the last block zero-padded); (R, ...) -> (R, ...).

    `None` args are passed through. Zero rows are valid inputs (a zero latent, label 0, a blank image)
    and their outputs are dropped.
    """
    n = next(a for a in args if a is not None).shape[0]
    if n == 0:  # no rows: one padded call for the output's shape, cut to nothing
        return _fixed_rows(fn, rows, *(None if a is None else a.new_zeros((1, *a.shape[1:])) for a in args))[:0]
    out = []
    for i in range(0, n, rows):
        block = []
        for a in args:
            if a is None:
                block.append(None)
                continue
            part = a[i:i + rows]
            if len(part) < rows:
                part = torch.cat([part, part.new_zeros((rows - len(part), *part.shape[1:]))])
            block.append(part)
        out.append(fn(*block)[: min(rows, n - i)])
    return out[0] if len(out) == 1 else torch.cat(out)


@torch.no_grad()
def encode_all(model: VAE, x: torch.Tensor, y: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """q's parameters for every image, (N, P) [and (N,)] -> (N, D) each, in fixed blocks of ENCODE_ROWS."""
    params = _fixed_rows(lambda xb, yb: torch.cat(model.encode(xb, yb), -1), ENCODE_ROWS, x, y)  # (N, 2D)
    return params[:, : model.zdim], params[:, model.zdim:]


@torch.no_grad()
def encode_logits_all(model: VAE, x: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
    """q's logits for every image of a categorical model, (N, P) [and (N,)] -> (N, Nvars, K), in fixed blocks."""
    return _fixed_rows(lambda xb, yb: model.encode_logits(xb, yb).flatten(-2), ENCODE_ROWS, x, y).unflatten(
        -1, (model.zdim, model.classes))


@torch.no_grad()
def code_all(model: VAE, x: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
    """The latent each image's reconstruction decodes, (N, P) -> (N, width): q's mean for a Gaussian latent,
    q's most probable state, one-hot and flattened (N, Nvars K), for a categorical one."""
    if model.categorical:
        logits = encode_logits_all(model, x, y)  # (N, Nvars, K)
        return torch.nn.functional.one_hot(logits.argmax(-1), model.classes).to(logits.dtype).flatten(-2)
    return encode_all(model, x, y)[0]


def decode_rows(model: VAE, z: torch.Tensor, y: torch.Tensor | None, rows: int) -> torch.Tensor:
    """Bernoulli logits of latents (R, D) [labels (R,)] -> (R, P), in calls of exactly `rows` rows."""
    return _fixed_rows(model.decode, rows, z, y)
