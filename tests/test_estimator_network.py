"""Regression-adjusted KernelSHAP with a neural surrogate (``ra-kernelshap-net``): close to
exact Shapley values on MLP games (exact by enumeration), closer than ``ra-kernelshap`` at
equal budget, efficient, calibrated standard errors over many seeds, the network's table and
Shapley values checked by enumeration, explicands independent of each other, and bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from xai.behaviours import Prediction
from xai.errors import InputError
from xai.features import FeatureMap
from xai.game import Game
from xai.models import as_model
from xai.registry import get
from xai.removals import Baseline
from xai.summaries import ExactShapley, NetworkAdjustedKernelSHAP, RegressionAdjustedKernelSHAP
from xai.summaries.exact import enumerate_masks
from xai.summaries.network_kernelshap import (
    TanhCorrection,
    fit_tanh,
    lbfgs,
    tanh_loss_grad,
    tanh_loss_grad_autograd,
)

D = 8
BUDGET = 160  # below the 2^8 coalitions: the sampled path


def mlp_game(n: int = 4, d: int = D, seed: int = 0, rows=None) -> Game:
    """P(class 1) of a random tanh MLP ``d -> 16 -> 16 -> 2``, baseline 0: a game with
    interactions of every order, like the models the estimator is for."""
    torch.manual_seed(seed)
    net = torch.nn.Sequential(torch.nn.Linear(d, 16), torch.nn.Tanh(), torch.nn.Linear(16, 16),
                              torch.nn.Tanh(), torch.nn.Linear(16, 2)).double()
    X = np.random.default_rng(seed).normal(size=(n, d)) * 1.5
    X = X if rows is None else X[rows]
    return Game(as_model(net, output_kind="logits"), X, Baseline(0.0),
                Prediction(target=1, output="probability"), FeatureMap.tabular(d))


@pytest.fixture(scope="module")
def truth():
    return np.asarray(ExactShapley()(mlp_game()).values).reshape(4, D)


def rel_error(values, truth):
    v = np.asarray(values).reshape(truth.shape)
    return float(np.mean(np.linalg.norm(v - truth, axis=1) / np.linalg.norm(truth, axis=1)))


def test_registered_with_its_options():
    summary = get("summary", "ra-kernelshap-net")(budget=BUDGET, hidden=8, steps=20)
    assert isinstance(summary, NetworkAdjustedKernelSHAP)
    assert summary.describe()["hidden"] == 8 and summary.describe()["steps"] == 20


def test_network_table_and_shapley_values_equal_enumeration():
    """The half-split table equals the network on every mask, and the surrogate's Shapley
    values equal those computed from its table by the definition."""
    g = torch.Generator().manual_seed(1)
    corr = TanhCorrection(*(torch.randn(*s, generator=g, dtype=torch.float64)
                            for s in ((3, 7, 5), (3, 5), (3, 5))))
    M = torch.as_tensor(enumerate_masks(7, 0, 2**7), dtype=torch.float64)
    np.testing.assert_allclose(corr.table(7), corr(M), atol=1e-12)
    np.testing.assert_allclose(corr(M)[:, 0], 0, atol=1e-15)  # n(∅) − n(0) = 0


@pytest.mark.parametrize("rows, d, h, b", [(50, 7, 5, 4), (300, 16, 12, 3), (9, 2, 1, 1)])
def test_written_out_gradient_equals_autograd(rows, d, h, b):
    gen = torch.Generator().manual_seed(rows)
    U = 2 * (torch.rand(rows, d, generator=gen) < 0.5).double() - 1
    wn = torch.rand(rows, generator=gen, dtype=torch.float64)
    y = torch.randn(b, rows, generator=gen, dtype=torch.float64)
    x = torch.randn(b, d * h + 2 * h, generator=gen, dtype=torch.float64)
    f, g = tanh_loss_grad(x, U, wn / wn.sum(), y, h, 1e-3)
    f_ref, g_ref = tanh_loss_grad_autograd(x, U, wn / wn.sum(), y, h, 1e-3)
    assert torch.allclose(f, f_ref, rtol=1e-12, atol=1e-14)
    assert torch.allclose(g, g_ref, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("rows", [100, 1500])
def test_loss_and_gradient_of_a_problem_do_not_depend_on_the_batch_or_threads(rows,
                                                                               threads):
    """Batches of 1 to 40 problems and one or two threads give a problem the same bits: the
    sums over the mask rows are computed for each problem alone."""
    gen = torch.Generator().manual_seed(rows)
    d, h, b = 16, 16, 40
    U = 2 * (torch.rand(rows, d, generator=gen) < 0.5).float() - 1
    wn = torch.rand(rows, generator=gen)
    y = torch.randn(b, rows, generator=gen)
    x = 0.3 * torch.randn(b, d * h + 2 * h, generator=gen)
    f, g = tanh_loss_grad(x, U, wn / wn.sum(), y, h, 1e-5)
    for t in (1, 2):
        threads(t)
        for n in (1, 3, 12, 17, 22, 39):
            idx = torch.arange(n) + (b - n) // 2
            fn, gn = tanh_loss_grad(x[idx], U, wn / wn.sum(), y[idx], h, 1e-5)
            assert torch.equal(fn, f[idx]) and torch.equal(gn, g[idx]), (t, n)


def _rosenbrock(x, idx):
    """Rosenbrock's function scaled by the problem's number: minimum 0 at (1, 1)."""
    a = 1.0 + idx.to(x.dtype)
    f = a * ((1 - x[:, 0]) ** 2 + 100 * (x[:, 1] - x[:, 0] ** 2) ** 2)
    g = torch.stack([a * (-2 * (1 - x[:, 0]) - 400 * x[:, 0] * (x[:, 1] - x[:, 0] ** 2)),
                     a * 200 * (x[:, 1] - x[:, 0] ** 2)], 1)
    return f, g


def test_lbfgs_finds_the_minima_and_a_problem_runs_the_same_alone_or_in_a_batch():
    x0 = torch.tensor([[-1.2, 1.0], [0.5, -0.5], [2.0, 2.0], [-0.3, 0.8]], dtype=torch.float64)
    x = lbfgs(_rosenbrock, x0, steps=200)
    assert torch.allclose(x, torch.ones_like(x), atol=1e-6)
    for i in range(len(x0)):  # each problem alone, under its own index: the same iterates
        alone = lbfgs(lambda z, idx, i=i: _rosenbrock(z, idx + i), x0[i:i + 1], steps=200)
        assert torch.equal(alone[0], x[i])
    # a convex quadratic ½ xᵀAx − bᵀx per problem: its minimum A⁻¹b
    gen = torch.Generator().manual_seed(0)
    Q = torch.randn(3, 6, 6, generator=gen, dtype=torch.float64)
    A = Q @ Q.transpose(1, 2) + 6 * torch.eye(6, dtype=torch.float64)
    bvec = torch.randn(3, 6, generator=gen, dtype=torch.float64)

    def quadratic(z, idx):
        Az = (A[idx] @ z[:, :, None])[:, :, 0]
        return 0.5 * (z * Az).sum(1) - (bvec[idx] * z).sum(1), Az - bvec[idx]

    x = lbfgs(quadratic, torch.zeros(3, 6, dtype=torch.float64), steps=100)
    assert torch.allclose(x, torch.linalg.solve(A, bvec), atol=1e-8)
    few = lbfgs(quadratic, torch.zeros(3, 6, dtype=torch.float64), steps=2)
    assert not torch.allclose(few, x, atol=1e-3)  # steps bounds each problem's iterations


def test_fit_recovers_a_network_function():
    """A target that is a network of the masks is fitted to a small residual."""
    g = torch.Generator().manual_seed(2)
    M = (torch.rand(400, 6, generator=g) < 0.5).double()
    target = TanhCorrection(torch.randn(1, 6, 4, generator=g, dtype=torch.float64),
                            torch.randn(1, 4, generator=g, dtype=torch.float64),
                            torch.randn(1, 4, generator=g, dtype=torch.float64))(M)[0]
    fit = TanhCorrection(*fit_tanh([(M, torch.ones(400, dtype=torch.float64),
                                     torch.stack([target, -target]))], 8, 0.0, 300))(M)
    for row, want in zip(fit, (target, -target)):
        assert float(((row - want) ** 2).mean() / target.var()) < 1e-3


def test_sets_fitted_together_equal_each_set_fitted_alone():
    """Cross-fitting's folds are fitted in one batch, each problem on its own fold's masks."""
    g = torch.Generator().manual_seed(5)
    sets = []
    for rows, n in ((300, 3), (301, 2)):
        M = (torch.rand(rows, 7, generator=g) < 0.5).double()
        sets.append((M, torch.rand(rows, generator=g, dtype=torch.float64),
                     torch.randn(n, rows, generator=g, dtype=torch.float64)))
    together = fit_tanh(sets, 6, 1e-4, 40)
    alone = [fit_tanh([s], 6, 1e-4, 40) for s in sets]
    for p, parts in zip(together, zip(*alone)):
        assert torch.equal(p, torch.cat(parts))


@pytest.mark.parametrize("options, ratio", [({}, 0.9), ({"steps": 300, "folds": 3}, 0.7)])
def test_close_to_exact_and_closer_than_ra_kernelshap(truth, options, ratio):
    def error(cls, **kw):
        return np.mean([rel_error(cls(budget=BUDGET, seed=s, **kw)(mlp_game()).values, truth)
                        for s in range(4)])
    net = error(NetworkAdjustedKernelSHAP, **options)
    assert net < 0.05
    assert net < ratio * error(RegressionAdjustedKernelSHAP)


def test_efficient_reproducible_and_explicands_independent():
    game = mlp_game()
    a = NetworkAdjustedKernelSHAP(budget=BUDGET, seed=3)(game)
    b = NetworkAdjustedKernelSHAP(budget=BUDGET, seed=3)(mlp_game())
    v = np.asarray(a.values).reshape(4, D)
    np.testing.assert_allclose(v.sum(1), np.asarray(game.v_full - game.v_empty()).reshape(4),
                               atol=1e-10)
    np.testing.assert_array_equal(a.values, b.values)
    np.testing.assert_array_equal(a.stderr, b.stderr)
    # each explicand's surrogate is fitted on its own values: explaining one row alone
    # gives the same values (up to the rounding of a batched single-precision product)
    one = NetworkAdjustedKernelSHAP(budget=BUDGET, seed=3)(mlp_game(rows=[2]))
    np.testing.assert_allclose(np.asarray(one.values).reshape(D), v[2], atol=1e-7)
    assert np.all(np.asarray(a.stderr) > 0)


def test_standard_errors_cover_over_many_seeds(truth):
    """93-97% nominal: over 40 seeds x 4 explicands x 8 features, 88-99% of the coordinates
    lie within 1.96 SE of the exact values."""
    inside = []
    for s in range(40):
        res = NetworkAdjustedKernelSHAP(budget=BUDGET, seed=100 + s, steps=100)(mlp_game())
        v = np.asarray(res.values).reshape(4, D)
        se = np.asarray(res.stderr).reshape(4, D)
        inside.append(np.abs(v - truth) <= 1.96 * se)
    cover = float(np.mean(inside))
    assert 0.88 <= cover <= 0.99, cover


def test_above_max_exact_surrogate_it_is_ra_kernelshap():
    game = mlp_game(n=2)
    a = NetworkAdjustedKernelSHAP(budget=BUDGET, seed=4, max_exact_surrogate=6)(game)
    b = RegressionAdjustedKernelSHAP(budget=BUDGET, seed=4, max_exact_surrogate=6,
                                     folds=2)(mlp_game(n=2))  # the network's default folds
    np.testing.assert_array_equal(a.values, b.values)


def test_auto_steps_grow_with_the_fit_rows_from_120():
    from xai.summaries.network_kernelshap import AUTO_STEPS, AUTO_STEPS_ROWS, auto_steps

    assert auto_steps(10) == auto_steps(AUTO_STEPS_ROWS) == AUTO_STEPS == 120
    assert auto_steps(64 * AUTO_STEPS_ROWS) == 240  # the sixth root of 64 is 2
    steps = [auto_steps(r) for r in range(100, 20000, 500)]
    assert steps == sorted(steps)
    assert NetworkAdjustedKernelSHAP().describe()["steps"] == "auto"


@pytest.mark.parametrize("kw, match", [({"hidden": 0}, "hidden"), ({"steps": 0}, "steps"),
                                       ({"steps": "many"}, "steps"), ({"steps": 2.5}, "steps"),
                                       ({"weight_decay": -1.0}, "weight_decay"),
                                       ({"weight_decay": float("nan")}, "weight_decay")])
def test_bad_options_are_refused(kw, match):
    with pytest.raises(InputError, match=match):
        NetworkAdjustedKernelSHAP(budget=BUDGET, **kw)
