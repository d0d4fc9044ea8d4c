"""RISE (Petsiuk, Das & Saenko 2018): importance as the mean value when a feature is kept,
with smooth random masks over pixels for images."""

from __future__ import annotations

import math

import numpy as np
import torch

from ..models import rowwise_product
from ..registry import register
from .base import SamplingSummary, as_numpy


def smooth_masks(n: int, shape: tuple[int, int], cells: int, p: float,
                 rng: np.random.Generator) -> np.ndarray:
    """RISE masks ``(n, H*W)`` in [0, 1]: a ``cells x cells`` Bernoulli(p) grid upsampled
    bilinearly to ``(cells+1) * ceil(H/cells)`` and cropped at a random shift."""
    return render_smooth(draw_smooth(n, shape, cells, p, rng), shape, cells)


def draw_smooth(n: int, shape: tuple[int, int], cells: int, p: float,
                rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The random part of ``n`` smooth masks: grids ``(n, cells, cells)`` and shifts."""
    H, W = shape
    ch, cw = math.ceil(H / cells), math.ceil(W / cells)
    grid = rng.random((n, cells, cells)) < p
    return grid, rng.integers(0, ch, size=n), rng.integers(0, cw, size=n)


def render_smooth(draw, shape: tuple[int, int], cells: int) -> np.ndarray:
    """Smooth masks ``(n, H*W)`` from :func:`draw_smooth`'s grids and shifts."""
    grid, dx, dy = draw
    H, W = shape
    n = len(grid)
    ch, cw = math.ceil(H / cells), math.ceil(W / cells)
    g = torch.as_tensor(grid[:, None], dtype=torch.float64)
    up = torch.nn.functional.interpolate(g, size=((cells + 1) * ch, (cells + 1) * cw),
                                         mode="bilinear", align_corners=False)[:, 0]
    rows = torch.as_tensor(dx)[:, None] + torch.arange(H)[None]
    cols = torch.as_tensor(dy)[:, None] + torch.arange(W)[None]
    out = up[torch.arange(n)[:, None, None], rows[:, :, None], cols[:, None, :]]
    return out.reshape(n, H * W).clamp(0.0, 1.0).numpy()


@register("summary", "rise", aliases=("mean-when-included",))
class RISE(SamplingSummary):
    """``importance_i = E[v(M) M_i] / p`` over random masks ``M`` kept with probability ``p``.

    On images explained pixel by pixel (``d = H*W``) with a removal that accepts fractions, the
    masks are RISE's smooth upsampled grids (``cells`` per side); otherwise Bernoulli(p) masks
    over the features. ``normalize="self"`` divides by the mask sum instead of ``N p``. Not a
    semivalue: a dummy feature does not get zero.
    """

    name = "rise"
    default_coalitions = 4000
    default_per_feature = 0
    fixed_coalitions = 1

    def __init__(self, *, budget=None, tol=None, seed=None, min_units=32, p: float = 0.5,
                 cells: int = 7, normalize: str = "expectation") -> None:
        super().__init__(budget=budget, tol=tol, seed=seed, min_units=min_units)
        self.p, self.cells, self.normalize = p, cells, normalize

    def unit_cost(self, d):
        return 1

    def fixed_cost(self, game):
        return 1

    def start(self, game, rows, max_units, rng):
        shape, map_kind = game.positions
        smooth = (game.kind == "image" and game.accepts_fractional
                  and len(shape) == 2 and shape[0] * shape[1] == game.d
                  and map_kind == "patch")
        n, d, vs = len(rows), game.d, game.value_shape
        # masks are made and evaluated in blocks that keep them under the memory cap
        # (rendering a block holds the upsampled grids, the crop and its clipped copy: about
        # 16 bytes x 8 arrays per pixel and mask in float64)
        block = max(1, game.memory_cap // (d * 8 * 16))
        return {"smooth": smooth, "shape": shape, "block": block,
                "sum": torch.zeros((n, d, *vs), dtype=torch.float64),
                "sumsq": torch.zeros((n, d, *vs), dtype=torch.float64),
                "msum": torch.zeros(d, dtype=torch.float64), "count": 0}

    def draw(self, state, n_units, d, rng):
        if state["smooth"]:
            return draw_smooth(n_units, state["shape"], self.cells, self.p, rng)
        return rng.random((n_units, d)) < self.p

    def round_masks(self, design):
        return design if isinstance(design, np.ndarray) else None

    def evaluate(self, game, design, rows, state):
        """Evaluate and accumulate block by block: sum_j v_j M_j and sum_j v_j^2 M_j^2 as
        matrix products, so no (explicands x masks x features) array is ever built."""
        a = torch.as_tensor(state["active"])  # positions of these rows in the summary
        m = len(design[0]) if isinstance(design, tuple) else len(design)
        for s in range(0, m, state["block"]):
            e = min(m, s + state["block"])
            if isinstance(design, tuple):
                M = render_smooth(tuple(x[s:e] for x in design), state["shape"], self.cells)
            else:
                M = design[s:e]
            vals = game(M, rows)  # (n, b[, k])
            Mt = torch.as_tensor(M, dtype=torch.float64)
            state["sum"][a] += rowwise_product(vals, Mt) / self.p
            state["sumsq"][a] += rowwise_product(vals ** 2, Mt ** 2) / self.p**2
            state["msum"] += Mt.sum(0)
        state["count"] += m

    def update(self, state, design, values, active):
        """Accumulated in :meth:`evaluate`."""

    def estimate(self, state, active):
        a = torch.as_tensor(active)
        N = state["count"]
        mean = state["sum"][a] / N
        var = (state["sumsq"][a] - N * mean ** 2) / max(N - 1, 1)
        se = torch.sqrt(var.clamp_min(0) / N)
        if self.normalize == "self":
            shape = (1, -1, *([1] * (mean.ndim - 2)))
            scale = N * self.p / state["msum"].clamp_min(1e-12).reshape(shape)
            mean, se = mean * scale, se * scale
        return as_numpy(mean), as_numpy(se)

    def describe(self):
        return {"name": self.name, "budget": self.budget, "seed": self.seed, "p": self.p,
                "cells": self.cells, "normalize": self.normalize}
