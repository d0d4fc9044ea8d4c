"""Kernel Banzhaf: Banzhaf values as the coefficients of a least-squares regression (Liu,
Witter, Korn, Alrashed, Paparas, Musco & Freire 2024, *Kernel Banzhaf: A Fast and Robust
Estimator for Banzhaf Values*).

The linear function ``c + Σ_i φ_i z_i`` closest to the game in unweighted least squares over
all ``2^d`` coalitions ``z ∈ {0,1}^d`` has the Banzhaf values as its coefficients (Hammer &
Holzman 1992). Kernel Banzhaf solves a sampled instance: the rows of this regression all have
the same leverage score, so leverage-score sampling is uniform sampling of coalitions, and
each sampled ``S`` comes with its complement ``D\\S`` (paired sampling, as in the paper).

With ``x = 2z - 1 ∈ {±1}^d`` a pair ``(S, D\\S)`` is ``(x, -x)``, and the regression with an
intercept on the pairs splits in two: the intercept from the pair sums, and ``φ`` from the
pair differences ``u = v(S) - v(D\\S)`` by ``φ = (XᵀX)⁻¹ Xᵀu`` (no intercept), ``X`` the pairs'
``x`` rows. The pairs are independent draws, so the standard error is the
heteroskedasticity-consistent sandwich ``(XᵀX)⁻¹ (Σ_p e_p² x_p x_pᵀ) (XᵀX)⁻¹`` of that
regression, residuals ``e = u - Xφ``, with the HC1 small-sample factor ``P / (P - d)``.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from .._warn import warn
from ..models import one_thread, rowwise_matmul
from ..registry import register
from .base import SamplingSummary, as_numpy
from .exact import MAX_EXACT_FEATURES, ExactBanzhaf


@register("summary", "kernel-banzhaf")
class KernelBanzhaf(SamplingSummary):
    """Banzhaf values by Kernel Banzhaf: least squares on uniform complement pairs, with a
    sandwich standard error (HC1) with the pair as the unit.

    Unit: a complement pair ``(S, D\\S)``, ``S`` uniform over all ``2^d`` coalitions. A game
    that is additive (``v(S) = c + Σ_{i∈S} a_i``) is recovered exactly from any ``d``
    independent pairs; a budget that covers every coalition (``(2^d - 1) K + 1`` rows,
    ``d <= 20``) gives exact Banzhaf values by enumeration, with ``stderr`` 0. ``base_values``
    is ``v(∅)``.
    """

    name = "kernel-banzhaf"
    one_round = True
    blockable = False  # the round's design is kept once, with every explicand's values

    def unit_cost(self, d):
        return 2

    def minimum_units(self, d):
        return d + 1

    def round_masks(self, design):
        return np.concatenate([design, ~design])

    def start(self, game, rows, max_units, rng):
        return {"pairs": [], "y_chunks": [], "first": True, "memory_cap": game.memory_cap,
                "d": game.d}

    def draw(self, state, n_units, d, rng):
        return rng.random((n_units, d)) < 0.5

    def evaluate(self, game, design, rows, state):
        first = state.pop("first", False)  # ∅ goes with the first round: one game call
        masks = [design, ~design]
        if first:
            masks.insert(0, np.zeros((1, game.d), dtype=bool))
        vals = game(np.concatenate(masks), rows)
        if first:
            state["base"] = as_numpy(vals[:, 0])
            vals = vals[:, 1:]
        U = len(design)
        return vals[:, :U] - vals[:, U:]  # u = v(S) - v(D\S): (n, U[, k])

    def update(self, state, design, values, active):
        state["pairs"].append(design)
        state["y_chunks"].append((active, values))

    @staticmethod
    def gather_u(state, active) -> torch.Tensor:
        """Pair differences ``(len(active), P[, k])`` of the active explicands (all of them
        saw every round)."""
        parts = [u[torch.as_tensor(np.searchsorted(act, active))]
                 for act, u in state["y_chunks"]]
        return torch.cat(parts, 1)

    def estimate(self, state, active):
        X = torch.as_tensor(np.concatenate(state["pairs"]), dtype=torch.float64) * 2 - 1
        u = self.gather_u(state, active)
        phi, se = paired_regression(X, u, state["memory_cap"])
        return as_numpy(phi), as_numpy(se)

    def resolve_budget(self, game):
        d, K = game.d, game.rows_per_coalition
        every = (2**d - 1) * K + 1
        if self.budget is not None and d <= MAX_EXACT_FEATURES and self.budget >= every:
            return every  # covers every coalition: exact, whatever the minimum
        return super().resolve_budget(game)

    def enumerates(self, game) -> bool:
        """Whether the budget covers every coalition, so that the values are exact Banzhaf
        values by enumeration (SE = 0)."""
        d = game.d
        return bool(d <= MAX_EXACT_FEATURES and game.sample_rows is None and
                    self.resolve_budget(game) >= (2**d - 1) * game.rows_per_coalition + 1)

    def check(self, game):
        from ..inputs import check_option

        self.budget = check_option("budget", self.budget)
        self.tol = check_option("tol", self.tol)
        if not self.enumerates(game):
            super().check(game)

    def planned_rows(self, game):
        if self.enumerates(game):
            return ExactBanzhaf().planned_rows(game)
        return super().planned_rows(game)

    def __call__(self, game, rows=None):
        rows_ = np.arange(game.n) if rows is None else np.asarray(rows)
        self.check(game)
        if self.enumerates(game):
            res = ExactBanzhaf()(game, rows_)
            res.extras = {"budget": self.resolve_budget(game), "enumerated": True}
            return res
        return super().__call__(game, rows_)

    def describe(self):
        return {"name": self.name, "budget": self.budget, "tol": self.tol, "seed": self.seed}


def paired_regression(X: torch.Tensor, u: torch.Tensor,
                      memory_cap: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``φ = (XᵀX)⁻¹ Xᵀu`` and its HC1 sandwich standard error for each explicand (and output).

    ``X (P, d)``: the pairs' ``±1`` rows; ``u (n, P[, k])``: their differences ``v(S) -
    v(D\\S)``. The standard error of ``φ_i`` is ``sqrt(P/(P-d) Σ_p e_p² W_pi²)`` with ``W =
    X (XᵀX)⁻¹``, so no ``(d, d)`` matrix per explicand is formed. Each explicand's products
    are computed alone (:func:`~xai.models.rowwise_matmul`): the same values in any block.
    A singular ``XᵀX`` (fewer distinct pairs than features) gives a pseudo-inverse, a
    warning and infinite standard errors."""
    P, d = X.shape
    n, tail = u.shape[0], tuple(u.shape[2:])
    k = math.prod(tail)
    flat = u.reshape(n, P, k).movedim(2, 1).reshape(n * k, P)
    H = X.T @ X  # counts of ±1 products: exact in float64
    with one_thread():  # the same bits on any machine
        L, info = torch.linalg.cholesky_ex(H)
        singular = int(info) != 0 or P <= d or \
            float(L.diagonal().min() / L.diagonal().max()) < 1e-7
        Hinv = torch.linalg.pinv(H, hermitian=True) if singular else torch.cholesky_inverse(L)
    if singular:
        warn("the Kernel Banzhaf design has fewer distinct complement pairs than features "
             "(some features were always kept or removed together); using a pseudo-inverse, "
             "so those features share their credit. Raise the budget.")
    W = X @ Hinv  # (P, d)
    W2 = W * W
    cap = max(1, int(memory_cap) // 4)
    nr = max(1, cap // (8 * 4 * max(P, d)))  # rows per block: a few (rows, P) arrays
    phi = torch.empty(n * k, d, dtype=torch.float64)
    var = torch.empty(n * k, d, dtype=torch.float64)
    for r0 in range(0, n * k, nr):
        blk = flat[r0:r0 + nr]
        phi[r0:r0 + nr] = p = rowwise_matmul(blk, W)  # Hinv Xᵀu = (X Hinv)ᵀ u
        e = blk - rowwise_matmul(p, X.T)
        var[r0:r0 + nr] = rowwise_matmul(e * e, W2)
    se = torch.sqrt(var.clamp_min(0) * (P / (P - d) if P > d else 1.0))
    if singular:
        se = torch.full_like(se, float("inf"))

    def unflat(t):  # (n * k, d) -> (n, d, *tail)
        return t.reshape(n, k, d).movedim(1, 2).reshape(n, d, *tail)

    return unflat(phi), unflat(se)
