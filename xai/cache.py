"""The game's cache of coalition values: the full, empty and repeated coalitions of a
summary's rounds (paired samples, permutation chains) are evaluated once."""

from __future__ import annotations

import math

import numpy as np
import torch


class CoalitionCache:
    """Values of coalitions already evaluated for ``n`` explicands: a key (a coalition's
    packed bytes) -> a column of one value table ``(n, columns, ...)``, NaN where a row has not
    been evaluated. The table grows by doubling and stops growing at ``memory_cap`` (or
    :attr:`max_entries` columns); coalitions past it are not remembered."""

    max_entries = 2**20

    def __init__(self, n: int, memory_cap: int) -> None:
        self.n = n
        self.memory_cap = memory_cap
        self.clear()

    def clear(self) -> None:
        """Forget every value."""
        self.columns: dict[bytes, int] = {}
        self.table: torch.Tensor | None = None

    def __len__(self) -> int:
        return len(self.columns)

    def lookup(self, keys: list[bytes], todo: np.ndarray, rows: np.ndarray,
                out: torch.Tensor) -> None:
        """Fill ``out[:, j]`` from the cache for coalitions ``j`` still to do whose values are
        known for every row of ``rows``; clear them in ``todo``."""
        if not self.columns:
            return
        idx = np.flatnonzero(todo)
        cols = np.array([self.columns.get(keys[j], -1) for j in idx], dtype=np.int64)
        hit = cols >= 0
        if not hit.any():
            return
        idx, cols = idx[hit], cols[hit]
        vals = self.table.index_select(1, torch.as_tensor(cols))
        if not self._all_rows(rows):
            vals = vals[torch.as_tensor(rows)]
        known = ~torch.isnan(vals.reshape(len(rows), len(cols), -1)).any(dim=2).any(dim=0)
        known = known.numpy()
        if known.any():
            out[:, torch.as_tensor(idx[known])] = vals[:, torch.as_tensor(known)]
            todo[idx[known]] = False

    def store(self, keys: list[bytes], idx: np.ndarray, rows: np.ndarray, vals: torch.Tensor,
              value_shape: tuple[int, ...]) -> None:
        """Remember the values ``vals`` (rows x coalitions ``idx``) of coalitions ``keys``."""
        per_column = self.n * max(1, math.prod(value_shape)) * 8
        limit = min(self.max_entries, self.memory_cap // per_column)
        get = self.columns.get  # keys of one call are distinct (unique coalitions)
        cols = np.fromiter((get(keys[j], -1) for j in idx), dtype=np.int64, count=len(idx)) \
            if self.columns else np.full(len(idx), -1, dtype=np.int64)
        new = np.flatnonzero(cols < 0)
        room = max(0, limit - len(self.columns))
        if len(new) > room:  # full: keep the calls' columns up to the first that has no room
            cols, new = cols[:new[room]], new[:room]
        start = len(self.columns)
        cols[new] = np.arange(start, start + len(new))
        self.columns.update(zip([keys[j] for j in idx[new]], range(start, start + len(new))))
        if not len(cols):
            return
        need = int(cols.max()) + 1
        table = self.table
        if table is None or table.shape[1] < need:
            size = min(limit, max(need, 2 * (0 if table is None else table.shape[1]), 64))
            grown = torch.full((self.n, size, *value_shape), float("nan"),
                               dtype=torch.float64)
            if table is not None:
                grown[:, :table.shape[1]] = table
            self.table = table = grown
        c = torch.as_tensor(cols)
        if self._all_rows(rows):  # a column copy, not an element-wise scatter
            table.index_copy_(1, c, vals[:, :len(cols)].contiguous())
        else:
            table[torch.as_tensor(rows)[:, None], c[None, :]] = vals[:, :len(cols)]

    def _all_rows(self, rows: np.ndarray) -> bool:
        """True when ``rows`` is every explicand in order."""
        return len(rows) == self.n and (self.n < 2 or (rows[0] == 0 and
                                                       bool((np.diff(rows) == 1).all())))
