"""Extremal perturbations (Fong, Patrick & Vedaldi, ICCV 2019): the game's values with
gradients against closed forms, the paper's terms (smooth masks, area by ranking), the masks
of models whose evidence is a known region, TorchRay (the authors' implementation) where it is
installed, and bad inputs refused before any model call."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

import xai
from xai.behaviours import Prediction
from xai.errors import InputError, MaskError, OptionError
from xai.extremal import SmoothMask, area_reference, ranking_penalty, smooth_kernel
from xai.features import FeatureMap
from xai.game import Game, differentiable_values
from xai.models import as_model
from xai.removals import Blur, gaussian_blur

H = W = 12
REGION = (slice(2, 6), slice(6, 10))  # the evidence: rows 2..5, columns 6..9 (16 pixels)


class RegionMean(torch.nn.Module):
    """Two logits: ``+-scale`` times the mean of the pixels in ``REGION``; counts its rows."""

    def __init__(self, scale: float = 300.0) -> None:
        super().__init__()
        self.scale = torch.nn.Parameter(torch.tensor(scale))
        self.rows = 0

    def forward(self, x):
        self.rows += x.shape[0]
        v = x[:, :, REGION[0], REGION[1]].mean((1, 2, 3)) * self.scale
        return torch.stack([v, -v], 1)


def bright_region_images(n: int = 1) -> np.ndarray:
    rng = np.random.default_rng(0)
    X = (0.2 * rng.random((n, 1, H, W))).astype(np.float32)
    X[:, :, REGION[0], REGION[1]] += 1.0
    return X


def linear_game(X, weights):
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(X[0].size, 1, bias=False)).double()
    with torch.no_grad():
        model[1].weight.copy_(torch.as_tensor(weights.reshape(1, -1)))
    fmap = FeatureMap.patches(X.shape[2:], 1, channel_axis=0)
    return Game(as_model(model, output_kind="raw"), X, Blur(1.0),
                Prediction(target=0, output="raw"), fmap, kind="image"), model


def test_values_with_gradients_equal_the_games_values_and_the_closed_form_gradient():
    """f(x) = w.x: v(m) = w.(m x + (1 - m) blur(x)) and dv/dm_p = sum_c w_cp (x - blur x)_cp."""
    rng = np.random.default_rng(1)
    X = rng.random((2, 3, 6, 6)).astype(np.float64)
    w = rng.normal(size=(3, 6, 6))
    game, _ = linear_game(X, w)
    masks = torch.tensor(rng.random((2, 36)), requires_grad=True)
    vals = differentiable_values(game, masks, np.array([0, 1]))
    np.testing.assert_allclose(vals.detach().numpy(),
                               game(masks.detach().numpy()[:, None, :].copy(),
                                    np.array([0, 1]))[:, 0].numpy(), rtol=1e-12)
    vals.sum().backward()
    blurred = gaussian_blur(torch.as_tensor(X), 1.0).numpy()
    expected = (w[None] * (X - blurred)).sum(1).reshape(2, 36)
    np.testing.assert_allclose(masks.grad.numpy(), expected, rtol=1e-10, atol=1e-12)
    assert game.rows_evaluated == 2 + 2 + 2  # f(X), the boolean call's two rows, these two


def test_values_with_gradients_on_the_probability_scale_of_a_logits_model():
    """Two logits l: P(class 1) = sigmoid(l1 - l0), whose gradient through the mask is
    p (1 - p) times that of l1 - l0 (xai's row-independent sigmoid leaves autograd to torch)."""
    rng = np.random.default_rng(2)
    X = rng.random((2, 1, 6, 6)).astype(np.float64)
    w = rng.normal(size=(2, 36))
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(36, 2, bias=False)).double()
    with torch.no_grad():
        model[1].weight.copy_(torch.as_tensor(w))
    game = Game(as_model(model, output_kind="logits"), X, Blur(1.0),
                Prediction(target=1, output="probability"),
                FeatureMap.patches(X.shape[2:], 1, channel_axis=0), kind="image")
    masks = torch.tensor(rng.random((2, 36)), requires_grad=True)
    vals = differentiable_values(game, masks, np.array([0, 1]))
    vals.sum().backward()
    blurred = gaussian_blur(torch.as_tensor(X), 1.0).numpy()
    z = masks.detach().numpy() * X.reshape(2, 36) + (1 - masks.detach().numpy()) * \
        blurred.reshape(2, 36)
    p = 1 / (1 + np.exp(-(z @ (w[1] - w[0]))))
    np.testing.assert_allclose(vals.detach().numpy(), p, rtol=1e-12)
    expected = (p * (1 - p))[:, None] * (w[1] - w[0]) * (X - blurred).reshape(2, 36)
    np.testing.assert_allclose(masks.grad.numpy(), expected, rtol=1e-9, atol=1e-12)


def test_values_with_gradients_refuse_other_models_and_malformed_masks():
    X = np.random.default_rng(0).random((1, 1, 4, 4))
    game, _ = linear_game(X, np.ones((1, 4, 4)))
    with pytest.raises(MaskError, match="floating tensor of shape"):
        differentiable_values(game, torch.ones(1, 3), np.array([0]))
    fmap = FeatureMap.patches((4, 4), 1, channel_axis=0)
    fn_game = Game(as_model(lambda a: a.reshape(len(a), -1).sum(1)), X, Blur(1.0),
                   Prediction(target=0), fmap, kind="image")
    with pytest.raises(InputError, match="torch.nn.Module"):
        differentiable_values(fn_game, torch.ones(1, 16), np.array([0]))


def test_smooth_mask_is_the_smooth_max_convolution_of_the_parameters():
    gen = SmoothMask((9, 9), 1, 2.0, dtype=torch.float64)
    ones, _ = gen(torch.ones(1, 1, *gen.shape_in, dtype=torch.float64))
    zeros, _ = gen(torch.zeros(1, 1, *gen.shape_in, dtype=torch.float64))
    assert torch.all(zeros == 0)
    assert torch.all(ones > 0.98)  # the smooth max of kernel values whose largest is one
    # one parameter: m(u) = y e^{20 y} / (e^{20 y} + K - 1) with y = k(|u - u_i| / sigma) p_i
    params = torch.zeros(1, 1, *gen.shape_in, dtype=torch.float64)
    params[0, 0, 4, 4] = 0.8
    mask, _ = gen(params)
    K = (2 * gen.radius + 1) ** 2
    uy, ux = np.mgrid[0:9, 0:9]
    y = smooth_kernel(torch.as_tensor(np.hypot(uy - 4, ux - 4) / 2.0)) * 0.8
    expected = y * torch.exp(20 * y) / (torch.exp(20 * y) + K - 1)
    window = (np.abs(uy - 4) <= gen.radius) & (np.abs(ux - 4) <= gen.radius)
    np.testing.assert_allclose(mask[0, 0].numpy()[window], expected.numpy()[window],
                               rtol=1e-6, atol=1e-9)
    assert torch.all(mask[0, 0][torch.as_tensor(~window)] == 0)  # beyond the kernel's window


def test_ranking_penalty_is_the_mean_squared_gap_to_the_sorted_reference():
    ref = area_reference(10, [0.3, 0.5], dtype=torch.float64)
    assert ref.sum(1).tolist() == [3.0, 5.0] and torch.all(ref[:, 0] == 0)
    exact = torch.tensor([[1, 0, 0, 1, 0, 0, 1, 0, 0, 0.0]], dtype=torch.float64)
    assert ranking_penalty(exact, ref[:1]).item() == 0.0  # any order of the right values
    m = torch.linspace(0, 0.9, 10, dtype=torch.float64)[None]
    assert ranking_penalty(m.flip(1), ref[1:]).item() == pytest.approx(
        float(((m - ref[1:]) ** 2).mean()))


@pytest.fixture(scope="module")
def region_masks():
    X = bright_region_images()
    opts = {"area": [16 / 144, 0.25], "max_iter": 100, "mask_step": 1, "mask_sigma": 1.5,
                "blur_sigma": 1.0, "target": 0, "progress": False}
    return {mode: xai.explain(RegionMean(), X, method="extremal-perturbation", mode=mode,
                              **opts) for mode in ("preserve", "delete")}


def test_the_mask_finds_the_region_that_holds_the_evidence(region_masks):
    inside = np.zeros((H, W), bool)
    inside[REGION] = True
    for e in region_masks.values():
        mask = e.extras["masks"][0, 0].reshape(H, W)
        assert mask[inside].mean() > 0.7 and mask[~inside].mean() < 0.1
        assert e.values.shape == (1, H * W) and e.method == "extremal-perturbation"


def test_the_area_constraint_holds(region_masks):
    for e in region_masks.values():
        kept = (e.extras["masks"][0] > 0.5).mean(1)
        np.testing.assert_allclose(kept, e.extras["areas"], atol=0.06)


def test_preservation_and_deletion_agree_on_the_region(region_masks):
    keep = region_masks["preserve"].extras["masks"][0] > 0.5
    drop = region_masks["delete"].extras["masks"][0] > 0.5
    overlap = (keep & drop).sum(1) / (keep | drop).sum(1)
    assert overlap.min() > 0.7
    # keeping the region keeps the output; deleting it loses most of it
    assert region_masks["preserve"].extras["rewards"][0, 0] > 0.8 * region_masks[
        "preserve"].base_values[0]


def test_equals_torchray_reference_implementation():
    """TorchRay's ``extremal_perturbation`` with two blur levels (its pyramid then is the
    paper's blend), no jitter, its SGD, weight growth and area over the padded mask: the
    same masks step for step."""
    tr = pytest.importorskip("torchray.attribution.extremal_perturbation")
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU(),
                              torch.nn.Flatten(), torch.nn.Linear(4 * 12 * 12, 3))
    with torch.no_grad():
        for p in net.parameters():
            p.mul_(5)
    x = torch.rand(1, 3, 12, 12)

    class TwoLevels(tr.Perturbation):
        def __init__(self, input, num_levels=2, max_blur=0, type="blur"):
            self.type, self.num_levels = type, 2
            self.pyramid = torch.cat([gaussian_blur(input, 1.5), input])

    steps = 12
    original = tr.Perturbation
    tr.Perturbation = TwoLevels
    try:
        for mode in ("preserve", "delete"):
            ref, _ = tr.extremal_perturbation(
                copy.deepcopy(net), x, 1, areas=[0.1, 0.3], max_iter=steps + 1, num_levels=2,
                step=2, sigma=4.0, jitter=False, variant=mode)
            e = xai.explain(net, x.numpy(), method="extremal-perturbation", area=[0.1, 0.3],
                            max_iter=steps, mask_step=2, mask_sigma=4.0, blur_sigma=1.5,
                            optimizer="sgd", regul_growth=1.0035, area_domain="padded",
                            target=1, mode=mode, output="raw", progress=False)
            np.testing.assert_allclose(e.extras["masks"][0], ref.reshape(2, -1).numpy(),
                                       atol=1e-5)
    finally:
        tr.Perturbation = original


@pytest.mark.parametrize(("model", "X", "options", "error", "match"), [
    ("net", "images", {"area": 1.5}, OptionError, "area"),
    ("net", "images", {"area": []}, OptionError, "area"),
    ("net", "images", {"mode": "both"}, OptionError, "mode"),
    ("net", "images", {"max_iter": 0}, OptionError, "max_iter"),
    ("net", "images", {"optimizer": "lbfgs"}, OptionError, "optimizer"),
    ("net", "table", {}, InputError, "images"),
    ("function", "images", {}, InputError, "torch.nn.Module"),
])
def test_bad_inputs_are_named_errors_before_any_model_call(model, X, options, error, match):
    net = RegionMean()
    m = net if model == "net" else (lambda a: a.reshape(len(a), -1).sum(1))
    data = bright_region_images() if X == "images" else np.zeros((2, 5), np.float32)
    with pytest.raises(error, match=match):
        xai.explain(m, data, method="extremal-perturbation", progress=False, **options)
    assert net.rows == 0
