"""Floyd's algorithm for uniform k-subsets: exact uniformity by enumeration of its integer
draws, sizes, the complement path, and errors."""

import itertools
import math
from collections import Counter

import numpy as np
import pytest

from xai.subsets import floyd_draws, floyd_subsets


@pytest.mark.parametrize("d,k", [(5, 2), (6, 3), (6, 4), (5, 5), (4, 0), (7, 1), (7, 6)])
def test_every_subset_arises_equally_often_over_all_integer_draws(d, k):
    """Every integer sequence t_i in 0..j_i (uniforms at the centre of its cell) is run once:
    each k-subset must come out the same number of times, m! (m = draws per subset)."""
    m = floyd_draws(d, k)
    cells = [range(d - m + i + 1) for i in range(m)]
    seqs = list(itertools.product(*cells))
    u = np.array([[(t + 0.5) / (d - m + i + 1) for i, t in enumerate(s)] for s in seqs])
    masks = floyd_subsets(u.reshape(len(seqs), m), d, k)
    assert (masks.sum(1) == k).all()
    counts = Counter(map(bytes, np.packbits(masks, axis=1)))
    assert len(counts) == math.comb(d, k)
    assert set(counts.values()) == {math.factorial(m)}


def test_rows_are_independent_and_the_top_of_a_cell_stays_in_range():
    rng = np.random.default_rng(0)
    u = rng.random((300, floyd_draws(64, 10)))
    u[0] = np.nextafter(1.0, 0.0)  # the largest uniform: t = j after the clip
    full = floyd_subsets(u, 64, 10)
    assert (full.sum(1) == 10).all()
    for b in (0, 7, 299):
        np.testing.assert_array_equal(floyd_subsets(u[b:b + 1], 64, 10)[0], full[b])


def test_inclusion_frequencies_are_k_over_d():
    u = np.random.default_rng(1).random((40_000, floyd_draws(20, 3)))
    freq = floyd_subsets(u, 20, 3).mean(0)
    se = math.sqrt(0.15 * 0.85 / 40_000)
    assert np.abs(freq - 3 / 20).max() < 5 * se


def test_wrong_uniform_shapes_and_sizes_are_named():
    with pytest.raises(ValueError, match=r"shape \(B, 2\)"):
        floyd_subsets(np.zeros((3, 3)), 10, 2)
    with pytest.raises(ValueError, match="must lie in 0..d"):
        floyd_subsets(np.zeros((3, 0)), 4, 5)
