"""Record in dvc.lock the current commands, code and parameters of stages whose outputs are not here.

`dvc commit` records a stage's new dependencies only when its outputs are in the workspace: after a refactor
that moves no byte (bench/same_bytes.py compares every output of the whole pipeline with the code before),
a machine without the grid's 22 trained models could not record the new commands and module lists without
retraining them. This asks DVC to commit each stage with its missing outputs (and missing upstream outputs)
left at the hashes dvc.lock already holds; outputs and dependencies that are here are hashed afresh.

Use it only for changes proven not to move outputs. It refuses a stage whose parameters or non-module inputs
changed, or whose outputs that are here differ from the lock; a changed output that is not here is not
noticed: that is the promise `--proven` makes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any



class RelockRefused(RuntimeError):
    """A stage changed in more than its command and its vaebench modules: a re-run's business, not relock's."""


def _is_module(path: str) -> bool:
    """vaebench's code: its modules and the C source one of them compiles (run/rmsprop_kernel.c)."""
    return path.endswith((".py", ".c")) and "vaebench/" in path


def _without(params: dict[str, Any] | None, added: dict[str, Any]) -> dict[str, Any] | None:
    """A lock entry's params less each key of `added` where it holds exactly that value: a key added to the params
    with the value that keeps the old behaviour (`train.monitor: test`), or an entry added to a mapping that no
    stage of the lock reads (`variants.defs.epochs120`, a new variant's definition, beside the others' in the
    `variants.defs` a variant stage lists). The lock names a parameter as the stage lists it (`train`,
    `variants.defs`, `model.hidden`): the key is looked up under the longest listed name it extends."""
    if not params:
        return params
    out = json.loads(json.dumps(params))
    for values in out.values():  # one dict per params file
        for key, value in added.items():
            if values.get(key) == value:
                del values[key]
                continue
            listed = max((p for p in values if key.startswith(p + ".")), key=len, default=None)
            if listed is None:
                continue
            *path, leaf = key[len(listed) + 1:].split(".")
            node = values[listed]
            for part in path:
                node = node.get(part) if isinstance(node, dict) else None
            if isinstance(node, dict) and node.get(leaf) == value:
                del node[leaf]
    return out


def _unmoved(name: str, old: dict[str, Any] | None, new: dict[str, Any], added: dict[str, Any] | None = None,
             dropped: dict[str, Any] | None = None) -> None:
    """RelockRefused unless `new` differs from the lock's `old` entry only in the command, vaebench modules,
    the `added` params (each at exactly its value) and the `dropped` ones (each locked at exactly its value)."""
    if old is None:
        raise RelockRefused(f"{name}: not in the lock yet (a new stage): run it")
    if _without(new.get("params"), added or {}) != _without(old.get("params"), dropped or {}):
        raise RelockRefused(f"{name}: its parameters changed since the lock; re-run it (`dvc repro {name}`)")
    before = {d["path"]: d for d in old.get("deps", [])}
    for dep in new.get("deps", []):
        if not _is_module(dep["path"]) and before.get(dep["path"]) != dep:
            raise RelockRefused(f"{name}: its input {dep['path']} changed since the lock; re-run it")
    if new.get("outs") != old.get("outs"):
        raise RelockRefused(f"{name}: an output here differs from the lock's; re-run it or `dvc checkout` it")


def relock(root: Path | str, dvcfiles: list[str], added: dict[str, Any] | None = None,
           only: set[str] | None = None, dropped: dict[str, Any] | None = None) -> list[str]:
    """Commit every stage of `dvcfiles` (dvc.yaml paths relative to `root`); their names, in order.

    What `dvc commit --force` does (dvc/repo/commit.py), with missing outputs allowed and without the
    run-cache, whose entries need the outputs themselves; refused (nothing written) for a stage whose
    parameters (other than the keys of `added`, each at exactly its value), non-module inputs or present
    outputs differ from its lock entry. `dropped`: keys removed from the params file (or from a stage's `params`)
    that the lock holds at exactly that value, e.g. `train.seed` = 0 once the matrix's seed sets it. `only`: the
    stages to record (their addressing, as `dvc status` names
    them), the others of the files left as they are; None: every stage.
    """
    from dvc.repo import Repo
    from dvc.stage.serialize import to_single_stage_lockfile
    from dvc.utils.serialize import load_yaml

    names: list[str] = []
    with Repo(str(root)) as repo, repo.lock:
        files = []
        for dvcfile in dvcfiles:  # every stage checked before anything is written
            lock_path = Path(root) / Path(dvcfile).with_suffix(".lock")
            # read as DVC reads it (YAML 1.2: `1e-08` is a number, which PyYAML's 1.1 leaves a string)
            locked = load_yaml(lock_path)["stages"] if lock_path.exists() else {}
            stages = [info.stage for info in repo.stage.collect_granular(dvcfile)
                      if only is None or info.stage.addressing in only]
            for stage in stages:
                stage.save(allow_missing=True, run_cache=False)
                new = json.loads(json.dumps(to_single_stage_lockfile(stage)))  # as dvc.lock will hold it
                _unmoved(stage.addressing, locked.get(stage.name), new, added, dropped)
            files.append(stages)
        for stages in files:
            for stage in stages:
                stage.commit(allow_missing=True, relink=True)
            if stages:
                stages[0].dvcfile.dump_stages(stages, update_pipeline=False)
            names += [s.addressing for s in stages]
    return names
