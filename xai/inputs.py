"""Checks of what a user passes in, run before the first model call.

Every option with a core name has one meaning and one rule (:data:`OPTION_RULES`), applied
to the options of ``explain``, :class:`~xai.Explainer`, the metrics and the bench runner;
:func:`check_array` refuses inputs that no model could be asked about (empty, complex, text,
NaN). Each failure is a named :class:`~xai.errors.XaiError` that says the problem and the fix.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from .devices import check_device
from .errors import FeatureMapError, InputError, LabelError, OptionError
from .features import FeatureMap, image_layout
from .models import SklearnModel, TorchModel, writable


@dataclass(frozen=True)
class Integer:
    """An integer option in ``[low, high]`` (``None`` allowed when ``optional``); an integral
    float such as ``1e4`` is read as an integer when ``floats`` is set."""

    low: int | None = None
    high: int | None = None
    optional: bool = True
    floats: bool = True
    also: tuple[Any, ...] = ()  # other accepted values (e.g. "auto")
    example: int | None = None

    def __call__(self, name: str, value: Any) -> Any:
        if value is None and self.optional or _listed(value, self.also):
            return value
        if isinstance(value, bool | np.bool_) or not isinstance(value, numbers.Real):
            raise OptionError(f"{name}={value!r} is not an integer{self._range()}: "
                              f"{self._fix(name)}")
        whole = isinstance(value, numbers.Integral) or (
            self.floats and math.isfinite(value) and float(value).is_integer())
        if not whole:
            raise OptionError(f"{name}={value!r} is not a whole number{self._range()}: "
                              f"{self._fix(name)}")
        value = int(value)
        if (self.low is not None and value < self.low) or \
                (self.high is not None and value > self.high):
            raise OptionError(f"{name}={value} is out of range{self._range()}: "
                              f"{self._fix(name)}")
        return value

    def _range(self) -> str:
        if self.low is not None and self.high is not None:
            return f" (it must be in {self.low}..{self.high})"
        if self.low is not None:
            return f" (it must be at least {self.low})"
        return ""

    def _fix(self, name: str) -> str:
        others = "".join(f" or {a!r}" for a in self.also)
        none = " or None (the default)" if self.optional else ""
        example = self.example or max(self.low or 0, 1)
        return f"pass an int such as {name}={example}{others}{none}"


@dataclass(frozen=True)
class Real:
    """A finite real option in ``(low, high)`` or ``[low, high]``."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    optional: bool = True

    def __call__(self, name: str, value: Any) -> Any:
        if value is None and self.optional:
            return value
        if isinstance(value, bool | np.bool_) or not isinstance(value, numbers.Real):
            raise OptionError(f"{name}={value!r} is not a number ({self._range()}): pass a "
                              f"float {self._range()}")
        value = float(value)
        low_bad = self.low is not None and (value < self.low or self.low_open and
                                            value == self.low)
        high_bad = self.high is not None and (value > self.high or self.high_open and
                                              value == self.high)
        if not math.isfinite(value) or low_bad or high_bad:
            raise OptionError(f"{name}={value!r} is out of range: it must be a finite number "
                              f"{self._range()}")
        return value

    def _range(self) -> str:
        lo = "" if self.low is None else f"{'>' if self.low_open else '>='} {self.low:g}"
        hi = "" if self.high is None else f"{'<' if self.high_open else '<='} {self.high:g}"
        return " and ".join(p for p in (lo, hi) if p) or "of any size"


@dataclass(frozen=True)
class Flag:
    """A boolean option."""

    def __call__(self, name: str, value: Any) -> bool:
        if not isinstance(value, bool | np.bool_):
            raise OptionError(f"{name}={value!r} is not a bool: pass {name}=True or False")
        return bool(value)


def _check_seed(name: str, value: Any) -> Any:
    if value is None or isinstance(value, np.random.SeedSequence):
        return value
    if isinstance(value, bool | np.bool_) or not isinstance(value, numbers.Integral) \
            or value < 0:
        raise OptionError(f"{name}={value!r} is not a seed: pass a non-negative int (e.g. "
                          f"{name}=0) or None for a fresh random seed")
    return int(value)


def _check_size(name: str, value: Any) -> Any:
    from .config import parse_size

    if value is None:
        return value
    parse_size(value)
    return value


@dataclass(frozen=True)
class Choice:
    """An option that is one of a few names."""

    names: tuple[str, ...]

    def __call__(self, name: str, value: Any) -> str:
        if not isinstance(value, str) or value not in self.names:
            raise OptionError(f"{name}={value!r} is not one of {list(self.names)}: pass "
                              f"{name}={self.names[0]!r} (the default) or another of them")
        return value


def _check_address(name: str, value: Any) -> Any:
    if value is None or isinstance(value, str) and value.strip():
        return value
    raise OptionError(f"{name}={value!r} is not a Ray cluster address: pass a string such as "
                      f"{name}='HOST:6379' or 'auto', or None (RAY_ADDRESS, else a local cluster)")


#: one rule per core option name, whichever component takes it
OPTION_RULES: dict[str, Any] = {
    "budget": Integer(1, example=4096),
    "seed": _check_seed,
    "batch_size": Integer(1, example=1024),
    "memory_cap": _check_size,
    "max_background": Integer(1, example=100),
    "n_samples": Integer(0),  # 0: conditional-gaussian's plug-in means
    "n_repeats": Integer(1),
    "min_units": Integer(1, optional=False),
    "cells": Integer(1),
    "folds": Integer(2),
    "replicates": Integer(1),
    "n_rows": Integer(1),
    "num_features": Integer(1),
    "max_exact_features": Integer(0, 62, optional=False),
    "max_exact_surrogate": Integer(0, 62, optional=False),
    "surrogate_samples": Integer(1),
    "draws_per_unit": Integer(1, also=("auto",)),
    "tol": Real(0.0, low_open=True),
    "rtol": Real(0.0, low_open=True),
    "kernel_width": Real(0.0, low_open=True),
    "sigma": Real(0.0, low_open=True),
    "alpha": Real(0.0, optional=False),
    "ridge": Real(0.0, optional=False),
    "noise": Real(0.0, optional=False),
    "p": Real(0.0, 1.0, low_open=True, high_open=True, optional=False),
    "paired": Flag(),
    "enumerate_strata": Flag(),
    "cache": Flag(),
    "device": check_device,  # "cpu", "cuda", "cuda:1", "mps" or a torch.device
    # backend="ray": where the work runs and what each task holds (xai.ray_backend)
    "backend": Choice(("local", "ray")),
    "address": _check_address,
    "workers": Integer(1, example=4),
    "num_cpus": Real(0.0, low_open=True),
    "num_gpus": Real(0.0),
}


def _listed(value: Any, allowed: tuple) -> bool:
    return isinstance(value, str) and value in allowed


def check_option(name: str, value: Any) -> Any:
    """``value`` checked by the rule of option ``name`` (normalised: ``1e4`` -> ``10000``);
    options without a rule pass unchanged. Raises :class:`~xai.errors.OptionError`."""
    rule = OPTION_RULES.get(name)
    return value if rule is None else rule(name, value)


def check_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``options`` with every option checked by :func:`check_option`."""
    return {k: check_option(k, v) for k, v in options.items()}


# ---- arrays --------------------------------------------------------------------------------

def check_array(arr: np.ndarray | torch.Tensor, what: str, *, rows: bool = True) -> None:
    """Refuse an array no model can be asked about: text or objects, complex numbers, no rows
    (when ``rows``) or rows without elements. NaN and inf are checked apart (they name their
    position), by :func:`xai.removals.check_finite`."""
    shape = tuple(arr.shape)
    if isinstance(arr, torch.Tensor):
        if arr.is_complex():
            raise InputError(f"{what} is complex ({arr.dtype}); explanations need real inputs: "
                             f"pass {what}.real, or split real and imaginary parts into columns")
    else:
        kind = arr.dtype.kind
        if kind == "c":
            raise InputError(f"{what} is complex ({arr.dtype}); explanations need real inputs: "
                             f"pass {what}.real, or split real and imaginary parts into columns")
        if kind not in "biuf":
            example = arr.ravel()[0] if arr.size else None
            raise InputError(
                f"{what} must be numeric: got a {arr.dtype} array (e.g. {example!r}). Encode "
                "text and categories as numbers, or pass a pandas DataFrame to a model (a "
                "scikit-learn pipeline) that encodes them itself")
    if len(shape) == 0:
        raise InputError(f"{what} is a scalar; give a batch of rows (n, ...)")
    if rows and shape[0] == 0:
        raise InputError(f"{what} has no rows (shape {shape}); give at least one row")
    if any(s == 0 for s in shape[1:]):
        raise InputError(f"{what} rows have no elements (shape {shape}): give rows with at "
                         "least one feature")


def _is_frame(X: Any) -> bool:
    return hasattr(X, "columns") and hasattr(X, "to_numpy")


def _refuse_categorical(frame: Any, what: str) -> None:
    """Refuse a DataFrame with text or categorical columns, by name, for callers that cannot
    decode category codes (the external backends)."""
    from .tabular import categorical_columns

    bad = categorical_columns(frame)
    if bad:
        raise InputError(
            f"{what} has non-numeric columns {bad[:10]}: this method needs numbers. Explain "
            "with one of xai's own methods (xai.explain, e.g. method='shap'), which explain "
            "categorical columns through a model that encodes them (a scikit-learn pipeline), "
            "or encode them as numbers")


def _align_background(background: Any, names: list[str] | None,
                      what: str = "background") -> Any:
    """The DataFrame ``background`` with the inputs' columns in their order (reordered by
    name)."""
    bcols = [str(c) for c in background.columns]
    if names is not None and bcols != names:
        if sorted(bcols) != sorted(names):
            missing = sorted(set(names) - set(bcols))
            extra = sorted(set(bcols) - set(names))
            raise InputError(f"{what} columns differ from the inputs': missing "
                             f"{missing}, extra {extra}; give the {what} the same "
                             f"columns as X (e.g. {what} = X_train[X.columns])")
        background = background.iloc[:, [bcols.index(n) for n in names]]
    return background


def _as_array(X: Any, what: str) -> np.ndarray | torch.Tensor:
    if X is None:
        raise InputError(f"{what} is None: pass the rows as a numpy array, torch tensor or "
                         "pandas DataFrame")
    if isinstance(X, torch.Tensor):
        return X.detach()
    try:
        return writable(np.asarray(X))  # read-only rows (a memmap, broadcast_to) are copied
    except (ValueError, TypeError) as exc:  # ragged nested lists
        raise InputError(f"{what} cannot be read as an array ({exc}): give rows of equal "
                         "shape as a numpy array, torch tensor or DataFrame") from exc


@dataclass
class PreparedInputs:
    """Inputs checked and made numeric by :func:`prepare_table`."""

    X: Any  # numpy or torch rows; a DataFrame's float64 table (categories as codes)
    names: list[str] | None  # a DataFrame's column names
    background: Any  # aligned to X's columns and encoded like X, or None
    baseline: Any  # a baseline row (or rows) encoded like X; other baselines as given
    table: Any = None  # the DataFrame's TableEncoding (xai.tabular), None for arrays


def _encode_table(X: Any, background: Any, baseline: Any) -> PreparedInputs:
    """A DataFrame ``X`` with its background and baseline rows encoded by one
    :class:`~xai.tabular.TableEncoding`, whose categories are the union of theirs. A baseline
    is read as rows of values when it names columns (pandas, a mapping) or when ``X`` has
    categorical columns; otherwise (a scalar, a per-feature vector) it stays as given."""
    from .tabular import TableEncoding, columns_of, is_categorical

    names = [str(c) for c in X.columns]
    categorical = any(is_categorical(t) for t in X.dtypes)
    sources = [("X", X)]
    if _is_frame(background) or (categorical and background is not None):
        if isinstance(background, torch.Tensor):
            background = background.detach().cpu().numpy()
        sources.append(("background", background))
    if isinstance(baseline, torch.Tensor) and categorical:
        baseline = baseline.detach().cpu().numpy()
    named = _is_frame(baseline) or hasattr(baseline, "keys")
    if named or (categorical and not isinstance(baseline, str) and np.ndim(baseline) >= 1):
        sources.append(("baseline", baseline))
    sources = [(what, _align_background(rows, names, what) if _is_frame(rows) else rows)
               for what, rows in sources]
    columns = [(what, columns_of(rows, names, what)) for what, rows in sources]
    table = TableEncoding.fit(X, *columns[1:])
    encoded = {what: table.encode(cols, what, len(rows))
               for (what, cols), (_, rows) in zip(columns, sources)}
    return PreparedInputs(encoded["X"], names, encoded.get("background", background),
                          encoded.get("baseline", baseline), table)


def _check_model_width(model: Any, width: int, names: list[str] | None) -> None:
    """Refuse rows of another width than a scikit-learn estimator was fitted on."""
    estimator = getattr(model, "estimator", None)
    expected = getattr(estimator, "n_features_in_", None)
    if expected is None or width == expected:
        return
    known = getattr(estimator, "feature_names_in_", None)
    if known is not None:
        cols = f" (columns the model was fitted on: {list(map(str, known))})"
    else:
        cols = f" (columns: {list(names)})" if names else ""
    raise InputError(f"X has {width} columns; the model expects {expected}{cols}")


def prepare_table(model: Any, X: Any, background: Any, baseline: Any = None) -> PreparedInputs:
    """Inputs ``X`` and the background checked (:func:`check_array`, NaN/inf, widths) before
    any model call. A DataFrame's columns are encoded by a :class:`~xai.tabular.TableEncoding`
    (categorical columns as category codes), which also encodes a DataFrame, Series, mapping
    or array ``baseline`` (rows of original values) and aligns a DataFrame background by
    column name."""
    from .removals import check_finite

    if _is_frame(X):
        _check_model_width(model, X.shape[1], [str(c) for c in X.columns])
        prepared = _encode_table(X, background, baseline)
    else:
        prepared = PreparedInputs(X, None, background, baseline)
    X, names, background = prepared.X, prepared.names, prepared.background
    X = _as_array(X, "X")
    check_array(X, "X")
    if background is not None:
        background = background if isinstance(background, torch.Tensor) else \
            _as_array(background, "background")
    estimator = getattr(model, "estimator", None)
    expected = getattr(estimator, "n_features_in_", None)
    if X.ndim == 1 and (expected is not None or isinstance(model, SklearnModel)):
        X = X[None]
    if X.ndim == 1:
        raise InputError(f"X has shape {tuple(X.shape)}; give a batch (n, ...) of rows "
                         "(a single 1-D row is accepted only for scikit-learn models)")
    if X.ndim == 2:
        _check_model_width(model, X.shape[1], names)
    check_finite(X if isinstance(X, torch.Tensor) else torch.as_tensor(X), "X")
    if background is not None:
        bshape = tuple(background.shape)
        if len(bshape) == len(X.shape) - 1 and bshape == tuple(X.shape[1:]):
            background = background[None]
            bshape = (1, *bshape)
        if bshape[1:] != tuple(X.shape[1:]):
            raise InputError(f"background rows have shape {bshape[1:]} but the explained rows "
                             f"have shape {tuple(X.shape[1:])}; give background rows of the "
                             "same width/shape (the same columns in the same order)")
        check_array(background, "background")
        check_finite(torch.as_tensor(np.asarray(background, dtype=np.float64)), "background")
    prepared.X, prepared.background = X, background
    return prepared


def prepare_inputs(model: Any, X: Any, background: Any) -> tuple[Any, list[str] | None, Any]:
    """Numpy/torch inputs ``X``, their column names (pandas) and the background aligned to the
    inputs' columns, each checked by :func:`check_array` and for NaN/inf. DataFrames with
    categorical columns are refused (:func:`prepare_table` encodes them)."""
    if _is_frame(X):
        _refuse_categorical(X, "X")
    if _is_frame(background):
        _refuse_categorical(background, "background")
    prepared = prepare_table(model, X, background)
    return prepared.X, prepared.names, prepared.background


def check_labels(y: Any, n: int, behaviour: str) -> None:
    """Labels: one per explained row, and finite where numeric."""
    if y is None:
        return
    arr = y.detach().cpu().numpy() if isinstance(y, torch.Tensor) else np.asarray(y)
    if arr.ndim == 0 or arr.shape[0] != n:
        got = "a scalar" if arr.ndim == 0 else f"{arr.shape[0]} labels"
        raise LabelError(f"y has {got} but {n} rows are explained; the {behaviour} behaviour "
                         "needs one label per row")
    if arr.dtype.kind == "c":
        raise LabelError(f"y is complex ({arr.dtype}); the {behaviour} behaviour needs real "
                         "labels")
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        bad = np.argwhere(~np.isfinite(arr))
        raise LabelError(
            f"y has {len(bad)} NaN or infinite labels (first at {tuple(int(i) for i in bad[0])}"
            f"); the {behaviour} behaviour cannot score them: drop those rows or impute "
            "their labels")


# ---- the kind of input and its features ---------------------------------------------------

def is_tokens(adapter: Any, X: Any, features: Any) -> bool:
    """Token ids: integer 2-D inputs of a torch module, or a token feature map. Integer tables
    of scikit-learn models and callables are tabular (counts, codes)."""
    if isinstance(features, FeatureMap) and features.kind == "token":
        return True
    integer = not (X.dtype.is_floating_point if isinstance(X, torch.Tensor) else
                   np.issubdtype(X.dtype, np.floating))
    return integer and X.ndim == 2 and isinstance(adapter, TorchModel)


def as_float_table(X: Any) -> Any:
    """Tabular inputs as float64 (numpy or torch)."""
    if isinstance(X, torch.Tensor):
        return X if X.is_floating_point() else X.to(torch.float64)
    return X.astype(np.float64)


def input_kind(shape: tuple[int, ...], tokens: bool) -> str:
    """``"tokens"``, ``"tabular"`` (rows of one axis) or ``"image"``."""
    if tokens:
        return "tokens"
    return "tabular" if len(shape) == 1 else "image"


def feature_map_for(features: Any, X: Any, names: list[str] | None, kind: str,
                    method: str) -> FeatureMap:
    """The feature map of inputs ``X`` from ``features=`` (a FeatureMap, a dict of column
    groups, a superpixel method, ``"pixels"``, a patch size), or the kind's default."""
    shape = tuple(X.shape[1:])
    if isinstance(features, FeatureMap):
        pos = features.pos_shape
        if pos != shape and (features.channel_axis is None or len(shape) != len(pos) + 1):
            raise InputError(f"X rows have shape {shape}; the feature map expects rows of shape "
                             f"{pos}. Give X with that shape, or build the feature map for X")
        return features
    if kind == "tabular":
        if features is None:
            return FeatureMap.tabular(shape[0], names)
        if isinstance(features, dict):
            return FeatureMap.groups(features, names or shape[0])
        raise FeatureMapError(f"for tabular inputs features= must be a dict of groups or a "
                              f"FeatureMap, got {features!r}")
    if kind == "tokens":
        return FeatureMap.tokens(shape[0])
    if len(shape) > 3:
        raise InputError(f"X rows have shape {shape} ({len(shape) + 1}-D inputs): give tabular "
                         "(n, p), images (n, C, H, W), (n, H, W, C) or (n, H, W), or token ids "
                         "(n, L); for other inputs pass features= a FeatureMap of that shape")
    cax, hw = image_layout(shape)
    if features is None:
        features = "pixels" if method == "rise" else "slic"
    if isinstance(features, int):
        return FeatureMap.patches(hw, features, channel_axis=cax)
    if isinstance(features, tuple) and features and features[0] == "patches":
        return FeatureMap.patches(hw, features[1], channel_axis=cax)
    if features == "pixels":
        return FeatureMap.patches(hw, 1, channel_axis=cax)
    if isinstance(features, str):
        arr = X.detach().cpu().numpy() if isinstance(X, torch.Tensor) else np.asarray(X)
        return FeatureMap.superpixels(arr, features, channel_axis=cax)
    raise FeatureMapError(f"features= {features!r} is not understood: give a FeatureMap, "
                          "'slic' / 'quickshift' / 'felzenszwalb', 'pixels', or a patch size")
