"""The typer CLI through CliRunner: the happy paths and every refusal (one line, non-zero exit, nothing written)."""

from __future__ import annotations

import json
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
    ckpt = root / "models" / "vae-2"
    r = invoke("eval", "--zdim", 2, "--model", "vae", "--params", params, "--data", data, "--ckpt", ckpt, "--quiet")
    assert r.exit_code == 0, r.output
    assert "training vae z=2 first" in r.output
    assert "vae z=2 on 500 test images" in r.output
    for row in ("test -ELBO", "IWAE NLL (k=20)", "exact NLL (quadrature)", "active units"):
        assert row in r.output
    assert (ckpt / "model.safetensors").exists()
    # the second time the checkpoint is current: no training, and the same numbers as JSON
    r2 = invoke("eval", "--zdim", 2, "--params", params, "--data", data, "--ckpt", ckpt, "--json", "--quiet", "--no-train")
    assert r2.exit_code == 0, r2.output
    assert "training" not in r2.output
    m = json.loads(r2.stdout)
    assert m["model"] == "vae" and m["zdim"] == 2 and m["k"] == 20 and m["n_images"] == 500
    assert f"{m['neg_elbo']:.2f}" in r.output and f"{m['iwae_nll']:.2f}" in r.output
    # the IWAE NLL is an upper bound of the exact NLL: above it, up to 4 of its own seed SDs and the grid's
    # stated error (here 0.37 nats, nearly all seed noise at k = 20; the exact NLL sat 4.9 nats below)
    slack = 4 * m["iwae_nll_seed_sd"] + m["quad_refine_delta"] + m["quad_widen_delta"]
    assert m["quad_nll"] <= m["iwae_nll"] + slack, (m["quad_nll"], m["iwae_nll"], slack)


def test_eval_k_override_and_out_file(project, tmp_path) -> None:
    root, params, data = project
    ckpt = root / "models" / "vae-2"
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
    invoke("eval", "--zdim", 2, "--params", params, "--data", data, "--ckpt", root / "models" / "vae-2", "--quiet")
    before = _files(root)
    r = invoke("eval", "--zdim", 3, "--params", params, "--data", data, "--ckpt", root / "models" / "vae-2", "--no-train")
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
    for cmd in ("download", "train", "eval", "report"):
        assert cmd in r.output
