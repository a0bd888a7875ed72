"""fit(): it learns, it is deterministic, it resumes, it stops on divergence; checkpoints refuse bad input."""

from __future__ import annotations

import pickle
import re
import shutil
from pathlib import Path

import pytest
import torch

from vaebench import io as vio
from vaebench.checkpoint import SIDECAR, WEIGHTS, CheckpointError, load_checkpoint
from vaebench.data import binarize_test, load_mnist
from vaebench.runs import load_current, load_data
from vaebench.train import TrainingDiverged, fit, heldout_elbo


def _quiet(_: str) -> None:
    pass


@pytest.fixture(scope="module")
def trained(tmp_path_factory, mnist_file):
    """A tiny VAE trained for 5 epochs, and its history."""
    from conftest import make_tiny_params

    params = make_tiny_params(train={"epochs": 5})
    out = tmp_path_factory.mktemp("ckpt") / "vae-2"
    result = fit("vae", 2, params, mnist_file, out, log=_quiet, progress=False)
    return params, out, result


def test_training_lowers_the_loss(trained, mnist_file) -> None:
    params, out, result = trained
    h = result.history
    assert [r["epoch"] for r in h] == [1, 2, 3, 4, 5]
    assert h[-1]["train_elbo"] > h[0]["train_elbo"] + 5  # nats per image: a clear improvement
    assert h[-1]["heldout_elbo"] > h[0]["heldout_elbo"]
    # the trained model beats an untrained one of the same architecture on held-out bits
    model, meta = load_checkpoint(out)
    data = load_mnist(mnist_file, test_subset=200)
    x = binarize_test(data.test_x, "dynamic", params.data.test_seed)
    from vaebench.models import build_model

    torch.manual_seed(0)
    fresh = build_model("vae", 2, params.model.hidden)
    assert heldout_elbo(model, x, None, 0) > heldout_elbo(fresh, x, None, 0) + 50
    assert meta["epochs_done"] == 5 and meta["final"] == h[-1]
    assert not out.with_name(out.name + ".partial").exists()  # resume state is cleaned up


def test_same_seed_same_bytes_other_seed_other_bytes(trained, mnist_file, tmp_path) -> None:
    params, out, _ = trained
    again = tmp_path / "again"
    fit("vae", 2, params, mnist_file, again, log=_quiet, progress=False)
    assert (again / WEIGHTS).read_bytes() == (out / WEIGHTS).read_bytes()
    assert (again / SIDECAR).read_bytes() == (out / SIDECAR).read_bytes()
    from conftest import make_tiny_params

    other = tmp_path / "other"
    fit("vae", 2, make_tiny_params(train={"epochs": 5, "seed": 1}), mnist_file, other, log=_quiet, progress=False)
    assert (other / WEIGHTS).read_bytes() != (out / WEIGHTS).read_bytes()


def test_cvae_trains_and_is_conditional(mnist_file, tiny_params, tmp_path) -> None:
    result = fit("cvae", 3, tiny_params(), mnist_file, tmp_path / "cvae-3", log=_quiet, progress=False)
    model, meta = load_checkpoint(result.checkpoint)
    assert model.conditional and model.zdim == 3 and meta["model"] == "cvae"
    z = torch.zeros(2, 3)
    assert not torch.allclose(model.decode(z, torch.tensor([1, 1])), model.decode(z, torch.tensor([1, 7])))


def test_divergence_stops_with_epoch_step_and_cause_and_keeps_the_checkpoint(trained, mnist_file, tmp_path) -> None:
    params, out, _ = trained
    ckpt = tmp_path / "vae-2"
    shutil.copytree(out, ckpt)
    before = {p.name: p.read_bytes() for p in ckpt.iterdir()}
    from conftest import make_tiny_params

    wild = make_tiny_params(train={"epochs": 5, "lr": 1e12})
    with pytest.raises(TrainingDiverged, match=r"at epoch \d+, step \d+; the learning rate \(1000000000000\.0\)"):
        fit("vae", 2, wild, mnist_file, ckpt, log=_quiet, progress=False)
    assert {p.name: p.read_bytes() for p in ckpt.iterdir()} == before


def test_curves_appear_whole_or_not_at_all(trained, mnist_file, tmp_path, monkeypatch) -> None:
    """dvclive appends to its .tsv files in place: it writes into the resume state, moved whole at the end."""
    import vaebench.train as tr
    from conftest import make_tiny_params

    params = make_tiny_params(train={"epochs": 3})
    live = tmp_path / "logs" / "vae-2"
    fit("vae", 2, params, mnist_file, tmp_path / "m", live_dir=live, log=_quiet, progress=False)
    curves = {p.relative_to(live): p.read_bytes() for p in live.rglob("*") if p.is_file()}
    assert any(p.suffix == ".tsv" for p in curves) and all(len(b.splitlines()) == 4 for p, b in curves.items()
                                                          if p.suffix == ".tsv")  # header + 3 epochs

    real_save, calls = tr.save_state, []

    def killed_after_epoch_2(*args, **kwargs):  # the process dies after two epochs' curves were logged
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        real_save(*args, **kwargs)

    monkeypatch.setattr(tr, "save_state", killed_after_epoch_2)
    other = make_tiny_params(train={"epochs": 3, "seed": 1})
    with pytest.raises(KeyboardInterrupt):
        fit("vae", 2, other, mnist_file, tmp_path / "m2", live_dir=live, log=_quiet, progress=False)
    assert {p.relative_to(live): p.read_bytes() for p in live.rglob("*") if p.is_file()} == curves


# ---------------------------------------------------------------- checkpoints refused


def test_checkpoint_for_another_configuration_is_refused(trained, mnist_file) -> None:
    params, out, _ = trained
    mnist = load_data(params, mnist_file)
    model, _ = load_current("vae", 2, params, mnist, out)  # the right one loads
    with pytest.raises(CheckpointError, match=r"checkpoint is for zdim=2, not the requested 3"):
        load_current("vae", 3, params, mnist, out)
    with pytest.raises(CheckpointError, match=r"checkpoint is for model='vae', not the requested 'cvae'"):
        load_current("cvae", 2, params, mnist, out)
    from conftest import make_tiny_params

    with pytest.raises(CheckpointError, match=r"checkpoint is for train=.*not the requested"):
        load_current("vae", 2, make_tiny_params(train={"epochs": 6}), mnist, out)


def _copy(out: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "ckpt"
    shutil.copytree(out, dst)
    return dst


def test_truncated_weights_are_refused(trained, tmp_path) -> None:
    ckpt = _copy(trained[1], tmp_path)
    w = ckpt / WEIGHTS
    w.write_bytes(w.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match="sha256 does not match its sidecar"):
        load_checkpoint(ckpt)


def test_a_file_that_is_not_safetensors_is_refused(trained, tmp_path) -> None:
    ckpt = _copy(trained[1], tmp_path)
    junk = b"this is not a safetensors file" * 10
    (ckpt / WEIGHTS).write_bytes(junk)
    meta = vio.read_json(ckpt / SIDECAR)
    vio.write_json(ckpt / SIDECAR, {**meta, "weights_sha256": vio.sha256_bytes(junk)})  # even with a matching hash
    with pytest.raises(CheckpointError, match="not a valid safetensors file"):
        load_checkpoint(ckpt)


class _Boom:
    def __reduce__(self):  # what a malicious "checkpoint" would do when unpickled
        import os

        return (os.system, (f"touch {_Boom.marker}",))


def test_a_pickle_is_never_unpickled(trained, tmp_path) -> None:
    ckpt = _copy(trained[1], tmp_path)
    _Boom.marker = tmp_path / "pwned"
    blob = pickle.dumps({"state": _Boom()})
    (ckpt / WEIGHTS).write_bytes(blob)
    meta = vio.read_json(ckpt / SIDECAR)
    vio.write_json(ckpt / SIDECAR, {**meta, "weights_sha256": vio.sha256_bytes(blob)})
    with pytest.raises(CheckpointError, match="not a valid safetensors file"):
        load_checkpoint(ckpt)
    assert not _Boom.marker.exists()
    torch_zip = tmp_path / "torch.pt"  # a torch.save file is a pickle too
    torch.save({"w": torch.zeros(2)}, torch_zip)
    (ckpt / WEIGHTS).write_bytes(torch_zip.read_bytes())
    meta = vio.read_json(ckpt / SIDECAR)
    vio.write_json(ckpt / SIDECAR, {**meta, "weights_sha256": vio.sha256_file(torch_zip)})
    with pytest.raises(CheckpointError, match="not a valid safetensors file"):
        load_checkpoint(ckpt)


def test_missing_or_broken_sidecar(trained, tmp_path) -> None:
    ckpt = _copy(trained[1], tmp_path)
    (ckpt / SIDECAR).write_text("{not json")
    with pytest.raises(CheckpointError, match="unreadable sidecar"):
        load_checkpoint(ckpt)
    (ckpt / SIDECAR).unlink()
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(ckpt)


def test_no_torch_load_without_weights_only_anywhere() -> None:
    """Nothing in the package may unpickle a file it did not verify."""
    root = Path(__file__).resolve().parents[1] / "vaebench"
    for path in root.glob("*.py"):
        text = path.read_text()
        assert not re.search(r"(?<!safetensors\.)torch\.load\(", text) or "weights_only=True" in text, path
        assert "pickle.load(" not in text and "pickle.loads(" not in text, path
