"""Explainiverse 0.15.2's metrics as oracles on identical inputs: comprehensiveness,
sufficiency, sensitivity-n (on Explainiverse's own subsets), IROF (on its contiguous
segments), the pointing game, and its deterministic PGI / PGU, which are xai's
comprehensiveness / sufficiency ranked by ``|a|`` rather than OpenXAI's noisy prediction gaps.

Explainiverse is not a test extra: the module is skipped without it. It explains one row at a
time with a model exposing ``predict_proba``; xai is given the same function as a raw output
with the same target, so both read the same numbers."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import xai
from xai.features import FeatureMap
from xai.metrics.sensitivity_n import SensitivityN
from xai.removals import Baseline

pytest.importorskip("explainiverse")
import explainiverse.evaluation as ev
from explainiverse.core.explanation import Explanation

metric = xai.metrics.get
D, CLASSES = 12, 3


def mlp(seed: int = 0, d: int = D):
    """Softmax probabilities of a fixed one-hidden-layer tanh network, ``(n, 3)``."""
    rng = np.random.default_rng(seed)
    W1, b1 = rng.normal(size=(d, 8)), rng.normal(size=8)
    W2 = rng.normal(size=(8, CLASSES))

    def f(z):
        h = np.tanh(np.asarray(z, dtype=np.float64).reshape(len(z), -1) @ W1 + b1) @ W2
        e = np.exp(h - h.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)
    return f


class Classifier:
    """Explainiverse's view of ``f``: a classifier with ``predict_proba``."""

    task = "classification"

    def __init__(self, f):
        self.f = f

    def predict_proba(self, z):
        return self.f(z)


def explanation(a: np.ndarray) -> Explanation:
    """One row's attributions in Explainiverse's form (features ``f0..f{d-1}``)."""
    return Explanation("given", target_class=None,
                       explanation_data={"feature_attributions":
                                         {f"f{i}": float(v) for i, v in enumerate(a)}})


@pytest.fixture(scope="module")
def case():
    """Rows, distinct attributions (Explainiverse refuses ties across a cut), a baseline and
    each row's predicted class."""
    rng = np.random.default_rng(7)
    X = rng.normal(size=(4, D))
    A = rng.normal(size=(4, D))
    b = rng.normal(size=D)
    f = mlp()
    return f, X, A, b, f(X).argmax(1)


FRACTIONS = (0.1, 0.25, 0.5, 0.75)


@pytest.mark.parametrize("name", ["comprehensiveness", "sufficiency"])
def test_eraser_metrics_equal_explainiverse_per_bin_and_mean(case, name):
    """Same bins (``max(1, ⌊f·d⌋)``), signed ranking, baseline replacement, one output."""
    f, X, A, b, y = case
    ours = metric(name, fractions=FRACTIONS)(f, X, A, target=y, output="raw",
                                              removal=Baseline(b))
    func = ev.compute_comprehensiveness if name == "comprehensiveness" else \
        ev.compute_sufficiency
    prefix = name[:4]
    for i in range(len(X)):
        theirs = func(Classifier(f), X[i], explanation(A[i]), k_values=list(FRACTIONS),
                      baseline=b, target_class=int(y[i]))
        np.testing.assert_allclose(ours.curves[i], [theirs[f"{prefix}_k{k:g}"]
                                                    for k in FRACTIONS], atol=1e-12)
        assert ours.per_sample[i] == pytest.approx(theirs[name], abs=1e-12)


def test_eraser_bins_differ_from_explainiverse_only_where_f_times_d_falls_below_a_whole():
    """``0.29·100`` is ``28.999999999999996`` in floating point: Explainiverse's ``int(f·d)``
    takes 28 features, xai's ``⌊f·d + 1e-9⌋`` the intended 29; with 28 given as a count both
    agree."""
    d = 100
    f = mlp(1, d)
    rng = np.random.default_rng(2)
    x, a, b = rng.normal(size=(1, d)), rng.normal(size=(1, d)), np.zeros(d)
    y = int(f(x).argmax())
    ours = metric("comprehensiveness", fractions=(0.29, 0.28))(f, x, a, target=y,
                                                               output="raw",
                                                               removal=Baseline(b))
    assert ours.extras["k"].tolist() == [29, 28]
    theirs = ev.compute_comprehensiveness(Classifier(f), x[0], explanation(a[0]),
                                          k_values=[0.29, 28], baseline=b, target_class=y)
    assert len({v for k, v in theirs.items() if k != "comprehensiveness"}) == 1  # both 28
    assert ours.curves[0, 1] == pytest.approx(theirs["comp_k28"], abs=1e-12)
    assert ours.curves[0, 0] != pytest.approx(theirs["comp_k28"], abs=1e-6)


def _given_subsets(subsets: list[list[int]], d: int):
    """A stand-in for SensitivityN._draw returning these subsets (as removed-masks) for the
    single row."""
    masks = np.zeros((1, len(subsets), d), dtype=bool)
    for r, s in enumerate(subsets):
        masks[0, r, s] = True
    return staticmethod(lambda inp, size, stream, R: masks)


@pytest.mark.parametrize("n", [1, 3, 6])
def test_sensitivity_n_equals_explainiverse_on_its_subsets(case, monkeypatch, n):
    """Explainiverse draws with ``default_rng(seed).choice``, xai from keyed generators: fed
    Explainiverse's subsets, xai's correlation is Explainiverse's."""
    f, X, A, b, y = case
    for i in range(2):
        theirs = ev.compute_sensitivity_n(Classifier(f), X[i], explanation(A[i]), baseline=b,
                                          target_class=int(y[i]), n=n, n_subsets=30, seed=i,
                                          return_details=True)
        assert all(len(s) == n for s in theirs["subsets"])
        monkeypatch.setattr(SensitivityN, "_draw", _given_subsets(theirs["subsets"], D))
        ours = metric("sensitivity-n", sizes=(n,), n_subsets=30)(
            f, X[i:i + 1], A[i:i + 1], target=y[i:i + 1], output="raw", removal=Baseline(b))
        assert ours.per_sample[0] == pytest.approx(theirs["correlation"], abs=1e-10)


@pytest.mark.parametrize("use_abs", [False, True])
def test_irof_equals_explainiverse_on_contiguous_segments(use_abs):
    """Explainiverse's IROF is one-dimensional: segments of ``segment_size`` adjacent entries
    of the flattened input. The rows of a 1x4x6 image flattened are such segments; xai given
    them as superpixels computes the same area over the normalised curve on ``[0, 1]``, with
    segments ranked by mean signed (``abs=False``) or mean absolute (``abs=True``)
    relevance."""
    H, W = 4, 6
    f = mlp(3, H * W)
    rng = np.random.default_rng(4)
    X = rng.random((3, 1, H, W))
    A = rng.normal(size=(3, 1, H, W))
    b = rng.random((1, H, W))
    y = f(X).argmax(1)
    rows = FeatureMap.patches((H, W), (1, W))
    ours = metric("irof", segments=rows, abs=use_abs)(f, X, A, target=y, output="raw",
                                                        removal=Baseline(b))
    for i in range(len(X)):
        theirs = ev.compute_irof(Classifier(f), X[i].ravel(), explanation(A[i].ravel()),
                                 baseline=b.ravel(), target_class=int(y[i]), segment_size=W,
                                 use_absolute=use_abs, return_details=True)
        np.testing.assert_allclose(ours.curves[i], theirs["normalised_predictions"],
                                   atol=1e-12)
        assert ours.per_sample[i] == pytest.approx(theirs["aoc"], abs=1e-12)


def _pointing_case():
    rng = np.random.default_rng(5)
    a = rng.normal(size=(10, 8, 8))
    gt = np.zeros((10, 8, 8), dtype=bool)
    for i in range(10):
        r0, c0 = rng.integers(0, 5, 2)
        gt[i, r0:r0 + 3, c0:c0 + 3] = True
    a[:3] += 5 * gt[:3]  # some sure hits
    return a, gt


@pytest.mark.parametrize(("sign", "use_abs"), [("positive", False), ("abs", True)])
def test_pointing_game_equals_explainiverse_without_tolerance(sign, use_abs):
    a, gt = _pointing_case()
    ours = metric("pointing-game", tolerance=0.0, sign=sign)(None, a[:, None], a[:, None],
                                                             ground_truth=gt)
    theirs = [ev.compute_pointing_game(a[i], gt[i], use_abs=use_abs) for i in range(len(a))]
    np.testing.assert_array_equal(ours.per_sample, theirs)
    assert 0 < ours.aggregate < 1


def test_pointing_game_tolerance_is_a_disc_where_explainiverse_uses_a_square():
    """The maximum two rows and two columns from the region: within Explainiverse's square
    margin of 2 pixels (Chebyshev distance 2), outside xai's disc of 2 pixels (Euclidean
    distance 2·sqrt(2)), inside a disc of 2·sqrt(2)."""
    a = np.zeros((8, 8))
    a[5, 5] = 1.0
    gt = np.zeros((8, 8), dtype=bool)
    gt[1:4, 1:4] = True
    assert ev.compute_pointing_game(a, gt, tolerance=2) == 1.0
    pg = lambda t: metric("pointing-game", tolerance=t)(None, a[None, None], a[None, None],
                                                        ground_truth=gt[None]).per_sample[0]
    assert pg(2.0) == 0.0 and pg(2 * np.sqrt(2)) == 1.0
    assert ev.compute_pointing_game(a, gt, tolerance=1) == 0.0 and pg(1.0) == 0.0


def test_pointing_game_of_a_map_without_a_positive_score_is_nan_where_explainiverse_points():
    """All scores negative: Explainiverse points at the least negative one; xai's default
    ``sign="positive"`` map is all zero and points nowhere (NaN), ``sign="abs"`` differs."""
    a = -np.arange(1.0, 17.0).reshape(4, 4)
    gt = np.zeros((4, 4), dtype=bool)
    gt[0, 0] = True
    assert ev.compute_pointing_game(a, gt) == 1.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        r = metric("pointing-game", tolerance=0.0)(None, a[None, None], a[None, None],
                                                   ground_truth=gt[None])
    assert np.isnan(r.per_sample[0])


@pytest.mark.parametrize(("theirs_name", "ours_name"), [("compute_pgi", "comprehensiveness"),
                                                        ("compute_pgu", "sufficiency")])
@pytest.mark.parametrize("k", [0.25, 0.5])
def test_explainiverse_pgi_pgu_are_absolute_eraser_drops_ranked_by_magnitude(case, theirs_name,
                                                                            ours_name, k):
    """Explainiverse's PGI (PGU) replaces the top-k features by ``|a|`` (all the others) with a
    baseline and returns the absolute output change: xai's comprehensiveness (sufficiency)
    at the one fraction k with ``abs=True``, in absolute value. xai's pgi / pgu are OpenXAI's
    expected change under Gaussian noise on those features instead, another number."""
    f, X, A, b, y = case
    ours = metric(ours_name, fractions=(k,), abs=True)(f, X, A, target=y, output="raw",
                                                        removal=Baseline(b))
    theirs = [getattr(ev, theirs_name)(Classifier(f), X[i], explanation(A[i]), k=k,
                                       baseline=b, target_class=int(y[i]))
              for i in range(len(X))]
    np.testing.assert_allclose(np.abs(ours.curves[:, 0]), theirs, atol=1e-12)
    gap = metric(ours_name.replace("comprehensiveness", "pgi").replace("sufficiency", "pgu"),
                 k=k)(f, X, A, target=y, output="raw")
    assert not np.allclose(gap.per_sample, theirs, atol=1e-3)
