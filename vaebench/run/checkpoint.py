"""Checkpoints: safetensors weights plus a JSON sidecar that says what they are.

Nothing here unpickles: safetensors is a flat header plus raw tensor bytes, so a checkpoint
from elsewhere can be refused but never executes code. The sidecar holds the weights' sha256,
so a truncated or swapped weights file is caught before it is used.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import safetensors.torch
import torch

from vaebench import io as vio
from vaebench.core.variants import PLAIN, Variant
from vaebench.config import ConfigError
from vaebench.core.models import VAE, build_model
from vaebench.errors import CheckpointError

WEIGHTS, SIDECAR = "model.safetensors", "model.json"


def tensors_to_bytes(tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> bytes:
    # contiguous CPU copies: safetensors refuses views and device tensors
    return safetensors.torch.save({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, metadata)


def read_tensors(path: Path) -> dict[str, torch.Tensor]:
    if not path.exists():
        raise CheckpointError(f"{path}: not found")
    try:
        return safetensors.torch.load(path.read_bytes())
    except Exception as e:  # SafetensorError and friends: not a (complete) safetensors file
        raise CheckpointError(f"{path}: not a valid safetensors file ({type(e).__name__}: {e})") from None


def save_checkpoint(directory: str | Path, model: VAE, meta: dict[str, Any]) -> dict[str, Any]:
    """Write weights then sidecar (both atomically); return the sidecar."""
    directory = Path(directory)
    blob = tensors_to_bytes(model.state_dict())
    meta = {**meta, "weights_sha256": vio.sha256_bytes(blob)}
    vio.write_bytes(directory / WEIGHTS, blob)
    vio.write_json(directory / SIDECAR, meta)
    return meta


def read_sidecar(directory: str | Path) -> dict[str, Any]:
    path = Path(directory) / SIDECAR
    try:
        meta = vio.read_json(path)
    except FileNotFoundError:
        raise CheckpointError(f"{path}: not found (no checkpoint in {directory})") from None
    except (OSError, ValueError) as e:
        raise CheckpointError(f"{path}: unreadable sidecar ({e})") from None
    if not isinstance(meta, dict) or not {"model", "zdim", "hidden", "weights_sha256"} <= set(meta):
        raise CheckpointError(f"{path}: not a vaebench checkpoint sidecar")
    return meta


def load_checkpoint(directory: str | Path, expect: dict[str, Any] | None = None) -> tuple[VAE, dict[str, Any]]:
    """Load a checkpoint; every key in `expect` must equal the sidecar's, or CheckpointError names the first that differs."""
    directory = Path(directory)
    meta = read_sidecar(directory)
    for key, want in (expect or {}).items():
        if meta.get(key) != want:
            raise CheckpointError(
                f"{directory}: checkpoint is for {key}={meta.get(key)!r}, not the requested {want!r}"
            )
    path = directory / WEIGHTS
    if not path.exists():
        raise CheckpointError(f"{path}: not found")
    blob = path.read_bytes()
    if vio.sha256_bytes(blob) != meta["weights_sha256"]:
        raise CheckpointError(f"{path}: sha256 does not match its sidecar (truncated or replaced file)")
    try:
        state = safetensors.torch.load(blob)
    except Exception as e:
        raise CheckpointError(f"{path}: not a valid safetensors file ({type(e).__name__}: {e})") from None
    # sidecars before 2026-11-26 name neither: ReLU units, the plain VAE or CVAE
    try:
        # a variant's sidecar names its pieces; the VAE's and CVAE's (and a variant at the VAE's pieces) do not
        variant = Variant(**meta["variant"]) if isinstance(meta.get("variant"), dict) else PLAIN
        model = build_model(meta["model"], meta["zdim"], meta["hidden"], meta.get("activation", "relu"), variant)
    except (TypeError, ValueError, ConfigError) as e:
        raise CheckpointError(f"{directory / SIDECAR}: describes no model vaebench builds ({e})") from None
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        raise CheckpointError(f"{path}: weights do not fit a {meta['model']} z={meta['zdim']} ({e})") from None
    model.eval()
    return model, meta
