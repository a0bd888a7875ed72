"""Which run the CLI's options name: `--run` or `--model`/`--zdim`, any `--piece`s, and whether it can be
scored exactly; and `vaebench eval`'s training of a missing model. Used by cli.py only: no stage imports it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any


def pieces_of(options: list[str] | None) -> dict[str, object]:
    """`--piece name=value` options -> {name: value}, each value read as YAML and checked against its piece's type."""
    import yaml

    from vaebench.checks import coerce_field
    from vaebench.config import ConfigError
    from vaebench.core.variants import PIECES, Variant

    pieces: dict[str, object] = {}
    for option in options or ():
        name, sep, text = option.partition("=")
        name = name.strip()
        if not sep or name not in PIECES:
            raise ConfigError(f"--piece: {option!r} is not NAME=VALUE with NAME one of {', '.join(PIECES)}")
        if name in pieces:
            raise ConfigError(f"--piece: {name} is given twice")
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError:
            value = text
        pieces[name] = coerce_field(Variant, name, value, f"--piece {name}")
    return pieces


def select(p: Any, model: str | None, zdim: int | None, run: str | None,
            options: list[str] | None) -> tuple[Any, str, int]:
    """(params, model, zdim) of the run the options name: --run (with the training seed, if it names one: the
    params' train.seed is set to it) or --model/--zdim, and any `--piece`s.

    Pieces given on the command line make a variant of the named model, registered in the returned params
    under a name that spells what the resolved variant changes (`vae_beta4p0`), so that `--piece objective=iwae`
    and `--piece objective=iwae --piece k=5` (the same model) share one name, checkpoint and fingerprint;
    pieces that change nothing make no variant.
    """
    import dataclasses

    from vaebench.config import ConfigError, VariantsConfig, check_zdim, parse_run

    option = "--model"
    if run is not None:
        if model is not None or zdim is not None:
            raise ConfigError("--run: names the model and the latent size itself; drop --model and --zdim")
        model, zdim, seed = parse_run(run, "--run")
        p = p.with_seed(seed)  # `vae-5-1`: training seed 1; `vae-5`: train.seed
        option = "--run"
    model, zdim = model or "vae", 25 if zdim is None else zdim
    check_zdim(zdim, "--zdim")
    try:
        base = p.variant(model)
    except ConfigError as e:
        raise ConfigError(f"{option}: {str(e).split(': ', 1)[1]}") from None
    pieces = pieces_of(options)
    if not pieces:
        return p, model, zdim
    if model == "cvae":
        raise ConfigError("--model: the variant pieces apply to the unconditional VAE and its variants, not cvae")
    try:
        variant = base.with_pieces(**pieces)
    except ConfigError as e:
        raise ConfigError(f"--piece {e}") from None
    if not variant.changed(base):
        return p, model, zdim
    name = f"{model}_{variant.tag(base)}"
    variants = VariantsConfig(defs={**p.variants.defs, name: variant}, runs=p.variants.runs)
    return dataclasses.replace(p, variants=variants), name, zdim


def ensure_trained(model: str, zdim: int, params: Any, data: Any, ckpt: Path, log: Callable[[str], None] = print,
                   progress: bool = True) -> tuple[Any, dict]:
    """Load the current checkpoint, or train it first through the pipeline's own fit().

    Only an empty folder, or a damaged checkpoint of this configuration, is trained into: a
    checkpoint of another configuration is refused (refuse_to_replace), never overwritten.
    """
    from vaebench.errors import CheckpointError
    from vaebench.run.fingerprint import refuse_to_replace
    from vaebench.run.fit import fit
    from vaebench.run.score import load_current

    try:
        return load_current(model, zdim, params, data, ckpt)
    except CheckpointError as e:
        refuse_to_replace(ckpt, model, zdim, params, data,
                          f"pass another --ckpt, or retrain it on purpose: "
                          f"vaebench train --model {model} --zdim {zdim} --out {ckpt} --overwrite")
        log(f"no current checkpoint ({e}); training {model} z={zdim} first")
    fit(model, zdim, params, None, ckpt, log=log, progress=progress, data=data)
    return load_current(model, zdim, params, data, ckpt)


def exact_check(p: Any, model: str, zdim: int) -> None:
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


def tracked_by_dvc(folder: Path) -> bool:
    """Whether `folder` is (or lies in) an output of any stage of the DVC repository around it (models/<run> of
    the grid, literature/models/...): DVC hashes such a folder whole, so nothing may be written into it."""
    from dvc.exceptions import NotDvcRepoError
    from dvc.repo import Repo

    target = Path(folder).resolve()
    here = next(p for p in (target, *target.parents) if p.exists())
    try:
        root = Repo.find_root(str(here))
    except NotDvcRepoError:
        return False
    with Repo(root) as repo:
        outs = [Path(out.fs_path).resolve() for out in repo.index.outs]
    return any(target == out or out in target.parents for out in outs)
