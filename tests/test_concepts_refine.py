"""CRAFT recursion: ``refine`` splits a concept into sub-concepts at an earlier layer; its
results, and bad input."""

from __future__ import annotations

import warnings
from collections import OrderedDict

import numpy as np
import pytest
import torch
from torch import nn

from xai.concepts import CRAFT, split_model
from xai.concepts.craft import ConceptExplanation
from xai.errors import InputError, XaiError

RED, GREEN, BLUE = 0, 1, 2

# ---------------------------------------------------------------- fixtures


def union_cnn() -> nn.Module:
    """features.0/1: 1x1 colour detectors (red, green, blue) → ReLU (3 channels);
    features.2/3: 1x1 conv merging red and green into one "warm" channel, blue kept → ReLU
    (2 channels); head: global average pool → linear (logit 0 = warm, logit 1 = blue).

    At ``features.3`` red and green are indistinguishable (one parent concept, their union);
    at ``features.1`` they are separate channels."""
    conv1 = nn.Conv2d(3, 3, 1)
    conv2 = nn.Conv2d(3, 2, 1)
    fc = nn.Linear(2, 2)
    with torch.no_grad():
        conv1.weight.copy_(torch.tensor([[1., -1., -1.], [-1., 1., -1.],
                                         [-1., -1., 1.]])[:, :, None, None])
        conv1.bias.zero_()
        conv2.weight.copy_(torch.tensor([[1., 1., 0.], [0., 0., 1.]])[:, :, None, None])
        conv2.bias.zero_()
        fc.weight.copy_(torch.tensor([[3., 0.], [0., 1.]]))
        fc.bias.zero_()
    features = nn.Sequential(conv1, nn.ReLU(), conv2, nn.ReLU())
    return nn.Sequential(OrderedDict(features=features, pool=nn.AdaptiveAvgPool2d(1),
                                     flatten=nn.Flatten(), fc=fc))


def quadrant_images(n: int = 16, size: int = 32, seed: int = 0) -> torch.Tensor:
    """Each image: its four quadrants hold a red, a green, a blue and a black block (random
    order); the colours share one random intensity per image."""
    rng = np.random.default_rng(seed)
    imgs = np.zeros((n, 3, size, size), dtype=np.float32)
    h = size // 2
    corners = [(0, 0), (0, h), (h, 0), (h, h)]
    for i in range(n):
        s = rng.uniform(0.5, 1.0)
        for colour, q in zip((RED, GREEN, BLUE, None), rng.permutation(4), strict=True):
            if colour is not None:
                y, x = corners[q]
                imgs[i, colour, y:y + h, x:x + h] = s
    return torch.as_tensor(imgs)


def colour_share(images: torch.Tensor, box) -> np.ndarray:
    """Fraction of a crop's pixels that are red, green, blue."""
    i, y0, x0, y1, x1 = (int(v) for v in box)
    patch = images[i, :, y0:y1, x0:x1].numpy()
    return (patch > 0).reshape(3, -1).mean(1)


@pytest.fixture(scope="module")
def parent():
    model = union_cnn()
    images = quadrant_images()
    craft = CRAFT(model, layer="features.3", n_concepts=2, seed=0)
    result = craft.fit(images, target=0)
    W = result.bank  # (2 channels, 2 concepts)
    warm = int(np.argmax(W[0] / np.linalg.norm(W, axis=0)))
    return model, images, craft, result, warm


@pytest.fixture(scope="module")
def child(parent):
    _, _, _, result, warm = parent
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # enough crops: no instability warning
        return result.refine(warm, layer="features.1", n_concepts=2)


# ---------------------------------------------------------------- recursion


def test_parent_concept_is_the_union(parent):
    _, _, _, result, warm = parent
    W = result.bank
    cos = W[:, warm] / np.linalg.norm(W[:, warm])
    assert cos[0] > 0.99  # the warm channel carries both red and green


def test_refine_splits_union_into_sub_patterns(parent, child):
    _, images, _, result, warm = parent
    assert isinstance(child, ConceptExplanation)
    # bank at the earlier layer: its 3 channels, 2 sub-concepts
    assert child.bank.shape == (3, 2)
    assert child.importance.shape == (2,) and np.isfinite(child.importance).all()
    assert np.isfinite(child.values).all()
    assert (child.importance > 0).all()  # both sub-patterns feed logit 0
    assert child.options["parent_concept"] == warm and child.parent_concept == warm
    assert child.options["parent_layer"] == "features.3" and child.parent_layer == "features.3"
    assert child.layer == "features.1" and child.target == 0
    assert child.options["residual"] == "keep"
    # the selected parent crops belong to the parent concept and contain both sub-patterns
    sel = child.extras["parent_crops"]
    assert (result.crop_coefficients[sel].argmax(1) == warm).all()
    np.testing.assert_array_equal(child.crop_boxes, result.crop_boxes[sel])
    shares = np.array([colour_share(images, b) for b in child.crop_boxes])
    assert (shares[:, RED] > 0.5).sum() >= 5 and (shares[:, GREEN] > 0.5).sum() >= 5
    # each sub-concept's top crops are dominated by one sub-pattern, a different one each
    dominant = []
    for c in range(2):
        proto = child.prototypes[c]
        proto = proto[proto >= 0]
        assert len(proto) >= 5
        sh = np.array([colour_share(images, child.crop_boxes[j]) for j in proto])
        red, green = sh[:, RED].mean(), sh[:, GREEN].mean()
        assert max(red, green) > 0.9 and min(red, green) < 0.1
        dominant.append(RED if red > green else GREEN)
    assert sorted(dominant) == [RED, GREEN]
    # the sub-bank separates the channels too
    Wn = child.bank / np.linalg.norm(child.bank, axis=0)
    assert sorted(np.argmax(Wn, axis=0).tolist()) == [RED, GREEN]
    # importance on the images where the parent concept is strong (above its median)
    assert 0 < len(child.extras["refined_images"]) <= len(images)
    assert child.values.shape == (len(child.extras["refined_images"]), 2)


def test_refine_keep_residual_reproduces_model(parent, child):
    model, images, _, _, _ = parent
    kept = torch.as_tensor(child.extras["refined_images"])
    with torch.no_grad():
        f = model(images[kept])[:, 0].double().numpy()
    np.testing.assert_allclose(child.extras["full_values"], f, rtol=1e-5, atol=1e-5)


def test_refine_is_deterministic_and_accepts_a_split(parent, child):
    model, _, craft, _, warm = parent
    again = craft.refine(warm, "features.1", n_concepts=2)
    np.testing.assert_array_equal(again.bank, child.bank)
    np.testing.assert_array_equal(again.values, child.values)
    g, h = split_model(model, "features.1")
    by_hand = craft.refine(warm, (g, h), n_concepts=2)
    np.testing.assert_allclose(by_hand.bank, child.bank)
    np.testing.assert_allclose(by_hand.values, child.values)
    assert by_hand.layer is None and by_hand.parent_layer == "features.3"


def test_refine_save_load_roundtrip(parent, child, tmp_path):
    model, images, _, result, warm = parent
    back = ConceptExplanation.load(child.save(tmp_path / "child"))
    assert back.options == child.options and back.names == child.names
    np.testing.assert_array_equal(back.values, child.values)
    np.testing.assert_array_equal(back.importance, child.importance)
    np.testing.assert_array_equal(back.bank, child.bank)
    np.testing.assert_array_equal(back.extras["parent_crops"], child.extras["parent_crops"])
    assert back.parent_concept == warm and back.parent_layer == "features.3"
    # a loaded parent refines again once given its split and images
    loaded = ConceptExplanation.load(result.save(tmp_path / "parent"))
    with pytest.raises(XaiError, match="saved without its model"):
        loaded.refine(warm, "features.1")
    CRAFT(model, layer="features.3").from_result(loaded)
    with pytest.raises(XaiError, match="images="):
        loaded.refine(warm, "features.1", n_concepts=2)
    with pytest.raises(InputError, match="crops come from 16 images but 3 were given"):
        loaded.refine(warm, "features.1", n_concepts=2, images=images[:3])
    redo = loaded.refine(warm, "features.1", n_concepts=2, images=images)
    np.testing.assert_allclose(redo.bank, child.bank)
    np.testing.assert_allclose(redo.values, child.values, atol=1e-8)


# ---------------------------------------------------------------- bad input


def test_refine_bad_inputs(parent, child):
    model, _, craft, result, warm = parent
    with pytest.raises(XaiError, match="not fitted"):
        CRAFT(model, layer="features.3").refine(0, "features.1")
    with pytest.raises(InputError, match=r"unknown concept 5; the fitted bank has concepts 0\.\.1"):
        result.refine(5, "features.1")
    with pytest.raises(InputError, match="unknown concept -1"):
        craft.refine(-1, "features.1")
    with pytest.raises(InputError, match="'features.3' is not before 'features.3'"):
        result.refine(warm, "features.3")
    with pytest.raises(InputError, match="'fc' is not before 'features.3'"):
        result.refine(warm, "fc")
    with pytest.raises(InputError, match="'features' is not before 'features.3'"):
        result.refine(warm, "features")  # the container's output is features.3's output
    with pytest.raises(InputError, match="'features.7' not found"):
        result.refine(warm, "features.7")
    with pytest.raises(InputError, match="earlier layer"):
        result.refine(warm)
    # the refined child sits at features.1: refining it at its parent's layer is not earlier
    with pytest.raises(InputError, match="'features.3' is not before 'features.1'"):
        child.refine(0, "features.3")
    with pytest.raises(InputError, match=r"only \d+ crops select concept"):
        result.refine(warm, "features.1", n_concepts=20, quantile=1.0)
    with pytest.raises(InputError, match="are negative"):
        result.refine(warm, "features.0", n_concepts=2)
    with pytest.raises(InputError, match="quantile must be in"):
        result.refine(warm, "features.1", quantile=1.5)
