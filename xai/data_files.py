"""Tables read from CSV or Parquet files in chunks of rows, for ``xai explain``.

A :class:`TableFile` knows its columns and row count without reading the whole file, yields
chunks of exactly ``rows`` rows (the last may be shorter) as pandas DataFrames with the file's
column names, and picks given rows (a background sample). Parquet is read with pyarrow
(``ParquetFile.iter_batches``), CSV with pandas (``read_csv(chunksize=)``).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .errors import InputFileError, MissingDependencyError

__all__ = ["DATA_SUFFIXES", "TableFile", "require_pyarrow"]

CSV_SUFFIXES = (".csv",)
PARQUET_SUFFIXES = (".parquet", ".pq")
DATA_SUFFIXES = CSV_SUFFIXES + PARQUET_SUFFIXES


def require_pyarrow() -> Any:
    """The ``pyarrow.parquet`` module, or a :class:`MissingDependencyError` naming the extra."""
    try:
        import pyarrow.parquet as pq
    except ImportError as exc:
        raise MissingDependencyError("Parquet files need pyarrow: pip install 'xai[files]'") \
            from exc
    return pq


class TableFile:
    """A CSV or Parquet file of rows; ``what`` names it in error messages ("data")."""

    def __init__(self, path: str | os.PathLike, what: str = "data") -> None:
        self.path = Path(path)
        self.what = what
        suffix = self.path.suffix.lower()
        if suffix not in DATA_SUFFIXES:
            raise InputFileError(
                f"{what} file {str(path)!r}: unknown kind {suffix or '(no suffix)'!r}; give a "
                f"CSV ({', '.join(CSV_SUFFIXES)}) or Parquet ({', '.join(PARQUET_SUFFIXES)}) "
                "file")
        if not self.path.is_file():
            raise InputFileError(f"{what} file {str(path)!r} does not exist")
        self.kind = "csv" if suffix in CSV_SUFFIXES else "parquet"
        self._n_rows: int | None = None
        self.columns = self._read_columns()

    def _read_columns(self) -> list[str]:
        if self.kind == "parquet":
            return [str(c) for c in self._parquet().schema_arrow.names]
        import pandas as pd

        try:
            head = pd.read_csv(self.path, nrows=0)
        except (ValueError, UnicodeDecodeError) as exc:  # pandas' EmptyDataError, ParserError
            raise InputFileError(f"{self.what} file {str(self.path)!r} is not a readable CSV "
                                 f"file: {exc}") from exc
        return [str(c) for c in head.columns]

    def _parquet(self) -> Any:
        pq = require_pyarrow()
        try:
            return pq.ParquetFile(self.path)
        except Exception as exc:  # pyarrow's ArrowInvalid for a file of another format
            raise InputFileError(f"{self.what} file {str(self.path)!r} is not a readable "
                                 f"Parquet file: {exc}") from exc

    @property
    def n_rows(self) -> int:
        """Number of rows: Parquet's metadata, or one pass over a CSV file's first column."""
        if self._n_rows is None:
            if self.kind == "parquet":
                self._n_rows = int(self._parquet().metadata.num_rows)
            else:
                import pandas as pd

                self._n_rows = sum(len(c) for c in pd.read_csv(
                    self.path, usecols=[0], chunksize=1 << 16)) if self.columns else 0
        return self._n_rows

    def fingerprint(self) -> dict:
        """What identifies the file's contents: path, size, modification time and SHA-256."""
        from .model_files import sha256

        st = self.path.stat()
        return {"path": str(self.path.resolve()), "bytes": st.st_size,
                "mtime": st.st_mtime, "sha256": sha256(self.path)}

    def chunks(self, rows: int, columns: Sequence[str] | None = None) -> Iterator[Any]:
        """DataFrames of ``rows`` rows each (the last may be shorter), in file order."""
        columns = list(columns) if columns is not None else None
        if self.kind == "csv":
            import pandas as pd

            yield from pd.read_csv(self.path, usecols=columns, chunksize=rows)
            return
        # batches may stop at row-group ends: regroup them into chunks of exactly ``rows``
        import pyarrow as pa

        pending: list = []
        count = 0
        for batch in self._parquet().iter_batches(batch_size=rows, columns=columns):
            pending.append(batch)
            count += batch.num_rows
            while count >= rows:
                table = pa.Table.from_batches(pending)
                yield table.slice(0, rows).to_pandas()
                rest = table.slice(rows)
                pending, count = rest.to_batches(), rest.num_rows
        if count:
            yield pa.Table.from_batches(pending).to_pandas()

    def read(self, columns: Sequence[str] | None = None) -> Any:
        """The whole table as one DataFrame."""
        import pandas as pd

        parts = list(self.chunks(1 << 16, columns))
        if not parts:
            return pd.DataFrame(columns=list(columns or self.columns))
        return pd.concat(parts, ignore_index=True)

    def take(self, index: np.ndarray, columns: Sequence[str] | None = None) -> Any:
        """The rows at sorted positions ``index``, in one pass over the file."""
        import pandas as pd

        index = np.asarray(index, dtype=np.int64)
        parts, start = [], 0
        for chunk in self.chunks(1 << 16, columns):
            stop = start + len(chunk)
            lo, hi = np.searchsorted(index, [start, stop])
            if hi > lo:
                parts.append(chunk.iloc[index[lo:hi] - start])
            start = stop
            if hi == len(index):
                break
        return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(
            columns=list(columns or self.columns))
