"""A real git + DVC project holding vaebench's pipeline on a tiny grid, for tests that run DVC itself."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]

TINY = {
    "grid": {"models": ["vae", "cvae"], "zdims": [2, 3], "seeds": [0]},
    "data": {"source": "auto", "binarize": "dynamic", "test_seed": 1234, "train_subset": 1000, "test_subset": 300},
    "model": {"hidden": 32, "activation": "relu"},
    "train": {"optimizer": "rmsprop", "lr": 0.001, "batch_size": 100, "epochs": 1, "heldout": 100,
              "monitor": "validation", "device": "cpu"},
    "eval": {"k": 10, "k_marginal": 3, "seed": 0, "chunk": 50000, "spread_seeds": 2, "spread_images": 100,
             "quad_n": 40, "quad_half_width": 6.0, "enum_max": 5000},
    "exact": {"zdims": [2], "k": 25, "seeds": [0]},
    "variants": {"defs": {}, "runs": []},  # tests/test_variants.py runs a grid with variants
}
CELLS = [f"{m}-{z}" for m in TINY["grid"]["models"] for z in TINY["grid"]["zdims"]]  # a figure file's name: vae-2
# the runs, as DVC's matrix names their stages and folders: <model>-<zdim>-<training seed>, train@vae-2-0, models/vae-2-0
ITEMS = [f"{cell}-{seed}" for cell in CELLS for seed in TINY["grid"]["seeds"]]


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
    shutil.copy(REPO / ".dvcignore", root / ".dvcignore.repo")  # after `dvc init`, which writes its own
    shutil.copytree(REPO / "vaebench", root / "vaebench", ignore=shutil.ignore_patterns("__pycache__"))
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    (root / "metrics" / "exact").mkdir(parents=True)
    shutil.copy(REPO / "metrics" / "exact" / ".keep", root / "metrics" / "exact" / ".keep")
    run(root, "git", "init", "-q", "-b", "main")
    run(root, "dvc", "init", "-q")
    (root / ".dvcignore.repo").replace(root / ".dvcignore")
    run(root, "git", "add", "-A")
    run(root, "git", "commit", "-qm", "init")
    return root
