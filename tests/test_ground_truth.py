"""Ground-truth metrics (values and bad input) and the 2-D suppressor problem's closed-form
suppressor / signal ratios (Wilming, Kieslich, Clark & Haufe 2023), each within ``z = 3``
standard errors plus a small slack, with a band narrow enough to tell the nearest wrong
closed form apart."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.optimize import linprog
from sklearn.metrics import average_precision_score, roc_auc_score

import xai
import xai.datasets.gauss2d
import xai.datasets.linear8x8
import xai.datasets.xaitris
import xai.metrics.ground_truth
from xai import registry
from xai.errors import MissingGroundTruth, ShapeError
from xai.metrics.ground_truth import emd


def metric(name, **options):
    return registry.get("metric", name)(**options)


def data(name, seed=0, **params):
    return registry.get("dataset", name)().make(seed, **params)


# ---- definitions ----------------------------------------------------------------------
def test_worked_example():
    x = np.zeros((1, 4))
    a = np.array([[0.5, -0.3, 0.2, 0.0]])
    G = np.array([True, True, False, False])  # G = {1, 2} (1-based)
    assert metric("topk-precision")(None, x, a, ground_truth=G).aggregate == 1.0
    assert metric("topk-recall")(None, x, a, ground_truth=G).aggregate == 1.0
    assert metric("auroc")(None, x, a, ground_truth=G).aggregate == 1.0
    assert metric("mass-accuracy")(None, x, a, ground_truth=G).aggregate == pytest.approx(0.8)
    # EMD on a 1 x 4 row: 0.2 moves one pixel; delta = 3
    assert metric("emd-accuracy")(None, x, a, ground_truth=G).aggregate == \
        pytest.approx(1 - 0.2 / 3)
    # sign="positive": s = (0.5, 0, 0.2, 0)
    r = metric("mass-accuracy", sign="positive")(None, x, a, ground_truth=G)
    assert r.aggregate == pytest.approx(0.5 / 0.7) and r.settings["sign"] == "positive"
    r = metric("topk-precision", sign="positive")(None, x, a, ground_truth=G, ties="index")
    assert r.aggregate == 0.5


def test_auroc_and_average_precision_match_sklearn():
    rng = np.random.default_rng(0)
    a = rng.integers(-3, 4, (20, 1, 5, 5)).astype(float)  # many ties
    G = rng.random((20, 5, 5)) < 0.3
    G[:, 0, 0], G[:, 0, 1] = True, False
    x = np.zeros((20, 1, 5, 5))
    auc = metric("auroc")(None, x, a, ground_truth=G).per_sample
    ap = metric("average-precision")(None, x, a, ground_truth=G).per_sample
    s = np.abs(a).reshape(20, -1)
    for i in range(20):
        assert auc[i] == pytest.approx(roc_auc_score(G[i].ravel(), s[i]))
        assert ap[i] == pytest.approx(average_precision_score(G[i].ravel(), s[i]))


def test_topk_with_few_nonzeros_and_explicit_k():
    x = np.zeros((1, 6))
    a = np.array([[0.0, 2.0, 0.0, 0.0, 1.0, 0.0]])
    G = np.array([0, 1, 1, 1, 0, 0])
    r = metric("topk-precision")(None, x, a, ground_truth=G)  # k = 3, only 2 non-zeros
    assert r.aggregate == pytest.approx(1 / 3)
    assert metric("topk-recall", k=1)(None, x, a, ground_truth=G).aggregate == \
        pytest.approx(1 / 3)


def test_all_zero_rows():
    x = np.zeros((3, 1, 5, 5))
    a = np.random.default_rng(1).normal(size=(3, 1, 5, 5))
    a[1] = 0
    G = np.zeros((5, 5), bool)
    G[1:3, 1:3] = True
    assert metric("auroc")(None, x, a, ground_truth=G).per_sample[1] == 0.5
    assert metric("topk-precision")(None, x, a, ground_truth=G).per_sample[1] == 0.0
    for name in ("emd-accuracy", "mass-accuracy"):
        with pytest.warns(UserWarning, match="1 rows have all-zero"):
            r = metric(name)(None, x, a, ground_truth=G)
        assert np.isnan(r.per_sample[1]) and r.n_nan == 1 and np.isfinite(r.aggregate)
    sup = np.zeros((5, 5), bool)
    sup[0, 3] = True
    with pytest.warns(UserWarning, match="all-zero"):
        r = metric("suppressor-ratio")(None, x, a, ground_truth=G, suppressor=sup, signal=G)
    assert r.n_nan == 1


def _brute_emd(p, q, spatial, fni_mask=None):
    h, w = spatial
    r, c = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    xy = np.stack([r.ravel(), c.ravel()], 1)
    cost = np.sqrt(((xy[:, None] - xy[None]) ** 2).sum(-1))
    if fni_mask is not None:
        g = fni_mask.ravel()
        cost[np.ix_(g, g)] = 0
    n = h * w
    A = np.vstack([np.kron(np.eye(n), np.ones(n)), np.kron(np.ones(n), np.eye(n))])
    res = linprog(cost.ravel(), A_eq=A[:-1], b_eq=np.concatenate([p, q])[:-1],
                  bounds=(0, None), method="highs")
    return res.fun


@pytest.mark.parametrize("spatial", [(3, 3), (4, 5)])
@pytest.mark.parametrize("fni", [False, True])
def test_emd_is_exact_against_a_brute_force_lp(spatial, fni):
    rng = np.random.default_rng(len(spatial) + spatial[1] + fni)
    for _ in range(4):
        s = rng.random(spatial) * (rng.random(spatial) < 0.7)
        s[0, 0] += 0.1
        G = rng.random(spatial) < 0.4
        G[-1, -1], G[0, 1] = True, False
        p, q = s.ravel() / s.sum(), G.ravel() / G.sum()
        value, block = emd(p, q, spatial, fni=fni, gt=G.ravel())
        assert block == 1
        assert value == pytest.approx(_brute_emd(p, q, spatial, G if fni else None), abs=1e-8)
        # through the metric, with both normalisers
        a = s[None]  # (n, H, W) inputs: no channel axis to guess
        r = metric("emd-accuracy", fni=fni)(None, np.zeros_like(a), a, ground_truth=G)
        assert r.aggregate == pytest.approx(1 - value / math.hypot(spatial[0] - 1,
                                                                    spatial[1] - 1))
        r = metric("emd-accuracy", normaliser="xai-tris", fni=fni)(
            None, np.zeros_like(a), a, ground_truth=G)
        assert r.aggregate == pytest.approx(1 - value / math.sqrt(2 * spatial[0] * spatial[1]))


def test_emd_8x8_exact_and_coarsened_within_its_bound():
    rng = np.random.default_rng(5)
    s = rng.random((8, 8))
    G = np.zeros((8, 8), bool)
    G[1:4, 1:3] = True
    p, q = s.ravel() / s.sum(), G.ravel() / G.sum()
    exact, b = emd(p, q, (8, 8))
    assert b == 1
    assert exact == pytest.approx(_brute_emd(p, q, (8, 8)), abs=1e-8)
    coarse, b = emd(p, q, (8, 8), max_variables=60)
    assert b > 1 and abs(coarse - exact) <= math.sqrt(2) * (b - 1) + 1e-9


def test_ground_truth_data_and_per_row_masks():
    d = data("xaitris8", scenario="rigid", n=16)
    a = d.extras["pattern"][:, None] * 3.0  # the true pattern: perfect scores
    for name in ("topk-precision", "auroc", "average-precision", "mass-accuracy"):
        assert metric(name)(None, d.X, a, ground_truth=d).aggregate == pytest.approx(1.0)
    r = metric("topk-precision")(None, d.X[4:8], a[4:8], ground_truth=d, rows=np.arange(4, 8))
    assert r.aggregate == 1.0
    with pytest.raises(ShapeError, match="rows="):
        metric("auroc")(None, d.X[:4], a[:4], ground_truth=d)
    assert metric("emd-accuracy")(None, d.X, a, ground_truth=d).aggregate == pytest.approx(1.0)


def test_errors():
    x = np.zeros((2, 1, 8, 8))
    a = np.ones((2, 1, 8, 8))
    with pytest.raises(ShapeError, match=r"ground-truth mask has shape \(8, 9\), inputs are "
                                         r"\(8, 8\)"):
        metric("auroc")(None, x, a, ground_truth=np.ones((8, 9), bool))
    with pytest.raises(ValueError, match="mask must be boolean or 0/1"):
        metric("auroc")(None, x, a, ground_truth=np.full((8, 8), 0.5))
    empty = np.zeros((2, 8, 8), bool)
    empty[0, 0, 0] = True
    with pytest.raises(ValueError, match="ground truth of row 1 is empty"):
        metric("topk-precision")(None, x, a, ground_truth=empty)
    with pytest.raises(ValueError, match="is full"):
        metric("auroc")(None, x, a, ground_truth=np.ones((8, 8), bool))
    with pytest.raises(MissingGroundTruth):
        metric("auroc")(None, x, a)
    d = data("linear8x8", n=20)
    d.ground_truth = None
    with pytest.raises(MissingGroundTruth, match="'linear8x8' has no ground truth"):
        metric("mass-accuracy")(None, x, a, ground_truth=d)
    with pytest.raises(ShapeError):  # attributions per patch, not per pixel
        metric("auroc")(None, x, np.ones((2, 16)), ground_truth=np.eye(8, dtype=bool))
    with pytest.raises(ValueError, match="normaliser"):
        metric("emd-accuracy", normaliser="bogus")(None, x, a, ground_truth=np.eye(8) > 0)


# ---- the 2-D suppressor problem under the Monte-Carlo tolerance rule ------------------
Z = 3.0
EPS = 0.004


def _passes(estimate, theta, se, eps=EPS):
    return abs(estimate - theta) <= Z * se + eps


@pytest.fixture(scope="module")
def gauss():
    d = data("gauss2d-suppressor", seed=3, n=40_000)
    return d, d.extras["margin_model"], d.X.astype(np.float64)


def test_gradient_x_input_ratio(gauss):
    d, model, X = gauss
    e = xai.explain(model, X, "captum.input-x-gradient")
    r = metric("suppressor-ratio")(None, X, e, ground_truth=d)
    theta, alt = d.reference["gradient_x_input"], abs(d.reference["lime_standardised"])
    assert Z * r.se + EPS < 0.5 * abs(theta - alt)  # not vacuous: tells it from LIME
    assert _passes(r.aggregate, theta, r.se)
    assert not _passes(r.aggregate, alt, r.se)  # negative control
    assert not _passes(r.aggregate, 0.0, r.se)  # gradient x input is not the pattern
    share = r.extras["share"]
    assert np.all((share >= 0) & (share <= 1))


def test_interventional_shap_with_zero_mean_background_is_gradient_x_input(gauss):
    _, model, X = gauss
    bg = X[:64] - X[:64].mean(0)  # exactly zero-mean background
    rows = X[:400]
    shap = xai.explain(model, rows, "exact-shap", background=bg, seed=0)
    gxi = xai.explain(model, rows, "captum.input-x-gradient")
    np.testing.assert_allclose(shap.values, gxi.values, atol=1e-9)


def test_pattern_scores_zero_and_weights_do_not(gauss):
    d, model, X = gauss
    e = xai.explain(model, X, "pattern", background=X[:5000])
    r = metric("suppressor-ratio")(None, X, e, ground_truth=d)
    # the pattern's per-row ratio is constant, so its SE is the background's sampling error
    se = np.abs(e.stderr[:, 1]).mean() / np.abs(e.values[:, 0]).mean()
    assert Z * se + EPS < 0.5 * abs(d.reference["gradient_x_input"])  # not vacuous
    assert _passes(r.aggregate, d.reference["pattern"], se)
    assert np.abs(e.values[:, 0]).mean() > 0.5  # the signal is attributed
    # negative control: the weights (signed gradient) give r = -0.8 and fail the test
    g = xai.explain(model, X[:1000], "captum.saliency", abs=False)
    weights = g.values[:, 1].mean() / g.values[:, 0].mean()
    assert weights == pytest.approx(d.reference["weights"], rel=1e-9)
    assert not _passes(weights, 0.0, se)


def test_pattern_on_linear8x8_puts_less_mass_on_suppressors():
    from xai.datasets.training import train_model

    d = data("linear8x8", seed=1)
    model, _ = train_model(d, "logreg")
    X = d.X[d.test]
    pat = xai.explain(model, X, "pattern", background=d.X[d.train], target=1)
    grad = xai.explain(model, X, "captum.saliency", abs=False, target=1)
    rp = metric("suppressor-ratio")(None, X, pat, ground_truth=d)
    rg = metric("suppressor-ratio")(None, X, grad, ground_truth=d)
    assert rp.aggregate < 0.5 * rg.aggregate
    mp = metric("mass-accuracy")(None, X, pat, ground_truth=d)
    assert 0 < mp.aggregate <= 1
