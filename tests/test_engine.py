"""The evaluation engine: memory-cap chunking, caching of duplicate masks,
fractional masks, multi-output games, torch modules, images; reproducibility and
counting / budgets."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import xai
from xai.behaviours import Prediction
from xai.errors import MaskError
from xai.features import FeatureMap
from xai.game import Game
from xai.models import as_model
from xai.removals import (
    Baseline,
    Blur,
    ConditionalGaussian,
    Marginal,
    ProductMarginal,
    gaussian_blur,
)
from xai.summaries import (
    LIME,
    RISE,
    BanzhafMSR,
    ExactShapley,
    KernelSHAP,
    PermutationShapley,
    RemoveIndividual,
    SobolTotal,
)

TOL = 1e-8


class Counting:
    """Wraps a numpy function; records the number of rows of every call."""

    def __init__(self, fn):
        self.fn = fn
        self.sizes: list[int] = []
        self.inputs: list[np.ndarray] = []
        self.keep_inputs = False

    @property
    def rows(self) -> int:
        return int(sum(self.sizes))

    def __call__(self, A):
        A = np.asarray(A)
        self.sizes.append(A.shape[0])
        if self.keep_inputs:
            self.inputs.append(A.copy())
        return self.fn(A)


def nonlinear(A):
    """Elementwise float64 model (a row's output never depends on the other rows)."""
    A = np.asarray(A, dtype=np.float64)
    w = np.linspace(-1.0, 1.5, A.shape[1])
    return np.tanh(A * w).sum(1) + A[:, 0] * A[:, 1] - 0.5 * np.sin(A[:, -1] * A[:, 2])


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(14)
    d = 6
    return rng.normal(size=(5, d)), rng.normal(size=(20, d)) * 1.5


def game(fn, X, removal, **kw):
    return Game(as_model(fn), X, removal, Prediction(), FeatureMap.tabular(X.shape[1]), **kw)


# ---- memory cap ------------------------------------------------------------------------------


def test_memory_cap_chunks_without_changing_values(data):
    X, B = data
    big, small = Counting(nonlinear), Counting(nonlinear)
    ref = ExactShapley()(game(big, X, Marginal(B)))
    cap = 20000
    res = ExactShapley()(game(small, X, Marginal(B), memory_cap=cap))
    np.testing.assert_allclose(res.values, ref.values, atol=1e-12)
    np.testing.assert_allclose(res.base_values, ref.base_values, atol=1e-12)
    assert small.rows == big.rows
    assert len(small.sizes) > 10 * len(big.sizes)
    assert max(small.sizes) * X.shape[1] * 8 <= cap  # one synthetic input block under the cap


def test_memory_cap_string_and_config(data, monkeypatch):
    X, B = data
    counted = Counting(nonlinear)
    res = ExactShapley()(game(counted, X, Marginal(B), memory_cap="20kB"))
    assert max(counted.sizes) * X.shape[1] * 8 <= 20000
    monkeypatch.setenv("XAI_MEMORY_CAP", "20kB")
    counted2 = Counting(nonlinear)
    res2 = ExactShapley()(game(counted2, X, Marginal(B)))
    assert max(counted2.sizes) == max(counted.sizes)
    np.testing.assert_allclose(res2.values, res.values, atol=1e-12)


def test_row_larger_than_cap_warns_and_runs_one_row_per_call(data):
    X, _B = data
    counted = Counting(nonlinear)
    with pytest.warns(UserWarning, match="exceeds the memory cap"):
        res = RemoveIndividual()(game(counted, X, Baseline(0.0), memory_cap=16))
    assert max(counted.sizes) == 1  # v(D) included, see test_full_coalition_respects_memory_cap
    ref = RemoveIndividual()(game(nonlinear, X, Baseline(0.0)))
    np.testing.assert_allclose(res.values, ref.values, atol=1e-12)


def test_full_coalition_respects_memory_cap():
    X = np.random.default_rng(0).normal(size=(2000, 6))
    counted = Counting(nonlinear)
    cap = 20000
    RemoveIndividual()(game(counted, X, Baseline(0.0), memory_cap=cap))
    assert max(counted.sizes) * X.shape[1] * 8 <= cap, counted.sizes[:3]


# ---- caching ---------------------------------------------------------------------------------


def test_duplicate_masks_evaluated_once(data):
    X, B = data
    counted = Counting(nonlinear)
    g = game(counted, X, Marginal(B))
    rng = np.random.default_rng(0)
    uniq = rng.random((7, X.shape[1])) < 0.5
    uniq = uniq[uniq.any(1) & ~uniq.all(1)]
    uniq = np.unique(uniq, axis=0)
    masks = uniq[rng.integers(len(uniq), size=40)]
    masks = np.concatenate([uniq, masks])
    g.v_full  # noqa: B018 - the full coalition (one row per explicand) first
    before = counted.rows
    vals = g(masks)
    assert counted.rows - before == len(uniq) * len(X) * len(B)
    # the values of repeated masks are those of the mask evaluated alone
    alone = game(nonlinear, X, Marginal(B))(uniq)
    for j, mask in enumerate(masks):
        k = int(np.flatnonzero((uniq == mask).all(1))[0])
        np.testing.assert_allclose(vals[:, j], alone[:, k], atol=1e-12)
    # a second request for the same coalitions hits the cache
    before = counted.rows
    np.testing.assert_array_equal(g(masks[::-1]).numpy(), vals.numpy()[:, ::-1])
    assert counted.rows == before


def test_empty_and_full_coalitions_shared_and_cached(data):
    X, B = data
    counted = Counting(nonlinear)
    g = game(counted, X, Marginal(B))
    d = X.shape[1]
    g(np.stack([np.zeros(d, bool), np.ones(d, bool)]))
    # v(D): one row per explicand; v(∅) once for all explicands (x-independent)
    assert counted.rows == len(X) + len(B)
    np.testing.assert_allclose(g.v_empty().numpy(), nonlinear(B).mean(), atol=1e-12)
    np.testing.assert_allclose(g.v_full.numpy(), nonlinear(X), atol=1e-12)
    g(np.stack([np.zeros(d, bool), np.ones(d, bool)]))
    assert counted.rows == len(X) + len(B)


# ---- fractional masks ------------------------------------------------------------------------


def test_fractional_masks_interpolate_with_baseline(data):
    X, _ = data
    d = X.shape[1]
    r = np.linspace(-1, 1, d)
    counted = Counting(nonlinear)
    g = game(counted, X, Baseline(r))
    M = np.random.default_rng(1).random((9, d))
    vals = g(M).numpy()
    for j in range(len(M)):
        np.testing.assert_allclose(vals[:, j], nonlinear(M[j] * X + (1 - M[j]) * r), atol=1e-12)


@pytest.mark.parametrize("removal", [lambda B: Marginal(B), lambda B: ProductMarginal(B),
                                     lambda B: ConditionalGaussian(B)],
                         ids=["marginal", "product", "conditional-gaussian"])
def test_fractional_masks_rejected_by_boolean_removals(data, removal):
    X, B = data
    counted = Counting(nonlinear)
    g = game(counted, X, removal(B))
    before = counted.rows
    M = np.full((2, X.shape[1]), 0.5)
    with pytest.raises(MaskError, match="baseline"):
        g(M)
    assert counted.rows == before
    # 0/1 floats are accepted as boolean masks
    g(np.eye(X.shape[1]))


def test_mask_values_and_width_checked(data):
    X, _ = data
    g = game(nonlinear, X, Baseline(0.0))
    with pytest.raises(MaskError):
        g(np.full((1, X.shape[1]), 1.5))
    with pytest.raises(MaskError):
        g(np.ones((1, X.shape[1] + 1), bool))


def test_fractional_summary_on_boolean_removal_raises(data):
    X, B = data
    with pytest.raises(MaskError, match="marginal"):
        SobolTotal(design="continuous", seed=0)(game(nonlinear, X, Marginal(B)))


def test_fractional_summaries_check_capability_before_model_calls(data):
    X, B = data
    counted = Counting(nonlinear)
    with pytest.raises(MaskError):
        SobolTotal(design="continuous", seed=0)(game(counted, X, Marginal(B)))
    assert counted.rows == 0


# ---- multi-output ----------------------------------------------------------------------------


def test_target_all_exact_shapley_per_output(data):
    X, B = data

    def multi(A):
        return np.stack([nonlinear(A), A[:, 0] * A[:, 3], np.cos(A).sum(1)], 1)

    g = Game(as_model(multi), X, Marginal(B), Prediction(target="all"),
             FeatureMap.tabular(X.shape[1]))
    res = ExactShapley()(g)
    assert res.values.shape == (len(X), X.shape[1], 3)
    assert res.base_values.shape == (len(X), 3)
    for k in range(3):
        gk = Game(as_model(multi), X, Marginal(B), Prediction(target=k),
                  FeatureMap.tabular(X.shape[1]))
        rk = ExactShapley()(gk)
        np.testing.assert_allclose(res.values[..., k], rk.values, atol=1e-12)
        np.testing.assert_allclose(res.base_values[:, k], rk.base_values, atol=1e-12)


def test_target_all_samplers_shapes_and_efficiency(data):
    X, B = data

    def multi(A):
        return np.stack([nonlinear(A), A[:, 0] * A[:, 3]], 1)

    def g():
        return Game(as_model(multi), X, Marginal(B), Prediction(target="all"),
                    FeatureMap.tabular(X.shape[1]))

    full = multi(X) - multi(B).mean(0)
    for summary in (KernelSHAP(budget=40 * len(B), seed=0),
                    PermutationShapley(budget=60 * len(B), seed=0)):
        res = summary(g())
        assert res.values.shape == res.stderr.shape == (len(X), X.shape[1], 2)
        np.testing.assert_allclose(res.values.sum(1), full, atol=1e-9)


# ---- torch modules ---------------------------------------------------------------------------


class Watched(torch.nn.Module):
    def __init__(self, d):
        super().__init__()
        self.lin = torch.nn.Linear(d, 1).double()
        self.drop = torch.nn.Dropout(0.5)
        self.seen_training: set[bool] = set()
        self.seen_grad: set[bool] = set()

    def forward(self, x):
        self.seen_training.add(self.training)
        self.seen_grad.add(torch.is_grad_enabled())
        return self.lin(self.drop(x))


def test_torch_module_eval_mode_no_grad_restored(data):
    X, B = data
    d = X.shape[1]
    module = Watched(d)
    module.train()
    e = xai.explain(module, torch.as_tensor(X), method="exact-shap", background=B,
                    output_kind="raw", progress=False)
    assert module.training  # training mode restored
    assert module.seen_training == {False} and module.seen_grad == {False}
    w = module.lin.weight.detach().numpy()[0]
    np.testing.assert_allclose(e.values, w * (X - B.mean(0)), atol=1e-10)
    module.eval()
    xai.explain(module, torch.as_tensor(X), method="occlusion", background=B,
                output_kind="raw", progress=False)
    assert not module.training


def test_torch_float32_classifier_probability_efficiency(data):
    X, B = data
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(X.shape[1], 8), torch.nn.Tanh(),
                              torch.nn.Linear(8, 3))
    e = xai.explain(net, torch.as_tensor(X, dtype=torch.float32), method="exact-shap",
                    background=B, output="probability", target=2, progress=False)
    with torch.no_grad():
        p = torch.softmax(net(torch.as_tensor(X, dtype=torch.float32)), 1)[:, 2].double()
        pe = torch.softmax(net(torch.as_tensor(B, dtype=torch.float32)), 1)[:, 2].double()
    np.testing.assert_allclose(e.values.sum(1), p.numpy() - pe.mean().item(), atol=1e-5)


# ---- images ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def images():
    rng = np.random.default_rng(3)
    imgs = rng.random((2, 3, 16, 16))
    torch.manual_seed(1)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU(),
                              torch.nn.AdaptiveAvgPool2d(2), torch.nn.Flatten(),
                              torch.nn.Linear(16, 2)).double()
    return imgs, net


def test_images_blur_patches_exact_shapley(images):
    imgs, net = images
    fmap = FeatureMap.patches((16, 16), 8, channel_axis=0)
    assert fmap.d == 4
    g = Game(as_model(net, output_kind="raw"), imgs, Blur(sigma=2.0), Prediction(target=1),
             fmap)
    res = ExactShapley()(g)
    assert res.values.shape == (2, 4)
    t = torch.as_tensor(imgs)
    blurred = gaussian_blur(t, 2.0)
    with torch.no_grad():
        full, empty = net(t)[:, 1].numpy(), net(blurred)[:, 1].numpy()
    np.testing.assert_allclose(res.values.sum(1), full - empty, atol=1e-10)
    np.testing.assert_allclose(res.base_values, empty, atol=1e-10)
    # one patch kept, fractional: partial blur of that patch only
    m = np.array([[0.25, 0.0, 0.0, 0.0]])
    mpos = torch.zeros((16, 16), dtype=torch.float64)
    mpos[:8, :8] = 0.25
    synth = mpos * t + (1 - mpos) * blurred
    with torch.no_grad():
        expected = net(synth)[:, 1].numpy()
    np.testing.assert_allclose(g(m).numpy()[:, 0], expected, atol=1e-10)


def test_images_occlusion_patches_via_explain(images):
    imgs, net = images
    e = xai.explain(net, torch.as_tensor(imgs), method="occlusion", features=8,
                    output_kind="raw", target=0, progress=False)
    assert e.values.shape == (2, 4)
    t = torch.as_tensor(imgs)
    with torch.no_grad():
        full = net(t)[:, 0]
        for p in range(4):
            z = t.clone()
            r, c = divmod(p, 2)
            z[:, :, 8 * r:8 * r + 8, 8 * c:8 * c + 8] = 0
            np.testing.assert_allclose(e.values[:, p], (full - net(z)[:, 0]).numpy(), atol=1e-10)


# ---- reproducibility -------------------------------------------------------------------------


SAMPLERS = {
    "permutation": lambda: PermutationShapley(budget=600, seed=7),
    "kernelshap": lambda: KernelSHAP(budget=300, seed=7),
    "banzhaf-msr": lambda: BanzhafMSR(budget=300, seed=7),
    "lime": lambda: LIME(budget=200, seed=7),
    "rise": lambda: RISE(budget=200, seed=7),
    "sobol": lambda: SobolTotal(design="binary", n_rows=16, replicates=3, seed=7),
}


BITWISE = ("permutation", "banzhaf-msr", "lime", "rise")


@pytest.mark.parametrize("name", list(SAMPLERS))
@pytest.mark.parametrize("removal", ["baseline", "marginal", "product"])
def test_same_seed_identical_and_row_alone_equals_batch(data, name, removal):
    X, B = data
    make = {"baseline": lambda: Baseline(0.3), "marginal": lambda: Marginal(B[:6]),
            "product": lambda: ProductMarginal(B, n_samples=8)}[removal]
    kw = {"seed": 5}
    a = SAMPLERS[name]()(game(nonlinear, X, make(), **kw))
    b = SAMPLERS[name]()(game(nonlinear, X, make(), **kw))
    np.testing.assert_array_equal(a.values, b.values)
    np.testing.assert_array_equal(a.stderr, b.stderr)
    for i in (0, 3):
        alone = SAMPLERS[name]()(game(nonlinear, X[i:i + 1], make(), **kw))
        if name in BITWISE:
            np.testing.assert_array_equal(alone.values[0], a.values[i])
            np.testing.assert_array_equal(alone.stderr[0], a.stderr[i])
        else:  # see test_row_alone_bitwise
            np.testing.assert_allclose(alone.values[0], a.values[i], rtol=1e-13, atol=1e-15)
            np.testing.assert_allclose(alone.stderr[0], a.stderr[i], rtol=1e-13, atol=1e-15)


@pytest.mark.xfail(strict=False, reason="batched torch reductions "
                   "(KernelSHAP solve, Sobol variance) round differently for n=1 and n=5, so "
                   "row i alone differs from the batch by ~1 ulp")
@pytest.mark.parametrize("name", ["kernelshap", "sobol"])
def test_row_alone_bitwise(data, name):
    X, _ = data
    a = SAMPLERS[name]()(game(nonlinear, X, Baseline(0.3)))
    for i in range(len(X)):
        alone = SAMPLERS[name]()(game(nonlinear, X[i:i + 1], Baseline(0.3)))
        np.testing.assert_array_equal(alone.values[0], a.values[i])


@pytest.mark.parametrize("method", ["kernelshap", "permutation-shap", "banzhaf", "lime"])
def test_explain_seeded_reproducible(data, method):
    X, B = data
    B = B[:5]
    budget = 200 if method == "kernelshap" else 400  # below full enumeration (316 rows)
    a = xai.explain(nonlinear, X, method=method, background=B, budget=budget, seed=3,
                    progress=False)
    b = xai.explain(nonlinear, X, method=method, background=B, budget=budget, seed=3,
                    progress=False)
    np.testing.assert_array_equal(a.values, b.values)
    alone = xai.explain(nonlinear, X[2:3], method=method, background=B, budget=budget,
                        seed=3, progress=False)
    if method == "kernelshap":
        np.testing.assert_allclose(alone.values[0], a.values[2], rtol=1e-13, atol=1e-15)
    else:
        np.testing.assert_array_equal(alone.values[0], a.values[2])
    c = xai.explain(nonlinear, X, method=method, background=B, budget=budget, seed=4,
                    progress=False)
    assert not np.array_equal(a.values, c.values)


# ---- counting and budgets --------------------------------------------------------------------


@pytest.mark.parametrize("method,budget", [("kernelshap", 400), ("kernelshap", 2000),
                                           ("permutation-shap", 700), ("banzhaf", 300),
                                           ("lime", 250), ("exact-shap", 1300),
                                           ("shap", 500), ("rise", 300)])
def test_evaluations_counted_and_budget_respected(data, method, budget):
    X, B = data
    B = B[:10]
    counted = Counting(nonlinear)
    e = xai.explain(counted, X, method=method, background=B, budget=budget, seed=0,
                    progress=False)
    assert e.evaluations == counted.rows
    assert counted.rows <= len(X) * budget
    if method not in ("lime", "rise"):  # marginal removal: K_rem = len(B) rows per coalition
        assert np.all((e.coalitions - 2) * len(B) + 1 <= budget)


@pytest.mark.parametrize("summary", [PermutationShapley(budget=500, seed=1),
                                     KernelSHAP(budget=100, seed=1),
                                     BanzhafMSR(budget=150, seed=1), LIME(budget=120, seed=1),
                                     RISE(budget=90, seed=1)], ids=lambda s: s.name)
def test_game_rows_match_counter_and_budget(data, summary):
    X, _B = data
    counted = Counting(nonlinear)
    g = game(counted, X, Baseline(0.0))
    summary(g)
    assert g.rows_evaluated == counted.rows
    assert counted.rows <= len(X) * summary.budget


def test_occlusion_evaluates_d_plus_one_rows_per_explicand(data):
    X, B = data
    counted = Counting(nonlinear)
    e = xai.explain(counted, X, method="occlusion", background=B, progress=False)
    d = X.shape[1]
    assert e.evaluations == counted.rows == len(X) * (d + 1)
