"""Each input-building strategy of :mod:`xai.synthesis` gives, bit for bit, what the reference
``torch.where(keep, x, r)`` gives, on random masks, shapes and dtypes; and the game chooses
the strategy from its explicands."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from xai.synthesis import (
    BitwiseSelect,
    LerpSelect,
    WhereSelect,
    blend,
    choose_strategy,
    under_half_max,
    where_select,
)

SHAPES = [((4, 1, 1, 6), (1, 3, 1, 6), (4, 3, 1, 6)),  # grid: every row with every mask
          ((5, 1, 1, 8), (5, 1, 1, 8), (5, 1, 1, 8)),  # pairs: one mask per row
          ((2, 1, 3, 4), (2, 1, 1, 4), (1, 1, 3, 4))]  # draws broadcast over masks


def _case(seed: int, dtype: torch.dtype, shapes):
    gen = torch.Generator().manual_seed(seed)
    xs, ms, rs = shapes
    if dtype.is_floating_point:
        x = torch.randn(xs, generator=gen).to(dtype)
        r = torch.randn(rs, generator=gen).to(dtype)
    else:
        x = torch.randint(0, 1000, xs, generator=gen).to(dtype)
        r = torch.randint(0, 1000, rs, generator=gen).to(dtype)
    keep = torch.rand(ms, generator=gen) < 0.5
    return x, keep, r


def _strategies(x: torch.Tensor):
    out = [WhereSelect()]
    if x.is_floating_point():
        out.append(LerpSelect(under_half_max(x), under_half_max))
    else:
        out.append(BitwiseSelect())
    return out


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.float16, torch.int64,
                                   torch.int32, torch.uint8])
@pytest.mark.parametrize("shapes", SHAPES)
@pytest.mark.parametrize("seed", range(5))
def test_every_strategy_selects_like_where(dtype, shapes, seed):
    x, keep, r = _case(seed, dtype, shapes)
    want = where_select(x, keep, r)
    for strategy in _strategies(x):
        m = strategy.encode(keep, x.dtype)
        got = strategy.select(x, m, r)
        assert got.dtype == want.dtype and torch.equal(got, want), strategy.name
        if got.shape == m.shape and m.dtype == x.dtype:  # the mask's buffer may be spent
            spent = strategy.select(x, strategy.encode(keep, x.dtype), r, over_mask=True)
            assert torch.equal(spent, want), strategy.name


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.int64])
@pytest.mark.parametrize("seed", range(5))
def test_replacing_in_place_equals_where_and_writes_only_the_copy(dtype, seed):
    x, keep, r = _case(seed, dtype, SHAPES[1])
    want = where_select(x, keep, r)
    for strategy in _strategies(x):
        copy = x.clone()
        removed = strategy.encode(~keep, x.dtype) if strategy.name == "lerp" else ~keep
        got = strategy.replace_in_place(copy, removed, r)
        assert torch.equal(got, want), strategy.name


def test_lerp_falls_back_to_where_near_the_dtype_limit():
    x = torch.tensor([[1.0, -2.0, 3.0]], dtype=torch.float64)
    r = torch.tensor([[1.5e308, -1.5e308, 0.0]], dtype=torch.float64)  # x - r overflows
    keep = torch.tensor([[False, True, False]])
    strategy = LerpSelect(True, under_half_max)
    got = strategy.select(x, strategy.encode(keep, x.dtype), r)
    assert torch.equal(got, where_select(x, keep, r))
    assert torch.isfinite(got).all()


def test_fractional_masks_blend():
    x, r = torch.tensor([2.0, 4.0]), torch.tensor([0.0, 8.0])
    m = torch.tensor([0.25, 0.5])
    assert torch.equal(blend(x, m, r), torch.tensor([0.5, 6.0]))


@pytest.mark.parametrize(("X", "name"), [
    (torch.zeros(2, 3), "lerp"), (torch.zeros(2, 3, dtype=torch.int64), "bitwise"),
    (torch.zeros(2, 3, dtype=torch.bool), "where")])
def test_the_strategy_follows_the_explicands_dtype(X, name):
    assert choose_strategy(X, under_half_max).name == name


def test_explicands_near_the_limit_are_not_lerped():
    X = torch.tensor([[1.6e308, 0.0]], dtype=torch.float64)
    strategy = choose_strategy(X, under_half_max)
    assert strategy.name == "lerp" and not strategy.in_place
    assert not strategy.x_safe
    assert np.isfinite(strategy.select(X, torch.tensor([[0.0, 1.0]], dtype=torch.float64),
                                       torch.zeros(1, 2, dtype=torch.float64)).numpy()).all()
