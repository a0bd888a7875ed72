"""The grid on one machine's cores with DVC's own machinery: its experiment queue and its run-cache.

    wave by wave (grid/stagegraph.py::waves):
        a wave of one stage          -> `dvc repro <stage>` here, in the workspace
        a wave of independent stages -> one `dvc exp run --queue <stage>` each, then
                                        `dvc queue start --jobs N`: N at a time, each in a
                                        temporary copy of the workspace, all writing one cache,
                                        until the queue's status says each has ended
    finally                          -> `dvc repro` here: every queued stage is found in the
                                        run-cache ("is cached - skipping run", its outputs checked
                                        out), and only what was not queued (the report) runs

Why waves: a queued stage whose upstream stage has not finished yet would run that stage a second
time in its own copy (same bytes, wasted time). Why threads = cores / jobs: a 784-500-500 MLP uses
few threads well, and N workers that each take every core fight over them. The queue's workers take
their environment from `dvc queue start`, so OMP_NUM_THREADS is set there. The bytes are those
of a sequential `dvc repro`: training and scoring give the same bytes at any thread count (README,
determinism), and each stage runs alone in its own copy.

The queued experiments are named `vbq-<stage>` and removed once their results are in the run-cache;
experiments of yours already waiting in the queue make it refuse to start (the workers would run them).
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from vaebench.grid.stagegraph import stage_graph, uncached_outputs, waves

PREFIX = "vbq-"


class QueueError(RuntimeError):
    """A stage failed on the queue; the message names it and ends with its log."""


def usable_cores() -> int:
    """Cores this process may run on (the affinity mask, e.g. under taskset or a batch scheduler)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def threads_per_job(jobs: int, cores: int | None = None) -> int:
    """Each of `jobs` workers gets an equal share of the cores, at least one thread."""
    if jobs < 1:
        raise ValueError(f"jobs must be >= 1, got {jobs}")
    return max(1, (cores or usable_cores()) // jobs)


def exp_name(stage: str) -> str:
    """A valid, readable experiment name for a stage: `train@vae-2` -> `vbq-train-vae-2`."""
    return PREFIX + stage.replace("@", "-")


def _dvc(root: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(["dvc", *args], cwd=root, env=env, capture_output=True, text=True)


def _check(proc: subprocess.CompletedProcess, what: str) -> str:
    if proc.returncode != 0:
        raise QueueError(f"{what} failed (exit {proc.returncode}):\n{(proc.stdout + proc.stderr)[-3000:]}")
    return proc.stdout


def run_on_queue(root: Path | str, jobs: int, threads: int | None = None, targets: list[str] | None = None,
                 log: Callable[[str], None] = print) -> dict[str, float]:
    """Run the pipeline of `root` (or only `targets` and what they need) with `jobs` stages at a time.

    Returns the seconds each wave took. Raises QueueError naming the first stage that failed; what
    finished before stays in the run-cache, so a second call resumes instead of starting over.
    """
    root = Path(root)
    threads = threads or threads_per_job(jobs)
    # the queue's workers share the cores; a stage run alone here (a wave of one, the final repro) keeps
    # torch's default, every core. (The quadrature pins itself to 2 threads whatever it is given.)
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    graph = stage_graph(root)
    if targets:
        unknown = sorted(set(targets) - set(graph))
        if unknown:
            raise ValueError(f"no such stage: {', '.join(unknown)} (stages: `dvc stage list`)")
        graph = _upstream_of(graph, targets)
    plan = waves(graph)
    queued = [s for wave in plan if len(wave) > 1 for s in wave]
    blocked = {s: o for s, o in uncached_outputs(root).items() if s in queued}
    if blocked:
        s, outs = sorted(blocked.items())[0]
        raise QueueError(f"{len(blocked)} stage(s) to queue have outputs declared `cache: false` (first: {s}: "
                         f"{', '.join(outs)}); DVC's run-cache cannot hand them from the queue's copies back "
                         "to this workspace, so every such stage would run twice. Declare them cached in "
                         "dvc.yaml, or use `vaebench-grid dask`, which runs in this workspace.")
    _remove_ours(root)  # leftovers of an interrupted run would be re-run by the workers
    theirs = [n for n, st in _queue_names(root).items() if st in ("Queued", "Running")]
    if theirs:  # the workers would run them too, at this command's thread count
        raise QueueError(f"DVC's queue already holds {len(theirs)} experiment(s) of yours ({', '.join(theirs[:3])}); "
                         "run or remove them first (`dvc queue status`, `dvc queue remove`)")
    log(f"{len(graph)} stages in {len(plan)} waves; {jobs} at a time, {threads} thread(s) each")
    seconds: dict[str, float] = {}
    # every wave of many stages is queued (the last too: `queue train@vae-2 train@vae-5` runs both at
    # once); a last wave of one stage (the report) is left to the final repro
    for i, wave in enumerate(plan[:-1] if len(plan[-1]) == 1 else plan):
        t0 = time.time()
        if len(wave) == 1:
            _check(_dvc(root, "repro", wave[0]), f"dvc repro {wave[0]}")
        else:
            for stage in wave:
                _check(_dvc(root, "exp", "run", "--queue", "-n", exp_name(stage), stage), f"queueing {stage}")
            status = _run_queued(root, wave, jobs, env)
            # only a "Success" per stage counts (`dvc exp run --run-all` exits 0 on failures too)
            bad = [s for s in wave if status.get(exp_name(s)) != "Success"]
            if bad:
                raise QueueError(f"stage {bad[0]} did not succeed on the queue (status "
                                 f"{status.get(exp_name(bad[0]), 'unknown')}; {len(bad)} of {len(wave)} in this "
                                 f"wave); its log:\n{_log(root, bad[0])}")
            _remove_ours(root)
        seconds[f"wave {i}"] = time.time() - t0
        log(f"wave {i}: {len(wave)} stage(s) in {seconds[f'wave {i}']:.0f} s ({', '.join(_short(wave))})")
    t0 = time.time()
    out = _check(_dvc(root, "repro", *(targets or [])), "the final dvc repro")
    seconds["final repro"] = time.time() - t0
    ran = [ln.split("'")[1] for ln in out.splitlines() if ln.startswith("Running stage '")]
    log(f"final dvc repro in {seconds['final repro']:.0f} s: restored from the run-cache, ran "
        f"{', '.join(ran) if ran else 'nothing'}")
    return seconds


FINAL = ("Success", "Failed")


def _run_queued(root: Path, wave: list[str], jobs: int, env: dict[str, str], poll: float = 2.0) -> dict[str, str]:
    """Start `jobs` workers on the queued stages of `wave` and wait until each has ended; {name: status}.

    Not `dvc exp run --run-all`, which waits for its workers to exit: under load (a test run beside two
    trainings, dvc 3.67) a worker told to shut down while its task was still running finished the task
    and then never exited, and `--run-all` hung with every experiment done. Here the queue's own
    status decides, and the workers are stopped once every stage has ended. Workers that are gone while
    stages still wait (none active or idle for a few polls) are started again, three times at most.
    """
    _check(_dvc(root, "queue", "start", "--jobs", str(jobs), env=env), "dvc queue start")
    restarts, idle_polls = 0, 0
    while True:
        out = _check(_dvc(root, "queue", "status"), "dvc queue status")
        status = _queue_names(root, out)
        if all(status.get(exp_name(s)) in FINAL for s in wave):
            break
        workers = re.search(r"Worker status: (\d+) active, (\d+) idle", out)
        idle_polls = idle_polls + 1 if workers and workers.group(1) == workers.group(2) == "0" else 0
        if idle_polls >= 3:
            if restarts == 3:
                raise QueueError(f"DVC's queue workers stopped with stages still waiting: {status}")
            _check(_dvc(root, "queue", "start", "--jobs", str(jobs), env=env), "dvc queue start")
            restarts, idle_polls = restarts + 1, 0
        time.sleep(poll)
    try:  # a worker that stays after its task: told to stop (it has nothing left to do)
        subprocess.run(["dvc", "queue", "stop"], cwd=root, capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired:
        pass
    return status


def _upstream_of(graph: dict[str, tuple[str, ...]], targets: list[str]) -> dict[str, tuple[str, ...]]:
    keep: set[str] = set()
    todo = list(targets)
    while todo:
        s = todo.pop()
        if s not in keep:
            keep.add(s)
            todo.extend(graph[s])
    return {s: d for s, d in graph.items() if s in keep}


def _short(wave: list[str]) -> list[str]:
    return wave if len(wave) <= 4 else [*wave[:3], f"... {len(wave) - 3} more"]


def _queue_names(root: Path, out: str | None = None) -> dict[str, str]:
    """{experiment name: status} of the queue's tasks, from `dvc queue status`'s table (`out`, or a fresh
    call) (`Task  Name  Created  Status`; no machine-readable form in dvc 3.67)."""
    if out is None:
        out = _check(_dvc(root, "queue", "status"), "dvc queue status")
    rows = [ln.split() for ln in out.splitlines() if ln.strip()]
    if rows and rows[0][:2] != ["Task", "Name"] and not rows[0][0].startswith("No"):
        raise QueueError(f"unexpected `dvc queue status` output:\n{out[:500]}")
    return {r[1]: r[-1] for r in rows[1:] if len(r) >= 4 and not r[0].startswith("Worker")}


def _log(root: Path, stage: str) -> str:
    return _dvc(root, "queue", "logs", exp_name(stage)).stdout[-3000:]


def _remove_ours(root: Path) -> None:
    """Remove this module's experiments (their results live on in the run-cache) and queue entries."""
    ours = [n for n in _queue_names(root) if n.startswith(PREFIX)]
    listed = _dvc(root, "exp", "ls", "--name-only").stdout.split()
    ours += [n for n in listed if n.startswith(PREFIX) and n not in ours]
    if ours:  # finished ones are experiments, unfinished ones queue entries: each command takes its own
        _dvc(root, "queue", "remove", *ours)
        _dvc(root, "exp", "remove", *ours)
