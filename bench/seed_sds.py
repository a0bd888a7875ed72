"""The training-seed spread of every cell scored so far: mean, sd and n over its seeds, per metric.

    python bench/seed_sds.py [--runs metrics/runs] [--min-seeds 2]

For a grid longer than a session: the report needs every run, this reads whichever metrics files exist
(`<model>-<size>-<seed>.json`) and prints each cell with at least --min-seeds seeds, then the mean sd per
family (the quantity the issue's "0.6 nats at 40 epochs" estimated from two draws). It reads files only.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import statistics
from collections import defaultdict
from pathlib import Path

METRICS = ("iwae_nll", "neg_elbo", "iwae_nll_marginal")
NAME = re.compile(r"^(?P<cell>[a-z0-9_]+-\d+)-(?P<seed>\d+)\.json$")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=Path, default=Path("metrics/runs"))
    ap.add_argument("--min-seeds", type=int, default=2)
    a = ap.parse_args()
    cells: dict[str, dict[int, dict]] = defaultdict(dict)
    for f in sorted(a.runs.glob("*.json")):
        m = NAME.match(f.name)
        if m:
            cells[m["cell"]][int(m["seed"])] = json.loads(f.read_text())
    print(f"{'cell':<14} {'n':>2}  " + "  ".join(f"{k + ' mean ± sd':>26}" for k in METRICS) + "  seeds")
    family_sds: dict[tuple[str, str], list[float]] = defaultdict(list)
    for cell, runs in sorted(cells.items(), key=lambda kv: (kv[0].split("-")[0], int(kv[0].split("-")[1]))):
        if len(runs) < a.min_seeds:
            continue
        cols = []
        for key in METRICS:
            values = [r[key] for r in runs.values() if isinstance(r.get(key), (int, float))]
            if len(values) >= 2 and all(math.isfinite(v) for v in values):
                sd = statistics.stdev(values)
                family_sds[(cell.split("-")[0], key)].append(sd)
                cols.append(f"{statistics.fmean(values):>17.2f} ± {sd:<6.2f}")
            else:
                cols.append(f"{'-':>26}")
        print(f"{cell:<14} {len(runs):>2}  " + "  ".join(cols) + f"  {sorted(runs)}")
    if family_sds:
        print("\nmean training-seed sd per family (root mean square over its cells):")
        for (family, key), sds in sorted(family_sds.items()):
            print(f"  {family:<8} {key:<18} {math.sqrt(statistics.fmean(s * s for s in sds)):.2f} nats "
                  f"over {len(sds)} cell(s)")


if __name__ == "__main__":
    main()
