"""SAGE with a random subset of the background rows per unit (``draws_per_unit``): the
corrected subset value is exactly unbiased for the all-draws value (checked by enumerating
every subset), SAGE stays on its closed form, and what cannot be corrected is refused."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

import xai
from xai.behaviours import DatasetLoss, Prediction
from xai.errors import InputError
from xai.features import FeatureMap
from xai.game import DatasetGame, Game
from xai.models import as_model
from xai.removals import Marginal


def _mlp(d: int, k: int = 1) -> torch.nn.Module:
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(d, 8), torch.nn.Tanh(), torch.nn.Linear(8, k))
    return net.double().eval()


@pytest.mark.parametrize("K_sub", [2, 3, 5])
def test_subset_values_average_to_the_all_draws_value_over_every_subset(K_sub):
    """Mean over all C(K, K') subsets of the corrected value = the value on all K draws
    (an identity of sampling without replacement, for a nonlinear model and vector y)."""
    rng = np.random.default_rng(0)
    d, K = 4, 6
    X, B = rng.normal(size=(5, d)), rng.normal(size=(K, d))
    y = rng.normal(size=(5, 2))
    game = Game(as_model(_mlp(d, 2), output_kind="raw"), X, Marginal(B, max_background=None),
                DatasetLoss("squared-error"), FeatureMap.tabular(d), y=y)
    masks = rng.random((len(X), 3, d)) < 0.5
    full = game(masks, np.arange(len(X)))
    subsets = list(itertools.combinations(range(K), K_sub))
    total = torch.zeros_like(full)
    for sub in subsets:
        total += game(masks, np.arange(len(X)), draws=np.tile(sub, (len(X), 1)))
    np.testing.assert_allclose(total / len(subsets), full, rtol=1e-10, atol=1e-12)
    # one uncorrected subset differs from the full value: the correction is doing work
    one = game(masks, np.arange(len(X)), draws=np.tile(subsets[0], (len(X), 1)))
    assert not torch.allclose(one, full)


def test_sage_with_draw_subsets_matches_closed_form_and_costs_fewer_rows():
    """Orthogonal columns, linear model: SAGE_i = w_i^2 Var(x_i); 4 of 60 background rows per
    unit stays within 4 SE of it and evaluates ~1/15 of the rows per unit."""
    rng = np.random.default_rng(7)
    n, d = 60, 3
    Q, _ = np.linalg.qr(np.column_stack([np.ones(n), rng.normal(size=(n, d))]))
    X = Q[:, 1:] * np.sqrt(n) * np.array([1.0, 0.7, 1.3])
    w = np.array([2.0, 1.0, -0.5])
    y = X @ w
    net = torch.nn.Linear(d, 1).double()
    with torch.no_grad():
        net.weight[:] = torch.as_tensor(w)[None]
        net.bias.zero_()
    truth = w ** 2 * X.var(0)
    runs = {}
    for dpu in (None, 4):
        e = xai.explain(net, X, method="sage", y=y, background=X, seed=3, progress=False,
                        output_kind="raw", draws_per_unit=dpu, budget=40_000, rtol=None)
        z = (e.values[0] - truth) / e.stderr[0]
        assert np.all(np.abs(z) < 4), (dpu, e.values, truth, e.stderr)
        runs[dpu] = e
    assert runs[4].options["draws_per_unit"] == 4
    assert runs[None].options["draws_per_unit"] == 60
    assert runs[4].units > 10 * runs[None].units  # same budget, units of 4 draws instead of 60


def test_auto_uses_subsets_only_where_the_correction_is_exact():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(40, 3))
    reg = _mlp(3)
    e = xai.explain(reg, X, method="sage", y=rng.normal(size=40), background=X,
                    output_kind="raw", seed=0, progress=False, budget=5_000)
    assert e.options["draws_per_unit"] == xai.game.AUTO_DRAWS_PER_UNIT
    clf = _mlp(3, 2)
    labels = rng.integers(2, size=40)
    e = xai.explain(clf, X, method="sage", y=labels, background=X, output_kind="logits",
                    seed=0, progress=False, budget=5_000)
    assert e.options["draws_per_unit"] == 40  # cross-entropy: every background row


@pytest.mark.parametrize("option, message", [
    (1, r"draws_per_unit must be 'auto', None or an integer in 2\.\.40"),
    ("some", r"draws_per_unit='some' is not an integer"),
    (4, r"no exact correction .*only squared-error.*draws_per_unit=None"),
])
def test_bad_draws_per_unit_is_refused_with_the_fix(option, message):
    rng = np.random.default_rng(1)
    X = rng.normal(size=(40, 3))
    with pytest.raises(InputError, match=message):
        xai.explain(_mlp(3, 2), X, method="sage", y=rng.integers(2, size=40), background=X,
                    output_kind="logits", seed=0, progress=False, budget=5_000,
                    draws_per_unit=option)


def test_draw_subsets_need_a_correctable_behaviour_on_the_game():
    rng = np.random.default_rng(2)
    X = rng.normal(size=(4, 3))
    game = Game(as_model(_mlp(3), output_kind="raw"), X, Marginal(X), Prediction(),
                FeatureMap.tabular(3))
    with pytest.raises(InputError, match="no exact correction"):
        game(np.ones((1, 3), bool), draws=np.tile([0, 1], (4, 1)))
    dg = DatasetGame(Game(as_model(_mlp(3), output_kind="raw"), X, Marginal(X),
                          DatasetLoss(), FeatureMap.tabular(3), y=X[:, 0]), row_sampling=True,
                     draws_per_unit=2)
    with pytest.raises(InputError, match=r"shape \(4, K'\)"):
        dg.local_game(np.ones((4, 1, 3), bool), np.arange(4), draws=np.zeros((4, 1), int))
