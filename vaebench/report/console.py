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
    if "iwae_nll_seed_sd" in m:
        rows.append(("IWAE NLL sd across seeds", f"{m['iwae_nll_seed_sd']:.3f} (predicted from {m['seed_spread_seeds']} "
                                                  f"seeds on {m['seed_spread_images']} images)"))
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
