"""The vectorised noisy-linear imputation (banded Cholesky over many systems at once) equals a
plain dense solve of the ROAD system built here from its definition, and ROAD's ``order``
option. Correctness only: no test asserts a time."""

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


# ---- orientation and band bound -------------------------------------------------------------

def _coupled_gaps(removed: np.ndarray, along_cols: bool) -> int:
    """Largest index gap between two coupled removed pixels (8-neighbours), unknowns numbered
    in raster order along the rows (or the columns): the band the system needs."""
    rem = removed.T if along_cols else removed
    H, W = rem.shape
    number = np.cumsum(rem.ravel()).reshape(H, W)
    gap = 0
    for r in range(H):
        for c in range(W):
            if not rem[r, c]:
                continue
            for dr, dc in ((0, 1), (1, -1), (1, 0), (1, 1)):
                rr, cc = r + dr, c + dc
                if 0 <= rr < H and 0 <= cc < W and rem[rr, cc]:
                    gap = max(gap, int(number[rr, cc] - number[r, c]))
    return gap


def test_window_band_bounds_every_coupling():
    _, removed = _systems(30, 1, 7, 9, seed=5)
    removed = removed[2:]  # systems with a kept and a removed pixel
    for along_cols in (False, True):
        sets = removed.swapaxes(1, 2) if along_cols else removed
        band = road._window_band(sets)
        need = [_coupled_gaps(r, along_cols) for r in removed]
        assert (band >= need).all() and (band <= sets.shape[2] + 1).all()


def _recording(monkeypatch):
    seen = []
    solve = road._banded_solve

    def record(res, removed, sel, band, along_cols):
        seen.extend((int(s), along_cols) for s in sel)
        return solve(res, removed, sel, band, along_cols)
    monkeypatch.setattr(road, "_banded_solve", record)
    return seen


def test_each_system_gets_its_narrower_orientation(monkeypatch):
    seen = _recording(monkeypatch)
    images = np.random.default_rng(0).normal(size=(4, 2, 8, 8))
    removed = np.zeros((4, 8, 8), dtype=bool)
    removed[0, 3, 1:7] = True  # a horizontal bar: narrow band along the columns
    removed[1, 1:7, 3] = True  # a vertical bar: narrow band along the rows
    removed[2, 2:5, 1:7] = True  # wider than tall: along the columns
    removed[3, 1:7, 2:5] = True  # taller than wide: along the rows
    got = noisy_linear_impute_batch(images, removed)
    assert sorted(seen) == [(0, True), (1, False), (2, True), (3, False)]
    want = np.stack([_reference(i, r) for i, r in zip(images, removed)])
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-10)


@pytest.mark.parametrize("C,H,W", [(1, 4, 9), (2, 9, 4)])
def test_only_sides_within_banded_max_width_are_used(monkeypatch, C, H, W):
    monkeypatch.setattr(road, "BANDED_MAX_WIDTH", 5)  # only the shorter side qualifies
    seen = _recording(monkeypatch)
    images, removed = _systems(10, C, H, W, seed=7)
    got = noisy_linear_impute_batch(images, removed)
    assert {cols for _, cols in seen} == {H < W}  # along the columns iff they are the short side
    want = np.stack([_reference(i, r) for i, r in zip(images, removed)])
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-10)


# ---- the noise --------------------------------------------------------------------------------

def _fitted(noise, shape=(1, 8, 8), n=4, seed=0):
    from xai.behaviours import Prediction
    from xai.features import FeatureMap
    from xai.game import Game
    from xai.metrics.road import NoisyLinear
    from xai.models import as_model

    X = np.random.default_rng(1).random((n, *shape))
    removal = NoisyLinear(noise=noise)
    fmap = FeatureMap(np.arange(int(np.prod(shape))).reshape(shape))  # one feature per element
    Game(as_model(lambda Z: Z.reshape(len(Z), -1)[:, :1]), X, removal,
         Prediction(target=0, output="raw"), fmap, kind="image", seed=seed)  # fits the removal
    return removal, X


def _replace(removal, X, rows, keep):
    rows = np.asarray(rows)
    return removal.replacement(torch.as_tensor(X.reshape(len(X), -1)[rows]),
                               torch.as_tensor(rows), torch.as_tensor(keep), 0, 1).numpy()[:, 0]


def _mix(z: int) -> int:
    m = (1 << 64) - 1
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9 & m
    z = (z ^ (z >> 27)) * 0x94D049BB133111EB & m
    return z ^ (z >> 31)


def _reference_normal(seed, row: int, keep: np.ndarray, element: int) -> float:
    """The documented generator, one draw at a time in Python integers."""
    import math

    G, m = 0x9E3779B97F4A7C15, (1 << 64) - 1
    k0, k1 = (int(v) for v in np.random.SeedSequence(
        seed.entropy, spawn_key=(*seed.spawn_key, 7)).generate_state(2, np.uint64))
    packed = np.packbits(keep).tobytes()
    packed += bytes(-len(packed) % 8)
    h = 0
    for i in range(len(packed) // 8):
        w = int.from_bytes(packed[8 * i:8 * i + 8], "little")
        h = (h + _mix(w ^ ((k1 + (i + 1) * G) & m))) & m
    key = _mix(_mix((k0 + (row + 1) * G) & m) ^ h)
    b = _mix((key + (element + 1) * G) & m)
    hi, lo = b >> 32, b & 0xFFFFFFFF
    return math.sqrt(-2 * math.log((hi + 0.5) / 2**32)) * math.cos(2 * math.pi * lo / 2**32)


def test_noise_equals_the_documented_generator_on_removed_elements_only():
    removal, X = _fitted(0.5, shape=(2, 5, 6))
    clean, _ = _fitted(0.0, shape=(2, 5, 6))
    rng = np.random.default_rng(3)
    keep = rng.random((3, 60)) < 0.5
    rows = [0, 2, 2]
    z = (_replace(removal, X, rows, keep) - _replace(clean, X, rows, keep)) / 0.5
    for j, row in enumerate(rows):
        assert (z[j][keep[j]] == 0).all()  # kept elements stay exact
        for e in np.flatnonzero(~keep[j])[:12]:  # element e of the (C, H, W) image
            want = _reference_normal(removal.ctx.seed, row, keep[j], int(e))
            assert z[j, e] == pytest.approx(want, abs=1e-9)


def test_noise_is_standard_normal_and_independent():
    from scipy import stats

    removal, X = _fitted(1.0, shape=(1, 16, 16), n=40)
    clean, _ = _fitted(0.0, shape=(1, 16, 16), n=40)
    rng = np.random.default_rng(4)
    keep = rng.random((400, 256)) < 0.5
    rows = rng.integers(0, 40, 400)
    z = _replace(removal, X, rows, keep) - _replace(clean, X, rows, keep)
    draws = z[~keep]
    assert stats.kstest(draws, "norm").pvalue > 1e-3  # fixed seed: deterministic
    assert abs(draws.mean()) < 0.01 and abs(draws.std() - 1) < 0.01
    full = np.where(keep, np.nan, z)
    for a, b in ((full[:, :-1], full[:, 1:]), (full[:-1], full[1:])):  # neighbours, pairs
        ok = ~np.isnan(a) & ~np.isnan(b)
        assert abs(np.corrcoef(a[ok], b[ok])[0, 1]) < 0.02


def test_noise_depends_on_row_mask_element_and_seed_only():
    removal, X = _fitted(1.0)
    clean, _ = _fitted(0.0)

    def noise(rem, rows, keep):
        return _replace(rem, X, rows, keep) - _replace(clean, X, rows, keep)
    keep = np.random.default_rng(5).random((3, 64)) < 0.5
    keep[1] = keep[0]
    both = noise(removal, [0, 0, 1], keep)
    np.testing.assert_array_equal(both[2], noise(removal, [1], keep[2:])[0])  # batching and
    np.testing.assert_array_equal(both[2], noise(removal, [1, 0], keep[[2, 0]])[0])  # order
    np.testing.assert_array_equal(both[0], both[1])  # same row and mask: same draws
    removed = ~keep[0]
    assert len(set(both[0][removed])) == removed.sum()  # a draw per element
    other_row = noise(removal, [1], keep[:1])[0]
    other_mask = keep[:1].copy()
    other_mask[0, np.flatnonzero(other_mask[0])[0]] = False  # one more pixel removed
    moved = noise(removal, [0], other_mask)[0]
    reseeded, _ = _fitted(1.0, seed=1)
    for other in (other_row, moved, _replace(reseeded, X, [0], keep[:1])[0]
                  - _replace(clean, X, [0], keep[:1])[0]):
        assert np.abs(other[removed] - both[0][removed]).min() > 0  # all draws differ
