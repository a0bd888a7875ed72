"""`vaebench compare A B`: one comparison of the report, from whichever training seeds of the two cells are scored.

The report needs every seed of grid.seeds for every cell. A comparison left unresolved at n = 3 needs more seeds
of just its two cells: add a seed to grid.seeds, run the train and evaluate stages of those two cells only
(`more_seeds_command` prints them), and read the comparison here, by the report's own rule (paired by seed where
both cells ran the same seeds, else Welch; the one-sample t against a thesis number: report/comparisons.py), from
every `metrics/runs/<cell>-<seed>.json` that exists. The files are checked as the report checks them (this
cell's, this test set's, every seed scored with the same settings).
"""

from __future__ import annotations

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


def read_cell(params: Params, runs_dir: Path, cell: str, key: str = "A") -> tuple[tuple[int, ...], dict[str, Any]]:
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
    seeds = tuple(seed for seed, _ in found)
    return seeds, combine(runs, seeds)


def _label(cell: dict[str, Any]) -> str:
    return f"{LABELS.get(cell['model'], cell['model'])} z={cell['zdim']}"


def sides(params: Params, runs_dir: Path, a: str, b: str, metric: str) -> tuple[Side, Side]:
    """The two sides' per-seed values of `metric`. A CVAE against an unconditional model on iwae_nll reads the
    CVAE's -log p(x) with its label marginalised (iwae_nll_marginal), as the report's CVAE-vs-VAE rows do."""
    if metric not in METRICS:
        raise ConfigError(f"--metric: {metric!r} is not one of {', '.join(METRICS)}")
    if a == THESIS:
        raise ConfigError("A: the thesis's number goes second: `vaebench compare cvae-35 thesis`")
    seeds_a, cell_a = read_cell(params, runs_dir, a, "A")
    if b == THESIS:
        if metric != "neg_elbo":
            raise ConfigError("--metric: the thesis reports the test -ELBO only: use --metric neg_elbo")
        value = thesis_value(cell_a["model"], cell_a["zdim"])
        if value is None:
            raise ConfigError(f"B: the thesis reports no number for {_label(cell_a)} (it has VAE z=2, VAE z=25, CVAE z=35)")
        return (Side(a, _label(cell_a), metric, seeds_a, tuple(float(r[metric]) for r in cell_a["runs"])),
                Side(THESIS, f"thesis {_label(cell_a)}", metric, (), float(value)))
    seeds_b, cell_b = read_cell(params, runs_dir, b, "B")
    mixed = metric == "iwae_nll" and (cell_a["model"] == "cvae") != (cell_b["model"] == "cvae")
    out = []
    for cell, seeds, name in ((cell_a, seeds_a, a), (cell_b, seeds_b, b)):
        key = "iwae_nll_marginal" if mixed and cell["model"] == "cvae" else metric
        out.append(Side(name, _label(cell), key, seeds, tuple(float(r[key]) for r in cell["runs"])))
    return out[0], out[1]


def compare_cells(params: Params, runs_dir: Path, a: str, b: str, metric: str = "iwae_nll") -> tuple[Side, Side, Comparison]:
    """A against B on `metric` by the report's fixed rule, over every seed scored of each."""
    sa, sb = sides(params, runs_dir, a, b, metric)
    q = Question("compare", sa.label, sb.label, metric, sa.values, sb.values, sa.seeds, sb.seeds, ())
    return sa, sb, estimate(q, primary_method(q), {})


def more_seeds_command(params: Params, cells: Sequence[str], seed: int) -> str:
    """The stages that train and score seed `seed` of just these cells (once it is in grid.seeds)."""
    stages = []
    for cell in cells:
        if cell == THESIS:
            continue
        model, _ = split_run(cell)
        suffix = "" if model in LABELS else "-variant"
        stages += [f"train{suffix}@{cell}-{seed}", f"evaluate{suffix}@{cell}-{seed}"]
    return "dvc repro " + " ".join(stages)


def _side_text(s: Side) -> str:
    if isinstance(s.values, float):
        return f"{s.label}: {s.values:g} (published, no spread)"
    seeds = ", ".join(str(x) for x in s.seeds)
    return f"{s.label} ({s.metric}, seeds {seeds}): {aggregate(s.values).text()}"


def compare_text(params: Params, sa: Side, sb: Side, c: Comparison) -> str:
    lines = [_side_text(sa), _side_text(sb)]
    if c.lo != c.lo:  # nan: one seed on a side
        lines.append(f"A - B = {c.diff:+.2f}: no interval ({c.method} needs two seeds or more on each side)")
    else:
        lines.append(f"A - B = {c.diff:+.2f} [{c.lo:+.2f}, {c.hi:+.2f}] (95 %, {c.method}, {c.df:.3g} df); "
                     f"P(A better) = {c.p_improve:.2f}")
    lines.append(f"verdict: {c.verdict}")
    if "not resolved" in c.verdict:
        used = set(sa.seeds) | set(sb.seeds)
        nxt = max(max(used, default=-1), *params.grid.seeds) + 1
        lines.append(f"more seeds: add {nxt} to grid.seeds in params.yaml, then "
                     f"`{more_seeds_command(params, [sa.cell, sb.cell], nxt)}`, then this command again")
    lines.append("nats per test image, lower is better; the interval is over training seeds (the test images are "
                 "shared by both sides)")
    return "\n".join(lines)


def compare_json(sa: Side, sb: Side, c: Comparison) -> dict[str, Any]:
    def side(s: Side) -> dict[str, Any]:
        return {"cell": s.cell, "label": s.label, "metric": s.metric, "seeds": list(s.seeds),
                "values": s.values if isinstance(s.values, float) else list(s.values),
                "mean": s.values if isinstance(s.values, float) else statistics.fmean(s.values)}

    nan = c.lo != c.lo
    return {"a": side(sa), "b": side(sb), "diff": c.diff, "lo": None if nan else c.lo, "hi": None if nan else c.hi,
            "df": None if nan else c.df, "method": c.method, "p_improve": c.p_improve, "verdict": c.verdict}
