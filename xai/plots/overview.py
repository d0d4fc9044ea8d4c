"""Plots of all the rows of a tabular explanation at once: bar, beeswarm and heatmap."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from xai.errors import InputError

from ._common import (
    DIVERGING,
    NEGATIVE,
    POSITIVE,
    centred_norm,
    feature_names,
    figure,
    importance_order,
    is_global,
    method_label,
    new_figure,
    numeric,
    one_target,
    select,
    split_shown,
    tabular_data,
    title,
)

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["bar", "beeswarm", "heatmap"]

#: above this many rows, "similarity" orders rows along the attributions' first principal
#: axis instead of clustering them (complete linkage needs memory quadratic in the rows)
_MAX_CLUSTERED_ROWS = 2000


def bar(
    expl: Any, max_display: int = 20, ax: Axes | None = None, output: int | str | None = None
) -> Figure:
    """Importance per feature as horizontal bars, largest first.

    Over several rows a bar is the mean absolute attribution (error bars: the mean standard
    error). An explanation of one row, and a global one (SAGE, permutation importance: its one
    row is the importance of each feature for the whole data set), is drawn signed instead,
    red above zero and blue below, with that row's standard errors. With more than
    ``max_display`` features, the rest are summed into one "N other features" bar. NaN padding
    is ignored.
    """
    one_target(expl, "bar")
    sel = select(expl, output)
    n, d = sel.values.shape
    names = feature_names(expl, d)
    signed = n == 1
    if signed:
        heights_all = np.nan_to_num(sel.values[0])
        err_all = None if sel.stderr is None else np.nan_to_num(sel.stderr[0])
        order = np.argsort(-np.abs(heights_all), kind="stable")
    else:
        order, heights_all = importance_order(sel.values)
        err_all = None
        if sel.stderr is not None and n:
            with np.errstate(all="ignore"):
                err_all = np.nan_to_num(np.nanmean(sel.stderr, axis=0))
    shown, rest = split_shown(order, max_display)
    heights = list(heights_all[shown])
    labels = [names[j] for j in shown]
    errors = None if err_all is None else list(err_all[shown])
    if len(rest):
        heights.append(float(heights_all[rest].sum()))
        labels.append(f"{len(rest)} other features")
        if errors is not None:
            errors.append(float(np.sqrt(np.sum(err_all[rest] ** 2))))
    fig, ax = figure(ax, (6.4, 0.35 * len(heights) + 1.5))
    y = np.arange(len(heights))
    colours = [POSITIVE if h >= 0 else NEGATIVE for h in heights] if signed else POSITIVE
    ax.barh(y, heights, xerr=errors, color=colours, ecolor="0.3", capsize=2)
    ax.set_yticks(y, labels)
    ax.invert_yaxis()
    label = method_label(expl)
    if is_global(expl):
        ax.axvline(0.0, color="0.5", linewidth=0.8)
        ax.set_xlabel("importance for the data set")
        head = f"{label}: global importance"
    elif signed:
        ax.axvline(0.0, color="0.5", linewidth=0.8)
        ax.set_xlabel("attribution")
        head = f"{label}: attributions of one row"
    else:
        ax.set_xlabel("mean |attribution|")
        head = f"{label}: mean |attribution| over {n} rows"
    ax.set_title(title(head, sel.note))
    return fig


def _standardised(column: np.ndarray | None) -> np.ndarray | None:
    """A numeric column as z-scores clipped to [-2, 2] (NaN as 0), or ``None``."""
    column = None if column is None else numeric(column)
    if column is None:
        return None
    with np.errstate(all="ignore"):
        sd = np.nanstd(column)
        z = (column - np.nanmean(column)) / (sd if sd > 0 else 1.0)
    return np.clip(np.nan_to_num(z), -2.0, 2.0)


def beeswarm(
    expl: Any, max_display: int = 20, ax: Axes | None = None, output: int | str | None = None
) -> Figure:
    """Attributions of many rows: per feature a horizontal strip of points (jittered).

    Features are sorted by mean absolute attribution, largest on top, at most ``max_display``.
    With tabular numeric data, each point is coloured by the feature's standardised value and a
    colorbar is drawn; otherwise points have one colour. NaN padding is dropped.
    """
    one_target(expl, "beeswarm")
    sel = select(expl, output)
    n, d = sel.values.shape
    names = feature_names(expl, d)
    data = tabular_data(expl, d)
    order, _ = importance_order(sel.values)
    shown = order[:max_display]
    fig, ax = figure(ax, (6.4, 0.4 * len(shown) + 1.5))
    rng = np.random.default_rng(0)
    mappable = None
    for i, j in enumerate(shown):
        v = sel.values[:, j]
        keep = ~np.isnan(v)
        y = i + rng.uniform(-0.3, 0.3, size=n)
        colours = _standardised(None if data is None else data[:, j])
        if colours is None:
            ax.scatter(v[keep], y[keep], s=12, color="0.45", alpha=0.8, linewidths=0)
        else:
            mappable = ax.scatter(v[keep], y[keep], s=12, c=colours[keep], cmap="coolwarm",
                                  vmin=-2.0, vmax=2.0, alpha=0.8, linewidths=0)
    ax.axvline(0.0, color="0.5", linewidth=0.8)
    ax.set_yticks(np.arange(len(shown)), [names[j] for j in shown])
    ax.set_ylim(len(shown) - 0.5, -0.5)
    ax.set_xlabel("attribution")
    ax.set_title(title(f"{method_label(expl)}: attributions of {n} rows", sel.note))
    if mappable is not None:
        fig.colorbar(mappable, ax=ax, pad=0.02, label="feature value (standardised)")
    return fig


def _row_order(instance_order: Any, values: np.ndarray, fx: np.ndarray) -> np.ndarray:
    """Indices of the rows in drawing order (see :func:`heatmap`)."""
    n = len(values)
    if isinstance(instance_order, str):
        if instance_order == "index":
            return np.arange(n)
        if instance_order == "output":
            return np.argsort(-fx, kind="stable")
        if instance_order == "similarity":
            table = np.nan_to_num(values)
            if n < 3:
                return np.arange(n)
            if n > _MAX_CLUSTERED_ROWS:  # clustering needs n² memory: one principal axis
                centred = table - table.mean(axis=0)
                axis = np.linalg.svd(centred, full_matrices=False)[2][0]
                return np.argsort(centred @ axis, kind="stable")
            from scipy.cluster.hierarchy import leaves_list, linkage

            return leaves_list(linkage(table, method="complete"))
        raise InputError(
            f"instance_order={instance_order!r} is unknown: use 'similarity' (hierarchical "
            "clustering of the attributions), 'output' (f(x), largest first), 'index', or an "
            "array of row indices."
        )
    order = np.asarray(instance_order)
    if order.ndim != 1 or not np.issubdtype(order.dtype, np.integer) \
            or sorted(order.tolist()) != list(range(n)):
        raise InputError(
            f"instance_order must be a permutation of the {n} row indices; got "
            f"{order.tolist()[:10]}{' ...' if order.size > 10 else ''}."
        )
    return order


def heatmap(
    expl: Any,
    max_display: int = 10,
    instance_order: str | Sequence[int] = "similarity",
    ax: Axes | None = None,
    output: int | str | None = None,
) -> Figure:
    """Attributions of every row (x axis) for each feature (y axis), as colours centred at
    zero (red raises the output, blue lowers it), like ``shap.plots.heatmap``.

    Features are sorted by mean absolute attribution, largest on top; with more than
    ``max_display`` features, the rest are summed into one "N other features" row. Rows are
    drawn in ``instance_order``: ``"similarity"`` (the leaves of a complete-linkage clustering
    of the attributions, so rows explained alike sit together; above 2,000 rows, the order
    along their first principal axis), ``"output"`` (``f(x) = base +
    sum``, largest first), ``"index"``, or an explicit permutation of row indices. Without
    ``ax``, a panel above shows ``f(x)`` of each row in the same order. The colour limits are
    ``±max|shown value|``.
    """
    sel = select(expl, output)
    n, d = sel.values.shape
    if n == 0:
        raise InputError("heatmap needs at least one explained row; this explanation has none.")
    names = feature_names(expl, d)
    fx = sel.base + np.nansum(sel.values, axis=1)
    rows = _row_order(instance_order, sel.values, fx)
    order, _ = importance_order(sel.values)
    shown, rest = split_shown(order, max_display)
    table = np.nan_to_num(sel.values[rows])
    grid = [table[:, j] for j in shown] + ([table[:, rest].sum(axis=1)] if len(rest) else [])
    labels = [names[j] for j in shown] + ([f"{len(rest)} other features"] if len(rest) else [])
    grid = np.vstack(grid)
    height = 0.35 * len(labels) + 2.2
    head = title(f"{method_label(expl)}: attributions of {n} rows", sel.note)
    ax_fx = cax = None
    if ax is None:  # f(x) above the heat map, columns aligned; the colour bar beside it
        fig, grid_axes = new_figure(
            (7.0, height), nrows=2, ncols=2,
            gridspec_kw={"height_ratios": [1, 3], "width_ratios": [40, 1]},
        )
        (ax_fx, corner), (ax, cax) = grid_axes
        corner.axis("off")
    else:
        fig = ax.figure
    shown_image = ax.imshow(grid, aspect="auto", cmap=DIVERGING, norm=centred_norm(grid),
                            interpolation="nearest")
    ax.set_yticks(np.arange(len(labels)), labels)
    how = instance_order if isinstance(instance_order, str) else "the given order"
    ax.set_xlabel(f"rows (ordered by {how})")
    if ax_fx is None:
        ax.set_title(head)
        fig.colorbar(shown_image, ax=ax, pad=0.02, label="attribution")
    else:
        ax_fx.plot(np.arange(n), fx[rows], color="0.2", linewidth=1.0)
        ax_fx.axhline(float(np.mean(sel.base)), color="0.5", linestyle="--", linewidth=0.8)
        ax_fx.set_xlim(ax.get_xlim())
        ax_fx.set_xticks([])
        ax_fx.set_ylabel("f(x)")
        ax_fx.set_title(head)
        fig.colorbar(shown_image, cax=cax, label="attribution")
    return fig
