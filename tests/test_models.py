"""models.py: shapes, Xavier initialisation, and the CVAE's use of its label, checked by explicit recomputation."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from vaebench.core.models import N_LABELS, PIXELS, VAE, build_model, mlp


def _images(n: int, seed: int = 0) -> torch.Tensor:
    return (torch.rand(n, PIXELS, generator=torch.Generator().manual_seed(seed)) < 0.3).float()


@pytest.mark.parametrize("model_name", ["vae", "cvae"])
def test_shapes(model_name):
    torch.manual_seed(0)
    model = build_model(model_name, zdim=3, hidden=20)
    y = torch.tensor([0, 4, 9, 2, 2]) if model_name == "cvae" else None
    mu, logvar = model.encode(_images(5), y)
    assert mu.shape == logvar.shape == (5, 3)
    assert model.decode(torch.randn(5, 3), y).shape == (5, PIXELS)
    assert model.decode(torch.randn(5, 7, 3), y).shape == (5, 7, PIXELS)  # (B, S, D) with (B,) labels
    assert model.conditional == (model_name == "cvae")
    # layer sizes: 784 (+10) -> H -> H -> 2D and D (+10) -> H -> H -> 784
    extra = N_LABELS if model_name == "cvae" else 0
    enc = [m for m in model.encoder if isinstance(m, nn.Linear)]
    dec = [m for m in model.decoder if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in enc] == [(PIXELS + extra, 20), (20, 20), (20, 6)]
    assert [(m.in_features, m.out_features) for m in dec] == [(3 + extra, 20), (20, 20), (20, PIXELS)]


def test_encode_splits_the_last_layer_into_mean_and_logvar():
    torch.manual_seed(1)
    model, x = VAE(4, hidden=16), _images(3)
    out = model.encoder(x)  # (3, 8)
    mu, logvar = model.encode(x)
    assert torch.equal(mu, out[:, :4]) and torch.equal(logvar, out[:, 4:])


def test_cvae_needs_a_label_and_unknown_models_are_refused():
    model = build_model("cvae", 2, 8)
    with pytest.raises(ValueError, match="needs the label"):
        model.encode(_images(2))
    with pytest.raises(ValueError, match="unknown model"):
        build_model("gan", 2, 8)


def test_xavier_initialisation_variance():
    """xavier_uniform_: U(-a, a) with a = sqrt(6 / (fan_in + fan_out)), variance 2 / (fan_in + fan_out); biases 0.

    The empirical variance of n uniform weights has relative standard error sqrt(0.8 / n)
    (kurtosis of a uniform is 1.8); we allow 5 of those.
    """
    torch.manual_seed(2)
    net = mlp(784, 200, 40)
    for layer in (m for m in net if isinstance(m, nn.Linear)):
        w = layer.weight.detach().double()
        fan_out, fan_in = w.shape
        want = 2.0 / (fan_in + fan_out)
        rel_se = math.sqrt(0.8 / w.numel())
        assert abs(w.var().item() / want - 1) < 5 * rel_se, (fan_in, fan_out, w.var().item(), want)
        assert w.abs().max().item() <= math.sqrt(6.0 / (fan_in + fan_out)) + 1e-7
        assert w.mean().abs().item() < 5 * math.sqrt(want / w.numel())
        assert torch.equal(layer.bias, torch.zeros_like(layer.bias))
    # and it is what VAE builds
    vae = VAE(5, hidden=100)
    first = vae.encoder[0].weight.detach().double()
    assert abs(first.var().item() / (2.0 / (784 + 100)) - 1) < 5 * math.sqrt(0.8 / first.numel())


@torch.no_grad()
def test_cvae_decoder_uses_the_label():
    torch.manual_seed(3)
    model = VAE(2, hidden=32, n_labels=N_LABELS)
    z = torch.randn(1, 2).expand(N_LABELS, 2)  # the same z for every label
    logits = model.decode(z, torch.arange(N_LABELS))  # (10, 784)
    # all ten decodings differ from each other
    dist = torch.cdist(logits, logits)
    off_diag = dist[~torch.eye(N_LABELS, dtype=torch.bool)]
    assert (off_diag > 1e-3).all()
    # and each equals the decoder applied to [z, onehot(y)] built by hand
    for lab in range(N_LABELS):
        manual = model.decoder(torch.cat([z[:1], F.one_hot(torch.tensor([lab]), N_LABELS).float()], -1))
        assert torch.allclose(logits[lab:lab + 1], manual, atol=1e-6)
    # the encoder sees the label too
    x = _images(1).expand(N_LABELS, PIXELS)
    mu, _ = model.encode(x, torch.arange(N_LABELS))
    assert (torch.cdist(mu, mu)[~torch.eye(N_LABELS, dtype=torch.bool)] > 1e-4).all()


@torch.no_grad()
def test_decode_broadcasts_labels_over_samples():
    """(B,) labels with (B, S, D) latents = decoding each (b, s) on its own with label y_b."""
    torch.manual_seed(4)
    model = VAE(3, hidden=16, n_labels=N_LABELS)
    z = torch.randn(4, 5, 3)
    y = torch.tensor([7, 0, 7, 3])
    batched = model.decode(z, y)  # (4, 5, 784)
    for b in range(4):
        for s in range(5):
            one = model.decode(z[b, s][None], y[b][None])  # (1, 784)
            assert torch.allclose(batched[b, s], one[0], atol=1e-5)
    # a deeper batch: (B, S1, S2, D) latents with (B,) labels
    z4 = torch.randn(4, 2, 3, 3)
    deep = model.decode(z4, y)
    assert torch.allclose(deep[2, 1, 0], model.decode(z4[2, 1, 0][None], y[2][None])[0], atol=1e-5)


@torch.no_grad()
def test_vae_decode_is_the_decoder_on_z():
    torch.manual_seed(5)
    model = VAE(2, hidden=16)
    z = torch.randn(3, 4, 2)
    assert torch.equal(model.decode(z), model.decoder(z))
