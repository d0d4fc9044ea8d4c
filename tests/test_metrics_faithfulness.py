"""Faithfulness and complexity metrics (deletion / insertion, MoRF / LeRF, faithfulness
correlation, monotonicity, complexity, sparseness):
worked examples, hand-computed cases, invariants, reproducibility, and the Quantus 0.6.0
oracle on identical inputs and settings."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

import xai.metrics.complexity  # registers the metrics
import xai.metrics.correlation
import xai.metrics.curves  # noqa: F401
from xai import registry
from xai.config import config
from xai.errors import XaiError
from xai.features import FeatureMap
from xai.removals import Baseline

ZERO = Baseline(0.0)


def metric(name, **options):
    return registry.get("metric", name)(**options)


def lin3(z):
    """f(x) = x1 + 2 x2 - x3 (raw output)."""
    z = np.asarray(z)
    return z[:, 0] + 2 * z[:, 1] - z[:, 2]


X1 = np.ones((1, 3))
A1 = np.array([[1.0, 2.0, -1.0]])
HAND = {"output": "raw", "removal": ZERO, "ties": "index"}


# ---- worked examples and hand-computed cases --------------------------------------------------

def test_worked_example_deletion_insertion():
    d = metric("deletion")(lin3, X1, A1, step=1, **HAND)
    i = metric("insertion")(lin3, X1, A1, step=1, **HAND)
    np.testing.assert_array_equal(d.curves, [[2.0, 0.0, -1.0, 0.0]])
    np.testing.assert_array_equal(i.curves, [[0.0, 2.0, 3.0, 2.0]])
    assert d.per_sample[0] == 0.0 and d.aggregate == 0.0
    assert i.per_sample[0] == 2.0
    np.testing.assert_allclose(d.extras["u"], [0, 1 / 3, 2 / 3, 1])
    assert d.direction == "lower" and i.direction == "higher"
    assert d.settings["output"] == "raw" and d.settings["step"] == 1
    assert d.settings["removal"] == {"name": "baseline", "value": 0.0}


def test_partial_last_step_and_fraction_and_normalise():
    # step 2 of d = 3: T = {}, {2, 1}, all; curve (2, -1, 0); AUC = (2·1 + 1·(-1)) / 6
    for step in (2, 0.5):
        r = metric("deletion")(lin3, X1, A1, step=step, **HAND)
        np.testing.assert_array_equal(r.curves, [[2.0, -1.0, 0.0]])
        assert r.per_sample[0] == pytest.approx(1 / 6)
        np.testing.assert_allclose(r.extras["u"], [0, 2 / 3, 1])
    r = metric("deletion")(lin3, X1, A1, step=1, normalise_curve=True, **HAND)
    np.testing.assert_array_equal(r.curves, [[1.0, 0.0, -0.5, 0.0]])
    assert r.settings["normalise"] == "v_full"
    # default step for d = 3 is max(1, ceil(3/100)) = 1
    assert metric("insertion")(lin3, X1, A1, **HAND).settings["step"] == 1


def test_morf_lerf_aopc_gap_hand():
    m = metric("morf")(lin3, X1, A1, step=1, **HAND)
    lerf = metric("lerf")(lin3, X1, A1, step=1, **HAND)
    # LeRF order (3, 1, 2): (2, 3, 2, 0), AUC = (5 + 5 + 2) / 6 = 2
    np.testing.assert_array_equal(lerf.curves, [[2.0, 3.0, 2.0, 0.0]])
    assert m.per_sample[0] == 0.0 and lerf.per_sample[0] == 2.0
    # AOPC = 1/4 Σ_{i=0..3} (2 - c_i) = (0 + 2 + 3 + 2) / 4
    assert metric("aopc")(lin3, X1, A1, step=1, **HAND).per_sample[0] == 1.75
    # LeRF AOPC = (0 - 1 + 0 + 2) / 4
    assert metric("aopc")(lin3, X1, A1, step=1, order="lerf", **HAND).per_sample[0] == 0.25
    g = metric("morf-lerf-gap")(lin3, X1, A1, step=1, **HAND)
    assert g.per_sample[0] == 2.0
    np.testing.assert_array_equal(g.extras["lerf_curves"], lerf.curves)
    assert (m.direction, lerf.direction, g.direction) == ("lower", "higher", "higher")


def test_faithfulness_estimate_and_correlation_hand():
    # Δ_i = v(D) - v(D\{i}) = (1, 2, -1); a = (2, 1, 0): r = 2 / (√2 · √(42)/3) = 3/√21
    a = np.array([[2.0, 1.0, 0.0]])
    r = metric("faithfulness-estimate")(lin3, X1, a, **HAND)
    assert r.per_sample[0] == pytest.approx(3 / np.sqrt(21))
    assert metric("faithfulness-estimate")(lin3, X1, A1, **HAND).per_sample[0] == \
        pytest.approx(1.0)
    # explicit singletons: the same Pearson over the three subsets
    fc = metric("faithfulness-correlation")(lin3, X1, a, subsets=[[0], [1], [2]], **HAND)
    assert fc.per_sample[0] == pytest.approx(3 / np.sqrt(21))
    # drawn pairs (k = 2 of d = 3) with the true contributions: exactly linear, r = 1
    fc = metric("faithfulness-correlation")(lin3, X1, A1, subset_size=2, **HAND)
    assert fc.per_sample[0] == pytest.approx(1.0)
    assert fc.settings["n_subsets"] == 100 and fc.settings["subset_size"] == 2
    # default k = max(1, round(0.1 · 3)) = 1
    fc = metric("faithfulness-correlation")(lin3, X1, A1, **HAND)
    assert fc.settings["subset_size"] == 1 and fc.per_sample[0] == pytest.approx(1.0)


def test_correlation_constant_is_nan_counted_and_warned():
    a = np.array([[1.0, 1.0, 1.0], [1.0, 2.0, -1.0]])
    x = np.ones((2, 3))
    with pytest.warns(RuntimeWarning, match="NaN"):
        r = metric("faithfulness-estimate")(lin3, x, a, **HAND)
    assert np.isnan(r.per_sample[0]) and r.n_nan == 1 and r.aggregate == pytest.approx(1.0)
    with pytest.warns(RuntimeWarning, match="NaN"):
        r = metric("faithfulness-correlation")(lin3, x, a, subset_size=1, **HAND)
    assert np.isnan(r.per_sample[0]) and r.n_nan == 1


def interaction(z):
    """f = x1 + 2 x2 (1 - x1): v(∅)=0, v{1}=1, v{2}=2, v{1,2}=1; Shapley (0, 1)."""
    z = np.asarray(z)
    return z[:, 0] + 2 * z[:, 1] * (1 - z[:, 0])


def test_monotonicity_hand_and_reversed_ranking_fails():
    x = np.ones((2, 2))
    a = np.array([[0.0, 1.0], [1.0, 0.0]])  # Shapley values, then the reversed ranking
    r = metric("monotonicity")(interaction, x, a, **HAND)
    # row 0 inserts 1 then 2: (0, 1, 1) never decreases; row 1 inserts 2 then 1: (0, 2, 1)
    np.testing.assert_array_equal(r.curves, [[0.0, 1.0, 1.0], [0.0, 2.0, 1.0]])
    np.testing.assert_array_equal(r.per_sample, [1.0, 0.0])
    np.testing.assert_array_equal(r.extras["fraction"], [1.0, 0.5])
    assert r.aggregate == 0.5 and r.settings["atol"] == 0.0
    # linear model, a = (1, 2, -1): increasing order (3, 1, 2): (0, -1, 0, 2) fails
    r = metric("monotonicity")(lin3, X1, A1, **HAND)
    np.testing.assert_array_equal(r.curves, [[0.0, -1.0, 0.0, 2.0]])
    assert r.per_sample[0] == 0.0


def test_monotonicity_correlation_hand():
    # |a| = (1, 2, 1); E[Δ²]/v² = (1, 4, 1)/4: Spearman with average ranks = 1
    r = metric("monotonicity-correlation")(lin3, X1, A1, **HAND)
    assert r.per_sample[0] == pytest.approx(1.0) and r.settings["abs"] is True
    # |a| = (1, 2, 3) against ranks (1.5, 3, 1.5): 0
    r = metric("monotonicity-correlation")(lin3, X1, np.array([[1.0, 2.0, 3.0]]), **HAND)
    assert r.per_sample[0] == pytest.approx(0.0)


def test_complexity_and_sparseness_values():
    x = np.zeros((3, 4))
    a = np.array([[0.0, 0.0, 0.0, 1.0], [1.0, 1.0, 1.0, 1.0], [1.0, 2.0, -1.0, 0.0]])
    s = metric("sparseness")(None, x, a)
    np.testing.assert_allclose(s.per_sample, [0.75, 0.0, (-3 * 0 - 1 * 1 + 1 * 1 + 3 * 2) / 16])
    c = metric("complexity")(None, x, a)
    np.testing.assert_allclose(c.per_sample, [0.0, np.log(4), 1.5 * np.log(2)])
    c = metric("complexity")(None, x, a, relative=True)
    np.testing.assert_allclose(c.per_sample[1], 1.0)
    assert c.evaluations == 0 and c.settings["abs"] is True
    assert (s.direction, c.direction) == ("higher", "lower")
    # 3-feature case of the linear model's contributions: sorted (1, 1, 2), weights (-2, 0, 2)
    assert metric("sparseness")(None, X1, A1).per_sample[0] == pytest.approx(1 / 6)


def test_all_zero_rows_nan_and_one_warning():
    a = np.array([[0.0, 0.0, 0.0], [1.0, 2.0, -1.0], [0.0, 0.0, 0.0]])
    for name in ("complexity", "sparseness"):
        with warnings.catch_warnings(record=True) as rec:
            warnings.simplefilter("always")
            r = metric(name)(None, np.ones((3, 3)), a)
        assert len([w for w in rec if "all-zero" in str(w.message)]) == 1
        assert r.n_nan == 2 and np.isnan(r.per_sample[[0, 2]]).all()


def test_option_errors():
    with pytest.raises(XaiError, match="step"):
        metric("deletion")(lin3, X1, A1, step=0, **HAND)
    with pytest.raises(XaiError, match="step"):
        metric("insertion")(lin3, X1, A1, step=1.5, **HAND)
    with pytest.raises(XaiError, match="subset_size"):
        metric("faithfulness-correlation")(lin3, X1, A1, subset_size=3, **HAND)
    with pytest.raises(XaiError, match="order"):
        metric("aopc")(lin3, X1, A1, order="middle", **HAND)


def test_metadata():
    expect = {"deletion": ("lower", "probability", False),
              "insertion": ("higher", "probability", False),
              "morf": ("lower", "probability", False), "lerf": ("higher", "probability", False),
              "aopc": ("higher", "probability", False),
              "morf-lerf-gap": ("higher", "probability", False),
              "faithfulness-correlation": ("higher", "logit", True),
              "faithfulness-estimate": ("higher", "logit", False),
              "monotonicity": ("higher", "probability", False),
              "monotonicity-correlation": ("higher", "probability", False),
              "complexity": ("lower", "attributions", False),
              "sparseness": ("higher", "attributions", False)}
    for name, (direction, output, stochastic) in expect.items():
        cls = registry.get("metric", name)
        assert (cls.direction, cls.default_output, cls.stochastic) == \
            (direction, output, stochastic), name
        assert cls.needs == (frozenset() if output == "attributions" else {"model"})
    assert registry.get("metric", "morf_lerf_gap") is registry.get("metric", "morf-lerf-gap")


# ---- invariants --------------------------------------------------------------------------------

def _linear(d=10, n=16, seed=0):
    rng = np.random.default_rng(seed)
    w = rng.normal(size=d)
    X = rng.normal(size=(n, d))
    return (lambda z: np.asarray(z) @ w), X, X * w, rng


def test_true_contributions_beat_random_insertion():
    f, X, A, rng = _linear()
    opts = {"output": "raw", "removal": ZERO}
    true = metric("insertion")(f, X, A, **opts)
    rand = metric("insertion")(f, X, rng.normal(size=A.shape), **opts)
    assert true.aggregate > rand.aggregate
    assert np.all(true.per_sample >= rand.per_sample - 1e-12)  # pointwise for additive f
    assert metric("deletion")(f, X, A, **opts).aggregate < \
        metric("deletion")(f, X, rng.normal(size=A.shape), **opts).aggregate
    assert metric("morf-lerf-gap")(f, X, A, **opts).aggregate > 0


ALL = ["deletion", "insertion", "morf", "lerf", "aopc", "morf-lerf-gap",
       "faithfulness-correlation", "faithfulness-estimate", "monotonicity",
       "monotonicity-correlation", "complexity", "sparseness"]


@pytest.mark.parametrize("name", ALL)
def test_inputs_never_mutated_and_batch_independent(name):
    f, X, A, _ = _linear(d=6, n=5)
    X0, A0 = X.copy(), A.copy()
    opts = {"output": "raw", "removal": ZERO} if name not in ("complexity", "sparseness") else {}
    full = metric(name)(f, X, A, **opts)
    np.testing.assert_array_equal(X, X0)
    np.testing.assert_array_equal(A, A0)
    for i in (0, 3):
        extra = {"row_index": [i]} if name == "faithfulness-correlation" else {}
        alone = metric(name)(f, X[i:i + 1], A[i:i + 1], **opts, **extra)
        np.testing.assert_allclose(alone.per_sample, full.per_sample[i:i + 1], rtol=1e-12,
                                   atol=1e-12)
    # chunking (a tiny memory cap) changes nothing
    old = config._memory_cap
    try:
        config.memory_cap = 2048
        small = metric(name)(f, X, A, **opts)
    finally:
        config._memory_cap = old
    np.testing.assert_allclose(small.per_sample, full.per_sample, rtol=1e-12, atol=1e-12)


def test_seeds_reproducible_and_global_rng_untouched():
    f, X, A, rng = _linear(d=12, n=4)
    A = A + rng.normal(size=A.shape)  # imperfect attributions: r < 1 depends on the draws
    np_state = np.random.get_state()[1].copy()
    t_state = torch.get_rng_state().clone()
    m = metric("faithfulness-correlation")
    r0 = m(f, X, A, output="raw", removal=ZERO, seed=3)
    r1 = m(f, X, A, output="raw", removal=ZERO, seed=3)
    r2 = m(f, X, A, output="raw", removal=ZERO, seed=4)
    np.testing.assert_array_equal(r0.per_sample, r1.per_sample)
    assert not np.array_equal(r0.per_sample, r2.per_sample)
    ties = np.round(A, 0)  # many ties: ordered by the keyed permutation
    c0 = metric("deletion")(f, X, ties, output="raw", removal=ZERO, seed=5)
    c1 = metric("deletion")(f, X, ties, output="raw", removal=ZERO, seed=5)
    np.testing.assert_array_equal(c0.curves, c1.curves)
    np.testing.assert_array_equal(np.random.get_state()[1], np_state)
    assert torch.equal(torch.get_rng_state(), t_state)


def test_one_game_call_for_all_rows_and_steps():
    calls = []

    def f(z):
        calls.append(len(z))
        return lin3(z)

    x = np.abs(np.random.default_rng(1).normal(size=(4, 3))) + 0.5
    a = np.random.default_rng(2).normal(size=(4, 3))
    r = metric("deletion")(f, x, a, step=1, target=0, **HAND)
    # v_full (4 rows), v_empty (1 shared row), interior steps of all rows (4 × 2) in one call
    assert sorted(calls) == [1, 4, 8] and r.evaluations == 13


# ---- Quantus 0.6.0 oracle -----------------------------------------------------------------------

quantus = pytest.importorskip("quantus")
N, H = 8, 8
pytestmark = pytest.mark.filterwarnings("ignore:The settings for perturbing input")


@pytest.fixture(scope="module")
def cnn_case():
    g = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.ReLU(),
                              torch.nn.Flatten(), torch.nn.Linear(4 * H * H, 3)).eval()
    X = torch.rand((N, 1, H, H), generator=g).numpy().astype(np.float32)
    X[:, 0, 0, 0] = 0.0  # per-sample min 0: Quantus's "black" baseline equals Baseline(0)
    A = torch.randn((N, 1, H, H), generator=g).numpy().astype(np.float32)
    with torch.no_grad():
        y = net(torch.as_tensor(X)).argmax(1).numpy()
    return net, X, A, y


QKW = {"disable_warnings": True, "display_progressbar": False}


def _q(cls, net, X, A, y, softmax, **kw):
    m = cls(**{"abs": False, "normalise": False, **QKW, **kw})
    return np.asarray(m(model=net, x_batch=X.copy(), y_batch=y, a_batch=A.copy(),
                        device="cpu", softmax=softmax, channel_first=True), dtype=np.float64)


def test_quantus_pixel_flipping_equals_deletion_curve(cnn_case):
    net, X, A, y = cnn_case
    q = _q(quantus.PixelFlipping, net, X, A, y, True, features_in_step=1,
           perturb_baseline="black")
    ours = metric("deletion")(net, X, A, target=y, removal=ZERO, step=1, output="probability")
    # Quantus's curve lacks the unperturbed point c_0
    np.testing.assert_allclose(ours.curves[:, 1:], q, atol=2e-6)
    # their AUC: trapz(curve, dx=1) over the 64 perturbed points (unnormalised): a different
    # convention; ours = trapezoid on [0, 1] with both ends
    q_auc = ((q[:, 1:] + q[:, :-1]) / 2).sum(1)
    c = ours.curves
    np.testing.assert_allclose(ours.per_sample * 64, q_auc + (c[:, 0] + c[:, 1]) / 2,
                               atol=1e-4)


def test_quantus_region_perturbation_and_aopc(cnn_case):
    net, X, A, y = cnn_case
    fmap = FeatureMap.patches((H, H), 2, channel_axis=0)
    for order in ("morf", "lerf"):
        q = _q(quantus.RegionPerturbation, net, X, A, y, True, patch_size=2,
               regions_evaluation=16, order=order, perturb_baseline="black")
        ours = metric("aopc")(net, X, A, target=y, removal=ZERO, step=1, features=fmap,
                              order=order, output="probability")
        c = ours.curves
        # Quantus returns y(x) - y(x after i regions), i = 1..16: our c_0 - c_i
        np.testing.assert_allclose(c[:, :1] - c[:, 1:], q, atol=2e-6)
        # our AOPC counts i = 0 (paper): mean over 17 points = Quantus mean × 16/17
        np.testing.assert_allclose(ours.per_sample, q.mean(1) * 16 / 17, atol=2e-6)


def test_quantus_faithfulness_correlation_same_subsets(cnn_case, monkeypatch):
    net, X, A, y = cnn_case
    drawn = []
    choice = np.random.choice

    def recording_choice(*args, **kwargs):
        out = choice(*args, **kwargs)
        drawn.append(np.array(out))
        return out

    monkeypatch.setattr(np.random, "choice", recording_choice)
    q = _q(quantus.FaithfulnessCorrelation, net, X, A, y, False, nr_runs=12, subset_size=6,
           return_aggregate=False,
           perturb_baseline="black")
    monkeypatch.setattr(np.random, "choice", choice)
    subsets = np.stack(drawn).reshape(12, N, 6).transpose(1, 0, 2)  # runs outer, rows inner
    # softmax=False = the raw logits (our "logit" is the log-odds of the probability)
    ours = metric("faithfulness-correlation")(net, X, A, target=y, removal=ZERO,
                                              subsets=subsets, output="raw")
    np.testing.assert_allclose(ours.per_sample, q, atol=1e-5)
    # our own draws (keyed generators) give a statistically similar, not equal, score
    own = metric("faithfulness-correlation")(net, X, A, target=y, removal=ZERO,
                                             n_subsets=12, subset_size=6, output="raw")
    assert own.settings["subsets"] == "drawn" and np.isfinite(own.per_sample).all()


def test_quantus_faithfulness_estimate(cnn_case):
    net, X, A, y = cnn_case
    q = _q(quantus.FaithfulnessEstimate, net, X, A, y, False, features_in_step=1,
           perturb_baseline="black")
    ours = metric("faithfulness-estimate")(net, X, A, target=y, removal=ZERO, output="raw")
    np.testing.assert_allclose(ours.per_sample, q, atol=1e-5)
    q4 = _q(quantus.FaithfulnessEstimate, net, X, A, y, False, features_in_step=4,
            perturb_baseline="black")
    ours4 = metric("faithfulness-estimate")(net, X, A, target=y, removal=ZERO, output="raw",
                                            step=4, ties="index")
    np.testing.assert_allclose(ours4.per_sample, q4, atol=1e-5)


def test_quantus_monotonicity_correlation(cnn_case):
    net, X, A, y = cnn_case
    # deterministic "black" removal: one sample is the expectation; |a| as our definition
    q = _q(quantus.MonotonicityCorrelation, net, X, A, y, True, nr_samples=1,
           features_in_step=1, perturb_baseline="black", abs=True)
    ours = metric("monotonicity-correlation")(net, X, A, target=y, removal=ZERO,
                                              output="probability")
    np.testing.assert_allclose(ours.per_sample, q, atol=1e-6)


def test_quantus_monotonicity_defect_deliberate_difference(cnn_case):
    """Quantus 0.6.0 never fills its baseline with x (it re-writes the baseline value into the
    baseline), so every prediction it sees is v(∅) and every sample passes whatever the
    attribution. Ours really inserts x (hand-checked above), so random and reversed rankings
    fail on the CNN."""
    net, X, A, y = cnn_case
    q = _q(quantus.Monotonicity, net, X, A, y, True, features_in_step=1,
           perturb_baseline="black")
    q_rev = _q(quantus.Monotonicity, net, X, -A, y, True, features_in_step=1,
               perturb_baseline="black")
    assert q.all() and q_rev.all()  # the defect
    ours = metric("monotonicity")(net, X, A, target=y, removal=ZERO, step=1)
    rev = metric("monotonicity")(net, X, -A, target=y, removal=ZERO, step=1)
    assert ours.per_sample.mean() < 1 and rev.per_sample.mean() < 1
    # the curves we check do move: they run from v(∅) to v(D)
    assert not np.allclose(ours.curves[:, 0], ours.curves[:, -1])


def test_quantus_complexity_sparseness(cnn_case):
    _, X, A, _ = cnn_case
    Ap = np.abs(A).astype(np.float64)  # non-negative: Quantus with abs=False sees |a| too
    kw = dict(abs=False, normalise=False, **QKW)
    a_copy = Ap.copy()
    qc = np.asarray(quantus.Complexity(**kw)(model=None, x_batch=X, y_batch=None, a_batch=a_copy,
                                            channel_first=True))
    qs = np.asarray(quantus.Sparseness(**kw)(model=None, x_batch=X, y_batch=None,
                                             a_batch=Ap.copy(), channel_first=True))
    assert not np.array_equal(a_copy, Ap)  # Quantus normalises the caller's array in place
    A0 = Ap.copy()
    c = metric("complexity")(None, X, Ap)
    s = metric("sparseness")(None, X, Ap)
    np.testing.assert_array_equal(Ap, A0)  # ours never mutates
    np.testing.assert_allclose(c.per_sample, qc, atol=1e-9)  # their log(p + 1e-12)
    # Quantus adds 1e-7 to every value before the Gini index: a deliberate difference of
    # order d·1e-7/Σ|a|; without it the two agree exactly
    np.testing.assert_allclose(s.per_sample, qs, atol=1e-6)
    v = np.sort(Ap.reshape(N, -1) + 1e-7, axis=1)
    d = v.shape[1]
    eps_gini = ((2 * np.arange(1, d + 1) - d - 1) * v).sum(1) / (d * v.sum(1))
    np.testing.assert_allclose(qs, eps_gini, rtol=1e-9)
    # a one-hot row: ours 0.75 exactly (no epsilon), Quantus slightly less
    one_hot = np.array([[[[0.0, 0.0], [0.0, 1.0]]]])
    q1 = quantus.Sparseness(**kw)(model=None, x_batch=np.zeros((1, 1, 2, 2)), y_batch=None,
                                  a_batch=one_hot.copy(), channel_first=True)
    assert metric("sparseness")(None, np.zeros((1, 1, 2, 2)), one_hot).per_sample[0] == 0.75
    assert q1[0] < 0.75


# ---- reduction of per-position attributions to per-feature scores --------------------------------

@pytest.mark.parametrize("reduce", ["sum", "mean", "max_abs"])
def test_reduce_attributions_equals_a_loop_over_positions(reduce):
    from xai.metrics.base import reduce_attributions

    rng = np.random.default_rng(0)
    X = rng.random((4, 3, 6, 5)).astype(np.float32)
    a = rng.normal(size=X.shape).astype(np.float32)
    shared = FeatureMap.patches((6, 5), 2, channel_axis=0)
    seg = rng.integers(-1, 7, (4, 6, 5))  # per-explicand segments, -1: in no feature
    seg[:, 0, 0] = 6
    own = FeatureMap(seg, kind="segment", channel_axis=0, per_explicand=True)
    for fmap in (shared, own):
        got = reduce_attributions(a, X, fmap, reduce)
        idx = np.broadcast_to(fmap.full_index(X.shape[1:]), (4, X[0].size))
        want = np.zeros((4, fmap.d))
        for i in range(4):
            for j in range(fmap.d):
                v = a[i].ravel()[idx[i] == j].astype(np.float64)
                if v.size:
                    want[i, j] = {"sum": v.sum, "mean": v.mean,
                                  "max_abs": lambda v=v: np.abs(v).max()}[reduce]()
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
