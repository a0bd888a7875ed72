"""What a checkpoint was trained for, and whether a folder's checkpoint may be replaced.

A checkpoint's sidecar records its run's fingerprint (run_fingerprint) and the data it saw; a
checkpoint is *current* for a configuration when the two agree, and training never replaces one
that is not current: it may be a user's only copy of another model.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from vaebench.run.checkpoint import SIDECAR, WEIGHTS, read_sidecar
from vaebench.config import Params, to_dict
from vaebench.run.data import Mnist
from vaebench.errors import CheckpointError


def _train(params: Params) -> dict[str, Any]:
    """The training settings, less those added after runs had recorded their fingerprint (the literature runs',
    2026-11-26) at the value that keeps those runs what they were: `lr_end` unless the schedule is exponential,
    `kl_warmup` when 0, `monitor` when `test`. The fingerprint of such a run then stays equal to the one it recorded."""
    t = to_dict(params.train)
    if t["schedule"] != "exponential":
        del t["lr_end"]
    if t["kl_warmup"] == 0:
        del t["kl_warmup"]
    if t["monitor"] == "test":
        del t["monitor"]
    return t


def run_fingerprint(model: str, zdim: int, params: Params) -> dict[str, Any]:
    """Everything a trained model depends on: the sidecar stores it, `eval` compares it."""
    return {
        "model": model,
        "zdim": zdim,
        "hidden": params.model.hidden,
        "activation": params.model.activation,
        # only a variant has one: the thesis's VAE and CVAE keep the fingerprint they had before the variants,
        # so that a run's resumable state (which records it) stays its own across that change
        # (the pieces a checkpoint has always recorded, and a later piece only when set: Variant.fingerprint)
        **({"variant": v.fingerprint()} if not (v := params.variant(model)).is_plain else {}),
        "train": _train(params),
        "data": {k: v for k, v in to_dict(params.data).items() if k != "source"},
    }


def expected_sidecar(model: str, zdim: int, params: Params, data: Mnist) -> dict[str, Any]:
    """What a current checkpoint's sidecar must say: this configuration, trained on this data."""
    want = {**run_fingerprint(model, zdim, params), "data_manifest_sha256": data.manifest_sha256}
    return json.loads(json.dumps(want))  # tuples -> lists, as the sidecar stores them


def first_difference(have: Any, want: Any, key: str = "") -> tuple[str, Any, Any] | None:
    """(dotted key, have, want) of the first leaf where two sidecar-like values differ; None if equal."""
    if isinstance(have, dict) and isinstance(want, dict):
        for k in (*want, *(k for k in have if k not in want)):
            d = first_difference(have.get(k), want.get(k), f"{key}.{k}" if key else k)
            if d is not None:
                return d
        return None
    return None if have == want else (key, have, want)


def refuse_to_replace(ckpt: str | Path, model: str, zdim: int, params: Params, data: Mnist, how: str) -> None:
    """CheckpointError if `ckpt` holds a checkpoint (or a file of that name) of any other configuration.

    Training writes model.safetensors and model.json into `ckpt`; what is there may be a user's
    only copy of another model, so it is never replaced: a checkpoint of this very configuration
    (complete or damaged) may be, nothing else. `how` says how to retrain on purpose.
    """
    ckpt = Path(ckpt)
    if not (ckpt / SIDECAR).exists() and not (ckpt / WEIGHTS).exists():
        return
    try:
        have = read_sidecar(ckpt)
    except CheckpointError:
        raise CheckpointError(f"{ckpt}: holds a {SIDECAR} or {WEIGHTS} that is not a vaebench checkpoint; "
                              f"refusing to overwrite it ({how})") from None
    have = {k: have.get(k) for k in ("model", "zdim", "hidden", "activation", "variant", "train", "data", "data_manifest_sha256")}
    diff = first_difference(have, expected_sidecar(model, zdim, params, data))
    if diff is not None:
        key, was, now = diff
        raise CheckpointError(f"{ckpt}: holds a checkpoint for {key}={was!r}, not the requested {now!r}; "
                              f"refusing to overwrite it ({how})")
