"""Seeds hashed from keys: the per-clip randomness of augmentation and the synthetic corpus."""

import numpy as np
import pytest

from audioseq.data.seeding import hashed_seed


@pytest.mark.parametrize("bits", [63, 64, 128])
def test_seeds_fill_their_bits_and_repeat_for_the_same_key(bits):
    seeds = [hashed_seed(7, epoch, clip, bits=bits) for epoch in range(4) for clip in range(500)]
    assert seeds == [hashed_seed(7, e, c, bits=bits) for e in range(4) for c in range(500)]
    assert len(set(seeds)) == len(seeds)
    assert all(0 <= s < 2**bits for s in seeds)
    top = np.array([s >> (bits - 1) for s in seeds])  # the highest bit: set half the time
    assert 0.45 < top.mean() < 0.55


def test_keys_that_print_alike_give_different_seeds():
    assert hashed_seed(1, 2) != hashed_seed(12)
    assert hashed_seed(1, 23) != hashed_seed(12, 3)
    assert hashed_seed(0, 1) != hashed_seed(1, 0)


def test_a_seed_takes_any_integer_key():
    """A seed of 2**70 or a negative one is a key like any other (SeedSequence took them)."""
    assert hashed_seed(2**70, 0) != hashed_seed(2**70, 1)
    assert hashed_seed(-1, 0) != hashed_seed(1, 0)
