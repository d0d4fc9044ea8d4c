"""PatternNet and PatternAttribution (Kindermans et al. 2018) against closed forms: the
paper's signal/distractor example, the linear model's pattern cov(x, y)/var(y), the
two-component estimator computed by hand, the one-hidden-layer backward pass, and refusals
before any model call."""

import numpy as np
import pytest
import torch
from helpers import CallCounter
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


def test_unsupported_layers_and_missing_background_are_refused_before_any_model_call():
    model = CallCounter(nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 1)))
    X = np.zeros((4, 3))
    with pytest.raises(ModelTypeError, match="Tanh"):
        xai.explain(model, X, method="patternnet", background=X)
    with pytest.raises(ModelTypeError):
        layer_sequence(lambda x: x)
    ok = CallCounter(_relu_net())
    with pytest.raises(InputError, match="background"):
        xai.explain(ok, X, method="pattern-attribution")
    with pytest.raises(UnknownNameError, match="estimator"):
        xai.explain(ok, X, method="patternnet", background=X, estimator="nope")
    assert model.calls == 0 and ok.calls == 0


# ---- Wilming et al.'s suppressor data: the pattern of the Bayes model is (1, 0) ----------
def _gauss2d(n=20000, seed=0):
    from xai import registry

    return registry.get("dataset", "gauss2d-suppressor")().make(seed, n=n)


def _suppressor_ratio(X, explanation, data) -> float:
    from xai import registry

    return registry.get("metric", "suppressor-ratio")()(None, X, explanation,
                                                        ground_truth=data).aggregate


def _recoloured(X, cov):
    """Rows with mean exactly zero and sample covariance exactly ``cov``."""
    Xc = X - X.mean(0)
    white = Xc @ np.linalg.inv(np.linalg.cholesky(np.cov(Xc.T)).T)
    return white @ np.linalg.cholesky(cov).T


@pytest.mark.parametrize("method", ["patternnet", "pattern-attribution"])
def test_suppressor_gets_exactly_zero_under_the_population_covariance(method):
    """Bayes model f = betaᵀx, beta = 2 Sigma⁻¹ a, a = (1, 0): Sigma_x beta = (Sigma + a aᵀ)
    beta = (2 + beta_1) a, so its pattern Sigma_x beta / betaᵀSigma_x beta = a / beta_1 and
    the suppressor x2 gets 0 (Wilming et al. 2023). A background whose covariance is Sigma_x
    gives that exactly."""
    d = _gauss2d(n=2000)
    beta, Sx = d.extras["beta"], d.extras["Sigma_x"]
    B = _recoloured(d.X.astype(np.float64), Sx)
    model = d.extras["bayes_model"]
    X = d.X[d.test].astype(np.float64)
    e = xai.explain(model, X, method=method, background=B, target=1)
    f = X @ beta
    a = np.array([1 / beta[0], 0.0])  # the closed-form pattern a / beta_1
    expect = np.outer(f, a * beta if method == "pattern-attribution" else a)
    np.testing.assert_allclose(e.values, expect, rtol=1e-9, atol=1e-12)
    assert np.abs(e.values[:, 1]).max() < 1e-12 * np.abs(e.values[:, 0]).max()
    assert d.reference["patternnet"] == 0.0


@pytest.mark.parametrize("method", ["patternnet", "pattern-attribution"])
def test_suppressor_ratio_is_zero_within_sampling_error_on_training_rows(method):
    """Fitted on sampled training rows, the suppressor's share is the covariance's sampling
    error: the suppressor-ratio metric lies within 4 standard errors of the closed form 0,
    while the weights (ratio -c s1/s2 = -0.8) are far outside."""
    d = _gauss2d()
    B = d.X[d.train].astype(np.float64)
    X = d.X[d.test].astype(np.float64)
    e = xai.explain(d.extras["bayes_model"], X, method=method, background=B, target=1)
    f = B @ d.extras["beta"]
    Bc, fc = B - B.mean(0), f - f.mean()
    se = np.sqrt(np.mean((Bc[:, 1] * fc) ** 2) / len(B)) / abs(np.mean(Bc[:, 0] * fc))
    if method == "pattern-attribution":
        se *= abs(d.extras["beta"][1] / d.extras["beta"][0])
    assert 4 * se < 0.1  # not vacuous
    r = _suppressor_ratio(X, e, d)
    assert abs(r - d.reference["patternnet"]) < 4 * se
    assert abs(d.reference["weights"]) > 0.5


def test_trained_relu_network_puts_little_but_not_zero_on_the_suppressor():
    """A ReLU network is not linear: its per-neuron patterns are the Haufe patterns of the
    hidden units, which do load on x2, so the closed-form zero does not carry over. The
    suppressor's share stays an order below the gradient's (about 0.8)."""
    d = _gauss2d(n=4000)
    X, y = d.X.astype(np.float64), d.y
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(2, 4), nn.ReLU(), nn.Linear(4, 2)).double()
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    Xt, yt = torch.tensor(X[d.train]), torch.tensor(y[d.train])
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a tiny network: threads only contend
    try:
        for _ in range(300):
            opt.zero_grad()
            nn.functional.cross_entropy(net(Xt), yt).backward()
            opt.step()
    finally:
        torch.set_num_threads(threads)
    T = X[d.test]
    assert (net(torch.tensor(T)).argmax(1).numpy() == y[d.test]).mean() > 0.95
    grad = xai.explain(net, T, method="captum.saliency", abs=False, target=1)
    rg = _suppressor_ratio(T, grad, d)
    assert rg > 0.6
    for method in ("patternnet", "pattern-attribution"):
        e = xai.explain(net, T, method=method, background=X[d.train], target=1)
        r = _suppressor_ratio(T, e, d)
        assert 0 < r < 0.2 * rg, (method, r, rg)


def test_the_suppressor_suite_runs_both_methods_on_the_bayes_model(tmp_path):
    from xai import bench, registry

    suite = registry.get("suite", "suppressor")
    assert {"patternnet", "pattern-attribution"} <= set(suite.methods)
    d = _gauss2d(n=400)
    model = d.extras["bayes_model"]
    seq = model.as_sequential()
    x = torch.tensor(d.X[:5].astype(np.float64))
    np.testing.assert_array_equal(seq(x).numpy(), model(x).numpy())
    frame = bench.run("suppressor", datasets="gauss2d-suppressor",
                      methods="patternnet,pattern-attribution", metrics="suppressor-ratio",
                      seeds=[0], n_explain=8, progress=False, summary=False, out=tmp_path)
    assert (frame["status"] == "ok").all() and len(frame) == 2
    assert (frame["value"].abs() < 0.15).all()
