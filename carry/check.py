"""Is every output of the carried stages in carry/? Reads dvc.lock files and the remote's folder only (no DVC).

    python carry/check.py [--stages carry/three_seed_stages.txt]

Why: `dvc push -r carry` of 100+ stages can take longer than the end of a session leaves, while it writes
each object early; this says within a second which locked outputs (files, and every file of a directory
output) the remote already holds, so a push can be stopped once nothing is missing. Exit 1 if something is.
A stage name is as `vaebench-grid stages --done` prints it (`train@vae-5-1`, `literature/dvc.yaml:evaluate@vae-50`).
An output git tracks (the report's tables and figures: `cache: false` in dvc.yaml, never pushed) travels with git,
not here, and is not asked for.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def _object(remote: Path, md5: str) -> Path:
    """Where DVC 3 keeps an object in a local remote: files/md5/<first 2 hex>/<the other 30>[.dir]."""
    return remote / "files" / "md5" / md5[:2] / md5[2:]


def missing_outputs(stages: list[str], root: Path = ROOT, remote: Path = HERE) -> list[str]:
    """`stage: path` of each output locked in `root`'s dvc.lock files (each file of a directory output) that the
    local remote `remote` lacks."""
    locks: dict[Path, dict] = {}
    in_git = subprocess.run(["git", "ls-files", "-z"], cwd=root, capture_output=True, text=True,
                            check=True).stdout.split("\0")
    missing = []
    for stage in stages:
        lock_file, name = (stage.split(":", 1) if ":" in stage else ("dvc.yaml", stage))
        lock_path = root / Path(lock_file).with_suffix(".lock")
        if lock_path not in locks:
            if not lock_path.exists():
                raise SystemExit(f"carry/check.py: {stage}: no {lock_path.relative_to(root)}")
            locks[lock_path] = yaml.safe_load(lock_path.read_text())["stages"]
        entry = locks[lock_path].get(name)
        if entry is None:
            missing.append(f"{stage}: not in {lock_path.relative_to(root)}")
            continue
        for out in entry.get("outs", []):
            path = (lock_path.parent / out["path"]).relative_to(root).as_posix()  # paths are the dvc.yaml's
            if any(f == path or f.startswith(path + "/") for f in in_git):
                continue  # git carries it
            md5 = out["md5"]
            obj = _object(remote, md5)
            if not obj.exists():
                missing.append(f"{stage}: {out['path']}")
            elif md5.endswith(".dir"):
                for f in json.loads(obj.read_text()):
                    if not _object(remote, f["md5"]).exists():
                        missing.append(f"{stage}: {out['path']}/{f['relpath']}")
    return missing


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--stages", type=Path, default=HERE / "three_seed_stages.txt")
    a = ap.parse_args()
    stages = a.stages.read_text().split()
    missing = missing_outputs(stages)
    for m in missing:
        print(f"missing {m}")
    print(f"{len(stages)} stages: {'every locked output is in carry/' if not missing else f'{len(missing)} missing'}")
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
