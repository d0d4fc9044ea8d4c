"""The kind of an integer input: a table for scikit-learn models and callables, token ids for a
torch module that reads them or under a token feature map."""

from __future__ import annotations

import numpy as np
import torch
from helpers import TokenBag
from sklearn.linear_model import LinearRegression

import xai
from xai.features import FeatureMap

RNG = np.random.default_rng(0)


def test_integer_table_of_sklearn_model_is_tabular():
    X = RNG.integers(0, 10, size=(200, 3))
    m = LinearRegression().fit(X, X @ np.array([1.0, 2.0, 3.0]))
    e = xai.explain(m, X[:2], "occlusion", background=X, progress=False)
    assert e.options["kind"] == "tabular"
    assert not any(n.startswith("token") for n in e.feature_names)
    np.testing.assert_allclose(e.values[0], m.coef_ * (X[0] - X.mean(0)), atol=1e-10)
    e = xai.explain(m, X[:2], "shap", background=X[:20], progress=False, seed=0)
    assert e.options["kind"] == "tabular"


def test_integer_table_of_callable_is_tabular_and_torch_ids_are_tokens():
    X = RNG.integers(0, 10, size=(3, 4))
    w = np.array([1.0, -1.0, 2.0, 0.5])
    e = xai.explain(lambda a: a @ w, X, "occlusion", baseline=0.0, progress=False)
    assert e.options["kind"] == "tabular"
    np.testing.assert_allclose(e.values, w * X, atol=1e-12)
    ids = torch.randint(1, 50, (2, 6))
    e = xai.explain(TokenBag(), ids, "occlusion", baseline=0, target=0, progress=False)
    assert e.options["kind"] == "tokens"
    # a token feature map makes integer ids of a callable tokens too
    e = xai.explain(lambda a: a.sum(1).astype(float), X, "occlusion", baseline=0,
                    features=FeatureMap.tokens(4), progress=False)
    assert e.options["kind"] == "tokens"
