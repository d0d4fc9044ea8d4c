"""Regression-adjusted KernelSHAP (``ra-kernelshap``): exact on games its surrogate represents,
efficient, calibrated standard errors, reproducible, budget checks, and the auto rule."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from xai.behaviours import Prediction
from xai.errors import BudgetError, InputError, UnknownNameError
from xai.explainer import auto_estimator
from xai.features import FeatureMap
from xai.game import Game
from xai.models import as_model
from xai.removals import Baseline
from xai.summaries import KernelSHAP, RegressionAdjustedKernelSHAP

D = 8
BUDGET = 200  # below the 2^8 - 1 coalitions of full enumeration: the sampled path


def pairwise_mobius(rng, d):
    """Möbius coefficients with interactions of order <= 2 only."""
    m = np.zeros(2**d)
    sizes = np.array([t.bit_count() for t in range(2**d)])
    m[sizes <= 2] = rng.normal(size=(sizes <= 2).sum())
    return m


def prob_game(V, d, n=1):
    """A game on the probability scale: the table model returns P(class 1)."""
    from conftest import TableModel

    return Game(as_model(TableModel(V, d), output_kind="probability"), np.ones((n, d)),
                Baseline(0.0), Prediction(target=1, output="probability"), FeatureMap.tabular(d))


def test_exact_on_pairwise_games(games):
    rng = np.random.default_rng(0)
    m = pairwise_mobius(rng, D)
    res = RegressionAdjustedKernelSHAP(budget=BUDGET, seed=1, interactions=True)(
        games.mobius_game(m, D))
    assert res.extras["folds"] >= 2 and res.extras["link"] == "identity"
    np.testing.assert_allclose(res.values[0], games.shapley_mobius(m, D), atol=1e-8)
    np.testing.assert_allclose(res.stderr[0], 0, atol=1e-8)
    # additive game: also exact
    a = rng.normal(size=D)
    res = RegressionAdjustedKernelSHAP(budget=BUDGET, seed=2)(
        games.table_game(games.additive_table(a, 0.3), D))
    np.testing.assert_allclose(res.values[0], a, atol=1e-8)


def test_exact_on_sigmoid_of_pairwise_with_logit_link(games):
    """A probability whose logit is pairwise: the logit-scale surrogate is exact."""
    rng = np.random.default_rng(3)
    V = 1 / (1 + np.exp(-games.zeta(pairwise_mobius(rng, D), D)))
    game = prob_game(V, D)
    res = RegressionAdjustedKernelSHAP(budget=BUDGET, seed=0, interactions=True)(game)
    assert res.extras["link"] == "logit"
    np.testing.assert_allclose(res.values[0], games.shapley_bruteforce(V, D), atol=1e-8)
    # KernelSHAP on the same design is not exact here (odd interactions of order >= 3)
    ks = KernelSHAP(budget=BUDGET, seed=0)(prob_game(V, D))
    assert np.abs(ks.values[0] - games.shapley_bruteforce(V, D)).max() > 1e-6


def test_efficiency_and_same_seed(games):
    rng = np.random.default_rng(4)
    V = np.tanh(games.zeta(games.random_mobius(rng, D), D))
    a = RegressionAdjustedKernelSHAP(budget=BUDGET, seed=7)(games.table_game(V, D, n=2))
    b = RegressionAdjustedKernelSHAP(budget=BUDGET, seed=7)(games.table_game(V, D, n=2))
    c = RegressionAdjustedKernelSHAP(budget=BUDGET, seed=8)(games.table_game(V, D, n=2))
    np.testing.assert_allclose(a.values.sum(1), V[-1] - V[0], atol=1e-10)
    np.testing.assert_array_equal(a.values, b.values)
    np.testing.assert_array_equal(a.stderr, b.stderr)
    assert not np.array_equal(a.values, c.values)
    assert np.all(a.stderr > 0) and np.all(np.isfinite(a.stderr))


@pytest.fixture
def one_thread():
    """Tiny torch ops: one thread is several times faster on a shared machine."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def test_standard_errors_cover_the_truth(games, one_thread):
    """On a random non-polynomial game, 1.96 SE covers the truth about 95% of the time over
    seeds (and the mean over seeds is close: no material bias)."""
    rng = np.random.default_rng(11)
    V = 1 / (1 + np.exp(-2 * games.zeta(games.random_mobius(rng, D), D) / np.sqrt(D)))
    truth = games.shapley_bruteforce(V, D)
    game = prob_game(V, D)
    ests, ses = [], []
    for seed in range(100):
        game._clear_cache()
        res = RegressionAdjustedKernelSHAP(budget=BUDGET, seed=seed)(game)
        ests.append(res.values[0])
        ses.append(res.stderr[0])
    E, S = np.array(ests), np.array(ses)
    cover = np.mean(np.abs(E - truth) <= 1.96 * S)
    assert 0.90 <= cover <= 0.99, cover
    bias_z = np.abs(E.mean(0) - truth) / (E.std(0, ddof=1) / np.sqrt(len(E)))
    assert bias_z.max() < 4, bias_z


def test_budget_and_option_errors(games):
    game = games.table_game(games.additive_table(np.ones(D), 0.0), D)
    with pytest.raises(BudgetError, match="ra-kernelshap"):
        RegressionAdjustedKernelSHAP(budget=10, seed=0)(game)
    with pytest.raises(InputError, match="folds"):
        RegressionAdjustedKernelSHAP(folds=1)
    with pytest.raises(UnknownNameError):
        RegressionAdjustedKernelSHAP(link="probit")
    # a budget that covers every coalition: exact Shapley, SE 0
    res = RegressionAdjustedKernelSHAP(budget=2**D, seed=0)(game)
    np.testing.assert_allclose(res.values[0], 1.0, atol=1e-12)
    assert np.all(res.stderr == 0)


def test_auto_rule_picks_it_on_the_probability_scale(games):
    V = games.additive_table(np.full(D, 0.05), 0.3)
    assert auto_estimator(prob_game(V, D), budget=100) == "ra-kernelshap"
    assert auto_estimator(games.table_game(V, D), budget=100) == "kernelshap"
    assert auto_estimator(prob_game(V, D), budget=2**D) == "exact-shapley"
