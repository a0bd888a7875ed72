"""The figures and report stages on a real tiny grid: trained and scored models in, tables, summary and figures out.

One module-scoped grid (vae, cvae) x (2, 3), trained by the pipeline's own fit() with dvclive logs,
scored by runs.score() and drawn by the `figures` command, serves every test; one report is built
from it and checked.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import vaebench
import yaml
from matplotlib.image import imread
from typer.testing import CliRunner

from vaebench import io as vio
from vaebench.report import plots
from vaebench.run import drawing
from vaebench.run.checkpoint import load_checkpoint
from vaebench.cli import app
from vaebench.config import load_params, params_from_dict, to_dict
from vaebench.run.figures import manifold_z
from vaebench.report.references import COMPARISON_NOTE, REFERENCES, compares_to
from vaebench.report.build import (NLL_BY_ZDIM_COLUMNS, TABLE_COLUMNS, ReportError, build_report, mean_curve,
                                    nll_by_zdim, table_rows, to_csv)
from vaebench.config import run_name
from vaebench.report.seeds import AGGREGATED, combine
from vaebench.run.score import load_data, score
from vaebench.run.fit import fit

MODELS, ZDIMS = ("vae", "cvae"), (2, 3)
ITEMS = [(m, z) for m in MODELS for z in ZDIMS]
NAMES = [run_name(m, z, 0) for m, z in ITEMS]  # the tiny grid trains one seed, 0: runs `vae-2-0`...
CELLS = [run_name(m, z) for m, z in ITEMS]  # ...whose figure files the figures stage names after the cell, `vae-2`


def _px(width_in: float, height_in: float) -> tuple[int, int]:
    """(rows, columns) of a figure of this size in inches, saved at the report's dpi."""
    return round(height_in * drawing.DPI), round(width_in * drawing.DPI)


# every figure the tiny grid must yield, with its size: figure sizes are fixed, never "tight".
# The report draws the grid's three; the figures stage the others, in plots/runs/<run>/ (the folder named
# after the run with its seed, the files after the cell: plots/runs/vae-2-0/samples_vae-2.png).
GRID_PNGS = {
    "nll_vs_zdim.png": _px(10.0, 5.5),
    "training_curves.png": _px(13.0, 5.0),  # one 6.5 in panel per model
    "active_units.png": _px(15.0, 4.8),  # one 5 in panel per model, plus the counts
}
RUN_PNGS = {
    **{f"{n}/samples_{c}.png": _px(6.0, 6.7) for n, c in zip(NAMES, CELLS)},  # 10 x 10 digits
    **{f"{n}/reconstructions_{c}.png": _px(11.0, 6.4) for n, c in zip(NAMES, CELLS)},
    "vae-2-0/latent_vae-2.png": _px(7.5, 6.5),
    "cvae-2-0/latent_cvae-2.png": _px(7.5, 6.5),
    "vae-2-0/manifold_vae-2.png": _px(6.6, 7.0),
    "cvae-2-0/manifold_cvae-2.png": _px(3 * 6.6, 7.0),  # three digits
}
# what report.html embeds; table.md links the grid's three only (the runs' are DVC outputs: a fresh clone has none)
EXPECTED_PNGS = {**GRID_PNGS, **{f"runs/{k}": v for k, v in RUN_PNGS.items()}}
# the variants' figures, written without variant runs too (dvc.yaml declares them): the VAE alone, so the
# NLL-by-family figure has no categorical panel (tests/test_variants_report.py draws them with variants)
VARIANT_PNGS = {"rate_distortion.png": _px(10.0, 6.5), "nll_by_family.png": _px(8.0, 6.0)}
TABLES = ("summary.json", "table.csv", "table.md", "nll_by_zdim.csv", "report.html", "all_runs.json",
          "variants.md", "variants.csv", "comparisons.md", "comparisons.csv")


@pytest.fixture(scope="module")
def params():
    # the factory behind the `tiny_params` fixture (that fixture is function-scoped; this grid is not)
    from conftest import make_tiny_params

    return make_tiny_params(grid={"models": list(MODELS), "zdims": list(ZDIMS)}, train={"epochs": 2})


@pytest.fixture(scope="module")
def grid(tmp_path_factory, mnist_file, params) -> dict[str, Path]:
    """runs/, models/ and logs/ as the train and evaluate stages leave them, for the whole tiny grid."""
    root = tmp_path_factory.mktemp("grid")
    data = load_data(params, mnist_file)  # verified once, shared by every fit and score
    for (m, z), name in zip(ITEMS, NAMES):
        fit(m, z, params, mnist_file, root / "models" / name, live_dir=root / "logs" / name,
            log=lambda s: None, progress=False, data=data)
        net, _ = load_checkpoint(root / "models" / name)
        # what `vaebench eval --out` writes
        metrics = {"model": m, "zdim": z, **score(net, params, data, progress=False)}
        vio.write_json(root / "runs" / f"{name}.json", metrics)
    p = root / "params.yaml"
    p.write_text(yaml.safe_dump(to_dict(params)))
    for (m, z), name in zip(ITEMS, NAMES):  # the figures stage's command, as dvc.yaml runs it
        r = CliRunner().invoke(app, [str(a) for a in (
            "figures", "--params", p, "--model", m, "--zdim", z, "--data", mnist_file,
            "--ckpt", root / "models" / name, "--out", root / "figures" / name)])
        assert r.exit_code == 0, r.output
    return {"root": root, "runs": root / "runs", "models": root / "models", "logs": root / "logs",
            "figures": root / "figures", "data": mnist_file}


def _build(params, grid, where: Path, exact: Path | None = None) -> list[Path]:
    return build_report(params, grid["runs"], grid["logs"], grid["figures"], grid["data"],
                        where / "metrics", where / "plots", exact)


@pytest.fixture(scope="module")
def built(tmp_path_factory, params, grid) -> tuple[Path, list[Path]]:
    where = tmp_path_factory.mktemp("report")
    return where, _build(params, grid, where)


def _runs(grid) -> list[dict]:
    return [vio.read_json(grid["runs"] / f"{n}.json") for n in NAMES]


def _csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _finite(cell: str) -> bool:
    return cell != "" and math.isfinite(float(cell))


# ---------------------------------------------------------------- outputs


def test_every_declared_output_is_written_and_returned(built, grid) -> None:
    where, written = built
    expected = {where / "metrics" / t for t in TABLES} | {where / "plots" / p for p in (*GRID_PNGS, *VARIANT_PNGS)}
    assert set(written) == expected and len(written) == len(expected)
    for path in written:
        assert path.stat().st_size > 0, path
    # nothing else, in particular no temporary file of the atomic writes
    assert {p for p in where.rglob("*") if p.is_file()} == expected
    # and the figures stage wrote exactly its figures, nothing else
    assert {p.relative_to(grid["figures"]).as_posix() for p in grid["figures"].rglob("*") if p.is_file()} == set(RUN_PNGS)


def test_all_runs_json_holds_every_metrics_file_whole(built, grid) -> None:
    """The per-run files are DVC-cached (they travel between machines); git keeps this copy of them."""
    where, _ = built
    copy = json.loads((where / "metrics" / "all_runs.json").read_text())
    runs = sorted(grid["runs"].glob("*.json"))
    assert sorted(copy["runs"]) == [p.stem for p in runs] and len(runs) == len(ITEMS)
    for p in runs:
        assert copy["runs"][p.stem] == json.loads(p.read_text())
    assert "exact" not in copy  # built without the exact stage's folder (its copies: the exact-stage test)


def test_table_md_links_no_run_figure_and_the_page_shows_each_under_its_run(built, grid) -> None:
    """The per-run figures are DVC outputs, absent from a fresh clone: table.md (committed, read on the forge)
    must not link them; report.html embeds them, each under a caption naming its run."""
    where, _ = built
    md = (where / "metrics" / "table.md").read_text()
    assert "runs/" not in md and not any(Path(f).name in md for f in RUN_PNGS)
    page = (where / "metrics" / "report.html").read_text()
    assert "<h2>Figures of each run (training seed 0)</h2>" in page
    for name in RUN_PNGS:  # `vae-2-0: samples_vae-2`: the run's folder, the figure's name
        assert f'<figcaption>{Path(name).parent.name}: {Path(name).stem}</figcaption>' in page, name


def test_table_csv_has_one_row_per_grid_item_with_finite_numbers(built, grid) -> None:
    where, _ = built
    rows = _csv(where / "metrics" / "table.csv")
    assert list(rows[0]) == list(TABLE_COLUMNS)
    assert [(r["model"], int(r["zdim"])) for r in rows] == ITEMS
    for row, run in zip(rows, _runs(grid)):
        for col in ("neg_elbo", "neg_elbo_se", "iwae_nll", "iwae_nll_se", "k", "active_units", "n_images"):
            assert _finite(row[col]), (row["model"], row["zdim"], col)
        assert float(row["iwae_nll"]) == round(run["iwae_nll"], 4)
        assert float(row["neg_elbo"]) == round(run["neg_elbo"], 4)
        cvae, low = row["model"] == "cvae", int(row["zdim"]) <= 2
        assert row["iwae_target"] == ("-log p(x|y)" if cvae else "-log p(x)")
        for col in ("iwae_nll_marginal", "iwae_nll_marginal_se", "k_marginal"):
            assert _finite(row[col]) if cvae else row[col] == "", (row["model"], col)
        for col in ("quad_nll", "quad_nll_se", "quad_error_bound", "quad_mean_error", "iwae_gap_to_quad"):
            assert _finite(row[col]) if low else row[col] == "", (row["model"], row["zdim"], col)
    # the thesis reports VAE z=2 (157) in this grid, nothing else
    assert [r["thesis"] for r in rows] == ["157.0", "", "", ""]


def test_thesis_column_holds_the_thesis_numbers_exactly_where_it_has_them(grid) -> None:
    # real run metrics, relabelled onto the thesis's grid points and two it does not report, as one-seed cells
    vae, cvae = _runs(grid)[1], _runs(grid)[3]
    relabelled = [{**vae, "zdim": 25}, {**vae, "zdim": 35}, {**cvae, "zdim": 25}, {**cvae, "zdim": 35},
                  {**vae, "zdim": 2}, {**cvae, "zdim": 2}]
    rows = table_rows([combine([r], [0]) for r in relabelled])
    assert [r["thesis"] for r in rows] == [102.0, None, None, 98.5, 157.0, None]
    cells = [r["thesis"] for r in csv.DictReader(to_csv(rows, TABLE_COLUMNS).splitlines())]
    assert cells == ["102.0", "", "", "98.5", "157.0", ""]


def test_table_markdown_has_the_rows_the_references_and_the_comparison(built, grid, params) -> None:
    where, _ = built
    md = (where / "metrics" / "table.md").read_text()
    body = [line for line in md.splitlines() if line.startswith(("| VAE |", "| CVAE |"))]
    assert [tuple(c.strip() for c in line.split("|")[1:3]) for line in body] == [
        ("VAE", "2"), ("VAE", "3"), ("CVAE", "2"), ("CVAE", "3")]
    assert body[0].endswith("| 157 |") and all(line.endswith("|  |") for line in body[1:])
    # the IWAE cell carries k and the spread across evaluation seeds that the run's metrics hold
    runs = {(r["model"], r["zdim"]): r for r in _runs(grid)}
    for line in body:
        model, zdim = line.split("|")[1].strip().lower(), int(line.split("|")[2])
        run = runs[(model, zdim)]
        assert f"({run['k']}; eval. sd {run['iwae_nll_eval_sd']:.3f})" in line.split("|")[4]
        # one training seed: `value ± s.e.`, no training-seed sd to print
        assert line.split("|")[3].strip() == f"{run['neg_elbo']:.2f} ± {run['test_elbo_se']:.2f}"
    for ref in REFERENCES:
        assert ref.source in md and ref.nll in md
        assert compares_to(ref, params).replace("|", "\\|") in md
    # a bare "|" inside a cell would split it: every table line escapes the one in p(x|y)
    assert "log p(x\\|y)" in md and not any("p(x|y)" in line for line in md.splitlines() if line.startswith("|"))
    assert COMPARISON_NOTE in md
    # the figure links resolve from where the table lies, so it reads offline: the grid's three, committed
    links = [line[line.index("(") + 1:-1] for line in md.splitlines() if line.startswith("![")]
    assert sorted(Path(link).name for link in links) == sorted(GRID_PNGS)
    assert all((where / "metrics" / link).resolve().is_file() for link in links)


def test_each_published_row_names_our_run_and_every_stated_difference() -> None:
    """The reference rows say which run they compare to, from the params, not from a fixed text."""
    root = Path(__file__).resolve().parents[1]
    burda, static, pythae, aevb, conditional = REFERENCES
    beyond = "; also, beyond params: theirs " + burda.also
    literature = load_params(root / "literature" / "params.yaml")
    # the paper's setting but for the batch, and what params cannot say (README, "A run a paper can cite")
    assert compares_to(burda, literature) == "vae z=50, IWAE NLL, -log p(x): differs in batch_size 100 (theirs 20)" + beyond
    thesis = load_params(root / "params.yaml")
    assert compares_to(burda, thesis) == (
        "vae z=50, IWAE NLL, -log p(x): differs in hidden 500 (theirs 200), activation relu (theirs tanh), "
        "optimizer rmsprop (theirs adam), eps 1e-08 (theirs 0.0001), schedule constant (theirs burda), "
        "epochs 40 (theirs 3280), batch_size 256 (theirs 20), k 500 (theirs 5000)" + beyond)
    short = load_params(root / "literature" / "short" / "params.yaml")
    assert "kl_warmup 10 (theirs 0)" in compares_to(burda, short)
    assert compares_to(static, thesis).endswith("differs in binarize dynamic (theirs static)")
    assert compares_to(pythae, thesis) == "no run: grid.zdims has no 40 (vae at z=40)"
    # a source that states little is matched on that little, and says so
    assert compares_to(conditional, thesis) == (
        "cvae rows, IWAE NLL, -log p(x|y), against its k=1 row (82.32; ours trains on the ELBO): "
        "matches what it states (binarize dynamic); the rest not stated")
    vae_only = params_from_dict({**to_dict(literature), "grid": {"models": ["vae"], "zdims": [50]}})
    assert compares_to(conditional, vae_only) == "no run: grid.models has no cvae"
    assert compares_to(aevb, vae_only) == ("vae rows, test -ELBO (the bound, sign flipped): differs in "
                                           "hidden 200 (theirs 500), optimizer adam (theirs adagrad)")


def test_summary_json_is_flat_stable_and_numeric(built, grid) -> None:
    where, _ = built
    summary = json.loads((where / "metrics" / "summary.json").read_text())
    assert set(summary) == set(MODELS)
    base = {"test_elbo", "neg_elbo", "iwae_nll", "iwae_nll_se", "iwae_nll_eval_sd", "kl", "active_units"}
    for run in _runs(grid):
        leaf = summary[run["model"]][f"z{run['zdim']}"]
        want = base | ({"iwae_nll_marginal", "iwae_nll_marginal_se"} if run["model"] == "cvae" else set()) \
            | ({"quad_nll", "quad_nll_se", "quad_error_bound", "iwae_gap_to_quad", "quad_mean_error"}
               if run["zdim"] <= 2 else set())
        # each seed-combined metric's number of seeds (1 here); no training-seed sd, which one seed has not
        # (left out: never a null)
        spread = {f"{k}_n" for k in want if k in AGGREGATED}
        assert spread and set(leaf) == want | spread
        for key, value in leaf.items():
            assert isinstance(value, (int, float)) and not isinstance(value, bool), key
            assert math.isfinite(value), key
            assert value == (1 if key in spread else round(run[key], 4)), key
        if "quad_nll" in run:  # the mean's error estimate: refinement plus truncation
            assert run["quad_mean_error"] == run["quad_refine_delta"] + run["quad_widen_delta"]
    assert {z for m in summary.values() for z in m} == {"z2", "z3"}


def test_nll_by_zdim_is_wide_with_one_row_per_zdim(built, grid) -> None:
    where, _ = built
    rows = _csv(where / "metrics" / "nll_by_zdim.csv")
    assert list(rows[0]) == list(NLL_BY_ZDIM_COLUMNS)
    assert [int(r["zdim"]) for r in rows] == list(ZDIMS)
    assert all(_finite(v) for r in rows for v in r.values())
    runs = {(r["model"], r["zdim"]): r for r in _runs(grid)}
    assert float(rows[1]["cvae_iwae_nll_marginal"]) == round(runs[("cvae", 3)]["iwae_nll_marginal"], 4)
    # a grid without the CVAE leaves its columns empty
    vae_only = list(csv.DictReader(to_csv(nll_by_zdim(_runs(grid)[:2], ZDIMS), NLL_BY_ZDIM_COLUMNS).splitlines()))
    assert all(r[c] == "" for r in vae_only for c in NLL_BY_ZDIM_COLUMNS if c.startswith("cvae"))
    assert all(_finite(r["vae_iwae_nll"]) for r in vae_only)


@pytest.mark.parametrize("name", sorted({**EXPECTED_PNGS, **VARIANT_PNGS}))
def test_each_figure_is_a_real_image_of_its_size(built, grid, name: str) -> None:
    where, _ = built
    path = grid["figures"] / name[len("runs/"):] if name.startswith("runs/") else where / "plots" / name
    img = imread(path)  # (H, W, 4) floats in [0, 1]
    assert img.shape == (*{**EXPECTED_PNGS, **VARIANT_PNGS}[name], 4)
    rgba = np.round(img * 255).astype(np.uint32)  # one 32-bit code per pixel: np.unique on rows is slow
    codes = (rgba[..., 0] << 24) | (rgba[..., 1] << 16) | (rgba[..., 2] << 8) | rgba[..., 3]
    n_colours = len(np.unique(codes))
    assert n_colours > 20, f"{name}: only {n_colours} distinct pixel values"
    # drawn on, not blank: a good share of the pixels is not the white background
    assert (img[..., :3].min(-1) < 0.9).mean() > 0.02


def test_a_second_build_gives_byte_identical_files(built, params, grid, tmp_path) -> None:
    where, first = built
    second = _build(params, grid, tmp_path)
    assert [p.relative_to(tmp_path) for p in second] == [p.relative_to(where) for p in first]
    for a, b in zip(first, second):
        assert a.read_bytes() == b.read_bytes(), a.name


# ---------------------------------------------------------------- refusals


@pytest.mark.parametrize(("missing", "stage"), [
    ("runs/cvae-3-0.json", "dvc repro evaluate@cvae-3-0"),
    ("figures/vae-3-0/samples_vae-3.png", "dvc repro figures@vae-3-0"),
    ("logs/cvae-2-0/plots/metrics/heldout/elbo.tsv", "dvc repro train@cvae-2-0"),
])
def test_a_missing_input_is_a_clear_error_naming_it(params, grid, tmp_path, missing: str, stage: str) -> None:
    root = tmp_path / "grid"
    shutil.copytree(grid["root"], root)
    (root / missing).unlink()
    copy = {**grid, "runs": root / "runs", "figures": root / "figures", "logs": root / "logs"}
    with pytest.raises(ReportError) as err:
        _build(params, copy, tmp_path / "out")
    assert str(root / missing) in str(err.value) and stage in str(err.value)
    assert not (tmp_path / "out").exists()  # checked before anything is written


def test_a_stale_run_file_is_refused(params, grid, tmp_path) -> None:
    runs = tmp_path / "runs"
    shutil.copytree(grid["runs"], runs)
    vio.write_json(runs / "vae-2-0.json", {**vio.read_json(runs / "vae-2-0.json"), "n_images": 123})
    with pytest.raises(ReportError, match=r"vae-2-0\.json: scored on 123 test images.*evaluate@vae-2-0"):
        _build(params, {**grid, "runs": runs}, tmp_path / "out")
    # a file from before the quadrature's mean error was recorded: a clear error, not a KeyError
    old = {k: v for k, v in vio.read_json(grid["runs"] / "vae-2-0.json").items() if k != "quad_mean_error"}
    vio.write_json(runs / "vae-2-0.json", old)
    with pytest.raises(ReportError, match=r"vae-2-0\.json: no key 'quad_mean_error'; run `dvc repro evaluate@vae-2-0`"):
        _build(params, {**grid, "runs": runs}, tmp_path / "out")
    # another seed's file under this run's name: the seed it records is not the one its name says
    vio.write_json(runs / "vae-2-0.json", {**vio.read_json(grid["runs"] / "vae-2-0.json"), "train_seed": 1})
    with pytest.raises(ReportError, match=r"vae-2-0\.json: holds training seed 1, not 0; run `dvc repro evaluate@vae-2-0`"):
        _build(params, {**grid, "runs": runs}, tmp_path / "out")


@pytest.fixture(scope="module")
def exact_dir(tmp_path_factory, mnist_file, params, grid) -> Path:
    """What the `exact` stage writes: `vaebench eval --k <exact.k> --no-exact` of the exact.zdims models (no quadrature)."""
    root = tmp_path_factory.mktemp("exact")
    data = load_data(params, mnist_file)
    assert params.exact.seeds == (0,)
    for m in MODELS:
        for z in params.exact.zdims:
            net, _ = load_checkpoint(grid["models"] / run_name(m, z, 0))
            metrics = {"model": m, "zdim": z, **score(net, params, data, k=params.exact.k, progress=False, exact=False)}
            assert "quad_nll" not in metrics
            vio.write_json(root / f"{run_name(m, z, 0)}.json", metrics)
    return root


def test_many_sample_iwae_sits_beside_the_quadrature_with_its_gap(params, grid, exact_dir, tmp_path) -> None:
    where = tmp_path / "out"
    _build(params, grid, where, exact_dir)
    rows = {(r["model"], int(r["zdim"])): r for r in _csv(where / "metrics" / "table.csv")}
    summary = json.loads((where / "metrics" / "summary.json").read_text())
    md_rows = {(line.split(" | ")[0].lstrip("| ").lower(), int(line.split(" | ")[1])): line
               for line in (where / "metrics" / "table.md").read_text().splitlines()
               if line.startswith(("| VAE |", "| CVAE |"))}
    assert params.exact.zdims == (2,) and params.exact.k != params.eval.k
    for (m, z), row in rows.items():
        if z not in params.exact.zdims:
            assert row["iwae_nll_exact_k"] == "" and "iwae_nll_exact_k" not in summary[m][f"z{z}"]
            continue
        ex = vio.read_json(exact_dir / f"{run_name(m, z, 0)}.json")
        assert json.loads((where / "metrics" / "all_runs.json").read_text())["exact"][run_name(m, z, 0)] == ex
        assert int(row["exact_k"]) == params.exact.k
        assert float(row["iwae_nll_exact_k"]) == round(ex["iwae_nll"], 4)
        # the gap is to the run's own quadrature (the exact stage computes none)
        run = vio.read_json(grid["runs"] / f"{run_name(m, z, 0)}.json")
        assert float(row["iwae_gap_to_quad_exact_k"]) == round(ex["iwae_nll"] - run["quad_nll"], 4)
        assert float(row["iwae_gap_to_quad_exact_k"]) > 0  # a bound: above the exact NLL (500 images, tiny model)
        assert summary[m][f"z{z}"]["iwae_gap_to_quad_exact_k"] == float(row["iwae_gap_to_quad_exact_k"])
        # the exact stage's own spread across evaluation seeds (k = exact.k), not the evaluate stage's
        assert float(row["iwae_nll_exact_k_eval_sd"]) == round(ex["iwae_nll_eval_sd"], 4) > 0
        assert summary[m][f"z{z}"]["iwae_nll_exact_k_eval_sd"] == float(row["iwae_nll_exact_k_eval_sd"])
        assert f"at k={params.exact.k} with evaluation-seed sd {float(row['iwae_nll_exact_k_eval_sd']):.3f};" \
            in md_rows[m, z]
    md = (where / "metrics" / "table.md").read_text()
    assert f"at k={params.exact.k}" in md and f"at k={params.eval.k}" in md and "0e+00" not in md


def test_a_missing_or_stale_exact_file_is_refused(params, grid, exact_dir, tmp_path) -> None:
    def build(d: Path) -> None:
        _build(params, grid, tmp_path / "out", d)

    with pytest.raises(ReportError, match=r"vae-2-0\.json: missing.*dvc repro exact@vae-2-0"):
        build(tmp_path / "nowhere")
    stale = tmp_path / "stale"
    shutil.copytree(exact_dir, stale)
    ex = vio.read_json(stale / "vae-2-0.json")
    # a file from before the stage ran --no-exact holds a quadrature: it must still be the run's
    quad = vio.read_json(grid["runs"] / "vae-2-0.json")["quad_nll"]
    vio.write_json(stale / "vae-2-0.json", {**ex, "quad_nll": quad})
    build(stale)
    vio.write_json(stale / "vae-2-0.json", {**ex, "quad_nll": quad + 0.01})
    with pytest.raises(ReportError, match=r"vae-2-0\.json: its quadrature .* is not the one of evaluate@vae-2-0"):
        build(stale)
    vio.write_json(stale / "vae-2-0.json", {**ex, "k": params.exact.k + 1})
    with pytest.raises(ReportError, match=r"k=61, not exact\.k=60"):
        build(stale)


def test_cli_report_reports_a_missing_run_in_one_line(params, grid, tmp_path) -> None:
    p = tmp_path / "params.yaml"
    p.write_text(yaml.safe_dump(to_dict(params)))
    (tmp_path / "runs").mkdir()
    r = CliRunner().invoke(app, [str(a) for a in (
        "report", "--params", p, "--runs", tmp_path / "runs", "--figures", grid["figures"], "--logs", grid["logs"],
        "--data", grid["data"], "--out", tmp_path / "metrics", "--plots", tmp_path / "plots")])
    assert r.exit_code == 1
    assert r.output.strip().startswith("error: ") and len(r.output.strip().splitlines()) == 1
    assert "vae-2-0.json" in r.output and "dvc repro evaluate@vae-2-0" in r.output
    assert not (tmp_path / "metrics").exists() and not (tmp_path / "plots").exists()


# ---------------------------------------------------------------- pieces checked by hand


def test_mosaic_places_digits_between_grey_lines() -> None:
    images = np.stack([np.full((3, 28, 28), v) for v in (0.0, 1.0)])  # (2, 3, 28, 28): a black row, a white row
    m = drawing.mosaic(images)
    assert m.shape == (2 * 29 + 1, 3 * 29 + 1)
    assert m[0].tolist() == [0.5] * m.shape[1] and m[:, 29].tolist() == [0.5] * m.shape[0]
    assert m[1:29, 1:29].max() == 0.0 and m[30:58, 59:87].min() == 1.0


def test_manifold_grid_spans_the_5_to_95_percent_prior_quantiles() -> None:
    q = manifold_z(20).numpy()
    # Phi^-1(0.95) = 1.6448536..., the familiar one-sided 95% point of N(0, 1)
    assert q[0] == pytest.approx(-1.6448536, abs=1e-6) and q[-1] == pytest.approx(1.6448536, abs=1e-6)
    assert np.all(np.diff(q) > 0) and np.allclose(q, -q[::-1], atol=1e-6)


def test_training_curves_axis_fits_the_epochs_after_a_blown_up_first_one() -> None:
    # the committed VAE z=2 run once logged -4.96e9 nats at epoch 1 (RMSprop's first step); the axis
    # used to run to +2.5e8 (matplotlib's 5% margin of the whole range), every later epoch a flat line
    e = np.arange(1, 41)
    later = -150 + 50 * np.exp(-e / 5.0)  # epochs 2-40: -116.5 ... -150.0
    train = np.where(e == 1, -4.96e9, later - 1)
    held = np.where(e == 1, -2.0e3, later)
    fig = plots.training_curves({"vae": [plots.Curve(2, e, train, e, held)]})
    ax = fig.axes[0]
    bottom, top = ax.get_ylim()
    assert -155 < bottom < -150 and -116.5 < top < -112  # the data of epochs 2-40 with a 5% margin
    assert "epoch 1 lies below the axis" in ax.get_xlabel()


def test_a_cells_training_curve_is_its_seeds_mean_epoch_by_epoch() -> None:
    e = np.arange(1, 4)
    one = plots.Curve(2, e, np.array([-200.0, -150.0, -140.0]), e, np.array([-210.0, -160.0, -150.0]))
    two = plots.Curve(2, e, np.array([-180.0, -148.0, -136.0]), e, np.array([-190.0, -158.0, -146.0]))
    mean = mean_curve([one, two])
    assert mean.zdim == 2 and mean.train_epoch.tolist() == mean.heldout_epoch.tolist() == [1, 2, 3]
    assert mean.train_elbo.tolist() == [-190.0, -149.0, -138.0]
    assert mean.heldout_elbo.tolist() == [-200.0, -159.0, -148.0]
    assert mean_curve([one]).train_elbo.tolist() == one.train_elbo.tolist()  # one seed: its own curve
    short = plots.Curve(2, e[:2], one.train_elbo[:2], e[:2], one.heldout_elbo[:2])
    with pytest.raises(ReportError, match=r"^z=2: the training logs of its seeds cover different epochs"):
        mean_curve([one, short])


def test_nll_vs_zdim_draws_the_seed_means_95_percent_interval_or_else_the_standard_error() -> None:
    """Three seeds a cell: bars from the cell's `_lo` to `_hi` (report/seeds.py); one seed: ± the s.e. over images."""
    half = 4.302653 * 0.3 / math.sqrt(3)  # t_{0.975, 2} sd / sqrt(n): sd 0.3 over 3 seeds
    seeded = [{"model": "vae", "zdim": z, "n_images": 500, "k": 100, "neg_elbo": v + 4.0, "iwae_nll": v,
               "iwae_nll_se": 0.45, **{f"{k}_{s}": x for k, m in (("neg_elbo", v + 4.0), ("iwae_nll", v))
                                         for s, x in (("n", 3), ("lo", m - half), ("hi", m + half))}}
              for z, v in ((2, 136.0), (5, 110.0))]
    single = [{k: v for k, v in r.items() if not k.endswith(("_n", "_lo", "_hi"))} for r in seeded]

    def bars(runs: list[dict]) -> dict[str, list[list[float]]]:
        fig = plots.nll_vs_zdim(runs, [])
        out = {}
        for c in fig.axes[0].containers:  # one ErrorbarContainer per curve: (line, caps, (bar segments,))
            segs = c.lines[2][0].get_segments() if c.lines[2] else []
            out[c.get_label()] = [float(y) for seg in segs for y in (seg[0][1], seg[1][1])]  # (low, high) per point
        return out

    got = bars(seeded)
    assert got["VAE IWAE NLL -log p(x) (k=100), mean of 3 seeds ± 95 % interval"] == pytest.approx(
        [136.0 - half, 136.0 + half, 110.0 - half, 110.0 + half], abs=1e-9)
    assert got["VAE test -ELBO, mean of 3 seeds ± 95 % interval"] == pytest.approx(
        [140.0 - half, 140.0 + half, 114.0 - half, 114.0 + half], abs=1e-9)
    got = bars(single)
    assert got["VAE IWAE NLL -log p(x) (k=100) ± s.e."] == pytest.approx([135.55, 136.45, 109.55, 110.45])
    assert got["VAE test -ELBO"] == []  # no s.e. of the -ELBO is drawn, as before seeds


# ---------------------------------------------------------------- the offline HTML page


def test_html_page_holds_the_tables_the_figures_and_the_provenance(built, grid) -> None:
    import base64
    import re

    where, written = built
    page = (where / "metrics" / "report.html").read_text()
    assert where / "metrics" / "report.html" in written
    assert not re.search(r"(src|href)=\"(?!data:)", page) and "http://" not in page and "https://" not in page
    pngs = re.findall(r'src="data:image/png;base64,([^"]+)"', page)
    figures = [*(where / "plots").glob("*.png"), *grid["figures"].rglob("*.png")]
    assert len(pngs) == len(figures) == len(EXPECTED_PNGS) + len(VARIANT_PNGS)
    # every embedded figure is one of the PNGs the two stages wrote, byte for byte
    assert sorted(base64.b64decode(p) for p in pngs) == sorted(f.read_bytes() for f in figures)
    table = (where / "metrics" / "table.md").read_text()
    for row in [ln for ln in table.splitlines() if ln.startswith("| VAE |") or ln.startswith("| CVAE |")]:
        first_cells = [c.strip() for c in row.split("|")[1:4]]
        assert f"<td>{first_cells[2]}</td>" in page.replace("&amp;", "&")  # the test -ELBO cell of each row
    for ref in REFERENCES:
        assert ref.nll in page
    for key in ("report code sha256", "code of each number", "data manifest sha256", "torch", "MKL reproducibility mode", "CPU"):
        assert f"<td>{key}</td>" in page
    assert "train:" in page and "epochs: 2" in page  # the params it was built with


def _chromium() -> str | None:
    import shutil as sh

    return sh.which("chromium") or sh.which("chromium-browser")


@pytest.mark.slow
@pytest.mark.skipif(_chromium() is None, reason="needs Debian's chromium (.ci/run installs it)")
def test_html_page_opens_offline_in_headless_chromium_with_every_figure_loaded(built, tmp_path) -> None:
    import re
    import subprocess

    where, _ = built
    page = (where / "metrics" / "report.html").read_text()
    # a probe the test adds to a copy (the page itself has no script): after load, how many images decoded
    probe = ("<script>window.addEventListener('load',()=>{const i=[...document.images];"
             "document.title='loaded '+i.filter(x=>x.complete&&x.naturalWidth>0).length+' of '+i.length;});"
             "window.addEventListener('error',e=>{document.title='error '+e.message;},true);</script>")
    copy = tmp_path / "report.html"  # a folder with nothing else in it: the page must not need its neighbours
    copy.write_text(page.replace("</body>", probe + "</body>"))
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=10000"]
    dom = subprocess.run([_chromium(), *flags, "--dump-dom", copy.as_uri()], capture_output=True, text=True,
                         timeout=120)
    title = re.search(r"<title>(.*?)</title>", dom.stdout)
    n = len(re.findall(r"<img ", page))
    assert title and title.group(1) == f"loaded {n} of {n}", (title and title.group(1), dom.stderr[-1500:])
    shot = tmp_path / "shot.png"
    subprocess.run([_chromium(), *flags, "--window-size=1280,2400", f"--screenshot={shot}", copy.as_uri()],
                   capture_output=True, text=True, timeout=120)
    assert shot.exists() and shot.stat().st_size > 20_000  # a rendered page, not a blank one


def test_the_report_hashes_the_code_it_ran_not_every_file_in_the_package() -> None:
    # A module that the report stage does not import (e.g. vaebench/grid/stagegraph.py) must not change the
    # report's bytes, or a forced re-run would disagree with a committed report that DVC calls up to date.
    code = ("import json; import vaebench.stages.report; from vaebench.report.html import loaded_sources, sources_sha256;"
            "f = loaded_sources(); print(json.dumps([[str(p) for p in f], sources_sha256(f)]))")
    files, digest = json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                              check=True).stdout)
    package = Path(vaebench.__file__).resolve().parent
    names = {Path(f).resolve().relative_to(package).as_posix() for f in files}
    assert {"report/build.py", "report/html.py", "stages/report.py", "__init__.py", "report/__init__.py"} <= names
    assert "grid/stagegraph.py" not in names and "cli.py" not in names
    assert "run/fit.py" not in names  # the training code's hashes are in dvc.lock, per stage
    h = hashlib.sha256()  # by hand: path inside the package, NUL, bytes, NUL, in path order
    for name in sorted(names):
        h.update(name.encode() + b"\0" + (package / name).read_bytes() + b"\0")
    assert digest == h.hexdigest()
