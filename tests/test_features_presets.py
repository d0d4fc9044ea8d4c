"""Feature definitions, every preset through ``xai.explain``, and options of the axes."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from skimage import data, transform

import xai
from xai import registry
from xai.features import FeatureMap
from xai.registry import names


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    img = transform.resize(data.astronaut(), (32, 32), anti_aliasing=True)
    return np.stack([np.moveaxis(img, -1, 0), np.moveaxis(img[:, ::-1], -1, 0)])  # (2,3,32,32)


@pytest.mark.parametrize("method", ["slic", "quickshift", "felzenszwalb"])
def test_superpixels_cover_every_pixel_once(astronaut, method):
    fmap = FeatureMap.superpixels(astronaut, method)
    assert fmap.index.shape == (2, 32, 32)
    for j, idx in enumerate(fmap.index):
        d = fmap.d_per_map[j]
        assert d >= 2
        np.testing.assert_array_equal(np.unique(idx), np.arange(d))  # no gaps, no -1
    full = fmap.full_index((3, 32, 32))
    assert full.shape == (2, 3 * 32 * 32)
    # broadcast over channels: every channel of a pixel belongs to the same feature
    np.testing.assert_array_equal(full[0, :1024], full[0, 1024:2048])


def test_superpixels_channel_last_and_grayscale(astronaut):
    hwc = np.moveaxis(astronaut, 1, -1)
    fmap = FeatureMap.superpixels(hwc, "slic")
    assert fmap.channel_axis == -1 and fmap.index.shape == (2, 32, 32)
    gray = astronaut.mean(1)
    fmap = FeatureMap.superpixels(gray, "slic")
    assert fmap.channel_axis is None and fmap.d > 3


def test_one_segment_warns():
    with pytest.warns(UserWarning, match="single segment"):
        FeatureMap.superpixels(np.random.default_rng(0).random((1, 3, 32, 32)), "slic")


def test_patches_last_row_smaller():
    fmap = FeatureMap.patches((10, 7), 4, channel_axis=None)
    assert fmap.d == 3 * 2
    assert (fmap.index[0] == 5).sum() == 2 * 3  # bottom-right patch is 2 x 3


def test_group_removal_replaces_all_columns_jointly():
    """Occlusion of a group of a linear model is the sum over its columns, and groups
    under marginal removal take their columns jointly from one background row."""
    rng = np.random.default_rng(0)
    w = rng.normal(size=5)
    X, B = rng.normal(size=(3, 5)), rng.normal(size=(40, 5))
    groups = {"ab": [0, 1], "c": [2], "de": [3, 4]}
    e = xai.explain(lambda A: A @ w, X, method="occlusion", background=B,
                    features=groups, progress=False)
    contrib = w * (X - B.mean(0))
    expected = np.stack([contrib[:, :2].sum(1), contrib[:, 2], contrib[:, 3:].sum(1)], 1)
    np.testing.assert_allclose(e.values, expected, atol=1e-12)
    assert e.feature_names == ["ab", "c", "de"]
    # a product of the two columns of a group: joint draws keep the product of one row
    f = lambda A: A[:, 0] * A[:, 1]
    e = xai.explain(f, X, method="exact-shap", background=B, features=groups, progress=False)
    np.testing.assert_allclose(e.base_values, np.mean(B[:, 0] * B[:, 1]), atol=1e-12)


def test_tokens_with_fixed_positions_and_mask_id():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Embedding(12, 3), torch.nn.Flatten(),
                                torch.nn.Linear(18, 2))
    T = torch.randint(1, 12, (4, 6))
    fmap = FeatureMap.tokens(6, fixed=[0])  # position 0 ([CLS]) is always kept
    assert fmap.d == 5
    e = xai.Explainer("baseline", "prediction", "exact-shapley", baseline=0).explain(
        model, T, features=fmap)
    assert e.values.shape == (4, 5)
    # efficiency against direct model calls with the mask token 0
    with torch.no_grad():
        full = torch.softmax(model(T), -1)
        masked = T.clone()
        masked[:, 1:] = 0
        empty = torch.softmax(model(masked), -1)
    t = torch.ones(4, dtype=torch.long)  # a binary classifier's positive class by default
    expected = (full - empty)[torch.arange(4), t].numpy()
    logits_full = model(T).detach()
    logits_empty = model(masked).detach()
    expected_raw = (logits_full - logits_empty)[torch.arange(4), t].numpy()
    np.testing.assert_allclose(e.values.sum(1), expected_raw, atol=1e-5)
    assert not np.allclose(expected, expected_raw)  # raw logits by default for torch


def test_pandas_columns_named_and_background_reordered():
    rng = np.random.default_rng(1)
    cols = ["age", "bmi", "bp"]
    w = np.array([1.0, -2.0, 0.5])
    X = pd.DataFrame(rng.normal(size=(4, 3)), columns=cols)
    B = pd.DataFrame(rng.normal(size=(30, 3)), columns=cols)
    e1 = xai.explain(lambda A: A @ w, X, method="exact-shap", background=B, progress=False)
    e2 = xai.explain(lambda A: A @ w, X, method="exact-shap", background=B[cols[::-1]],
                     progress=False)
    assert e1.feature_names == cols
    np.testing.assert_allclose(e1.values, e2.values, atol=1e-12)
    np.testing.assert_allclose(e1.values, w * (X.to_numpy() - B.to_numpy().mean(0)),
                               atol=1e-12)
    assert list(e1.to_pandas().columns) == cols


def test_kmeans_background_summary_is_weighted():
    rng = np.random.default_rng(2)
    w = rng.normal(size=4)
    X, B = rng.normal(size=(2, 4)), rng.normal(size=(500, 4))
    e = xai.explain(lambda A: A @ w, X, method="exact-shap", background=B,
                    background_summary="kmeans", max_background=20, progress=False)
    # weighted centres have the background's mean, so linear SHAP is unchanged
    np.testing.assert_allclose(e.values, w * (X - B.mean(0)), atol=1e-8)
    assert e.removal["background_rows"] == 20


def test_background_subsampling_warns():
    rng = np.random.default_rng(3)
    with pytest.warns(UserWarning, match="500 rows; using a random subsample of 100"):
        xai.explain(lambda A: A.sum(1), rng.normal(size=(2, 3)), method="exact-shap",
                    background=rng.normal(size=(500, 3)), progress=False)


def test_conditional_gaussian_ledoit_wolf_linear_plugin_is_exact():
    """With plug-in means (n_samples=0) and a linear model, conditional Gaussian Shapley is
    exact whatever the covariance estimator; efficiency holds."""
    rng = np.random.default_rng(4)
    C = np.array([[1, 0.6, 0.2], [0.6, 1, 0.1], [0.2, 0.1, 1]])
    B = rng.multivariate_normal(np.zeros(3), C, size=300)
    X = rng.normal(size=(3, 3))
    w = np.array([1.0, 2.0, -1.0])
    e = xai.Explainer("conditional-gaussian", "prediction", "exact-shapley", background=B,
                      n_samples=0, covariance="ledoit-wolf").explain(lambda A: A @ w, X)
    np.testing.assert_allclose(e.values.sum(1) + e.base_values, X @ w, atol=1e-10)


PRESET_EXPECT = {
    "shap": {}, "exact-shap": {}, "permutation-shap": {"budget": 2000},
    "kernelshap": {"budget": 2000}, "lime": {}, "occlusion": {}, "feature-ablation": {},
    "rise": {"budget": 400}, "banzhaf": {"budget": 2000}, "lossshap": {},
    "shap-kl": {}, "sage": {"budget": 20000}, "permutation-importance": {},
    "shap-interactions": {},
}


def test_every_preset_is_exercised():
    from xai.presets import Preset

    core = {n for n in names("explainer") if registry.source("explainer", n) is registry.CORE
            and isinstance(registry.get("explainer", n), Preset)}
    assert set(PRESET_EXPECT) == core


@pytest.mark.parametrize("method", sorted(PRESET_EXPECT))
def test_preset_conformance(method):
    """Every preset on a small classifier: shapes, finite values, seeds reproduce, the axes
    and evaluations are recorded, and save/load round-trips."""
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(5)
    X = rng.normal(size=(60, 5))
    y = (X[:, 0] + 0.5 * X[:, 1] > 0).astype(int)
    clf = LogisticRegression().fit(X, y)
    kw = dict(PRESET_EXPECT[method], seed=3, progress=False)
    needs_y = method in ("lossshap", "sage", "permutation-importance")
    uses_bg = method not in ("permutation-importance",)
    if needs_y:
        kw["y"] = y[:20] if method != "lossshap" else y[:4]
    if uses_bg:
        kw["background"] = X[20:50]
    rows = X[:20] if method in ("sage", "permutation-importance") else X[:4]
    e1 = xai.explain(clf, rows, method=method, **kw)
    e2 = xai.explain(clf, rows, method=method, **kw)
    n = 1 if method in ("sage", "permutation-importance") else 4
    assert e1.values.shape == (n, 5)
    assert np.isfinite(e1.values).all()
    np.testing.assert_array_equal(e1.values, e2.values)
    assert e1.evaluations > 0 and e1.removal["name"] and e1.summary["name"]
    # the useful feature 0 matters most (RISE scores also carry the mean value: centre them)
    v = e1.values - e1.values.mean(1, keepdims=True) if method == "rise" else e1.values
    assert np.argmax(np.abs(v).mean(0)) == 0


def test_lime_feature_selection_modes():
    rng = np.random.default_rng(6)
    a = np.array([3.0, -2.0, 0.0, 0.0, 1.0, 0.0])
    X = rng.normal(size=(2, 6))
    f = lambda A: A @ a
    for sel in ("forward_selection", "highest_weights", "lasso_path", "auto"):
        e = xai.explain(f, X, method="lime", background=X * 0, seed=0, num_features=3,
                        feature_selection=sel, progress=False)
        chosen = np.isfinite(e.stderr[0])
        assert chosen.sum() == 3, sel
        assert set(np.flatnonzero(chosen)) == {0, 1, 4}, sel
        assert (e.values[0, ~chosen] == 0).all()


def test_kernelshap_bootstrap_variance_is_close_to_sandwich():
    rng = np.random.default_rng(7)
    W = rng.normal(size=(12, 6))
    f = lambda A: np.tanh(A @ W).sum(1)
    X = rng.normal(size=(1, 12))
    kw = {"background": np.zeros((1, 12)), "budget": 600, "seed": 1, "progress": False}
    s = xai.explain(f, X, method="kernelshap", **kw)
    b = xai.explain(f, X, method="kernelshap", variance="bootstrap", **kw)
    np.testing.assert_allclose(s.values, b.values)
    ratio = b.stderr / s.stderr
    assert 0.5 < np.median(ratio) < 2.0


def test_lossshap_is_efficient_for_the_loss():
    """LossSHAP on squared error: values sum to loss(empty) - loss(full)."""
    rng = np.random.default_rng(8)
    w = rng.normal(size=4)
    X, B = rng.normal(size=(3, 4)), rng.normal(size=(25, 4))
    y = X @ w + 0.3
    e = xai.explain(lambda A: A @ w, X, method="lossshap", y=y, background=B,
                    progress=False)
    loss_full = (X @ w - y) ** 2
    loss_empty = (B.mean(0) @ w - y) ** 2
    np.testing.assert_allclose(e.values.sum(1), loss_empty - loss_full, atol=1e-10)


def test_progress_bar_and_memory_cap_options():
    rng = np.random.default_rng(9)
    X, B = rng.normal(size=(3, 4)), rng.normal(size=(20, 4))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        e1 = xai.explain(lambda A: np.sin(A).sum(1), X, method="exact-shap", background=B,
                         progress=True, memory_cap="64KiB")
    e2 = xai.explain(lambda A: np.sin(A).sum(1), X, method="exact-shap", background=B,
                     progress=False)
    np.testing.assert_allclose(e1.values, e2.values, atol=1e-12)
