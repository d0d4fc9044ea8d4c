"""The sampling driver of the summaries (rounds and budgets): without a stopping rule LIME and
KernelSHAP draw what the budget affords as one round, evaluated in one game call (KernelSHAP's
∅ and enumerated strata included), within the nominal budget also when coalitions repeat; with
``tol`` rounds still double. And LIME's Cholesky ridge inverse against the pseudo-inverse."""

from __future__ import annotations

import numpy as np
import pytest

from xai.behaviours import Prediction
from xai.features import FeatureMap
from xai.game import Game
from xai.models import as_model
from xai.removals import Baseline
from xai.summaries import LIME, KernelSHAP
from xai.summaries.lime import ridge_inverse


def smooth(A):
    A = np.asarray(A, dtype=np.float64)
    w = np.linspace(-1.0, 1.5, A.shape[1])
    return np.tanh(A @ w) + A[:, 0] * A[:, 1]


def counted_game(d, monkeypatch, n=2):
    """A game over ``d`` features and the list of the mask counts of its calls."""
    X = np.random.default_rng(0).normal(size=(n, d))
    game = Game(as_model(smooth), X, Baseline(0.0), Prediction(), FeatureMap.tabular(d))
    calls: list[int] = []
    call = Game.__call__

    def counting(self, masks, rows=None, draws=None):
        calls.append(len(masks))
        return call(self, masks, rows, draws)
    monkeypatch.setattr(Game, "__call__", counting)
    return game, calls


@pytest.mark.parametrize("summary", [LIME(budget=400, seed=1), KernelSHAP(budget=400, seed=1)])
def test_fixed_budget_is_one_game_call(summary, monkeypatch):
    game, calls = counted_game(24, monkeypatch)
    res = summary(game)
    assert len(calls) == 1
    assert np.all(res.coalitions <= 400) and np.all(res.coalitions >= 400 - 2)
    assert game.rows_evaluated <= 2 * 400
    assert np.isfinite(res.values).all() and np.isfinite(res.stderr).all()
    if isinstance(summary, KernelSHAP):  # ∅ and the size-1 and size-23 strata came along
        assert res.extras["enumerated_sizes"] == [1, 23]
        assert calls[0] == 1 + 2 * 24 + 2 * res.units[0]
        np.testing.assert_allclose(res.values.sum(1), smooth(game.X.numpy()) - smooth(
            np.zeros((1, 24))), atol=1e-12)


@pytest.mark.parametrize("make", [lambda: LIME(budget=100, seed=3),
                                  lambda: LIME(budget=101, seed=3, paired=False),
                                  lambda: KernelSHAP(budget=100, seed=3)])
def test_repeats_refill_the_round_within_budget(make, monkeypatch):
    """d = 8: coalitions repeat, so further draws join the round until the budget is spent."""
    game, calls = counted_game(8, monkeypatch)
    summary = make()
    seen = {}
    estimate = type(summary).estimate

    def spy(self, state, active):
        seen.update(state)
        return estimate(self, state, active)
    monkeypatch.setattr(type(summary), "estimate", spy)
    res = summary(game)
    assert len(calls) == 1
    budget = summary.budget
    assert budget - 2 <= res.coalitions[0] <= budget
    per_unit = 2 if isinstance(summary, KernelSHAP) else 1
    assert res.units[0] * per_unit > res.coalitions[0]  # repeats were drawn (free)
    if isinstance(summary, LIME):  # one cluster per sample or complement pair, in order
        Z = np.concatenate(seen["Z"])
        assert sum(seen["clusters"]) == len(Z) == 1 + res.units[0]
        starts = np.cumsum(seen["clusters"])[:-1]
        pairs = [s for s, c in zip(starts, seen["clusters"][1:]) if c == 2]
        assert (len(pairs) > res.units[0] // 3) if summary.paired else not pairs
        assert all((Z[s] == ~Z[s + 1]).all() for s in pairs)


def test_stopping_rule_keeps_doubling_rounds(monkeypatch):
    game, calls = counted_game(24, monkeypatch)
    KernelSHAP(budget=2000, tol=1e-12, seed=1, min_units=32)(game)
    assert calls[:3] == [1 + 2 * 24 + 2 * 32, 2 * 32, 2 * 64]


def test_same_seed_same_values_and_row_alone_equals_batch():
    X = np.random.default_rng(2).normal(size=(4, 12))

    def run(X, summary):
        return summary(Game(as_model(smooth), X, Baseline(0.0), Prediction(),
                            FeatureMap.tabular(12)))
    for make in (lambda: LIME(budget=300, seed=5), lambda: KernelSHAP(budget=300, seed=5)):
        a, b = run(X, make()), run(X, make())
        np.testing.assert_array_equal(a.values, b.values)
        alone = run(X[2:3], make())
        np.testing.assert_allclose(alone.values[0], a.values[2], rtol=1e-13, atol=1e-15)


def test_ridge_inverse_is_the_pseudo_inverse():
    rng = np.random.default_rng(1)
    for m, d, alpha in [(1000, 40, 1.0), (50, 10, 1.0), (200, 30, 0.0)]:
        X = np.hstack([np.ones((m, 1)), rng.random((m, d)) < 0.5])
        w = rng.random(m)
        reg = alpha * np.eye(d + 1)
        reg[0, 0] = 0
        M = (X * w[:, None]).T @ X + reg
        np.testing.assert_allclose(ridge_inverse(X, w, alpha), np.linalg.pinv(M),
                                   atol=1e-12 * np.abs(np.linalg.pinv(M)).max())
    # singular (a feature always kept, no penalty): the pseudo-inverse
    X = np.hstack([np.ones((20, 1)), np.ones((20, 1)), rng.random((20, 2)) < 0.5])
    w = np.ones(20)
    np.testing.assert_allclose(ridge_inverse(X, w, 0.0), np.linalg.pinv(X.T @ X), atol=1e-12)
