"""Random streams: every stream a pipeline run draws from has its own seed, by construction."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vaebench.config import Params, params_from_dict
from vaebench.core.models import N_LABELS
from vaebench.streams import ARITY, Draws, Stream, philox_key, stream_key, stream_seed


def pipeline_streams(p: Params, n_test: int) -> dict[tuple, tuple[int, int]]:
    """Every (stream, fields) that `dvc repro` with params `p` draws from, with its generator's 128-bit key.

    Mirrors the calls in run/data.py, run/fit.py, core/elbo.py and core/estimators.py: training (each training
    seed of grid.seeds: every epoch's bits and noise, the validation bits of the monitoring curve), the test bits,
    the test ELBO, and the IWAE of each test image with eval.seed and the spread seeds, for no label (VAE), the
    true and every other label (CVAE).
    """
    e = p.train.epochs
    keys = [(Stream.TEST_BITS, p.data.test_seed), (Stream.TEST_ELBO, p.eval.seed)]
    for s in p.grid.seeds:
        keys += [(Stream.HELDOUT_ELBO, s), (Stream.STATIC_BITS, s)]
        keys += [(Stream.VALID_BITS, s)] if p.train.monitor == "validation" else []
        keys += [(Stream.EPOCH, s, i) for i in range(e)] + [(Stream.DYNAMIC_BITS, s, i) for i in range(e)]
    for seed in range(p.eval.seed, p.eval.seed + p.eval.spread_seeds + 1):
        keys += [(Stream.IWAE, seed, i, slot) for i in range(n_test) for slot in range(1 + N_LABELS)]
    return {k: philox_key(*k) for k in keys}


def test_no_two_streams_of_a_default_run_share_a_seed():
    # the defaults: training seeds 0, 1, 2 of 40 epochs each, monitored on validation images; eval.seed 0 and 2
    # spread seeds over all 10,000 test images
    p = params_from_dict({})
    assert p.grid.seeds == (0, 1, 2) and p.train.monitor == "validation"
    seeds = pipeline_streams(p, 10_000)
    assert len(seeds) == 2 + 3 * (3 + 2 * 40) + 3 * 10_000 * 11
    assert len(set(seeds.values())) == len(seeds)  # 330,251 streams, 330,251 different Philox keys


def test_torch_generators_would_collide_which_is_why_streams_are_philox():
    # torch's CPU generator keeps only the low 32 bits of its seed: 2**40 apart is the same stream. 330,084
    # hashed seeds would have ~13 such pairs (birthday bound); the first version of this module had them.
    a = torch.randn(4, generator=torch.Generator().manual_seed(5))
    assert torch.equal(a, torch.randn(4, generator=torch.Generator().manual_seed(5 + 2**40)))
    low32 = [stream_seed(Stream.IWAE, seed, i, slot) & 0xFFFFFFFF
             for seed in range(3) for i in range(10_000) for slot in range(11)]
    assert len(set(low32)) < len(low32)  # the IWAE streams of a default run: some would share a torch stream


def test_the_collisions_of_zero_padded_keys_cannot_happen():
    # numpy pads entropy with zeros: [0, 11] and [0, 11, 0] are one stream to SeedSequence ...
    same = [np.random.SeedSequence(k).generate_state(2, np.uint64)[0] for k in ([0, 11], [0, 11, 0])]
    assert same[0] == same[1]
    # ... so each purpose has a fixed arity, and a key of another length is refused
    with pytest.raises(ValueError, match="takes 3 fields"):
        stream_key(Stream.IWAE, 0, 11)
    with pytest.raises(ValueError, match="takes 1 fields"):
        stream_key(Stream.TEST_ELBO, 0, 0)
    # and every field is one 32-bit word: 2**32 would be the two words [0, 1]
    for bad in (2**32, -1, 1.5, True):
        with pytest.raises(ValueError, match=r"\[0, 2\*\*32\)"):
            stream_key(Stream.EPOCH, 0, bad)
    # the pairs that used to coincide (test ELBO noise = image 0's IWAE noise, held-out = image 13's ...)
    assert philox_key(Stream.TEST_ELBO, 0) != philox_key(Stream.IWAE, 0, 0, 0)
    assert philox_key(Stream.HELDOUT_ELBO, 0) != philox_key(Stream.IWAE, 0, 13, 0)
    assert philox_key(Stream.STATIC_BITS, 0) != philox_key(Stream.IWAE, 0, 1, 0)


def test_keys_start_with_the_purpose_and_have_its_arity():
    for stream, n in ARITY.items():
        key = stream_key(stream, *range(7, 7 + n))
        assert key == [int(stream), *range(7, 7 + n)]
    assert set(ARITY) == set(Stream)


def test_draws_are_their_stream_s_and_have_the_right_law():
    a = Draws(Stream.EPOCH, 3, 4).normal((5,))
    assert torch.equal(a, Draws(Stream.EPOCH, 3, 4).normal((5,)))
    assert not torch.equal(a, Draws(Stream.EPOCH, 3, 5).normal((5,)))
    z = Draws(Stream.TEST_ELBO, 0).normal((200_000,)).double()
    assert z.dtype == torch.float64 and abs(z.mean().item()) < 0.01 and abs(z.std().item() - 1) < 0.01
    p = torch.tensor([0.0, 0.2, 0.9, 1.0]).expand(50_000, 4)
    bits = Draws(Stream.TEST_BITS, 0).bernoulli(p)
    assert bits.dtype == torch.float32 and set(bits.unique().tolist()) <= {0.0, 1.0}
    assert bits.mean(0).tolist() == pytest.approx([0.0, 0.2, 0.9, 1.0], abs=0.01)
    perm = Draws(Stream.EPOCH, 0, 0).permutation(1000)
    assert sorted(perm.tolist()) == list(range(1000)) and perm.tolist() != list(range(1000))
