"""Conversion between xai's :class:`~xai.explanation.Explanation` and ``shap.Explanation``.

Both hold attributions as ``(n, d)`` or ``(n, d, k)`` arrays with base values ``(n,)`` /
``(n, k)``, so the values move over unchanged: shap's plots (``shap.plots.waterfall``,
``beeswarm``, ``bar``, ...) work on :func:`to_shap`'s result, and
``Explanation.from_shap`` (built from :func:`fields_from_shap`) brings an explanation computed
by shap into xai's plots, metrics and file format. Standard errors map to
shap's ``error_std`` and the wall time to ``compute_time``.

shap is imported only when a conversion runs; without it a
:class:`~xai.errors.MissingDependencyError` names the package to install.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from xai.display import feature_columns, shown_data
from xai.errors import InputError, MissingDependencyError

__all__ = ["fields_from_shap", "to_shap"]


def _shap() -> Any:
    """The shap module, or :class:`MissingDependencyError` saying how to install it."""
    try:
        import shap
    except ImportError as exc:
        raise MissingDependencyError(
            "converting to or from shap.Explanation needs the shap package, which is not "
            "installed: pip install shap (or pip install 'xai[peers]')."
        ) from exc
    return shap


def _shared_target(expl: Any) -> int | None:
    """The output every row of a single-output explanation explains, when they share one."""
    target = expl.extras.get("target")
    if target is None:
        return 0 if expl.output_names is not None and len(expl.output_names) == 1 else None
    target = np.unique(np.asarray(target))
    return int(target[0]) if target.size == 1 else None


def _shap_output_names(expl: Any) -> list[str] | str | None:
    """shap's ``output_names``: one per output of ``(n, d, k)`` values, else the name of the
    output that every row explains (a string, as shap's own output slicing leaves it)."""
    if expl.values.ndim == 3:
        return expl.outputs
    out = _shared_target(expl)
    names = expl.output_names
    if out is None or names is None or not 0 <= out < len(names):
        return None
    return names[out]


def to_shap(expl: Any) -> Any:
    """``expl`` as a ``shap.Explanation`` with the same values, in shap's layout.

    ``values`` ``(n, d)`` or ``(n, d, k)`` and ``base_values`` ``(n,)`` / ``(n, k)`` are copied
    as they are; ``data`` is passed when it has one column per feature (tabular inputs; for
    images and grouped columns shap gets ``data=None``), with category codes decoded into
    ``display_data``; ``feature_names`` are :attr:`Explanation.names`; ``output_names`` lists
    the outputs of ``(n, d, k)`` values, or is the name of the one output that every row of a
    single-output explanation explains; ``stderr`` becomes ``error_std`` and ``seconds``
    ``compute_time``.
    """
    shap = _shap()
    data = feature_columns(expl)  # shap's plots colour and label features by data
    shown = shown_data(expl, data)
    return shap.Explanation(
        values=expl.values.copy(),
        base_values=expl.base_values.copy(),
        data=None if data is None else data.copy(),
        display_data=None if shown is data else shown,
        feature_names=expl.names,
        output_names=_shap_output_names(expl),
        error_std=None if expl.stderr is None else expl.stderr.copy(),
        compute_time=float(expl.seconds),
    )


def _array(value: Any) -> np.ndarray | None:
    return None if value is None else np.asarray(value)


def _one_row(values: np.ndarray, base: np.ndarray | None, data: np.ndarray | None,
             output_names: Any) -> bool:
    """Whether 2-D ``values`` are one row's ``(d, k)`` attributions rather than ``(n, d)``.

    shap's ``expl[i]`` of a multi-output explanation leaves ``(d, k)`` values with ``(k,)``
    base values and ``(d,)`` data; an ``(n, d)`` explanation has ``(n,)`` base values and
    ``(n, d)`` data, and at most one output name.
    """
    d, k = values.shape
    if data is not None and data.ndim == 1 and data.shape[0] == d:
        return True
    if data is not None and data.ndim == 2:
        return False
    if not isinstance(output_names, str) and output_names is not None:
        names = list(np.atleast_1d(output_names))
        if len(names) == k and k > 1:
            return True
    return base is not None and base.shape == (k,) and d != k


def _names(value: Any, count: int, what: str) -> list[str] | None:
    """A list of ``count`` names from shap's ``feature_names`` / ``output_names``."""
    if value is None:
        return None
    names = [str(v) for v in np.atleast_1d(np.asarray(value, dtype=object)).tolist()]
    if len(names) != count:
        raise InputError(f"the shap explanation has {count} {what}s but {len(names)} {what} "
                         f"names; pass {what}_names= with {count} names.")
    return names


def fields_from_shap(shap_explanation: Any, *, feature_names: list[str] | None = None,
                     output_names: list[str] | None = None,
                     method: str = "shap") -> dict[str, Any]:
    """The constructor arguments of an xai :class:`~xai.explanation.Explanation` holding a
    ``shap.Explanation`` (``Explanation.from_shap`` builds it).

    Accepts shap's layouts: one row (``values`` ``(d,)``, or ``(d, k)`` with ``(k,)`` base
    values), ``(n, d)`` and ``(n, d, k)``; a row axis is added where shap dropped it. Missing
    ``base_values`` become NaN (shap explanations built from bare arrays have none); missing
    ``feature_names`` become ``feature_0 ..``; ``data`` is kept when present; ``error_std``
    becomes ``stderr`` and ``compute_time`` ``seconds``. ``feature_names`` and
    ``output_names`` override the shap object's; a single output name (shap's string
    ``output_names`` of ``e[:, :, j]``) is recorded as the output every row explains.
    Values of any other rank (e.g. per-pixel ``(n, H, W, C)`` image attributions) raise
    :class:`~xai.errors.InputError`: reshape them to ``(n, d)`` first.
    """
    raw = getattr(shap_explanation, "values", None)
    if raw is None:
        raise InputError(f"from_shap needs a shap.Explanation (an object with .values); got "
                         f"{type(shap_explanation).__name__}.")
    values = np.asarray(raw, dtype=float)
    base = _array(getattr(shap_explanation, "base_values", None))
    data = _array(getattr(shap_explanation, "data", None))
    shap_outputs = getattr(shap_explanation, "output_names", None)
    if values.ndim == 1 or (values.ndim == 2 and _one_row(values, base, data, shap_outputs)):
        values = values[None]
        base = None if base is None else base[None]
        data = None if data is None or data.ndim == 0 else data[None]
        stderr = _array(getattr(shap_explanation, "error_std", None))
        stderr = None if stderr is None else stderr[None]
    else:
        stderr = _array(getattr(shap_explanation, "error_std", None))
    if values.ndim not in (2, 3):
        raise InputError(f"from_shap takes shap values (d,), (n, d) or (n, d, k); got shape "
                         f"{values.shape}. Reshape per-position attributions to (n, d) first.")
    n, d = values.shape[:2]
    base = np.full((n, *values.shape[2:]), np.nan) if base is None else base.astype(float)
    if data is not None and (data.ndim < 1 or data.shape[0] != n or data.dtype.kind not in "biuf"):
        data = None  # text tokens or misaligned inputs: not an xai data array
    if stderr is not None and stderr.shape != values.shape:
        stderr = None
    names = feature_names if feature_names is not None else _names(
        getattr(shap_explanation, "feature_names", None), d, "feature")
    extras: dict[str, np.ndarray] = {}
    outputs = output_names if output_names is not None else shap_outputs
    if values.ndim == 3:
        outputs = _names(outputs, values.shape[2], "output")
    elif outputs is not None:
        outputs = _names(outputs, 1, "output")
        extras["target"] = np.zeros(n, np.int64)
    seconds = getattr(shap_explanation, "compute_time", None)
    return {"values": values, "stderr": stderr, "base_values": base, "data": data,
            "feature_names": names or [], "output_names": outputs, "method": method,
            "seconds": float(seconds) if isinstance(seconds, int | float) else 0.0,
            "extras": extras}
