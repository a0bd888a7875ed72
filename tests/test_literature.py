"""The literature-grade pipeline (literature/): the paper's setting, and kept out of the default `dvc repro`."""

from __future__ import annotations

import shlex

import json
import shutil
from pathlib import Path

import pytest
import yaml

from tests.dvcproject import REPO, TINY, make_project, run
from vaebench.config import BURDA_EPOCHS, load_params

LIT = REPO / "literature"


def _stages(path: Path) -> dict:
    return yaml.safe_load(path.read_text())["stages"]


@pytest.mark.parametrize("folder, up", [(LIT, "../"), (LIT / "short", "../../")], ids=["literature", "short"])
def test_the_literature_stages_import_what_the_top_level_ones_do(folder: Path, up: str) -> None:
    """Same commands, so the same modules: the top level's lists are checked against the imports
    (test_pipeline.py); these must equal them, with the paths seen from the folder."""
    root, lit = _stages(REPO / "dvc.yaml"), _stages(folder / "dvc.yaml")
    assert set(lit) == {"check", "train", "evaluate", "figures", "report"}
    for name, stage in lit.items():
        ours = sorted(d[len(up):] for d in stage["deps"] if d.startswith(f"{up}vaebench/"))
        theirs = sorted(d for d in root[name]["deps"] if d.startswith("vaebench/"))
        assert ours == theirs, name
        assert [d for d in stage["deps"] if "data/mnist" in d] == [f"{up}data/mnist.{e}" for e in ("npz", "json")
                                                                   if f"data/mnist.{e}" in root[name]["deps"]], name
        assert stage.get("params", []) == root[name].get("params", []), name
        assert stage["cmd"].split()[:2] == root[name]["cmd"].split()[:2], name
    # its runs are named without a training seed (train@vae-50, models/vae-50): one per cell, as committed
    assert "matrix" in lit["train"] and "seed" not in lit["train"]["matrix"] and "seed" in root["train"]["matrix"]
    assert "${item.model}-${item.zdim} " in lit["train"]["cmd"] + " "
    assert "--unseeded" in shlex.split(lit["report"]["cmd"]) and "--unseeded" not in root["report"]["cmd"]


@pytest.mark.parametrize("folder", [REPO, LIT, LIT / "short"], ids=["top", "literature", "short"])
def test_every_params_key_a_stage_lists_is_in_its_params_file(folder: Path) -> None:
    """DVC refuses to run a stage whose listed key is missing from params.yaml, even one the run ignores
    (eval.quad_half_width with quad_n: 0): the config's defaults do not help, the file must say it."""
    raw = yaml.safe_load((folder / "params.yaml").read_text())
    for name, stage in _stages(folder / "dvc.yaml").items():
        for key in stage.get("params", []):
            assert isinstance(key, str), (name, key)  # all from params.yaml: no other file's keys
            node = raw
            for part in key.split("."):
                assert isinstance(node, dict) and part in node, f"{folder.name}/params.yaml lacks {key} ({name})"
                node = node[part]


def test_dvclive_summaries_are_outside_every_pipelines_logs_hash() -> None:
    """dvclive's logs/<run>/metrics.json is not carried by a training restored on another machine, so in
    any pipeline's logs/ (the report's dependency) DVC must ignore it, or the report is stale on every fresh
    clone (it was for literature/ and literature/short/: the pattern matched the top level only)."""
    summaries = ["logs/vae-2-0/metrics.json", "literature/logs/cvae-50/metrics.json",
                 "literature/short/logs/vae-50/metrics.json"]
    curve = "literature/logs/cvae-50/plots/metrics/train/elbo.tsv"
    out = run(REPO, "dvc", "check-ignore", *summaries, curve, check=False)
    assert out.stdout.split() == summaries


def test_the_literature_params_are_the_papers_setting() -> None:
    p = load_params(LIT / "params.yaml")
    assert (p.model.hidden, p.model.activation, p.grid.zdims) == (200, "tanh", (50,))
    assert (p.train.optimizer, p.train.eps, p.train.schedule, p.train.epochs) == ("adam", 1e-4, "burda", 3280)
    assert p.train.epochs == BURDA_EPOCHS[7] and p.eval.k == 5000 and p.data.binarize == "dynamic"
    # the rates the paper lists: 1e-3 for one epoch ... 1e-4 for the last 2187
    assert p.train.lr_at(0) == 1e-3 and p.train.lr_at(p.train.epochs - 1) == pytest.approx(1e-4, rel=1e-12)
    # the committed runs were monitored on the first 2,000 test images, with one training seed: kept, so that
    # their checkpoints stay current (the fingerprint leaves `monitor: test` out)
    assert (p.train.monitor, p.train.heldout, p.grid.seeds, p.train.seed) == ("test", 2000, (0,), 0)


def test_the_short_run_is_the_thesis_model_in_a_tenth_of_the_epochs() -> None:
    p = load_params(LIT / "short" / "params.yaml")
    assert (p.model.hidden, p.model.activation, p.grid.models, p.grid.zdims) == (500, "relu", ("vae",), (50,))
    assert p.train.epochs <= 328 and p.eval.k == 5000
    assert (p.train.monitor, p.grid.seeds) == ("test", (0,))


@pytest.mark.slow
def test_the_literature_pipeline_runs_on_its_own_and_not_in_the_default_repro(tmp_path: Path) -> None:
    # the top level at its smallest (one run, no exact stage): what matters is that it leaves literature/ alone
    project = make_project(tmp_path / "p", {**TINY, "grid": {"models": ["vae"], "zdims": [2], "seeds": [0]},
                                            "exact": {"zdims": [], "k": 25, "seeds": [0]}})
    (project / "literature").mkdir(exist_ok=True)
    shutil.copy(LIT / "dvc.yaml", project / "literature" / "dvc.yaml")
    tiny_lit = {**TINY, "grid": {"models": ["vae", "cvae"], "zdims": [3]},
                "model": {"hidden": 16, "activation": "tanh"},
                "train": {**TINY["train"], "optimizer": "adam", "eps": 1e-4, "schedule": "burda", "epochs": 4,
                          "monitor": "test"},  # as literature/params.yaml
                "exact": {"zdims": [], "k": 25, "seeds": [0]}}
    (project / "literature" / "params.yaml").write_text(yaml.safe_dump(tiny_lit, sort_keys=False))
    run(project, "git", "add", "-A")
    run(project, "git", "commit", "-qm", "literature")

    out = run(project, "dvc", "repro").stdout
    assert "literature" not in out and not (project / "literature" / "models").exists()

    out = run(project / "literature", "dvc", "repro").stdout
    for item in ("vae-3", "cvae-3"):  # named without a training seed
        assert f"Running stage 'train@{item}'" in out
        sidecar = json.loads((project / "literature" / "models" / item / "model.json").read_text())
        assert sidecar["activation"] == "tanh" and sidecar["train"]["schedule"] == "burda"
        assert "monitor" not in sidecar["train"]  # `test` is left out: the committed sidecars stay current
        assert (project / "literature" / "metrics" / "runs" / f"{item}.json").exists()
        assert (project / "literature" / "plots" / "runs" / item / f"samples_{item}.png").exists()
    summary = json.loads((project / "literature" / "metrics" / "summary.json").read_text())
    assert {"vae", "cvae"} <= set(summary)
    # the top level is untouched by it and still up to date; `dvc metrics show` lists both summaries
    assert "Running stage" not in run(project, "dvc", "repro").stdout
    shown = run(project, "dvc", "metrics", "show", "--json").stdout
    assert "literature/metrics/summary.json" in shown and "metrics/summary.json" in shown


def test_the_grid_engines_never_schedule_the_literature_pipeline(tmp_path: Path) -> None:
    """vaebench-grid (queue, dask, --part) schedules what `dvc repro` at the top level runs: DVC's index holds
    every dvc.yaml of the repository, the literature's trainings of hours among them."""
    from vaebench.grid.stagegraph import stage_graph

    project = make_project(tmp_path / "p", TINY)
    (project / "literature").mkdir()
    shutil.copy(LIT / "dvc.yaml", project / "literature" / "dvc.yaml")
    shutil.copy(LIT / "params.yaml", project / "literature" / "params.yaml")
    graph = stage_graph(project)
    assert "train@vae-2-0" in graph and "report" in graph
    assert not [s for s in graph if "literature" in s]
    (project / "literature" / "short").mkdir()
    for f in ("dvc.yaml", "params.yaml"):
        shutil.copy(LIT / "short" / f, project / "literature" / "short" / f)
    assert stage_graph(project) == graph
    # seen from literature/, its own stages come with the top-level stages they need, and nothing else
    lit = stage_graph(project / "literature")
    assert {"train@vae-50", "report"} <= set(lit)
    assert set(lit["train@vae-50"]) == {"check", "../dvc.yaml:download"}
    assert {s for s in lit if s.startswith("../")} == {"../dvc.yaml:check", "../dvc.yaml:download"}
