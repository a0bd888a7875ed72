"""`vaebench runs`: the checkpoints that exist, whether each is current for params.yaml, and its numbers.

Reads sidecars and metrics JSON only (never the weights): it answers in about a second.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from vaebench import io as vio
from vaebench.run.checkpoint import SIDECAR, WEIGHTS, read_sidecar
from vaebench.config import Params, run_name
from vaebench.run.data import manifest_path
from vaebench.errors import CheckpointError
from vaebench.run.fingerprint import first_difference, run_fingerprint

# the metrics `vaebench eval` writes beside a checkpoint outside the pipeline when no --out is given
ADHOC_METRICS = "eval.json"


def _status(folder: Path, meta: dict[str, Any], params: Params, data_sha: str | None) -> str:
    """`current`, or what is wrong: the first setting that differs from params.yaml, a folder named for
    another run, missing weights; `(data not checked)` when there is no data manifest to compare with."""
    if not (folder / WEIGHTS).exists():
        return f"broken: no {WEIGHTS}"
    if meta["model"] not in ("vae", "cvae") and meta["model"] not in params.variants.defs:
        return f"not in params.yaml: variant {meta['model']!r} (given by its pieces on the command line, or removed)"
    seed = (meta.get("train") or {}).get("seed")  # a run of any training seed is current for params.yaml at that seed
    if isinstance(seed, int) and not isinstance(seed, bool) and seed >= 0:
        params = params.with_seed(seed)
    want = json.loads(json.dumps({**run_fingerprint(meta["model"], meta["zdim"], params),  # tuples -> lists
                                  **({"data_manifest_sha256": data_sha} if data_sha else {})}))
    have = {k: meta.get(k) for k in want}
    diff = first_difference(have, want)
    status = "current" if diff is None else f"stale: {diff[0]}={diff[1]!r}, params.yaml says {diff[2]!r}"
    named = run_name(meta["model"], meta["zdim"], params.train.seed)
    if folder.name not in (named, run_name(meta["model"], meta["zdim"])) and folder.name.split("-")[0] in ("vae", "cvae"):
        status += f"; the folder's name says {folder.name}, its model is {named}"
    return status if data_sha else status + " (data not checked: no data manifest)"


def _numbers(metrics_file: Path, weights_sha: str) -> tuple[str, str]:
    """(test -ELBO, IWAE NLL) of the metrics file if it scored exactly these weights, else ("-", "-")."""
    try:
        m = vio.read_json(metrics_file)
        if m.get("weights_sha256") != weights_sha:
            return "-", "-"  # scored another checkpoint (or written before metrics named their weights)
        return f"{m['neg_elbo']:.2f}", f"{m['iwae_nll']:.2f} (k={m['k']})"
    except (OSError, ValueError, KeyError, AttributeError):
        return "-", "-"


def pipeline_layout(params_path: Path) -> tuple[bool, Path | None]:
    """(whether the pipeline beside `params_path` names its runs with their training seed, the data file its
    `train` stage reads) from that folder's dvc.yaml: the top-level grid names `vae-5-0` and reads
    data/mnist.npz; the literature pipelines name `vae-50` and read ../data/mnist.npz. (True, None) without one."""
    import yaml

    dvcfile = Path(params_path).parent / "dvc.yaml"
    try:
        train = (yaml.safe_load(dvcfile.read_text()) or {}).get("stages", {}).get("train", {})
    except (OSError, yaml.YAMLError, AttributeError):
        return True, None
    if not isinstance(train, dict):
        return True, None
    words = str(train.get("cmd", "")).split()
    data = Path(params_path).parent / words[words.index("--data") + 1] if "--data" in words[:-1] else None
    return "seed" in (train.get("matrix") or {"seed": None}), data


def list_runs(params: Params, models_dir: Path, metrics_dir: Path, data_path: Path = Path("data/mnist.npz"),
              seeded: bool = True) -> str:
    """A table of every checkpoint folder under `models_dir`, grid items first, then any other folder.
    `seeded`: the grid's runs are named with their training seed (`vae-5-0`), else without (`vae-50`, the
    literature pipelines, each at train.seed)."""
    models_dir = Path(models_dir)
    seeds = params.grid.seeds if seeded else [None]
    grid = [run_name(m, z, seed) for m in params.grid.models for z in params.grid.zdims for seed in seeds]
    grid += [run if seed is None else f"{run}-{seed}" for run in params.variants.runs for seed in seeds]
    found = sorted(p.parent.name for p in models_dir.glob(f"*/{SIDECAR}")) if models_dir.is_dir() else []
    partial = sorted(p.name for p in models_dir.glob("*.partial")) if models_dir.is_dir() else []
    manifest = manifest_path(data_path)
    data_sha = vio.sha256_file(manifest) if manifest.exists() else None
    rows = [("run", "model", "epochs", "test -ELBO", "IWAE NLL", "status")]
    for name in [n for n in grid if n in found] + [n for n in found if n not in grid]:
        try:
            meta = read_sidecar(models_dir / name)
        except CheckpointError as e:
            rows.append((name, "-", "-", "-", "-", f"unreadable: {e}"))
            continue
        neg_elbo, iwae = _numbers(Path(metrics_dir) / f"{name}.json", meta["weights_sha256"])
        if neg_elbo == "-":  # scored ad hoc: `vaebench eval` left its numbers beside the weights
            neg_elbo, iwae = _numbers(models_dir / name / ADHOC_METRICS, meta["weights_sha256"])
        status = _status(models_dir / name, meta, params, data_sha) + ("" if name in grid else " (not in grid)")
        rows.append((name, f"{meta['model']} z={meta['zdim']}", str(meta.get("epochs_done", "?")), neg_elbo, iwae, status))
    lines = []
    if len(rows) == 1:
        lines.append(f"no checkpoints under {models_dir}/ (`dvc repro` or `vaebench train` makes them)")
    else:
        widths = [max(len(r[i]) for r in rows) for i in range(5)]
        lines += ["  ".join(c.ljust(w) for c, w in zip(r[:5], widths)) + "  " + r[5] for r in rows]
        lines.append("nats per test image, lower is better; '-' where no metrics file scored these weights")
    missing = [n for n in grid if n not in found]
    if missing:
        lines.append(f"not trained yet: {', '.join(missing)}")
    for p in partial:
        lines.append(f"interrupted: {models_dir / p} (a rerun of its training resumes from it; delete it to start afresh)")
    return "\n".join(lines)
