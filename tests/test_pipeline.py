"""The real DVC pipeline in a temporary git repository, on a tiny configuration. No mocks: git and dvc run."""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from vaebench import io as vio

from dvcproject import CELLS, ITEMS, TINY, make_project, run

pytestmark = pytest.mark.slow


REPORT_PNGS = ("nll_vs_zdim.png", "training_curves.png", "active_units.png", "rate_distortion.png", "nll_by_family.png")


def declared_outputs(root: Path) -> list[Path]:
    """Every output, metric and plot that `dvc.yaml` declares for this grid, as files or directories."""
    paths = [root / "data/mnist.npz", root / "data/mnist.json", root / "metrics/summary.json",
             root / "metrics/table.md", root / "metrics/table.csv", root / "metrics/report.html",
             root / "metrics/variants.md", root / "metrics/variants.csv",  # written without variant runs too
             root / "metrics/comparisons.md", root / "metrics/comparisons.csv",
             *(root / "plots" / f for f in REPORT_PNGS)]
    for cell in CELLS:
        for seed in TINY["grid"]["seeds"]:
            item = f"{cell}-{seed}"  # the run's folders carry its training seed; the figure files the cell's name
            paths += [root / "models" / item / "model.safetensors", root / "models" / item / "model.json",
                      root / "logs" / item / "plots" / "metrics", root / "metrics" / "runs" / f"{item}.json",
                      root / "plots" / "runs" / item / f"samples_{cell}.png"]
    paths += [root / "metrics" / "exact" / f"{m}-{z}-{seed}.json" for m in TINY["grid"]["models"]
              for z in TINY["exact"]["zdims"] for seed in TINY["exact"]["seeds"]]
    return paths


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    root = make_project(tmp_path_factory.mktemp("pipe") / "proj", TINY)
    # one item first: only it and what it needs run
    out = run(root, "dvc", "repro", "train@vae-2-0").stdout
    assert "Running stage 'download'" in out and "Running stage 'train@vae-2-0'" in out
    assert "train@vae-3-0" not in out and "train@cvae-2-0" not in out
    assert (root / "models/vae-2-0/model.safetensors").exists() and not (root / "models/vae-3-0").exists()
    # then the whole pipeline
    out = run(root, "dvc", "repro").stdout
    assert "Running stage 'train@vae-2-0'" not in out  # already done, not repeated
    return root


def test_every_declared_output_exists(project: Path) -> None:
    for path in declared_outputs(project):
        assert path.exists(), path
        if path.is_file():
            assert path.stat().st_size > 0, path
    # the report's, per run, z=2 extras
    assert len(list((project / "plots").rglob("*.png"))) == len(REPORT_PNGS) + 2 * len(ITEMS) + 2 * 2


def test_tables_hold_one_finite_row_per_item(project: Path) -> None:
    import pandas as pd

    table = pd.read_csv(project / "metrics/table.csv")
    assert sorted(f"{m}-{z}" for m, z in zip(table["model"], table["zdim"])) == sorted(CELLS)  # a row per cell
    assert (table["n_seeds"] == len(TINY["grid"]["seeds"])).all()
    for col in ("neg_elbo", "iwae_nll"):
        assert table[col].notna().all() and (table[col] > 0).all() and (table[col] < 1000).all(), col
    summary = json.loads((project / "metrics/summary.json").read_text())
    assert set(summary) == {"vae", "cvae"} and set(summary["cvae"]) == {"z2", "z3"}
    assert isinstance(summary["cvae"]["z2"]["iwae_nll_marginal"], float)


def test_second_repro_has_nothing_to_do(project: Path) -> None:
    out = run(project, "dvc", "repro").stdout
    assert "Running stage" not in out
    assert "up to date" in out.lower()
    assert "changed" not in run(project, "dvc", "status").stdout


def _hashes(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): vio.sha256_file(p)
            for d in ("models", "metrics", "plots", "logs", "data") for p in sorted((root / d).rglob("*")) if p.is_file()}


def test_metrics_diff_lists_each_number_once(project: Path) -> None:
    """The per-run JSON files are plain outputs: their numbers reach `dvc metrics` once, through summary.json."""
    shown = json.loads(run(project, "dvc", "metrics", "show", "--json").stdout)
    files = {f for rev in shown.values() for f in rev.get("data", {})}
    assert files == {"metrics/summary.json"}, files
    summary = json.loads((project / "metrics/summary.json").read_text())
    assert {f"z{z}" for z in TINY["grid"]["zdims"]} == set(summary["vae"]) == set(summary["cvae"])


def test_work_outside_the_grid_leaves_every_stage_up_to_date(project: Path) -> None:
    """An ad-hoc `vaebench eval` of a configuration outside the grid trains into models/, and a killed
    training leaves models/<run>.partial: no stage reads either, so a second `dvc repro` stays a no-op."""
    out = run(project, "vaebench", "eval", "--zdim", "4", "--quiet").stderr
    # the default folder names the training seed (train.seed), as the grid's do
    assert "training vae z=4 first" in out and (project / "models/vae-4-0/model.safetensors").exists()
    assert (project / "models/vae-4-0/eval.json").exists()  # its numbers, for `vaebench runs`, beside its weights
    (project / "models/vae-5-0.partial").mkdir()
    try:
        assert "changed" not in run(project, "dvc", "status").stdout
        assert "Running stage" not in run(project, "dvc", "repro").stdout
    finally:
        shutil.rmtree(project / "models/vae-4-0")
        (project / "models/vae-5-0.partial").rmdir()


def test_forced_rerun_is_byte_identical(project: Path) -> None:
    before = _hashes(project)
    assert any(k.endswith("model.safetensors") for k in before) and any(k.endswith(".png") for k in before)
    lock = (project / "dvc.lock").read_bytes()
    # one stage of every kind, forced (matrix items run the same command on other values): every output
    # they rewrite, and the lock, come back with the same bytes
    kinds = ["check", "download", "train@cvae-3-0", "evaluate@cvae-3-0", "exact@cvae-2-0", "figures@cvae-2-0", "report"]
    out = run(project, "dvc", "repro", "-f", "-s", *kinds).stdout
    assert all(f"Running stage '{k}'" in out for k in kinds)  # they really ran again
    assert _hashes(project) == before
    assert (project / "dvc.lock").read_bytes() == lock


def test_branch_that_changes_a_setting_shows_in_metrics_diff(project: Path) -> None:
    run(project, "git", "add", "-A")
    run(project, "git", "commit", "-qm", "baseline results")
    run(project, "git", "checkout", "-qb", "more-samples")
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["eval"]["k"] = 30  # evaluation only: training must not re-run
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    out = run(project, "dvc", "repro").stdout
    assert "Running stage 'evaluate@vae-2-0'" in out and "Running stage 'report'" in out
    assert "Running stage 'train@" not in out and "Running stage 'download'" not in out
    assert "Running stage 'exact@" not in out  # exact.k overrides eval.k: the exact stage does not read it
    diff = json.loads(run(project, "dvc", "metrics", "diff", "main", "--json").stdout)
    summary_diff = diff["metrics/summary.json"]
    assert "vae.z2.iwae_nll" in summary_diff
    changed = summary_diff["vae.z2.iwae_nll"]
    assert changed["old"] != changed["new"] and changed["diff"] == pytest.approx(changed["new"] - changed["old"])
    assert "vae.z2.neg_elbo" not in summary_diff  # the ELBO does not depend on k
    run(project, "git", "checkout", "-q", "--", ".")
    run(project, "git", "checkout", "-q", "main")
    run(project, "dvc", "checkout", "-q")  # the per-run outputs are DVC-cached: back to main's


def test_changing_exact_k_reruns_only_the_exact_stages_and_the_report(project: Path) -> None:
    run(project, "git", "checkout", "-qb", "exact-k")
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["exact"]["k"] = 40
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    out = run(project, "dvc", "repro").stdout
    assert "Running stage 'exact@vae-2-0'" in out and "Running stage 'exact@cvae-2-0'" in out
    assert "Running stage 'report'" in out
    assert "Running stage 'evaluate@" not in out and "Running stage 'train@" not in out
    assert json.loads((project / "metrics/exact/vae-2-0.json").read_text())["k"] == 40
    diff = json.loads(run(project, "dvc", "metrics", "diff", "main", "--json").stdout)["metrics/summary.json"]
    assert "vae.z2.iwae_nll_exact_k" in diff and "vae.z2.iwae_nll" not in diff
    run(project, "git", "checkout", "-q", "--", ".")
    run(project, "git", "checkout", "-q", "main")
    run(project, "dvc", "checkout", "-q")  # the per-run outputs are DVC-cached: back to main's


PER_RUN = ("models/", "metrics/runs/", "metrics/exact/", "logs/", "plots/runs/")


def _running(out: str) -> set[str]:
    """The stages a `dvc repro` ran, from its `Running stage '<name>':` lines."""
    return {line.split("'")[1] for line in out.splitlines() if line.startswith("Running stage '")}


def test_adding_a_training_seed_runs_only_the_new_seeds_stages(tmp_path: Path) -> None:
    """grid.seeds [0] -> [0, 1] on a pipeline that has run (a cell and a variant run): `dvc status` names only
    the new seed's train/evaluate/figures stages (the variant's too), the report and the check; `dvc repro` runs
    exactly those, and every output of seed 0 (models, metrics, exact, logs, figures) and its dvc.lock entry stay
    as they were, byte for byte. The exact stage scores exact.seeds = [0] only: nothing of it runs."""
    params = copy.deepcopy({**TINY, "grid": {"models": ["vae"], "zdims": [2], "seeds": [0]},
                            "variants": {"defs": {"b2": {"beta": 2.0}}, "runs": ["b2-2"]}})
    project = make_project(tmp_path / "p", params)
    run(project, "dvc", "repro")
    per_run = lambda: {k: v for k, v in _hashes(project).items()  # noqa: E731
                       if k.startswith(PER_RUN) and k != "metrics/exact/.keep"}
    before, lock_before = per_run(), yaml.safe_load((project / "dvc.lock").read_text())["stages"]
    for path in ("models/vae-2-0/model.safetensors", "models/b2-2-0/model.safetensors", "metrics/runs/vae-2-0.json",
                 "metrics/runs/b2-2-0.json", "metrics/exact/vae-2-0.json", "logs/vae-2-0/plots/metrics/heldout/elbo.tsv",
                 "plots/runs/vae-2-0/samples_vae-2.png", "plots/runs/b2-2-0/samples_b2-2.png"):
        assert path in before, path
    assert all("-2-0" in k for k in before), sorted(before)

    params["grid"]["seeds"] = [0, 1]
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    new = {f"{kind}@vae-2-1" for kind in ("train", "evaluate", "figures")}
    new |= {f"{kind}@b2-2-1" for kind in ("train-variant", "evaluate-variant", "figures-variant")}
    assert set(json.loads(run(project, "dvc", "status", "--json").stdout)) == new | {"check", "report"}
    assert _running(run(project, "dvc", "repro").stdout) == new | {"check", "report"}

    after, lock_after = per_run(), yaml.safe_load((project / "dvc.lock").read_text())["stages"]
    assert {k: v for k, v in after.items() if k in before} == before  # seed 0's outputs, byte for byte
    added = set(after) - set(before)
    assert added and all("-2-1" in k for k in added), sorted(added)
    assert set(before) <= set(after)
    assert set(lock_after) == set(lock_before) | new
    for name, stage in lock_before.items():
        if name not in ("check", "report"):  # check reads all of params.yaml; the report, grid.seeds
            assert lock_after[name] == stage, name
    # the new seed is another training: other weights, scored under its own seed
    for model in ("vae", "b2"):
        assert after[f"models/{model}-2-1/model.safetensors"] != before[f"models/{model}-2-0/model.safetensors"]
        assert [json.loads((project / f"metrics/runs/{model}-2-{seed}.json").read_text())["train_seed"]
                for seed in (0, 1)] == [0, 1]
    import pandas as pd

    assert list(pd.read_csv(project / "metrics/table.csv")["n_seeds"]) == [2]  # the report averages both
    assert "changed" not in run(project, "dvc", "status").stdout


# ---------------------------------------------------------------- dependencies that cannot drift


def _imported_modules(root: Path, cmd: str) -> set[str]:
    """The vaebench source files a stage's command really imports: run it with Python's import tracing.
    The entry point that `python -m` runs as __main__ is not traced under its name: it is added."""
    proc = subprocess.run(cmd, shell=True, cwd=root, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPROFILEIMPORTTIME": "1", "OMP_NUM_THREADS": "1",
                               "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"})
    assert proc.returncode == 0, (cmd, proc.stderr[-2000:])
    names = {line.rsplit("|", 1)[1].strip() for line in proc.stderr.splitlines() if line.startswith("import time:")}
    mods = {n for n in names if n == "vaebench" or n.startswith("vaebench.")}
    assert "vaebench.config" in mods, proc.stderr[-2000:]  # the tracing worked
    entry = cmd.split(" -m ", 1)[1].split()[0]
    assert entry.startswith("vaebench.stages."), cmd  # every stage runs a thin entry point, never the CLI
    mods.add(entry)
    return {_source(root, m) for m in mods}


def _source(root: Path, module: str) -> str:
    """vaebench.run.fit -> vaebench/run/fit.py; a package -> its __init__.py."""
    path = module.replace(".", "/")
    return f"{path}.py" if (root / f"{path}.py").exists() else f"{path}/__init__.py"


def check_declared_code(root: Path, name: str, stage: dict) -> None:
    """A lock entry lists exactly the vaebench modules its command imports, and the C source run/fused.py
    compiles (code the stage runs too) exactly where fused.py is among them."""
    declared = {d["path"] for d in stage["deps"] if d["path"].startswith("vaebench/") and d["path"].endswith(".py")}
    imported = _imported_modules(root, stage["cmd"])
    kernel = any(d["path"] == "vaebench/run/rmsprop_kernel.c" for d in stage["deps"])
    assert kernel == ("vaebench/run/fused.py" in imported), f"{name}: run/rmsprop_kernel.c listed: {kernel}"
    assert imported <= declared, f"{name} imports {sorted(imported - declared)} but dvc.yaml does not list them"
    assert declared <= imported, f"{name} lists {sorted(declared - imported)}, which its command never imports"


def test_every_stage_declares_every_module_its_command_imports(project: Path) -> None:
    lock = yaml.safe_load((project / "dvc.lock").read_text())["stages"]
    kinds = {}  # one stage of each kind (matrix items share their command's imports)
    for name, stage in lock.items():
        kinds.setdefault(name.split("@")[0], (name, stage))
    assert set(kinds) == {"check", "download", "train", "evaluate", "exact", "figures", "report"}
    for kind, (name, stage) in kinds.items():
        check_declared_code(project, name, stage)
    # the commands rewrote their outputs with the same bytes: nothing is stale
    assert "changed" not in run(project, "dvc", "status").stdout


def _stale_after_editing(project: Path, module: str) -> set[str]:
    """The stages `dvc status` reports after appending a comment to `module` (restored after)."""
    path = project / module
    original = path.read_bytes()
    try:
        path.write_bytes(original + b"\n# an edit\n")
        return set(json.loads(run(project, "dvc", "status", "--json").stdout))
    finally:
        path.write_bytes(original)


def test_an_edit_to_any_imported_module_makes_its_stages_stale(project: Path) -> None:
    lock = yaml.safe_load((project / "dvc.lock").read_text())["stages"]
    for module in ("vaebench/config.py", "vaebench/core/quadrature.py", "vaebench/run/fit.py", "vaebench/__init__.py"):
        users = {name for name, st in lock.items() if any(d["path"] == module for d in st["deps"])}
        stale = _stale_after_editing(project, module)
        assert users and stale == users, (module, sorted(stale ^ users))
    assert "changed" not in run(project, "dvc", "status").stdout


@pytest.mark.parametrize("module, stale_kinds", [
    ("vaebench/cli.py", set()),  # the command for people: no stage imports it
    ("vaebench/selection.py", set()),
    ("vaebench/report/console.py", set()),  # the `eval` printout
    ("vaebench/report/listing.py", set()),  # `vaebench runs`
    ("vaebench/grid/dask.py", set()),  # the grid engines start stages, no stage imports them
    ("vaebench/grid/stagegraph.py", set()),
    ("vaebench/grid/cli.py", set()),
    ("vaebench/report/build.py", {"report"}),
    ("vaebench/report/references.py", {"report"}),
    ("vaebench/report/seeds.py", {"report"}),  # the mean over training seeds
    ("vaebench/report/comparisons.py", {"report"}),
    ("vaebench/report/stats.py", {"report"}),
    ("vaebench/run/drawing.py", {"figures", "report"}),  # per-run figures; the report saves with its helpers
    ("vaebench/run/fit.py", {"train"}),  # the training loop: no scoring stage
    ("vaebench/run/optim.py", {"train"}),
    ("vaebench/run/callbacks.py", {"train"}),
    ("vaebench/core/objectives.py", {"train"}),
    ("vaebench/run/score.py", {"evaluate", "exact"}),
])
def test_an_edit_re_runs_only_the_stages_of_its_layer(project: Path, module: str, stale_kinds: set[str]) -> None:
    """The house by layers: editing the CLI, the printout, the listing or the grid engines stales nothing;
    the report's modules stale the report only; the training loop no scoring stage."""
    stale = _stale_after_editing(project, module)
    assert {name.split("@")[0] for name in stale} == stale_kinds, (module, sorted(stale))


def test_eval_chunk_changes_no_result_and_reruns_nothing(project: Path) -> None:
    params_path = project / "params.yaml"
    original = params_path.read_bytes()
    try:
        params = yaml.safe_load(original)
        params["eval"]["chunk"] = 7  # memory only
        params_path.write_text(yaml.safe_dump(params, sort_keys=False))
        assert "Running stage 'evaluate@" not in run(project, "dvc", "repro").stdout
        before = (project / "metrics/runs/cvae-2-0.json").read_bytes()
        run(project, "dvc", "repro", "-f", "-s", "evaluate@cvae-2-0")  # scored again with chunk 7: the same bytes
        assert (project / "metrics/runs/cvae-2-0.json").read_bytes() == before
    finally:
        params_path.write_bytes(original)
    run(project, "dvc", "repro")  # the check stage's stamp, for the tests after this one


@pytest.mark.parametrize("edit", [
    pytest.param(lambda p: p["train"].update(lr=-1.0), id="bad-value"),
    pytest.param(lambda p: p.update(hidden=1000), id="misplaced-key"),
])
def test_bad_params_stop_repro_before_any_output_is_touched(project: Path, edit) -> None:
    params_path = project / "params.yaml"
    original = params_path.read_bytes()
    before = _hashes(project)
    try:
        params = yaml.safe_load(original)
        edit(params)
        params_path.write_text(yaml.safe_dump(params, sort_keys=False))
        proc = run(project, "dvc", "repro", check=False)
        assert proc.returncode != 0
        assert "failed to reproduce 'check'" in proc.stderr + proc.stdout
        assert "Running stage 'train@" not in proc.stdout and "Running stage 'report'" not in proc.stdout
        after = _hashes(project)
        del before["data/params.ok"]  # the check stage's own stamp is the one output DVC removes
        after.pop("data/params.ok", None)
        assert after == before
    finally:
        params_path.write_bytes(original)
    run(project, "dvc", "repro")
