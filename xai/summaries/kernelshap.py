"""KernelSHAP: Shapley values as the solution of the kernel-weighted, efficiency-constrained
least-squares problem (Lundberg & Lee 2017; Covert & Lee 2021).

Paired sampling (every sampled coalition with its complement), whole size strata enumerated
while the budget affords them, the efficiency constraint solved exactly (KKT), no L1 and no
feature truncation, and a sandwich standard error with the complement pair as the unit.
"""

from __future__ import annotations

import math
import warnings
from itertools import combinations

import numpy as np
import torch

from ..registry import register
from .base import SamplingSummary, as_numpy


def size_mass(d: int) -> np.ndarray:
    """Kernel mass of each coalition size ``k = 0..d`` (0 at both ends), normalised to 1."""
    k = np.arange(d + 1, dtype=np.float64)
    mass = np.zeros(d + 1)
    mass[1:d] = (d - 1) / (k[1:d] * (d - k[1:d]))
    return mass / mass.sum()


def plan_strata(d: int, n_coalitions: int) -> tuple[list[int], np.ndarray]:
    """Sizes to enumerate, and the sampling probabilities of the remaining sizes.

    Size pairs ``(k, d-k)`` are visited from the extremes inward; a pair is enumerated when
    the coalitions still affordable times its share of the remaining kernel mass cover all its
    subsets; the visit stops at the first pair that fails.
    """
    mass = size_mass(d)
    left = float(n_coalitions)
    remaining = 1.0
    enumerated: list[int] = []
    for k in range(1, d // 2 + 1):
        sizes = [k] if k == d - k else [k, d - k]
        count = sum(math.comb(d, s) for s in sizes)
        share = sum(mass[s] for s in sizes) / remaining if remaining > 0 else 0
        if left * share >= count and count <= left:
            enumerated += sizes
            left -= count
            remaining -= sum(mass[s] for s in sizes)
        else:
            break
    probs = mass.copy()
    probs[enumerated] = 0
    total = probs.sum()
    return enumerated, (probs / total if total > 0 else probs)


@register("summary", "kernelshap", aliases=("kernel-shap",))
class KernelSHAP(SamplingSummary):
    """Shapley values by KernelSHAP (paired sampling, enumerated strata, exact constraint).

    Unit: a complement pair ``(S, D\\S)``. ``variance="sandwich"`` (default) or
    ``"bootstrap"`` (200 refits over resampled pairs). With a budget that covers every
    coalition the result is exact Shapley and ``stderr`` is 0.
    """

    name = "kernelshap"
    efficient = True

    def __init__(self, *, budget=None, tol=None, seed=None, min_units=32,
                 enumerate_strata: bool = True, variance: str = "sandwich") -> None:
        super().__init__(budget=budget, tol=tol, seed=seed, min_units=min_units)
        self.enumerate_strata = enumerate_strata
        if variance not in ("sandwich", "bootstrap"):
            from ..errors import unknown_name

            raise unknown_name("variance estimator", variance, ("sandwich", "bootstrap"))
        self.variance = variance

    blockable = False  # keeps the round's design with all explicands' values

    def unit_cost(self, d):
        return 2

    def minimum_units(self, d):
        return d + 1

    def round_masks(self, design):
        return np.concatenate([design, ~design])

    def start(self, game, rows, max_units, rng):
        d = game.d
        n = len(rows)
        vshape = game.value_shape
        ve = game.v_empty(rows)
        vf = game.v_full[torch.as_tensor(rows)]
        n_coal = 2 * max_units
        enum, probs = plan_strata(d, n_coal) if self.enumerate_strata else ([], size_mass(d))
        A = torch.zeros(d, d, dtype=torch.float64)
        b = torch.zeros((n, d, *vshape), dtype=torch.float64)
        mass = size_mass(d)
        K = game.rows_per_coalition
        n_enum = 0
        enum_masks, enum_y = [], []
        for s in enum:  # fixed part: every subset of an enumerated size, weight mu(S)
            masks = np.zeros((math.comb(d, s), d), dtype=bool)
            for j, c in enumerate(combinations(range(d), s)):
                masks[j, list(c)] = True
            w = mass[s] / len(masks)
            z = torch.as_tensor(masks, dtype=torch.float64)
            y = game(masks, rows) - ve[:, None]
            enum_y.append(y)
            A += w * z.T @ z
            b += w * torch.einsum("md,nm...->nd...", z, y)
            n_enum += len(masks)
            enum_masks.append(masks)
        full = not probs.any()
        seen = {k.tobytes() for k in np.packbits(np.concatenate(enum_masks), axis=1)} \
            if enum_masks else set()
        return {"A_fixed": A, "b_fixed": b, "ve": ve, "vf": vf, "probs": probs, "d": d,
                "enum_masks": enum_masks, "enum_y": enum_y,
                "pairs": [], "y": [], "W_rest": float(probs.sum() and mass[probs > 0].sum()),
                "base": as_numpy(ve), "exact": full, "seen": seen, "charged": n_enum * K,
                "memory_cap": game.memory_cap,
                "extras": {"enumerated_sizes": sorted(enum)}}

    def resolve_budget(self, game):
        d, K = game.d, game.rows_per_coalition
        if self.enumerate_strata and self.budget is not None and d <= 20 and \
                self.budget >= (2**d - 1) * K + 1:
            return int(self.budget)  # covers every coalition: exact, whatever the minimum
        return super().resolve_budget(game)

    def draw(self, state, n_units, d, rng):
        probs = state["probs"]
        sizes = rng.choice(d + 1, size=n_units, p=probs)
        keys = rng.random((n_units, d))
        order = np.argsort(keys, axis=1)
        ranks = np.empty_like(order)
        np.put_along_axis(ranks, order, np.arange(d)[None].repeat(n_units, 0), axis=1)
        return ranks < sizes[:, None]  # uniform subset of the drawn size

    def evaluate(self, game, design, rows, state):
        masks = np.concatenate([design, ~design], axis=0)
        vals = game(masks, rows)
        U = len(design)
        return torch.stack([vals[:, :U], vals[:, U:]], 2)  # (n, U, 2[, k])

    def update(self, state, design, values, active):
        state["pairs"].append(design)
        if "y_all" not in state:
            n = state["b_fixed"].shape[0]
            state["y_all"] = [None] * n
            state["y_chunks"] = []
        state["y_chunks"].append((active, values - state["ve"][torch.as_tensor(active)][:, None,
                                                                                       None]))

    @staticmethod
    def gather_y(state, active) -> torch.Tensor:
        """Centred pair values ``(len(active), P, 2[, k])`` of the active explicands (all of
        them saw every round)."""
        parts = []
        for act, y in state["y_chunks"]:
            pos = np.searchsorted(act, active)
            parts.append(y[torch.as_tensor(pos)])
        return torch.cat(parts, 1)

    def _solve(self, state, active):
        Z = torch.as_tensor(np.concatenate(state["pairs"]), dtype=torch.float64)  # (P, d)
        P = Z.shape[0]
        Y = self.gather_y(state, active)
        omega = state["W_rest"] / (2 * P)
        a = torch.as_tensor(active)
        phi, C = constrained_fit(state["A_fixed"], state["b_fixed"][a], Z, Y[:, :, 0],
                                 Y[:, :, 1], omega, (state["vf"] - state["ve"])[a])
        return phi, Z, 1 - Z, Y, omega, C

    def estimate(self, state, active):
        if state["exact"]:  # pragma: no cover - handled in __call__
            raise AssertionError
        phi, Z, Zc, Y, omega, C = self._solve(state, active)
        P = Z.shape[0]
        if self.variance == "sandwich":
            se = sandwich_se(phi, Z, Y[:, :, 0], Y[:, :, 1], omega, C, state["memory_cap"])
        else:
            se = self._bootstrap(state, active, phi)
        if P < 2 or _is_singular(state["A_fixed"] + omega * (Z.T @ Z + Zc.T @ Zc)):
            # too few distinct coalitions: the fit interpolates and the sandwich collapses
            se = torch.full_like(phi, float("inf"))
        return as_numpy(phi), as_numpy(se)

    def _bootstrap(self, state, active, phi):
        rng = np.random.default_rng(0)
        pairs, chunks = state["pairs"], state["y_chunks"]
        P = sum(len(p) for p in pairs)
        reps = []
        for _ in range(200):
            pick = rng.integers(P, size=P)
            sub = dict(state)
            sub["pairs"] = [np.concatenate(pairs)[pick]]
            parts = []
            for act, y in chunks:
                parts.append(y[torch.as_tensor(np.searchsorted(act, active))])
            Y = torch.cat(parts, 1)[:, torch.as_tensor(pick)]
            sub["y_chunks"] = [(active, Y)]
            reps.append(self._solve(sub, active)[0])
        return torch.stack(reps).std(0)

    def __call__(self, game, rows=None):
        rows_ = np.arange(game.n) if rows is None else np.asarray(rows)
        budget = self.resolve_budget(game)
        max_units = self.max_units(game, budget)
        d = game.d
        if self.enumerate_strata and (2**d - 2) <= 2 * max_units and d <= 20:
            # the budget covers every coalition: exact Shapley by enumeration, SE = 0
            from .exact import ExactShapley

            res = ExactShapley()(game, rows_)
            res.extras = {"budget": budget, "enumerated_sizes": list(range(1, d))}
            return res
        return super().__call__(game, rows_)

    def describe(self):
        return {"name": self.name, "budget": self.budget, "tol": self.tol, "seed": self.seed,
                "enumerate_strata": self.enumerate_strata, "variance": self.variance}


def constrained_fit(A_fixed, b_fixed, Z, y1, y2, omega, delta):
    """The §4.4 KKT solution for paired samples: ``A = A_fixed + ω Σ_p (z zᵀ + z̄ z̄ᵀ)``,
    ``b = b_fixed + ω Σ_p (z y1 + z̄ y2)``, ``1ᵀφ = delta``. ``Z (P, d)`` float, ``y1, y2
    (n, P[, k])``, ``b_fixed (n, d[, k])``. Returns ``phi (n, d[, k])`` and the constrained
    inverse ``C`` used by the sandwich."""
    d = Z.shape[1]
    Zc = 1 - Z
    A = A_fixed + omega * (Z.T @ Z + Zc.T @ Zc)
    b = b_fixed + omega * (torch.einsum("pd,np...->nd...", Z, y1) +
                           torch.einsum("pd,np...->nd...", Zc, y2))
    Ainv = _inverse(A)
    one = torch.ones(d, dtype=torch.float64)
    Ai1 = Ainv @ one
    denom = one @ Ai1
    Aib = torch.einsum("ij,nj...->ni...", Ainv, b)
    lam = (Aib.sum(1) - delta) / denom  # (n[, k])
    phi = Aib - Ai1.reshape(1, d, *([1] * (b.ndim - 2))) * lam.unsqueeze(1)
    C = Ainv - torch.outer(Ai1, Ai1) / denom
    return phi, C


def sandwich_se(phi, Z, y1, y2, omega, C, memory_cap):
    """§4.4 sandwich standard error with the complement pair as the unit."""
    P = Z.shape[0]
    Zc = 1 - Z
    r1 = y1 - torch.einsum("pd,nd...->np...", Z, phi)
    r2 = y2 - torch.einsum("pd,nd...->np...", Zc, phi)
    # explicands in blocks, so the (block, P, d) score arrays stay under the cap
    per_row = P * Z.shape[1] * max(1, r1[0, 0].numel()) * 8 * 4
    nb = max(1, memory_cap // per_row)
    se = torch.empty_like(phi)
    tail = [1] * (r1.ndim - 2)
    for a in range(0, phi.shape[0], nb):
        b = a + nb
        s = omega * (Z.reshape(1, P, -1, *tail) * r1[a:b].unsqueeze(2) +
                     Zc.reshape(1, P, -1, *tail) * r2[a:b].unsqueeze(2))
        s = s - s.mean(1, keepdim=True)  # (nb, P, d[, k])
        t = torch.einsum("ij,npj...->npi...", C, s)
        se[a:b] = torch.sqrt((t ** 2).sum(1) * P / max(P - 1, 1))
    return se


def _is_singular(A: torch.Tensor) -> bool:
    eig = torch.linalg.eigvalsh(A)
    return bool(eig[0] <= 1e-10 * eig[-1].clamp_min(1e-300))


def _inverse(A: torch.Tensor) -> torch.Tensor:
    """Inverse of the design matrix; a pseudo-inverse with a warning when it is singular
    (Cholesky alone does not notice a numerically singular matrix)."""
    if _is_singular(A):
        warnings.warn("the KernelSHAP design matrix is rank-deficient (too few distinct "
                      "coalitions: some features were always kept or removed together); using a "
                      "pseudo-inverse, so those features share their credit. Raise the budget.",
                      stacklevel=4)
        return torch.linalg.pinv(A, hermitian=True)
    return torch.cholesky_inverse(torch.linalg.cholesky(A))
