"""Uniform random subsets of a fixed size as boolean masks, from uniforms the caller draws.

:func:`floyd_subsets` runs Floyd's algorithm (Bentley & Floyd 1987) on a batch of rows at
once: ``min(k, d - k)`` vectorised steps, each reading and setting one bit per row, instead of
``d`` random keys and a selection per row. The caller draws the uniforms (e.g. one keyed
generator per explicand, so that a row's subsets do not depend on the batch).
"""

from __future__ import annotations

import numpy as np


def floyd_draws(d: int, k: int) -> int:
    """Uniforms per subset that :func:`floyd_subsets` reads: ``min(k, d - k)``."""
    return min(int(k), int(d) - int(k))


def floyd_subsets(u: np.ndarray, d: int, k: int) -> np.ndarray:
    """Masks ``(B, d)``, row ``b`` a uniformly random subset of ``k`` of ``d`` features, by
    Floyd's algorithm on the uniforms ``u`` ``(B, floyd_draws(d, k))`` in ``[0, 1)``.

    Step ``i`` (``j = d - m + i``, ``m`` the draws per row) takes ``t = floor(u[:, i] (j + 1))``
    in ``0..j`` and adds ``t``, or ``j`` when ``t`` is already in: every ``m``-subset arises
    from exactly ``m!`` of the ``d! / (d - m)!`` integer sequences, so the subset is uniform
    when the ``t`` are. With ``k > d / 2`` the ``d - k`` removed features are drawn instead
    (fewer steps), and the masks are their complement.
    """
    d, k = int(d), int(k)
    if not 0 <= k <= d:
        raise ValueError(f"subset size k = {k} must lie in 0..d = {d}")
    m = floyd_draws(d, k)
    u = np.asarray(u, dtype=np.float64)
    if u.ndim != 2 or u.shape[1] != m:
        raise ValueError(f"floyd_subsets needs uniforms of shape (B, {m}) for k = {k} of "
                         f"d = {d}; got {u.shape}")
    B = u.shape[0]
    chosen = np.zeros(B * d, dtype=bool)  # flat: row b's feature f is b * d + f
    base = np.arange(B, dtype=np.int64) * d
    j = np.arange(d - m, d, dtype=np.int64)  # step i may add j[i]
    t = (u * (j + 1)).astype(np.int64)
    np.minimum(t, j, out=t)  # 0..j (a product rounded up to j + 1 is clipped)
    # flat positions, one contiguous row per step
    t = np.ascontiguousarray((t + base[:, None]).T)
    jb = j[:, None] + base[None, :]
    for i in range(m):
        taken = chosen[t[i]]
        chosen[np.where(taken, jb[i], t[i])] = True
    masks = chosen.reshape(B, d)
    return ~masks if m < k else masks
