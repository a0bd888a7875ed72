"""Bit-reproducible matrix products at any thread count: MKL's conditional numerical reproducibility.

torch's CPU matrix products go through MKL. For thin outputs (e.g. a 500 -> 10 layer's weight
gradient at batch 256) MKL splits the reduction by thread, so 1 and 2 threads gave different
weights (up to 8e-6 apart after 2 epochs). With MKL_CBWR=AUTO,STRICT MKL keeps the code path of
this CPU but fixes the reduction order, and training, the ELBO, the IWAE and the quadrature are
bit-identical at 1, 2 and 4 threads (tests/test_determinism.py; the cost is measured by
bench/cbwr.py). MKL reads the mode at its first call, not later: vaebench/__init__.py sets the
variable (unless it is already set) before anything of ours imports torch, and
`require_strict_mkl()` checks that a STRICT mode took.

What it does not promise: the same bytes on another instruction set (AUTO picks AVX-512 here,
AVX2 elsewhere) or another MKL version; those give other bytes, equally reproducible there.
"""

from __future__ import annotations

import ctypes
import functools
import os
import sys
import warnings
from pathlib import Path
from vaebench.errors import NumericsError

MODE = "AUTO,STRICT"
_AUTO, _STRICT, _ALL = 2, 0x10000, -1  # mkl_cbwr.h: MKL_CBWR_AUTO, MKL_CBWR_STRICT, MKL_CBWR_ALL (~0)
_LIB = {"linux": "libtorch_cpu.so", "darwin": "libtorch_cpu.dylib", "win32": "torch_cpu.dll"}


def request_strict_mkl() -> None:
    """Ask MKL for AUTO,STRICT unless the environment already names a mode (e.g. AVX2,STRICT, the same
    code path on every CPU that has it); effective only if no MKL routine has run yet in this process."""
    os.environ.setdefault("MKL_CBWR", MODE)


@functools.cache
def _mkl_get() -> ctypes._CFuncPtr | None:
    import torch

    lib = Path(torch.__file__).parent / "lib" / _LIB.get(sys.platform, "libtorch_cpu.so")
    try:
        fn = ctypes.CDLL(str(lib)).mkl_serv_cbwr_get  # torch links MKL statically and exports this
    except (OSError, AttributeError):
        return None
    fn.restype, fn.argtypes = ctypes.c_int, [ctypes.c_int]
    return fn


def mkl_mode() -> str:
    """MKL's reproducibility mode: 'AUTO,STRICT', another value in hex, 'no-mkl' (a torch without MKL),
    or 'unknown' (MKL is there but its mode cannot be read)."""
    import torch

    if not torch.backends.mkl.is_available():
        return "no-mkl"
    get = _mkl_get()
    if get is None:
        return "unknown"
    value = get(_ALL)
    return MODE if value == _AUTO | _STRICT else f"0x{value:x}"


def require_strict_mkl() -> None:
    """Refuse to train or score when MKL's results would depend on the thread count."""
    mode = mkl_mode()
    if mode == "unknown":
        warnings.warn("MKL's reproducibility mode cannot be read on this torch build: bytes may depend on the "
                      "thread count", RuntimeWarning, stacklevel=2)
        return
    if mode == "no-mkl" or mode == MODE or int(mode, 16) & _STRICT:
        return
    raise NumericsError(
        f"MKL runs in reproducibility mode {mode}, not a STRICT one: results would depend on the thread count. "
        f"Import vaebench before anything runs a torch matrix product, or set MKL_CBWR={MODE} in the environment."
    )
