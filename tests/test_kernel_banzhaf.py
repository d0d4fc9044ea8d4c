"""Kernel Banzhaf (:mod:`xai.summaries.kernel_banzhaf`): exact Banzhaf values when the budget
covers every coalition (against a brute-force definition and the Möbius closed form), the
terms of an additive game from sampled pairs, lower error than maximum sample reuse at equal
budget, calibrated standard errors, the ``banzhaf`` preset's ``estimator`` option and the
conformance checks."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

import xai
from xai import conformance
from xai.behaviours import Prediction
from xai.errors import BudgetError, UnknownNameError
from xai.features import FeatureMap
from xai.game import Game
from xai.models import as_model
from xai.removals import Baseline
from xai.summaries.banzhaf import BanzhafMSR
from xai.summaries.exact import ExactBanzhaf
from xai.summaries.kernel_banzhaf import KernelBanzhaf

TOL = 1e-10


def banzhaf_bruteforce(V: np.ndarray, d: int) -> np.ndarray:
    """``b_i = 2^-(d-1) Σ_{S ∌ i} (V[S ∪ i] - V[S])`` by a loop over the coalitions."""
    b = np.zeros(d)
    for i in range(d):
        for S in range(2**d):
            if not S >> i & 1:
                b[i] += V[S | 1 << i] - V[S]
    return b / 2 ** (d - 1)


@pytest.mark.parametrize("d", [1, 2, 3, 5, 8])
def test_budget_covering_every_coalition_gives_exact_banzhaf(games, d):
    m = games.random_mobius(np.random.default_rng(70 + d), d)
    V = games.zeta(m, d)
    res = KernelBanzhaf(budget=2**d, seed=0)(games.table_game(V, d, n=2))
    truth = banzhaf_bruteforce(V, d)
    np.testing.assert_allclose(truth, games.banzhaf_mobius(m, d), atol=TOL)
    np.testing.assert_allclose(res.values, np.tile(truth, (2, 1)), atol=TOL)
    np.testing.assert_array_equal(res.stderr, 0)
    np.testing.assert_allclose(res.base_values, m[0], atol=TOL)  # v(∅)


def test_additive_game_gives_its_terms_from_sampled_pairs(games):
    """Banzhaf values of ``v(S) = c + Σ_{i∈S} a_i`` are the ``a_i``; the regression recovers
    them from fewer pairs than coalitions, with zero residuals and so zero SE."""
    d = 12
    a = np.random.default_rng(3).normal(size=d)
    res = KernelBanzhaf(budget=200, seed=1)(games.table_game(games.additive_table(a, 0.7), d))
    assert res.coalitions[0] < 2**d
    np.testing.assert_allclose(res.values[0], a, atol=1e-10)
    assert res.stderr.max() < 1e-7


def test_sampled_estimate_is_close_to_the_truth_on_random_games(games):
    """Several outputs (``target="all"``): each coordinate within 4 SE of the Möbius truth."""
    d, k = 10, 4
    rng = np.random.default_rng(21)
    m = games.random_mobius(rng, d, k=k) * (0.6 ** games.members(d).sum(1))[:, None]
    res = KernelBanzhaf(budget=600, seed=11)(games.mobius_game(m, d))
    assert res.values.shape == (1, d, k)
    assert np.all(np.isfinite(res.stderr)) and np.all(res.stderr > 0)
    z = (res.values[0] - games.banzhaf_mobius(m, d)) / res.stderr[0]
    assert np.all(np.abs(z) < 4), z
    assert np.sqrt(np.mean(z**2)) > 0.3  # informative, not inflated


def _mlp_game(d: int, n: int) -> Game:
    """A random tanh MLP with pairwise and higher-order interactions, fixed baseline 0."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(d, 32), torch.nn.Tanh(),
                                torch.nn.Linear(32, 16), torch.nn.Tanh(),
                                torch.nn.Linear(16, 1)).double()
    X = np.random.default_rng(4).normal(size=(n, d)) * 1.5
    return Game(as_model(model), X, Baseline(0.0), Prediction(), FeatureMap.tabular(d))


ERRORS: dict[str, float] = {}


def test_error_at_equal_budget_is_below_maximum_sample_reuse():
    """On a nonlinear game (an MLP, d = 10, 8 points, 6 seeds, 400 rows), the mean relative
    L2 error of Kernel Banzhaf is below maximum sample reuse's (0.009 against 0.13 here)."""
    d, n, budget = 10, 8, 400
    truth = ExactBanzhaf()(_mlp_game(d, n)).values
    errs = {"kernel-banzhaf": [], "banzhaf-msr": []}
    for seed in range(6):
        for name, cls in (("kernel-banzhaf", KernelBanzhaf), ("banzhaf-msr", BanzhafMSR)):
            game = _mlp_game(d, n)
            est = cls(budget=budget, seed=seed)(game).values
            assert game.rows_evaluated <= budget * n
            errs[name].append(np.linalg.norm(est - truth, axis=1) /
                              np.linalg.norm(truth, axis=1))
    ERRORS.update({k: float(np.mean(v)) for k, v in errs.items()})
    print("relative L2 error at 400 rows:", ERRORS)
    assert ERRORS["kernel-banzhaf"] < 0.7 * ERRORS["banzhaf-msr"]


def test_standard_errors_cover_at_the_nominal_rate(games):
    """Over 60 seeds x 5 games x 8 coordinates the fraction with ``|err| <= 1.96 SE`` lies in
    ``[0.93, 0.97]`` (nominal 0.95)."""
    d, k = 8, 5
    rng = np.random.default_rng(13)
    m = games.random_mobius(rng, d, k=k) * (0.5 ** games.members(d).sum(1))[:, None]
    truth = games.banzhaf_mobius(m, d)
    V = games.zeta(m, d)
    hits = []
    for seed in range(60):
        res = KernelBanzhaf(budget=160, seed=seed)(games.table_game(V, d))
        assert np.all(res.stderr > 0)
        hits.append(np.abs(res.values[0] - truth) <= 1.96 * res.stderr[0])
    coverage = float(np.mean(hits))
    print(f"coverage kernel-banzhaf: {coverage:.4f}")
    assert 0.93 <= coverage <= 0.97, coverage


def test_a_row_explained_alone_equals_the_same_row_in_a_batch():
    game = _mlp_game(10, 5)
    batch = KernelBanzhaf(budget=300, seed=2)(game)
    alone = KernelBanzhaf(budget=300, seed=2)(_mlp_game(10, 5), np.array([3]))
    np.testing.assert_array_equal(alone.values[0], batch.values[3])
    np.testing.assert_array_equal(alone.stderr[0], batch.stderr[0 + 3])


def test_too_small_budget_is_a_budget_error(games):
    d = 12
    game = games.table_game(games.additive_table(np.ones(d), 0.0), d)
    with pytest.raises(BudgetError, match="kernel-banzhaf"):
        KernelBanzhaf(budget=20, seed=0)(game)
    assert game.rows_evaluated == 0


def test_banzhaf_preset_takes_the_estimator_option():
    """``method="banzhaf"`` with ``estimator="kernel"`` runs Kernel Banzhaf (exact on this
    linear model, ``w_i (x_i - b_i)``); the explanation names the estimator; an unknown
    estimator is refused by name."""
    w = np.array([1.5, -2.0, 0.0, 0.5, 1.0, -0.3])
    X = np.random.default_rng(0).normal(size=(3, 6))
    base = np.full(6, 0.25)
    expl = xai.Explainer("baseline", "prediction", "banzhaf", estimator="kernel",
                         baseline=base, budget=40, seed=0, progress=False).explain(
        lambda Z: Z @ w, X)
    assert expl.summary["name"] == "kernel-banzhaf"
    np.testing.assert_allclose(expl.values, w * (X - base), atol=1e-10)
    default = xai.explain(lambda Z: Z @ w, X, method="banzhaf", background=X, budget=200,
                          seed=0, progress=False)
    assert default.summary["name"] == "banzhaf-msr"
    kernel = xai.explain(lambda Z: Z @ w, X, method="banzhaf", background=X, budget=200,
                         estimator="kernel", seed=0, progress=False)
    assert kernel.summary["name"] == "kernel-banzhaf"
    assert kernel.options["estimator"] == "kernel-banzhaf"
    with pytest.raises(UnknownNameError, match="kernel"):
        xai.explain(lambda Z: Z @ w, X, method="banzhaf", background=X, estimator="kernal",
                    progress=False)


@pytest.mark.parametrize("name", ["kernel-banzhaf", "banzhaf"])
def test_passes_the_conformance_checks(name):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        conformance.check("summary", name)
