"""Stages `figures` and `figures-variant`: one run's figures, drawn from its own checkpoint.

    python -m vaebench.stages.figures --run vae-2 --data data/mnist.npz --ckpt models/vae-2 --out plots/runs/vae-2
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from vaebench.config import load_params, split_run
from vaebench.run.figures import draw_run
from vaebench.stages import entry, run_parser


def main(argv: Sequence[str] | None = None) -> None:
    ap = run_parser(__doc__, ckpt=True)
    ap.add_argument("--out", type=Path, required=True, help="directory for the figures")
    a = ap.parse_args(argv)
    model, zdim = split_run(a.run, "--run")
    print("\n".join(str(w) for w in draw_run(load_params(a.params), model, zdim, a.ckpt, a.data, a.out)))


if __name__ == "__main__":
    raise SystemExit(entry(main))
