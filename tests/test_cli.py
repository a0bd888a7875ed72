"""The typer CLI through CliRunner: the happy paths and every refusal (one line, non-zero exit, nothing written)."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from vaebench.cli import app
from vaebench.config import to_dict

runner = CliRunner()


@pytest.fixture(scope="module")
def project(tmp_path_factory, mnist_file):
    """A directory with a tiny params.yaml; models go to <dir>/models as in the pipeline."""
    from conftest import make_tiny_params

    root = tmp_path_factory.mktemp("proj")
    params = root / "params.yaml"
    params.write_text(yaml.safe_dump(to_dict(make_tiny_params())))
    return root, params, mnist_file


def invoke(*args: str):
    return runner.invoke(app, [str(a) for a in args])


def _files(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if p.is_file()}


def test_eval_trains_a_missing_checkpoint_then_prints_the_table(project) -> None:
    root, params, data = project
    ckpt = root / "models" / "vae-2-0"
    r = invoke("eval", "--zdim", 2, "--model", "vae", "--params", params, "--data", data, "--ckpt", ckpt, "--quiet")
    assert r.exit_code == 0, r.output
    assert "training vae z=2 first" in r.output
    # before training: how many epochs and roughly how long; after: the epochs it ran
    # 1,000 training images less the 100 held out for the monitoring curve (train.monitor: validation)
    assert "training vae z=2: epochs 1-2 of 2, 9 steps of 100 images each; about " in r.output
    assert "vae z=2: ran epochs 1-2 (2 of 2) in " in r.output
    assert "vae z=2 on 500 test images: nats per image, lower is better; ± is one standard error" in r.output
    for row in ("test -ELBO", "IWAE NLL (k=20)", "exact NLL (quadrature)", "active units",
                "IWAE NLL sd across evaluation seeds"):  # not the training seeds: one run's own spread
        assert row in r.output
    # the thesis reports VAE z=2 as 157 (see vaebench/report/references.py)
    assert re.search(r"^  the thesis \(its 'quality'\) +157  ", r.output, re.M), r.output
    assert (ckpt / "model.safetensors").exists()
    # the second time the checkpoint is current: no training, and the same numbers as JSON
    r2 = invoke("eval", "--zdim", 2, "--params", params, "--data", data, "--ckpt", ckpt, "--json", "--quiet", "--no-train")
    assert r2.exit_code == 0, r2.output
    assert "training" not in r2.output
    m = json.loads(r2.stdout)
    assert m["model"] == "vae" and m["zdim"] == 2 and m["k"] == 20 and m["n_images"] == 500 and m["train_seed"] == 0
    assert f"{m['neg_elbo']:.2f}" in r.output and f"{m['iwae_nll']:.2f}" in r.output
    # the IWAE NLL is an upper bound of the exact NLL: above it, up to 4 of its own seed SDs and the grid's
    # stated error (here 0.37 nats, nearly all seed noise at k = 20; the exact NLL sat 4.9 nats below)
    slack = 4 * m["iwae_nll_eval_sd"] + m["quad_mean_error"]
    assert m["quad_nll"] <= m["iwae_nll"] + slack, (m["quad_nll"], m["iwae_nll"], slack)


def test_eval_k_override_and_out_file(project, tmp_path) -> None:
    root, params, data = project
    ckpt = root / "models" / "vae-2-0"
    invoke("eval", "--zdim", 2, "--params", params, "--data", data, "--ckpt", ckpt, "--quiet")
    out = tmp_path / "m.json"
    r = invoke("eval", "--zdim", 2, "--k", 3, "--params", params, "--data", data, "--ckpt", ckpt,
               "--out", out, "--quiet", "--no-train")
    assert r.exit_code == 0, r.output
    assert json.loads(out.read_text())["k"] == 3


def test_cvae_eval_reports_the_marginal(project) -> None:
    root, params, data = project
    r = invoke("eval", "--zdim", 2, "--model", "cvae", "--params", params, "--data", data,
               "--ckpt", root / "models" / "cvae-2", "--quiet", "--json")
    assert r.exit_code == 0, r.output
    m = json.loads(r.stdout[r.stdout.index("{"):])
    assert m["model"] == "cvae" and m["k_marginal"] == 5
    assert m["iwae_nll_marginal"] <= m["iwae_nll"] + 2.302585093 + 1e-6  # p(x) >= p(x|y) / 10


@pytest.mark.parametrize(
    "args, message",
    [
        (["eval", "--zdim", "0"], "error: --zdim: must be >= 1, got 0"),
        (["eval", "--zdim", "-1"], "error: --zdim: must be >= 1, got -1"),
        (["eval", "--model", "gan"], "error: --model: 'gan' is not one of vae, cvae"),
        (["eval", "--zdim", "2", "--k", "0"], "error: --k: must be >= 1, got 0"),
        (["train", "--zdim", "0"], "error: --zdim: must be >= 1, got 0"),
        (["train", "--model", "ae"], "error: --model: 'ae' is not one of vae, cvae"),
        (["download", "--source", "ftp"], "error: --source: 'ftp' is not one of auto, mirrors, pypi"),
    ],
)
def test_bad_arguments_one_line_exit_2_nothing_written(project, args, message) -> None:
    root, params, data = project
    before = _files(root)
    r = invoke(*args, "--params", params, "--data", data) if args[0] != "download" else invoke(
        *args, "--out", root / "dl" / "mnist.npz")
    assert r.exit_code == 2, r.output
    assert r.output.strip() == message
    assert _files(root) == before


def test_non_integer_zdim_is_refused_by_typer() -> None:
    r = invoke("eval", "--zdim", "a")
    assert r.exit_code == 2
    assert "Error: Invalid value for '--zdim'" in r.output and "valid integer" in r.output


def test_missing_checkpoint_with_no_train(project) -> None:
    root, params, data = project
    before = _files(root)
    r = invoke("eval", "--zdim", 7, "--params", params, "--data", data, "--ckpt", root / "models" / "vae-7", "--no-train")
    assert r.exit_code == 2
    assert r.output.count("\n") == 1 and r.output.startswith("error: ") and "not found" in r.output
    assert _files(root) == before


def test_mismatched_checkpoint_is_refused(project) -> None:
    root, params, data = project
    invoke("eval", "--zdim", 2, "--params", params, "--data", data, "--ckpt", root / "models" / "vae-2-0", "--quiet")
    before = _files(root)
    r = invoke("eval", "--zdim", 3, "--params", params, "--data", data, "--ckpt", root / "models" / "vae-2-0", "--no-train")
    assert r.exit_code == 2
    assert r.output.strip().endswith("checkpoint is for zdim=2, not the requested 3")
    assert r.output.count("\n") == 1
    assert _files(root) == before


def test_bad_params_file_is_one_line(project, tmp_path) -> None:
    _, _, data = project
    bad = tmp_path / "params.yaml"
    bad.write_text("train:\n  lr: -1\n")
    r = invoke("eval", "--zdim", 2, "--params", bad, "--data", data)
    assert r.exit_code == 2
    assert r.output.strip() == "error: train.lr: must be > 0, got -1.0"


def test_broken_data_file_is_one_line_exit_1(project, tmp_path) -> None:
    root, params, _ = project
    broken = tmp_path / "mnist.npz"
    broken.write_bytes(b"PK\x03\x04 truncated")
    r = invoke("eval", "--zdim", 2, "--params", params, "--data", broken, "--ckpt", tmp_path / "m")
    assert r.exit_code == 1
    assert r.output.startswith(f"error: {broken}") and "dvc repro download" in r.output
    assert not (tmp_path / "m").exists()


def test_help_lists_the_commands() -> None:
    r = invoke("--help")
    assert r.exit_code == 0
    for cmd in ("check", "download", "train", "eval", "figures", "runs", "compare", "report"):
        assert f"  {cmd} " in r.output


def test_version_names_vaebench_and_torch() -> None:
    from importlib.metadata import version

    import torch

    r = invoke("--version")
    assert r.exit_code == 0
    assert r.output.strip() == f"vaebench {version('vaebench')} (torch {torch.__version__})"


# ---------------------------------------------------------------- nothing of the user's is overwritten


def _z5_model(project) -> tuple[Path, dict[Path, bytes]]:
    """A folder holding a trained z=5 model, and its files' bytes."""
    root, params, data = project
    folder = root / "models" / "mine"
    if not (folder / "model.json").exists():
        r = invoke("train", "--zdim", 5, "--params", params, "--data", data, "--out", folder, "--quiet")
        assert r.exit_code == 0, r.output
    return folder, {p: p.read_bytes() for p in folder.iterdir()}


def test_eval_never_trains_over_a_checkpoint_of_another_configuration(project) -> None:
    root, params, data = project
    folder, files = _z5_model(project)
    before = _files(root)
    r = invoke("eval", "--zdim", 2, "--params", params, "--data", data, "--ckpt", folder, "--quiet")
    assert r.exit_code == 2, r.output
    assert r.output.count("\n") == 1 and r.output.startswith(f"error: {folder}: holds a checkpoint for zdim=5, "
                                                               "not the requested 2; refusing to overwrite it")
    assert f"vaebench train --model vae --zdim 2 --out {folder} --overwrite" in r.output  # how to, on purpose
    assert _files(root) == before and {p: p.read_bytes() for p in folder.iterdir()} == files
    assert not folder.with_name("mine.partial").exists()


def test_train_refuses_another_configuration_unless_told_to_overwrite(project, tmp_path) -> None:
    root, params, data = project
    folder, files = _z5_model(project)
    copy = tmp_path / "copy"
    shutil.copytree(folder, copy)
    other = tmp_path / "params.yaml"  # the same model, trained for one epoch more
    p = yaml.safe_load(params.read_text())
    p["train"]["epochs"] = 3
    other.write_text(yaml.safe_dump(p))
    r = invoke("train", "--zdim", 5, "--params", other, "--data", data, "--out", copy, "--quiet")
    assert r.exit_code == 2
    assert r.output.strip() == (f"error: {copy}: holds a checkpoint for train.epochs=2, not the requested 3; "
                                "refusing to overwrite it (pass --overwrite to replace it, or another --out)")
    assert {q.name: q.read_bytes() for q in copy.iterdir()} == {q.name: b for q, b in files.items()}
    r = invoke("train", "--zdim", 5, "--params", other, "--data", data, "--out", copy, "--quiet", "--overwrite")
    assert r.exit_code == 0, r.output
    assert json.loads((copy / "model.json").read_text())["epochs_done"] == 3


def test_a_damaged_checkpoint_of_this_configuration_is_retrained(project, tmp_path) -> None:
    """The one thing eval may train over: this very configuration's checkpoint, with truncated weights."""
    root, params, data = project
    ckpt = tmp_path / "vae-2"
    r = invoke("train", "--zdim", 2, "--params", params, "--data", data, "--out", ckpt, "--quiet")
    assert r.exit_code == 0, r.output
    good = (ckpt / "model.safetensors").read_bytes()
    (ckpt / "model.safetensors").write_bytes(good[:500])
    r = invoke("eval", "--zdim", 2, "--params", params, "--data", data, "--ckpt", ckpt, "--quiet")
    assert r.exit_code == 0, r.output
    assert "sha256 does not match its sidecar" in r.output and "training vae z=2 first" in r.output
    assert (ckpt / "model.safetensors").read_bytes() == good  # retrained to the same bytes


def test_a_checkpoint_trained_on_other_data_is_not_replaced(project, tmp_path) -> None:
    root, params, data = project
    folder, files = _z5_model(project)
    copy = tmp_path / "copy"
    shutil.copytree(folder, copy)
    meta = json.loads((copy / "model.json").read_text())
    (copy / "model.json").write_text(json.dumps({**meta, "data_manifest_sha256": "0" * 64}))
    r = invoke("train", "--zdim", 5, "--params", params, "--data", data, "--out", copy, "--quiet")
    assert r.exit_code == 2
    assert f"holds a checkpoint for data_manifest_sha256='{'0' * 64}', not the requested " in r.output


def test_first_difference_walks_nested_settings() -> None:
    from vaebench.run.fingerprint import first_difference

    assert first_difference({"a": 1, "t": {"lr": 0.1, "b": [1, 2]}}, {"a": 1, "t": {"lr": 0.1, "b": [1, 2]}}) is None
    assert first_difference({"a": 1, "t": {"lr": 0.1}}, {"a": 1, "t": {"lr": 0.2}}) == ("t.lr", 0.1, 0.2)
    assert first_difference({"a": 1}, {"a": 1, "b": 2}) == ("b", None, 2)  # missing on the checkpoint's side
    assert first_difference({"a": 1, "c": 3}, {"a": 1}) == ("c", 3, None)  # a setting params no longer has
    assert first_difference({"t": 5}, {"t": {"lr": 1}}) == ("t", 5, {"lr": 1})


def test_a_folder_with_files_that_are_not_a_checkpoint_is_left_alone(project, tmp_path) -> None:
    _, params, data = project
    (tmp_path / "model.json").write_text('{"my": "notes"}')
    r = invoke("eval", "--zdim", 2, "--params", params, "--data", data, "--ckpt", tmp_path, "--quiet")
    assert r.exit_code == 2
    assert "is not a vaebench checkpoint; refusing to overwrite it" in r.output
    assert (tmp_path / "model.json").read_text() == '{"my": "notes"}' and len(list(tmp_path.iterdir())) == 1


def test_runs_lists_checkpoints_their_numbers_and_whether_they_are_current(project, tmp_path) -> None:
    root, params, data = project
    _z5_model(project)
    ckpt = root / "models" / "vae-2-0"
    metrics = tmp_path / "runs"
    r = invoke("eval", "--zdim", 2, "--params", params, "--data", data, "--ckpt", ckpt, "--quiet",
               "--out", metrics / "vae-2-0.json")
    assert r.exit_code == 0, r.output
    m = json.loads((metrics / "vae-2-0.json").read_text())
    (root / "models" / "vae-9.partial").mkdir(exist_ok=True)
    r = invoke("runs", "--params", params, "--models", root / "models", "--metrics", metrics, "--data", data)
    assert r.exit_code == 0, r.output
    lines = r.output.splitlines()
    row = next(ln for ln in lines if ln.startswith("vae-2-0 "))  # the grid's run: cell vae-2, training seed 0
    assert row.split()[1:5] == ["vae", "z=2", "2", f"{m['neg_elbo']:.2f}"] and f"{m['iwae_nll']:.2f} (k=20)" in row
    assert row.endswith("current")
    assert any(ln.startswith("mine ") and " vae z=5 " in ln and ln.endswith("current (not in grid)") for ln in lines)
    missing = [ln.split(": ", 1)[1].split(", ") for ln in lines if ln.startswith("not trained yet: ")]
    assert all("vae-2-0" not in names for names in missing), missing
    assert f"interrupted: {root / 'models' / 'vae-9.partial'}" in r.output
    # after a change to params.yaml the same checkpoint is stale, and says why
    other = tmp_path / "params.yaml"
    p = yaml.safe_load(params.read_text())
    p["train"]["lr"] = 0.002
    other.write_text(yaml.safe_dump(p))
    r = invoke("runs", "--params", other, "--models", root / "models", "--metrics", metrics, "--data", data)
    assert "stale: train.lr=0.001, params.yaml says 0.002" in r.output
    (root / "models" / "vae-9.partial").rmdir()
    # a folder named for one run holding another, a checkpoint without weights, no data manifest to check
    mine, files = _z5_model(project)
    odd, broken = tmp_path / "models" / "vae-7", tmp_path / "models" / "vae-8"
    for folder in (odd, broken):
        shutil.copytree(mine, folder)
    (broken / "model.safetensors").unlink()
    r = invoke("runs", "--params", params, "--models", tmp_path / "models", "--metrics", metrics,
               "--data", tmp_path / "nowhere.npz")
    rows = {ln.split()[0]: ln for ln in r.output.splitlines() if ln.startswith("vae-")}
    assert rows["vae-7"].endswith("current; the folder's name says vae-7, its model is vae-5-0 "
                                  "(data not checked: no data manifest) (not in grid)"), rows["vae-7"]
    assert "broken: no model.safetensors" in rows["vae-8"]


# ---------------------------------------------------------------- importance samples that cannot fit


def test_importance_samples_that_cannot_fit_are_refused_in_one_line(project, tmp_path) -> None:
    """eval.k of 10^12 would need terabytes whatever eval.chunk is: `check` and `eval --k` say so and
    name what fits, instead of numpy's allocation traceback (or minutes of silence)."""
    from vaebench.resources import IWAE_BYTES, physical_memory

    root, params, data = project
    huge = yaml.safe_load(params.read_text())
    huge["eval"]["k"] = 10**12
    bad = tmp_path / "huge.yaml"
    bad.write_text(yaml.safe_dump(huge))
    r = invoke("check", "--params", bad)
    fits = physical_memory() // (2 * IWAE_BYTES)  # the tiny grid's widest latent: z = 2
    assert r.exit_code == 2 and r.output.count("\n") == 1, r.output
    assert r.output.startswith("error: eval.k: 1,000,000,000,000 importance samples need about ")
    assert "at latent width 2" in r.output and r.output.rstrip().endswith(f"at most k = {fits:,} fits")
    invoke("train", "--zdim", 2, "--params", params, "--data", data, "--out", root / "models" / "vae-2-0", "--quiet")
    before = _files(root)
    r = invoke("eval", "--zdim", 2, "--k", 10**12, "--params", params, "--data", data, "--ckpt", root / "models" / "vae-2-0",
               "--no-train", "--quiet")
    assert r.exit_code == 2 and r.output.startswith("error: --k: 1,000,000,000,000 importance samples"), r.output
    assert _files(root) == before


def test_quiet_scoring_says_how_far_it_is() -> None:
    from vaebench.run.score import Heartbeat

    lines: list[str] = []
    beat = Heartbeat(total=1000, log=lines.append, every=0.0)
    beat(250)
    beat(750)  # done: nothing more to say
    assert len(lines) == 1 and lines[0].startswith("IWAE: 250 of 1,000 samples decoded (25%), about ")


# ---------------------------------------------------------------- the committed numbers in the terminal


def test_results_prints_the_committed_summary_without_any_model(monkeypatch) -> None:
    repo = Path(__file__).resolve().parents[1]
    summary = json.loads((repo / "metrics" / "summary.json").read_text())
    monkeypatch.chdir(repo)
    r = invoke("results")
    assert r.exit_code == 0, r.output
    lines = r.output.splitlines()
    assert lines[0].split()[:4] == ["run", "-ELBO", "IWAE", "NLL"] and max(map(len, lines)) < 120  # fits a terminal
    row = next(ln for ln in lines if ln.startswith("vae-25 ")).split()
    assert row[1:3] == [f"{summary['vae']['z25']['neg_elbo']:.2f}", f"{summary['vae']['z25']['iwae_nll']:.2f}"]
    runs = [ln.split()[0] for ln in lines[1:]]
    assert runs[0] == "vae-2" and runs.index("vae-50") < runs.index("cvae-2")  # by family, then latent size
    rows = json.loads(invoke("results", "--json").output)["metrics/summary.json"]
    assert {r["run"] for r in rows} == {f"{f}-{z[1:]}" for f in summary for z in summary[f]}


def test_results_compares_two_revisions_with_their_difference(tmp_path, monkeypatch) -> None:
    import subprocess

    def git(*a: str) -> None:
        subprocess.run(["git", *a], cwd=tmp_path, check=True, capture_output=True,
                       env={**__import__("os").environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@e",
                            "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@e"})

    (tmp_path / "metrics").mkdir()
    git("init", "-q", "-b", "main")
    for iwae in (95.25, 94.5):
        (tmp_path / "metrics" / "summary.json").write_text(json.dumps(
            {"vae": {"z25": {"neg_elbo": 100.0, "iwae_nll": iwae}}, "beta4": {"z20": {"iwae_nll": 105.0}}}))
        git("add", "-A")
        git("commit", "-qm", str(iwae))
    monkeypatch.chdir(tmp_path)
    r = invoke("results", "--rev", "HEAD~1", "--rev", "HEAD")
    assert r.exit_code == 0, r.output
    assert r.output.splitlines()[0].split() == ["run", "-ELBO", "HEAD~1", "-ELBO", "HEAD", "diff", "IWAE", "NLL",
                                                "HEAD~1", "IWAE", "NLL", "HEAD", "diff"]
    assert r.output.splitlines()[1].split() == ["vae-25", "100.00", "100.00", "+0.00", "95.25", "94.50", "-0.75"]
    assert r.output.splitlines()[2].split() == ["beta4-20", "-", "-", "-", "105.00", "105.00", "+0.00"]
    bad = invoke("results", "--rev", "nope")
    assert bad.exit_code == 2 and bad.output.startswith("error: --rev: nope has no metrics/summary.json")


def test_runs_shows_the_numbers_of_a_model_scored_ad_hoc(project, tmp_path, monkeypatch) -> None:
    import os
    import subprocess

    """`vaebench eval` without --out keeps its metrics beside a checkpoint outside the pipeline (eval.json),
    and `vaebench runs` shows them; into a pipeline's own checkpoint folder (DVC hashes it whole) it writes
    nothing."""
    root, params, data = project
    monkeypatch.chdir(root)
    models = root / "models"
    # trains models/vae-3-0: the default folder names the training seed (train.seed 0), as the grid's do
    r = invoke("eval", "--zdim", 3, "--params", params, "--data", data, "--quiet", "--json")
    assert r.exit_code == 0, r.output
    m = json.loads(r.output[r.output.index("{"):])
    assert json.loads((models / "vae-3-0" / "eval.json").read_text()) == m and not (models / "vae-3").exists()
    r = invoke("runs", "--params", params, "--models", models, "--metrics", tmp_path / "none", "--data", data)
    row = next(ln for ln in r.output.splitlines() if ln.startswith("vae-3-0 "))
    assert f"{m['neg_elbo']:.2f}" in row and f"{m['iwae_nll']:.2f} (k={m['k']})" in row
    # a stage's output (here the one stage of a real DVC repository): left alone, DVC hashes it whole
    repo = tmp_path / "repo"
    (repo / "models").mkdir(parents=True)
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    subprocess.run(["dvc", "init", "-q"], cwd=repo, check=True, env={**os.environ, "DVC_NO_ANALYTICS": "1"})
    (repo / "dvc.yaml").write_text(yaml.safe_dump({"stages": {"train": {"cmd": "true", "outs": ["models/vae-2"]}}}))
    shutil.copytree(models / "vae-3-0", repo / "models" / "vae-2")
    (repo / "models" / "vae-2" / "eval.json").unlink()
    r = invoke("eval", "--zdim", 3, "--params", params, "--data", data, "--quiet", "--no-train",
               "--ckpt", repo / "models" / "vae-2")
    assert r.exit_code == 0, r.output
    assert not (repo / "models" / "vae-2" / "eval.json").exists()


# ---------------------------------------------------------------- training seeds


def test_run_names_the_training_seed_and_the_default_folders(project, tmp_path, monkeypatch) -> None:
    """`--run vae-2-1` trains, scores and draws training seed 1 (train.seed set from the name), into the folders
    the pipeline names the run: models/vae-2-1, plots/runs/vae-2-1 (its figure files keep the cell's name);
    without a seed, train.seed's folder (models/vae-2-0)."""
    _, params, data = project
    monkeypatch.chdir(tmp_path)
    r = invoke("train", "--run", "vae-2-1", "--params", params, "--data", data, "--quiet")
    assert r.exit_code == 0, r.output
    seed1 = json.loads((tmp_path / "models" / "vae-2-1" / "model.json").read_text())
    assert seed1["train"]["seed"] == 1 and seed1["model"] == "vae" and seed1["zdim"] == 2
    r = invoke("train", "--run", "vae-2", "--params", params, "--data", data, "--quiet")  # train.seed: 0
    assert r.exit_code == 0, r.output
    seed0 = json.loads((tmp_path / "models" / "vae-2-0" / "model.json").read_text())
    assert seed0["train"]["seed"] == 0 and seed0["weights_sha256"] != seed1["weights_sha256"]
    assert sorted(p.name for p in (tmp_path / "models").iterdir()) == ["vae-2-0", "vae-2-1"]
    # scored from its own folder, under its own seed: no training
    r = invoke("eval", "--run", "vae-2-1", "--params", params, "--data", data, "--quiet", "--no-train", "--json")
    assert r.exit_code == 0, r.output
    m = json.loads(r.stdout[r.stdout.index("{"):])
    assert m["train_seed"] == 1 and m["weights_sha256"] == seed1["weights_sha256"]
    r = invoke("figures", "--run", "vae-2-1", "--params", params, "--data", data)
    assert r.exit_code == 0, r.output
    assert (tmp_path / "plots" / "runs" / "vae-2-1" / "samples_vae-2.png").exists()
    # the seed-1 checkpoint is current for params.yaml at seed 1; the grid (grid.seeds [0]) does not hold it
    r = invoke("runs", "--params", params, "--models", tmp_path / "models", "--metrics", tmp_path / "none",
               "--data", data)
    rows = {ln.split()[0]: ln for ln in r.output.splitlines() if ln.startswith("vae-")}
    assert rows["vae-2-0"].endswith(" current") and rows["vae-2-1"].endswith(" current (not in grid)"), r.output
    # a folder named for one seed holding another is named as such
    shutil.copytree(tmp_path / "models" / "vae-2-0", tmp_path / "models" / "vae-2-7")
    r = invoke("runs", "--params", params, "--models", tmp_path / "models", "--metrics", tmp_path / "none",
               "--data", data)
    row = next(ln for ln in r.output.splitlines() if ln.startswith("vae-2-7 "))
    assert row.endswith("current; the folder's name says vae-2-7, its model is vae-2-0 (not in grid)"), row


@pytest.mark.parametrize(("args", "message"), [
    (["eval", "--run", "vae-2-1", "--zdim", "2"],
     "error: --run: names the model and the latent size itself; drop --model and --zdim"),
    (["eval", "--run", "vae-2-x"], "error: --run: 'vae-2-x' is not <name>-<latent size>[-<seed>], e.g. vae-5-0 or beta4-20"),
    (["train", "--run", "vae-2-01"],
     "error: --run: 'vae-2-01' is not <name>-<latent size>[-<seed>], e.g. vae-5-0 or beta4-20"),
    (["train", "--run", "vae-2-4294967296"], "--run: 'vae-2-4294967296' names training seed 4294967296; seeds are below 2**32"),  # 32-bit seeds
])
def test_a_bad_run_name_is_one_line_and_writes_nothing(project, args, message) -> None:
    root, params, data = project
    before = _files(root)
    r = invoke(*args, "--params", params, "--data", data, "--quiet")
    assert r.exit_code == 2, r.output
    assert r.output.count("\n") == 1 and r.output.startswith("error: ") and r.output.strip().endswith(message)
    assert _files(root) == before


def test_runs_names_the_literature_grid_as_its_pipeline_does(tmp_path) -> None:
    """The literature pipelines name their runs without a seed (vae-50) and read ../data/mnist.npz: `vaebench
    runs` there listed vae-50-0 as "not trained yet" and the carried vae-50 as "not in grid"."""
    from vaebench.config import load_params
    from vaebench.report.listing import list_runs, pipeline_layout

    root = Path(__file__).resolve().parents[1]
    assert pipeline_layout(root / "params.yaml") == (True, root / "data/mnist.npz")
    seeded, data = pipeline_layout(root / "literature" / "params.yaml")
    assert not seeded and data.resolve() == (root / "data/mnist.npz").resolve()
    assert pipeline_layout(tmp_path / "params.yaml") == (True, None)  # no dvc.yaml beside it
    text = list_runs(load_params(root / "literature" / "params.yaml"), tmp_path / "models", tmp_path / "metrics",
                     tmp_path / "none.npz", seeded)
    assert text.splitlines()[-1] == "not trained yet: vae-50, cvae-50"
