"""The synthetic concept benchmark: generator, model, model truth, scores."""

from __future__ import annotations

import numpy as np
import pytest

from xai import registry
from xai.concepts import primitives as P
from xai.concepts import scoring as S

# ---------------------------------------------------------------- generator


@pytest.fixture(scope="module")
def data():
    return P.make(0, n=200)


def test_registered():
    obj = registry.get("dataset", "concept-primitives")
    assert obj is P.ConceptPrimitives
    assert registry.get("dataset", "concept_primitives") is obj


def test_shapes_range_and_types(data):
    assert data.X.shape == (200, 3, 48, 48) and data.X.dtype == np.float32
    assert data.X.min() >= 0 and data.X.max() <= 1
    assert data.y.shape == (200, 3)
    lm = data.extras["label_map"]
    assert lm.shape == (200, 48, 48)
    assert data.kind == "per_sample" and data.ground_truth.shape == (200, 48, 48)
    np.testing.assert_array_equal(data.ground_truth, lm < 3)
    parts = np.concatenate([data.train, data.val, data.test])
    np.testing.assert_array_equal(np.sort(parts), np.arange(200))
    assert data.extras["label_names"] == [*P.PRIMITIVES, "background"]
    assert data.extras["causal"] == ["stripes", "checker", "dots"]


def test_determinism():
    a, b, c = P.make(3, n=30), P.make(3, n=30), P.make(4, n=30)
    np.testing.assert_array_equal(a.X, b.X)
    np.testing.assert_array_equal(a.y, b.y)
    np.testing.assert_array_equal(a.extras["label_map"], b.extras["label_map"])
    assert a.extras["scenes"] == b.extras["scenes"]
    assert not np.array_equal(a.X, c.X)


def test_render_reproduces_images(data):
    for i in range(20):
        np.testing.assert_array_equal(P.render(data.extras["scenes"][i]), data.X[i])


def test_label_map_matches_primitives(data):
    for i, scene in enumerate(data.extras["scenes"][:50]):
        lm = data.extras["label_map"][i]
        names = {p["name"] for p in scene["primitives"]}
        for prim in scene["primitives"]:
            k = P.PRIMITIVES.index(prim["name"])
            ci, cj = prim["cell"]
            cell = lm[16 * ci:16 * ci + 16, 16 * cj:16 * cj + 16]
            assert (cell == k).sum() == 14 * 14  # whole footprint inside its own cell
            assert (lm == k).sum() == 14 * 14
            ink = P.ink_mask(scene, prim["name"])
            assert ink.any() and (lm[ink] == k).all()
            # ink is bright: every channel clearly above the background (colours U[0.6, 1],
            # background U[0, 0.25])
            bg = lm == P.BACKGROUND
            assert (data.X[i][:, ink].mean(1) > data.X[i][:, bg].mean(1) + 0.3).all()
        for k, name in enumerate(P.PRIMITIVES):
            if name not in names:
                assert not (lm == k).any()
        cells = [tuple(p["cell"]) for p in scene["primitives"]]
        assert len(cells) == len(set(cells))


def test_render_drop_is_exact_counterfactual(data):
    checked = 0
    for i, scene in enumerate(data.extras["scenes"][:40]):
        lm = data.extras["label_map"][i]
        for prim in scene["primitives"]:
            name = prim["name"]
            k = P.PRIMITIVES.index(name)
            cf = P.render(scene, drop=name)
            diff = (cf != data.X[i]).any(0)
            assert diff.any() and not diff[lm != k].any()  # changes only p's pixels
            # equals re-rendering the scene with the primitive absent
            absent = {**scene, "primitives": [q for q in scene["primitives"] if q is not prim]}
            np.testing.assert_array_equal(cf, P.render(absent))
            # the footprint returns to the background colour (+ the same noise)
            ref = P.render({**scene, "primitives": []})
            np.testing.assert_array_equal(cf[:, lm == k], ref[:, lm == k])
            checked += 1
    assert checked > 40
    with pytest.raises(ValueError, match="unknown primitive"):
        P.render(data.extras["scenes"][0], drop="square")


def test_targets_and_balance():
    d = P.make(1, n=1000)
    for scene, y in zip(d.extras["scenes"], d.y, strict=True):
        names = {p["name"] for p in scene["primitives"]}
        assert list(y) == [int(c in names) for c in P.CAUSAL]
    counts = np.array([[any(p["name"] == n for p in s["primitives"]) for n in P.PRIMITIVES]
                       for s in d.extras["scenes"]])
    assert np.all(np.abs(counts.mean(0) - 0.5) < 0.06)  # 1000 draws: SD 0.016
    assert np.all(np.abs(d.y.mean(0) - 0.5) < 0.06)


def test_bad_params():
    with pytest.raises(ValueError, match="p_present"):
        P.make(0, n=20, p_present=1.5)
    with pytest.raises(Exception, match="colour"):
        P.make(0, colour=1)


# ---------------------------------------------------------------- model


def test_architecture_split():
    import torch

    model = P.build_primitives_model()
    names = dict(model.named_modules())
    assert P.SPLIT_LAYER == "g" and isinstance(names["g.7"], torch.nn.ReLU)
    x = torch.rand(2, 3, 48, 48)
    a = model.g(x)
    assert a.shape == (2, 32, 12, 12) and (a >= 0).all()
    torch.testing.assert_close(model.h(a), model(x))
    assert model(x).shape == (2, 3)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    cache = tmp_path_factory.mktemp("prim-cache")
    d = P.make(0, n=TINY_N)
    model, info = P.train_primitives_model(d, seed=0, cache_dir=cache, **TINY)
    return d, model, info, cache


# Tiny run: 560 training images, 16 epochs of batches of 32 (small enough for the unit tests).
# Observed (data seed 0, training seed 0): test accuracy (stripes, checker, dots) =
# (1.00, 1.00, 0.92), validation (0.99, 1.00, 0.97); intervention truth (rows = outputs,
# columns = stripes checker dots diag blob ring):
#   stripes  34.9  -0.1   7.5  -1.7  -0.6   1.0
#   checker   2.2  22.5  -0.3   2.1  -0.8  -0.8
#   dots     -0.4   0.6   5.5   0.4   0.4   1.6
# At this tiny size training seed 1 does not learn `checker` within 16 epochs (test 0.73):
# the fixed seed matters; the default size (3000 images, 8 epochs) is robust.
TINY_N = 800
TINY = {"epochs": 16, "batch_size": 32, "lr": 3e-3, "num_threads": 2}


def test_tiny_training_above_chance(tiny):
    info = tiny[2]
    assert not info["cached"]
    # observed min 0.92 (test) / 0.97 (val); chance ≈ 0.5
    assert min(info["acc_test"]) > 0.8, info["acc_test"]
    assert min(info["acc_val"]) > 0.8, info["acc_val"]


def test_intervention_truth(tiny):
    d, model, _, _ = tiny
    truth = P.intervention_truth(model, d)
    assert truth.shape == (3, 6)
    for j in range(3):  # each output's causal primitive has the largest drop
        assert int(np.argmax(truth[j])) == j, np.round(truth, 2)
    assert P.model_valid(truth)  # observed smallest ratio 3.4 (dots vs ring), needs 2
    bad = truth.copy()
    bad[0, 3] = 2 * bad[0, 0]
    assert not P.model_valid(bad)


def test_cache_reuse_and_key(tiny):
    d, model, info, cache = tiny
    import torch

    again, info2 = P.train_primitives_model(d, seed=0, cache_dir=cache, **TINY)
    assert info2["cached"] and info2["key"] == info["key"]
    for a, b in zip(model.state_dict().values(), again.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b)
    assert info2["acc_test"] == info["acc_test"]
    opts = {"epochs": 16}
    k0, _ = P.model_cache_key(d, 0, opts)
    assert P.model_cache_key(d, 0, opts)[0] == k0
    assert P.model_cache_key(d, 1, opts)[0] != k0  # training seed
    assert P.model_cache_key(d, 0, {"epochs": 17})[0] != k0  # options
    other = P.make(1, n=30)
    same_size = P.make(1, n=TINY_N)
    assert P.model_cache_key(other, 0, opts)[0] != k0  # size
    assert P.model_cache_key(same_size, 0, opts)[0] != k0  # data seed
    d.extras["generator_version"] = P.GENERATOR_VERSION + 1
    try:
        assert P.model_cache_key(d, 0, opts)[0] != k0  # generator version
    finally:
        d.extras["generator_version"] = P.GENERATOR_VERSION
    # a different training option misses the cache and trains anew (1 epoch: quick)
    _, info3 = P.train_primitives_model(d, seed=0, cache_dir=cache, **{**TINY, "epochs": 1})
    assert not info3["cached"] and info3["key"] != info["key"]
    assert len(list(cache.glob("*.pt"))) == 2


# ---------------------------------------------------------------- scoring


def test_crop_label():
    crop = np.array([[6, 6, 0], [0, 0, 6], [1, 1, 6]])  # 6: four, 0: three, 1: two
    assert S.crop_label(crop) == 6
    assert S.crop_label(np.array([[2, 3], [3, 2]])) == 2  # tie → smallest
    maps = np.full((2, 4, 4), 6)
    maps[1, :2, :2] = 0
    boxes = np.array([[0, 0, 2, 2], [0, 0, 2, 2], [0, 0, 4, 4]])
    np.testing.assert_array_equal(S.crop_labels(maps, [0, 1, 1], boxes), [6, 0, 6])


def test_purity_and_coverage():
    U = np.array([[5., 0.], [4., 1.], [3., 2.], [0., 3.], [1., 4.]])
    labels = np.array([0, 0, 1, 2, 2])
    top = S.top_k_labels(U, labels, k=3)
    np.testing.assert_array_equal(top, [[0, 0, 1], [2, 2, 1]])
    assert S.concept_purity(top[0]) == (pytest.approx(2 / 3), 0)
    p, lab = S.purities(top)
    np.testing.assert_allclose(p, [2 / 3, 2 / 3])
    np.testing.assert_array_equal(lab, [0, 2])
    assert S.covered([0.9, 0.5, 0.7], [0, 1, 6]) == [0, 6]  # 0.5 is not > 0.5
    assert S.coverage([0.9, 0.5, 0.7], [0, 1, 6], 0.5, targets=(0, 1, 2)) == pytest.approx(1 / 3)
    assert S.coverage([0.9, 0.8], [0, 1], 0.85) == pytest.approx(1 / 3)


def test_mass_share():
    U = np.array([[1., 0.], [3., 0.], [4., 0.]])
    m = S.mass_share(U, [0, 1, 1], 3)
    np.testing.assert_allclose(m[0], [1 / 8, 7 / 8, 0])
    assert np.isnan(m[1]).all()
    with pytest.raises(ValueError):
        S.mass_share(U, [0, 1, 3], 3)


def test_map_alignment_iou():
    cmap = np.zeros((2, 4, 4))
    cmap[0, 0, :2] = [2, 1]  # top 2 of 16 values at quantile 0.875
    mask = np.zeros((2, 4, 4), bool)
    mask[0, 0, :3] = True  # IoU = 2 / 3
    # image 1 has no primitive: skipped
    assert S.map_alignment_iou(cmap, mask, quantile=0.875) == pytest.approx(2 / 3)
    assert np.isnan(S.map_alignment_iou(cmap[1:], mask[1:]))
    # quantile 0.95 of (0 ×14, 1, 2) = 1.25: only the 2 is kept → IoU 1 / 3
    assert S.map_alignment_iou(cmap[0], mask[0], quantile=0.95) == pytest.approx(1 / 3)


def test_ace_cluster_purity():
    lm = np.array([[0, 0, 6], [6, 6, 6]])
    seg = np.array([[1, 1, 1], [0, 0, 0]], bool)
    assert S.segment_label(lm, seg) == 0  # 0: two, 6: one
    assert S.ace_cluster_purity([3, 3, 4, 3]) == (0.75, 3)


def test_ranking_scores():
    imp = np.array([0.6, 0.3, 0.1])
    mass = np.array([[0.9, 0., 0., 0.1], [0., 0., 0.5, 0.5], [np.nan] * 4])
    pi = S.primitive_importance(imp, mass)
    np.testing.assert_allclose(pi, [0.54, 0, 0.15, 0.21])  # 0.6·row0 + 0.3·row1
    assert S.top1_label(imp, [0, 2, 1]) == 0
    assert S.causal_margin(pi, 0, [2]) == pytest.approx((0.54 - 0.15) / 0.9)
    assert S.primitive_ratio(pi, 0, [2]) == pytest.approx(3.6)
    assert S.primitive_ratio(pi, 0, [1]) == np.inf
    assert S.background_share(pi, 3) == pytest.approx(0.21 / 0.9)
    assert S.specificity(pi, 0, [1, 2]) == pytest.approx(1 - 0.15 / 0.9)
    assert S.spearman([1, 2, 3], [10, 20, 30]) == pytest.approx(1.0)
    assert S.spearman([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    # ties averaged: ranks (1.5, 1.5, 3) vs (1, 2, 3) → r = 1.5 / sqrt(1.5 · 2)
    assert S.spearman([1, 1, 2], [1, 2, 3]) == pytest.approx(1.5 / np.sqrt(3.0))
    rep = S.ranking_report(imp, mass, [0, 2, 1], causal=0, distractors=[2], background=3,
                           other_causal=[1], truth=[3.0, 0.0, 0.5, 1.0], margin=0.2)
    assert rep["top1_ok"] and rep["margin_ok"]
    assert rep["spearman"] == pytest.approx(1.0)

