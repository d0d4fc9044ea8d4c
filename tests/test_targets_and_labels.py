"""Targets and labels: a one-output probability model answers for class 0 and class 1 (the
default is the positive class), and labels reach the loss through scikit-learn's ``classes_``
(strings, labels 1 and 2) or are refused with a ``LabelError``."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression

import xai
from xai.behaviours import Prediction
from xai.errors import LabelError, TargetError
from xai.features import FeatureMap
from xai.game import Game
from xai.models import as_model
from xai.removals import Baseline

RNG = np.random.default_rng(0)


# ---- one-output probability models: targets 0 and 1 ---------------------------------------


@pytest.fixture(scope="module")
def sigmoid_net():
    torch.manual_seed(0)
    net = torch.nn.Linear(4, 1).double()
    X = np.random.default_rng(0).normal(size=(6, 4))
    with torch.no_grad():
        p1 = torch.sigmoid(net(torch.as_tensor(X)))[:, 0].numpy()
    return net, X, p1


def _v_full(net, X, **kw):
    g = Game(as_model(net), X, Baseline(0.0), Prediction(**kw), FeatureMap.tabular(4))
    return g.v_full.numpy()


def test_single_output_probability_targets(sigmoid_net):
    net, X, p1 = sigmoid_net
    np.testing.assert_allclose(_v_full(net, X, target=0, output="probability"), 1 - p1)
    np.testing.assert_allclose(_v_full(net, X, target=1, output="probability"), p1)
    t = np.array([0, 1, 0, 1, 0, 1])
    np.testing.assert_allclose(_v_full(net, X, target=t, output="probability"),
                               np.where(t == 1, p1, 1 - p1))
    lo = _v_full(net, X, target=0, output="log-odds")
    np.testing.assert_allclose(lo, np.log((1 - p1) / p1), rtol=1e-9)
    e = xai.explain(net, X, "occlusion", baseline="zeros", target=0, output="probability",
                    progress=False)
    np.testing.assert_allclose(e.base_values, 1 - p1)  # occlusion's base value is v(D)


def test_single_output_predicted_is_class_p_over_half(sigmoid_net):
    net, X, p1 = sigmoid_net
    assert (p1 > 0.5).any() and (p1 < 0.5).any()
    expected = np.maximum(p1, 1 - p1)
    np.testing.assert_allclose(_v_full(net, X, target="predicted", output="probability"),
                               expected)
    # the default target of a binary classifier is the positive class on every row
    np.testing.assert_allclose(_v_full(net, X, output="probability"), p1)


def test_single_output_raw_scale_is_index_zero(sigmoid_net):
    net, X, _ = sigmoid_net
    with torch.no_grad():
        logit = net(torch.as_tensor(X))[:, 0].numpy()
    np.testing.assert_allclose(_v_full(net, X, target=0, output="raw"), logit)
    np.testing.assert_allclose(_v_full(net, X, target="predicted", output="raw"), logit)
    with pytest.raises(TargetError):
        _v_full(net, X, target=1, output="raw")
    with pytest.raises(TargetError):
        _v_full(net, X, target=2, output="probability")


# ---- labels mapped through scikit-learn classes_ -------------------------------------------


def test_string_labels_mapped_through_classes():
    X = RNG.normal(size=(100, 4))
    ys = np.where(X[:, 0] > 0, "yes", "no")
    clf = LogisticRegression().fit(X, ys)
    e = xai.explain(clf, X[:4], "lossshap", y=ys[:4], background=X[:20], seed=0,
                    progress=False)
    p = clf.predict_proba(X[:4])
    col = np.searchsorted(clf.classes_, ys[:4])
    np.testing.assert_allclose(e.base_values + e.values.sum(1),
                               np.log(p[np.arange(4), col]), atol=1e-9)
    with pytest.raises(LabelError, match=r"'maybe'.*\['no', 'yes'\]"):
        xai.explain(clf, X[:2], "lossshap", y=np.array(["yes", "maybe"]), background=X[:20],
                    progress=False)


def test_labels_one_two_are_classes_not_columns():
    X = RNG.normal(size=(100, 4))
    y12 = np.where(X[:, 0] > 0, 2, 1)
    clf = LogisticRegression().fit(X, y12)
    rows = np.r_[np.flatnonzero(y12 == 1)[:2], np.flatnonzero(y12 == 2)[:2]]
    e = xai.explain(clf, X[rows], "lossshap", y=y12[rows], background=X[:20], seed=0,
                    progress=False)
    p = clf.predict_proba(X[rows])
    np.testing.assert_allclose(e.base_values + e.values.sum(1),
                               np.log(p[np.arange(4), y12[rows] - 1]), atol=1e-9)
    with pytest.raises(LabelError, match=r"class label 3 .*classes \[1, 2\]"):
        xai.explain(clf, X[:2], "lossshap", y=np.array([1, 3]), background=X[:20],
                    progress=False)
    # SAGE (dataset loss) maps the labels too
    e = xai.explain(clf, X[:30], "sage", y=y12[:30], background=X[:10], seed=0, budget=20_000,
                    progress=False)
    assert np.isfinite(e.values).all()


def test_non_numeric_labels_without_mapping_are_label_errors():
    def f(a):
        p = 1 / (1 + np.exp(-a[:, 0]))
        return np.stack([1 - p, p], 1)

    X = RNG.normal(size=(3, 2))
    with pytest.raises(LabelError, match="numeric"):
        xai.explain(f, X, "lossshap", y=np.array(["a", "b", "a"]), background=X,
                    output_kind="probability", progress=False)


def test_read_only_labels_give_no_torch_warning():
    import warnings

    from sklearn.datasets import load_diabetes
    from sklearn.linear_model import Ridge

    X, y = load_diabetes(return_X_y=True, as_frame=True)
    model = Ridge().fit(X, y)
    labels = y.to_numpy()[:4].copy()
    labels.flags.writeable = False
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        e = xai.explain(model, X[:4], method="lossshap", y=labels, background=X[:20], seed=0,
                        progress=False)
    assert np.isfinite(e.values).all()
