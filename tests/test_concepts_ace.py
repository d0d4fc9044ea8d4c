"""ACE and TCAV: sign checks with known answers, an end-to-end run on a tiny
hand-built CNN, save/load, plots, model hygiene (hooks, training flags) and bad input."""

from __future__ import annotations

import warnings
from collections import OrderedDict

import matplotlib
import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("skimage")
pytest.importorskip("sklearn")
from torch import nn

from xai.concepts.ace import ACE, plot_gallery, plot_importance
from xai.concepts.tcav import (
    layer_activations,
    layer_capture,
    layer_gradients,
    null_distribution_test,
    t_test,
    tcav,
    train_cav,
)
from xai.errors import InputError, TargetError, XaiError
from xai.explanation import Explanation

matplotlib.use("Agg")


# ----------------------------------------------------------------- TCAV with known answers

D = 8


def _linear_model(w: np.ndarray) -> nn.Module:
    """h(a) = [w·a, −w·a]; the layer 'act' is the identity, so activations = inputs."""
    fc = nn.Linear(D, 2, bias=False)
    with torch.no_grad():
        fc.weight.copy_(torch.tensor(np.stack([w, -w]), dtype=torch.float32))
    return nn.Sequential(OrderedDict(act=nn.Identity(), fc=fc))


@pytest.fixture(scope="module")
def linear_setup():
    rng = np.random.default_rng(0)
    w = rng.normal(size=D)
    w /= np.linalg.norm(w)
    model = _linear_model(w)
    x_test = rng.normal(size=(30, D)).astype(np.float32)
    acts, grads = layer_gradients(model, "act", x_test, target=0)
    randoms = [rng.normal(size=(200, D)) for _ in range(20)]
    null = rng.normal(size=(200, D))
    return w, model, x_test, acts, grads, randoms, null, rng


def test_gradients_of_linear_h_are_w(linear_setup):
    w, _, x_test, acts, grads, *_ = linear_setup
    np.testing.assert_allclose(acts, x_test, atol=1e-6)
    np.testing.assert_allclose(grads, np.broadcast_to(w, grads.shape), atol=1e-6)


def test_cav_along_w_and_tcav_signs(linear_setup):
    w, _, _, _, grads, randoms, null, rng = linear_setup
    plus = rng.normal(size=(200, D)) + 3 * w
    minus = rng.normal(size=(200, D)) - 3 * w
    cav = train_cav(plus, randoms[0], seed=0)
    assert np.isclose(np.linalg.norm(cav.vector), 1.0)
    assert cav.vector @ w > 0.9
    assert cav.accuracy > 0.9
    cav_l = train_cav(plus, randoms[0], classifier="logistic", seed=0)
    assert cav_l.vector @ w > 0.9
    assert train_cav(minus, randoms[0], seed=0).vector @ w < -0.9

    concept_random = rng.normal(size=(200, D))
    res = tcav(grads, [plus, minus, concept_random], randoms, null, seed=0)
    assert res.scores.shape == (3, 20) and res.null_scores.shape == (20,)
    np.testing.assert_array_equal(res.scores[0], 1.0)
    np.testing.assert_array_equal(res.scores[1], 0.0)
    assert res.direction[0] == 1 and res.direction[1] == -1
    # with a linear h every gradient is w, so each random-vs-random null score is 0 or 1 and
    # the null mean sits anywhere in [0, 1] (0.7 here): the shifted concepts are clearly apart
    # from it (p < 0.05; the −w one p < 0.01), the random concept is not
    assert res.p_values[0] < 0.05 and res.p_values[1] < 0.01 and res.significant[1]
    # a random concept is not different from the random-vs-random null (fixed seeds)
    assert res.p_values[2] > 0.05 and not res.significant[2]
    # per-input scores average to the TCAV means
    np.testing.assert_allclose(res.per_input.mean(axis=0), res.mean)
    assert res.cavs.shape == (3, 20, D)
    # welch and bonferroni variants run and keep the clear signs significant
    res_w = tcav(grads, [plus, minus], randoms, null, test="welch", correction="bonferroni")
    assert res_w.p_values[1] <= 0.01 and res_w.significant[1]


def test_tcav_null_defaults_and_min_accuracy(linear_setup):
    w, _, _, _, grads, randoms, _, rng = linear_setup
    plus = rng.normal(size=(200, D)) + 3 * w
    res = tcav(grads, [plus], randoms[:4], None, min_cav_accuracy=0.75)
    assert res.null_scores.shape == (4,)
    assert np.all(res.scores[0] == 1.0)
    # random-vs-random CAVs are near chance, so most are discarded (NaN)
    assert np.isnan(res.null_scores).sum() >= 1 or np.all(res.null_accuracies >= 0.75)


def test_null_distribution_test_holds_its_level_where_the_paired_test_does_not():
    """A random concept set is one fixed sample, so its scores over the random counterparts
    share its chance direction; the paired t-test (ACE's) treats them as independent and
    rejects a random concept far above alpha (observed 0.20 at alpha 0.05 on these 30 seeds),
    the null-distribution test compares the concept's mean with random sets scored as
    concepts the same way and holds the level (observed 0.03), while still finding concepts
    shifted along ±w (observed power 0.80 / 0.83)."""
    n, alpha = 30, 0.05
    false_pos, plus_found, minus_found = 0, 0, 0
    for s in range(n):
        rng = np.random.default_rng(100 + s)
        w = rng.normal(size=D)
        w /= np.linalg.norm(w)
        grads = w + 0.8 * rng.normal(size=(30, D))  # gradients vary around w
        randoms = [rng.normal(size=(50, D)) for _ in range(6)]
        null = rng.normal(size=(50, D))
        concepts = [rng.normal(size=(50, D)), rng.normal(size=(50, D)) + 3 * w,
                    rng.normal(size=(50, D)) - 3 * w]
        res = tcav(grads, concepts, randoms, null, seed=s, test="null-distribution",
                   alpha=alpha)
        assert res.null_concept_means.shape == (7,)
        false_pos += bool(res.significant[0])
        plus_found += bool(res.significant[1] and res.direction[1] == 1)
        minus_found += bool(res.significant[2] and res.direction[2] == -1)
    assert false_pos / n <= 0.1, false_pos
    assert plus_found / n >= 0.6 and minus_found / n >= 0.6, (plus_found, minus_found)


def test_null_distribution_test_values():
    from scipy import stats

    m0 = np.array([0.2, 0.4, 0.5, 0.6, 0.8])
    t = (0.9 - m0.mean()) / (m0.std(ddof=1) * np.sqrt(1 + 1 / 5))
    assert np.isclose(null_distribution_test(0.9, m0), 2 * stats.t.sf(t, 4))
    assert null_distribution_test(0.5, np.full(4, 0.5)) == 1.0
    assert null_distribution_test(0.7, np.full(4, 0.5)) == 0.0
    assert np.isnan(null_distribution_test(0.7, np.array([0.5, np.nan])))


def test_t_test_degenerate_cases():
    assert t_test(np.ones(5), np.ones(5)) == 1.0
    assert t_test(np.ones(5), np.zeros(5)) == 0.0
    assert t_test(np.ones(5), np.zeros(5), test="welch") == 0.0
    assert np.isnan(t_test(np.ones(1), np.zeros(1)))
    with pytest.raises(InputError, match="unknown test"):
        t_test(np.ones(3), np.ones(3), test="z")


def test_tcav_bad_input(linear_setup):
    _, _, _, _, grads, randoms, null, _ = linear_setup
    with pytest.raises(InputError, match="n_random ≥ 2"):
        tcav(grads, [randoms[0]], randoms[:1], null)
    with pytest.raises(InputError, match="dimension"):
        tcav(grads, [np.zeros((5, D + 1))], randoms, null)
    with pytest.raises(InputError, match="classifier"):
        tcav(grads, [randoms[0]], randoms, null, classifier="svm")


# --------------------------------------------------------------- hooks and model hygiene


def _hooks(model: nn.Module) -> int:
    return sum(len(m._forward_hooks) for m in model.modules())


def test_capture_restores_flags_and_hooks_on_error(linear_setup):
    model = nn.Sequential(OrderedDict(a=nn.Linear(3, 3), drop=nn.Dropout(0.5),
                                      b=nn.Linear(3, 2)))
    model.train()
    model.b.eval()  # a mixed state must come back exactly
    before = [m.training for m in model.modules()]
    with pytest.raises(RuntimeError, match="boom"), layer_capture(model, "drop") as store:
        assert not any(m.training for m in model.modules())
        model(torch.zeros(2, 3))
        assert store["output"].shape == (2, 3)
        raise RuntimeError("boom")
    assert [m.training for m in model.modules()] == before
    assert _hooks(model) == 0
    a = layer_activations(model, "a", np.zeros((4, 3), np.float32))
    assert a.shape == (4, 3)
    assert [m.training for m in model.modules()] == before and _hooks(model) == 0


def test_unknown_layer_lists_names():
    model = nn.Sequential(OrderedDict(conv=nn.Conv2d(3, 2, 1), relu=nn.ReLU()))
    with pytest.raises(InputError, match=r"layer 'nope' not found; available: conv, relu"), \
            layer_capture(model, "nope"):
        pass


def test_gradients_with_inplace_relu_after_the_layer():
    model = nn.Sequential(OrderedDict(a=nn.Linear(3, 3), relu=nn.ReLU(inplace=True),
                                      b=nn.Linear(3, 2)))
    for p in model.parameters():
        p.requires_grad_(False)  # frozen parameters: gradients w.r.t. activations still exist
    x = np.random.default_rng(0).normal(size=(5, 3)).astype(np.float32)
    acts, grads = layer_gradients(model, "a", x, target=1)
    with torch.no_grad():
        a = model.a(torch.tensor(x))
    expected = (a > 0).float() * model.b.weight[1]
    np.testing.assert_allclose(acts, a.numpy(), atol=1e-6)
    np.testing.assert_allclose(grads, expected.numpy(), atol=1e-6)
    assert all(not p.requires_grad for p in model.parameters())


def test_no_gradient_at_layer_is_an_error():
    class Detached(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Linear(3, 3)
            self.b = nn.Linear(3, 2)

        def forward(self, x):
            return self.b(self.a(x).detach())

    with pytest.raises(XaiError, match="no gradient"):
        layer_gradients(Detached(), "a", np.zeros((2, 3), np.float32), target=0)


# ------------------------------------------------------------- ACE on a tiny hand-built CNN

S = 24  # image side
SQ = 8  # square side


def _tiny_cnn() -> nn.Module:
    """1x1 conv detectors: channel 0 = bright white, channel 1 = green; logit0 = 5·white − 5·green.

    The white square drives class 0; the green square is a distractor that lowers it.
    """
    conv = nn.Conv2d(3, 2, 1)
    with torch.no_grad():
        conv.weight.copy_(torch.tensor([[1.0, 1.0, 1.0], [-1.0, 2.0, -1.0]]).view(2, 3, 1, 1))
        conv.bias.copy_(torch.tensor([-2.4, -0.6]))
    fc = nn.Linear(2, 2)
    with torch.no_grad():
        fc.weight.copy_(torch.tensor([[5.0, -5.0], [-5.0, 5.0]]))
        fc.bias.zero_()
    return nn.Sequential(OrderedDict(conv=conv, relu=nn.ReLU(), drop=nn.Dropout(0.5),
                                     pool=nn.AdaptiveAvgPool2d(1), flat=nn.Flatten(), fc=fc))


def _square_image(rng, colours) -> tuple[np.ndarray, list[np.ndarray]]:
    img = rng.uniform(0.3, 0.55, size=(3, S, S))
    masks = []
    corners = [(0, 0), (0, S - SQ), (S - SQ, 0), (S - SQ, S - SQ)]
    for colour, k in zip(colours, rng.permutation(4)):
        y, x = corners[k]
        y += rng.integers(0, 3)
        x += rng.integers(0, 3)
        y, x = min(y, S - SQ), min(x, S - SQ)
        img[:, y:y + SQ, x:x + SQ] = np.asarray(colour)[:, None, None]
        m = np.zeros((S, S), bool)
        m[y:y + SQ, x:x + SQ] = True
        masks.append(m)
    return img.astype(np.float32), masks


WHITE, GREEN, BLUE = (1.0, 1.0, 1.0), (0.05, 0.95, 0.05), (0.1, 0.1, 0.9)


@pytest.fixture(scope="module")
def ace_fit():
    rng = np.random.default_rng(0)
    model = _tiny_cnn()
    model.train()
    data = [_square_image(rng, [WHITE, GREEN]) for _ in range(30)]
    images = np.stack([d[0] for d in data])
    white = [d[1][0] for d in data]
    green = [d[1][1] for d in data]
    test_images = np.stack([_square_image(rng, [WHITE, GREEN])[0] for _ in range(12)])
    random_images = np.stack([_square_image(rng, [BLUE])[0] for _ in range(60)])
    ace = ACE(model, "relu", n_clusters=6, resolutions=(6, 15), min_cluster_size=10,
              max_members=30, n_random=5, random_set_size=10, seed=0, n_thumbnails=5)
    flags = [m.training for m in model.modules()]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expl = ace.fit(images, target=0, random_images=random_images, test_images=test_images)
    return ace, expl, model, flags, images, white, green


def _overlap(ace, i, masks) -> float:
    """Mean fraction of concept i's member segments inside the given per-image masks."""
    mem = ace.members_[i]
    return float(np.mean([(ace.patch_masks_[p] & masks[ace.patch_images_[p]]).sum()
                          / ace.patch_masks_[p].sum() for p in mem]))


def test_ace_end_to_end(ace_fit):
    ace, expl, model, flags, _images, white, green = ace_fit
    assert isinstance(expl, Explanation) and expl.method == "ace"
    r = len(ace.concept_ids_)
    assert r >= 2
    assert expl.values.shape == (12, r)
    e = expl.extras
    assert e["tcav_scores"].shape == (r, 5) and e["tcav_null"].shape == (5,)
    assert e["p_values"].shape == e["significant"].shape == e["direction"].shape == (r,)
    assert e["cav_accuracies"].shape == (r, 5)
    assert np.all(e["cluster_sizes"] >= 10)
    np.testing.assert_allclose(expl.values.mean(axis=0), e["importance"])
    assert expl.options["layer"] == "relu" and expl.options["target"] == 0
    # the concept made of white-square segments beats the green distractor (generous:
    # the white concept is the one whose members lie most inside the white squares)
    w_i = int(np.argmax([_overlap(ace, i, white) for i in range(r)]))
    g_i = int(np.argmax([_overlap(ace, i, green) for i in range(r)]))
    assert w_i != g_i
    assert _overlap(ace, w_i, white) > 0.5 and _overlap(ace, g_i, green) > 0.5
    imp = e["importance"]
    assert imp[w_i] > imp[g_i] + 0.3
    assert imp[w_i] >= 0.8 and e["direction"][w_i] == 1
    # model hygiene: no hook left, training flags as before (the model was in train mode)
    assert [m.training for m in model.modules()] == flags
    assert _hooks(model) == 0


def test_ace_game_importance(ace_fit):
    """Game-based importance: Shapley values over the concepts present in each image;
    efficiency against the model itself (all present concepts' segments filled), absent concepts exactly 0, the
    white concept raises logit 0 and the green one lowers it (the model is 5·white − 5·green)."""
    ace, _expl, model, flags, images, white, green = ace_fit
    x = images[:6]
    res = ace.importance(x, "shapley")
    r = len(ace.concept_ids_)
    assert res.values.shape == (6, r)
    present = res.extras["present"]
    assert np.all(res.values[~present] == 0)
    seg = ace.concept_segmentation(x)
    assert seg.shape == (6, S, S) and seg.min() >= -1 and seg.max() < r
    filled = np.where((seg >= 0)[:, None], np.float32(117 / 255), x).astype(np.float32)
    model.eval()
    with torch.no_grad():
        f = model(torch.tensor(x))[:, 0].double().numpy()
        f0 = model(torch.tensor(filled))[:, 0].double().numpy()
    model.train()
    np.testing.assert_allclose(res.values.sum(1), f - f0, atol=1e-4)
    np.testing.assert_allclose(res.extras["importance"], res.values.mean(0))
    w_i = int(np.argmax([_overlap(ace, i, white) for i in range(r)]))
    g_i = int(np.argmax([_overlap(ace, i, green) for i in range(r)]))
    assert res.extras["importance"][w_i] > 0 > res.extras["importance"][g_i]
    # occlusion (ACE's concept-destroying step) routes through the same game
    occ = ace.importance(x, "occlusion")
    assert occ.values.shape == (6, r) and np.all(occ.values[~present] == 0)
    assert [m.training for m in model.modules()] == flags


def test_ace_attribution_maps(ace_fit):
    ace, _expl, _, _, images, white, _ = ace_fit
    maps = ace.attribution_maps(images[:3])
    r = len(ace.concept_ids_)
    assert maps.shape == (3, r, S, S) and maps.dtype == bool
    w_i = int(np.argmax([_overlap(ace, i, white) for i in range(r)]))
    # the white concept's map covers mostly the white square
    hit = [(maps[j, w_i] & white[j]).sum() / max(1, maps[j, w_i].sum()) for j in range(3)]
    assert np.mean(hit) > 0.5
    assert ace.attribution_maps(images[0]).shape == (1, r, S, S)


def test_ace_save_load_and_plots(ace_fit, tmp_path):
    import matplotlib.pyplot as plt
    from matplotlib.figure import Figure

    ace, expl, *_ = ace_fit
    path = expl.save(tmp_path / "ace")
    back = Explanation.load(path)
    np.testing.assert_array_equal(back.values, expl.values)
    assert back.options == expl.options and back.feature_names == expl.feature_names
    for k, v in expl.extras.items():
        np.testing.assert_array_equal(back.extras[k], v)
    for fig in (ace.plot_importance(), ace.plot_gallery(top_k=3), plot_importance(back),
                plot_gallery(back, top_k=2)):
        assert isinstance(fig, Figure)
        plt.close(fig)


def test_ace_determinism(ace_fit):
    ace, expl, _model, *_ = ace_fit
    rng = np.random.default_rng(0)
    data = [_square_image(rng, [WHITE, GREEN]) for _ in range(30)]
    images = np.stack([d[0] for d in data])
    test_images = np.stack([_square_image(rng, [WHITE, GREEN])[0] for _ in range(12)])
    random_images = np.stack([_square_image(rng, [BLUE])[0] for _ in range(60)])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        again = ace.fit(images, 0, random_images=random_images, test_images=test_images)
    np.testing.assert_array_equal(again.extras["tcav_scores"], expl.extras["tcav_scores"])


# ---------------------------------------------------------------------------- bad input


@pytest.fixture(scope="module")
def small_data():
    rng = np.random.default_rng(1)
    images = np.stack([_square_image(rng, [WHITE, GREEN])[0] for _ in range(12)])
    rand = np.stack([_square_image(rng, [BLUE])[0] for _ in range(30)])
    return images, rand


def _fit(small_data, model=None, images=None, rand=None, target=0, **kw):
    imgs, r = small_data
    opts = {"n_clusters": 3, "resolutions": (6,), "min_cluster_size": 2, "n_random": 2,
                "random_set_size": 5}
    opts.update(kw)
    ace = ACE(model if model is not None else _tiny_cnn(), opts.pop("layer", "relu"), **opts)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return ace.fit(imgs if images is None else images, target,
                       random_images=r if rand is None else rand,
                       test_images=imgs[:4])


def test_bad_inputs(small_data):
    images, rand = small_data
    with pytest.raises(InputError, match="layer 'relu9' not found; available: conv, relu"):
        _fit(small_data, layer="relu9")
    with pytest.raises(InputError, match=r"expected images \(n, C, H, W\)"):
        _fit(small_data, images=images[:, 0])
    with pytest.raises(InputError, match="channels last"):
        _fit(small_data, images=np.moveaxis(images, 1, -1))
    with pytest.raises(InputError, match="≥ 10 discovery images"):
        _fit(small_data, images=images[:6])
    with pytest.raises(InputError, match="patches for 500 clusters"):
        _fit(small_data, n_clusters=500)
    with pytest.raises(InputError, match="n_random ≥ 2"):
        _fit(small_data, n_random=1)
    with pytest.raises(InputError, match="cannot give"):
        _fit(small_data, random_set_size=100)
    with pytest.raises(InputError, match="like the discovery images"):
        _fit(small_data, rand=rand[:, :, :10, :10])
    with pytest.raises(InputError, match="random counterparts"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ACE(_tiny_cnn(), "relu").fit(images, 0)
    with pytest.raises(XaiError, match="no cluster passed the filters"):
        _fit(small_data, min_cluster_size=10_000)
    with pytest.raises(InputError, match="patch_mode"):
        _fit(small_data, patch_mode="crop")
    with pytest.raises(XaiError, match="not fitted"):
        ACE(_tiny_cnn(), "relu").plot_importance()


def test_bad_target_restores_model(small_data):
    model = _tiny_cnn()
    model.train()
    with pytest.raises(TargetError, match="target 7 out of range for 2 outputs"):
        _fit(small_data, model=model, target=7)
    assert all(m.training for m in model.modules()) and _hooks(model) == 0


def test_in_place_mode_runs(small_data):
    expl = _fit(small_data, patch_mode="in_place")
    assert expl.values.shape[0] == 4 and expl.options["patch_mode"] == "in_place"
