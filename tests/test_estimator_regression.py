"""Regression-adjusted KernelSHAP (``ra-kernelshap``): exact on games its surrogate represents,
efficient, calibrated standard errors, reproducible, budget checks, and the auto rule."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import TableModel

from xai.behaviours import Prediction
from xai.errors import BudgetError, InputError, UnknownNameError
from xai.explainer import auto_estimator
from xai.features import FeatureMap
from xai.game import Game
from xai.models import as_model, sigmoid
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
    """Tiny torch ops: extra threads only wait for each other on a shared machine."""
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


@pytest.mark.parametrize("d, budget, expected", [
    (14, None, "ra-kernelshap-net"), (16, 1024, "ra-kernelshap-net"),
    (16, 1023, "ra-kernelshap"), (17, None, "ra-kernelshap"), (12, None, "exact-shapley")])
def test_auto_rule_fits_a_network_surrogate_up_to_16_features_from_1024_coalitions(
        games, d, budget, expected):
    V = games.additive_table(np.full(d, 0.02), 0.3)
    assert auto_estimator(prob_game(V, d), budget=budget) == expected


# ---- shared fast paths of KernelSHAP and RA-KernelSHAP ------------------------------------


def _direct_sandwich(phi, Z, y1, y2, omega, C):
    """The paired-sample sandwich standard error by its definition: per-pair scores, centred,
    through ``C``."""
    P = Z.shape[0]
    Zc = 1 - Z
    r1 = y1 - torch.einsum("pd,nd...->np...", Z, phi)
    r2 = y2 - torch.einsum("pd,nd...->np...", Zc, phi)
    tail = [1] * (r1.ndim - 2)
    s = omega * (Z.reshape(1, P, -1, *tail) * r1.unsqueeze(2) +
                 Zc.reshape(1, P, -1, *tail) * r2.unsqueeze(2))
    t = torch.einsum("ij,npj...->npi...", C, s - s.mean(1, keepdim=True))
    return torch.sqrt((t ** 2).sum(1) * P / (P - 1))


@pytest.mark.parametrize("trial", range(12))
def test_fast_sandwich_and_fit_match_the_direct_formulas(trial):
    from xai.summaries.kernelshap import constrained_fit, sandwich_se

    rng = np.random.default_rng(trial)
    torch.manual_seed(trial)
    d, P, n = int(rng.integers(2, 30)), int(rng.integers(40, 300)), int(rng.integers(1, 4))
    vshape = (int(rng.integers(1, 4)),) if trial % 3 == 0 else ()
    Z = torch.as_tensor(rng.random((P, d)) < rng.uniform(0.1, 0.9), dtype=torch.float64)
    w_fixed = 1 - 10 ** -rng.uniform(0, 2)  # from no enumerated mass to most of it
    A_fixed = w_fixed * (torch.eye(d, dtype=torch.float64) + 0.1)
    beta = rng.normal(size=d)
    noise = 10 ** -rng.uniform(0, 6)
    ones = [1] * len(vshape)
    y1 = (Z @ torch.as_tensor(beta)).reshape(1, P, *ones) + noise * torch.randn(
        n, P, *vshape, dtype=torch.float64)
    y2 = ((1 - Z) @ torch.as_tensor(beta)).reshape(1, P, *ones) + noise * torch.randn(
        n, P, *vshape, dtype=torch.float64)
    b_fixed = torch.as_tensor(w_fixed * rng.normal(size=(n, d, *vshape)))
    delta = torch.as_tensor(rng.normal(size=(n, *vshape)))
    omega = (1 - w_fixed) / (2 * P)
    phi, C, singular = constrained_fit(A_fixed, b_fixed, Z, y1, y2, omega, delta)
    assert not singular
    # the fit: complements never formed, same A and KKT solution as the explicit formula
    Zc = 1 - Z
    A = A_fixed + omega * (Z.T @ Z + Zc.T @ Zc)
    b = b_fixed + omega * (torch.einsum("pd,np...->nd...", Z, y1) +
                           torch.einsum("pd,np...->nd...", Zc, y2))
    Ainv = torch.linalg.inv(A)
    one = torch.ones(d, dtype=torch.float64)
    C_ref = Ainv - torch.outer(Ainv @ one, Ainv @ one) / (one @ Ainv @ one)
    phi_ref = torch.einsum("ij,nj...->ni...", C_ref, b) + torch.einsum(
        "i,n...->ni...", Ainv @ one / (one @ Ainv @ one), delta)
    torch.testing.assert_close(phi, phi_ref, rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(C, C_ref, rtol=1e-9, atol=1e-12)
    # a precomputed Gram gives the same bits
    phi2, C2, _ = constrained_fit(A_fixed, b_fixed, Z, y1, y2, omega, delta,
                                  gram=(Z.T @ Z, Z.sum(0)))
    assert torch.equal(phi, phi2) and torch.equal(C, C2)
    # the sandwich: equal to the definition, whatever the memory blocks
    ref = _direct_sandwich(phi, Z, y1, y2, omega, C)
    scale = ref.reshape(n, -1).amax(1).reshape(n, *[1] * (ref.ndim - 1))
    for cap in (2**28, 4096, 1):
        se = sandwich_se(phi, Z, y1, y2, omega, C, cap)
        assert se.shape == phi.shape
        assert ((se - ref).abs() / scale).max() < 1e-12


def test_gram_is_kept_incrementally_and_exact():
    rng = np.random.default_rng(0)
    Z = torch.as_tensor(rng.random((700, 13)) < 0.4, dtype=torch.float64)
    state = {}
    for P in (50, 50, 300, 700):  # rounds add pairs; a repeat reuses the kept product
        G, s = KernelSHAP.gram(state, Z[:P])
        assert torch.equal(G, Z[:P].T @ Z[:P]) and torch.equal(s, Z[:P].sum(0))
    G, s = KernelSHAP.gram(state, Z[:10])  # fewer pairs (a resampled state): from scratch
    assert torch.equal(G, Z[:10].T @ Z[:10])


@pytest.mark.parametrize("partition", [False, True])
def test_uniform_subsets_are_the_ranked_keys_of_the_same_stream(monkeypatch, partition):
    """Both selections of the k-th smallest key (a sort of every row; a partition of the rows
    of each size, used from PARTITION_MIN_D features) give the masks of ranking the keys."""
    from xai.summaries import kernelshap as KS

    monkeypatch.setattr(KS, "PARTITION_MIN_D", 1 if partition else 10**9)
    for d in (1, 2, 7, 64):
        mixed = np.random.default_rng(d).integers(0, d + 1, size=200)
        mixed[:2] = (0, d)
        for sizes in (mixed, np.full(50, d // 2)):  # several sizes; one size (one partition)
            masks = KS.uniform_subsets(np.random.default_rng(5), sizes, d)
            keys = np.random.default_rng(5).random((len(sizes), d))
            ranks = np.argsort(np.argsort(keys, axis=1), axis=1)
            np.testing.assert_array_equal(masks, ranks < sizes[:, None])
            np.testing.assert_array_equal(masks.sum(1), sizes)


def test_strata_gram_is_the_weighted_sum_over_every_coalition_of_the_sizes():
    from xai.summaries.kernelshap import size_masks, size_mass, strata_gram

    for d in (2, 3, 6, 9):
        for sizes in ([1], [1, d - 1], [2, d - 2], list(range(1, d)), []):
            ref = np.zeros((d, d))
            for s in sizes:
                z = size_masks(d, s).astype(float)
                ref += size_mass(d)[s] / len(z) * z.T @ z
            np.testing.assert_allclose(strata_gram(d, sizes), ref, rtol=1e-13, atol=1e-15)


def test_singular_design_matrices_are_detected_by_the_condition_estimate():
    """Rank-deficient and near-singular (condition > 1e10) matrices count as singular, a
    well-conditioned one does not, and its inverse is the exact inverse."""
    from xai.summaries.kernelshap import _cholesky_checked, _inverse_checked

    def _is_singular(A):
        return _cholesky_checked(A) is None

    rng = np.random.default_rng(0)
    Q = torch.as_tensor(np.linalg.qr(rng.normal(size=(12, 12)))[0])
    for low, singular in ((1.0, False), (1e-6, False), (1e-12, True), (0.0, True),
                          (-1e-3, True)):
        eig = torch.linspace(1, 10, 12, dtype=torch.float64)
        eig[0] = low
        A = Q @ torch.diag(eig) @ Q.T
        A = (A + A.T) / 2
        assert _is_singular(A) is singular, low
        if not singular:
            Ainv, flag = _inverse_checked(A)
            assert not flag
            torch.testing.assert_close(Ainv @ A, torch.eye(12, dtype=torch.float64),
                                       atol=1e-8, rtol=0)
    Z = torch.zeros(30, 5, dtype=torch.float64)
    Z[:, :2] = 1.0  # features 0 and 1 always together: Gram of rank < 5
    assert _is_singular(Z.T @ Z + (1 - Z).T @ (1 - Z))


def test_size_masks_follow_combinations_order():
    from itertools import combinations

    from xai.summaries.kernelshap import size_masks

    for d in range(9):
        for s in range(d + 1):
            combos = list(combinations(range(d), s))
            ref = np.zeros((len(combos), d), dtype=bool)
            for row, c in enumerate(combos):
                ref[row, list(c)] = True
            np.testing.assert_array_equal(size_masks(d, s), ref)


@pytest.mark.parametrize("d", [1, 3, 9, 12])
def test_enumerated_surrogate_shapley_matches_exact(games, d):
    """The surrogate's table by splitting and its Shapley values by the exact summary's
    coefficients equal brute force on ``sigmoid(g0 + basis(z) @ w)``."""
    from xai.summaries.exact import enumerate_masks
    from xai.summaries.regression import _basis, enumerated_shapley, quadratic_table

    rng = np.random.default_rng(d)
    for pairs in (False, True):
        p = d + (d * (d - 1) // 2 if pairs else 0)
        W = torch.as_tensor(rng.normal(size=(p, 3)) / np.sqrt(d))
        G0 = torch.as_tensor(rng.normal(size=(1, 3)))
        M = torch.as_tensor(enumerate_masks(d, 0, 2**d), dtype=torch.float64)
        Q = G0 + _basis(M, pairs) @ W
        torch.testing.assert_close(quadratic_table(W, d, pairs, G0), Q, rtol=0, atol=1e-13)
        V = torch.sigmoid(Q).numpy()
        for cap, cb in ((2**28, 16), (8 * 2**d, 1)):  # one block, or blocks of coalitions
            phi = enumerated_shapley(W, G0, sigmoid, d, pairs, cap, cb).numpy()
            for c in range(3):
                np.testing.assert_allclose(phi[c], games.shapley_bruteforce(V[:, c], d),
                                           rtol=0, atol=1e-13)


def test_large_sandwich_in_float32_agrees_with_float64(monkeypatch):
    """Past SANDWICH_FLOAT32_WORK the O(P d²) product runs in float32: the standard errors
    stay within 1e-4 of the float64 ones (far inside their own sampling error)."""
    from xai.summaries import kernelshap as KS

    rng = np.random.default_rng(3)
    P, d, n = 400, 24, 3
    Z = torch.as_tensor(rng.random((P, d)) < rng.random((P, 1)), dtype=torch.float64)
    y1 = torch.as_tensor(rng.normal(size=(n, P)))
    y2 = torch.as_tensor(rng.normal(size=(n, P)))
    A = Z.T @ Z + (1 - Z).T @ (1 - Z) + torch.eye(d)
    Ai = torch.linalg.inv(A)
    Ai1 = Ai.sum(1)
    C = Ai - torch.outer(Ai1, Ai1) / Ai1.sum()
    phi = torch.as_tensor(rng.normal(size=(n, d)))
    ref = KS.sandwich_se(phi, Z, y1, y2, 0.01, C, 2**28)
    monkeypatch.setattr(KS, "SANDWICH_FLOAT32_WORK", 0)
    low = KS.sandwich_se(phi, Z, y1, y2, 0.01, C, 2**28)
    assert not torch.equal(low, ref)  # the float32 path ran
    torch.testing.assert_close(low, ref, rtol=1e-4, atol=0)


@pytest.mark.parametrize("sizes", [[1] + [2] * 40, [2] * 40 + [1], [1, 2, 2, 1, 1, 2] * 7,
                                   [1] * 30, [3, 1, 2, 4] * 5])
def test_cluster_score_variance_is_the_clustered_sum_of_squares(monkeypatch, sizes):
    """The LIME sandwich meat equals its definition (per column, clusters summed first) bit for
    bit, in column blocks too, and each column's value does not depend on the others."""
    from xai.summaries import lime as LM

    sizes = np.array(sizes)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    m = int(sizes.sum())
    rng = np.random.default_rng(len(sizes))
    H, resid = rng.normal(size=(5, m)), rng.normal(size=(m, 9))
    want = np.array([[sum(float(H[f, s:s + z] @ resid[s:s + z, j]) ** 2
                          for s, z in zip(starts, sizes)) for j in range(9)]
                     for f in range(5)])  # the definition, summed in another order
    ref = np.stack([(np.add.reduceat(H * resid[:, j], starts, axis=1) ** 2).sum(1)
                    for j in range(9)], 1)  # the same order: bit for bit
    got = LM.cluster_score_variance(H, resid, starts, sizes)
    np.testing.assert_allclose(got, want, rtol=1e-12)
    np.testing.assert_array_equal(got, ref)
    monkeypatch.setattr(LM, "SANDWICH_BLOCK_BYTES", 1)  # one column per block
    np.testing.assert_array_equal(LM.cluster_score_variance(H, resid, starts, sizes), ref)
    for j in (0, 4, 8):
        np.testing.assert_array_equal(
            LM.cluster_score_variance(H, resid[:, j:j + 1], starts, sizes)[:, 0], ref[:, j])
