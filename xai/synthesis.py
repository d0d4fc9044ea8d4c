"""Synthetic inputs: the explicand where a feature is kept, its replacement where it is removed.

:func:`where_select` is the reference: ``torch.where(keep, x, r)``. The strategies give the
same values bit for bit, faster for their inputs, and are chosen once per game from the
explicands' dtype (:func:`choose_strategy`):

- :class:`LerpSelect` for floating inputs: ``lerp(r, x, m)`` at ``m`` in ``{0, 1}`` is exactly
  ``r`` or ``x`` while ``x - r`` is finite, which :func:`under_half_max` checks on the
  operands (it falls back to ``where`` otherwise). One fused pass, no boolean temporary, and
  it may write over the mask's buffer or over a copy of the explicands.
- :class:`BitwiseSelect` for integer inputs (token ids): ``r ^ ((x ^ r) & m)`` with the mask
  as a bit pattern (``-1`` kept, ``0`` removed).
- :class:`WhereSelect` otherwise (the reference itself).

Fractional masks are a blend, not a selection: :func:`blend` gives ``m x + (1 - m) r``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

LERP_DTYPES = (torch.float64, torch.float32, torch.float16, torch.bfloat16)
INTEGER_DTYPES = (torch.int64, torch.int32, torch.int16, torch.int8, torch.uint8)


def where_select(x: torch.Tensor, keep: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    """The reference: ``x`` where ``keep`` (nonzero), else ``r``; all broadcast."""
    return torch.where(keep.bool(), x, r)


def blend(x: torch.Tensor, m: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    """Fractional masks ``m`` in ``[0, 1]``: ``m x + (1 - m) r``."""
    return m * x + (1 - m) * r


def under_half_max(t: torch.Tensor) -> bool:
    """True when every element of floating ``t`` is under half its dtype's largest value: the
    difference of two such values is finite, so ``lerp(r, x, m)`` at ``m`` in ``{0, 1}`` returns
    ``r`` or ``x`` exactly."""
    if t.dtype not in LERP_DTYPES:
        return False
    if not t.numel():
        return True
    low, high = torch.aminmax(t)  # a reduction: no temporary the size of t
    half = torch.finfo(t.dtype).max / 2
    return bool(high < half) and bool(low > -half)


class WhereSelect:
    """The reference strategy: masks as booleans, ``torch.where``."""

    name = "where"
    #: builds pairs of one mask and one draw over a copy of the explicands
    #: (:meth:`replace_in_place`) rather than into a new array
    in_place = False

    def encode(self, keep: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        """Mask values for :meth:`select` from a boolean table (``True`` = keep)."""
        return keep

    def select(self, x: torch.Tensor, m: torch.Tensor, r: torch.Tensor, *,
               over_mask: bool = False) -> torch.Tensor:
        """``x`` where ``m`` keeps, else ``r``."""
        return where_select(x, m, r)

    def replace_in_place(self, x: torch.Tensor, removed: torch.Tensor,
                         r: torch.Tensor) -> torch.Tensor:
        """``r`` where ``removed``, else ``x``; may write over ``x`` (a private copy)."""
        return torch.where(removed.bool(), r, x)


class LerpSelect(WhereSelect):
    """Floating inputs: masks as 0/1 in the inputs' dtype and ``lerp``, where both operands are
    lerp-safe; ``safe(r)`` says whether replacements ``r`` are (remembered by the caller)."""

    name = "lerp"

    def __init__(self, x_safe: bool, safe: Callable[[torch.Tensor], bool]) -> None:
        self.x_safe = x_safe
        self.safe = safe
        self.in_place = x_safe

    def encode(self, keep: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        # bool -> float through a uint8 view: the same 0/1 values, one cheap conversion
        return (keep.view(torch.uint8) if keep.dtype == torch.bool else keep).to(dtype)

    def select(self, x, m, r, *, over_mask=False):
        if not (self.x_safe and self.safe(r)):
            return where_select(x, m, r)
        over = over_mask and m.dtype == x.dtype and all(
            a in (1, n) and b in (1, n) for a, b, n in zip(x.shape, r.shape, m.shape))
        return torch.lerp(r, x, m, out=m) if over else torch.lerp(r, x, m)

    def replace_in_place(self, x, removed, r):
        return x.lerp_(r, removed) if self.safe(r) else torch.where(removed.bool(), r, x)


class BitwiseSelect(WhereSelect):
    """Integer inputs: masks as bit patterns (``-1`` kept, ``0`` removed) and
    ``r ^ ((x ^ r) & m)``, a selection without a branch."""

    name = "bitwise"

    def encode(self, keep, dtype):
        return keep.to(dtype).neg_() if keep.dtype == torch.bool else keep

    def select(self, x, m, r, *, over_mask=False):
        if m.dtype == torch.bool:
            return where_select(x, m, r)
        return torch.bitwise_and(torch.bitwise_xor(x, r), m).bitwise_xor_(r)


def choose_strategy(X: torch.Tensor, safe: Callable[[torch.Tensor], bool]) -> WhereSelect:
    """The strategy for explicands ``X``: lerp for floating inputs whose values are
    lerp-safe, bitwise selection for integer inputs, else the reference."""
    if X.is_floating_point():
        return LerpSelect(under_half_max(X), safe)
    if X.dtype in INTEGER_DTYPES:
        return BitwiseSelect()
    return WhereSelect()
