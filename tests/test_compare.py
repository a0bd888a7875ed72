"""`vaebench compare`: one comparison from whichever seeds of two cells are scored, against a hand computation.

The metrics files are made up (the keys the report requires, numbers chosen so that the intervals can be
computed by hand); the interval's t quantile comes from scipy, not from vaebench's own.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from scipy import stats
from typer.testing import CliRunner

from vaebench import io as vio
from vaebench.cli import app
from vaebench.report.inputs import CVAE_KEYS, REQUIRED_KEYS

PARAMS = Path(__file__).resolve().parents[1] / "params.yaml"
runner = CliRunner()


def _write(runs: Path, cell: str, seed: int, iwae: float, neg_elbo: float | None = None, **extra) -> None:
    model, zdim = cell.rsplit("-", 1)
    m = {k: 1.0 for k in REQUIRED_KEYS + (CVAE_KEYS if model == "cvae" else ())}
    m.update(model=model, zdim=int(zdim), n_images=10000, k=500, kl_per_dim=[1.0], activity_per_dim=[1.0],
             iwae_nll=iwae, neg_elbo=iwae + 6.0 if neg_elbo is None else neg_elbo, train_seed=seed)
    m.update(extra)
    if model == "cvae":
        m.update(k_marginal=50)
    vio.write_json(runs / f"{cell}-{seed}.json", m)


def _cli(*args: str):
    # --models: a folder of checkpoints (the real models/ of the working directory holds real runs of these names)
    where = Path(args[args.index("--runs") + 1]) if "--runs" in args else Path(".")
    return runner.invoke(app, ["compare", *args, "--params", str(PARAMS), "--models", str(where / "models")])


def _json(*args: str) -> dict:
    r = _cli(*args, "--json")
    assert r.exit_code == 0, r.output
    return json.loads(r.output)


def test_same_seeds_are_paired_and_the_interval_is_the_t_interval_of_the_seed_differences(tmp_path) -> None:
    a, b = [93.0, 94.0, 95.5], [93.5, 93.9, 96.6]
    for s, (x, y) in enumerate(zip(a, b)):
        _write(tmp_path, "vae-25", s, x)
        _write(tmp_path, "vae-35", s, y)
    out = _json("vae-25", "vae-35", "--runs", str(tmp_path))
    # d = (-0.5, 0.1, -1.1): mean -0.5, sd 0.6, se 0.6 / sqrt(3), t(0.975, 2 df)
    half = stats.t.ppf(0.975, 2) * 0.6 / math.sqrt(3)
    assert out["method"] == "paired by seed" and out["df"] == 2
    assert out["diff"] == pytest.approx(-0.5) and out["lo"] == pytest.approx(-0.5 - half) and out["hi"] == pytest.approx(-0.5 + half)
    assert out["p_improve"] == pytest.approx(2 / 3)  # seeds 0 and 2 favour A, seed 1 B
    assert out["verdict"].startswith("not resolved at n = 3")
    text = _cli("vae-25", "vae-35", "--runs", str(tmp_path)).output
    assert "more seeds: add 3 to grid.seeds" in text  # params.yaml's grid.seeds are 0, 1, 2: all scored here
    assert "`dvc repro train@vae-25-3 evaluate@vae-25-3 train@vae-35-3 evaluate@vae-35-3`" in text


def test_a_fourth_seed_on_one_side_gives_welch_over_every_seed(tmp_path) -> None:
    a, b = [93.0, 94.0, 95.5, 94.5], [93.5, 93.9, 96.6]
    for s, x in enumerate(a):
        _write(tmp_path, "vae-25", s, x)
    for s, y in enumerate(b):
        _write(tmp_path, "vae-35", s, y)
    out = _json("vae-25", "vae-35", "--runs", str(tmp_path))
    va, vb = stats.tvar(a) / 4, stats.tvar(b) / 3
    df = (va + vb) ** 2 / (va**2 / 3 + vb**2 / 2)
    half = stats.t.ppf(0.975, df) * math.sqrt(va + vb)
    diff = sum(a) / 4 - sum(b) / 3
    assert out["method"] == "Welch" and out["a"]["seeds"] == [0, 1, 2, 3]
    assert out["df"] == pytest.approx(df) and out["lo"] == pytest.approx(diff - half) and out["hi"] == pytest.approx(diff + half)
    # 12 pairs (a_i, b_j): A lower in 93.0 < all 3, 94.0 < 96.6 only, 95.5 < 96.6, 94.5 < 96.6: 6 of 12
    assert out["p_improve"] == pytest.approx(6 / 12)


def test_a_cvae_beside_a_vae_is_read_on_its_marginal_and_a_resolved_row_asks_for_nothing(tmp_path) -> None:
    for s, (cond, marg, vae) in enumerate([(80.0, 90.0, 95.0), (81.0, 90.5, 96.0), (80.5, 91.0, 96.2)]):
        _write(tmp_path, "cvae-20", s, cond, iwae_nll_marginal=marg)
        _write(tmp_path, "vae-20", s, vae)
    out = _json("cvae-20", "vae-20", "--runs", str(tmp_path))
    assert out["a"]["metric"] == "iwae_nll_marginal" and out["a"]["values"] == [90.0, 90.5, 91.0]
    assert out["diff"] == pytest.approx(90.5 - (95.0 + 96.0 + 96.2) / 3)
    assert out["verdict"].startswith("CVAE z=20 lower by") and "(resolved at n = 3)" in out["verdict"]
    assert "more seeds" not in _cli("cvae-20", "vae-20", "--runs", str(tmp_path)).output


def test_against_the_thesis_is_the_one_sample_t_of_our_mean(tmp_path) -> None:
    values = [97.0, 98.0, 99.5]
    for s, v in enumerate(values):
        _write(tmp_path, "cvae-35", s, 92.0, neg_elbo=v, iwae_nll_marginal=95.0)
    out = _json("cvae-35", "thesis", "--metric", "neg_elbo", "--runs", str(tmp_path))
    half = stats.t.ppf(0.975, 2) * stats.tstd(values) / math.sqrt(3)
    assert out["b"]["mean"] == 98.5 and out["method"] == "one-sample t"
    assert out["diff"] == pytest.approx(sum(values) / 3 - 98.5)
    assert out["lo"] == pytest.approx(out["diff"] - half) and out["hi"] == pytest.approx(out["diff"] + half)
    assert "dvc repro train@cvae-35-3 evaluate@cvae-35-3`" in _cli("cvae-35", "thesis", "--metric", "neg_elbo",
                                                                  "--runs", str(tmp_path)).output


def test_an_unresolved_row_asks_first_for_the_seeds_one_side_lacks(tmp_path) -> None:
    """The next stages to run: the seeds of grid.seeds (0, 1, 2 in params.yaml) or of the other cell that a cell
    lacks, so that the two share their seeds and the row is paired again; only then one seed more."""
    for seeds_a, seeds_b, expected in [
        ([0], [0], "the seeds first (vae-25 lacks seeds 1, 2; vae-35 lacks seeds 1, 2): `dvc repro train@vae-25-1 "
                   "evaluate@vae-25-1 train@vae-25-2 evaluate@vae-25-2 train@vae-35-1 evaluate@vae-35-1 "
                   "train@vae-35-2 evaluate@vae-35-2`"),
        ([0, 1, 2], [0, 1], "the seeds first (vae-35 lacks seed 2): `dvc repro train@vae-35-2 evaluate@vae-35-2`"),
        ([0, 1, 2, 3], [0, 1, 2], "the seeds first (vae-35 lacks seed 3): add 3 to grid.seeds in params.yaml, then "
                                  "`dvc repro train@vae-35-3 evaluate@vae-35-3`"),
    ]:
        runs = tmp_path / f"{len(seeds_a)}-{len(seeds_b)}"
        for s in seeds_a:
            _write(runs, "vae-25", s, 94.0 + (s % 2))
        for s in seeds_b:
            _write(runs, "vae-35", s, 94.2 + ((s + 1) % 2))
        text = _cli("vae-25", "vae-35", "--runs", str(runs)).output
        assert "not resolved" in text or "no interval" in text, text
        assert expected in text, text
        assert ("note: seed 3 not in params.yaml's grid.seeds" in text) == (3 in seeds_a)


def test_a_metrics_file_must_have_scored_the_checkpoint_that_is_here(tmp_path) -> None:
    for s in range(3):
        _write(tmp_path, "vae-25", s, 94.0 + s, weights_sha256=f"sha{s}")
        _write(tmp_path, "vae-35", s, 95.0 + s, weights_sha256=f"sha{s}")
    for s in range(3):  # the checkpoints these files scored ...
        vio.write_json(tmp_path / "models" / f"vae-25-{s}" / "model.json", {"model": "vae", "zdim": 25, "hidden": 500,
                                                                            "weights_sha256": f"sha{s}"})
    assert _cli("vae-25", "vae-35", "--runs", str(tmp_path)).exit_code == 0
    # ... and seed 1 retrained since: its file no longer scores what models/ holds
    vio.write_json(tmp_path / "models" / "vae-25-1" / "model.json", {"model": "vae", "zdim": 25, "hidden": 500,
                                                                     "weights_sha256": "retrained"})
    r = _cli("vae-25", "vae-35", "--runs", str(tmp_path))
    assert r.exit_code == 1 and "vae-25-1.json: scored other weights than" in r.output
    assert "run `dvc repro evaluate@vae-25-1`" in r.output


def test_json_holds_no_infinity_when_neither_side_varies(tmp_path) -> None:
    for s in range(3):
        _write(tmp_path, "vae-25", s, 94.0)
        _write(tmp_path, "vae-35", s, 95.0 + s)
    _write(tmp_path, "vae-35", 3, 96.0)  # seeds differ: Welch, whose df is infinite when ...
    for s in range(4):
        _write(tmp_path, "vae-35", s, 95.0)  # ... neither side varies
    r = _cli("vae-25", "vae-35", "--runs", str(tmp_path), "--json")
    assert r.exit_code == 0 and "Infinity" not in r.output and "NaN" not in r.output
    out = json.loads(r.output)
    assert out["method"] == "Welch" and out["df"] is None and out["lo"] == out["hi"] == pytest.approx(-1.0)


def test_stale_missing_or_misnamed_inputs_fail_with_one_line_naming_what(tmp_path) -> None:
    for s in range(3):
        _write(tmp_path, "vae-25", s, 94.0 + s)
        _write(tmp_path, "vae-35", s, 94.0 + s, **({"k": 5000} if s == 2 else {}))
        _write(tmp_path, "vae-15", s, 95.0 + s)
    # exit 1: an input of the report is stale or missing (ReportError); 2: bad usage (ConfigError)
    cases = [
        (("vae-25", "vae-35"), 1, "k: the seeds of vae z=35 disagree"),  # one seed scored with other settings
        (("vae-25", "vae-50"), 1, "no scored seed of vae-50"),
        (("vae-25", "thesis"), 2, "the thesis reports the test -ELBO only"),
        (("vae-15", "thesis", "--metric", "neg_elbo"), 2, "the thesis reports no number for VAE z=15"),
        (("vae-25", "vae-35", "--metric", "kl"), 2, "--metric: 'kl' is not one of"),
        (("nope-25", "vae-35"), 2, "'nope' is not vae, cvae or a variant"),
        (("vae25", "vae-35"), 2, "A: 'vae25' is not <name>-<latent size>"),
    ]
    for args, code, message in cases:
        r = _cli(*args, "--runs", str(tmp_path))
        assert r.exit_code == code and r.output.startswith("error: ") and message in r.output, (args, r.output)
        assert len(r.output.strip().splitlines()) == 1, r.output
