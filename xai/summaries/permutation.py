"""Shapley values by antithetic permutation sampling (the pair ``(pi, reverse pi)`` is the
unit; every unit is exactly efficient)."""

from __future__ import annotations

import numpy as np
import torch

from ..registry import register
from .base import SamplingSummary, as_numpy


def permutation_masks(perms: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Prefix coalitions of each permutation and of its reverse, sizes ``1..d-1``.

    Returns masks ``(U, 2(d-1), d)`` (first the forward prefixes, then the reverse ones) and the
    rank of every feature in its permutation ``(U, d)``.
    """
    U, d = perms.shape
    rank = np.empty_like(perms)
    np.put_along_axis(rank, perms, np.arange(d)[None].repeat(U, 0), axis=1)
    sizes = np.arange(1, d)
    fwd = rank[:, None, :] < sizes[None, :, None]
    rev = rank[:, None, :] >= (d - sizes)[None, :, None]
    return np.concatenate([fwd, rev], axis=1), rank


def chain_contributions(values: torch.Tensor, v_empty: torch.Tensor, v_full: torch.Tensor,
                        rank: np.ndarray) -> torch.Tensor:
    """Unit values ``g = (Δ(pi) + Δ(reverse pi)) / 2`` per feature: ``(n, U, d[, k])`` from the
    values ``(n, U, 2(d-1)[, k])`` of :func:`permutation_masks`' coalitions.

    ``v_empty`` and ``v_full`` are ``(n, U[, k])``: the chain ends of every unit.
    """
    n, U = values.shape[:2]
    d = rank.shape[1]
    tail = values.shape[3:]
    ve, vf = v_empty.reshape(n, U, 1, *tail), v_full.reshape(n, U, 1, *tail)
    if d == 1:  # one step, from the empty to the full coalition, in both chains
        return (vf - ve).add(vf - ve).mul_(0.5)
    # the steps of both chains in one buffer (n, U, 2, d): step t of the forward chain adds
    # pi[t], of the reverse chain pi[d-1-t]; chain values are ve, values..., vf
    steps = values.new_empty((n, U, 2, d, *tail))
    for c, part in enumerate((values[:, :, :d - 1], values[:, :, d - 1:])):
        torch.sub(part[:, :, :1], ve, out=steps[:, :, c, :1])
        torch.sub(part[:, :, 1:], part[:, :, :-1], out=steps[:, :, c, 1:d - 1])
        torch.sub(vf, part[:, :, -1:], out=steps[:, :, c, d - 1:])
    # feature j's steps are read at rank[u, j] (forward) and d-1-rank[u, j] (reverse)
    at = (np.arange(U) * 2 * d)[:, None]
    idx = np.concatenate([(at + rank).ravel(), (at + 2 * d - 1 - rank).ravel()])
    both = steps.reshape(n, U * 2 * d, *tail).index_select(1, torch.as_tensor(idx))
    both = both.reshape(n, 2, U, d, *tail)
    return torch.add(both[:, 0], both[:, 1]).mul_(0.5)


@register("summary", "permutation-shapley", aliases=("permutation",))
class PermutationShapley(SamplingSummary):
    """Shapley values by antithetic permutation sampling.

    Unit: a uniform permutation and its reverse, ``2(d-1)`` coalitions; values are the mean of
    the units, ``stderr`` their SD / sqrt(units). Exact for games with interactions of order at
    most two after one unit; efficiency holds exactly for every estimate. On a dataset game with
    row sampling (SAGE) every unit draws one data row, used by both members of the pair, and
    (``draws_per_unit``) its own subset of the background rows, shared along its chains.
    """

    name = "permutation-shapley"
    efficient = True
    one_round = True  # a fixed budget: one game call (per-unit sums, batch-independent)

    def __init__(self, *, budget=None, tol=None, seed=None, min_units=32,
                 rtol: float | None = None) -> None:
        super().__init__(budget=budget, tol=tol, seed=seed, min_units=min_units)
        self.rtol = rtol

    def unit_cost(self, d):
        return 2 * (d - 1)

    def round_masks(self, perms):
        if self._row_sampling:  # every unit has its own data row: nothing repeats
            return None
        return permutation_masks(perms)[0].reshape(-1, perms.shape[1])

    def start(self, game, rows, max_units, rng):
        n = len(rows)
        vshape = game.value_shape
        self._row_sampling = game.sample_rows is not None
        return {"ve": game.v_empty(rows), "vf": game.v_full[torch.as_tensor(rows)],
                "sum": torch.zeros((n, game.d, *vshape), dtype=torch.float64),
                "sumsq": torch.zeros((n, game.d, *vshape), dtype=torch.float64),
                "count": 0, "base": as_numpy(game.v_empty(rows)),
                "sampled_rows": game.sample_rows,
                "draw_subsets": game.draw_subsets if self._row_sampling else None}

    def draw(self, state, n_units, d, rng):
        perms = rng.permuted(np.tile(np.arange(d), (n_units, 1)), axis=1)
        if state["sampled_rows"] is not None:  # stochastic dataset game: one data row per unit
            state["unit_rows"] = rng.integers(state["sampled_rows"], size=n_units)
            state["unit_draws"] = state["draw_subsets"](n_units, rng)
        return perms

    def evaluate(self, game, perms, rows, state):
        masks, rank = permutation_masks(perms)
        state["rank"] = rank
        U, m, d = masks.shape
        if state["sampled_rows"] is not None:
            ur = state["unit_rows"]
            vals = game.local(masks, ur, state["unit_draws"])  # (U, m[, k]) for row ur[u]
            state["chain"] = (game.local_empty(ur), game.local_full(ur))
            return vals[None]
        return game(masks.reshape(U * m, d), rows).reshape(len(rows), U, m,
                                                           *game.value_shape)

    def update(self, state, perms, values, active):
        U = len(perms)
        if state["sampled_rows"] is not None:
            ve, vf = state["chain"]  # per unit: its data row's chain ends
            g = chain_contributions(values, ve[None], vf[None], state["rank"])
        else:
            a = torch.as_tensor(active)
            tail = state["ve"].shape[1:]
            ve = state["ve"][a][:, None].expand(len(active), U, *tail)
            vf = state["vf"][a][:, None].expand(len(active), U, *tail)
            g = chain_contributions(values, ve, vf, state["rank"])
        a = torch.as_tensor(active)
        state["sum"][a] += g.sum(1)
        state["sumsq"][a] += (g ** 2).sum(1)
        state["count"] += U

    def estimate(self, state, active):
        a = torch.as_tensor(active)
        M = state["count"]
        mean = state["sum"][a] / M
        var = (state["sumsq"][a] - M * mean ** 2) / max(M - 1, 1)
        se = torch.sqrt(var.clamp_min(0) / M) if M > 1 else torch.full_like(mean, float("inf"))
        return as_numpy(mean), as_numpy(se)

    def stop(self, values, stderr):
        conv = super().stop(values, stderr)
        if self.rtol is not None:
            v = values.reshape(len(values), -1)
            spread = v.max(1) - v.min(1)
            se = stderr.reshape(len(stderr), -1).max(1)
            conv |= se < self.rtol * np.where(spread > 0, spread, np.inf)
        return conv

    def describe(self):
        return {"name": self.name, "budget": self.budget, "tol": self.tol, "seed": self.seed,
                "rtol": self.rtol}
