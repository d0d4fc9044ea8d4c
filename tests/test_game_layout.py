"""Channels-last synthetic images: the game builds them in ``(H, W, C)`` element order and
hands the model a channels-last view. The inputs the model sees equal the contiguous path's
value for value (every removal, grid and per-pair blocks, fractional masks, inert features);
the auto rule picks the layout only for a torch CNN on a CPU that gives the same output, probes
once per adapter and input shape, and falls back otherwise; bad options are errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import fingerprint_model, zero_patch_images
from torch import nn

import xai
from xai.behaviours import Prediction
from xai.features import FeatureMap
from xai.game import Game
from xai.models import as_model
from xai.removals import Baseline, Blur, Marginal, ProductMarginal, Removal


class _Recorder(nn.Module):
    """A 3-channel CNN that keeps every input batch it receives (as given)."""

    def __init__(self, view: bool = False, channels: int = 3) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.view = view
        self.conv = nn.Sequential(nn.Conv2d(channels, 5, 3, padding=1), nn.ReLU(),
                                  nn.Conv2d(5, 4, 3, stride=2, padding=1), nn.ReLU())
        self.fc = nn.Linear(4 * 4 * 4, 3)
        self.inputs: list[torch.Tensor] = []

    def forward(self, x):
        self.inputs.append(x.detach().clone(memory_format=torch.preserve_format))
        h = self.conv(x)
        return self.fc(h.view(h.shape[0], -1) if self.view else h.flatten(1))


def _images(n=3, c=3, seed=0):
    return np.random.default_rng(seed).standard_normal((n, c, 8, 8))


class _MaskDependent(Removal):
    """Replacements that depend on the coalition and on the position: the flipped explicand
    scaled by the kept fraction (the game's path for removals that are not mask-free)."""

    name = "mask-dependent"

    def replacement(self, x, rows, masks, start, stop):
        frac = masks.to(x.dtype).mean(1)[:, None, None]
        return (x.flip(-1)[:, None, :] * frac).expand(-1, stop - start, -1)


def _removals(rng):
    bg = rng.standard_normal((4, 3, 8, 8))
    return {"baseline": lambda: Baseline(0.25), "segment-mean": lambda: Baseline("segment-mean"),
            "marginal": lambda: Marginal(bg), "blur": lambda: Blur(1.0),
            "product-marginal": lambda: ProductMarginal(bg, n_samples=3),
            "mask-dependent": _MaskDependent}


@pytest.mark.parametrize("removal", ["baseline", "segment-mean", "marginal", "blur",
                                     "product-marginal", "mask-dependent"])
@pytest.mark.parametrize("fractional", [False, True])
def test_channels_last_inputs_equal_contiguous_ones(removal, fractional):
    rng = np.random.default_rng(1)
    make = _removals(rng)[removal]
    X = _images()
    fmap = FeatureMap.patches((8, 8), 2, channel_axis=0)
    seen = {}
    for fmt in ("contiguous", "channels_last"):
        model = _Recorder().double()
        game = Game(as_model(model), X, make(), Prediction(target=0, output="raw"), fmap,
                    seed=0, memory_format=fmt, batch_size=5)
        game._prepare()
        r = np.random.default_rng(2)
        masks = r.random((6, game.d)) < 0.5
        if fractional:
            masks = np.where(masks, r.random((6, game.d)), 0.0)
        grid = game._averaged(np.array([2, 0]), masks, raw=True, shared=True)
        pairs = game._averaged(np.array([1, 2, 0]), masks[:3], raw=True)
        model.inputs.pop(0)  # the full input (as given)
        if fmt == "channels_last":
            assert all(x.is_contiguous(memory_format=torch.channels_last)
                       and not x.is_contiguous() for x in model.inputs)
        seen[fmt] = (torch.cat(model.inputs), grid, pairs)
    (xc, gc, pc), (xl, gl, pl) = seen["contiguous"], seen["channels_last"]
    assert torch.equal(xc, xl)  # the same synthetic inputs, value for value
    torch.testing.assert_close(gl, gc, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(pl, pc, rtol=1e-12, atol=1e-12)


def test_channels_last_per_explicand_maps_and_inert_features():
    rng = np.random.default_rng(0)
    X, fmap = zero_patch_images(rng)
    inert = {}
    for fmt in ("contiguous", "channels_last"):
        game = Game(fingerprint_model(3 * 64), X, Baseline(0.0), Prediction(target="all"), fmap,
                    memory_format=fmt)
        inert[fmt] = game.inert_features(np.arange(len(X)))
        masks = rng.random((len(X), 9, 16)) < 0.5
        vals = game(masks)
        ref = Game(fingerprint_model(3 * 64), X, Baseline(0.0), Prediction(target="all"),
                   fmap, memory_format="contiguous")(masks)
        assert torch.equal(vals, ref)  # the fingerprint reads the values in logical order
    assert (inert["contiguous"] == inert["channels_last"]).all()
    idx = np.stack([np.arange(64).reshape(8, 8) % k for k in (5, 5, 5, 5, 5)])
    per = FeatureMap(idx, channel_axis=0, per_explicand=True)
    masks = rng.random((len(X), 7, 5)) < 0.5
    got = [Game(fingerprint_model(3 * 64), X, Baseline("segment-mean"),
                Prediction(target="all"), per, memory_format=f)(masks)
           for f in ("contiguous", "channels_last")]
    assert torch.equal(got[0], got[1])


def test_auto_picks_channels_last_for_a_cnn_and_probes_once_per_adapter():
    X = _images(4)
    fmap = FeatureMap.patches((8, 8), 4, channel_axis=0)
    rows = {}
    for fmt in ("auto", "contiguous"):
        model = _Recorder().double()
        adapter = as_model(model)
        games = [Game(adapter, X[i:i + 2], Baseline(0.0), Prediction(target=0), fmap,
                      memory_format=fmt) for i in (0, 2)]
        for g in games:
            g(np.random.default_rng(0).random((2, 3, g.d)) < 0.5)
        assert all((g.inputs.perm is not None) == (fmt == "auto") for g in games)
        assert model.inputs[-1].is_contiguous(memory_format=torch.channels_last) == (
            fmt == "auto")
        rows[fmt] = adapter.evaluations
        assert adapter.evaluations == sum(g.rows_evaluated for g in games)
    assert rows["auto"] == rows["contiguous"] + 1  # one probe row for both games
    # through xai.explain: the same values as the contiguous layout, one more counted row
    auto = xai.explain(model, X, method="occlusion", features=fmap, target=1)
    cont = xai.explain(model, X, method="occlusion", features=fmap, target=1,
                       memory_format="contiguous")
    np.testing.assert_allclose(auto.values, cont.values, rtol=1e-12, atol=1e-12)
    assert auto.evaluations == cont.evaluations + 1


@pytest.mark.parametrize("case", ["view", "one channel", "no conv", "callable",
                                  "background draws"])
def test_auto_keeps_the_contiguous_layout_where_it_cannot_or_need_not(case):
    fmap = FeatureMap.patches((8, 8), 4, channel_axis=0)
    X = _images(c=1 if case == "one channel" else 3)
    removal = Baseline(0.0)
    if case == "background draws":  # K > 1 replacement rows: each would be permuted per block
        model = as_model(_Recorder().double())
        removal = Marginal(_images(4, seed=7))
    elif case == "view":
        model = as_model(_Recorder(view=True).double())
    elif case == "one channel":
        model = as_model(_Recorder(channels=1).double())
    elif case == "no conv":
        model = as_model(nn.Sequential(nn.Flatten(), nn.Linear(192, 2)).double())
    else:
        model = fingerprint_model(192)
    masks = np.random.default_rng(0).random((3, 5, 4)) < 0.5
    game = Game(model, X, removal, Prediction(target=0), fmap, seed=0)
    vals = game(masks)
    plain = Game(model, X, removal, Prediction(target=0), fmap, seed=0,
                 memory_format="contiguous")
    assert game.inputs.perm is None and torch.equal(vals, plain(masks))
    assert game.rows_evaluated == plain.rows_evaluated  # no probe row


def test_memory_format_errors():
    X = np.random.default_rng(0).standard_normal((3, 4))
    model = as_model(nn.Linear(4, 2).double())
    with pytest.raises(xai.InputError, match="channels_last.*images"):
        Game(model, X, Baseline(0.0), Prediction(target=0), FeatureMap.tabular(4),
             memory_format="channels_last")
    with pytest.raises(xai.UnknownNameError, match="memory_format"):
        Game(model, X, Baseline(0.0), Prediction(target=0), FeatureMap.tabular(4),
             memory_format="nhwc")
    with pytest.raises(xai.UnknownNameError, match="memory_format"):
        xai.explain(nn.Linear(4, 2).double(), X, method="occlusion", memory_format="nhwc")
