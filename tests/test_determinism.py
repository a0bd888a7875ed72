"""The same configuration gives the same bytes at 1, 2 and 4 torch threads, and for any eval.chunk.

The pipeline runs at torch's default thread count (the number of cores); these tests run fit()
and the IWAE at that count and at others, and compare bytes. Without MKL's strict reproducibility
mode (vaebench/numerics.py) a single backward pass already differs between 1 and 2 threads;
the first test shows that, so that the others are known to be able to fail.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import replace

import pytest
import torch

from vaebench.run.checkpoint import WEIGHTS, load_checkpoint
from vaebench.config import params_from_dict
from vaebench.core.estimators import evaluate_model, iwae_log_px
from vaebench.numerics import MODE, mkl_mode
from vaebench.core.quadrature import quadrature
from vaebench.run.fit import fit

DEFAULT_THREADS = os.cpu_count() or 1  # what torch uses when nothing sets it, as under `dvc repro`

_GRAD = """
import hashlib, torch
from torch import nn
torch.manual_seed(0)
net = nn.Sequential(nn.Linear(784, 500), nn.ReLU(), nn.Linear(500, 500), nn.ReLU(), nn.Linear(500, 10))
x = (torch.rand(256, 784) < 0.3).float()
for t in (1, 2):
    torch.set_num_threads(t)
    net.zero_grad()
    net(x).square().sum().backward()  # the 500 -> 10 layer's weight gradient: a thin product, reduced over 256
    print(hashlib.sha256(net[4].weight.grad.numpy().tobytes()).hexdigest())
"""


def _grad_hashes(env: dict[str, str]) -> list[str]:
    out = subprocess.run([sys.executable, "-c", _GRAD], env=env, capture_output=True, text=True, check=True)
    return out.stdout.split()


def test_without_strict_mkl_one_backward_pass_depends_on_the_thread_count():
    env = {k: v for k, v in os.environ.items() if k != "MKL_CBWR"}
    loose = _grad_hashes(env)
    if loose[0] == loose[1]:
        pytest.skip("this CPU's MKL gives the same bits at 1 and 2 threads even without MKL_CBWR")
    strict = _grad_hashes({**env, "MKL_CBWR": MODE})
    assert strict[0] == strict[1]


def test_this_process_runs_mkl_in_strict_mode():
    assert mkl_mode() in (MODE, "no-mkl")


def test_a_matrix_product_before_vaebench_is_imported_is_refused_with_the_remedy():
    code = ("import torch; torch.randn(8, 8) @ torch.randn(8, 8)\n"
            "from vaebench.numerics import require_strict_mkl; require_strict_mkl()")
    env = {k: v for k, v in os.environ.items() if k != "MKL_CBWR"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    if "no-mkl" in subprocess.run([sys.executable, "-c", "from vaebench.numerics import mkl_mode; print(mkl_mode())"],
                                  capture_output=True, text=True).stdout:
        pytest.skip("torch without MKL")
    assert out.returncode != 0
    assert "NumericsError" in out.stderr and "MKL_CBWR=AUTO,STRICT" in out.stderr


@pytest.fixture
def threads():
    """Set torch's thread count for one test and restore it afterwards (conftest runs the suite at 1)."""
    before = torch.get_num_threads()
    yield torch.set_num_threads
    torch.set_num_threads(before)


def test_training_gives_the_same_bytes_at_1_2_and_4_threads(threads, mnist_file, tmp_path):
    # the audit's case: hidden 500, batch 256, z = 5, 4,096 images, 2 epochs (weights differed by up to 8e-6)
    p = params_from_dict({"grid": {"models": ["cvae"], "zdims": [5]}, "exact": {"zdims": []},
                          "data": {"train_subset": 4096, "test_subset": 300},
                          "train": {"epochs": 2, "batch_size": 256, "heldout": 200}})
    blobs, history = {}, {}
    for n in sorted({DEFAULT_THREADS, 1, 2, 4}):
        threads(n)
        r = fit("cvae", 5, p, mnist_file, tmp_path / f"t{n}", log=lambda s: None, progress=False)
        blobs[n], history[n] = (r.checkpoint / WEIGHTS).read_bytes(), r.history
    assert len(set(blobs.values())) == 1, sorted(blobs)
    assert all(h == history[1] for h in history.values())


def test_evaluation_gives_the_same_numbers_at_any_thread_count_and_chunk(threads, mnist_file, tmp_path):
    from conftest import make_tiny_params
    from vaebench.run.data import binarize_test, load_mnist

    p = make_tiny_params(model={"hidden": 500}, train={"epochs": 1}, eval={"k": 300, "k_marginal": 3})
    threads(1)
    r = fit("cvae", 2, p, mnist_file, tmp_path / "m", log=lambda s: None, progress=False)
    model, _ = load_checkpoint(r.checkpoint)
    data = load_mnist(mnist_file, test_subset=37)
    x, y = binarize_test(data.test_x, "dynamic", p.data.test_seed), data.test_y
    runs = {}
    for n, chunk in ((1, 50_000), (2, 50_000), (4, 50_000), (DEFAULT_THREADS, 1), (1, 7), (1, 301), (2, 1000)):
        threads(n)
        runs[(n, chunk)] = evaluate_model(model, x, y, replace(p.eval, chunk=chunk, spread_images=20), show_progress=False)
    first = runs[(1, 50_000)]
    for key, m in runs.items():
        assert m == first, key  # every number, to the last bit
    threads(2)
    assert torch.equal(iwae_log_px(model, x, y, 1025, 0, chunk=2000), iwae_log_px(model, x, y, 1025, 0, chunk=1))
    quad = {}
    for n in (1, 2, 4):
        threads(n)
        q = quadrature(model, x, y, half_width=6.0, n=90)
        quad[n] = (q.log_px, q.coarse, q.inner)
    assert all(torch.equal(a, b) for n in (2, 4) for a, b in zip(quad[n], quad[1]))

