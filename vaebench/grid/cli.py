"""`vaebench-grid`: the pipeline's stages spread over cores, machines or a Dask cluster.

A command of its own, beside `vaebench`: no stage imports the grid layer (the stages run
`python -m vaebench.stages.*`), so a change to a scheduling option re-runs nothing. Nothing here changes a
result: each engine runs the very stages `dvc repro` runs, and the bytes are the same (docs/scaling.md).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from vaebench.grid.stagegraph import machine_share, needing_run, stage_graph, stale_stages, waves

app = typer.Typer(
    help="Run vaebench's DVC pipeline on many cores (DVC's queue), many machines, or a Dask cluster.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

RootOpt = Annotated[Path, typer.Option("--root", help="The project (the folder holding dvc.yaml).")]


def _fail(message: str) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(2)


def _repo(root: Path) -> Path:
    """`root` if it lies in a DVC repository; one line and exit 2 otherwise (not DVC's traceback)."""
    from dvc.exceptions import NotDvcRepoError
    from dvc.repo import Repo

    try:
        Repo.find_root(str(root))
    except NotDvcRepoError:
        _fail(f"{root.resolve()} is not in a DVC repository (no .dvc/ here or above): run vaebench-grid in a "
              "clone of vaebench, or name one with --root")
    return root


def _part(value: str | None) -> tuple[int, int] | None:
    if value is None:
        return None
    try:
        part, parts = (int(v) for v in value.split("/"))
    except ValueError:
        _fail(f"--part {value!r}: expected I/N, e.g. 1/2 (machine 1 of 2)")
    if parts < 1 or not 1 <= part <= parts:
        _fail(f"--part {value}: need 1 <= I <= N")
    return part, parts


@app.command()
def stages(
    part: Annotated[str | None, typer.Option("--part", help="I/N: only machine I's share of N (whole runs).")] = None,
    done: Annotated[bool, typer.Option("--done", help="Only the stages that are up to date here (and read only such "
                                       "stages): what a machine hands the next one of a run longer than a session.")] = False,
    root: RootOpt = Path("."),
) -> None:
    """Print the pipeline's stages, one per line, in an order `dvc repro` accepts.

    With --part I/N, machine I's share of the grid when N machines split it:
    `dvc repro $(vaebench-grid stages --part 1/2) && dvc push --run-cache`. With --done, the finished ones:
    `dvc push -r carry $(vaebench-grid stages --done)`.
    """
    share = _part(part)
    graph = stage_graph(_repo(root))
    names = machine_share(graph, *share) if share else [s for wave in waves(graph) for s in wave]
    if done:
        try:
            todo = needing_run(graph, stale_stages(root))
        except RuntimeError as e:  # DVC refuses `status` while a running stage writes outputs (a grid under way)
            _fail(f"{str(e).splitlines()[0]} (stop the run first)")
        names = [s for s in names if s not in todo]
    typer.echo("\n".join(names))


@app.command()
def queue(
    targets: Annotated[list[str] | None, typer.Argument(help="Stages to bring up to date [all].")] = None,
    jobs: Annotated[int, typer.Option("--jobs", "-j", min=1, help="Stages at a time.")] = 2,
    threads: Annotated[int | None, typer.Option("--threads", min=1,
                                                help="Torch threads per stage [cores / jobs].")] = None,
    root: RootOpt = Path("."),
) -> None:
    """Run the grid on DVC's experiment queue, --jobs stages at a time; a final `dvc repro` restores
    every result from the run-cache and runs the report."""
    from vaebench.grid.queue import QueueError, run_on_queue

    _repo(root)
    try:
        run_on_queue(root, jobs=jobs, threads=threads, targets=targets or None, log=typer.echo)
    except (QueueError, ValueError) as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(1) from None


@app.command()
def dask(
    scheduler: Annotated[str | None, typer.Option("--scheduler", help="A running Dask scheduler's address, "
                                                  "e.g. tcp://10.0.0.1:8786 [a LocalCluster here].")] = None,
    workers: Annotated[int, typer.Option("--workers", min=1, help="LocalCluster worker processes.")] = 2,
    threads: Annotated[int, typer.Option("--threads", min=1, help="Torch threads per stage.")] = 1,
    root: RootOpt = Path("."),
) -> None:
    """Run every stage as a task on a Dask cluster, in dependency order (a line per finished stage)."""
    from vaebench.grid.dask import StageFailed, run_on_dask

    _repo(root)
    try:
        run_on_dask(root, scheduler=scheduler, workers=workers, threads=threads, log=typer.echo)
    except (StageFailed, RuntimeError) as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(1) from None


def _check_dropped(root: Path, dvcfiles: list[str], dropped: dict[str, object]) -> None:
    """A key dropped from a params file leaves the code its default: refuse a value the default is not, since
    the stages would then run with another setting than the one their lock recorded (a key still in the file,
    dropped from a stage's `params` list only, is the stage's business: its value is the file's)."""
    import yaml

    from vaebench.config import Params, to_dict

    defaults = to_dict(Params())
    for dvcfile in dvcfiles:
        path = root / Path(dvcfile).parent / "params.yaml"
        have = yaml.safe_load(path.read_text()) if path.exists() else {}
        for key, value in dropped.items():
            section, _, leaf = key.partition(".")
            if leaf in ((have or {}).get(section) or {}):
                continue
            default = defaults.get(section, {}).get(leaf, object())
            if default != value:
                _fail(f"--dropped-param {key}={value!r}: without it in {path} the code takes its default "
                      f"{default!r}, not {value!r}: the stages would run another setting (nothing was recorded)")


@app.command()
def relock(
    dvcfiles: Annotated[list[str] | None, typer.Argument(help="dvc.yaml files [dvc.yaml].")] = None,
    proven: Annotated[bool, typer.Option("--proven", help="Confirm that the change moves no output "
                                         "(bench/same_bytes.py said so); refused without it.")] = False,
    root: RootOpt = Path("."),
    added: Annotated[list[str] | None, typer.Option(
        "--added-param", metavar="KEY=VALUE",
        help="A params key added with the value that keeps the old behaviour (e.g. train.monitor=test), or an entry "
             "added to a mapping a stage lists whole (e.g. 'variants.defs.epochs120={epochs: 120}', a new variant "
             "beside the others): a stage whose params differ from its lock by exactly that is recorded too; repeatable.")] = None,
    dropped: Annotated[list[str] | None, typer.Option(
        "--dropped-param", metavar="KEY=VALUE",
        help="A params key removed that no stage's command read (e.g. train.seed=0, set by the seed matrix): "
             "a stage whose lock holds it at exactly that value and is otherwise unchanged is recorded; "
             "repeatable.")] = None,
    stage: Annotated[list[str] | None, typer.Option(
        "--stage", help="Record only this stage (as `dvc status` names it); repeatable [every stage].")] = None,
) -> None:
    """Record the current commands, code and params of every stage in dvc.lock, keeping the hashes of outputs
    that are not here (a refactor proven not to move bytes, on a machine without the trained models)."""
    import yaml

    from vaebench.grid.relock import RelockRefused, relock as record

    if not proven:
        _fail("relock records new code against outputs it does not see: pass --proven once bench/same_bytes.py "
              "has shown that the change moves no output")
    def pairs(items: list[str] | None, option: str) -> dict[str, object]:
        out = {}
        for item in items or []:
            key, sep, value = item.partition("=")
            if not sep or not key:
                _fail(f"{option}: {item!r} is not KEY=VALUE")
            out[key] = yaml.safe_load(value)
        return out

    plus, minus = pairs(added, "--added-param"), pairs(dropped, "--dropped-param")
    _repo(root)
    _check_dropped(root, dvcfiles or ["dvc.yaml"], minus)
    try:
        names = record(root, dvcfiles or ["dvc.yaml"], plus, set(stage) if stage else None, minus)
    except RelockRefused as e:
        _fail(f"{e} (nothing was recorded)")
    for name in names:
        typer.echo(f"recorded {name}")

