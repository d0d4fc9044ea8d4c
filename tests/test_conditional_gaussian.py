"""Conditional Gaussian removal: the batched factorisation of many coalitions at once and its
factor cache agree with the plain definition, one coalition at a time."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.datasets import load_breast_cancer

from xai import gaussian
from xai.behaviours import Prediction
from xai.errors import InputError
from xai.features import FeatureMap
from xai.game import Game
from xai.gaussian import (
    FactorCache,
    cached_draws,
    conditional_draws,
    conditional_factors,
    conditional_factors_reference,
    conditional_replacement_reference,
)
from xai.models import as_model
from xai.removals import ConditionalGaussian
from xai.summaries import ExactShapley, PermutationShapley

TOL = 1e-12


def collinear_columns(p: int = 16) -> np.ndarray:
    """Standardised breast-cancer columns: radius, perimeter and area are nearly collinear."""
    X = load_breast_cancer().data[:, :p]
    return (X - X.mean(0)) / X.std(0)


def covariance(B: np.ndarray, ridge: float = 1e-6) -> torch.Tensor:
    p = B.shape[1]
    cov = np.cov(B, rowvar=False)
    return torch.as_tensor(cov + ridge * np.trace(cov) / p * np.eye(p))


def coalitions(n: int, p: int, seed: int = 0) -> np.ndarray:
    """Masks of every size, the empty and the full coalition first."""
    rng = np.random.default_rng(seed)
    keep = rng.random((n, p)) < rng.random((n, 1))
    keep[0], keep[1] = False, True
    return keep


@pytest.fixture(params=["random", "collinear"])
def background(request) -> np.ndarray:
    if request.param == "collinear":
        return collinear_columns()
    rng = np.random.default_rng(3)
    return rng.normal(size=(60, 7)) @ rng.normal(size=(7, 7))


@pytest.mark.parametrize("with_noise", [True, False])
def test_batched_factors_equal_one_coalition_at_a_time(background, with_noise):
    cov = covariance(background)
    p = cov.shape[0]
    keep = coalitions(300, p)
    eps = torch.as_tensor(np.random.default_rng(1).standard_normal((5, p))) if with_noise \
        else None
    fast = conditional_factors(cov, keep, eps)
    plain = conditional_factors_reference(cov, keep, eps)
    np.testing.assert_array_equal(fast.size, keep.sum(1))
    np.testing.assert_array_equal(fast.order, plain.order)
    np.testing.assert_allclose(fast.dense_gain(), plain.dense_gain(), rtol=0, atol=TOL)
    assert (fast.dense_gain()[keep] == 0).all()  # kept columns are not drawn
    if with_noise:
        np.testing.assert_allclose(fast.noise, plain.noise, rtol=0, atol=TOL)
        assert (fast.noise[np.broadcast_to(keep[:, None, :], fast.noise.shape)] == 0).all()
    else:
        assert fast.noise is None and plain.noise is None


def test_factors_in_several_batches_equal_one_batch(monkeypatch):
    cov = covariance(collinear_columns(9))
    keep = coalitions(50, 9)
    eps = torch.as_tensor(np.random.default_rng(1).standard_normal((4, 9)))
    whole = conditional_factors(cov, keep, eps)
    monkeypatch.setattr(gaussian, "FACTOR_BLOCK_BYTES", 6 * 8 * 9 * 9 * 7)  # 7 per batch
    parts = conditional_factors(cov, keep, eps)
    # batched LAPACK may take another code path for another batch size: equal to rounding
    np.testing.assert_allclose(parts.dense_gain(), whole.dense_gain(), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(parts.noise, whole.noise, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("plug_in", [False, True])
def test_draws_equal_the_definition_and_keep_kept_columns(background, plug_in):
    cov = covariance(background)
    mu = torch.as_tensor(background.mean(0))
    p = cov.shape[0]
    rng = np.random.default_rng(4)
    keep = coalitions(40, p)[rng.integers(0, 40, 200)]  # repeated coalitions
    x = torch.as_tensor(background[rng.integers(0, len(background), 200)] + 0.3)
    eps = torch.as_tensor(rng.standard_normal((1 if plug_in else 6, p)))
    cache = FactorCache(cov, None if plug_in else eps)
    store, which = cache.lookup(keep)
    got = conditional_draws(x.numpy(), keep, mu.numpy(), store, which)
    want = conditional_replacement_reference(x, keep, mu, cov, eps, plug_in).numpy()
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=0, atol=TOL)
    kept = np.broadcast_to(keep[:, None, :], got.shape)
    np.testing.assert_array_equal(got[kept], np.broadcast_to(x.numpy()[:, None], got.shape)[kept])


def test_cache_factors_each_coalition_once(monkeypatch):
    cov = covariance(collinear_columns(8))
    eps = torch.as_tensor(np.random.default_rng(1).standard_normal((3, 8)))
    calls = []
    real = gaussian.conditional_factors
    monkeypatch.setattr(gaussian, "conditional_factors",
                        lambda c, k, e: calls.append(len(k)) or real(c, k, e))
    cache = FactorCache(cov, eps)
    keep = coalitions(30, 8)
    _, which1 = cache.lookup(np.concatenate([keep, keep]))
    _, which2 = cache.lookup(keep[::-1])
    seen = {tuple(row) for row in keep}
    new = np.array([row for row in coalitions(20, 8, seed=9) if tuple(row) not in seen][:4])
    more, which3 = cache.lookup(np.concatenate([keep[:5], new]))
    assert calls == [len(seen), 4]
    np.testing.assert_array_equal(which2, which1[:30][::-1])
    np.testing.assert_array_equal(which3[:5], which1[:5])
    plain = conditional_factors_reference(cov, new, eps)
    np.testing.assert_allclose(more.dense_gain(which3[5:]), plain.dense_gain(), rtol=0,
                               atol=TOL)
    np.testing.assert_allclose(more.noise[which3[5:]], plain.noise, rtol=0, atol=TOL)


def test_a_full_cache_keeps_its_coalitions_and_factors_the_others_per_call():
    cov = covariance(collinear_columns(8))
    eps = torch.as_tensor(np.random.default_rng(1).standard_normal((3, 8)))
    large = FactorCache(cov, eps)
    small = FactorCache(cov, eps, max_bytes=10 * large.key_bytes)  # ten coalitions or more
    kept = None
    for seed in [0, 1, 0, 2, 1]:
        keep = coalitions(12, 8, seed=seed)
        a, wa = small.lookup(keep)
        b, wb = large.lookup(keep)
        np.testing.assert_allclose(a.dense_gain(wa), b.dense_gain(wb), rtol=0, atol=TOL)
        np.testing.assert_allclose(a.noise[wa], b.noise[wb], rtol=0, atol=TOL)
        if kept is not None:  # the coalitions held stay (smaller ones may join while room)
            np.testing.assert_array_equal(small.keys[:len(kept)], kept)
        kept = small.keys.copy()
    assert 10 <= len(kept) < len(large.keys)
    held = small.store.size[:len(kept)]  # kept columns of each coalition held
    gains = sum(g.nbytes for g in small.store.gain.values())  # spare rows included
    assert small.used == small.fixed_bytes * len(held) + gains <= small.max_bytes
    assert gains >= 8 * (held * (8 - held)).sum()


def test_gains_grow_by_doubling_and_spare_rows_cost_no_new_bytes():
    cov = covariance(collinear_columns(8))
    eps = torch.as_tensor(np.random.default_rng(1).standard_normal((3, 8)))
    cache = FactorCache(cov, eps)
    single = np.eye(8, dtype=bool)  # eight coalitions of one kept column each
    cache.lookup(single[:2])
    assert cache.used == 2 * cache.coalition_bytes(1)  # exactly two rows of gains
    cache.lookup(single[2:3])  # the third grows the array by the two held: room for five
    assert len(cache.store.gain[1]) == 5
    assert cache.used == 3 * cache.fixed_bytes + 5 * 8 * 7
    used = cache.used
    store, which = cache.lookup(single[3:5])  # into the spare rows
    assert cache.used == used + 2 * cache.fixed_bytes
    np.testing.assert_allclose(store.dense_gain(which),
                               conditional_factors_reference(cov, single[3:5], eps).dense_gain(),
                               rtol=0, atol=TOL)


def test_a_cache_near_its_cap_gives_spare_rows_back_to_hold_more_coalitions():
    cov = covariance(collinear_columns(8))
    eps = torch.as_tensor(np.random.default_rng(1).standard_normal((3, 8)))
    keep = np.unique(coalitions(40, 8, seed=3), axis=0)
    exact = int(FactorCache(cov, eps).coalition_bytes(keep.sum(1)).sum())
    cache = FactorCache(cov, eps, max_bytes=exact)  # room for these coalitions and no more
    for a in range(0, len(keep), 5):
        cache.lookup(keep[a:a + 5])
    assert len(cache.keys) == len(keep) and cache.used == exact
    store, which = cache.lookup(keep)
    np.testing.assert_allclose(store.dense_gain(which),
                               conditional_factors_reference(cov, keep, eps).dense_gain(),
                               rtol=0, atol=TOL)


def fitted_removal(X, B, feature_map, **options) -> ConditionalGaussian:
    removal = ConditionalGaussian(B, **options)
    Game(as_model(lambda A: A.sum(1)), X, removal, Prediction(), feature_map, seed=0)
    return removal


@pytest.mark.parametrize("n_samples", [0, 5])
@pytest.mark.parametrize("grouped", [False, True])
def test_replacement_equals_the_reference_replacement(n_samples, grouped):
    B = collinear_columns(10)
    X = B[:6] + 0.1
    fm = FeatureMap.groups({"size": [0, 2, 3], "texture": [1], "rest": [4, 5, 6, 7]}, 10,
                           fixed=[8, 9]) if grouped else FeatureMap.tabular(10)
    removal = fitted_removal(X, B, fm, n_samples=n_samples)
    rng = np.random.default_rng(5)
    d = fm.d
    masks = torch.as_tensor(rng.random((40, d)) < 0.5)
    rows = torch.as_tensor(rng.integers(0, 6, 40))
    x = torch.as_tensor(X)[rows]
    K = removal.n_draws
    for start, stop in [(0, K), (1, K)] if K > 1 else [(0, 1)]:
        got = removal.replacement(x, rows, masks, start, stop)
        want = removal.replacement_reference(x, rows, masks, start, stop)
        assert got.shape == want.shape == (40, stop - start, 10)
        torch.testing.assert_close(got, want, rtol=0, atol=TOL)
    if grouped:  # always-kept columns are the explicands'
        assert torch.equal(got[:, :, 8:], x[:, None, 8:].expand(-1, got.shape[1], -1))


@pytest.mark.parametrize("n_samples", [0, 5])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_replacements_hold_the_explicands_bit_for_bit_where_kept(n_samples, dtype):
    """What lets the game take the replacements as its synthetic inputs
    (``replacements_keep_x``): kept columns are ``x`` itself, signed zeros included."""
    B = collinear_columns(8)
    X = B[:5].copy()
    X[:, ::3] = -0.0
    removal = fitted_removal(X, B, FeatureMap.tabular(8), n_samples=n_samples)
    assert removal.replacements_keep_x
    rng = np.random.default_rng(6)
    masks = torch.as_tensor(rng.random((30, 8)) < 0.5)
    rows = torch.as_tensor(rng.integers(0, 5, 30))
    x = torch.as_tensor(X, dtype=dtype)[rows]
    got = removal.replacement(x, rows, masks, 0, removal.n_draws)
    bits = torch.int64 if dtype == torch.float64 else torch.int32
    kept = masks[:, None, :].expand(got.shape)
    assert torch.equal(got.view(bits)[kept],
                       x[:, None, :].expand(got.shape).contiguous().view(bits)[kept])


def test_values_equal_those_of_selecting_x_where_kept(monkeypatch):
    B = collinear_columns(6)
    X = B[:4] * 1.2

    def values():
        game = Game(as_model(lambda A: np.tanh(A).sum(1)), X,
                    ConditionalGaussian(B, n_samples=4), Prediction(), FeatureMap.tabular(6),
                    seed=0)
        return PermutationShapley(budget=400, seed=1)(game).values

    taken = values()
    monkeypatch.setattr(ConditionalGaussian, "replacements_keep_x", False)
    np.testing.assert_array_equal(values(), taken)


class ReferenceConditionalGaussian(ConditionalGaussian):
    """The removal with its plain per-coalition replacement."""

    def replacement(self, x, rows, masks, start, stop):
        return self.replacement_reference(x, rows, masks, start, stop)


@pytest.mark.parametrize("summary", [lambda: ExactShapley(),
                                     lambda: PermutationShapley(budget=3000, seed=2)],
                         ids=["exact", "permutation"])
def test_values_equal_the_reference_removal(summary):
    B = collinear_columns(6)
    X = B[:4] * 1.2
    w = np.linspace(-1, 1, 6)

    def model(A):
        return np.tanh(A @ w) + 0.1 * A[:, 0] * A[:, 1]

    def values(removal):
        game = Game(as_model(model), X, removal, Prediction(), FeatureMap.tabular(6), seed=3,
                    batch_size=64)
        return summary()(game).values

    fast = values(ConditionalGaussian(B, n_samples=8))
    plain = values(ReferenceConditionalGaussian(B, n_samples=8))
    np.testing.assert_allclose(fast, plain, rtol=0, atol=TOL)


def test_a_singular_background_covariance_is_refused_by_name():
    B = collinear_columns(4)
    B[:, 2] = 1.0  # a constant column: zero variance, and no ridge to lift it
    game = Game(as_model(lambda A: A.sum(1)), B[:3], ConditionalGaussian(B, ridge=0.0),
                Prediction(), FeatureMap.tabular(4), seed=0)
    with pytest.raises(InputError, match="not positive definite.*ridge"):
        ExactShapley()(game)


@pytest.mark.parametrize("p", [8, 64, 70])
def test_cache_tells_coalitions_apart_at_any_width(p):
    rng = np.random.default_rng(6)
    cov = covariance(rng.normal(size=(3 * p, p)))
    eps = torch.as_tensor(rng.standard_normal((2, p)))
    keep = coalitions(12, p)
    keep[2:4] = keep[1]
    keep[3, -1] = False  # differs from row 1 in the last column only
    cache = FactorCache(cov, eps)
    cache.lookup(keep[6:])
    store, which = cache.lookup(keep)
    assert len(set(which.tolist())) == len(np.unique(keep, axis=0))
    assert which[2] == which[1] != which[3]
    plain = conditional_factors_reference(cov, keep, eps)
    np.testing.assert_allclose(store.noise[which], plain.noise, rtol=0, atol=1e-10)


def test_draws_in_several_blocks_equal_one_block(monkeypatch):
    B = collinear_columns(9)
    cov, mu = covariance(B), B.mean(0)
    keep = coalitions(30, 9)
    x = B[:30] + 0.2
    eps = torch.as_tensor(np.random.default_rng(1).standard_normal((4, 9)))
    store, which = FactorCache(cov, eps).lookup(keep)
    whole = conditional_draws(x, keep, mu, store, which, slice(1, 3))
    monkeypatch.setattr(gaussian, "FACTOR_BLOCK_BYTES", 8 * 9 * 2)  # 1 or 2 rows per block
    np.testing.assert_array_equal(conditional_draws(x, keep, mu, store, which, slice(1, 3)),
                                  whole)
    assert whole.shape == (30, 2, 9)


def test_rows_drawn_in_blocks_past_a_full_cache_equal_the_definition(monkeypatch):
    B = collinear_columns(9)
    cov, mu = covariance(B), B.mean(0)
    keep = coalitions(40, 9)
    x = B[:40] - 0.1
    eps = torch.as_tensor(np.random.default_rng(1).standard_normal((4, 9)))
    small = FactorCache(cov, eps)
    small.max_bytes = 6 * small.key_bytes  # six coalitions or a few more
    monkeypatch.setattr(gaussian, "FACTOR_BLOCK_BYTES", 7 * small.key_bytes)  # 7 rows a block
    got = cached_draws(small, x, keep, mu, slice(0, 4))
    want = conditional_replacement_reference(torch.as_tensor(x), keep, torch.as_tensor(mu), cov,
                                             eps, False).numpy()
    np.testing.assert_allclose(got, want, rtol=0, atol=TOL)
    assert 6 <= len(small.keys) < 40 and small.used <= small.max_bytes


@pytest.mark.parametrize("eps_rows", [None, 5])
def test_no_rows_give_no_draws(eps_rows):
    cov = covariance(collinear_columns(6))
    eps = None if eps_rows is None else torch.zeros(eps_rows, 6, dtype=torch.float64)
    got = cached_draws(FactorCache(cov, eps), np.empty((0, 6)), np.empty((0, 6), dtype=bool),
                       np.zeros(6), slice(1, 4))
    assert got.shape == ((0, 1, 6) if eps is None else (0, 3, 6))
