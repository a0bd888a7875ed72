"""The report stage: the grid's metrics, training logs and per-run figures in; tables, summary and grid figures out.

Outputs (every one written atomically through vaebench.io, so a kill never leaves half a file):

- `summary.json`: a few numbers per run under flat, stable keys (`vae.z25.iwae_nll` in
  `dvc metrics diff`), rounded to 4 decimals so that identical runs give identical bytes;
- `table.csv`, `table.md`: the thesis's table regenerated, one row per grid item, beside the
  thesis's own numbers and the published reference points;
- `nll_by_zdim.csv`: one row per latent size, one column per curve, for `dvc plots`;
- the grid's PNG figures (drawn by vaebench.plots; the per-run ones come from the `figures`
  stage, run/figures.py), byte-identical across runs of the same inputs;
- the variants' summary keys, table and figures (report/variants.py);
- `report.html`: all of it on one self-contained page (report/html.py).

Every input is checked before anything is written (report/inputs.py): a missing one is a
ReportError that names the file and the `dvc repro` stage that makes it. Numbers and cells are
written by report/tables.py, the same way in every product.
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from vaebench import io as vio
from vaebench.report import plots
from vaebench.config import Params, run_name, split_run, to_dict
from vaebench.run.data import manifest_path
from vaebench.errors import ReportError
from vaebench.core import ACTIVE_THRESHOLD
from vaebench.run.drawing import figure_names, save_figure
from vaebench.report.html import loaded_sources, machine, sources_sha256, write_html
from vaebench.report.references import COMPARISON_NOTE, REFERENCES, THESIS_POINTS, compares_to, thesis_value
from vaebench.report.inputs import load_run, n_test_images, read_metrics, require_figures
from vaebench.report.seeds import combine, spread_columns, spread_keys
from vaebench.report.tables import SUMMARY_KEYS, md_row, num, spread, summary, to_csv, units_cell
from vaebench.report.comparisons import write_comparisons
from vaebench.report.variants import load_variants, variant_summary, write_variants

# ---------------------------------------------------------------- inputs


def grid_items(params: Params) -> list[tuple[str, int]]:
    """(model, zdim) of every grid item, in the order of params.yaml (models outer)."""
    return [(m, z) for m in params.grid.models for z in params.grid.zdims]


def run_seeds(params: Params, seeded: bool = True) -> list[int | None]:
    """The training seeds of every cell: grid.seeds, or [None] for a pipeline whose runs are named without a
    seed (the literature's: one run per cell, trained with train.seed)."""
    return list(params.grid.seeds) if seeded else [None]


def load_cells(params: Params, runs_dir: Path, exact_dir: Path | None = None, seeded: bool = True) -> list[dict[str, Any]]:
    """Every grid cell, its seeds' metrics combined (report/seeds.py), with the exact stage's numbers attached to
    the seeds it scored (exact.seeds)."""
    n_images, cells = n_test_images(params), []
    for m, z in grid_items(params):
        runs = []
        for seed in run_seeds(params, seeded):
            run = load_run(Path(runs_dir) / f"{run_name(m, z, seed)}.json", m, z, n_images, seed=seed)
            if exact_dir is not None and z in params.exact.zdims and (seed is None or seed in params.exact.seeds):
                attach_exact(params, run, Path(exact_dir) / f"{run_name(m, z, seed)}.json", run_name(m, z, seed))
            runs.append(run)
        cells.append(combine(runs, run_seeds(params, seeded)))
    return cells


EXACT_KEYS = ("k", "iwae_nll", "iwae_nll_se")


def attach_exact(params: Params, run: dict[str, Any], path: Path, name: str) -> None:
    """Add the `exact` stage's many-sample IWAE (exact.k) to a run of exact.zdims, beside its quadrature.

    The stage runs `eval --no-exact`: the exact value is the run's own quadrature (metrics/runs/), and
    the gap is measured to it. A file from before that still holds a quadrature must agree with the
    run's (same model, grid and images): a mismatch means one of the two files is stale.
    """
    hint = f"run `dvc repro exact@{name}`"
    ex = read_metrics(path, EXACT_KEYS, "many-sample IWAE metrics", hint)
    if ex["k"] != params.exact.k:
        raise ReportError(f"{path}: IWAE with k={ex['k']}, not exact.k={params.exact.k}; {hint}")
    if "quad_nll" not in run:
        raise ReportError(f"{path}: evaluate@{name} has no quadrature to measure its gap to; "
                          f"run `dvc repro evaluate@{name}`")
    if "quad_nll" in ex and not math.isclose(ex["quad_nll"], run["quad_nll"], rel_tol=0, abs_tol=1e-6):
        raise ReportError(f"{path}: its quadrature ({ex['quad_nll']}) is not the one of "
                          f"evaluate@{name} ({run['quad_nll']}); {hint}")
    run["exact_k"] = ex["k"]
    run["iwae_nll_exact_k"] = ex["iwae_nll"]
    run["iwae_nll_exact_k_se"] = ex["iwae_nll_se"]
    run["iwae_gap_to_quad_exact_k"] = ex["iwae_nll"] - run["quad_nll"]
    if "iwae_nll_eval_sd" in ex:  # absent when the stage ran with eval.spread_seeds = 0
        run["iwae_nll_exact_k_eval_sd"] = ex["iwae_nll_eval_sd"]


def log_files(logs_dir: Path, name: str) -> tuple[Path, Path]:
    """The dvclive TSVs of one run: train and held-out ELBO per epoch."""
    base = Path(logs_dir) / name / "plots" / "metrics"
    return base / "train" / "elbo.tsv", base / "heldout" / "elbo.tsv"


def check_inputs(params: Params, logs_dir: Path, figures_dir: Path, seeded: bool = True) -> list[Path]:
    """Every training log and per-run figure exists (checked before anything is written); return the figures
    the report shows: those of each cell's first seed (the others' are in plots/runs/ too)."""
    figures = []
    for m, z in grid_items(params):
        for i, seed in enumerate(run_seeds(params, seeded)):
            name = run_name(m, z, seed)
            for path in log_files(logs_dir, name):
                if not path.exists():
                    raise ReportError(f"{path}: missing; run `dvc repro train@{name}`")
            # the files are named after the cell (`samples_vae-2.png`), the folder after the run (`vae-2-0/`)
            shown = require_figures(figures_dir, name, figure_names(run_name(m, z), z))
            figures += shown if i == 0 else []
    return figures


def read_curve(zdim: int, train_tsv: Path, heldout_tsv: Path) -> plots.Curve:
    """dvclive's step is 0-based and logged once per epoch: step 0 is epoch 1."""

    def columns(path: Path) -> tuple[np.ndarray, np.ndarray]:
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f, delimiter="\t"))
        try:
            return (np.array([int(r["step"]) + 1 for r in rows]), np.array([float(r["elbo"]) for r in rows]))
        except (KeyError, TypeError, ValueError) as e:
            raise ReportError(f"{path}: not a dvclive log with columns step and elbo ({e})") from None

    (te, tv), (he, hv) = columns(train_tsv), columns(heldout_tsv)
    return plots.Curve(zdim, te, tv, he, hv)


def mean_curve(curves: Sequence[plots.Curve]) -> plots.Curve:
    """The seeds' curves of one cell averaged epoch by epoch (every seed runs the same epochs)."""
    first = curves[0]
    for c in curves[1:]:
        if not (np.array_equal(c.train_epoch, first.train_epoch) and np.array_equal(c.heldout_epoch, first.heldout_epoch)):
            raise ReportError(f"z={first.zdim}: the training logs of its seeds cover different epochs; re-run the stale ones")
    return plots.Curve(first.zdim, first.train_epoch, np.mean([c.train_elbo for c in curves], 0),
                       first.heldout_epoch, np.mean([c.heldout_elbo for c in curves], 0))


# ---------------------------------------------------------------- numbers and tables


# the metrics whose training-seed spread table.csv carries: sd, n and the 95 % interval of the mean
TABLE_SPREAD = ("neg_elbo", "iwae_nll", "iwae_nll_marginal", "quad_nll", "active_units")
TABLE_COLUMNS = ("model", "zdim", "n_seeds", "n_images", "neg_elbo", "neg_elbo_se", "iwae_target", "iwae_nll", "iwae_nll_se",
                 "k", "iwae_nll_eval_sd", "iwae_nll_marginal", "iwae_nll_marginal_se", "k_marginal", "quad_nll", "quad_nll_se",
                 "quad_error_bound", "quad_mean_error", "iwae_gap_to_quad", "exact_k", "iwae_nll_exact_k",
                 "iwae_nll_exact_k_se", "iwae_nll_exact_k_eval_sd", "iwae_gap_to_quad_exact_k", "active_units", "thesis",
                 *spread_columns(TABLE_SPREAD))


# numbers only some runs have: the seed spread (eval.spread_seeds > 0), the quadrature (zdim <= 2),
# the exact stage's many-sample IWAE (exact.zdims)
OPTIONAL_NUMBERS = ("iwae_nll_eval_sd", "quad_nll", "quad_nll_se", "quad_error_bound", "iwae_gap_to_quad",
                    "exact_k", "iwae_nll_exact_k", "iwae_nll_exact_k_se", "iwae_nll_exact_k_eval_sd",
                    "iwae_gap_to_quad_exact_k")


def table_rows(runs: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One row per run with TABLE_COLUMNS; None where a quantity does not apply (marginal of a VAE...)."""
    rows = []
    for r in runs:
        cvae = r["model"] == "cvae"
        rows.append({
            "model": r["model"],
            "zdim": r["zdim"],
            "n_seeds": r["n_seeds"],
            "n_images": r["n_images"],
            "neg_elbo": num(r["neg_elbo"]),
            "neg_elbo_se": num(r["test_elbo_se"]),  # the se of a mean does not change with its sign
            "iwae_target": "-log p(x|y)" if cvae else "-log p(x)",
            "iwae_nll": num(r["iwae_nll"]),
            "iwae_nll_se": num(r["iwae_nll_se"]),
            "k": r["k"],
            "iwae_nll_marginal": num(r["iwae_nll_marginal"]) if cvae else None,
            "iwae_nll_marginal_se": num(r["iwae_nll_marginal_se"]) if cvae else None,
            "k_marginal": r["k_marginal"] if cvae else None,
            "quad_mean_error": num(r["quad_mean_error"]) if "quad_nll" in r else None,
            **{key: (num(r[key]) if key in r else None) for key in OPTIONAL_NUMBERS},
            "active_units": num(r["active_units"]),
            "thesis": thesis_value(r["model"], r["zdim"]),
            **{c: num(r[c]) if c in r else None for c in spread_columns(TABLE_SPREAD)},
        })
    return rows


def nll_by_zdim(runs: Sequence[Mapping[str, Any]], zdims: Sequence[int]) -> list[dict[str, Any]]:
    """Wide rows for `dvc plots`: one per zdim (ascending), one column per (model, quantity) curve."""
    by_item = {(r["model"], r["zdim"]): r for r in runs}
    rows = []
    for z in sorted(set(zdims)):
        vae, cvae = by_item.get(("vae", z), {}), by_item.get(("cvae", z), {})
        rows.append({
            "zdim": z,
            "vae_neg_elbo": num(vae["neg_elbo"]) if vae else None,
            "vae_iwae_nll": num(vae["iwae_nll"]) if vae else None,
            "cvae_neg_elbo": num(cvae["neg_elbo"]) if cvae else None,
            "cvae_iwae_nll": num(cvae["iwae_nll"]) if cvae else None,
            "cvae_iwae_nll_marginal": num(cvae["iwae_nll_marginal"]) if cvae else None,
        })
    return rows


NLL_BY_ZDIM_COLUMNS = ("zdim", "vae_neg_elbo", "vae_iwae_nll", "cvae_neg_elbo", "cvae_iwae_nll",
                       "cvae_iwae_nll_marginal")


def _exact_cell(r: Mapping[str, Any]) -> str:
    """The exact-NLL cell of table.md: quadrature ± se (IWAE gaps at k [and exact.k]; grid error), or nothing."""
    cell = spread(r, "quad_nll", "quad_nll_se")
    if r["quad_mean_error"] is None:
        return cell
    gaps = f"IWAE gap {r['iwae_gap_to_quad']:.2f} at k={r['k']}"
    if r["iwae_gap_to_quad_exact_k"] is not None:
        n_exact = r.get("iwae_nll_exact_k_n")  # the exact stage scores exact.seeds only
        of = f" ({n_exact} seed{'s' if n_exact != 1 else ''})" if n_exact and n_exact != r.get("n_seeds") else ""
        gaps += f", {r['iwae_gap_to_quad_exact_k']:.2f} at k={r['exact_k']}{of}"
        if r["iwae_nll_exact_k_eval_sd"] is not None:
            gaps += f" with evaluation-seed sd {r['iwae_nll_exact_k_eval_sd']:.3f}"
    # the table's numbers carry 4 decimals: below that, say so rather than print "0e+00"
    return f"{cell} ({gaps}; grid error of the mean ≤ {max(r['quad_mean_error'], 1e-4):.0e})"


TITLE = "vaebench: test likelihood on binarised MNIST"


def table_markdown(rows: Sequence[Mapping[str, Any]], params: Params, figures: Sequence[str], title: str = TITLE) -> str:
    """The results table, the published reference rows, how they compare, and links to the figures."""
    n = rows[0]["n_images"] if rows else 0
    seeds = max((r["n_seeds"] for r in rows), default=1)
    spread_words = (
        f"Each cell is trained with {seeds} training seeds ({', '.join(map(str, params.grid.seeds))}): a number is "
        "the mean over seeds ± the training-seed sd (n seeds), then the standard error over test images of one "
        "run (s.e.; the images are shared by every seed, so the training sd, not the s.e., is the uncertainty "
        "of a cell's mean; metrics/comparisons.md gives the intervals of differences). "
        if seeds > 1 else "Each cell is one training run: ± one standard error over images. ")
    lines = [
        f"# {title}",
        "",
        f"{n} test images, `{params.data.binarize}` binarisation (test bits drawn once, seed "
        f"{params.data.test_seed}). All numbers are nats per image, lower is better. " + spread_words +
        "The IWAE column's eval. sd is its spread across evaluation seeds (predicted from per-image variances, "
        "eval.spread_seeds / eval.spread_images; averaged over training seeds). IWAE NLL is -log p(x) for a VAE and the conditional -log p(x|y) for a CVAE; "
        "the CVAE -log p(x) column marginalises the label, p(x) = 1/10 sum_y p(x|y) (k samples for "
        "the true label, k_marginal for each other one). The exact NLL integrates p(x|z) p(z) on a grid "
        "(z <= 2 only). The thesis column is the thesis's reported value.",
        "",
        "| model | z | test -ELBO | IWAE NLL (k) | CVAE -log p(x) (k/label) | exact NLL (quadrature) "
        "| active units | thesis |",
        "|---|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for r in rows:
        marginal = (f"{spread(r, 'iwae_nll_marginal', 'iwae_nll_marginal_se')} ({r['k_marginal']})"
                    if r["iwae_nll_marginal"] is not None else "")
        cells = [
            plots.MODEL_LABELS.get(r["model"], r["model"]),
            str(r["zdim"]),
            spread(r, "neg_elbo", "neg_elbo_se"),
            f"{spread(r, 'iwae_nll', 'iwae_nll_se')} ({r['k']}"
            + (f"; eval. sd {r['iwae_nll_eval_sd']:.3f}" if r["iwae_nll_eval_sd"] is not None else "") + ")",
            marginal,
            _exact_cell(r),
            f"{units_cell(r)} / {r['zdim']}",
            "" if r["thesis"] is None else f"{r['thesis']:g}",
        ]
        lines.append(md_row(cells))
    lines += [
        "",
        "## Published reference points",
        "",
        "| source | setup | test NLL (nats) | compares to our run (and how its setting differs) |",
        "|---|---|---|---|",
    ]
    lines += [md_row([ref.source, ref.setup, ref.nll, compares_to(ref, params)]) for ref in REFERENCES]
    lines += ["", COMPARISON_NOTE, "", "## Figures", ""]
    lines += [f"![{Path(f).stem}]({f})" for f in figures]
    return "\n".join(lines) + "\n"


def build_report(params: Params, runs_dir: Path, logs_dir: Path, figures_dir: Path, data_path: Path,
                 out_dir: Path, plots_dir: Path, exact_dir: Path | None = None, seeded: bool = True,
                 title: str = TITLE) -> list[Path]:
    """Write the summary, the tables and the grid's figures, the variants' (report/variants.py) and the
    comparisons (report/comparisons.py); return the files written.

    `figures_dir` holds the `figures` stage's per-run folders (figures_dir/<run>/*.png), embedded in the HTML
    page; `exact_dir` holds the `exact` stage's metrics (many-sample IWAE of the exact.zdims models); None
    skips them. `seeded`: runs are named with their training seed (`vae-5-0`, one per grid.seeds); False for
    a pipeline whose runs are named without one (the literature's). `title`: the tables' heading and the page's
    title (the literature pipelines name their setting, so that their page is not taken for the grid's).
    """
    out_dir, plots_dir = Path(out_dir), Path(plots_dir)
    cells = load_cells(params, runs_dir, exact_dir, seeded)
    run_figures = check_inputs(params, logs_dir, figures_dir, seeded)
    variant_cells, variant_figures = load_variants(params, runs_dir, figures_dir, run_seeds(params, seeded))
    seeds = run_seeds(params, seeded)
    # the training curves, each cell's seeds averaged: read (and their epochs checked) before anything is written
    curves: dict[str, list[plots.Curve]] = {}
    for c in cells:
        per_seed = [read_curve(c["zdim"], *log_files(logs_dir, run_name(c["model"], c["zdim"], seed))) for seed in seeds]
        curves.setdefault(c["model"], []).append(mean_curve(per_seed))

    rows = table_rows(cells)
    written = [out_dir / "summary.json", out_dir / "table.csv", out_dir / "nll_by_zdim.csv", out_dir / "all_runs.json"]
    # a variant's name is never a grid model's (config refuses `vae`, `cvae`): their keys cannot collide
    vio.write_json(written[0], {**summary(cells, spread_keys(SUMMARY_KEYS)), **variant_summary(variant_cells)})
    # every run's metrics files copied whole, committed to git: the files themselves are DVC-cached,
    # so that they travel between machines through a DVC remote
    names = [run_name(m, z, seed) for m, z in grid_items(params) for seed in seeds]
    names += [run_name(*split_run(run), seed) for run in params.variants.runs for seed in seeds]
    copies = {"runs": {n: vio.read_json(Path(runs_dir) / f"{n}.json") for n in names}}
    if exact_dir is not None:
        copies["exact"] = {n: vio.read_json(Path(exact_dir) / f"{n}.json")
                           for n in (run_name(m, z, seed) for m in params.grid.models for z in params.exact.zdims
                                     for seed in (params.exact.seeds if seeded else [None]))}
    vio.write_json(written[3], copies)
    vio.write_text(written[1], to_csv(rows, TABLE_COLUMNS))
    vio.write_text(written[2], to_csv(nll_by_zdim(cells, params.grid.zdims), NLL_BY_ZDIM_COLUMNS))

    thesis = [(t.model, t.zdim, t.value) for t in THESIS_POINTS]
    figures = [save_figure(plots.nll_vs_zdim(cells, thesis), plots_dir / "nll_vs_zdim.png")]
    figures.append(save_figure(plots.training_curves(curves, len(seeds)), plots_dir / "training_curves.png"))
    figures.append(save_figure(plots.active_units(cells, ACTIVE_THRESHOLD), plots_dir / "active_units.png"))

    # last, so that it links exactly the figures written; relative links let it open offline beside them.
    # table.md links the grid's figures only (committed); the per-run ones are DVC outputs, absent from a
    # fresh clone, and shown in report.html, which embeds them
    links = [Path(os.path.relpath(f, out_dir)).as_posix() for f in figures]
    md = table_markdown(rows, params, links, title)
    vio.write_text(out_dir / "table.md", md)
    variants_md, variant_files = write_variants(params, cells, variant_cells, variant_figures, out_dir, plots_dir)
    comparisons_md, comparison_files = write_comparisons(params, cells, variant_cells, out_dir)
    run_links = [Path(os.path.relpath(f, out_dir)).as_posix() for f in run_figures]
    per_run = ["", f"## Figures of each run (training seed {seeds[0]})" if seeded else "## Figures of each run", ""]
    per_run += [f"![{Path(f).parent.name}: {Path(f).stem}]({f})" for f in run_links]
    # the same report as one page with the figures inside: opens offline, mailed or moved alone
    # machine() first: it imports vaebench.numerics, which must be counted in the code hash whether or not
    # the process had imported it before (a second build in one process gave another hash)
    about = machine()
    provenance = {"report code sha256": sources_sha256(loaded_sources()),
                  "code of each number": "dvc.lock (md5 of every module its stage imports)",
                  "data manifest sha256": vio.sha256_file(manifest_path(data_path)), **about}
    write_html(out_dir / "report.html", md + "\n".join(per_run) + "\n\n" + comparisons_md + "\n" + variants_md,
               out_dir, provenance, yaml.safe_dump(to_dict(params), sort_keys=False), title)
    return [*written, out_dir / "table.md", out_dir / "report.html", *figures, *variant_files, *comparison_files]
