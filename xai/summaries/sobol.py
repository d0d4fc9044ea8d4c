"""Sobol total-order indices by Jansen's estimator (Fel et al. 2021), with a scrambled Sobol'
design for removals that accept fractional masks and a binary design otherwise."""

from __future__ import annotations

import numpy as np
import torch
from scipy.stats import qmc

from .._warn import warn
from ..registry import register
from .base import SamplingSummary, as_numpy


@register("summary", "sobol", aliases=("sobol-total",))
class SobolTotal(SamplingSummary):
    """Total-order Sobol indices ``S_T,i``. Unit: one replicate of ``n_rows`` design rows
    (``N(d+2)`` coalitions continuous, ``N(d+1)`` binary); values are the mean over replicates
    (default 4), ``stderr`` their SD / sqrt(R)."""

    name = "sobol"
    fixed_coalitions = 1

    def __init__(self, *, budget=None, tol=None, seed=None, n_rows: int = 32,
                 replicates: int = 4, design: str = "auto") -> None:
        super().__init__(budget=budget, tol=tol, seed=seed, min_units=replicates)
        self.n_rows, self.replicates, self.design = n_rows, replicates, design

    def _continuous(self, game) -> bool:
        return self.design == "continuous" or (self.design == "auto" and
                                               game.accepts_fractional)

    blockable = False  # keeps the round's design with all explicands' values

    def unit_cost(self, d):
        # continuous: rows A, B and C^(i); binary: A and the d flips
        return self.n_rows * (d + 2 if getattr(self, "_cont", True) else d + 1)

    def check(self, game) -> None:
        self._cont = self._continuous(game)
        if self.design == "continuous":
            game.require_fractional()
        super().check(game)

    def fixed_cost(self, game):
        return 1

    def resolve_budget(self, game):
        if self.budget is None:
            self.budget = self.replicates * self.unit_cost(game.d) * game.rows_per_coalition + 1
            try:
                return super().resolve_budget(game)
            finally:
                self.budget = None
        return super().resolve_budget(game)

    def planned_rows(self, game) -> int:
        """The whole budget for every explicand: fractional designs never repeat."""
        if self._continuous(game):
            return self.resolve_budget(game) * game.n
        return super().planned_rows(game)

    def start(self, game, rows, max_units, rng):
        n, d, vs = len(rows), game.d, game.value_shape
        return {"cont": self._continuous(game), "reps": [],
                "n": n, "d": d, "vs": vs}

    def draw(self, state, n_units, d, rng):
        designs = []
        N = self.n_rows
        for _ in range(n_units):
            if state["cont"]:
                s = qmc.Sobol(d=2 * d, scramble=True, seed=rng).random(N)
                A, B = s[:, :d], s[:, d:]
            else:
                A = rng.random((N, d)) < 0.5
                B = None
            designs.append((A, B))
        return designs

    def evaluate(self, game, designs, rows, state):
        out = []
        for A, B in designs:
            d, N = A.shape[1], A.shape[0]
            if B is not None:
                C = np.repeat(A[None], d, 0)
                C[np.arange(d), :, np.arange(d)] = B[:, np.arange(d)].T
                masks = np.concatenate([A, B, C.reshape(d * N, d)])
            else:
                C = np.repeat(A[None], d, 0)
                C[np.arange(d), :, np.arange(d)] ^= True
                masks = np.concatenate([A, C.reshape(d * N, d)])
            out.append(game(masks, rows))
        return out

    def update(self, state, designs, values, active):
        for (A, B), v in zip(designs, values, strict=True):
            N, d = A.shape
            vA = v[:, :N]
            if B is not None:
                vB, vC = v[:, N:2 * N], v[:, 2 * N:]
                var = torch.cat([vA, vB], 1).var(1, correction=1)
                vC = vC.reshape(v.shape[0], d, N, *v.shape[2:])
                num = ((vA[:, None] - vC) ** 2).mean(2) / 2
            else:
                vC = v[:, N:].reshape(v.shape[0], d, N, *v.shape[2:])
                var = vA.var(1, correction=1)
                num = ((vA[:, None] - vC) ** 2).mean(2) / 4
            if bool((var == 0).any()):
                warn("the game has zero variance over the Sobol design; its indices "
                     "are set to 0")
            st = torch.where(var[:, None] > 0, num / var[:, None].clamp_min(1e-300),
                             torch.zeros_like(num))
            full = torch.full((state["n"], d, *state["vs"]), float("nan"), dtype=torch.float64)
            full[torch.as_tensor(active)] = st
            state["reps"].append(full)

    def estimate(self, state, active):
        R = torch.stack(state["reps"])[:, torch.as_tensor(active)]
        mean = R.mean(0)
        se = R.std(0, correction=1) / np.sqrt(R.shape[0]) if R.shape[0] > 1 else \
            torch.full_like(mean, float("inf"))
        return as_numpy(mean), as_numpy(se)

    def describe(self):
        return {"name": self.name, "n_rows": self.n_rows, "replicates": self.replicates,
                "design": self.design, "seed": self.seed}
