"""Promises that hold when things go wrong: a killed run resumes to the same bytes; no file is ever half-written.

These kill real `vaebench train` subprocesses with SIGKILL.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from vaebench import io as vio
from vaebench.run.checkpoint import SIDECAR, WEIGHTS, load_checkpoint
from vaebench.config import to_dict

pytestmark = pytest.mark.slow

# ~0.3-1 s per epoch: long enough to be killed in the middle of one
RESUMABLE = {
    "data": {"train_subset": 6000, "test_subset": 200},
    "model": {"hidden": 64},
    "train": {"epochs": 6, "batch_size": 50, "heldout": 100},
}


def _params_file(tmp_path: Path) -> Path:
    from conftest import make_tiny_params

    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(to_dict(make_tiny_params(**RESUMABLE))))
    return path


def _train_cmd(params: Path, data: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "vaebench.cli", "train", "--model", "vae", "--zdim", "2", "--quiet",
            "--params", str(params), "--data", str(data), "--out", str(out)]


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1"}


def _epochs_done(partial: Path) -> int:
    try:
        return json.loads((partial / "state.json").read_text())["epoch"]
    except (OSError, ValueError, KeyError):
        return 0


def test_killed_training_resumes_to_identical_bytes(tmp_path: Path, mnist_file: Path) -> None:
    params = _params_file(tmp_path)
    # the reference: a run that is never interrupted
    ref = tmp_path / "ref"
    subprocess.run(_train_cmd(params, mnist_file, ref), check=True, env=_env(), capture_output=True)

    out = tmp_path / "killed"
    partial = out.with_name(out.name + ".partial")
    proc = subprocess.Popen(_train_cmd(params, mnist_file, out), env=_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while _epochs_done(partial) < 2 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert proc.poll() is None, "training finished before it could be killed; make RESUMABLE longer"
    time.sleep(0.15)  # now inside epoch 3 (or later): mid-epoch, after at least two complete epochs
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = _epochs_done(partial)
    assert 2 <= done < 6 and not (out / WEIGHTS).exists()

    rerun = subprocess.run(_train_cmd(params, mnist_file, out), env=_env(), capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr
    assert f"resuming vae z=2 after epoch {done}" in rerun.stderr
    # what it says it will do, and then what it did: only the epochs this run ran
    assert f"training vae z=2: epochs {done + 1}-6 of 6," in rerun.stderr
    ran = f"epochs {done + 1}-6" if done < 5 else "epoch 6"
    assert f"vae z=2: ran {ran} ({6 - done} of 6, resumed after epoch {done}) in " in rerun.stderr
    assert (out / WEIGHTS).read_bytes() == (ref / WEIGHTS).read_bytes()
    assert (out / SIDECAR).read_bytes() == (ref / SIDECAR).read_bytes()
    assert not partial.exists()


def _check_complete(out: Path) -> int:
    """Every non-temporary file the run left is complete and loads; return how many were checked."""
    checked = 0
    partial = out.with_name(out.name + ".partial")
    if (partial / "state.json").exists():
        info = json.loads((partial / "state.json").read_text())  # parses: not truncated
        assert vio.sha256_file(partial / "state.safetensors") == info["state_sha256"]
        checked += 2
    if (out / SIDECAR).exists():
        load_checkpoint(out)  # sidecar parses, weights match their hash and load
        checked += 2
    return checked


def test_kills_at_random_moments_never_leave_a_truncated_file(tmp_path: Path, mnist_file: Path) -> None:
    params = _params_file(tmp_path)
    out = tmp_path / "run"
    rng = random.Random(1)
    checked = 0
    partial = out.with_name(out.name + ".partial")
    for _ in range(4):
        start = _epochs_done(partial)
        proc = subprocess.Popen(_train_cmd(params, mnist_file, out), env=_env(),
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        while _epochs_done(partial) <= start and proc.poll() is None:  # wait for this round's first write
            time.sleep(0.01)
        time.sleep(rng.uniform(0.0, 0.4))  # then kill anywhere: in a step, or while the next state is written
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        checked += _check_complete(out)
    assert checked > 0, "no kill landed after a write; the test proved nothing"
    final = subprocess.run(_train_cmd(params, mnist_file, out), env=_env(), capture_output=True, text=True)
    assert final.returncode == 0, final.stderr
    load_checkpoint(out)
    assert not list(out.glob(".*.tmp")), "temporary files must not outlive a successful run"
