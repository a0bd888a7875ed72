"""What the validation split costs in nats: the 3-seed runs (58,000 training images, train.monitor: validation)
against the one-seed runs before them (60,000 images; their held-out curve read test images, which trained nothing).

    python bench/validation_cost.py [--rev 0b77237] [--runs metrics/runs]

The one-seed runs' metrics are `metrics/all_runs.json` at `--rev` (a commit before the 3-seed report replaced it);
the new ones are whichever `metrics/runs/<cell>-<seed>.json` exist. Per cell: old, the new seeds' mean, sd and n,
and new - old (positive: the split costs nats). Each difference holds one training draw on the old side and
the mean of n on the new, so it is the split's cost plus noise of sd about s * sqrt(1 + 1/n); the cells are
independent replicates of it, and their mean difference, with a t-interval over cells, is the estimate.
Cells whose configuration changed otherwise between the two runs are not comparable and are left out:
by default the thesis grid (vae, cvae), whose training-seed sds are alike (0.1-0.9 nats); `--cells` adds the
variants both runs define the same way (their sds reach 3.4 nats for the denoising VAE, which swamps the estimate).
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
from collections import defaultdict
from pathlib import Path

from vaebench.report.stats import aggregate

NAME = re.compile(r"^(?P<cell>[a-z0-9_]+-\d+)-(?P<seed>\d+)\.json$")
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rev", default="0b77237", help="a commit whose metrics/all_runs.json holds the one-seed runs")
    ap.add_argument("--runs", type=Path, default=Path("metrics/runs"))
    ap.add_argument("--cells", default="vae,cvae",
                    help="model names whose runs are compared, comma-separated (e.g. vae,cvae,beta0_5,iwae5)")
    ap.add_argument("--min-seeds", type=int, default=1)
    a = ap.parse_args()
    old = json.loads(subprocess.run(["git", "show", f"{a.rev}:metrics/all_runs.json"], capture_output=True,
                                    text=True, check=True).stdout)["runs"]
    if any(re.search(r"-\d+-\d+$", k) for k in old):
        raise SystemExit(f"{a.rev}: metrics/all_runs.json already holds seeded runs; name a commit before them")
    keep = set(a.cells.split(","))
    new: dict[str, dict[int, dict]] = defaultdict(dict)
    for p in sorted(a.runs.glob("*.json")):
        m = NAME.match(p.name)
        if m and m["cell"] in old and m["cell"].rsplit("-", 1)[0] in keep:
            new[m["cell"]][int(m["seed"])] = json.loads(p.read_text())
    print(f"one-seed runs: metrics/all_runs.json at {a.rev} (60,000 training images); 3-seed runs: {a.runs}/ "
          f"(58,000; 2,000 held out for the curve)")
    for metric in ("iwae_nll", "neg_elbo"):
        print(f"\n{metric}: cell, old, new mean ± sd (n), new - old")
        diffs = []
        for cell, seeds in sorted(new.items()):
            vals = [r[metric] for r in seeds.values() if metric in r]
            if len(vals) < a.min_seeds or metric not in old[cell]:
                continue
            mean = statistics.fmean(vals)
            sd = statistics.stdev(vals) if len(vals) > 1 else float("nan")
            d = mean - old[cell][metric]
            diffs.append(d)
            print(f"  {cell:14s} {old[cell][metric]:8.2f}  {mean:8.2f} ± {sd:4.2f} ({len(vals)})  {d:+6.2f}")
        if len(diffs) >= 2:
            agg = aggregate(diffs)  # the report's own t-interval (report/stats.py)
            print(f"  mean over {agg.n} cells: {agg.mean:+.2f} nats, 95 % t-interval [{agg.lo:+.2f}, {agg.hi:+.2f}] "
                  f"(sd of the differences {agg.sd:.2f})")


if __name__ == "__main__":
    main()
