"""What vaebench's numbers are compared with: the thesis's table and published test NLLs.

Data only (no torch): the CLI's `eval` printout, the report's tables and the HTML page all read it.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # annotations only: this module stays data and pure functions
    from vaebench.config import Params


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
class Setting:
    """What a published number was measured under, in params.yaml's terms; None: not stated, or not one value."""

    model: str
    """Which of our models estimates the same quantity: `vae` (-log p(x)) or `cvae` (-log p(x|y))."""
    zdim: int | None = None
    hidden: int | None = None
    activation: str | None = None
    optimizer: str | None = None
    eps: float | None = None
    schedule: str | None = None
    kl_warmup: int | None = None
    epochs: int | None = None
    batch_size: int | None = None
    binarize: str | None = None
    k: int | None = None
    """Importance samples at evaluation."""


@dataclass(frozen=True)
class Reference:
    """A published test NLL on binarised MNIST, with the setup it was measured under."""

    source: str
    setup: str
    nll: str
    """As published, nats per image."""
    column: str
    """Which of our columns estimates the same quantity."""
    setting: Setting
    """The setup's values that params.yaml can express: `compares_to` names our run and what differs."""
    also: str = ""
    """Known differences params.yaml cannot express (the README lists them), shown beside the others."""


def _ours(params: Params) -> dict[str, object]:
    """The run's side of every Setting field but model and zdim."""
    return {"hidden": params.model.hidden, "activation": params.model.activation,
            "optimizer": params.train.optimizer, "eps": params.train.eps, "schedule": params.train.schedule,
            "kl_warmup": params.train.kl_warmup, "epochs": params.train.epochs,
            "batch_size": params.train.batch_size, "binarize": params.data.binarize, "k": params.eval.k}


def compares_to(ref: Reference, params: Params) -> str:
    """Which of this report's runs the published number compares to, and every stated way its setting differs.

    E.g. with literature/params.yaml, Burda et al.'s VAE row: "vae z=50, IWAE NLL, -log p(x): differs
    in batch_size 100 (theirs 20)"; with the thesis study's params the list names hidden, activation,
    optimizer, schedule, epochs, batch_size and k.
    """
    s = ref.setting
    if s.model not in params.grid.models:
        return f"no run: grid.models has no {s.model}"
    if s.zdim is not None and s.zdim not in params.grid.zdims:
        return f"no run: grid.zdims has no {s.zdim} ({s.model} at z={s.zdim})"
    rows = f"{s.model} z={s.zdim}" if s.zdim is not None else f"{s.model} rows"
    theirs = {f.name: getattr(s, f.name) for f in fields(s) if f.name not in ("model", "zdim")}
    ours = _ours(params)
    diffs = [f"{name} {ours[name]:g} (theirs {value:g})" if isinstance(value, float) else
             f"{name} {ours[name]} (theirs {value})"
             for name, value in theirs.items() if value is not None and ours[name] != value]
    stated = ", ".join(f"{name} {value}" for name, value in theirs.items() if value is not None)
    if diffs:
        text = f"{rows}, {ref.column}: differs in " + ", ".join(diffs)
    else:  # only what the source states can be checked: say so, never "the same setting"
        text = f"{rows}, {ref.column}: " + (f"matches what it states ({stated}); the rest not stated" if stated
                                            else "its setting not stated")
    return text + (f"; also, beyond params: theirs {ref.also}" if ref.also else "")


_BURDA_1_LAYER = dict(zdim=50, hidden=200, activation="tanh", optimizer="adam", eps=1e-4, schedule="burda",
                      kl_warmup=0, epochs=3280, batch_size=20, k=5000)

REFERENCES = (
    Reference("Burda, Grosse, Salakhutdinov 2016 (IWAE), Table 1",
              "dynamic binarization; MLP 784-200-200-50 tanh; Adam, 3280 epochs, batch 20; k=5000 evaluation",
              "VAE 1 stochastic layer: 86.76; IWAE k=50: 84.78; 2 layers VAE 85.33, IWAE k=50 82.90",
              "IWAE NLL, -log p(x)",
              Setting("vae", binarize="dynamic", **_BURDA_1_LAYER),
              "test bits drawn afresh per evaluation, 59,600 training images, decoder bias at the data mean "
              "(README, A run a paper can cite)"),
    Reference("Burda, Grosse, Salakhutdinov 2016 (IWAE), appendix",
              "static binarization; IWAE 1 layer k=1/5/50",
              "88.71 / 87.63 / 87.10",
              "IWAE NLL, -log p(x)",
              Setting("vae", binarize="static")),
    Reference("Pythae reproducibility table",
              "static binary MNIST, 784-400-40, 500 epochs, 200 IS samples",
              "VAE 89.78 (paper 89.9)",
              "IWAE NLL, -log p(x)",
              Setting("vae", zdim=40, hidden=400, epochs=500, binarize="static", k=200)),
    Reference("Kingma & Welling 2014 (AEVB)",
              "latent 3, 5, 10, 20, 200; 500 hidden units; Adagrad; batch 100",
              "figure only: lower bound between -150 and -100",
              "test -ELBO (the bound, sign flipped)",
              Setting("vae", hidden=500, optimizer="adagrad", batch_size=100)),
    Reference("label-conditional IWAE (public reproduction)",
              "dynamic MNIST, 1 layer, log p(x|y), k=1/5/50",
              "82.32 / 81.41 / 80.78",
              "IWAE NLL, -log p(x|y), against its k=1 row (82.32; ours trains on the ELBO)",
              Setting("cvae", binarize="dynamic")),
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


# ---------------------------------------------------------------- the variants


@dataclass(frozen=True)
class VariantReference:
    """A published test NLL of one model family, and the variant pieces under which our runs are that family."""

    source: str
    setup: str
    model: str
    """The paper's name of the row, e.g. `IWAE, k=5`."""
    pieces: tuple[tuple[str, object], ...]
    """The Variant pieces (vaebench/core/variants.py) that make our run this family: () is the plain VAE."""
    nll: float
    """As published, nats per image (-log p(x), lower is better)."""


_BURDA_TABLE_1 = "Burda, Grosse, Salakhutdinov 2016 (IWAE), Table 1"
_BURDA_SETUP = ("MNIST, dynamic binarization; one stochastic layer of 50 units; MLP 784-200-200-50 tanh; "
                "Adam, 3280 epochs; k=5000 evaluation")

# The one-stochastic-layer rows of Table 1, checked against the table as reproduced in nbip/IWAE's README
# (IWAE k = 1, 5, 50: 86.76, 85.54, 84.78; IWAE with k = 1 is the VAE). Only these NLLs are quoted:
# the table's active-unit counts and its VAE rows trained at k = 5 and 50 were not verified.
VARIANT_REFERENCES = (
    VariantReference(_BURDA_TABLE_1, _BURDA_SETUP, "VAE (k=1)", (), 86.76),
    VariantReference(_BURDA_TABLE_1, _BURDA_SETUP, "IWAE, k=5", (("objective", "iwae"), ("k", 5)), 85.54),
    VariantReference(_BURDA_TABLE_1, _BURDA_SETUP, "IWAE, k=50", (("objective", "iwae"), ("k", 50)), 84.78),
)

VARIANT_COMPARISON_NOTE = (
    "How to compare: the published rows are for 50 latent units, 784-200-200-50 tanh MLPs trained for "
    "3280 epochs; ours are at the thesis's laptop setting (params.yaml; by default 40 epochs of 784-500-500 "
    "ReLU MLPs with RMSProp), so what compares is the ordering of the rows and the difference IWAE minus "
    "VAE at the same latent size, not the absolute level."
)
