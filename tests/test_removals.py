"""Removals: a baseline on token ids takes only boolean masks (real-valued inputs keep
fractional ones), and the blur equals scikit-image's gaussian with ``mode="nearest"``."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import TokenBag

import xai
from xai.behaviours import Prediction
from xai.errors import MaskError
from xai.features import FeatureMap
from xai.game import Game
from xai.models import as_model
from xai.removals import Baseline, gaussian_blur


def test_baseline_on_tokens_refuses_fractional_masks():
    ids = torch.randint(1, 50, (2, 6))
    fm = FeatureMap.tokens(6)
    g = Game(as_model(TokenBag()), ids, Baseline(0), Prediction(target=0), fm, kind="tokens")
    assert not g.removal.accepts_fractional
    with pytest.raises(MaskError, match="accepts only boolean masks"):
        g(np.full((1, 6), 0.5))
    g(np.ones((1, 6), bool))  # boolean masks still work
    with pytest.raises(MaskError):
        xai.Explainer("baseline", "prediction", "sobol", baseline=0, design="continuous",
                      budget=2000, seed=0, progress=False).explain(TokenBag(), ids)
    # real-valued inputs keep fractional masks
    g = Game(as_model(lambda a: a.sum(1)), np.ones((2, 3)), Baseline(0.0), Prediction(),
             FeatureMap.tabular(3))
    assert g.removal.accepts_fractional
    np.testing.assert_allclose(g(np.full((1, 3), 0.5), rows=np.array([0])).numpy().ravel(),
                               [1.5])


# ---- blur -----------------------------------------------------------------------------------


@pytest.mark.parametrize("sigma", [0.7, 1.6, 4.0, 12.0])
def test_blur_matches_skimage_nearest(sigma):
    skf = pytest.importorskip("skimage.filters")
    img = np.random.default_rng(1).random((3, 17, 23))
    ours = gaussian_blur(torch.as_tensor(img[None]), sigma)[0].numpy()
    ref = skf.gaussian(img, sigma=sigma, channel_axis=0, mode="nearest", truncate=4.0,
                       preserve_range=True)
    np.testing.assert_allclose(ours, ref, atol=1e-6)
