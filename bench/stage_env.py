"""A training stage under the environment a Dask worker hands its children, and under `stage_env`'s.

    python bench/stage_env.py [--images 12000] [--epochs 2] [--rounds 2] [--data data/mnist.npz]

Dask's Nanny starts each worker process with MALLOC_TRIM_THRESHOLD_=65536 (distributed.nanny.pre-spawn-environ),
and a stage's `dvc repro` inherits it. This runs the real train stage (`python -m vaebench.stages.train`, the
default network and params, one thread, `--images` training images for `--epochs` epochs) as a subprocess,
alternating (A B A B) the worker's environment (A: the variable set, as every stage of `vaebench-grid dask` ran
until 2026-12-07) and stage_env's (B: it removed), and prints per run the wall time, the CPU seconds in user
and kernel mode, the minor page faults (the children's rusage), the weights' sha256, and the 1-minute load.
CPU time is the figure to compare on a loaded machine (wall time counts other processes' turns too). Nothing
here asserts: the figures are this machine's; the weights must agree (the bytes do not depend on malloc).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from vaebench.grid.dask import stage_env

TRIM = {"MALLOC_TRIM_THRESHOLD_": "65536"}  # Dask's pre-spawn-environ value (distributed 2026.8.0)


def one_run(env: dict[str, str], data: Path, images: int, epochs: int) -> dict[str, float | str]:
    with tempfile.TemporaryDirectory() as d:
        root = Path(d)
        params = yaml.safe_load(Path("params.yaml").read_text())
        params["data"]["train_subset"] = images
        params["train"]["epochs"] = epochs
        (root / "params.yaml").write_text(yaml.safe_dump(params))
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "vaebench.stages.train", "--run", "vae-20-0", "--data",
                               str(data.resolve()), "--out", str(root / "model")], cwd=root, env=env,
                              capture_output=True, text=True)
        wall = time.perf_counter() - t0
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if proc.returncode != 0:
            sys.exit(f"stage_env: the train stage failed:\n{proc.stderr[-2000:]}")
        weights = hashlib.sha256((root / "model" / "model.safetensors").read_bytes()).hexdigest()
    return {"wall": wall, "user": after.ru_utime - before.ru_utime, "sys": after.ru_stime - before.ru_stime,
            "minflt": after.ru_minflt - before.ru_minflt, "weights": weights[:16], "load": os.getloadavg()[0]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=12_000)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--data", type=Path, default=Path("data/mnist.npz"))
    a = ap.parse_args()
    base = stage_env(1)
    settings = {"A worker's (MALLOC_TRIM_THRESHOLD_=65536)": {**base, **TRIM}, "B stage_env's (unset)": base}
    held = yaml.safe_load(Path("params.yaml").read_text())["train"]["heldout"]  # train.monitor: validation holds them out
    print(f"stage_env: train stage, vae-20-0, {a.images} images ({a.images - held} trained on, {held} held out) "
          f"x {a.epochs} epochs, 1 thread; "
          f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores")
    cpu: dict[str, list[float]] = {k: [] for k in settings}
    for r in range(a.rounds):
        for name, env in settings.items():
            f = one_run(env, a.data, a.images, a.epochs)
            cpu[name].append(f["user"] + f["sys"])
            print(f"  round {r + 1} {name:42s} wall {f['wall']:6.1f} s  user {f['user']:6.1f} s  sys {f['sys']:5.1f} s"
                  f"  page faults {f['minflt']:>9,}  weights {f['weights']}  [load {f['load']:.2f}]", flush=True)
    (ka, a_cpu), (kb, b_cpu) = cpu.items()
    print(f"CPU seconds (user + sys), best of {a.rounds}: A {min(a_cpu):.1f}, B {min(b_cpu):.1f}: "
          f"A takes {min(a_cpu) / min(b_cpu):.2f}x B's")


if __name__ == "__main__":
    main()
