"""The attribution deviation bound: an attack (PGD on the attribution distance within the
ball, keeping the predicted class) never exceeds it, the gradient bounds contain every
gradient in the ball, and on linear models it is the closed-form maximum."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import xai
from xai.errors import ModelTypeError
from xai.metrics.deviation_bound import gradient_bounds, input_gradient, sequential_layers

EPS = 0.1


def mlp() -> torch.nn.Sequential:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.ReLU(), torch.nn.Linear(16, 16),
                               torch.nn.ReLU(), torch.nn.Linear(16, 3)).double().eval()


def cnn() -> torch.nn.Sequential:
    torch.manual_seed(1)
    return torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.ReLU(),
                               torch.nn.AvgPool2d(2), torch.nn.Flatten(),
                               torch.nn.Linear(4 * 3 * 3, 3)).double().eval()


def _attribution(model, x, t, kind):
    x = x.clone().requires_grad_(True)
    out = model(x)
    (g,) = torch.autograd.grad(out[torch.arange(len(x)), t].sum(), x, create_graph=True)
    return g * x if kind == "input-x-gradient" else g


def _distance(a, b, distance):
    a, b = a.reshape(len(a), -1), b.reshape(len(b), -1)
    if distance == "euclidean":
        return (a - b).norm(dim=1)
    return 1 - torch.nn.functional.cosine_similarity(a, b, dim=1)


def attack(model, x, kind, norm, distance, starts=3, steps=15) -> np.ndarray:
    """The largest attribution distance PGD finds within the ball among points that keep the
    predicted class: a lower bound of the worst case."""
    t = model(x).argmax(1)
    ref = _attribution(model, x, t, kind).detach()
    best = torch.zeros(len(x), dtype=torch.float64)
    gen = torch.Generator().manual_seed(0)
    flat = (len(x), *[1] * (x.dim() - 1))
    for _ in range(starts):
        d = torch.randn(x.shape, generator=gen, dtype=x.dtype)
        d = d / d.reshape(len(x), -1).norm(dim=1).reshape(flat) * EPS if norm == "l2" else \
            d.sign() * EPS * torch.rand(x.shape, generator=gen, dtype=x.dtype)
        for _ in range(steps):
            d.requires_grad_(True)
            dist = _distance(_attribution(model, x + d, t, kind), ref, distance)
            kept = model(x + d).argmax(1) == t
            best = torch.maximum(best, torch.where(kept, dist, 0.0).detach())
            (grad,) = torch.autograd.grad(dist.sum(), d)
            with torch.no_grad():
                if norm == "l2":
                    d = d + EPS / 4 * grad / (grad.reshape(len(x), -1).norm(dim=1).reshape(flat)
                                               + 1e-12)
                    d = d * (EPS / d.reshape(len(x), -1).norm(dim=1)).clamp(max=1).reshape(flat)
                else:
                    d = (d + EPS / 4 * grad.sign()).clamp(-EPS, EPS)
    return best.numpy()


MODELS = {"mlp": (mlp, lambda: torch.randn(6, 6, generator=torch.Generator().manual_seed(2),
                                           dtype=torch.float64)),
          "cnn": (cnn, lambda: torch.rand(4, 1, 6, 6, generator=torch.Generator().manual_seed(3),
                                          dtype=torch.float64))}


@pytest.mark.parametrize("model_name", list(MODELS))
@pytest.mark.parametrize("kind", ["gradient", "input-x-gradient"])
@pytest.mark.parametrize("norm", ["l2", "linf"])
@pytest.mark.parametrize("distance", ["euclidean", "cosine"])
def test_an_attack_stays_under_the_bound_on_every_row(model_name, kind, norm, distance) -> None:
    make, inputs = MODELS[model_name]
    model, x = make(), inputs()
    res = xai.metrics.get("attribution-deviation-bound", radius=EPS, norm=norm,
                          distance=distance, attribution=kind)(model, x.numpy(),
                                                               np.zeros(x.shape))
    lower = attack(model, x, kind, norm, distance)
    assert (lower <= res.per_sample + 1e-9).all(), (lower, res.per_sample)
    assert (lower > 0).any() or kind == "gradient"  # the attack moves the attribution


@pytest.mark.parametrize("norm", ["l2", "linf"])
def test_the_gradient_bounds_contain_the_gradient_everywhere_in_the_ball(norm) -> None:
    model = mlp()
    layers = sequential_layers(model)
    gen = torch.Generator().manual_seed(4)
    x = torch.randn(5, 6, generator=gen, dtype=torch.float64)
    t = model(x).argmax(1)
    lo, hi = gradient_bounds(layers, x, t, EPS, norm)
    for _ in range(50):
        d = torch.randn(x.shape, generator=gen, dtype=torch.float64)
        d = d / d.norm(dim=1, keepdim=True) * EPS * torch.rand(5, 1, generator=gen,
                                                               dtype=torch.float64) \
            if norm == "l2" else (torch.rand(x.shape, generator=gen, dtype=torch.float64)
                                  * 2 - 1) * EPS
        g, _ = input_gradient(layers, x + d, t)
        assert (lo - 1e-12 <= g).all() and (g <= hi + 1e-12).all()


def _linear(d: int = 5) -> tuple[torch.nn.Sequential, torch.Tensor]:
    torch.manual_seed(5)
    model = torch.nn.Sequential(torch.nn.Linear(d, 2)).double()
    return model, model[0].weight.detach()


@pytest.mark.parametrize("norm,expected", [
    ("l2", lambda w: EPS * w.abs().max()), ("linf", lambda w: EPS * w.norm())])
def test_gradient_times_input_of_a_linear_model_has_the_closed_form(norm, expected) -> None:
    """g(x') − g(x) = w ⊙ δ: its largest norm over the ball is ε·max|w_i| (l2, all of δ on
    the largest weight) or ε‖w‖₂ (l_inf, δ = ε·sign)."""
    model, w = _linear()
    x = np.random.default_rng(6).normal(size=(4, 5))
    res = xai.metrics.get("attribution-deviation-bound", radius=EPS, norm=norm,
                          attribution="input-x-gradient")(model, x, np.zeros(x.shape), target=1)
    np.testing.assert_allclose(res.per_sample, float(expected(w[1])), rtol=1e-12)
    cos = xai.metrics.get("attribution-deviation-bound", radius=EPS, norm=norm,
                          attribution="input-x-gradient", distance="cosine")(
        model, x, np.zeros(x.shape), target=1)
    size = np.linalg.norm(x * w[1].numpy(), axis=1)
    ratio = float(expected(w[1])) / size
    np.testing.assert_allclose(cos.per_sample, np.where(
        ratio < 1, 1 - np.sqrt(1 - np.minimum(ratio, 1) ** 2), 2.0), rtol=1e-12)
    saliency = xai.metrics.get("attribution-deviation-bound", radius=EPS, norm=norm,
                               attribution="gradient")(model, x, np.zeros(x.shape), target=1)
    np.testing.assert_allclose(saliency.per_sample, 0.0)  # the gradient is w everywhere


def test_the_attribution_is_read_from_the_explanation() -> None:
    model = torch.nn.Sequential(torch.nn.Linear(5, 2))
    x = np.random.default_rng(7).normal(size=(3, 5)).astype(np.float32)
    e = xai.explain(model, x, method="captum.input-x-gradient", progress=False)
    res = xai.metrics.get("attribution-deviation-bound", radius=EPS)(model, x, e)
    assert res.settings["attribution"] == "input-x-gradient"
    w = model[0].weight.detach().double()
    t = np.asarray(e.extras["target"])
    np.testing.assert_allclose(res.per_sample, EPS * w[t].abs().amax(1).numpy(), rtol=1e-6)


def test_unsupported_layers_are_refused_before_the_model_is_called() -> None:
    calls = []
    model = torch.nn.Sequential(torch.nn.Linear(5, 4), torch.nn.Tanh(), torch.nn.Linear(4, 2))
    model.register_forward_pre_hook(lambda m, a: calls.append(1))
    with pytest.raises(ModelTypeError, match=r"layer '1' \(Tanh\).*ReLU"):
        xai.metrics.get("attribution-deviation-bound", attribution="gradient")(
            model, np.ones((2, 5), np.float32), np.zeros((2, 5)))
    assert not calls


def test_convolutions_that_pad_by_reflection_are_refused_before_the_model_is_called() -> None:
    calls = []
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3, padding=1, padding_mode="reflect"),
                                torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.Linear(32, 2))
    model.register_forward_pre_hook(lambda m, a: calls.append(1))
    with pytest.raises(ModelTypeError, match=r"layer '0' \(Conv2d with padding_mode='reflect'"
                                             r"\).*padding_mode='zeros'"):
        xai.metrics.get("attribution-deviation-bound", attribution="gradient")(
            model, np.ones((2, 1, 4, 4), np.float32), np.zeros((2, 1, 4, 4)))
    assert not calls
