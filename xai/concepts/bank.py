"""Concept bank: non-negative factorisation ``A ≈ U Wᵀ`` of pooled activations (Lee & Seung
1999; CRAFT, Fel et al. 2023) and the coefficients of new activations with ``W`` fixed (NNLS)."""

from __future__ import annotations

import warnings

import numpy as np
import torch

from ..errors import InputError

__all__ = ["ConceptBank", "nnls"]


def nnls(a: torch.Tensor, W: torch.Tensor, *, max_iter: int = 2000,
         tol: float = 1e-12) -> torch.Tensor:
    """Batched non-negative least squares ``u = argmin_{u ≥ 0} ½‖a − W u‖²`` for every row of
    ``a`` ``(m, p)`` with ``W`` ``(p, r)``; returns ``(m, r)``.

    Solver: HALS (exact coordinate descent on the ``r`` coordinates), vectorised over rows in
    float64; stops when the largest relative coordinate change falls below ``tol``.
    """
    dt = torch.float64
    a = a.to(dt)
    W = W.to(device=a.device, dtype=dt)
    G = W.T @ W  # (r, r)
    c = a @ W  # (m, r)
    r = W.shape[1]
    diag = G.diagonal().clamp_min(1e-300)
    # start from the clipped unconstrained solution
    u = torch.linalg.lstsq(W, a.T).solution.T.clamp_min(0) if a.shape[0] else c.clone()
    for _ in range(max_iter):
        change = torch.zeros((), dtype=dt, device=a.device)
        for j in range(r):
            old = u[:, j].clone()
            u[:, j] = (u[:, j] + (c[:, j] - u @ G[:, j]) / diag[j]).clamp_min(0)
            change = torch.maximum(change, (u[:, j] - old).abs().max() if u.numel() else change)
        scale = u.abs().max() if u.numel() else torch.ones((), dtype=dt)
        if float(change) <= tol * max(float(scale), 1e-300):
            break
    return u


class ConceptBank:
    """NMF concept bank. ``fit(A)`` learns ``W`` ``(p, r)`` and the crop coefficients ``U``
    ``(n_crops, r)`` with scikit-learn's ``NMF`` (``nndsvda``, ``cd``, Frobenius, no penalty);
    ``encode`` gives coefficients of new activations (pooled ``(n, p)`` or spatial
    ``(n, p, H', W')`` → ``(n, H', W', r)``); ``decode(u) = u Wᵀ``.

    Diagnostics: ``nmf_rel_error = ‖A − U Wᵀ‖_F / ‖A‖_F``, ``nmf_converged``, ``nmf_iterations``.
    """

    def __init__(self, n_concepts: int = 10, *, init: str = "nndsvda", solver: str = "cd",
                 max_iter: int = 500, tol: float = 1e-4, seed: int | None = 0) -> None:
        self.n_concepts = n_concepts
        self.init, self.solver, self.max_iter, self.tol, self.seed = (init, solver, max_iter,
                                                                      tol, seed)
        self.W: np.ndarray | None = None
        self.U: np.ndarray | None = None

    @classmethod
    def from_components(cls, W: np.ndarray) -> ConceptBank:
        """A bank with a given ``W`` ``(p, r)`` (e.g. after loading)."""
        W = np.asarray(W, dtype=np.float64)
        if W.ndim != 2 or (W < 0).any():
            raise InputError(f"a concept bank W must be a non-negative (p, r) array; got shape "
                             f"{W.shape}")
        bank = cls(W.shape[1])
        bank.W = W
        return bank

    @property
    def r(self) -> int:
        return int(self.n_concepts if self.W is None else self.W.shape[1])

    def fit(self, A: np.ndarray) -> ConceptBank:
        from sklearn.decomposition import NMF
        from sklearn.exceptions import ConvergenceWarning

        A = np.asarray(A, dtype=np.float64)
        if A.ndim != 2:
            raise InputError(f"NMF needs activations (n_crops, p); got shape {A.shape}")
        n, p = A.shape
        r = self.n_concepts
        if r < 1 or r > min(n, p):
            raise InputError(f"n_concepts={r} needs ≥ {r} crops (got {n}) and ≤ p={p} channels; "
                             "add images or lower the rank")
        if (A < 0).any():
            raise InputError(f"NMF needs non-negative activations (min {A.min():.3g})")
        if not A.any():
            raise InputError("activations are all zero; pick another layer or check the images")
        nmf = NMF(n_components=r, init=self.init, solver=self.solver, beta_loss="frobenius",
                  max_iter=self.max_iter, tol=self.tol, random_state=self.seed)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ConvergenceWarning)
            U = nmf.fit_transform(A)
        self.nmf_converged = not any(issubclass(w.category, ConvergenceWarning) for w in caught)
        self.nmf_iterations = int(nmf.n_iter_)
        self.W = np.ascontiguousarray(nmf.components_.T)
        self.U = U
        self.nmf_rel_error = float(np.linalg.norm(A - U @ self.W.T) / np.linalg.norm(A))
        return self

    def _W(self, like: torch.Tensor) -> torch.Tensor:
        if self.W is None:
            raise InputError("the concept bank is not fitted; call fit(activations) first")
        return torch.as_tensor(self.W, device=like.device)

    def encode(self, activations) -> torch.Tensor:
        """Coefficients of activations ``(n, p)`` → ``(n, r)``, or ``(n, p, H', W')`` →
        ``(n, H', W', r)`` (per position), float64."""
        a = torch.as_tensor(activations)
        W = self._W(a)
        p = W.shape[0]
        if a.ndim not in (2, 4) or a.shape[1] != p:
            raise InputError(f"activations must be (n, {p}) or (n, {p}, H', W'); got "
                             f"{tuple(a.shape)}")
        if a.ndim == 2:
            return nnls(a, W)
        n, _, hh, ww = a.shape
        flat = a.permute(0, 2, 3, 1).reshape(-1, p)
        return nnls(flat, W).reshape(n, hh, ww, -1)

    def decode(self, u) -> torch.Tensor:
        """``u Wᵀ``: ``(..., r)`` → ``(..., p)``."""
        u = torch.as_tensor(u)
        return u @ self._W(u).to(u.dtype).T
