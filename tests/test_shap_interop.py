"""Conversion to and from shap.Explanation (xai.shap_interop), checked against shap itself."""

from __future__ import annotations

import sys

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest

shap = pytest.importorskip("shap")

from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LinearRegression, LogisticRegression

import xai
from xai.errors import InputError, MissingDependencyError
from xai.explanation import Explanation


@pytest.fixture(scope="module")
def cancer():
    """Breast-cancer rows over six named columns and a logistic regression on them."""
    data = load_breast_cancer(as_frame=True)
    X = data.data.iloc[:, :6]
    y = np.where(data.target == 1, "benign", "malignant")
    model = LogisticRegression(max_iter=5000).fit(X.to_numpy(), y)
    return X.to_numpy(), list(X.columns), model


def expl_3d() -> Explanation:
    rng = np.random.default_rng(0)
    return Explanation(values=rng.normal(size=(4, 3, 2)), stderr=rng.uniform(size=(4, 3, 2)),
                       base_values=rng.normal(size=(4, 2)), data=rng.normal(size=(4, 3)),
                       feature_names=["a", "b", "c"], output_names=["no", "yes"], seconds=1.5)


def test_to_shap_keeps_values_layout_names_and_stderr():
    e = expl_3d()
    s = e.to_shap()
    assert isinstance(s, shap.Explanation)
    assert s.values.shape == (4, 3, 2) and s.base_values.shape == (4, 2)
    np.testing.assert_array_equal(s.values, e.values)
    np.testing.assert_array_equal(s.base_values, e.base_values)
    np.testing.assert_array_equal(s.data, e.data)
    np.testing.assert_array_equal(s.error_std, e.stderr)
    assert list(s.feature_names) == ["a", "b", "c"] and list(s.output_names) == ["no", "yes"]
    assert s.compute_time == 1.5
    one = e[..., "yes"].to_shap()
    assert one.output_names == "yes" and one.values.shape == (4, 3)  # as shap's s[:, :, j]


def test_images_go_to_shap_without_pixel_data():
    e = Explanation(values=np.ones((1, 4)), stderr=None, base_values=np.zeros(1),
                    data=np.ones((1, 1, 4, 4)), channel_axis=0,
                    feature_map=np.repeat(np.repeat(np.arange(4).reshape(1, 2, 2), 2, 1), 2, 2))
    s = e.to_shap()
    assert s.data is None and s.values.shape == (1, 4)


@pytest.mark.parametrize("make", [expl_3d, lambda: expl_3d()[..., 0], lambda: expl_3d()[2]])
def test_round_trip_keeps_values_exactly(make):
    e = make()
    back = Explanation.from_shap(e.to_shap())
    for name in ("values", "stderr", "base_values", "data"):
        np.testing.assert_array_equal(getattr(back, name), getattr(e, name), err_msg=name)
    assert back.feature_names == e.feature_names and back.seconds == e.seconds
    if e.values.ndim == 3:
        assert back.output_names == e.output_names
    else:  # the one output every row explains
        assert back.output_names == [e.output_names[e.extras["target"][0]]]


def test_from_shap_adds_the_row_axis_that_shap_drops():
    e = expl_3d()
    s = e.to_shap()
    row = Explanation.from_shap(s[1])  # values (d, k), base (k,), data (d,)
    assert row.shape == (1, 3, 2)
    np.testing.assert_array_equal(row.values, e.values[[1]])
    np.testing.assert_array_equal(row.base_values, e.base_values[[1]])
    np.testing.assert_array_equal(row.data, e.data[[1]])
    cell = Explanation.from_shap(s[1, :, 0])  # values (d,), base scalar
    assert cell.shape == (1, 3)
    np.testing.assert_array_equal(cell.values[0], e.values[1, :, 0])
    assert cell.base_values[0] == e.base_values[1, 0] and cell.output_names == ["no"]


def test_from_shap_fills_missing_base_values_and_names():
    bare = shap.Explanation(np.arange(6.0).reshape(2, 3))
    e = Explanation.from_shap(bare)
    assert e.names == ["feature_0", "feature_1", "feature_2"] and e.feature_names == []
    assert np.isnan(e.base_values).all() and e.data is None and e.stderr is None
    named = Explanation.from_shap(bare, feature_names=["x", "y", "z"], method="kernel")
    assert named.feature_names == ["x", "y", "z"] and named.method == "kernel"


def test_from_shap_refuses_what_is_not_a_shap_explanation():
    with pytest.raises(InputError, match="shap.Explanation"):
        Explanation.from_shap(np.zeros((2, 3)))
    with pytest.raises(InputError, match="Reshape"):
        Explanation.from_shap(shap.Explanation(np.zeros((2, 4, 4, 3)), base_values=np.zeros(2)))
    with pytest.raises(InputError, match="feature_names"):
        Explanation.from_shap(shap.Explanation(np.zeros((2, 3)), feature_names=["a", "b"]))


def test_missing_shap_names_the_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "shap", None)  # import shap now raises ImportError
    with pytest.raises(MissingDependencyError, match="pip install shap") as info:
        expl_3d().to_shap()
    assert isinstance(info.value, ImportError)


def test_shap_plots_draw_converted_explanations(cancer):
    X, _, model = cancer
    e = xai.explain(model, X[:8], "shap", background=X[:30], target="all", progress=False)
    s = e[..., "malignant"].to_shap()
    for draw in (lambda: shap.plots.waterfall(s[0], show=False),
                 lambda: shap.plots.beeswarm(s, show=False),
                 lambda: shap.plots.bar(s, show=False)):
        plt.close("all")
        draw()
        ax = plt.gcf().axes[0]
        assert ax.patches or ax.collections  # something was drawn
        # shap labels the features by the names xai recorded
        shown = " ".join(t.get_text() for t in ax.get_yticklabels())
        assert any(name in shown for name in e.names)
    plt.close("all")


def test_shap_linear_explainer_agrees_with_exact_xai_values():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 4))
    model = LinearRegression().fit(X, X @ np.array([1.0, -2.0, 0.5, 3.0]) + rng.normal(size=60))
    background = X[:40]
    theirs = Explanation.from_shap(shap.LinearExplainer(model, background)(X[40:45]))
    ours = xai.explain(model.predict, X[40:45], "shap", background=background, progress=False)
    assert ours.options["estimator"] == "exact-shapley"
    np.testing.assert_allclose(theirs.values, ours.values, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(theirs.base_values, ours.base_values, rtol=1e-9, atol=1e-12)
    np.testing.assert_array_equal(theirs.data, X[40:45])


def test_shap_kernel_explainer_agrees_with_xai_for_every_class(cancer):
    # with 6 features KernelExplainer enumerates every coalition: exact Shapley values
    X, names, model = cancer
    background = X[:25]
    shap_expl = shap.KernelExplainer(model.predict_proba, background,
                                     feature_names=names)(X[30:33], silent=True)
    theirs = Explanation.from_shap(shap_expl, output_names=list(model.classes_))
    ours = xai.explain(model, X[30:33], "shap", background=background, target="all",
                       progress=False)
    assert ours.options["estimator"] == "exact-shapley"
    assert theirs.shape == ours.shape == (3, 6, 2)
    assert theirs.output_names == ours.output_names == ["benign", "malignant"]
    assert theirs.feature_names == names
    np.testing.assert_allclose(theirs.values, ours.values, rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(theirs.base_values, ours.base_values, rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(theirs[..., "malignant"].values, ours[..., "malignant"].values,
                               rtol=1e-8, atol=1e-12)
