"""The report stage: the grid's metrics, checkpoints and training logs in; tables, summary and figures out.

Outputs (every one written atomically through vaebench.io, so a kill never leaves half a file):

- `summary.json`: a few numbers per run under flat, stable keys (`vae.z25.iwae_nll` in
  `dvc metrics diff`), rounded to 4 decimals so that identical runs give identical bytes;
- `table.csv`, `table.md`: the thesis's table regenerated, one row per grid item, beside the
  thesis's own numbers and the published reference points;
- `nll_by_zdim.csv`: one row per latent size, one column per curve, for `dvc plots`;
- PNG figures (drawn by vaebench.plots), byte-identical across runs of the same inputs.

Every input is checked before anything is written: a missing one is a ReportError that names
the file and the `dvc repro` stage that makes it.
"""

from __future__ import annotations

import csv
import io
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from matplotlib.figure import Figure

from vaebench import io as vio
from vaebench import plots
from vaebench.checkpoint import SIDECAR, load_checkpoint
from vaebench.config import Params, run_name, to_dict
from vaebench.data import SHAPES, binarize_test, load_mnist
from vaebench.elbo import encode_all
from vaebench.evaluate import ACTIVE_THRESHOLD
from vaebench.html_report import machine, sources_sha256, write_html
from vaebench.models import N_LABELS, VAE
from vaebench.errors import ReportError

SAMPLE_SEED = 0  # prior samples in the figures: the same draw on every run
RECON_GRID = (8, 8)  # the first 64 test digits and their reconstructions
MANIFOLD_N = 20  # 20 x 20 decoded grid points, as in Kingma & Welling 2014, Fig. 4
MANIFOLD_DIGITS = (2, 5, 8)  # a CVAE's manifold is one per label: show a few, not all ten


# ---------------------------------------------------------------- what we compare against


@dataclass(frozen=True)
class ThesisPoint:
    """One number of the thesis's results table (see /work/shared/THESIS.md)."""

    model: str
    zdim: int
    value: float
    """The thesis's "quality" in nats per image; most likely its test -ELBO (lower is better)."""


THESIS_POINTS = (
    ThesisPoint("vae", 2, 157.0),
    ThesisPoint("vae", 25, 102.0),
    ThesisPoint("cvae", 35, 98.5),  # a conditional -log p(x|y): the label is given
)


@dataclass(frozen=True)
class Reference:
    """A published test NLL on binarised MNIST, with the setup it was measured under."""

    source: str
    setup: str
    nll: str
    """As published, nats per image."""
    compares_to: str
    """Which of our columns estimates the same quantity."""


REFERENCES = (
    Reference("Burda, Grosse, Salakhutdinov 2016 (IWAE), Table 1",
              "dynamic binarization; MLP 784-200-200-50 tanh; Adam, 3280 epochs; k=5000 evaluation",
              "VAE 1 stochastic layer: 86.76; IWAE k=50: 84.78; 2 layers VAE 85.33, IWAE k=50 82.90",
              "VAE IWAE NLL, -log p(x)"),
    Reference("Burda, Grosse, Salakhutdinov 2016 (IWAE), appendix",
              "static binarization; IWAE 1 layer k=1/5/50",
              "88.71 / 87.63 / 87.10",
              "VAE IWAE NLL, -log p(x), with data.binarize: static"),
    Reference("Pythae reproducibility table",
              "static binary MNIST, 784-400-40, 500 epochs, 200 IS samples",
              "VAE 89.78 (paper 89.9)",
              "VAE IWAE NLL, -log p(x), with data.binarize: static"),
    Reference("Kingma & Welling 2014 (AEVB)",
              "latent 3, 5, 10, 20, 200; 500 hidden units; Adagrad; batch 100",
              "figure only: lower bound between -150 and -100",
              "VAE test -ELBO (the bound, sign flipped)"),
    Reference("label-conditional IWAE (public reproduction)",
              "dynamic MNIST, 1 layer, log p(x|y), k=1/5/50",
              "82.32 / 81.41 / 80.78",
              "CVAE IWAE NLL, -log p(x|y) (the conditional column)"),
)

COMPARISON_NOTE = (
    "How to compare: the thesis's VAE numbers (157 at z=2, 102 at z=25) and the published VAE "
    "references are -log p(x), to be read against our VAE rows' test -ELBO (the bound the thesis "
    "most likely reports) and IWAE NLL, while the thesis's CVAE number (98.5 at z=35) and the "
    "label-conditional reference are a conditional -log p(x|y), to be read against our CVAE rows' "
    "IWAE NLL (and test -ELBO) columns, not against the CVAE -log p(x) column, which is the one "
    "comparable with a VAE's -log p(x)."
)


def thesis_value(model: str, zdim: int) -> float | None:
    """The thesis's number for this grid item, or None where it reports none."""
    for t in THESIS_POINTS:
        if (t.model, t.zdim) == (model, zdim):
            return t.value
    return None


# ---------------------------------------------------------------- inputs


def grid_items(params: Params) -> list[tuple[str, int]]:
    """(model, zdim) of every grid item, in the order of params.yaml (models outer)."""
    return [(m, z) for m in params.grid.models for z in params.grid.zdims]


REQUIRED_KEYS = ("model", "zdim", "n_images", "k", "test_elbo", "test_elbo_se", "neg_elbo", "iwae_nll",
                 "iwae_nll_se", "kl", "kl_per_dim", "activity_per_dim", "active_units")
CVAE_KEYS = ("k_marginal", "iwae_nll_marginal", "iwae_nll_marginal_se")


def read_metrics(path: Path, keys: Sequence[str], what: str, hint: str) -> dict[str, Any]:
    """A stage's metrics JSON holding `keys`; a missing, unreadable or incomplete file is a ReportError ending in `hint`."""
    if not path.exists():
        raise ReportError(f"{path}: missing {what}; {hint}")
    try:
        metrics = vio.read_json(path)
    except (OSError, ValueError) as e:
        raise ReportError(f"{path}: unreadable ({e}); {hint}") from None
    if not isinstance(metrics, dict):
        raise ReportError(f"{path}: not a run's metrics (a JSON object); {hint}")
    missing = [k for k in keys if k not in metrics]
    if missing:
        raise ReportError(f"{path}: no key {missing[0]!r}; {hint}")
    return metrics


def load_run(path: Path, model: str, zdim: int, n_images: int) -> dict[str, Any]:
    """One run's metrics JSON, checked to be this grid item's, scored on the current test set."""
    hint = f"run `dvc repro evaluate@{run_name(model, zdim)}`"
    run = read_metrics(path, REQUIRED_KEYS + (CVAE_KEYS if model == "cvae" else ()), "run metrics", hint)
    if (run["model"], run["zdim"]) != (model, zdim):
        raise ReportError(f"{path}: holds {run['model']} z={run['zdim']}, not {model} z={zdim}; {hint}")
    if run["n_images"] != n_images:
        # a stale file: scored on another test subset, so not comparable with the others
        raise ReportError(f"{path}: scored on {run['n_images']} test images, not the "
                          f"{n_images} of data.test_subset; {hint}")
    return run


def load_runs(params: Params, runs_dir: Path) -> list[dict[str, Any]]:
    n_images = params.data.test_subset or SHAPES["test_labels"][0]  # test_subset = 0: all of them
    return [load_run(Path(runs_dir) / f"{run_name(m, z)}.json", m, z, n_images) for m, z in grid_items(params)]


EXACT_KEYS = ("k", "iwae_nll", "iwae_nll_se", "quad_nll")


def attach_exact(params: Params, runs: Sequence[dict[str, Any]], exact_dir: Path) -> None:
    """Add the `exact` stage's many-sample IWAE (exact.k) to the runs of exact.zdims, beside their quadrature.

    The quadrature of that stage must equal the run's own (same model, grid and images): a mismatch
    means one of the two files is stale, and the gap would compare different things.
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
        if "quad_nll" not in run or not math.isclose(ex["quad_nll"], run["quad_nll"], rel_tol=0, abs_tol=1e-6):
            raise ReportError(f"{path}: its quadrature ({ex['quad_nll']}) is not the one of "
                              f"evaluate@{name} ({run.get('quad_nll')}); {hint}")
        run["exact_k"] = ex["k"]
        run["iwae_nll_exact_k"] = ex["iwae_nll"]
        run["iwae_nll_exact_k_se"] = ex["iwae_nll_se"]
        run["iwae_gap_to_quad_exact_k"] = ex["iwae_nll"] - ex["quad_nll"]
        if "iwae_nll_seed_sd" in ex:  # absent when the stage ran with eval.spread_seeds = 0
            run["iwae_nll_exact_k_seed_sd"] = ex["iwae_nll_seed_sd"]


def log_files(logs_dir: Path, name: str) -> tuple[Path, Path]:
    """The dvclive TSVs of one run: train and held-out ELBO per epoch."""
    base = Path(logs_dir) / name / "plots" / "metrics"
    return base / "train" / "elbo.tsv", base / "heldout" / "elbo.tsv"


def check_inputs(params: Params, models_dir: Path, logs_dir: Path) -> None:
    """Every checkpoint and training log the figures need exists (checked before anything is written)."""
    for m, z in grid_items(params):
        name = run_name(m, z)
        for path in (Path(models_dir) / name / SIDECAR, *log_files(logs_dir, name)):
            if not path.exists():
                raise ReportError(f"{path}: missing; run `dvc repro train@{name}`")


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


def _num(x: Any) -> int | float | None:
    """A JSON- and CSV-stable number: ints as they are, floats to 4 decimals, non-finite as None."""
    if isinstance(x, (bool, np.bool_)):
        raise TypeError(f"not a number: {x!r}")
    if isinstance(x, (int, np.integer)):
        return int(x)
    x = float(x)
    return round(x, 4) if math.isfinite(x) else None


SUMMARY_KEYS = ("test_elbo", "neg_elbo", "iwae_nll", "iwae_nll_se", "iwae_nll_seed_sd", "kl", "active_units",
                "iwae_nll_marginal", "iwae_nll_marginal_se", "quad_nll", "quad_nll_se", "quad_error_bound",
                "iwae_gap_to_quad", "quad_mean_error", "exact_k", "iwae_nll_exact_k", "iwae_nll_exact_k_se",
                "iwae_nll_exact_k_seed_sd", "iwae_gap_to_quad_exact_k")


def summary(runs: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, dict[str, int | float | None]]]:
    """{model: {"z<zdim>": {metric: number}}}: DVC shows it flat as `vae.z25.iwae_nll`."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for r in runs:
        leaf = {k: _num(r[k]) for k in SUMMARY_KEYS if k in r}
        if "quad_nll" in r:
            leaf["quad_mean_error"] = _num(quad_mean_error(r))
        out.setdefault(r["model"], {})[f"z{r['zdim']}"] = leaf
    return out


TABLE_COLUMNS = ("model", "zdim", "n_images", "neg_elbo", "neg_elbo_se", "iwae_target", "iwae_nll", "iwae_nll_se",
                 "k", "iwae_nll_seed_sd", "iwae_nll_marginal", "iwae_nll_marginal_se", "k_marginal", "quad_nll", "quad_nll_se",
                 "quad_error_bound", "quad_mean_error", "iwae_gap_to_quad", "exact_k", "iwae_nll_exact_k",
                 "iwae_nll_exact_k_se", "iwae_nll_exact_k_seed_sd", "iwae_gap_to_quad_exact_k", "active_units", "thesis")


def quad_mean_error(r: Mapping[str, Any]) -> float:
    """Integration error of the mean exact NLL: its change on the coarse sub-grid plus on the inner one.

    `quad_error_bound` is the same per image, worst image; a few images with very sharp
    posteriors dominate it, while the mean, which the tables report, moves far less.
    """
    return r["quad_refine_delta"] + r["quad_widen_delta"]


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
            "neg_elbo": _num(r["neg_elbo"]),
            "neg_elbo_se": _num(r["test_elbo_se"]),  # the se of a mean does not change with its sign
            "iwae_target": "-log p(x|y)" if cvae else "-log p(x)",
            "iwae_nll": _num(r["iwae_nll"]),
            "iwae_nll_se": _num(r["iwae_nll_se"]),
            "k": r["k"],
            "iwae_nll_marginal": _num(r["iwae_nll_marginal"]) if cvae else None,
            "iwae_nll_marginal_se": _num(r["iwae_nll_marginal_se"]) if cvae else None,
            "k_marginal": r["k_marginal"] if cvae else None,
            "quad_mean_error": _num(quad_mean_error(r)) if "quad_nll" in r else None,
            **{key: (_num(r[key]) if key in r else None) for key in OPTIONAL_NUMBERS},
            "active_units": r["active_units"],
            "thesis": thesis_value(r["model"], r["zdim"]),
        })
    return rows


def to_csv(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> str:
    """CSV with a header; None is an empty cell; '\\n' line ends on every platform."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(columns)
    for row in rows:
        w.writerow(["" if row.get(c) is None else row[c] for c in columns])
    return buf.getvalue()


def nll_by_zdim(runs: Sequence[Mapping[str, Any]], zdims: Sequence[int]) -> list[dict[str, Any]]:
    """Wide rows for `dvc plots`: one per zdim (ascending), one column per (model, quantity) curve."""
    by_item = {(r["model"], r["zdim"]): r for r in runs}
    rows = []
    for z in sorted(set(zdims)):
        vae, cvae = by_item.get(("vae", z), {}), by_item.get(("cvae", z), {})
        rows.append({
            "zdim": z,
            "vae_neg_elbo": _num(vae["neg_elbo"]) if vae else None,
            "vae_iwae_nll": _num(vae["iwae_nll"]) if vae else None,
            "cvae_neg_elbo": _num(cvae["neg_elbo"]) if cvae else None,
            "cvae_iwae_nll": _num(cvae["iwae_nll"]) if cvae else None,
            "cvae_iwae_nll_marginal": _num(cvae["iwae_nll_marginal"]) if cvae else None,
        })
    return rows


NLL_BY_ZDIM_COLUMNS = ("zdim", "vae_neg_elbo", "vae_iwae_nll", "cvae_neg_elbo", "cvae_iwae_nll",
                       "cvae_iwae_nll_marginal")


def _pm(value: float | None, se: float | None) -> str:
    if value is None:
        return ""
    return f"{value:.2f}" if se is None else f"{value:.2f} ± {se:.2f}"


def _md_row(cells: Sequence[str]) -> str:
    # a bare "|" (as in p(x|y)) would end the cell: escape it
    return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"


def _exact_cell(r: Mapping[str, Any]) -> str:
    """The exact-NLL cell of table.md: quadrature ± se (IWAE gaps at k [and exact.k]; grid error), or nothing."""
    cell = _pm(r["quad_nll"], r["quad_nll_se"])
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
        marginal = (f"{_pm(r['iwae_nll_marginal'], r['iwae_nll_marginal_se'])} ({r['k_marginal']})"
                    if r["iwae_nll_marginal"] is not None else "")
        cells = [
            plots.MODEL_LABELS.get(r["model"], r["model"]),
            str(r["zdim"]),
            _pm(r["neg_elbo"], r["neg_elbo_se"]),
            f"{_pm(r['iwae_nll'], r['iwae_nll_se'])} ({r['k']}"
            + (f"; sd {r['iwae_nll_seed_sd']:.3f}" if r["iwae_nll_seed_sd"] is not None else "") + ")",
            marginal,
            _exact_cell(r),
            f"{r['active_units']} / {r['zdim']}",
            "" if r["thesis"] is None else f"{r['thesis']:g}",
        ]
        lines.append(_md_row(cells))
    lines += [
        "",
        "## Published reference points",
        "",
        "| source | setup | test NLL (nats) | compares to our |",
        "|---|---|---|---|",
    ]
    lines += [_md_row([ref.source, ref.setup, ref.nll, ref.compares_to]) for ref in REFERENCES]
    lines += ["", COMPARISON_NOTE, "", "## Figures", ""]
    lines += [f"![{Path(f).stem}]({f})" for f in figures]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- images from a model


def _pixels(logits: torch.Tensor, *lead: int) -> np.ndarray:
    """Bernoulli means (sigmoid of the logits) as (*lead, 28, 28) float32 in [0, 1]."""
    return torch.sigmoid(logits).reshape(*lead, plots.SIDE, plots.SIDE).numpy().astype(np.float32)


@torch.no_grad()
def prior_samples(model: VAE, rows: int = 10, cols: int = 10) -> np.ndarray:
    """Decoded means of z ~ N(0, I), (rows, cols, 28, 28).

    For a CVAE, row r is digit r and each column shares one z across the rows, so a column
    shows one "style" written as every digit.
    """
    g = torch.Generator().manual_seed(SAMPLE_SEED)
    if model.conditional:
        z = torch.randn((cols, model.zdim), generator=g).expand(N_LABELS, cols, model.zdim)  # (10, C, D)
        return _pixels(model.decode(z, torch.arange(N_LABELS)), N_LABELS, cols)  # (10,) labels serve (10, C, D)
    z = torch.randn((rows * cols, model.zdim), generator=g)  # (R C, D)
    return _pixels(model.decode(z), rows, cols)


@torch.no_grad()
def reconstructions(model: VAE, x: torch.Tensor, y: torch.Tensor, rows: int, cols: int,
                    ) -> tuple[np.ndarray, np.ndarray]:
    """The first rows*cols images x (N, 784) and their decoded means at z = q's mean, each (rows, cols, 28, 28).

    With fewer than rows*cols test images (a tiny test_subset), the grid shrinks to what there is.
    """
    cols = min(cols, len(x))
    rows = min(rows, len(x) // cols)
    n = rows * cols
    xb, yb = x[:n], (y[:n] if model.conditional else None)
    mu, _ = model.encode(xb, yb)  # (n, D)
    return xb.reshape(rows, cols, plots.SIDE, plots.SIDE).numpy(), _pixels(model.decode(mu, yb), rows, cols)


def manifold_z(n: int = MANIFOLD_N) -> torch.Tensor:
    """n prior quantiles 5% .. 95% of N(0, 1).

    Kingma & Welling 2014, Fig. 4: a regular grid on the unit square through the inverse Gaussian CDF.
    """
    return torch.special.ndtri(torch.linspace(0.05, 0.95, n, dtype=torch.float64)).float()


@torch.no_grad()
def manifold_images(model: VAE, q: torch.Tensor, digit: int | None) -> np.ndarray:
    """Decoded means over the grid q x q of a 2-D latent, (n, n, 28, 28); z2 grows upwards (row 0 is the largest)."""
    n = len(q)
    z2, z1 = torch.meshgrid(q.flip(0), q, indexing="ij")  # (n, n) each: rows z2 descending, columns z1 ascending
    z = torch.stack([z1, z2], -1).reshape(n * n, 2)
    y = None if digit is None else torch.full((n * n,), digit, dtype=torch.long)
    return _pixels(model.decode(z, y), n, n)


# ---------------------------------------------------------------- writing


def save_figure(fig: Figure, path: Path) -> Path:
    with vio.atomic_path(path) as tmp:
        # fixed dpi and no "Software" text chunk: the same figure gives the same bytes on every run
        fig.savefig(tmp, format="png", dpi=plots.DPI, metadata={"Software": None})
    return path


def run_figures(model: VAE, label: str, name: str, x: torch.Tensor, y: torch.Tensor, plots_dir: Path) -> list[Path]:
    """The per-run figures: prior samples, reconstructions, and for a 2-D latent its scatter and manifold.

    `x` (N, 784) are the binarised test images and `y` (N,) their labels (used by a CVAE, and to colour the scatter).
    """
    z = model.zdim
    if model.conditional:
        samples = plots.digit_grid(
            prior_samples(model), f"{label} z={z}: samples p(x|z, y), z ~ N(0, I) shared along each column",
            row_labels=[str(d) for d in range(N_LABELS)], ylabel="digit y given to the decoder",
            xlabel="one prior draw of z per column")
    else:
        samples = plots.digit_grid(prior_samples(model), f"{label} z={z}: samples p(x|z), z ~ N(0, I)")
    written = [save_figure(samples, plots_dir / f"samples_{name}.png")]
    originals, recons = reconstructions(model, x, y, *RECON_GRID)
    written.append(save_figure(plots.reconstruction_pairs(originals, recons, f"{label} z={z}: reconstructions"),
                               plots_dir / f"reconstructions_{name}.png"))
    if z == 2:
        mu, _ = encode_all(model, x, y if model.conditional else None)  # (N, 2)
        what = "q(z|x, y): the label is given, so z holds style and digits overlap" if model.conditional else "q(z|x)"
        written.append(save_figure(
            plots.latent_scatter(mu.numpy(), y.numpy(), f"{label} z=2: test-set means of {what}"),
            plots_dir / f"latent_{name}.png"))
        q = manifold_z()
        digits = MANIFOLD_DIGITS if model.conditional else (None,)
        panels = {("all digits" if d is None else f"digit y = {d}"): manifold_images(model, q, d) for d in digits}
        title = f"{label} z=2: decoder means over a {len(q)}x{len(q)} grid of prior quantiles"
        written.append(save_figure(
            plots.manifold(panels, q.numpy(), title),
            plots_dir / f"manifold_{name}.png"))
    return written


def build_report(params: Params, runs_dir: Path, models_dir: Path, logs_dir: Path, data_path: Path,
                 out_dir: Path, plots_dir: Path, exact_dir: Path | None = None) -> list[Path]:
    """Write the summary, the tables and the figures of the whole grid; return the files written.

    `exact_dir` holds the `exact` stage's metrics (many-sample IWAE of the exact.zdims models); None skips them.
    """
    out_dir, plots_dir = Path(out_dir), Path(plots_dir)
    runs = load_runs(params, runs_dir)
    if exact_dir is not None:
        attach_exact(params, runs, exact_dir)
    check_inputs(params, models_dir, logs_dir)
    data = load_mnist(data_path, test_subset=params.data.test_subset)
    x = binarize_test(data.test_x, params.data.binarize, params.data.test_seed)  # the bits every model was scored on
    names = [run_name(r["model"], r["zdim"]) for r in runs]

    rows = table_rows(runs)
    written = [out_dir / "summary.json", out_dir / "table.csv", out_dir / "nll_by_zdim.csv"]
    vio.write_json(written[0], summary(runs))
    vio.write_text(written[1], to_csv(rows, TABLE_COLUMNS))
    vio.write_text(written[2], to_csv(nll_by_zdim(runs, params.grid.zdims), NLL_BY_ZDIM_COLUMNS))

    thesis = [(t.model, t.zdim, t.value) for t in THESIS_POINTS]
    figures = [save_figure(plots.nll_vs_zdim(runs, thesis), plots_dir / "nll_vs_zdim.png")]
    curves: dict[str, list[plots.Curve]] = {}
    for r, name in zip(runs, names):
        curves.setdefault(r["model"], []).append(read_curve(r["zdim"], *log_files(logs_dir, name)))
    figures.append(save_figure(plots.training_curves(curves), plots_dir / "training_curves.png"))
    figures.append(save_figure(plots.active_units(runs, ACTIVE_THRESHOLD), plots_dir / "active_units.png"))
    for r, name in zip(runs, names):
        model, _ = load_checkpoint(Path(models_dir) / name, expect={"model": r["model"], "zdim": r["zdim"]})
        figures += run_figures(model, plots.MODEL_LABELS[r["model"]], name, x, data.test_y, plots_dir)

    # last, so that it links exactly the figures written; relative links let it open offline beside them
    links = [Path(os.path.relpath(f, out_dir)).as_posix() for f in figures]
    md = table_markdown(rows, params, links)
    vio.write_text(out_dir / "table.md", md)
    # the same report as one page with the figures inside: opens offline, mailed or moved alone
    provenance = {"vaebench sources sha256": sources_sha256(Path(__file__).parent),
                  "data manifest sha256": data.manifest_sha256, **machine()}
    write_html(out_dir / "report.html", md, out_dir, provenance, yaml.safe_dump(to_dict(params), sort_keys=False))
    return [*written, out_dir / "table.md", out_dir / "report.html", *figures]
