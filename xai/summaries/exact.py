"""Exact Shapley and Banzhaf values by enumerating all ``2^d`` coalitions.

The values are accumulated block by block as ``phi += V_block @ C_block`` with the coefficient
of every coalition for every feature, so the ``2^d`` value table is never held at once.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ..errors import BudgetError
from ..models import rowwise_product
from ..registry import register
from .base import Summary, SummaryResult, as_numpy

MAX_EXACT_FEATURES = 20
HARD_LIMIT = 25


def enumerate_masks(d: int, start: int, stop: int) -> np.ndarray:
    """Masks of the coalitions numbered ``start..stop-1`` (bit i of the number = feature i)."""
    ints = np.arange(start, stop, dtype=np.int64)
    return ((ints[:, None] >> np.arange(d, dtype=np.int64)[None, :]) & 1).astype(bool)


def shapley_weights(d: int) -> np.ndarray:
    """``w[s] = s!(d-s-1)!/d!`` for ``s = 0..d-1``."""
    s = np.arange(d)
    return np.exp([math.lgamma(k + 1) + math.lgamma(d - k) - math.lgamma(d + 1) for k in s])


class _Enumeration(Summary):
    efficient = False

    def __init__(self, *, budget: int | None = None,
                 max_exact_features: int = MAX_EXACT_FEATURES) -> None:
        self.budget = budget
        if max_exact_features > HARD_LIMIT:
            raise BudgetError(f"max_exact_features={max_exact_features} exceeds the hard limit "
                              f"{HARD_LIMIT} (2^{HARD_LIMIT} coalitions)")
        self.max_exact_features = max_exact_features

    def coefficients(self, masks: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def check(self, game) -> int:
        d, K = game.d, game.rows_per_coalition
        rows = (2**d - 1) * K + 1
        alt = ("use method='kernelshap' or 'permutation-shap' (sampling with standard errors), "
               "or group features to reduce d")
        if d > self.max_exact_features:
            raise BudgetError(
                f"exact {self.name} with d={d} features needs 2^{d} = {2**d} coalitions "
                f"({rows} model rows at K_rem={K} per coalition), above the limit of "
                f"max_exact_features={self.max_exact_features}; {alt}")
        if self.budget is not None and rows > self.budget:
            raise BudgetError(
                f"exact {self.name} with d={d} features needs 2^{d} = {2**d} coalitions, "
                f"{rows} model rows at K_rem={K}, more than budget={self.budget}; {alt}")
        return rows

    def __call__(self, game, rows=None) -> SummaryResult:
        rows = np.arange(game.n) if rows is None else np.asarray(rows)
        self.check(game)
        d, n = game.d, len(rows)
        vshape = game.value_shape
        per_mask = n * max(1, math.prod(vshape)) * 8 * 4 + d * 16
        block = int(max(256, min(2**d, game.memory_cap // per_mask)))
        total = torch.zeros((n, d, *vshape), dtype=torch.float64)
        for a in range(0, 2**d, block):
            masks = enumerate_masks(d, a, min(2**d, a + block))
            vals = game(masks, rows)  # (n, B[, k])
            C = torch.as_tensor(self.coefficients(masks))
            total += rowwise_product(vals, C)
        values = as_numpy(total)
        n_ = np.full(n, 2**d)
        return SummaryResult(values, np.zeros_like(values), as_numpy(game.v_empty(rows)),
                             n_, np.ones(n, bool), n_)

    def planned_rows(self, game) -> int:
        """Every coalition but ``∅`` and ``D`` (which the game prices apart), once."""
        return game.planned_rows(2**game.d - 2)

    def describe(self):
        return {"name": self.name, "max_exact_features": self.max_exact_features}


@register("summary", "exact-shapley")
class ExactShapley(_Enumeration):
    """Exact Shapley values, ``phi_i = sum_{S not i} |S|!(d-|S|-1)!/d! (v(S+i) - v(S))``.
    Refuses ``d > max_exact_features`` (default 20) or a budget below ``(2^d-1) K + 1`` rows."""

    name = "exact-shapley"
    efficient = True

    def coefficients(self, masks):
        d = masks.shape[1]
        w = shapley_weights(d)
        size = masks.sum(1)
        plus = w[np.clip(size - 1, 0, d - 1)][:, None]  # i in S: +w(|S|-1)
        minus = w[np.clip(size, 0, d - 1)][:, None]  # i not in S: -w(|S|)
        return np.where(masks, plus, -minus)


@register("summary", "exact-banzhaf")
class ExactBanzhaf(_Enumeration):
    """Exact Banzhaf values, ``b_i = 2^-(d-1) sum_{S not i} (v(S+i) - v(S))``."""

    name = "exact-banzhaf"

    def coefficients(self, masks):
        d = masks.shape[1]
        return np.where(masks, 1.0, -1.0) / 2.0 ** (d - 1)
