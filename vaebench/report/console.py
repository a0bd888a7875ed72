"""The terminal's view of one run's metrics: `vaebench eval`'s printout."""

from __future__ import annotations

from typing import Any

from vaebench.report.references import thesis_value


def format_metrics(m: dict[str, Any]) -> str:
    """The metrics as a small table: nats per image, lower is better, ± one standard error."""
    rows = [
        ("test -ELBO", f"{m['neg_elbo']:.2f} ± {m['test_elbo_se']:.2f}"),
        (f"IWAE NLL (k={m['k']})", f"{m['iwae_nll']:.2f} ± {m['iwae_nll_se']:.2f}"),
    ]
    if "iwae_nll_marginal" in m:
        rows[1] = (f"IWAE NLL -log p(x|y) (k={m['k']})", rows[1][1])
        rows.append((f"IWAE NLL -log p(x) (k={m['k_marginal']}/label)",
                     f"{m['iwae_nll_marginal']:.2f} ± {m['iwae_nll_marginal_se']:.2f}"))
    if "iwae_nll_eval_sd" in m:
        rows.append(("IWAE NLL sd across evaluation seeds", f"{m['iwae_nll_eval_sd']:.3f} (predicted from {m['eval_spread_seeds']} "
                                                  f"seeds on {m['eval_spread_images']} images)"))
    if "quad_nll" in m:
        rows.append(("exact NLL (quadrature)", f"{m['quad_nll']:.2f}"))
    if "exact_nll" in m:
        rows.append((f"exact NLL (enumeration of {m['exact_states']:,} states)",
                     f"{m['exact_nll']:.2f} ± {m['exact_nll_se']:.2f}"))
    if "rate" in m:
        rows.append(("rate, distortion (-ELBO = their sum)", f"{m['rate']:.2f}, {m['distortion']:.2f}"))
    if "restore_nll" in m:
        rows.append((f"restoration NLL ({m['restore_noise']:g} of bits flipped)",
                     f"{m['restore_nll']:.2f} ± {m['restore_nll_se']:.2f} (from the clean image: "
                     f"{m['restore_nll_clean']:.2f})"))
    thesis = thesis_value(m["model"], m["zdim"])
    if thesis is not None:
        rows.append(("the thesis (its 'quality')", f"{thesis:g}  (compare with test -ELBO; see README)"))
    rows += [("KL(q || p)", f"{m['kl']:.2f}"), ("active units", f"{m['active_units']} / {m['zdim']}")]
    width = max(len(r[0]) for r in rows)
    head = (f"{m['model']} z={m['zdim']} on {m['n_images']} test images: nats per image, lower is better; "
            f"± is one standard error over the test images")
    return "\n".join([head] + [f"  {a:<{width}}  {b}" for a, b in rows])


# the columns of `vaebench results`, in order, and their headers; a run shows those its summary has
# (short, so that every column of the default run's summary fits a 120-column terminal: the IWAE NLL's training-seed
# sd, its seed count and its s.e. over test images; the exact NLL by quadrature or by enumeration)
RESULT_COLUMNS = (("neg_elbo", "-ELBO"), ("iwae_nll", "IWAE NLL"), ("iwae_nll_train_sd", "seed sd"),
                  ("iwae_nll_n", "n"), ("iwae_nll_se", "image s.e."),
                  ("iwae_nll_marginal", "-log p(x)"), ("quad_nll", "quad NLL"), ("exact_nll", "enum NLL"),
                  ("rate", "rate"), ("distortion", "distortion"), ("active_units", "AU"))


def summary_rows(summary: dict[str, Any]) -> list[dict[str, Any]]:
    """metrics/summary.json ({family: {"z<size>": {metric: value}}}) as one row per run, grid runs first."""
    rows = []
    for family in sorted(summary, key=lambda f: (f not in ("vae", "cvae"), f != "vae", f)):
        for size in sorted(summary[family], key=lambda z: int(z[1:])):
            rows.append({"run": f"{family}-{size[1:]}", **summary[family][size]})
    return rows


def results_table(columns: dict[str, list[dict[str, Any]]]) -> str:
    """Runs down, metrics across; with several sources (git revisions), one column per source and metric,
    and a difference column when there are two. Numbers to 2 decimals, '-' where a run has no such metric."""
    sources = list(columns)
    runs = list(dict.fromkeys(r["run"] for rows in columns.values() for r in rows))
    by = {s: {r["run"]: r for r in rows} for s, rows in columns.items()}
    keys = [(k, h) for k, h in RESULT_COLUMNS if any(k in r for rows in columns.values() for r in rows)]
    if len(sources) > 1:  # comparing: the two headline numbers only, each source and their difference
        keys = [(k, h) for k, h in keys if k in ("neg_elbo", "iwae_nll")]

    def fmt(v: Any) -> str:
        return "-" if v is None else f"{v:,}" if isinstance(v, int) else f"{v:.2f}"

    head, lines = ["run"], []
    for k, h in keys:
        head += [h] if len(sources) == 1 else [f"{h} {s}" for s in sources] + (["diff"] if len(sources) == 2 else [])
    for run in runs:
        cells = [run]
        for k, _ in keys:
            values = [by[s].get(run, {}).get(k) for s in sources]
            cells += [fmt(v) for v in values]
            if len(sources) == 2:
                cells.append("-" if None in values else f"{values[1] - values[0]:+.2f}")
        lines.append(cells)
    widths = [max(len(str(c)) for c in col) for col in zip(head, *lines)]
    out = ["  ".join(h.ljust(w) if i == 0 else h.rjust(w) for i, (h, w) in enumerate(zip(head, widths)))]
    out += ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths)))
            for row in lines]
    return "\n".join(out)
