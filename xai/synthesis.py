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

Fractional masks are a blend, not a selection: :func:`blend` gives ``m x + (1 - m) r``. A
removal whose replacements already hold the explicands where masks keep
(``replacements_keep_x``, e.g. conditional draws) needs no selection: its replacements are the
synthetic inputs.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch

from .features import FeatureMap
from .models import Model, channels_last_layout
from .removals import Removal
from .selection import SelectionPlan, select, selection_plan, selection_table

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


class SyntheticInputs:
    """Builds a game's synthetic inputs: the explicands ``X`` (flat, ``(n, D)``) where a
    coalition keeps a feature, the removal's replacements where it removes it, for blocks of
    ``(explicand, coalition, draw)`` triples, by the strategy chosen from the explicands.

    It owns how a mask reaches the input elements (the layout of a row, the feature of each
    position, the element order passed to the model, table lookup for blocks of one map) and
    remembers what does not change between blocks (permuted replacements, lookup tables,
    lerp safety); :meth:`clear` forgets it."""

    def __init__(self, X: torch.Tensor, input_shape: tuple[int, ...], index: torch.Tensor,
                 feature_map: FeatureMap, d: int, removal: Removal, K: int,
                 memory_cap: int, device: torch.device) -> None:
        self.X, self.input_shape, self.index = X, input_shape, index
        self.d, self.removal, self.K, self.memory_cap = d, removal, K, memory_cap
        self.device = device
        self._set_layout(feature_map)
        self._perm: torch.Tensor | None = None  # channels-last element order
        self._plans: dict[int, SelectionPlan | None] = {}  # table lookup per map
        self.strategy = choose_strategy(X, self.lerp_safe)
        self.clear()

    def clear(self) -> None:
        """Forget the remembered replacements and lookup tables (fresh removal draws)."""
        self._repl_memo: tuple = (None, None)  # the last permuted replacement
        self._table_memo: tuple = (None, None)  # the last lookup table

    @property
    def perm(self) -> torch.Tensor | None:
        """The original flat index of each element in the synthetic rows' order (channels
        last), or None when rows keep the input's order."""
        return self._perm

    @property
    def plans(self) -> dict[int, SelectionPlan | None]:
        """The table-lookup plans made so far, per feature map (None: the map does not fit)."""
        return dict(self._plans)

    @property
    def lookup_layout(self) -> bool:
        """Whether one mask value is read per input element (no channel broadcast): the layout
        that table lookup serves."""
        return self._layout[1] == 1

    def _set_layout(self, feature_map: FeatureMap) -> None:
        """How a coalition reaches the input elements. An input row is viewed as ``(A, C, B)``
        and a mask value is gathered once per map position (``_pix``: ``(n_maps, A*B)``, values
        ``0..d``, ``d`` = always kept) and broadcast over ``C``: the channels of an image map,
        else ``C = 1``. ``_pix`` is None when the positions are the features (identity map)."""
        shape = self.input_shape
        D = math.prod(shape)
        n_maps = feature_map.index.shape[0]
        layout = (1, 1, D)
        pos = feature_map.index.reshape(n_maps, -1)
        if tuple(feature_map.pos_shape) != shape:  # one map broadcast over a channel axis
            ax = feature_map.channel_axis % len(shape)
            inner = math.prod(shape[ax + 1:])
            if inner >= 16:  # contiguous runs long enough for a broadcast to pay
                layout = (math.prod(shape[:ax]), shape[ax], inner)
            else:  # e.g. channels last: one mask value per element
                pos = feature_map.full_index(shape)
        pix = np.where(pos < 0, self.d, pos)
        identity = pix.shape == (1, self.d) and np.array_equal(pix[0], np.arange(self.d))
        self._layout = layout
        self._pix = None if identity else torch.as_tensor(pix, device=self.device)

    def choose_memory_format(self, option: str, model: Model,
                             probe: Callable[[torch.Tensor], torch.Tensor],
                             full_first: torch.Tensor) -> None:
        """Switch the synthetic inputs to channels-last (``option``, the game's
        ``memory_format``; ``probe`` evaluates the model on one row, whose output as given is
        ``full_first``): the rows are
        then built in ``(H, W, C)`` element order (``_perm``: the original flat index of each
        element in that order; explicands ``_X_model``, one mask value per element) and passed
        as a channels-last view ``(n, C, H, W)``. The auto rule's probe (one counted row) is
        remembered by the model adapter per input shape and dtype."""
        self._perm = None
        shape = self.input_shape
        # auto: one replacement draw per coalition (a baseline, blur), whose row is permuted
        # once per explicand; K > 1 draws (background rows) would each be permuted per block
        if option == "contiguous" or (
                option == "auto" and (len(shape) != 3 or shape[0] == 1 or self.K > 1
                                      or not self.X.is_floating_point())):
            return
        if option == "auto":  # the probe's verdict, once per adapter and shape
            memo = model.__dict__.setdefault("_channels_last_memo", {})
            key = (shape, self.X.dtype)
            if key not in memo:
                with model.session():
                    memo[key] = channels_last_layout(
                        "auto", getattr(model, "module", None), probe,
                        self.X[:1].reshape(1, *shape), full_first)
            if not memo[key]:
                return
        C, H, W = shape
        D = C * H * W
        perm = torch.arange(D).reshape(C, H, W).permute(1, 2, 0).reshape(-1)
        pix = np.asarray(self.index.cpu())[:, perm.numpy()]
        self._perm = perm.to(self.X.device)
        self._X_model = self.X.index_select(1, self._perm)
        self._layout = (1, 1, D)
        self._pix = torch.as_tensor(np.ascontiguousarray(pix), device=self.device)

    def model_input(self, flat: torch.Tensor) -> torch.Tensor:
        """Model input rows ``(n, *input_shape)`` from flat synthetic rows in the layout's
        element order (a channels-last view when ``_perm`` is set)."""
        if self._perm is None:
            return flat.reshape(-1, *self.input_shape)
        C, H, W = self.input_shape
        return flat.reshape(-1, H, W, C).permute(0, 3, 1, 2)

    def explicands(self, r: torch.Tensor, copy: bool = True) -> tuple[torch.Tensor,
                                                                        torch.Tensor]:
        """Rows ``r`` of the explicands: in the input's element order (what the removal reads)
        and in the synthetic rows' order (the same tensor unless channels-last). Copies, or
        with ``copy=False`` views where ``r`` is one row (nothing will write over them)."""
        if not copy and r.shape[0] == 1:
            i = int(r[0])
            x = self.X[i:i + 1]
            return x, (x if self._perm is None else self._X_model[i:i + 1])
        x = self.X[r]
        return x, (x if self._perm is None else self._X_model[r])

    def positions(self, masks: torch.Tensor, rows: torch.Tensor, grid: bool,
                   removed: bool = False) -> torch.Tensor:
        """Mask value of every map position, in the explicands' dtype (0/1 for boolean masks;
        ``-1``/0, a bit mask, for integer inputs). ``grid``: masks ``(mm, d)`` for each of
        ``rows``, returns ``(1 or len(rows), mm, P)``; else one mask per row, returns
        ``(c, 1, P)``. The ``(mm, d + 1)`` table (the last column: always kept) is converted
        before it is gathered (a float gather is cheaper than a boolean one).
        ``removed=True`` (boolean masks): 1 where a position is removed, 0 where kept."""
        X = self.X
        if removed:
            masks = ~masks
        ext = masks
        if self._pix is not None:
            ext = torch.cat([masks, torch.full((masks.shape[0], 1), not removed,
                                               dtype=masks.dtype, device=masks.device)], 1)
        ext = self.strategy.encode(ext, X.dtype)
        if self._pix is None:
            m = ext
        elif self._pix.shape[0] == 1:
            m = ext.index_select(1, self._pix[0])
        elif grid:
            if rows.shape[0] == 1:
                return ext.index_select(1, self._pix[rows[0]])[None]
            return ext[:, self._pix[rows]].transpose(0, 1)
        else:
            m = torch.gather(ext, 1, self._pix[rows])
        return m[None] if grid else m[:, None]

    def synthetic(self, x: torch.Tensor, mpos: torch.Tensor, repl: torch.Tensor,
                   boolean: bool, in_place: bool = False,
                   spend_mask: bool = False) -> torch.Tensor:
        """Synthetic inputs ``(rr, mm, kb, D)`` of explicands ``x`` ``(rr, D)``, mask values
        per position ``mpos`` ``(1 or rr, mm, P)`` (in ``x``'s dtype when floating) and
        replacements ``repl`` ``(1 or rr, 1 or mm, kb, D)``, broadcast in one pass: ``x``
        where kept, else the replacement.

        Boolean masks select by the game's strategy (:mod:`xai.synthesis`: bit for bit
        ``torch.where(keep, x, r)``); fractional masks blend, ``m*x + (1-m)*r``.

        ``in_place=True`` (one mask and one draw per row of ``x``, ``x`` a private copy,
        ``mpos`` marking the removed positions): written over ``x`` (no second array of the
        inputs' size). ``spend_mask=True`` (``mpos`` a temporary not needed afterwards): a
        selection whose output has ``mpos``'s shape may be written over ``mpos``."""
        if boolean and self.removal.replacements_keep_x:  # already x where kept
            shape = (max(x.shape[0], mpos.shape[0], repl.shape[0]),
                     max(mpos.shape[1], repl.shape[1]), *repl.shape[2:])
            return repl.to(x.dtype).expand(shape)
        A, C, B = self._layout
        x6 = x.reshape(x.shape[0], 1, 1, A, C, B)
        m6 = mpos.reshape(mpos.shape[0], mpos.shape[1], 1, A, 1, B)
        r6 = repl.to(x.dtype).reshape(*repl.shape[:3], A, C, B)
        if in_place:
            synth = self.strategy.replace_in_place(x6, m6, r6)
        elif not boolean:
            synth = blend(x6, m6, r6)
        else:
            synth = self.strategy.select(x6, m6, r6, over_mask=spend_mask)
        return synth.reshape(*synth.shape[:3], -1)

    def selection_plan(self, r: torch.Tensor) -> SelectionPlan | None:
        """The table-lookup plan (:mod:`xai.selection`) of the feature map of explicands ``r``
        (one map for all of them, else None), made once per map."""
        maps = self.index.shape[0]
        if maps == 1:
            m = 0
        elif r.shape[0] == 1:
            m = int(r[0])
        else:
            return None
        if m not in self._plans:
            feats = (self._pix[m] if self._perm is not None else self.index[m]).cpu().numpy()
            self._plans[m] = selection_plan(feats, self.d, device=self.X.device)
        return self._plans[m]

    def selected(self, plan: SelectionPlan, xs: torch.Tensor, r: torch.Tensor,
                  repl: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        """Synthetic inputs ``(rr, mm, 1, D)`` of explicands ``xs`` with every mask by table
        lookup; the table of the last explicands is kept (like their replacements, it does not
        change between blocks)."""
        key = (tuple(r.tolist()), id(plan))
        if self._table_memo[0] != key:
            table = selection_table(plan, xs, repl.reshape(-1, repl.shape[-1]))
            self._table_memo = (key, table)
        bits = torch.ones((masks.shape[0], self.d + 1), dtype=plan.weights.dtype,
                          device=masks.device)
        bits[:, :self.d] = masks.view(torch.uint8) if masks.dtype == torch.bool else masks
        out = select(plan, self._table_memo[1], bits)
        return out.reshape(out.shape[0], out.shape[1], 1, -1)

    def replacement(self, x: torch.Tensor, r: torch.Tensor, mask_t: torch.Tensor, grid: bool,
                     s: int, e: int) -> torch.Tensor:
        """The removal's replacements for draws ``s:e`` as ``(1 or rr, 1 or mm, kb, D)``."""
        rr, D = x.shape
        mm = mask_t.shape[0] if grid else 1
        # a mask-free removal's replacements of an explicand and draws do not change between
        # blocks (the coalition cache relies on it too): the last permuted one is reused
        memo = (tuple(r.tolist()), s, e) if (
            self._perm is not None and grid and self.removal.mask_free) else None
        if memo is not None and self._repl_memo[0] == memo:
            return self._repl_memo[1]
        if grid and not self.removal.mask_free:  # one call on the expanded pairs
            repl = self.removal.replacement(x.repeat_interleave(mm, 0), r.repeat_interleave(mm),
                                            mask_t.repeat(rr, 1), s, e)
        else:  # pairs, or a mask-free removal: once per explicand
            masks = mask_t[:1].expand(rr, -1) if grid else mask_t
            repl = self.removal.replacement(x, r, masks, s, e)
            mm = 1
        repl = repl.reshape((1,) * max(0, 3 - repl.ndim) + tuple(repl.shape))
        if repl.shape[-1] != D:
            repl = repl.expand(*repl.shape[:-1], D)
        elif self._perm is not None:  # into the synthetic rows' element order
            repl = repl.index_select(repl.ndim - 1, self._perm)
        repl = repl[:, None] if repl.shape[0] == 1 else repl.reshape(rr, mm, repl.shape[1], D)
        if memo is not None:
            self._repl_memo = (memo, repl)
        return repl

    def lerp_safe(self, r: torch.Tensor) -> bool:
        """:func:`~xai.synthesis.under_half_max` of replacements ``r``, remembered for the last
        tensor view checked. A removal whose replacements are all rows of one tensor (its
        ``replacement_source``, e.g. a baseline's rows) has that tensor checked instead, in
        ``r``'s dtype: once per game, not once per block of gathered rows."""
        dtype = r.dtype
        src = getattr(self.removal, "replacement_source", None)
        if isinstance(src, torch.Tensor):
            r = src
        key = (r.data_ptr(), r.storage_offset(), tuple(r.shape), r.stride(), r._version,
               r.dtype, dtype)
        if getattr(self, "_lerp_key", None) != key:
            self._lerp_key, self._lerp_ok = key, under_half_max(r.to(dtype))
        return self._lerp_ok

    def subset_replacement(self, x: torch.Tensor, r: torch.Tensor, mask_t: torch.Tensor,
                            idx: np.ndarray) -> torch.Tensor:
        """Replacements of per-pair draw subsets ``idx`` ``(c, kb)`` as ``(c, 1, kb, D)``."""
        repl = self.replacement(x, r, mask_t, False, 0, self.K)  # (1 or c, 1, K, D)
        it = torch.as_tensor(idx, device=repl.device)
        if repl.shape[0] == 1:
            return repl[0, 0][it][:, None]
        D = repl.shape[-1]
        return repl[:, 0].gather(1, it[..., None].expand(-1, -1, D))[:, None]

    def inert_features(self, rows: np.ndarray) -> np.ndarray | None:
        """``(len(rows), d)`` bool: the features of each explicand whose every input element
        equals its replacement in every draw, bit for bit, so that keeping or removing them
        gives the same synthetic inputs (e.g. black pixels under a black baseline). None when
        the removal's replacements depend on the coalition (not ``mask_free``)."""
        if not self.removal.mask_free:
            return None
        A, C, B = self._layout
        rows = np.asarray(rows, dtype=np.int64)
        D = A * C * B
        bits = {8: torch.int64, 4: torch.int32, 2: torch.int16, 1: torch.int8}
        as_bits = bits[self.X.element_size()] if self.X.is_floating_point() else None
        differs = torch.zeros((len(rows), A * B), dtype=torch.bool, device=self.X.device)
        kb = max(1, min(self.K, self.memory_cap // max(1, 8 * D)))
        rb = max(1, self.memory_cap // max(1, 8 * kb * D))
        for i0 in range(0, len(rows), rb):
            r = torch.as_tensor(rows[i0:i0 + rb], device=self.X.device)
            x, xs = self.explicands(r)
            none = torch.zeros((len(r), self.d), dtype=torch.bool, device=x.device)
            x6 = xs.reshape(len(r), 1, 1, A, C, B)
            if as_bits is not None:  # bit patterns: -0.0 and 0.0 are different inputs
                x6 = x6.view(as_bits)
            for s in range(0, self.K, kb):
                e = min(self.K, s + kb)
                repl = self.replacement(x, r, none, False, s, e).to(x.dtype)
                r6 = repl.reshape(*repl.shape[:3], A, C, B)
                if as_bits is not None:
                    r6 = r6.view(as_bits)
                ne = (x6 != r6).any(dim=4).any(dim=2).any(dim=1)  # (rr, A, B)
                differs[i0:i0 + len(r)] |= ne.reshape(len(r), A * B)
                if bool(differs[i0:i0 + len(r)].all()):
                    break  # no position left to check in this block (the common case)
        if self._pix is None:
            return ~differs.cpu().numpy()
        pix = self._pix[0].expand(len(rows), -1) if self._pix.shape[0] == 1 else \
            self._pix[torch.as_tensor(rows, device=self._pix.device)]
        count = torch.zeros((len(rows), self.d + 1), device=differs.device)
        count.scatter_add_(1, pix, differs.to(count.dtype))
        return (count[:, :self.d] == 0).cpu().numpy()
