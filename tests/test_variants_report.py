"""The report's variant products, from inputs written by hand (tests/handmade_runs.py): no training, and every
number in the outputs checked against the one chosen there."""

from __future__ import annotations

import base64
import csv
import json
import math
import re
import shutil
import statistics
from pathlib import Path

import pytest
from matplotlib.image import imread

import handmade_runs as hm
from vaebench import io as vio
from vaebench.core.variants import PLAIN, Variant
from vaebench.config import params_from_dict, run_name
from vaebench.errors import ReportError
from vaebench.run.drawing import DPI, figure_names
from vaebench.report.references import VARIANT_COMPARISON_NOTE, VARIANT_REFERENCES
from vaebench.report.build import build_report
from vaebench.report.inputs import QUAD_KEYS
from vaebench.report.variant_plots import nll_by_family, rate_distortion
from vaebench.report.variants import VARIANT_COLUMNS, reference_vae, setting

GRID_FILES = ("metrics/table.md", "metrics/table.csv", "metrics/nll_by_zdim.csv", "plots/nll_vs_zdim.png",
              "plots/training_curves.png", "plots/active_units.png")
VARIANT_RUNS = tuple(hm.PARAMS["variants"]["runs"])
SEEDS = tuple(hm.PARAMS["grid"]["seeds"])  # (0, 1, 2): every cell is three runs, `vae-20-0`, `vae-20-1`, `vae-20-2`
GRID_CELLS = [(m, z) for m in hm.PARAMS["grid"]["models"] for z in hm.PARAMS["grid"]["zdims"]]
# the seeds' offsets -0.3, 0, +0.3 (tests/handmade_runs.py): a mean of NUMBERS' value, a training-seed sd of
# sqrt((0.09 + 0 + 0.09) / 2) = 0.3, and a 95 % t interval of the mean of +- t_{0.975, 2} 0.3 / sqrt(3)
T_975_2, T_975_4 = 4.302653, 2.776445  # Student t quantiles (tables: 4.303 and 2.776)
SD = 0.3
HALF = T_975_2 * SD / math.sqrt(3)  # 0.7452


def _build(p, inputs: dict[str, Path], where: Path, seeded: bool = True) -> list[Path]:
    return build_report(p, inputs["runs"], inputs["logs"], inputs["figures"], inputs["data"], where / "metrics",
                        where / "plots", inputs["exact"], seeded=seeded)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict[str, Path]:
    """The grid's and the variants' files, as the stages leave them (the exact stage without a quadrature), one
    run per training seed."""
    return hm.write_inputs(tmp_path_factory.mktemp("in"), hm.params())


@pytest.fixture(scope="module")
def built(tmp_path_factory, inputs) -> tuple[Path, list[Path]]:
    where = tmp_path_factory.mktemp("with")
    return where, _build(hm.params(), inputs, where)


@pytest.fixture(scope="module")
def plain(tmp_path_factory, inputs) -> Path:
    """The same inputs reported with `variants: {defs: {}, runs: []}`: the variant files lie there unread."""
    where = tmp_path_factory.mktemp("without")
    _build(hm.params(variants=False), inputs, where)
    return where


def _csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


# ---------------------------------------------------------------- the table


def test_variants_csv_puts_each_run_beside_the_vae_of_its_latent_size(built) -> None:
    where, _ = built
    rows = _csv(where / "metrics" / "variants.csv")
    assert list(rows[0]) == list(VARIANT_COLUMNS)
    # by size; the grid's VAE first where the grid has that size (it has no z = 1); then variants.runs' order
    # Gaussian runs by latent size, each led by the grid's VAE of that size; the categorical ones after them
    assert [r["run"] for r in rows] == ["vae-2", "denoise-2", "vae-20", "beta4-20", "iwae5-20", "denoise-20",
                                        "cat10-1", "cat10-2"]
    by_run = {r["run"]: r for r in rows}
    for run, r in by_run.items():
        model, size = run.rsplit("-", 1)
        neg_elbo, se, iwae, iwae_se, kl, active = hm.NUMBERS[model, int(size)]
        # each number the mean over the three seeds: NUMBERS' own (the offsets cancel)
        assert (float(r["neg_elbo"]), float(r["neg_elbo_se"]), float(r["iwae_nll"]), float(r["iwae_nll_se"])) == \
            (neg_elbo, se, iwae, iwae_se), run
        assert float(r["active_units"]) == active and int(r["k"]) == 100 and int(r["n_images"]) == hm.N_IMAGES
        # rate and distortion add up to the -ELBO, for the VAE rows too (whose files do not hold them)
        assert float(r["rate"]) == kl and float(r["distortion"]) == pytest.approx(neg_elbo - kl, abs=1e-9), run
        # beside each, its training-seed sd, n and 95 % interval: the -ELBO, the IWAE NLL and the distortion
        # carry the offsets (sd 0.3), the rate (the KL) does not (sd 0), for the VAE rows too
        assert int(r["n_seeds"]) == 3, run
        for key, value, sd in (("neg_elbo", neg_elbo, SD), ("iwae_nll", iwae, SD), ("rate", kl, 0.0),
                               ("distortion", neg_elbo - kl, SD)):
            half = T_975_2 * sd / math.sqrt(3)
            assert float(r[f"{key}_train_sd"]) == sd and int(r[f"{key}_n"]) == 3, (run, key)
            assert float(r[f"{key}_lo"]) == pytest.approx(value - half, abs=1e-4), (run, key)
            assert float(r[f"{key}_hi"]) == pytest.approx(value + half, abs=1e-4), (run, key)
    assert (by_run["vae-20"]["rate"], by_run["vae-20"]["distortion"]) == ("25.0", "75.0")
    assert (by_run["vae-20"]["iwae_nll_lo"], by_run["vae-20"]["iwae_nll_hi"]) == ("94.2548", "95.7452")
    assert [by_run[r]["setting"] for r in ("vae-20", "beta4-20", "iwae5-20", "denoise-20", "cat10-2")] == [
        "the VAE (grid run)", "beta=4", "objective=iwae, k=5", "noise=0.2", "categorical K=10, tau 1->0.5"]
    # exact NLL: the quadrature of a 2-D Gaussian, the enumeration of a categorical latent, none at z = 20
    assert [by_run["vae-2"][c] for c in ("exact_method", "exact_nll", "exact_nll_se", "iwae_gap_to_exact")] == [
        "quadrature", "135.0", "0.44", "1.0"]
    assert [by_run["cat10-2"][c] for c in ("exact_method", "exact_nll", "exact_states", "iwae_gap_to_exact",
                                           "latent", "size", "classes")] == [
        "enumeration", "168.5", "100", "1.5", "categorical", "2", "10"]
    assert all(by_run[r]["exact_nll"] == "" and by_run[r]["exact_method"] == "" for r in ("vae-20", "beta4-20"))
    # the restoration: the denoising run's only
    assert [by_run["denoise-20"][c] for c in ("restore_noise", "restore_nll", "restore_nll_se", "restore_nll_clean")] \
        == ["0.2", "88.0", "0.4", "80.0"]
    assert all(r["restore_nll"] == "" for run, r in by_run.items() if not run.startswith("denoise-"))
    # the exact NLL's spread is its source's: the quadrature's (the same 135.0 in every seed), the enumeration's
    assert [by_run["vae-2"][f"exact_nll_{s}"] for s in ("train_sd", "n", "lo", "hi")] == ["0.0", "3", "135.0", "135.0"]
    assert [by_run["cat10-2"][f"exact_nll_{s}"] for s in ("train_sd", "n")] == ["0.0", "3"]
    assert all(by_run[r]["exact_nll_n"] == "" for r in ("vae-20", "beta4-20"))


def test_variants_md_has_the_rows_the_published_points_and_what_they_compare_to(built) -> None:
    where, _ = built
    md = (where / "metrics" / "variants.md").read_text()
    body = {line.split("|")[1].strip(): line for line in md.splitlines() if line.startswith("| ")
            and line.split("|")[1].strip() in ("vae-2", "vae-20", *VARIANT_RUNS)}
    assert set(body) == {"vae-2", "vae-20", *VARIANT_RUNS}
    # every number the mean over the 3 seeds ± their sd (3), then the s.e. over images where the run has one
    assert "| 2×10 | 180.00 ± 0.30 (3); s.e. 0.70 | 170.00 ± 0.30 (3); s.e. 0.70 (100) | 168.50 ± 0.00 (3); " \
           "s.e. 0.65 (enumeration, 100 states) | 1.50 | 4.00 ± 0.00 (3) | 176.00 ± 0.30 (3) | 2 / 2 |  |" \
        in body["cat10-2"]
    # the grid's VAE: its rate (the KL) and distortion (-ELBO minus KL) with their seeds' spread too
    assert body["vae-2"] == "| vae-2 | the VAE (grid run) | 2 | 140.00 ± 0.30 (3); s.e. 0.50 | 136.00 ± 0.30 (3); " \
        "s.e. 0.45 (100) | 135.00 ± 0.00 (3); s.e. 0.44 (quadrature) | 1.00 | 6.00 ± 0.00 (3) | 134.00 ± 0.30 (3) " \
        "| 2 / 2 |  |"
    assert body["denoise-20"].endswith(
        "| 9 / 20 | 88.00 ± 0.00 (3); s.e. 0.40 (noise 0.2; clean input 80.00 ± 0.35) |")
    assert "Each row is the mean over 3 training seeds ± the training-seed sd (n)" in md
    # each published row names the rows of ours that are its family
    refs = [line for line in md.splitlines() if line.startswith(f"| {VARIANT_REFERENCES[0].source}")]
    assert [line.split("|")[3:6] for line in refs] == [
        [" VAE (k=1) ", " 86.76 ", " vae-2, vae-20 "],
        [" IWAE, k=5 ", " 85.54 ", " iwae5-20 "],
        [" IWAE, k=50 ", " 84.78 ", " none here (a variant with objective=iwae, k=50 would) "]]
    # the difference IWAE minus VAE: the paper's, and ours at the same latent size (93.8 - 95.0)
    assert "IWAE, k=5 minus VAE (k=1): -1.22 in the paper" in md
    assert "iwae5-20 minus vae-20: -1.20 in ours (IWAE NLL)" in md
    assert "IWAE, k=50 minus VAE (k=1): -1.98 in the paper" in md and VARIANT_COMPARISON_NOTE in md


def _links(md: str) -> list[str]:
    return [line[line.index("(") + 1:-1] for line in md.splitlines() if line.startswith("![")]


def test_variants_md_and_table_md_link_only_committed_figures(built, inputs) -> None:
    """The per-run figures are DVC outputs (plots/runs/), absent from a fresh clone: the committed Markdown
    links none of them, only the report's own figures, which git holds."""
    where, _ = built
    md = (where / "metrics" / "variants.md").read_text()
    assert [Path(link).name for link in _links(md)] == ["rate_distortion.png", "nll_by_family.png"]
    table = (where / "metrics" / "table.md").read_text()
    assert [Path(link).name for link in _links(table)] == ["nll_vs_zdim.png", "training_curves.png", "active_units.png"]
    for text in (md, table):
        assert all((where / "metrics" / link).resolve().is_file() for link in _links(text))
        assert all((where / "metrics" / link).resolve().parent == where / "plots" for link in _links(text))
        assert "### " not in text and str(inputs["figures"].name) + "/" not in text
        for f in inputs["figures"].rglob("*.png"):  # not even by name
            assert f.name not in text, f


# ---------------------------------------------------------------- summary.json and all_runs.json


def test_summary_gains_the_variant_keys(built, plain) -> None:
    where, _ = built
    summary = json.loads((where / "metrics" / "summary.json").read_text())
    # the seeds' means, each seed-combined metric with its training-seed sd and n: 0.3 where the offsets apply,
    # 0 for the KL (= the rate) and the active units, which every seed shares
    spread = {f"{k}_{s}": v for k, sd in (("test_elbo", SD), ("neg_elbo", SD), ("iwae_nll", SD), ("kl", 0.0),
                                          ("active_units", 0.0), ("rate", 0.0), ("distortion", SD))
              for s, v in (("train_sd", sd), ("n", 3))}
    assert summary["beta4"] == {"z20": {"test_elbo": -104.0, "neg_elbo": 104.0, "iwae_nll": 99.0, "iwae_nll_se": 0.3,
                                        "iwae_nll_eval_sd": 0.01, "kl": 12.5, "active_units": 5, "rate": 12.5,
                                        "distortion": 91.5, **spread}}
    cat = summary["cat10"]["z2"]
    assert {k: cat[k] for k in ("exact_nll", "exact_nll_se", "iwae_gap_to_exact", "rate", "distortion")} == {
        "exact_nll": 168.5, "exact_nll_se": 0.65, "iwae_gap_to_exact": 1.5, "rate": 4.0, "distortion": 176.0}
    assert not any(k.startswith("quad") for k in cat) and set(summary["cat10"]) == {"z1", "z2"}
    assert {k: summary["denoise"]["z20"][k] for k in ("restore_nll", "restore_nll_se", "restore_nll_clean")} == {
        "restore_nll": 88.0, "restore_nll_se": 0.4, "restore_nll_clean": 80.0}
    assert "restore_nll" not in summary["iwae5"]["z20"]
    # the grid's keys are exactly those of a report without variants
    grid = json.loads((plain / "metrics" / "summary.json").read_text())
    assert set(summary) == set(grid) | {"beta4", "iwae5", "denoise", "cat10"}
    assert {m: summary[m] for m in grid} == grid
    # the exact stage's many-sample IWAE, its gap measured to the run's own quadrature (the stage has none)
    assert grid["vae"]["z2"]["iwae_gap_to_quad_exact_k"] == round(hm.EXACT_K_IWAE["vae"] - hm.QUAD["vae", 2], 4)
    # which runs only the seeds of exact.seeds (0): its n says so, and one seed has no sd (left out, not null)
    assert grid["vae"]["z2"]["iwae_nll_exact_k_n"] == 1 and "iwae_nll_exact_k_train_sd" not in grid["vae"]["z2"]
    assert None not in (v for m in summary.values() for leaf in m.values() for v in leaf.values())


def test_all_runs_json_holds_the_variant_files_whole(built, inputs) -> None:
    where, _ = built
    copies = json.loads((where / "metrics" / "all_runs.json").read_text())
    copy = copies["runs"]
    # every seed's file, under its run's name: 4 grid cells and 6 variant runs, 3 seeds each
    assert sorted(copy) == sorted(p.stem for p in inputs["runs"].glob("*.json"))
    assert len(copy) == (len(GRID_CELLS) + len(VARIANT_RUNS)) * len(SEEDS)
    for seed in SEEDS:
        assert copy[f"cat10-2-{seed}"] == vio.read_json(inputs["runs"] / f"cat10-2-{seed}.json")
        assert copy[f"cat10-2-{seed}"]["train_seed"] == seed
    assert copy["vae-20-2"]["iwae_nll"] == 95.0 + 0.3
    # the exact stage's: the seeds of exact.seeds only
    assert sorted(copies["exact"]) == ["cvae-2-0", "vae-2-0"]


# ---------------------------------------------------------------- without variants


def test_without_variants_the_grid_outputs_are_those_of_a_grid_only_report(built, plain, tmp_path) -> None:
    """The grid's tables and figures do not change with variants beside them; without any, the variant files
    still exist (dvc.yaml declares them) and say so; no `variants` key at all is the same as an empty one."""
    where, _ = built
    for f in GRID_FILES:
        assert (where / f).read_bytes() == (plain / f).read_bytes(), f
    md = (plain / "metrics" / "variants.md").read_text()
    assert "No variant runs" in md and "| run |" not in md
    assert (plain / "metrics" / "variants.csv").read_text() == ",".join(VARIANT_COLUMNS) + "\n"
    assert json.loads((plain / "metrics" / "all_runs.json").read_text())["runs"].keys() == {
        run_name(m, z, seed) for m, z in GRID_CELLS for seed in SEEDS}
    d = {k: v for k, v in hm.PARAMS.items() if k != "variants"}
    files = hm.write_inputs(tmp_path / "in", hm.params(variants=False))
    a, b = tmp_path / "a", tmp_path / "b"
    written = _build(params_from_dict(d), files, a)
    _build(hm.params(variants=False), files, b)
    for path in written:
        assert path.read_bytes() == (b / path.relative_to(a)).read_bytes(), path.name


# ---------------------------------------------------------------- figures


def test_the_variant_figures_have_their_size_and_the_same_bytes_on_a_second_build(built, inputs, tmp_path) -> None:
    where, first = built
    # (rows, columns) at the report's dpi: 10 x 6.5 in; 8 in per panel, the categorical one a second panel
    shapes = {"rate_distortion.png": (650, 1000), "nll_by_family.png": (600, 1600)}
    for name, shape in shapes.items():
        img = imread(where / "plots" / name)
        assert img.shape == (*shape, 4) and (img[..., :3].min(-1) < 0.9).mean() > 0.02, name
    assert shapes["rate_distortion.png"] == (round(6.5 * DPI), round(10 * DPI))
    second = _build(hm.params(), inputs, tmp_path)
    assert [p.relative_to(tmp_path) for p in second] == [p.relative_to(where) for p in first]
    for a, b in zip(first, second):
        assert a.read_bytes() == b.read_bytes(), a.name


def _embedded(page: str) -> list[bytes]:
    return [base64.b64decode(p) for p in re.findall(r'src="data:image/png;base64,([^"]+)"', page)]


def test_the_html_page_embeds_each_cells_first_seed_figures_and_the_reports(built, inputs) -> None:
    """report.html shows what the Markdown may not link: each cell's figures, of its first training seed (the
    others' lie beside them in plots/runs/), for the grid's cells and the variants' alike."""
    where, _ = built
    page = (where / "metrics" / "report.html").read_text()
    assert "<h1>Variants of the VAE</h1>" in page and "<td>iwae5-20</td>" in page
    assert "<h2>Figures of each run (training seed 0)</h2>" in page
    embedded = _embedded(page)
    first = [f for m, z in GRID_CELLS for f in sorted((inputs["figures"] / run_name(m, z, SEEDS[0])).iterdir())]
    first += [f for run in VARIANT_RUNS for f in sorted((inputs["figures"] / f"{run}-{SEEDS[0]}").iterdir())]
    assert "### beta4-20-0: beta=4" not in page and "<h3>beta4-20-0: beta=4</h3>" in page
    ours = [where / "plots" / n for n in ("nll_vs_zdim.png", "training_curves.png", "active_units.png",
                                          "rate_distortion.png", "nll_by_family.png")]
    # each exactly once, and nothing else: no figure of seeds 1 and 2
    assert sorted(embedded) == sorted(f.read_bytes() for f in [*first, *ours])
    # vae-2, vae-20, cvae-2, cvae-20; then beta4-20, iwae5-20, denoise-20 (restorations), denoise-2, cat10-1, cat10-2
    assert len(first) == (4 + 2 + 4 + 2) + (2 + 2 + 3 + 5 + 2 + 2)
    others = [f for f in inputs["figures"].rglob("*.png") if not f.parent.name.endswith(f"-{SEEDS[0]}")]
    assert len(others) == 2 * len(first) and not {f.read_bytes() for f in others} & set(embedded)


def test_the_rate_distortion_line_goes_through_the_vae_at_the_variants_size() -> None:
    def r(model: str, size: int, neg_elbo: float, latent: str = "gaussian") -> dict:
        return {"model": model, "size": size, "latent": latent, "neg_elbo": neg_elbo}

    vae = [r("vae", 2, 140.0), r("vae", 20, 100.0), r("vae", 50, 95.0)]
    assert reference_vae([*vae, r("b", 20, 101.0), r("c", 20, 99.0), r("d", 50, 90.0)])["size"] == 20
    # categorical sizes count no latent dimension; without a Gaussian variant: the VAE of the best ELBO
    assert reference_vae([*vae, r("cat", 2, 180.0, "categorical")])["size"] == 50
    assert reference_vae([*vae, r("b", 7, 101.0)])["size"] == 50  # no VAE of that size in the grid
    assert reference_vae([r("b", 20, 101.0)]) is None
    # no rows at all (a grid without the VAE, no variants): empty but valid figures
    rate_distortion([], None, "no variant runs")
    nll_by_family([], "no variant runs")


# ---------------------------------------------------------------- pieces


def test_the_setting_names_the_pieces_that_differ_from_the_vae() -> None:
    assert setting(PLAIN) == "the VAE's pieces"
    assert setting(Variant(beta=0.5)) == "beta=0.5"
    assert setting(Variant(objective="iwae", k=50, noise=0.1)) == "objective=iwae, k=50; noise=0.1"
    # the temperature is a categorical latent's piece: shown with it, never for a Gaussian one
    assert setting(Variant(latent="categorical", classes=3, tau_start=2.0, tau_end=0.25)) == \
        "categorical K=3, tau 2->0.25"


def test_figure_names_follow_the_figures_stage() -> None:
    assert figure_names("cat10-2", 2, categorical=True) == ["samples_cat10-2.png", "reconstructions_cat10-2.png"]
    assert figure_names("dn-2", 2, restorations=True) == [
        "samples_dn-2.png", "reconstructions_dn-2.png", "restorations_dn-2.png", "latent_dn-2.png", "manifold_dn-2.png"]
    assert figure_names("vae-2", 2) == ["samples_vae-2.png", "reconstructions_vae-2.png", "latent_vae-2.png",
                                        "manifold_vae-2.png"]


# ---------------------------------------------------------------- refusals


@pytest.mark.parametrize(("edit", "message"), [
    # every seed's files are checked, not the first seed's only
    (lambda root: (root / "runs" / "cat10-2-1.json").unlink(),
     r"cat10-2-1\.json: missing run metrics; run `dvc repro evaluate-variant@cat10-2-1`"),
    (lambda root: (root / "figures" / "denoise-20-2" / "restorations_denoise-20.png").unlink(),
     r"denoise-20-2/restorations_denoise-20\.png: missing; run `dvc repro figures-variant@denoise-20-2`"),
    (lambda root: (root / "figures" / "vae-20-1" / "samples_vae-20.png").unlink(),
     r"vae-20-1/samples_vae-20\.png: missing; run `dvc repro figures@vae-20-1`"),
    (lambda root: (root / "logs" / "cvae-2-2" / "plots" / "metrics" / "train" / "elbo.tsv").unlink(),
     r"cvae-2-2/plots/metrics/train/elbo\.tsv: missing; run `dvc repro train@cvae-2-2`"),
    (lambda root: _drop(root / "runs" / "denoise-20-0.json", "restore_nll"),
     r"denoise-20-0\.json: no key 'restore_nll'; run `dvc repro evaluate-variant@denoise-20-0`"),
    (lambda root: _drop(root / "runs" / "beta4-20-2.json", "kl"),
     r"beta4-20-2\.json: no key 'kl'; run `dvc repro evaluate-variant@beta4-20-2`"),
    (lambda root: _drop(root / "runs" / "cat10-1-0.json", "exact_states"),
     r"cat10-1-0\.json: no key 'exact_states'"),
    (lambda root: vio.write_json(root / "runs" / "iwae5-20-1.json",
                                 {**vio.read_json(root / "runs" / "iwae5-20-1.json"), "n_images": 7}),
     r"iwae5-20-1\.json: scored on 7 test images"),
    (lambda root: _drop(root / "runs" / "vae-2-0.json", *QUAD_KEYS),
     r"exact/vae-2-0\.json: evaluate@vae-2-0 has no quadrature to measure its gap to; run `dvc repro evaluate@vae-2-0`"),
    # a seed's file copied under another seed's name: the seed it records is not its name's
    (lambda root: shutil.copy(root / "runs" / "beta4-20-0.json", root / "runs" / "beta4-20-1.json"),
     r"beta4-20-1\.json: holds training seed 0, not 1; run `dvc repro evaluate-variant@beta4-20-1`"),
    # the seeds of one cell scored in different settings (one re-run with another eval.k): not averaged
    (lambda root: vio.write_json(root / "runs" / "vae-20-2.json", {**vio.read_json(root / "runs" / "vae-20-2.json"),
                                                                  "k": 200}),
     r"k: the seeds of vae z=20 disagree \(\[100, 100, 200\]\)"),
    # a seed's training log of other epochs: its curve cannot be averaged with the others'
    (lambda root: (root / "logs" / "vae-2-1" / "plots" / "metrics" / "heldout" / "elbo.tsv").write_text(
        "step\telbo\n0\t-180.0\n"),
     r"z=2: the training logs of its seeds cover different epochs"),
])
def test_a_missing_or_stale_variant_input_is_refused_before_anything_is_written(inputs, tmp_path, edit, message) -> None:
    root = tmp_path / "in"
    shutil.copytree(inputs["runs"].parent, root)
    edit(root)
    copy = {k: root / v.relative_to(inputs["runs"].parent) for k, v in inputs.items()}
    with pytest.raises(ReportError, match=message):
        _build(hm.params(), copy, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def _drop(path: Path, *keys: str) -> None:
    vio.write_json(path, {k: v for k, v in vio.read_json(path).items() if k not in keys})



def test_a_def_at_the_vaes_pieces_is_reported_not_refused(tmp_path) -> None:
    """beta: 1 in a beta sweep: score() writes no rate/distortion for it (it is the VAE's model), and the
    report derives them from its kl and -ELBO, as for the grid's VAE rows, instead of asking for a re-run
    that could never add them."""
    d = {**hm.PARAMS, "variants": {"defs": {**hm.PARAMS["variants"]["defs"], "beta1": {"beta": 1.0}},
                                   "runs": [*hm.PARAMS["variants"]["runs"], "beta1-20"]}}
    p = params_from_dict(d)
    assert p.variant("beta1").is_plain
    inputs = hm.write_inputs(tmp_path / "in", p)
    assert not any("rate" in json.loads((inputs["runs"] / f"beta1-20-{seed}.json").read_text()) for seed in SEEDS)
    _build(p, inputs, tmp_path / "out")
    rows = {r["run"]: r for r in _csv(tmp_path / "out" / "metrics" / "variants.csv")}
    neg_elbo, _, _, _, kl, _ = hm.NUMBERS["beta1", 20]
    assert rows["beta1-20"]["setting"] == "the VAE's pieces" and rows["vae-20"]["setting"] == "the VAE (grid run)"
    assert float(rows["beta1-20"]["rate"]) == kl
    assert float(rows["beta1-20"]["distortion"]) == pytest.approx(neg_elbo - kl, abs=1e-9)
    # and their seeds' spread, from each seed's own KL and -ELBO: the KL is every seed's, the -ELBO is not
    assert [rows["beta1-20"][k] for k in ("rate_train_sd", "rate_n", "distortion_train_sd", "distortion_n")] == [
        "0.0", "3", "0.3", "3"]


# ---------------------------------------------------------------- training seeds: cells, not runs


def _row(md: str, lead: str) -> str:
    (line,) = [line for line in md.splitlines() if line.startswith(lead)]
    return line


def test_table_md_prints_each_cell_as_its_seeds_mean_sd_and_n_then_the_se(built) -> None:
    where, _ = built
    md = (where / "metrics" / "table.md").read_text()
    assert "Each cell is trained with 3 training seeds (0, 1, 2)" in md
    # NUMBERS' -ELBO 100.0 (se 0.3), IWAE 95.0 (se 0.3) as means of 99.7, 100.0, 100.3 and 94.7, 95.0, 95.3
    assert _row(md, "| VAE | 20 |") == ("| VAE | 20 | 100.00 ± 0.30 (3); s.e. 0.30 | 95.00 ± 0.30 (3); s.e. 0.30 "
                                       "(100; eval. sd 0.010) |  |  | 10 / 20 |  |")
    # the CVAE's -log p(x) too (IWAE + 8 in every seed); the quadrature is every seed's 116.5: sd 0
    assert _row(md, "| CVAE | 2 |").startswith(
        "| CVAE | 2 | 120.00 ± 0.30 (3); s.e. 0.40 | 117.00 ± 0.30 (3); s.e. 0.40 (100; eval. sd 0.010) "
        "| 125.00 ± 0.30 (3); s.e. 0.40 (10) | 116.50 ± 0.00 (3); s.e. 0.39 (IWAE gap 0.50 at k=100, 0.30 at k=5000 ")
    rows = {(r["model"], r["zdim"]): r for r in _csv(where / "metrics" / "table.csv")}
    vae = rows["vae", "20"]
    assert (vae["n_seeds"], vae["iwae_nll"], vae["iwae_nll_train_sd"], vae["iwae_nll_n"]) == ("3", "95.0", "0.3", "3")
    assert float(vae["iwae_nll_lo"]) == pytest.approx(95.0 - HALF, abs=1e-4)
    assert float(vae["iwae_nll_hi"]) == pytest.approx(95.0 + HALF, abs=1e-4)
    assert float(vae["neg_elbo_lo"]) == pytest.approx(100.0 - HALF, abs=1e-4)
    assert float(rows["cvae", "20"]["iwae_nll_marginal_hi"]) == pytest.approx(94.0 + HALF, abs=1e-4)


def test_summary_json_holds_each_cells_seed_mean_with_its_training_sd_and_n(built) -> None:
    where, _ = built
    summary = json.loads((where / "metrics" / "summary.json").read_text())
    vae = summary["vae"]["z20"]
    assert (vae["iwae_nll"], vae["iwae_nll_train_sd"], vae["iwae_nll_n"]) == (95.0, 0.3, 3)
    assert (vae["neg_elbo"], vae["neg_elbo_train_sd"], vae["neg_elbo_n"]) == (100.0, 0.3, 3)
    assert (vae["test_elbo"], vae["test_elbo_train_sd"]) == (-100.0, 0.3)
    # an s.e. over images and the evaluation-seed sd are not combined as spreads: no _train_sd of their own
    assert (vae["iwae_nll_se"], vae["iwae_nll_eval_sd"]) == (0.3, 0.01)
    assert not any(k.startswith(("iwae_nll_se_", "iwae_nll_eval_sd_")) for k in vae)
    cvae = summary["cvae"]["z20"]
    assert (cvae["iwae_nll_marginal"], cvae["iwae_nll_marginal_train_sd"], cvae["iwae_nll_marginal_n"]) == (94.0, 0.3, 3)


@pytest.fixture(scope="module")
def unseeded(tmp_path_factory) -> tuple[dict[str, Path], Path]:
    """The literature's layout: one run per cell, named without a seed (`vae-2`), reported with seeded=False."""
    files = hm.write_inputs(tmp_path_factory.mktemp("in_unseeded"), hm.params(), seeded=False)
    where = tmp_path_factory.mktemp("unseeded")
    _build(hm.params(), files, where, seeded=False)
    return files, where


def test_the_unseeded_layout_reports_one_run_per_cell(unseeded) -> None:
    files, where = unseeded
    m = where / "metrics"
    names = {run_name(mo, z) for mo, z in GRID_CELLS} | set(VARIANT_RUNS)
    assert {p.stem for p in files["runs"].glob("*.json")} == names
    copies = json.loads((m / "all_runs.json").read_text())
    assert set(copies["runs"]) == names and set(copies["exact"]) == {"vae-2", "cvae-2"}
    # one run: `value ± s.e.`, as before seeds were an axis; the exact stage's numbers beside its quadrature
    md = (m / "table.md").read_text()
    assert "Each cell is one training run: ± one standard error over images." in md and "(3)" not in md
    assert _row(md, "| VAE | 20 |") == "| VAE | 20 | 100.00 ± 0.30 | 95.00 ± 0.30 (100; eval. sd 0.010) |  |  | 10 / 20 |  |"
    assert "135.00 ± 0.44 (IWAE gap 1.00 at k=100, 0.40 at k=5000 with evaluation-seed sd 0.003;" in _row(md, "| VAE | 2 |")
    assert _row((m / "variants.md").read_text(), "| beta4-20 |") == (
        "| beta4-20 | beta=4 | 20 | 104.00 ± 0.30 | 99.00 ± 0.30 (100) |  |  | 12.50 | 91.50 | 5 / 20 |  |")
    summary = json.loads((m / "summary.json").read_text())
    vae = summary["vae"]["z20"]
    assert (vae["iwae_nll"], vae["iwae_nll_n"]) == (95.0, 1) and "iwae_nll_train_sd" not in vae
    assert None not in (v for f in summary.values() for leaf in f.values() for v in leaf.values())
    assert all(r["n_seeds"] == "1" and r["iwae_nll_train_sd"] == "" for r in _csv(m / "table.csv"))
    # every figure of every cell on the page, under a heading that names no seed
    page = (m / "report.html").read_text()
    assert "<h2>Figures of each run</h2>" in page
    assert sorted(_embedded(page)) == sorted([*(f.read_bytes() for f in files["figures"].rglob("*.png")),
                                              *(f.read_bytes() for f in (where / "plots").glob("*.png"))])
    # no difference resolves on one seed a side: no interval to form
    rows = _csv(m / "comparisons.csv")
    assert rows and all(r["lo"] == "" and r["verdict"] == "not resolved (n = 1)" for r in rows)


def test_a_layout_reported_as_the_other_is_refused_by_the_first_file_it_lacks(inputs, unseeded, tmp_path) -> None:
    files, _ = unseeded
    with pytest.raises(ReportError, match=r"runs/vae-2-0\.json: missing run metrics; run `dvc repro evaluate@vae-2-0`"):
        _build(hm.params(), files, tmp_path / "a")
    with pytest.raises(ReportError, match=r"runs/vae-2\.json: missing run metrics; run `dvc repro evaluate@vae-2`"):
        _build(hm.params(), inputs, tmp_path / "b", seeded=False)
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_comparisons_give_each_difference_its_interval_and_verdict(built) -> None:
    where, written = built
    m = where / "metrics"
    assert {m / "comparisons.md", m / "comparisons.csv"} <= set(written)
    rows = {(r["kind"], r["a"], r["b"], r["metric"]): r for r in _csv(m / "comparisons.csv")}
    # beta4 against the VAE at z = 20: 99.0 against 95.0, the same offset in both for each seed, so the paired
    # differences are 4.0 in every seed (to rounding): an interval of width ~0 about +4.0, resolved
    beta = rows["variant vs VAE", "beta4 z=20", "VAE z=20", "iwae_nll"]
    d = [(99.0 + o) - (95.0 + o) for o in hm.SEED_OFFSET.values()]
    half = T_975_2 * statistics.stdev(d) / math.sqrt(len(d))
    assert (float(beta["mean_a"]), float(beta["mean_b"]), float(beta["diff"])) == (99.0, 95.0, 4.0)
    assert float(beta["lo"]) == pytest.approx(statistics.fmean(d) - half, abs=1e-4) == pytest.approx(4.0, abs=1e-4)
    assert float(beta["hi"]) == pytest.approx(statistics.fmean(d) + half, abs=1e-4)
    assert (beta["method"], beta["df"], beta["n_a"], beta["n_b"], beta["p_improve"]) == (
        "paired by seed", "2.0", "3", "3", "0.0")
    assert beta["verdict"] == "VAE z=20 lower by 4.00 (resolved at n = 3)"
    md = (m / "comparisons.md").read_text()
    assert ("| variant vs VAE | beta4 z=20 | VAE z=20 | iwae_nll | 99.00 | 95.00 | +4.00 [+4.00, +4.00] | 0.00 "
            "| paired by seed | VAE z=20 lower by 4.00 (resolved at n = 3) |") in md
    # Welch's interval of the same pair, a candidate printed beside: sd 0.3 on each side, n = 3: se^2 = 2 (0.09 / 3),
    # df = se^4 / (2 (0.09 / 3)^2 / 2) = 4, width 2 t_{0.975, 4} sqrt(0.06) = 1.36
    welch = 2 * T_975_4 * math.sqrt(2 * SD**2 / 3)
    assert f"| variant vs VAE | paired by seed | Welch {welch:.2f}, paired by seed 0.00 |" in md and f"{welch:.2f}" == "1.36"
    # ours against the thesis's 157 at VAE z = 2 (-ELBO 140.0, sd 0.3 over the seeds): the one-sample t of our
    # mean (2 df), the rule for every row against a published number; beside it, not used, the interval of the
    # VAE family's pooled sd 0.3 on 4 df (two cells, 2 df each; Bartlett cannot reject equal sds that are equal)
    thesis = rows["ours vs thesis", "VAE z=2", "thesis VAE z=2", "neg_elbo"]
    own_half, pooled_half = T_975_2 * SD / math.sqrt(3), T_975_4 * SD / math.sqrt(3)  # 0.7452, 0.4809
    assert (float(thesis["diff"]), thesis["method"], thesis["df"]) == (-17.0, "one-sample t", "2.0")
    assert float(thesis["lo"]) == pytest.approx(-17.0 - own_half, abs=1e-4)
    assert float(thesis["hi"]) == pytest.approx(-17.0 + own_half, abs=1e-4)
    assert float(thesis["pooled_lo"]) == pytest.approx(-17.0 - pooled_half, abs=1e-4)
    assert (float(thesis["pooled_hi"]), thesis["pooled_df"]) == (pytest.approx(-17.0 + pooled_half, abs=1e-4), "4.0")
    assert thesis["verdict"] == "VAE z=2 lower by 17.00 (resolved at n = 3)" and thesis["n_b"] == ""
    assert "| VAE | neg_elbo | 1.000 | 1.0 | 0.30 (4) | yes |" in md
    # the CVAE against the VAE on -log p(x): the CVAE's marginal 94.0 against 95.0
    cvae = rows["CVAE vs VAE", "CVAE z=20", "VAE z=20", "-log p(x) (IWAE)"]
    assert (float(cvae["diff"]), cvae["verdict"]) == (-1.0, "CVAE z=20 lower by 1.00 (resolved at n = 3)")
    # the page shows them
    page = (m / "report.html").read_text()
    assert "<h1>Comparisons: every difference with its 95 % interval</h1>" in page
    assert "<td>VAE z=20 lower by 4.00 (resolved at n = 3)</td>" in page


def test_a_difference_within_the_seeds_noise_is_not_resolved(inputs, tmp_path) -> None:
    """iwae5 z=20 moved to the VAE's 95.0 with other offsets per seed: paired differences 0.6, -0.3, -0.2."""
    root = tmp_path / "in"
    shutil.copytree(inputs["runs"].parent, root)
    copy = {k: root / v.relative_to(inputs["runs"].parent) for k, v in inputs.items()}
    for seed, value in zip(SEEDS, (95.3, 94.7, 95.1)):
        path = copy["runs"] / f"iwae5-20-{seed}.json"
        vio.write_json(path, {**vio.read_json(path), "iwae_nll": value})
    _build(hm.params(), copy, tmp_path / "out")
    rows = {(r["a"], r["metric"]): r for r in _csv(tmp_path / "out" / "metrics" / "comparisons.csv")
            if r["kind"] == "variant vs VAE"}
    row = rows["iwae5 z=20", "iwae_nll"]
    d = [a - (95.0 + o) for a, o in zip((95.3, 94.7, 95.1), hm.SEED_OFFSET.values())]  # 0.6, -0.3, -0.2
    mean, half = statistics.fmean(d), T_975_2 * statistics.stdev(d) / math.sqrt(3)  # 0.0333 +- 1.2254
    assert row["method"] == "paired by seed" and float(row["diff"]) == pytest.approx(mean, abs=1e-4)
    assert float(row["lo"]) == pytest.approx(mean - half, abs=1e-4) and float(row["lo"]) < 0
    assert float(row["hi"]) == pytest.approx(mean + half, abs=1e-4) and float(row["hi"]) > 0
    assert row["verdict"] == "not resolved at n = 3: the interval includes 0"
    assert float(row["p_improve"]) == pytest.approx(2 / 3, abs=1e-4)  # better than the VAE in seeds 1 and 2
    # the other rows of its kind are as before
    assert rows["beta4 z=20", "iwae_nll"]["verdict"] == "VAE z=20 lower by 4.00 (resolved at n = 3)"


# ---------------------------------------------------------------- active units, seed-combined


def test_active_units_print_as_mean_and_training_sd_in_both_tables() -> None:
    """Three seeds with 15, 16 and 16 active units: by hand, mean 47/3 = 15.67 and sd sqrt(1/3) = 0.577, which the
    tables print to 3 and 2 significant digits (not 15.6667); one run prints its count; equal seeds print no sd."""
    from vaebench.report import variants as rv
    from vaebench.report.seeds import combine
    from vaebench.report.tables import units_cell

    def run(units: int, seed: int) -> dict:
        return {"model": "vae", "zdim": 20, "n_images": 100, "neg_elbo": 100.0 + seed, "test_elbo": -100.0 - seed,
                "test_elbo_se": 0.3, "iwae_nll": 95.0 + seed, "iwae_nll_se": 0.3, "k": 5, "kl": 20.0,
                "active_units": units, "train_seed": seed}

    cell = combine([run(15, 0), run(16, 1), run(16, 2)], [0, 1, 2])
    assert math.isclose(cell["active_units"], 47 / 3) and math.isclose(cell["active_units_train_sd"], math.sqrt(1 / 3))
    assert units_cell(cell) == "15.7 ± 0.58"
    r = rv.row(cell, PLAIN)  # the variants table's row: its csv carries the sd, its Markdown cell the rounding
    assert math.isclose(r["active_units_train_sd"], math.sqrt(1 / 3), rel_tol=1e-4) and r["active_units_n"] == 3
    assert rv._cells(r)[9] == "15.7 ± 0.58 / 20"
    assert units_cell(combine([run(12, 0), run(12, 1), run(12, 2)], [0, 1, 2])) == "12"
    assert units_cell(combine([run(12, 0)], [0])) == "12"
