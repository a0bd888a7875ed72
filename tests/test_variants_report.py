"""The report's variant products, from inputs written by hand (tests/handmade_runs.py): no training, and every
number in the outputs checked against the one chosen there."""

from __future__ import annotations

import base64
import csv
import json
import shutil
from pathlib import Path

import pytest
from matplotlib.image import imread

import handmade_runs as hm
from vaebench import io as vio
from vaebench.core.variants import PLAIN, Variant
from vaebench.config import params_from_dict
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


def _build(p, inputs: dict[str, Path], where: Path) -> list[Path]:
    return build_report(p, inputs["runs"], inputs["logs"], inputs["figures"], inputs["data"], where / "metrics",
                        where / "plots", inputs["exact"])


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict[str, Path]:
    """The grid's and the variants' files, as the stages leave them (the exact stage without a quadrature)."""
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
        assert (float(r["neg_elbo"]), float(r["neg_elbo_se"]), float(r["iwae_nll"]), float(r["iwae_nll_se"])) == \
            (neg_elbo, se, iwae, iwae_se), run
        assert int(r["active_units"]) == active and int(r["k"]) == 100 and int(r["n_images"]) == hm.N_IMAGES
        # rate and distortion add up to the -ELBO, for the VAE rows too (whose files do not hold them)
        assert float(r["rate"]) == kl and float(r["distortion"]) == pytest.approx(neg_elbo - kl, abs=1e-9), run
    assert (by_run["vae-20"]["rate"], by_run["vae-20"]["distortion"]) == ("25.0", "75.0")
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


def test_variants_md_has_the_rows_the_published_points_and_what_they_compare_to(built) -> None:
    where, _ = built
    md = (where / "metrics" / "variants.md").read_text()
    body = {line.split("|")[1].strip(): line for line in md.splitlines() if line.startswith("| ")
            and line.split("|")[1].strip() in ("vae-2", "vae-20", *VARIANT_RUNS)}
    assert set(body) == {"vae-2", "vae-20", *VARIANT_RUNS}
    assert "| 2×10 | 180.00 ± 0.70 | 170.00 ± 0.70 (100) | 168.50 ± 0.65 (enumeration, 100 states) | 1.50 | 4.00 " \
           "| 176.00 | 2 / 2 |  |" in body["cat10-2"]
    assert "| 135.00 ± 0.44 (quadrature) | 1.00 | 6.00 | 134.00 | 2 / 2 |" in body["vae-2"]
    assert body["denoise-20"].endswith("| 9 / 20 | 88.00 ± 0.40 (noise 0.2; clean input 80.00 ± 0.35) |")
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


def test_variants_md_links_the_two_figures_and_every_run_figure(built, inputs) -> None:
    where, _ = built
    md = (where / "metrics" / "variants.md").read_text()
    links = [line[line.index("(") + 1:-1] for line in md.splitlines() if line.startswith("![")]
    assert all((where / "metrics" / link).resolve().is_file() for link in links)
    names = [Path(link).name for link in links]
    assert names[:2] == ["rate_distortion.png", "nll_by_family.png"]
    want = [f for run in VARIANT_RUNS for f in hm.figure_files(run, int(run.rsplit("-", 1)[1]),
                                                               run.startswith("cat"), run.startswith("denoise"))]
    assert names[2:] == want and "restorations_denoise-20.png" in want
    assert "### cat10-2: categorical K=10, tau 1->0.5" in md


# ---------------------------------------------------------------- summary.json and all_runs.json


def test_summary_gains_the_variant_keys(built, plain) -> None:
    where, _ = built
    summary = json.loads((where / "metrics" / "summary.json").read_text())
    assert summary["beta4"] == {"z20": {"test_elbo": -104.0, "neg_elbo": 104.0, "iwae_nll": 99.0, "iwae_nll_se": 0.3,
                                        "iwae_nll_seed_sd": 0.01, "kl": 12.5, "active_units": 5, "rate": 12.5,
                                        "distortion": 91.5}}
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


def test_all_runs_json_holds_the_variant_files_whole(built, inputs) -> None:
    where, _ = built
    copy = json.loads((where / "metrics" / "all_runs.json").read_text())["runs"]
    assert sorted(copy) == sorted(p.stem for p in inputs["runs"].glob("*.json"))
    assert copy["cat10-2"] == vio.read_json(inputs["runs"] / "cat10-2.json")


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
        "vae-2", "vae-20", "cvae-2", "cvae-20"}
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


def test_the_html_page_has_the_variants_section_with_every_run_figure(built, inputs) -> None:
    where, _ = built
    page = (where / "metrics" / "report.html").read_text()
    assert "<h1>Variants of the VAE</h1>" in page and "<td>iwae5-20</td>" in page
    embedded = {base64.b64decode(p) for p in page.split('src="data:image/png;base64,')[1:] for p in [p[:p.index('"')]]}
    for run in VARIANT_RUNS:
        for f in (inputs["figures"] / run).iterdir():
            assert f.read_bytes() in embedded, f.name
    for name in ("rate_distortion.png", "nll_by_family.png"):
        assert (where / "plots" / name).read_bytes() in embedded


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
    (lambda root: (root / "runs" / "cat10-2.json").unlink(),
     r"cat10-2\.json: missing run metrics; run `dvc repro evaluate-variant@cat10-2`"),
    (lambda root: (root / "figures" / "denoise-20" / "restorations_denoise-20.png").unlink(),
     r"restorations_denoise-20\.png: missing; run `dvc repro figures-variant@denoise-20`"),
    (lambda root: _drop(root / "runs" / "denoise-20.json", "restore_nll"),
     r"denoise-20\.json: no key 'restore_nll'; run `dvc repro evaluate-variant@denoise-20`"),
    (lambda root: _drop(root / "runs" / "beta4-20.json", "kl"),
     r"beta4-20\.json: no key 'kl'; run `dvc repro evaluate-variant@beta4-20`"),
    (lambda root: _drop(root / "runs" / "cat10-1.json", "exact_states"),
     r"cat10-1\.json: no key 'exact_states'"),
    (lambda root: vio.write_json(root / "runs" / "iwae5-20.json", {**vio.read_json(root / "runs" / "iwae5-20.json"),
                                                                  "n_images": 7}),
     r"iwae5-20\.json: scored on 7 test images"),
    (lambda root: _drop(root / "runs" / "vae-2.json", *QUAD_KEYS),
     r"exact/vae-2\.json: evaluate@vae-2 has no quadrature to measure its gap to; run `dvc repro evaluate@vae-2`"),
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
    assert "rate" not in json.loads((inputs["runs"] / "beta1-20.json").read_text())
    _build(p, inputs, tmp_path / "out")
    rows = {r["run"]: r for r in _csv(tmp_path / "out" / "metrics" / "variants.csv")}
    neg_elbo, _, _, _, kl, _ = hm.NUMBERS["beta1", 20]
    assert rows["beta1-20"]["setting"] == "the VAE's pieces" and rows["vae-20"]["setting"] == "the VAE (grid run)"
    assert float(rows["beta1-20"]["rate"]) == kl
    assert float(rows["beta1-20"]["distortion"]) == pytest.approx(neg_elbo - kl, abs=1e-9)
