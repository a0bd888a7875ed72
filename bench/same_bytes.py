"""Does a refactor keep the thesis runs' bytes? Train and score small thesis configurations with the
code of another git revision and with this checkout's, and compare the weights and metrics hashes.

    python bench/same_bytes.py --rev 00baef4 --data data/mnist.npz
    python bench/same_bytes.py --rev eff7e5e --setting literature   # the literature run's pieces

Cheap (about a minute at one thread): 2,000 training and 300 test images, 64 hidden units, 3 epochs,
vae and cvae at z = 2 (with the quadrature) and z = 5. Not a substitute for the full re-run, which
compares the real metrics files; a quick check before starting one.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

RUN = r'''
import hashlib, json, sys
from pathlib import Path
import vaebench
from vaebench.config import params_from_dict
from vaebench.train import fit
from vaebench.runs import load_data, score
from vaebench.checkpoint import load_checkpoint
out, mn, setting = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
p = {"data": {"train_subset": 2000, "test_subset": 300}, "model": {"hidden": 64},
     "train": {"epochs": 3, "batch_size": 128, "heldout": 100},
     "eval": {"k": 20, "k_marginal": 5, "quad_n": 60, "spread_images": 100}}
if setting == "literature":  # literature/params.yaml's pieces: tanh, Adam with eps 1e-4, the staged rates
    p["model"]["activation"] = "tanh"
    p["train"].update(optimizer="adam", eps=1e-4, schedule="burda", epochs=4)
p = params_from_dict(p)
data = load_data(p, mn)
res = {}
for model, z in (("vae", 2), ("cvae", 2), ("vae", 5), ("cvae", 5)):
    fit(model, z, p, mn, out / f"{model}-{z}", log=lambda s: None, progress=False, data=data)
    net, meta = load_checkpoint(out / f"{model}-{z}")
    m = score(net, p, data, progress=False)
    res[f"{model}-{z}"] = [meta["weights_sha256"], hashlib.sha256(json.dumps(m, sort_keys=True).encode()).hexdigest()]
print(json.dumps(res))
'''


def hashes(source: Path, data: Path, work: Path, setting: str) -> dict[str, list[str]]:
    env = {**os.environ, "PYTHONPATH": str(source), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", RUN, str(work), str(data), setting], env=env, cwd=work.parent,
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"the run with the code of {source} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rev", required=True, help="git revision to compare with (e.g. the commit before a refactor)")
    ap.add_argument("--data", type=Path, default=REPO / "data/mnist.npz")
    ap.add_argument("--setting", choices=("thesis", "literature"), default="thesis",
                    help="thesis: params.yaml's pieces; literature: tanh, Adam eps 1e-4, the burda schedule (4 epochs)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        old = Path(tmp) / "old"
        subprocess.run(["git", "-C", str(REPO), "worktree", "add", "-q", "--detach", str(old), args.rev], check=True)
        try:
            before = hashes(old, args.data.resolve(), Path(tmp) / "runs-old", args.setting)
            after = hashes(REPO, args.data.resolve(), Path(tmp) / "runs-new", args.setting)
        finally:
            subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(old)], check=True)
    same = True
    for run in before:
        w, m = (a == b for a, b in zip(before[run], after[run]))
        same &= w and m
        print(f"{run:8s} weights {'same' if w else 'DIFFERENT'}  metrics {'same' if m else 'DIFFERENT'}")
    print(f"{args.rev} vs this checkout: {'byte-identical' if same else 'bytes moved'}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
