"""The results file of a benchmark run and the lock that keeps it to one writer
(SPEC-evaluation §6).

``results.jsonl`` holds one JSON object per finished cell, appended, flushed and fsynced as soon
as the cell finishes. A run killed while writing leaves at most one torn last line, which
:func:`read_rows` drops and truncates away (``repair=True``). Rows are never rewritten: a cell
computed again (``--rerun-errors``, ``--force``) appends a new row, and readers keep the last
row per ``key``.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import socket
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import XaiError

if TYPE_CHECKING:
    from typing import Self

RESULTS = "results.jsonl"
LOCK = ".bench.lock"


def canonical(obj: Any) -> str:
    """Canonical JSON (sorted keys, no spaces) of a cell specification."""
    return json.dumps(jsonable(obj), sort_keys=True, separators=(",", ":"))


def spec_key(spec: dict) -> str:
    """SHA-256 (hex) of the canonical JSON of ``spec``."""
    return hashlib.sha256(canonical(spec).encode()).hexdigest()


def jsonable(obj: Any) -> Any:
    """``obj`` with numpy scalars/arrays turned into Python values and NaN/inf into None."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple | set | frozenset):
        seq = sorted(obj, key=str) if isinstance(obj, set | frozenset) else obj
        return [jsonable(v) for v in seq]
    if isinstance(obj, np.ndarray):
        return jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        return jsonable(obj.item())
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, bool | int | str) or obj is None:
        return obj
    name = getattr(obj, "name", None)
    return name if isinstance(name, str) else type(obj).__name__


def read_rows(path: str | os.PathLike, repair: bool = False) -> list[dict]:
    """Rows of a results file (empty when it does not exist).

    A last line without its newline (a torn write of a killed run) is dropped; with
    ``repair=True`` it is also truncated away so that the next append starts on a clean line.
    Unparseable lines elsewhere are skipped with a warning.
    """
    path = Path(path)
    if not path.exists():
        return []
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        cut = data.rfind(b"\n") + 1
        warnings.warn(f"{path}: dropped a torn last line ({len(data) - cut} bytes) left by an "
                      "interrupted run", stacklevel=2)
        if repair:
            with open(path, "r+b") as fh:
                fh.truncate(cut)
                fh.flush()
                os.fsync(fh.fileno())
        data = data[:cut]
    rows = []
    for number, line in enumerate(data.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError:
            warnings.warn(f"{path}: line {number} is not valid JSON; skipped", stacklevel=2)
            continue
        if isinstance(row, dict) and "key" in row:
            rows.append(row)
    return rows


def last_per_key(rows: list[dict]) -> dict[str, dict]:
    """The last row of every key, in order of first appearance."""
    out: dict[str, dict] = {}
    for row in rows:
        out.pop(row["key"], None)
        out[row["key"]] = row
    return out


class ResultsWriter:
    """Appends rows to ``results.jsonl``: one line each, flushed and fsynced."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self._fh = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 (closed in close())

    def append(self, row: dict) -> None:
        line = json.dumps(jsonable(row), sort_keys=False, allow_nan=False)
        self._fh.write(line + "\n")
        self._fh.flush()
        os.fsync(self._fh.fileno())

    def close(self) -> None:
        self._fh.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    except OSError:
        return True
    return True


class RunLock:
    """Exclusive lock file in the output folder (``os.open`` with ``O_CREAT | O_EXCL``).

    The file holds ``pid host``. A lock left by a dead process on this host is taken over with a
    warning; a live one (or one from another host) makes a second runner fail with a message
    naming the holder.
    """

    def __init__(self, folder: str | os.PathLike) -> None:
        self.path = Path(folder) / LOCK
        self.held = False

    def acquire(self) -> None:
        host = socket.gethostname()
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                try:
                    text = self.path.read_text().split()
                    pid, owner = int(text[0]), (text[1] if len(text) > 1 else host)
                except (OSError, ValueError, IndexError):
                    pid, owner = -1, host
                if owner == host and (pid < 0 or not _pid_alive(pid)):
                    warnings.warn(f"{self.path}: taking over the stale lock of process {pid}, "
                                  "which is no longer running", stacklevel=3)
                    try:
                        self.path.unlink()
                    except FileNotFoundError:
                        pass
                    continue
                raise XaiError(
                    f"another benchmark runner (pid {pid} on {owner}) is writing to "
                    f"{self.path.parent}; wait for it to finish, or delete {self.path} if no "
                    "runner is running") from None
            with os.fdopen(fd, "w") as fh:
                fh.write(f"{os.getpid()} {host}\n")
            self.held = True
            return
        raise XaiError(f"could not take the lock {self.path}")

    def release(self) -> None:
        if self.held:
            try:
                self.path.unlink()
            except FileNotFoundError:
                pass
            self.held = False

    def __enter__(self) -> Self:
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()
