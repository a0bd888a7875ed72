"""A training run's resumable state: the weights, the optimiser's state and the finished epochs' history.

Written after every epoch into `<out>.partial/` and read back by a rerun of the same configuration (its
fingerprint must match), so that a run killed and resumed ends with the bytes of one that never stopped.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from vaebench import io as vio
from vaebench.core.models import VAE
from vaebench.run.checkpoint import read_tensors, tensors_to_bytes


def _state_paths(partial: Path) -> tuple[Path, Path]:
    return partial / "state.safetensors", partial / "state.json"


def save_state(partial: Path, model: VAE, opt: torch.optim.Optimizer, info: dict[str, Any]) -> None:
    """Model and optimiser tensors in one safetensors file, the rest in JSON (written last: it marks completeness)."""
    sd = opt.state_dict()
    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    for pid, st in sd["state"].items():
        for key, val in st.items():
            tensors[f"optim.{pid}.{key}"] = val if torch.is_tensor(val) else torch.tensor(val)
    blob = tensors_to_bytes(tensors)
    weights, meta = _state_paths(partial)
    vio.write_bytes(weights, blob)
    vio.write_json(meta, {**info, "param_groups": sd["param_groups"], "state_sha256": vio.sha256_bytes(blob)})


def load_state(partial: Path, model: VAE, opt: torch.optim.Optimizer, fingerprint: dict[str, Any]) -> dict[str, Any] | None:
    """Restore the last complete epoch if `partial` holds one for this exact fingerprint; else None."""
    weights, meta_path = _state_paths(partial)
    if not meta_path.exists():
        return None
    try:
        info = vio.read_json(meta_path)
        if info.get("fingerprint") != json.loads(json.dumps(fingerprint)):
            return None  # state of another configuration: start afresh
        if vio.sha256_file(weights) != info["state_sha256"]:
            return None
        tensors = read_tensors(weights)
    except Exception:  # any damage to the partial state means: start afresh, never crash
        return None
    model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, val in tensors.items():
        if key.startswith("optim."):
            _, pid, name = key.split(".", 2)
            state.setdefault(int(pid), {})[name] = val
    opt.load_state_dict({"state": state, "param_groups": info["param_groups"]})
    return info
