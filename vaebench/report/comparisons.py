"""Every question the benchmark answers, as a difference of seed means with its 95 % interval.

The questions (rows of metrics/comparisons.md and .csv):
- each variant run against the grid's VAE at its latent size (IWAE NLL and test -ELBO);
- a costlier objective (iwae, dreg) against a VAE trained longer (a variant whose only piece is `epochs`) at its
  latent size: the two at equal training time, when the epochs are set to the objective's measured cost (IWAE NLL);
- the CVAE against the VAE at each latent size, on the quantity they share: -log p(x) (the CVAE's with its
  label marginalised) and the test -ELBO (the CVAE's conditional: the thesis's comparison);
- each latent size against the next smaller one, per family (IWAE NLL);
- each of the thesis's three numbers against our test -ELBO of the same cell.

How each row's interval is estimated (report/stats.py has the formulas and sources): by a rule fixed before
the data, the same for every row, that needs no assumption the data cannot check at n = 3:
- `paired by seed` where both sides ran the same training seeds (every row between two cells of the default
  grid): the configurations share their seeds' random streams (minibatch order, binarisation, noise;
  initialisation draws from the same stream, shaped by the network), so the seed-by-seed differences are one
  sample; valid whatever the two sides' variances and their correlation;
- `Welch` (Welch 1947) where they did not; `one-sample t` of our mean against a thesis number (no spread given).
Beside each row: the interval a training-seed sd pooled over the family's cells would give (more degrees of
freedom, so narrower), where Bartlett's test does not reject equal sds across those cells. It is printed, not used
for the verdict. In a simulated family of 8 cells whose sds spread 4x (0.5 to 2), 3 seeds each, Bartlett's test
rejected equal sds only 22 % of the time, and for the row comparing the two most variable cells the interval
pooled where the test passed covered the true difference 87.7 % of the time (1,000 families), taking whichever
valid method gave the narrowest interval (the rule before 2026-12-06, for a kind of one row) 85.6 %, the fixed
rule 95.6 % (2,000 families; tests/test_comparisons.py). Averaged over all the family's rows the pooled interval
covers more (about 94 %): the loss falls on the rows of the most variable cells. The median width of each method
per kind is printed too: what pairing by seed or pooling would gain, measured on these runs.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vaebench import io as vio
from vaebench.config import Params
from vaebench.report.references import THESIS_POINTS
from vaebench.report.stats import Comparison, compare, compare_to_reference, homogeneity, pooled_sd
from vaebench.report.tables import md_row, num, to_csv

LABELS = {"vae": "VAE", "cvae": "CVAE"}
COLUMNS = ("kind", "a", "b", "metric", "mean_a", "mean_b", "diff", "lo", "hi", "df", "method", "p_improve",
           "n_a", "n_b", "verdict", "pooled_lo", "pooled_hi", "pooled_df")


@dataclass(frozen=True)
class Question:
    """One row before its estimate: per-seed values of both sides (b may be a published number)."""

    kind: str
    a: str
    b: str
    metric: str
    values_a: tuple[float, ...]
    values_b: tuple[float, ...] | float
    seeds_a: tuple[int, ...]
    seeds_b: tuple[int, ...]
    family: tuple[str, ...]  # the families whose pooled sd may serve this row


def _values(cell: Mapping[str, Any], metric: str) -> tuple[float, ...]:
    return tuple(float(r[metric]) for r in cell["runs"] if metric in r)


def _name(cell: Mapping[str, Any]) -> str:
    return f"{LABELS.get(cell['model'], cell['model'])} z={cell['zdim']}"


def questions(params: Params, cells: Sequence[Mapping[str, Any]], variant_cells: Sequence[Mapping[str, Any]]) -> list[Question]:
    """Every question of the module docstring that these cells can answer."""
    by = {(c["model"], c["zdim"]): c for c in cells}
    out: list[Question] = []

    def ask(kind: str, a: Mapping[str, Any], b: Mapping[str, Any], metric_a: str, metric_b: str, metric: str,
            family: tuple[str, ...]) -> None:
        va, vb = _values(a, metric_a), _values(b, metric_b)
        if va and vb:
            out.append(Question(kind, _name(a), _name(b), metric, va, vb, tuple(a["seeds"]), tuple(b["seeds"]), family))

    for v in variant_cells:
        vae = by.get(("vae", v["zdim"]))
        if vae is not None and params.variant(v["model"]).latent == "gaussian":
            for metric in ("iwae_nll", "neg_elbo"):
                ask("variant vs VAE", v, vae, metric, metric, metric, ())
    # at equal cost: an objective that costs more per epoch (iwae, dreg) against a VAE whose only piece is a longer
    # training (`epochs`, set to the other's training time), at the same latent size
    longer = [v for v in variant_cells if set(params.variant(v["model"]).changed()) == {"epochs"}]
    for v in variant_cells:  # an objective that changes nothing else (a beta beside it would be another question)
        if params.variant(v["model"]).objective != "elbo" and set(params.variant(v["model"]).changed()) <= {"objective", "k"}:
            for vae in (w for w in longer if w["zdim"] == v["zdim"]):
                ask("objective vs longer VAE", v, vae, "iwae_nll", "iwae_nll", "iwae_nll", ())
    for z in params.grid.zdims:
        if ("vae", z) in by and ("cvae", z) in by:
            ask("CVAE vs VAE", by[("cvae", z)], by[("vae", z)], "iwae_nll_marginal", "iwae_nll", "-log p(x) (IWAE)",
                ("vae", "cvae"))
            ask("CVAE vs VAE", by[("cvae", z)], by[("vae", z)], "neg_elbo", "neg_elbo",
                "test -ELBO (CVAE: given y)", ("vae", "cvae"))
    for model in params.grid.models:
        zs = sorted(z for m, z in by if m == model)
        for small, large in zip(zs, zs[1:]):
            ask("z vs smaller z", by[(model, large)], by[(model, small)], "iwae_nll", "iwae_nll", "iwae_nll", (model,))
    for t in THESIS_POINTS:
        cell = by.get((t.model, t.zdim))
        if cell is not None:
            out.append(Question("ours vs thesis", _name(cell), f"thesis {LABELS[t.model]} z={t.zdim}", "neg_elbo",
                                _values(cell, "neg_elbo"), t.value, tuple(cell["seeds"]), (), (t.model,)))
    return out


def family_checks(cells: Sequence[Mapping[str, Any]], metrics: Sequence[str]) -> dict[tuple[tuple[str, ...], str], Any]:
    """{(families, metric): (HomogeneityCheck, pooled (sd, df))} over the grid's cells of those families, where
    at least two cells have two seeds or more."""
    checks = {}
    for fams in (("vae",), ("cvae",), ("vae", "cvae")):
        for metric in metrics:
            groups = [_values(c, metric if not (metric == "iwae_nll" and c["model"] == "cvae" and fams == ("vae", "cvae"))
                              else "iwae_nll_marginal") for c in cells if c["model"] in fams]
            groups = [g for g in groups if len(g) >= 2]
            if len(groups) >= 2:
                checks[(fams, metric)] = (homogeneity(groups), pooled_sd(groups))
    return checks


def _metric_key(q: Question) -> str:
    return {"-log p(x) (IWAE)": "iwae_nll", "test -ELBO (CVAE: given y)": "neg_elbo"}.get(q.metric, q.metric)


def estimate(q: Question, method: str, checks: Mapping[tuple[tuple[str, ...], str], Any]) -> Comparison | None:
    """The row's comparison by `method` (welch, pooled, paired), or None where that method does not apply to it."""
    if isinstance(q.values_b, float):  # a published number: our mean's one-sample interval, or the family's sd
        if method == "paired":
            return None
        pooled = checks.get((q.family, _metric_key(q)))
        use = pooled[1] if method == "pooled" and pooled and pooled[0].passed else None
        if method == "pooled" and use is None:
            return None
        return compare_to_reference(q.values_a, q.values_b, q.a, q.b, pooled=use)
    if method == "paired":
        if q.seeds_a != q.seeds_b or len(q.values_a) != len(q.values_b) or len(q.values_a) < 2:
            return None
        return compare(q.values_a, q.values_b, q.a, q.b, paired=True)
    if method == "pooled":
        check = checks.get((q.family, _metric_key(q))) if q.family else None
        if check is None or not check[0].passed:
            return None
        return compare(q.values_a, q.values_b, q.a, q.b, pooled=check[1])
    return compare(q.values_a, q.values_b, q.a, q.b)


def primary_method(q: Question) -> str:
    """The fixed rule: `paired` where both sides ran the same seeds (two or more), else `welch` (for a published
    number: the one-sample t of our mean, which `estimate` gives under `welch`)."""
    paired = (not isinstance(q.values_b, float) and q.seeds_a == q.seeds_b and len(q.values_a) == len(q.values_b)
              and len(q.values_a) >= 2)
    return "paired" if paired else "welch"


def method_widths(qs: Sequence[Question], checks: Mapping[tuple[tuple[str, ...], str], Any]) -> dict[str, dict[str, float]]:
    """Per kind of question: the median interval width of each method over the kind's rows (among the methods
    that apply to every row of it, with finite intervals): what pairing or pooling would gain, measured."""
    widths: dict[str, dict[str, float]] = {}
    for kind in dict.fromkeys(q.kind for q in qs):
        rows = [q for q in qs if q.kind == kind]
        widths[kind] = {}
        for method in ("welch", "pooled", "paired"):
            est = [estimate(q, method, checks) for q in rows]
            if all(e is not None and e.hi == e.hi for e in est):
                widths[kind][method] = statistics.median(e.hi - e.lo for e in est)
    return widths


def comparison_rows(params: Params, cells: Sequence[Mapping[str, Any]], variant_cells: Sequence[Mapping[str, Any]],
                    ) -> tuple[list[dict[str, Any]], dict[str, Any], dict[str, tuple[str, dict[str, float]]]]:
    """(rows of COLUMNS, the family checks, per kind the method its rows used (`paired`, `welch`, or `mixed`) with
    every method's median width)."""
    qs = questions(params, cells, variant_cells)
    checks = family_checks(cells, ("iwae_nll", "neg_elbo"))
    widths = method_widths(qs, checks)
    used = {kind: {primary_method(q) for q in qs if q.kind == kind} for kind in widths}
    methods = {kind: (m.pop() if len(m) == 1 else "mixed", widths[kind]) for kind, m in used.items()}
    rows = []
    for q in qs:
        c = estimate(q, primary_method(q), checks)
        pooled = estimate(q, "pooled", checks)
        rows.append({
            "kind": q.kind, "a": q.a, "b": q.b, "metric": q.metric,
            "mean_a": num(statistics.fmean(q.values_a)),
            "mean_b": num(q.values_b if isinstance(q.values_b, float) else statistics.fmean(q.values_b)),
            "diff": num(c.diff), "lo": num(c.lo), "hi": num(c.hi), "df": num(c.df), "method": c.method,
            "p_improve": num(c.p_improve), "n_a": len(q.values_a),
            "n_b": None if isinstance(q.values_b, float) else len(q.values_b), "verdict": c.verdict,
            "pooled_lo": num(pooled.lo) if pooled else None, "pooled_hi": num(pooled.hi) if pooled else None,
            "pooled_df": num(pooled.df) if pooled else None,
        })
    return rows, checks, methods


def _interval(r: Mapping[str, Any]) -> str:
    if r["lo"] is None:
        return "n/a"
    return f"{r['diff']:+.2f} [{r['lo']:+.2f}, {r['hi']:+.2f}]"


def _pooled(r: Mapping[str, Any]) -> str:
    return "" if r["pooled_lo"] is None else f"[{r['pooled_lo']:+.2f}, {r['pooled_hi']:+.2f}] ({r['pooled_df']:g} df)"


def comparisons_markdown(rows: Sequence[Mapping[str, Any]], checks: Mapping[Any, Any],
                         methods: Mapping[str, tuple[str, dict[str, float]]], n_seeds: int) -> str:
    lines = [
        "# Comparisons: every difference with its 95 % interval",
        "",
        f"Each side is the mean over its training seeds (n = {n_seeds} per cell unless the row says otherwise); "
        "`diff` = A − B in nats (lower is better for every metric here: a negative diff means A is better), with "
        "its 95 % interval; P(A better) is the probability of improvement of Agarwal et al. 2021 (the share of "
        "seed pairs in which A is better; seed by seed for a paired row). A row is *resolved* when its interval "
        "excludes 0. The s.e. over test images is not part of these intervals: the images are shared by both "
        "sides, and the training-seed variance dominates (report/stats.py). Read the verdicts as a family: "
        f"at 95 % each, about one row in twenty of equal configurations would read *resolved* by chance "
        f"({len(rows)} rows here). Every row's interval follows one rule fixed in advance (below); the interval a "
        "pooled family sd would give is printed beside it, for reading, not for the verdict. The CVAE's -ELBO is a bound on -log p(x|y), the VAE's on "
        "-log p(x): that row is the thesis's comparison, not one of equals.",
        "",
        "## How each kind of question is estimated",
        "",
        "Paired by seed where both sides ran the same training seeds, Welch where not, the one-sample t of our "
        "mean against a thesis number: valid whatever the two sides' variances and correlation. Not chosen on "
        "the data: in a simulated family whose sds spread 4x (3 seeds a cell), Bartlett's test passed 78 % of the "
        "time, and for the row of its two most variable cells a pooled sd used where it passed covered 87.7 %, the "
        "narrowest valid method 85.6 %, this rule 95.6 % (vaebench/report/comparisons.py). The widths each "
        "method would give, measured on these runs:",
        "",
        "| kind | method used | median interval width by method |",
        "|---|---|---|",
    ]
    for kind, (method, widths) in methods.items():
        words = {"welch": "one-sample t" if kind == "ours vs thesis" else "Welch", "pooled": "pooled family sd",
                 "paired": "paired by seed", "mixed": "paired by seed where the seeds match, else Welch"}
        lines.append(md_row([kind, words[method], ", ".join(f"{words[m]} {w:.2f}" for m, w in widths.items()) or "n/a"]))
    lines += ["", "Can the training-seed variance be pooled over a family's cells? (Bartlett's test; with a few "
              "seeds a cell it has little power, hence the ratio of the largest to the smallest cell sd beside it; where it "
              "passes, the rows print the pooled interval beside their own.)",
              "", "| cells | metric | Bartlett p | sd ratio (max/min) | pooled sd (df) | pooled? |", "|---|---|--:|--:|--:|---|"]
    for (fams, metric), (check, (sd, df)) in checks.items():
        lines.append(md_row(["+".join(LABELS[f] for f in fams), metric, f"{check.p_value:.3f}",
                             f"{check.sd_ratio:.1f}", f"{sd:.2f} ({df})", "yes" if check.passed else "no"]))
    lines += ["", "## The comparisons", "", md_row(["kind", "A", "B", "metric", "A", "B", "A − B [95 % interval]",
                                                    "P(A better)", "method", "verdict",
                                                    "pooled-sd interval (not used)"]),
              "|---|---|---|---|--:|--:|--:|--:|---|---|--:|"]
    for r in rows:
        lines.append(md_row([r["kind"], r["a"], r["b"], r["metric"], f"{r['mean_a']:.2f}", f"{r['mean_b']:.2f}",
                             _interval(r), "" if r["p_improve"] is None else f"{r['p_improve']:.2f}", r["method"],
                             r["verdict"], _pooled(r)]))
    return "\n".join(lines) + "\n"


def write_comparisons(params: Params, cells: Sequence[Mapping[str, Any]], variant_cells: Sequence[Mapping[str, Any]],
                      out_dir: Path) -> tuple[str, list[Path]]:
    """Write comparisons.md and comparisons.csv; return the Markdown and the files."""
    rows, checks, methods = comparison_rows(params, cells, variant_cells)
    md = comparisons_markdown(rows, checks, methods, max((c["n_seeds"] for c in cells), default=1))
    files = [Path(out_dir) / "comparisons.md", Path(out_dir) / "comparisons.csv"]
    vio.write_text(files[0], md)
    vio.write_text(files[1], to_csv(rows, COLUMNS))
    return md, files
