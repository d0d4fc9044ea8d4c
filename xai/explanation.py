"""The single result type of every explanation method: :class:`Explanation`.

An :class:`Explanation` holds the attributions of ``n`` explicands over ``d`` features (and ``k``
outputs for multi-output models), their standard errors, the base values, and a record of how
they were made: which removal, behaviour and summary, how many model rows were evaluated, how
long it took, and the options used.

File format (``xai.explanation/1``)
-----------------------------------
:meth:`Explanation.save` writes one ``.npz`` file with :func:`numpy.savez_compressed`; no pickle
is used anywhere, and :meth:`Explanation.load` reads it with ``allow_pickle=False``.

- every array field that is not ``None`` (``values``, ``stderr``, ``base_values``, ``data``,
  ``feature_map``, ``coalitions``, ``units``, ``converged``) is stored under its field name;
- each entry of ``extras`` is stored under ``extras/<name>``;
- every other field, plus ``"format": "xai.explanation/1"``, the list of stored array fields
  and the list of extras names, is one JSON string stored under the key ``__meta__``.

Arrays of dtype ``object`` cannot be stored without pickle; convert them first.
"""

from __future__ import annotations

import json
import numbers
import os
import zipfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from xai.errors import InputError, XaiError

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["FORMAT", "Explanation", "ExplanationPlots"]

FORMAT = "xai.explanation/1"
"""Identifier of the file format written by :meth:`Explanation.save`."""

# Array fields whose first axis is the explicand axis (sliced by ``__getitem__``).
_ROW_ARRAYS = ("values", "stderr", "base_values", "data", "coalitions", "units", "converged")
# All optional/required array fields, stored under their own names in the file.
_ARRAY_FIELDS = _ROW_ARRAYS + ("feature_map",)
# Non-array fields, stored in the JSON metadata.
_META_FIELDS = (
    "feature_names",
    "channel_axis",
    "output_names",
    "method",
    "removal",
    "behaviour",
    "summary",
    "evaluations",
    "seconds",
    "options",
)
_EXTRAS_PREFIX = "extras/"
_META_KEY = "__meta__"


def _jsonable(obj: Any, where: str = "value") -> Any:
    """Return ``obj`` with numpy scalars/arrays, tuples and paths turned into JSON types.

    Raises :class:`XaiError` naming ``where`` for anything JSON cannot represent.
    """
    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, np.generic):
        return _jsonable(obj.item(), where)
    if isinstance(obj, numbers.Integral):
        return int(obj)
    if isinstance(obj, numbers.Real):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist(), where)
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    if isinstance(obj, dict):
        return {str(k): _jsonable(v, f"{where}[{k!r}]") for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set, frozenset)):
        items = sorted(obj, key=repr) if isinstance(obj, (set, frozenset)) else obj
        return [_jsonable(v, f"{where}[{i}]") for i, v in enumerate(items)]
    raise XaiError(
        f"{where} has type {type(obj).__name__}, which the pickle-free explanation format "
        "cannot store. Use numbers, strings, lists or dicts (or a string description)."
    )


def _default_names(prefix: str, count: int) -> list[str]:
    """Names ``prefix_0 .. prefix_{count-1}``."""
    return [f"{prefix}_{i}" for i in range(count)]


@dataclass(eq=False)
class Explanation:
    """Attributions of ``n`` explicands over ``d`` features, with how they were made.

    ``values`` is ``(n, d)``, or ``(n, d, k)`` for ``k`` outputs; rows with fewer features are
    padded with NaN. ``stderr`` has the shape of ``values`` (zeros for exact methods) or is
    ``None``. ``base_values`` is ``(n,)`` or ``(n, k)``: the behaviour with every feature removed.

    ``data`` holds the explained inputs, ``(n, *input_shape)``: tabular ``(n, p)`` or images
    ``(n, C, H, W)`` / ``(n, H, W, C)`` / ``(n, H, W)``; ``channel_axis`` is the channel axis of
    one input row (``0`` for ``(C, H, W)``, ``-1`` for ``(H, W, C)``, ``None`` otherwise).
    ``feature_map`` is an int array ``(n_maps, *pos_shape)`` with ``n_maps`` 1 (shared) or ``n``;
    ``feature_map[j, pos]`` is the feature of that position, ``-1`` means always kept.

    ``removal``, ``behaviour``, ``summary`` and ``options`` are JSON-able dicts; ``evaluations``
    counts model rows evaluated, ``seconds`` the wall time; ``coalitions``, ``units`` and
    ``converged`` are per-explicand ``(n,)`` diagnostics of sampling summaries; ``extras`` maps
    names to further arrays (e.g. ``"importances"``: per-repeat values).

    Convert with :meth:`to_numpy` / :meth:`to_pandas`, plot with ``expl.plot.bar()`` and
    friends, and store with :meth:`save` / :meth:`load`.
    """

    values: np.ndarray
    stderr: np.ndarray | None
    base_values: np.ndarray
    data: np.ndarray | None = None
    feature_names: list[str] = field(default_factory=list)
    feature_map: np.ndarray | None = None
    channel_axis: int | None = None
    output_names: list[str] | None = None
    method: str = "custom"
    removal: dict = field(default_factory=dict)
    behaviour: dict = field(default_factory=dict)
    summary: dict = field(default_factory=dict)
    evaluations: int = 0
    coalitions: np.ndarray | None = None
    units: np.ndarray | None = None
    converged: np.ndarray | None = None
    seconds: float = 0.0
    options: dict = field(default_factory=dict)
    extras: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        """Convert array-likes to arrays and check the documented shapes."""
        self.values = np.asarray(self.values, dtype=float)
        if self.values.ndim not in (2, 3):
            raise InputError(
                f"Explanation values must be (n, d) or (n, d, k); got shape {self.values.shape}."
            )
        n = self.values.shape[0]
        if self.stderr is not None:
            self.stderr = np.asarray(self.stderr, dtype=float)
            if self.stderr.shape != self.values.shape:
                raise InputError(
                    f"Explanation stderr has shape {self.stderr.shape} but values have shape "
                    f"{self.values.shape}; pass stderr of the same shape, or None."
                )
        base = np.asarray(self.base_values, dtype=float)
        expected = (n,) + self.values.shape[2:]
        if base.ndim == 0 or base.shape == expected[1:]:
            base = np.broadcast_to(base, expected).copy()
        if base.shape != expected:
            raise InputError(
                f"Explanation base_values must have shape {expected}; got {base.shape}."
            )
        self.base_values = base
        if self.data is not None:
            self.data = np.asarray(self.data)
            if self.data.ndim < 1 or self.data.shape[0] != n:
                raise InputError(
                    f"Explanation data must have one row per explicand ({n}); "
                    f"got shape {self.data.shape}."
                )
        if self.feature_map is not None:
            fmap = np.asarray(self.feature_map)
            if not np.issubdtype(fmap.dtype, np.integer):
                if fmap.size and not np.all(fmap == np.round(fmap)):
                    raise InputError("Explanation feature_map must hold integer feature indices.")
                fmap = fmap.astype(np.int64)
            if fmap.ndim < 2 or fmap.shape[0] not in (1, n):
                raise InputError(
                    f"Explanation feature_map must be (n_maps, *positions) with n_maps 1 or {n}; "
                    f"got shape {fmap.shape}."
                )
            self.feature_map = fmap
        self.feature_names = [str(name) for name in self.feature_names]
        if self.feature_names and len(self.feature_names) != self.values.shape[1]:
            raise InputError(
                f"Explanation has {self.values.shape[1]} features but "
                f"{len(self.feature_names)} feature names."
            )
        if self.output_names is not None:
            self.output_names = [str(name) for name in self.output_names]
        for name in ("coalitions", "units", "converged"):
            arr = getattr(self, name)
            if arr is not None:
                arr = np.asarray(arr, dtype=bool if name == "converged" else None)
                if arr.shape != (n,):
                    raise InputError(f"Explanation {name} must have shape ({n},); got {arr.shape}.")
                setattr(self, name, arr)
        self.extras = {str(k): np.asarray(v) for k, v in self.extras.items()}

    # ------------------------------------------------------------------ basics

    def __len__(self) -> int:
        """Number of explicands ``n``."""
        return int(self.values.shape[0])

    @property
    def shape(self) -> tuple[int, ...]:
        """Shape of ``values``: ``(n, d)`` or ``(n, d, k)``."""
        return tuple(self.values.shape)

    @property
    def names(self) -> list[str]:
        """Feature names, or ``feature_0 .. feature_{d-1}`` when none were given."""
        return list(self.feature_names) or _default_names("feature", self.values.shape[1])

    @property
    def outputs(self) -> list[str]:
        """Output names for ``(n, d, k)`` values (``output_0 ..`` when none were given)."""
        k = self.values.shape[2] if self.values.ndim == 3 else 1
        if self.output_names is not None and len(self.output_names) == k:
            return list(self.output_names)
        return _default_names("output", k)

    def __getitem__(self, rows: int | slice | np.ndarray | list) -> Explanation:
        """Return a new Explanation for some rows; an int keeps the row axis (``n == 1``).

        Per-row arrays are sliced; a per-explicand ``feature_map`` (``n_maps == n > 1``) too,
        while a shared one is kept. ``extras`` are kept as they are, since their row axis is not
        known in general.
        """
        n = len(self)
        if isinstance(rows, (numbers.Integral, np.integer)):
            if not -n <= int(rows) < n:
                raise IndexError(f"row {rows} is out of range for an explanation of {n} rows")
            idx = np.array([int(rows) % n])
        else:
            idx = np.arange(n)[rows]
            idx = np.atleast_1d(idx)
        changes: dict[str, Any] = {}
        for name in _ROW_ARRAYS:
            arr = getattr(self, name)
            if arr is not None:
                changes[name] = arr[idx].copy()
        fmap = self.feature_map
        if fmap is not None:
            changes["feature_map"] = fmap[idx].copy() if fmap.shape[0] == n > 1 else fmap.copy()
        changes["extras"] = dict(self.extras)
        changes["feature_names"] = list(self.feature_names)
        changes["output_names"] = None if self.output_names is None else list(self.output_names)
        return replace(self, **changes)

    def __repr__(self) -> str:
        """Short summary: method, shape, evaluations and seconds."""
        return (
            f"Explanation(method={self.method!r}, shape={self.shape}, "
            f"evaluations={self.evaluations}, seconds={self.seconds:.3g})"
        )

    # ------------------------------------------------------------ conversions

    def to_numpy(self) -> np.ndarray:
        """The attribution values, ``(n, d)`` or ``(n, d, k)``."""
        return self.values

    def _frame(self, arr: np.ndarray) -> pd.DataFrame:
        """One row per explicand; columns per feature, or (output, feature) for 3-d arrays."""
        n, d = arr.shape[:2]
        if arr.ndim == 2:
            return pd.DataFrame(arr, columns=pd.Index(self.names, name="feature"))
        k = arr.shape[2]
        columns = pd.MultiIndex.from_product(
            [self.outputs, self.names], names=["output", "feature"]
        )
        return pd.DataFrame(arr.transpose(0, 2, 1).reshape(n, k * d), columns=columns)

    def to_pandas(self) -> pd.DataFrame:
        """Values as a DataFrame: one row per explicand, one column per feature.

        For ``(n, d, k)`` values the columns are a MultiIndex ``(output, feature)``.
        """
        return self._frame(self.values)

    def stderr_frame(self) -> pd.DataFrame:
        """Standard errors as a DataFrame laid out like :meth:`to_pandas`.

        Raises :class:`XaiError` when the method reported no standard errors.
        """
        if self.stderr is None:
            raise XaiError(f"this explanation ({self.method}) has no standard errors.")
        return self._frame(self.stderr)

    # -------------------------------------------------------------- save/load

    def save(self, path: str | os.PathLike) -> Path:
        """Write the explanation to one pickle-free ``.npz`` file and return its path.

        ``.npz`` is appended when ``path`` lacks it (as :func:`numpy.savez_compressed` does).
        See the module docstring for the format.
        """
        arrays: dict[str, np.ndarray] = {}
        stored: list[str] = []
        for name in _ARRAY_FIELDS:
            arr = getattr(self, name)
            if arr is not None:
                arrays[name] = _storable(np.asarray(arr), name)
                stored.append(name)
        for name, arr in self.extras.items():
            arrays[_EXTRAS_PREFIX + name] = _storable(np.asarray(arr), f"extras[{name!r}]")
        meta: dict[str, Any] = {"format": FORMAT, "arrays": stored, "extras": list(self.extras)}
        for name in _META_FIELDS:
            meta[name] = _jsonable(getattr(self, name), name)
        arrays[_META_KEY] = np.array(json.dumps(meta, allow_nan=True))
        path = Path(path)
        if path.suffix != ".npz":
            path = path.with_name(path.name + ".npz")
        np.savez_compressed(path, **arrays)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> Explanation:
        """Read an explanation written by :meth:`save` (no pickle is ever loaded).

        Raises :class:`XaiError` when the file is not an xai explanation or has an unknown format.
        """
        path = Path(path)
        try:
            npz = np.load(path, allow_pickle=False)
        except FileNotFoundError:
            raise
        except (OSError, ValueError, zipfile.BadZipFile) as exc:
            raise XaiError(
                f"{path} is not an xai explanation file (expected a .npz written by "
                f"Explanation.save): {exc}"
            ) from exc
        if not isinstance(npz, np.lib.npyio.NpzFile):
            raise XaiError(f"{path} holds a single array, not an xai explanation (.npz) file.")
        with npz:
            if _META_KEY not in npz.files:
                raise XaiError(
                    f"{path} is a .npz file but not an xai explanation: it has no {_META_KEY!r} "
                    "entry. Write explanations with Explanation.save."
                )
            try:
                meta = json.loads(str(npz[_META_KEY][()]))
            except (ValueError, TypeError) as exc:
                raise XaiError(f"{path}: the {_META_KEY!r} entry is not valid JSON: {exc}") from exc
            fmt = meta.get("format") if isinstance(meta, dict) else None
            if fmt != FORMAT:
                raise XaiError(
                    f"{path} has explanation format {fmt!r}; this version of xai reads {FORMAT!r}."
                )
            try:
                kwargs: dict[str, Any] = {name: npz[name] for name in meta["arrays"]}
                kwargs["extras"] = {
                    name: npz[_EXTRAS_PREFIX + name] for name in meta.get("extras", [])
                }
            except (KeyError, ValueError) as exc:
                raise XaiError(f"{path} is a damaged xai explanation file: {exc}") from exc
        for name in _META_FIELDS:
            if name in meta:
                kwargs[name] = meta[name]
        kwargs.setdefault("stderr", None)
        for name in ("values", "base_values"):
            if name not in kwargs:
                raise XaiError(f"{path} is a damaged xai explanation file: no {name!r} array.")
        return cls(**kwargs)

    # ------------------------------------------------------------------- plots

    @property
    def plot(self) -> ExplanationPlots:
        """Plot accessor: ``expl.plot.bar()``, ``.waterfall()``, ``.beeswarm()``, ``.image()``."""
        return ExplanationPlots(self)


def _storable(arr: np.ndarray, name: str) -> np.ndarray:
    """Return ``arr`` if it can be stored without pickle, else raise :class:`XaiError`."""
    if arr.dtype.hasobject:
        raise XaiError(
            f"{name} has dtype object, which the pickle-free explanation format cannot store; "
            "convert it to a numeric or string array first."
        )
    return arr


class ExplanationPlots:
    """Plot accessor of an :class:`Explanation`; each method returns a matplotlib Figure.

    The methods call the functions of :mod:`xai.plots` with the explanation as first argument.
    """

    def __init__(self, explanation: Explanation) -> None:
        """Bind the accessor to ``explanation``."""
        self._expl = explanation

    def bar(
        self, max_display: int = 20, ax: Axes | None = None, output: int | None = None
    ) -> Figure:
        """Mean absolute attribution per feature; see :func:`xai.plots.bar`."""
        from xai import plots

        return plots.bar(self._expl, max_display=max_display, ax=ax, output=output)

    def waterfall(
        self,
        row: int = 0,
        max_display: int = 10,
        ax: Axes | None = None,
        output: int | None = None,
    ) -> Figure:
        """From the base value to f(x) for one row; see :func:`xai.plots.waterfall`."""
        from xai import plots

        return plots.waterfall(self._expl, row=row, max_display=max_display, ax=ax, output=output)

    def beeswarm(
        self, max_display: int = 20, ax: Axes | None = None, output: int | None = None
    ) -> Figure:
        """Attributions of many rows per feature; see :func:`xai.plots.beeswarm`."""
        from xai import plots

        return plots.beeswarm(self._expl, max_display=max_display, ax=ax, output=output)

    def image(
        self,
        row: int = 0,
        ax: Axes | Any | None = None,
        output: int | None = None,
        alpha: float = 0.5,
        cmap: str = "bwr",
    ) -> Figure:
        """Image and attribution overlay for one row; see :func:`xai.plots.image`."""
        from xai import plots

        return plots.image(self._expl, row=row, ax=ax, output=output, alpha=alpha, cmap=cmap)
