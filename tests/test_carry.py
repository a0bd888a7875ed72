"""carry/check.py: which locked outputs a local DVC remote holds, read from dvc.lock and the remote's folder,
checked against what a real `dvc push` wrote (DVC and git run for real in a temporary repository)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import yaml

import pytest

from dvcproject import REPO, run

pytestmark = pytest.mark.slow  # real DVC and git in a temporary repository


def _check_module():
    spec = importlib.util.spec_from_file_location("carry_check", REPO / "carry" / "check.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_it_finds_what_a_real_push_wrote_and_names_each_missing_file(tmp_path: Path) -> None:
    check = _check_module()
    root, remote = tmp_path / "repo", tmp_path / "remote"
    root.mkdir()
    run(root, "git", "init", "-q", "-b", "main")
    run(root, "dvc", "init", "-q")
    py = sys.executable
    (root / "dvc.yaml").write_text(yaml.safe_dump({"stages": {
        "make": {"matrix": {"n": [1, 2]},
                 "cmd": f"{py} -c \"import os; os.makedirs('d${{item.n}}', exist_ok=True); "
                        f"open('d${{item.n}}/a', 'w').write('a${{item.n}}'); open('d${{item.n}}/b', 'w').write('b${{item.n}}'); "
                        f"open('f${{item.n}}', 'w').write('f${{item.n}}')\"",
                 "outs": ["d${item.n}", "f${item.n}"]},
        # like the report's tables: kept in git (cache: false), never pushed, so never asked of the remote
        "note": {"cmd": f"{py} -c \"open('n.txt', 'w').write('n')\"", "outs": [{"n.txt": {"cache": False}}]}}}))
    run(root, "dvc", "repro")
    run(root, "git", "add", "n.txt", "dvc.yaml", "dvc.lock")
    run(root, "git", "commit", "-qm", "the note in git")
    run(root, "dvc", "remote", "add", "--local", "carry", str(remote))
    stages = ["make@1", "make@2"]
    assert check.missing_outputs(stages, root, remote) == [f"{s}: {p}" for s in stages for p in (f"d{s[-1]}", f"f{s[-1]}")]
    assert check.missing_outputs(["note"], root, remote) == []
    run(root, "dvc", "push", "-r", "carry", "make@1")
    assert check.missing_outputs(stages, root, remote) == ["make@2: d2", "make@2: f2"]  # only what was pushed
    run(root, "dvc", "push", "-r", "carry", "make@2")
    assert check.missing_outputs(stages, root, remote) == []
    # one file of a directory output gone from the remote: named with its path inside the directory
    lock = yaml.safe_load((root / "dvc.lock").read_text())["stages"]["make@2"]
    listing = check._object(remote, next(o["md5"] for o in lock["outs"] if o["path"] == "d2"))
    b = next(f for f in yaml.safe_load(listing.read_text()) if f["relpath"] == "b")
    check._object(remote, b["md5"]).unlink()
    assert check.missing_outputs([*stages, "make@3"], root, remote) == ["make@2: d2/b", "make@3: not in dvc.lock"]
