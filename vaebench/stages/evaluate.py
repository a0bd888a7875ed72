"""Stages `evaluate`, `exact` and `evaluate-variant`: one trained run's test metrics, as JSON.

    python -m vaebench.stages.evaluate --run vae-5-0 --data data/mnist.npz --ckpt models/vae-5-0
        --out metrics/runs/vae-5-0.json [--k 5000] [--no-exact]

The checkpoint must be current for the params (else one line and exit 2); nothing is trained here.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from vaebench import io as vio
from vaebench.config import ConfigError, Params
from vaebench.core.models import VAE
from vaebench.run.data import Mnist
from vaebench.run.score import load_current, load_data, score
from vaebench.stages import entry, log, run_params, run_parser


def run_metrics(p: Params, model: str, zdim: int, mnist: Mnist, net: VAE, meta: dict[str, Any], k: int | None = None,
                exact: bool = True, progress: bool = False, log: Callable[[str], None] = log) -> dict[str, Any]:
    """The metrics file of a loaded run: its name, the hash of the weights scored, and `score`'s numbers."""
    if k is not None and k < 1:
        raise ConfigError(f"--k: must be >= 1, got {k}")
    t0 = time.perf_counter()
    # the weights' hash ties the numbers to the checkpoint they score (`vaebench runs` checks it)
    metrics = {"model": model, "zdim": zdim, "train_seed": p.train.seed, "weights_sha256": meta["weights_sha256"],
               **score(net, p, mnist, k=k, progress=progress, variant=p.variant(model), exact=exact, log=log)}
    log(f"evaluated {model} z={zdim} (k={metrics['k']}) in {time.perf_counter() - t0:.0f} s")
    return metrics


def main(argv: Sequence[str] | None = None) -> None:
    ap = run_parser(__doc__, ckpt=True)
    ap.add_argument("--out", type=Path, required=True, help="the metrics JSON to write")
    ap.add_argument("--k", type=int, help="importance samples (overrides eval.k)")
    ap.add_argument("--no-exact", action="store_true", help="skip the exact NLL (quadrature, enumeration)")
    a = ap.parse_args(argv)
    p, model, zdim = run_params(a)
    mnist = load_data(p, a.data)
    net, meta = load_current(model, zdim, p, mnist, a.ckpt)
    vio.write_json(a.out, run_metrics(p, model, zdim, mnist, net, meta, k=a.k, exact=not a.no_exact))


if __name__ == "__main__":
    raise SystemExit(entry(main))
