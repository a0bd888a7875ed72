"""The variants: each piece pinned to a case computed by another route (vaebench/core/variants.py).

- a variant whose pieces are all at their defaults trains the thesis's VAE byte for byte, checked against
  a training loop written out here from the thesis's algorithm (not through fit's composition);
- the k = 1 IWAE objective is the single-sample ELBO with a sampled KL;
- enumeration equals brute force over states, and a discrete model's IWAE bound stays below its exact value;
- the categorical KL, the Gumbel-softmax limit and the bit flips against hand-computed values;
- refusals of bad pieces in params.yaml and on the command line, one line each.
"""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

import pytest
import torch
import yaml
from typer.testing import CliRunner

from conftest import make_tiny_params
from vaebench.core import bounds
from vaebench.run.checkpoint import WEIGHTS, load_checkpoint
from vaebench.cli import app
from vaebench.config import ConfigError, params_from_dict
from vaebench.core.variants import Variant
from vaebench.run.data import binarize_test, binarize_train, flip_bits, load_mnist
from vaebench.core.enumeration import all_states, enumerate_log_px
from vaebench.core.estimators import iwae_log_px, mean_and_se
from vaebench.core.models import VAE, build_model
from vaebench.streams import Draws, Stream, stream_seed
from vaebench.run.fit import fit
from vaebench.core.objectives import training_bound


def _quiet(_: str) -> None:
    pass


# what a variant's sidecar records of the VAE's pieces: the committed runs' model.json files hold exactly these
EIGHT = {"beta": 1.0, "objective": "elbo", "k": 1, "noise": 0.0, "latent": "gaussian", "classes": 10,
         "tau_start": 1.0, "tau_end": 0.5}


def _with_variants(defs: dict, runs: list[str] = (), **sections) -> object:
    base = make_tiny_params(**sections)
    from vaebench.config import to_dict

    d = to_dict(base)
    d["variants"] = {"defs": defs, "runs": list(runs)}
    return params_from_dict(d)


# ---------------------------------------------------------------- the VAE, byte for byte


def _thesis_loop(params, mnist_file) -> bytes:
    """The thesis's training written out: Xavier init, per epoch a fresh binarisation and order, one
    reparameterised sample, loss = -(log p(x|z) - KL), torch's RMSprop. Returns the final weights' bytes.
    With train.monitor = validation the last train.heldout training images are not trained on."""
    from vaebench.run.checkpoint import tensors_to_bytes

    tc = params.train
    data = load_mnist(mnist_file, params.data.train_subset, params.data.test_subset)
    torch.manual_seed(stream_seed(Stream.INIT, tc.seed))
    model = build_model("vae", 2, params.model.hidden)
    opt = torch.optim.RMSprop(model.parameters(), lr=tc.lr)
    train_x = data.train_x[:len(data.train_x) - tc.heldout] if tc.monitor == "validation" else data.train_x
    n = len(train_x)
    for epoch in range(tc.epochs):
        xb = binarize_train(train_x, params.data.binarize, tc.seed, epoch)
        g = Draws(Stream.EPOCH, tc.seed, epoch)
        perm = g.permutation(n)
        for i in range(0, n, tc.batch_size):
            x = xb[perm[i:i + tc.batch_size]]
            mu, logvar = model.encode(x)
            z = mu + torch.exp(0.5 * logvar) * g.normal(tuple(mu.shape))
            loss = -(bounds.bernoulli_log_lik(model.decode(z), x) - bounds.gaussian_kl(mu, logvar)).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return tensors_to_bytes(model.state_dict())


@pytest.mark.parametrize(("pieces", "monitor"), [
    pytest.param({"beta": 1.0}, "validation", id="beta-1"),
    pytest.param({"noise": 0.0}, "validation", id="zero-corruption"),
    pytest.param({"beta": 1, "noise": 0.0, "objective": "elbo", "k": 1, "latent": "gaussian"}, "validation",
                 id="every-default-spelled-out"),
    pytest.param({"beta": 1.0}, "test", id="beta-1-monitored-on-test"),  # trains on every training image
])
def test_a_variant_at_the_vaes_pieces_trains_the_thesis_vae_byte_for_byte(pieces, monitor, mnist_file, tmp_path) -> None:
    params = _with_variants({"same": pieces}, train={"epochs": 2, "monitor": monitor})
    reference = _thesis_loop(params, mnist_file)
    fit("vae", 2, params, mnist_file, tmp_path / "vae", log=_quiet, progress=False)
    fit("same", 2, params, mnist_file, tmp_path / "same", log=_quiet, progress=False)
    assert (tmp_path / "vae" / WEIGHTS).read_bytes() == reference
    assert (tmp_path / "same" / WEIGHTS).read_bytes() == reference


@pytest.mark.parametrize("pieces", [{"beta": 4.0}, {"noise": 0.2}, {"objective": "iwae", "k": 3}])
def test_each_piece_changes_the_training(pieces, mnist_file, tmp_path) -> None:
    params = _with_variants({"other": pieces}, train={"epochs": 1})
    fit("vae", 2, params, mnist_file, tmp_path / "vae", log=_quiet, progress=False)
    fit("other", 2, params, mnist_file, tmp_path / "other", log=_quiet, progress=False)
    assert (tmp_path / "vae" / WEIGHTS).read_bytes() != (tmp_path / "other" / WEIGHTS).read_bytes()
    _, meta = load_checkpoint(tmp_path / "other")
    # the eight pieces every variant's sidecar has recorded since 2026-11-26 (later pieces only when set)
    assert meta["variant"] == {**EIGHT, **{k: float(v) if k in ("beta", "noise") else v for k, v in pieces.items()}}


def test_the_epochs_piece_trains_the_vae_longer_and_its_first_epochs_are_the_vaes(mnist_file, tmp_path) -> None:
    """`epochs` (a VAE given another objective's training time): every draw of epoch e comes from the streams
    (seed, e), so the 3-epoch run's first two epochs are the 2-epoch VAE's, curve for curve; and `epochs` equal to
    train.epochs trains the VAE itself, byte for byte. The piece is recorded in the sidecar when set."""
    params = _with_variants({"long": {"epochs": 3}, "same": {"epochs": 2}}, train={"epochs": 2})
    vae = fit("vae", 2, params, mnist_file, tmp_path / "vae", log=_quiet, progress=False)
    same = fit("same", 2, params, mnist_file, tmp_path / "same", log=_quiet, progress=False)
    long = fit("long", 2, params, mnist_file, tmp_path / "long", log=_quiet, progress=False)
    assert (tmp_path / "same" / WEIGHTS).read_bytes() == (tmp_path / "vae" / WEIGHTS).read_bytes()
    assert [r["epoch"] for r in long.history] == [1, 2, 3] and long.history[:2] == vae.history == same.history
    assert (tmp_path / "long" / WEIGHTS).read_bytes() != (tmp_path / "vae" / WEIGHTS).read_bytes()
    _, meta = load_checkpoint(tmp_path / "long")
    assert meta["epochs_done"] == 3 and meta["variant"] == {**EIGHT, "epochs": 3} and meta["train"]["epochs"] == 2
    for bad in (0, -3, 2.5):
        with pytest.raises(ConfigError, match=r"variants\.defs\.bad\.epochs: "):
            _with_variants({"bad": {"epochs": bad}})
    # checked with train's other settings when params load, not when a stage trains: the burda schedule stages
    # 1, 4, 13, 40, 121, ... epochs
    with pytest.raises(ConfigError, match=r"^variants\.defs\.long\.epochs: 120 epochs do not fit train's settings "
                                          r"\(train\.epochs: 120 is not a whole number of stages of the burda"):
        _with_variants({"long": {"epochs": 120}}, train={"schedule": "burda", "epochs": 40})
    assert _with_variants({"long": {"epochs": 121}}, train={"schedule": "burda", "epochs": 40}).train_for("long").epochs == 121


def test_naming_the_iwae_objective_without_k_takes_five_samples(tmp_path) -> None:
    """k = 1 would silently train the ELBO with a sampled KL: params.yaml's defs and the CLI both take
    IWAE_K = 5 when the objective is named without k, and k = 1 when switching back to the ELBO."""
    from vaebench.selection import select
    from vaebench.core.variants import IWAE_K, PLAIN

    assert IWAE_K == 5
    p = _with_variants({"iw": {"objective": "iwae"}, "dr": {"objective": "dreg", "k": 2}, "iw1": {"objective": "iwae", "k": 1}})
    assert (p.variant("iw").k, p.variant("dr").k, p.variant("iw1").k) == (5, 2, 1)
    assert PLAIN.with_pieces(objective="dreg") == Variant(objective="dreg", k=5)
    assert p.variant("dr").with_pieces(objective="elbo") == PLAIN
    assert Variant(objective="iwae").k == 5  # built directly, too (it used to give k = 1)
    p2, name, zdim = select(p, "vae", 20, None, ["objective=iwae"])
    assert p2.variant(name) == Variant(objective="iwae", k=5) and zdim == 20
    # one model, one name: the variant is named by what it changes, however the options spelled it
    assert name == "vae_k5_objectiveiwae" == select(p, "vae", 20, None, ["objective=iwae", "k=5"])[1]
    p3, name, _ = select(p, "iw", 20, None, ["objective=elbo"])
    assert p3.variant(name) == PLAIN and name == "iw_k1_objectiveelbo"
    assert select(p, "vae", 20, None, ["beta=1"])[1] == "vae"  # an option that changes nothing: the model itself


def test_the_temperature_anneals_geometrically_from_start_to_end() -> None:
    v = Variant(latent="categorical", classes=10, tau_start=1.0, tau_end=0.5)
    assert v.tau_at(0, 40) == 1.0 and v.tau_at(39, 40) == pytest.approx(0.5, rel=1e-12)
    assert v.tau_at(13, 27) == pytest.approx(math.sqrt(0.5), rel=1e-12)  # half-way: the geometric mean
    assert all(v.tau_at(e + 1, 40) < v.tau_at(e, 40) for e in range(39))
    assert v.tau_at(0, 1) == 1.0  # a one-epoch run trains at the start temperature


def test_a_denoising_vae_encodes_the_corruption_and_reconstructs_the_clean_image() -> None:
    """The bound written out: q from the corrupted x~, log p(x | z) of the clean x, KL of q(z|x~)."""
    torch.manual_seed(9)
    model = VAE(3, hidden=16)
    x = (torch.rand(6, 784) < 0.3).float()
    x_in = flip_bits(x, 0.2, Draws(Stream.CORRUPT, 0, 0))
    assert not torch.equal(x_in, x)
    got = training_bound(model, Variant(noise=0.2), x_in, x, None, Draws(Stream.EPOCH, 3, 1), torch.device("cpu"), 1.0)
    mu, logvar = model.encode(x_in)
    z = mu + torch.exp(0.5 * logvar) * Draws(Stream.EPOCH, 3, 1).normal((6, 3))
    logits = model.decode(z)
    kl = 0.5 * (mu ** 2 + logvar.exp() - 1 - logvar).sum(-1)
    for target, same in ((x, True), (x_in, False)):
        p = torch.sigmoid(logits)
        want = (target * p.log() + (1 - target) * (1 - p).log()).sum(-1) - kl
        assert torch.allclose(got, want, rtol=1e-4, atol=1e-3) == same


def test_beta_trades_rate_for_distortion(mnist_file, tmp_path) -> None:
    """Higgins et al. 2017 / Alemi et al. 2018: a larger beta gives a smaller rate (KL) and a larger distortion."""
    from vaebench.run.score import load_data, score

    params = _with_variants({"b_low": {"beta": 0.25}, "b_high": {"beta": 4.0}}, train={"epochs": 3})
    data = load_data(params, mnist_file)
    out = {}
    for name in ("b_low", "b_high"):
        fit(name, 5, params, mnist_file, tmp_path / name, log=_quiet, progress=False, data=data)
        model, _ = load_checkpoint(tmp_path / name)
        out[name] = score(model, params, data, progress=False, variant=params.variant(name))
    low, high = out["b_low"], out["b_high"]
    assert high["rate"] < low["rate"] and high["distortion"] > low["distortion"]
    for m in (low, high):  # -ELBO = rate + distortion, the rate being the mean analytic KL
        assert m["rate"] + m["distortion"] == pytest.approx(m["neg_elbo"], abs=1e-9)
        assert m["rate"] == m["kl"]


# ---------------------------------------------------------------- the IWAE objective


def test_the_k1_iwae_objective_is_the_elbo_with_a_sampled_kl() -> None:
    """L_1 = log p(x|z) + log p(z) - log q(z|x) at z ~ q: computed here in float64 from the formulas."""
    torch.manual_seed(0)
    model = VAE(3, hidden=16)
    x = (torch.rand(7, 784) < 0.3).float()
    got = training_bound(model, Variant(objective="iwae", k=1), x, x, None, Draws(Stream.EPOCH, 5, 1),
                         torch.device("cpu"), 1.0)
    with torch.no_grad():
        mu, logvar = (t.double() for t in model.encode(x))
        eps = Draws(Stream.EPOCH, 5, 1).normal((7, 3)).double()  # the same draws, in the same order
        z = mu + torch.exp(0.5 * logvar) * eps
        p = torch.sigmoid(model.decode(z.float()).double())
        log_px_z = (x * p.log() + (1 - x) * (1 - p).log()).sum(-1)
        log_pz = (-0.5 * (math.log(2 * math.pi) + z ** 2)).sum(-1)
        log_qz = (-0.5 * (math.log(2 * math.pi) + logvar + (z - mu) ** 2 / logvar.exp())).sum(-1)
    assert got.detach().double() == pytest.approx(log_px_z + log_pz - log_qz, abs=2e-3)
    # and it is not the analytic-KL ELBO of the same sample (the KL term differs)
    analytic = training_bound(model, Variant(), x, x, None, Draws(Stream.EPOCH, 5, 1), torch.device("cpu"), 1.0)
    assert not torch.allclose(got, analytic, atol=1e-3)


def test_iwae_training_bound_rises_with_k() -> None:
    """Burda et al. 2016, Theorem 1: E[L_k] is non-decreasing in k; over 200 images, L_20 > L_1 by far more than noise."""
    torch.manual_seed(1)
    model = VAE(4, hidden=16)
    x = (torch.rand(200, 784) < 0.3).float()
    with torch.no_grad():
        l1, l20 = (training_bound(model, Variant(objective="iwae", k=k), x, x, None, Draws(Stream.EPOCH, 0, k),
                                  torch.device("cpu"), 1.0).mean().item() for k in (1, 20))
    assert l20 > l1 + 0.5  # measured: 0.93 nats for this untrained model


def _grads(model: VAE, bound: torch.Tensor) -> dict[str, torch.Tensor]:
    model.zero_grad(set_to_none=True)
    (-bound.mean()).backward()
    return {n: p.grad.clone() for n, p in model.named_parameters()}


def _stl_log_w(model: VAE, x: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """log w = log p(x, z) - log q(z) at z = mu + sigma eps (b, k), written out from the formulas, with q's
    parameters held fixed inside log q: gradients reach the encoder through z alone (a fresh graph each call)."""
    mu, logvar = model.encode(x)  # (b, D) each
    z = mu[:, None] + torch.exp(0.5 * logvar)[:, None] * eps  # (b, k, D)
    p = torch.sigmoid(model.decode(z))  # (b, k, 784)
    log_pxz = (x[:, None] * p.log() + (1 - x[:, None]) * (1 - p).log()).sum(-1) \
        - 0.5 * (math.log(2 * math.pi) + z ** 2).sum(-1)  # (b, k)
    mu_d, lv_d = mu.detach()[:, None], logvar.detach()[:, None]
    return log_pxz + 0.5 * (math.log(2 * math.pi) + lv_d + (z - mu_d) ** 2 / lv_d.exp()).sum(-1)


def test_dreg_has_the_iwae_value_and_decoder_gradient_and_its_own_encoder_gradient() -> None:
    torch.manual_seed(5)
    model = VAE(3, hidden=16)
    x = (torch.rand(6, 784) < 0.3).float()
    draws = lambda: Draws(Stream.EPOCH, 2, 3)  # noqa: E731 - the same noise for both objectives
    iwae = training_bound(model, Variant(objective="iwae", k=4), x, x, None, draws(), torch.device("cpu"), 1.0)
    g_iwae = _grads(model, iwae)
    dreg = training_bound(model, Variant(objective="dreg", k=4), x, x, None, draws(), torch.device("cpu"), 1.0)
    g_dreg = _grads(model, dreg)
    assert torch.equal(dreg.detach(), iwae.detach())
    for name in g_iwae:
        if name.startswith("decoder."):
            assert torch.allclose(g_dreg[name], g_iwae[name], rtol=1e-4, atol=1e-5), name  # float32 sums in another order
    assert not torch.allclose(g_dreg["encoder.4.bias"], g_iwae["encoder.4.bias"], atol=1e-4)


def _dreg_grads(seed: int, k: int, draw: tuple[int, int]) -> tuple[VAE, torch.Tensor, dict[str, torch.Tensor]]:
    """A tiny VAE (z = 3), 6 random binary images (6, 784), and the gradients of its DReG objective with
    k samples from the EPOCH stream keyed by the two fields `draw`."""
    torch.manual_seed(seed)
    model = VAE(3, hidden=16)
    x = (torch.rand(6, 784) < 0.3).float()
    dreg = training_bound(model, Variant(objective="dreg", k=k), x, x, None, Draws(Stream.EPOCH, *draw),
                          torch.device("cpu"), 1.0)
    return model, x, _grads(model, dreg)


def test_dreg_encoder_gradient_is_the_squared_weights_sum_written_out() -> None:
    """k = 4: the encoder's gradient is sum_i w~_i^2 d log w_i / d z_i dz_i/dphi (Tucker et al. 2019, eq. 5),
    written out here from the formulas, q's parameters held fixed inside log q; the unsquared weights'
    sum (a plausible slip) is a different gradient, so the test tells them apart."""
    model, x, g_dreg = _dreg_grads(seed=8, k=4, draw=(1, 2))

    def written_out(power: int) -> torch.Tensor:  # sum_i w~_i^power log w_i (b,)
        log_w = _stl_log_w(model, x, Draws(Stream.EPOCH, 1, 2).normal((6, 4, 3)))  # (6, 4)
        return (torch.softmax(log_w.detach(), -1) ** power * log_w).sum(-1)

    g_squared, g_plain = _grads(model, written_out(2)), _grads(model, written_out(1))
    encoder = [n for n in g_dreg if n.startswith("encoder.")]
    for name in encoder:
        assert torch.allclose(g_dreg[name], g_squared[name], rtol=1e-3, atol=1e-5), name
    assert not all(torch.allclose(g_plain[n], g_squared[n], rtol=1e-2, atol=1e-4) for n in encoder)


def test_dreg_with_one_sample_is_the_sticking_the_landing_gradient() -> None:
    """k = 1: w~ = 1, so DReG's gradient is that of log p(x, z) - log q(z; q's parameters held fixed) at the
    reparameterised z, for every parameter (Roeder, Wu & Duvenaud 2017), written out here directly."""
    model, x, g_dreg = _dreg_grads(seed=7, k=1, draw=(4, 4))
    g_stl = _grads(model, _stl_log_w(model, x, Draws(Stream.EPOCH, 4, 4).normal((6, 1, 3)))[:, 0])
    for name in g_stl:
        assert torch.allclose(g_dreg[name], g_stl[name], rtol=1e-3, atol=1e-4), name
    assert g_dreg["encoder.4.bias"].abs().max() > 1e-3  # the encoder does get a gradient


def test_dreg_encoder_gradient_vanishes_when_q_is_the_posterior() -> None:
    """Tucker et al. 2019: the DReG encoder gradient has zero variance when q is the exact posterior; with a
    decoder that ignores z and q = p(z) = the posterior, every sample's encoder gradient is exactly zero,
    while the IWAE's own encoder gradient (with q's score term) is not."""
    torch.manual_seed(6)
    model = VAE(3, hidden=16)
    with torch.no_grad():
        for layer in (model.encoder[4], model.decoder[4]):
            layer.weight.zero_()
        model.encoder[4].bias.zero_()  # q = N(0, I) = p(z) for every image; logits = the decoder's bias
    x = (torch.rand(6, 784) < 0.3).float()
    for objective, zero in (("dreg", True), ("iwae", False)):
        b = training_bound(model, Variant(objective=objective, k=5), x, x, None, Draws(Stream.EPOCH, 0, 1),
                           torch.device("cpu"), 1.0)
        g = _grads(model, b)
        enc = torch.cat([g[n].flatten() for n in g if n.startswith("encoder.")])
        assert (enc.abs().max().item() == 0.0) == zero, (objective, enc.abs().max().item())


# ---------------------------------------------------------------- categorical latents


def test_categorical_kl_by_hand() -> None:
    q = torch.tensor([[0.5, 0.25, 0.25], [1 / 3, 1 / 3, 1 / 3]], dtype=torch.float64)
    want = sum(p * math.log(3 * p) for p in (0.5, 0.25, 0.25))  # the second variable is uniform: KL 0
    assert bounds.categorical_kl(q.log()[None]).item() == pytest.approx(want, abs=1e-12)


def test_gumbel_softmax_tends_to_the_gumbel_max_sample() -> None:
    logits = torch.randn(50, 4, 6, generator=torch.Generator().manual_seed(3))
    g = Draws(Stream.EPOCH, 1, 2).gumbel((50, 4, 6))
    hard = bounds.one_hot_sample(logits, g)
    assert torch.equal(hard.sum(-1), torch.ones(50, 4))
    assert torch.allclose(bounds.gumbel_softmax(logits, g, 1e-3), hard, atol=1e-3)
    # Gumbel-max samples follow q: class frequencies over 40,000 draws match softmax(logits) to ~0.005
    p = torch.softmax(torch.tensor([1.0, 0.0, -1.0]), -1)
    freq = bounds.one_hot_sample(p.log().expand(40_000, 1, 3), Draws(Stream.EPOCH, 9, 9).gumbel((40_000, 1, 3)))
    assert freq.mean((0, 1)).tolist() == pytest.approx(p.tolist(), abs=0.01)


def test_enumeration_equals_brute_force() -> None:
    """log p(x) = log (1/K^N) sum_z p(x|z), summed here state by state in float64 from the Bernoulli formula."""
    torch.manual_seed(2)
    model = VAE(2, hidden=8, classes=3).eval()
    x = (torch.rand(5, 784) < 0.4).float()
    got = enumerate_log_px(model, x)
    per_state = []
    for idx in itertools.product(range(3), repeat=2):
        z = torch.zeros(2, 3)
        z[0, idx[0]] = z[1, idx[1]] = 1
        with torch.no_grad():
            p = torch.sigmoid(model.decode(z.flatten()[None]).double())[0]
        per_state.append((x.double() * p.log() + (1 - x.double()) * (1 - p).log()).sum(-1))
    brute = torch.logsumexp(torch.stack(per_state), 0) - math.log(9)
    assert got.tolist() == pytest.approx(brute.tolist(), abs=1e-6)
    assert all_states(2, 3).shape == (9, 2, 3)


def test_a_discrete_models_iwae_bound_stays_below_its_exact_value(mnist_file, tmp_path) -> None:
    """The IWAE bound of hard samples never beats the exact log p(x) beyond its standard error, and closes in
    on it as k grows (Burda et al. 2016, Theorem 1)."""
    params = _with_variants({"cat": {"latent": "categorical", "classes": 10}}, train={"epochs": 2})
    fit("cat", 2, params, mnist_file, tmp_path / "cat", log=_quiet, progress=False)
    model, meta = load_checkpoint(tmp_path / "cat")
    assert model.categorical and (model.zdim, model.classes) == (2, 10)
    data = load_mnist(mnist_file, 0, 300)
    x = binarize_test(data.test_x, "dynamic", 1234)
    exact = enumerate_log_px(model, x)
    gaps = []
    for k in (1, 10, 100):
        est = iwae_log_px(model, x, None, k, seed=0)
        diff, se = mean_and_se(est.double() - exact)
        assert diff <= se, (k, diff, se)
        gaps.append(-diff)
    assert gaps[0] > gaps[1] > gaps[2] >= 0  # the bound tightens with k


def test_the_discrete_models_elbo_uses_hard_samples_and_the_exact_kl(mnist_file, tmp_path) -> None:
    from vaebench.core.elbo import elbo_per_image
    from vaebench.core.batching import encode_logits_all

    torch.manual_seed(4)
    model = VAE(2, hidden=8, classes=4).eval()
    x = (torch.rand(6, 784) < 0.4).float()
    got = elbo_per_image(model, x, None, Draws(Stream.TEST_ELBO, 0))
    logits = encode_logits_all(model, x, None)
    z = bounds.one_hot_sample(logits, Draws(Stream.TEST_ELBO, 0).gumbel((6, 2, 4)))
    with torch.no_grad():
        p = torch.sigmoid(model.decode(z.flatten(-2)).double())
    log_px_z = (x * p.log() + (1 - x) * (1 - p).log()).sum(-1)
    q = torch.softmax(logits.double(), -1)
    kl = (q * (q * 4).log()).sum((-2, -1))
    assert got.double().tolist() == pytest.approx((log_px_z - kl).tolist(), abs=1e-3)


# ---------------------------------------------------------------- denoising


def test_bit_flips_flip_the_stated_fraction_and_nothing_at_rate_zero() -> None:
    x = (torch.rand(100, 784, generator=torch.Generator().manual_seed(0)) < 0.3).float()
    assert torch.equal(flip_bits(x, 0.0, Draws(Stream.CORRUPT, 0, 0)), x)
    y = flip_bits(x, 0.25, Draws(Stream.CORRUPT, 0, 0))
    assert set(y.unique().tolist()) <= {0.0, 1.0}
    assert (y != x).float().mean().item() == pytest.approx(0.25, abs=0.005)  # 78,400 pixels: sd 0.0015


def test_a_denoising_vae_is_scored_on_clean_images_and_on_restoring_corrupted_ones(mnist_file, tmp_path) -> None:
    from vaebench.run.score import load_data, score

    params = _with_variants({"dn": {"noise": 0.3}}, train={"epochs": 2})
    data = load_data(params, mnist_file)
    fit("dn", 5, params, mnist_file, tmp_path / "dn", log=_quiet, progress=False, data=data)
    model, _ = load_checkpoint(tmp_path / "dn")
    m = score(model, params, data, progress=False, variant=params.variant("dn"))
    assert m["restore_noise"] == 0.3
    # by hand: flip the scored test bits with the evaluation's stream, decode q's mean, Bernoulli in float64
    x = binarize_test(data.test_x, params.data.binarize, params.data.test_seed)
    noisy = flip_bits(x, 0.3, Draws(Stream.TEST_CORRUPT, params.eval.seed))
    assert 0.29 < (noisy != x).float().mean().item() < 0.31
    for key, inp in (("restore_nll", noisy), ("restore_nll_clean", x)):
        with torch.no_grad():
            p = torch.sigmoid(model.decode(model.encode(inp)[0]).double())
        ll = (x * p.log() + (1 - x) * (1 - p).log()).sum(-1)
        assert m[key] == pytest.approx(-ll.mean().item(), abs=1e-3)
        assert m[f"{key}_se"] == pytest.approx(ll.std().item() / len(ll) ** 0.5, rel=1e-3)
    # the clean-image scores are the VAE's estimators on the clean bits: the same keys as any run
    assert {"neg_elbo", "iwae_nll", "kl", "rate", "distortion"} <= set(m)


def test_a_categorical_denoising_vae_restores_from_its_most_probable_state(mnist_file, tmp_path) -> None:
    from vaebench.run.score import load_data, score

    params = _with_variants({"cdn": {"latent": "categorical", "classes": 4, "noise": 0.2}}, train={"epochs": 1})
    data = load_data(params, mnist_file)
    fit("cdn", 2, params, mnist_file, tmp_path / "cdn", log=_quiet, progress=False, data=data)
    model, _ = load_checkpoint(tmp_path / "cdn")
    m = score(model, params, data, progress=False, variant=params.variant("cdn"))
    x = binarize_test(data.test_x, params.data.binarize, params.data.test_seed)
    noisy = flip_bits(x, 0.2, Draws(Stream.TEST_CORRUPT, params.eval.seed))
    with torch.no_grad():
        state = torch.nn.functional.one_hot(model.encode_logits(noisy).argmax(-1), 4).float().flatten(-2)
        p = torch.sigmoid(model.decode(state).double())
    assert m["restore_nll"] == pytest.approx(-(x * p.log() + (1 - x) * (1 - p).log()).sum(-1).mean().item(), abs=1e-3)
    assert m["exact_states"] == 16 and m["iwae_gap_to_exact"] >= -2 * m["iwae_gap_to_exact_se"]


@pytest.mark.parametrize("pieces", [{"noise": 0.3}, {"latent": "categorical", "classes": 5}],
                         ids=["denoising", "categorical"])
def test_a_resumed_variant_ends_with_the_bytes_of_an_unbroken_one(pieces, mnist_file, tmp_path, monkeypatch) -> None:
    """The flips and the temperature are functions of the epoch: a run killed after epoch 1 and resumed
    continues with the same draws and the same annealing."""
    from vaebench.run.callbacks import Callback

    class Dies(Callback):  # killed during epoch 2, before its state is saved
        def steps_end(self, run, epoch) -> None:
            if epoch == 1:
                raise KeyboardInterrupt

    params = _with_variants({"v": pieces}, train={"epochs": 3})
    fit("v", 2, params, mnist_file, tmp_path / "ref", log=_quiet, progress=False)
    with pytest.raises(KeyboardInterrupt):
        fit("v", 2, params, mnist_file, tmp_path / "run", log=_quiet, progress=False, callbacks=[Dies()])
    result = fit("v", 2, params, mnist_file, tmp_path / "run", log=_quiet, progress=False)
    assert result.resumed_from == 1
    assert (tmp_path / "run" / WEIGHTS).read_bytes() == (tmp_path / "ref" / WEIGHTS).read_bytes()


# ---------------------------------------------------------------- refusals


@pytest.mark.parametrize("pieces, message", [
    ({"beta": 0}, r"^variants\.defs\.v\.beta: must be > 0 and finite, got 0\.0$"),
    ({"objective": "iwae", "k": 0}, r"^variants\.defs\.v\.k: must be >= 1, got 0$"),
    ({"k": 5}, r"^variants\.defs\.v\.k: 5 samples need `objective: iwae`"),
    ({"noise": 1.0}, r"^variants\.defs\.v\.noise: a flip probability must be in \[0, 1\), got 1\.0$"),
    ({"noise": -0.1}, r"^variants\.defs\.v\.noise: "),
    ({"latent": "categorical", "classes": 1}, r"^variants\.defs\.v\.classes: must be >= 2, got 1$"),
    ({"latent": "categorical", "objective": "dreg", "k": 2}, r"^variants\.defs\.v\.objective: dreg is offered"),
    ({"objective": "iwae", "k": 5, "beta": 4}, r"^variants\.defs\.v\.beta: 4\.0 weights the KL of the ELBO objective"),
    ({"classes": 5}, r"^variants\.defs\.v\.classes: applies to categorical latents only"),
    ({"tau_end": 0.1}, r"^variants\.defs\.v\.tau_end: applies to categorical latents only"),
    ({"beta": float("inf")}, r"^variants\.defs\.v\.beta: must be a finite number, got inf"),
    ({"latent": "categorical", "tau_start": 0}, r"^variants\.defs\.v\.tau_start: must be > 0 and finite"),
    ({"latent": "mixture"}, r"^variants\.defs\.v\.latent: 'mixture' is not one of gaussian, categorical$"),
    ({"gamma": 2}, r"^variants\.defs\.v\.gamma: unknown key"),
])
def test_bad_pieces_in_params_are_refused_with_their_key(pieces, message) -> None:
    with pytest.raises(ConfigError, match=message):
        params_from_dict({"variants": {"defs": {"v": pieces}}})


def test_bad_runs_are_refused() -> None:
    with pytest.raises(ConfigError, match=r"^variants\.runs: 'b-x' is not <name>-<latent size>"):
        params_from_dict({"variants": {"defs": {"b": {}}, "runs": ["b-x"]}})
    with pytest.raises(ConfigError, match=r"^variants\.runs: 'c-2' names no variant in variants\.defs \(b\)"):
        params_from_dict({"variants": {"defs": {"b": {}}, "runs": ["c-2"]}})
    with pytest.raises(ConfigError, match=r"^variants\.runs: lists b-2 twice$"):
        params_from_dict({"variants": {"defs": {"b": {}}, "runs": ["b-2", "b-3", "b-2"]}})
    with pytest.raises(ConfigError, match=r"^variants\.defs\.vae: a variant's name"):
        params_from_dict({"variants": {"defs": {"vae": {}}}})


def _tiny_params_file(tmp_path: Path, defs: dict) -> Path:
    from vaebench.config import to_dict

    d = to_dict(make_tiny_params(train={"epochs": 1}))
    d["variants"] = {"defs": defs, "runs": []}
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(d))
    return path


@pytest.mark.parametrize("args, message", [
    (["train", "--piece", "beta=0"], "error: --piece beta: must be > 0 and finite, got 0.0"),
    (["train", "--piece", "classes=4"], "error: --piece classes: applies to categorical latents only"),
    (["train", "--piece", "objective=iwae", "--piece", "k=0"], "error: --piece k: must be >= 1, got 0"),
    (["train", "--piece", "noise=1"], "error: --piece noise: a flip probability must be in [0, 1), got 1.0"),
    (["train", "--piece", "latent=categorical", "--piece", "classes=1"], "error: --piece classes: must be >= 2, got 1"),
    (["train", "--model", "cvae", "--piece", "beta=2"], "error: --model: the variant pieces apply to the unconditional VAE"),
    (["train", "--piece", "betta=2"], "error: --piece: 'betta=2' is not NAME=VALUE with NAME one of beta, objective"),
    (["train", "--piece", "beta"], "error: --piece: 'beta' is not NAME=VALUE"),
    (["train", "--piece", "beta=four"], "error: --piece beta: expected a number, got 'four'"),
    (["train", "--piece", "beta=2", "--piece", "beta=3"], "error: --piece: beta is given twice"),
    (["train", "--model", "nope"], "error: --model: 'nope' is not one of vae, cvae, cat"),
    (["train", "--run", "cat_2"], "error: --run: 'cat_2' is not <name>-<latent size>"),
    (["train", "--run", "nope-2"], "error: --run: 'nope' is not one of vae, cvae, cat"),
    (["train", "--run", "cat-2", "--model", "cvae"], "error: --run: names the model and the latent size itself"),
    (["eval", "--run", "cat-5", "--exact"],
     "error: --exact: 10^5 = 100,000 latent states, more than eval.enum_max = 5,000 allows enumerating"),
    (["eval", "--model", "vae", "--zdim", "3", "--exact"], "error: --exact: the quadrature needs zdim <= 2"),
])
def test_the_cli_refuses_bad_pieces_in_one_line(args, message, tmp_path, mnist_file) -> None:
    params = _tiny_params_file(tmp_path, {"cat": {"latent": "categorical", "classes": 10}})
    res = CliRunner().invoke(app, [*args, "--params", str(params), "--data", str(mnist_file),
                                   *(["--out", str(tmp_path / "o")] if args[0] == "train" else [])])
    assert res.exit_code == 2, res.output
    assert res.output.strip().splitlines()[-1].startswith(message), res.output


def test_the_cli_trains_and_scores_a_variant_given_by_its_pieces(tmp_path, mnist_file) -> None:
    params = _tiny_params_file(tmp_path, {})
    res = CliRunner().invoke(app, ["train", "--zdim", "2", "--piece", "latent=categorical", "--piece", "classes=4",
                                   "--params", str(params), "--data", str(mnist_file), "--quiet",
                                   "--out", str(tmp_path / "m")])
    assert res.exit_code == 0, res.output
    _, meta = load_checkpoint(tmp_path / "m")
    assert meta["model"] == "vae_classes4_latentcategorical" and meta["variant"]["classes"] == 4
    res = CliRunner().invoke(app, ["eval", "--zdim", "2", "--piece", "latent=categorical", "--piece", "classes=4", "--no-train",
                                   "--exact", "--json", "--quiet", "--params", str(params), "--data", str(mnist_file),
                                   "--ckpt", str(tmp_path / "m")])
    assert res.exit_code == 0, res.output
    m = json.loads(res.output[res.output.index("{"):])
    # paired: the se of the per-image gaps, not the spread of log p(x) across images (several nats)
    assert m["exact_states"] == 16 and m["iwae_gap_to_exact"] >= -3 * m["iwae_gap_to_exact_se"]
    # the printed table names the enumeration and the rate/distortion split
    res = CliRunner().invoke(app, ["eval", "--zdim", "2", "--piece", "latent=categorical", "--piece", "classes=4", "--no-train",
                                   "--quiet", "--params", str(params), "--data", str(mnist_file), "--ckpt", str(tmp_path / "m")])
    assert f"exact NLL (enumeration of 16 states)  {m['exact_nll']:.2f} ± {m['exact_nll_se']:.2f}" in res.output
    assert f"{m['rate']:.2f}, {m['distortion']:.2f}" in res.output
    # `vaebench runs` names it for what it is, not a stale grid run
    res = CliRunner().invoke(app, ["runs", "--params", str(params), "--models", str(tmp_path), "--data", str(mnist_file)])
    assert res.exit_code == 0, res.output
    row = next(ln for ln in res.output.splitlines() if ln.startswith("m "))
    assert "not in params.yaml: variant 'vae_classes4_latentcategorical'" in row


# ---------------------------------------------------------------- in the pipeline


@pytest.mark.slow
def test_variant_runs_are_dvc_matrix_items_scored_like_the_grid(tmp_path: Path) -> None:
    """A tiny pipeline with two variants: readable stage names, each stage declaring exactly the modules its
    command imports, the variant metrics, and nothing stale after a second `dvc repro`."""
    from tests.dvcproject import TINY, make_project, run
    from tests.test_pipeline import check_declared_code

    params = {**TINY, "grid": {"models": ["vae"], "zdims": [2], "seeds": [0]},
              "variants": {"defs": {"cat3": {"latent": "categorical", "classes": 3}, "dn": {"noise": 0.2}},
                           "runs": ["cat3-2", "dn-2"]}}
    project = make_project(tmp_path / "p", params)
    out = run(project, "dvc", "repro").stdout
    for stage in ("train-variant", "evaluate-variant", "figures-variant"):
        for item in ("cat3-2-0", "dn-2-0"):  # <variant>-<size>-<training seed>
            assert f"Running stage '{stage}@{item}'" in out
    cat = json.loads((project / "metrics/runs/cat3-2-0.json").read_text())
    dn = json.loads((project / "metrics/runs/dn-2-0.json").read_text())
    assert cat["model"] == "cat3" and cat["exact_states"] == 9 and "quad_nll" not in cat and cat["train_seed"] == 0
    assert cat["iwae_gap_to_exact"] >= -3 * cat["iwae_gap_to_exact_se"]  # paired, as above
    assert dn["restore_noise"] == 0.2 and "quad_nll" in dn  # a 2-D Gaussian variant gets its quadrature
    # the folder names the run with its seed, the figure files the variant and size
    assert (project / "plots/runs/dn-2-0/restorations_dn-2.png").exists()
    assert (project / "plots/runs/cat3-2-0/samples_cat3-2.png").exists()
    lock = yaml.safe_load((project / "dvc.lock").read_text())["stages"]
    for name in ("train-variant@cat3-2-0", "evaluate-variant@cat3-2-0", "figures-variant@dn-2-0"):
        check_declared_code(project, name, lock[name])
    assert "Running stage" not in run(project, "dvc", "repro").stdout


def test_the_vae_and_cvae_fingerprint_is_the_one_before_the_variants(mnist_file, tmp_path) -> None:
    """A training's resumable state records its fingerprint and resumes only under an equal one: a key added
    to the fingerprint of the plain VAE would restart every interrupted run (the literature run's state,
    committed mid-training, among them). Variants add their pieces; the VAE and CVAE add nothing. Monitoring on
    the validation images (2026-12-06) trains on other images, so it is named; `monitor: test`, how those runs
    were trained, is not (their sidecars stay current)."""
    from vaebench.run.fingerprint import run_fingerprint

    before = {"optimizer", "lr", "eps", "schedule", "batch_size", "epochs", "seed", "heldout", "device"}
    params = _with_variants({"b": {"beta": 2.0}})
    tested = _with_variants({"b": {"beta": 2.0}}, train={"monitor": "test"})
    for model in ("vae", "cvae"):
        fp = run_fingerprint(model, 5, params)
        assert set(fp) == {"model", "zdim", "hidden", "activation", "train", "data"}
        assert set(fp["train"]) == before | {"monitor"} and fp["train"]["monitor"] == "validation"
        old = run_fingerprint(model, 5, tested)
        assert set(old) == set(fp) and set(old["train"]) == before
        assert {k: v for k, v in fp["train"].items() if k != "monitor"} == old["train"]
    assert run_fingerprint("b", 5, params)["variant"] == {**EIGHT, "beta": 2.0}
    fit("vae", 2, params, mnist_file, tmp_path / "vae", log=_quiet, progress=False)
    model, meta = load_checkpoint(tmp_path / "vae")
    assert "variant" not in meta and not model.categorical


def test_a_warmup_and_the_exponential_schedule_enter_the_fingerprint_only_when_used(mnist_file, tmp_path) -> None:
    from vaebench.run.fingerprint import run_fingerprint

    plain = make_tiny_params(train={"epochs": 2})
    warm = make_tiny_params(train={"epochs": 2, "kl_warmup": 2, "schedule": "exponential", "lr_end": 1e-4})
    assert "kl_warmup" not in run_fingerprint("vae", 2, plain)["train"]
    assert run_fingerprint("vae", 2, warm)["train"]["kl_warmup"] == 2
    assert run_fingerprint("vae", 2, warm)["train"]["lr_end"] == 1e-4
    fit("vae", 2, plain, mnist_file, tmp_path / "plain", log=_quiet, progress=False)
    fit("vae", 2, warm, mnist_file, tmp_path / "warm", log=_quiet, progress=False)
    assert (tmp_path / "plain" / WEIGHTS).read_bytes() != (tmp_path / "warm" / WEIGHTS).read_bytes()


def test_the_warmup_weighs_the_kl_of_the_training_bound() -> None:
    torch.manual_seed(8)
    model = VAE(3, hidden=16)
    x = (torch.rand(5, 784) < 0.3).float()
    with torch.no_grad():
        full, half = (training_bound(model, Variant(), x, x, None, Draws(Stream.EPOCH, 1, 1), torch.device("cpu"),
                                     1.0, w) for w in (1.0, 0.5))
        mu, logvar = model.encode(x)
    assert torch.allclose(half - full, 0.5 * bounds.gaussian_kl(mu, logvar), atol=1e-4)


def test_the_console_names_the_bound_a_variant_trains_on(mnist_file, tmp_path) -> None:
    """A beta-VAE's or an IWAE objective's curve is not the ELBO: the epoch line says what it is."""
    params = _with_variants({"b4": {"beta": 4.0}, "iw": {"objective": "iwae"}}, train={"epochs": 1})
    said = {}
    for model in ("vae", "b4", "iw"):
        lines: list[str] = []
        fit(model, 2, params, mnist_file, tmp_path / model, log=lines.append, progress=False)
        said[model] = next(ln for ln in lines if " epoch 1/1: " in ln)
    assert ": train ELBO -" in said["vae"]
    assert ": train objective (beta 4) -" in said["b4"]
    assert ": train IWAE bound (k=5) -" in said["iw"]
    assert all("held-out ELBO" in line for line in said.values())  # the held-out curve is the true ELBO
