"""Stage `check`: validate a params file and write the stamp every other stage runs after.

    python -m vaebench.stages.check --params params.yaml --out data/params.ok

DVC deletes a stage's outputs before running its command, so a bad value must stop `dvc repro` before any
stage that owns outputs starts. The stamp's bytes never change, so a valid edit re-runs only the stages
whose parameters it touched.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from vaebench import io as vio
from vaebench.config import load_params
from vaebench.resources import require_iwae_fits
from vaebench.stages import entry, parser

STAMP = "params.yaml is valid\n"


def check(params: Path, out: Path | None = None) -> None:
    """Refuse `params` in one line naming the key if anything in it is unknown or not allowed, or if its
    importance samples cannot fit in this machine's memory at the widest run's latent; else stamp `out`."""
    p = load_params(params)
    width = p.widest()
    require_iwae_fits("eval.k", p.eval.k, p.eval.chunk, width)
    if p.exact.zdims:
        require_iwae_fits("exact.k", p.exact.k, p.eval.chunk, max(p.exact.zdims))
    if out is not None:
        vio.write_text(out, STAMP)


def main(argv: Sequence[str] | None = None) -> None:
    ap = parser(__doc__)
    ap.add_argument("--out", type=Path, help="the stamp to write when the parameters are valid")
    a = ap.parse_args(argv)
    check(a.params, a.out)
    print(f"{a.params}: valid")


if __name__ == "__main__":
    raise SystemExit(entry(main))
