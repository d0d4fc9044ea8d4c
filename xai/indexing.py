"""Indexing of an :class:`~xai.explanation.Explanation` by rows, features and outputs.

``expl[rows]``, ``expl[rows, features]`` and ``expl[rows, features, outputs]`` follow numpy and
shap: each part is an int, a slice, a list, an integer or boolean array, or ``...``; features
and outputs can also be named (``expl[:, "mean radius"]``, ``expl[..., "malignant"]``). Rows
and features always keep their axis (an xai explanation is ``(n, d)`` or ``(n, d, k)``), so
``expl[0, "age"]`` is a ``(1, 1)`` explanation. One output, by int or name, drops the output
axis: the result is a single-output explanation whose ``extras["target"]`` records the output
of every row, with ``output_names`` still naming all outputs, exactly as ``target=j`` would
have produced it.
"""

from __future__ import annotations

import difflib
import numbers
from dataclasses import replace
from typing import Any

import numpy as np

from xai.errors import IndexingError, UnknownLabelError

__all__ = ["positions", "select"]


def _is_int(key: Any) -> bool:
    return isinstance(key, numbers.Integral | np.integer) and not isinstance(key, bool | np.bool_)


def _is_name(key: Any) -> bool:
    return isinstance(key, str | np.str_)


def _unknown(axis: str, name: str, known: list[str]) -> UnknownLabelError:
    """An :class:`UnknownLabelError` listing the closest known names."""
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.6)
    hint = f" Close names: {', '.join(map(repr, close))}." if close else ""
    shown = ", ".join(map(repr, known[:20])) + (" ..." if len(known) > 20 else "")
    return UnknownLabelError(f"no {axis} named {name!r} in this explanation.{hint} Its "
                             f"{axis}s are: {shown}.")


def positions(key: Any, labels: list[str], axis: str) -> np.ndarray:
    """The positions that ``key`` picks among ``labels`` (an int array, in ``key``'s order).

    ``key`` is an int, a name, a slice (of positions, or of names: both ends included as in
    pandas' ``.loc``), a list or array of ints or names, or a boolean mask.
    """
    size = len(labels)
    if _is_int(key):
        if not -size <= int(key) < size:
            raise IndexingError(f"{axis} {int(key)} is out of range for an explanation with "
                                f"{size} {axis}s (valid: {-size}..{size - 1}).")
        return np.array([int(key) % size])
    if _is_name(key):
        try:
            return np.array([labels.index(str(key))])
        except ValueError:
            raise _unknown(axis, str(key), labels) from None
    if isinstance(key, slice):
        if _is_name(key.start) or _is_name(key.stop):
            start = 0 if key.start is None else int(positions(key.start, labels, axis)[0])
            stop = size if key.stop is None else int(positions(key.stop, labels, axis)[0]) + 1
            return np.arange(size)[slice(start, stop, key.step)]
        return np.arange(size)[key]
    items = np.asarray(key, dtype=object if isinstance(key, list | tuple) else None)
    if items.ndim != 1:
        raise IndexingError(f"a {axis} index must be an int, a name, a slice, or a 1-d list or "
                            f"array of them; got {type(key).__name__} of shape {items.shape}.")
    if items.dtype == bool or (items.size and all(isinstance(v, bool | np.bool_) for v in items)):
        mask = items.astype(bool)
        if mask.shape != (size,):
            raise IndexingError(f"a boolean {axis} mask must have {size} entries; got "
                                f"{mask.shape[0]}.")
        return np.flatnonzero(mask)
    return np.concatenate([positions(v, labels, axis) for v in items.tolist()] or
                          [np.zeros(0, np.int64)]).astype(np.int64)


def _parts(key: Any, ndim: int) -> tuple[Any, Any, Any]:
    """``key`` split into (rows, features, outputs) parts, ``...`` expanded as in numpy."""
    parts = list(key) if isinstance(key, tuple) else [key]
    if sum(p is Ellipsis for p in parts) > 1:
        raise IndexingError("an explanation index can hold only one '...'.")
    at = next((i for i, p in enumerate(parts) if p is Ellipsis), None)
    if at is not None:
        fill = ndim - (len(parts) - 1)
        parts[at:at + 1] = [slice(None)] * max(fill, 0)
    if len(parts) > ndim:
        what = "(rows, features)" if ndim == 2 else "(rows, features, outputs)"
        one_output = " It explains one output: index rows and features only." if ndim == 2 \
            else ""
        raise IndexingError(f"too many indices: this explanation has {ndim} axes {what}; got "
                            f"{len(parts)}.{one_output}")
    parts += [slice(None)] * (3 - len(parts))
    return parts[0], parts[1], parts[2]


def _full(key: Any) -> bool:
    return isinstance(key, slice) and key == slice(None)


def select(expl: Any, key: Any, row_fields: tuple[str, ...]) -> Any:
    """A new explanation of the rows, features and outputs that ``key`` picks.

    ``expl`` is an :class:`~xai.explanation.Explanation` and ``row_fields`` names its array
    fields whose first axis is the explicand axis.

    See the module docstring for the forms of ``key``. Every array field follows its axes:
    per-row arrays, ``extras["target"]`` and the per-explicand removal arrays follow the rows;
    ``stderr``, ``interactions`` (both feature axes) and ``data`` columns (tabular data with
    one column per feature) follow the features; base values follow the outputs. Images keep their pixels and feature map, with
    positions of features left out mapped to ``-1`` and the others renumbered. Other
    ``extras`` are kept as they are, since their axes are not known in general.
    """
    rows_key, feature_key, output_key = _parts(key, expl.values.ndim)
    if _is_name(rows_key):
        raise IndexingError(f"rows are selected by position, not by name ({rows_key!r}); to "
                            f"select a feature use expl[:, {rows_key!r}].")
    out = _rows(expl, rows_key, row_fields)
    if not _full(feature_key):
        out = _features(out, positions(feature_key, out.names, "feature"))
    if not _full(output_key):
        out = _outputs(out, output_key)
    return out


def _rows(expl: Any, key: Any, row_fields: tuple[str, ...]) -> Any:
    """The explicands ``key`` picks; an int keeps the row axis (``n == 1``)."""
    n = len(expl)
    idx = positions(key, [str(i) for i in range(n)], "row") if _is_int(key) else \
        np.atleast_1d(np.arange(n)[key])
    changes: dict[str, Any] = {}
    for name in row_fields:
        arr = getattr(expl, name)
        if arr is not None:
            changes[name] = arr[idx].copy()
    fmap = expl.feature_map
    if fmap is not None:
        changes["feature_map"] = fmap[idx].copy() if fmap.shape[0] == n > 1 else fmap.copy()
    changes["extras"] = dict(expl.extras)
    target = expl.extras.get("target")
    if isinstance(target, np.ndarray) and target.shape == (n,):  # the output of each row
        changes["extras"]["target"] = target[idx].copy()
    changes["removal_arrays"] = expl._removal_arrays_of(idx)
    changes["feature_names"] = list(expl.feature_names)
    changes["output_names"] = None if expl.output_names is None else list(expl.output_names)
    return replace(expl, **changes)


def _features(expl: Any, cols: np.ndarray) -> Any:
    """The features at positions ``cols``: values, stderr, names, tabular data columns and
    the image feature map follow."""
    d = expl.values.shape[1]
    changes: dict[str, Any] = {"values": expl.values[:, cols],
                               "stderr": None if expl.stderr is None else expl.stderr[:, cols],
                               "feature_names": [expl.names[j] for j in cols]
                               if expl.feature_names else []}
    for name in ("interactions", "interaction_stderr"):  # pairs follow both feature axes
        arr = getattr(expl, name, None)
        if arr is not None:
            changes[name] = arr[:, cols][:, :, cols]
    data = expl.data
    if expl.feature_map is not None:
        renumber = np.full(d + 1, -1, np.int64)  # old feature (-1 at the end) -> new
        renumber[cols] = np.arange(len(cols))
        changes["feature_map"] = renumber[expl.feature_map]
    elif data is not None and data.ndim == 2 and data.shape[1] == d:
        changes["data"] = data[:, cols]
    return replace(expl, **changes)


def _outputs(expl: Any, key: Any) -> Any:
    """The outputs ``key`` picks; one output (int or name) drops the output axis."""
    labels = expl.outputs
    picked = positions(key, labels, "output")
    pairs = {name: getattr(expl, name, None) for name in ("interactions", "interaction_stderr")}
    if not (_is_int(key) or _is_name(key)):
        names = [labels[j] for j in picked]
        return replace(expl, values=expl.values[:, :, picked],
                       stderr=None if expl.stderr is None else expl.stderr[:, :, picked],
                       base_values=expl.base_values[:, picked], output_names=names,
                       **{k: None if v is None else v[..., picked] for k, v in pairs.items()})
    j = int(picked[0])
    extras = dict(expl.extras)
    extras["target"] = np.full(len(expl), j, np.int64)
    return replace(expl, values=expl.values[:, :, j],
                   stderr=None if expl.stderr is None else expl.stderr[:, :, j],
                   base_values=expl.base_values[:, j], output_names=labels, extras=extras,
                   **{k: None if v is None else v[..., j] for k, v in pairs.items()})
