"""CRAFT (Fel et al. 2023) and the concept game: factorisation, importance, results, known
answers and bad input."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest
import torch
from torch import nn

import xai
from xai.concepts import CRAFT, ConceptBank, concept_game, nnls, split_model
from xai.concepts.craft import ConceptExplanation
from xai.concepts.plots import plot_attribution_maps, plot_gallery, plot_importance
from xai.errors import InputError, TargetError, XaiError
from xai.summaries import SobolTotal

# ---------------------------------------------------------------- fixtures


def tiny_cnn() -> nn.Module:
    """features: 1x1 colour detectors (red, blue, green, grey) → ReLU → 3x3 smoothing → ReLU;
    head: global average pool → linear. Logit 0 reads only the red channel."""
    torch.manual_seed(0)
    conv1 = nn.Conv2d(3, 4, 1)
    conv2 = nn.Conv2d(4, 4, 3, padding=1)
    fc = nn.Linear(4, 2)
    with torch.no_grad():
        conv1.weight.copy_(torch.tensor([[1., -1., -1.], [-1., -1., 1.], [-1., 1., -1.],
                                         [.3, .3, .3]])[:, :, None, None])
        conv1.bias.zero_()
        conv2.weight.copy_(0.02 * torch.rand(4, 4, 3, 3))
        conv2.weight[torch.arange(4), torch.arange(4), 1, 1] += 1.0
        conv2.bias.zero_()
        fc.weight.copy_(torch.tensor([[4., 0., 0., 0.], [0., 1., 1., 0.]]))
        fc.bias.zero_()
    features = nn.Sequential(conv1, nn.ReLU(), conv2, nn.ReLU())
    from collections import OrderedDict

    return nn.Sequential(OrderedDict(features=features, pool=nn.AdaptiveAvgPool2d(1),
                                     flatten=nn.Flatten(), fc=fc))


def stripes_and_dots(n: int = 12, size: int = 32, seed: int = 0) -> torch.Tensor:
    """Red horizontal stripes in one half, blue dots in the other (halves swap at random)."""
    rng = np.random.default_rng(seed)
    imgs = np.zeros((n, 3, size, size), dtype=np.float32)
    yy, xx = np.mgrid[:size, :size]
    stripes = (yy % 4) < 2
    dots = ((yy % 6) < 2) & ((xx % 6) < 2)
    half = size // 2
    for i in range(n):
        left = xx < half
        red_left = rng.random() < 0.5
        red_zone, blue_zone = (left, ~left) if red_left else (~left, left)
        imgs[i, 0][stripes & red_zone] = 1.0
        imgs[i, 2][dots & blue_zone] = 1.0
    return torch.as_tensor(imgs)


@pytest.fixture(scope="module")
def fitted():
    model = tiny_cnn()
    images = stripes_and_dots()
    craft = CRAFT(model, layer="features.3", n_concepts=3, seed=0)
    result = craft.fit(images, target=0)
    return model, images, craft, result


def red_concept(result) -> int:
    W = result.bank
    return int(np.argmax(W[0] / np.linalg.norm(W, axis=0)))


def blue_concept(result) -> int:
    W = result.bank
    return int(np.argmax(W[1] / np.linalg.norm(W, axis=0)))


# ---------------------------------------------------------------- split


def test_split_sequential_equals_model():
    model = tiny_cnn()
    model.train()
    x = stripes_and_dots(4)
    g, h = split_model(model, "features.1")
    with torch.no_grad():
        assert torch.allclose(h(g(x)), model(x), atol=1e-6)
        assert (g(x) >= 0).all()
    g, h = split_model(model, "features")
    with torch.no_grad():
        assert g(x).shape == (4, 4, 32, 32)
        assert torch.allclose(h(g(x)), model(x), atol=1e-6)
    assert model.training and all(m.training for m in model.modules())
    assert not model._forward_hooks and not model.features[0]._forward_hooks


class Net(nn.Module):
    def __init__(self, skip: bool = False):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 4, 3, padding=1)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(4, 4, 3, padding=1)
        self.relu2 = nn.ReLU()
        self.fc = nn.Linear(4, 2)
        self.skip = skip

    def forward(self, x):
        a = self.relu1(self.conv1(x))
        b = self.relu2(self.conv2(a))
        if self.skip:
            b = b + a
        return self.fc(b.mean(dim=(2, 3)))


def test_split_fx_and_skip_connection():
    torch.manual_seed(0)
    net = Net()
    x = torch.randn(3, 3, 8, 8)
    g, h = split_model(net, "relu1")
    with torch.no_grad():
        assert torch.allclose(h(g(x)), net(x), atol=1e-6)
    with pytest.raises(InputError, match="skip connection"):
        split_model(Net(skip=True), "relu2")
    g, h = split_model(Net(skip=True), "relu1")  # the skip starts at the cut: fine


def test_unknown_layer_lists_names():
    with pytest.raises(InputError) as err:
        split_model(tiny_cnn(), "feature.3")
    msg = str(err.value)
    assert "'feature.3' not found" in msg and "features.0" in msg and "features.3" in msg
    assert "Did you mean 'features.3'" in msg
    with pytest.raises(InputError, match="not found"):
        CRAFT(tiny_cnn(), layer="nope").fit(stripes_and_dots(2))


def test_split_check_with_model():
    model = tiny_cnn()
    g, h = split_model(model, "features.3")
    bad_h = nn.Sequential(h, nn.Identity())
    bad_h.forward = lambda a: h(a) + 0.5  # type: ignore[method-assign]
    with pytest.raises(InputError, match=r"h\(g\(x\)\) differs from model\(x\) by up to 0.5"):
        CRAFT(model=model, g=g, h=bad_h, n_concepts=2).fit(stripes_and_dots(2))


# ---------------------------------------------------------------- bank


def test_nmf_recovers_planted_factors():
    rng = np.random.default_rng(0)
    r, p, n = 4, 20, 300
    W0 = rng.random((p, r)) * (rng.random((p, r)) < 0.5) + np.eye(p, r)
    U0 = rng.random((n, r)) * (rng.random((n, r)) < 0.4)
    U0[np.arange(n), rng.integers(0, r, n)] += 1.0
    A = U0 @ W0.T
    bank = ConceptBank(r, seed=0, max_iter=2000, tol=1e-8).fit(A)
    assert bank.nmf_rel_error < 2e-2
    assert bank.W.shape == (p, r) and bank.U.shape == (n, r)
    Wn = bank.W / np.linalg.norm(bank.W, axis=0)
    W0n = W0 / np.linalg.norm(W0, axis=0)
    cos = W0n.T @ Wn
    from scipy.optimize import linear_sum_assignment

    rows, cols = linear_sum_assignment(-cos)
    assert cos[rows, cols].min() > 0.95


def test_nnls_kkt_and_shapes():
    rng = np.random.default_rng(1)
    W = torch.as_tensor(rng.random((30, 5)))
    a = torch.as_tensor(rng.normal(size=(50, 30)) + 0.5)
    u = nnls(a, W)
    grad = (u @ W.T - a) @ W  # ∇ of ½‖a − W u‖²
    scale = (a @ W).abs().max()
    assert (u >= 0).all()
    assert (grad >= -1e-6 * scale).all()
    assert ((u > 0) * grad).abs().max() <= 1e-6 * scale
    bank = ConceptBank.from_components(W.numpy())
    spatial = torch.rand(2, 30, 3, 4, dtype=torch.float64)
    assert tuple(bank.encode(spatial).shape) == (2, 3, 4, 5)
    assert tuple(bank.decode(bank.encode(spatial)).shape) == (2, 3, 4, 30)


# ---------------------------------------------------------------- the concept game


def test_sobol_product_game_and_dummy():
    W = np.eye(3)
    game = concept_game(lambda a: a.prod(1, keepdim=True), W, np.ones((1, 3)), target=0)
    res = SobolTotal(n_rows=1024, replicates=8, seed=0, design="continuous")(game)
    assert np.all(np.abs(res.values[0] - 16 / 37) < 4 * res.stderr[0] + 1e-3)
    # concept 2 has no effect on h: its total index is exactly 0
    game = concept_game(lambda a: a[:, :2].prod(1, keepdim=True), W, np.ones((2, 3)), target=0)
    res = SobolTotal(n_rows=64, replicates=2, seed=0)(game)
    assert np.all(res.values[:, 2] == 0.0)
    assert np.all(res.values[:, :2] > 0.3)
    assert xai.registry.get("removal", "concept").__name__ == "ConceptRemoval"


def test_keep_residual_reproduces_model():
    model = tiny_cnn().double()
    g, h = split_model(model, "features.3")
    x = stripes_and_dots(3).double()
    rng = np.random.default_rng(0)
    bank = ConceptBank.from_components(rng.random((4, 2)))
    with torch.no_grad():
        a = g(x)
        f = model(x)
    u = bank.encode(a)
    game = concept_game(h, bank.W, u, activations=a, residual="keep", target=0)
    assert torch.allclose(game.v_full, f[:, 0], rtol=0, atol=1e-12)
    # removing every concept subtracts exactly its decoded part
    v0 = game(np.zeros((1, 2), dtype=bool))[:, 0]
    with torch.no_grad():
        expect = h(a - bank.decode(u).permute(0, 3, 1, 2))[:, 0]
    assert torch.allclose(v0, expect, atol=1e-12)
    drop = concept_game(h, bank.W, u, target=0)
    with torch.no_grad():
        assert torch.allclose(drop.v_full, h(bank.decode(u).permute(0, 3, 1, 2))[:, 0],
                              atol=1e-12)


# ---------------------------------------------------------------- CRAFT end to end


def test_craft_ranks_causal_concept_first(fitted):
    _, images, _, result = fitted
    assert isinstance(result, ConceptExplanation)
    assert result.values.shape == (len(images), 3)
    assert result.importance.shape == (3,) and result.importance_stderr.shape == (3,)
    red, blue = red_concept(result), blue_concept(result)
    assert red != blue
    assert result.order()[0] == red
    assert result.importance[red] > result.importance[blue] + 2 * result.importance_stderr[red]
    assert result.options["target"] == 0 and result.options["layer"] == "features.3"
    assert result.options["diagnostics"]["nmf_rel_error"] < 0.5
    assert result.crop_coefficients.shape == (len(result.crop_boxes), 3)
    assert result.prototypes.shape == (3, 10)
    assert result.evaluations > 0


def test_craft_save_load_roundtrip(fitted, tmp_path):
    model, images, _, result = fitted
    path = result.save(tmp_path / "craft")
    back = ConceptExplanation.load(path)
    np.testing.assert_array_equal(back.values, result.values)
    np.testing.assert_array_equal(back.importance, result.importance)
    np.testing.assert_array_equal(back.bank, result.bank)
    np.testing.assert_array_equal(back.prototypes, result.prototypes)
    assert back.options == result.options and back.names == result.names
    with pytest.raises(XaiError, match="saved without its model"):
        back.attribution_maps(images[:1])
    craft2 = CRAFT(model, layer="features.3").from_result(back)
    np.testing.assert_allclose(back.attribution_maps(images[:1]),
                               result.attribution_maps(images[:1]))
    again = craft2.importance(images[:4], target=0)
    np.testing.assert_allclose(again.values, result.values[:4], atol=1e-6)


def test_attribution_maps_and_plots(fitted):
    import matplotlib.pyplot as plt
    from matplotlib.figure import Figure

    _, images, craft, result = fitted
    maps = craft.attribution_maps(images[:2])
    assert maps.shape == (2, 3, 32, 32) and (maps >= 0).all()
    red = red_concept(result)
    img = images[0].numpy()
    # the red concept lights up where the red stripes are
    red_zone = img[0] > 0
    assert maps[0, red][red_zone].mean() > maps[0, red][~red_zone].mean()
    for fig in (plot_importance(result), plot_gallery(result, images.numpy(), top_k=4),
                plot_attribution_maps(result, img)):
        assert isinstance(fig, Figure)
        plt.close(fig)


def test_shapley_importance_efficiency(fitted):
    _, images, craft, _ = fitted
    res = craft.importance(images[:4], summary="shapley", target=0)
    assert res.values.shape == (4, 3)
    gap = res.extras["full_values"] - res.base_values
    np.testing.assert_allclose(res.values.sum(1), gap, atol=1e-5)
    occ = craft.importance(images[:4], summary="occlusion", target=0)
    assert occ.values.shape == (4, 3)
    keep = craft.importance(images[:2], residual="keep", target=0)
    with torch.no_grad():
        f = craft.model(images[:2])[:, 0].double().numpy()
    np.testing.assert_allclose(keep.extras["full_values"], f, rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------- bad input


def test_bad_inputs(fitted):
    model, images, craft, _ = fitted
    with pytest.raises(InputError, match=r"expected images \(n, 3, 32, 32\)"):
        CRAFT(model, layer="features.3", n_concepts=2).fit(images.permute(0, 2, 3, 1))
    with pytest.raises(InputError, match=r"expected images \(n, 3, 32, 32\)"):
        craft.importance(images[:, :, :16])
    with pytest.raises(InputError, match="n_concepts=5 needs"):
        CRAFT(model, layer="features.3", n_concepts=5).fit(images[:2])
    with pytest.raises(InputError, match="patch_size 40 exceeds image size 32"):
        CRAFT(model, layer="features.3", n_concepts=2, patch_size=40).fit(images[:2])
    with pytest.raises(InputError, match="power of two"):
        CRAFT(model, layer="features.3", nb_design=48).fit(images[:2])
    with pytest.raises(TargetError, match="target 7 out of range for 2 outputs"):
        craft.importance(images[:2], target=7)
    with pytest.raises(InputError, match="'features.0' are negative.*e.g. 'features.1'"):
        CRAFT(model, layer="features.0", n_concepts=2).fit(images[:2])
    with pytest.raises(InputError, match="g= and h="):
        CRAFT(n_concepts=2).fit(images[:2])
    with pytest.raises(XaiError, match="not fitted"):
        CRAFT(model, layer="features.3").importance(images)
