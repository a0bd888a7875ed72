"""Which stages an edit to each vaebench module makes stale: the stages whose dvc.lock entry lists it.

    python bench/stale_by_module.py                 # this checkout's dvc.lock
    python bench/stale_by_module.py --rev d3ae222   # beside another revision's (modules matched by git's renames)

DVC re-runs a stage when any file in its deps changes, and dvc.yaml lists exactly the modules each stage's
command imports (tests/test_pipeline.py checks it), so this table is what `dvc status` reports after an edit.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections import Counter
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]


def users(lock_text: str) -> dict[str, Counter]:
    """{module path: Counter(stage kind -> stages)} from a dvc.lock's text."""
    out: dict[str, Counter] = {}
    for name, stage in yaml.safe_load(lock_text)["stages"].items():
        for dep in stage.get("deps", []):
            if dep["path"].startswith("vaebench/"):
                out.setdefault(dep["path"], Counter())[name.split("@")[0]] += 1
    return out


def cell(c: Counter | None) -> str:
    if not c:
        return "none"
    return f"{sum(c.values())}: " + ", ".join(f"{kind} {n}" for kind, n in sorted(c.items(), key=lambda kv: -kv[1]))


def renames(rev: str) -> dict[str, str]:
    """{path at rev: path here} for the modules git sees as moved (a module split in two keeps its larger half)."""
    diff = subprocess.run(["git", "-C", str(REPO), "diff", "-M40%", "--name-status", rev, "HEAD", "--", "vaebench"],
                          capture_output=True, text=True, check=True).stdout
    return {parts[1]: parts[2] for line in diff.splitlines() if (parts := line.split("\t"))[0].startswith("R")}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rev", help="compare with this revision's dvc.lock")
    args = ap.parse_args()
    now = users((REPO / "dvc.lock").read_text())
    if args.rev is None:
        for module in sorted(now):
            print(f"{module:36s} {cell(now[module])}")
        return 0
    before = users(subprocess.run(["git", "-C", str(REPO), "show", f"{args.rev}:dvc.lock"],
                                  capture_output=True, text=True, check=True).stdout)
    moved = renames(args.rev)
    print(f"| module at {args.rev} | stages an edit stales then | module now | stages an edit stales now |")
    print("|---|---|---|---|")
    for module in sorted(before):
        here = moved.get(module, module)
        print(f"| {module} | {cell(before[module])} | {here if (REPO / here).exists() else '(gone)'} | "
              f"{cell(now.get(here))} |")
    for module in sorted(set(now) - {moved.get(m, m) for m in before}):
        print(f"| (new) | | {module} | {cell(now[module])} |")
    for path in sorted(p.relative_to(REPO).as_posix() for p in (REPO / "vaebench").rglob("*.py")):
        if path not in now:
            print(f"| | | {path} | none |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
