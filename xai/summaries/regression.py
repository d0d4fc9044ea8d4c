"""Regression-adjusted KernelSHAP: a cross-fitted surrogate of the game plus KernelSHAP on
what the surrogate misses (Witter, Liu & Musco 2025, *Regression-adjusted Monte Carlo
Estimators for Shapley Values and Probabilistic Values*).

The design is KernelSHAP's (Covert & Lee 2021: paired samples; enumerated strata, the same
budget accounting). The sampled pairs are split into ``folds``; for each fold a surrogate
``f(z) = link⁻¹(g(v(∅)) + Σ a_i z_i + Σ_{i<j} b_ij z_i z_j)`` is fitted by kernel-weighted
least squares on the enumerated strata and the *other* folds' pairs, its Shapley values are
computed without model calls (closed form ``a_i + ½ Σ_j b_ij`` for the identity link, by
enumerating the surrogate when ``d`` is small, by a large KernelSHAP on the surrogate
otherwise), and the held-out pairs estimate the Shapley values of the residual game
``v − f`` by the constrained KernelSHAP regression, with its sandwich standard error. The
fold estimates are averaged.

Why it helps: with complement pairs, KernelSHAP is exact for games whose interactions have
order ≤ 2, so its error comes from the odd higher-order part of the game. A classifier's
probability ``σ(logit)`` has large high-order interactions even when its logit is nearly
pairwise; fitting the pairwise model on the link (logit) scale captures them, and the
residual game is small. The residual correction keeps the estimate consistent whatever the
surrogate's quality, and cross-fitting keeps the standard error honest (the residuals are
measured on pairs the surrogate did not see). Efficiency holds exactly; a game the surrogate
represents (additive or pairwise on the link scale) is recovered exactly.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ..errors import InputError, unknown_name
from ..models import rowwise_matmul, sigmoid
from ..registry import register
from .base import as_numpy
from .exact import ExactShapley, enumerate_masks
from .kernelshap import (
    KernelSHAP,
    _inverse_checked,
    constrained_fit,
    sandwich_se,
    size_mass,
    uniform_subsets,
)

LINKS = ("auto", "logit", "identity")
MIN_FOLD_PAIRS = 4  # fewer sampled pairs per fold: plain KernelSHAP
EPS = 1e-9


def _basis(M: torch.Tensor, pairs: bool) -> torch.Tensor:
    """Surrogate features of masks ``(m, d)``: ``z_i`` and, with ``pairs``, ``z_i z_j``."""
    if not pairs:
        return M
    i, j = torch.triu_indices(M.shape[1], M.shape[1], 1)
    return torch.cat([M, M[:, i] * M[:, j]], 1)


def sum_products(A: torch.Tensor, W: torch.Tensor) -> torch.Tensor:
    """``A @ W`` for ``A (rows, k)`` and ``W (..., k, cols)`` (batched over ``W``'s leading
    axes), accumulated term by term in ``k``: a column's values are the same bits whatever the
    other columns, where a matrix product's kernel, and so its rounding, depends on how many
    there are. For the small inner sizes of the surrogates' tables."""
    A = A.to(W.dtype)
    if A.shape[1] == 0:
        return torch.zeros((*W.shape[:-2], A.shape[0], W.shape[-1]), dtype=W.dtype)
    out = A[:, 0, None] * W[..., 0, None, :]
    for t in range(1, A.shape[1]):
        out.addcmul_(A[:, t, None], W[..., t, None, :])
    return out


def _link_functions(link: str):
    """``(g, g⁻¹)`` of the surrogate's scale: the logit and the sigmoid (each element the
    same bits in a block of any size: :func:`~xai.models.sigmoid`), or the identity."""
    if link != "logit":
        return (lambda v: v), (lambda v: v)

    def g(v):
        v = v.clamp(EPS, 1 - EPS)
        return torch.log(v) - torch.log1p(-v)

    return g, sigmoid


def _basis_shapley(d: int, pairs: bool) -> torch.Tensor:
    """Shapley values of each basis feature (rows) for each player (columns)."""
    S = [torch.eye(d, dtype=torch.float64)]
    if pairs:
        i, j = torch.triu_indices(d, d, 1)
        B = torch.zeros(len(i), d, dtype=torch.float64)
        B[torch.arange(len(i)), i] = 0.5
        B[torch.arange(len(i)), j] = 0.5
        S.append(B)
    return torch.cat(S)


def quadratic_table(W: torch.Tensor, d: int, pairs: bool,
                    offset: torch.Tensor | None = None) -> torch.Tensor:
    """``offset + basis(z_S) @ W`` for every coalition ``S``, rows in :func:`enumerate_masks`
    order (bit ``i`` of the row number = feature ``i``): ``(2^d, cols)`` for coefficients
    ``W (p, cols)`` laid out as :func:`_basis` (``z_i``, then ``z_i z_j`` for ``i < j``) and an
    optional ``offset (1, cols)``."""
    cols = W.shape[1]
    B = torch.zeros(d, d, cols, dtype=torch.float64)
    if pairs and d > 1:
        i, j = torch.triu_indices(d, d, 1)
        B[i, j] = W[d:]
    off = torch.zeros(1, cols, dtype=torch.float64) if offset is None else offset
    return _quadratic_table(W[:d], B, off, d)


def _quadratic_table(a: torch.Tensor, B: torch.Tensor, off: torch.Tensor,
                     d: int) -> torch.Tensor:
    """Table ``(2^d, cols)`` of ``off + aᵀz + Σ_{i<j} B_ij z_i z_j``. With the features split
    into a low half ``l`` and a high half ``h``, ``q(h, l) = q_h(h) + q_l(l) + Σ_{i∈l} z_i
    β_i(h)``, ``β_i(h) = Σ_{j∈h} B_ij z_j``: two half-size tables (recursively) and one
    batched product of inner size ``d/2 + 1`` (``q_h`` rides along as a column of ones), in
    place of a ``(2^d × p) @ (p × cols)`` product."""
    if d <= 8:
        M = torch.as_tensor(enumerate_masks(d, 0, 2**d), dtype=torch.float64)
        i, j = torch.triu_indices(d, d, 1)
        return off + sum_products(M[:, i] * M[:, j], B[i, j]) + sum_products(M, a)
    c, cols = d // 2, a.shape[1]
    zero = torch.zeros_like(off)
    low = _quadratic_table(a[:c], B[:c, :c], zero, c)  # (2^c, cols)
    high = _quadratic_table(a[c:], B[c:, c:], off, d - c)  # (2^(d-c), cols)
    Zh = torch.as_tensor(enumerate_masks(d - c, 0, 2**(d - c)), dtype=torch.float64)
    Zl = torch.ones(2**c, c + 1, dtype=torch.float64)
    Zl[:, :c] = torch.as_tensor(enumerate_masks(c, 0, 2**c))
    beta = torch.empty(2**(d - c), c + 1, cols, dtype=torch.float64)
    beta[:, :c] = sum_products(Zh, B[:c, c:].permute(1, 0, 2).reshape(d - c, c * cols)
                               ).reshape(-1, c, cols)
    beta[:, c] = high
    Q = sum_products(Zl, beta)  # (2^(d-c), 2^c, cols): row h * 2^c + l
    Q += low
    return Q.reshape(2**d, cols)


def enumerated_shapley(W: torch.Tensor, G0: torch.Tensor, ginv, d: int, pairs: bool,
                       memory_cap: int, cols_per_block: int = 16) -> torch.Tensor:
    """Exact Shapley values ``(cols, d)`` of the surrogates ``ginv(G0 + basis(z) @ W)``, one per
    column of ``W (p, cols)``, by enumerating their ``2^d`` coalitions without model calls:
    :func:`quadratic_table` for the link-scale values, then
    the exact summary's coefficients (:meth:`ExactShapley.coefficients`, computed once and
    shared by every column). Columns go in blocks that stay in cache; the coefficients in
    blocks of coalitions under ``memory_cap``."""
    cols, N = W.shape[1], 2**d
    cap = max(1, int(memory_cap) // 4)
    cb = int(max(1, min(cols, cols_per_block, cap // (8 * N))))
    S_blk = int(max(1, min(N, cap // (8 * d))))  # coalitions per block of coefficients
    coef = None
    if S_blk == N:
        coef = torch.as_tensor(ExactShapley().coefficients(enumerate_masks(d, 0, N)))
    phi = torch.zeros(cols, d, dtype=torch.float64)
    for c0 in range(0, cols, cb):
        c1 = min(cols, c0 + cb)
        F = ginv(quadratic_table(W[:, c0:c1], d, pairs, G0[:, c0:c1]))
        for a in range(0, N, S_blk):
            C = coef if coef is not None else torch.as_tensor(
                ExactShapley().coefficients(enumerate_masks(d, a, min(N, a + S_blk))))
            phi[c0:c1] += rowwise_matmul(F[a:a + S_blk].T, C)  # (no copy: a transposed view)
    return phi


@register("summary", "ra-kernelshap",
          aliases=("regression-adjusted-kernelshap", "surrogate-kernelshap"))
class RegressionAdjustedKernelSHAP(KernelSHAP):
    """Shapley values by KernelSHAP with a cross-fitted pairwise surrogate (regression
    adjustment); the sandwich SE of the residual fits, folds treated as independent.

    ``folds``: cross-fitting folds of the sampled pairs (≥ 2). ``link``: scale of the
    surrogate fit, ``"logit"`` for games on the probability scale, ``"identity"``, or
    ``"auto"`` (logit when the behaviour reports probabilities). ``interactions``: pairwise
    terms in the surrogate (``"auto"``: when the training rows number at least twice the
    surrogate's parameters). ``max_exact_surrogate``: largest ``d`` whose surrogate Shapley
    values are computed by enumerating its ``2^d`` coalitions (no model calls); above it a
    KernelSHAP on ``surrogate_samples`` surrogate pairs, its SE added.
    """

    name = "ra-kernelshap"

    def __init__(self, *, budget=None, tol=None, seed=None, min_units=32,
                 enumerate_strata: bool = True, folds: int = 3, link: str = "auto",
                 interactions: bool | str = "auto", max_exact_surrogate: int = 16,
                 surrogate_samples: int = 2**15) -> None:
        super().__init__(budget=budget, tol=tol, seed=seed, min_units=min_units,
                         enumerate_strata=enumerate_strata, variance="sandwich")
        if int(folds) < 2:
            raise InputError(f"folds must be at least 2 (cross-fitting), got {folds!r}")
        if link not in LINKS:
            raise unknown_name("link", link, LINKS)
        if interactions not in ("auto", True, False):
            raise InputError(f"interactions must be 'auto', True or False, got {interactions!r}")
        self.folds = int(folds)
        self.link = link
        self.interactions = interactions
        self.max_exact_surrogate = int(max_exact_surrogate)
        self.surrogate_samples = int(surrogate_samples)

    def resolve_link(self, game) -> str:
        if self.link != "auto":
            return self.link
        return "logit" if game.value_scale == "probability" else "identity"

    def start(self, game, rows, max_units, rng):
        state = super().start(game, rows, max_units, rng)
        state["link"] = self.resolve_link(game)
        state["surrogate_seed"] = int(rng.integers(2**62))
        return state

    def estimate(self, state, active):
        if state["exact"]:  # pragma: no cover - handled in __call__
            raise AssertionError
        Zb = np.concatenate(state["pairs"])
        P, d = Zb.shape
        K = min(self.folds, P // MIN_FOLD_PAIRS)
        if K < 2:
            return super().estimate(state, active)
        a = torch.as_tensor(active)
        ve, vf = state["ve"][a], state["vf"][a]
        vshape = tuple(ve.shape[1:])
        k = math.prod(vshape)

        def flat(t):  # (na, X, *vshape) -> (na * k, X)
            t = t.reshape(t.shape[0], -1, k)
            return t.movedim(2, 1).reshape(-1, t.shape[1])

        Y = self.gather_y(state, active)  # (na, P, 2, *vshape), centred on v(∅)
        y1, y2 = flat(Y[:, :, 0]), flat(Y[:, :, 1])
        ve_f = ve.reshape(-1, 1)  # (m, 1): explicand-major, outputs inner, as flat()
        delta = (vf - ve).reshape(-1)
        if state["enum_masks"]:
            EM = np.concatenate(state["enum_masks"])
            yE = flat(torch.cat(state["enum_y"], 1)[a])
        else:
            EM = np.zeros((0, d), dtype=bool)
            yE = torch.zeros(len(ve_f), 0, dtype=torch.float64)
        sizes = EM.sum(1)
        EW = torch.as_tensor(size_mass(d)[sizes] / np.array([math.comb(d, s) for s in sizes]),
                             dtype=torch.float64)
        EMt = torch.as_tensor(EM, dtype=torch.float64)
        Z = torch.as_tensor(Zb, dtype=torch.float64)
        one = torch.ones(1, d, dtype=torch.float64)
        link = state["link"]
        g, ginv = _link_functions(link)
        g0 = g(ve_f)
        fold = np.arange(P) % K
        phis, vars_, fits = [], [], []
        trained = []
        for f in range(K):
            tr = torch.as_tensor(fold != f)
            n_tr = int(tr.sum())
            # training rows: enumerated strata, the other folds' pairs, and D (pins f(D))
            M_tr = torch.cat([EMt, Z[tr], 1 - Z[tr], one])
            w_tr = torch.cat([EW, torch.full((2 * n_tr,), state["W_rest"] / (2 * n_tr),
                                             dtype=torch.float64), torch.ones(1)])
            t_tr = g(torch.cat([yE, y1[:, tr], y2[:, tr], delta[:, None]], 1) + ve_f) - g0
            trained.append((M_tr, w_tr, *self._pairwise_fit(M_tr, w_tr, t_tr)))
        # the corrections of every fold at once (one batched fit for a network)
        corrs = self.fit_corrections([(M, w, resid) for M, w, _, _, resid in trained], state)
        for f, ((_, _, coefT, pairs, _), corr) in enumerate(zip(trained, corrs)):
            te = torch.as_tensor(fold == f)

            def fc(M, coefT=coefT, pairs=pairs, corr=corr):  # surrogate minus f(∅): (m, rows)
                t = g0 + rowwise_matmul(coefT, _basis(M, pairs).T)
                return ginv(t if corr is None else t + corr(M)) - ginv(g0)

            fits.append((coefT.T, pairs, corr))
            # residual game r = (v - v(∅)) - (f - f(∅)) on the enumerated and held-out pairs
            Zte = Z[te]
            rE = yE - fc(EMt)
            r1, r2 = y1[:, te] - fc(Zte), y2[:, te] - fc(1 - Zte)
            rD = delta - fc(one)[:, 0]
            bE = rowwise_matmul(rE * EW, EMt)
            omega = state["W_rest"] / (2 * len(Zte))
            phi_r, C, singular = constrained_fit(state["A_fixed"], bE, Zte, r1, r2, omega, rD)
            if singular:
                se_r = torch.full_like(phi_r, float("inf"))
            else:
                se_r = sandwich_se(phi_r, Zte, r1, r2, omega, C, state["memory_cap"])
                # degrees of freedom: the residual fit spends d - 1 parameters on few pairs
                n_te = len(Zte)
                se_r = se_r * math.sqrt((n_te - 1) / max(n_te - d + 1, 1))
            phis.append(phi_r)
            vars_.append(se_r ** 2)
        phi_f, var_f = self._surrogate_shapley(fits, g0, g, ginv, link, d, state)
        phi = (torch.stack(phis) + phi_f).mean(0)
        se = torch.sqrt(torch.stack(vars_).sum(0) / K**2 + var_f)

        def unflat(t):  # (na * k, d) -> (na, d, *vshape)
            return t.reshape(-1, k, d).movedim(1, 2).reshape(-1, d, *vshape)

        state["extras"].update({"link": link, "folds": K,
                                "interactions": all(p for _, _, _, p, _ in trained)})
        return as_numpy(unflat(phi)), as_numpy(unflat(se))

    def _pairwise_fit(self, M: torch.Tensor, w: torch.Tensor,
                      t: torch.Tensor) -> tuple[torch.Tensor, bool, torch.Tensor]:
        """The link-scale surrogate's coefficients ``(m, p)`` fitted by weighted least squares
        to the targets ``t (m, rows)`` on masks ``M (rows, d)``, whether its basis has the
        pairs (``interactions``; ``"auto"``: from twice as many rows as coefficients), and the
        fit's residuals ``(m, rows)``."""
        d = M.shape[1]
        pairs = self.interactions is True or (self.interactions == "auto" and
                                              len(M) >= 2 * (d + d * (d - 1) // 2))
        B = _basis(M, pairs)
        BW = B * w[:, None]
        G = rowwise_matmul(B.T, BW)  # the same bits with any number of threads
        G = G + 1e-12 * G.diagonal().mean() * torch.eye(len(G), dtype=torch.float64)
        Ginv, _ = _inverse_checked(G, warn_singular=False)
        coefT = rowwise_matmul(rowwise_matmul(t, BW), Ginv)  # (m, p): rows alone
        return coefT, pairs, t - rowwise_matmul(coefT, B.T)

    def fit_corrections(self, folds, state) -> list:
        """Link-scale corrections of the pairwise fits, one per fold ``(M, w, resid)``: fitted
        on the training masks ``M (rows, d)`` with weights ``w`` to the residuals ``resid (m,
        rows)``. Each is a callable from masks to ``(m, rows)`` that is 0 at ∅, or None (none
        here; subclasses add one)."""
        return [None] * len(folds)

    def _surrogate_shapley(self, fits, g0, g, ginv, link, d, state):
        """Shapley values ``(K, m, d)`` of the folds' surrogates (no model calls) and the
        sampling variance ``(m, d)`` of their mean (0 when exact). The surrogate ``f - f(∅)`` of fold ``k`` is
        ``ginv(g0 + basis(z) @ coef_k) - ginv(g0)``."""
        K, m = len(fits), len(g0)
        pairs = all(p for _, p, _ in fits)
        coefs = [c for c, _, _ in fits]
        if not all(p == fits[0][1] for _, p, _ in fits):  # mixed bases: pad the linear ones
            extra = d * (d - 1) // 2
            coefs = [c if p else torch.cat([c, torch.zeros(extra, m, dtype=c.dtype)])
                     for c, p, _ in fits]
            pairs = True
        W = torch.cat(coefs, 1)  # (p, K m)
        G0 = g0.T.repeat(1, K)  # (1, K m): fold-major columns
        zero = torch.zeros(m, d, dtype=torch.float64)
        if link == "identity":
            return rowwise_matmul(W.T, _basis_shapley(d, pairs)).reshape(K, m, d), zero

        def fc(M):  # (K m, rows): a fold's explicand per row, computed alone
            return ginv(G0.T + rowwise_matmul(W.T, _basis(M, pairs).T)) - ginv(G0.T)

        if d <= self.max_exact_surrogate:
            phi = enumerated_shapley(W, G0, ginv, d, pairs, state["memory_cap"])
            return phi.reshape(K, m, d), zero
        # large d: KernelSHAP on the surrogates (paired, all sizes sampled), SE added
        rng = np.random.default_rng(state["surrogate_seed"])
        n_s = self.surrogate_samples
        sizes = rng.choice(d + 1, size=n_s, p=size_mass(d))
        Zs = uniform_subsets(rng, sizes, d)
        Zs = torch.as_tensor(Zs, dtype=torch.float64)
        # the folds share these samples: estimate the mean surrogate (Shapley is linear)
        y1 = fc(Zs).reshape(K, m, -1).mean(0)  # (m, n_s)
        y2 = fc(1 - Zs).reshape(K, m, -1).mean(0)
        omega = 1.0 / (2 * n_s)
        A0 = torch.zeros(d, d, dtype=torch.float64)
        delta = fc(torch.ones(1, d, dtype=torch.float64))[:, 0].reshape(K, m).mean(0)
        phi, C, _ = constrained_fit(A0, torch.zeros(m, d, dtype=torch.float64), Zs, y1, y2,
                                    omega, delta)
        se = sandwich_se(phi, Zs, y1, y2, omega, C, state["memory_cap"])
        return phi.expand(K, m, d), se ** 2

    def describe(self):
        out = super().describe()
        out.pop("variance", None)
        out.update({"folds": self.folds, "link": self.link, "interactions": self.interactions,
                    "max_exact_surrogate": self.max_exact_surrogate,
                    "surrogate_samples": self.surrogate_samples})
        return out
