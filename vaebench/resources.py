"""What the IWAE estimator holds in memory, against what this machine has.

Used by the `check` stage (eval.k and exact.k at the widest run of the params) and by scoring (the k it is
about to use), so that importance samples that cannot fit are refused in one line naming the key and the
largest k that fits, before anything is allocated.
"""

from __future__ import annotations

import os

from vaebench.errors import ConfigError

# Bytes per importance sample and latent feature that one pass of the IWAE estimator (core/estimators.py)
# holds at once: the noise, the latents and their temporaries (bench/bench.py's memory section measures it:
# about 12 for a Gaussian latent, 16 for a categorical one, whose Gumbel noise is drawn in float64).
IWAE_BYTES = 20


def iwae_bytes(k: int, chunk: int, width: int) -> int:
    """About the memory the IWAE estimator holds at once: max(k, chunk) samples of `width` latent features
    (zdim, or N * K for a categorical latent). eval.chunk bounds it only while k <= chunk: an image's k
    samples are drawn at once."""
    return max(k, chunk) * width * IWAE_BYTES


def physical_memory() -> int | None:
    """This machine's memory in bytes (None where the OS does not say)."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def require_iwae_fits(key: str, k: int, chunk: int, width: int) -> None:
    """ConfigError naming `key` if `k` importance samples at this latent width cannot fit in this machine."""
    have = physical_memory()
    if have is None or iwae_bytes(k, chunk, width) <= have:
        return
    fits = have // (width * IWAE_BYTES)
    raise ConfigError(f"{key}: {k:,} importance samples need about {iwae_bytes(k, chunk, width) / 2**30:,.0f} GiB at "
                      f"once at latent width {width} (max(k, eval.chunk) x width x {IWAE_BYTES} bytes: eval.chunk "
                      f"bounds memory only while k <= chunk), more than this machine's {have / 2**30:.0f} GiB; "
                      f"at most k = {fits:,} fits")
