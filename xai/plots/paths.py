"""Plots of the path from the base value to the model's output, ``f(x) = base + sum of the
attributions`` (exact for efficient summaries such as Shapley values): waterfall and decision."""

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
    check_row,
    feature_names,
    figure,
    format_value,
    importance_order,
    method_label,
    select,
    split_shown,
    tabular_data,
    title,
)

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["decision", "waterfall"]


def waterfall(
    expl: Any,
    row: int = 0,
    max_display: int = 10,
    ax: Axes | None = None,
    output: int | str | None = None,
) -> Figure:
    """How one row's attributions lead from the base value to ``base + sum = f(x)``.

    Features are sorted by absolute attribution, largest on top; with more than
    ``max_display`` features the rest are summed into one "N other features" step. For tabular
    data the labels show the feature values (``name = value``). NaN padding is dropped.
    """
    sel = select(expl, output)
    row = check_row(len(sel.values), row)
    d = sel.values.shape[1]
    names = feature_names(expl, d)
    data = tabular_data(expl, d)
    v = sel.values[row]
    present = np.flatnonzero(~np.isnan(v))
    order = present[np.argsort(-np.abs(v[present]), kind="stable")]
    shown, rest = split_shown(order, max_display)
    labels = [names[j] if data is None else f"{names[j]} = {format_value(data[row, j])}"
              for j in shown]
    steps = [float(v[j]) for j in shown]
    if len(rest):
        labels.append(f"{len(rest)} other features")
        steps.append(float(v[rest].sum()))
    base = float(sel.base[row])
    fx = base + float(np.nansum(v))
    # Draw from the bottom (smallest step, next to the base value) up to the largest on top.
    # ("N other features", when present, ends up first: right above the base value.)
    labels, steps = labels[::-1], steps[::-1]
    fig, ax = figure(ax, (6.4, 0.4 * len(steps) + 1.8))
    start = base
    span = max(abs(s) for s in steps) if steps else 1.0
    for i, step in enumerate(steps):
        ax.barh(i, step, left=start, color=POSITIVE if step >= 0 else NEGATIVE, height=0.6)
        ax.text(start + step + (0.01 * span if step >= 0 else -0.01 * span), i, f"{step:+.3g}",
                va="center", ha="left" if step >= 0 else "right", fontsize=8)
        if i:
            ax.plot([start, start], [i - 1.3, i - 0.3], color="0.5", linewidth=0.8)
        start += step
    ax.axvline(base, color="0.4", linestyle="--", linewidth=0.8)
    ax.axvline(fx, color="0.1", linestyle="--", linewidth=0.8)
    ax.set_yticks(np.arange(len(steps)), labels)
    ax.set_ylim(-0.8, len(steps) - 0.2)
    ax.set_xlabel(f"base value = {base:.4g}  \u2192  f(x) = base + sum = {fx:.4g}")
    ax.set_title(title(f"{method_label(expl)}: row {row}", sel.note))
    ends = base + np.concatenate([[0.0], np.cumsum(steps)])
    lo, hi = float(ends.min()), float(ends.max())
    pad = 0.15 * (hi - lo) if hi > lo else max(abs(lo), 1.0) * 0.1
    ax.set_xlim(lo - pad, hi + pad)  # bars are "sticky", so margins() would not pad
    return fig


def decision(
    expl: Any,
    rows: int | Sequence[int] | None = None,
    max_display: int = 20,
    ax: Axes | None = None,
    output: int | str | None = None,
) -> Figure:
    """Decision plot (as ``shap.decision_plot``): one line per row from its base value at the
    bottom, adding one feature's attribution per level, to ``f(x) = base + sum`` at the top.

    Features are sorted by mean absolute attribution over the plotted ``rows`` (all rows when
    omitted), largest on top; with more than ``max_display`` features the rest are summed into
    the first step, "N other features", at the bottom. Line ``r`` passes through ``(base_r, 0)``
    and ``(base_r + cumsum(steps_r)[i], i + 1)``. Lines are coloured by ``f(x) - base``, the
    sum of the row's attributions, with a diverging colour map centred at zero; for one row the
    labels show the feature values. NaN padding counts as zero.
    """
    sel = select(expl, output)
    n, d = sel.values.shape
    picked = np.arange(n) if rows is None else np.array(
        [check_row(n, r) for r in np.atleast_1d(np.asarray(rows, dtype=object))], dtype=int)
    if not len(picked):
        raise InputError(f"decision needs at least one row to draw; got rows={rows!r}.")
    values = np.nan_to_num(sel.values[picked])
    base = sel.base[picked]
    names = feature_names(expl, d)
    order, _ = importance_order(sel.values[picked])
    shown, rest = split_shown(order, max_display)
    # bottom to top: the rest first, then the shown features from the least important up
    bottom_up = shown[::-1]
    steps = values[:, bottom_up]
    labels = [names[j] for j in bottom_up]
    data = tabular_data(expl, d)
    if data is not None and len(picked) == 1:
        labels = [f"{names[j]} = {format_value(data[picked[0], j])}" for j in bottom_up]
    if len(rest):
        steps = np.hstack([values[:, rest].sum(axis=1, keepdims=True), steps])
        labels = [f"{len(rest)} other features"] + labels
    paths = base[:, None] + np.hstack([np.zeros((len(picked), 1)), np.cumsum(steps, axis=1)])
    levels = np.arange(paths.shape[1])
    total = paths[:, -1] - base
    norm = centred_norm(total)
    fig, ax = figure(ax, (6.4, 0.35 * len(labels) + 2.0))
    from matplotlib import colormaps
    from matplotlib.cm import ScalarMappable

    cmap = colormaps[DIVERGING]
    for path, t in zip(paths, total):
        ax.plot(path, levels, color=cmap(norm(t)), linewidth=1.2, marker="o", markersize=2)
    ax.axvline(float(np.mean(base)), color="0.5", linestyle="--", linewidth=0.8)
    ax.set_yticks(levels[1:] - 0.5, labels)
    ax.set_ylim(0, levels[-1])
    ax.grid(axis="y", color="0.9", linewidth=0.8)
    ax.set_xlabel(f"model output: from base value {float(np.mean(base)):.4g} (dashed) to f(x)")
    ax.set_title(title(f"{method_label(expl)}: decision plot of {len(picked)} rows", sel.note))
    fig.colorbar(ScalarMappable(norm=norm, cmap=cmap), ax=ax, pad=0.02,
                 label="f(x) - base (sum of attributions)")
    return fig
