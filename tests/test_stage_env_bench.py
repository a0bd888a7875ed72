"""bench/stage_env.py runs the real train stage under both environments: the same weights, and the Nanny's
MALLOC_TRIM_THRESHOLD_ shows as page faults (the bench's figures are timings; this checks what it measures)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from dvcproject import REPO


def test_the_bench_trains_the_same_weights_and_counts_the_nannys_page_faults(mnist_file: Path) -> None:
    proc = subprocess.run([sys.executable, str(REPO / "bench" / "stage_env.py"), "--images", "3000", "--epochs", "1",
                           "--rounds", "1", "--data", str(mnist_file)], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = re.findall(r"round 1 ([ABC]) .* page faults\s+([\d,]+)\s+output (\w+)", proc.stdout)
    assert [r[0] for r in rows] == ["A", "B", "C"], proc.stdout
    (_, faults_a, weights_a), (_, faults_b, weights_b), (_, _, weights_c) = rows
    assert weights_a == weights_b == weights_c  # malloc's settings move no byte
    # 4 steps at batch 256 (1,000 images; 2,000 held out) and the held-out ELBO, each tensor over 128 KiB
    # page-faulted anew under A (about 4,000 faults a step; measured 196k against 126k)
    assert int(faults_a.replace(",", "")) > int(faults_b.replace(",", "")) + 20_000, proc.stdout
    assert re.search(r"A takes \d+\.\d\dx B's, C \d+\.\d\dx B's", proc.stdout)


def test_the_bench_scores_one_model_to_the_same_metrics_under_each_environment(mnist_file: Path) -> None:
    proc = subprocess.run([sys.executable, str(REPO / "bench" / "stage_env.py"), "--stage", "evaluate", "--images",
                           "2300", "--epochs", "1", "--test-images", "40", "--rounds", "1", "--data", str(mnist_file)],
                          cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "on 40 test images, k = 500" in proc.stdout
    digests = re.findall(r"round 1 ([ABC]) .* output (\w+)", proc.stdout)
    assert [d[0] for d in digests] == ["A", "B", "C"] and len({d[1] for d in digests}) == 1, proc.stdout
