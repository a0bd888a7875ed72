"""The real DVC pipeline in a temporary git repository, on a tiny configuration. No mocks: git and dvc run."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from vaebench import io as vio

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow

TINY = {
    "grid": {"models": ["vae", "cvae"], "zdims": [2, 3]},
    "data": {"source": "auto", "binarize": "dynamic", "test_seed": 1234, "train_subset": 1000, "test_subset": 300},
    "model": {"hidden": 32},
    "train": {"optimizer": "rmsprop", "lr": 0.001, "batch_size": 100, "epochs": 1, "seed": 0, "heldout": 100,
              "device": "cpu"},
    "eval": {"k": 10, "k_marginal": 3, "seed": 0, "chunk": 50000, "spread_seeds": 2, "spread_images": 100,
             "quad_n": 40, "quad_half_width": 6.0},
    "exact": {"zdims": [2], "k": 25},
}
ITEMS = [f"{m}-{z}" for m in TINY["grid"]["models"] for z in TINY["grid"]["zdims"]]


def run(cwd: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",  # the `vaebench` script
        "DVC_NO_ANALYTICS": "1",
        "DVC_SITE_CACHE_DIR": str(cwd.parent / "dvc-site-cache"),
        "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com",
        "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com",
        "OMP_NUM_THREADS": "1",  # tiny models: one thread is fastest and avoids spin-waiting
    }
    proc = subprocess.run(list(args), cwd=cwd, env=env, capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def make_project(root: Path, params: dict) -> Path:
    """A git + DVC repository holding the pipeline, the package sources it depends on, and `params`."""
    root.mkdir()
    shutil.copy(REPO / "dvc.yaml", root / "dvc.yaml")
    shutil.copy(REPO / ".gitignore", root / ".gitignore")
    shutil.copytree(REPO / "vaebench", root / "vaebench", ignore=shutil.ignore_patterns("__pycache__"))
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    run(root, "git", "init", "-q", "-b", "main")
    run(root, "dvc", "init", "-q")
    run(root, "git", "add", "-A")
    run(root, "git", "commit", "-qm", "init")
    return root


def declared_outputs(root: Path) -> list[Path]:
    """Every output, metric and plot that `dvc.yaml` declares for this grid, as files or directories."""
    paths = [root / "data/mnist.npz", root / "data/mnist.json", root / "metrics/summary.json",
             root / "metrics/table.md", root / "metrics/table.csv", root / "plots"]
    for item in ITEMS:
        paths += [root / "models" / item / "model.safetensors", root / "models" / item / "model.json",
                  root / "logs" / item / "plots" / "metrics", root / "metrics" / "runs" / f"{item}.json"]
    paths += [root / "metrics" / "exact" / f"{m}-{z}.json" for m in TINY["grid"]["models"] for z in TINY["exact"]["zdims"]]
    return paths


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    root = make_project(tmp_path_factory.mktemp("pipe") / "proj", TINY)
    # one item first: only it and what it needs run
    out = run(root, "dvc", "repro", "train@vae-2").stdout
    assert "Running stage 'download'" in out and "Running stage 'train@vae-2'" in out
    assert "train@vae-3" not in out and "train@cvae-2" not in out
    assert (root / "models/vae-2/model.safetensors").exists() and not (root / "models/vae-3").exists()
    # then the whole pipeline
    out = run(root, "dvc", "repro").stdout
    assert "Running stage 'train@vae-2'" not in out  # already done, not repeated
    return root


def test_every_declared_output_exists(project: Path) -> None:
    for path in declared_outputs(project):
        assert path.exists(), path
        if path.is_file():
            assert path.stat().st_size > 0, path
    assert len(list((project / "plots").glob("*.png"))) >= 6


def test_tables_hold_one_finite_row_per_item(project: Path) -> None:
    import pandas as pd

    table = pd.read_csv(project / "metrics/table.csv")
    assert sorted(f"{m}-{z}" for m, z in zip(table["model"], table["zdim"])) == sorted(ITEMS)
    for col in ("neg_elbo", "iwae_nll"):
        assert table[col].notna().all() and (table[col] > 0).all() and (table[col] < 1000).all(), col
    summary = json.loads((project / "metrics/summary.json").read_text())
    assert set(summary) == {"vae", "cvae"} and set(summary["cvae"]) == {"z2", "z3"}
    assert isinstance(summary["cvae"]["z2"]["iwae_nll_marginal"], float)


def test_second_repro_has_nothing_to_do(project: Path) -> None:
    out = run(project, "dvc", "repro").stdout
    assert "Running stage" not in out
    assert "up to date" in out.lower()
    assert "changed" not in run(project, "dvc", "status").stdout


def _hashes(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): vio.sha256_file(p)
            for d in ("models", "metrics", "plots", "logs", "data") for p in sorted((root / d).rglob("*")) if p.is_file()}


def test_forced_rerun_is_byte_identical(project: Path) -> None:
    before = _hashes(project)
    assert any(k.endswith("model.safetensors") for k in before) and any(k.endswith(".png") for k in before)
    lock = (project / "dvc.lock").read_bytes()
    out = run(project, "dvc", "repro", "-f").stdout
    assert "Running stage 'train@cvae-3'" in out  # everything really ran again
    assert _hashes(project) == before
    assert (project / "dvc.lock").read_bytes() == lock


def test_branch_that_changes_a_setting_shows_in_metrics_diff(project: Path) -> None:
    run(project, "git", "add", "-A")
    run(project, "git", "commit", "-qm", "baseline results")
    run(project, "git", "checkout", "-qb", "more-samples")
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["eval"]["k"] = 30  # evaluation only: training must not re-run
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    out = run(project, "dvc", "repro").stdout
    assert "Running stage 'evaluate@vae-2'" in out and "Running stage 'report'" in out
    assert "Running stage 'train@" not in out and "Running stage 'download'" not in out
    diff = json.loads(run(project, "dvc", "metrics", "diff", "main", "--json").stdout)
    summary_diff = diff["metrics/summary.json"]
    assert "vae.z2.iwae_nll" in summary_diff
    changed = summary_diff["vae.z2.iwae_nll"]
    assert changed["old"] != changed["new"] and changed["diff"] == pytest.approx(changed["new"] - changed["old"])
    assert "vae.z2.neg_elbo" not in summary_diff  # the ELBO does not depend on k
    run(project, "git", "checkout", "-q", "--", ".")
    run(project, "git", "checkout", "-q", "main")


def test_changing_exact_k_reruns_only_the_exact_stages_and_the_report(project: Path) -> None:
    run(project, "git", "checkout", "-qb", "exact-k")
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["exact"]["k"] = 40
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    out = run(project, "dvc", "repro").stdout
    assert "Running stage 'exact@vae-2'" in out and "Running stage 'exact@cvae-2'" in out
    assert "Running stage 'report'" in out
    assert "Running stage 'evaluate@" not in out and "Running stage 'train@" not in out
    assert json.loads((project / "metrics/exact/vae-2.json").read_text())["k"] == 40
    diff = json.loads(run(project, "dvc", "metrics", "diff", "main", "--json").stdout)["metrics/summary.json"]
    assert "vae.z2.iwae_nll_exact_k" in diff and "vae.z2.iwae_nll" not in diff
    run(project, "git", "checkout", "-q", "--", ".")
    run(project, "git", "checkout", "-q", "main")
