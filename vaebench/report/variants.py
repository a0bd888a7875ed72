"""The variants in the report: their runs' metrics in; summary keys, a table beside the VAE and two figures out.

A variant run `<variant>-<size>` (params.variants.runs) is scored like a grid run (metrics/runs/<run>.json,
written by the evaluate-variant stage) plus numbers of its own: rate and distortion (Alemi et al. 2018)
for every variant, the exact NLL by enumeration for a small categorical latent, the restoration NLL for a
denoising one. Its products:

- `summary.json` keys `<variant>.z<size>.<metric>`, like the grid's `vae.z20.iwae_nll`;
- `variants.md` and `variants.csv`: one row per variant run, each latent size led by the grid's plain VAE
  at that size (the reference point every variant differs from in one piece), then the published numbers
  that apply (report/references.py, VARIANT_REFERENCES) and which of our rows each compares with;
- `rate_distortion.png` and `nll_by_family.png` (drawn by report/variant_plots.py).

dvc.yaml declares these files, so they are written even without variant runs (the literature pipeline
has none): the table then says so and the figures show the grid's VAE alone.
"""

from __future__ import annotations

import dataclasses
import os
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from vaebench import io as vio
from vaebench.report import variant_plots
from vaebench.config import MODELS, Params, parse_run, run_name, split_run
from vaebench.core.variants import PLAIN, Variant
from vaebench.run.drawing import figure_names, save_figure
from vaebench.report.references import VARIANT_COMPARISON_NOTE, VARIANT_REFERENCES, VariantReference
from vaebench.report.inputs import RESTORE_KEYS, load_run, n_test_images, require_figures
from vaebench.report.seeds import SPREAD_FIELDS, combine, spread_columns, spread_keys, spread_of
from vaebench.report.stats import aggregate
from vaebench.report.tables import SUMMARY_KEYS, md_row, num, pm, spread, summary, to_csv, units_cell

VARIANT_SUMMARY_KEYS = SUMMARY_KEYS + ("rate", "distortion", "exact_nll", "exact_nll_se", "iwae_gap_to_exact",
                                       "restore_nll", "restore_nll_se", "restore_nll_clean")
# the numbers whose training-seed sd, n and 95 % interval variants.csv carries beside the mean
VARIANT_SPREAD = ("neg_elbo", "iwae_nll", "exact_nll", "rate", "distortion", "restore_nll", "active_units")
VARIANT_COLUMNS = ("run", "model", "setting", "latent", "size", "classes", "n_seeds", "n_images", "neg_elbo", "neg_elbo_se",
                   "iwae_nll", "iwae_nll_se", "k", "exact_method", "exact_nll", "exact_nll_se", "exact_states",
                   "iwae_gap_to_exact", "rate", "distortion", "active_units", *RESTORE_KEYS,
                   *spread_columns(VARIANT_SPREAD))

# ---------------------------------------------------------------- inputs


def run_figure_names(params: Params, model: str, size: int) -> list[str]:
    """The figures the figures-variant stage draws for a run of this cell (run/figures.py; named after the cell,
    in a folder named after the run)."""
    v = params.variant(model)
    return figure_names(run_name(model, size), size, categorical=v.latent == "categorical", restorations=v.noise > 0)


def load_variants(params: Params, runs_dir: Path, figures_dir: Path, seeds: Sequence[int | None] = (None,),
                  ) -> tuple[list[dict[str, Any]], dict[str, list[Path]]]:
    """Every variant run's cell (its seeds' metrics combined, report/seeds.py), in the order of variants.runs,
    and the figures of its first seed; checked like the grid's."""
    n_images = n_test_images(params)
    cells, figures = [], {}
    for run in params.variants.runs:
        model, size = split_run(run)
        # no rate/distortion required: score() writes them for a variant with a piece of its own, and row()
        # derives them from kl and neg_elbo otherwise (a def at the VAE's pieces, e.g. beta: 1 in a sweep)
        keys = RESTORE_KEYS if params.variant(model).noise > 0 else ()
        runs = [load_run(Path(runs_dir) / f"{run_name(model, size, seed)}.json", model, size, n_images,
                         "evaluate-variant", keys, seed=seed) for seed in seeds]
        cells.append(combine(runs, seeds))
        for i, seed in enumerate(seeds):
            name = run_name(model, size, seed)
            shown = require_figures(figures_dir, name, run_figure_names(params, model, size), "figures-variant")
            if i == 0:
                figures[name] = shown
    return cells, figures


def variant_summary(runs: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, dict[str, int | float | None]]]:
    """summary.json's entries of the variant runs: the grid's metric set plus the variants' own numbers."""
    return summary(runs, spread_keys(VARIANT_SUMMARY_KEYS))


# ---------------------------------------------------------------- rows


def setting(v: Variant) -> str:
    """The pieces in which `v` differs from the VAE, as the table prints them: `beta=4`, `objective=iwae, k=5`."""
    if v.is_plain:
        return "the VAE's pieces"
    parts = []
    if v.latent != PLAIN.latent:
        parts.append(f"{v.latent} K={v.classes}, tau {v.tau_start:g}->{v.tau_end:g}")
    if v.beta != PLAIN.beta:
        parts.append(f"beta={v.beta:g}")
    if v.objective != PLAIN.objective:
        parts.append(f"objective={v.objective}, k={v.k}")
    if v.noise != PLAIN.noise:
        parts.append(f"noise={v.noise:g}")
    # a piece added to Variant later still shows, as name=value, until it gets its own wording above
    worded = {"latent", "classes", "tau_start", "tau_end", "beta", "objective", "k", "noise"}
    parts += [f"{f.name}={getattr(v, f.name)}" for f in dataclasses.fields(v)
              if f.name not in worded and getattr(v, f.name) != getattr(PLAIN, f.name)]
    return "; ".join(parts)


def row(r: Mapping[str, Any], v: Variant) -> dict[str, Any]:
    """One run as a row of VARIANT_COLUMNS; None where a quantity does not apply."""
    if "exact_nll" in r:
        exact, source = ("enumeration", r["exact_nll"], r["exact_nll_se"], r["iwae_gap_to_exact"]), "exact_nll"
    elif "quad_nll" in r:
        exact, source = ("quadrature", r["quad_nll"], r["quad_nll_se"], r["iwae_gap_to_quad"]), "quad_nll"
    else:
        exact, source = (None, None, None, None), None
    # the seeds' spread of each number (report/seeds.py), where the cell has one; the exact NLL's from its source
    sources = {k: (source if k == "exact_nll" else k) for k in VARIANT_SPREAD}
    spread_cols = {f"{k}_{s}": (num(r[f"{src}_{s}"]) if src and f"{src}_{s}" in r else None)
                   for k, src in sources.items() for s in SPREAD_FIELDS}
    if "rate" not in r and "kl_train_sd" in r:  # a plain VAE's rate is its KL (below), and so is its spread
        spread_cols.update({f"rate_{s}": num(r[f"kl_{s}"]) for s in SPREAD_FIELDS})
    if "distortion" not in r and r.get("runs"):  # and its distortion -ELBO minus KL, seed by seed
        a = aggregate([run["neg_elbo"] - run["kl"] for run in r["runs"]])
        spread_cols.update({c: num(v) for c, v in spread_of(a, "distortion").items()})
    # a plain VAE's metrics carry no rate and distortion (run/score.py adds them for variants only): the same
    # definitions, the mean KL and -ELBO minus it, from its own numbers
    rate = r["rate"] if "rate" in r else r["kl"]
    distortion = r["distortion"] if "distortion" in r else r["neg_elbo"] - r["kl"]
    return {
        "run": run_name(r["model"], r["zdim"]),
        "model": r["model"],
        "setting": "the VAE (grid run)" if r["model"] in MODELS else setting(v),
        "latent": v.latent,
        "size": r["zdim"],
        "classes": v.classes if v.latent == "categorical" else None,
        "n_seeds": r.get("n_seeds", 1),
        "n_images": r["n_images"],
        "neg_elbo": num(r["neg_elbo"]),
        "neg_elbo_se": num(r["test_elbo_se"]),  # the se of a mean does not change with its sign
        "iwae_nll": num(r["iwae_nll"]),
        "iwae_nll_se": num(r["iwae_nll_se"]),
        "k": r["k"],
        "exact_method": exact[0],
        "exact_nll": None if exact[1] is None else num(exact[1]),
        "exact_nll_se": None if exact[2] is None else num(exact[2]),
        "exact_states": r.get("exact_states"),
        "iwae_gap_to_exact": None if exact[3] is None else num(exact[3]),
        "rate": num(rate),
        "distortion": num(distortion),
        "active_units": num(r["active_units"]),
        **{key: (num(r[key]) if key in r else None) for key in RESTORE_KEYS},
        **spread_cols,
    }


def table_rows(params: Params, grid_runs: Sequence[Mapping[str, Any]],
               variant_runs: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """variants.csv's rows: the Gaussian variants by latent size (ascending), the grid's VAE at that size first
    where the grid has it, then the variant runs of that size in the order of variants.runs; then the
    categorical runs (their size counts variables, not dimensions: no VAE row stands beside them)."""
    vae = {r["zdim"]: r for r in grid_runs if r["model"] == "vae"}
    gaussian = [r for r in variant_runs if params.variant(r["model"]).latent == "gaussian"]
    rows = []
    for size in sorted({r["zdim"] for r in gaussian}):
        if size in vae:
            rows.append(row(vae[size], PLAIN))
        rows += [row(r, params.variant(r["model"])) for r in gaussian if r["zdim"] == size]
    rows += [row(r, params.variant(r["model"])) for r in variant_runs if r not in gaussian]
    return rows


def figure_rows(params: Params, grid_runs: Sequence[Mapping[str, Any]],
                variant_runs: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The figures' rows: every VAE run of the grid (not only those at a variant's size), then every variant run."""
    return ([row(r, PLAIN) for r in grid_runs if r["model"] == "vae"]
            + [row(r, params.variant(r["model"])) for r in variant_runs])


def reference_vae(rows: Sequence[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """The VAE row the rate-distortion figure draws its line of constant -ELBO through: the one at the latent
    size most Gaussian variant runs have (the smaller on a tie), else the VAE of the lowest -ELBO."""
    vae = {r["size"]: r for r in rows if r["model"] == "vae"}
    if not vae:
        return None
    sizes = Counter(r["size"] for r in rows if r["model"] != "vae" and r["latent"] == "gaussian")
    for size, _ in sorted(sizes.items(), key=lambda item: (-item[1], item[0])):
        if size in vae:
            return vae[size]
    return min(vae.values(), key=lambda r: r["neg_elbo"])


# ---------------------------------------------------------------- the published numbers


def matches(ref: VariantReference, v: Variant) -> bool:
    """Whether a run with pieces `v` is the family of a published row: the VAE with exactly ref.pieces changed."""
    return v == dataclasses.replace(PLAIN, **dict(ref.pieces))


def reference_lines(params: Params, rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """The published rows (VARIANT_REFERENCES), each with the rows of ours it compares with; then how to
    compare, with the difference to the VAE in the paper and in our rows of the same latent size."""
    lines = ["| source | setup | model | test NLL (nats) | compares to our rows |", "|---|---|---|--:|---|"]
    for ref in VARIANT_REFERENCES:
        ours = [r["run"] for r in rows if matches(ref, params.variant(r["model"]))]
        pieces = ", ".join(f"{k}={val}" for k, val in ref.pieces)
        cell = ", ".join(ours) if ours else f"none here (a variant with {pieces or 'no piece changed'} would)"
        lines.append(md_row([ref.source, ref.setup, ref.model, f"{ref.nll:g}", cell]))
    diffs = []
    for base in (b for b in VARIANT_REFERENCES if not b.pieces):
        for ref in (x for x in VARIANT_REFERENCES if x.pieces and x.source == base.source):
            diffs.append(f"{ref.model} minus {base.model}: {ref.nll - base.nll:+.2f} in the paper")
            vae = {r["size"]: r for r in rows if matches(base, params.variant(r["model"]))}
            diffs += [f"{r['run']} minus {vae[r['size']]['run']}: {r['iwae_nll'] - vae[r['size']]['iwae_nll']:+.2f} "
                      "in ours (IWAE NLL)"
                      for r in rows if matches(ref, params.variant(r["model"])) and r["size"] in vae]
    return lines + ["", VARIANT_COMPARISON_NOTE + (" Differences, nats: " + "; ".join(diffs) + "." if diffs else "")]


# ---------------------------------------------------------------- Markdown


def _cells(r: Mapping[str, Any]) -> list[str]:
    exact = ""
    if r["exact_nll"] is not None:
        states = f", {r['exact_states']} states" if r["exact_states"] is not None else ""
        exact = f"{spread(r, 'exact_nll', 'exact_nll_se')} ({r['exact_method']}{states})"
    restore = ""
    if r["restore_nll"] is not None:
        restore = (f"{spread(r, 'restore_nll', 'restore_nll_se')} (noise {r['restore_noise']:g}; clean input "
                   f"{pm(r['restore_nll_clean'], r['restore_nll_clean_se'])})")
    categorical = r["latent"] == "categorical"
    return [
        r["run"],
        r["setting"],
        f"{r['size']}×{r['classes']}" if categorical else str(r["size"]),
        spread(r, "neg_elbo", "neg_elbo_se"),
        f"{spread(r, 'iwae_nll', 'iwae_nll_se')} ({r['k']})",
        exact,
        "" if r["iwae_gap_to_exact"] is None else f"{r['iwae_gap_to_exact']:.2f}",
        spread(r, "rate"),
        spread(r, "distortion"),
        f"{units_cell(r)} / {r['size']}",
        restore,
    ]


def variants_markdown(params: Params, rows: Sequence[Mapping[str, Any]], figures: Sequence[str],
                      run_figures: Mapping[str, Sequence[str]]) -> str:
    """variants.md: the table, the published numbers, the two figures and each variant run's own figures.

    `figures` and `run_figures` ({run: [paths]}) are links relative to the file.
    """
    lines = ["# Variants of the VAE", ""]
    if not params.variants.runs:
        lines += ["No variant runs (variants.runs in params.yaml is empty): the figures show the grid's VAE alone."]
    else:
        lines += [
            f"{rows[0]['n_images']} test images, the same bits as the grid's. Each variant differs from the VAE "
            "in the pieces of its setting and is scored like it: test -ELBO at beta = 1, IWAE NLL with its own q "
            "as proposal (k samples), and an exact NLL where the latent space allows one (quadrature for Gaussian "
            "latents of 1-2 dimensions, enumeration of all K^N states for N categorical variables of K classes). "
            "Rate = mean KL(q(z|x) || p(z)) and distortion = -E_q log p(x|z), so -ELBO = rate + distortion "
            "(Alemi et al. 2018). Restore NLL (denoising): -log p(x | z = the code of x with its bits flipped at "
            "the given rate), beside the same from the clean image's code. Nats per image, lower is better. "
            + (f"Each row is the mean over {rows[0]['n_seeds']} training seeds ± the training-seed sd (n), then the "
               "standard error over test images of one run (s.e.); metrics/comparisons.md has each variant against "
               "the VAE with its interval. " if rows[0]["n_seeds"] > 1 else "± one standard error over images. ")
            + "The VAE rows are the grid's at the same latent size.",
            "",
            md_row(["run", "setting", "z or N×K", "test -ELBO", "IWAE NLL (k)", "exact NLL", "IWAE gap to exact",
                    "rate", "distortion", "active units", "restore NLL"]),
            "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
            *(md_row(_cells(r)) for r in rows),
            "",
            "## Published reference points (variants)",
            "",
            *reference_lines(params, rows),
        ]
    lines += ["", "## Variant figures", ""]
    lines += [f"![{Path(f).stem}]({f})" for f in figures]
    for run, links in run_figures.items():
        lines += ["", f"### {run}: {setting(params.variant(parse_run(run)[0]))}", ""]
        lines += [f"![{Path(f).stem}]({f})" for f in links]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- writing


def write_variants(params: Params, grid_runs: Sequence[Mapping[str, Any]], variant_runs: Sequence[Mapping[str, Any]],
                   run_figures: Mapping[str, Sequence[Path]], out_dir: Path, plots_dir: Path) -> tuple[str, list[Path]]:
    """Write variants.csv, the two figures and variants.md; return variants.md's text and the files written."""
    out_dir, plots_dir = Path(out_dir), Path(plots_dir)
    rows = table_rows(params, grid_runs, variant_runs)
    vio.write_text(out_dir / "variants.csv", to_csv(rows, VARIANT_COLUMNS))
    points = figure_rows(params, grid_runs, variant_runs)
    note = "" if variant_runs else "no variant runs: the grid's VAE alone"
    figures = [save_figure(variant_plots.rate_distortion(points, reference_vae(points), note),
                           plots_dir / "rate_distortion.png"),
               save_figure(variant_plots.nll_by_family(points, note), plots_dir / "nll_by_family.png")]

    def link(path: Path) -> str:  # relative, so that the file opens offline beside the figures
        return Path(os.path.relpath(path, out_dir)).as_posix()

    # variants.md links the two committed figures only: the runs' own are DVC outputs, absent from a fresh
    # clone; the page (report.html) embeds them, from the text returned here
    vio.write_text(out_dir / "variants.md", variants_markdown(params, rows, [link(f) for f in figures], {}))
    md = variants_markdown(params, rows, [link(f) for f in figures],
                           {run: [link(f) for f in paths] for run, paths in run_figures.items()})
    return md, [out_dir / "variants.md", out_dir / "variants.csv", *figures]
