"""Stages `figures` and `figures-variant`: one run's figures, drawn from its own checkpoint.

    python -m vaebench.stages.figures --run vae-2-0 --data data/mnist.npz --ckpt models/vae-2-0 --out plots/runs/vae-2-0
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from vaebench.run.figures import draw_run
from vaebench.stages import entry, run_params, run_parser


def main(argv: Sequence[str] | None = None) -> None:
    ap = run_parser(__doc__, ckpt=True)
    ap.add_argument("--out", type=Path, required=True, help="directory for the figures")
    a = ap.parse_args(argv)
    p, model, zdim = run_params(a)
    print("\n".join(str(w) for w in draw_run(p, model, zdim, a.ckpt, a.data, a.out)))


if __name__ == "__main__":
    raise SystemExit(entry(main))
