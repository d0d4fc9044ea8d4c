"""Ground-truth data sets (the 2-D suppressor problem, linear8x8, XAI-TRIS) and the harness
trainer."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import xai.datasets.gauss2d
import xai.datasets.linear8x8
import xai.datasets.xaitris  # noqa: F401
from xai import registry
from xai.datasets.gauss2d import bayes_model, reference_values
from xai.datasets.linear8x8 import patterns
from xai.datasets.training import build_model, train_model
from xai.errors import UnknownNameError


def make(name, seed=0, **params):
    return registry.get("dataset", name)().make(seed, **params)


CASES = [("gauss2d-suppressor", {"n": 400}), ("linear8x8", {"n": 200})] + [
    ("xaitris8", {"scenario": s, "background": b, "n": 80})
    for s in ("lin", "mult", "rigid", "xor") for b in ("white", "corr")] + [
    ("xaitris64", {"scenario": s, "background": b, "n": 48})
    for s, b in (("lin", "white"), ("rigid", "corr"), ("xor", "natural"), ("mult", "natural"))]


@pytest.mark.parametrize(("name", "params"), CASES)
def test_generators_are_deterministic_and_balanced(name, params):
    a, b, c = make(name, 1, **params), make(name, 1, **params), make(name, 2, **params)
    assert a.X.dtype == np.float32 and np.isfinite(a.X).all()
    np.testing.assert_array_equal(a.X, b.X)
    np.testing.assert_array_equal(a.y, b.y)
    for part in ("train", "val", "test"):
        np.testing.assert_array_equal(getattr(a, part), getattr(b, part))
    np.testing.assert_array_equal(a.mask(), b.mask())
    assert not np.array_equal(a.X, c.X)
    counts = np.bincount(a.y)
    assert counts.tolist() == [len(a.y) // 2] * 2  # exactly balanced
    parts = np.concatenate([a.train, a.val, a.test])
    assert np.array_equal(np.sort(parts), np.arange(len(a.y)))  # a partition
    for part in (a.train, a.val, a.test):  # stratified
        assert abs(np.mean(a.y[part]) - 0.5) <= 1 / len(part) + 1e-9
    # the data set can be remade from its recorded params
    np.testing.assert_array_equal(make(name, 1, **a.params).X, a.X)


def test_unknown_parameter_is_an_error():
    with pytest.raises(UnknownNameError, match="alhpa"):
        make("xaitris8", alhpa=0.1)
    with pytest.raises(ValueError, match="background"):
        make("xaitris8", background="natural", n=8)
    with pytest.raises(ValueError, match="even"):
        make("gauss2d-suppressor", n=11)


# ---- gauss2d --------------------------------------------------------------------------
#: suppressor / signal ratios in closed form at the default parameters (Wilming, Kieslich,
#: Clark & Haufe 2023), computed independently of the library
REFERENCE_RATIOS = {
    "weights": -0.8, "saliency": 0.8, "gradient_x_input": 0.4724,
    "interventional_shap": 0.4724, "conditional_shap": 0.2177,
    "conditional_shap_gaussian": 0.2499, "lime_standardised": -0.4998, "lime_raw": -0.8,
    "pfi_mse": 0.2498, "pfi_accuracy": 0.3031, "sage_mse_ls": 0.0,
    "sage_conditional_ce": 0.1858, "partial_dependence_sd": 0.4998, "dtd": 0.64,
    "correlation": -0.5002, "pattern": 0.0, "E_abs_x1": 1.0809, "I1": 0.4417,
    "I12": 0.6433, "bayes_accuracy": 0.9814, "accuracy_x1_only": 0.8944, "rho": 0.4998,
}


def test_gauss2d_reference_values_equal_the_closed_forms():
    data = make("gauss2d-suppressor", n=100)
    for key, value in REFERENCE_RATIOS.items():
        assert data.reference[key] == pytest.approx(value, abs=1e-3), key
    np.testing.assert_allclose(data.extras["beta"], [8.6806, -6.9444], atol=1e-4)
    np.testing.assert_allclose(data.extras["w_ls"], [0.8127, -0.6502], atol=1e-4)
    np.testing.assert_allclose(data.extras["beta_unit"], [0.7809, -0.6247], atol=1e-4)
    # c = 0: every ratio is zero
    zero = reference_values(0.8, 0.8, 0.0)
    for key in ("weights", "gradient_x_input", "conditional_shap", "sage_conditional_ce",
                "pfi_accuracy", "correlation"):
        assert zero[key] == pytest.approx(0.0, abs=1e-9), key


def test_gauss2d_structure_and_bayes_model():
    data = make("gauss2d-suppressor", seed=4, n=20_000)
    X, y = data.X.astype(np.float64), data.y
    assert data.ground_truth.tolist() == [True, False]
    assert data.suppressor_mask.tolist() == [False, True]
    # x2 carries no class information; x1 does
    assert abs(X[y == 1, 1].mean() - X[y == 0, 1].mean()) < 0.05
    assert X[y == 1, 0].mean() - X[y == 0, 0].mean() == pytest.approx(2, abs=0.05)
    model, margin = data.extras["bayes_model"], bayes_model(data, "margin")
    with torch.no_grad():
        logits = model(torch.as_tensor(X[:5])).numpy()
        m = margin(torch.as_tensor(X[:5])).numpy()
    np.testing.assert_allclose(logits[:, 1] - logits[:, 0], m[:, 0], rtol=1e-12)
    np.testing.assert_allclose(torch.softmax(torch.as_tensor(logits), 1).numpy(),
                               data.extras["predict_proba"](X[:5]), rtol=1e-10)
    acc = np.mean((data.extras["margin"](X) > 0) == (y == 1))
    assert acc == pytest.approx(data.reference["bayes_accuracy"], abs=0.006)


# ---- linear8x8 ------------------------------------------------------------------------
def test_linear8x8_frobenius_normalisation_and_masks():
    data = make("linear8x8", seed=3)
    w = data.params["w"]
    a, d = patterns()
    assert (a != 0).sum() == 24 and data.ground_truth.sum() == 24
    assert data.suppressor_mask.sum() == 12 and not (data.suppressor_mask & (a != 0)).any()
    assert not data.suppressor_mask[:4, 4:].all()  # the block corners are not suppressors
    assert data.extras["suppressor_block"].sum() == 16
    S = np.outer(data.extras["z"], a.ravel())
    D = np.outer(data.extras["distractor"], d.ravel())
    X = data.X.reshape(len(data.X), -1).astype(np.float64)
    H = X - w * S / np.linalg.norm(S) - (1 - w) / 2 * D / np.linalg.norm(D)
    assert np.linalg.norm(H) == pytest.approx((1 - w) / 2, rel=1e-5)
    assert (data.y == (data.extras["z"] > 0)).all() and data.y[:500].sum() == 0
    # noise covariance: symmetric positive definite, eigenvalues delta + 0.01 max delta
    ev = np.linalg.eigvalsh(data.extras["Sigma_noise"])
    assert ev.min() >= 0.01 * ev.max() / 1.01 - 1e-12 and ev.max() <= 1.01 + 1e-9
    assert len(data.test) == 200 and len(data.train) + len(data.val) == 800


# ---- XAI-TRIS -------------------------------------------------------------------------
def test_xaitris_ground_truth_and_scaling():
    lin = make("xaitris8", scenario="lin", n=40)
    assert lin.ground_truth.sum() == 8 and lin.kind == "global"
    assert np.abs(lin.X).max() == pytest.approx(1.0)
    assert lin.params["alpha"] == 0.18
    P = lin.extras["pattern"].reshape(40, -1)
    assert ((P != 0).sum(1) == 4).all()
    assert (P[lin.y == 0].reshape(-1, 8, 8)[:, 1:4, 1:3] != 0).sum() == 4 * (lin.y == 0).sum()
    rigid = make("xaitris8", scenario="rigid", n=40)
    assert rigid.kind == "per_sample" and rigid.ground_truth.shape == (40, 8, 8)
    assert (rigid.ground_truth.reshape(40, -1).sum(1) == 4).all()
    np.testing.assert_array_equal(rigid.ground_truth, rigid.extras["pattern"] != 0)
    xor = make("xaitris8", scenario="xor", n=40)
    Px = xor.extras["pattern"]
    sT, sL = np.sign(Px[:, 1, 1]), np.sign(Px[:, 4, 5])
    assert ((sT != sL) == (xor.y == 1)).all()
    per = make("xaitris8", scenario="lin", n=40, scale="per_sample")
    np.testing.assert_allclose(np.abs(per.X).reshape(40, -1).max(1), 1.0, rtol=1e-6)
    big = make("xaitris64", scenario="lin", background="natural", n=8)
    assert big.X.shape == (8, 1, 64, 64) and 400 < big.ground_truth.sum() < 1500
    assert big.extras["skimage_version"]


# ---- training -------------------------------------------------------------------------
@pytest.mark.parametrize(("shape", "arch"), [((2,), "mlp"), ((1, 8, 8), "cnn"),
                                             ((1, 64, 64), "cnn"), ((1, 64, 64), "mlp"),
                                             ((1, 8, 8), "llr")])
def test_architectures_output_two_logits(shape, arch):
    out = build_model(arch, shape)(torch.zeros(3, *shape))
    assert out.shape == (3, 2)


def test_training_is_deterministic_and_cached(tmp_path):
    data = make("xaitris8", scenario="lin", n=200)
    kw = {"epochs": 3, "batch_size": 64}
    m1, i1 = train_model(data, "cnn", seed=1, cache_dir=tmp_path, **kw)
    m2, i2 = train_model(data, "cnn", seed=1, cache_dir=tmp_path, **kw)
    assert not i1["cached"] and i2["cached"] and i1["key"] == i2["key"]
    assert i2["test_accuracy"] == i1["test_accuracy"]
    for p, q in zip(m1.state_dict().values(), m2.state_dict().values(), strict=True):
        assert torch.equal(p, q)
    m3, _ = train_model(data, "cnn", seed=1, **kw)  # no cache: retrained identically
    for p, q in zip(m1.state_dict().values(), m3.state_dict().values(), strict=True):
        assert torch.equal(p, q)
    keys = {i1["key"]}
    for change in ({"seed": 2}, {"lr": 1e-3}, {"epochs": 4}, {"batch_size": 32},
                   {"patience": 5}, {"arch": "llr"}):
        args = {"seed": 1, "arch": "cnn", **kw, **change}
        _, info = train_model(data, cache_dir=tmp_path, **args)
        assert not info["cached"]
        keys.add(info["key"])
    other = make("xaitris8", scenario="lin", n=200, alpha=0.2)
    _, info = train_model(other, "cnn", seed=1, cache_dir=tmp_path, **kw)
    assert not info["cached"]
    keys.add(info["key"])
    assert len(keys) == 8


def test_training_learns_gauss2d():
    data = make("gauss2d-suppressor", n=2000)
    model, info = train_model(data, "llr", epochs=300, lr=0.05, batch_size=256)
    assert info["test_accuracy"] > 0.93
    w = model[1].weight.detach().numpy()
    w = w[1] - w[0]
    assert w[1] / w[0] == pytest.approx(-0.8, abs=0.2)  # the suppressor is used
