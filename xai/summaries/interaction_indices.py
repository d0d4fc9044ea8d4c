"""Pairwise Shapley interaction indices as linear maps of a game's coalition values.

Every index here is linear in the game: ``I = sum_T c(T) v(T)`` with one coefficient vector
``c(T)`` per coalition over ``d`` main effects and ``d(d-1)/2`` pairs (in the order of
``np.triu_indices(d, 1)``). :class:`PairwiseIndex` gives those coefficients for any coalitions,
so exact values are one matrix product over all ``2^d`` coalitions and sampled ones an
importance-weighted mean over drawn coalitions. Definitions as in shapiq (Fumagalli et al.,
SHAP-IQ, NeurIPS 2023), with the discrete derivative ``Δ_ij v(T) = v(T+ij) - v(T+i) - v(T+j)
+ v(T)``:

- ``SII`` (Grabisch & Roubens 1999): pairs ``sum_{T ⊆ N-ij} (d-t-2)! t! / (d-1)! Δ_ij v(T)``,
  main effects the Shapley values (SII of order 1).
- ``BII`` (Grabisch & Roubens 1999): pairs ``2^-(d-2) sum_T Δ_ij v(T)``, main effects the
  Banzhaf values.
- ``STII`` (Sundararajan et al. 2020, Shapley-Taylor of order 2): pairs
  ``2/d sum_T Δ_ij v(T) / C(d-1, t)``, main effects ``v({i}) - v(∅)``; efficient.
- ``k-SII`` (Bordt & von Luxburg 2023): pairs as SII, main effects the Shapley values minus
  half the SII of every pair holding the feature (Bernoulli number ``B_1 = -1/2``); efficient.
- ``FSII`` (Tsai et al. 2022, Faith-Shap): the main effects and pairs of the 2-additive game
  closest to ``v`` in Shapley-kernel-weighted least squares, exact at ``∅`` and ``N``;
  efficient.

For a 2-additive game (Möbius coefficients ``a_i``, ``a_ij``) every index has pairs ``a_ij``;
the main effects are ``a_i`` for k-SII, STII and FSII and ``a_i + sum_j a_ij / 2`` for SII and
BII (:meth:`PairwiseIndex.of_two_additive`).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ..errors import unknown_name
from ..models import one_thread, rowwise_matmul

INDICES = ("k-SII", "SII", "STII", "FSII", "BII")
EFFICIENT = ("k-SII", "STII", "FSII")


def rowwise_dot(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """``A @ B`` in float64 with each row of ``A`` computed alone and the same bits with any
    number of threads (:func:`~xai.models.rowwise_matmul`)."""
    A, B = (torch.as_tensor(np.ascontiguousarray(t, dtype=np.float64)) for t in (A, B))
    return rowwise_matmul(A, B).numpy()


def check_index(index: str) -> str:
    """The index's canonical spelling, or ``UnknownNameError`` listing the indices."""
    for name in INDICES:
        if str(index).lower() == name.lower():
            return name
    raise unknown_name("interaction index", index, INDICES)


def pairs(d: int) -> tuple[np.ndarray, np.ndarray]:
    """Feature pairs ``(i, j)``, ``i < j``, in the order of ``np.triu_indices(d, 1)``."""
    return np.triu_indices(d, 1)


def shapley_kernel(d: int) -> np.ndarray:
    """``mu(t) = 1 / (C(d, t) t (d - t))`` for ``t = 0..d`` (0 at both ends, where the
    regression holds exactly)."""
    mu = np.zeros(d + 1)
    for t in range(1, d):
        mu[t] = 1.0 / (math.comb(d, t) * t * (d - t))
    return mu


def _pair_weights(index: str, d: int) -> np.ndarray:
    """``w(t)``, ``t = 0..d-2``: the weight of ``Δ_ij v(T)`` with ``|T| = t``."""
    t = np.arange(max(d - 1, 0))
    if index in ("SII", "k-SII"):
        return np.exp([math.lgamma(d - k - 1) + math.lgamma(k + 1) - math.lgamma(d)
                       for k in t])
    if index == "BII":
        return np.full(len(t), 2.0 ** -(d - 2))
    if index == "STII":
        return np.array([2.0 / d / math.comb(d - 1, int(k)) for k in t])
    raise ValueError(index)


class PairwiseIndex:
    """Coefficients of one index on ``d`` features: ``coefficients(masks)`` is ``(m, d + P)``,
    main effects first, then the ``P = d(d-1)/2`` pairs."""

    def __init__(self, index: str, d: int) -> None:
        self.index = check_index(index)
        self.d = d
        self.I, self.J = pairs(d)
        if self.index == "FSII":
            self._fsii_operator()
        else:
            self.w = _pair_weights("SII" if self.index == "k-SII" else self.index, d)
        s = np.arange(d)
        self.shapley = np.exp([math.lgamma(k + 1) + math.lgamma(d - k) - math.lgamma(d + 1)
                               for k in s])

    @property
    def n_pairs(self) -> int:
        return len(self.I)

    # -- coefficients
    def coefficients(self, masks: np.ndarray) -> np.ndarray:
        """``(m, d + P)`` coefficients of coalitions ``masks`` ``(m, d)``."""
        masks = np.asarray(masks, dtype=bool)
        if self.index == "FSII":
            return self._fsii(masks)
        d = self.d
        size = masks.sum(1)
        inside = masks[:, self.I].astype(np.int64) + masks[:, self.J]  # 0, 1 or 2 of the pair
        if d >= 2:
            t = np.clip(size[:, None] - inside, 0, d - 2)
            pair = np.where(inside == 1, -1.0, 1.0) * self.w[t]
        else:
            pair = np.zeros((len(masks), 0))
        if self.index == "STII":
            main = np.zeros((len(masks), d))
            main[size == 1] = masks[size == 1]
            main[size == 0] = -1.0
        elif self.index == "BII":
            main = np.where(masks, 1.0, -1.0) / 2.0 ** (d - 1)
        else:
            plus = self.shapley[np.clip(size - 1, 0, d - 1)][:, None]
            minus = self.shapley[np.clip(size, 0, d - 1)][:, None]
            main = np.where(masks, plus, -minus)
            if self.index == "k-SII":
                main = main - 0.5 * rowwise_dot(pair, self.incidence())
        return np.concatenate([main, pair], axis=1)

    def incidence(self) -> np.ndarray:
        """``(P, d)``: 1 where the pair holds the feature."""
        inc = np.zeros((self.n_pairs, self.d))
        inc[np.arange(self.n_pairs), self.I] = 1.0
        inc[np.arange(self.n_pairs), self.J] = 1.0
        return inc

    def design(self, masks: np.ndarray) -> np.ndarray:
        """The 2-additive regressors of coalitions: ``[1_i in T]`` and ``[1_i 1_j in T]``."""
        masks = np.asarray(masks, dtype=bool)
        return np.concatenate([masks, masks[:, self.I] & masks[:, self.J]],
                              axis=1).astype(np.float64)

    def of_two_additive(self, beta: np.ndarray) -> np.ndarray:
        """The index of the 2-additive game with Möbius coefficients ``beta`` ``(..., d + P,
        *tail)`` along axis 1: pairs unchanged; SII and BII main effects add half the pairs
        of each feature."""
        if self.index not in ("SII", "BII"):
            return beta
        out = np.array(beta, copy=True)
        pairs = np.moveaxis(beta[:, self.d:], 1, -1)  # (n, *tail, P): one row per explicand
        half = rowwise_dot(pairs.reshape(-1, self.n_pairs), self.incidence())
        out[:, :self.d] += 0.5 * np.moveaxis(half.reshape(*pairs.shape[:-1], self.d), -1, 1)
        return out

    # -- Faith-Shap: the constrained weighted least squares as one linear operator
    def _fsii_operator(self) -> None:
        """``G`` and ``h`` of ``beta = G b + h (v(N) - v(∅))``, ``b = sum_T mu(T) x_T
        (v(T) - v(∅))`` over ``T ≠ ∅, N``: the KKT system of the efficiency-constrained
        regression, with its Gram matrix in closed form (the kernel mass of the coalitions
        holding two given sets depends only on the size of their union)."""
        d = self.d
        mu = shapley_kernel(d)
        sets = [(i,) for i in range(d)] + [(int(i), int(j)) for i, j in zip(self.I, self.J)]
        p = len(sets)
        # holding[u] = sum over T ⊇ U, T ≠ N, |U| = u, of mu(|T|)
        holding = np.array([sum(mu[t] * math.comb(d - u, t - u) for t in range(u, d))
                            for u in range(d + 1)])
        M = np.zeros((p, d), dtype=bool)
        for q, S in enumerate(sets):
            M[q, list(S)] = True
        union = (M[:, None, :] | M[None, :, :]).sum(2)
        A = holding[union]
        K = np.zeros((p + 1, p + 1))
        K[:p, :p] = A
        K[:p, p] = K[p, :p] = 1.0
        with one_thread():  # the same bits on any machine
            Kinv = torch.linalg.inv(torch.as_tensor(K)).numpy()
        self.G, self.h = Kinv[:p, :p], Kinv[:p, p]
        self.mu = mu
        self.g = holding[M.sum(1)]  # sum_{T ≠ N} mu(T) x_T: the part of b from v(∅)

    def _fsii(self, masks: np.ndarray) -> np.ndarray:
        d = self.d
        size = masks.sum(1)
        coef = rowwise_dot(self.mu[size][:, None] * self.design(masks), self.G.T)
        empty, full = size == 0, size == d
        coef[empty] = -rowwise_dot(self.G, self.g[:, None])[:, 0] - self.h
        coef[full] = self.h
        return coef
