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
``p + 1`` batches). A coalition keeps only what its draws need, its gain ``A`` (``|R| x |S|``,
at most ``p^2 / 4`` numbers) and its noise ``L eps_R`` (``K x p``), so the factor cache holds
several times more coalitions than one ``(p, p)`` matrix each would; :func:`conditional_draws`
applies the gains of each coalition size in one batched product.
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

FACTOR_BLOCK_BYTES = 32 * 2**20
"""Bytes of intermediate matrices that one batch of factorisations or gains may take."""


@dataclass
class ConditionalFactors:
    """What the draws of a stack of coalitions need, coalition ``i`` in slot ``i``.

    ``size`` ``(n,)``: the number ``s`` of kept columns of each coalition. ``order`` ``(n, p)``:
    its kept columns ascending, then its removed ones ascending. ``gain[s]`` ``(m, p - s, s)``:
    the gains ``A = Sigma_RS Sigma_SS^{-1}`` of the coalitions of size ``s`` (rows ``R`` and
    columns ``S`` as in ``order``), slot ``i``'s at ``gain[size[i]][at[i]]``. ``noise``
    ``(n, K, p)``: ``L_{R|S} eps_R`` of each of the ``K`` standard-normal draws on ``R``, zero
    on ``S``; None for plug-in means. A removed column is
    ``mu_R + A (x_S - mu_S) + L_{R|S} eps_R``."""

    size: np.ndarray
    order: np.ndarray
    at: np.ndarray
    gain: dict[int, np.ndarray]
    noise: np.ndarray | None

    def dense_gain(self, slots: np.ndarray | None = None) -> np.ndarray:
        """The gains of ``slots`` (default all) as ``(n, p, p)`` matrices in column order:
        ``[R, S]`` holds ``A``, the rest is zero."""
        slots = np.arange(len(self.size)) if slots is None else np.asarray(slots)
        p = self.order.shape[1]
        out = np.zeros((len(slots), p, p))
        for i, slot in enumerate(slots):
            s = int(self.size[slot])
            S, R = self.order[slot, :s], self.order[slot, s:]
            out[i][np.ix_(R, S)] = self.gain[s][self.at[slot]]
        return out


def conditional_factors(cov: torch.Tensor, keep: np.ndarray,
                        eps: torch.Tensor | None) -> ConditionalFactors:
    """Factors of coalitions ``keep`` ``(n, p)`` (True = kept column) under covariance ``cov``
    ``(p, p)``: the coalitions of each size in batched factorisations of at most
    :data:`FACTOR_BLOCK_BYTES`; ``eps`` ``(K, p)`` standard-normal draws (None: no noise,
    plug-in means)."""
    keep = np.asarray(keep, dtype=bool)
    n, p = keep.shape
    size = keep.sum(1)
    order = np.argsort(~keep, axis=1, kind="stable")  # kept columns first, each ascending
    at = np.empty(n, dtype=np.intp)
    gain: dict[int, np.ndarray] = {}
    # -0.0 on the kept columns: x + (-0.0) is x bit for bit (x = -0.0 included), so draws
    # hold the explicands' own values where kept
    noise = None if eps is None else np.full((n, eps.shape[0], p), -0.0)
    e = None if eps is None else eps.numpy()
    step = max(1, FACTOR_BLOCK_BYTES // (6 * 8 * p * p))
    for s in np.unique(size).tolist():  # at most p + 1 sizes
        rows = np.flatnonzero(size == s)
        at[rows] = np.arange(len(rows))
        gain[s] = np.empty((len(rows), p - s, s))
        for a in range(0, len(rows), step):
            block = rows[a:a + step]
            R = order[block, s:]
            A, L = _conditional_stack(cov, order[block, :s], R)
            gain[s][a:a + step] = A
            if noise is not None:  # eps_R (m, K, r) times L^T
                noise[block[:, None, None], np.arange(e.shape[0])[None, :, None],
                      R[:, None, :]] = np.matmul(e[:, R].transpose(1, 0, 2),
                                                 L.transpose(0, 2, 1))
    return ConditionalFactors(size, order, at, gain, noise)


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
    order = np.empty((n, p), dtype=np.intp)
    at = np.empty(n, dtype=np.intp)
    gains: dict[int, list] = {}
    noise = None if eps is None else np.zeros((n, eps.shape[0], p))
    for i, row in enumerate(keep):
        S, R = np.flatnonzero(row), np.flatnonzero(~row)
        A, L = _conditional(cov, S, R)
        order[i] = np.concatenate([S, R])
        at[i] = len(gains.setdefault(S.size, []))
        gains[S.size].append(A.numpy())
        if noise is not None:
            noise[i][:, R] = (eps[:, R] @ L.T).numpy()
    return ConditionalFactors(keep.sum(1), order, at,
                              {s: np.stack(g) for s, g in gains.items()}, noise)


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
                      draws: slice = slice(None), dtype=np.float64) -> np.ndarray:
    """Rows ``x`` ``(c, p)`` with the columns outside ``keep`` ``(c, p)`` drawn from their
    conditional distribution, row ``i`` by coalition ``which[i]`` of ``factors``: ``(c, K, p)``
    for the noise draws ``draws``, or ``(c, 1, p)`` conditional means when ``factors`` has no
    noise; computed in float64, returned as ``dtype``. Kept columns are ``x``."""
    c, p = x.shape
    which = np.asarray(which)
    size = factors.size.take(which)
    by_size = np.argsort(size, kind="stable")  # rows of each coalition size together
    sizes, starts = np.unique(size.take(by_size), return_index=True)
    order = factors.order.take(which.take(by_size), axis=0)
    centred = np.take_along_axis((x - mu).take(by_size, axis=0), order, 1)  # kept first
    shift = np.zeros((c, p))  # A (x_S - mu_S) on the removed columns, in ``order``
    for s, a, b in zip(sizes.tolist(), starts.tolist(), [*starts[1:].tolist(), c]):
        if s in (0, p):  # nothing to condition on, or nothing removed
            continue
        gain, at = factors.gain[s], factors.at.take(which.take(by_size[a:b]))
        step = max(1, FACTOR_BLOCK_BYTES // (8 * (p - s) * s))
        for u in range(a, b, step):  # one block unless the gains are large
            v = min(b, u + step)
            shift[u:v, s:] = np.matmul(gain.take(at[u - a:v - a], axis=0),
                                       centred[u:v, :s, None])[:, :, 0]
    sorted_mean = np.empty((c, p))
    np.put_along_axis(sorted_mean, order, shift, 1)  # back to column order
    mean = np.empty((c, p))
    mean[by_size] = sorted_mean
    base = np.where(keep, x, mean + mu)
    if factors.noise is None:
        return base.astype(dtype, copy=False)[:, None, :]
    noise = factors.noise[:, draws].take(which, axis=0)
    return np.add(noise, base[:, None, :], out=noise if dtype == np.float64 else
                  np.empty(noise.shape, dtype=dtype))


class FactorCache:
    """:func:`conditional_factors` of the coalitions seen so far, looked up by their packed
    masks in one vectorised search. At most ``max_bytes`` of factors (a coalition of ``s`` kept
    columns takes :meth:`coalition_bytes`; ``used`` counts the arrays allocated, spare rows
    included): once full, it keeps the coalitions it holds (games revisit the same coalitions
    for every explicand, in the same order) and factors the others on every call."""

    def __init__(self, cov: torch.Tensor, eps: torch.Tensor | None,
                 max_bytes: int = 256 * 2**20) -> None:
        self.cov, self.eps, self.max_bytes = cov, eps, max_bytes
        p = cov.shape[0]
        self.fixed_bytes = 8 * p * (1 + (0 if eps is None else eps.shape[0])) + 16
        self.key_bytes = int(self.coalition_bytes(p // 2))  # the most one coalition takes
        self.clear()

    def coalition_bytes(self, size):
        """Bytes that coalitions of ``size`` kept columns take: the noise, the column order,
        and the gain (``size * (p - size)`` numbers)."""
        return self.fixed_bytes + 8 * size * (self.cov.shape[0] - size)

    def clear(self) -> None:
        """Forget every coalition."""
        self.keys = np.empty(0, dtype=np.void(1))  # packed masks in slot order
        self.ordered = self.keys  # the keys sorted
        self.slot_of = np.empty(0, dtype=np.intp)  # slot of each key of ``ordered``
        self.store: ConditionalFactors | None = None  # room for max_bytes of factors
        self.held = np.zeros(self.cov.shape[0] + 1, dtype=np.intp)  # gains held per size
        self.used = 0  # bytes allocated: the coalitions held and the spare rows of the gains
        self.spare_rows = True  # gains grow by doubling until the spare rows are given back

    def lookup(self, keep: np.ndarray) -> tuple[ConditionalFactors, np.ndarray]:
        """Factors and the index of each row of ``keep`` ``(c, p)`` in them: the cache's
        store, or once it is full a stack of this call's coalitions. Coalitions not seen
        before are factored together in one batch."""
        keys = _keys(keep)
        if len(self.ordered) and self.ordered.dtype == keys.dtype:  # all held: no sort
            at = np.minimum(np.searchsorted(self.ordered, keys), len(self.ordered) - 1)
            if (self.ordered[at] == keys).all():
                return self.store, self.slot_of[at]
        uniq, first, inv = np.unique(keys, return_index=True, return_inverse=True)
        slots = self._find(uniq)
        missing = np.flatnonzero(slots < 0)
        made = conditional_factors(self.cov, keep[first[missing]], self.eps)
        room = self._room(made.size)
        if room < len(missing) and self.spare_rows:  # give the spare rows back, try again
            self._trim()
            room = self._room(made.size)
        if room >= len(missing):
            slots[missing] = self._add(uniq[missing], made)
            return self.store, slots[inv.ravel()]
        # full: this call's coalitions in a stack of their own, the first new ones kept
        hit = np.flatnonzero(slots >= 0)
        stack = _concat(_gather(self.store, slots[hit]), made) if len(hit) else made
        position = np.empty(len(uniq), dtype=np.intp)
        position[hit] = np.arange(len(hit))
        position[missing] = len(hit) + np.arange(len(missing))
        if room:
            self._add(uniq[missing[:room]], _gather(made, np.arange(room)))
        return stack, position[inv.ravel()]

    def _room(self, size: np.ndarray) -> int:
        """How many of new coalitions of ``size`` kept columns fit, in this order."""
        return int(np.searchsorted(np.cumsum(self._new_bytes(size)), self.max_bytes - self.used,
                                   side="right"))

    def _trim(self) -> None:
        """Give back the spare rows of every size's gains; from now on gains grow by the rows
        they need alone (the cache is nearly full)."""
        p = self.cov.shape[0]
        for s, gain in (self.store.gain if self.store is not None else {}).items():
            self.used -= 8 * s * (p - s) * (len(gain) - self.held[s])
            self.store.gain[s] = gain[:self.held[s]].copy()
        self.spare_rows = False

    def _new_bytes(self, size: np.ndarray) -> np.ndarray:
        """Bytes that new coalitions of ``size`` kept columns, stored in this order, would
        allocate: their noise and column order, and their gain unless a spare row of its
        size's array takes it."""
        p = self.cov.shape[0]
        spare = np.zeros(p + 1, dtype=np.intp)  # spare rows of each size's gains
        if self.store is not None:
            for s, gain in self.store.gain.items():
                spare[s] = len(gain) - self.held[s]
        by = np.argsort(size, kind="stable")
        rank = np.empty(len(size), dtype=np.intp)  # earlier new coalitions of the same size
        rank[by] = np.arange(len(size)) - np.searchsorted(size[by], size[by])
        return self.fixed_bytes + 8 * size * (p - size) * (rank >= spare[size])

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
        """Store ``made`` under ``keys`` (new keys that fit in ``max_bytes``); their slots."""
        n0, n1 = len(self.keys), len(self.keys) + len(keys)
        if self.store is None:  # untouched pages of an empty array take no memory yet
            n = max(n1, self.max_bytes // self.fixed_bytes)
            self.store = ConditionalFactors(
                np.empty(n, dtype=np.intp), np.empty((n, made.order.shape[1]), dtype=np.intp),
                np.empty(n, dtype=np.intp), {},
                None if made.noise is None else np.empty((n, *made.noise.shape[1:])))
        store = self.store
        store.size[n0:n1], store.order[n0:n1] = made.size, made.order
        store.at[n0:n1] = made.at + self.held[made.size]
        if made.noise is not None:
            store.noise[n0:n1] = made.noise
        p = made.order.shape[1]
        self.used += self.fixed_bytes * len(keys)
        # rows each size's gains must grow by; lookup checked that they fit in max_bytes
        short = {s: max(0, self.held[s] + len(g) - len(store.gain.get(s, ())))
                 for s, g in made.gain.items()}
        pending = sum(n * 8 * s * (p - s) for s, n in short.items())
        for s, gain in made.gain.items():  # each size's gains grow by doubling, if room
            have, old = self.held[s], store.gain.get(s)
            if old is None or short[s]:
                row = 8 * s * (p - s)
                pending -= short[s] * row
                free = self.max_bytes - self.used - short[s] * row - pending
                spare = (min(have, free // row) if row else have) if self.spare_rows else 0
                store.gain[s] = np.empty((have + len(gain) + spare, *gain.shape[1:]))
                store.gain[s][:have] = old[:have] if have else 0.0
                self.used += row * (len(store.gain[s]) - (0 if old is None else len(old)))
            store.gain[s][have:have + len(gain)] = gain
            self.held[s] += len(gain)
        self.keys = np.concatenate([self.keys, keys]) if n0 else keys
        self.slot_of = np.argsort(self.keys, kind="stable")
        self.ordered = self.keys[self.slot_of]
        return np.arange(n0, n1)


def _gather(factors: ConditionalFactors, slots: np.ndarray) -> ConditionalFactors:
    """The factors of ``slots``, in that order."""
    size = factors.size[slots]
    at = np.empty(len(slots), dtype=np.intp)
    gain = {}
    for s in np.unique(size).tolist():
        mine = np.flatnonzero(size == s)
        gain[s] = factors.gain[s].take(factors.at[slots[mine]], axis=0)
        at[mine] = np.arange(len(mine))
    return ConditionalFactors(size, factors.order[slots], at, gain,
                              None if factors.noise is None else factors.noise[slots])


def _concat(first: ConditionalFactors, then: ConditionalFactors) -> ConditionalFactors:
    """The coalitions of ``first`` and then of ``then`` (each holding exactly its gains)."""
    held = np.zeros(first.order.shape[1] + 1, dtype=np.intp)
    for s, gain in first.gain.items():
        held[s] = len(gain)
    gain = {s: np.concatenate([first.gain[s], g]) if s in first.gain else g
            for s, g in then.gain.items()}
    return ConditionalFactors(
        np.concatenate([first.size, then.size]), np.concatenate([first.order, then.order]),
        np.concatenate([first.at, then.at + held[then.size]]), {**first.gain, **gain},
        None if first.noise is None else np.concatenate([first.noise, then.noise]))


def cached_draws(cache: FactorCache, x: np.ndarray, keep: np.ndarray, mu: np.ndarray,
                 draws: slice = slice(None), dtype=np.float64) -> np.ndarray:
    """:func:`conditional_draws` of rows ``x`` with the factors of ``cache``, in blocks of rows
    whose new factors take at most :data:`FACTOR_BLOCK_BYTES` (one block unless the columns
    are many)."""
    if len(x) == 0:
        draws_of = 1 if cache.eps is None else len(range(cache.eps.shape[0])[draws])
        return np.empty((0, draws_of, x.shape[1]), dtype=dtype)
    step = max(1, FACTOR_BLOCK_BYTES // cache.key_bytes)
    parts = []
    for a in range(0, len(x), step):
        store, which = cache.lookup(keep[a:a + step])
        parts.append(conditional_draws(x[a:a + step], keep[a:a + step], mu, store, which,
                                       draws, dtype))
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
