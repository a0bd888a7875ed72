"""The free-bits piece (Kingma et al. 2016): a KL floor per latent dimension, pinned to hand computations.

- below every dimension's minibatch KL it is the VAE's objective to the bit, value and gradients;
- the minibatch mean is sum_j max(floor, mean_b KL_bj), computed here from the closed-form KL in float64;
- a dimension under the floor gets no gradient from the KL, one above it the VAE's;
- refused where it means nothing (iwae/dreg objectives, categorical latents), negative or infinite values;
- recorded in a checkpoint's fingerprint only when set, so that no existing run's sidecar changes;
- the CLI trains it from `--piece free_bits=...` (the piece's one declaration).
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import yaml
from typer.testing import CliRunner

from conftest import make_tiny_params
from vaebench.cli import app
from vaebench.config import ConfigError, to_dict
from vaebench.core.models import build_model
from vaebench.core.objectives import free_bits_kl, training_bound
from vaebench.core.variants import PLAIN, RECORDED_ALWAYS, Variant
from vaebench.run.checkpoint import WEIGHTS, load_checkpoint
from vaebench.streams import Draws, Stream


def _bound_and_grads(v: Variant, floor_check: float | None = None) -> tuple[torch.Tensor, list[torch.Tensor]]:
    torch.manual_seed(0)
    model = build_model("vae", 4, 32)
    x = (torch.rand(16, 784, generator=torch.Generator().manual_seed(1)) < 0.3).float()
    if floor_check is not None:  # the premise: every dimension's minibatch KL is above the floor
        mu, logvar = model.encode(x)
        kl = 0.5 * (mu.double() ** 2 + logvar.double().exp() - 1 - logvar.double())
        assert (kl.mean(0) > floor_check).all()
    bound = training_bound(model, v, x, x, None, Draws(Stream.EPOCH, 0, 0), x.device, 1.0)  # (16,)
    bound.mean().backward()
    return bound.detach(), [p.grad.clone() for p in model.parameters()]


def test_a_floor_below_every_dimension_is_the_vae_to_the_bit() -> None:
    b0, g0 = _bound_and_grads(PLAIN)
    b1, g1 = _bound_and_grads(Variant(free_bits=1e-9), floor_check=1e-9)
    assert torch.equal(b0, b1) and all(torch.equal(a, b) for a, b in zip(g0, g1))


def test_the_minibatch_mean_is_the_sum_of_the_floored_dimension_means() -> None:
    mu = torch.tensor([[0.0, 2.0, 0.1], [0.0, 1.0, -0.1]], dtype=torch.float64, requires_grad=True)  # (b=2, D=3)
    logvar = torch.tensor([[0.0, -1.0, 0.0], [0.2, 0.0, 0.0]], dtype=torch.float64, requires_grad=True)
    # closed form per entry, 0.5 (mu^2 + e^lv - 1 - lv): dimension means 0.00468.., 1.4339.., 0.005
    kl = [[0.5 * (m * m + math.exp(lv) - 1 - lv) for m, lv in zip(mr, lr)]
          for mr, lr in zip(mu.tolist(), logvar.tolist())]
    means = [(kl[0][j] + kl[1][j]) / 2 for j in range(3)]
    floor = 0.25
    got = free_bits_kl(mu, logvar, floor)  # (2,)
    assert got.mean().item() == pytest.approx(sum(max(floor, m) for m in means), rel=1e-12)
    # per image: the free dimensions count the floor, the other its own KL
    assert got.tolist() == pytest.approx([floor + kl[i][1] + floor for i in range(2)], rel=1e-12)
    got.mean().backward()
    # no gradient into the two dimensions under the floor; the third gets d/dmu (mean_b KL) = mu / b
    assert mu.grad[:, [0, 2]].abs().max().item() == 0 and logvar.grad[:, [0, 2]].abs().max().item() == 0
    assert mu.grad[:, 1].tolist() == pytest.approx([2.0 / 2, 1.0 / 2], rel=1e-12)


@pytest.mark.parametrize("pieces, message", [
    ({"free_bits": -0.5}, r"^free_bits: must be >= 0 and finite, got -0\.5"),
    ({"free_bits": math.inf}, r"^free_bits: must be >= 0 and finite"),
    ({"free_bits": 0.5, "objective": "iwae"}, r"^free_bits: applies to the ELBO objective of a gaussian latent "
                                              r"\(this variant: iwae, gaussian\)"),
    ({"free_bits": 0.5, "latent": "categorical"}, r"^free_bits: applies to the ELBO objective of a gaussian latent"),
])
def test_free_bits_are_refused_where_they_mean_nothing(pieces, message) -> None:
    with pytest.raises(ConfigError, match=message):
        PLAIN.with_pieces(**pieces)


def test_the_fingerprint_names_free_bits_only_when_set() -> None:
    # every variant trained before the piece existed keeps the sidecar it has: the eight pieces, no more
    assert tuple(Variant(beta=4.0).fingerprint()) == RECORDED_ALWAYS
    assert Variant(free_bits=0.5).fingerprint() == {**{k: getattr(PLAIN, k) for k in RECORDED_ALWAYS}, "free_bits": 0.5}


def test_the_cli_trains_free_bits_from_its_declaration(tmp_path: Path, mnist_file) -> None:
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(to_dict(make_tiny_params(train={"epochs": 1}))))
    common = ["--zdim", "2", "--params", str(params), "--data", str(mnist_file), "--quiet"]
    res = CliRunner().invoke(app, ["train", *common, "--piece", "free_bits=0.5", "--out", str(tmp_path / "fb")])
    assert res.exit_code == 0, res.output
    res = CliRunner().invoke(app, ["train", *common, "--out", str(tmp_path / "vae")])
    assert res.exit_code == 0, res.output
    _, meta = load_checkpoint(tmp_path / "fb")
    assert meta["model"] == "vae_free_bits0p5" and meta["variant"]["free_bits"] == 0.5
    assert (tmp_path / "fb" / WEIGHTS).read_bytes() != (tmp_path / "vae" / WEIGHTS).read_bytes()
    res = CliRunner().invoke(app, ["pieces"])
    assert "free_bits [0.0]: free bits (Kingma et al. 2016" in res.output
