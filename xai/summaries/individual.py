"""Remove-individual (occlusion) and include-individual summaries."""

from __future__ import annotations

import numpy as np

from ..registry import register
from .base import Summary, SummaryResult, as_numpy


def _singletons(d: int, keep_others: bool) -> np.ndarray:
    eye = np.eye(d, dtype=bool)
    return ~eye if keep_others else eye


@register("summary", "remove-individual", aliases=("occlusion-summary", "remove"))
class RemoveIndividual(Summary):
    """``a_i = v(D) - v(D \\ {i})``: the drop when feature i alone is removed (occlusion).

    With a stochastic removal that can redraw (permutation importance), the draws are repeated
    ``n_repeats`` times: values are the mean, ``stderr`` the SD over repeats / sqrt(R), and the
    per-repeat values are kept in ``extras["importances"]``."""

    name = "remove-individual"

    def __init__(self, *, n_repeats: int = 5) -> None:
        self.n_repeats = n_repeats

    def __call__(self, game, rows=None) -> SummaryResult:
        rows = np.arange(game.n) if rows is None else np.asarray(rows)
        masks = _singletons(game.d, keep_others=True)
        repeats = self.n_repeats if game.can_redraw else 1
        reps = []
        for r in range(repeats):
            if r:
                game.redraw(r)
            full = as_numpy(game.v_full)[rows]
            reps.append(full[:, None] - as_numpy(game(masks, rows)))
        reps = np.stack(reps)
        values = reps.mean(0)
        stderr = reps.std(0, ddof=1) / np.sqrt(repeats) if repeats > 1 else np.zeros_like(values)
        n = len(rows)
        extras = {"importances": reps} if repeats > 1 else {}
        return SummaryResult(values, stderr, as_numpy(game.v_full)[rows], np.full(n, repeats),
                             np.ones(n, bool), np.full(n, game.d + 1), extras)

    def planned_rows(self, game) -> int:
        """``d`` coalitions per repeat (priced with ``∅``, which it skips: an upper bound)."""
        return game.planned_rows(game.d * (self.n_repeats if game.can_redraw else 1))

    def describe(self):
        return {"name": self.name, "n_repeats": self.n_repeats}


@register("summary", "include-individual", aliases=("include",))
class IncludeIndividual(Summary):
    """``a_i = v({i}) - v(∅)``: the gain when feature i alone is present."""

    name = "include-individual"

    def __call__(self, game, rows=None) -> SummaryResult:
        rows = np.arange(game.n) if rows is None else np.asarray(rows)
        empty = as_numpy(game.v_empty(rows))
        values = as_numpy(game(_singletons(game.d, keep_others=False), rows)) - empty[:, None]
        n = len(rows)
        return SummaryResult(values, np.zeros_like(values), empty, np.ones(n, np.int64),
                             np.ones(n, bool), np.full(n, game.d + 1))

    def planned_rows(self, game) -> int:
        """``∅``, ``D`` and the ``d`` singletons."""
        return game.planned_rows(game.d)
