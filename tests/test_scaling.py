"""The grid spread over cores (DVC's queue) and over a Dask LocalCluster: the same stages as `dvc repro`,
the same bytes. DVC, git and Dask run for real, on the tiny pipeline of tests/dvcproject.py."""

from __future__ import annotations

import itertools
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml

from dvcproject import REPO, TINY, make_project, run
from vaebench.grid.dask import priorities, submission_order, upstream_counts
from vaebench.grid.queue import exp_name, threads_per_job
from vaebench.grid.stagegraph import machine_share, needing_run, run_of_stage, stage_graph, waves

# one latent size: 2 trainings, then 6 independent stages (evaluate, figures, exact for each model)
# eps 1e-8: dvc.lock writes it `1e-08`, which YAML 1.1 (PyYAML) reads as a string and DVC as a number (relock)
GRID = {**TINY, "grid": {"models": ["vae", "cvae"], "zdims": [2], "seeds": [0]}, "train": {**TINY["train"], "eps": 1e-8}}


@pytest.fixture(autouse=True)
def _environ_kept():
    """A LocalCluster's Nanny writes its pre-spawn environment (MALLOC_TRIM_THRESHOLD_=65536) into this process's
    os.environ: put it back, so that later tests' subprocesses do not inherit it."""
    before = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(before)


# ---- the stage graph, from DVC's own view of dvc.yaml -------------------------------------------

def test_waves_put_each_stage_after_everything_it_needs() -> None:
    graph = {"a": (), "b": ("a",), "c": ("a",), "d": ("b", "c"), "e": ("a",), "f": ("d", "e")}
    assert waves(graph) == [["a"], ["b", "c", "e"], ["d"], ["f"]]
    with pytest.raises(ValueError, match="cycle"):
        waves({"a": ("b",), "b": ("a",)})


def test_only_stale_stages_and_what_reads_them_are_visited() -> None:
    graph = {"check": (), "download": ("check",), "train@a": ("download",), "train@b": ("download",),
             "evaluate@a": ("train@a",), "evaluate@b": ("train@b",), "report": ("evaluate@a", "evaluate@b"),
             "sub/dvc.yaml:prep": ()}
    assert needing_run(graph, set()) == {"sub/dvc.yaml:prep"}  # another dvc.yaml's stage: not asked, so visited
    assert needing_run(graph, {"train@a"}) == {"train@a", "evaluate@a", "report", "sub/dvc.yaml:prep"}
    assert needing_run(graph, {"check"}) == set(graph)  # everything reads check
    assert needing_run({**graph, "download": ("check", "sub/dvc.yaml:prep")}, set()) == set(graph) - {"check"}


def test_the_real_pipeline_in_waves() -> None:
    graph = stage_graph(REPO)
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    seeds = params["grid"]["seeds"]
    assert len(seeds) > 1  # every cell and variant run once per training seed: vae-2-0, vae-2-1, ...
    runs = [f"{m}-{z}-{s}" for m in params["grid"]["models"] for z in params["grid"]["zdims"] for s in seeds]
    variants = [f"{r}-{s}" for r in params["variants"]["runs"] for s in seeds]
    exact = [f"exact@{m}-{z}-{s}" for m in params["grid"]["models"] for z in params["exact"]["zdims"]
             for s in params["exact"]["seeds"]]
    plan = waves(graph)
    assert plan[:3] == [["check"], ["download"], sorted([*(f"train@{r}" for r in runs),
                                                         *(f"train-variant@{r}" for r in variants)])]
    assert sorted(plan[3]) == sorted([*(f"evaluate@{r}" for r in runs), *(f"figures@{r}" for r in runs), *exact,
                                      *(f"{kind}-variant@{r}" for r in variants for kind in ("evaluate", "figures"))])
    assert plan[4:] == [["report"]]
    assert graph["train@vae-2-0"] == ("check", "download")
    assert set(graph["exact@vae-2-0"]) == {"check", "download", "train@vae-2-0"}
    assert set(graph["evaluate@vae-2-1"]) == {"check", "download", "train@vae-2-1"}  # its own seed's model only
    assert set(graph["report"]) >= set(plan[3])  # it reads every run's metrics and figures


def test_machines_split_the_grid_into_whole_runs() -> None:
    graph = stage_graph(REPO)
    grid_stages = {s for s in graph if run_of_stage(s)}
    for parts in (1, 2, 3, 5):
        shares = [machine_share(graph, p, parts) for p in range(1, parts + 1)]
        assert sorted(itertools.chain(*shares)) == sorted(grid_stages)  # all of it, each stage once
        for share in shares:
            for s in share:  # a run's training is on the machine that evaluates it: no model travels
                assert f"train@{run_of_stage(s)}" in share or f"train-variant@{run_of_stage(s)}" in share
    two = [machine_share(graph, p, 2) for p in (1, 2)]
    # the two runs with an exact stage (the longest) go to different machines
    assert sorted(sum(s.startswith("exact@") for s in share) for share in two) == [1, 1]
    # a run is one training seed of a cell (`train@vae-2-1` -> `vae-2-1`), dealt out whole like any other run
    assert run_of_stage("train@vae-2-1") == "vae-2-1" and run_of_stage("train-variant@beta4-20-2") == "beta4-20-2"
    runs = [{run_of_stage(s) for s in share} for share in two]
    assert not runs[0] & runs[1] and runs[0] | runs[1] == {run_of_stage(s) for s in grid_stages}
    assert {"vae-2-0", "vae-2-1", "vae-2-2"} <= runs[0] | runs[1]
    for bad in ((0, 2), (3, 2), (1, 0)):
        with pytest.raises(ValueError):
            machine_share(graph, *bad)


def test_each_worker_gets_its_share_of_the_cores() -> None:
    assert [threads_per_job(j, cores=2) for j in (1, 2, 3)] == [2, 1, 1]
    assert threads_per_job(4, cores=32) == 8
    with pytest.raises(ValueError):
        threads_per_job(0)
    assert exp_name("train@vae-2-0") == "vbq-train-vae-2-0"


def test_a_worker_finishes_the_runs_already_trained_before_it_starts_another() -> None:
    graph = {"a": (), "b": ("a",), "c": ("a",), "d": ("b",)}
    assert upstream_counts(graph) == {"a": 0, "b": 1, "c": 1, "d": 2}
    run = {"check": ()}
    for seed in (0, 1):
        train = f"train@vae-2-{seed}"
        run[train] = ("check",)
        for kind in ("evaluate", "exact", "figures"):
            run[f"{kind}@vae-2-{seed}"] = (train,)
    run["report"] = tuple(s for s in run if s != "check" and not s.startswith("train"))
    p = priorities(run)
    # seed 0 trained: its three stages are ready beside seed 1's training, and go first, the long exact first
    ready = ["train@vae-2-1", "evaluate@vae-2-0", "exact@vae-2-0", "figures@vae-2-0"]
    assert sorted(ready, key=lambda s: -p[s]) == ["exact@vae-2-0", "evaluate@vae-2-0", "figures@vae-2-0",
                                                  "train@vae-2-1"]
    assert max(p, key=p.get) == "report"  # deepest (it is ready last anyway)
    # and they are submitted first: Dask gives idle workers the first tasks submitted, whatever their priority
    todo = set(run) - {"check", "train@vae-2-0"}
    order = submission_order(run, todo, p)
    assert order == ["exact@vae-2-0", "evaluate@vae-2-0", "figures@vae-2-0", "train@vae-2-1", "exact@vae-2-1",
                     "evaluate@vae-2-1", "figures@vae-2-1", "report"]
    with pytest.raises(ValueError, match="cycle"):
        submission_order({"a": ("b",), "b": ("a",)}, {"a", "b"}, {"a": 0, "b": 0})


def test_a_bad_share_is_one_line_and_exit_2() -> None:
    for bad in ("3/2", "x", "1/0"):
        proc = subprocess.run([Path(sys.executable).parent / "vaebench-grid", "stages", "--part", bad],
                              cwd=REPO, capture_output=True, text=True)
        assert proc.returncode == 2 and proc.stderr.startswith("error: --part") and len(proc.stderr.splitlines()) == 1


def test_outside_a_dvc_repository_every_engine_says_so_in_one_line(tmp_path) -> None:
    for command in (["stages"], ["queue"], ["dask"]):
        proc = subprocess.run([Path(sys.executable).parent / "vaebench-grid", *command], cwd=tmp_path,
                              capture_output=True, text=True)
        assert proc.returncode == 2, (command, proc.stderr)
        assert proc.stderr.splitlines() == [f"error: {tmp_path.resolve()} is not in a DVC repository (no .dvc/ here "
                                            "or above): run vaebench-grid in a clone of vaebench, or name one with --root"]


# ---- the engines, for real ----------------------------------------------------------------------

def _lock(root: Path) -> dict:
    """dvc.lock as data: every stage's command, dependencies', parameters' and outputs' hashes."""
    return yaml.safe_load((root / "dvc.lock").read_text())["stages"]


@pytest.fixture(scope="module")
def projects(tmp_path_factory) -> dict[str, Path]:
    """Three copies of one committed project; the first reproduced by a plain sequential `dvc repro`."""
    base = tmp_path_factory.mktemp("scale")
    seq = make_project(base / "sequential", GRID)
    copies = {"sequential": seq}
    for name in ("queue", "dask"):
        shutil.copytree(seq, base / name, symlinks=True)
        copies[name] = base / name
    run(seq, "dvc", "repro")
    return copies


def _grid(root: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
           "DVC_NO_ANALYTICS": "1", "DVC_SITE_CACHE_DIR": str(root.parent / "dvc-site-cache")}
    proc = subprocess.run([str(Path(sys.executable).parent / "vaebench-grid"), *args], cwd=root, env=env,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


@pytest.mark.slow
def test_the_queue_gives_the_bytes_of_a_sequential_repro(projects: dict[str, Path]) -> None:
    root = projects["queue"]
    out = _grid(root, "queue", "--jobs", "2").stdout
    assert "11 stages in 5 waves; 2 at a time" in out
    assert "wave 2: 2 stage(s)" in out and "wave 3: 6 stage(s)" in out  # trainings, then the rest
    # the final repro restored all 10 queued/earlier stages and ran only what was never queued
    assert "final dvc repro" in out and out.rstrip().endswith("ran report")
    assert _lock(root) == _lock(projects["sequential"])
    assert "changed" not in run(root, "dvc", "status").stdout
    leftovers = run(root, "dvc", "exp", "ls", "--name-only").stdout.split()
    assert not [n for n in leftovers if n.startswith("vbq-")]  # its experiments are cleaned up


@pytest.mark.slow
def test_dask_runs_each_stage_once_and_gives_the_same_bytes(projects: dict[str, Path]) -> None:
    root = projects["dask"]
    out = _grid(root, "dask", "--workers", "2", "--threads", "1").stdout
    lines = out.splitlines()
    assert lines[0].startswith("Dask: 11 stages to visit (0 up to date) on 2 worker(s); dashboard http")
    finished = [ln for ln in lines if ln.startswith("[")]
    assert len(finished) == 11 and all(": ran in " in ln for ln in finished)  # nothing twice, nothing skipped
    assert all(re.search(r": ran in \d+ s \(CPU \d+ s\) on ", ln) for ln in finished), finished  # each its core-seconds
    order = [ln.split("] ", 1)[1].split(":", 1)[0] for ln in finished]
    graph = stage_graph(root)
    for i, stage in enumerate(order):  # each stage finished after every stage it reads
        assert set(graph[stage]) <= set(order[:i]), stage
    assert _lock(root) == _lock(projects["sequential"])
    assert "changed" not in run(root, "dvc", "status").stdout


@pytest.mark.slow
def test_dask_leaves_up_to_date_stages_alone_while_another_pipeline_reads_them(tmp_path: Path,
                                                                                 projects: dict[str, Path]) -> None:
    """The literature pipeline's long training reads data/mnist.npz under DVC's read lock; a grid run beside
    it must not `dvc repro` the up-to-date `download` (DVC would refuse the write lock and fail the grid),
    not even after a params.yaml edit, which re-runs `check` (the same stamp) and so visits everything."""
    root = tmp_path / "beside"
    shutil.copytree(projects["sequential"], root, symlinks=True)  # reproduced: every stage up to date
    (root / "sub").mkdir()
    (root / "sub" / "dvc.yaml").write_text(yaml.safe_dump({"stages": {"long": {
        "cmd": f"{sys.executable} -c \"import time; open('started', 'w').close(); time.sleep(3600)\"",
        "deps": ["../data/mnist.npz"], "outs": ["out.txt"]}}}))
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
           "DVC_NO_ANALYTICS": "1"}
    beside = subprocess.Popen(["dvc", "repro", "long"], cwd=root / "sub", env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        for _ in range(1200):
            if (root / "sub" / "started").exists():
                break
            assert beside.poll() is None, beside.stdout.read()
            time.sleep(0.1)
        assert "data/mnist.npz" in (root / ".dvc" / "tmp" / "rwlock").read_text()  # DVC's read lock is held

        (root / "metrics" / "table.md").unlink()  # the report is stale; nothing upstream of it is
        lines = _grid(root, "dask", "--workers", "1").stdout.splitlines()
        assert lines[0].startswith("Dask: 1 stages to visit (10 up to date) on 1 worker(s)")
        assert [ln.split("] ", 1)[1] for ln in lines if ln.startswith("[")][0].startswith("report: ran in ")

        with (root / "params.yaml").open("a") as f:
            f.write("# an edit that changes no value\n")  # `check` is stale, and every stage reads it
        lines = _grid(root, "dask", "--workers", "1").stdout.splitlines()
        assert lines[0].startswith("Dask: 11 stages to visit (0 up to date) on 1 worker(s)")
        how = dict(ln.split("] ", 1)[1].split(" in ", 1)[0].split(": ", 1) for ln in lines if ln.startswith("["))
        assert how == {"check": "ran", **{s: "up to date" for s in stage_graph(root) if s != "check"}}
        assert beside.poll() is None  # the other pipeline was not disturbed
    finally:
        os.killpg(beside.pid, 9)
        beside.wait()


@pytest.mark.slow
def test_a_failing_stage_stops_dask_with_its_name_and_output(tmp_path: Path) -> None:
    root = make_project(tmp_path / "bad", GRID)
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["train"]["epochs"] = 0
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    proc = subprocess.run([str(Path(sys.executable).parent / "vaebench-grid"), "dask", "--workers", "2"], cwd=root,
                          env=env, capture_output=True, text=True)
    assert proc.returncode == 1
    assert "error: check failed" in proc.stderr and "train.epochs" in proc.stderr
    assert not (root / "models").exists()  # nothing downstream of the failure ran


@pytest.mark.slow
def test_machines_sharing_only_remotes_assemble_the_grid_without_rerunning(tmp_path: Path,
                                                                         projects: dict[str, Path]) -> None:
    """Two clones ("machines") of one git remote each compute half the grid and push it to one DVC remote;
    a third clone pulls and runs only the report, and its dvc.lock is a sequential run's."""
    origin = tmp_path / "origin.git"
    run(tmp_path, "git", "clone", "-q", "--bare", str(projects["queue"]), str(origin))  # the committed project
    storage = tmp_path / "dvc-remote"
    machines = []
    for name in ("m1", "m2", "m3"):
        run(tmp_path, "git", "clone", "-q", str(origin), name)
        run(tmp_path / name, "dvc", "remote", "add", "-d", "--local", "shared", str(storage))
        machines.append(tmp_path / name)
    for part, root in enumerate(machines[:2], start=1):
        share = _grid(root, "stages", "--part", f"{part}/2").stdout.split()
        assert share and all(s.split("@")[1] == share[0].split("@")[1] for s in share)  # one whole run each
        out = run(root, "dvc", "repro", *share).stdout
        assert "Running stage 'report'" not in out
        run(root, "dvc", "push", "--run-cache")
    third = machines[2]
    run(third, "dvc", "fetch", "--run-cache")  # the run records; `repro --pull` fetches the outputs they name
    out = run(third, "dvc", "repro", "--pull").stdout
    ran = sorted(ln.split("'")[1] for ln in out.splitlines() if ln.startswith("Running stage '"))
    assert ran == ["report"], out  # check and download too come from the machines' run records
    assert _lock(third) == _lock(projects["sequential"])
    assert "changed" not in run(third, "dvc", "status").stdout


def test_the_grids_own_cluster_runs_its_workers_without_dasks_housekeeping() -> None:
    """`vaebench-grid dask` starts its LocalCluster with QUIET_CLUSTER, and the worker processes read it (not only
    the process that started them): no statistical profiler, GIL monitor or work stealing beside the stages."""
    import dask
    from dask.distributed import Client

    from vaebench.grid.dask import QUIET_CLUSTER, local_cluster

    assert dask.config.get("distributed.worker.profile.enabled") is True  # Dask's default, here and in the test
    cluster = local_cluster(1)
    try:
        with Client(cluster) as client:
            on_worker = {key: client.submit(dask.config.get, key, pure=False).result() for key in QUIET_CLUSTER}
            stealing = client.run_on_scheduler(lambda dask_scheduler: "stealing" in dask_scheduler.extensions)
    finally:
        cluster.close()
    assert on_worker == QUIET_CLUSTER
    assert stealing is False


def test_a_stages_cpu_seconds_are_its_own_and_its_childrens(tmp_path: Path) -> None:
    """run_counting_cpu: the exit code, the output, and the CPU seconds of the child and of what it waited for
    (dvc's own child, the stage), not of processes beside it."""
    from vaebench.grid.dask import run_counting_cpu

    burn = "import time; t = time.process_time()\nwhile time.process_time() - t < 1.0: pass"
    # another child of this process, burning 3 s and reaped while ours runs (as another task of one worker would)
    beside = threading.Thread(target=subprocess.run, args=([sys.executable, "-c", burn.replace("1.0", "3.0")],))
    beside.start()
    try:
        code, out, err, cpu = run_counting_cpu(
            ["bash", "-c", f"sleep 0.5 && {sys.executable} -c '{burn}' && echo done && echo warn >&2 && exit 3"],
            str(tmp_path), dict(os.environ))
    finally:
        beside.join()
    assert (code, out, err) == (3, "done\n", "warn\n")
    assert 0.95 <= cpu < 2.0  # the grandchild's second (and bash's and python's start-up), not the 3 s beside it


def test_a_stage_on_a_worker_runs_without_the_nannys_malloc_setting() -> None:
    """Dask's Nanny starts each worker with MALLOC_TRIM_THRESHOLD_=65536, which turns off glibc's dynamic mmap
    threshold: a training step then page-faults every tensor over 128 KiB anew (bench/stage_env.py). The stage's
    environment (`stage_env`, what run_stage hands `dvc repro`) is the worker's without it, with MALLOC_KEEP, at
    the stage's threads."""
    from dask.distributed import Client

    from vaebench.grid.dask import local_cluster, stage_env

    cluster = local_cluster(1)
    try:
        with Client(cluster) as client:
            on_worker = client.submit(os.environ.get, "MALLOC_TRIM_THRESHOLD_", pure=False).result()
            env = client.submit(stage_env, 1, pure=False).result()
            child = client.submit(lambda: subprocess.run(
                [sys.executable, "-c", "import os; print(os.environ.get('MALLOC_TRIM_THRESHOLD_'))"],
                env=stage_env(1), capture_output=True, text=True).stdout.strip(), pure=False).result()
    finally:
        cluster.close()
    assert on_worker is not None  # the Nanny sets it (if Dask stops, stage_env has nothing left to undo)
    assert env["MALLOC_TRIM_THRESHOLD_"] == str(1 << 40) and child == str(1 << 40)  # ours, not the Nanny's 65536
    assert env["MALLOC_MMAP_THRESHOLD_"] == str(32 << 20)
    assert env["OMP_NUM_THREADS"] == env["MKL_NUM_THREADS"] == "1" and env["OPENBLAS_NUM_THREADS"] == "1"
    assert stage_env(3)["OMP_NUM_THREADS"] == "3"


def test_the_queue_refuses_stages_the_run_cache_cannot_hand_back(tmp_path: Path) -> None:
    """Outputs declared `cache: false` cannot come back from the queue's copies: refused before anything runs."""
    root = tmp_path / "p"
    root.mkdir()
    run(root, "git", "init", "-q")
    run(root, "dvc", "init", "-q")
    (root / "dvc.yaml").write_text(yaml.safe_dump({"stages": {"a": {
        "matrix": {"i": [1, 2]}, "cmd": "echo ${item.i} > a${item.i}.txt",
        "outs": [{"a${item.i}.txt": {"cache": False}}]}, "b": {"cmd": "cat a1.txt a2.txt > b.txt",
                                                             "deps": ["a1.txt", "a2.txt"], "outs": ["b.txt"]}}}))
    from vaebench.grid.queue import QueueError, run_on_queue

    with pytest.raises(QueueError, match=r"2 stage\(s\) to queue have outputs declared `cache: false` \(first: a@1"):
        run_on_queue(root, jobs=2, log=lambda s: None)
    assert not (root / "a1.txt").exists()


@pytest.mark.slow
def test_the_queue_runs_a_last_wave_of_many_targets_at_once(tmp_path: Path) -> None:
    """`queue a@1 a@2`: the targets are the last wave; both are queued (not left to the final repro,
    which would run them one after the other), and the final repro only restores them."""
    root = tmp_path / "p"
    root.mkdir()
    run(root, "git", "init", "-q")
    run(root, "dvc", "init", "-q")
    (root / "src.txt").write_text("x\n")  # DVC keeps run records only for stages with a dependency
    (root / "dvc.yaml").write_text(yaml.safe_dump({"stages": {"a": {
        "matrix": {"i": [1, 2]}, "cmd": "echo ${item.i} > a${item.i}.txt", "deps": ["src.txt"],
        "outs": ["a${item.i}.txt"]}}}))
    run(root, "git", "add", "-A")
    run(root, "git", "commit", "-qm", "init")
    from vaebench.grid.queue import run_on_queue

    lines: list[str] = []
    run_on_queue(root, jobs=2, targets=["a@1", "a@2"], log=lines.append)
    assert any(ln.startswith("wave 0: 2 stage(s)") for ln in lines)
    assert lines[-1].endswith("restored from the run-cache, ran nothing"), lines
    assert (root / "a1.txt").read_text() == "1\n" and (root / "a2.txt").read_text() == "2\n"


@pytest.mark.slow
def test_relock_records_new_code_and_keeps_the_hashes_of_outputs_not_here(tmp_path: Path,
                                                                          projects: dict[str, Path]) -> None:
    """After a refactor proven not to move bytes, a machine without the models records the new module hashes:
    every output's hash stays, every stage is up to date once the outputs come back (here: from the cache)."""
    root = tmp_path / "relock"
    shutil.copytree(projects["sequential"], root, symlinks=True)
    before = _lock(root)
    fit = root / "vaebench" / "run" / "fit.py"
    fit.write_text(fit.read_text() + "\n# a refactor that moves no byte\n")
    shutil.rmtree(root / "models")  # the trained models are not on this machine
    refused = subprocess.run([str(Path(sys.executable).parent / "vaebench-grid"), "relock"], cwd=root,
                             capture_output=True, text=True)
    assert refused.returncode == 2 and "pass --proven" in refused.stderr and _lock(root) == before
    out = _grid(root, "relock", "--proven").stdout
    assert "recorded train@vae-2-0" in out and "recorded report" in out
    after = _lock(root)
    assert set(after) == set(before)
    for name, stage in after.items():
        assert stage["outs"] == before[name]["outs"], name  # the outputs' hashes are the ones recorded before
        changed = [d["path"] for d, b in zip(stage["deps"], before[name]["deps"]) if d != b]
        assert changed == (["vaebench/run/fit.py"] if name.startswith("train") else []), (name, changed)
    run(root, "dvc", "checkout")  # the models come back (from this machine's cache, or a remote's)
    assert "changed" not in run(root, "dvc", "status").stdout


@pytest.mark.slow
def test_relock_refuses_a_stage_whose_parameters_or_outputs_moved(tmp_path: Path, projects: dict[str, Path]) -> None:
    """relock records code, never a change that needs a re-run: a parameter edit or an output that differs
    from the lock is refused for the whole file, and nothing is written."""
    root = tmp_path / "refused"
    shutil.copytree(projects["sequential"], root, symlinks=True)
    lock = (root / "dvc.lock").read_bytes()
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["eval"]["k"] += 1
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    grid = [str(Path(sys.executable).parent / "vaebench-grid"), "relock", "--proven"]
    proc = subprocess.run(grid, cwd=root, capture_output=True, text=True)
    # the first stage that reads it: `check`, which hashes params.yaml whole
    assert proc.returncode == 2 and "check: its input params.yaml changed since the lock" in proc.stderr, proc.stderr
    assert (root / "dvc.lock").read_bytes() == lock
    params["eval"]["k"] -= 1
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    (root / "metrics" / "runs" / "vae-2-0.json").write_text("{}")  # an output here that is not the locked one
    proc = subprocess.run(grid, cwd=root, capture_output=True, text=True)
    assert proc.returncode == 2 and "evaluate@vae-2-0: an output here differs from the lock's" in proc.stderr
    assert (root / "dvc.lock").read_bytes() == lock


@pytest.mark.slow
def test_stages_done_lists_what_a_machine_hands_on(tmp_path: Path, projects: dict[str, Path]) -> None:
    """`vaebench-grid stages --done`: every stage of a reproduced project; after an edit of eval.k, nothing until
    `check` has stamped it, then every stage but the scoring stages that read eval.k (stale) and the report."""
    root = tmp_path / "done"
    shutil.copytree(projects["sequential"], root, symlinks=True)
    every = _grid(root, "stages").stdout.split()
    assert _grid(root, "stages", "--done").stdout.split() == every
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["eval"]["k"] += 1
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    assert _grid(root, "stages", "--done").stdout.split() == []  # `check` is stale: everything may change
    run(root, "dvc", "repro", "check")  # the same stamp
    done = _grid(root, "stages", "--done").stdout.split()
    # eval.k is read by the evaluate stages alone (exact has its own exact.k); the report reads them
    assert done == [s for s in every if not s.startswith("evaluate@") and s != "report"], done
    assert any(s.startswith("train@") for s in done) and any(s.startswith("exact@") for s in done)
