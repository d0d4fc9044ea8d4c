"""Reading ``.npz`` archives without trusting them.

:func:`read_npz` is what :meth:`xai.Explanation.load` reads files with. Unlike
:func:`numpy.load` it never unpickles and never decompresses more than it was allowed to: the
zip's declared sizes are checked before any member is read, every member is read with a bounded
read (so a member whose data decompresses to more than it declares is cut off and fails its
CRC check), each ``.npy`` header is parsed before its data and must describe exactly the bytes
that follow, and only real numbers (bool, int, uint, float up to 64 bits) are accepted, plus
0-d unicode strings for the members named in ``text_members``. Every problem is a
:class:`~xai.errors.FileFormatError` that says what is wrong with the file.
"""

from __future__ import annotations

import io
import math
import os
import struct
import zipfile
import zlib
from pathlib import Path

import numpy as np

from .errors import FileFormatError, XaiError

__all__ = ["MAX_MEMBER_BYTES", "MAX_TOTAL_BYTES", "read_npz"]

MAX_MEMBER_BYTES = 256 * 2**20
"""Default limit on the uncompressed size of one member of an archive (256 MiB)."""
MAX_TOTAL_BYTES = 1024 * 2**20
"""Default limit on the uncompressed size of all members together (1 GiB)."""

NUMERIC_KINDS = "biuf"  # bool, signed and unsigned integers, floats
MAX_ITEMSIZE = 8  # float64 / int64: long double has no portable layout
_MAX_HEADER = 10_000  # numpy's own limit on a .npy header
_CHUNK = 16 * 2**20  # bytes per bounded read
_NPY_MAGIC = b"\x93NUMPY"
_ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")
# errors the zip, zlib and npy-header readers raise on damaged input
_READ_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, EOFError, OSError,
                ValueError, TypeError, SyntaxError, RecursionError, struct.error,
                NotImplementedError, RuntimeError, OverflowError, KeyError, IndexError)


def read_npz(path: str | os.PathLike, *, max_member_bytes: int = MAX_MEMBER_BYTES,
             max_total_bytes: int = MAX_TOTAL_BYTES,
             text_members: tuple[str, ...] = ()) -> dict[str, np.ndarray]:
    """Every member of the ``.npz`` archive at ``path`` as an array, by name (without
    ``.npy``), after the checks of the module docstring.

    Raises :class:`FileNotFoundError` for a missing path and
    :class:`~xai.errors.FileFormatError` for anything else that is wrong.
    """
    path = Path(path)
    _check_leading_bytes(path)
    try:
        with zipfile.ZipFile(path) as archive:
            infos = archive.infolist()
            names = _member_names(path, infos)
            _check_declared_sizes(path, infos, max_member_bytes, max_total_bytes)
            return {name: _read_member(path, archive, info, name in text_members)
                    for name, info in zip(names, infos, strict=True)}
    except XaiError:
        raise
    except FileNotFoundError:
        raise
    except MemoryError as exc:
        raise FileFormatError(f"{path}: not enough memory to read it ({exc}); the file is "
                              "larger than this machine can load") from exc
    except _READ_ERRORS as exc:
        raise FileFormatError(f"{path} is a damaged or truncated .npz (zip) archive: "
                              f"{type(exc).__name__}: {exc}. Write it again with "
                              "Explanation.save.") from exc


def _check_leading_bytes(path: Path) -> None:
    """Name what the file is when it is not a zip archive (empty, a pickle, a .npy array)."""
    if path.is_dir():
        raise FileFormatError(f"{path} is a directory, not an xai explanation (.npz) file.")
    with open(path, "rb") as fh:
        head = fh.read(8)
    if not head:
        raise FileFormatError(f"{path} is empty (0 bytes), not an xai explanation file: the "
                              "write that made it was cut short; write it again with "
                              "Explanation.save.")
    if head[:1] == b"\x80" and len(head) > 1 and 2 <= head[1] <= 5:
        raise FileFormatError(f"{path} is a Python pickle, not an xai explanation file. xai "
                              "never loads pickles (loading one can run any code); save "
                              "explanations with Explanation.save.")
    if head.startswith(_NPY_MAGIC):
        raise FileFormatError(f"{path} holds a single .npy array, not an xai explanation "
                              "(.npz) file written by Explanation.save.")
    if not head.startswith(_ZIP_MAGICS):
        raise FileFormatError(f"{path} is not an xai explanation file: it is not a .npz (zip) "
                              f"archive (it starts with {head[:4]!r}). Write explanations with "
                              "Explanation.save.")


def _member_names(path: Path, infos: list[zipfile.ZipInfo]) -> list[str]:
    """Member names without ``.npy``; refuses duplicates, folders, encryption and compression
    methods other than stored and deflated."""
    seen: set[str] = set()
    names = []
    for info in infos:
        raw = info.filename
        if raw in seen:
            raise FileFormatError(f"{path} has two members named {raw!r}; a file written by "
                                  "Explanation.save has each member once.")
        seen.add(raw)
        if info.is_dir() or not raw.endswith(".npy"):
            raise FileFormatError(f"{path} has a member {raw!r} that is not a .npy array; "
                                  "a file written by Explanation.save holds .npy arrays only.")
        if info.flag_bits & 0x1:
            raise FileFormatError(f"{path}: member {raw!r} is encrypted; xai explanation files "
                                  "are never encrypted.")
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise FileFormatError(f"{path}: member {raw!r} uses zip compression method "
                                  f"{info.compress_type}; only stored and deflated members "
                                  "are read.")
        names.append(raw[:-len(".npy")])
    return names


def _mib(n: int) -> str:
    return f"{n / 2**20:.1f} MiB"


def _check_declared_sizes(path: Path, infos: list[zipfile.ZipInfo], max_member: int,
                          max_total: int) -> None:
    """Refuse before decompressing anything when a declared size is over a limit."""
    for info in infos:
        if info.file_size > max_member:
            raise FileFormatError(
                f"{path}: member {info.filename!r} declares {_mib(info.file_size)} uncompressed, "
                f"over the limit of {_mib(max_member)} per member. If you trust the file, pass "
                "a larger max_member_bytes= to Explanation.load.")
    total = sum(info.file_size for info in infos)
    if total > max_total:
        raise FileFormatError(
            f"{path} declares {_mib(total)} uncompressed in all, over the limit of "
            f"{_mib(max_total)}. If you trust the file, pass a larger max_total_bytes= to "
            "Explanation.load.")


def _read_member(path: Path, archive: zipfile.ZipFile, info: zipfile.ZipInfo,
                 text: bool) -> np.ndarray:
    """One member, read with bounded reads; its header must describe exactly its bytes."""
    name = info.filename
    with archive.open(info) as fh:
        shape, fortran, dtype = _read_header(path, name, fh)
        _check_dtype(path, name, dtype, shape, text)
        nbytes = math.prod(shape) * dtype.itemsize
        body = info.file_size - fh.tell()
        if nbytes != body:
            raise FileFormatError(
                f"{path}: member {name!r} says shape {shape} of {dtype} ({nbytes} bytes) but "
                f"holds {body} bytes after its header; the file is damaged.")
        raw = bytearray(nbytes)
        view = memoryview(raw)
        got = 0
        while got < nbytes:
            step = fh.readinto(view[got:got + _CHUNK])
            if not step:
                raise FileFormatError(f"{path}: member {name!r} ends after {got} of its "
                                      f"{nbytes} bytes; the file is truncated.")
            got += step
        if fh.read(1):  # also reaches the end of the member, where zipfile checks its CRC
            raise FileFormatError(f"{path}: member {name!r} holds more data than its header "
                                  "says; the file is damaged.")
    arr = np.frombuffer(raw, dtype=dtype).reshape(shape, order="F" if fortran else "C")
    if not dtype.isnative:
        arr = arr.astype(dtype.newbyteorder("="))
    if dtype.kind == "b":
        arr = arr.view(np.uint8) != 0  # any byte other than 0/1 reads as True, as numpy does
    return arr


def _read_header(path: Path, name: str, fh: io.BufferedIOBase):
    """``(shape, fortran_order, dtype)`` of a ``.npy`` stream (format version 1.0 or 2.0)."""
    try:
        version = np.lib.format.read_magic(fh)
    except ValueError as exc:
        raise FileFormatError(f"{path}: member {name!r} is not a .npy array ({exc}).") from exc
    readers = {(1, 0): np.lib.format.read_array_header_1_0,
               (2, 0): np.lib.format.read_array_header_2_0}
    if version not in readers:
        raise FileFormatError(f"{path}: member {name!r} is a .npy array of format version "
                              f"{version[0]}.{version[1]}; xai explanation files use 1.0 or "
                              "2.0.")
    try:
        return readers[version](fh, max_header_size=_MAX_HEADER)
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError):
        raise  # the archive itself is damaged: reported as such by read_npz
    except Exception as exc:  # numpy's parser of the header text raises many types
        raise FileFormatError(f"{path}: member {name!r} has a damaged .npy header "
                              f"({type(exc).__name__}: {exc}).") from exc


def _check_dtype(path: Path, name: str, dtype: np.dtype, shape: tuple, text: bool) -> None:
    """Real numbers only; a 0-d unicode string for text members."""
    if text:
        if dtype.kind != "U" or shape != ():
            raise FileFormatError(f"{path}: member {name!r} must be one unicode string; it is "
                                  f"an array of shape {shape} and dtype {dtype}.")
        return
    if dtype.hasobject:
        raise FileFormatError(f"{path}: member {name!r} has dtype object, which only pickle "
                              "can read; an xai explanation file holds numbers only. The file "
                              "was not written by Explanation.save.")
    if dtype.fields is not None or dtype.subdtype is not None:
        raise FileFormatError(f"{path}: member {name!r} has the structured dtype {dtype}; an "
                              "xai explanation file holds plain arrays of real numbers.")
    if dtype.kind not in NUMERIC_KINDS or dtype.itemsize > MAX_ITEMSIZE:
        raise FileFormatError(f"{path}: member {name!r} has dtype {dtype}; an xai explanation "
                              "file holds real numbers only (bool, int, uint or float up to "
                              "64 bits), not complex numbers, strings or dates.")
