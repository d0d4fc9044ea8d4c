"""Synthetic inputs by table lookup (xai.selection) equal ``where(kept, x, r)`` bit for bit, for
blob-like and scattered feature maps, channels first and last, always-kept positions, one or
several explicands and replacements; plans refuse maps whose groups touch too many features;
in a game the lookup path gives the same model inputs as the blend it replaces."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import xai.game as game_module
import xai.selection as S
from xai.behaviours import Prediction
from xai.features import FeatureMap
from xai.game import Game
from xai.models import as_model
from xai.removals import Baseline, Blur


def _blobs(rng, h, w, d, block=4, fixed=False):
    """A superpixel-like map: constant blocks of random features (``d``: always kept)."""
    top = d + 1 if fixed else d
    coarse = rng.integers(0, top, size=(-(-h // block), -(-w // block)))
    return np.kron(coarse, np.ones((block, block), dtype=np.int64))[:h, :w]


def _plain(features, x, r, masks):
    bits = np.concatenate([masks, np.ones((len(masks), 1), bool)], 1)
    keep = torch.as_tensor(bits[:, features])  # (mm, D)
    return torch.where(keep[None], x[:, None], r.expand(x.shape[0], -1)[:, None])


@pytest.mark.parametrize("channels_last", [True, False])
@pytest.mark.parametrize("seed", range(6))
def test_lookup_equals_the_elementwise_selection(channels_last, seed):
    rng = np.random.default_rng(seed)
    h, w, c = 16, 24, int(rng.integers(1, 4))
    d = int(rng.integers(2, 30))
    seg = _blobs(rng, h, w, d, block=int(rng.integers(3, 7)), fixed=seed % 2 == 0)
    feats = np.repeat(seg.ravel(), c) if channels_last else np.tile(seg.ravel(), c)
    plan = S.selection_plan(feats, d)
    assert plan is not None
    # every group's 2^k patterns, k its distinct features
    k = np.array([len(np.unique(g)) for g in feats.reshape(-1, plan.group)])
    assert plan.rows == int((2 ** k).sum()) and k.max() <= S.MAX_GROUP_FEATURES
    for rr, shared_r in ((1, True), (3, True), (3, False)):
        x = torch.randn(rr, feats.size)
        r = torch.randn(1 if shared_r else rr, feats.size)
        masks = rng.random((int(rng.integers(1, 40)), d)) < 0.5
        bits = torch.cat([torch.as_tensor(masks).float(), torch.ones(len(masks), 1)], 1)
        got = S.select(plan, S.selection_table(plan, x, r), bits)
        assert torch.equal(got, _plain(feats, x, r, masks))


def test_plans_refuse_scattered_maps_and_odd_widths():
    rng = np.random.default_rng(0)
    every = np.arange(64 * 3)  # one feature per element: 2^G patterns per group
    assert S.selection_plan(every, every.size) is None
    assert S.selection_plan(rng.integers(0, 50, 4096), 50) is None  # salt and pepper
    assert S.selection_plan(np.zeros(7, dtype=np.int64), 1) is None  # no group size divides
    one = S.selection_plan(np.zeros(48, dtype=np.int64), 1)  # one feature: 2 patterns a group
    assert one is not None and one.group == 16 and one.rows == 2 * 3


class _Recorder(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 4, 3, stride=4)
        self.fc = nn.Linear(4 * 8 * 8, 2)
        self.inputs: list[torch.Tensor] = []

    def forward(self, x):
        self.inputs.append(x.detach().clone())
        return self.fc(self.conv(x).flatten(1))


def _game_map(rng, d, block):
    """A 32x32 map of square blocks covering features 0..d-1, one block always kept (-1)."""
    n = -(-32 // block)
    coarse = np.concatenate([np.arange(d), rng.integers(0, d, n * n - d)])
    rng.shuffle(coarse)
    coarse[np.flatnonzero(coarse == coarse[np.argmax(np.bincount(coarse))])[0]] = -1
    return np.kron(coarse.reshape(n, n), np.ones((block, block), dtype=np.int64))[:32, :32]


@pytest.mark.parametrize("removal", ["baseline", "segment-mean", "blur"])
@pytest.mark.parametrize("per_explicand,batch", [(False, None), (False, 9), (True, 9)])
def test_game_lookup_gives_the_blend_paths_inputs(removal, per_explicand, batch, monkeypatch):
    """Blocks of several explicands with a shared map (batch None), of one explicand after
    another (batch 9: each block its own table), per-explicand maps (blocks of one)."""
    rng = np.random.default_rng(1)
    X = rng.standard_normal((3, 3, 32, 32))
    d = 12
    if per_explicand:
        fmap = FeatureMap(np.stack([_game_map(rng, d, b) for b in (4, 5, 8)]), channel_axis=0,
                          per_explicand=True)
    else:
        fmap = FeatureMap(_game_map(rng, d, 4), channel_axis=0)
    make = {"baseline": lambda: Baseline(0.5), "segment-mean": lambda: Baseline("segment-mean"),
            "blur": lambda: Blur(1.0)}[removal]
    masks = rng.random((3, 9, d)) < 0.5
    seen, plans = [], []
    for threshold in (game_module.SELECTION_MIN_ELEMENTS, 10**9):  # lookup, then the blend
        monkeypatch.setattr(game_module, "SELECTION_MIN_ELEMENTS", threshold)
        model = _Recorder().double()
        game = Game(as_model(model), X, make(), Prediction(target=0, output="raw"), fmap,
                    memory_format="channels_last", seed=0, batch_size=batch)
        shared = game(masks[0])  # every explicand with the same masks (grid blocks)
        game._clear_cache()
        own = game(masks)  # per-explicand masks
        seen.append((torch.cat(model.inputs), shared, own))
        plans.append({m: p is not None for m, p in game.inputs.plans.items()})
    assert any(plans[0].values()) and not plans[1]  # the lookup ran, then never
    assert torch.equal(seen[0][0], seen[1][0])
    assert torch.equal(seen[0][1], seen[1][1]) and torch.equal(seen[0][2], seen[1][2])


def test_plans_are_remembered_by_content():
    rng = np.random.default_rng(3)
    feats = np.repeat(_blobs(rng, 16, 16, 6).ravel(), 3)
    first = S.selection_plan(feats, 6)
    assert first is not None
    assert S.selection_plan(feats.copy(), 6) is first  # another array, same content
    assert S.selection_plan(feats, 7) is not first  # another d: another plan
    for i in range(S.PLAN_CACHE_SIZE):  # evicted once PLAN_CACHE_SIZE newer plans came
        S.selection_plan(np.roll(feats, 3 * (i + 1)), 6)
    assert S.selection_plan(feats, 6) is not first
