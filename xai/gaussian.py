"""Conditional Gaussian draws for many coalitions at once.

For ``X ~ N(mu, Sigma)`` and a coalition of kept columns ``S`` (removed ``R``), the removed
columns given the kept ones are ``N(mu_R + A (x_S - mu_S), Sigma_RR - A Sigma_SR)`` with
``A = Sigma_RS Sigma_SS^{-1}``; a draw is ``mean + L eps_R`` with ``L`` the lower Cholesky
factor of the conditional covariance (Aas, Jullum & Løland, *Explaining individual
predictions when features are dependent*, Artificial Intelligence 298, 2021).

The noise of the ``K`` draws is computed once per coalition (common random numbers: the same
``eps`` for every coalition), so a coalition shared by many rows costs one matrix product per
row for its mean. :func:`conditional_factors` factors a whole stack of coalitions at once: the
coalitions of each size ``|S|`` are one batch of Cholesky factorisations and solves (at most
``p + 1`` batches), the results laid out as one ``(p, p)`` matrix per coalition in column order.
:func:`conditional_factors_reference` is the plain definition, one coalition at a time; the
tests check that the two agree.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .errors import InputError

JITTER = 1e-12
"""Added to the diagonal of every conditional covariance before its Cholesky factorisation."""


@dataclass
class ConditionalFactors:
    """What a stack of ``n`` coalitions needs to draw the removed columns, in column order.

    ``transform`` ``(n, p, p)``: ``[R, S]`` holds ``A = Sigma_RS Sigma_SS^{-1}``, ``[R, R]``
    the lower Cholesky factor ``L_{R|S}`` of the conditional covariance, the rows ``S`` are
    zero; a removed column is ``mu_R + A (x_S - mu_S) + L_{R|S} eps_R``.
    ``noise`` ``(n, K, p)``: ``L_{R|S} eps_R`` of each of the ``K`` standard-normal draws on
    ``R``, zero on ``S``; None for plug-in means."""

    transform: np.ndarray
    noise: np.ndarray | None


FACTOR_BLOCK_BYTES = 32 * 2**20
"""Bytes of ``(p, p)`` matrices that :func:`conditional_factors` factors in one batch."""


def conditional_factors(cov: torch.Tensor, keep: np.ndarray,
                        eps: torch.Tensor | None) -> ConditionalFactors:
    """Factors of coalitions ``keep`` ``(n, p)`` (True = kept column) under covariance ``cov``
    ``(p, p)``, batches of coalitions in one factorisation each (batches of about
    :data:`FACTOR_BLOCK_BYTES`); ``eps`` ``(K, p)`` standard-normal draws (None: no noise,
    plug-in means)."""
    keep = np.asarray(keep, dtype=bool)
    n, p = keep.shape
    step = max(1, FACTOR_BLOCK_BYTES // (6 * 8 * p * p))
    if n <= step:
        return _batch_factors(cov, keep, eps)
    parts = [_batch_factors(cov, keep[a:a + step], eps) for a in range(0, n, step)]
    return ConditionalFactors(np.concatenate([f.transform for f in parts]),
                              None if eps is None else np.concatenate([f.noise for f in parts]))


def _batch_factors(cov: torch.Tensor, keep: np.ndarray,
                   eps: torch.Tensor | None) -> ConditionalFactors:
    """:func:`conditional_factors` of one batch: the coalitions of each size in one stack."""
    n, p = keep.shape
    transform = np.zeros((n, p, p))
    sizes = keep.sum(1)
    order = np.argsort(~keep, axis=1, kind="stable")  # kept columns first, each ascending
    for s in np.unique(sizes):  # at most p + 1 sizes
        rows = np.flatnonzero(sizes == s)
        S, R = order[rows, :s], order[rows, s:]
        A, L = _conditional_stack(cov, S, R)
        at = rows[:, None, None], R[:, :, None]
        transform[(*at, S[:, None, :])] = A
        transform[(*at, R[:, None, :])] = L
    if eps is None:
        return ConditionalFactors(transform, None)
    factor = transform * ~keep[:, None, :]  # L_{R|S} alone: the columns S zeroed
    return ConditionalFactors(transform, np.matmul(eps.numpy(), factor.transpose(0, 2, 1)))


def _conditional_stack(cov: torch.Tensor, S: np.ndarray, R: np.ndarray):
    """:func:`_conditional` of ``m`` coalitions of one size at once: kept columns ``S``
    ``(m, s)``, removed ``R`` ``(m, r)``; ``A`` ``(m, r, s)`` and ``L`` ``(m, r, r)``."""
    c = cov.numpy()
    m, s, r = len(S), S.shape[1], R.shape[1]
    cond = torch.from_numpy(c[R[:, :, None], R[:, None, :]])
    A = torch.zeros(m, r, s, dtype=cov.dtype)
    try:
        if s:
            Lss = torch.linalg.cholesky(torch.from_numpy(c[S[:, :, None], S[:, None, :]]))
            cross = torch.from_numpy(c[S[:, :, None], R[:, None, :]])
            A = torch.cholesky_solve(cross, Lss).transpose(1, 2)
            cond = cond - A @ cross
        L = torch.linalg.cholesky(cond + JITTER * torch.eye(r, dtype=cov.dtype)) if r else \
            torch.zeros(m, 0, 0, dtype=cov.dtype)
    except torch.linalg.LinAlgError:
        raise InputError("conditional-gaussian removal: the background covariance is not "
                         "positive definite (constant or linearly dependent columns); use "
                         "ridge > 0 (default 1e-6) or covariance='ledoit-wolf'") from None
    return A.numpy(), L.numpy()


def conditional_factors_reference(cov: torch.Tensor, keep: np.ndarray,
                                  eps: torch.Tensor | None) -> ConditionalFactors:
    """:func:`conditional_factors` by its definition, one coalition at a time."""
    keep = np.asarray(keep, dtype=bool)
    n, p = keep.shape
    transform = np.zeros((n, p, p))
    noise = None if eps is None else np.zeros((n, eps.shape[0], p))
    for i, row in enumerate(keep):
        S, R = np.flatnonzero(row), np.flatnonzero(~row)
        A, L = _conditional(cov, S, R)
        transform[i][np.ix_(R, S)] = A.numpy()
        transform[i][np.ix_(R, R)] = L.numpy()
        if noise is not None:
            noise[i][:, R] = (eps[:, R] @ L.T).numpy()
    return ConditionalFactors(transform, noise)


def _conditional(cov: torch.Tensor, S: np.ndarray, R: np.ndarray):
    """``A = Sigma_RS Sigma_SS^{-1}`` and the Cholesky factor of ``Sigma_RR - A Sigma_SR``
    (plus :data:`JITTER` on its diagonal) of one coalition."""
    if S.size == 0:
        A = torch.zeros(R.size, 0, dtype=cov.dtype)
        cond = cov[np.ix_(R, R)]
    else:
        Lss = torch.linalg.cholesky(cov[np.ix_(S, S)])
        A = torch.cholesky_solve(cov[np.ix_(S, R)], Lss).T  # (|R|, |S|)
        cond = cov[np.ix_(R, R)] - A @ cov[np.ix_(S, R)]
    L = torch.linalg.cholesky(cond + JITTER * torch.eye(R.size, dtype=cov.dtype)) \
        if R.size else torch.zeros(0, 0, dtype=cov.dtype)
    return A, L


def conditional_draws(x: np.ndarray, keep: np.ndarray, mu: np.ndarray,
                      factors: ConditionalFactors, which: np.ndarray,
                      draws: slice = slice(None)) -> np.ndarray:
    """Rows ``x`` ``(c, p)`` with the columns outside ``keep`` ``(c, p)`` drawn from their
    conditional distribution, row ``i`` by coalition ``which[i]`` of ``factors``: ``(c, K, p)``
    for the noise draws ``draws``, or ``(c, 1, p)`` conditional means when ``factors`` has no
    noise. Kept columns are ``x``."""
    c, p = x.shape
    centred = np.where(keep, x - mu, 0.0)[:, :, None]  # x_S - mu_S, zero on R
    mean = np.empty((c, p))
    step = max(1, FACTOR_BLOCK_BYTES // (8 * p * p))
    for a in range(0, c, step):  # one block unless p is large: each row takes a (p, p) matrix
        b = min(c, a + step)
        mean[a:b] = np.matmul(factors.transform.take(which[a:b], axis=0),
                              centred[a:b])[:, :, 0]
    base = np.where(keep, x, mean + mu)[:, None, :]
    if factors.noise is None:
        return base
    out = factors.noise[:, draws].take(which, axis=0)
    out += base
    return out


class FactorCache:
    """:func:`conditional_factors` of the coalitions seen so far, looked up by their packed
    masks in one vectorised search. At most ``max_bytes`` of factors: once full, it keeps the
    coalitions it holds (games revisit the same coalitions for every explicand, in the same
    order) and factors the others on every call."""

    def __init__(self, cov: torch.Tensor, eps: torch.Tensor | None,
                 max_bytes: int = 256 * 2**20) -> None:
        self.cov, self.eps, self.max_bytes = cov, eps, max_bytes
        p = cov.shape[0]
        self.key_bytes = 8 * p * (p + (0 if eps is None else eps.shape[0]))  # one coalition
        self.clear()

    def clear(self) -> None:
        """Forget every coalition."""
        self.keys = np.empty(0, dtype=np.void(1))  # packed masks in slot order
        self.ordered = self.keys  # the keys sorted
        self.slot_of = np.empty(0, dtype=np.intp)  # slot of each key of ``ordered``
        self.store: ConditionalFactors | None = None  # room for max_bytes of factors

    def lookup(self, keep: np.ndarray) -> tuple[ConditionalFactors, np.ndarray]:
        """Factors and the index of each row of ``keep`` ``(c, p)`` in them: the cache's
        store, or once it is full a stack of this call's coalitions. Coalitions not seen
        before are factored together in one batch."""
        uniq, first, inv = np.unique(_keys(keep), return_index=True, return_inverse=True)
        slots = self._find(uniq)
        missing = np.flatnonzero(slots < 0)
        if len(missing) == 0:
            return self.store, slots[inv.ravel()]
        made = conditional_factors(self.cov, keep[first[missing]], self.eps)
        room = max(0, self.max_bytes // self.key_bytes - len(self.keys))
        if room >= len(missing):
            slots[missing] = self._add(uniq[missing], made)
            return self.store, slots[inv.ravel()]
        # full: this call's coalitions in a stack of their own, the first new ones kept
        stack = _stack(made, len(uniq))
        stack.transform[missing] = made.transform
        hit = np.flatnonzero(slots >= 0)
        if made.noise is not None:
            stack.noise[missing] = made.noise
        if len(hit):
            stack.transform[hit] = self.store.transform[slots[hit]]
            if made.noise is not None:
                stack.noise[hit] = self.store.noise[slots[hit]]
        if room:
            self._add(uniq[missing[:room]], _take(made, slice(0, room)))
        return stack, inv.ravel()

    def _find(self, uniq: np.ndarray) -> np.ndarray:
        """Slot of each key of ``uniq``, -1 where not cached."""
        slots = np.full(len(uniq), -1, dtype=np.intp)
        if len(self.ordered) == 0 or self.ordered.dtype != uniq.dtype:
            return slots
        at = np.minimum(np.searchsorted(self.ordered, uniq), len(self.ordered) - 1)
        hit = self.ordered[at] == uniq
        slots[hit] = self.slot_of[at[hit]]
        return slots

    def _add(self, keys: np.ndarray, made: ConditionalFactors) -> np.ndarray:
        """Store ``made`` under ``keys`` (new keys); their slots."""
        n0, n1 = len(self.keys), len(self.keys) + len(keys)
        if self.store is None:  # untouched pages of an empty array take no memory yet
            self.store = _stack(made, max(n1, self.max_bytes // self.key_bytes))
        self.store.transform[n0:n1] = made.transform
        if made.noise is not None:
            self.store.noise[n0:n1] = made.noise
        self.keys = np.concatenate([self.keys, keys]) if n0 else keys
        self.slot_of = np.argsort(self.keys, kind="stable")
        self.ordered = self.keys[self.slot_of]
        return np.arange(n0, n1)


def _stack(like: ConditionalFactors, n: int) -> ConditionalFactors:
    """Empty factors of ``n`` coalitions shaped like ``like``'s."""
    return ConditionalFactors(np.empty((n, *like.transform.shape[1:])), None if
                              like.noise is None else np.empty((n, *like.noise.shape[1:])))


def _take(factors: ConditionalFactors, which) -> ConditionalFactors:
    """The factors of coalitions ``which``."""
    return ConditionalFactors(factors.transform[which],
                              None if factors.noise is None else factors.noise[which])


def cached_draws(cache: FactorCache, x: np.ndarray, keep: np.ndarray, mu: np.ndarray,
                 draws: slice = slice(None)) -> np.ndarray:
    """:func:`conditional_draws` of rows ``x`` with the factors of ``cache``, in blocks of rows
    whose new factors take at most :data:`FACTOR_BLOCK_BYTES` (one block unless the columns
    are many)."""
    if len(x) == 0:
        draws_of = 1 if cache.eps is None else len(range(cache.eps.shape[0])[draws])
        return np.empty((0, draws_of, x.shape[1]))
    step = max(1, FACTOR_BLOCK_BYTES // cache.key_bytes)
    parts = []
    for a in range(0, len(x), step):
        store, which = cache.lookup(keep[a:a + step])
        parts.append(conditional_draws(x[a:a + step], keep[a:a + step], mu, store, which,
                                       draws))
    return parts[0] if len(parts) == 1 else np.concatenate(parts)


def _keys(keep: np.ndarray) -> np.ndarray:
    """One sortable key per row of ``keep`` ``(c, p)``: the packed bits as one unsigned 64-bit
    integer when ``p <= 64``, else as raw bytes."""
    packed = np.packbits(keep, axis=1)
    if packed.shape[1] <= 8:
        wide = np.zeros((len(packed), 8), dtype=np.uint8)
        wide[:, :packed.shape[1]] = packed
        return wide.view(np.uint64).ravel()
    return np.ascontiguousarray(packed).view(np.dtype((np.void, packed.shape[1]))).ravel()


def conditional_replacement_reference(x: torch.Tensor, keep: np.ndarray, mu: torch.Tensor,
                                      cov: torch.Tensor, eps: torch.Tensor,
                                      plug_in: bool) -> torch.Tensor:
    """The conditional Gaussian replacement by its definition: one factorisation per distinct
    coalition of ``keep`` ``(c, p)``, ``(c, K, p)`` draws of the rows ``x`` ``(c, p)`` with
    ``eps`` ``(K, p)`` (``plug_in``: the conditional means, repeated over ``K``)."""
    c, p = x.shape
    xd = x.double()
    out = torch.empty(c, eps.shape[0], p, dtype=torch.float64)
    uniq, inv = np.unique(keep, axis=0, return_inverse=True)
    for u, row in enumerate(uniq):
        sel = np.flatnonzero(inv.ravel() == u)
        S, R = np.flatnonzero(row), np.flatnonzero(~row)
        A, L = _conditional(cov, S, R)
        mean = mu[R] + (xd[sel][:, S] - mu[S]) @ A.T  # (c_u, |R|)
        block = xd[sel][:, None, :].repeat(1, eps.shape[0], 1)
        block[:, :, R] = mean[:, None, :] if plug_in else \
            mean[:, None, :] + (eps[:, R] @ L.T)[None]
        out[sel] = block
    return out
