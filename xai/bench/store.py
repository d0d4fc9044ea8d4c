"""The results file of a benchmark run, its checksummed cache files and the lock that keeps
a folder to one writer.

``results.jsonl`` holds one JSON object per finished cell, appended, flushed and fsynced as soon
as the cell finishes. A run killed while writing leaves at most one torn last line, which
:func:`read_rows` drops and truncates away (``repair=True``). Rows are never rewritten: a cell
computed again (``--rerun-errors``, ``--force``) appends a new row, and readers keep the last
row per ``key``.

Cache files (explanations, their sidecars, the data sidecars) are written under the folder's
``.partial/``, fsynced and renamed into place (:func:`publish`), so a killed run never leaves a
half-written file where readers look; their SHA-256 is then recorded beside them in
``NAME.sha256`` (the ``sha256sum`` format, so ``sha256sum -c`` checks them too). A reader trusts
a cache file only when :func:`is_intact` says its bytes match that record; a damaged file, or
one whose record is missing (a run killed between the two renames), is computed again.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .._warn import warn
from ..errors import BenchLockedError

if TYPE_CHECKING:
    from typing import Self

RESULTS = "results.jsonl"
LOCK = ".bench.lock"
PARTIAL = ".partial"  # per cache folder: files being written, renamed into place when complete


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
        warn(f"{path}: dropped a torn last line ({len(data) - cut} bytes) left by an "
             "interrupted run")
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
            warn(f"{path}: line {number} is not valid JSON; skipped")
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
    """Appends rows to ``results.jsonl``: one line each, written and fsynced before
    :meth:`append` returns. A write that fails (disk full, I/O error) is cut back off the file,
    so the file never ends in half a row."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self._fh = open(self.path, "ab", buffering=0)  # noqa: SIM115 (closed in close())

    def append(self, row: dict) -> None:
        """Write ``row`` as one JSON line and fsync it."""
        line = (json.dumps(jsonable(row), sort_keys=False, allow_nan=False) + "\n").encode()
        end = self._fh.seek(0, os.SEEK_END)
        try:
            self._write_line(line)
        except OSError:
            try:  # best effort: the disk that failed the write may refuse this too
                self._fh.truncate(end)
            except OSError:
                pass
            raise

    def _write_line(self, line: bytes) -> None:
        view = memoryview(line)
        while view:
            view = view[self._fh.write(view):]
        os.fsync(self._fh.fileno())

    def close(self) -> None:
        self._fh.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# ---------------------------------------------------------------- checksummed cache files

def checksum_path(path: str | os.PathLike) -> Path:
    """Where the SHA-256 of the cache file ``path`` is recorded: ``NAME.sha256`` beside it."""
    path = Path(path)
    return path.with_name(path.name + ".sha256")


def sha256_of(path: str | os.PathLike) -> str:
    """SHA-256 (hex) of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _replace_durably(tmp: Path, path: Path) -> None:
    """fsync the complete file ``tmp``, then rename it to ``path`` (atomic on POSIX)."""
    with open(tmp, "rb") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def publish(tmp: str | os.PathLike, path: str | os.PathLike) -> None:
    """Move the complete file ``tmp`` to ``path`` and record its SHA-256 beside it.

    The record is written after the file is in place, itself via a temporary file and a
    rename, so a run killed at any point leaves either a matching record or a file that
    :func:`is_intact` rejects."""
    tmp, path = Path(tmp), Path(path)
    digest = sha256_of(tmp)
    _replace_durably(tmp, path)
    record = checksum_path(path)
    record_tmp = _partial(record)
    record_tmp.write_text(f"{digest}  {path.name}\n")
    _replace_durably(record_tmp, record)


def _partial(path: Path) -> Path:
    """Where ``path`` is written before it is complete: same name, in the folder's
    ``.partial/`` (same file system, so the rename is atomic; a glob of the folder misses it)."""
    folder = path.parent / PARTIAL
    folder.mkdir(exist_ok=True)
    return folder / path.name


def write_published(path: str | os.PathLike, write: Callable[[Path], Any]) -> None:
    """Write ``path`` through ``write(tmp)`` (``tmp`` has the same name, in ``.partial/``),
    then :func:`publish` it."""
    path = Path(path)
    tmp = _partial(path)
    write(tmp)
    publish(tmp, path)


def is_intact(path: str | os.PathLike) -> bool:
    """True when ``path`` and its SHA-256 record exist and the file's bytes match the record.
    A file that cannot be read counts as damaged."""
    path = Path(path)
    try:
        recorded = checksum_path(path).read_text().split()
        return bool(recorded) and recorded[0] == sha256_of(path)
    except (OSError, UnicodeDecodeError):
        return False


# ---------------------------------------------------------------- the run lock

class RunLock:
    """The output folder's run lock: an operating-system lock (:mod:`filelock`) on
    ``.bench.lock``, so the lock dies with its process (a killed run leaves nothing to clean
    up). A second run on the same folder fails at once with :class:`~xai.errors.BenchLockedError`
    instead of waiting. The lock file itself stays; only the lock on it matters."""

    def __init__(self, folder: str | os.PathLike) -> None:
        from filelock import FileLock

        self.path = Path(folder) / LOCK
        self._lock = FileLock(self.path, timeout=0)

    @property
    def held(self) -> bool:
        """Whether this object holds the lock."""
        return self._lock.is_locked

    def acquire(self) -> None:
        """Take the lock, or raise :class:`~xai.errors.BenchLockedError` when another run
        holds it (an ``OSError`` when the folder cannot hold a lock file)."""
        from filelock import Timeout

        try:
            self._lock.acquire()
        except Timeout:
            raise BenchLockedError(
                f"another benchmark run is writing to {self.path.parent} (it holds the lock "
                f"{self.path}); wait for it to finish, or give this run another output "
                "folder") from None

    def release(self) -> None:
        """Release the lock (nothing when it is not held)."""
        self._lock.release()

    def __enter__(self) -> Self:
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()
