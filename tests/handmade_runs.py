"""The report's inputs written by hand: runs' metrics, dvclive logs, per-run figures, with numbers chosen here.

For report tests that need no training: every number in the outputs can be checked against the ones
below. The files have the shapes the stages write (the keys of vaebench/run/score.py's score, dvclive's TSV
columns, the figure names of vaebench/run/figures.py); the PNGs are placeholders (the report copies and
embeds them, never decodes them).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vaebench import io as vio
from vaebench.config import Params, params_from_dict, run_name, split_run

N_IMAGES = 500

PARAMS = {
    "grid": {"models": ["vae", "cvae"], "zdims": [2, 20], "seeds": [0, 1, 2]},
    "data": {"train_subset": 1000, "test_subset": N_IMAGES},
    "train": {"batch_size": 100, "heldout": 100},
    "exact": {"zdims": [2], "k": 5000},
    "variants": {
        "defs": {"beta4": {"beta": 4.0}, "iwae5": {"objective": "iwae", "k": 5}, "denoise": {"noise": 0.2},
                 "cat10": {"latent": "categorical", "classes": 10}},
        "runs": ["beta4-20", "iwae5-20", "denoise-20", "denoise-2", "cat10-1", "cat10-2"],
    },
}

# (model, size): -ELBO, its se, IWAE NLL, its se, mean KL, active units; a variant's rate is its KL
NUMBERS = {
    ("vae", 2): (140.0, 0.5, 136.0, 0.45, 6.0, 2),
    ("vae", 20): (100.0, 0.3, 95.0, 0.3, 25.0, 10),
    ("cvae", 2): (120.0, 0.4, 117.0, 0.4, 5.0, 2),
    ("cvae", 20): (90.0, 0.3, 86.0, 0.3, 20.0, 9),
    ("beta4", 20): (104.0, 0.3, 99.0, 0.3, 12.5, 5),
    ("beta1", 20): (100.5, 0.3, 95.5, 0.3, 24.5, 10),  # a def at the VAE's pieces (one test adds it)
    ("iwae5", 20): (101.0, 0.3, 93.8, 0.3, 28.0, 14),
    ("denoise", 20): (103.0, 0.3, 97.0, 0.3, 22.0, 9),
    ("denoise", 2): (150.0, 0.5, 145.0, 0.5, 5.0, 2),
    ("cat10", 1): (200.0, 0.8, 195.0, 0.8, 2.2, 1),
    ("cat10", 2): (180.0, 0.7, 170.0, 0.7, 4.0, 2),
}
QUAD = {("vae", 2): 135.0, ("cvae", 2): 116.5, ("denoise", 2): 143.0}  # exact NLL by quadrature of the 2-D grid runs
ENUMERATED = {("cat10", 1): 194.0, ("cat10", 2): 168.5}  # exact NLL by enumeration
RESTORE = {"denoise": (88.0, 0.4, 80.0, 0.35)}  # restore_nll, its se, restore_nll_clean, its se
EXACT_K_IWAE = {"vae": 135.4, "cvae": 116.8}  # the exact stage's k = 5000 IWAE NLL of the z = 2 runs
# each training seed's -ELBO and IWAE NLL (and a CVAE's marginal) are NUMBERS' plus this offset: the seeds'
# mean is NUMBERS' own, their sd exactly 0.3 (n - 1 = 2: sqrt((0.09 + 0 + 0.09) / 2))
SEED_OFFSET = {0: -0.3, 1: 0.0, 2: 0.3}


def params(variants: bool = True) -> Params:
    d = {**PARAMS}
    if not variants:
        d["variants"] = {"defs": {}, "runs": []}
    return params_from_dict(d)


def run_metrics(model: str, size: int, variant: bool, seed: int | None = None) -> dict[str, Any]:
    """What `vaebench eval --out` writes for this run (training seed `seed`: SEED_OFFSET; None: NUMBERS as they are)."""
    neg_elbo, elbo_se, iwae, iwae_se, kl, active = NUMBERS[model, size]
    shift = 0.0 if seed is None else SEED_OFFSET[seed]
    neg_elbo, iwae = neg_elbo + shift, iwae + shift
    width = size  # latent units (Gaussian) or categorical variables
    m: dict[str, Any] = {
        "model": model, "zdim": size, "n_images": N_IMAGES, "k": 100, "test_elbo": -neg_elbo,
        "test_elbo_se": elbo_se, "neg_elbo": neg_elbo, "iwae_nll": iwae, "iwae_nll_se": iwae_se,
        "iwae_nll_eval_sd": 0.01, "kl": kl, "kl_per_dim": [kl / width] * width,
        "activity_per_dim": [0.5] * active + [0.001] * (width - active), "active_units": active,
        "weights_sha256": f"{model}-{size}-{seed}",
        **({} if seed is None else {"train_seed": seed}),
    }
    if model == "cvae":
        m.update(k_marginal=10, iwae_nll_marginal=iwae + 8.0, iwae_nll_marginal_se=iwae_se)
    if (model, size) in QUAD:
        q = QUAD[model, size]
        m.update(quad_nll=q, quad_nll_se=iwae_se - 0.01, quad_error_bound=0.02, quad_mean_error=0.001,
                 iwae_gap_to_quad=iwae - q)
    if variant:
        m.update(rate=kl, distortion=neg_elbo - kl)  # the distortion carries the seed's offset, the rate not
    if (model, size) in ENUMERATED:
        e = ENUMERATED[model, size]
        m.update(exact_nll=e, exact_nll_se=iwae_se - 0.05, exact_states=10 ** size, iwae_gap_to_exact=iwae - e)
    if model in RESTORE:
        r, r_se, c, c_se = RESTORE[model]
        m.update(restore_noise=0.2, restore_nll=r, restore_nll_se=r_se, restore_nll_clean=c,
                 restore_nll_clean_se=c_se)
    return m


def figure_files(name: str, size: int, categorical: bool = False, restorations: bool = False) -> list[str]:
    kinds = ["samples", "reconstructions", *(["restorations"] if restorations else []),
             *(["latent", "manifold"] if size == 2 and not categorical else [])]
    return [f"{kind}_{name}.png" for kind in kinds]


def write_inputs(root: Path, p: Params, exact_with_quad: bool = False, seeded: bool = True) -> dict[str, Path]:
    """runs/, exact/, logs/, figures/ and a data manifest under root, for the grid and variants of `p`: one run per
    training seed of grid.seeds, named `vae-2-0`, or with `seeded` False one per cell named `vae-2` (the literature's)."""
    runs, exact, logs, figures = root / "runs", root / "exact", root / "logs", root / "figures"
    seeds = list(p.grid.seeds) if seeded else [None]
    items = [(m, z, False) for m in p.grid.models for z in p.grid.zdims]
    # as score() does: rate and distortion only for a variant with a piece of its own
    items += [(m, z, not p.variant(m).is_plain) for m, z in map(split_run, p.variants.runs)]
    for (model, size, variant), seed in ((item, seed) for item in items for seed in seeds):
        name = run_name(model, size, seed)
        vio.write_json(runs / f"{name}.json", run_metrics(model, size, variant, seed))
        v = p.variant(model)
        # named after the cell in a folder named after the run, as the figures stage writes them; the bytes
        # name the run, so that a test can tell which seed's figure a page embeds
        for fig in figure_files(run_name(model, size), size, v.latent == "categorical", v.noise > 0):
            vio.write_bytes(figures / name / fig, b"\x89PNG placeholder " + f"{name}/{fig}".encode())
        for part, shift in (("train", 0.0), ("heldout", 2.0)):  # dvclive: 0-based step, one row per epoch
            rows = "".join(f"{e}\t{-NUMBERS[model, size][0] - 40.0 / (e + 1) - shift}\n" for e in range(5))
            vio.write_text(logs / name / "plots" / "metrics" / part / "elbo.tsv", "step\telbo\n" + rows)
    for m in p.grid.models:  # the exact stage runs `eval --no-exact`: no quadrature, unless an older file
        for z in p.exact.zdims:
            for seed in (p.exact.seeds if seeded else [None]):
                ex = {**run_metrics(m, z, False, seed), "k": p.exact.k, "iwae_nll": EXACT_K_IWAE[m],
                      "iwae_nll_eval_sd": 0.003}
                ex = {k: v for k, v in ex.items() if exact_with_quad or not k.startswith(("quad_", "iwae_gap"))}
                vio.write_json(exact / f"{run_name(m, z, seed)}.json", ex)
    data = root / "data" / "mnist.npz"
    vio.write_json(data.with_suffix(".json"), {"source": "handmade"})
    return {"runs": runs, "exact": exact, "logs": logs, "figures": figures, "data": data}
