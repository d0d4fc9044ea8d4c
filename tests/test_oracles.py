"""Oracles: Möbius forms, KernelSHAP at full budget, calibration of the standard errors and
the upstream ``shap`` explainers."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import xai
from xai.behaviours import Prediction
from xai.features import FeatureMap
from xai.game import Game
from xai.models import as_model
from xai.removals import Marginal
from xai.summaries import BanzhafMSR, ExactBanzhaf, ExactShapley, KernelSHAP, PermutationShapley

TOL = 1e-8


# ---- Möbius forms ----------------------------------------------------------------------------


@pytest.mark.parametrize("d,density", [(1, 1.0), (2, 1.0), (5, 1.0), (9, 1.0), (14, 0.002)])
def test_exact_shapley_and_banzhaf_mobius(games, d, density):
    rng = np.random.default_rng(100 + d)
    m = games.random_mobius(rng, d, density)
    g = games.mobius_game(m, d, n=2)
    sh = ExactShapley()(g)
    np.testing.assert_allclose(sh.values, np.tile(games.shapley_mobius(m, d), (2, 1)), atol=TOL)
    np.testing.assert_allclose(sh.base_values, m[0], atol=TOL)
    np.testing.assert_array_equal(sh.stderr, 0)
    bz = ExactBanzhaf()(g)
    np.testing.assert_allclose(bz.values, np.tile(games.banzhaf_mobius(m, d), (2, 1)), atol=TOL)


def test_mobius_helpers_agree_with_definition(games):
    """The oracle itself: Möbius form = Shapley's definition (a library-free double check)."""
    d = 5
    m = games.random_mobius(np.random.default_rng(1), d)
    V = games.zeta(m, d)
    np.testing.assert_allclose(games.shapley_mobius(m, d), games.shapley_bruteforce(V, d),
                               atol=1e-12)
    np.testing.assert_allclose(games.mobius(V, d), m, atol=1e-12)


def test_exact_shapley_multi_output(games):
    """``target="all"``: k independent games at once, values ``(n, d, k)``."""
    d, k = 6, 3
    m = games.random_mobius(np.random.default_rng(7), d, k=k)
    res = ExactShapley()(games.mobius_game(m, d, n=2))
    assert res.values.shape == (2, d, k)
    np.testing.assert_allclose(res.values[0], games.shapley_mobius(m, d), atol=TOL)
    np.testing.assert_allclose(res.values[1], games.shapley_mobius(m, d), atol=TOL)
    np.testing.assert_allclose(res.base_values, np.tile(m[0], (2, 1)), atol=TOL)


SAMPLERS = [
    ("permutation", lambda: PermutationShapley(budget=3000, seed=11), "shapley"),
    ("kernelshap", lambda: KernelSHAP(budget=600, seed=11), "shapley"),
    ("banzhaf-msr", lambda: BanzhafMSR(budget=3000, seed=11), "banzhaf"),
]


@pytest.mark.parametrize("name,make,kind", SAMPLERS, ids=[s[0] for s in SAMPLERS])
def test_samplers_within_se_of_mobius_truth(games, name, make, kind):
    """k = 5 random games (d = 10) explained together through ``target="all"``; every
    coordinate within 4 SE of the Möbius truth."""
    d, k = 10, 5
    rng = np.random.default_rng(21)
    m = games.random_mobius(rng, d, k=k) * (0.6 ** games.members(d).sum(1))[:, None]
    res = make()(games.mobius_game(m, d))
    truth = games.shapley_mobius(m, d) if kind == "shapley" else games.banzhaf_mobius(m, d)
    assert res.values.shape == (1, d, k)
    assert np.all(np.isfinite(res.stderr)) and np.all(res.stderr > 0)
    z = (res.values[0] - truth) / res.stderr[0]
    assert np.all(np.abs(z) < 4), z
    # the SEs are informative: not orders of magnitude above the actual error
    assert np.sqrt(np.mean(z**2)) > 0.3


# ---- KernelSHAP with full enumeration --------------------------------------------------------


@pytest.mark.parametrize("d", [2, 3, 4, 6, 9])
def test_kernelshap_full_budget_is_exact(games, d):
    m = games.random_mobius(np.random.default_rng(50 + d), d)
    g = games.mobius_game(m, d, n=2)
    res = KernelSHAP(budget=2**d, seed=0)(g)  # (2^d - 1) K + 1 rows at K = 1
    np.testing.assert_allclose(res.values, np.tile(games.shapley_mobius(m, d), (2, 1)),
                               atol=TOL)
    np.testing.assert_array_equal(res.stderr, 0)
    np.testing.assert_allclose(res.base_values, m[0], atol=TOL)


@pytest.mark.parametrize("d", [1, 2, 3])
def test_kernelshap_small_d_minimum_budget_is_exact(games, d):
    m = games.random_mobius(np.random.default_rng(60 + d), d)
    res = KernelSHAP(budget=2 + 2 * (d + 1), seed=0)(games.mobius_game(m, d))
    np.testing.assert_allclose(res.values[0], games.shapley_mobius(m, d), atol=TOL)


def test_kernelshap_full_budget_with_background():
    """Full budget in rows under a K-row background: ``(2^d - 1) K + 1``."""
    rng = np.random.default_rng(5)
    d, K = 5, 7
    B, X = rng.normal(size=(K, d)), rng.normal(size=(3, d))

    def f(A):
        return np.tanh(A @ np.arange(1.0, d + 1)) + A[:, 0] * A[:, 1] ** 2

    def game():
        return Game(as_model(f), X, Marginal(B), Prediction(), FeatureMap.tabular(d))

    exact = ExactShapley()(game()).values
    res = KernelSHAP(budget=(2**d - 1) * K + 1, seed=0)(game())
    np.testing.assert_allclose(res.values, exact, atol=TOL)


def test_kernelshap_sampled_exact_on_additive_game(games):
    """Below full budget the regression is still exact (zero residuals) on additive games."""
    d = 10
    a = np.random.default_rng(3).normal(size=d)
    res = KernelSHAP(budget=200, seed=2)(games.table_game(games.additive_table(a, 1.0), d))
    assert res.extras.get("enumerated_sizes") != list(range(1, d))  # really sampled
    np.testing.assert_allclose(res.values[0], a, atol=TOL)
    assert np.all(res.stderr < 1e-6)


# ---- calibration -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def calibration_game(games):
    d = 8
    rng = np.random.default_rng(13)
    m = games.random_mobius(rng, d) * 0.5 ** games.members(d).sum(1)
    return d, games.zeta(m, d), games.shapley_mobius(m, d), games.banzhaf_mobius(m, d)


COVERAGE: dict[str, float] = {}


@pytest.mark.parametrize("name", ["kernelshap", "permutation", "banzhaf-msr"])
def test_standard_errors_are_calibrated(games, calibration_game, name):
    """Over 300 seeds x 8 coordinates the fraction with ``|err| <= 1.96 SE`` lies in
    ``[0.90, 0.985]`` (nominal 0.95)."""
    d, V, phi, banz = calibration_game
    make = {"kernelshap": lambda s: KernelSHAP(budget=160, seed=s),
            "permutation": lambda s: PermutationShapley(budget=300, seed=s),
            "banzhaf-msr": lambda s: BanzhafMSR(budget=300, seed=s)}[name]
    truth = banz if name == "banzhaf-msr" else phi
    hits = []
    for seed in range(300):
        res = make(seed)(games.table_game(V, d))
        assert np.all(res.stderr > 0)
        hits.append(np.abs(res.values[0] - truth) <= 1.96 * res.stderr[0])
    coverage = float(np.mean(hits))
    COVERAGE[name] = coverage
    print(f"coverage {name}: {coverage:.4f}")
    assert 0.90 <= coverage <= 0.985, coverage


# ---- upstream shap ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def mlp_models():
    from sklearn.neural_network import MLPClassifier, MLPRegressor

    rng = np.random.default_rng(15)
    d = 6
    X = rng.normal(size=(300, d))
    t = np.tanh(X @ rng.normal(size=d)) + X[:, 0] * X[:, 1]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reg = MLPRegressor(hidden_layer_sizes=(16,), max_iter=300, random_state=0).fit(X, t)
        clf = MLPClassifier(hidden_layer_sizes=(16,), max_iter=300, random_state=0).fit(
            X, (t > 0).astype(int))
    return X, reg, clf


def test_exact_shapley_equals_shap_exact_explainer(mlp_models):
    shap = pytest.importorskip("shap")
    X, reg, clf = mlp_models
    B, rows = X[:20], X[200:202]
    for f in (reg.predict, lambda A: clf.predict_proba(A)[:, 1]):
        ours = xai.explain(f, rows, method="exact-shap", background=B, progress=False)
        ref = shap.ExactExplainer(f, shap.maskers.Independent(B, max_samples=len(B)))(rows)
        np.testing.assert_allclose(ours.values, ref.values, atol=TOL)
        np.testing.assert_allclose(ours.base_values, ref.base_values, atol=TOL)


def test_full_budget_kernelshap_equals_shap_kernel_explainer(mlp_models):
    """shap's Kernel with ``nsamples = 2^d`` enumerates every subset (it caps the sample count
    at ``2^d - 2`` and all size pairs fit), and with ``l1_reg=False`` solves the constrained
    regression exactly, so both are exact Shapley."""
    shap = pytest.importorskip("shap")
    X, reg, clf = mlp_models
    d = X.shape[1]
    B, rows = X[:25], X[210:213]
    for f in (reg.predict, lambda A: clf.predict_proba(A)[:, 1]):
        ours = xai.explain(f, rows, method="kernelshap", background=B,
                           budget=(2**d - 1) * len(B) + 1, seed=0, progress=False)
        ke = shap.KernelExplainer(f, B)
        ref = np.asarray(ke.shap_values(rows, nsamples=2**d, l1_reg=False, silent=True))
        np.testing.assert_allclose(ours.values, ref, atol=TOL)
        np.testing.assert_allclose(ours.base_values, ke.expected_value, atol=TOL)
