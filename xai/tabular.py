"""Tables with categorical columns: a numeric table for the game, DataFrames for the model.

A pandas DataFrame is explained on its own columns. The game works on a float64 table in which
each categorical column (text, ``object``, ``category`` or boolean) holds integer category
codes; :class:`TableEncoding` records each column's categories: a ``category`` column's own
categories, or the sorted values of the explained rows, followed by any other value that the
background or a baseline row holds. Before every model call the rows are decoded into a
DataFrame with the original columns, dtypes and categories, so a pipeline that selects and
encodes columns by name (scikit-learn's ``ColumnTransformer``, a histogram gradient boosting
model with categorical features, xgboost with ``enable_categorical``) sees what it was fitted
on.

Removals that replace values by values of other rows (marginal, product of marginals,
permutation donors, a baseline row or ``"mode"``) replace categories by categories. Removals
that compute new numbers (means, medians, zeros, Gaussian draws, blur, interpolation) have no
meaning on category codes and are refused before any model call (:func:`check_removal`).
"""

from __future__ import annotations

import copy
import numbers
from collections.abc import Mapping
from typing import Any

import numpy as np

from .errors import InputError


def is_categorical(dtype: Any) -> bool:
    """Whether a pandas column of ``dtype`` holds categories rather than numbers: text,
    ``object``, ``category``, boolean and other non-numeric columns."""
    import pandas as pd

    return pd.api.types.is_bool_dtype(dtype) or not pd.api.types.is_numeric_dtype(dtype)


def categorical_columns(frame: Any) -> list[str]:
    """The names of a DataFrame's categorical columns (:func:`is_categorical`)."""
    return [str(c) for c, t in frame.dtypes.items() if is_categorical(t)]


def _sorted(values: list) -> list:
    """``values`` sorted when they can be compared, else in their order of appearance."""
    try:
        return sorted(values)
    except TypeError:
        return values


def _present(values: np.ndarray) -> list:
    """The distinct non-missing values of a column, in order of appearance."""
    import pandas as pd

    uniq = pd.unique(np.asarray(values, dtype=object))
    return [v for v in uniq if not _missing(v)]


def _missing(value: Any) -> bool:
    import pandas as pd

    return value is None or (np.ndim(value) == 0 and bool(pd.isna(value)))


def _json_value(value: Any) -> Any:
    """A category as a JSON value (numbers, text and booleans as they are, others as text)."""
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or isinstance(value, bool | str | numbers.Integral):
        return value
    if isinstance(value, numbers.Real):
        return float(value)
    return str(value)


class _Column:
    """One column of a table: its label and dtype and, when categorical, its categories and
    how codes become values of that dtype again."""

    def __init__(self, label: Any, dtype: Any, categories: list | None) -> None:
        self.name = str(label)
        self.dtype = dtype
        self.categories = categories
        if categories is not None:
            self._lookup, self._values = self._decoder(categories)

    def _decoder(self, categories: list) -> tuple[Any, Any]:
        """An index of the categories (values -> codes) and what codes are taken from: a
        categorical dtype, or an array of the categories in the column's dtype."""
        import pandas as pd

        lookup = pd.Index(np.asarray(categories + [None], dtype=object)[:-1], dtype=object)
        if isinstance(self.dtype, pd.CategoricalDtype):
            if list(self.dtype.categories) == categories:
                return lookup, self.dtype
            return lookup, pd.CategoricalDtype(categories, ordered=self.dtype.ordered)
        try:
            values = pd.array(categories, dtype=self.dtype)
            if isinstance(values, pd.arrays.NumpyExtensionArray):
                values = values.to_numpy()
        except (TypeError, ValueError):  # extra categories of another type: as Python objects
            values = np.asarray(categories + [None], dtype=object)[:-1]
        return lookup, values

    def encode(self, values: np.ndarray, what: str) -> np.ndarray:
        """A column of values as float64: category codes, or the numbers themselves."""
        if self.categories is None:
            try:
                return np.asarray(values, dtype=np.float64)
            except (TypeError, ValueError) as exc:
                raise InputError(
                    f"{what} column {self.name!r} must hold numbers like the explained rows' "
                    f"({exc}): give it the same columns and dtypes as X") from exc
        values = np.asarray(values, dtype=object)
        codes = self._lookup.get_indexer(values)
        bad = np.flatnonzero(codes < 0)
        if bad.size and _missing(values[bad[0]]):
            raise InputError(
                f"{what} column {self.name!r} has {bad.size} missing values (first in row "
                f"{int(bad[0])}); impute them (e.g. with a 'missing' category) or drop those "
                "rows")
        if bad.size:  # rows that were not seen when the categories were recorded
            raise InputError(
                f"{what} column {self.name!r} has the value {values[bad[0]]!r} (row "
                f"{int(bad[0])}), which is not one of its categories {self.categories[:10]}: "
                "encode these rows with a TableEncoding fitted on them")
        return codes.astype(np.float64)

    def decode(self, column: np.ndarray) -> Any:
        """Values of this column's dtype from float64 codes or numbers."""
        import pandas as pd

        if self.categories is None:
            return self._numbers(column)
        codes = column.astype(np.int64)
        if column.size and (not np.array_equal(codes, column) or codes.min() < 0
                            or codes.max() >= len(self.categories)):
            bad = column[(codes != column) | (codes < 0) | (codes >= len(self.categories))]
            raise InputError(
                f"column {self.name!r} holds categories, but the removal gave it the value "
                f"{bad[0]!r}, which is not one of its {len(self.categories)} category codes: "
                "remove categorical columns by values of rows (removal='marginal', or a "
                "baseline row or baseline='mode')")
        if isinstance(self._values, pd.CategoricalDtype):
            return pd.Categorical.from_codes(codes, dtype=self._values)
        return self._values.take(codes)

    def _numbers(self, column: np.ndarray) -> Any:
        """A numeric column in its dtype; integer columns given fractions (a mean baseline)
        stay float64 rather than being truncated."""
        import pandas as pd

        dtype = self.dtype
        if pd.api.types.is_integer_dtype(dtype) and not np.array_equal(np.round(column),
                                                                        column):
            return column
        if isinstance(dtype, np.dtype):
            return column if dtype == column.dtype else column.astype(dtype)
        return pd.array(column, dtype=dtype)


class TableEncoding:
    """How a DataFrame's columns map to the game's float64 table and back.

    Build it with :meth:`fit`; :meth:`encode` turns rows into the numeric table (categories
    as codes), :meth:`decode` turns rows of that table into a DataFrame with the original
    columns, dtypes and categories.
    """

    def __init__(self, columns: Any, parts: list[_Column]) -> None:
        self.columns = columns  # the explained DataFrame's column index
        self.parts = parts
        self._all_float64 = all(c.categories is None and c.dtype == np.float64 for c in parts)

    @classmethod
    def fit(cls, X: Any, *others: tuple[str, list[np.ndarray]]) -> TableEncoding:
        """The encoding of DataFrame ``X``; ``others`` are ``(what, columns)`` of further rows
        (a background, a baseline) whose values of categorical columns join the categories."""
        import pandas as pd

        parts = []
        for j, (label, dtype) in enumerate(X.dtypes.items()):
            if pd.api.types.is_complex_dtype(dtype):
                raise InputError(f"X column {str(label)!r} is complex ({dtype}); explanations "
                                 "need real inputs: split real and imaginary parts into columns")
            if not is_categorical(dtype):
                parts.append(_Column(label, dtype, None))
                continue
            if isinstance(dtype, pd.CategoricalDtype):
                categories = list(dtype.categories)
            else:
                categories = _sorted(_present(X.iloc[:, j].to_numpy()))
            known = set(categories)
            extra = []
            for _, cols in others:
                extra += [v for v in _present(cols[j]) if v not in known]
                known.update(extra)
            parts.append(_Column(label, dtype, categories + _sorted(extra)))
        return cls(X.columns, parts)

    @property
    def names(self) -> list[str]:
        """The column names as text."""
        return [c.name for c in self.parts]

    @property
    def categorical(self) -> tuple[int, ...]:
        """Positions of the categorical columns."""
        return tuple(j for j, c in enumerate(self.parts) if c.categories is not None)

    @property
    def categorical_names(self) -> list[str]:
        """Names of the categorical columns."""
        return [self.parts[j].name for j in self.categorical]

    def encode(self, columns: list[np.ndarray], what: str, rows: int = 0) -> np.ndarray:
        """The numeric table ``(n, p)`` of rows given as ``p`` columns of values (``rows``:
        ``n`` for a table without columns)."""
        out = [c.encode(v, what) for c, v in zip(self.parts, columns)]
        return np.stack(out, axis=1) if out else np.zeros((rows, 0))

    def decode(self, table: np.ndarray) -> Any:
        """A DataFrame of the original columns and dtypes from rows ``(n, p)`` of the numeric
        table."""
        import pandas as pd

        table = np.asarray(table, dtype=np.float64)
        if self._all_float64:  # one block, as the model's own input validation reads it
            return pd.DataFrame(table, columns=self.columns, copy=False)
        frame = pd.DataFrame({j: c.decode(table[:, j]) for j, c in enumerate(self.parts)},
                             copy=False)
        frame.columns = self.columns
        return frame

    def categories(self) -> dict[str, list]:
        """Each categorical column's categories in code order, as JSON values."""
        return {c.name: [_json_value(v) for v in c.categories] for c in self.parts
                if c.categories is not None}


def columns_of(rows: Any, names: list[str], what: str) -> list[np.ndarray]:
    """Rows given as a DataFrame (columns already aligned to ``names``), a Series or mapping
    (one row, by column name) or an array ``(n, p)`` / ``(p,)``, as ``p`` columns of values."""
    import pandas as pd

    p = len(names)
    if isinstance(rows, pd.DataFrame):
        return [rows.iloc[:, j].to_numpy() for j in range(p)]
    if isinstance(rows, pd.Series | Mapping):
        keys = [str(k) for k in (rows.index if isinstance(rows, pd.Series) else rows)]
        if sorted(keys) != sorted(names):
            missing = sorted(set(names) - set(keys))
            extra = sorted(set(keys) - set(names))
            raise InputError(f"{what} names other columns than X: missing {missing}, extra "
                             f"{extra}; give one value per column of X (e.g. X_train.iloc[0])")
        by_name = dict(zip(keys, rows.to_numpy() if isinstance(rows, pd.Series) else
                           rows.values()))
        values = np.empty((1, p), dtype=object)
        values[0] = [by_name[n] for n in names]
        return list(values.T)
    arr = np.asarray(rows, dtype=object)
    if arr.ndim == 1:
        arr = arr[None]
    if arr.ndim != 2 or arr.shape[1] != p:
        raise InputError(f"{what} has shape {np.shape(rows)}; give rows of the {p} columns of X "
                         f"({names[:10]}) as a DataFrame, a Series or an array (n, {p})")
    return list(arr.T)


def check_removal(removal: Any, table: TableEncoding | None) -> None:
    """Refuse a removal that would compute new numbers for categorical columns; tell a
    fractional-capable one that those columns take whole values only."""
    cols = [] if table is None else table.categorical_names
    if not cols:
        return
    if not getattr(removal, "replaces_with_rows", False):
        value = getattr(removal, "value", None)
        how = f"baseline {value!r}" if removal.name == "baseline" else \
            f"removal {removal.name!r}"
        raise InputError(
            f"{how} computes numbers, but columns {cols[:10]} hold categories, which have no "
            "mean, median, zero or blur: use removal='marginal' (method 'shap', "
            "'kernelshap', ...), or a baseline that is a row (baseline=X_train.iloc[0], or "
            "baseline='mode' for each column's most frequent value in background=)")
    removal.categorical_columns = table.categorical


def model_for_table(adapter: Any, table: TableEncoding | None, user_adapter: bool) -> Any:
    """The adapter that gives the model DataFrames decoded by ``table``: a callable always, a
    scikit-learn estimator when it was fitted on named columns or the table has categories.
    ``user_adapter``: ``adapter`` is the caller's own object, so a copy is changed instead.
    A torch module or another adapter cannot take categories: refused."""
    from .models import CallableModel, SklearnModel

    if table is None:
        return adapter
    if isinstance(adapter, CallableModel):
        wanted = True
    elif isinstance(adapter, SklearnModel):
        wanted = bool(table.categorical) or adapter.feature_names is not None
        if wanted and adapter.feature_names is not None:
            _check_fitted_names(list(map(str, adapter.feature_names)), table.names)
    else:
        if table.categorical:
            raise InputError(
                f"columns {table.categorical_names[:10]} hold categories, which a "
                f"{type(adapter).__name__} cannot take as numbers: explain a scikit-learn "
                "pipeline or a function of a DataFrame that encodes them, or encode them as "
                "numbers first")
        wanted = False
    if not wanted:
        return adapter
    if user_adapter:
        adapter = copy.copy(adapter)
    adapter.table = table
    return adapter


def _check_fitted_names(fitted: list[str], names: list[str]) -> None:
    """Refuse a DataFrame whose columns are not the ones the estimator was fitted on, in
    that order (scikit-learn would refuse it at the first model call)."""
    if fitted == names:
        return
    if sorted(fitted) == sorted(names):
        raise InputError(f"X has the columns the model was fitted on in another order "
                         f"({names[:10]} instead of {fitted[:10]}): pass "
                         "X[model.feature_names_in_] (and the background likewise)")
    missing = sorted(set(fitted) - set(names))
    extra = sorted(set(names) - set(fitted))
    raise InputError(f"X's columns are not the ones the model was fitted on: missing "
                     f"{missing[:10]}, extra {extra[:10]}; give X the model's columns "
                     "(model.feature_names_in_)")


def display_data(data: np.ndarray, names: list[str], categories: dict[str, list]) -> np.ndarray:
    """Tabular ``data`` ``(n, p)`` with the category codes of the columns named in
    ``categories`` replaced by their values (an object array); other columns unchanged."""
    data = np.asarray(data)
    out = data.astype(object)
    for j, name in enumerate(names):
        cats = categories.get(name)
        if cats is None:
            continue
        codes = np.asarray(data[:, j], dtype=np.float64)
        ok = np.isfinite(codes) & (codes >= 0) & (codes < len(cats)) & (codes == np.round(codes))
        values = np.asarray(cats + [None], dtype=object)[:-1]
        out[ok, j] = values[codes[ok].astype(np.int64)]
    return out
