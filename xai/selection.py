"""Synthetic inputs by table lookup, for many coalitions of one explicand with one replacement.

Every element of a synthetic row is either the explicand's value or the replacement's, chosen by
the coalition's bit of the element's feature. Cut a row into groups of ``G`` consecutive
elements; a group touches ``k`` distinct features (one, inside a superpixel; two or three on a
boundary), so it takes one of ``2^k`` patterns of values, known before any coalition is drawn.
A :class:`SelectionPlan` lists the patterns of every group; :func:`selection_table` fills them
with one explicand's and replacement's values (a few thousand rows of ``G`` values); then a
block of coalitions is one small matrix product (each group's pattern number, the sum of its
features' bits times ``2^slot``) and one gather of whole ``G``-element rows of the table
(:func:`select`), which writes every synthetic value once, bit for bit ``x`` or ``r``: no mask
of the inputs' size is written and read back, as an element-wise blend needs.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
import torch

#: group sizes tried, largest first (fewer, wider rows gathered)
GROUP_SIZES = (16, 12, 8, 6, 4)
#: most distinct features one group may touch (2^k table rows per group)
MAX_GROUP_FEATURES = 4
#: the table may hold at most this many times the elements of one row
MAX_TABLE_FACTOR = 4
#: plans remembered by content (the same segmentation explained again costs no new plan)
PLAN_CACHE_SIZE = 16
_plans: OrderedDict[tuple, SelectionPlan | None] = OrderedDict()


@dataclass
class SelectionPlan:
    """Patterns of the groups of one feature map (see the module docstring).

    ``group``: elements per group ``G``; ``weights`` ``(d + 1, Q)``: ``2^j`` at the ``j``-th
    distinct feature of group ``q`` (column ``d``: always kept); ``offsets`` ``(Q,)``: the
    group's first table row; ``pos`` / ``keep`` ``(T, G)``: the element each table entry reads
    and whether it takes the explicand's value (else the replacement's)."""

    group: int
    weights: torch.Tensor
    offsets: torch.Tensor
    pos: torch.Tensor
    keep: torch.Tensor

    @property
    def rows(self) -> int:
        """Rows ``T`` of one explicand's table."""
        return self.pos.shape[0]


def selection_plan(features: np.ndarray, d: int, device: torch.device | str = "cpu",
                   dtype: torch.dtype = torch.float32) -> SelectionPlan | None:
    """The plan for one row whose element ``i`` belongs to feature ``features[i]`` (``0..d``,
    ``d``: always kept), or None when no group size of :data:`GROUP_SIZES` divides the row with
    groups of at most :data:`MAX_GROUP_FEATURES` features and a table of at most
    :data:`MAX_TABLE_FACTOR` rows' elements. ``dtype``: that of the coalition bits
    (pattern numbers stay exact: below 2^MAX_GROUP_FEATURES). Plans are read-only and
    remembered by content (the last :data:`PLAN_CACHE_SIZE`)."""
    features = np.ascontiguousarray(features, dtype=np.int64).ravel()
    key = (hashlib.blake2b(features.tobytes(), digest_size=16).digest(), features.size, int(d),
           str(device), dtype)
    if key in _plans:
        _plans.move_to_end(key)
        return _plans[key]
    plan = _make_plan(features, int(d), device, dtype)
    _plans[key] = plan
    if len(_plans) > PLAN_CACHE_SIZE:
        _plans.popitem(last=False)
    return plan


def _make_plan(features: np.ndarray, d: int, device, dtype) -> SelectionPlan | None:
    D = features.size
    for G in GROUP_SIZES:
        if D % G or D < G:
            continue
        f = features.reshape(-1, G)
        s = np.sort(f, axis=1)
        new = np.ones_like(s, dtype=bool)
        new[:, 1:] = s[:, 1:] != s[:, :-1]
        k = new.sum(1)
        if k.max() > MAX_GROUP_FEATURES or int((2 ** k).sum()) * G > MAX_TABLE_FACTOR * D:
            continue
        # slot of each element: how many of its group's distinct features are smaller
        slot = (new[:, None, :] & (s[:, None, :] < f[:, :, None])).sum(2)  # (Q, G)
        Q = f.shape[0]
        weights = np.zeros((d + 1, Q))
        q_new, g_new = np.nonzero(new)
        np.add.at(weights, (s[q_new, g_new], q_new), 2.0 ** (np.cumsum(new, 1)[q_new, g_new] - 1))
        sizes = 2 ** k
        offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]])
        group_of = np.repeat(np.arange(Q), sizes)  # (T,)
        state = np.arange(group_of.size) - offsets[group_of]
        pos = group_of[:, None] * G + np.arange(G)
        keep = (state[:, None] >> slot[group_of]) & 1
        return SelectionPlan(
            group=G, weights=torch.as_tensor(weights, dtype=dtype, device=device),
            offsets=torch.as_tensor(offsets, dtype=dtype, device=device),
            pos=torch.as_tensor(pos, device=device),
            keep=torch.as_tensor(keep.astype(bool), device=device))
    return None


def selection_table(plan: SelectionPlan, x: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    """The patterns' values for explicands ``x`` ``(rr, D)`` and replacements ``r`` ``(1 or
    rr, D)``: ``(rr * T, G)``, explicand ``i``'s table at rows ``i*T ... (i+1)*T - 1``."""
    r = r.expand(x.shape[0], -1)
    table = torch.where(plan.keep, x[:, plan.pos], r[:, plan.pos])  # (rr, T, G)
    return table.reshape(-1, plan.group)


def select(plan: SelectionPlan, table: torch.Tensor, bits: torch.Tensor) -> torch.Tensor:
    """Synthetic rows ``(rr, mm, D)`` of every explicand of ``table`` with every coalition of
    ``bits`` ``(mm, d + 1)`` (1 = kept, in the plan's dtype; last column 1): one pattern
    number per group by a matrix product, then one gather of ``G``-element rows."""
    rr = table.shape[0] // plan.rows
    # int32 row numbers: index_select takes them, and the conversion writes half the bytes
    number = torch.addmm(plan.offsets, bits, plan.weights).to(torch.int32)  # (mm, Q)
    if rr > 1:
        number = number[None] + (torch.arange(rr, device=number.device, dtype=torch.int32)
                                 * plan.rows)[:, None, None]
    out = table.index_select(0, number.reshape(-1))
    return out.reshape(rr, bits.shape[0], -1)
