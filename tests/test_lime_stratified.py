"""Stratified coalition sampling for the LIME summary (Rashid, Amparore, Ferrari & Verda,
AAAI 2024): the allocation over coalition sizes, the adjustment factors, and the estimand,
checked against the LIME regression over all ``2^d`` coalitions with the same kernel."""

from __future__ import annotations

import numpy as np
import pytest

from xai.errors import UnknownNameError
from xai.summaries import LIME
from xai.summaries.lime import (
    lime_weights,
    stratified_coalitions,
    stratum_adjustment,
    stratum_allocation,
)


def _all_coalitions(d: int) -> np.ndarray:
    return ((np.arange(2**d)[:, None] >> np.arange(d)) & 1).astype(bool)


def exhaustive_lime(V: np.ndarray, d: int, n: int, alpha: float) -> np.ndarray:
    """The limit of LIME with ``n`` sampled coalitions: the weighted ridge over all ``2^d``
    coalitions, each weighing ``n / 2^d`` times lime's kernel, plus the all-kept row that the
    summary always adds (weight 1); coefficients without the intercept."""
    Z = _all_coalitions(d)
    w = lime_weights(Z, "euclidean", 0.75 * np.sqrt(d)) * n / 2**d
    Zf = np.vstack([np.ones((1, d), bool), Z])
    wf = np.concatenate([[1.0], w])
    y = np.concatenate([[V[-1]], V])
    X = np.hstack([np.ones((len(Zf), 1)), Zf])
    reg = alpha * np.eye(d + 1)
    reg[0, 0] = 0.0
    return np.linalg.solve((X * wf[:, None]).T @ X + reg, X.T @ (wf * y))[1:]


@pytest.fixture(scope="module")
def game_table(games):
    d = 10
    rng = np.random.default_rng(5)
    m = games.random_mobius(rng, d, density=0.05)  # interactions: LIME is not exact
    return games.zeta(m, d), d


def test_allocation_is_equal_over_sizes_and_enumerates_small_strata():
    rng = np.random.default_rng(0)
    alloc = stratum_allocation(1000, 50, rng)
    assert alloc.sum() == 1000
    assert alloc[0] == alloc[50] == 1  # one coalition each: enumerated, the rest shared
    assert set(alloc[1:50].tolist()) <= {20, 21}
    np.testing.assert_array_equal(stratum_allocation(20, 4, rng), [1, 4, 6, 4, 1])


def test_coalitions_have_the_allocated_sizes_and_uniform_members():
    from math import comb

    d, n = 14, 9000
    Z = stratified_coalitions(n, d, np.random.default_rng(1))
    sizes = np.bincount(Z.sum(1), minlength=d + 1)
    small = np.array([sizes[k] == comb(d, k) for k in range(d + 1)])
    assert small[[0, 1, 2, 3, 4, 10, 11, 12, 13, 14]].all()  # at most n / (d + 1) - ish
    for k in np.flatnonzero(small):  # enumerated: every coalition of the size once
        assert len(np.unique(Z[Z.sum(1) == k], axis=0)) == comb(d, k)
    rest = sizes[~small]  # the others share the rest equally, each more than a full one
    assert rest.max() - rest.min() <= 1 and rest.min() > sizes[small].max()
    assert sizes.sum() == n
    for k in (5, 7):  # within a size, every feature is kept with probability k / d
        np.testing.assert_allclose(Z[Z.sum(1) == k].mean(0), k / d, atol=0.06)


def test_more_samples_than_coalitions_enumerate_each_coalition_per_pass():
    Z = stratified_coalitions(3 * 2**5, 5, np.random.default_rng(3))
    _, counts = np.unique(Z, axis=0, return_counts=True)
    assert len(counts) == 2**5 and set(counts.tolist()) == {3}


def test_adjustment_factors_are_ones_on_a_full_enumeration():
    """Every coalition once: each stratum holds its population share, so nothing to adjust."""
    np.testing.assert_allclose(stratum_adjustment(_all_coalitions(7)), 1.0, rtol=1e-12)


def test_adjusted_weights_give_the_population_moments_in_expectation():
    """E[sum_i a_i g(z_i)] = N mean over all 2^d coalitions of g, for any g (here the kernel
    weighted Gram matrix), averaged over many stratified draws."""
    d, n = 6, 40
    rng = np.random.default_rng(2)
    Zall = _all_coalitions(d)
    target = n * np.einsum("m,mi,mj->ij", lime_weights(Zall, "cosine", 0.25), Zall * 1.0,
                           Zall * 1.0) / 2**d
    acc = np.zeros((d, d))
    reps = 3000
    for _ in range(reps):
        Z = stratified_coalitions(n, d, rng)
        a = stratum_adjustment(Z) * lime_weights(Z, "cosine", 0.25)
        acc += np.einsum("m,mi,mj->ij", a, Z * 1.0, Z * 1.0)
    np.testing.assert_allclose(acc / reps, target, rtol=0.02)


@pytest.mark.parametrize("sampling", ["uniform", "stratified"])
def test_both_samplings_converge_to_exhaustive_lime(games, game_table, sampling):
    """The same estimand: the error against the regression over all 2^d coalitions falls as
    samples grow, for the default and the stratified design alike."""
    V, d = game_table
    errors = {}
    for n in (100, 800):
        errs = []
        for seed in range(6):
            res = LIME(budget=n + 1, seed=seed, sampling=sampling)(games.table_game(V, d))
            units = int(res.extras["max_units"])
            ref = exhaustive_lime(V, d, units, alpha=1.0)
            errs.append(np.linalg.norm(res.values[0] - ref) / np.linalg.norm(ref))
        errors[n] = float(np.mean(errs))
    assert errors[800] < 0.6 * errors[100], errors
    assert errors[800] < 0.1, errors


def test_default_sampling_is_uniform_and_unchanged(games, game_table):
    V, d = game_table
    a = LIME(budget=300, seed=4)(games.table_game(V, d))
    b = LIME(budget=300, seed=4, sampling="uniform")(games.table_game(V, d))
    np.testing.assert_array_equal(a.values, b.values)
    np.testing.assert_array_equal(a.stderr, b.stderr)


def test_unknown_sampling_is_a_named_error():
    with pytest.raises(UnknownNameError, match="stratified"):
        LIME(sampling="stratifed")
