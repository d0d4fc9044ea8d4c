"""Option values are read, not ignored: baseline "mean" / "median" need a background and use it
(never the batch), covariance and background-summary names are normalised or refused, and
the auto rule warns about options the chosen estimator does not take."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn.linear_model import LinearRegression

import xai
from xai.errors import InputError, UnknownNameError
from xai.removals import ConditionalGaussian, Marginal

RNG = np.random.default_rng(0)


@pytest.fixture(scope="module")
def linreg():
    X = RNG.normal(size=(200, 4))
    y = X @ np.array([1.0, 2.0, 3.0, 4.0])
    return LinearRegression().fit(X, y), X


# ---- baseline "mean" / "median" need a background ------------------------------------------


@pytest.mark.parametrize("method", ["occlusion", "lime"])
def test_mean_baseline_without_background_is_an_error(linreg, method):
    model, X = linreg
    with pytest.raises(InputError, match=r"baseline='mean' needs a background: pass "
                                         r"background=X_train"):
        xai.explain(model, X[:1], method, seed=0, progress=False)


@pytest.mark.parametrize("shortcut", ["mean", "median"])
def test_mean_baseline_uses_background_and_not_the_batch(linreg, shortcut):
    model, X = linreg
    with pytest.raises(InputError, match=f"baseline='{shortcut}' needs a background"):
        xai.explain(model, X[:3], "occlusion", baseline=shortcut, progress=False)
    B = X[:199]  # an odd number of rows: one median
    alone = xai.explain(model, X[:1], "occlusion", baseline=shortcut, background=B,
                        progress=False)
    batch = xai.explain(model, X[:5], "occlusion", baseline=shortcut, background=B,
                        progress=False)
    np.testing.assert_allclose(alone.values[0], batch.values[0], atol=1e-12)
    ref = B.mean(0) if shortcut == "mean" else np.median(B, 0)
    np.testing.assert_allclose(alone.values[0], model.coef_ * (X[0] - ref), atol=1e-10)


# ---- option names ----------------------------------------------------------------------------


def test_covariance_names():
    assert ConditionalGaussian(covariance="Ledoit_Wolf").covariance == "ledoit-wolf"
    assert ConditionalGaussian(covariance="EMPIRICAL").covariance == "empirical"
    with pytest.raises(UnknownNameError, match="ledoit-wolf"):
        ConditionalGaussian(covariance="nonsense")
    B = RNG.normal(size=(30, 3))

    def f(x):
        return x @ np.array([1.0, 2.0, 3.0])

    def run(cov):
        return xai.Explainer("conditional-gaussian", "prediction", "exact-shapley",
                             covariance=cov, n_samples=0, seed=0,
                             progress=False).explain(f, B[:2], background=B)

    a, b = run("ledoit-wolf"), run("ledoit_wolf")
    np.testing.assert_array_equal(a.values, b.values)
    assert not np.allclose(a.values, run("empirical").values)


def test_background_summary_names():
    assert Marginal(background_summary="k-means").background_summary == "kmeans"
    assert Marginal(background_summary="KMeans").background_summary == "kmeans"
    assert Marginal(background_summary="subsample").background_summary == "subsample"
    assert Marginal().background_summary is None
    with pytest.raises(UnknownNameError, match="kmeans"):
        Marginal(background_summary="kmedoids")


def test_auto_rule_warns_and_drops_options_of_other_estimators():
    X = RNG.normal(size=(1, 15))
    B = RNG.normal(size=(10, 15))

    def f(x):
        return np.tanh(x).sum(1)

    with pytest.warns(UserWarning, match=r"rtol.*'kernelshap'"):
        e = xai.explain(f, X, "shap", background=B, rtol=0.5, seed=0, progress=False)
    assert e.options["estimator"] == "kernelshap" and "rtol" not in e.options
    with pytest.warns(UserWarning) as rec:
        e = xai.explain(f, X[:, :8], "shap", background=B[:, :8], tol=0.5,
                        variance="bootstrap", seed=0, progress=False)
    text = " ".join(str(w.message) for w in rec)
    assert "'exact-shapley'" in text and "tol=" in text and "variance=" in text
    assert "tol" not in e.options and "variance" not in e.options
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # options the chosen estimator takes: no warning
        e = xai.explain(f, X, "shap", background=B, tol=0.5, budget=3000, seed=0,
                        progress=False)
    assert e.options["tol"] == 0.5
