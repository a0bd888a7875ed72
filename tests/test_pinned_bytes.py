"""The same bytes on every machine: a tiny training and its evaluation, pinned by hash.

vaebench's guarantee is that a stage's outputs are a function of its inputs, not of the CPU that ran it:
the random streams are numpy Philox (platform-independent), MKL runs in its strict mode, and every
encoder and decoder call has a fixed row count. Nothing but a pinned hash notices when a new fused op, a
compiled kernel or a torch upgrade makes the bytes depend on the instruction set. This test runs the real
stage entry points (as `dvc repro` does: a subprocess at torch's default thread count) on the real network
(784-500-500, the default params) for one epoch on 2,048 training images, scores the models on 500 test
images, and compares the hashes with the ones committed here. CI runs it on whatever CPU it lands on.

Where the hashes were produced and checked (the CPU kinds this project's machines have had):
- AMD EPYC with AVX-512 (torch's CPU capability AVX512), 2026-12-06: produced them (with train.monitor:
  validation; the same code with the first pins, before the validation split, also gave the bytes of the
  commit before it, 4b3dbd9, whose AVX2-only re-run of train@vae-5 matched an AVX-512 machine's).

If this test fails after a deliberate change of the numerics (a new stream, another op order), the new
hashes go here with the CPU that produced them, and the pipeline's outputs are re-run. If it fails with no
change in the code, the bytes now depend on the machine: find out which op, before anything else.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from vaebench.run import fused

# train: sha256 of model.safetensors; evaluate: md5 of the metrics JSON (DVC's hash of an output file)
PINNED = {
    "vae-5": ("4b2885a5579cf6d8e1c284234b7140913492fc6a506bb9ac79e446ddbb38145c", "7b1946f92fe67721ac7392ec7fd23047"),
    "vae-2": ("4ce19e505009d5cc87ac0766ccd73302801a1f5ec725214d65c9506d86787899", "d2aa0c88f7324f221525138f9b16b917"),
    "cvae-5": ("a8dea5db39e790be7be83a9561fe898750e949d02348f33a4ec5a792f4c68e56", "706cbf0820bffde4e993ab43dde38c99"),
}

PARAMS = {
    "grid": {"models": ["vae", "cvae"], "zdims": [2, 5]},
    "data": {"train_subset": 2048, "test_subset": 500},
    "train": {"epochs": 1, "heldout": 500},
    "eval": {"k": 50, "k_marginal": 5, "spread_images": 100, "quad_n": 100},
}


def _stage(module: str, *args: str | Path, cwd: Path, threads: int | None = None) -> str:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    if threads is not None:
        env["OMP_NUM_THREADS"] = str(threads)  # as `vaebench-grid` runs a stage
    proc = subprocess.run([sys.executable, "-m", f"vaebench.stages.{module}", *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout + proc.stderr


@pytest.fixture(scope="module")
def hashes(tmp_path_factory, mnist_file) -> dict[str, tuple[str, str]]:
    root = tmp_path_factory.mktemp("pinned")
    (root / "params.yaml").write_text(yaml.safe_dump(PARAMS))
    out = {}
    for run in PINNED:
        ckpt, metrics = root / "models" / run, root / "metrics" / f"{run}.json"
        _stage("train", "--run", run, "--data", mnist_file, "--out", ckpt, cwd=root)
        _stage("evaluate", "--run", run, "--data", mnist_file, "--ckpt", ckpt, "--out", metrics, cwd=root)
        out[run] = (hashlib.sha256((ckpt / "model.safetensors").read_bytes()).hexdigest(),
                    hashlib.md5(metrics.read_bytes()).hexdigest())
    # one thread, as the grid trains: RMSprop's fused kernel (run/fused.py) instead of torch's parallel ops
    ckpt = root / "models" / "vae-5-one-thread"
    log = _stage("train", "--run", "vae-5", "--data", mnist_file, "--out", ckpt, cwd=root, threads=1)
    # the console names the path: the fused kernel wherever this machine builds one (tests/test_optim.py says where)
    assert f"; RMSprop: {'fused kernel' if fused.kernel()[0] is not None else 'torch ops'}" in log
    out["vae-5 at one thread"] = (hashlib.sha256((ckpt / "model.safetensors").read_bytes()).hexdigest(), out["vae-5"][1])
    print(json.dumps(out, indent=1))
    return out


@pytest.mark.parametrize("run", [*sorted(PINNED), "vae-5 at one thread"])
def test_a_tiny_training_and_its_evaluation_give_the_pinned_bytes(hashes, run) -> None:
    weights, metrics = hashes[run]
    assert (weights, metrics) == PINNED[run.split()[0]], (
        f"{run}: weights sha256 {weights}, metrics md5 {metrics}; pinned {PINNED[run.split()[0]]}. See this module's "
        "docstring: a deliberate change of the numerics updates the pins, anything else is a machine dependence")
