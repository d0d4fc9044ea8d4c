"""What a summary may ask of a game: the contract between the game (removal and behaviour on
a model) and the summaries (how coalition values become scores), after shapiq's split of games
from approximators.

A summary asks only for what :class:`SummaryGame` declares; the capabilities of a
row-sampled dataset game (SAGE's one data row per unit) are in :class:`RowSampledGame`, and a
summary tests for them with ``game.sample_rows is not None``.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np
import torch


@runtime_checkable
class SummaryGame(Protocol):
    """A cooperative game of ``n`` explicands over ``d`` features."""

    n: int
    d: int
    kind: str  # "tabular", "image" or "tokens"
    memory_cap: int  # bytes one intermediate array may take
    sample_rows: int | None  # data rows to sample one per unit from (row-sampled games)

    @property
    def rows_per_coalition(self) -> int:
        """Model rows one coalition costs per explicand (``K_rem``)."""

    @property
    def value_shape(self) -> tuple[int, ...]:
        """Shape of one coalition's value: ``()`` or ``(k,)``."""

    @property
    def v_full(self) -> torch.Tensor:
        """``v(D)`` of every explicand ``(n, *value_shape)``."""

    @property
    def rows_evaluated(self) -> int:
        """Model rows evaluated so far."""

    @property
    def accepts_fractional(self) -> bool:
        """Whether coalitions may be fractional masks in ``[0, 1]`` (not only booleans)."""

    @property
    def positions(self) -> tuple[tuple[int, ...], str]:
        """The feature map's position shape and kind (``"patch"``, ``"superpixel"``, ...)."""

    @property
    def value_scale(self) -> str:
        """``"probability"`` when values are probabilities, else ``"raw"``; known before
        any model call."""

    @property
    def can_redraw(self) -> bool:
        """Whether the removal can draw fresh random replacements (:meth:`redraw`)."""

    def planned_rows(self, coalitions: int) -> int:
        """Model rows that ``D``, ``∅`` and ``coalitions`` other distinct coalitions of every
        explicand cost (the total of a progress bar)."""

    def v_empty(self, rows: np.ndarray | None = None) -> torch.Tensor:
        """``v(∅)`` of explicands ``rows``."""

    def __call__(self, masks, rows: np.ndarray | None = None) -> torch.Tensor:
        """Values ``(len(rows), m[, k])`` of coalitions ``masks`` ``(m, d)`` or
        ``(len(rows), m, d)``."""

    def redraw(self, repeat: int) -> None:
        """Fresh random replacements for repeat ``repeat``."""

    def require_fractional(self) -> None:
        """Raise the removal's named error unless it accepts fractional masks."""


@runtime_checkable
class RowSampledGame(SummaryGame, Protocol):
    """A dataset game whose units each draw one data row (``sample_rows`` is an int)."""

    @property
    def draws_per_unit(self) -> int | None:
        """Removal draws per unit (None: all)."""

    def draw_subsets(self, n_units: int, rng: np.random.Generator) -> np.ndarray | None:
        """Each unit's random subset of the removal's draws ``(n_units, K')``, or None."""

    def local(self, masks: np.ndarray, data_rows: np.ndarray,
              draws: np.ndarray | None = None) -> torch.Tensor:
        """Values of per-unit coalitions ``(U, m, d)`` for data rows ``data_rows``."""

    def local_empty(self, data_rows: np.ndarray) -> torch.Tensor:
        """``v(∅)`` of data rows."""

    def local_full(self, data_rows: np.ndarray) -> torch.Tensor:
        """``v(D)`` of data rows."""
