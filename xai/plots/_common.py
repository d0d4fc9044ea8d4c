"""What every plot of an explanation shares: choosing one output, names and data, the figure,
the title, and the colour norm centred at zero."""

from __future__ import annotations

import numbers
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from xai import registry
from xai.errors import InputError, TargetError, XaiError, unknown_name

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes
    from matplotlib.colors import Normalize
    from matplotlib.figure import Figure

POSITIVE = "#d62728"
NEGATIVE = "#1f77b4"
#: colour map of signed attributions: red raises the output, blue lowers it, white is zero
DIVERGING = "RdBu_r"


@dataclass
class OneOutput:
    """The attributions of one output: ``values (n, d)``, ``stderr (n, d)`` or ``None``,
    ``base (n,)``, and ``note``, the output's name for the title (empty for one output)."""

    values: np.ndarray
    stderr: np.ndarray | None
    base: np.ndarray
    note: str


def select(expl: Any, output: int | str | None) -> OneOutput:
    """The attributions of one output of ``expl``.

    ``output`` is an index or an output name; it may be omitted only when the explanation has
    one output. Raises :class:`TargetError` otherwise (as shap does, a plot never picks one of
    several outputs silently).
    """
    values = np.asarray(expl.values, dtype=float)
    stderr = None if expl.stderr is None else np.asarray(expl.stderr, dtype=float)
    base = np.asarray(expl.base_values, dtype=float)
    if values.ndim == 2:
        if output not in (None, 0):
            raise TargetError(
                f"output={output!r} was requested but this explanation has a single output; "
                "omit output."
            )
        return OneOutput(values, stderr, base.reshape(-1), "")
    k = values.shape[2]
    names = list(expl.output_names) if expl.output_names and len(expl.output_names) == k \
        else [f"output {i}" for i in range(k)]
    if output is None:
        if k > 1:
            raise TargetError(
                f"this explanation has {k} outputs ({', '.join(map(str, names[:10]))}); "
                f"choose the one to plot with output=<index or name>, e.g. output={names[-1]!r}."
            )
        output = 0
    if isinstance(output, str):
        if output not in names:
            raise unknown_name("output", output, names)
        out = names.index(output)
    elif isinstance(output, numbers.Integral) and -k <= int(output) < k:
        out = int(output) % k
    else:
        raise TargetError(f"output={output!r} is out of range: this explanation has {k} outputs.")
    base = base.reshape(values.shape[0], -1)
    return OneOutput(
        values[:, :, out],
        None if stderr is None else stderr[:, :, out],
        base[:, out if base.shape[1] == k else 0],
        names[out] if k > 1 else "",
    )


def one_target(expl: Any, plot: str) -> None:
    """Refuse to aggregate rows that explain different outputs (each row's predicted class of a
    multi-class model): a mean over them mixes classes."""
    target = getattr(expl, "extras", {}).get("target")
    if target is None or np.asarray(expl.values).ndim != 2:
        return
    classes = np.unique(np.asarray(target))
    if len(classes) > 1:
        names = getattr(expl, "output_names", None)
        shown = [names[c] if names and c < len(names) else int(c) for c in classes[:10]]
        raise TargetError(
            f"the {plot} plot averages rows, but these rows explain different outputs "
            f"{shown} (each row's predicted class): explain one class for every row "
            "(target=<class index>), or plot the rows of one class, e.g. "
            "expl[expl.extras['target'] == 0]")


def feature_names(expl: Any, d: int) -> list[str]:
    """The explanation's feature names, or ``feature_0 ..`` when missing."""
    names = list(getattr(expl, "feature_names", None) or [])
    return names if len(names) == d else [f"feature_{j}" for j in range(d)]


def feature_index(expl: Any, feature: int | str, d: int) -> int:
    """Column of ``feature`` (a name or an index); :class:`UnknownNameError` or
    :class:`InputError` naming the valid choices otherwise."""
    names = feature_names(expl, d)
    if isinstance(feature, str):
        if feature not in names:
            raise unknown_name("feature", feature, names)
        return names.index(feature)
    if isinstance(feature, numbers.Integral) and not isinstance(feature, bool) \
            and -d <= int(feature) < d:
        return int(feature) % d
    raise InputError(
        f"feature={feature!r} is neither a feature name nor an index in [0, {d}); "
        f"features: {', '.join(names[:10])}{' ...' if d > 10 else ''}."
    )


def tabular_data(expl: Any, d: int) -> np.ndarray | None:
    """The explained inputs as ``(n, d)`` when they are tabular, one column per feature
    (category codes shown as their values)."""
    data = getattr(expl, "data", None)
    if data is None or expl.feature_map is not None:
        return None
    data = np.asarray(data)
    if data.ndim != 2 or data.shape[1] != d:
        return None
    categories = getattr(expl, "options", {}).get("categories")
    if isinstance(categories, dict) and categories:
        from xai.tabular import display_data

        data = display_data(data, feature_names(expl, d), categories)
    return data


def numeric(column: np.ndarray) -> np.ndarray | None:
    """A float copy of ``column``, or ``None`` when it is not numeric."""
    try:
        return np.asarray(column, dtype=float)
    except (TypeError, ValueError):
        return None


def format_value(value: Any) -> str:
    """A short label for a data value."""
    if isinstance(value, (numbers.Real, np.number)) and not isinstance(value, bool):
        return f"{float(value):.4g}"
    return str(value)


def check_row(n: int, row: Any) -> int:
    """``row`` as a non-negative index, or :class:`InputError` when out of range."""
    if isinstance(row, bool) or not isinstance(row, numbers.Integral) or not -n <= int(row) < n:
        raise InputError(
            f"row={row!r} is out of range for an explanation of {n} rows; "
            f"pass an index in [{-n}, {n})."
        )
    return int(row) % n


def new_figure(figsize: tuple[float, float], **subplots: Any) -> tuple[Figure, Any]:
    """A figure made through pyplot (so ``plt.show()`` displays it and ``plt.close(fig)``
    releases it) with ``plt.subplots(**subplots)`` axes and constrained layout."""
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=figsize, layout="constrained", **subplots)


def figure(ax: Axes | None, figsize: tuple[float, float]) -> tuple[Figure, Axes]:
    """A new pyplot figure with one axes, or the figure of ``ax``."""
    if ax is not None:
        return ax.figure, ax
    return new_figure(figsize)


def method_label(expl: Any) -> str:
    """The name of the method that made ``expl``: its preset name, or for an explanation made
    from axes (``method="custom"``) ``removal × behaviour × summary``."""
    method = str(getattr(expl, "method", "") or "")
    if method and method != "custom":
        return method
    parts = [str((getattr(expl, axis, None) or {}).get("name") or "")
             for axis in ("removal", "behaviour", "summary")]
    parts = [p for p in parts if p]
    return " × ".join(parts) if parts else (method or "explanation")


def is_global(expl: Any) -> bool:
    """Whether ``expl`` explains a data set (SAGE, permutation importance): its behaviour is a
    dataset-level one, so its one row is the importance itself, not an explained input."""
    name = (getattr(expl, "behaviour", None) or {}).get("name")
    if not name:
        return False
    try:
        behaviour = registry.get("behaviour", str(name))
    except (XaiError, KeyError):
        return False
    return bool(getattr(behaviour, "dataset", False))


def title(base: str, note: str) -> str:
    """``base`` with the output note appended when there is one."""
    return f"{base} ({note})" if note else base


def centred_norm(values: np.ndarray) -> Normalize:
    """A colour norm centred at zero with symmetric limits ``±max|values|`` (1 when all are
    zero or NaN), so white always means zero attribution."""
    from matplotlib.colors import Normalize

    with np.errstate(all="ignore"):
        lim = float(np.nanmax(np.abs(values))) if np.size(values) else 0.0
    lim = lim if np.isfinite(lim) and lim > 0 else 1.0
    return Normalize(vmin=-lim, vmax=lim)


def importance_order(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Features by mean absolute attribution over rows, largest first, NaN ignored:
    ``(order, mean |values|)``."""
    n, d = values.shape
    with np.errstate(all="ignore"):
        importance = np.nan_to_num(np.nanmean(np.abs(values), axis=0)) if n else np.zeros(d)
    return np.argsort(-importance, kind="stable"), importance


def split_shown(order: np.ndarray, max_display: int) -> tuple[np.ndarray, np.ndarray]:
    """The features drawn on their own and the rest, summed into one "N other features" item
    (which takes the last of the ``max_display`` places)."""
    if isinstance(max_display, bool) or not isinstance(max_display, numbers.Integral) \
            or max_display < 1:
        raise InputError(f"max_display must be a positive integer; got {max_display!r}.")
    if len(order) <= max_display:
        return order, order[:0]
    keep = max(max_display - 1, 1)
    return order[:keep], order[keep:]
