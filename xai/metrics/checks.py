"""Checks of what a metric is given, run before its first model call.

Option values go through the rule of their core name (:data:`xai.inputs.OPTION_RULES`) and then
through the metric's own rules (:attr:`xai.metrics.Metric.option_rules`, built from the small
rule types here and in :mod:`xai.inputs`); the explained rows through
:func:`xai.inputs.prepare_inputs`; attributions, targets and an explanation's rows through the
functions below. Each failure is a named :class:`~xai.errors.XaiError` that says the problem
and the fix.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..errors import InputError, OptionError, ShapeError, TargetError, unknown_name
from ..inputs import check_array, check_option

#: a rule checks one option value and returns it normalised, or raises OptionError
Rule = Callable[[str, Any], Any]


@dataclass(frozen=True)
class Choice:
    """One of a few names (case-insensitive); another value is an UnknownNameError that lists
    them and the closest one."""

    choices: tuple[str, ...]
    what: str = ""  # how the message calls the option (default: its name)

    def __call__(self, name: str, value: Any) -> str:
        if isinstance(value, str) and value.lower() in self.choices:
            return value.lower()
        raise unknown_name(self.what or name, value, self.choices)


@dataclass(frozen=True)
class OneOf:
    """One of a few values that are not all names (e.g. ``"optimal"`` or None)."""

    values: tuple[Any, ...]
    meaning: str = ""  # what the values mean, for the message

    def __call__(self, name: str, value: Any) -> Any:
        if any(value is v or (isinstance(v, str) and value == v) for v in self.values):
            return value
        listed = " or ".join(repr(v) for v in self.values)
        raise OptionError(f"{name}={value!r} is not understood: pass {listed}{self.meaning}")


def feature_map_rule(name: str, value: Any) -> Any:
    """``features=``: None or a :class:`~xai.FeatureMap`."""
    from ..features import FeatureMap

    if value is None or isinstance(value, FeatureMap):
        return value
    raise OptionError(f"{name}={value!r} is not a FeatureMap: pass the FeatureMap the "
                      "attributions are over (e.g. xai.FeatureMap.patches((H, W), 4)) or leave "
                      f"{name}=None (the explanation's own map, else one feature per pixel or "
                      "column)")


def row_indices_rule(name: str, value: Any) -> np.ndarray | None:
    """None or non-negative row indices (one per row of x, checked with the rows)."""
    if value is None:
        return None
    try:
        arr = np.asarray(value)
    except (TypeError, ValueError):  # ragged
        arr = np.asarray([], dtype=object)
    if arr.dtype.kind not in "iu" or arr.ndim != 1 or (arr.size and arr.min() < 0):
        raise OptionError(f"{name}={value!r} is not a list of row indices: pass the "
                          "non-negative index of each row of x in the data set or evaluated "
                          f"set, or leave {name}=None")
    return arr


def check_metric_options(metric_name: str, options: Mapping[str, Any],
                         rules: Mapping[str, Rule], defaults: Mapping[str, Any]) -> dict:
    """``options`` checked by the core rule of each name, then by the metric's ``rules``;
    returns them normalised (``1e3`` -> ``1000``, names lower-cased). A message that states no
    fix gets the option's default as one."""
    out = dict(options)
    for key, value in options.items():
        try:
            value = check_option(key, value)
            if key in rules:
                value = rules[key](key, value)
        except OptionError as err:
            if "pass" in str(err):
                raise
            default = defaults.get(key)
            fix = (f"pass a valid value or leave {key}=None (the default)" if default is None
                   else f"pass e.g. {key}={default!r} (the default of {metric_name})")
            raise OptionError(f"{err}; {fix}") from None
        out[key] = value
    return out


# ---- rows, removals ------------------------------------------------------------------------

def refuse_categorical_frame(x: Any) -> None:
    """Refuse a DataFrame with text, category or boolean columns, by name: metrics remove
    features by writing numbers and give the model numeric rows."""
    if not (hasattr(x, "columns") and hasattr(x, "dtypes")):
        return
    from ..tabular import categorical_columns

    bad = categorical_columns(x)
    if bad:
        raise InputError(f"x has categorical columns {bad[:10]} (text, category or boolean): "
                         "metrics remove features by writing numbers and give the model "
                         "numeric rows, so they cannot score them; pass numeric columns (e.g. "
                         "one-hot or ordinal codes) and a model fitted on them")


def check_removal(removal: Any) -> None:
    """``removal=``: None, a registered name or a :class:`~xai.removals.Removal`."""
    from ..removals import Removal

    if removal is None or isinstance(removal, str | Removal):
        return
    raise OptionError(f"removal={removal!r} is not a removal: pass a registered name (e.g. "
                      "'baseline', 'blur', 'marginal'), a Removal object such as "
                      "xai.removals.Baseline(0.0), or leave removal=None (the explanation's "
                      "own)")


# ---- attributions ------------------------------------------------------------------------

def attribution_array(a: Any) -> np.ndarray:
    """Raw attributions as a float64 array (a copy), refusing None, text, complex numbers, a
    scalar, no rows or rows without elements."""
    if a is None:
        raise InputError("attributions are None: pass an Explanation or an array of "
                         "attributions with one row per row of x")
    if isinstance(a, torch.Tensor):
        arr = a.detach().cpu().numpy()
    else:
        try:
            arr = np.asarray(a)
        except (TypeError, ValueError) as exc:  # ragged nested lists
            raise InputError(f"attributions cannot be read as an array ({exc}): pass an "
                             "Explanation or an array with rows of equal shape") from exc
    if arr.dtype.kind == "c":
        raise InputError(f"attributions are complex ({arr.dtype}); metrics score real "
                         "attributions: pass a.real (or np.abs(a) for magnitudes)")
    if arr.dtype.kind not in "biuf":
        example = arr.ravel()[0] if arr.size else None
        raise InputError(f"attributions must be numbers: got a {arr.dtype} array (e.g. "
                         f"{example!r}); pass an Explanation or a float array")
    check_array(arr, "attributions")
    return np.array(arr, dtype=np.float64, copy=True)


def check_finite_attributions(arr: np.ndarray) -> None:
    """Refuse NaN and infinite attributions, naming the first position and the rows."""
    bad = ~np.isfinite(arr)
    if bad.any():
        first = tuple(int(i) for i in np.argwhere(bad)[0])
        rows = np.unique(np.nonzero(bad)[0])[:10].tolist()
        raise InputError(
            f"attributions contain {int(bad.sum())} NaN or infinite values (first at index "
            f"{first}; rows {rows}); metrics do not impute them: drop those rows from x and "
            "the attributions, or fix the explanation that made them")


# ---- the explained rows --------------------------------------------------------------------

def check_explained_rows(data: np.ndarray | None, X: np.ndarray) -> None:
    """Refuse ``x`` other than the rows an explanation explained (its ``data``): of another
    shape, or of other values (to the precision of the coarser of the two dtypes, so that
    float32 copies of float64 rows pass)."""
    if data is None:
        return
    data = np.asarray(data)
    if data.shape != X.shape:
        if data.shape[1:] == X.shape[1:]:
            raise ShapeError(
                f"x has {X.shape[0]} rows but the explanation explained {data.shape[0]}: pass "
                "the rows that were explained (x = e.data), or the part of the explanation "
                f"that matches x (e[rows], e.g. e[:{X.shape[0]}] for the first rows)")
        raise ShapeError(f"x has shape {X.shape} but the explanation explained rows of shape "
                         f"{data.shape}: pass the rows that were explained (x = e.data), in "
                         "the same shape and layout")
    if data.dtype.kind not in "biuf" or X.dtype.kind not in "biuf":
        return
    tol = 4 * max(_resolution(data.dtype), _resolution(X.dtype))
    ref = data.astype(np.float64, copy=False)
    got = X.astype(np.float64, copy=False)
    scale = float(np.abs(ref).max()) if ref.size else 0.0
    differ = ~np.isclose(got, ref, rtol=tol, atol=tol * scale)
    if differ.any():
        at = tuple(int(i) for i in np.argwhere(differ)[0])
        rows = np.unique(np.nonzero(differ)[0])
        raise InputError(
            f"x differs from the rows the explanation explained (e.data) in {rows.size} of "
            f"{X.shape[0]} rows, first at row {at[0]} (index {at}: x = {got[at]:.6g}, e.data = "
            f"{ref[at]:.6g}): pass the rows that were explained (x = e.data), or the "
            "explanation of these rows (e[rows] for a subset of them)")


def _resolution(dtype: np.dtype) -> float:
    return float(np.finfo(dtype).eps) if np.issubdtype(dtype, np.floating) else 0.0


# ---- targets -----------------------------------------------------------------------------

def check_target_request(target: Any, n: int) -> None:
    """Refuse a ``target=`` that is no output index whatever the model: not an int, one int
    per row or ``"predicted"``; negative; or of another length than the rows."""
    if target is None or (isinstance(target, str) and target == "predicted"):
        return
    if isinstance(target, str):
        raise TargetError(f"target {target!r} is not understood: give an output index (an int), "
                          "one index per row of x, or 'predicted'")
    if isinstance(target, torch.Tensor):
        target = target.detach().cpu().numpy()
    arr = np.asarray(target)
    if arr.dtype.kind == "b" or not (arr.dtype.kind in "iu" or (
            arr.dtype == object and all(isinstance(v, numbers.Integral) for v in arr.ravel()))):
        raise TargetError(f"target {target!r} is not an output index: give an int, one int per "
                          "row of x, or 'predicted'")
    if arr.ndim > 1 or (arr.ndim == 1 and arr.size not in (1, n)):
        raise TargetError(f"{arr.size} targets for {n} rows: give one target, or one per row "
                          f"of x ({n})")
    if arr.size and arr.min() < 0:
        raise TargetError(f"target {int(arr.min())} is negative: give an output index 0..k-1 "
                          "(k the model's number of outputs), or one per row of x")


def check_target_range(targets: np.ndarray, k: int) -> None:
    """Refuse targets at or above the model's ``k`` outputs (with the message of the
    prediction behaviour)."""
    if targets.size and targets.max() >= k:
        raise TargetError(f"target {int(targets.max())} is out of range: the model has {k} "
                          f"outputs, valid targets are 0..{k - 1}")
