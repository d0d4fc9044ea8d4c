"""PGI and PGU (OpenXAI, Agarwal et al. 2022) against their closed forms on linear models:
with Gaussian noise z of SD sigma on the features S, a linear output w·x + b moves by w_S·z,
whose expected magnitude is sigma·‖w_S‖₂·√(2/π)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import xai

D = 6
WEIGHTS = torch.tensor([[3.0, -2.0, 1.0, 0.5, -0.25, 0.1], [0.0] * D])


def linear() -> torch.nn.Module:
    net = torch.nn.Linear(D, 2)
    with torch.no_grad():
        net.weight.copy_(WEIGHTS)
        net.bias.zero_()
    return net


X = np.random.default_rng(0).normal(size=(4, D)).astype(np.float32)
RANKED = np.tile(np.array([6.0, -5.0, 4.0, 3.0, 2.0, 1.0]), (4, 1))  # |a| ranks 0, 1, 2, ...


def _expected(features: list[int], sigma: float) -> float:
    return sigma * float(WEIGHTS[0, features].norm()) * math.sqrt(2 / math.pi)


@pytest.mark.parametrize("name,k,perturbed", [
    ("pgi", 2, [0, 1]), ("pgu", 2, [2, 3, 4, 5]), ("pgi", 0.5, [0, 1, 2]),
    ("pgu", 0.5, [3, 4, 5])])
def test_the_gap_of_a_linear_output_is_its_closed_form(name, k, perturbed) -> None:
    res = xai.metrics.get(name, k=k, sigma=0.1, n_samples=4000, output="raw")(
        linear(), X, RANKED, target=0)
    np.testing.assert_allclose(res.per_sample, _expected(perturbed, 0.1), rtol=0.06)
    assert res.settings["k"] == (len(perturbed) if name == "pgi" else D - len(perturbed))


def test_features_are_ranked_by_magnitude_whatever_their_sign() -> None:
    """Feature 1 (|a| = 5, negative) is in the top 2 of PGI."""
    res = xai.metrics.get("pgi", k=2, n_samples=3000, output="raw")(linear(), X, RANKED,
                                                                     target=0)
    np.testing.assert_allclose(res.per_sample, _expected([0, 1], 0.1), rtol=0.06)


def test_the_true_ranking_beats_the_reversed_one() -> None:
    """On a linear model the explanation that ranks the large weights first has the larger
    PGI and the smaller PGU."""
    model = linear()
    good, bad = RANKED, RANKED[:, ::-1].copy()
    for name, better in (("pgi", np.greater), ("pgu", np.less)):
        metric = xai.metrics.get(name, k=2, n_samples=200)
        assert better(metric(model, X, good, target=0).per_sample,
                      metric(model, X, bad, target=0).per_sample).all()


def test_the_area_variant_is_the_trapezoid_of_the_gaps_over_k() -> None:
    res = xai.metrics.get("pgi", k=4, auc=True, n_samples=50)(linear(), X, RANKED, target=0)
    assert res.curves.shape == (4, 4)
    np.testing.assert_allclose(res.per_sample,
                               np.trapezoid(res.curves, np.linspace(0, 1, 4), axis=1))
    single = xai.metrics.get("pgi", k=3, n_samples=50)(linear(), X, RANKED, target=0)
    np.testing.assert_allclose(res.curves[:, 2], single.per_sample)  # the same draws per k


def test_every_input_element_of_a_perturbed_pixel_feature_gets_noise() -> None:
    """Images: the top-k patches' pixels are perturbed, the others are kept."""
    x = np.random.default_rng(1).random((2, 1, 4, 4)).astype(np.float32)
    w = torch.zeros(2, 16)
    w[0, :8] = 1.0  # the output reads the top two rows of pixels
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 2, bias=False))
    with torch.no_grad():
        net[1].weight.copy_(w)
    a = np.zeros((2, 16))
    a[:, :8] = 1.0  # the top half of the pixels: features 0..7
    res = xai.metrics.get("pgu", k=8, n_samples=100, output="raw")(net, x, a, target=0)
    np.testing.assert_allclose(res.per_sample, 0.0, atol=1e-6)  # only unread pixels move
    res = xai.metrics.get("pgi", k=8, n_samples=4000, output="raw")(net, x, a, target=0)
    np.testing.assert_allclose(res.per_sample, 0.1 * math.sqrt(8) * math.sqrt(2 / math.pi),
                               rtol=0.06)


def test_a_count_k_larger_than_the_features_is_refused() -> None:
    with pytest.raises(xai.errors.OptionError, match=r"k=7 .*6 features.*1\.\.6"):
        xai.metrics.get("pgi", k=7)(linear(), X, RANKED, target=0)
