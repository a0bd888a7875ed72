"""The training-seed spread of every cell scored so far: mean, sd and n over its seeds, per metric.

    python bench/seed_sds.py [--runs metrics/runs] [--lock dvc.lock] [--min-seeds 2]

For a grid longer than a session: the report needs every run, this reads whichever metrics files exist
(`<model>-<size>-<seed>.json`) and prints each cell with at least --min-seeds seeds, then the sd pooled over
each family's cells (sqrt of sum (n-1) s^2 / sum (n-1): the quantity the issue's "0.6 nats at 40 epochs"
estimated from two draws). A file whose md5 is not the one dvc.lock records for it (a stage not re-run
since the code or params changed, or not run by DVC) is left out and named. It reads files only.
"""

from __future__ import annotations

import argparse
import hashlib
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
    ap.add_argument("--lock", type=Path, default=Path("dvc.lock"), help="the lock whose md5s the files must match")
    ap.add_argument("--min-seeds", type=int, default=2)
    a = ap.parse_args()
    import yaml

    locked = {}
    if a.lock.exists():
        for stage in (yaml.safe_load(a.lock.read_text()) or {}).get("stages", {}).values():
            for out in stage.get("outs", []):
                locked[Path(out["path"]).name if Path(out["path"]).parent == a.runs else out["path"]] = out.get("md5")
    cells: dict[str, dict[int, dict]] = defaultdict(dict)
    skipped = []
    for f in sorted(a.runs.glob("*.json")):
        m = NAME.match(f.name)
        if not m:
            continue
        if a.lock.exists() and locked.get(f.name, locked.get(str(f))) != hashlib.md5(f.read_bytes()).hexdigest():
            skipped.append(f.name)
            continue
        cells[m["cell"]][int(m["seed"])] = json.loads(f.read_text())
    print(f"{'cell':<14} {'n':>2}  " + "  ".join(f"{k + ' mean ± sd':>26}" for k in METRICS) + "  seeds")
    family_sds: dict[tuple[str, str], list[tuple[float, int]]] = defaultdict(list)  # (sd, n) per cell
    for cell, runs in sorted(cells.items(), key=lambda kv: (kv[0].split("-")[0], int(kv[0].split("-")[1]))):
        if len(runs) < a.min_seeds:
            continue
        cols = []
        for key in METRICS:
            values = [r[key] for r in runs.values() if isinstance(r.get(key), (int, float))]
            if len(values) >= 2 and all(math.isfinite(v) for v in values):
                sd = statistics.stdev(values)
                family_sds[(cell.split("-")[0], key)].append((sd, len(values)))
                cols.append(f"{statistics.fmean(values):>17.2f} ± {sd:<6.2f}")
            else:
                cols.append(f"{'-':>26}")
        print(f"{cell:<14} {len(runs):>2}  " + "  ".join(cols) + f"  {sorted(runs)}")
    if family_sds:
        print("\ntraining-seed sd pooled per family (sqrt(sum (n-1) s^2 / sum (n-1))):")
        for (family, key), sds in sorted(family_sds.items()):
            df = sum(n - 1 for _, n in sds)
            pooled = math.sqrt(sum((n - 1) * sd * sd for sd, n in sds) / df)
            print(f"  {family:<8} {key:<18} {pooled:.2f} nats over {len(sds)} cell(s), {df} df")
    if skipped:
        print(f"\nleft out, not the bytes {a.lock} records: {', '.join(skipped)}")


if __name__ == "__main__":
    main()
