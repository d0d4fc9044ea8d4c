"""KernelSHAP: Shapley values as the solution of the kernel-weighted, efficiency-constrained
least-squares problem (Lundberg & Lee 2017; Covert & Lee 2021).

Paired sampling (every sampled coalition with its complement), whole size strata enumerated
while the budget affords them, the efficiency constraint solved exactly (KKT), no L1 and no
feature truncation, and a sandwich standard error with the complement pair as the unit.
"""

from __future__ import annotations

import math
from itertools import combinations

import numpy as np
import torch

from .._warn import warn
from ..models import one_thread, rowwise_matmul, rowwise_product
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
    one_round = True
    keeps_rounds = True  # every pair (coalition) and value until the fit

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
        vf = game.v_full[torch.as_tensor(rows)]
        n_coal = 2 * max_units
        enum, probs = plan_strata(d, n_coal) if self.enumerate_strata else ([], size_mass(d))
        mass = size_mass(d)
        A = torch.as_tensor(strata_gram(d, enum))  # fixed part: weight mu(S) each
        enum_masks = [size_masks(d, s) for s in enum]
        n_enum = sum(len(m) for m in enum_masks)
        full = not probs.any()
        seen = {k.tobytes() for k in np.packbits(np.concatenate(enum_masks), axis=1)} \
            if enum_masks else set()
        # ∅ and the enumerated strata are evaluated with the first round (one game call)
        fixed = np.concatenate([np.zeros((1, d), dtype=bool), *enum_masks])
        return {"A_fixed": A, "vf": vf, "probs": probs, "d": d, "enum_sizes": list(enum),
                "enum_masks": enum_masks, "fixed_masks": fixed,
                "pairs": [], "y": [], "W_rest": float(probs.sum() and mass[probs > 0].sum()),
                "exact": full, "seen": seen, "charged": n_enum * game.rows_per_coalition,
                "memory_cap": game.memory_cap,
                "extras": {"enumerated_sizes": sorted(enum)}}

    @staticmethod
    def fold_fixed(state, values: torch.Tensor) -> None:
        """Take the values ``(n, 1 + n_enum[, k])`` of ``∅`` and the enumerated strata (all
        explicands): ``v(∅)``, the centred strata values and their part ``b_fixed`` of b."""
        del state["fixed_masks"]
        ve = values[:, 0]
        mass = size_mass(state["d"])
        b = torch.zeros((ve.shape[0], state["d"], *ve.shape[1:]), dtype=torch.float64)
        enum_y, at = [], 1
        for s, masks in zip(state["enum_sizes"], state["enum_masks"]):
            y = values[:, at:at + len(masks)] - ve[:, None]
            at += len(masks)
            z = torch.as_tensor(masks, dtype=torch.float64)
            b += mass[s] / len(masks) * rowwise_product(y, z)
            enum_y.append(y)
        state.update(ve=ve, base=as_numpy(ve), b_fixed=b, enum_y=enum_y)

    def resolve_budget(self, game):
        d, K = game.d, game.rows_per_coalition
        if self.enumerate_strata and self.budget is not None and d <= 20 and \
                self.budget >= (2**d - 1) * K + 1:
            return (2**d - 1) * K + 1  # covers every coalition: exact, whatever the minimum
        return super().resolve_budget(game)

    def draw(self, state, n_units, d, rng):
        sizes = rng.choice(d + 1, size=n_units, p=state["probs"])
        return uniform_subsets(rng, sizes, d)

    def evaluate(self, game, design, rows, state):
        fixed = state.get("fixed_masks")  # the first round: with ∅ and the strata
        f = 0 if fixed is None else len(fixed)
        vals = game(np.concatenate([design, ~design] if fixed is None else
                                   [fixed, design, ~design]), rows)
        if fixed is not None:
            self.fold_fixed(state, vals[:, :f])  # (every explicand is active in round 1)
            vals = vals[:, f:]
        U = len(design)
        return torch.stack([vals[:, :U], vals[:, U:]], 2)  # (n, U, 2[, k])

    def update(self, state, design, values, active):
        state["pairs"].append(design)
        ve = state["ve"][torch.as_tensor(active)]
        state.setdefault("y_chunks", []).append((active, values - ve[:, None, None]))

    @staticmethod
    def gather_y(state, active) -> torch.Tensor:
        """Centred pair values ``(len(active), P, 2[, k])`` of the active explicands (all of
        them saw every round)."""
        parts = []
        for act, y in state["y_chunks"]:
            pos = np.searchsorted(act, active)
            parts.append(y[torch.as_tensor(pos)])
        return torch.cat(parts, 1)

    @staticmethod
    def gram(state, Z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(ZᵀZ, Zᵀ1)`` of the sampled pairs, kept in the state and extended by the rounds
        added since the last estimate. The entries are counts of 0/1 products: float32
        blocks of at most 2²⁴ pairs add them exactly, so this is bit for bit the float64
        product, at half the cost."""
        P, d = Z.shape
        done, G, s = state.get("gram") or (0, None, None)
        if G is None or done > P:
            done, G, s = 0, torch.zeros(d, d, dtype=torch.float64), \
                torch.zeros(d, dtype=torch.float64)
        exact32 = Z.device.type == "cpu"  # (no TF32 rounding of the float32 products)
        for a in range(done, P, 2**24):
            new = Z[a:min(P, a + 2**24)]
            new = new.to(torch.float32) if exact32 else new
            G = G + (_gram32(new) if exact32 else new.T @ new).to(torch.float64)
            s = s + new.sum(0).to(torch.float64)  # counts: exact in float32 too
        state["gram"] = (P, G, s)
        return G, s

    def _solve(self, state, active):
        Z = torch.as_tensor(np.concatenate(state["pairs"]), dtype=torch.float64)  # (P, d)
        P = Z.shape[0]
        Y = self.gather_y(state, active)
        omega = state["W_rest"] / (2 * P)
        a = torch.as_tensor(active)
        phi, C, singular = constrained_fit(state["A_fixed"], state["b_fixed"][a], Z, Y[:, :, 0],
                                           Y[:, :, 1], omega, (state["vf"] - state["ve"])[a],
                                           gram=self.gram(state, Z))
        return phi, Z, Y, omega, C, singular

    def estimate(self, state, active):
        if state["exact"]:  # pragma: no cover - handled in __call__
            raise AssertionError
        phi, Z, Y, omega, C, singular = self._solve(state, active)
        P = Z.shape[0]
        if P < 2 or singular:
            # too few distinct coalitions: the fit interpolates and the sandwich collapses
            return as_numpy(phi), np.full(phi.shape, np.inf)
        if self.variance == "sandwich":
            se = sandwich_se(phi, Z, Y[:, :, 0], Y[:, :, 1], omega, C, state["memory_cap"])
        else:
            se = self._bootstrap(state, active, phi)
        return as_numpy(phi), as_numpy(se)

    def _bootstrap(self, state, active, phi):
        rng = np.random.default_rng(0)
        pairs, chunks = state["pairs"], state["y_chunks"]
        P = sum(len(p) for p in pairs)
        reps = []
        for _ in range(200):
            pick = rng.integers(P, size=P)
            sub = dict(state)
            sub["gram"] = None  # resampled pairs: their own Gram matrix
            sub["pairs"] = [np.concatenate(pairs)[pick]]
            parts = []
            for act, y in chunks:
                parts.append(y[torch.as_tensor(np.searchsorted(act, active))])
            Y = torch.cat(parts, 1)[:, torch.as_tensor(pick)]
            sub["y_chunks"] = [(active, Y)]
            reps.append(self._solve(sub, active)[0])
        return torch.stack(reps).std(0)

    def enumerates(self, game) -> bool:
        """Whether the budget covers every coalition, so that the values are exact Shapley
        values by enumeration (SE = 0)."""
        d = game.d
        return bool(self.enumerate_strata and d <= 20 and (2**d - 2) <= 2 * self.max_units(
            game, self.resolve_budget(game)))

    def planned_rows(self, game) -> int:
        if self.enumerates(game):
            from .exact import ExactShapley

            return ExactShapley().planned_rows(game)
        return super().planned_rows(game)

    def __call__(self, game, rows=None):
        rows_ = np.arange(game.n) if rows is None else np.asarray(rows)
        budget = self.resolve_budget(game)
        d = game.d
        if self.enumerates(game):
            from .exact import ExactShapley

            res = ExactShapley()(game, rows_)
            res.extras = {"budget": budget, "enumerated_sizes": list(range(1, d))}
            return res
        return super().__call__(game, rows_)

    def describe(self):
        return {"name": self.name, "budget": self.budget, "tol": self.tol, "seed": self.seed,
                "enumerate_strata": self.enumerate_strata, "variance": self.variance}


def strata_gram(d: int, sizes) -> np.ndarray:
    """``Σ_s mass(s) · mean over |S| = s of z_S z_Sᵀ`` for whole size strata ``sizes``: in
    closed form, ``s/d`` on the diagonal and ``s(s-1) / (d(d-1))`` off it (the shares of
    size-``s`` coalitions holding one given feature, and two), ``O(d²)`` with no masks."""
    mass = size_mass(d)
    diag = off = 0.0
    for s in sizes:
        diag += mass[s] * s / d
        off += mass[s] * s * (s - 1) / (d * (d - 1)) if d > 1 else 0.0
    A = np.full((d, d), off)
    np.fill_diagonal(A, diag)
    return A


def size_masks(d: int, s: int) -> np.ndarray:
    """Every coalition of size ``s`` as boolean masks ``(C(d, s), d)``, in the lexicographic
    order of ``itertools.combinations``. Sizes above ``d/2`` are the complements of size
    ``d - s`` in reverse order (the same sequence), so no tuple is longer than ``d/2``."""
    if 2 * s > d:
        return ~size_masks(d, d - s)[::-1]
    if s == 0:
        return np.zeros((1, d), dtype=bool)
    idx = np.array(list(combinations(range(d), s)), dtype=np.int64).reshape(-1, s)
    masks = np.zeros((len(idx), d), dtype=bool)
    masks[np.arange(len(idx))[:, None], idx] = True
    return masks


#: ``d`` from which :func:`uniform_subsets` selects by partition within each size (one
#: ``O(d)`` selection per row, a numpy call per distinct size) rather than one full sort
#: (``O(d log d)`` per row, one call): from here the sort's extra ``log d`` factor outweighs
#: the extra calls
PARTITION_MIN_D = 512


def uniform_subsets(rng: np.random.Generator, sizes: np.ndarray, d: int) -> np.ndarray:
    """Boolean masks ``(len(sizes), d)``, row ``u`` a uniform subset of size ``sizes[u]``: the
    features whose random key is among the row's ``sizes[u]`` smallest.

    One ``rng.random((U, d))`` draw; the row's ``sizes[u]``-th smallest key is found by a
    partition of the rows of each size, or, with several sizes below :data:`PARTITION_MIN_D`
    features, by one sort of the keys (no argsort and inverse permutation either way; the same
    masks). Rows with tied keys at the threshold (probability about ``d² 2⁻⁵⁴``) are redone by
    ranking.
    """
    sizes = np.asarray(sizes)
    keys = rng.random((len(sizes), d))
    if d == 0 or not len(sizes):
        return keys.astype(bool)
    kidx = np.minimum(np.maximum(sizes - 1, 0), d - 1)
    if sizes.min() == sizes.max():  # one size: one partition
        kth = np.partition(keys, kidx[0], axis=1)[:, kidx[0]:kidx[0] + 1]
    elif d < PARTITION_MIN_D:
        kth = np.take_along_axis(np.sort(keys, axis=1), kidx[:, None], 1)
    else:
        kth = np.empty((len(sizes), 1))
        order = np.argsort(sizes, kind="stable")
        starts = np.flatnonzero(np.diff(sizes[order], prepend=-1))
        for grp in np.split(order, starts[1:]):
            k = kidx[grp[0]]
            kth[grp, 0] = np.partition(keys[grp], k, axis=1)[:, k]
    masks = keys <= kth
    if sizes.min() <= 0:
        masks &= sizes[:, None] > 0
    bad = np.flatnonzero(masks.view(np.uint8).sum(1, dtype=np.int64) != sizes)  # (byte sums)
    if len(bad):  # pragma: no cover - ties of 53-bit keys
        ranks = np.argsort(np.argsort(keys[bad], axis=1, kind="stable"), axis=1)
        masks[bad] = ranks < sizes[bad, None]
    return masks


def _gram32(Z: torch.Tensor) -> torch.Tensor:
    """``ZᵀZ`` of a C-contiguous float32 CPU matrix by BLAS ``ssyrk`` (one triangle: half
    the products of a general matrix multiply), mirrored."""
    from scipy.linalg import blas

    Zc = Z.contiguous()
    if Zc.shape[0] == 0:
        return torch.zeros(Zc.shape[1], Zc.shape[1], dtype=torch.float32)
    # Zᵀ read column-major is Z's own memory: ssyrk(a = Zᵀ) gives a aᵀ = ZᵀZ, no copy
    U = torch.from_numpy(blas.ssyrk(1.0, Zc.numpy().T, trans=0, lower=0))
    return U.triu() + U.triu(1).T


def constrained_fit(A_fixed, b_fixed, Z, y1, y2, omega, delta, gram=None):
    """The KKT solution of the efficiency-constrained weighted least squares (Covert & Lee 2021)
    for paired samples: ``A = A_fixed + ω Σ_p (z zᵀ + z̄ z̄ᵀ)``,
    ``b = b_fixed + ω Σ_p (z y1 + z̄ y2)``, ``1ᵀφ = delta``. ``Z (P, d)`` float, ``y1, y2
    (n, P[, k])``, ``b_fixed (n, d[, k])``; ``gram``: ``(ZᵀZ, Zᵀ1)`` when already formed.

    Returns ``phi (n, d[, k])``, the constrained inverse ``C`` used by the sandwich, and
    whether ``A`` is numerically singular (then ``C`` comes from a pseudo-inverse). The
    complements are never formed: ``Z̄ᵀZ̄ = ZᵀZ − s1ᵀ − 1sᵀ + P 11ᵀ`` with ``s = Zᵀ1`` (exact
    for 0/1 designs) and ``Z̄ᵀy2 = 1 Σ_p y2 − Zᵀy2``.
    """
    P, d = Z.shape
    G, s = gram if gram is not None else (Z.T @ Z, Z.sum(0))
    A = A_fixed + omega * (G + (G - s[:, None] - s[None, :] + P))
    b = b_fixed + omega * (rowwise_product(y1 - y2, Z) + y2.sum(1).unsqueeze(1))
    Ainv, singular = _inverse_checked(A)
    one = torch.ones(d, dtype=torch.float64)
    Ai1 = Ainv @ one
    denom = one @ Ai1
    Aib = rowwise_product(b, Ainv.T)
    lam = (Aib.sum(1) - delta) / denom  # (n[, k])
    phi = Aib - Ai1.reshape(1, d, *([1] * (b.ndim - 2))) * lam.unsqueeze(1)
    C = Ainv - torch.outer(Ai1, Ai1) / denom
    return phi, C, singular


#: pairs × d² from which the sandwich forms ``U = Z Cᵀ`` in float32: there the ``O(P d²)``
#: products dominate the cost, and in float32 they move half the memory
SANDWICH_FLOAT32_WORK = 2**32


def sandwich_se(phi, Z, y1, y2, omega, C, memory_cap):
    """Sandwich (delta-method) standard error with the complement pair as the unit (Covert & Lee
    2021).

    The score of pair ``p`` is ``s_p = ω (r1_p z_p + r2_p z̄_p) = ω (a_p z_p + b_p 1)`` with
    ``a = r1 − r2``, ``b = r2``, so ``C s_p = ω (a_p u_p + b_p c)`` with ``u_p = C z_p`` (row
    ``p`` of ``U = Z Cᵀ``, formed once for every explicand) and ``c = C 1``. Centring on the
    means ``ū``, ``ā``, ``b̄`` (``α = a − ā``, ``β = b − b̄``, ``Ũ = U − ū``) gives
    ``C(s_p − s̄) = ω (a_p Ũ_p + α_p ū + β_p c − κ)``, ``κ = Σ_p α_p Ũ_p / P``, whose squares
    summed over the pairs are a few ``(rows × P) @ (P × d)`` products: ``O(P d²)`` once plus
    ``O(rows · P d)``, never a ``(rows, P, d)`` array.
    """
    P, d = Z.shape
    n = phi.shape[0]
    vshape = tuple(phi.shape[2:])
    k = math.prod(vshape)

    def flat(t):  # (n, X, *vshape) -> (n * k, X)
        t = t.reshape(n, t.shape[1], k)
        return t.movedim(2, 1).reshape(n * k, t.shape[1])

    c = C.sum(1)  # C 1
    ubar = C @ Z.mean(0)  # mean of the rows of U
    # U = Z Cᵀ and the products with it are the O(P d²) steps: in float32 when large (their
    # rounding, ~1e-6 relative, is far below the standard error's own sampling error, ~1/√P);
    # the sums over blocks and the final combination stay in float64
    dt = torch.float32 if P * d * d >= SANDWICH_FLOAT32_WORK else torch.float64
    CT = C.T.to(dt)
    cap = max(1, int(memory_cap) // 2)
    blk = max(1, cap // (8 * 3 * d))  # pairs per block of U
    keep = P * d * 8 <= cap  # keep the blocks of U for the next block of rows
    U_blocks: dict[int, torch.Tensor] = {}
    Phi, Y1, Y2 = flat(phi), flat(y1), flat(y2)
    R = len(Phi)
    nr = max(1, cap // (8 * 8 * P))  # rows per block: a few (rows, P) arrays
    out = torch.empty(R, d, dtype=torch.float64)
    for r0 in range(0, R, nr):
        rs = slice(r0, r0 + nr)
        ZPhi = rowwise_matmul(Phi[rs], Z.T)  # (rows, P), each row alone
        r2 = Y2[rs] - (Phi[rs].sum(1, keepdim=True) - ZPhi)
        a = Y1[rs] - ZPhi - r2
        alpha = a - a.mean(1, keepdim=True)
        beta = r2 - r2.mean(1, keepdim=True)
        S1 = torch.zeros(len(a), d, dtype=torch.float64)
        Xa, Xb, Ka = torch.zeros_like(S1), torch.zeros_like(S1), torch.zeros_like(S1)
        for s in range(0, P, blk):
            e = min(P, s + blk)
            Ut = U_blocks.get(s)
            if Ut is None:
                Ut = Z[s:e].to(dt) @ CT - ubar.to(dt)  # (B, d): rows u_p - ū
                if keep:
                    U_blocks[s] = Ut
            ab, r = a[:, s:e], len(a)
            M = rowwise_matmul(torch.cat([ab * alpha[:, s:e], ab * beta[:, s:e],
                                          alpha[:, s:e]]).to(dt),
                               Ut).to(torch.float64)  # three products in one pass over Ut
            Xa += M[:r]
            Xb += M[r:2 * r]
            Ka += M[2 * r:]
            S1 += rowwise_matmul((ab * ab).to(dt), Ut * Ut).to(torch.float64)
        out[rs] = (S1 + 2 * ubar * Xa + 2 * c * Xb - Ka * Ka / P +
                   (alpha * alpha).sum(1, keepdim=True) * ubar ** 2 +
                   (beta * beta).sum(1, keepdim=True) * c ** 2 +
                   2 * (alpha * beta).sum(1, keepdim=True) * (ubar * c))
    se = omega * torch.sqrt(out.clamp_min(0) * P / max(P - 1, 1))
    return se.reshape(n, k, d).movedim(1, 2).reshape(phi.shape)


#: reciprocal condition number (1-norm estimate) at or below which a design matrix counts as
#: singular
RCOND_SINGULAR = 1e-10


def _cholesky_checked(A: torch.Tensor) -> torch.Tensor | None:
    """Cholesky factor ``L`` of the symmetric matrix ``A``, or None when ``A`` is numerically
    singular: not positive definite, or LAPACK's ``dpocon`` estimate of its reciprocal
    1-norm condition number at most :data:`RCOND_SINGULAR`. ``O(d³/3)`` for the factor and
    ``O(d²)`` for the estimate (an eigen-decomposition costs several times the factor)."""
    L, info = torch.linalg.cholesky_ex(A)
    if int(info) != 0 or not bool(torch.isfinite(L.diagonal()).all()):
        return None
    from scipy.linalg import lapack

    Ld = L.detach().to(device="cpu", dtype=torch.float64)
    anorm = float(A.detach().abs().sum(0).max())
    # Lᵀ is upper triangular and, read column-major, L's own memory: no copy
    rcond, info = lapack.dpocon(Ld.numpy().T, anorm, uplo="U")
    if info != 0 or not rcond > RCOND_SINGULAR:
        return None
    return L


def _inverse_checked(A: torch.Tensor, warn_singular: bool = True) -> tuple[torch.Tensor, bool]:
    """``(inverse of A, singular)`` from one Cholesky factorisation; a pseudo-inverse, with a
    warning unless ``warn_singular`` is False, when ``A`` is singular
    (:func:`_cholesky_checked`). On one thread (:func:`~xai.models.one_thread`): the same bits
    on any machine."""
    with one_thread():
        L = _cholesky_checked(A)
        if L is None:
            return (_pinv_warned(A) if warn_singular else
                    torch.linalg.pinv(A, hermitian=True)), True
        return torch.cholesky_inverse(L), False


def _pinv_warned(A: torch.Tensor) -> torch.Tensor:
    warn("the KernelSHAP design matrix is rank-deficient (too few distinct "
         "coalitions: some features were always kept or removed together); using a "
         "pseudo-inverse, so those features share their credit. Raise the budget.")
    return torch.linalg.pinv(A, hermitian=True)
