"""Closed forms: additive games, interventional SHAP and Banzhaf of linear models, occlusion,
SAGE and permutation importance, conditional Gaussian, antithetic pairs, SHAP-KL and Sobol.

Exact statements are checked to float tolerance (float64); sampled ones within a few of the
summary's own standard errors.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn.linear_model import LinearRegression, LogisticRegression

import xai
from xai.behaviours import KL, DatasetLoss, Prediction
from xai.features import FeatureMap
from xai.game import DatasetGame, Game
from xai.models import as_model
from xai.removals import Baseline, ConditionalGaussian, Marginal, ProductMarginal
from xai.summaries import (
    LIME,
    RISE,
    BanzhafMSR,
    ExactBanzhaf,
    ExactShapley,
    IncludeIndividual,
    KernelSHAP,
    PermutationShapley,
    RemoveIndividual,
    SobolTotal,
)

TOL = 1e-8


def linear(w, c):
    w = np.asarray(w, dtype=np.float64)
    return lambda A: A @ w + c


def tab_game(fn, X, removal, **kw):
    X = np.asarray(X, dtype=np.float64)
    return Game(as_model(fn), X, removal, Prediction(), FeatureMap.tabular(X.shape[1]), **kw)


# ---- additive game ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def additive():
    rng = np.random.default_rng(2)
    d = 6
    return rng.normal(size=d), 0.7, d


@pytest.mark.parametrize("summary", [ExactShapley(), ExactBanzhaf(), RemoveIndividual(),
                                     IncludeIndividual(),
                                     PermutationShapley(budget=400, seed=1),
                                     KernelSHAP(budget=40, seed=1)],
                         ids=lambda s: s.name)
def test_additive_game_all_semivalues_equal_a(games, additive, summary):
    a, c, d = additive
    g = games.table_game(games.additive_table(a, c), d, n=2)
    res = summary(g)
    np.testing.assert_allclose(res.values, np.tile(a, (2, 1)), atol=TOL)
    if summary.name in ("exact-shapley", "include-individual", "permutation-shapley",
                        "kernelshap"):
        np.testing.assert_allclose(res.base_values, c, atol=TOL)
    if summary.name in ("permutation-shapley", "kernelshap"):
        assert np.all(res.stderr < 1e-6)


def test_banzhaf_msr_additive_within_se(games, additive):
    a, c, d = additive
    res = BanzhafMSR(budget=3000, seed=3)(games.table_game(games.additive_table(a, c), d))
    z = (res.values[0] - a) / res.stderr[0]
    assert np.all(np.abs(z) < 4), z


def test_lime_alpha0_recovers_additive_game(games, additive):
    a, c, d = additive
    g = games.table_game(games.additive_table(a, c), d, n=2)
    res = LIME(alpha=0.0, budget=300, seed=0)(g)
    np.testing.assert_allclose(res.values, np.tile(a, (2, 1)), atol=TOL)
    np.testing.assert_allclose(res.base_values, c, atol=TOL)
    np.testing.assert_allclose(res.extras["score"], 1.0, atol=TOL)


@pytest.mark.parametrize("p", [0.5, 0.3])
@pytest.mark.parametrize("normalize", ["expectation", "self"])
def test_rise_binary_masks_expectation(games, additive, p, normalize):
    """``E[v(M) M_i]/p = c + a_i + p sum_{j != i} a_j = c + (1-p) a_i + p sum_j a_j``."""
    a, c, d = additive
    g = games.table_game(games.additive_table(a, c), d)
    res = RISE(budget=6000, seed=4, p=p, normalize=normalize)(g)
    expected = c + (1 - p) * a + p * a.sum()
    z = (res.values[0] - expected) / res.stderr[0]
    assert np.all(np.abs(z) < 4), z


# ---- interventional SHAP of a linear model ---------------------------------------------------


@pytest.fixture(scope="module")
def lin():
    rng = np.random.default_rng(3)
    d = 5
    w = rng.normal(size=d)
    c = 0.4
    B = rng.normal(size=(40, d)) * np.arange(1, d + 1) + 1.0
    X = rng.normal(size=(7, d)) * 2
    return w, c, B, X


def test_marginal_exact_shapley_linear(lin):
    w, c, B, X = lin
    res = ExactShapley()(tab_game(linear(w, c), X, Marginal(B)))
    np.testing.assert_allclose(res.values, w * (X - B.mean(0)), atol=TOL)
    np.testing.assert_allclose(res.base_values, B.mean(0) @ w + c, atol=TOL)


def test_explain_exact_shap_sklearn_linear_regression(lin):
    w, c, B, X = lin
    rng = np.random.default_rng(0)
    Xtr = rng.normal(size=(50, len(w)))
    lr = LinearRegression().fit(Xtr, Xtr @ w + c + 0.1 * rng.normal(size=50))
    e = xai.explain(lr, X, method="exact-shap", background=B, progress=False)
    np.testing.assert_allclose(e.values, lr.coef_ * (X - B.mean(0)), atol=TOL)
    np.testing.assert_allclose(e.base_values, B.mean(0) @ lr.coef_ + lr.intercept_, atol=TOL)
    np.testing.assert_allclose(e.values.sum(1) + e.base_values, lr.predict(X), atol=TOL)


def test_baseline_removal_linear(lin):
    w, c, _B, X = lin
    r = np.linspace(-1, 1, len(w))
    res = ExactShapley()(tab_game(linear(w, c), X, Baseline(r)))
    np.testing.assert_allclose(res.values, w * (X - r), atol=TOL)
    np.testing.assert_allclose(res.base_values, r @ w + c, atol=TOL)


def test_product_marginal_linear(lin):
    """Product of marginals with K draws is a marginal over the drawn values: for a linear
    model ``phi_i = w_i (x_i - mean_k B[draw_ki, i])`` exactly, and ``w_i (x_i - mean B_i)``
    (the marginal result) up to the Monte Carlo error of the K draws."""
    w, c, B, X = lin
    removal = ProductMarginal(B, n_samples=4000)
    res = ExactShapley()(tab_game(linear(w, c), X, removal))
    draws = removal.draws.numpy()[:, : len(w)]
    drawn_mean = B[draws, np.arange(len(w))].mean(0)
    np.testing.assert_allclose(res.values, w * (X - drawn_mean), atol=TOL)
    marginal = ExactShapley()(tab_game(linear(w, c), X, Marginal(B))).values
    se = np.abs(w) * B.std(0, ddof=1) / np.sqrt(4000)
    assert np.all(np.abs(res.values - marginal) <= 4 * se + TOL)


# ---- Banzhaf ---------------------------------------------------------------------------------


def test_banzhaf_linear_equals_shapley(lin):
    w, c, B, X = lin
    g = tab_game(linear(w, c), X, Marginal(B))
    np.testing.assert_allclose(ExactBanzhaf()(g).values, w * (X - B.mean(0)), atol=TOL)
    res = BanzhafMSR(budget=1500 * len(B), seed=2)(g)
    z = (res.values - w * (X - B.mean(0))) / res.stderr
    assert np.all(np.abs(z) < 4.5), z


def test_banzhaf_merging_two_players(games):
    """2-efficiency of Banzhaf: merging players i, j into one gives ``b_i + b_j`` (any game)."""
    rng = np.random.default_rng(5)
    d = 6
    m = games.random_mobius(rng, d)
    V = games.zeta(m, d)
    b = ExactBanzhaf()(games.table_game(V, d)).values[0]
    groups = {"g01": [0, 3], "g1": [1], "g2": [2], "g4": [4], "g5": [5]}
    model = games.TableModel(V, d)
    g = Game(as_model(model), np.ones((1, d)), Baseline(0.0), Prediction(),
             FeatureMap.groups(groups, d))
    merged = ExactBanzhaf()(g).values[0]
    np.testing.assert_allclose(merged[0], b[0] + b[3], atol=TOL)


# ---- occlusion -------------------------------------------------------------------------------


def test_occlusion_linear_and_groups(lin):
    w, c, _B, X = lin
    r = np.array([0.5, -1.0, 2.0, 0.0, 1.5])
    res = RemoveIndividual()(tab_game(linear(w, c), X, Baseline(r)))
    np.testing.assert_allclose(res.values, w * (X - r), atol=TOL)
    groups = {"a": [0, 2], "b": [1], "c": [3, 4]}
    g = Game(as_model(linear(w, c)), X, Baseline(r), Prediction(),
             FeatureMap.groups(groups, len(w)))
    contrib = w * (X - r)
    expected = np.stack([contrib[:, [0, 2]].sum(1), contrib[:, 1], contrib[:, [3, 4]].sum(1)], 1)
    np.testing.assert_allclose(RemoveIndividual()(g).values, expected, atol=TOL)


def test_occlusion_preset(lin):
    w, c, B, X = lin
    lr = LinearRegression()
    lr.coef_, lr.intercept_, lr.n_features_in_ = w, c, len(w)
    r = np.array([0.5, -1.0, 2.0, 0.0, 1.5])
    e = xai.explain(lr, X, method="occlusion", baseline=r, progress=False)
    np.testing.assert_allclose(e.values, w * (X - r), atol=TOL)
    # default baseline: the background mean; feature groups through features=
    e = xai.explain(lr, X, method="feature-ablation", background=B,
                    features={"a": [0, 2], "b": [1], "c": [3, 4]}, progress=False)
    contrib = w * (X - B.mean(0))
    expected = np.stack([contrib[:, [0, 2]].sum(1), contrib[:, 1], contrib[:, [3, 4]].sum(1)], 1)
    np.testing.assert_allclose(e.values, expected, atol=TOL)


# ---- SAGE and permutation importance ---------------------------------------------------------


@pytest.fixture(scope="module")
def orthogonal_data():
    """Columns exactly uncorrelated in the sample (so the E-pred dataset game is exactly
    additive), y = f(x) without noise."""
    rng = np.random.default_rng(7)
    n, d = 100, 3
    Z = rng.normal(size=(n, d))
    Q, _ = np.linalg.qr(np.column_stack([np.ones(n), Z]))  # columns 1.. orthogonal to ones
    X = Q[:, 1:] * np.sqrt(n) * np.array([1.0, 0.7, 1.3]) + np.array([1.0, -2.0, 0.5])
    w = np.array([2.0, 1.0, -0.5])
    c = 0.3
    return X, X @ w + c, w, c


def test_sage_exact_dataset_game_closed_form(orthogonal_data):
    X, y, w, c = orthogonal_data
    g = DatasetGame(Game(as_model(linear(w, c)), X, Marginal(X), DatasetLoss(),
                         FeatureMap.tabular(3), y=y))
    res = ExactShapley()(g)
    var = X.var(0)
    np.testing.assert_allclose(res.values[0], w**2 * var, atol=TOL)
    np.testing.assert_allclose(res.values[0].sum(), (X @ w).var(), atol=TOL)
    # E-pred remove-individual gives the same on this additive game
    np.testing.assert_allclose(RemoveIndividual()(g).values[0], w**2 * var, atol=TOL)


def test_sage_preset_within_se(orthogonal_data):
    X, y, w, _c = orthogonal_data
    lr = LinearRegression().fit(X, y)
    e = xai.explain(lr, X, method="sage", y=y, background=X, seed=0, progress=False)
    truth = w**2 * X.var(0)
    z = (e.values[0] - truth) / e.stderr[0]
    assert np.all(np.abs(z) < 4), (e.values, truth, e.stderr)
    # stopped on the SAGE relative rule: max SE < 0.025 (max phi - min phi)
    assert e.converged[0]
    assert e.stderr.max() < 0.025 * np.ptp(e.values[0])


def test_permutation_importance_twice_sage(orthogonal_data):
    """In-sample column permutations: expectation ``2 w_i^2 Var_n(x_i)`` (no noise)."""
    X, y, w, _c = orthogonal_data
    lr = LinearRegression().fit(X, y)
    e = xai.explain(lr, X, method="permutation-importance", y=y, seed=1, n_repeats=30,
                    progress=False)
    truth = 2 * w**2 * X.var(0)
    assert e.extras["importances"].shape[0] == 30
    z = (e.values[0] - truth) / e.stderr[0]
    assert np.all(np.abs(z) < 4), (e.values, truth, e.stderr)


# ---- conditional Gaussian --------------------------------------------------------------------


def exact_gaussian_background(rho, n=200, seed=8):
    """Rows with sample mean exactly 0 and sample covariance (ddof=1) exactly [[1, rho],
    [rho, 1]]."""
    Z = np.random.default_rng(seed).normal(size=(n, 2))
    Z -= Z.mean(0)
    Z = Z @ np.linalg.inv(np.linalg.cholesky(np.cov(Z, rowvar=False))).T
    return Z @ np.linalg.cholesky(np.array([[1.0, rho], [rho, 1.0]])).T


@pytest.mark.parametrize("w", [(1.5, -0.7), (2.0, 0.0)])
def test_conditional_gaussian_closed_form(w):
    rho = 0.6
    B = exact_gaussian_background(rho)
    X = np.array([[0.8, -1.2], [-0.3, 0.4], [1.5, 1.0]])
    w1, w2 = w
    res = ExactShapley()(tab_game(linear(w, 0.2), X,
                                  ConditionalGaussian(B, n_samples=0, ridge=0.0)))
    x1, x2 = X[:, 0], X[:, 1]
    phi1 = w1 * x1 + rho / 2 * (w2 * x1 - w1 * x2)
    phi2 = w2 * x2 + rho / 2 * (w1 * x2 - w2 * x1)
    np.testing.assert_allclose(res.values, np.stack([phi1, phi2], 1), atol=TOL)
    np.testing.assert_allclose(res.base_values, 0.2, atol=TOL)
    if w2 == 0:  # removal-level dummy fails: the ignored feature gets (rho/2) w1 x2
        np.testing.assert_allclose(res.values[:, 1], rho / 2 * w1 * x2, atol=TOL)
        assert np.all(np.abs(res.values[:, 1]) > 0.01)


# ---- one antithetic pair ---------------------------------------------------------------------


def test_antithetic_pair_exact_for_pairwise_games():
    rng = np.random.default_rng(9)
    d = 7
    a = rng.normal(size=d)
    Bm = np.triu(rng.normal(size=(d, d)), 1)
    Bm = Bm + Bm.T

    def f(A):
        return A @ a + 0.5 * np.einsum("ri,ij,rj->r", A, Bm, A) + 1.0

    g = tab_game(f, np.ones((2, d)), Baseline(0.0))
    summary = PermutationShapley(budget=(4 * (d - 1) + 1) + 1, seed=3, min_units=1)
    res = summary(g)
    assert np.all(res.units == 2)
    np.testing.assert_allclose(res.values, np.tile(a + 0.5 * Bm.sum(1), (2, 1)), atol=TOL)
    assert np.all(res.stderr < 1e-7)


# ---- SHAP-KL ---------------------------------------------------------------------------------


def test_shap_kl_sums_to_kl_of_empty():
    rng = np.random.default_rng(11)
    Xtr = rng.normal(size=(200, 4))
    ytr = (Xtr[:, 0] + Xtr[:, 1] * Xtr[:, 2] > 0).astype(int) + (Xtr[:, 3] > 1)
    clf = LogisticRegression(max_iter=500).fit(Xtr, ytr)
    B, X = Xtr[:30], Xtr[100:106]
    e = xai.explain(clf, X, method="shap-kl", background=B, progress=False)
    p = clf.predict_proba(X)
    q = clf.predict_proba(B).mean(0)
    kl = (p * (np.log(p) - np.log(q))).sum(1)
    assert np.all(kl >= 0)
    np.testing.assert_allclose(e.values.sum(1), kl, atol=TOL)
    np.testing.assert_allclose(e.base_values, -kl, atol=TOL)


def test_shap_kl_constant_model_gives_zeros():
    X = np.random.default_rng(0).normal(size=(4, 3))
    probs = np.array([0.2, 0.5, 0.3])

    def f(A):
        return np.tile(probs, (A.shape[0], 1))

    g = Game(as_model(f, output_kind="probability"), X, Marginal(X), KL(), FeatureMap.tabular(3))
    res = ExactShapley()(g)
    np.testing.assert_allclose(res.values, 0.0, atol=1e-12)
    np.testing.assert_allclose(res.base_values, 0.0, atol=1e-12)


# ---- Sobol -----------------------------------------------------------------------------------


def ishigami(M, a=7.0, b=0.1):
    x = -np.pi + 2 * np.pi * M
    return np.sin(x[:, 0]) + a * np.sin(x[:, 1]) ** 2 + b * x[:, 2] ** 4 * np.sin(x[:, 0])


def test_sobol_ishigami_total_indices():
    g = tab_game(ishigami, np.ones((1, 3)), Baseline(0.0))
    res = SobolTotal(n_rows=512, replicates=16, seed=12)(g)
    truth = np.array([0.5576, 0.4424, 0.2437])
    z = (res.values[0] - truth) / res.stderr[0]
    assert np.all(np.abs(z) < 4), (res.values, res.stderr)
    assert np.all(res.stderr[0] < 0.05)


def test_sobol_binary_design_additive_game(games, additive):
    a, c, d = additive
    g = games.table_game(games.additive_table(a, c), d)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no zero-variance warning expected
        res = SobolTotal(design="binary", n_rows=256, replicates=16, seed=5)(g)
    truth = a**2 / (a**2).sum()
    z = (res.values[0] - truth) / res.stderr[0]
    assert np.all(np.abs(z) < 4), (res.values, truth, res.stderr)
