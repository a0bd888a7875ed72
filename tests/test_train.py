"""fit(): it learns, it is deterministic, it resumes, it stops on divergence; checkpoints refuse bad input."""

from __future__ import annotations

import dataclasses
import math
import pickle
import types
import re
import shutil
from pathlib import Path

import pytest
import torch

from vaebench import io as vio
from vaebench.run.callbacks import Callback
from vaebench.run.checkpoint import SIDECAR, WEIGHTS, CheckpointError, load_checkpoint
from vaebench.run.data import binarize_test, binarize_validation, load_mnist
from vaebench.run.score import load_current, load_data
from vaebench.run.fit import TrainingDiverged, fit, heldout_elbo
from vaebench.run.optim import FlatRMSprop


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
    from vaebench.core.models import build_model

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
    from conftest import make_tiny_params

    params = make_tiny_params(train={"epochs": 3})
    live = tmp_path / "logs" / "vae-2"
    fit("vae", 2, params, mnist_file, tmp_path / "m", live_dir=live, log=_quiet, progress=False)
    curves = {p.relative_to(live): p.read_bytes() for p in live.rglob("*") if p.is_file()}
    assert any(p.suffix == ".tsv" for p in curves) and all(len(b.splitlines()) == 4 for p, b in curves.items()
                                                          if p.suffix == ".tsv")  # header + 3 epochs
    # the two curves under the names the report reads (vaebench/report/build.py::log_files) and dvc.yaml plots
    assert {p.as_posix() for p in curves if p.suffix == ".tsv"} == {
        "plots/metrics/train/elbo.tsv", "plots/metrics/heldout/elbo.tsv"}

    other = make_tiny_params(train={"epochs": 3, "seed": 1})
    with pytest.raises(KeyboardInterrupt):  # the process dies in epoch 3, after two epochs' curves were logged
        fit("vae", 2, other, mnist_file, tmp_path / "m2", live_dir=live, log=_quiet, progress=False,
            callbacks=[Dies(after=2)])
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


# ---------------------------------------------------------------- resumption, in process


class Dies(Callback):
    """Kills fit() (KeyboardInterrupt) after the steps of epoch `after + 1`, before its state is saved."""

    def __init__(self, after: int) -> None:
        self.after = after

    def steps_end(self, run, epoch: int) -> None:
        if epoch == self.after:
            raise KeyboardInterrupt


def _interrupted(params, mnist_file, out: Path, live: Path | None, after: int, monkeypatch) -> None:
    """fit() killed (KeyboardInterrupt) during epoch `after + 1`: `after` epochs are resumable."""
    with pytest.raises(KeyboardInterrupt):
        fit("vae", 2, params, mnist_file, out, live_dir=live, log=_quiet, progress=False, callbacks=[Dies(after)])


def test_a_resumed_fit_ends_with_the_bytes_and_curves_of_an_unbroken_one(trained, mnist_file, tmp_path, monkeypatch) -> None:
    params, ref, ref_result = trained  # 5 epochs, never interrupted (no curves)
    ref_live = tmp_path / "ref-live"
    fit("vae", 2, params, mnist_file, tmp_path / "ref", live_dir=ref_live, log=_quiet, progress=False)
    out, live = tmp_path / "run", tmp_path / "live"
    _interrupted(params, mnist_file, out, live, after=2, monkeypatch=monkeypatch)
    assert not (out / WEIGHTS).exists() and not live.exists()
    lines: list[str] = []
    result = fit("vae", 2, params, mnist_file, out, live_dir=live, log=lines.append, progress=False)
    assert result.resumed_from == 2 and result.history == ref_result.history
    assert (out / WEIGHTS).read_bytes() == (ref / WEIGHTS).read_bytes()
    assert (out / SIDECAR).read_bytes() == (ref / SIDECAR).read_bytes()
    # the curves replay the two finished epochs: the same files as a run that never stopped
    curves = lambda d: {p.relative_to(d): p.read_bytes() for p in d.rglob("*") if p.is_file()}  # noqa: E731
    assert curves(live) == curves(ref_live) and curves(live)
    assert not out.with_name("run.partial").exists()
    # what it said: where it resumed, what it would run, each epoch with the time left, and what it ran
    assert lines[0] == f"resuming vae z=2 after epoch 2 from {out.with_name('run.partial')}"
    # 1,000 images less the 100 held out for the monitoring curve: 9 steps of 100
    assert lines[1].startswith("training vae z=2: epochs 3-5 of 5, 9 steps of 100 images each; about ")
    h = ref_result.history
    for line, row in zip(lines[2:5], h[2:]):
        assert line.startswith(f"vae z=2 epoch {row['epoch']}/5: train ELBO {row['train_elbo']:.2f}, "
                               f"held-out ELBO {row['heldout_elbo']:.2f}")
    assert "left)" in lines[2] and "left)" in lines[3] and "left" not in lines[4]  # none after the last epoch
    assert re.fullmatch(rf"vae z=2: ran epochs 3-5 \(3 of 5, resumed after epoch 2\) in \d+ s -> {re.escape(str(out))}",
                        lines[5])
    assert len(lines) == 6


@pytest.mark.parametrize("damage", ["fingerprint", "state-bytes", "state-json"])
def test_resume_state_that_cannot_be_trusted_is_ignored(trained, mnist_file, tmp_path, monkeypatch, damage) -> None:
    """State of another configuration, or damaged state, means: start afresh (and end with the same bytes)."""
    params, ref, _ = trained
    out = tmp_path / "run"
    partial = out.with_name("run.partial")
    _interrupted(params, mnist_file, out, None, after=2, monkeypatch=monkeypatch)
    meta = vio.read_json(partial / "state.json")
    if damage == "fingerprint":
        vio.write_json(partial / "state.json", {**meta, "fingerprint": {**meta["fingerprint"], "zdim": 3}})
    elif damage == "state-bytes":
        blob = (partial / "state.safetensors").read_bytes()
        (partial / "state.safetensors").write_bytes(blob[:-1] + bytes([blob[-1] ^ 1]))
    else:
        (partial / "state.json").write_text("{not json")
    lines: list[str] = []
    result = fit("vae", 2, params, mnist_file, out, log=lines.append, progress=False)
    assert result.resumed_from == 0 and not any(line.startswith("resuming") for line in lines)
    assert lines[0].startswith("training vae z=2: epochs 1-5 of 5,")
    assert (out / WEIGHTS).read_bytes() == (ref / WEIGHTS).read_bytes()


# ---------------------------------------------------------------- small pieces


def test_duration_reads_in_seconds_minutes_or_hours() -> None:
    from vaebench.run.callbacks import duration as _duration

    assert [_duration(s) for s in (0.4, 59, 119, 120, 150, 7199, 7200, 9000)] == [
        "0 s", "59 s", "119 s", "2 min", "2 min", "120 min", "2.0 h", "2.5 h"]


def test_seconds_per_step_leaves_the_model_as_it_was(trained) -> None:
    from vaebench.run.fit import seconds_per_step

    params, out, _ = trained
    model, _ = load_checkpoint(out)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.rand(300, 784).round()
    rng = torch.get_rng_state()
    t = seconds_per_step(model, params.train, x, None)
    assert 0 < t < 5
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert torch.equal(torch.get_rng_state(), rng)  # the global generator (Xavier init draws from it) untouched


def test_optimizer_and_device_choices() -> None:
    from vaebench.run.fit import make_optimizer, resolve_device
    from vaebench.run.optim import FlatAdam, FlatRMSprop

    p = [torch.nn.Parameter(torch.zeros(2))]
    rms, adam = make_optimizer("rmsprop", p, 0.01), make_optimizer("adam", p, 0.02, eps=1e-4)
    # torch's arithmetic over preallocated state (run/optim.py; tests/test_optim.py compares the bytes with torch's)
    # the settings vaebench sets, beside torch's other group defaults at the values these optimisers implement
    assert type(rms) is FlatRMSprop and {k: rms.defaults[k] for k in ("lr", "alpha", "eps", "momentum", "centered",
                                                                       "weight_decay")} == {
        "lr": 0.01, "alpha": 0.99, "eps": 1e-8, "momentum": 0, "centered": False, "weight_decay": 0}
    assert type(adam) is FlatAdam and {k: adam.defaults[k] for k in ("lr", "betas", "eps", "amsgrad", "weight_decay")} == {
        "lr": 0.02, "betas": (0.9, 0.999), "eps": 1e-4, "amsgrad": False, "weight_decay": 0}
    with pytest.raises(ValueError, match="unknown optimizer 'sgd'"):
        make_optimizer("sgd", p, 0.1)
    assert resolve_device("cpu") == torch.device("cpu")
    if not torch.cuda.is_available():
        assert resolve_device("auto") == torch.device("cpu")
        with pytest.raises(RuntimeError, match="train.device is 'cuda' but no CUDA device is available"):
            resolve_device("cuda")


def test_heldout_elbo_of_no_images_is_nan(trained) -> None:
    model, _ = load_checkpoint(trained[1])
    assert torch.isnan(torch.tensor(heldout_elbo(model, torch.zeros(0, 784), None, 0)))


# ---------------------------------------------------------------- what fit says and leaves behind


def test_the_plan_line_states_epochs_steps_and_the_time_they_take(mnist_file, tmp_path, monkeypatch) -> None:
    """1,000 images less the 100 held out for the monitoring curve, in batches of 100: 9 steps an epoch. A step
    timed at 31 ms (pinned here: the timing itself is tested above) gives 3 epochs x 9 steps x 0.031 s = 0.837 s."""
    import vaebench.run.fit as tr
    from conftest import make_tiny_params

    import vaebench.run.callbacks as cb

    monkeypatch.setattr(tr, "seconds_per_step", lambda *a, **k: 0.031)
    monkeypatch.setattr(cb, "duration", lambda s: f"<{s:.4f}>")  # the seconds fit computed, unrounded
    ticks = iter(range(100, 1000))  # a clock that advances 1 s per reading: start, loop start, each epoch's end
    clock = types.SimpleNamespace(perf_counter=lambda: float(next(ticks)))
    monkeypatch.setattr(tr, "time", clock)
    monkeypatch.setattr(cb, "time", clock)
    lines: list[str] = []
    out = tmp_path / "m"
    res = fit("vae", 2, make_tiny_params(train={"epochs": 3, "batch_size": 100}), mnist_file, out,
              log=lines.append, progress=False)
    # readings 100 (start) .. 105 (end): 5 s in all
    assert res.seconds == 5.0 and lines[-1] == f"vae z=2: ran epochs 1-3 (3 of 3) in 5 s -> {out}"
    rms = f"; RMSprop: {FlatRMSprop.update_path()}"  # the fused kernel where this machine builds it
    assert ("training vae z=2: epochs 1-3 of 3, 9 steps of 100 images each; about <0.8370> "
            f"(a step timed at 31 ms{rms})") in lines
    # after epoch 1: 1 s per epoch so far, 2 epochs left; after epoch 2: (3 - 1) s / 2 epochs x 1 left; then none
    epochs = [ln for ln in lines if " epoch " in ln and "ELBO" in ln]
    assert [ln.split("ELBO")[-1].split(")")[0].split("(")[-1] if "left" in ln else "" for ln in epochs] == [
        "about <2.0000> left", "about <1.0000> left", ""]
    assert epochs[-1].endswith(tuple("0123456789"))  # the last epoch's line ends with its ELBO
    params = make_tiny_params(train={"epochs": 3, "batch_size": 100, "seed": 1})

    class DiesAfterSaving(Callback):  # runs after fit's own callbacks: the last epoch's state is saved
        def epoch_end(self, run, epoch, row) -> None:
            if epoch + 1 == run.epochs:
                raise KeyboardInterrupt

    def killed(by: Callback, folder: str) -> list[str]:
        """Run fit until `by` kills it, then rerun it; the rerun's lines."""
        with pytest.raises(KeyboardInterrupt):
            fit("vae", 2, params, mnist_file, tmp_path / folder, log=_quiet, progress=False, callbacks=[by])
        rerun: list[str] = []
        fit("vae", 2, params, mnist_file, tmp_path / folder, log=rerun.append, progress=False)
        return rerun

    # killed during epoch 3, before its state was saved: the rerun plans the 1 epoch left (9 steps, 0.279 s)
    rerun = killed(Dies(after=2), "r")
    assert "training vae z=2: epochs 3-3 of 3, 9 steps of 100 images each; about <0.2790> " \
           f"(a step timed at 31 ms{rms})" in rerun
    assert " ran epoch 3 (1 of 3, resumed after epoch 2) in " in rerun[-1]
    # killed after the last epoch's state, before the checkpoint: nothing is left to plan or time
    lines = killed(DiesAfterSaving(), "f")
    assert not any(line.startswith("training ") for line in lines)
    assert any("ran no epoch (0 of 3, resumed after epoch 3)" in line for line in lines)


def test_fit_shows_a_progress_bar_unless_asked_not_to(mnist_file, tmp_path, capsys) -> None:
    from conftest import make_tiny_params

    fit("vae", 2, make_tiny_params(train={"epochs": 2}), mnist_file, tmp_path / "m", log=_quiet)
    err = capsys.readouterr().err
    # named by the run, counting epochs of the total, with the last epoch's ELBOs; erased when done
    assert "vae z=2:" in err and "/2 [" in err and "epoch/s" in err or "s/epoch" in err, err
    assert "train=-" in err and "heldout=-" in err, err
    assert err.endswith("\r") and "\n" not in err
    fit("vae", 2, make_tiny_params(train={"epochs": 2}), mnist_file, tmp_path / "n", log=_quiet, progress=False)
    assert capsys.readouterr().err == ""


def test_leftover_curves_of_an_untrusted_state_are_not_carried_over(mnist_file, tmp_path) -> None:
    from conftest import make_tiny_params

    junk = tmp_path / "m.partial" / "live" / "plots" / "metrics" / "old.tsv"
    junk.parent.mkdir(parents=True)
    junk.write_text("step\told\n0\t1\n")  # no state.json beside it: nothing to resume from
    live = tmp_path / "deep" / "logs" / "vae-2"  # its parents do not exist yet
    fit("vae", 2, make_tiny_params(train={"epochs": 1}), mnist_file, tmp_path / "m", live_dir=live, log=_quiet,
        progress=False)
    # a second, finished run replaces the curves (not nested inside the old folder)
    fit("vae", 2, make_tiny_params(train={"epochs": 1, "seed": 3}), mnist_file, tmp_path / "m2", live_dir=live,
        log=_quiet, progress=False)
    # exactly dvclive's summary and the two curves: no old file, no dvc.yaml or report of dvclive's own
    assert sorted(p.relative_to(live).as_posix() for p in live.rglob("*") if p.is_file()) == [
        "metrics.json", "plots/metrics/heldout/elbo.tsv", "plots/metrics/train/elbo.tsv"]


def test_the_checkpoint_names_the_data_it_was_trained_on(mnist_file, tmp_path) -> None:
    from conftest import make_tiny_params

    params = make_tiny_params(train={"epochs": 1})
    res = fit("vae", 2, params, mnist_file, tmp_path / "m", log=_quiet, progress=False)
    _, meta = load_checkpoint(res.checkpoint)
    data = load_mnist(mnist_file, params.data.train_subset, params.data.test_subset)
    assert meta["data_manifest_sha256"] == data.manifest_sha256


def test_the_heldout_curve_scores_the_configured_monitoring_bits(mnist_file, tmp_path) -> None:
    """The last point of the held-out curve is the final model's held-out ELBO on the monitoring bits of
    data.binarize (here `threshold`, not the default): with train.monitor = validation (the default) the last
    train.heldout training images; with `test`, the first train.heldout test images."""
    from conftest import make_tiny_params

    data = load_mnist(mnist_file, 1000, 500)
    for monitor in ("validation", "test"):
        params = make_tiny_params(train={"epochs": 2, "heldout": 50, "monitor": monitor}, data={"binarize": "threshold"})
        res = fit("vae", 2, params, mnist_file, tmp_path / monitor, log=_quiet, progress=False)
        model, _ = load_checkpoint(res.checkpoint)
        seed = params.train.seed
        if monitor == "validation":
            bits, other = (binarize_validation(data.train_x[-50:], "threshold", seed),
                           binarize_validation(data.train_x[-50:], "dynamic", seed))
        else:
            bits, other = (binarize_test(data.test_x, "threshold", params.data.test_seed)[:50],
                           binarize_test(data.test_x, "dynamic", params.data.test_seed)[:50])
        assert res.history[-1]["heldout_elbo"] == heldout_elbo(model.eval(), bits, None, seed), monitor
        assert res.history[-1]["heldout_elbo"] != heldout_elbo(model, other, None, seed), monitor
    one = heldout_elbo(model, bits[:1], None, 0)  # one image is a mean of one, not "no images"
    assert math.isfinite(one) and math.isnan(heldout_elbo(model, bits[:0], None, 0))
    # the validation bits are a draw of their own: not the test stream's bits of the same images
    grey = data.train_x[-50:]
    assert not torch.equal(binarize_validation(grey, "dynamic", 0), binarize_test(grey, "dynamic", 0))
    assert not torch.equal(binarize_validation(grey, "dynamic", 0), binarize_validation(grey, "dynamic", 1))


def _curves(result) -> list[tuple[float, float]]:
    return [(row["train_elbo"], row["heldout_elbo"]) for row in result.history]


@pytest.mark.parametrize("model", ["vae", "cvae"])
def test_with_validation_monitoring_no_test_image_reaches_training_or_its_curves(mnist_file, tmp_path, model) -> None:
    """train.monitor = validation: the test images replaced by noise (and their labels shuffled) give the same
    weights and the same curves, byte for byte. With `test` the held-out curve reads the test images, so the
    same replacement moves it (the weights still not: nothing is selected on the curve)."""
    from conftest import make_tiny_params

    data = load_mnist(mnist_file, 1000, 500)
    g = torch.Generator().manual_seed(7)
    noisy = dataclasses.replace(data, test_x=torch.rand(data.test_x.shape, generator=g),
                                test_y=torch.randint(0, 10, data.test_y.shape, generator=g))
    for monitor in ("validation", "test"):
        params = make_tiny_params(train={"epochs": 2, "monitor": monitor})
        real = fit(model, 2, params, None, tmp_path / monitor / "real", log=_quiet, progress=False, data=data)
        fake = fit(model, 2, params, None, tmp_path / monitor / "fake", log=_quiet, progress=False, data=noisy)
        assert (real.checkpoint / WEIGHTS).read_bytes() == (fake.checkpoint / WEIGHTS).read_bytes(), monitor
        assert [r["train_elbo"] for r in real.history] == [r["train_elbo"] for r in fake.history], monitor
        if monitor == "validation":
            assert _curves(real) == _curves(fake) and real.history == fake.history
        else:
            assert all(a["heldout_elbo"] != b["heldout_elbo"] for a, b in zip(real.history, fake.history))


def test_the_validation_images_are_the_last_heldout_training_images(mnist_file, tmp_path, monkeypatch) -> None:
    """train.monitor = validation, 1,000 training images, heldout 100: the steps see exactly the first 900
    (each epoch binarises those and no other), the curve the last 100. So noise in place of the last 100
    moves the held-out curve but not one byte of the weights, while a change to image 900 (the last one
    trained on) changes the weights."""
    import vaebench.run.fit as tr
    from conftest import make_tiny_params

    data = load_mnist(mnist_file, 1000, 500)
    params = make_tiny_params(train={"epochs": 2})
    assert params.train.monitor == "validation" and params.train.heldout == 100
    real_binarize, binarised = tr.training_bits, []

    def spy(x, *args, **kwargs):
        binarised.append(x.clone())
        return real_binarize(x, *args, **kwargs)

    monkeypatch.setattr(tr, "training_bits", spy)
    ref = fit("vae", 2, params, None, tmp_path / "ref", log=_quiet, progress=False, data=data)
    assert len(binarised) == 2 and all(torch.equal(x, data.train_x[:900]) for x in binarised)
    model, meta = load_checkpoint(ref.checkpoint)
    held = binarize_validation(data.train_x[900:], params.data.binarize, params.train.seed)
    assert ref.history[-1]["heldout_elbo"] == heldout_elbo(model.eval(), held, None, params.train.seed)
    assert meta["train"]["monitor"] == "validation"  # the fingerprint names it (omitted for `test` only)

    g = torch.Generator().manual_seed(3)
    tail = data.train_x.clone()
    tail[900:] = torch.rand(100, 784, generator=g)
    moved = fit("vae", 2, params, None, tmp_path / "tail", log=_quiet, progress=False,
                data=dataclasses.replace(data, train_x=tail))
    assert (moved.checkpoint / WEIGHTS).read_bytes() == (ref.checkpoint / WEIGHTS).read_bytes()
    assert [r["train_elbo"] for r in moved.history] == [r["train_elbo"] for r in ref.history]
    assert all(a["heldout_elbo"] != b["heldout_elbo"] for a, b in zip(moved.history, ref.history))

    last = data.train_x.clone()
    last[899] = torch.rand(784, generator=g)
    trained_on = fit("vae", 2, params, None, tmp_path / "last", log=_quiet, progress=False,
                     data=dataclasses.replace(data, train_x=last))
    assert (trained_on.checkpoint / WEIGHTS).read_bytes() != (ref.checkpoint / WEIGHTS).read_bytes()

    # monitor = test trains on all 1,000
    binarised.clear()
    fit("vae", 2, make_tiny_params(train={"epochs": 2, "monitor": "test"}), None, tmp_path / "test", log=_quiet,
        progress=False, data=data)
    assert len(binarised) == 2 and all(torch.equal(x, data.train_x) for x in binarised)


def test_the_train_elbo_is_the_mean_over_every_training_image_once(mnist_file, tmp_path, monkeypatch) -> None:
    """Each epoch's train ELBO averages the per-image ELBOs the optimiser saw: every one of the 900 training
    images once (9 batches of 100; the last 100 of the 1,000 are the validation images), the sum divided by 900."""
    import vaebench.core.bounds as bounds
    from conftest import make_tiny_params

    real, seen = bounds.beta_elbo, []

    def recording(*args, **kwargs):
        out = real(*args, **kwargs)
        if torch.is_grad_enabled():  # a training step (the held-out ELBO runs without gradients)
            seen.append(out.detach().double())
        return out

    monkeypatch.setattr(bounds, "beta_elbo", recording)
    monkeypatch.setattr("vaebench.run.fit.seconds_per_step", lambda *a, **k: 0.01)  # its own steps are not the run's
    res = fit("vae", 2, make_tiny_params(train={"epochs": 2, "batch_size": 100}), mnist_file, tmp_path / "m",
              log=_quiet, progress=False)
    assert [len(b) for b in seen] == [100] * 18
    for epoch in range(2):
        per_image = torch.cat(seen[9 * epoch:9 * epoch + 9])  # (900,)
        # float32 batch means summed in float64: equal to ~1e-8 relative; the +1/900 of a wrong start is 1e-3
        assert res.history[epoch]["train_elbo"] == pytest.approx(per_image.sum().item() / 900, rel=0, abs=1e-4)


def test_divergence_names_the_epoch_and_step_it_happened_at(mnist_file, tmp_path, monkeypatch) -> None:
    import vaebench.core.bounds as bounds
    from conftest import make_tiny_params

    real, calls = bounds.beta_elbo, []

    def nan_at_step_12(*args, **kwargs):  # 9 steps an epoch (900 training images): the 12th is epoch 2, step 3
        out = real(*args, **kwargs)
        if torch.is_grad_enabled():
            calls.append(1)
            if len(calls) == 12:
                return out * float("nan")
        return out

    monkeypatch.setattr(bounds, "beta_elbo", nan_at_step_12)
    monkeypatch.setattr("vaebench.run.fit.seconds_per_step", lambda *a, **k: 0.01)  # its own steps are not the run's
    with pytest.raises(TrainingDiverged, match=r"vae z=2: loss is nan at epoch 2, step 3; "):
        fit("vae", 2, make_tiny_params(train={"epochs": 3, "batch_size": 100}), mnist_file, tmp_path / "m",
            log=_quiet, progress=False)


def test_durations_read_in_seconds_minutes_and_hours() -> None:
    from vaebench.run.callbacks import duration as _duration

    assert [_duration(s) for s in (0.4, 119, 120, 7199, 7200)] == ["0 s", "119 s", "2 min", "120 min", "2.0 h"]
    assert _duration(8820.72) == "2.5 h"  # 2.4502 h: an hour of 3,601 s would give 2.4


def test_a_missing_cuda_device_is_named(monkeypatch) -> None:
    from vaebench.run.fit import resolve_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(RuntimeError, match=r"^train.device is 'cuda' but no CUDA device is available$"):
        resolve_device("cuda")
    assert resolve_device("auto") == torch.device("cpu") == resolve_device("cpu")


def test_the_burda_setting_trains_tanh_units_with_adam_at_the_staged_rates(mnist_file, tiny_params, tmp_path, monkeypatch) -> None:
    """The literature setting's pieces reach the loop: tanh units, Adam's epsilon, and the rate of each epoch
    (read back from the resumable state the loop saves), and a resumed staged run ends with the bytes of an
    unbroken one (the rate is a function of the epoch, not of the process)."""
    params = tiny_params(model={"activation": "tanh"},
                         train={"optimizer": "adam", "eps": 1e-4, "schedule": "burda", "epochs": 4})
    ref = tmp_path / "ref"
    fit("vae", 2, params, mnist_file, ref, log=_quiet, progress=False)
    model, meta = load_checkpoint(ref)
    assert meta["activation"] == "tanh" and [type(m).__name__ for m in model.encoder] == \
        ["Linear", "Tanh", "Linear", "Tanh", "Linear"]

    seen: list[tuple[int, float, float]] = []

    class Record(Callback):  # each finished epoch's rate and epsilon, as the optimiser holds them
        def epoch_end(self, run, epoch, row) -> None:
            seen.append((epoch + 1, run.opt.param_groups[0]["lr"], run.opt.param_groups[0]["eps"]))

    out = tmp_path / "run"
    # killed during epoch 2 (stage 1), resumed into stage 1: the rate comes from the epoch, not the saved state
    with pytest.raises(KeyboardInterrupt):
        fit("vae", 2, params, mnist_file, out, log=_quiet, progress=False, callbacks=[Record(), Dies(1)])
    fit("vae", 2, params, mnist_file, out, log=_quiet, progress=False, callbacks=[Record()])  # resumes: epochs 2-4
    # epoch 1 at 1e-3, epochs 2-4 (stage 1) at 1e-3 * 10^(-1/7), before and after the resumption
    stage1 = 1e-3 * 10 ** (-1 / 7)
    assert seen == [(1, 1e-3, 1e-4), (2, stage1, 1e-4), (3, stage1, 1e-4), (4, stage1, 1e-4)]
    assert (out / WEIGHTS).read_bytes() == (ref / WEIGHTS).read_bytes()
    # and the schedule matters: a constant rate gives other weights
    flat = tmp_path / "flat"
    fit("vae", 2, tiny_params(model={"activation": "tanh"}, train={"optimizer": "adam", "eps": 1e-4, "epochs": 4}),
        mnist_file, flat, log=_quiet, progress=False)
    assert (flat / WEIGHTS).read_bytes() != (ref / WEIGHTS).read_bytes()
