"""A model family as the pieces in which it differs from the thesis's VAE: each piece written once.

A piece is one field of `Variant`, declared with `piece(...)`: its default (the VAE's), its documentation,
its value check, and the pieces it needs beside it. Everything else reads that one declaration: params.yaml's
`variants.defs` (through config's builder), the CLI's repeated `--piece name=value` option and its help
(`piece_help`), the checkpoint's fingerprint (`Variant.fingerprint`), and the run names the CLI gives to
ad-hoc variants. A piece's behaviour lives beside the bound it changes (core/objectives.py for training
objectives). Evaluation never changes with the variant: every model is scored on its true (beta = 1) ELBO,
the IWAE bound with its own q as proposal, and an exact likelihood where the latent space allows one.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from vaebench.checks import choice, int_range
from vaebench.errors import ConfigError

OBJECTIVES = ("elbo", "iwae", "dreg")
LATENTS = ("gaussian", "categorical")
IWAE_K = 5  # samples of the iwae/dreg objective when a variant names the objective but not k (Burda et al.'s k = 5)

# The pieces a checkpoint's fingerprint has always listed, set or not (the sidecars of every run trained before
# 2026-12-06 hold exactly these). A piece added since appears in a fingerprint only when it is set, so that
# adding a piece changes no existing run's sidecar, resumable state or `vaebench runs` status.
RECORDED_ALWAYS = ("beta", "objective", "k", "noise", "latent", "classes", "tau_start", "tau_end")


def positive(value: float, name: str) -> None:
    if not (value > 0 and math.isfinite(value)):
        raise ConfigError(f"{name}: must be > 0 and finite, got {value!r}")


def non_negative(value: float, name: str) -> None:
    if not (value >= 0 and math.isfinite(value)):
        raise ConfigError(f"{name}: must be >= 0 and finite, got {value!r}")


def flip_rate(value: float, name: str) -> None:
    if not 0 <= value < 1:
        raise ConfigError(f"{name}: a flip probability must be in [0, 1), got {value!r}")


def piece(default: Any, doc: str, check: Callable[[Any, str], Any], needs: dict[str, tuple[str, ...]] | None = None,
          needs_why: str = "", plain: Any = None) -> Any:
    """A field of Variant. `check(value, name)` raises ConfigError naming `name`; `needs` maps another piece to
    the values under which this one may differ from the VAE's value (`plain`, default: `default`), and
    `needs_why` says why otherwise (a format string over the pieces' values)."""
    return dataclasses.field(default=default, metadata={"doc": doc, "check": check, "needs": needs or {},
                                                        "needs_why": needs_why,
                                                        "plain": default if plain is None else plain})


@dataclass(frozen=True)
class Variant:
    """One model family, as the pieces in which it differs from the thesis's VAE (all defaults: the VAE).

    Refusals name the field; `variants.defs.<name>.` or `--piece` is put in front by the caller.
    """

    beta: float = piece(1.0, "weight of the KL in the training objective, E_q[log p(x|z)] - beta KL "
                        "(Higgins et al. 2017), > 0", positive, {"objective": ("elbo",)},
                        "{beta} weights the KL of the ELBO objective; the {objective} bound has no KL term to weight")
    objective: str = piece("elbo", "training bound: elbo (one sample, analytic KL), iwae (the k-sample bound, "
                           "Burda et al. 2016, eq. 8) or dreg (the same bound with the doubly reparameterised "
                           "encoder gradient, Tucker et al. 2019)", lambda v, n: choice(v, OBJECTIVES, n))
    k: int | None = piece(None, f"importance samples per image of the iwae/dreg objective (>= 1; {IWAE_K} when the objective "
                   "is named without k; the ELBO takes 1)", lambda v, n: int_range(v, n, 1, None),
                   {"objective": ("iwae", "dreg")}, "{k} samples need `objective: iwae` or `dreg` (the ELBO objective "
                   "takes one)", plain=1)
    noise: float = piece(0.0, "denoising (Im et al. 2017): each pixel of the encoder's binarised input is flipped "
                         "with this probability, in [0, 1), afresh every step; the decoder reconstructs the clean "
                         "image", flip_rate)
    latent: str = piece("gaussian", "gaussian (zdim dimensions, N(0, I) prior) or categorical: zdim variables of "
                        "`classes` classes, uniform prior, trained through the Gumbel-softmax relaxation "
                        "(Jang et al. 2017; Maddison et al. 2017)", lambda v, n: choice(v, LATENTS, n))
    classes: int = piece(10, "K, classes of each categorical variable (>= 2)", lambda v, n: int_range(v, n, 2, None),
                         {"latent": ("categorical",)}, "applies to categorical latents only (this variant's latent "
                         "is {latent})")
    tau_start: float = piece(1.0, "Gumbel-softmax temperature of the first epoch (> 0) ...", positive,
                             {"latent": ("categorical",)}, "applies to categorical latents only (this variant's "
                             "latent is {latent})")
    tau_end: float = piece(0.5, "... annealed geometrically to this one at the last epoch (> 0; Jang et al. 2017 "
                           "anneal to 0.5)", positive, {"latent": ("categorical",)},
                           "applies to categorical latents only (this variant's latent is {latent})")
    free_bits: float = piece(0.0, "free bits (Kingma et al. 2016, appendix, 'free bits'): each latent dimension's "
                             "KL, averaged over the minibatch, costs at least this many nats, so that the objective "
                             "stops pushing dimensions below it towards the prior (0 = none)", non_negative,
                             {"objective": ("elbo",), "latent": ("gaussian",)},
                             "applies to the ELBO objective of a gaussian latent (this variant: {objective}, "
                             "{latent})")

    epochs: int | None = piece(None, "training epochs of this variant (>= 1; unset: train.epochs): e.g. the VAE given "
                               "the training time of another objective, to compare the two at equal cost",
                               lambda v, n: v is None or int_range(v, n, 1, None))

    def __post_init__(self) -> None:
        if self.k is None:  # not named: the objective's own sample count, so Variant(objective="iwae") has k = 5
            object.__setattr__(self, "k", 1 if self.objective == "elbo" else IWAE_K)
        fields = dataclasses.fields(self)
        for f in fields:
            f.metadata["check"](getattr(self, f.name), f.name)
        values = {f.name: getattr(self, f.name) for f in fields}
        for f in fields:
            if values[f.name] == f.metadata["plain"]:
                continue
            for other, allowed in f.metadata["needs"].items():
                if values[other] not in allowed:
                    raise ConfigError(f"{f.name}: {f.metadata['needs_why'].format(**values)}")
        if self.latent == "categorical" and self.objective != "elbo":
            raise ConfigError(f"objective: {self.objective} is offered for gaussian latents only (a relaxed "
                              "categorical IWAE needs the Concrete density of each sample; not implemented)")

    @classmethod
    def from_mapping(cls, **pieces: Any) -> Variant:
        """A variant from params.yaml's `variants.defs.<name>` (config's builder calls it): the VAE with `pieces`."""
        return PLAIN.with_pieces(**pieces)

    def width(self, size: int) -> int:
        """Features of a latent state of this family at latent size `size`, as the decoder sees it: the size
        for a Gaussian latent, N * K for N categorical variables of K classes (VAE.width, before a model exists)."""
        return size * self.classes if self.latent == "categorical" else size

    def tau_at(self, epoch: int, epochs: int) -> float:
        """Temperature of epoch `epoch` (0-based) of `epochs`: tau_start * (tau_end / tau_start)^(epoch / (epochs - 1))."""
        if epochs <= 1:
            return self.tau_start
        return self.tau_start * (self.tau_end / self.tau_start) ** (epoch / (epochs - 1))

    @property
    def is_plain(self) -> bool:
        return self == Variant()

    def with_pieces(self, **pieces: Any) -> Variant:
        """This variant with `pieces` changed: how params.yaml's defs and the CLI's `--piece` build one.

        Switching the objective from `elbo` to `iwae` or `dreg` without naming k takes k = IWAE_K, not
        the ELBO's 1, which would silently train the ELBO with a sampled KL (and switching back, k = 1)."""
        unknown = sorted(set(pieces) - set(PIECES))
        if unknown:
            raise ConfigError(f"{unknown[0]}: unknown piece (allowed: {', '.join(PIECES)})")
        objective = pieces.get("objective", self.objective)
        if "k" not in pieces and (self.objective == "elbo") != (objective == "elbo"):
            pieces = {**pieces, "k": 1 if objective == "elbo" else IWAE_K}  # and back: the ELBO takes one sample
        return dataclasses.replace(self, **pieces)

    def changed(self, base: Variant | None = None) -> dict[str, Any]:
        """The pieces at another value than in `base` (default: the VAE), in declaration order."""
        base = base or PLAIN
        return {name: getattr(self, name) for name in PIECES if getattr(self, name) != getattr(base, name)}

    def fingerprint(self) -> dict[str, Any]:
        """The pieces a checkpoint records: RECORDED_ALWAYS, plus any later piece that is set."""
        set_now = self.changed()
        return {name: getattr(self, name) for name in PIECES if name in RECORDED_ALWAYS or name in set_now}

    def tag(self, base: Variant | None = None) -> str:
        """The changed pieces as a name part: beta=4 -> `beta4p0`, objective=iwae, k=5 -> `k5_objectiveiwae`."""
        return "_".join(f"{k}{v}".replace(".", "p").replace("-", "m").lower()
                        for k, v in sorted(self.changed(base).items()))


PIECES = {f.name: f for f in dataclasses.fields(Variant)}
PLAIN = Variant()  # the thesis's VAE (and CVAE): every piece at its default


def piece_lines() -> list[str]:
    """One line per piece, from its declaration (the VAE's value in brackets): `vaebench pieces`."""
    return [f"{name} [{f.metadata['plain']!r}]: {f.metadata['doc']}" for name, f in PIECES.items()]
