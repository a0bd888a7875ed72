"""Stages `train` and `train-variant`: one run's checkpoint and training curves.

    python -m vaebench.stages.train --run vae-5-0 --data data/mnist.npz --out models/vae-5-0 --live logs/vae-5-0

Resumes from `<out>.partial/` after a crash; one line per epoch on stderr.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from vaebench.config import Params, check_zdim
from vaebench.run.data import load_mnist
from vaebench.run.fingerprint import refuse_to_replace
from vaebench.run.fit import FitResult, fit
from vaebench.stages import entry, log, run_params, run_parser


def train(p: Params, model: str, zdim: int, data: Path, out: Path, live: Path | None = None,
          overwrite: bool = False, log: Callable[[str], None] = log, progress: bool = False) -> FitResult:
    """Train `model` at `zdim` into `out`, refusing to replace a checkpoint of another configuration
    unless `overwrite`."""
    p.variant(model)
    check_zdim(zdim)
    mnist = load_mnist(data, p.data.train_subset, p.data.test_subset)
    if not overwrite:
        refuse_to_replace(out, model, zdim, p, mnist, "pass --overwrite to replace it, or another --out")
    return fit(model, zdim, p, data, out, live_dir=live, log=log, progress=progress, data=mnist)


def main(argv: Sequence[str] | None = None) -> None:
    ap = run_parser(__doc__)
    ap.add_argument("--out", type=Path, required=True, help="checkpoint directory")
    ap.add_argument("--live", type=Path, help="dvclive directory for the training curves")
    a = ap.parse_args(argv)
    p, model, zdim = run_params(a)
    train(p, model, zdim, a.data, a.out, a.live)


if __name__ == "__main__":
    raise SystemExit(entry(main))
