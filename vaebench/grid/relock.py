"""Record in dvc.lock the current commands, code and parameters of stages whose outputs are not here.

`dvc commit` records a stage's new dependencies only when its outputs are in the workspace: after a refactor
that moves no byte (bench/same_bytes.py compares every output of the whole pipeline with the code before),
a machine without the grid's 22 trained models could not record the new commands and module lists without
retraining them. This asks DVC to commit each stage with its missing outputs (and missing upstream outputs)
left at the hashes dvc.lock already holds; outputs and dependencies that are here are hashed afresh.

Use it only for changes proven not to move outputs. A changed output that is here is recorded as it is, as
`dvc commit` would; a changed output that is not here is not noticed: that is the promise you make.
"""

from __future__ import annotations

from pathlib import Path


def relock(root: Path | str, dvcfiles: list[str]) -> list[str]:
    """Commit every stage of `dvcfiles` (dvc.yaml paths relative to `root`); their names, in order.

    What `dvc commit --force` does (dvc/repo/commit.py), with missing outputs allowed and without the
    run-cache, whose entries need the outputs themselves."""
    from dvc.repo import Repo

    names: list[str] = []
    with Repo(str(root)) as repo, repo.lock:
        for dvcfile in dvcfiles:
            stages = [info.stage for info in repo.stage.collect_granular(dvcfile)]
            for stage in stages:
                stage.save(allow_missing=True, run_cache=False)
                stage.commit(allow_missing=True, relink=True)
            if stages:
                stages[0].dvcfile.dump_stages(stages, update_pipeline=False)
            names += [s.addressing for s in stages]
    return names
