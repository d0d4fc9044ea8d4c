"""Pairwise Shapley interactions (method shap-interactions) against truth: the closed form of a
quadratic game, efficiency, shapiq's exact computer on identical games, and the sampled
estimator's standard errors over seeds."""

from __future__ import annotations

import numpy as np
import pytest

import xai
from xai.errors import BudgetError, OptionError, UnknownNameError
from xai.summaries.interaction_indices import EFFICIENT, INDICES
from xai.summaries.interactions import ShapleyInteractions

D = 6
RNG = np.random.default_rng(0)
A, B, C = RNG.normal(size=(D, 5)), RNG.normal(size=5), RNG.normal(size=5)
X = RNG.normal(size=(3, D))


def mlp(Z: np.ndarray) -> np.ndarray:
    """A small fixed network's probability: a game with interactions of every order."""
    return 1.0 / (1.0 + np.exp(-(np.tanh(Z @ A + B) @ C)))


def interactions(f, Z, baseline, kind="probability", **options) -> xai.Explanation:
    return xai.Explainer(removal="baseline", summary="shap-interactions", baseline=baseline,
                         **options).explain(f, Z, output_kind=kind)


def flat(expl: xai.Explanation) -> tuple[np.ndarray, np.ndarray]:
    """Main effects and pairs ``i < j`` as ``(n, d + P)``, and their standard errors."""
    i, j = np.triu_indices(expl.values.shape[1], 1)
    return (np.concatenate([expl.values, expl.interactions[:, i, j]], axis=1),
            np.concatenate([expl.stderr, expl.interaction_stderr[:, i, j]], axis=1))


def shapiq_exact(f, x: np.ndarray, baseline: np.ndarray, index: str) -> np.ndarray:
    """shapiq's ExactComputer on the same game ``T -> f(x on T, baseline elsewhere)``."""
    shapiq = pytest.importorskip("shapiq")
    d = len(x)
    iv = shapiq.ExactComputer(lambda T: f(np.where(T, x, baseline)), n_players=d)(index, order=2)
    look = iv.interaction_lookup
    i, j = np.triu_indices(d, 1)
    return np.array([iv.values[look[(k,)]] for k in range(d)] +
                    [iv.values[look[(int(a), int(b))]] for a, b in zip(i, j)])


@pytest.mark.parametrize("index", INDICES)
def test_quadratic_game_has_its_closed_form(index):
    # f = w.x + x'Wx with baseline 0 is 2-additive: Möbius terms a_i = w_i x_i + W_ii x_i^2,
    # a_ij = (W_ij + W_ji) x_i x_j. Every index's pairs are a_ij; main effects are a_i for the
    # efficient indices (k-SII, STII, FSII) and a_i + sum_j a_ij / 2 for SII and BII.
    rng = np.random.default_rng(1)
    w, W = rng.normal(size=D), rng.normal(size=(D, D))
    e = interactions(lambda Z: Z @ w + np.einsum("ni,ij,nj->n", Z, W, Z), X, np.zeros(D),
                     index=index, kind="raw")
    pairs = (W + W.T) * X[:, :, None] * X[:, None, :]
    pairs[:, np.arange(D), np.arange(D)] = 0.0
    main = w * X + np.diagonal(W) * X**2
    if index in ("SII", "BII"):
        main = main + pairs.sum(2) / 2
    np.testing.assert_allclose(e.interactions, pairs, atol=1e-12)
    np.testing.assert_allclose(e.values, main, atol=1e-12)
    assert e.interaction_stderr is not None and not e.interaction_stderr.any()


@pytest.mark.parametrize("index", EFFICIENT)
def test_efficient_indices_sum_to_the_prediction_gap(index):
    e = interactions(mlp, X, np.zeros(D), index=index)
    i, j = np.triu_indices(D, 1)
    total = e.values.sum(1) + e.interactions[:, i, j].sum(1)
    np.testing.assert_allclose(total, mlp(X) - mlp(np.zeros((1, D))), atol=1e-12)
    np.testing.assert_allclose(e.base_values, mlp(np.zeros((1, D))).repeat(len(X)))


@pytest.mark.parametrize("index", INDICES)
def test_exact_values_equal_shapiq(index):
    baseline = RNG.normal(size=D)
    e = interactions(mlp, X, baseline, index=index)
    ours, _ = flat(e)
    for r, x in enumerate(X):
        np.testing.assert_allclose(ours[r], shapiq_exact(mlp, x, baseline, index), atol=1e-10)
    np.testing.assert_allclose(e.interactions, e.interactions.transpose(0, 2, 1))


@pytest.mark.parametrize("index,link,folds", [
    ("k-SII", "logit", 2), ("k-SII", "identity", 2), ("k-SII", "auto", 4), ("FSII", "auto", 2),
    ("STII", "auto", 2), ("SII", "auto", 2), ("BII", "identity", 2)])
def test_sampled_standard_errors_cover_shapiq_truth(index, link, folds):
    # 8 features, 150 rows: strata enumerated at both ends, the rest sampled. Over 24 seeds
    # about 95% of the sampled values lie within 1.96 standard errors of shapiq's exact values
    # (those with a zero standard error come from enumerated strata alone and are exact), and
    # the mean over seeds is closer to the truth than one seed (no bias).
    d = 8
    rng = np.random.default_rng(2)
    A8, Z = rng.normal(size=(d, 5)), rng.normal(size=(2, d))

    def f(M):
        return 1.0 / (1.0 + np.exp(-(np.tanh(M @ A8 + B) @ C)))

    truth = np.stack([shapiq_exact(f, z, np.zeros(d), index) for z in Z])
    est, cover, err = [], [], []
    for seed in range(24):
        e = interactions(f, Z, np.zeros(d), index=index, estimator="sampled", budget=150,
                         seed=seed, link=link, folds=folds)
        values, se = flat(e)
        np.testing.assert_allclose(values[se == 0], truth[se == 0], atol=1e-12)
        est.append(values)
        cover.append((np.abs(values - truth) <= 1.96 * se)[se > 0])
        err.append(np.linalg.norm(values - truth))
    assert np.mean([c.size for c in cover]) > truth.size / 2
    assert 0.89 <= np.mean(np.concatenate(cover)) <= 0.99
    assert np.linalg.norm(np.mean(est, 0) - truth) < 0.5 * np.mean(err)


def test_sampled_logit_surrogate_beats_identity_on_a_probability_game():
    errors = {}
    for link in ("identity", "logit"):
        errors[link] = np.mean([np.linalg.norm(flat(interactions(
            mlp, X, np.zeros(D), estimator="sampled", budget=40, seed=s, link=link))[0]
            - flat(interactions(mlp, X, np.zeros(D)))[0]) for s in range(6)])
    assert errors["logit"] < errors["identity"]


def test_a_budget_covering_every_coalition_enumerates_above_max_exact_features():
    exact = flat(interactions(mlp, X, np.zeros(D), index="FSII"))[0]
    e = interactions(mlp, X, np.zeros(D), index="FSII", budget=2**D, max_exact_features=4)
    np.testing.assert_allclose(flat(e)[0], exact, atol=1e-12)


def test_several_outputs_keep_an_output_axis():
    def two(Z):
        p = mlp(Z)
        return np.stack([p, 1 - p], axis=1)

    e = interactions(two, X, np.zeros(D), target="all")
    assert e.interactions.shape == (len(X), D, D, 2)
    np.testing.assert_allclose(e.interactions[..., 1], -e.interactions[..., 0], atol=1e-12)
    np.testing.assert_allclose(e[:, :, 0].interactions, interactions(mlp, X, np.zeros(D))
                               .interactions, atol=1e-12)


def test_interactions_survive_save_load_and_feature_selection(tmp_path):
    e = interactions(mlp, X, np.zeros(D), estimator="sampled", budget=48, seed=0)
    e.save(tmp_path / "e.npz")
    back = xai.Explanation.load(tmp_path / "e.npz")
    np.testing.assert_array_equal(back.interactions, e.interactions)
    np.testing.assert_array_equal(back.interaction_stderr, e.interaction_stderr)
    cols = [0, 3, 4]
    np.testing.assert_array_equal(e[:, cols].interactions, e.interactions[:, cols][:, :, cols])


@pytest.mark.parametrize("options,error", [
    ({"order": 3}, OptionError), ({"index": "shapley-taylor"}, UnknownNameError),
    ({"estimator": "mc"}, UnknownNameError), ({"link": "probit"}, UnknownNameError),
    ({"folds": 1}, OptionError), ({"max_exact_surrogate": 30}, BudgetError),
    ({"max_exact_features": 30}, BudgetError)])
def test_bad_options_are_refused_by_name(options, error):
    with pytest.raises(error):
        ShapleyInteractions(**options)


def test_too_small_a_budget_is_refused_before_any_model_call():
    calls = []

    def f(Z):
        calls.append(len(Z))
        return mlp(Z)

    with pytest.raises(BudgetError, match="too small"):
        interactions(f, X, np.zeros(D), estimator="sampled", budget=10)
    assert not calls
