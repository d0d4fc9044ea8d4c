"""The vectorised noisy-linear imputation (banded Cholesky over many systems at once) equals a
plain dense solve of the ROAD system built here from its definition, and ROAD's ``order``
option (issue 8, problem 5). Correctness only: no test asserts a time."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from xai.errors import UnknownNameError
from xai.metrics import road
from xai.metrics.road import Road, noisy_linear_impute, noisy_linear_impute_batch


def _reference(image: np.ndarray, removed: np.ndarray) -> np.ndarray:
    """Each removed pixel = the weighted mean of its neighbours inside the image (1/6 edge,
    1/12 diagonal, renormalised), kept pixels fixed: one dense system per image, pixel by
    pixel; all removed -> zeros."""
    C, H, W = image.shape
    out = np.array(image, dtype=np.float64)
    cells = [(r, c) for r in range(H) for c in range(W) if removed[r, c]]
    if not cells:
        return out
    if len(cells) == H * W:
        return np.zeros_like(out)
    index = {cell: i for i, cell in enumerate(cells)}
    A = np.zeros((len(cells), len(cells)))
    b = np.zeros((len(cells), C))
    for i, (r, c) in enumerate(cells):
        for dr in (-1, 0, 1):
            for dc in (-1, 0, 1):
                rr, cc = r + dr, c + dc
                if (dr, dc) == (0, 0) or not (0 <= rr < H and 0 <= cc < W):
                    continue
                w = 1 / 12 if dr and dc else 1 / 6
                A[i, i] += w
                if (rr, cc) in index:
                    A[i, index[(rr, cc)]] -= w
                else:
                    b[i] += w * image[:, rr, cc]
    x = np.linalg.solve(A, b)
    for i, (r, c) in enumerate(cells):
        out[:, r, c] = x[i]
    return out


def _systems(S, C, H, W, seed):
    rng = np.random.default_rng(seed)
    images = rng.normal(size=(S, C, H, W))
    removed = rng.random((S, H, W)) < rng.uniform(0.05, 0.95, (S, 1, 1))
    removed[0] = True  # singular: zeros
    removed[1] = False  # nothing to solve
    removed[2, 1:4, 1:3] = True  # a block with kept pixels around
    return images, removed


@pytest.mark.parametrize("C,H,W", [(1, 6, 7), (3, 5, 5), (2, 4, 9), (1, 9, 2), (1, 3, 1)])
def test_batch_equals_dense_reference(C, H, W):
    images, removed = _systems(12, C, H, W, seed=H * 10 + W)
    got = noisy_linear_impute_batch(images, removed)
    want = np.stack([_reference(i, r) for i, r in zip(images, removed)])
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-10)
    np.testing.assert_array_equal(got[:, :, ~removed[3]][3], images[3][:, ~removed[3]])
    for s in (2, 5):  # the one-image entry point is the same solve
        np.testing.assert_allclose(noisy_linear_impute(images[s], removed[s]), want[s],
                                   rtol=0, atol=1e-10)


def test_many_chunks_and_passes_and_superlu_agree(monkeypatch):
    images, removed = _systems(40, 1, 8, 8, seed=3)
    want = np.stack([_reference(i, r) for i, r in zip(images, removed)])
    monkeypatch.setattr(road, "_BAND_ENTRIES", 64)  # a chunk per system or two
    monkeypatch.setattr(road, "_PASS_PIXELS", 5 * 64)  # five systems per pass
    np.testing.assert_allclose(noisy_linear_impute_batch(images, removed), want, rtol=0,
                               atol=1e-10)
    monkeypatch.setattr(road, "BANDED_MAX_WIDTH", 4)  # the SuperLU path
    np.testing.assert_allclose(noisy_linear_impute_batch(images, removed), want, rtol=0,
                               atol=1e-10)


def test_batch_does_not_modify_its_inputs():
    images, removed = _systems(5, 2, 6, 6, seed=1)
    before = images.copy(), removed.copy()
    noisy_linear_impute_batch(images, removed)
    np.testing.assert_array_equal(images, before[0])
    np.testing.assert_array_equal(removed, before[1])


def _cnn(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Flatten(),
                         nn.Linear(4 * 64, 3)).double().eval()


@pytest.fixture(scope="module")
def setup():
    rng = np.random.default_rng(2)
    X = rng.random((5, 1, 8, 8))
    a = rng.normal(size=X.shape)
    model = _cnn()
    with torch.no_grad():
        y = model(torch.as_tensor(X)).argmax(1).numpy()
    return model, X, a, y


@pytest.mark.parametrize("noise", [0.0, 0.01])
def test_road_order_runs_one_order_with_the_same_values(setup, noise):
    model, X, a, y = setup
    pct = [20, 50, 80]
    both = Road(noise=noise)(model, X, a, target=y, percentages=pct)
    for order, direction in (("morf", "lower"), ("lerf", "higher")):
        one = Road(noise=noise, order=order)(model, X, a, target=y, percentages=pct)
        for key in ("accuracy", "probability"):
            np.testing.assert_array_equal(one.extras[f"{order}_{key}"],
                                          both.extras[f"{order}_{key}"])
        other = "lerf" if order == "morf" else "morf"
        assert f"{other}_accuracy" not in one.extras and "gap" not in one.extras
        np.testing.assert_array_equal(one.per_sample, both.extras[f"{order}_accuracy"].mean(1))
        np.testing.assert_array_equal(one.curves, both.extras[f"{order}_accuracy"])
        assert one.direction == direction and one.settings["order"] == order
        assert one.evaluations == len(X) + len(pct) * len(X)
    assert both.direction == "higher" and both.evaluations == len(X) + 2 * len(pct) * len(X)


def test_road_unknown_order_is_named(setup):
    model, X, a, y = setup
    with pytest.raises(UnknownNameError, match="'mrof'.*Did you mean 'morf'"):
        Road(order="mrof")(model, X, a, target=y)


def test_removal_channels_with_their_own_removed_sets_are_solved_plane_by_plane():
    from xai.behaviours import Prediction
    from xai.features import FeatureMap
    from xai.game import Game
    from xai.metrics.road import NoisyLinear
    from xai.models import as_model

    rng = np.random.default_rng(4)
    X = rng.random((2, 2, 5, 6))
    fmap = FeatureMap(np.arange(2 * 5 * 6).reshape(2, 5, 6))  # one feature per channel pixel
    removal = NoisyLinear(noise=0.0)
    Game(as_model(lambda Z: Z.reshape(len(Z), -1)[:, :1]), X, removal,
         Prediction(target=0, output="raw"), fmap, kind="image", seed=0)  # fits the removal
    keep = rng.random((3, 60)) < 0.6
    keep[0, :30] = keep[0, 30:]  # mask 0: both channels share their removed set
    rows = np.array([0, 1, 1])
    out = removal.replacement(torch.as_tensor(X.reshape(2, -1)[rows]), torch.as_tensor(rows),
                              torch.as_tensor(keep), 0, 1).numpy().reshape(3, 2, 5, 6)
    for i, row in enumerate(rows):
        removed = ~keep[i].reshape(2, 5, 6)
        for ch in range(2):
            want = _reference(X[row, ch:ch + 1], removed[ch])[0]
            np.testing.assert_allclose(out[i, ch][removed[ch]], want[removed[ch]], rtol=0,
                                       atol=1e-10)
