"""EVA (Fel et al., CVPR 2023) and its verified bounds: every sampled perturbation's output lies
inside the interval and CROWN bounds; on affine networks the bounds are the closed-form
maximum and minimum, and EVA's scores the closed-form drops of the adversarial overlap;
CROWN is never looser than interval propagation; unsupported layers are refused before any
model call."""

import numpy as np
import pytest
import torch
from helpers import CallCounter
from torch import nn

import xai
from xai.errors import ModelTypeError, OptionError, ShapeError
from xai.eva import margin_spec, output_bounds


def _mlp(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 8), nn.ReLU(),
                         nn.Dropout(0.5), nn.Linear(8, 3)).double().eval()


def _cnn(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(1, 3, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AvgPool2d(2), nn.Flatten(),
                         nn.Linear(4, 2)).double().eval()


def _overlapping_pools(seed=0):
    """Max pooling first (padded, overlapping windows), then a convolution and pooling again."""
    torch.manual_seed(seed)
    return nn.Sequential(nn.MaxPool2d(3, 2, padding=1), nn.Conv2d(1, 3, 3, padding=1),
                         nn.ReLU(), nn.MaxPool2d(2, 1, dilation=2), nn.Flatten(),
                         nn.Linear(12, 2)).double().eval()


def _samples(lower, upper, m, gen):
    """``m`` uniform points of each box, plus its corners' extremes along random signs."""
    u = torch.rand((lower.shape[0], m, *lower.shape[1:]), generator=gen, dtype=torch.float64)
    corner = (u > 0.5).double()
    pts = torch.cat([u, corner], 1)
    return lower[:, None] + (upper - lower)[:, None] * pts


@pytest.mark.parametrize("method", ["ibp", "crown"])
@pytest.mark.parametrize("net, shape, eps", [(_mlp, (4,), 0.3), (_cnn, (1, 8, 8), 0.05),
                                             (_overlapping_pools, (1, 8, 8), 0.1)])
def test_bounds_contain_every_sampled_perturbations_output(method, net, shape, eps):
    model = net()
    gen = torch.Generator().manual_seed(1)
    x = torch.randn((3, *shape), generator=gen, dtype=torch.float64)
    lo, up = output_bounds(model, x - eps, x + eps, method=method)
    pts = _samples(x - eps, x + eps, 2000, gen)
    with torch.no_grad():
        out = model(pts.reshape(-1, *shape)).reshape(3, pts.shape[1], -1)
    assert (out >= lo[:, None] - 1e-10).all() and (out <= up[:, None] + 1e-10).all()
    spec = margin_spec(np.zeros(3, dtype=int), out.shape[-1])  # the margins f_j - f_0
    mlo, mup = output_bounds(model, x - eps, x + eps, spec=spec, method=method)
    margins = torch.einsum("bsk,bmk->bms", spec, out)
    assert (margins >= mlo[:, None] - 1e-10).all() and (margins <= mup[:, None] + 1e-10).all()


@pytest.mark.parametrize("net, shape, eps", [(_mlp, (4,), 0.3), (_cnn, (1, 8, 8), 0.1)])
def test_crown_on_unstable_neurons_only_stays_sound_and_never_looser(monkeypatch, net, shape,
                                                                    eps):
    """Layers too wide for every neuron's CROWN bounds refine only the neurons whose box
    straddles zero: still sound, still within the interval bounds."""
    import xai.eva

    monkeypatch.setattr(xai.eva, "ALL_NEURONS_ELEMENTS", 0)
    model = net(seed=12)
    gen = torch.Generator().manual_seed(13)
    x = torch.randn((3, *shape), generator=gen, dtype=torch.float64)
    lo, up = output_bounds(model, x - eps, x + eps)
    ilo, iup = output_bounds(model, x - eps, x + eps, method="ibp")
    assert (lo >= ilo - 1e-12).all() and (up <= iup + 1e-12).all()
    pts = _samples(x - eps, x + eps, 1000, gen)
    with torch.no_grad():
        out = model(pts.reshape(-1, *shape)).reshape(3, pts.shape[1], -1)
    assert (out >= lo[:, None] - 1e-10).all() and (out <= up[:, None] + 1e-10).all()


def _affine_net(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.AvgPool2d(2), nn.Identity(),
                         nn.Flatten(), nn.Linear(8, 5), nn.Linear(5, 3)).double().eval()


def _jacobian(model, shape):
    """Weights and bias of an affine network: f(x) = W x.ravel() + b."""
    n = int(np.prod(shape))
    with torch.no_grad():
        b = model(torch.zeros((1, *shape), dtype=torch.float64))[0]
        W = (model(torch.eye(n, dtype=torch.float64).reshape(n, *shape)) - b).T
    return W.numpy(), b.numpy()


@pytest.mark.parametrize("method", ["ibp", "crown"])
def test_affine_network_bounds_are_the_closed_form_max_and_min(method):
    """max over the box of W x + b is W c + b + |W| r: attained at a corner, so the bound is
    exact, for the outputs and for any specification of them."""
    shape = (1, 4, 4)
    model = _affine_net()
    W, b = _jacobian(model, shape)
    rng = np.random.default_rng(2)
    x = rng.normal(size=(2, *shape))
    r = rng.uniform(0, 0.3, size=(2, *shape))
    lo, up = output_bounds(model, x - r, x + r, method=method)
    c, rad = x.reshape(2, -1), r.reshape(2, -1)
    np.testing.assert_allclose(up.numpy(), c @ W.T + b + rad @ np.abs(W).T, rtol=1e-12)
    np.testing.assert_allclose(lo.numpy(), c @ W.T + b - rad @ np.abs(W).T, rtol=1e-12)
    spec = np.array([[1.0, -1.0, 0.0], [0.5, 0.5, -2.0]])
    slo, sup = output_bounds(model, x - r, x + r, spec=spec, method=method)
    Ws, bs = spec @ W, spec @ b
    np.testing.assert_allclose(sup.numpy(), c @ Ws.T + bs + rad @ np.abs(Ws).T, rtol=1e-10)
    np.testing.assert_allclose(slo.numpy(), c @ Ws.T + bs - rad @ np.abs(Ws).T, rtol=1e-10)
    corner = torch.as_tensor(x + r * np.sign(Ws[0]).reshape(shape)[None])
    with torch.no_grad():
        attained = (model(corner).numpy() @ spec.T)[:, 0]
    np.testing.assert_allclose(attained, sup.numpy()[:, 0], rtol=1e-10)


@pytest.mark.parametrize("net, shape, eps", [(_mlp, (4,), 0.3), (_cnn, (1, 8, 8), 0.1),
                                             (_overlapping_pools, (1, 8, 8), 0.1)])
def test_crown_is_never_looser_than_interval_propagation(net, shape, eps):
    """And strictly tighter on average here: the relaxations carry the dependence between
    neurons that boxes lose."""
    model = net(seed=3)
    x = torch.randn((6, *shape), generator=torch.Generator().manual_seed(4),
                    dtype=torch.float64)
    ilo, iup = output_bounds(model, x - eps, x + eps, method="ibp")
    clo, cup = output_bounds(model, x - eps, x + eps, method="crown")
    assert (clo >= ilo - 1e-12).all() and (cup <= iup + 1e-12).all()
    assert (cup - clo).mean() < 0.9 * (iup - ilo).mean()


def test_max_pooling_with_one_clear_maximum_per_window_is_bounded_exactly():
    """Where each window's largest element stays largest over the whole box, max pooling
    selects it, so a pooling followed by a linear layer is affine on the box: the bounds of
    its outputs and of their difference are the closed-form max and min."""
    torch.manual_seed(11)
    model = nn.Sequential(nn.MaxPool2d(2), nn.Flatten(), nn.Linear(4, 2)).double()
    x = torch.zeros((1, 1, 4, 4), dtype=torch.float64)
    x[0, 0, ::2, ::2] = 1.0  # the top-left element of each window is 1, the others 0
    eps = 0.2
    W = model[2].weight.detach().numpy()
    f = model(x).detach().numpy()[0]
    lo, up = output_bounds(model, x - eps, x + eps, method="crown")
    np.testing.assert_allclose(up.numpy()[0], f + eps * np.abs(W).sum(1), rtol=1e-12)
    np.testing.assert_allclose(lo.numpy()[0], f - eps * np.abs(W).sum(1), rtol=1e-12)
    spec = np.array([[1.0, -1.0]])
    slo, sup = output_bounds(model, x - eps, x + eps, spec=spec, method="crown")
    half = eps * np.abs(W[0] - W[1]).sum()
    assert sup.item() == pytest.approx(f @ spec[0] + half, rel=1e-12)
    assert slo.item() == pytest.approx(f @ spec[0] - half, rel=1e-12)


def _eva_closed_form(W, b, x, c, eps):
    """EVA of an affine model f = W x + b: AO(B) = max_j (w_j - w_c)ᵀx + (b_j - b_c) +
    eps |w_j - w_c|_1, and holding feature u removes eps |w_ju - w_cu| from margin j."""
    k = len(b)
    if k == 1:
        D, base = -W, -(W @ x + b)
    else:
        others = [j for j in range(k) if j != c]
        D = W[others] - W[c]
        base = D @ x + b[others] - b[c]
    full = base + eps * np.abs(D).sum(1)
    ao = full.max()
    return ao, np.array([ao - (full - eps * np.abs(D[:, u])).max() for u in range(len(x))])


@pytest.mark.parametrize("k", [1, 3])
@pytest.mark.parametrize("bounds", ["ibp", "crown"])
def test_eva_on_a_linear_model_is_the_closed_form_drop_of_the_adversarial_overlap(k, bounds):
    torch.manual_seed(5)
    model = nn.Sequential(nn.Linear(5, k)).double()
    X = np.random.default_rng(6).normal(size=(4, 5))
    e = xai.explain(model, X, method="eva", epsilon=0.2, bounds=bounds)
    W, b = model[0].weight.detach().numpy(), model[0].bias.detach().numpy()
    targets = (X @ W.T + b).argmax(1)
    for i in range(4):
        ao, values = _eva_closed_form(W, b, X[i], targets[i], 0.2)
        np.testing.assert_allclose(e.values[i], values, rtol=1e-10, atol=1e-13)
        assert e.extras["adversarial_overlap"][i] == pytest.approx(ao, rel=1e-12)
    f = X @ W.T + b
    rows = np.arange(4)
    np.testing.assert_allclose(e.extras["upper"], f[rows, targets] +
                               0.2 * np.abs(W[targets]).sum(1), rtol=1e-12)
    np.testing.assert_allclose(e.extras["lower"], f[rows, targets] -
                               0.2 * np.abs(W[targets]).sum(1), rtol=1e-12)


def test_a_variable_the_network_ignores_gets_zero_and_ranks_last():
    model = _mlp(seed=7)
    with torch.no_grad():
        model[0].weight[:, 2] = 0.0
    X = np.random.default_rng(8).normal(size=(3, 4))
    e = xai.explain(model, X, method="eva", epsilon=0.2)
    np.testing.assert_array_equal(e.values[:, 2], 0.0)
    assert (np.delete(e.values, 2, axis=1) > 0).all()


def test_feature_groups_of_an_image_hold_their_pixels_together():
    """Holding a 4x4 patch of pixels: the same as the ball with those pixels fixed,
    computed directly with output_bounds."""
    model = _cnn(seed=9)
    X = np.random.default_rng(10).random((2, 1, 8, 8))
    e = xai.explain(model, X, method="eva", epsilon=0.05, features=4)
    assert e.values.shape == (2, 4)
    t = model(torch.as_tensor(X)).argmax(1).numpy()
    spec = margin_spec(t, 2)
    r = np.full(X.shape, 0.05)
    r[:, :, :4, :4] = 0.0  # the first patch held
    _, full = output_bounds(model, X - 0.05, X + 0.05, spec=spec)
    _, held = output_bounds(model, X - r, X + r, spec=spec)
    np.testing.assert_allclose(e.values[:, 0], full[:, 0] - held[:, 0], rtol=1e-10)


@pytest.mark.parametrize("layer", [nn.Tanh(), nn.BatchNorm1d(4), nn.Sigmoid()])
def test_unsupported_layers_are_refused_before_any_model_call(layer):
    model = CallCounter(nn.Sequential(nn.Linear(3, 4), layer, nn.Linear(4, 2)))
    X = np.zeros((2, 3))
    with pytest.raises(ModelTypeError, match=type(layer).__name__):
        xai.explain(model, X, method="eva")
    with pytest.raises(ModelTypeError, match=type(layer).__name__):
        output_bounds(model, X - 0.1, X + 0.1)
    assert model.calls == 0


def test_bad_options_and_boxes_are_named_errors():
    with pytest.raises(ModelTypeError):
        xai.explain(lambda x: x.sum(1), np.zeros((2, 3)), method="eva")
    model = CallCounter(_mlp())
    with pytest.raises(OptionError, match="epsilon"):
        xai.explain(model, np.zeros((2, 4)), method="eva", epsilon=-1.0)
    with pytest.raises(OptionError, match="bounds"):
        xai.explain(model, np.zeros((2, 4)), method="eva", bounds="lirpa")
    assert model.calls == 0
    with pytest.raises(ShapeError, match="lower <= upper"):
        output_bounds(_mlp(), np.ones((1, 4)), np.zeros((1, 4)))
    with pytest.raises(ShapeError, match="spec"):
        output_bounds(_mlp(), np.zeros((1, 4)), np.ones((1, 4)), spec=np.ones((2, 5)))
