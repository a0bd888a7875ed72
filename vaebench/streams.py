"""Every random stream of the pipeline, named: a purpose and a fixed number of integer fields.

numpy's SeedSequence pads its entropy with zeros, so the keys (seed, 11) and (seed, 11, 0)
hash alike, and an int >= 2**32 is split into 32-bit words, so (2**32,) and (0, 1) do too.
Keys here cannot meet either way: each starts with its purpose's code, each purpose has a
fixed arity (checked), and every field is a 32-bit unsigned integer (checked). Two different
keys are two different word sequences of the same length per purpose, so SeedSequence's hash
gives two unrelated 63-bit seeds; tests/test_streams.py enumerates the streams a pipeline run
draws and finds no two seeds equal.
"""

from __future__ import annotations

import enum

import numpy as np
import torch

_U32 = 2**32


class Stream(enum.IntEnum):
    """A purpose; the value is the key's first word, `ARITY[stream]` the number of fields after it."""

    INIT = 1  # (train.seed): Xavier initialisation, through torch's global RNG
    EPOCH = 2  # (train.seed, epoch): minibatch order and reparameterisation noise of one epoch
    HELDOUT_ELBO = 3  # (train.seed): noise of the per-epoch held-out ELBO (the same every epoch)
    STATIC_BITS = 4  # (train.seed): the one draw of the training bits (data.binarize = static)
    DYNAMIC_BITS = 5  # (train.seed, epoch): the training bits of one epoch (data.binarize = dynamic)
    TEST_BITS = 6  # (data.test_seed): the one draw of the test bits every model is scored on
    TEST_ELBO = 7  # (eval.seed): noise of the test ELBO
    IWAE = 8  # (eval.seed, image index, label slot): one image's k importance samples; slot 0 = no label, 1 + y


ARITY = {
    Stream.INIT: 1, Stream.EPOCH: 2, Stream.HELDOUT_ELBO: 1, Stream.STATIC_BITS: 1,
    Stream.DYNAMIC_BITS: 2, Stream.TEST_BITS: 1, Stream.TEST_ELBO: 1, Stream.IWAE: 3,
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
    """A 63-bit seed for torch.Generator.manual_seed, unique to (stream, fields)."""
    state = np.random.SeedSequence(stream_key(stream, *fields)).generate_state(2, np.uint64)
    return int(state[0] >> np.uint64(1))


def generator(stream: Stream, *fields: int) -> torch.Generator:
    """A CPU generator seeded for (stream, fields); CPU so that CPU and GPU runs draw the same numbers."""
    return torch.Generator(device="cpu").manual_seed(stream_seed(stream, *fields))
