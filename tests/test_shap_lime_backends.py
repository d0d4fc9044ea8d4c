"""The shap and lime backends (plugins/xai_shap, plugins/xai_lime) against xai's native
estimators: shap's exact and full-enumeration Kernel equal native exact Shapley;
lime on the same segments, kernel width and sample count agrees with native LIME."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

import xai
from xai import registry

shap = pytest.importorskip("shap")
pytest.importorskip("lime")

D = 6


@pytest.fixture(scope="module")
def mlp():
    from sklearn.neural_network import MLPRegressor

    rng = np.random.default_rng(0)
    Xt = rng.normal(size=(300, D))
    yt = np.sin(Xt[:, 0]) + Xt[:, 1] * Xt[:, 2] - 0.5 * Xt[:, 3] ** 2 + 0.3 * Xt[:, 4]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = MLPRegressor(hidden_layer_sizes=(16,), max_iter=300, random_state=0).fit(Xt, yt)
    return model, rng.normal(size=(4, D)), rng.normal(size=(20, D))


def test_shap_exact_equals_native_exact(mlp):
    model, X, B = mlp
    ours = xai.explain(model, X, method="exact-shap", background=B)
    theirs = xai.explain(model, X, method="shap.exact", background=B)
    np.testing.assert_allclose(theirs.values, ours.values, atol=1e-8, rtol=0)
    np.testing.assert_allclose(theirs.base_values, ours.base_values, atol=1e-8, rtol=0)
    assert theirs.values.shape == (4, D) and theirs.method == "shap.exact"
    assert theirs.evaluations >= len(X) * 2**D  # shap's calls went through the counter


def test_shap_exact_classifier_target_per_row():
    from sklearn.neural_network import MLPClassifier

    rng = np.random.default_rng(1)
    Xt = rng.normal(size=(200, 4))
    yt = (Xt[:, 0] + Xt[:, 1] > 0).astype(int) + (Xt[:, 2] > 1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf = MLPClassifier(hidden_layer_sizes=(8,), max_iter=200, random_state=0).fit(Xt, yt)
    X, B = Xt[:5], Xt[100:120]
    ours = xai.explain(clf, X, method="exact-shap", background=B)
    theirs = xai.explain(clf, X, method="shap.exact", background=B)
    np.testing.assert_allclose(theirs.values, ours.values, atol=1e-8, rtol=0)
    t = clf.predict_proba(X).argmax(1)
    np.testing.assert_allclose(theirs.values.sum(1) + theirs.base_values,
                               clf.predict_proba(X)[np.arange(5), t], atol=1e-8)


def test_shap_kernel_full_enumeration_equals_native_exact(mlp):
    model, X, B = mlp
    ours = xai.explain(model, X, method="exact-shap", background=B)
    theirs = xai.explain(model, X, method="shap.kernel", background=B, nsamples=2**D,
                         l1_reg=False, seed=0)
    np.testing.assert_allclose(theirs.values, ours.values, atol=1e-6, rtol=0)
    assert theirs.options["l1_reg"] is False and theirs.options["nsamples"] == 2**D


def test_shap_permutation_runs_and_is_efficient(mlp):
    model, X, B = mlp
    e = xai.explain(model, X, method="shap.permutation", background=B, max_evals=200, seed=0)
    np.testing.assert_allclose(e.values.sum(1) + e.base_values, model.predict(X), atol=1e-8)


def test_shap_tree_local_accuracy():
    from sklearn.ensemble import RandomForestRegressor

    rng = np.random.default_rng(2)
    Xt = rng.normal(size=(200, 5))
    forest = RandomForestRegressor(n_estimators=10, max_depth=4, random_state=0).fit(
        Xt, Xt[:, 0] + 2 * Xt[:, 1] * (Xt[:, 2] > 0))
    X = Xt[:6]
    for kw in ({}, {"background": Xt[100:150]}):
        e = xai.explain(forest, X, method="shap.tree", **kw)
        np.testing.assert_allclose(e.values.sum(1) + e.base_values, forest.predict(X),
                                   atol=1e-6)
    assert e.options["feature_perturbation"] == "interventional"


def test_shap_linear_interventional():
    from sklearn.linear_model import LinearRegression

    rng = np.random.default_rng(3)
    Xt = rng.normal(size=(100, 4))
    lin = LinearRegression().fit(Xt, Xt @ np.array([1.0, -2.0, 0.5, 3.0]) + 1.0)
    X, B = Xt[:5], Xt[50:80]
    e = xai.explain(lin, X, method="shap.linear", background=B,
                    feature_perturbation="interventional")
    np.testing.assert_allclose(e.values, lin.coef_ * (X - B.mean(0)), atol=1e-10)
    np.testing.assert_allclose(e.base_values, lin.predict(B.mean(0)[None])[0], atol=1e-10)


class TinyCNN(torch.nn.Module):
    def __init__(self, channels=3, classes=3):
        super().__init__()
        torch.manual_seed(0)
        self.conv = torch.nn.Conv2d(channels, 4, 3, padding=1)
        self.head = torch.nn.Linear(4 * 4 * 4, classes)

    def forward(self, x):
        h = torch.nn.functional.adaptive_avg_pool2d(torch.relu(self.conv(x)), 4)
        return torch.softmax(self.head(h.flatten(1)), -1)


def _images(n, size, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, size, size, generator=g).numpy().astype(np.float32)


def test_shap_partition_image_per_pixel_and_features():
    cnn = TinyCNN().eval()
    X = _images(2, 8)
    e = xai.explain(cnn, X, method="shap.partition", mask=0.0, max_evals=300)
    assert e.values.shape == (2, 3 * 8 * 8)  # d = every pixel of every channel (shap's unit)
    with torch.no_grad():
        p = cnn(torch.as_tensor(X)).numpy()
        p0 = cnn(torch.zeros(1, 3, 8, 8)).numpy()[0]
    t = p.argmax(1)
    np.testing.assert_allclose(e.base_values, p0[t], atol=1e-5)
    # efficiency of Owen values: sum = f(x) - f(everything masked)
    np.testing.assert_allclose(e.values.sum(1), p[np.arange(2), t] - p0[t], atol=1e-4)
    fm = xai.FeatureMap.patches((8, 8), 4, channel_axis=0)
    g = xai.explain(cnn, X, method="shap.partition", mask=0.0, max_evals=300, features=fm)
    assert g.values.shape == (2, 4)
    np.testing.assert_allclose(g.values.sum(1), e.values.sum(1), atol=1e-6)


def test_shap_partition_tabular(mlp):
    model, X, B = mlp
    e = xai.explain(model, X, method="shap.partition", background=B, max_evals=200)
    np.testing.assert_allclose(e.values.sum(1) + e.base_values, model.predict(X), atol=1e-6)


def test_lime_image_matches_native_lime():
    cnn = TinyCNN().eval()
    X = _images(2, 16, seed=1)
    fm = xai.FeatureMap.patches((16, 16), 4, channel_axis=0)  # 16 features, shared
    n_samples = 4000
    theirs = xai.explain(cnn, X, method="lime.image", features=fm, seed=0,
                         num_samples=n_samples)
    ours = xai.explain(cnn, X, method="lime", features=fm, seed=1, budget=n_samples)
    assert theirs.values.shape == ours.values.shape == (2, 16)
    assert set(theirs.extras) == {"score", "target"}
    for i in range(2):
        corr = np.corrcoef(theirs.values[i], ours.values[i])[0, 1]
        assert corr > 0.95, corr
        assert set(np.argsort(-theirs.values[i])[:3]) == set(np.argsort(-ours.values[i])[:3])
        scale = np.abs(ours.values[i]).max()
        assert np.abs(theirs.values[i] - ours.values[i]).max() < 0.25 * scale
    # lime's calls went through the counting adapter (n_samples per image)
    assert theirs.evaluations >= 2 * n_samples


def test_lime_image_default_superpixels_and_grey_images():
    cnn = TinyCNN(channels=1).eval()
    X = _images(1, 16)[:, :1]
    e = xai.explain(cnn, X, method="lime.image", seed=0, num_samples=200)
    assert e.values.shape[0] == 1 and e.feature_map is not None
    assert e.values.shape[1] == int(e.feature_map.max()) + 1


def test_lime_tabular_matches_native_on_linear_model():
    rng = np.random.default_rng(4)
    w = np.array([3.0, -2.0, 1.0, 0.5, 0.0])
    B = rng.normal(size=(500, 5)) * np.array([1.0, 2.0, 0.5, 1.0, 1.0]) + 1.0

    def f(A):
        return A @ w + 0.5

    # contributions (3, -2.4, -2, 0.25, 0) and (-0.6, -2, 0.9, -1.2, 0): no ties in the top 3
    X = B.mean(0) + np.array([[1.0, 1.2, -2.0, 0.5, 1.0], [-0.2, 1.0, 0.9, -2.4, 0.3]])
    theirs = xai.explain(f, X, method="lime.tabular", background=B, seed=0)
    ours = xai.explain(f, X, method="lime", background=B, seed=0)
    # lime fits a coefficient per standard deviation; on the native scale (moving feature i
    # from the background mean to x_i) both recover w_i (x_i - mean_i) for a linear model
    contrib = theirs.extras["contribution"]
    target = w * (X - B.mean(0))
    np.testing.assert_allclose(contrib, target, atol=0.05 * np.abs(target).max())
    np.testing.assert_allclose(ours.values, target, atol=0.05 * np.abs(target).max())
    for i in range(2):
        top_theirs = np.argsort(-np.abs(contrib[i]))[:3]
        top_ours = np.argsort(-np.abs(ours.values[i]))[:3]
        assert list(top_theirs) == list(top_ours)
    assert np.all(theirs.extras["score"] > 0.99)


def test_registered_names_and_unknown_option(mlp):
    names = registry.names("explainer")
    for name in ("shap.exact", "shap.permutation", "shap.kernel", "shap.partition",
                 "shap.tree", "shap.linear", "lime.tabular", "lime.image"):
        assert name in names
    assert registry.get("explainer", "SHAP.Kernel") is registry.get("explainer", "shap.kernel")
    model, X, B = mlp
    with pytest.raises(xai.UnknownNameError, match="nsamples"):
        xai.explain(model, X, method="shap.kernel", background=B, n_samples=10)
    with pytest.raises(xai.InputError, match="background"):
        xai.explain(model, X, method="lime.tabular")
