"""A stage under three environments: a Dask worker's, a shell's, and the one `vaebench-grid dask` gives it.

    python bench/stage_env.py [--stage train|evaluate] [--images 12000] [--epochs 2] [--test-images 300]
                              [--rounds 2] [--data data/mnist.npz]

Dask's Nanny starts each worker process with MALLOC_TRIM_THRESHOLD_=65536 (distributed.nanny.pre-spawn-environ),
and a stage's `dvc repro` inherits it; `stage_env` (vaebench/grid/dask.py) removes it and sets MALLOC_KEEP. This
runs the real stage (`python -m vaebench.stages.train` or `.evaluate`, default network and params, one thread)
as a subprocess, alternating (A B C A B C):
  A  the worker's environment (MALLOC_TRIM_THRESHOLD_=65536): every stage of `vaebench-grid dask` until 2026-12-07
  B  a shell's (no malloc variable): a plain `dvc repro`
  C  stage_env's (MALLOC_KEEP): `vaebench-grid dask` since 2026-12-07
and prints per run the wall time, the CPU seconds in user and kernel mode and the minor page faults (the
children's rusage), the output's hash (weights, or the metrics file), and the 1-minute load. `--stage train`
trains vae-20-0 on `--images` training images (2,000 of them held out for monitoring) for `--epochs` epochs;
`--stage evaluate` first trains that model once (B), then scores it on `--test-images` test images at the
default eval settings (k = 500, the evaluation-seed spread). CPU time is the figure to compare on a loaded
machine. Nothing here asserts: the figures are this machine's; the hashes must agree (the bytes do not depend
on malloc).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from vaebench.grid.dask import MALLOC_KEEP, stage_env

NANNY = {"MALLOC_TRIM_THRESHOLD_": "65536"}  # Dask's pre-spawn-environ value (distributed 2026.8.0)


def _stage(module: str, args: list[str], root: Path, env: dict[str, str]) -> dict[str, float]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", f"vaebench.stages.{module}", *args], cwd=root, env=env,
                          capture_output=True, text=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        sys.exit(f"stage_env: the {module} stage failed:\n{proc.stderr[-2000:]}")
    return {"wall": wall, "user": after.ru_utime - before.ru_utime, "sys": after.ru_stime - before.ru_stime,
            "minflt": after.ru_minflt - before.ru_minflt, "load": os.getloadavg()[0]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--stage", choices=["train", "evaluate"], default="train")
    ap.add_argument("--images", type=int, default=12_000, help="training images (train.monitor holds 2,000 out)")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--test-images", type=int, default=300, help="test images scored (--stage evaluate)")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--data", type=Path, default=Path("data/mnist.npz"))
    a = ap.parse_args()
    shell = {k: v for k, v in stage_env(1).items() if k not in MALLOC_KEEP}
    settings = {"A a Dask worker's (MALLOC_TRIM_THRESHOLD_=65536)": {**shell, **NANNY},
                "B a shell's (no malloc variable)": shell,
                "C stage_env's (MALLOC_KEEP)": stage_env(1)}
    data = str(a.data.resolve())
    params = yaml.safe_load(Path("params.yaml").read_text())
    params["data"].update(train_subset=a.images, test_subset=a.test_images)
    params["train"]["epochs"] = a.epochs
    held = params["train"]["heldout"]
    with tempfile.TemporaryDirectory() as d:
        root = Path(d)
        (root / "params.yaml").write_text(yaml.safe_dump(params))
        train_args = ["--run", "vae-20-0", "--data", data, "--out", str(root / "model")]
        if a.stage == "train":
            what = f"train vae-20-0, {a.images} images ({a.images - held} trained on) x {a.epochs} epochs"
        else:
            _stage("train", train_args, root, shell)
            what = (f"evaluate vae-20-0 ({a.images - held} images x {a.epochs} epochs) on {a.test_images} test "
                    f"images, k = {params['eval']['k']}")
        print(f"stage_env: {what}, 1 thread; {platform.processor() or platform.machine()}, {os.cpu_count()} cores")
        cpu: dict[str, list[float]] = {k: [] for k in settings}
        for r in range(a.rounds):
            for name, env in settings.items():
                if a.stage == "train":
                    f = _stage("train", [*train_args[:-1], str(root / "m")], root, env)  # a fresh folder each run
                    out = root / "m" / "model.safetensors"
                else:
                    out = root / "metrics.json"
                    f = _stage("evaluate", ["--run", "vae-20-0", "--data", data, "--ckpt", str(root / "model"),
                                            "--out", str(out)], root, env)
                digest = hashlib.sha256(out.read_bytes()).hexdigest()[:16]
                if a.stage == "train":
                    shutil.rmtree(root / "m")
                cpu[name].append(f["user"] + f["sys"])
                print(f"  round {r + 1} {name:48s} wall {f['wall']:6.1f} s  user {f['user']:6.1f} s  sys {f['sys']:5.1f} s"
                      f"  page faults {f['minflt']:>9,}  output {digest}  [load {f['load']:.2f}]", flush=True)
    best = {name[0]: min(v) for name, v in cpu.items()}
    print(f"CPU seconds (user + sys), best of {a.rounds}: A {best['A']:.1f}, B {best['B']:.1f}, C {best['C']:.1f}: "
          f"A takes {best['A'] / best['B']:.2f}x B's, C {best['C'] / best['B']:.2f}x B's")


if __name__ == "__main__":
    main()
