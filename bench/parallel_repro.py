"""Run the pipeline's stages on N workers of T threads each, dependencies respected: how the committed
re-run of 2026-11-26 was made (2 workers x 1 thread on the 2-core reference machine).

    python bench/parallel_repro.py --workers 2 --threads 1     # after `dvc repro check download`

Each job is `dvc --wait-for-lock repro -s <stage>` with OMP_NUM_THREADS=T (DVC runs different stages
of one workspace at once and serialises only its lock). Trainings go first (they unlock everything),
then the longest ready job; a line per finished stage. The results are the bytes of a sequential
`dvc repro`: training and scoring are thread-count-independent (README, determinism), and each
stage writes only its own outputs. Not DVC's own queue (`dvc exp run --queue`); a stop-gap until
the grid's scaling work lands. Reads the grid from params.yaml.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import threading
import time

import yaml

# rough seconds at 1 thread on the reference machine, to start the longest jobs first
COST = {"train": 300, "evaluate": 150, "evaluate2": 650, "exact": 1500, "figures": 15}


def stages(params: dict) -> tuple[dict[str, list[str]], dict[str, float]]:
    deps: dict[str, list[str]] = {}
    cost: dict[str, float] = {}
    for m in params["grid"]["models"]:
        for z in params["grid"]["zdims"]:
            n = f"{m}-{z}"
            deps[f"train@{n}"], cost[f"train@{n}"] = [], COST["train"]
            deps[f"evaluate@{n}"] = [f"train@{n}"]
            cost[f"evaluate@{n}"] = COST["evaluate2" if z <= 2 else "evaluate"]
            deps[f"figures@{n}"], cost[f"figures@{n}"] = [f"train@{n}"], COST["figures"]
            if z in params["exact"]["zdims"]:
                deps[f"exact@{n}"], cost[f"exact@{n}"] = [f"train@{n}"], COST["exact"]
    deps["report"], cost["report"] = list(deps), 30
    return deps, cost


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    with open("params.yaml") as f:
        deps, cost = stages(yaml.safe_load(f))
    env = {**os.environ, "OMP_NUM_THREADS": str(a.threads)}
    done: set[str] = set()
    running: set[str] = set()
    failed: set[str] = set()
    lock, t0 = threading.Lock(), time.time()

    def pick() -> str | None:
        ready = [s for s in deps if s not in done | running | failed and all(d in done for d in deps[s])]
        ready.sort(key=lambda s: (not s.startswith("train@"), -cost[s]))
        return ready[0] if ready else None

    def worker(i: int) -> None:
        while True:
            with lock:
                if failed or len(done) == len(deps):
                    return
                s = pick()
                if s is None and not running:
                    return
                if s is not None:
                    running.add(s)
            if s is None:
                time.sleep(2)
                continue
            t = time.time()
            p = subprocess.run(["dvc", "--wait-for-lock", "repro", "-s", s], env=env, capture_output=True, text=True)
            with lock:
                running.discard(s)
                (done if p.returncode == 0 else failed).add(s)
                print(f"[w{i}] {s} {'ok' if p.returncode == 0 else 'FAILED'} {time.time() - t:.0f} s, "
                      f"at {time.time() - t0:.0f} s ({time.strftime('%H:%M:%S')})", flush=True)
                if p.returncode:
                    print(p.stdout[-2000:], p.stderr[-2000:], flush=True)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(a.workers)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    print(f"failed: {sorted(failed)}; {len(done)} of {len(deps)} stages in {time.time() - t0:.0f} s", flush=True)
    raise SystemExit(1 if failed else 0)


if __name__ == "__main__":
    main()
