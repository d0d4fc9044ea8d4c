"""Global settings: the memory cap that bounds every array the game allocates."""

from __future__ import annotations

import os
import re

from .errors import OptionError

_UNITS = {"": 1, "b": 1, "k": 1e3, "kb": 1e3, "kib": 2**10, "m": 1e6, "mb": 1e6,
          "mib": 2**20, "g": 1e9, "gb": 1e9, "gib": 2**30, "t": 1e12, "tb": 1e12, "tib": 2**40}

DEFAULT_MEMORY_CAP = 256 * 2**20
"""Default cap, 256 MiB, on every intermediate array of one game call."""


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
