"""Every random stream of the pipeline, named: a purpose and a fixed number of integer fields.

A stream is a numpy Philox generator keyed by SeedSequence([purpose, *fields]). Why not a seeded
torch.Generator: torch's CPU generator is an mt19937 that keeps only the low 32 bits of its seed,
so 330,000 streams hashed to seeds would share a stream about a dozen times (birthday bound);
Philox's key has 128 bits. Why the fixed arity: SeedSequence pads its entropy with zeros, so
(seed, 11) and (seed, 11, 0) would hash alike, and it splits an int >= 2**32 into 32-bit words,
so (2**32,) and (0, 1) would too. Here each key starts with its purpose's code, each purpose has
a fixed arity (checked), and every field is a 32-bit unsigned integer (checked): two different
keys are two different word sequences, and tests/test_streams.py checks that the 128-bit Philox
keys of every stream a default run draws from are pairwise different.
"""

from __future__ import annotations

import enum

import numpy as np
import torch

_U32 = 2**32


class Stream(enum.IntEnum):
    """A purpose; the value is the key's first word, `ARITY[stream]` the number of fields after it."""

    INIT = 1  # (train.seed): Xavier initialisation, through torch's global RNG (one seed: nothing to collide with)
    EPOCH = 2  # (train.seed, epoch): minibatch order and reparameterisation noise of one epoch
    HELDOUT_ELBO = 3  # (train.seed): noise of the per-epoch held-out ELBO (the same every epoch)
    STATIC_BITS = 4  # (train.seed): the one draw of the training bits (data.binarize = static)
    DYNAMIC_BITS = 5  # (train.seed, epoch): the training bits of one epoch (data.binarize = dynamic)
    TEST_BITS = 6  # (data.test_seed): the one draw of the test bits every model is scored on
    TEST_ELBO = 7  # (eval.seed): noise of the test ELBO
    IWAE = 8  # (eval.seed, image index, label slot): one image's k importance samples; slot 0 = no label, 1 + y
    CORRUPT = 9  # (train.seed, epoch): the denoising VAE's bit flips of one epoch's encoder inputs
    TEST_CORRUPT = 10  # (eval.seed): the bit flips of the test images a denoising VAE restores
    VALID_BITS = 11  # (train.seed): the one draw of the validation bits of the monitoring curve (train.monitor)


ARITY = {
    Stream.INIT: 1, Stream.EPOCH: 2, Stream.HELDOUT_ELBO: 1, Stream.STATIC_BITS: 1,
    Stream.DYNAMIC_BITS: 2, Stream.TEST_BITS: 1, Stream.TEST_ELBO: 1, Stream.IWAE: 3,
    Stream.CORRUPT: 2, Stream.TEST_CORRUPT: 1, Stream.VALID_BITS: 1,
}


def stream_key(stream: Stream, *fields: int) -> list[int]:
    """The entropy words of one stream: [purpose, *fields], each field a 32-bit unsigned integer."""
    stream = Stream(stream)
    if len(fields) != ARITY[stream]:
        raise ValueError(f"stream {stream.name} takes {ARITY[stream]} fields, got {len(fields)}: {fields}")
    for f in fields:
        if isinstance(f, bool) or int(f) != f or not 0 <= int(f) < _U32:
            raise ValueError(f"stream {stream.name}: field {f!r} is not an integer in [0, 2**32)")
    return [int(stream), *(int(f) for f in fields)]


def stream_seed(stream: Stream, *fields: int) -> int:
    """A 63-bit seed for torch.manual_seed (used for INIT only: torch keeps 32 bits of it)."""
    state = np.random.SeedSequence(stream_key(stream, *fields)).generate_state(2, np.uint64)
    return int(state[0] >> np.uint64(1))


class Draws:
    """The numbers of one stream, as float32 / int64 CPU tensors (the same on CPU and GPU runs)."""

    def __init__(self, stream: Stream, *fields: int) -> None:
        self.rng = np.random.Generator(np.random.Philox(np.random.SeedSequence(stream_key(stream, *fields))))

    def normal(self, shape: tuple[int, ...]) -> torch.Tensor:
        """Standard normal draws, float32."""
        return torch.from_numpy(self.rng.standard_normal(tuple(shape), dtype=np.float32))

    def bernoulli(self, p: torch.Tensor) -> torch.Tensor:
        """0/1 float32 of p's shape, 1 with probability p (a uniform draw below p)."""
        return self.bits(p).float()

    def bits(self, p: torch.Tensor) -> torch.Tensor:
        """`bernoulli`'s draw as uint8 0/1 (a quarter of the memory; torch converts uint8 to float faster than bool)."""
        u = self.rng.random(tuple(p.shape), dtype=np.float32)
        return torch.from_numpy((u < p.cpu().numpy()).view(np.uint8))

    def gumbel(self, shape: tuple[int, ...]) -> torch.Tensor:
        """Standard Gumbel draws -log(-log U), float32 (computed in float64: never infinite)."""
        return torch.from_numpy(self.rng.gumbel(size=tuple(shape)).astype(np.float32))

    def permutation(self, n: int) -> torch.Tensor:
        """A random permutation of 0..n-1, int64."""
        return torch.from_numpy(self.rng.permutation(n))


def philox_key(stream: Stream, *fields: int) -> tuple[int, int]:
    """The 128-bit key a stream's generator runs on (what makes two streams the same or not)."""
    key = Draws(stream, *fields).rng.bit_generator.state["state"]["key"]
    return int(key[0]), int(key[1])
