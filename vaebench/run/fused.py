"""The RMSprop step in one pass over memory (run/rmsprop_kernel.c), compiled on first use, used only where it
gives the bytes of torch's own kernels on this machine.

Why: torch's RMSprop update is six passes over each parameter (run/optim.py lists them); at batch 256 they and
their 72 calls took 2.2-2.8 ms of a 26 ms step on one thread, at batch 64 a fifth of the step. The kernel
does the same IEEE operations element by element in L1-sized blocks, with torch's own square root (MKL's
vmsSqrt, looked up in the libtorch_cpu that torch loaded).

How it stays safe: the C file is compiled once per (source, compiler) with `cc -O3 -ffp-contract=off` into
a cache folder (VAEBENCH_KERNEL_CACHE, else ~/.cache/vaebench/kernels), then checked, in every process that
loads it, against torch's ops on probe data (every size from 1 to 70, then sizes around the block edge and a
parameter's, gradients over 80 binades, zeros, values at the square root's floor): any differing bit and the
optimiser uses torch's ops instead, as it does with no compiler, no AVX2 and FMA, or no MKL. So the
weights are the same bytes with or without it; only the speed differs. VAEBENCH_FUSED=0 turns it off.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

SOURCE = Path(__file__).with_name("rmsprop_kernel.c")
FLAGS = ("-O3", "-shared", "-fPIC", "-ffp-contract=off", "-fno-fast-math", "-std=c11")
_LIB = {"linux": "libtorch_cpu.so", "darwin": "libtorch_cpu.dylib"}


def cache_dir() -> Path:
    env = os.environ.get("VAEBENCH_KERNEL_CACHE")
    if env:
        return Path(env)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "vaebench" / "kernels"


def _compiler() -> str | None:
    for cc in (os.environ.get("CC"), "cc", "gcc", "clang"):
        if cc and shutil.which(cc):
            return cc
    return None


def _build(cc: str) -> Path:
    """The shared library for this source and compiler, compiled once (atomically: a rename) and cached."""
    version = subprocess.run([cc, "--version"], capture_output=True, timeout=60).stdout.decode(errors="replace")
    key = hashlib.sha256(SOURCE.read_bytes() + repr((cc, version, FLAGS)).encode()).hexdigest()[:16]
    out = cache_dir() / f"rmsprop-{key}.so"
    if out.exists():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".so", dir=out.parent)
    os.close(fd)
    try:
        proc = subprocess.run([cc, *FLAGS, "-o", tmp, str(SOURCE), "-lm"], capture_output=True, timeout=300)
        if proc.returncode != 0:
            raise OSError(f"{cc} failed: {proc.stderr.decode(errors='replace').strip()[-500:]}")
        os.chmod(tmp, 0o755)  # mkstemp made it 0600: others sharing the cache folder must be able to load it
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return out


def fits(*tensors: torch.Tensor) -> bool:
    """Whether the kernel can take these: contiguous float32 CPU tensors of one shape (it reads raw pointers)."""
    shape = tensors[0].shape
    return all(t.shape == shape and t.dtype == torch.float32 and t.is_contiguous() and t.device.type == "cpu"
               for t in tensors)


class Kernel:
    """The compiled step, bound to torch's vmsSqrt."""

    def __init__(self, path: Path) -> None:
        lib = ctypes.CDLL(str(path))
        self.fn = lib.vaebench_rmsprop
        self.fn.restype = ctypes.c_int
        f = ctypes.c_float
        self.fn.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64, f, f, f, f, f,
                            ctypes.c_void_p, ctypes.c_void_p]
        torch_cpu = ctypes.CDLL(str(Path(torch.__file__).parent / "lib" / _LIB.get(sys.platform, "libtorch_cpu.so")))
        self.vsqrt = ctypes.cast(torch_cpu.vmsSqrt, ctypes.c_void_p)  # AttributeError where torch has no MKL

    def step(self, p: torch.Tensor, v: torch.Tensor, g: torch.Tensor, alpha: float, eps: float, lr: float,
             floor: float, denominators: torch.Tensor | None = None) -> None:
        """p, v, g: contiguous float32 CPU tensors of one shape (`denominators` too, if given: it receives
        sqrt(v) + eps). The scalars are rounded to float as torch rounds its Python scalars (ctypes.c_float
        rounds to nearest, as torch's cast does)."""
        if not fits(p, v, g, *([] if denominators is None else [denominators])):  # refuse what would overrun
            raise ValueError("the fused kernel takes contiguous float32 CPU tensors of one shape")
        rc = self.fn(p.data_ptr(), v.data_ptr(), g.data_ptr(), p.numel(), alpha, 1 - alpha, floor, eps, -lr,
                     self.vsqrt, None if denominators is None else denominators.data_ptr())
        if rc != 0:
            raise RuntimeError("this CPU lacks AVX2 or FMA")
        # written through a pointer: bump the versions as torch's in-place ops do, so that autograd still refuses a
        # graph that saved the old weights or state
        torch.autograd.graph.increment_version(p)
        torch.autograd.graph.increment_version(v)


def torch_step(p: torch.Tensor, v: torch.Tensor, g: torch.Tensor, d: torch.Tensor, alpha: float, eps: float,
               lr: float, floor: float) -> None:
    """The same update with torch's ops, six passes (torch.optim.RMSprop's single-tensor arithmetic); d: workspace."""
    v.mul_(alpha).addcmul_(g, g, value=1 - alpha)
    torch.clamp_min(v, floor, out=d).sqrt_().add_(eps)  # d = sqrt(v) + eps, to the bit
    p.addcdiv_(g, d, value=-lr)


def _probe_agrees(k: Kernel) -> str | None:
    """None if the kernel gives torch's bytes on probe data here, else what differed."""
    from vaebench.run.optim import sqrt_floor

    gen = torch.Generator().manual_seed(20261207)
    sizes = [*range(1, 71), 1023, 1024, 1025, 2049, 5000]
    for eps, lr in ((1e-8, 1e-3), (1e-4, 3e-2)):
        floor = sqrt_floor(eps)
        for n in sizes:
            p = torch.randn(n, generator=gen)
            v = torch.rand(n, generator=gen) * torch.exp2(torch.randint(-150, 10, (n,), generator=gen).float())
            v[: n // 7] = 0
            v[n // 7: n // 5] = floor
            g = torch.randn(n, generator=gen) * torch.exp2(torch.randint(-60, 20, (n,), generator=gen).float())
            g[n // 3: n // 3 + n // 9] = 0
            ours = [p.clone(), v.clone(), torch.empty(n)]
            theirs = [p.clone(), v.clone(), torch.empty(n)]
            for _ in range(3):
                k.step(*ours[:2], g, 0.99, eps, lr, floor, denominators=ours[2])
                torch_step(*theirs[:2], g, theirs[2], 0.99, eps, lr, floor)
            for name, a, b in zip(("weights", "square_avg", "denominators"), ours, theirs):
                if not torch.equal(a.view(torch.int32), b.view(torch.int32)):
                    return f"{name} differ from torch's at n = {n}, eps = {eps}"
    return None


@functools.cache
def kernel() -> tuple[Kernel | None, str]:
    """(the kernel, "fused kernel"), or (None, why torch's ops are used instead). Checked once per process."""
    if os.environ.get("VAEBENCH_FUSED", "1") == "0":
        return None, "torch ops (VAEBENCH_FUSED=0)"
    cc = _compiler()
    if cc is None:
        return None, "torch ops (no C compiler to build the fused kernel)"
    try:
        k = Kernel(_build(cc))
        why = _probe_agrees(k)
    except (OSError, AttributeError, RuntimeError, subprocess.SubprocessError) as e:
        return None, f"torch ops (the fused kernel is unavailable: {e})"
    if why is not None:
        return None, f"torch ops (the fused kernel's bytes are not torch's here: {why})"
    return k, "fused kernel"
