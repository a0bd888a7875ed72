"""The pipeline's stages and which stages each one needs, read from DVC's own graph of dvc.yaml.

One source of truth: the engines that spread the grid over cores, machines or a Dask cluster
(grid/queue.py, grid/dask.py) schedule exactly the stages `dvc repro` would run,
in an order DVC accepts, and never keep a second list of them.
"""

from __future__ import annotations

from pathlib import Path

Graph = dict[str, tuple[str, ...]]  # stage name -> names of the stages whose outputs it reads


def _name(stage, root: str) -> str:
    """The name `dvc repro` takes in `root`, whatever this process's working directory: `train@vae-2-0` for
    a stage of root/dvc.yaml, `sub/dvc.yaml:name` for one of another dvc.yaml."""
    import os

    rel = os.path.relpath(stage.dvcfile.path, root)
    return stage.name if rel == "dvc.yaml" else f"{rel}:{stage.name}"


def stage_graph(root: Path | str) -> Graph:
    """{stage: the stages it needs}, matrix items expanded (`train@vae-2-0`), for `dvc repro` in `root`:
    the stages of root/dvc.yaml and, from other dvc.yaml files, only those they need."""
    import os

    from dvc.repo import Repo

    root = os.path.abspath(root)
    with Repo(root) as repo:
        graph = repo.index.graph  # networkx DiGraph; an edge u -> v means u reads an output of v
        # what `dvc repro` in root runs: root/dvc.yaml's stages and the stages they need, not every
        # dvc.yaml of the repository (the literature pipeline in literature/dvc.yaml is never scheduled)
        keep, todo = set(), [st for st in graph.nodes if os.path.relpath(st.dvcfile.path, root) == "dvc.yaml"]
        while todo:
            stage = todo.pop()
            if stage not in keep:
                keep.add(stage)
                todo.extend(graph.successors(stage))
        return {_name(stage, root): tuple(sorted(_name(dep, root) for dep in graph.successors(stage)))
                for stage in keep}


def stale_stages(root: Path | str, *targets: str) -> set[str]:
    """The stages among `targets` (default: those of root/dvc.yaml; stages of other dvc.yaml files are
    then not asked about, and callers treat them as stale) that `dvc status` reports as changed.
    `--wait-for-lock`: another DVC process of the repository may hold its lock between its stages."""
    import json
    import os
    import subprocess

    root = os.path.abspath(root)
    proc = subprocess.run(["dvc", "--wait-for-lock", "status", "--json", *(targets or ("dvc.yaml",))], cwd=root,
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"dvc status failed in {root}: {(proc.stdout + proc.stderr).strip()[-2000:]}")
    return set(json.loads(proc.stdout or "{}"))


def needing_run(graph: Graph, stale: set[str]) -> set[str]:
    """The stages a repro must visit: those reported stale, those outside root/dvc.yaml (not asked
    about, so assumed stale), and every stage downstream of one of these (its inputs may change).
    The rest are up to date and stay so, since nothing they read is re-run; visiting them anyway would
    only take DVC's write lock on their outputs, which fails while another DVC process (the literature
    pipeline's training, say) reads them. A stage visited only for its upstream is asked again once that
    has run (it is often still up to date: `check` rewrites the same stamp after any params.yaml edit)."""
    memo: dict[str, bool] = {}

    def runs(s: str) -> bool:
        if s not in memo:
            memo[s] = s in stale or ":" in s or any(runs(d) for d in graph[s])
        return memo[s]

    return {s for s in graph if runs(s)}


def uncached_outputs(root: Path | str) -> dict[str, list[str]]:
    """{stage: its plain outputs declared `cache: false`} for the stages that have any.

    DVC's run-cache cannot restore such a stage where its outputs are missing: a copy of the
    workspace (DVC's queue) or another machine cannot hand it over, and it runs again.
    """
    import os

    from dvc.repo import Repo

    root = os.path.abspath(root)
    with Repo(root) as repo:
        # metrics and plots are kept as copies in the run-cache even when `cache: false`; plain outputs are not
        return {_name(stage, root): rel for stage in repo.index.stages
                if (rel := [o.def_path for o in stage.outs if not o.use_cache and not (o.is_metric or o.is_plot)])}


def waves(graph: Graph) -> list[list[str]]:
    """The stages in waves: each stage needs only stages of earlier waves, so a wave's stages can all
    run at once. Wave i holds the stages whose longest chain of upstream stages has length i."""
    depth: dict[str, int] = {}

    def visit(stage: str, path: tuple[str, ...] = ()) -> int:
        if stage in path:  # DVC refuses cycles itself; this guards hand-made graphs in tests
            raise ValueError(f"cycle through {' -> '.join(path + (stage,))}")
        if stage not in depth:
            depth[stage] = 1 + max((visit(d, path + (stage,)) for d in graph[stage]), default=-1)
        return depth[stage]

    for stage in graph:
        visit(stage)
    out: list[list[str]] = [[] for _ in range(max(depth.values(), default=-1) + 1)]
    for stage in sorted(depth):
        out[depth[stage]].append(stage)
    return out


def run_of_stage(stage: str) -> str | None:
    """The matrix item a stage belongs to (`train@vae-2-0` -> `vae-2-0`: one training seed of a cell), None for a stage outside the grid."""
    return stage.split("@", 1)[1] if "@" in stage else None


def _natural(name: str) -> tuple:
    """`vae-10` after `vae-2`: digits compare as numbers."""
    import re

    return tuple(int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name))


def machine_share(graph: Graph, part: int, parts: int) -> list[str]:
    """The grid stages machine `part` of `parts` (1-based) computes when the grid is split across
    machines: whole runs (every stage of one matrix item, e.g. train, evaluate, figures and exact of
    vae-2) dealt out in turn in sorted order, so that no model has to travel between machines. The
    stages outside the grid (check, download upstream; the report downstream) are left out: DVC runs
    the upstream ones itself on each machine, and the report is assembled once from everyone's results.
    Runs with more stages (those with an `exact` stage, the longest) are dealt first, so that they
    land on different machines.
    """
    if parts < 1 or not 1 <= part <= parts:
        raise ValueError(f"machine {part} of {parts}: need 1 <= part <= parts")
    size: dict[str, int] = {}
    for s in graph:
        if (r := run_of_stage(s)) is not None:
            size[r] = size.get(r, 0) + 1
    runs = sorted(size, key=lambda r: (-size[r], _natural(r)))
    mine = set(runs[part - 1 :: parts])
    return [s for wave in waves(graph) for s in wave if run_of_stage(s) in mine]
