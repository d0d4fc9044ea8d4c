"""Tables read from CSV or Parquet files in chunks of rows, for ``xai explain``.

A :class:`TableFile` knows its columns and row count without reading the whole file, yields
chunks of exactly ``rows`` rows (the last may be shorter) as pandas DataFrames with the file's
column names, and picks given rows (a background sample). Parquet is read with pyarrow
(``ParquetFile.iter_batches``), CSV with pandas (``read_csv(chunksize=)``).
"""

from __future__ import annotations

import os
from collections.abc import Container, Iterator, Sequence
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

    def chunks(self, rows: int, columns: Sequence[str] | None = None,
               skip: Container[int] = ()) -> Iterator[tuple[int, Any]]:
        """``(i, frame)`` for chunk ``i`` of ``rows`` rows (the last may be shorter), in file
        order, leaving out the chunks in ``skip``. A CSV file is parsed through the skipped
        chunks; of a Parquet file only the row groups that hold a wanted chunk are read."""
        columns = list(columns) if columns is not None else None
        if self.kind == "csv":
            import pandas as pd

            for i, frame in enumerate(pd.read_csv(self.path, usecols=columns, chunksize=rows)):
                if i not in skip and len(frame):
                    yield i, frame
            return
        yield from self._parquet_chunks(rows, columns, skip)

    def chunk(self, i: int, rows: int, columns: Sequence[str] | None = None) -> Any:
        """Chunk ``i`` of :meth:`chunks` alone (for a worker that reads its own rows): of a
        Parquet file only the row groups that hold it are read, of a CSV file the lines before
        it are skipped unparsed."""
        if self.kind == "csv":
            import pandas as pd

            return pd.read_csv(self.path, usecols=list(columns) if columns is not None else None,
                               skiprows=range(1, 1 + i * rows), nrows=rows)
        for _, frame in self._parquet_chunks(rows, list(columns) if columns is not None else None,
                                             _AllBut(i)):
            return frame
        raise InputFileError(f"{self.what} file {str(self.path)!r} has no chunk {i} of {rows} "
                             "rows: it changed since the run started")

    def _parquet_chunks(self, rows: int, columns: list[str] | None,
                        skip: Container[int]) -> Iterator[tuple[int, Any]]:
        """Batches of the row groups that hold a wanted chunk, regrouped into chunks (batches
        stop at row-group ends)."""
        import pyarrow as pa

        pf = self._parquet()
        meta = pf.metadata
        buf, buf_start = None, 0  # rows read and not yet yielded, from row buf_start on
        stop = 0
        for g in range(meta.num_row_groups):
            start, stop = stop, stop + meta.row_group(g).num_rows
            if all(i in skip for i in range(start // rows, -(-stop // rows))):
                buf = None  # nothing wanted here: the group is not read
                continue
            pos = start
            for batch in pf.iter_batches(batch_size=rows, row_groups=[g], columns=columns):
                table = pa.Table.from_batches([batch])
                if buf is None:
                    buf, buf_start = table, pos
                else:
                    buf = pa.concat_tables([buf, table])
                pos += batch.num_rows
                # after a group that was not read, rows up to the next chunk start belong to
                # a skipped chunk
                cut = min(-buf_start % rows, buf.num_rows)
                buf, buf_start = buf.slice(cut), buf_start + cut
                while buf.num_rows >= rows:
                    if buf_start // rows not in skip:
                        yield buf_start // rows, buf.slice(0, rows).to_pandas()
                    buf, buf_start = buf.slice(rows), buf_start + rows
        if buf is not None and buf.num_rows and buf_start // rows not in skip:
            yield buf_start // rows, buf.to_pandas()  # the last, shorter chunk

    def read(self, columns: Sequence[str] | None = None) -> Any:
        """The whole table as one DataFrame."""
        import pandas as pd

        parts = [frame for _, frame in self.chunks(1 << 16, columns)]
        if not parts:
            return pd.DataFrame(columns=list(columns or self.columns))
        return pd.concat(parts, ignore_index=True)

    def take(self, index: np.ndarray, columns: Sequence[str] | None = None) -> Any:
        """The rows at sorted positions ``index``, in one pass over the file."""
        import pandas as pd

        index = np.asarray(index, dtype=np.int64)
        parts, start = [], 0
        for _, chunk in self.chunks(1 << 16, columns):
            stop = start + len(chunk)
            lo, hi = np.searchsorted(index, [start, stop])
            if hi > lo:
                parts.append(chunk.iloc[index[lo:hi] - start])
            start = stop
            if hi == len(index):
                break
        return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(
            columns=list(columns or self.columns))


class _AllBut:
    """The chunks to skip when one chunk, ``keep``, is wanted."""

    def __init__(self, keep: int) -> None:
        self.keep = keep

    def __contains__(self, i: object) -> bool:
        return i != self.keep
