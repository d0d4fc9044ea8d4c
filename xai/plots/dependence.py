"""Dependence plot: a feature's value against its attribution, one point per row."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from xai.errors import InputError

from ._common import (
    feature_index,
    feature_names,
    figure,
    method_label,
    numeric,
    one_target,
    select,
    tabular_data,
    title,
)

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["scatter"]


def _positions(expl: Any, data: np.ndarray, j: int, name: str
               ) -> tuple[np.ndarray, list[str] | None]:
    """Numeric positions of data column ``j`` and, for a non-numeric one, the tick labels: a
    categorical column's categories at their codes (the categories' own order), other values
    at their rank in sorted order."""
    categories = getattr(expl, "options", {}).get("categories")
    if isinstance(categories, dict) and name in categories:
        codes = numeric(np.asarray(expl.data)[:, j])
        if codes is not None:
            return codes, [str(c) for c in categories[name]]
    column = data[:, j]
    values = numeric(column)
    if values is not None:
        return values, None
    labels = sorted({str(v) for v in column})
    where = {label: i for i, label in enumerate(labels)}
    return np.array([where[str(v)] for v in column], dtype=float), labels


def scatter(
    expl: Any,
    feature: int | str,
    color: int | str | None = None,
    ax: Axes | None = None,
    output: int | str | None = None,
) -> Figure:
    """Dependence plot (as ``shap.plots.scatter``): for each row, the value of ``feature``
    (x) against its attribution (y), so the shape of the model's dependence on it shows.

    ``feature`` and ``color`` are feature names or indices; with ``color`` each point is
    coloured by that other feature's value (5th to 95th percentile of the colour scale), which
    shows interactions. A categorical column's categories are placed at their codes, other
    non-numeric values at the ranks of their sorted values. Rows whose attribution is NaN are
    dropped. Needs the explained tabular data in ``expl.data`` (:class:`InputError`
    otherwise).
    """
    one_target(expl, "scatter")
    sel = select(expl, output)
    d = sel.values.shape[1]
    j = feature_index(expl, feature, d)
    c = None if color is None else feature_index(expl, color, d)
    data = tabular_data(expl, d)
    if data is None:
        raise InputError(
            "scatter plots feature values against attributions, but this explanation holds no "
            "tabular data (one column per feature): explain tabular inputs (a DataFrame or an "
            "(n, d) array; xai.explain keeps them in expl.data) or set expl.data."
        )
    names = feature_names(expl, d)
    x, ticks = _positions(expl, data, j, names[j])
    y = sel.values[:, j]
    keep = ~np.isnan(y) & ~np.isnan(x)
    fig, ax = figure(ax, (5.6, 4.2))
    if c is None:
        ax.scatter(x[keep], y[keep], s=14, color="#1f77b4", alpha=0.8, linewidths=0)
    else:
        shade, shade_ticks = _positions(expl, data, c, names[c])
        with np.errstate(all="ignore"):
            lo, hi = (np.nanpercentile(shade, [5, 95]) if np.isfinite(shade).any()
                      else (0.0, 1.0))
        points = ax.scatter(x[keep], y[keep], s=14, c=shade[keep], cmap="coolwarm",
                            vmin=lo, vmax=hi if hi > lo else lo + 1.0, alpha=0.8,
                            linewidths=0)
        bar_ = fig.colorbar(points, ax=ax, pad=0.02, label=names[c])
        if shade_ticks is not None:
            bar_.set_ticks(np.arange(len(shade_ticks)), labels=shade_ticks)
    if ticks is not None:
        ax.set_xticks(np.arange(len(ticks)), ticks, rotation=30, ha="right")
    ax.axhline(0.0, color="0.5", linewidth=0.8)
    ax.set_xlabel(names[j])
    ax.set_ylabel(f"attribution of {names[j]}")
    ax.set_title(title(f"{method_label(expl)}: dependence on {names[j]}", sel.note))
    return fig
