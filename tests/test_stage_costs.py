"""bench/stage_costs.py: the run's cost per stage kind from grid logs, and what is left of it, by hand."""

from __future__ import annotations

import subprocess
import sys
from importlib.util import module_from_spec, spec_from_file_location
from pathlib import Path

from dvcproject import REPO, TINY, make_project


def test_what_is_left_is_priced_by_each_kinds_median_and_minimum(tmp_path: Path) -> None:
    log = tmp_path / "grid.log"
    log.write_text("\n".join([
        "Dask: 9 stages to visit",
        "[1/9] train@vae-5-0: ran in 500 s on vm (500 s elapsed)",
        "[2/9] train@vae-5-1: ran in 700 s on vm (1200 s elapsed)",
        "[3/9] train@vae-10-0: ran in 900 s on vm (2100 s elapsed)",  # train vae: min 500, median 700
        "[4/9] evaluate@vae-5-0: ran in 300 s on vm (2400 s elapsed)",  # evaluate vae: 300
        "[5/9] evaluate@vae-2-0: ran in 1200 s on vm (3600 s elapsed)",  # the quadrature kind: 1200
        "[6/9] train@cvae-5-0: up to date",  # not a measured run
        "[7/9] train@vae-3-0: ran in 2000 s (CPU 600 s) on vm (5600 s elapsed)",  # its CPU seconds count, not 2000
        "[8/9] train@vae-2-0: ran (resumed) in 90 s (CPU 40 s) on vm (5690 s elapsed)",  # its last epochs only
    ]))
    root = make_project(tmp_path / "project", {**TINY, "grid": {**TINY["grid"], "seeds": [0, 1]}})
    # every stage but these five is done: two VAE trainings, a VAE scoring, a quadrature scoring, a CVAE training
    left = {"train@vae-2-1", "train@vae-3-1", "evaluate@vae-3-1", "evaluate@vae-2-1", "train@cvae-3-1"}
    spec = spec_from_file_location("stage_costs", REPO / "bench" / "stage_costs.py")
    sc = module_from_spec(spec)
    spec.loader.exec_module(sc)
    every = [s for s in sc.pipeline_stages(root) if s not in ("check", "download")]
    assert left <= set(every) and len(every) > 20
    done = tmp_path / "done.txt"
    done.write_text("\n".join(s for s in every if s not in left) + "\n")
    proc = subprocess.run([sys.executable, str(REPO / "bench" / "stage_costs.py"), str(log), "--root", str(root),
                           "--done", str(done)], capture_output=True, text=True, cwd=root)
    assert proc.returncode == 0, proc.stderr
    line = proc.stdout.strip().splitlines()[-1]
    # train vae: wall times 500, 700, 900 and one CPU measurement, 600: a kind with CPU seconds counts only those
    # (and never a resumed run). Medians: 600 x 2 + evaluate vae 300 + quadrature 1200 = 2,700 s = 45 min, minima
    # the same; the CVAE training's kind was never measured: named, not counted
    assert line == ("left: 5 stages (evaluate vae 1, evaluate vae z<=2 (quadrature) 1, train cvae 1, train vae 2): "
                    "45 core-minutes from the medians, 45 from the minima, about 0.4 h on 2 workers; "
                    "not measured, so not counted: train cvae")
    row = proc.stdout.split("\ntrain vae", 1)[1].splitlines()[0].split()
    assert row[:5] == ["4", "1", "600", "600", "600"]  # stages in the tiny pipeline, measured, min, median, max
    evaluate = proc.stdout.split("\nevaluate vae ", 1)[1].splitlines()[0].split()
    assert evaluate[:4] == ["2", "1", "300", "300"]  # a kind with wall times only keeps them
    assert "kinds counted in CPU seconds: train vae;" in proc.stdout
    assert "2 measured in these logs" in proc.stdout  # of the tiny pipeline: evaluate@vae-2-0, train@vae-3-0
