"""The single result type of every explanation method: :class:`Explanation`.

An :class:`Explanation` holds the attributions of ``n`` explicands over ``d`` features (and ``k``
outputs for multi-output models), their standard errors, the base values, and a record of how
they were made: which removal, behaviour and summary, how many model rows were evaluated, how
long it took, and the options used. It also keeps what metrics need to remove features the way
the explanation did (:meth:`Explanation.record_removal`, :meth:`Explanation.rebuild_removal`).

File format (``xai.explanation/2``)
-----------------------------------
:meth:`Explanation.save` writes one ``.npz`` file with :func:`numpy.savez_compressed`; no pickle
is used anywhere, and :meth:`Explanation.load` reads it with :func:`xai.safe_npz.read_npz`, which
never unpickles and bounds what it decompresses.

- every array field that is not ``None`` (``values``, ``stderr``, ``base_values``, ``data``,
  ``feature_map``, ``coalitions``, ``units``, ``converged``, ``interactions``,
  ``interaction_stderr``) is stored under its field name;
- each entry of ``extras`` is stored under ``extras/<name>``;
- each array of the removal record (``removal_arrays``: e.g. ``background``, the background
  rows the removal really used, or a baseline ``value``) under ``removal/<name>``;
- every other field, plus ``"format": "xai.explanation/2"`` and the lists of stored array
  fields, extras names and removal array names (``"arrays"``, ``"extras"``,
  ``"removal_arrays"``), is one JSON string stored under the key ``__meta__``.

Arrays hold real numbers only (bool, int, uint, float up to 64 bits). Files of format
``xai.explanation/1`` (no removal record) are read too; metrics refuse to guess their removal.
:meth:`Explanation.load` checks every member and field and raises
:class:`~xai.errors.FileFormatError` naming what is wrong.
"""

from __future__ import annotations

import json
import math
import numbers
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from xai import registry
from xai.errors import FileFormatError, InputError, ProvenanceError, XaiError
from xai.safe_npz import MAX_ITEMSIZE, MAX_MEMBER_BYTES, MAX_TOTAL_BYTES, NUMERIC_KINDS, read_npz

if TYPE_CHECKING:  # pragma: no cover
    from xai.plots import ExplanationPlots

__all__ = ["FORMAT", "READABLE_FORMATS", "Explanation"]

FORMAT = "xai.explanation/2"
"""Identifier of the file format written by :meth:`Explanation.save`."""
READABLE_FORMATS = ("xai.explanation/1", FORMAT)
"""Formats :meth:`Explanation.load` reads (``/1`` has no removal record)."""

# Array fields whose first axis is the explicand axis (sliced by ``__getitem__``).
_ROW_ARRAYS = ("values", "stderr", "base_values", "data", "coalitions", "units", "converged",
               "interactions", "interaction_stderr")
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
    "removal_record",
)
_EXTRAS_PREFIX = "extras/"
_REMOVAL_PREFIX = "removal/"
_META_KEY = "__meta__"
_MAX_META_DEPTH = 32  # nesting of lists and dicts in the metadata
# fitted draw weights of a removal (weighted k-means centres), restored after every fit
_DRAW_WEIGHTS = "draw_weights"


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

    ``interactions`` ``(n, d, d)`` or ``(n, d, d, k)`` holds pairwise interaction values
    (symmetric, zero diagonal; the main effects are ``values``), ``interaction_stderr`` their
    standard errors; both ``None`` for methods without interactions (see
    :class:`xai.summaries.interactions.ShapleyInteractions` for each index's convention).

    ``removal_record`` and ``removal_arrays`` keep what metrics need to rebuild the removal
    (see :meth:`record_removal`): its registered name and constructor options, and arrays such
    as the background rows it really used.

    Select with ``expl[rows, features, outputs]`` (positions or names, as in numpy and shap),
    convert with :meth:`to_numpy` / :meth:`to_pandas` / :meth:`to_shap` (and back with
    :meth:`from_shap`), plot with ``expl.plot.bar()`` and friends, and store with
    :meth:`save` / :meth:`load`. In a notebook an explanation displays as a table of its top
    features per row with its default figure.
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
    removal_record: dict = field(default_factory=dict)
    removal_arrays: dict = field(default_factory=dict)
    interactions: np.ndarray | None = None
    interaction_stderr: np.ndarray | None = None

    #: the removal object that made the explanation, in memory only (see :meth:`record_removal`)
    removal_object = None

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
        self._check_interactions()
        self.removal_record = dict(self.removal_record)
        self.removal_arrays = {str(k): np.asarray(v) for k, v in self.removal_arrays.items()}

    def _check_interactions(self) -> None:
        """``interactions`` and ``interaction_stderr`` are ``(n, d, d[, k])`` floats; standard
        errors only beside interactions."""
        expected = self.values.shape[:2] + self.values.shape[1:]
        if self.interaction_stderr is not None and self.interactions is None:
            raise InputError("Explanation interaction_stderr was given without interactions; "
                             "pass both, or neither.")
        for name in ("interactions", "interaction_stderr"):
            arr = getattr(self, name)
            if arr is None:
                continue
            arr = np.asarray(arr, dtype=float)
            if arr.shape != expected:
                raise InputError(f"Explanation {name} must have shape {expected} (n, d, d"
                                 f"{', k' if self.values.ndim == 3 else ''}) for values of "
                                 f"shape {self.values.shape}; got {arr.shape}.")
            setattr(self, name, arr)

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

    def __getitem__(self, key: Any) -> Explanation:
        """A new Explanation of the rows, features and outputs that ``key`` picks.

        ``expl[rows]``, ``expl[rows, features]``, ``expl[rows, features, outputs]`` take ints,
        slices, lists, boolean masks and ``...`` as numpy does, and feature and output names
        (``expl[:, "age"]``, ``expl[..., "malignant"]``). Rows and features keep their axis
        (an int gives ``n == 1`` or ``d == 1``); one output drops the output axis and is
        recorded in ``extras["target"]``. Unknown names raise
        :class:`~xai.errors.UnknownLabelError`. See :mod:`xai.indexing`.
        """
        from xai.indexing import select

        return select(self, key, _ROW_ARRAYS)

    def __repr__(self) -> str:
        """Short summary: method, shape, evaluations and seconds."""
        return (
            f"Explanation(method={self.method!r}, shape={self.shape}, "
            f"evaluations={self.evaluations}, seconds={self.seconds:.3g})"
        )

    def _repr_html_(self) -> str:
        """Notebook display: header, top features per row and the default figure (see
        :mod:`xai.display`); never raises."""
        from xai.display import repr_html

        return repr_html(self)

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

    def to_shap(self) -> Any:
        """This explanation as a ``shap.Explanation`` (needs shap), for shap's plots.

        Values, base values, tabular data, feature and output names, standard errors
        (``error_std``) and seconds (``compute_time``) are copied; see
        :func:`xai.shap_interop.to_shap`.
        """
        from xai.shap_interop import to_shap

        return to_shap(self)

    @classmethod
    def from_shap(cls, shap_explanation: Any, *, feature_names: list[str] | None = None,
                  output_names: list[str] | None = None, method: str = "shap") -> Explanation:
        """An Explanation from a ``shap.Explanation``: one row, ``(n, d)`` or ``(n, d, k)``.

        ``feature_names=``, ``output_names=`` and ``method=`` override what the shap object
        says. Missing base values become NaN, missing feature names ``feature_0 ..``; see
        :func:`xai.shap_interop.fields_from_shap`.
        """
        from xai.shap_interop import fields_from_shap

        return cls(**fields_from_shap(shap_explanation, feature_names=feature_names,
                                      output_names=output_names, method=method))

    # ---------------------------------------------------------------- removal record

    def record_removal(self, removal: Any) -> None:
        """Keep ``removal`` (the fitted removal object that made the explanation) for metrics.

        The object itself stays in memory (``removal_object``); ``removal_record`` and
        ``removal_arrays`` keep what rebuilds it and are saved with the explanation: the
        registered name, the constructor options, and arrays, where a removal over background
        rows keeps the rows it really used (after ``max_background`` subsampling or k-means
        summarising) and their weights. A removal that cannot be rebuilt (not registered under
        its name, or with options that are not numbers, strings or arrays) is recorded as
        ``{"name": ..., "unsupported": why}``.
        """
        self.removal_object = removal
        try:
            self.removal_record, self.removal_arrays = _record_of(removal, len(self))
        except Exception as exc:  # noqa: BLE001 (a plugin removal may fail in any way)
            self.removal_record, self.removal_arrays = _unsupported(
                getattr(removal, "name", type(removal).__name__),
                f"reading its options failed ({type(exc).__name__}: {exc})")

    def rebuild_removal(self) -> Any:
        """The removal metrics use for this explanation: rebuilt from the removal record, else
        the in-memory removal object, else None when the explanation records no removal (its
        ``removal`` names none: hand-made or gradient explanations; metrics then use their
        default).

        Raises :class:`~xai.errors.ProvenanceError` when the explanation names a removal but
        cannot rebuild it (no record, as in files of format ``xai.explanation/1``, or a removal
        that could not be recorded and is no longer in memory).
        """
        record = self.removal_record
        if record and "unsupported" not in record:
            return _rebuild(record, self.removal_arrays, self.method)
        if self.removal_object is not None:
            return self.removal_object
        name = self.removal.get("name") if isinstance(self.removal, dict) else None
        if not record and name in (None, "none"):
            return None
        why = record.get("unsupported") or (
            "the explanation does not record the removal's settings and data (a file of "
            "format xai.explanation/1, or an explanation built by hand)")
        raise ProvenanceError(
            f"metrics cannot rebuild the removal {record.get('name', name)!r} that made this "
            f"{self.method!r} explanation: {why}. Pass removal= to the metric (the removal "
            "object, e.g. xai.removals.Marginal(background=X_train[:100])), or explain again and "
            "score the explanation in memory.")

    def _removal_arrays_of(self, rows: np.ndarray) -> dict[str, np.ndarray]:
        """The removal arrays of explicands ``rows``: per-explicand arrays sliced, others kept."""
        per = set(self.removal_record.get("per_explicand", ()))
        return {k: (v[rows].copy() if k in per else v) for k, v in self.removal_arrays.items()}

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
        for name, arr in self.removal_arrays.items():
            arrays[_REMOVAL_PREFIX + name] = _storable(np.asarray(arr),
                                                       f"removal_arrays[{name!r}]")
        meta: dict[str, Any] = {"format": FORMAT, "arrays": stored, "extras": list(self.extras),
                                "removal_arrays": list(self.removal_arrays)}
        for name in _META_FIELDS:
            meta[name] = _jsonable(getattr(self, name), name)
        arrays[_META_KEY] = np.array(json.dumps(meta, allow_nan=True))
        path = Path(path)
        if path.suffix != ".npz":
            path = path.with_name(path.name + ".npz")
        np.savez_compressed(path, **arrays)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike, *, max_member_bytes: int = MAX_MEMBER_BYTES,
             max_total_bytes: int = MAX_TOTAL_BYTES) -> Explanation:
        """Read an explanation written by :meth:`save`; no pickle is ever loaded.

        Every member and field is checked (names, dtypes, shapes, metadata types); the
        uncompressed size is limited to ``max_member_bytes`` per array and ``max_total_bytes``
        in all (256 MiB and 1 GiB by default: raise them for files you trust). Raises
        :class:`~xai.errors.FileFormatError` saying what is wrong, and
        :class:`FileNotFoundError` for a missing file.
        """
        path = Path(path)
        members = read_npz(path, max_member_bytes=max_member_bytes,
                           max_total_bytes=max_total_bytes, text_members=(_META_KEY,))
        meta = _read_meta(path, members)
        kwargs = _fields_from_members(path, meta, members)
        try:
            return cls(**kwargs)
        except XaiError as exc:
            raise FileFormatError(f"{path} holds an inconsistent explanation: {exc}") from exc

    # ------------------------------------------------------------------- plots

    @property
    def plot(self) -> ExplanationPlots:
        """Plot accessor (:class:`xai.plots.ExplanationPlots`): ``expl.plot.bar()``,
        ``.waterfall()``, ``.beeswarm()``, ``.image()``."""
        from xai.plots import ExplanationPlots

        return ExplanationPlots(self)

    def to_html(self, path: str | os.PathLike | None = None) -> str:
        """A self-contained HTML report of this explanation (how it was made, values ±
        standard error, figures), written to ``path`` when given; see
        :func:`xai.report.explanation_html`."""
        from xai.report import explanation_html, write_page

        text = explanation_html(self)
        if path is not None:
            write_page(text, path)
        return text


def _storable(arr: np.ndarray, name: str) -> np.ndarray:
    """Return ``arr`` if :meth:`Explanation.load` can read it back, else raise
    :class:`InputError`: real numbers only (no object, string, complex or structured arrays)."""
    if arr.dtype.hasobject:
        raise InputError(
            f"{name} has dtype object, which the pickle-free explanation format cannot store; "
            "convert it to a numeric array first."
        )
    if arr.dtype.kind not in NUMERIC_KINDS or arr.dtype.fields is not None or \
            arr.dtype.itemsize > MAX_ITEMSIZE:
        raise InputError(
            f"{name} has dtype {arr.dtype}, which the explanation format cannot store: it "
            "holds real numbers only (bool, int, uint or float up to 64 bits); convert it "
            "first (e.g. the real and imaginary parts as two extras)."
        )
    return arr


# ------------------------------------------------------------------------ removal record


def _unsupported(name: Any, why: str) -> tuple[dict, dict]:
    return {"name": str(name), "unsupported": why}, {}


def _registered_removal(name: Any) -> type | None:
    """The removal class registered under ``name``, or None."""
    if not isinstance(name, str) or not name:
        return None
    try:
        return registry.get("removal", name)
    except XaiError:
        return None


def _array_of(value: Any) -> np.ndarray | None:
    """A numpy array of real numbers from an array, tensor or list, else None."""
    if hasattr(value, "detach"):  # torch tensor
        value = value.detach().cpu().numpy()
    try:
        arr = np.asarray(value)
    except (ValueError, TypeError):
        return None
    ok = arr.dtype.kind in NUMERIC_KINDS and arr.dtype.itemsize <= MAX_ITEMSIZE
    return arr if ok else None


def _record_of(removal: Any, n: int) -> tuple[dict, dict[str, np.ndarray]]:
    """``(removal_record, removal_arrays)`` of a fitted removal for ``n`` explicands."""
    name = getattr(removal, "name", None)
    cls = _registered_removal(name)
    if cls is None or type(removal) is not cls:
        return _unsupported(name or type(removal).__name__, (
            f"it is a {type(removal).__name__} object, not the removal registered as {name!r}, "
            "so it cannot be rebuilt from what the explanation records"))
    params: dict[str, Any] = {}
    arrays = _fitted_rows(removal)  # these replace the options they were fitted from
    for key in sorted(registry.constructor_options(cls) - set(arrays)):
        if not hasattr(removal, key):
            return _unsupported(name, f"it does not keep its constructor option {key!r}")
        value = getattr(removal, key)
        if isinstance(value, np.generic):
            value = value.item()
        if value is None or isinstance(value, bool | int | float | str):
            params[key] = value
            continue
        arr = _array_of(value)
        if arr is None:
            return _unsupported(name, f"its option {key!r} is a {type(value).__name__}, not "
                                      "a number, string or array of real numbers")
        arrays[key] = arr
    per_explicand = []
    ctx = getattr(removal, "ctx", None)
    value = arrays.get("value")
    if ctx is not None and value is not None and value.ndim == len(ctx.input_shape) + 1 \
            and value.shape[0] > 1:  # one baseline row per explicand
        if value.shape[0] != n:
            return _unsupported(name, f"its {value.shape[0]} baseline rows belong to one "
                                      f"group of the {n} explicands")
        per_explicand.append("value")
    record = {"name": name, "params": params, "per_explicand": per_explicand}
    return record, arrays


def _fitted_rows(removal: Any) -> dict[str, np.ndarray]:
    """The background rows a fitted marginal-type removal really used (after subsampling or
    k-means summarising, in its input shape) and their weights, if any."""
    from xai.removals import Marginal

    bg = getattr(removal, "bg", None)
    if not isinstance(removal, Marginal) or bg is None:
        return {}
    out = {"background": bg.detach().cpu().numpy().reshape(-1, *removal.ctx.input_shape)}
    if removal.weights is not None:
        out[_DRAW_WEIGHTS] = removal.weights.detach().cpu().numpy().astype(np.float64)
    return out


def _rebuild(record: dict, arrays: dict[str, np.ndarray], method: str) -> Any:
    """A fresh removal object from a removal record (see :meth:`Explanation.record_removal`)."""
    name = record["name"]
    fix = ("Pass removal= to the metric (the removal object, e.g. "
           "xai.removals.Marginal(background=X_train[:100])).")
    cls = _registered_removal(name)
    if cls is None:
        raise ProvenanceError(
            f"the {method!r} explanation was made with removal {name!r}, which is not "
            f"registered in this session (is the plugin that provides it installed?). {fix}")
    kwargs = dict(record.get("params", {}))
    kwargs.update({k: v.copy() for k, v in arrays.items() if k != _DRAW_WEIGHTS})
    try:
        removal = cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise ProvenanceError(
            f"the removal {name!r} of the {method!r} explanation cannot be rebuilt from its "
            f"record ({exc}). {fix}") from exc
    if _DRAW_WEIGHTS in arrays:
        _keep_draw_weights(removal, arrays[_DRAW_WEIGHTS])
    return removal


def _keep_draw_weights(removal: Any, weights: np.ndarray) -> None:
    """Make ``removal`` use the recorded draw weights after each fit (a marginal removal
    over weighted k-means centres: the centres are its rows, the weights their shares)."""
    import torch

    fit = removal.fit

    def fit_with_weights(ctx: Any) -> None:
        fit(ctx)
        removal.weights = torch.as_tensor(weights, dtype=torch.float64)

    removal.fit = fit_with_weights


# ---------------------------------------------------------------------------- loading


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_str_list(v: Any) -> bool:
    return isinstance(v, list) and all(isinstance(s, str) for s in v)


def _is_scalar(v: Any) -> bool:
    return v is None or isinstance(v, bool | int | float | str)


# what each metadata key must hold: (check, description for the error message)
_META_TYPES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "format": (lambda v: isinstance(v, str), "a string"),
    "arrays": (_is_str_list, "a list of strings"),
    "extras": (_is_str_list, "a list of strings"),
    "removal_arrays": (_is_str_list, "a list of strings"),
    "feature_names": (_is_str_list, "a list of strings"),
    "channel_axis": (lambda v: v is None or _is_int(v) and -4 <= v <= 3,
                     "null or an axis from -4 to 3"),
    "output_names": (lambda v: v is None or _is_str_list(v), "null or a list of strings"),
    "method": (lambda v: isinstance(v, str), "a string"),
    "removal": (lambda v: isinstance(v, dict), "an object"),
    "behaviour": (lambda v: isinstance(v, dict), "an object"),
    "summary": (lambda v: isinstance(v, dict), "an object"),
    "options": (lambda v: isinstance(v, dict), "an object"),
    "removal_record": (lambda v: isinstance(v, dict), "an object"),
    "evaluations": (lambda v: _is_int(v) and v >= 0, "an integer >= 0"),
    "seconds": (lambda v: isinstance(v, int | float) and not isinstance(v, bool)
                and math.isfinite(v) and v >= 0, "a finite number >= 0"),
}
_V1_KEYS = frozenset(_META_TYPES) - {"removal_arrays", "removal_record"}


def _depth(obj: Any) -> int:
    """Nesting depth of lists and dicts (iterative: no recursion limit)."""
    deepest, stack = 0, [(obj, 0)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, level + 1)
            if level + 1 <= _MAX_META_DEPTH:
                stack.extend((v, level + 1) for v in
                             (item.values() if isinstance(item, dict) else item))
    return deepest


def _read_meta(path: Path, members: dict[str, np.ndarray]) -> dict:
    """The ``__meta__`` JSON, checked: format, keys and the type of every value."""
    if _META_KEY not in members:
        raise FileFormatError(f"{path} is a .npz file but not an xai explanation: it has no "
                              f"{_META_KEY!r} member. Write explanations with Explanation.save.")
    try:
        meta = json.loads(str(members[_META_KEY][()]))
    except RecursionError as exc:
        raise FileFormatError(f"{path}: the {_META_KEY!r} JSON is nested too deeply (at most "
                              f"{_MAX_META_DEPTH} levels are read).") from exc
    except ValueError as exc:
        raise FileFormatError(f"{path}: the {_META_KEY!r} member is not valid JSON: "
                              f"{exc}") from exc
    if not isinstance(meta, dict):
        raise FileFormatError(f"{path}: the {_META_KEY!r} JSON is a {type(meta).__name__}, not "
                              "an object; the file was not written by Explanation.save.")
    fmt = meta.get("format")
    if fmt not in READABLE_FORMATS:
        raise FileFormatError(f"{path} has explanation format {fmt!r}; this version of xai "
                              f"reads {', '.join(map(repr, READABLE_FORMATS))}.")
    if _depth(meta) > _MAX_META_DEPTH:
        raise FileFormatError(f"{path}: the {_META_KEY!r} JSON is nested more than "
                              f"{_MAX_META_DEPTH} levels deep.")
    known = _V1_KEYS if fmt == READABLE_FORMATS[0] else frozenset(_META_TYPES)
    unknown = sorted(set(meta) - known)
    if unknown:
        raise FileFormatError(f"{path}: the {_META_KEY!r} JSON has unknown keys {unknown} for "
                              f"format {fmt!r}.")
    if "arrays" not in meta:
        raise FileFormatError(f"{path}: the {_META_KEY!r} JSON has no 'arrays' list.")
    for key, value in meta.items():
        check, what = _META_TYPES[key]
        if not check(value):
            raise FileFormatError(f"{path}: metadata field {key!r} must be {what}; it is "
                                  f"{_short(value)}.")
    _check_removal_record(path, meta.get("removal_record", {}), meta.get("removal_arrays", []))
    return meta


def _short(value: Any) -> str:
    text = json.dumps(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _check_removal_record(path: Path, record: dict, arrays: list[str]) -> None:
    """A removal record is ``{}``, ``{"name", "unsupported"}`` or ``{"name", "params",
    "per_explicand"}`` with scalar params and per-explicand names among the arrays."""
    if not record:
        return
    bad = None
    if not isinstance(record.get("name"), str):
        bad = "its 'name' must be a string"
    elif "unsupported" in record:
        if set(record) != {"name", "unsupported"} or not isinstance(record["unsupported"], str):
            bad = "an unsupported record holds only 'name' and the string 'unsupported'"
    elif set(record) != {"name", "params", "per_explicand"}:
        bad = "it must hold exactly 'name', 'params' and 'per_explicand'"
    elif not isinstance(record["params"], dict) or not all(
            _is_scalar(v) for v in record["params"].values()):
        bad = "'params' must map option names to numbers, strings, booleans or null"
    elif not _is_str_list(record["per_explicand"]) or \
            not set(record["per_explicand"]) <= set(arrays):
        bad = "'per_explicand' must list names of stored removal arrays"
    elif set(record["params"]) & set(arrays):
        bad = "an option is both in 'params' and a stored array"
    if bad:
        raise FileFormatError(f"{path}: the removal record is malformed: {bad}.")


def _fields_from_members(path: Path, meta: dict, members: dict[str, np.ndarray]) -> dict:
    """Constructor arguments of the explanation: every member is listed in the metadata and
    every listed array is present, each with the shape and dtype its field needs."""
    arrays, extras = meta["arrays"], meta.get("extras", [])
    removal_arrays = meta.get("removal_arrays", [])
    for what, names in (("arrays", arrays), ("extras", extras),
                        ("removal_arrays", removal_arrays)):
        if len(set(names)) != len(names):
            raise FileFormatError(f"{path}: metadata list {what!r} names an array twice.")
    unknown_fields = sorted(set(arrays) - set(_ARRAY_FIELDS))
    if unknown_fields:
        raise FileFormatError(f"{path}: metadata 'arrays' lists unknown fields {unknown_fields};"
                              f" array fields are {list(_ARRAY_FIELDS)}.")
    expected = {_META_KEY, *arrays, *(_EXTRAS_PREFIX + e for e in extras),
                *(_REMOVAL_PREFIX + r for r in removal_arrays)}
    missing, extra = sorted(expected - set(members)), sorted(set(members) - expected)
    if missing:
        raise FileFormatError(f"{path} is a damaged xai explanation file: the metadata lists "
                              f"{missing} but the file has no such members.")
    if extra:
        raise FileFormatError(f"{path} has members the metadata does not list: {extra}; a "
                              "file written by Explanation.save has no others.")
    for name in ("values", "base_values"):
        if name not in arrays:
            raise FileFormatError(f"{path} is a damaged xai explanation file: no {name!r} "
                                  "array.")
    kwargs: dict[str, Any] = {name: members[name] for name in arrays}
    kwargs["extras"] = {name: members[_EXTRAS_PREFIX + name] for name in extras}
    kwargs["removal_arrays"] = {name: members[_REMOVAL_PREFIX + name] for name in removal_arrays}
    kwargs.setdefault("stderr", None)
    for name in _META_FIELDS:
        if name in meta:
            kwargs[name] = meta[name]
    _check_arrays(path, kwargs)
    return kwargs


def _fail(path: Path, name: str, problem: str) -> FileFormatError:
    return FileFormatError(f"{path}: array {name!r} {problem}; the file is damaged or was not "
                           "written by Explanation.save.")


def _check_arrays(path: Path, kw: dict) -> None:
    """Shapes and values of the stored arrays against ``values`` ``(n, d[, k])``."""
    values = kw["values"]
    if values.ndim not in (2, 3):
        raise _fail(path, "values", f"has shape {values.shape}, not (n, d) or (n, d, k)")
    n, d = values.shape[:2]
    stderr = kw.get("stderr")
    if stderr is not None:
        if stderr.shape != values.shape:
            raise _fail(path, "stderr", f"has shape {stderr.shape}, values {values.shape}")
        if np.any(np.asarray(stderr, dtype=np.float64) < 0):
            raise _fail(path, "stderr", "holds negative values (standard errors are >= 0 or "
                                        "NaN)")
    base = kw["base_values"]
    if base.shape != (n, *values.shape[2:]):
        raise _fail(path, "base_values", f"has shape {base.shape}, not "
                                         f"{(n, *values.shape[2:])}")
    for name in ("interactions", "interaction_stderr"):
        arr = kw.get(name)
        if arr is not None and (arr.shape != (n, d, *values.shape[1:]) or
                                arr.dtype.kind != "f"):
            raise _fail(path, name, f"has shape {arr.shape} and dtype {arr.dtype}, not floats "
                                    f"{(n, d, *values.shape[1:])}")
    if kw.get("interaction_stderr") is not None and (
            kw.get("interactions") is None or np.any(kw["interaction_stderr"] < 0)):
        raise _fail(path, "interaction_stderr", "holds negative values or has no interactions "
                                                "beside it")
    data = kw.get("data")
    if data is not None and (data.ndim < 1 or data.shape[0] != n):
        raise _fail(path, "data", f"has shape {data.shape}, not ({n}, ...)")
    for name, kinds in (("coalitions", "iu"), ("units", "iu"), ("converged", "b")):
        arr = kw.get(name)
        if arr is not None and (arr.shape != (n,) or arr.dtype.kind not in kinds):
            raise _fail(path, name, f"has shape {arr.shape} and dtype {arr.dtype}, not ({n},) "
                                    f"of {'bool' if kinds == 'b' else 'integers'}")
    _check_feature_map(path, kw.get("feature_map"), n, d, data, kw.get("channel_axis"))
    names = kw.get("feature_names") or []
    if names and len(names) != d:
        raise FileFormatError(f"{path}: {len(names)} feature names for {d} features.")
    target = kw["extras"].get("target")
    if target is not None and (target.shape != (n,) or target.dtype.kind not in "iu"
                               or np.any(target < 0)):
        raise _fail(path, "extras/target", f"has shape {target.shape} and dtype "
                                           f"{target.dtype}, not ({n},) output indices >= 0")
    _check_removal_arrays(path, kw["removal_arrays"], kw.get("removal_record", {}), n, data)


def _check_feature_map(path: Path, fmap: np.ndarray | None, n: int, d: int,
                       data: np.ndarray | None, channel_axis: int | None) -> None:
    if fmap is None:
        return
    if fmap.dtype.kind not in "iu" or fmap.ndim < 2 or fmap.shape[0] not in (1, n):
        raise _fail(path, "feature_map", f"has shape {fmap.shape} and dtype {fmap.dtype}, not "
                                         f"integers (1 or {n}, *positions)")
    if fmap.size and (fmap.min() < -1 or fmap.max() >= d):
        raise _fail(path, "feature_map", f"holds feature numbers outside -1..{d - 1}")
    if data is not None:
        row = data.shape[1:]
        pos = fmap.shape[1:]
        no_channel = tuple(s for i, s in enumerate(row) if channel_axis is None
                           or i != channel_axis % len(row))
        if pos != row and pos != no_channel:
            raise _fail(path, "feature_map", f"has positions {pos} for input rows {row}")


def _check_removal_arrays(path: Path, arrays: dict[str, np.ndarray], record: dict, n: int,
                          data: np.ndarray | None) -> None:
    """Removal arrays are finite; background rows have the input rows' shape; weights are
    one non-negative share per background row; per-explicand arrays have ``n`` rows."""
    for name, arr in arrays.items():
        if arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
            raise _fail(path, _REMOVAL_PREFIX + name, "holds NaN or infinite values")
    bg = arrays.get("background")
    if bg is not None and data is not None and (bg.ndim != data.ndim
                                                 or bg.shape[1:] != data.shape[1:]):
        raise _fail(path, "removal/background", f"has rows of shape {bg.shape[1:]}, the "
                                                f"explained rows {data.shape[1:]}")
    weights = arrays.get(_DRAW_WEIGHTS)
    if weights is not None and (bg is None or weights.shape != (bg.shape[0],)
                                or np.any(weights < 0) or not weights.sum() > 0):
        raise _fail(path, _REMOVAL_PREFIX + _DRAW_WEIGHTS,
                    "must be one non-negative weight per background row, not all zero")
    for name in record.get("per_explicand", ()):
        if arrays[name].ndim < 1 or arrays[name].shape[0] != n:
            raise _fail(path, _REMOVAL_PREFIX + name, f"has shape {arrays[name].shape}, not "
                                                      f"one row per explicand ({n})")
