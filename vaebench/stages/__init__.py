"""One thin entry point per DVC stage: `python -m vaebench.stages.<stage> ...`, as dvc.yaml runs them.

Each imports only what its stage computes (never the CLI, the report or the grid engines, unless it is the
report's stage), so that dvc.yaml can list exactly those modules and an edit elsewhere re-runs nothing.
`vaebench` (cli.py) offers the same steps to people and calls the same functions.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from vaebench.errors import exit_code, one_line


def parser(doc: str | None) -> argparse.ArgumentParser:
    """A parser whose description is the stage module's docstring, with the options every stage shares."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--params", type=Path, default=Path("params.yaml"), help="parameter file [params.yaml]")
    return ap


def run_parser(doc: str | None, ckpt: bool = False) -> argparse.ArgumentParser:
    """parser() with the options of a stage on one run: --run and --data, and with `ckpt` the --ckpt it reads."""
    ap = parser(doc)
    ap.add_argument("--run", required=True, help="<model>-<latent size>[-<training seed>]: vae-5-0, cvae-35-2, beta4-20-1")
    ap.add_argument("--data", type=Path, required=True, help="MNIST file of the download stage")
    if ckpt:
        ap.add_argument("--ckpt", type=Path, required=True, help="checkpoint directory of the train stage")
    return ap


def run_params(a: argparse.Namespace) -> tuple[Any, str, int]:
    """(params for the run's training seed, model, latent size) of `--params` and `--run` (`vae-5-1`: seed 1;
    a run named without a seed, as the literature pipelines name theirs, keeps train.seed)."""
    from vaebench.config import load_params, parse_run

    model, zdim, seed = parse_run(a.run, "--run")
    return load_params(a.params).with_seed(seed), model, zdim


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def entry(main: Callable[[Sequence[str] | None], None], argv: Sequence[str] | None = None) -> int:
    """Run a stage's `main`; an expected failure ends as one line on stderr and exit code 2 or 1."""
    try:
        main(argv)
    except Exception as e:  # noqa: BLE001 - sorted by exit_code; anything unexpected is re-raised
        code = exit_code(e)
        if code is None:
            raise
        log(f"error: {one_line(e)}")
        return code
    return 0
