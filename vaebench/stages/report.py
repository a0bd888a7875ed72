"""Stage `report`: the tables, the summary metrics, the grid's figures and the HTML page, from the runs' outputs.

    python -m vaebench.stages.report --runs metrics/runs --exact metrics/exact --logs logs --figures plots/runs
        --data data/mnist.npz --out metrics --plots plots [--unseeded] [--title T]
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from vaebench.config import load_params
from vaebench.report.build import TITLE, build_report
from vaebench.stages import entry, parser


def main(argv: Sequence[str] | None = None) -> None:
    ap = parser(__doc__)
    for opt, what in (("--runs", "per-run metrics JSON"), ("--exact", "the exact stage's metrics"),
                      ("--logs", "dvclive training logs"), ("--figures", "per-run figures, one folder per run"),
                      ("--out", "tables and summary"), ("--plots", "the grid's figures")):
        ap.add_argument(opt, type=Path, required=True, help=f"directory of {what}")
    ap.add_argument("--data", type=Path, required=True, help="MNIST file of the download stage (its manifest)")
    ap.add_argument("--unseeded", action="store_true",
                    help="runs are named without their training seed (vae-50), one per cell: the literature pipelines")
    ap.add_argument("--title", default=TITLE, help=f"the tables' heading and the page's title [{TITLE}]")
    a = ap.parse_args(argv)
    written = build_report(load_params(a.params), a.runs, a.logs, a.figures, a.data, a.out, a.plots, a.exact,
                           seeded=not a.unseeded, title=a.title)
    print("\n".join(str(w) for w in written))


if __name__ == "__main__":
    raise SystemExit(entry(main))
