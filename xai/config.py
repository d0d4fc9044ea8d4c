"""Global settings: the memory cap that bounds every array the game allocates."""

from __future__ import annotations

import os
import re

from .errors import OptionError

_UNITS = {"": 1, "b": 1, "k": 1e3, "kb": 1e3, "kib": 2**10, "m": 1e6, "mb": 1e6,
          "mib": 2**20, "g": 1e9, "gb": 1e9, "gib": 2**30, "t": 1e12, "tb": 1e12, "tib": 2**40}

DEFAULT_MEMORY_CAP = 256 * 2**20
"""Default cap, 256 MiB, on every intermediate array of one game call."""

DEFAULT_MAX_BATCH = 16_384
"""Largest number of rows per model call when ``batch_size=None``."""

CPU_CHUNK_BYTES = 4 * 2**20
"""Input bytes per model call on a CPU when ``batch_size=None``: a chunk whose inputs and
activations stay in the caches is faster per row than a large one. Measured with one thread
(model time per row by rows per call): a 3-conv CNN on 64x64x3 float32 images takes ~60 µs at
64-128 rows (3-6 MiB of input), ~150 µs at 256 rows and ~220 µs at 1024+ rows; on 32x32
images, ~17 µs up to 341 rows (4 MiB), ~32 µs at 512+; a 16-32-32-2 float64 MLP is flat
(0.19-0.20 µs) from 1,024 to 32,768 rows (4 MiB)."""

CPU_MAX_ROWS = 4096
"""Most rows per model call on a CPU when ``batch_size=None``, whatever the row size: the
MLP above takes 0.18 µs/row at 1,024-4,096 rows but 0.30 µs at 12,800-16,384, where each
hidden activation (4 MiB) leaves the caches and is allocated afresh by the system."""

CPU_BLOCK_BYTES = 2 * 2**20
"""Input bytes of synthetic rows built at a time on a CPU when ``batch_size=None`` (then
split into model calls of :data:`CPU_CHUNK_BYTES`): for small rows the per-block work (mask
gathering, the behaviour, bookkeeping: ~0.3 ms) is shared by several model calls."""

CPU_MIN_ROWS = 32
"""Fewest rows per model call that :data:`CPU_CHUNK_BYTES` may leave (large inputs): below
~32 rows the per-call overhead of a small model dominates (the CNN above: ~157 µs/row at 16)."""


def parse_size(value: float | str) -> int:
    """Parse a byte size such as ``268435456``, ``"256MiB"`` or ``"1 GiB"``."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if not value > 0 or value == float("inf"):
            raise OptionError(f"memory size must be a positive, finite number of bytes, got "
                              f"{value!r}: e.g. 268435456 or '256MiB'")
        return int(value)
    match = re.fullmatch(r"\s*([0-9.]+)\s*([a-zA-Z]*)\s*", str(value))
    if match is None or match.group(2).lower() not in _UNITS:
        raise OptionError(
            f"cannot read memory size {value!r}: write a number of bytes or e.g. '512MiB', '1GiB'"
        )
    size = int(float(match.group(1)) * _UNITS[match.group(2).lower()])
    if size <= 0:
        raise OptionError(f"memory size must be positive, got {value!r}")
    return size


class Config:
    """Process-wide defaults. ``memory_cap`` reads ``XAI_MEMORY_CAP`` when first used."""

    def __init__(self) -> None:
        self._memory_cap: int | None = None

    @property
    def memory_cap(self) -> int:
        """Bytes that one intermediate array of a game call may take (default 256 MiB)."""
        if self._memory_cap is None:
            env = os.environ.get("XAI_MEMORY_CAP")
            return parse_size(env) if env else DEFAULT_MEMORY_CAP
        return self._memory_cap

    @memory_cap.setter
    def memory_cap(self, value: int | str | None) -> None:
        self._memory_cap = None if value is None else parse_size(value)


config = Config()
