"""The grid as tasks on a Dask cluster: one task per DVC stage, each a real `dvc repro` of that stage.

    pip install -e '.[dask]'
    a LocalCluster of N worker processes by default, or any scheduler's address (a real cluster;
    dask-jobqueue starts one on SLURM/PBS, see README "Scaling out")

Each stage becomes one task, handed to Dask once the stages it reads (vaebench/stagegraph.py: DVC's
own graph) are done and a worker thread is free, the highest priority first; so no two stages that
depend on each other run at once. A task runs `dvc --wait-for-lock repro -s <stage>`
in the workspace: DVC runs different stages of one workspace at once and serialises only its
lock, writes dvc.lock and the run-cache as a sequential `dvc repro` would, and the bytes are the
same (README, determinism). This needs the workspace on every worker's disk (one machine, or a
cluster with a shared file system).
"""

from __future__ import annotations

import heapq
import os
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from vaebench.grid.stagegraph import Graph, needing_run, stale_stages, stage_graph


# Our own LocalCluster's housekeeping, turned down: its tasks each wait on one `dvc repro` subprocess for minutes,
# so a statistical profiler sampling every 10 ms, a GIL monitor every 1 ms, a 20 ms event-loop tick and work
# stealing (tasks are handed out one per free worker thread anyway) only take CPU from the stages. Measured on
# 2026-12-06 (AMD EPYC, 2 cores, beside the running grid; `python bench/dask_idle.py`): two workers each waiting
# on a sleeping task cost the cluster 10.9-14.0 % of a core with Dask's defaults, 1.1-1.5 % with these
# (bench/results/dask_idle_2026-12-06.txt).
QUIET_CLUSTER = {
    "distributed.worker.profile.enabled": False,
    "distributed.admin.system-monitor.gil.enabled": False,
    "distributed.admin.system-monitor.interval": "5s",
    "distributed.worker.memory.monitor-interval": "1s",
    "distributed.admin.tick.interval": "1s",
    "distributed.scheduler.work-stealing": False,
}


def local_cluster(workers: int):
    """A LocalCluster of `workers` one-thread worker processes, its housekeeping turned down (QUIET_CLUSTER)."""
    import dask
    from dask.distributed import LocalCluster

    with dask.config.set(QUIET_CLUSTER):  # each worker's Nanny hands this config to its process
        return LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=":0")


# glibc's tunables as environment variables (mallopt(3)), always set together (the trim threshold alone freezes the
# mmap threshold at 128 KiB): blocks up to 32 MiB (the ceiling of glibc's own dynamic threshold) come from the
# heap, and freed heap memory stays with the process for the next block (the trim threshold, 1 TiB, is never
# reached), so a scoring's decoder blocks are page-faulted once, not once a block. Decimal byte counts: glibc
# reads "32M" as 32 bytes.
MALLOC_KEEP = {"MALLOC_MMAP_THRESHOLD_": str(32 << 20), "MALLOC_TRIM_THRESHOLD_": str(1 << 40)}


def stage_env(threads: int) -> dict[str, str]:
    """The environment of a stage's `dvc repro` on a worker: the worker's own at `threads` threads, with
    MALLOC_KEEP in place of the MALLOC_TRIM_THRESHOLD_=65536 Dask's Nanny gives every worker
    (`distributed.nanny.pre-spawn-environ`, for the worker's own memory).

    Why: a child inherits the Nanny's setting, and setting it turns off glibc's dynamic mmap threshold, so every
    tensor over 128 KiB (a training step's activations, logits and gradients) is a fresh mmap, page-faulted anew
    and unmapped when freed: about 4,200 page faults a step at batch 256, 30 % of a training stage's CPU time in
    the kernel (measured 2026-12-07 on the grid's own stage processes). With MALLOC_KEEP instead (AMD EPYC, load
    ~5; `python bench/stage_env.py`): the real evaluate stage on 1,000 test images 35.3 CPU s, a shell's
    environment 38.5, the Nanny's 56.6; the IWAE of 60 images alone 0.61-0.65 against a shell's 0.78-0.80
    (50-67 k page faults -> 1.2 k); a training step as in a shell. Arrays over 32 MiB (an epoch's binarised
    images) are mapped and unmapped as before. The arithmetic, and so the bytes, do not depend on any of it."""
    return {**os.environ, **MALLOC_KEEP, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}


class StageFailed(RuntimeError):
    """A stage's `dvc repro` failed on a worker; the message names it and ends with its output."""


def run_stage(root: str, stage: str, threads: int, recheck: bool = False) -> dict[str, object]:
    """Run one stage on this worker (run_on_dask submits it once the stages it reads are done).

    recheck: the stage was up to date when the run began and is visited only because a stage it reads
    was not; ask `dvc status` first (read locks only) and leave it alone if it still is, since `dvc repro`
    of it would take the write lock on its outputs, refused while another DVC process reads them."""
    env = stage_env(threads)
    t0 = time.time()
    if recheck and not stale_stages(root, stage):
        return {"stage": stage, "seconds": time.time() - t0, "how": "up to date", "host": socket.gethostname()}
    returncode, stdout, stderr, cpu = run_counting_cpu(["dvc", "--wait-for-lock", "repro", "--single-item", stage],
                                                       cwd=root, env=env)
    if returncode != 0:
        raise StageFailed(f"{stage} failed on {socket.gethostname()} (exit {returncode}):\n"
                          f"{(stdout + stderr)[-3000:]}")
    if f"Running stage '{stage}'" in stdout:
        # a training resumed from models/<run>.partial ran only its last epochs: not the stage's cost
        how = "ran (resumed)" if "resuming " in stderr else "ran"
    elif "is cached - skipping run" in stdout:
        how = "restored from the run-cache"
    else:
        how = "up to date"
    return {"stage": stage, "seconds": time.time() - t0, "cpu_seconds": cpu, "how": how, "host": socket.gethostname()}


def run_counting_cpu(cmd: list[str], cwd: str, env: dict[str, str]) -> tuple[int, str, str, float]:
    """Run `cmd` to its end: (exit code, stdout, stderr, CPU seconds in user and kernel mode of it and every
    process it waited for: `dvc` and the stage's own python). The CPU time is the stage's cost in core-seconds
    whatever else shares the cores (its wall time is not: another process's turns count in it); os.wait4 reads
    it for this child alone, so concurrent tasks of one worker do not mix."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=out, stderr=err)
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here: Popen must not wait for it again
        out.seek(0)
        err.seek(0)
        return (proc.returncode, out.read().decode(errors="replace"), err.read().decode(errors="replace"),
                usage.ru_utime + usage.ru_stime)


def upstream_counts(graph: Graph) -> dict[str, int]:
    """How many stages each stage reads, directly or not (its depth in the pipeline, roughly)."""
    memo: dict[str, set[str]] = {}

    def above(s: str) -> set[str]:
        if s not in memo:
            memo[s] = set(graph[s]).union(*(above(d) for d in graph[s])) if graph[s] else set()
        return memo[s]

    return {s: len(above(s)) for s in graph}


# Rough seconds of each kind of stage at one thread on the reference machine (2026-11-26): only to start
# the long ones first among stages of one depth (the two k = 5000 `exact` stages would otherwise start
# after every `evaluate` and leave one worker idle at the end). A wrong figure costs time, never a result.
ROUGH_SECONDS = {"exact": 1300, "train-variant": 500, "train": 300, "evaluate-variant": 200, "evaluate": 150,
                 "figures-variant": 15, "figures": 15}


def priorities(graph: Graph) -> dict[str, int]:
    """Dask's priority of each stage (higher starts first): the deeper first, so that a worker finishes the runs
    already trained (their scoring, figures) before it starts another training; among stages of one depth, the
    longest kind (ROUGH_SECONDS) first. A grid longer than a session then ends it with whole runs scored, whose
    small outputs say something (a cell's seeds, its training-seed sd), rather than with every training done
    and nothing scored; the total work is the same."""
    depth = upstream_counts(graph)
    kind = {s: s.split("@", 1)[0].rsplit(":", 1)[-1] for s in graph}  # `sub/dvc.yaml:train@x` -> train
    return {s: depth[s] * 10_000 + ROUGH_SECONDS.get(kind[s], 0) for s in graph}


class Frontier:
    """The stages of `todo` free to go (every stage of `todo` they read is done), highest priority first."""

    def __init__(self, graph: Graph, todo: set[str] | list[str], priority: dict[str, int]) -> None:
        self.priority, todo = priority, set(todo)
        self.waiting = {s: {d for d in graph[s] if d in todo} for s in todo}  # inputs not done yet
        self.readers: dict[str, list[str]] = {s: [] for s in self.waiting}
        for s, deps in self.waiting.items():
            for d in deps:
                self.readers[d].append(s)
        self.free = [(-priority[s], s) for s, deps in self.waiting.items() if not deps]
        heapq.heapify(self.free)

    def __bool__(self) -> bool:
        return bool(self.free)

    def pop(self) -> str:
        return heapq.heappop(self.free)[1]

    def done(self, stage: str) -> None:
        """`stage` finished: the stages that waited for it alone are free."""
        for r in self.readers[stage]:
            self.waiting[r].discard(stage)
            if not self.waiting[r]:
                heapq.heappush(self.free, (-self.priority[r], r))


def submission_order(graph: Graph, todo: set[str] | list[str], priority: dict[str, int]) -> list[str]:
    """The stages of `todo` in the order one worker would run them: each after the stages of `todo` it reads,
    the highest priority first among those free to go. ValueError on a cycle."""
    frontier, order = Frontier(graph, todo, priority), []
    while frontier:
        order.append(frontier.pop())
        frontier.done(order[-1])
    if len(order) != len(set(todo)):  # DVC refuses a cyclic pipeline; a graph built by hand might not be one
        raise ValueError(f"stages that read each other in a cycle: {sorted(set(todo) - set(order))}")
    return order


def run_on_dask(root: Path | str, scheduler: str | None = None, workers: int = 2, threads: int = 1,
                log: Callable[[str], None] = print) -> list[dict[str, object]]:
    """Run every stage of the pipeline in `root` on Dask; returns one record per stage, in finishing order.

    scheduler: a running scheduler's address ("tcp://host:8786"); None starts a LocalCluster of
    `workers` processes. threads: torch threads per stage (workers x threads <= cores is sensible).

    Stages are handed to Dask one per free worker thread, the highest priority (`priorities`) first among
    those whose inputs are done: tasks submitted to Dask all at once are spread over the workers' own queues
    at once, and a worker whose share holds no scoring starts a training while another's scoring waits.
    """
    try:
        from dask.distributed import Client, as_completed
    except ImportError as e:  # an optional extra
        raise RuntimeError("the Dask engine needs dask.distributed: pip install -e '.[dask]'") from e

    root = str(Path(root).resolve())
    graph = stage_graph(root)
    # stages that are up to date and read only up-to-date stages are left alone (they are not even
    # visited: `dvc repro` of one would take the write lock on its outputs)
    stale = stale_stages(root)
    todo = needing_run(graph, stale)
    priority = priorities(graph)
    submission_order(graph, todo, priority)  # refuses a cycle before anything starts
    ready = Frontier(graph, todo, priority)
    cluster = None if scheduler else local_cluster(workers)
    records: list[dict[str, object]] = []
    try:
        with Client(scheduler or cluster) as client:
            log(f"Dask: {len(todo)} stages to visit ({len(graph) - len(todo)} up to date) on "
                f"{len(client.scheduler_info()['workers'])} worker(s); "
                f"dashboard {client.dashboard_link}")
            run_id = uuid.uuid4().hex[:8]  # a shared scheduler must not take another run's tasks for ours

            def slots() -> int:  # workers may join (or leave) a running scheduler
                return max(1, sum(w.get("nthreads", 1) for w in client.scheduler_info()["workers"].values()))

            running: dict[object, str] = {}
            done = as_completed()
            t0 = time.time()
            first_error: BaseException | None = None
            while ready or running:
                while ready and len(running) < slots():
                    stage = ready.pop()
                    future = client.submit(run_stage, root, stage, threads, recheck=stage not in stale,
                                           key=f"dvc-repro-{stage}-{run_id}", pure=False)
                    running[future] = stage
                    done.add(future)
                if not running:
                    break
                future = next(done)
                stage = running.pop(future)
                try:
                    rec = future.result()  # re-raises StageFailed from the worker
                except Exception as e:
                    # the stages that read the failed one's outputs never start (they wait for it for
                    # ever); the others run to the end rather than be killed half-way with a dvc process
                    # writing outputs and dvc.lock
                    if first_error is None:
                        first_error = e
                        log(f"{e}".splitlines()[0] + "; the stages that do not read it go on")
                    continue
                finally:
                    future.release()
                records.append(rec)
                cpu = f" (CPU {rec['cpu_seconds']:.0f} s)" if "cpu_seconds" in rec else ""
                log(f"[{len(records)}/{len(todo)}] {rec['stage']}: {rec['how']} in {rec['seconds']:.0f} s{cpu} "
                    f"on {rec['host']} ({time.time() - t0:.0f} s elapsed)")
                ready.done(stage)
            if first_error is not None:
                raise first_error
    finally:
        if cluster is not None:
            cluster.close()
    return records
