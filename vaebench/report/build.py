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
from vaebench.config import Params, run_name, to_dict
from vaebench.run.data import manifest_path
from vaebench.errors import ReportError
from vaebench.core import ACTIVE_THRESHOLD
from vaebench.run.drawing import figure_names, save_figure
from vaebench.report.html import loaded_sources, machine, sources_sha256, write_html
from vaebench.report.references import COMPARISON_NOTE, REFERENCES, THESIS_POINTS, compares_to, thesis_value
from vaebench.report.inputs import load_run, n_test_images, read_metrics, require_figures
from vaebench.report.tables import md_row, num, pm, summary, to_csv
from vaebench.report.variants import load_variants, variant_summary, write_variants

# ---------------------------------------------------------------- inputs


def grid_items(params: Params) -> list[tuple[str, int]]:
    """(model, zdim) of every grid item, in the order of params.yaml (models outer)."""
    return [(m, z) for m in params.grid.models for z in params.grid.zdims]


def load_runs(params: Params, runs_dir: Path) -> list[dict[str, Any]]:
    n_images = n_test_images(params)
    return [load_run(Path(runs_dir) / f"{run_name(m, z)}.json", m, z, n_images) for m, z in grid_items(params)]


EXACT_KEYS = ("k", "iwae_nll", "iwae_nll_se")


def attach_exact(params: Params, runs: Sequence[dict[str, Any]], exact_dir: Path) -> None:
    """Add the `exact` stage's many-sample IWAE (exact.k) to the runs of exact.zdims, beside their quadrature.

    The stage runs `eval --no-exact`: the exact value is the run's own quadrature (metrics/runs/), and
    the gap is measured to it. A file from before that still holds a quadrature must agree with the
    run's (same model, grid and images): a mismatch means one of the two files is stale.
    """
    by_item = {(r["model"], r["zdim"]): r for r in runs}
    for m, z in ((m, z) for m in params.grid.models for z in params.exact.zdims):
        name = run_name(m, z)
        path = Path(exact_dir) / f"{name}.json"
        hint = f"run `dvc repro exact@{name}`"
        ex = read_metrics(path, EXACT_KEYS, "many-sample IWAE metrics", hint)
        run = by_item[(m, z)]
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
        if "iwae_nll_seed_sd" in ex:  # absent when the stage ran with eval.spread_seeds = 0
            run["iwae_nll_exact_k_seed_sd"] = ex["iwae_nll_seed_sd"]


def log_files(logs_dir: Path, name: str) -> tuple[Path, Path]:
    """The dvclive TSVs of one run: train and held-out ELBO per epoch."""
    base = Path(logs_dir) / name / "plots" / "metrics"
    return base / "train" / "elbo.tsv", base / "heldout" / "elbo.tsv"


def check_inputs(params: Params, logs_dir: Path, figures_dir: Path) -> list[Path]:
    """Every training log and per-run figure exists (checked before anything is written); return the figures."""
    figures = []
    for m, z in grid_items(params):
        name = run_name(m, z)
        for path in log_files(logs_dir, name):
            if not path.exists():
                raise ReportError(f"{path}: missing; run `dvc repro train@{name}`")
        figures += require_figures(figures_dir, name, figure_names(name, z))
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


# ---------------------------------------------------------------- numbers and tables


TABLE_COLUMNS = ("model", "zdim", "n_images", "neg_elbo", "neg_elbo_se", "iwae_target", "iwae_nll", "iwae_nll_se",
                 "k", "iwae_nll_seed_sd", "iwae_nll_marginal", "iwae_nll_marginal_se", "k_marginal", "quad_nll", "quad_nll_se",
                 "quad_error_bound", "quad_mean_error", "iwae_gap_to_quad", "exact_k", "iwae_nll_exact_k",
                 "iwae_nll_exact_k_se", "iwae_nll_exact_k_seed_sd", "iwae_gap_to_quad_exact_k", "active_units", "thesis")


# numbers only some runs have: the seed spread (eval.spread_seeds > 0), the quadrature (zdim <= 2),
# the exact stage's many-sample IWAE (exact.zdims)
OPTIONAL_NUMBERS = ("iwae_nll_seed_sd", "quad_nll", "quad_nll_se", "quad_error_bound", "iwae_gap_to_quad",
                    "exact_k", "iwae_nll_exact_k", "iwae_nll_exact_k_se", "iwae_nll_exact_k_seed_sd",
                    "iwae_gap_to_quad_exact_k")


def table_rows(runs: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One row per run with TABLE_COLUMNS; None where a quantity does not apply (marginal of a VAE...)."""
    rows = []
    for r in runs:
        cvae = r["model"] == "cvae"
        rows.append({
            "model": r["model"],
            "zdim": r["zdim"],
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
            "active_units": r["active_units"],
            "thesis": thesis_value(r["model"], r["zdim"]),
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
    cell = pm(r["quad_nll"], r["quad_nll_se"])
    if r["quad_mean_error"] is None:
        return cell
    gaps = f"IWAE gap {r['iwae_gap_to_quad']:.2f} at k={r['k']}"
    if r["iwae_gap_to_quad_exact_k"] is not None:
        gaps += f", {r['iwae_gap_to_quad_exact_k']:.2f} at k={r['exact_k']}"
        if r["iwae_nll_exact_k_seed_sd"] is not None:
            gaps += f" with seed sd {r['iwae_nll_exact_k_seed_sd']:.3f}"
    # the table's numbers carry 4 decimals: below that, say so rather than print "0e+00"
    return f"{cell} ({gaps}; grid error of the mean ≤ {max(r['quad_mean_error'], 1e-4):.0e})"


def table_markdown(rows: Sequence[Mapping[str, Any]], params: Params, figures: Sequence[str]) -> str:
    """The results table, the published reference rows, how they compare, and links to the figures."""
    n = rows[0]["n_images"] if rows else 0
    lines = [
        "# vaebench: test likelihood on binarised MNIST",
        "",
        f"{n} test images, `{params.data.binarize}` binarisation (test bits drawn once, seed "
        f"{params.data.test_seed}). All numbers are nats per image, lower is better, ± one standard "
        "error over images; the IWAE column's sd is its spread across evaluation seeds (predicted from "
        "per-image variances, eval.spread_seeds / eval.spread_images). IWAE NLL is -log p(x) for a VAE and the conditional -log p(x|y) for a CVAE; "
        "the CVAE -log p(x) column marginalises the label, p(x) = 1/10 sum_y p(x|y) (k samples for "
        "the true label, k_marginal for each other one). The exact NLL integrates p(x|z) p(z) on a grid "
        "(z <= 2 only). The thesis column is the thesis's reported value.",
        "",
        "| model | z | test -ELBO | IWAE NLL (k) | CVAE -log p(x) (k/label) | exact NLL (quadrature) "
        "| active units | thesis |",
        "|---|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for r in rows:
        marginal = (f"{pm(r['iwae_nll_marginal'], r['iwae_nll_marginal_se'])} ({r['k_marginal']})"
                    if r["iwae_nll_marginal"] is not None else "")
        cells = [
            plots.MODEL_LABELS.get(r["model"], r["model"]),
            str(r["zdim"]),
            pm(r["neg_elbo"], r["neg_elbo_se"]),
            f"{pm(r['iwae_nll'], r['iwae_nll_se'])} ({r['k']}"
            + (f"; sd {r['iwae_nll_seed_sd']:.3f}" if r["iwae_nll_seed_sd"] is not None else "") + ")",
            marginal,
            _exact_cell(r),
            f"{r['active_units']} / {r['zdim']}",
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
                 out_dir: Path, plots_dir: Path, exact_dir: Path | None = None) -> list[Path]:
    """Write the summary, the tables and the grid's figures, and the variants' (report/variants.py); return the files written.

    `figures_dir` holds the `figures` stage's per-run folders (figures_dir/<run>/*.png), linked
    from the tables and embedded in the HTML page; `exact_dir` holds the `exact` stage's metrics
    (many-sample IWAE of the exact.zdims models); None skips them.
    """
    out_dir, plots_dir = Path(out_dir), Path(plots_dir)
    runs = load_runs(params, runs_dir)
    if exact_dir is not None:
        attach_exact(params, runs, exact_dir)
    run_figures = check_inputs(params, logs_dir, figures_dir)
    variant_runs, variant_figures = load_variants(params, runs_dir, figures_dir)

    rows = table_rows(runs)
    written = [out_dir / "summary.json", out_dir / "table.csv", out_dir / "nll_by_zdim.csv", out_dir / "all_runs.json"]
    # a variant's name is never a grid model's (config refuses `vae`, `cvae`): their keys cannot collide
    vio.write_json(written[0], {**summary(runs), **variant_summary(variant_runs)})
    # every run's metrics files copied whole, committed to git: the files themselves are DVC-cached,
    # so that they travel between machines through a DVC remote
    names = [run_name(m, z) for m, z in grid_items(params)] + list(params.variants.runs)
    copies = {"runs": {n: vio.read_json(Path(runs_dir) / f"{n}.json") for n in names}}
    if exact_dir is not None:
        copies["exact"] = {n: vio.read_json(Path(exact_dir) / f"{n}.json")
                           for n in (run_name(m, z) for m in params.grid.models for z in params.exact.zdims)}
    vio.write_json(written[3], copies)
    vio.write_text(written[1], to_csv(rows, TABLE_COLUMNS))
    vio.write_text(written[2], to_csv(nll_by_zdim(runs, params.grid.zdims), NLL_BY_ZDIM_COLUMNS))

    thesis = [(t.model, t.zdim, t.value) for t in THESIS_POINTS]
    figures = [save_figure(plots.nll_vs_zdim(runs, thesis), plots_dir / "nll_vs_zdim.png")]
    curves: dict[str, list[plots.Curve]] = {}
    for r in runs:
        curves.setdefault(r["model"], []).append(read_curve(r["zdim"], *log_files(logs_dir, run_name(r["model"], r["zdim"]))))
    figures.append(save_figure(plots.training_curves(curves), plots_dir / "training_curves.png"))
    figures.append(save_figure(plots.active_units(runs, ACTIVE_THRESHOLD), plots_dir / "active_units.png"))

    # last, so that it links exactly the figures written; relative links let it open offline beside them
    links = [Path(os.path.relpath(f, out_dir)).as_posix() for f in (*figures, *run_figures)]
    md = table_markdown(rows, params, links)
    vio.write_text(out_dir / "table.md", md)
    variants_md, variant_files = write_variants(params, runs, variant_runs, variant_figures, out_dir, plots_dir)
    # the same report as one page with the figures inside: opens offline, mailed or moved alone
    # machine() first: it imports vaebench.numerics, which must be counted in the code hash whether or not
    # the process had imported it before (a second build in one process gave another hash)
    about = machine()
    provenance = {"report code sha256": sources_sha256(loaded_sources()),
                  "code of each number": "dvc.lock (md5 of every module its stage imports)",
                  "data manifest sha256": vio.sha256_file(manifest_path(data_path)), **about}
    write_html(out_dir / "report.html", md + "\n" + variants_md, out_dir, provenance,
               yaml.safe_dump(to_dict(params), sort_keys=False))
    return [*written, out_dir / "table.md", out_dir / "report.html", *figures, *variant_files]
