"""Sensitivity-n and the pointing game: closed forms, the paper's definitions recomputed by
hand (sensitivity-n's subsets redrawn from their keys, model calls one at a time), Quantus
0.6.0's SensitivityN on its own subsets and its PointingGame on identical inputs."""

from __future__ import annotations

import warnings
import zlib

import numpy as np
import pytest

import xai
from xai.removals import Baseline
from xai.subsets import floyd_draws, floyd_subsets

metric = xai.metrics.get


# ---- sensitivity-n ------------------------------------------------------------------------------

def test_exact_attributions_of_a_linear_model_are_sensitive_at_every_n():
    """f(x) = w·x with baseline b: the drop of a subset is the sum of its exact attributions
    w_i (x_i − b_i), so the correlation is 1 at every n (Ancona et al.'s closed form)."""
    rng = np.random.default_rng(0)
    d = 12
    w, b = rng.normal(size=d), rng.normal(size=d)
    X = rng.normal(size=(3, d))
    r = metric("sensitivity-n", n_subsets=20)(lambda z: np.asarray(z) @ w, X, w * (X - b),
                                               output="raw", removal=Baseline(b))
    np.testing.assert_allclose(r.curves, 1.0, atol=1e-12)
    np.testing.assert_allclose(r.per_sample, 1.0, atol=1e-12)
    # sizes: 1, 2, 5, 10, 20, 40, 60, 80 % of 12 features, at least 1, distinct, below d
    np.testing.assert_array_equal(r.extras["n"], [1, 2, 4, 7, 9])
    assert r.settings["n"] == [1, 2, 4, 7, 9] and r.direction == "higher"
    # wrong attributions are not: a random map correlates less
    noise = metric("sensitivity-n", n_subsets=20)(lambda z: np.asarray(z) @ w, X,
                                                   rng.normal(size=X.shape), output="raw",
                                                   removal=Baseline(b))
    assert (noise.per_sample < 0.9).all()


def test_the_definition_recomputed_on_the_same_subsets():
    """Each row's subsets are Floyd draws from its key (seed, metric, row, size index); the
    correlation of Σ_S a with f(x) − f(x with S at the baseline) over them, computed with one
    model call per subset, is the curve."""
    rng = np.random.default_rng(1)
    d, R, seed = 8, 15, 3
    w = rng.normal(size=d)

    def f(z):
        z = np.asarray(z, dtype=np.float64)
        return np.tanh(z @ w) + z[:, 0] * z[:, 1]

    X = rng.normal(size=(2, d))
    A = rng.normal(size=(2, d))
    r = metric("sensitivity-n", sizes=(2, 5), n_subsets=R)(f, X, A, output="raw",
                                                          removal=Baseline(0.0), seed=seed)
    key = zlib.crc32(b"sensitivity-n")
    for row in range(2):
        for j, size in enumerate((2, 5)):
            gen = np.random.default_rng(np.random.SeedSequence([seed, key, row, j]))
            removed = floyd_subsets(gen.random((R, floyd_draws(d, size))), d, size)
            assert (removed.sum(1) == size).all()
            sums = removed @ A[row]
            drops = np.array([f(X[row:row + 1])[0] - f(np.where(m, 0.0, X[row])[None])[0]
                              for m in removed])
            assert r.curves[row, j] == pytest.approx(np.corrcoef(sums, drops)[0, 1], abs=1e-12)
    np.testing.assert_allclose(r.per_sample, r.curves.mean(1))
    np.testing.assert_allclose(r.extras["curve"], r.curves.mean(0))


def test_all_sizes_and_subsets_go_to_the_model_in_one_call():
    calls = []

    def f(z):
        calls.append(len(z))
        return np.asarray(z).sum(1)

    X = np.random.default_rng(2).normal(size=(3, 10))
    r = metric("sensitivity-n", sizes=(1, 3, 9), n_subsets=4)(f, X, X, target=0, output="raw",
                                                              removal=Baseline(0.0))
    assert sorted(calls) == [3, 36] and r.evaluations == 39  # full rows; 3 rows × 3 sizes × 4


def test_a_constant_output_change_is_nan_and_warned():
    X = np.ones((2, 4))
    with pytest.warns(RuntimeWarning, match=r"sensitivity-n: 2 row\(s\)"):
        r = metric("sensitivity-n", sizes=(1,), n_subsets=5)(
            lambda z: np.zeros(len(z)), X, np.arange(8.0).reshape(2, 4), output="raw",
            removal=Baseline(0.0))
    assert np.isnan(r.per_sample).all() and r.n_nan == 2


# ---- pointing game ------------------------------------------------------------------------------

GT = np.zeros((8, 8), bool)
GT[2:5, 2:5] = True


def _peak_at(*cells: tuple[int, int], shape=(8, 8)) -> np.ndarray:
    a = np.random.default_rng(0).random(shape) * 0.1
    for cell in cells:
        a[cell] = 1.0
    return a[None, None]


def test_pointing_game_by_hand_with_a_tolerance():
    """The peak two pixels below the region: a miss at the default tolerance (15 px at 224,
    0.54 px at 8x8) and at 1.9 px, a hit at 2 px."""
    x = np.zeros((1, 1, 8, 8))
    a = _peak_at((6, 3))
    pg = metric("pointing-game")
    assert pg(None, x, a, ground_truth=GT).per_sample[0] == 0.0
    assert pg(None, x, a, ground_truth=GT, tolerance=1.9).per_sample[0] == 0.0
    r = pg(None, x, a, ground_truth=GT, tolerance=2.0)
    assert r.per_sample[0] == 1.0 and r.settings["tolerance"] == 2.0
    inside = pg(None, x, _peak_at((3, 4)), ground_truth=GT)
    assert inside.per_sample[0] == 1.0
    assert inside.settings["tolerance"] == pytest.approx(15 * 8 / 224)
    # tied maxima: a hit when any of them is in the region (as Quantus)
    assert pg(None, x, _peak_at((0, 7), (2, 2)), ground_truth=GT).per_sample[0] == 1.0


def test_pointing_game_default_tolerance_scales_with_the_image():
    """At 64x64 the default tolerance is 15·64/224 = 4.29 pixels."""
    gt = np.zeros((64, 64), bool)
    gt[20:30, 20:30] = True
    x = np.zeros((2, 1, 64, 64))
    a = np.concatenate([_peak_at((33, 25), shape=(64, 64)), _peak_at((34, 25), shape=(64, 64))])
    np.testing.assert_array_equal(metric("pointing-game")(None, x, a, ground_truth=gt).per_sample,
                                  [1.0, 0.0])


def test_pointing_game_on_tables_and_flat_maps():
    x = np.zeros((3, 4))
    a = np.array([[0.1, 0.9, 0.0, 0.2], [0.9, 0.1, 0.0, 0.2], [0.0, 0.0, 0.0, 0.0]])
    gt = np.array([False, True, True, False])
    with pytest.warns(RuntimeWarning, match=r"1 row\(s\) \(\[2\]\) have a constant map"):
        r = metric("pointing-game")(None, x, a, ground_truth=gt)
    np.testing.assert_array_equal(r.per_sample[:2], [1.0, 0.0])
    assert np.isnan(r.per_sample[2]) and r.n_nan == 1 and r.settings["tolerance"] == 0.0


quantus = pytest.importorskip("quantus")


def test_quantus_pointing_game_on_identical_inputs():
    rng = np.random.default_rng(5)
    n = 12
    x = rng.random((n, 1, 10, 10))
    a = rng.normal(size=(n, 1, 10, 10))
    s = np.zeros((n, 1, 10, 10))
    for i in range(n):
        r0, c0 = rng.integers(0, 7, 2)
        s[i, 0, r0:r0 + 4, c0:c0 + 4] = 1
    a[:3] += 5 * s[:3]  # some sure hits
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        q = quantus.PointingGame(abs=False, normalise=False, disable_warnings=True)(
            model=None, x_batch=x, y_batch=None, a_batch=a.copy(), s_batch=s.copy(),
            channel_first=True)
    ours = metric("pointing-game", tolerance=0.0)(None, x, a, ground_truth=s[:, 0] > 0)
    np.testing.assert_array_equal(ours.per_sample, np.asarray(q, dtype=float))
    assert 0 < ours.aggregate < 1


def test_quantus_sensitivity_n_on_its_own_subsets(monkeypatch):
    """Quantus 0.6.0's ``SensitivityN`` draws no random subsets: at step ``j`` every row's
    subset is its top ``j`` features (decreasing attribution, removed cumulatively), and it
    correlates over the rows, pairing the output change with the attribution of the step's
    feature alone. Fed those subsets (in place of the keyed draws), xai's game gives Quantus's
    output changes and xai's sums are the cumulative sums of Quantus's; Quantus's curve is the
    correlation over rows of the change with the step's attribution, which is the paper's
    pairing (xai's formula, Σ_S a) at ``n = 1`` only."""
    import torch
    from quantus.functions.similarity_func import correlation_pearson

    import xai.metrics.sensitivity_n as sn

    torch.manual_seed(0)
    n, H = 10, 4
    d = H * H
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(d, 8), torch.nn.Tanh(),
                              torch.nn.Linear(8, 3)).eval()
    rng = np.random.default_rng(6)
    X = rng.normal(size=(n, 1, H, H)).astype(np.float32)  # Quantus's model dtype
    A = rng.normal(size=(n, 1, H, H))
    y = rng.integers(0, 3, n)
    seen = {}

    def similarity(a, b, batched):
        seen["deltas"], seen["att"] = a.T, b.T  # (rows, steps)
        return correlation_pearson(a=a, b=b, batched=batched)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        q = quantus.SensitivityN(abs=False, normalise=False, perturb_baseline=0.0,
                                 features_in_step=1, return_aggregate=False,
                                 disable_warnings=True)
        q.similarity_func = similarity
        theirs = np.asarray(q(model=net, x_batch=X.copy(), y_batch=y, a_batch=A.copy(),
                              device="cpu", softmax=False, channel_first=True))
    steps = int(0.8 * d)  # n_max_percentage
    assert theirs.shape == (steps,)
    order = np.argsort(-A.reshape(n, d), axis=1, kind="stable")
    top = np.zeros((n, steps, d), dtype=bool)
    for j in range(steps):
        np.put_along_axis(top[:, j], order[:, :j + 1], True, axis=1)
    monkeypatch.setattr(sn.SensitivityN, "_draw", staticmethod(lambda inp, size, s, R: top))
    ours, pearson_rows = {}, sn.pearson_rows

    def pearson(sums, drops):
        ours["sums"], ours["drops"] = sums, drops
        return pearson_rows(sums, drops)

    monkeypatch.setattr(sn, "pearson_rows", pearson)
    metric("sensitivity-n", sizes=(1,), n_subsets=steps)(net, X, A, target=y, output="raw",
                                                         removal=Baseline(0.0))
    np.testing.assert_allclose(ours["drops"], seen["deltas"][:, :steps], atol=1e-5)
    np.testing.assert_allclose(ours["sums"], np.cumsum(seen["att"], axis=1)[:, :steps],
                               atol=1e-12)
    step_a = np.take_along_axis(A.reshape(n, d), order[:, :steps], axis=1)
    by_step = [np.corrcoef(ours["drops"][:, j], step_a[:, j])[0, 1] for j in range(steps)]
    np.testing.assert_allclose(theirs, by_step, atol=1e-5)
    paper = [np.corrcoef(ours["drops"][:, j], ours["sums"][:, j])[0, 1] for j in range(steps)]
    assert theirs[0] == pytest.approx(paper[0], abs=1e-5)
    assert np.abs(np.subtract(theirs, paper)[1:]).max() > 0.1
