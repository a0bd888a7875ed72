"""What the analysis scripts in bench/ share: the pipeline's params, test bits and trained models.

Imported by bench/iwae_seeds.py, quad_convergence.py, test_draws.py and restore_baseline.py (run as
`python bench/<script>.py`, which puts bench/ first on sys.path).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from vaebench.config import Params, load_params, parse_run
from vaebench.run.data import Mnist, binarize_test
from vaebench.core.models import VAE
from vaebench.run.score import load_current, load_data

REPO = Path(__file__).resolve().parents[1]


def add_arguments(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--params", type=Path, default=REPO / "params.yaml")
    ap.add_argument("--data", type=Path, default=REPO / "data/mnist.npz")
    ap.add_argument("--models", type=Path, default=REPO / "models")


def load(a: argparse.Namespace) -> tuple[Params, Mnist, torch.Tensor]:
    """params.yaml, MNIST, and the binarised test images (N, 784) every model is scored on."""
    p = load_params(a.params)
    data = load_data(p, a.data)
    return p, data, binarize_test(data.test_x, p.data.binarize, p.data.test_seed)


def parse_item(item: str) -> tuple[str, int]:
    """A run's model and latent size: 'cvae-35' -> ('cvae', 35), 'cvae-35-1' (training seed 1) -> ('cvae', 35)."""
    model_name, zdim, _ = parse_run(item, "item")
    return model_name, zdim


def trained_model(item: str, p: Params, data: Mnist, models: Path) -> VAE:
    """The checkpoint of run `item` (vae-2-0, or vae-2 in the literature's layout), refused unless it matches params
    and data (at the item's training seed, if its name has one)."""
    model_name, zdim, seed = parse_run(item, "item")
    model, _ = load_current(model_name, zdim, p.with_seed(seed), data, models / item)
    return model
