"""How many rows each model call takes: one planner for every model call (the game, the
metrics, the captum plugin).

Two costs decide it. A torch module on a CPU runs fastest per row on calls whose inputs and
activations stay in the CPU caches, so its calls are cache-sized (:data:`CPU_CHUNK_BYTES` of
input, within ``[CPU_MIN_ROWS, CPU_MAX_ROWS]`` rows). A scikit-learn estimator or a plain
function pays a fixed cost per call (input validation, a DataFrame, Python overhead), so its
calls are as large as the memory cap allows (at most :data:`DEFAULT_MAX_BATCH` rows). A torch
module on a GPU (``device=``, or its parameters there) pays a fixed cost per call too (kernel
launches, the outputs' transfer to the CPU), more cheaply per row in larger calls: at most
:data:`ACCELERATOR_MAX_ROWS` rows. A user's ``batch_size`` always wins, and the memory cap over
everything.

The sizes follow from the model's kind and the inputs' size only, never from timings taken
during a run: a plain function's or a GPU kernel's outputs may depend in their last bits on
the rows of a call, and the same seed must give the same values on every run; and on a shared
machine identical calls vary by 15% or more between runs, so sizes picked from timings would
change from run to run for gains inside that noise. Calls and blocks are whole multiples of
:data:`xai.models.CALL_ROW_MULTIPLE` rows where the cap allows, so that only a block's last
call is padded.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch

from .models import CALL_ROW_MULTIPLE

DEFAULT_MAX_BATCH = 16_384
"""Most rows per model call when ``batch_size=None``."""

ACCELERATOR_MAX_ROWS = 65_536
"""Most rows per model call of a torch module on a GPU (or another accelerator) when
``batch_size=None``, within the memory cap."""

CPU_CHUNK_BYTES = 4 * 2**20
"""Input bytes per call of a torch module on a CPU: a call whose inputs and activations stay
in the caches is faster per row than a large one (measurements: benchmarks/measured/)."""

CPU_MAX_ROWS = 4096
"""Most rows per call of a torch module on a CPU, whatever the row size: past it an MLP's
hidden activations leave the caches."""

CPU_MIN_ROWS = 32
"""Fewest rows per call that :data:`CPU_CHUNK_BYTES` may leave (large inputs): below it the
per-call overhead of a small model dominates."""

CPU_BLOCK_BYTES = 2 * 2**20
"""Input bytes of synthetic rows the game builds at a time for a cache-bound model (then split
into calls of :data:`CPU_CHUNK_BYTES`): the per-block work is shared by several calls."""

CPU_PASS_BYTES = 2 * 2**20
"""Expanded input bytes per forward/backward pass of a gradient method on a CPU."""

IMAGE_CPU_BATCH = 256
"""Rows per call of a torch module on a CPU with image inputs in the metrics, whose calls are
built per metric rather than in blocks."""


def cache_bound(model) -> bool:
    """Whether calls of the model adapter ``model`` should stay cache-sized: a torch module on
    a CPU. Scikit-learn estimators and plain functions pay a fixed cost per call instead."""
    module = getattr(model, "module", None)
    return isinstance(module, torch.nn.Module) and torch.device(model.device).type == "cpu"


def accelerated(model) -> bool:
    """Whether the model adapter ``model`` runs a torch module on a device other than the
    CPU."""
    module = getattr(model, "module", None)
    return isinstance(module, torch.nn.Module) and torch.device(model.device).type != "cpu"


def user_batch(model, batch_size: int | None = None) -> int | None:
    """The user's rows per call: the game's ``batch_size``, else the adapter's."""
    return batch_size or getattr(model, "batch_size", None)


def call_rows(model, row_bytes: int, batch_size: int | None = None) -> int | None:
    """Rows per model call of rows of ``row_bytes`` input bytes: cache-sized for a cache-bound
    model without a user batch size; None (a whole block per call) otherwise."""
    if user_batch(model, batch_size) or not cache_bound(model):
        return None
    rows = int(min(CPU_MAX_ROWS, max(CPU_MIN_ROWS, CPU_CHUNK_BYTES // max(1, row_bytes))))
    # whole multiples of the rows a call is padded to: only a block's last call is padded
    return max(CALL_ROW_MULTIPLE, rows - rows % CALL_ROW_MULTIPLE)


def block_rows(model, row_bytes: int, bytes_per_row: int, memory_cap: int,
               batch_size: int | None = None) -> int:
    """Rows of synthetic inputs built at a time: the user's batch size, or for a cache-bound
    model at least :data:`CPU_BLOCK_BYTES` of input and one call of :func:`call_rows`, for a
    module on a GPU :data:`ACCELERATOR_MAX_ROWS`, or else :data:`DEFAULT_MAX_BATCH`; always
    within ``memory_cap`` for blocks whose arrays take ``bytes_per_row`` per row together."""
    cap_rows = max(1, memory_cap // max(1, bytes_per_row))
    limit = user_batch(model, batch_size)
    if not limit:
        limit = ACCELERATOR_MAX_ROWS if accelerated(model) else DEFAULT_MAX_BATCH
        call = call_rows(model, row_bytes)
        if call is not None:
            limit = min(limit, max(call, CPU_BLOCK_BYTES // max(1, row_bytes)))
    return int(max(1, min(cap_rows, limit)))


def pass_rows(x: torch.Tensor, rows: int, cap: int) -> int:
    """Expanded rows per pass of a gradient method on inputs ``x`` (``rows`` explained rows,
    ``cap`` rows under the memory cap): on a CPU at most :data:`CPU_PASS_BYTES` of input,
    never below the explained rows."""
    if x.device.type == "cpu":
        row_bytes = max(1, x[:1].numel() * x.element_size())
        cap = min(cap, CPU_PASS_BYTES // row_bytes)
    return max(rows, cap)


def metric_batch(model, X) -> int | None:
    """Rows per call for a metric's own model calls: :data:`IMAGE_CPU_BATCH` for a torch module
    on a CPU with image inputs, else None (the adapter's own rule)."""
    if getattr(model, "batch_size", None) is None and getattr(X, "ndim", 0) > 2 and \
            cache_bound(model):
        return IMAGE_CPU_BATCH
    return None


def _padding_free(size: int, cap: int) -> int:
    """``size`` rounded up to a whole multiple of :data:`~xai.models.CALL_ROW_MULTIPLE` (down
    where that exceeds ``cap``), so that only a run's last block has a padded model call;
    ``size`` itself when ``cap`` holds no multiple."""
    up = -(-size // CALL_ROW_MULTIPLE) * CALL_ROW_MULTIPLE
    down = cap - cap % CALL_ROW_MULTIPLE
    return up if up <= cap else (down or size)


def pair_blocks(nr: int, mu: int, cb: int, shared: bool) -> Iterator[tuple[int, int, int, int]]:
    """Blocks of at most ``cb`` pairs, as ``(i0, i1, j0, j1)``: explicands ``rows[i0:i1]``
    with masks ``j0:j1`` (``shared``, every row with every mask; a block spans whole mask
    lists or one row's even share of them), else pairs ``i0:i1`` (``j0 = j1 = -1``). Blocks
    of a row's masks or of pairs are whole multiples of the rows a model call is padded to,
    where ``cb`` allows, so that their calls need no padding."""
    if not shared:
        size = _padding_free(cb, cb)
        for a in range(0, nr, size):
            yield a, min(nr, a + size), -1, -1
    elif mu >= cb:
        size = _padding_free(-(-mu // -(-mu // cb)), cb)
        for i in range(nr):
            for j in range(0, mu, size):
                yield i, i + 1, j, min(mu, j + size)
    else:
        rr = max(1, cb // mu)
        rr = -(-nr // -(-nr // rr))
        for i in range(0, nr, rr):
            yield i, min(nr, i + rr), 0, mu
