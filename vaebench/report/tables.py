"""How the report writes numbers: stable JSON/CSV numbers, the flat summary, CSV files and Markdown cells.

Shared by the grid's tables (report/build.py) and the variants' (report/variants.py), so that a number is
rounded, and a cell written, the same way in every product.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

# the metrics summary.json keeps of each run (where the run has them), in `dvc metrics diff` order
SUMMARY_KEYS = ("test_elbo", "neg_elbo", "iwae_nll", "iwae_nll_se", "iwae_nll_eval_sd", "kl", "active_units",
                "iwae_nll_marginal", "iwae_nll_marginal_se", "quad_nll", "quad_nll_se", "quad_error_bound",
                "iwae_gap_to_quad", "quad_mean_error", "exact_k", "iwae_nll_exact_k", "iwae_nll_exact_k_se",
                "iwae_nll_exact_k_eval_sd", "iwae_gap_to_quad_exact_k")


def num(x: Any) -> int | float | None:
    """A JSON- and CSV-stable number: ints as they are, floats to 4 decimals, non-finite as None."""
    if isinstance(x, (bool, np.bool_)):
        raise TypeError(f"not a number: {x!r}")
    if isinstance(x, (int, np.integer)):
        return int(x)
    x = float(x)
    return round(x, 4) if math.isfinite(x) else None


def summary(runs: Sequence[Mapping[str, Any]], keys: Sequence[str] = SUMMARY_KEYS,
            ) -> dict[str, dict[str, dict[str, int | float | None]]]:
    """{model: {"z<zdim>": {metric: number}}}: DVC shows it flat as `vae.z25.iwae_nll`.

    A training-seed sd that is no number (a metric of one seed has no spread: report/seeds.py gives nan) is
    left out, not written as null: DVC skips a null silently, and the metric's `_n` (1) says why it is absent.
    """
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for r in runs:
        leaf = {k: num(r[k]) for k in keys if k in r}
        leaf = {k: v for k, v in leaf.items() if v is not None or not k.endswith("_train_sd")}
        out.setdefault(r["model"], {})[f"z{r['zdim']}"] = leaf
    return out


def to_csv(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> str:
    """CSV with a header; None is an empty cell; '\\n' line ends on every platform."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(columns)
    for row in rows:
        w.writerow(["" if row.get(c) is None else row[c] for c in columns])
    return buf.getvalue()


def pm(value: float | None, se: float | None) -> str:
    """A Markdown cell `value ± se` to 2 decimals; empty without a value."""
    if value is None:
        return ""
    return f"{value:.2f}" if se is None else f"{value:.2f} ± {se:.2f}"


def spread(row: Mapping[str, Any], key: str, se: str | None = None) -> str:
    """A Markdown cell of a seed-combined number: `mean ± training-seed sd (n)`, then `; s.e. x` (the s.e. over
    images of one run) if `se` names it; with one seed, `value ± s.e.` as a single run prints it."""
    value, sd, n = row.get(key), row.get(f"{key}_train_sd"), row.get(f"{key}_n")
    se_value = row.get(se) if se else None
    if value is None:
        return ""
    if not n or n < 2 or sd is None:
        return pm(value, se_value)
    text = f"{value:.2f} ± {sd:.2f} ({n})"
    return text if se_value is None else f"{text}; s.e. {se_value:.2f}"


def units_cell(row: Mapping[str, Any]) -> str:
    """Active units as a Markdown cell: a seed mean ± its training-seed sd (3 and 2 significant digits: a count
    averaged over 3 seeds has no more), or one run's count as it is."""
    n, sd = row.get("active_units_n") or 0, row.get("active_units_train_sd")
    return f"{row['active_units']:.3g} ± {sd:.2g}" if n > 1 and sd else f"{row['active_units']:g}"


def md_row(cells: Sequence[str]) -> str:
    # a bare "|" (as in p(x|y)) would end the cell: escape it
    return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"
