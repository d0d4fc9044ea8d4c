"""ERASER comprehensiveness and sufficiency, and IROF: hand-computed cases and closed forms on
linear models, the metrics' bookkeeping (one game call, bins, superpixel groups), Quantus
0.6.0's IROF on identical inputs and settings, and Quantus's Sufficiency shown to be another
metric."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

import xai
from xai.features import FeatureMap
from xai.metrics.eraser import ERASER_FRACTIONS, fraction_counts
from xai.removals import Baseline

ZERO = Baseline(0.0)
HAND = {"output": "raw", "removal": ZERO, "ties": "index"}


metric = xai.metrics.get


def lin3(z):
    """f(x) = 2 x1 − x2 + 3 x3 (raw output)."""
    z = np.asarray(z)
    return 2 * z[:, 0] - z[:, 1] + 3 * z[:, 2]


ONES = np.ones((1, 3))
EXACT = np.array([[2.0, -1.0, 3.0]])  # exact attributions at x = 1 with a zero baseline


# ---- comprehensiveness and sufficiency ---------------------------------------------------------

def test_comprehensiveness_and_sufficiency_by_hand():
    """Bins of 1, 2 and 3 of the 3 features ranked x3, x1, x2; v(D) = 4.
    Removing them leaves 1, -1, 0 (drops 3, 5, 4); keeping only them gives 3, 5, 4 (drops 1,
    -1, 0)."""
    fr = (0.34, 0.67, 1.0)
    c = metric("comprehensiveness", fractions=fr)(lin3, ONES, EXACT, **HAND)
    s = metric("sufficiency", fractions=fr)(lin3, ONES, EXACT, **HAND)
    np.testing.assert_array_equal(c.curves, [[3.0, 5.0, 4.0]])
    np.testing.assert_array_equal(s.curves, [[1.0, -1.0, 0.0]])
    assert c.per_sample[0] == pytest.approx(4.0) and s.per_sample[0] == pytest.approx(0.0)
    np.testing.assert_array_equal(c.extras["k"], [1, 2, 3])
    assert c.direction == "higher" and s.direction == "lower"
    assert c.settings["k"] == [1, 2, 3] and c.settings["removal"] == {"name": "baseline",
                                                                      "value": 0.0}


def test_eraser_bins_round_down_to_at_least_one_feature():
    """ERASER's default bins 1, 5, 10, 20, 50 % of d = 30 features: 1 (not 0), 1, 3, 6, 15."""
    np.testing.assert_array_equal(fraction_counts(ERASER_FRACTIONS, 30), [1, 1, 3, 6, 15])
    np.testing.assert_array_equal(fraction_counts((0.1, 0.3, 0.7), 10), [1, 3, 7])
    r = metric("comprehensiveness")(lambda z: np.asarray(z).sum(1), np.ones((1, 30)),
                                    np.arange(30.0)[None], output="raw", removal=ZERO)
    assert r.settings["k"] == [1, 1, 3, 6, 15] and r.settings["fractions"] == [0.01, 0.05, 0.1,
                                                                                0.2, 0.5]


def test_exact_attributions_of_a_linear_model_in_closed_form():
    """f(x) = w·x with baseline b: a_i = w_i (x_i − b_i) are exact, and the drops are sums of
    attributions: comprehensiveness_k = Σ top-k a, sufficiency_k = Σ of the rest."""
    rng = np.random.default_rng(3)
    d, n = 20, 5
    w, b = rng.normal(size=d), rng.normal(size=d)
    X = rng.normal(size=(n, d))
    A = w * (X - b)
    f = lambda z: np.asarray(z) @ w
    opts = {"output": "raw", "removal": Baseline(b)}
    c = metric("comprehensiveness")(f, X, A, **opts)
    s = metric("sufficiency")(f, X, A, **opts)
    top = np.sort(A, axis=1)[:, ::-1]
    k = np.array([1, 1, 2, 4, 10])  # 1, 5, 10, 20, 50 % of 20
    comp = np.stack([top[:, :m].sum(1) for m in k], axis=1)
    rest = A.sum(1, keepdims=True) - comp
    np.testing.assert_allclose(c.curves, comp, atol=1e-12)
    np.testing.assert_allclose(s.curves, rest, atol=1e-12)
    np.testing.assert_allclose(c.per_sample, comp.mean(1), atol=1e-12)
    np.testing.assert_allclose(s.per_sample, rest.mean(1), atol=1e-12)
    # the true ranking is the most comprehensive and most sufficient one: its reverse is worse
    c_rev = metric("comprehensiveness")(f, X, -A, **opts)
    s_rev = metric("sufficiency")(f, X, -A, **opts)
    assert (c.per_sample > c_rev.per_sample).all() and (s.per_sample < s_rev.per_sample).all()


def test_comprehensiveness_uses_the_explanations_removal_in_one_game_call():
    """The explanation's own baseline removes the rationale; rows × bins go to the model in one
    call besides the full rows."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(4, 6))
    calls = []

    def model(z):
        calls.append(len(z))
        return np.asarray(z) @ np.arange(1.0, 7.0)

    e = xai.explain(model, X, method="occlusion", baseline=0.5, progress=False)
    calls.clear()
    r = metric("comprehensiveness")(model, X, e, output="raw")
    assert r.settings["removal"]["value"] == 0.5
    assert sorted(calls) == [4, 20] and r.evaluations == 24  # full rows, then 4 rows × 5 bins
    # with baseline 0.5 the occlusion values are exact: drop = Σ top-k a
    top = np.sort(e.values, axis=1)[:, ::-1]
    np.testing.assert_allclose(r.curves[:, 0], top[:, 0], atol=1e-12)


# ---- IROF ---------------------------------------------------------------------------------------

def _blocks(n: int = 3) -> np.ndarray:
    """Images of four flat 4x4 quadrants (SLIC finds them), values in [0, 1]."""
    rng = np.random.default_rng(1)
    X = np.zeros((n, 1, 8, 8))
    for i in range(n):
        levels = rng.permutation([0.0, 0.33, 0.66, 1.0])
        X[i, 0, :4, :4], X[i, 0, :4, 4:], X[i, 0, 4:, :4], X[i, 0, 4:, 4:] = levels
    return X


def test_irof_by_hand_on_quadrant_superpixels():
    """A linear model on four quadrant superpixels: removing them in decreasing mean relevance
    gives the curve 1 − (cumulative share of the output), and the area over it."""
    X = _blocks()
    quadrant = np.zeros((8, 8), np.int64)
    quadrant[:4, 4:], quadrant[4:, :4], quadrant[4:, 4:] = 1, 2, 3
    segments = FeatureMap(np.broadcast_to(quadrant, (3, 8, 8)), kind="segment",
                          channel_axis=0, per_explicand=True)
    w = np.random.default_rng(2).random((1, 8, 8)) + 0.1
    f = lambda z: (np.asarray(z) * w).reshape(len(z), -1).sum(1)
    A = X * w  # exact per-pixel contributions of a zero baseline
    r = metric("irof", segments=segments)(f, X, A, **HAND)
    share = np.stack([[A[i, 0][quadrant == q].sum() for q in range(4)] for i in range(3)])
    mean = np.stack([[A[i, 0][quadrant == q].mean() for q in range(4)] for i in range(3)])
    order = np.argsort(-mean, axis=1, kind="stable")
    removed = np.cumsum(np.take_along_axis(share, order, axis=1), axis=1)
    curve = np.c_[np.ones(3), 1 - removed / share.sum(1, keepdims=True)]
    np.testing.assert_allclose(r.curves, curve, atol=1e-12)
    area = ((curve[:, 1:] + curve[:, :-1]) / 2).sum(1) / 4
    np.testing.assert_allclose(r.per_sample, 1 - area, atol=1e-12)
    np.testing.assert_array_equal(r.extras["segments"], [4, 4, 4])
    assert r.settings["segmentation"] == "given" and r.direction == "higher"


def test_irof_with_abs_ranks_segments_by_their_mean_magnitude():
    """Segment rows of a 2x2 image: the top row's scores 3 and −3 cancel in their mean (0)
    but not in their mean magnitude (3), which ranks it above the bottom row's 1 and 1 with
    ``abs=True`` (Quantus's and Explainiverse's ``abs``: magnitudes before the mean)."""
    x = np.array([[[[1.0, 2.0], [3.0, 4.0]]]])
    a = np.array([[[[3.0, -3.0], [1.0, 1.0]]]])
    f = lambda z: np.asarray(z).reshape(len(z), -1).sum(1) + 10  # v(D) = 20
    rows = FeatureMap.patches((2, 2), (1, 2))
    signed = metric("irof", segments=rows)(f, x, a, **HAND)
    magnitude = metric("irof", segments=rows, abs=True)(f, x, a, **HAND)
    np.testing.assert_allclose(signed.curves[0], [1.0, 13 / 20, 10 / 20])  # bottom row first
    np.testing.assert_allclose(magnitude.curves[0], [1.0, 17 / 20, 10 / 20])  # top row first


def test_irof_groups_rows_by_superpixel_count():
    """Rows with different superpixel counts get their own curve lengths (NaN padded) and
    areas on [0, 1], equal to scoring each row alone."""
    rng = np.random.default_rng(4)
    X = rng.random((3, 1, 8, 8))
    A = rng.normal(size=X.shape)
    maps = np.zeros((3, 8, 8), np.int64)
    maps[0, :, 4:] = 1                                     # 2 segments
    maps[1] = np.arange(64).reshape(8, 8) // 16            # 4 segments (rows of 2)
    maps[2] = (np.arange(64).reshape(8, 8) // 8) % 3       # 3 segments
    segments = FeatureMap(maps, kind="segment", channel_axis=0, per_explicand=True)
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 2))
    torch.manual_seed(0)
    r = metric("irof", segments=segments)(net, X, A, target=1, removal=ZERO)
    np.testing.assert_array_equal(r.extras["segments"], [2, 4, 3])
    assert np.isnan(r.curves[0, 3:]).all() and np.isfinite(r.curves[1]).all()
    for i in range(3):
        one = FeatureMap(maps[i], kind="segment", channel_axis=0)
        alone = metric("irof", segments=one)(net, X[i:i + 1], A[i:i + 1], target=1,
                                             removal=ZERO)
        np.testing.assert_allclose(alone.per_sample[0], r.per_sample[i], atol=1e-12)


def test_irof_refuses_a_target_out_of_range_on_one_prediction():
    X = _blocks()
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 2))
    calls = []
    net.register_forward_pre_hook(lambda m, args: calls.append(len(args[0])))
    with pytest.raises(xai.errors.TargetError, match="target 5"):
        metric("irof")(net, X, np.ones(X.shape), target=np.array([0, 1, 5]))
    assert len(calls) == 1


# ---- Quantus 0.6.0 oracle ---------------------------------------------------------------------

quantus = pytest.importorskip("quantus")


@pytest.fixture(scope="module")
def cnn_case():
    """A small CNN on smooth 1x16x16 images (4x4 noise upsampled, so SLIC groups pixels into
    superpixels) spanning [0, 1] (Quantus segments raw values, xai scales each image to [0,
    1]: the same here)."""
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    H = 16
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.ReLU(),
                              torch.nn.Flatten(), torch.nn.Linear(4 * H * H, 3)).eval()
    coarse = torch.rand((2, 1, 4, 4), generator=g)
    X = torch.nn.functional.interpolate(coarse, size=(H, H), mode="bilinear").numpy()
    lo, hi = X.min(axis=(1, 2, 3), keepdims=True), X.max(axis=(1, 2, 3), keepdims=True)
    X = ((X - lo) / (hi - lo)).astype(np.float32)
    A = torch.randn((2, 1, H, H), generator=g).numpy().astype(np.float32)
    with torch.no_grad():
        y = net(torch.as_tensor(X)).argmax(1).numpy()
    return net, X, A, y


def test_quantus_irof_on_identical_inputs(cnn_case, monkeypatch):
    """Same SLIC superpixels, same curve: Quantus's area (in superpixels, without c_0) is
    ``d·irof + (1 + c_1) / 2``. Quantus is called one image at a time (it pads the curves of
    a batch with zeros)."""
    from quantus.helpers.utils import get_superpixel_segments

    monkeypatch.setattr(np, "trapz", np.trapezoid, raising=False)  # gone from NumPy 2.4
    net, X, A, y = cnn_case
    ours = metric("irof")(net, X, A, target=y, removal=ZERO)
    fmap = ours.extras["feature_map"]
    for i in range(len(X)):
        seg = get_superpixel_segments(np.moveaxis(X[i], 0, -1).astype("double"), "slic")
        np.testing.assert_array_equal(fmap.index[i], seg)
        assert 1 < len(np.unique(seg)) < X[i].size  # superpixels, not pixels
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            q = quantus.IROF(abs=False, normalise=False, perturb_baseline=0.0,
                             disable_warnings=True)(
                model=net, x_batch=X[i:i + 1].copy(), y_batch=y[i:i + 1], a_batch=A[i:i + 1].copy(),
                device="cpu", softmax=True, channel_first=True)
        d, c = ours.extras["segments"][i], ours.curves[i]
        assert q[0] == pytest.approx(d * ours.per_sample[i] + (1 + c[1]) / 2, abs=1e-4)


def test_quantus_sufficiency_is_another_metric_of_the_same_name():
    """Quantus 0.6.0's ``Sufficiency`` (Dasgupta et al. 2022) is, per row, the share of the
    other rows whose explanation lies within ``threshold`` (standardised Euclidean distance
    over the largest one) that get the same predicted class: it reads the model's labels only.
    Recomputed so, it is unchanged when the outputs double (same labels), where ERASER's
    sufficiency, an output drop, doubles."""
    from scipy.spatial.distance import cdist

    torch.manual_seed(0)
    n, H = 8, 4
    lin = torch.nn.Linear(H * H, 3)
    net = torch.nn.Sequential(torch.nn.Flatten(), lin).eval()
    twice = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(H * H, 3)).eval()
    with torch.no_grad():
        twice[1].weight.copy_(2 * lin.weight)
        twice[1].bias.copy_(2 * lin.bias)
    rng = np.random.default_rng(8)
    X = rng.normal(size=(n, 1, H, H)).astype(np.float32)
    A = rng.normal(size=(n, 1, H, H)).astype(np.float32)
    with torch.no_grad():
        labels = net(torch.as_tensor(X)).argmax(1).numpy()

    def quantus_sufficiency(model):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return np.asarray(quantus.Sufficiency(abs=False, normalise=False,
                                                  disable_warnings=True)(
                model=model, x_batch=X.copy(), y_batch=labels, a_batch=A.copy(),
                device="cpu", channel_first=True))

    dist = cdist(A.reshape(n, -1), A.reshape(n, -1), "seuclidean")
    near = (dist / dist.max() <= 0.6) & ~np.eye(n, dtype=bool)
    same = labels[None] == labels[:, None]
    by_hand = (near & same).sum(1) / np.where(near.sum(1) == 0, np.inf, near.sum(1))
    assert 0 < near.sum() < n * (n - 1)
    np.testing.assert_allclose(quantus_sufficiency(net), by_hand, atol=1e-12)
    np.testing.assert_allclose(quantus_sufficiency(twice), by_hand, atol=1e-12)
    ours = [metric("sufficiency")(m, X, A, target=labels, output="raw", removal=ZERO)
            for m in (net, twice)]
    np.testing.assert_allclose(ours[1].per_sample, 2 * ours[0].per_sample, rtol=1e-4)
    assert np.abs(ours[0].per_sample).max() > 0.1
