"""Explicands with different feature counts are explained in groups: per-explicand baselines
and targets are sliced with their explicand, so a batch equals each explicand alone."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import xai
from xai.features import FeatureMap


@pytest.fixture(scope="module")
def ragged_images():
    X = np.random.default_rng(0).random((3, 3, 32, 32)).astype(np.float32)
    X[1, :, :16] = 0.0  # a flatter image: a different number of superpixels
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # slic finds one segment in the noise images
        fm = FeatureMap.superpixels(X, "slic", channel_axis=0)
    assert len(np.unique(fm.d_per_map)) > 1
    return X, fm


def test_grouped_explicands_slice_per_explicand_baseline(ragged_images):
    X, fm = ragged_images

    def f(x):
        return (x.reshape(len(x), -1) ** 2).mean(1, keepdims=True)

    base = X * 0.5  # one baseline per explicand
    e = xai.Explainer("baseline", "prediction", "remove-individual", baseline=base,
                      progress=False).explain(f, X, features=fm)
    for i in range(3):
        a = xai.Explainer("baseline", "prediction", "remove-individual", baseline=base[i:i + 1],
                          progress=False).explain(f, X[i:i + 1], features=fm.subset([i]))
        d = a.values.shape[1]
        np.testing.assert_allclose(e.values[i, :d], a.values[0], rtol=1e-6, atol=1e-9)


def test_grouped_explicands_slice_per_explicand_target(ragged_images):
    X, fm = ragged_images

    def g(x):
        x = x.reshape(len(x), -1).astype(np.float64)
        return np.stack([x.mean(1), x.std(1)], 1)

    t = np.array([0, 1, 0])
    e = xai.Explainer("baseline", "prediction", "remove-individual", baseline=0.0, target=t,
                      progress=False).explain(g, X, features=fm)
    for i in range(3):
        a = xai.Explainer("baseline", "prediction", "remove-individual", baseline=0.0,
                          target=int(t[i]), progress=False).explain(g, X[i:i + 1],
                                                                    features=fm.subset([i]))
        d = a.values.shape[1]
        np.testing.assert_allclose(e.values[i, :d], a.values[0], rtol=1e-6, atol=1e-9)
