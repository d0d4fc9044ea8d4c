"""Plots of pairwise interactions (``expl.interactions``, from method ``shap-interactions``):
a ``d x d`` heatmap with the main effects on its diagonal, and a network of the features."""

from __future__ import annotations

import numbers
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from xai.errors import InputError, MissingInteractions

from ._common import (
    DIVERGING,
    NEGATIVE,
    POSITIVE,
    centred_norm,
    check_row,
    feature_names,
    figure,
    method_label,
    one_target,
    select,
    title,
)

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["interaction_heatmap", "interaction_network"]


@dataclass
class Interactions:
    """One output's main effects ``(d,)`` and symmetric pairs ``(d, d)`` (zero diagonal) of
    one row, or their mean absolute values over rows; ``names`` of the features, ``label`` of
    the quantity and ``note`` of the output for the title."""

    main: np.ndarray
    pairs: np.ndarray
    names: list[str]
    label: str
    note: str


def interactions_of(expl: Any, row: int | None, output: int | str | None,
                    plot: str) -> Interactions:
    """The interactions a plot draws: row ``row`` signed, or with ``row=None`` the one row of
    a one-row explanation, else the mean absolute values over rows. Raises
    :class:`MissingInteractions` for an explanation without interactions."""
    pairs = getattr(expl, "interactions", None)
    if pairs is None:
        raise MissingInteractions(
            f"the {plot} plot draws pairwise interactions, but this explanation "
            f"(method {method_label(expl)!r}) has none: explain with "
            "method='shap-interactions' (e.g. xai.explain(model, X, 'shap-interactions')).")
    sel = select(expl, output)
    pairs = np.asarray(pairs, dtype=float)
    if pairs.ndim == 4:  # (n, d, d, k): the output select() accepted
        k = pairs.shape[3]
        labels = list(expl.output_names or [])
        labels = labels if len(labels) == k else [f"output {i}" for i in range(k)]
        j = 0 if output is None else labels.index(output) if isinstance(output, str) \
            else int(output) % k
        pairs = pairs[..., j]
    n, d = sel.values.shape
    if row is not None:
        r = check_row(n, row)
        main, pair, label = sel.values[r], pairs[r], f"row {r}"
    elif n == 1:
        main, pair, label = sel.values[0], pairs[0], ""
    else:
        one_target(expl, plot)
        with np.errstate(all="ignore"):
            main = np.nan_to_num(np.nanmean(np.abs(sel.values), axis=0))
            pair = np.nan_to_num(np.nanmean(np.abs(pairs), axis=0))
        label = f"mean |value| over {n} rows"
    return Interactions(np.asarray(main, float), np.asarray(pair, float),
                        feature_names(expl, d), label, sel.note)


def _shown(inter: Interactions, max_display: int) -> np.ndarray:
    """The ``max_display`` features of largest ``|main| + sum |pairs|``, in the explanation's
    order."""
    if isinstance(max_display, bool) or not isinstance(max_display, numbers.Integral) \
            or max_display < 2:
        raise InputError(f"max_display must be an integer of at least 2; got {max_display!r}.")
    weight = np.abs(inter.main) + np.abs(inter.pairs).sum(1)
    keep = np.argsort(-weight, kind="stable")[:max_display]
    return np.sort(keep)


def _title(expl: Any, inter: Interactions, what: str) -> str:
    parts = [p for p in (method_label(expl), what, inter.label) if p]
    return title(": ".join(parts[:2]) + (f", {parts[2]}" if len(parts) > 2 else ""),
                 inter.note)


def interaction_heatmap(
    expl: Any, row: int | None = None, max_display: int = 20, annotate: bool | None = None,
    ax: Axes | None = None, output: int | str | None = None,
) -> Figure:
    """Pairwise interactions as a ``d x d`` heatmap, main effects on the diagonal.

    Cell ``(i, j)`` is the interaction of features ``i`` and ``j`` (symmetric), cell ``(i, i)``
    feature ``i``'s main effect (``expl.values``; outlined). The colour map is diverging,
    white at zero, limits ``±max|value|``. ``row`` picks one explained row; without it a
    one-row explanation is drawn signed and several rows as the mean absolute values. With more
    than ``max_display`` features, the ``max_display`` of largest ``|main| + sum |pairs|`` are
    kept, in the explanation's order. ``annotate`` writes each cell's value (default: up to 12
    features).
    """
    inter = interactions_of(expl, row, output, "interaction heatmap")
    keep = _shown(inter, max_display)
    matrix = inter.pairs[np.ix_(keep, keep)].copy()
    matrix[np.arange(len(keep)), np.arange(len(keep))] = inter.main[keep]
    names = [inter.names[j] for j in keep]
    m = len(keep)
    fig, ax = figure(ax, (1.6 + 0.45 * m + 1.2, 1.2 + 0.45 * m))
    norm = centred_norm(matrix)
    image = ax.imshow(matrix, cmap=DIVERGING, norm=norm, interpolation="nearest")
    from matplotlib.patches import Rectangle

    for i in range(m):  # the diagonal holds main effects, not interactions
        ax.add_patch(Rectangle((i - 0.5, i - 0.5), 1, 1, fill=False, lw=1.2, ec="0.25"))
    ax.set_xticks(range(m), names, rotation=90)
    ax.set_yticks(range(m), names)
    if annotate if annotate is not None else m <= 12:
        for i in range(m):
            for j in range(m):
                dark = abs(norm(matrix[i, j]) - 0.5) > 0.35
                ax.text(j, i, f"{matrix[i, j]:.2g}", ha="center", va="center", fontsize=7,
                        color="white" if dark else "black")
    fig.colorbar(image, ax=ax, shrink=0.8, label="interaction (diagonal: main effect)")
    ax.set_title(_title(expl, inter, "interactions"))
    return fig


def interaction_network(
    expl: Any, row: int | None = None, threshold: float | None = None, top_k: int | None = 20,
    max_display: int = 30, ax: Axes | None = None, output: int | str | None = None,
) -> Figure:
    """Features as nodes on a circle, pairwise interactions as edges.

    A node's area grows with its main effect's magnitude, red when positive and blue when
    negative; an edge's width grows with ``|interaction|``, red when the pair raises the output
    and blue when it lowers it. Edges drawn: those with ``|interaction| >= threshold`` (when
    given), of which the ``top_k`` largest (when given; ``None`` for all); zero interactions
    are never drawn. ``row``, ``max_display`` and ``output`` as in
    :func:`interaction_heatmap`.
    """
    if threshold is not None and not (isinstance(threshold, numbers.Real) and threshold >= 0):
        raise InputError(f"threshold must be a non-negative number; got {threshold!r}.")
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, numbers.Integral)
                              or top_k < 0):
        raise InputError(f"top_k must be a non-negative integer or None; got {top_k!r}.")
    inter = interactions_of(expl, row, output, "interaction network")
    keep = _shown(inter, max_display)
    m = len(keep)
    main = inter.main[keep]
    pairs = inter.pairs[np.ix_(keep, keep)]
    i, j = np.triu_indices(m, 1)
    strength = np.abs(pairs[i, j])
    chosen = strength > 0
    if threshold is not None:
        chosen &= strength >= threshold
    order = np.flatnonzero(chosen)[np.argsort(-strength[chosen], kind="stable")]
    if top_k is not None:
        order = order[:top_k]
    order = order[::-1]  # the strongest drawn last, on top

    angle = np.pi / 2 - 2 * np.pi * np.arange(m) / m
    xy = np.column_stack([np.cos(angle), np.sin(angle)])
    fig, ax = figure(ax, (6.4, 6.0))
    from matplotlib.collections import LineCollection

    biggest = float(strength.max()) if strength.size and strength.max() > 0 else 1.0
    edges = LineCollection(
        [xy[[i[q], j[q]]] for q in order],
        linewidths=[0.5 + 5.5 * strength[q] / biggest for q in order],
        colors=[POSITIVE if pairs[i[q], j[q]] > 0 else NEGATIVE for q in order],
        alpha=0.75, zorder=1, label="interactions")
    ax.add_collection(edges)
    top = float(np.abs(main).max()) if m and np.abs(main).max() > 0 else 1.0
    ax.scatter(xy[:, 0], xy[:, 1], s=60 + 1200 * np.abs(main) / top,
               c=[POSITIVE if v > 0 else NEGATIVE if v < 0 else "0.7" for v in main],
               edgecolors="0.2", linewidths=0.8, zorder=2, label="main effects")
    for q in range(m):
        ax.annotate(inter.names[keep[q]], xy[q], xytext=(1.22 * xy[q]), ha="center",
                    va="center", fontsize=8, zorder=3)
    ax.set_xlim(-1.45, 1.45)
    ax.set_ylim(-1.45, 1.45)
    ax.set_aspect("equal")
    ax.axis("off")
    shown = f"{len(order)} of {len(i)} pairs"
    ax.set_title(_title(expl, inter, "interaction network") + f"\n{shown}; red raises, "
                 "blue lowers the output", fontsize=10)
    return fig
