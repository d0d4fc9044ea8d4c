"""PatternNet and PatternAttribution (Kindermans et al. 2018) against closed forms: the
paper's signal/distractor example, the linear model's pattern cov(x, y)/var(y), the
two-component estimator computed by hand, the one-hidden-layer backward pass, and refusals
before any model call."""

import numpy as np
import pytest
import torch
from torch import nn

import xai
from xai.errors import InputError, ModelTypeError, UnknownNameError
from xai.pattern_net import fit_patterns, layer_sequence


def _signal_distractor(n=4000, seed=0):
    """x = a_s s + a_d d with independent s, d; the filter w cancels d (wᵀa_d = 0) and
    reads s (wᵀa_s = 1), so y = s and the signal direction is a_s, not w."""
    rng = np.random.default_rng(seed)
    a_s, a_d = np.array([1.0, 0.0]), np.array([1.0, 1.0])
    s, d = rng.normal(size=n), rng.normal(size=n)
    X = np.outer(s, a_s) + np.outer(d, a_d)
    w = np.array([1.0, -1.0])
    model = nn.Sequential(nn.Linear(2, 1, bias=False)).double()
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor(w)[None])
    return model, X, a_s, w


def test_patternnet_recovers_the_signal_direction_where_the_weights_do_not():
    model, X, a_s, w = _signal_distractor()
    e = xai.explain(model, X[:5], method="patternnet", background=X, estimator="linear")
    y = X[:5] @ w
    np.testing.assert_allclose(e.values, np.outer(y, a_s), atol=0.05)
    cos = e.values[0] @ w / np.linalg.norm(e.values[0]) / np.linalg.norm(w)
    assert abs(cos) < 0.75  # the weights point elsewhere (cos 45 degrees)


@pytest.mark.parametrize("method", ["patternnet", "pattern-attribution"])
def test_linear_model_matches_the_haufe_pattern_times_the_output(method):
    rng = np.random.default_rng(1)
    X = rng.normal(size=(300, 4)) @ rng.normal(size=(4, 4))
    model = nn.Sequential(nn.Linear(4, 1)).double()
    w = model[0].weight.detach().numpy()[0]
    y = X @ w  # the output without bias
    a = ((X - X.mean(0)) * (y - y.mean())[:, None]).mean(0) / y.var()
    e = xai.explain(model, X[:3], method=method, background=X)
    f = model(torch.tensor(X[:3])).detach().numpy()[:, 0]
    expect = np.outer(f, a * w if method == "pattern-attribution" else a)
    np.testing.assert_allclose(e.values, expect, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(e.extras["output"], f, rtol=1e-12)
    if method == "pattern-attribution":  # wᵀa = 1: the output is passed on whole
        np.testing.assert_allclose(e.values.sum(1), f, rtol=1e-9)


def _relu_net(seed=2):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(3, 5), nn.ReLU(), nn.Linear(5, 2)).double()


def test_two_component_patterns_by_hand():
    model = _relu_net()
    X = np.random.default_rng(3).normal(size=(500, 3))
    fit = fit_patterns(model, X, "two-component")
    W, b = model[0].weight.detach().numpy(), model[0].bias.detach().numpy()
    Y = X @ W.T
    for j in range(5):
        pos = Y[:, j] + b[j] > 0
        cov = (X[pos] * Y[pos, j][:, None]).mean(0) - X[pos].mean(0) * Y[:, j].mean()
        np.testing.assert_allclose(fit.patterns[0].numpy()[j], cov / (W[j] @ cov), rtol=1e-9)
        neg = ~pos
        cov_n = (X[neg] * Y[neg, j][:, None]).mean(0) - X[neg].mean(0) * Y[:, j].mean()
        np.testing.assert_allclose(fit.negative[0].numpy()[j], cov_n / (W[j] @ cov_n),
                                   rtol=1e-9)
    assert fit.negative[2] is None  # the output layer takes S_a


def test_pattern_attribution_of_one_hidden_layer_by_hand():
    model = _relu_net()
    X = np.random.default_rng(4).normal(size=(400, 3))
    fit = fit_patterns(model, X, "two-component")
    e = xai.explain(model, X[:4], method="pattern-attribution", background=X, target=1)
    W1, b1 = model[0].weight.detach().numpy(), model[0].bias.detach().numpy()
    W2 = model[2].weight.detach().numpy()
    A1, A2 = fit.patterns[0].numpy(), fit.patterns[2].numpy()
    f = model(torch.tensor(X[:4])).detach().numpy()[:, 1]
    active = (X[:4] @ W1.T + b1) > 0
    r_hidden = f[:, None] * (W2[1] * A2[1])[None] * active
    np.testing.assert_allclose(e.values, r_hidden @ (W1 * A1), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(e.values.sum(1), r_hidden.sum(1), rtol=1e-9)


def test_fit_then_explain_without_background_equals_explaining_with_it():
    model = _relu_net()
    X = np.random.default_rng(5).normal(size=(200, 3))
    a = xai.explain(model, X[:3], method="patternnet", background=X)
    from xai.pattern_net import PatternNet
    b = PatternNet().fit(model, X).explain(model, X[:3])
    np.testing.assert_allclose(a.values, b.values, rtol=1e-12)


class _Counting(nn.Module):
    def __init__(self, inner):
        super().__init__()
        self.inner, self.calls = inner, 0

    def forward(self, x):
        self.calls += 1
        return self.inner(x)


def test_unsupported_layers_and_missing_background_are_refused_before_any_model_call():
    model = _Counting(nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 1)))
    X = np.zeros((4, 3))
    with pytest.raises(ModelTypeError, match="Tanh"):
        xai.explain(model, X, method="patternnet", background=X)
    with pytest.raises(ModelTypeError):
        layer_sequence(lambda x: x)
    ok = _Counting(_relu_net())
    with pytest.raises(InputError, match="background"):
        xai.explain(ok, X, method="pattern-attribution")
    with pytest.raises(UnknownNameError, match="estimator"):
        xai.explain(ok, X, method="patternnet", background=X, estimator="nope")
    assert model.calls == 0 and ok.calls == 0
