"""params.yaml -> frozen dataclasses: defaults, refusals that name the key, and properties."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from vaebench.config import ConfigError, Params, load_params, params_from_dict, to_dict

REPO = Path(__file__).resolve().parents[1]


def test_repository_params_load_and_match_the_documented_grid() -> None:
    p = load_params(REPO / "params.yaml")
    assert p.grid.models == ("vae", "cvae")
    assert {2, 25, 35} <= set(p.grid.zdims)  # the thesis's three points
    assert p.train.optimizer == "rmsprop"  # the thesis's optimiser
    assert p.data.binarize == "dynamic"
    assert p.grid.seeds == (0, 1, 2) and p.exact.seeds == (0,)  # three training seeds; the costly exact scoring on one
    assert p.train.monitor == "validation"  # no test image informs training


def test_run_names_carry_the_training_seed() -> None:
    from vaebench.config import parse_run, run_name

    assert run_name("vae", 2, 0) == "vae-2-0" and run_name("beta4", 20, 12) == "beta4-20-12"
    assert run_name("vae", 50) == "vae-50"  # the literature pipelines' unseeded names
    for name, want in (("vae-5-1", ("vae", 5, 1)), ("cvae-35", ("cvae", 35, None)), ("cat10-2-0", ("cat10", 2, 0)),
                       ("beta0_5-20-2", ("beta0_5", 20, 2))):
        assert parse_run(name) == want
        assert run_name(*want) == name  # the inverse
    for bad in ("vae", "vae-0", "vae-5-", "vae-5-01", "vae-5--1", "vae-5-1-2", "VAE-5", 5, None):
        with pytest.raises(ConfigError, match=r"^--run: .* is not <name>-<latent size>\[-<seed>\]"):
            parse_run(bad, "--run")


def test_with_seed_sets_the_training_seed_only() -> None:
    p = params_from_dict({"train": {"seed": 3, "epochs": 4}})
    assert p.with_seed(None) is p and p.with_seed(3) == p
    q = p.with_seed(7)
    assert q.train.seed == 7 and dataclasses.replace(q.train, seed=3) == p.train
    assert (q.grid, q.data, q.model, q.eval, q.exact, q.variants) == (p.grid, p.data, p.model, p.eval, p.exact,
                                                                      p.variants)
    with pytest.raises(ConfigError, match=r"must be between 0 and"):
        p.with_seed(2**32)


def test_params_are_frozen() -> None:
    p = params_from_dict({})
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.train.lr = 1.0  # type: ignore[misc]


def test_round_trip_through_yaml(tmp_path: Path) -> None:
    p = params_from_dict({"train": {"lr": 0.01, "epochs": 3}, "grid": {"zdims": [2, 3]}})
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(to_dict(p)))
    assert load_params(path) == p


def test_int_is_accepted_for_a_float_but_not_the_reverse() -> None:
    assert params_from_dict({"train": {"lr": 1}}).train.lr == 1.0
    with pytest.raises(ConfigError, match=r"train\.epochs: expected an integer"):
        params_from_dict({"train": {"epochs": 2.5}})


@pytest.mark.parametrize(
    "data, message",
    [
        ({"trian": {}}, r"^trian: unknown key \(allowed: grid, data, model, train, eval, exact, variants\)"),
        ({"exact": {"zdims": [3]}}, r"^exact\.zdims: must be between 1 and 2, got 3"),
        ({"exact": {"k": 0}}, r"^exact\.k: must be >= 1, got 0"),
        ({"grid": {"zdims": [5, 10]}}, r"^exact\.zdims: 2 is not in grid\.zdims \(\[5, 10\]\)"),
        ({"eval": {"quad_n": 0}}, r"^exact\.zdims: .*eval\.quad_n = 0 switches off"),
        ({"train": {"epoch": 3}}, r"^train\.epoch: unknown key"),
        ({"grid": {"zdims": [0]}}, r"^grid\.zdims: must be >= 1, got 0"),
        ({"grid": {"zdims": [-1]}}, r"^grid\.zdims: must be >= 1, got -1"),
        ({"grid": {"zdims": ["a"]}}, r"^grid\.zdims\[0\]: expected an integer, got 'a'"),
        ({"grid": {"zdims": [True]}}, r"^grid\.zdims\[0\]: expected an integer, got True"),
        ({"grid": {"zdims": []}}, r"^grid\.zdims: must list at least one"),
        ({"grid": {"zdims": 5}}, r"^grid\.zdims: expected a list"),
        ({"grid": {"models": ["vae", "gan"]}}, r"^grid\.models: 'gan' is not one of vae, cvae"),
        ({"eval": {"k": 0}}, r"^eval\.k: must be >= 1, got 0"),
        ({"eval": {"k_marginal": 0}}, r"^eval\.k_marginal: must be >= 1"),
        ({"eval": {"quad_half_width": 0}}, r"^eval\.quad_half_width: must be > 0"),
        ({"eval": {"spread_seeds": -1}}, r"^eval\.spread_seeds: must be >= 0, got -1"),
        ({"eval": {"spread_images": 1}}, r"^eval\.spread_images: must be >= 2, got 1"),
        ({"train": {"optimizer": "sgd"}}, r"^train\.optimizer: 'sgd' is not one of rmsprop, adam"),
        ({"train": {"lr": 0}}, r"^train\.lr: must be > 0, got 0"),
        ({"train": {"lr": -0.1}}, r"^train\.lr: must be > 0"),
        ({"train": {"lr": "fast"}}, r"^train\.lr: expected a number, got 'fast'"),
        ({"train": {"batch_size": 0}}, r"^train\.batch_size: must be >= 1"),
        # monitor: validation (the default) trains on the 60,000 less the 2,000 held-out images
        ({"train": {"batch_size": 60001}}, r"^train\.batch_size: 60001 is larger than the training data \(58000 "),
        ({"train": {"batch_size": 58001}}, r"^train\.batch_size: 58001 is larger than the training data \(58000 "),
        ({"train": {"batch_size": 60001, "monitor": "test"}},
         r"^train\.batch_size: 60001 is larger than the training data \(60000 "),
        ({"train": {"batch_size": 450, "heldout": 100}, "data": {"train_subset": 500}},
         r"^train\.batch_size: 450 is larger than the training data \(400 images\)"),
        ({"train": {"batch_size": 600, "monitor": "test"}, "data": {"train_subset": 500}},
         r"^train\.batch_size: 600 is larger .*500"),
        ({"train": {"device": "tpu"}}, r"^train\.device: 'tpu' is not one of"),
        ({"train": {"monitor": "train"}}, r"^train\.monitor: 'train' is not one of validation, test$"),
        ({"train": {"heldout": 600, "monitor": "test"}, "data": {"test_subset": 500}},
         r"^train\.heldout: 600 is more than the test images there are \(data\.test_subset = 500\)"),
        ({"train": {"heldout": 10001, "monitor": "test"}},
         r"^train\.heldout: 10001 is more than the test images there are \(MNIST's 10,000\)"),
        ({"train": {"heldout": 500}, "data": {"train_subset": 500}},
         r"^train\.heldout: 500 validation images leave none of the 500 training images to train on$"),
        ({"train": {"heldout": 60000}}, r"^train\.heldout: 60000 validation images leave none of the 60000 "),
        ({"train": {"heldout": 0}}, r"^train\.heldout: must be >= 1, got 0"),  # an all-NaN curve
        ({"grid": {"seeds": []}}, r"^grid\.seeds: must list at least one training seed$"),
        ({"grid": {"seeds": [-1]}}, r"^grid\.seeds: must be between 0 and"),
        ({"grid": {"seeds": [0, 1, 0]}}, r"^grid\.seeds: lists 0 twice$"),
        ({"exact": {"seeds": [1, 1]}, "grid": {"seeds": [0, 1]}}, r"^exact\.seeds: lists 1 twice$"),
        ({"exact": {"seeds": [3]}}, r"^exact\.seeds: 3 is not in grid\.seeds \(\[0, 1, 2\]\)"),
        ({"exact": {"seeds": [1]}, "grid": {"seeds": [0]}}, r"^exact\.seeds: 1 is not in grid\.seeds \(\[0\]\)"),
        ({"train": {"lr": float("inf")}}, r"^train\.lr: must be a finite number, got inf"),
        ({"eval": {"quad_half_width": float("inf")}}, r"^eval\.quad_half_width: must be a finite number"),
        ({"eval": {"quad_half_width": float("nan")}}, r"^eval\.quad_half_width: must be a finite number"),
        ({"variants": {"defs": {"b": {"beta": float("inf")}}}}, r"^variants\.defs\.b\.beta: must be a finite number"),
        ({"grid": {"zdims": [2, 5, 2]}}, r"^grid\.zdims: lists 2 twice"),
        ({"grid": {"models": ["vae", "vae"]}}, r"^grid\.models: lists vae twice"),
        ({"data": {"binarize": "otsu"}}, r"^data\.binarize: 'otsu' is not one of dynamic, static, threshold"),
        ({"data": {"source": "web"}}, r"^data\.source: 'web' is not one of"),
        ({"data": {"train_subset": 70000}}, r"^data\.train_subset: must be between 0 and 60000"),
        ({"model": {"hidden": 0}}, r"^model\.hidden: must be >= 1"),
        ({"model": {"activation": "gelu"}}, r"^model\.activation: 'gelu' is not one of relu, tanh$"),
        ({"train": {"eps": 0}}, r"^train\.eps: must be > 0 and finite, got 0"),
        ({"train": {"lr_end": 1e-5}}, r"^train\.lr_end: the rate of the last epoch of `schedule: exponential`; "
                                      r"the constant schedule does not read it$"),
        ({"train": {"schedule": "exponential", "lr_end": 0}}, r"^train\.lr_end: must be > 0 and finite, got 0"),
        ({"train": {"kl_warmup": -1}}, r"^train\.kl_warmup: must be >= 0, got -1"),
        ({"train": {"kl_warmup": 5}, "variants": {"defs": {"iw": {"objective": "iwae", "k": 5}}}},
         r"^train\.kl_warmup: variant iw trains the iwae bound, which has no KL term to warm up"),
        ({"train": {"eps": float("inf")}}, r"^train\.eps: must be a finite number, got inf"),  # YAML's .inf
        ({"train": {"schedule": "cosine"}}, r"^train\.schedule: 'cosine' is not one of constant, burda, exponential$"),
        ({"train": {"schedule": "burda", "epochs": 41}}, r"^train\.epochs: 41 is not a whole number of stages"),
        ({"train": {"schedule": "burda", "epochs": 3281}},
         r"^train\.epochs: 3281 is not a whole number of stages of the burda schedule "
         r"\(allowed: 1, 4, 13, 40, 121, 364, 1093, 3280\)$"),
        ({"model": "wide"}, r"^model: expected a mapping"),
        ([1, 2], r"^params: expected a mapping"),
    ],
)
def test_bad_values_are_refused_with_the_key(data: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        params_from_dict(data)


def test_missing_and_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such parameter file"):
        load_params(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_params(bad)


def test_an_empty_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "params.yaml"
    path.write_text("# nothing here\n")
    with pytest.raises(ConfigError, match=r"params\.yaml: holds no parameters"):
        load_params(path)


def test_the_defaults_are_params_yaml(tmp_path: Path) -> None:
    """One source of defaults: a key left out of a params file means what params.yaml says (the variants
    aside: the pipeline's choice, none by default)."""
    shipped = yaml.safe_load((Path(__file__).resolve().parents[1] / "params.yaml").read_text())
    defaults = to_dict(Params())
    for section, values in shipped.items():
        if section != "variants":
            assert {k: defaults[section][k] for k in values} == values, section
    assert defaults["variants"] == {"defs": {}, "runs": []}
    path = tmp_path / "params.yaml"
    path.write_text("train:\n  epochs: 3\n")  # one key: the rest from the defaults
    assert load_params(path) == params_from_dict({"train": {"epochs": 3}})


def test_the_pipelines_params_leave_the_training_seed_to_the_seed_matrix() -> None:
    """Every training stage's seed is its grid.seeds item; a train.seed in the pipeline's params.yaml would be read
    by no stage, yet each stage lists the `train` section, so editing it would re-run all 66 trainings to the
    same bytes. The literature pipelines, whose runs carry no seed in their names, keep theirs."""
    root = Path(__file__).resolve().parents[1]
    assert "seed" not in yaml.safe_load((root / "params.yaml").read_text())["train"]
    assert load_params(root / "params.yaml").train.seed == 0  # the CLI's ad-hoc runs without --run vae-5-1
    assert "seed" in yaml.safe_load((root / "literature" / "params.yaml").read_text())["train"]


def test_a_key_written_twice_is_refused_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "params.yaml"
    path.write_text("train:\n  epochs: 3\n  lr: 0.001\n  epochs: 5\n")  # PyYAML would keep 5; DVC refuses the file
    with pytest.raises(ConfigError, match=r"params\.yaml: epochs: written twice in one mapping \(line 4\)"):
        load_params(path)


# ---------------------------------------------------------------- properties

_sections = {
    "train": {"lr": st.floats(allow_nan=True, allow_infinity=True), "epochs": st.integers(-5, 5),
              "batch_size": st.integers(-5, 70000), "optimizer": st.sampled_from(["rmsprop", "adam", "sgd", ""])},
    "eval": {"k": st.integers(-3, 10), "chunk": st.integers(-3, 10)},
    "grid": {"zdims": st.lists(st.integers(-3, 60), max_size=4)},
    "exact": {"k": st.integers(-3, 10), "zdims": st.lists(st.integers(-1, 4), max_size=3)},
}


@settings(max_examples=80, deadline=None)
@given(
    section=st.sampled_from(sorted(_sections)),
    data=st.data(),
    junk=st.one_of(st.none(), st.text(max_size=3), st.lists(st.integers(), max_size=2), st.booleans()),
    use_junk=st.booleans(),
)
def test_loader_either_builds_a_valid_config_or_names_the_key(section, data, junk, use_junk) -> None:
    key = data.draw(st.sampled_from(sorted(_sections[section])))
    value = junk if use_junk else data.draw(_sections[section][key])
    try:
        p = params_from_dict({section: {key: value}})
    except ConfigError as e:
        # cross-key checks name the other key of the pair: the batch against the data, exact.zdims against the grid
        assert str(e).startswith((f"{section}.{key}", "train.batch_size", "exact.zdims"))
        return
    # whatever was accepted satisfies the documented constraints
    assert p.train.lr > 0 and p.train.epochs >= 1 and 1 <= p.train.batch_size <= 60000
    assert p.eval.k >= 1 and p.eval.chunk >= 1 and all(z >= 1 for z in p.grid.zdims) and p.grid.zdims
    assert p.exact.k >= 1 and set(p.exact.zdims) <= set(p.grid.zdims) and all(1 <= z <= 2 for z in p.exact.zdims)


@pytest.mark.parametrize("text, want", [("1e-3", 1e-3), ("1E-3", 1e-3), ("0.001", 1e-3), ("+2.5e+1", 25.0), (".5", 0.5)])
def test_numbers_as_people_write_them_are_numbers(tmp_path: Path, text: str, want: float) -> None:
    # YAML 1.1 (PyYAML) reads 1e-3 as a string: it has no dot. A person means a number.
    path = tmp_path / "params.yaml"
    path.write_text(f"train:\n  lr: {text}\n")
    assert load_params(path).train.lr == pytest.approx(want, rel=1e-12)


@pytest.mark.parametrize("text", ["fast", "nan", "inf", "1e", "0x10", "1_000.0"])
def test_words_and_non_decimal_spellings_are_still_refused(tmp_path: Path, text: str) -> None:
    path = tmp_path / "params.yaml"
    path.write_text(f"train:\n  lr: '{text}'\n")
    with pytest.raises(ConfigError, match=r"train\.lr: expected a number"):
        load_params(path)


@pytest.mark.parametrize("seed_key", ["train.seed", "data.test_seed", "eval.seed"])
def test_seeds_are_32_bit_words(seed_key: str) -> None:
    section, key = seed_key.split(".")
    for bad in (-1, 2**32):
        with pytest.raises(ConfigError, match=rf"{section}\.{key}: must be between 0 and"):
            params_from_dict({section: {key: bad}})


def test_the_burda_schedule_is_the_papers() -> None:
    """Burda et al. 2016, section 5: stage i = 0..7 runs 3^i epochs at 1e-3 * 10^(-i/7); computed here by listing
    the stages epoch by epoch, not by the closed form the config uses."""
    from vaebench.config import BURDA_EPOCHS, TrainConfig

    tc = TrainConfig(schedule="burda", epochs=3280, lr=1e-3)
    expected = [1e-3 * 10 ** (-i / 7) for i in range(8) for _ in range(3 ** i)]
    assert len(expected) == 3280 == BURDA_EPOCHS[-1]
    assert [tc.lr_at(e) for e in range(3280)] == expected
    assert BURDA_EPOCHS == (1, 4, 13, 40, 121, 364, 1093, 3280)
    # a shorter run is the paper's first stages; the constant schedule never changes the rate
    assert [TrainConfig(schedule="burda", epochs=13).lr_at(e) for e in range(13)] == expected[:13]
    assert {TrainConfig(lr=0.02).lr_at(e) for e in range(0, 5000, 7)} == {0.02}


def test_the_exponential_schedule_and_the_kl_warmup() -> None:
    from vaebench.config import TrainConfig

    tc = TrainConfig(schedule="exponential", lr=1e-3, lr_end=1e-4, epochs=5)
    assert [tc.lr_at(e) for e in range(5)] == pytest.approx([1e-3 * 10 ** (-e / 4) for e in range(5)], rel=1e-12)
    assert TrainConfig(kl_warmup=4).kl_weight(0) == 0.25 and TrainConfig(kl_warmup=4).kl_weight(3) == 1.0
    assert [TrainConfig(kl_warmup=4).kl_weight(e) for e in range(6)] == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]
    assert {TrainConfig().kl_weight(e) for e in range(10)} == {1.0}
