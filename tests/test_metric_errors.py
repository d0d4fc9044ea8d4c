"""Bad input to the evaluation metrics: clear errors before any model
call that name the argument, what was expected and what was received."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import xai
from xai.errors import (
    InputError,
    ModelTypeError,
    OptionError,
    ShapeError,
    TargetError,
    UnknownNameError,
    XaiError,
)


class Counting(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 3))
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        return self.net(x)


@pytest.fixture
def setup():
    torch.manual_seed(0)
    x = np.random.default_rng(0).random((6, 1, 8, 8)).astype(np.float32)
    return Counting(), x


def test_attribution_shape_names_expected_shapes(setup):
    model, x = setup
    with pytest.raises(ShapeError, match=r"attributions have shape \(6, 1, 8, 9\).*expected"):
        xai.metrics.get("deletion")(model, x, np.zeros((6, 1, 8, 9)), target=0)
    assert model.calls == 0


def test_rows_differ(setup):
    model, x = setup
    with pytest.raises(ShapeError, match="x has 6 rows, attributions 5"):
        xai.metrics.get("insertion")(model, x, np.zeros((5, 1, 8, 8)), target=0)
    assert model.calls == 0


def test_nan_attributions_are_not_imputed(setup):
    model, x = setup
    a = np.zeros((6, 1, 8, 8))
    a[4, 0, 1, 1] = np.nan
    with pytest.raises(XaiError, match=r"1 NaN.*rows \[4\].*do not impute"):
        xai.metrics.get("faithfulness-correlation")(model, x, a, target=0)
    assert model.calls == 0


def test_unknown_metric_suggests_close_match():
    with pytest.raises(UnknownNameError, match="'delition'.*Did you mean 'deletion'"):
        xai.metrics.get("delition")


def test_unknown_option_lists_known(setup):
    with pytest.raises(UnknownNameError, match="stepp.*step"):
        xai.metrics.get("deletion", stepp=2)


@pytest.mark.parametrize("metric,options,pattern", [
    ("deletion", {"step": 0}, r"step=0 .*at least 1"),
    ("faithfulness-correlation", {"subset_size": 64}, r"subset_size=64 .*1\.\.63"),
    ("road", {"percentages": [0, 50]}, r"percentages must lie in \(0, 100\)"),
    ("comprehensiveness", {"fractions": [0.1, 1.5]}, r"fractions must lie in \(0, 1\]"),
    ("sensitivity-n", {"sizes": [1, 64]}, r"sizes=\[1, 64\] .*1\.\.63"),
    ("pointing-game", {"tolerance": -2.0}, r"tolerance=-2\.0 is out of range"),
])
def test_invalid_option_values_name_the_range(setup, metric, options, pattern):
    model, x = setup
    with pytest.raises(OptionError, match=pattern):
        xai.metrics.get(metric, **options)(model, x, np.random.default_rng(1).random(x.shape),
                                           target=0)
    assert model.calls == 0


def test_sensitivity_needs_an_explainer(setup):
    model, x = setup
    with pytest.raises(XaiError, match="pass explainer="):
        xai.metrics.get("max-sensitivity")(model, x, np.zeros(x.shape), target=0)
    assert model.calls == 0


def test_randomisation_needs_a_torch_model():
    """A named error that is also a TypeError (a model of the wrong type)."""
    x = np.random.default_rng(0).random((3, 4))
    with pytest.raises(ModelTypeError, match=r"torch\.nn\.Module.*got function") as info:
        xai.metrics.get("randomisation")(lambda a: a.sum(1), x, np.zeros((3, 4)),
                                         explainer=lambda m, X: np.zeros(X.shape), target=0)
    assert isinstance(info.value, TypeError) and isinstance(info.value, XaiError)


def test_a_target_out_of_range_is_refused_on_the_first_prediction(setup):
    """The number of outputs of a torch module is known once it has answered: ROAD refuses
    target 9 of a 3-output model on its prediction of the explained rows, not after its
    removals (it raised IndexError there)."""
    model, x = setup
    with pytest.raises(TargetError, match=r"target 9 .*3 outputs, valid targets are 0\.\.2"):
        xai.metrics.get("road")(model, x, np.random.default_rng(1).random(x.shape), target=9)
    assert model.calls == 1


def test_float32_copies_of_the_explained_rows_are_the_explained_rows(setup):
    """x is compared with the explanation's rows to the precision of the coarser dtype."""
    model, x = setup
    x64 = x.astype(np.float64) + 1e-9
    e = xai.explain(model, x64, method="occlusion", features=1, progress=False)
    res = xai.metrics.get("sparseness")(model, x, e)
    assert res.per_sample.shape == (6,)
    with pytest.raises(InputError, match="x differs from the rows"):
        xai.metrics.get("sparseness")(model, x + 1e-3, e)


def test_irof_refuses_tables_before_the_model():
    """IROF removes superpixels: a table is refused with the metrics to use instead."""
    calls = []

    def model(rows):
        calls.append(len(rows))
        return np.asarray(rows).sum(1)
    x = np.random.default_rng(0).random((4, 5))
    with pytest.raises(InputError, match=r"irof .*needs images.*use deletion or "
                                         r"comprehensiveness"):
        xai.metrics.get("irof")(model, x, x, output="raw")
    assert calls == []
