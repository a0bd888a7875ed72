"""Two trainings of the grid, side by side: 2 workers x 1 thread against 1 worker x 2 threads.

    python bench/grid_threads.py [--epochs 5] [--runs vae-2,cvae-2]      # after `dvc repro download`

How should `vaebench-grid queue --jobs N` (or the Dask engine) share the cores between trainings?
Each run here is a real `vaebench train` (the default params but --epochs, each into a temporary
folder) started with OMP_NUM_THREADS set, as the engines start their workers. The figures are
wall-clock seconds for the whole batch of runs under each layout, measured back to back in one
process, with the load average beside each (the machine is shared; compare the ratio, not the
seconds). The per-epoch rate does not depend on the epoch count, so a few epochs suffice.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]


def train(run: str, params: Path, out: Path, threads: int, data: Path) -> subprocess.Popen:
    model, zdim = run.split("-")
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    cmd = [str(Path(sys.executable).parent / "vaebench"), "train", "--model", model, "--zdim", zdim, "--quiet",
           "--params", str(params), "--data", str(data), "--out", str(out / run)]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def layout(runs: list[str], params: Path, tmp: Path, workers: int, threads: int, data: Path) -> float:
    """Seconds to train all `runs`, `workers` at a time with `threads` threads each."""
    t0, todo, running = time.time(), list(runs), []
    while todo or running:
        while todo and len(running) < workers:
            running.append(train(todo.pop(0), params, tmp / f"{workers}x{threads}", threads, data))
        p = running.pop(0)
        if p.wait() != 0:
            sys.exit(f"training failed: {p.stderr.read()[-2000:]}")
    return time.time() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--runs", default="vae-2,cvae-2", help="two or more runs, model-zdim, comma-separated")
    ap.add_argument("--repeats", type=int, default=2, help="alternate the two layouts this many times")
    ap.add_argument("--params", type=Path, default=REPO / "params.yaml", help="the params the runs start from")
    ap.add_argument("--data", type=Path, default=REPO / "data/mnist.npz")
    a = ap.parse_args()
    runs = a.runs.split(",")
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        params = yaml.safe_load(a.params.read_text())
        params["train"]["epochs"] = a.epochs
        (tmp / "params.yaml").write_text(yaml.safe_dump(params))
        print(f"{len(runs)} trainings ({', '.join(runs)}), {a.epochs} epochs each, {a.params.name} otherwise; "
              f"{os.cpu_count()} cores")
        results: dict[str, list[float]] = {"2 workers x 1 thread": [], "1 worker x 2 threads": []}
        for r in range(a.repeats):
            for name, (w, t) in (("2 workers x 1 thread", (2, 1)), ("1 worker x 2 threads", (1, 2))):
                load = os.getloadavg()[0]
                s = layout(runs, tmp / "params.yaml", tmp / f"r{r}", w, t, a.data)
                results[name].append(s)
                print(f"  {name}: {s:6.1f} s  ({s / (len(runs) * a.epochs):.2f} s per training-epoch; "
                      f"load before {load:.2f})", flush=True)
        best = {k: min(v) for k, v in results.items()}
        ratio = best["1 worker x 2 threads"] / best["2 workers x 1 thread"]
        print(f"best of {a.repeats}: 2x1 {best['2 workers x 1 thread']:.1f} s, 1x2 {best['1 worker x 2 threads']:.1f} s; "
              f"1x2 takes {ratio:.2f}x the time of 2x1")


if __name__ == "__main__":
    main()
