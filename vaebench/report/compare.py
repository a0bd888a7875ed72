"""`vaebench compare A B`: one comparison of the report, from whichever training seeds of the two cells are scored.

The report needs every seed of grid.seeds for every cell. A comparison left unresolved at n = 3 needs more seeds
of just its two cells: add a seed to grid.seeds, run the train and evaluate stages of those two cells only
(`more_seeds_command` prints them), and read the comparison here, by the report's own rule (paired by seed where
both cells ran the same seeds, else Welch; the one-sample t against a thesis number: report/comparisons.py), from
every `metrics/runs/<cell>-<seed>.json` that exists. Each file is checked as the report checks its inputs (this
cell's, this training seed's, scored on this test set, every seed with the same settings), and where the run's
checkpoint is here (`models/<cell>-<seed>/`), that the file scored those weights: a run retrained since it was
scored is refused. Whether the checkpoints are current for params.yaml is `vaebench runs`' question.
"""

from __future__ import annotations

import math
import re
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vaebench.config import ConfigError, Params, split_run
from vaebench.errors import ReportError
from vaebench.report.comparisons import LABELS, Question, estimate, primary_method
from vaebench.report.inputs import load_run, n_test_images
from vaebench.report.references import thesis_value
from vaebench.report.seeds import combine
from vaebench.report.stats import Comparison, aggregate
from vaebench.run.checkpoint import SIDECAR, read_sidecar

METRICS = ("iwae_nll", "neg_elbo")
THESIS = "thesis"


@dataclass(frozen=True)
class Side:
    cell: str  # `vae-25`, `beta4-20`, or `thesis`
    label: str  # `VAE z=25`
    metric: str  # the metrics key read for this side (a CVAE's -log p(x) beside a VAE: iwae_nll_marginal)
    seeds: tuple[int, ...]
    values: tuple[float, ...] | float  # per seed, in the order of `seeds`; a published number for the thesis


def _stage(model: str) -> str:
    return "evaluate" if model in LABELS else "evaluate-variant"


def _scored_these_weights(run: dict[str, Any], path: Path, models_dir: Path | None, name: str, model: str) -> None:
    """ReportError if models_dir/<name>/ holds a checkpoint other than the one the metrics file scored."""
    if models_dir is None or not (Path(models_dir) / name / SIDECAR).exists():
        return
    sha = read_sidecar(Path(models_dir) / name)["weights_sha256"]
    if run.get("weights_sha256") != sha:
        raise ReportError(f"{path}: scored other weights than {Path(models_dir) / name} holds (retrained since); "
                          f"run `dvc repro {_stage(model)}@{name}`")


def read_cell(params: Params, runs_dir: Path, cell: str, key: str = "A",
              models_dir: Path | None = None) -> tuple[tuple[int, ...], dict[str, Any]]:
    """(seeds found, the cell combined over them) from runs_dir/<cell>-<seed>.json; ReportError if there is none."""
    model, zdim = split_run(cell, key)
    if model not in LABELS and model not in params.variants.defs:
        raise ConfigError(f"{key}: {model!r} is not vae, cvae or a variant of params.yaml's variants.defs "
                          f"({', '.join(params.variants.defs)})")
    name = re.compile(rf"^{re.escape(cell)}-(0|[1-9][0-9]*)\.json$")
    found = sorted((int(m.group(1)), p) for p in Path(runs_dir).glob(f"{cell}-*.json") if (m := name.match(p.name)))
    if not found:
        raise ReportError(f"{key}: no scored seed of {cell} in {runs_dir}/ ({cell}-<seed>.json); "
                          f"run `dvc repro {_stage(model)}@{cell}-0`")
    n_images = n_test_images(params)
    runs = [load_run(p, model, zdim, n_images, _stage(model), seed=seed) for seed, p in found]
    for (seed, p), run in zip(found, runs):
        _scored_these_weights(run, p, models_dir, f"{cell}-{seed}", model)
    seeds = tuple(seed for seed, _ in found)
    return seeds, combine(runs, seeds)


def cell_label(cell: dict[str, Any]) -> str:
    # the comparisons table's naming (comparisons.py `_name`, not shared: an edit there re-runs the literature reports)
    return f"{LABELS.get(cell['model'], cell['model'])} z={cell['zdim']}"


def sides(params: Params, runs_dir: Path, a: str, b: str, metric: str,
          models_dir: Path | None = None) -> tuple[Side, Side]:
    """The two sides' per-seed values of `metric`. A CVAE against an unconditional model on iwae_nll reads the
    CVAE's -log p(x) with its label marginalised (iwae_nll_marginal), as the report's CVAE-vs-VAE rows do."""
    if metric not in METRICS:
        raise ConfigError(f"--metric: {metric!r} is not one of {', '.join(METRICS)}")
    if a == THESIS:
        raise ConfigError("A: the thesis's number goes second: `vaebench compare cvae-35 thesis`")
    seeds_a, cell_a = read_cell(params, runs_dir, a, "A", models_dir)
    if b == THESIS:
        if metric != "neg_elbo":
            raise ConfigError("--metric: the thesis reports the test -ELBO only: use --metric neg_elbo")
        value = thesis_value(cell_a["model"], cell_a["zdim"])
        if value is None:
            raise ConfigError(f"B: the thesis reports no number for {cell_label(cell_a)} (it has VAE z=2, VAE z=25, CVAE z=35)")
        return (Side(a, cell_label(cell_a), metric, seeds_a, tuple(float(r[metric]) for r in cell_a["runs"])),
                Side(THESIS, f"thesis {cell_label(cell_a)}", metric, (), float(value)))
    seeds_b, cell_b = read_cell(params, runs_dir, b, "B", models_dir)
    mixed = metric == "iwae_nll" and (cell_a["model"] == "cvae") != (cell_b["model"] == "cvae")
    out = []
    for cell, seeds, name in ((cell_a, seeds_a, a), (cell_b, seeds_b, b)):
        key = "iwae_nll_marginal" if mixed and cell["model"] == "cvae" else metric
        out.append(Side(name, cell_label(cell), key, seeds, tuple(float(r[key]) for r in cell["runs"])))
    return out[0], out[1]


def compare_cells(params: Params, runs_dir: Path, a: str, b: str, metric: str = "iwae_nll",
                  models_dir: Path | None = None) -> tuple[Side, Side, Comparison]:
    """A against B on `metric` by the report's fixed rule, over every seed scored of each."""
    sa, sb = sides(params, runs_dir, a, b, metric, models_dir)
    q = Question("compare", sa.label, sb.label, metric, sa.values, sb.values, sa.seeds, sb.seeds, ())
    return sa, sb, estimate(q, primary_method(q), {})


def more_seeds_command(cells: Sequence[str], seed: int) -> str:
    """The stages that train and score seed `seed` of just these cells (once it is in grid.seeds)."""
    return stages_command({cell: [seed] for cell in cells})


def stages_command(seeds: dict[str, Sequence[int]]) -> str:
    """`dvc repro` of the train and evaluate stages of these seeds of each cell (the thesis has none)."""
    stages = []
    for cell, cell_seeds in seeds.items():
        if cell == THESIS:
            continue
        model, _ = split_run(cell)
        suffix = "" if model in LABELS else "-variant"
        for seed in cell_seeds:
            stages += [f"train{suffix}@{cell}-{seed}", f"evaluate{suffix}@{cell}-{seed}"]
    return "dvc repro " + " ".join(stages)


def next_seeds(params: Params, sa: Side, sb: Side) -> str:
    """What to run next for an unresolved comparison: first the seeds that one cell has, or grid.seeds lists, and
    the other lacks (the sides then share their seeds, and the row is paired by seed); only then one more seed."""
    cells = [s for s in (sa, sb) if s.cell != THESIS]
    want = sorted(set(params.grid.seeds).union(*(s.seeds for s in cells)))
    missing = {s.cell: [x for x in want if x not in s.seeds] for s in cells}
    missing = {cell: xs for cell, xs in missing.items() if xs}
    if missing:
        outside = sorted({x for xs in missing.values() for x in xs} - set(params.grid.seeds))
        add = f"add {', '.join(map(str, outside))} to grid.seeds in params.yaml, then " if outside else ""
        what = "; ".join(f"{cell} lacks seed{'s' * (len(xs) > 1)} {', '.join(map(str, xs))}" for cell, xs in missing.items())
        return f"the seeds first ({what}): {add}`{stages_command(missing)}`, then this command again"
    nxt = max(want) + 1
    return (f"more seeds: add {nxt} to grid.seeds in params.yaml, then "
            f"`{more_seeds_command([s.cell for s in cells], nxt)}`, then this command again")


def _side_text(s: Side) -> str:
    if isinstance(s.values, float):
        return f"{s.label}: {s.values:g} (published, no spread)"
    seeds = ", ".join(str(x) for x in s.seeds)
    return f"{s.label} ({s.metric}, seeds {seeds}): {aggregate(s.values).text()}"


def compare_text(params: Params, sa: Side, sb: Side, c: Comparison) -> str:
    lines = [_side_text(sa), _side_text(sb)]
    outside = sorted((set(sa.seeds) | set(sb.seeds)) - set(params.grid.seeds))
    if outside:
        lines.append(f"note: seed{'s' * (len(outside) > 1)} {', '.join(map(str, outside))} not in params.yaml's grid.seeds "
                     f"({', '.join(map(str, params.grid.seeds))}): scored, so counted")
    if c.lo != c.lo:  # nan: no interval can be formed
        lines.append(f"A - B = {c.diff:+.2f}: no interval ({c.method} needs two seeds or more of "
                     f"{'our cell' if sb.cell == THESIS else 'each cell'})")
    else:
        lines.append(f"A - B = {c.diff:+.2f} [{c.lo:+.2f}, {c.hi:+.2f}] (95 %, {c.method}, {c.df:.3g} df); "
                     f"P(A better) = {c.p_improve:.2f}")
    lines.append(f"verdict: {c.verdict}")
    if "not resolved" in c.verdict:
        lines.append(next_seeds(params, sa, sb))
    if sa.metric == sb.metric == "neg_elbo" and ("CVAE" in sa.label) != ("CVAE" in sb.label) and sb.cell != THESIS:
        lines.append("the CVAE's -ELBO bounds -log p(x|y), the other's -log p(x): the thesis's comparison, not one "
                     "of equals (--metric iwae_nll compares -log p(x) on both sides)")
    lines.append("nats per test image, lower is better; the interval is over training seeds (the test images are "
                 "shared by both sides)")
    return "\n".join(lines)


def compare_json(sa: Side, sb: Side, c: Comparison) -> dict[str, Any]:
    def side(s: Side) -> dict[str, Any]:
        return {"cell": s.cell, "label": s.label, "metric": s.metric, "seeds": list(s.seeds),
                "values": s.values if isinstance(s.values, float) else list(s.values),
                "mean": s.values if isinstance(s.values, float) else statistics.fmean(s.values)}

    def finite(v: float) -> float | None:  # JSON has no nan or inf (an interval of zero width has inf df)
        return v if math.isfinite(v) else None

    return {"a": side(sa), "b": side(sb), "diff": c.diff, "lo": finite(c.lo), "hi": finite(c.hi), "df": finite(c.df),
            "method": c.method, "p_improve": c.p_improve, "verdict": c.verdict}
