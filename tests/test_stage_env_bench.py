"""bench/stage_env.py runs the real stages under a Dask worker's, a shell's and stage_env's environment: the same
bytes each time, and the Nanny's MALLOC_TRIM_THRESHOLD_ shows as page faults (the bench's figures are timings;
this checks what it measures). The train stage's bytes under stage_env against a shell's: tests/test_scaling.py
(`vaebench-grid dask` against a sequential `dvc repro`)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from dvcproject import REPO

pytestmark = pytest.mark.slow  # a training and three scorings, real stage processes


def test_the_bench_scores_one_model_to_the_same_metrics_and_counts_the_nannys_page_faults(mnist_file: Path) -> None:
    proc = subprocess.run([sys.executable, str(REPO / "bench" / "stage_env.py"), "--stage", "evaluate", "--images",
                           "2300", "--epochs", "1", "--test-images", "40", "--rounds", "1", "--data", str(mnist_file)],
                          cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "on 40 test images, k = 500" in proc.stdout
    rows = re.findall(r"round 1 ([ABC]) .* page faults\s+([\d,]+)\s+output (\w+)", proc.stdout)
    assert [r[0] for r in rows] == ["A", "B", "C"], proc.stdout
    assert len({r[2] for r in rows}) == 1  # malloc's settings move no byte of the metrics
    faults = {r[0]: int(r[1].replace(",", "")) for r in rows}
    # 40 images x 500 samples (and 40 x 2 x 500 for the evaluation-seed spread) decoded in blocks of 1,024 rows,
    # each block's tensors page-faulted anew under A (measured: 843 k faults for 100 images, 90 k under B)
    assert faults["A"] > 2 * faults["B"] and faults["A"] > 2 * faults["C"], proc.stdout  # the grid's now: not A
    assert re.search(r"A takes \d+\.\d\dx B's, C \d+\.\d\dx B's", proc.stdout)
