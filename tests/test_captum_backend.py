"""The captum backend (plugins/xai_captum): closed forms, completeness, agreement with captum
called directly, Grad-CAM, feature aggregation, model discipline and registration."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import xai
from xai.models import call_padding

captum_attr = pytest.importorskip("captum.attr")

NAMES = ["integrated-gradients", "saliency", "input-x-gradient", "smoothgrad", "gradient-shap",
         "deeplift", "gradcam", "occlusion"]


def _mlp(p=5, k=3, seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(p, 8), nn.Tanh(), nn.Linear(8, k)).double()


def _relu_mlp(p=5, k=3, seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(p, 8), nn.ReLU(), nn.Linear(8, k)).double()


def _cnn(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(),
        nn.Conv2d(4, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(4 * 4 * 4, 3)).double()


def _data(n=6, p=5, seed=1):
    return np.random.default_rng(seed).normal(size=(n, p))


def _images(n=3, seed=2):
    return np.random.default_rng(seed).normal(size=(n, 1, 8, 8))


# -- registration ---------------------------------------------------------------------------

@pytest.mark.parametrize("name", NAMES)
def test_listed(name):
    assert f"captum.{name}" in xai.registry.names("explainer")
    assert xai.registry.get("explainer", f"captum.{name.replace('-', '_')}") is \
        xai.registry.get("explainer", f"captum.{name}")


def test_import_xai_does_not_import_captum():
    import subprocess
    import sys

    code = ("import sys, xai; xai.registry.names('explainer'); "
            "assert 'captum' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)


# -- integrated gradients ---------------------------------------------------------------------

def test_ig_linear_closed_form():
    rng = np.random.default_rng(0)
    p, k, n = 4, 3, 5
    W, b = rng.normal(size=(p, k)), rng.normal(size=k)
    lin = nn.Linear(p, k).double()
    with torch.no_grad():
        lin.weight.copy_(torch.tensor(W.T))
        lin.bias.copy_(torch.tensor(b))
    X = rng.normal(size=(n, p))
    base = rng.normal(size=(n, p))
    targets = np.array([0, 2, 1, 1, 0])
    e = xai.explain(lin, X, method="captum.integrated_gradients", baselines=base,
                    target=targets, n_steps=20)
    expected = W[:, targets].T * (X - base)
    np.testing.assert_allclose(e.values, expected, atol=1e-8, rtol=0)
    np.testing.assert_allclose(e.base_values, (base @ W + b)[np.arange(n), targets],
                               atol=1e-10)
    assert np.abs(e.extras["convergence_delta"]).max() < 1e-8


def test_ig_completeness_and_delta():
    model, X = _mlp(), _data()
    baseline = np.full(X.shape[1], 0.3)
    deltas = []
    for n_steps in (2, 8, 64):
        e = xai.explain(model, X, method="captum.integrated-gradients", baselines=baseline,
                        n_steps=n_steps)
        with torch.no_grad():
            fx = model(torch.tensor(X)).numpy()
            fb = model(torch.tensor(baseline)[None]).numpy()[0]
        t = fx.argmax(1)
        gap = fx[np.arange(len(X)), t] - fb[t]
        delta = e.extras["convergence_delta"]
        assert delta.shape == (len(X),)
        assert np.all(np.abs(e.values.sum(1) - gap) <= np.abs(delta) + 1e-6)
        assert e.options["max_abs_convergence_delta"] == pytest.approx(np.abs(delta).max())
        deltas.append(np.abs(delta).max())
    assert deltas[0] > deltas[1] > deltas[2]
    assert deltas[2] < 1e-6


def test_ig_quadrature_option():
    model, X = _mlp(), _data()
    e = xai.explain(model, X, method="captum.integrated_gradients", quadrature="riemann_left",
                    n_steps=7)
    ref = _direct(model, X, lambda x, t: captum_attr.IntegratedGradients(model).attribute(
        x, target=t, n_steps=7, method="riemann_left"))
    np.testing.assert_allclose(e.values, ref, atol=1e-10)
    cls = xai.registry.get("explainer", "captum.integrated_gradients")
    direct = cls(method="riemann_left", n_steps=7).explain(model, X)
    np.testing.assert_allclose(direct.values, ref, atol=1e-10)
    assert direct.options["quadrature"] == "riemann_left"


def test_ig_baseline_forms():
    model, X = _mlp(), _data()
    zero = xai.explain(model, X, method="captum.integrated-gradients").values
    for spec in (0.0, np.zeros(X.shape[1]), np.zeros_like(X), torch.zeros(1, X.shape[1]),
                 "zeros"):
        v = xai.explain(model, X, method="captum.integrated-gradients", baselines=spec).values
        np.testing.assert_allclose(v, zero, atol=1e-12)
    with pytest.raises(xai.InputError, match="baselines"):
        xai.explain(model, X, method="captum.integrated-gradients", baselines=np.zeros(3))
    bg = _data(10, seed=5)
    m = xai.explain(model, X, method="captum.integrated-gradients", baselines="mean",
                    background=bg)
    direct = _direct(model, X, lambda x, t: captum_attr.IntegratedGradients(model).attribute(
        x, baselines=torch.tensor(bg.mean(0))[None], target=t))
    np.testing.assert_allclose(m.values, direct, atol=1e-10)


def test_ig_internal_batch_bounded_by_memory_cap(monkeypatch):
    model, X = _mlp(), _data()
    full = xai.explain(model, X, method="captum.integrated-gradients", n_steps=30)
    assert full.options["internal_batch_size"] is None
    # set the cap for this test only (restoring a read value would pin it for later tests)
    monkeypatch.setattr(xai.config, "_memory_cap", 5 * 8 * 32 * 12)  # 12 rows per pass
    small = xai.explain(model, X, method="captum.integrated-gradients", n_steps=30)
    monkeypatch.undo()
    assert small.options["internal_batch_size"] == 12
    np.testing.assert_allclose(small.values, full.values, atol=1e-12)


class _Cnn3(nn.Module):
    """3-channel CNN; ``view=True`` flattens with ``.view`` (fails on channels-last tensors)."""

    def __init__(self, view: bool = False, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.view = view
        self.conv = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.ReLU(),
                                  nn.Conv2d(6, 4, 3, stride=2, padding=1), nn.ReLU())
        self.fc = nn.Linear(4 * 4 * 4, 3)

    def forward(self, x):
        h = self.conv(x)
        return self.fc(h.view(h.shape[0], -1) if self.view else h.flatten(1))


def _images3(n=4, seed=3):
    return np.random.default_rng(seed).normal(size=(n, 3, 8, 8))


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_ig_channels_last_matches_captum(dtype):
    model = _Cnn3().to(dtype)
    model.fc.bias.requires_grad_(False)  # parameters' flags are left as they are
    imgs = _images3().astype(np.float64 if dtype == torch.float64 else np.float32)
    e = xai.explain(model, imgs, method="captum.integrated_gradients", n_steps=12)
    assert e.options["memory_format"] == "channels_last"
    cont = xai.explain(model, imgs, method="captum.integrated_gradients", n_steps=12,
                       memory_format="contiguous")
    assert cont.options["memory_format"] == "contiguous"
    ref = _direct(model, imgs, lambda x, t: captum_attr.IntegratedGradients(model).attribute(
        x, target=t, n_steps=12)).reshape(len(imgs), -1)
    atol = 1e-12 if dtype == torch.float64 else 1e-6 * np.abs(ref).max()
    np.testing.assert_allclose(e.values, ref, atol=atol, rtol=0)
    np.testing.assert_allclose(cont.values, ref, atol=atol, rtol=0)
    assert not model.fc.bias.requires_grad and model.fc.weight.requires_grad
    assert all(p.grad is None for p in model.parameters())


def test_ig_channels_last_falls_back_and_rules():
    imgs = _images3()
    viewing = _Cnn3(view=True).double()  # .view fails on a channels-last activation
    e = xai.explain(viewing, imgs, method="captum.integrated_gradients", n_steps=6)
    assert e.options["memory_format"] == "contiguous"
    ref = _direct(viewing, imgs, lambda x, t: captum_attr.IntegratedGradients(
        viewing).attribute(x, target=t, n_steps=6)).reshape(len(imgs), -1)
    np.testing.assert_allclose(e.values, ref, atol=1e-12)
    # tabular rows and models without a convolution over the input's channels: as given
    tab = xai.explain(_mlp(), _data(), method="captum.integrated_gradients", n_steps=6)
    assert tab.options["memory_format"] == "contiguous"
    flat = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 2)).double()
    assert xai.explain(flat, imgs, method="captum.integrated_gradients",
                       n_steps=6).options["memory_format"] == "contiguous"
    forced = xai.explain(_Cnn3().double(), imgs, method="captum.integrated_gradients",
                         n_steps=6, memory_format="channels_last")
    assert forced.options["memory_format"] == "channels_last"
    with pytest.raises(xai.InputError, match="4-D"):
        xai.explain(_mlp(), _data(), method="captum.integrated_gradients",
                    memory_format="channels_last")
    with pytest.raises(xai.UnknownNameError, match="memory_format"):
        xai.explain(_mlp(), _data(), method="captum.integrated_gradients", memory_format="x")


def test_ig_not_multiplied_matches_captum():
    model, X = _mlp(), _data()
    e = xai.explain(model, X, method="captum.integrated_gradients", n_steps=9,
                    multiply_by_inputs=False, internal_batch_size=12)
    ref = _direct(model, X, lambda x, t: captum_attr.IntegratedGradients(
        model, multiply_by_inputs=False).attribute(x, target=t, n_steps=9,
                                                   internal_batch_size=12))
    np.testing.assert_allclose(e.values, ref, atol=1e-12)


class _Counting(nn.Module):
    def __init__(self, module):
        super().__init__()
        self.module, self.rows = module, 0

    def forward(self, x):
        self.rows += x.shape[0] - call_padding()  # the rows asked about
        return self.module(x)


def test_ig_evaluates_f_x_once():
    """f(x) for the convergence delta is the output that resolved the targets: the model
    sees n * n_steps rows for the integral, n for the targets, one baseline row, and the
    one-row probes (two when the channels-last layout is checked)."""
    model = _Counting(_Cnn3().double())
    imgs = _images3(n=5)
    e = xai.explain(model, imgs, method="captum.integrated_gradients", n_steps=7)
    assert e.evaluations == 5 * 7 + 5 + 1
    assert model.rows == e.evaluations + 2
    with torch.no_grad():
        out = model.module(torch.tensor(imgs)).numpy()
        fb = model.module(torch.zeros(1, 3, 8, 8, dtype=torch.float64)).numpy()[0]
    t = out.argmax(1)
    np.testing.assert_allclose(e.base_values, fb[t], atol=1e-12)
    delta = e.values.sum(1) - (out[np.arange(5), t] - fb[t])
    np.testing.assert_allclose(e.extras["convergence_delta"], delta, atol=1e-12)


# -- agreement with captum called directly ------------------------------------------------------

def _direct(model, X, fn, seed=None):
    x = torch.tensor(X, requires_grad=True)
    target = model(x).argmax(1)
    if seed is not None:
        torch.manual_seed(seed)
        np.random.seed(seed)
    return fn(x, target).detach().numpy()


@pytest.mark.parametrize("case", ["ig", "saliency", "saliency_signed", "ixg", "deeplift",
                                  "gradient_shap", "occlusion", "smoothgrad"])
def test_matches_captum(case):
    X = _data()
    model = _relu_mlp() if case == "deeplift" else _mlp()
    bg = _data(7, seed=9)
    base = np.full(X.shape[1], -0.2)
    A = captum_attr
    if case == "ig":
        ours = xai.explain(model, X, method="captum.integrated_gradients", baselines=base,
                           n_steps=17)
        ref = _direct(model, X, lambda x, t: A.IntegratedGradients(model).attribute(
            x, baselines=torch.tensor(base)[None], target=t, n_steps=17))
    elif case == "saliency":
        ours = xai.explain(model, X, method="captum.saliency")
        ref = _direct(model, X, lambda x, t: A.Saliency(model).attribute(x, target=t))
    elif case == "saliency_signed":
        ours = xai.explain(model, X, method="captum.saliency", abs=False)
        ref = _direct(model, X, lambda x, t: A.Saliency(model).attribute(x, target=t,
                                                                        abs=False))
    elif case == "ixg":
        ours = xai.explain(model, X, method="captum.input_x_gradient")
        ref = _direct(model, X, lambda x, t: A.InputXGradient(model).attribute(x, target=t))
    elif case == "deeplift":
        ours = xai.explain(model, X, method="captum.deeplift", baselines=base)
        with pytest.warns(UserWarning, match="hooks"):
            ref = _direct(model, X, lambda x, t: A.DeepLift(model).attribute(
                x, baselines=torch.tensor(base)[None], target=t))
    elif case == "gradient_shap":
        ours = xai.explain(model, X, method="captum.gradient_shap", background=bg, seed=3)
        ref = _direct(model, X, lambda x, t: A.GradientShap(model).attribute(
            x, baselines=torch.tensor(bg), n_samples=50, stdevs=0.0, target=t), seed=3)
        with torch.no_grad():
            fb = model(torch.tensor(bg)).mean(0).numpy()
        np.testing.assert_allclose(ours.base_values,
                                   fb[model(torch.tensor(X)).argmax(1).numpy()], atol=1e-12)
    elif case == "occlusion":
        ours = xai.explain(model, X, method="captum.occlusion", baselines=0.5,
                           sliding_window_shapes=(2,), strides=1)
        ref = _direct(model, X, lambda x, t: A.Occlusion(model).attribute(
            x, sliding_window_shapes=(2,), strides=1, baselines=0.5, target=t))
    else:  # smoothgrad, absolute noise, fixed seed
        ours = xai.explain(model, X, method="captum.smoothgrad", stdevs=0.1, relative=False,
                           nt_samples=6, seed=4)
        ref = _direct(model, X, lambda x, t: A.NoiseTunnel(A.Saliency(model)).attribute(
            x, nt_type="smoothgrad", nt_samples=6, stdevs=0.1, target=t), seed=4)
    np.testing.assert_allclose(ours.values, ref, atol=1e-10, rtol=0)


def test_occlusion_images_default_and_any_model():
    cnn, imgs = _cnn(), _images()
    e = xai.explain(cnn, imgs, method="captum.occlusion")
    assert e.values.shape == (3, 64)
    assert e.options["sliding_window_shapes"] == [1, 1, 1]
    ref = _direct(cnn, imgs, lambda x, t: captum_attr.Occlusion(cnn).attribute(
        x, sliding_window_shapes=(1, 1, 1), baselines=0.0, target=t))
    np.testing.assert_allclose(e.values, ref.reshape(3, -1), atol=1e-10)
    # occlusion needs no gradients: a plain numpy function works
    W = np.arange(6.0).reshape(3, 2)
    f = xai.explain(lambda a: a @ W, _data(4, 3), method="captum.occlusion", target=1)
    np.testing.assert_allclose(f.values, _data(4, 3) * W[:, 1], atol=1e-12)


def test_gradient_shap_seed_reproducible_and_restores_rng():
    model, X, bg = _mlp(), _data(), _data(7, seed=9)
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    a = xai.explain(model, X, method="captum.gradient-shap", background=bg, seed=0,
                    n_samples=5)
    after = torch.rand(1)
    assert before == after  # the user's generator stream is untouched
    b = xai.explain(model, X, method="captum.gradient-shap", background=bg, seed=0,
                    n_samples=5)
    np.testing.assert_array_equal(a.values, b.values)
    assert a.extras["convergence_delta"].shape == (len(X),)


def test_smoothgrad_over_ig():
    model, X = _mlp(), _data()
    e = xai.explain(model, X, method="captum.smoothgrad", base="integrated_gradients",
                    nt_samples=4, n_steps=10, seed=0)
    assert e.values.shape == X.shape and np.isfinite(e.values).all()
    span = X.max() - X.min()
    assert e.options["noise_std"] == pytest.approx(0.15 * span)
    with pytest.raises(xai.UnknownNameError):
        xai.explain(model, X, method="captum.smoothgrad", base="nope")


# -- Grad-CAM -----------------------------------------------------------------------------------

def test_gradcam_shape_and_values():
    cnn, imgs = _cnn(), _images()
    e = xai.explain(cnn, imgs, method="captum.gradcam", layer="2")
    assert e.values.shape == (3, 64)
    assert e.extras["cam"].shape == (3, 8, 8)
    assert e.options["layer"] == "2"
    x = torch.tensor(imgs, requires_grad=True)
    t = cnn(x).argmax(1)
    cam = captum_attr.LayerGradCam(cnn, cnn[2]).attribute(x, target=t, relu_attributions=True)
    up = captum_attr.LayerAttribution.interpolate(cam, (8, 8), interpolate_mode="bilinear")
    np.testing.assert_allclose(e.values, up.detach().numpy().reshape(3, -1), atol=1e-10)
    assert (e.values >= 0).all()
    # default layer: the last Conv2d
    d = xai.explain(cnn, imgs, method="captum.gradcam")
    assert d.options["layer"] == "2"


def test_gradcam_bad_layer_lists_names():
    cnn, imgs = _cnn(), _images()
    with pytest.raises(xai.InputError) as err:
        xai.explain(cnn, imgs, method="captum.gradcam", layer="features.3")
    msg = str(err.value)
    assert "features.3" in msg and "Available layers" in msg
    for name in ("0", "2", "6"):
        assert repr(name) in msg or f" {name}," in msg or msg.endswith(f" {name}")


def test_gradcam_needs_images():
    with pytest.raises(xai.InputError, match="images"):
        xai.explain(_mlp(), _data(), method="captum.gradcam", layer="0")


# -- features ----------------------------------------------------------------------------------

@pytest.mark.parametrize("features", ["pixels", 2, ("patches", 4)])
def test_feature_aggregation_sums(features):
    cnn, imgs = _cnn(), _images()
    per_pixel = xai.explain(cnn, imgs, method="captum.integrated_gradients", n_steps=8)
    agg = xai.explain(cnn, imgs, method="captum.integrated_gradients", n_steps=8,
                      features=features)
    np.testing.assert_allclose(agg.values.sum(1), per_pixel.values.sum(1), atol=1e-10)
    if features == "pixels":
        np.testing.assert_allclose(agg.values, per_pixel.values, atol=1e-12)
    else:
        size = 2 if features == 2 else 4
        assert agg.values.shape == (3, (8 // size) ** 2)
        v = per_pixel.values.reshape(3, 8 // size, size, 8 // size, size)
        np.testing.assert_allclose(agg.values, v.sum((2, 4)).reshape(3, -1), atol=1e-10)


def test_tabular_groups():
    model, X = _mlp(), _data()
    cols = xai.explain(model, X, method="captum.integrated_gradients")
    grouped = xai.explain(model, X, method="captum.integrated_gradients",
                          features={"a": [0, 1], "b": [2, 3, 4]})
    np.testing.assert_allclose(grouped.values[:, 0], cols.values[:, :2].sum(1), atol=1e-12)
    np.testing.assert_allclose(grouped.values[:, 1], cols.values[:, 2:].sum(1), atol=1e-12)
    assert list(grouped.feature_names) == ["a", "b"]


# -- model discipline and errors ---------------------------------------------------------------

@pytest.mark.parametrize("name", NAMES)
def test_training_flag_restored_nothing_leaks(name):
    cnn = _cnn()
    cnn.train()
    cnn[1].eval()  # mixed flags are restored module by module
    imgs = torch.tensor(_images())
    kwargs = {"nt_samples": 3} if name == "smoothgrad" else {}
    if name == "gradient-shap":
        kwargs = {"background": _images(4, seed=7), "n_samples": 3}
    if name == "integrated-gradients":
        kwargs = {"n_steps": 4}
    xai.explain(cnn, imgs, method=f"captum.{name}", **kwargs)
    assert cnn.training and not cnn[1].training and cnn[0].training
    assert not imgs.requires_grad
    assert all(p.grad is None for p in cnn.parameters())
    assert not cnn._forward_hooks and not cnn[1]._forward_hooks


def test_training_flag_restored_after_error():
    model = _mlp().train()
    with pytest.raises(xai.XaiError):
        xai.explain(model, _data(), method="captum.integrated_gradients",
                    baselines=np.zeros(2))
    assert model.training


def test_non_torch_model_is_clear_error():
    with pytest.raises(xai.InputError, match="torch.nn.Module"):
        xai.explain(lambda a: a.sum(1), _data(), method="captum.saliency")


def test_unknown_option():
    with pytest.raises(xai.UnknownNameError, match="n_steps"):
        xai.explain(_mlp(), _data(), method="captum.integrated_gradients", n_step=10)


def test_float32_model():
    model = _mlp().float()
    e = xai.explain(model, _data(), method="captum.integrated_gradients", n_steps=10)
    assert e.values.dtype == np.float64 and np.isfinite(e.values).all()


def test_scalar_output_model():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 1), nn.Flatten(0)).double()
    X = _data()
    e = xai.explain(model, X, method="captum.input_x_gradient", output_kind="raw")
    np.testing.assert_allclose(e.values, X * model[0].weight.detach().numpy()[0], atol=1e-12)
