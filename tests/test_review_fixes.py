"""Regression tests of the reviewer's findings (one section per finding number)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from sklearn.linear_model import LinearRegression, LogisticRegression

import xai
from xai.behaviours import Prediction
from xai.errors import InputError, LabelError, MaskError, ModelError, TargetError, UnknownNameError
from xai.external import ExternalExplainer
from xai.features import FeatureMap
from xai.game import Game
from xai.models import as_model
from xai.removals import Baseline, ConditionalGaussian, Marginal, gaussian_blur

RNG = np.random.default_rng(0)


@pytest.fixture(scope="module")
def linreg():
    X = RNG.normal(size=(200, 4))
    y = X @ np.array([1.0, 2.0, 3.0, 4.0])
    return LinearRegression().fit(X, y), X


class Tok(torch.nn.Module):
    """Embedding bag over token ids (integer inputs)."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.emb = torch.nn.Embedding(50, 2)

    def forward(self, ids):
        return self.emb(ids).mean(1)


# ---- 1. baseline "mean" / "median" need a background --------------------------------------


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


# ---- 2. integer tables are tabular unless a torch module reads token ids ------------------


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
    e = xai.explain(Tok(), ids, "occlusion", baseline=0, target=0, progress=False)
    assert e.options["kind"] == "tokens"
    # a token feature map makes integer ids of a callable tokens too
    e = xai.explain(lambda a: a.sum(1).astype(float), X, "occlusion", baseline=0,
                    features=FeatureMap.tokens(4), progress=False)
    assert e.options["kind"] == "tokens"


class _Evaluate(ExternalExplainer):
    name = "test-evaluate"
    per_position = False

    def attribute(self, ctx):
        out = ctx.predict(ctx.X)
        return {"values": np.repeat(out[:, :1], ctx.X.shape[1], 1)}


def test_external_integer_table_is_tabular_and_evaluations_per_call():
    X = RNG.integers(0, 10, size=(4, 3))
    adapter = as_model(lambda a: a.sum(1).astype(float))
    counts = []
    for _ in range(3):
        e = _Evaluate().explain(adapter, X)
        assert e.options["kind"] == "tabular"
        counts.append(e.evaluations)
    assert counts == [8, 8, 8]  # resolve_targets (4 rows) + attribute (4 rows), per call


# ---- 5. one-output probability models: targets 0 and 1 -----------------------------------


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


# ---- 6. labels mapped through scikit-learn classes_ ---------------------------------------


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


# ---- 7. evaluations per call with a reused adapter ----------------------------------------


def test_evaluations_per_call_with_reused_adapter():
    X = RNG.normal(size=(100, 5))
    clf = LogisticRegression().fit(X, (X[:, 0] > 0).astype(int))
    adapter = xai.as_model(clf)
    counts = [xai.explain(adapter, X[:4], "occlusion", background=X, progress=False).evaluations
              for _ in range(3)]
    assert counts == [4 * (5 + 1)] * 3


# ---- 8. baseline on token ids accepts no fractional masks ---------------------------------


def test_baseline_on_tokens_refuses_fractional_masks():
    ids = torch.randint(1, 50, (2, 6))
    fm = FeatureMap.tokens(6)
    g = Game(as_model(Tok()), ids, Baseline(0), Prediction(target=0), fm, kind="tokens")
    assert not g.removal.accepts_fractional
    with pytest.raises(MaskError, match="accepts only boolean masks"):
        g(np.full((1, 6), 0.5))
    g(np.ones((1, 6), bool))  # boolean masks still work
    with pytest.raises(MaskError):
        xai.Explainer("baseline", "prediction", "sobol", baseline=0, design="continuous",
                      budget=2000, seed=0, progress=False).explain(Tok(), ids)
    # real-valued inputs keep fractional masks
    g = Game(as_model(lambda a: a.sum(1)), np.ones((2, 3)), Baseline(0.0), Prediction(),
             FeatureMap.tabular(3))
    assert g.removal.accepts_fractional
    np.testing.assert_allclose(g(np.full((1, 3), 0.5), rows=np.array([0])).numpy().ravel(),
                               [1.5])


# ---- 9. per-explicand options with explicands grouped by feature count --------------------


@pytest.fixture(scope="module")
def ragged_images():
    X = np.random.default_rng(0).random((3, 3, 32, 32)).astype(np.float32)
    X[1, :, :16] = 0.0  # a flatter image: a different number of superpixels
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # slic finds one segment in the noise images
        fm = FeatureMap.superpixels(X, "slic", channel_axis=0)
    assert len(np.unique(fm.d_per_map)) > 1
    return X, fm


def _alone(fn, X, fm, i):
    return fn(X[i:i + 1], fm.subset(np.array([i])))


def test_grouped_explicands_slice_per_explicand_baseline(ragged_images):
    X, fm = ragged_images

    def f(x):
        return (x.reshape(len(x), -1) ** 2).mean(1, keepdims=True)

    base = X * 0.5  # one baseline per explicand
    e = xai.Explainer("baseline", "prediction", "remove-individual", baseline=base,
                      progress=False).explain(f, X, features=fm)
    for i in range(3):
        a = xai.Explainer("baseline", "prediction", "remove-individual", baseline=base[i:i + 1],
                          progress=False).explain(f, X[i:i + 1], features=fm.subset([i]))
        d = a.values.shape[1]
        np.testing.assert_allclose(e.values[i, :d], a.values[0], rtol=1e-6, atol=1e-9)


def test_grouped_explicands_slice_per_explicand_target(ragged_images):
    X, fm = ragged_images

    def g(x):
        x = x.reshape(len(x), -1).astype(np.float64)
        return np.stack([x.mean(1), x.std(1)], 1)

    t = np.array([0, 1, 0])
    e = xai.Explainer("baseline", "prediction", "remove-individual", baseline=0.0, target=t,
                      progress=False).explain(g, X, features=fm)
    for i in range(3):
        a = xai.Explainer("baseline", "prediction", "remove-individual", baseline=0.0,
                          target=int(t[i]), progress=False).explain(g, X[i:i + 1],
                                                                    features=fm.subset([i]))
        d = a.values.shape[1]
        np.testing.assert_allclose(e.values[i, :d], a.values[0], rtol=1e-6, atol=1e-9)


# ---- 10. container and non-numeric model outputs -------------------------------------------


class _Out:
    def __init__(self, logits):
        self.logits = logits


class _Wrapped(torch.nn.Module):
    def __init__(self, wrap):
        super().__init__()
        self.lin = torch.nn.Linear(3, 2).double()
        self.wrap = wrap

    def forward(self, x):
        return self.wrap(self.lin(x))


@pytest.mark.parametrize("wrap", [lambda t: {"logits": t, "hidden": t * 0},
                                  lambda t: _Out(t), lambda t: (t, None)],
                         ids=["dict", "modeloutput", "tuple"])
def test_container_outputs_are_unwrapped(wrap):
    X = RNG.normal(size=(2, 3))
    plain = _Wrapped(lambda t: t)
    wrapped = _Wrapped(wrap)
    wrapped.lin = plain.lin
    a = xai.explain(plain, X, "occlusion", baseline=0.0, target=1, progress=False)
    b = xai.explain(wrapped, X, "occlusion", baseline=0.0, target=1, progress=False)
    np.testing.assert_allclose(a.values, b.values)


@pytest.mark.parametrize("out", [lambda n: np.array(["a"] * n), lambda n: {"x": "a"},
                                 lambda n: object()], ids=["strings", "dict", "object"])
def test_non_numeric_outputs_are_model_errors(out):
    with pytest.raises(ModelError, match="cannot be read as numbers") as info:
        xai.explain(lambda x: out(len(x)), RNG.normal(size=(2, 3)), "occlusion", baseline=0.0,
                    progress=False)
    assert info.value.inputs is not None


# ---- 13. silently ignored option values ---------------------------------------------------


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


# ---- 15b. blur equals scikit-image's gaussian (mode="nearest") -----------------------------


@pytest.mark.parametrize("sigma", [0.7, 1.6, 4.0, 12.0])
def test_blur_matches_skimage_nearest(sigma):
    skf = pytest.importorskip("skimage.filters")
    img = np.random.default_rng(1).random((3, 17, 23))
    ours = gaussian_blur(torch.as_tensor(img[None]), sigma)[0].numpy()
    ref = skf.gaussian(img, sigma=sigma, channel_axis=0, mode="nearest", truncate=4.0,
                       preserve_range=True)
    np.testing.assert_allclose(ours, ref, atol=1e-6)
