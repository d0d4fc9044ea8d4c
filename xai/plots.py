"""Plots of an :class:`~xai.explanation.Explanation`, drawn with matplotlib.

Every function takes the explanation first and returns a :class:`matplotlib.figure.Figure`; it
never shows it. Without ``ax`` a new figure is made with :class:`matplotlib.figure.Figure`
(not through pyplot, so no global state is touched and nothing is displayed twice in notebooks):
save it with ``fig.savefig(...)`` or let a notebook render it as the cell's result. With ``ax``
the plot is drawn there and the axes' figure is returned.

For ``(n, d, k)`` values, ``output`` chooses the output; when it is not given and ``k > 1`` the
first output is plotted and the title says so.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from matplotlib.figure import Figure

from xai.errors import FeatureMapError, InputError, TargetError

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes

    from xai.explanation import Explanation

__all__ = ["ExplanationPlots", "bar", "beeswarm", "image", "waterfall"]

_POSITIVE = "#d62728"
_NEGATIVE = "#1f77b4"


# ----------------------------------------------------------------- helpers


def _select(expl: Any, output: int | None) -> tuple[np.ndarray, np.ndarray | None, np.ndarray, str]:
    """Return ``(values (n, d), stderr (n, d) or None, base (n,), title note)`` for one output."""
    values = np.asarray(expl.values, dtype=float)
    stderr = None if expl.stderr is None else np.asarray(expl.stderr, dtype=float)
    base = np.asarray(expl.base_values, dtype=float)
    if values.ndim == 2:
        if output not in (None, 0):
            raise TargetError(
                f"output={output} was requested but this explanation has a single output; "
                "omit output."
            )
        return values, stderr, base.reshape(-1), ""
    k = values.shape[2]
    note_default = output is None and k > 1
    out = 0 if output is None else output
    if not isinstance(out, numbers.Integral) or not -k <= int(out) < k:
        raise TargetError(f"output={output!r} is out of range: this explanation has {k} outputs.")
    out = int(out) % k
    names = expl.output_names if expl.output_names and len(expl.output_names) == k else None
    label = names[out] if names else f"output {out}"
    note = f"{label} of {k} (default; pass output=)" if note_default else label
    base = base.reshape(values.shape[0], -1)
    return (
        values[:, :, out],
        None if stderr is None else stderr[:, :, out],
        base[:, out if base.shape[1] == k else 0],
        note,
    )


def _one_target(expl: Any, plot: str) -> None:
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


def _feature_names(expl: Any, d: int) -> list[str]:
    """The explanation's feature names, or ``feature_0 ..`` when missing."""
    names = list(getattr(expl, "feature_names", None) or [])
    return names if len(names) == d else [f"feature_{j}" for j in range(d)]


def _tabular_data(expl: Any, d: int) -> np.ndarray | None:
    """The explained inputs as ``(n, d)`` when they are tabular, one column per feature."""
    data = getattr(expl, "data", None)
    if data is None or expl.feature_map is not None:
        return None
    data = np.asarray(data)
    if data.ndim != 2 or data.shape[1] != d:
        return None
    categories = getattr(expl, "options", {}).get("categories")
    if isinstance(categories, dict) and categories:  # category codes shown as their values
        from .tabular import display_data

        data = display_data(data, _feature_names(expl, d), categories)
    return data


def _figure(ax: Axes | None, figsize: tuple[float, float]) -> tuple[Figure, Axes]:
    """A new figure with one axes, or the figure of ``ax``."""
    if ax is not None:
        return ax.figure, ax
    fig = Figure(figsize=figsize, layout="constrained")
    return fig, fig.add_subplot()


def _title(base: str, note: str) -> str:
    """``base`` with the output note appended when there is one."""
    return f"{base} ({note})" if note else base


def _format_value(value: Any) -> str:
    """A short label for a data value."""
    if isinstance(value, (numbers.Real, np.number)) and not isinstance(value, bool):
        return f"{float(value):.4g}"
    return str(value)


def _numeric(column: np.ndarray) -> np.ndarray | None:
    """A float copy of ``column``, or ``None`` when it is not numeric."""
    try:
        return np.asarray(column, dtype=float)
    except (TypeError, ValueError):
        return None


def _check_row(expl: Any, row: int) -> int:
    """``row`` as a non-negative index, or :class:`InputError` when out of range."""
    n = len(expl.values)
    if not isinstance(row, numbers.Integral) or not -n <= int(row) < n:
        raise InputError(f"row={row!r} is out of range for an explanation of {n} rows.")
    return int(row) % n


# ------------------------------------------------------------------- plots


def bar(
    expl: Any, max_display: int = 20, ax: Axes | None = None, output: int | None = None
) -> Figure:
    """Mean absolute attribution per feature over all rows, largest first, as horizontal bars.

    Error bars show the mean standard error over rows when the explanation has standard errors.
    With more than ``max_display`` features, the rest are summed into one "N other features" bar.
    NaN padding is ignored.
    """
    _one_target(expl, "bar")
    values, stderr, _, note = _select(expl, output)
    n, d = values.shape
    names = _feature_names(expl, d)
    with np.errstate(all="ignore"):
        importance = np.nan_to_num(np.nanmean(np.abs(values), axis=0)) if n else np.zeros(d)
        err = None
        if stderr is not None and n:
            err = np.nan_to_num(np.nanmean(stderr, axis=0))
    order = np.argsort(-importance, kind="stable")
    shown = order if d <= max_display else order[: max(max_display - 1, 1)]
    rest = order[len(shown) :]
    heights = list(importance[shown])
    labels = [names[j] for j in shown]
    errors = None if err is None else list(err[shown])
    if len(rest):
        heights.append(float(importance[rest].sum()))
        labels.append(f"{len(rest)} other features")
        if errors is not None:
            errors.append(float(np.sqrt(np.sum(err[rest] ** 2))))
    fig, ax = _figure(ax, (6.4, 0.35 * len(heights) + 1.5))
    y = np.arange(len(heights))
    ax.barh(y, heights, xerr=errors, color=_POSITIVE, ecolor="0.3", capsize=2)
    ax.set_yticks(y, labels)
    ax.invert_yaxis()
    ax.set_xlabel("mean |attribution|")
    ax.set_title(_title(f"{expl.method}: mean |attribution| over {n} rows", note))
    return fig


def waterfall(
    expl: Any,
    row: int = 0,
    max_display: int = 10,
    ax: Axes | None = None,
    output: int | None = None,
) -> Figure:
    """How one row's attributions lead from the base value to ``base + sum = f(x)``.

    Features are sorted by absolute attribution, largest on top; with more than
    ``max_display`` features the rest are summed into one "N other features" step. For tabular
    data the labels show the feature values (``name = value``). NaN padding is dropped.
    """
    values, _, base_values, note = _select(expl, output)
    row = _check_row(expl, row)
    d = values.shape[1]
    names = _feature_names(expl, d)
    data = _tabular_data(expl, d)
    v = values[row]
    present = np.flatnonzero(~np.isnan(v))
    order = present[np.argsort(-np.abs(v[present]), kind="stable")]
    shown = order if len(order) <= max_display else order[: max(max_display - 1, 1)]
    rest = order[len(shown) :]
    labels = []
    for j in shown:
        label = names[j]
        if data is not None:
            label = f"{label} = {_format_value(data[row, j])}"
        labels.append(label)
    steps = [float(v[j]) for j in shown]
    if len(rest):
        labels.append(f"{len(rest)} other features")
        steps.append(float(v[rest].sum()))
    base = float(base_values[row])
    fx = base + float(np.nansum(v))
    # Draw from the bottom (smallest step, next to the base value) up to the largest on top.
    # ("N other features", when present, ends up first: right above the base value.)
    labels, steps = labels[::-1], steps[::-1]
    fig, ax = _figure(ax, (6.4, 0.4 * len(steps) + 1.8))
    start = base
    span = max(abs(s) for s in steps) if steps else 1.0
    for i, step in enumerate(steps):
        colour = _POSITIVE if step >= 0 else _NEGATIVE
        ax.barh(i, step, left=start, color=colour, height=0.6)
        ax.text(
            start + step + (0.01 * span if step >= 0 else -0.01 * span),
            i,
            f"{step:+.3g}",
            va="center",
            ha="left" if step >= 0 else "right",
            fontsize=8,
        )
        if i:
            ax.plot([start, start], [i - 1.3, i - 0.3], color="0.5", linewidth=0.8)
        start += step
    ax.axvline(base, color="0.4", linestyle="--", linewidth=0.8)
    ax.axvline(fx, color="0.1", linestyle="--", linewidth=0.8)
    ax.set_yticks(np.arange(len(steps)), labels)
    ax.set_ylim(-0.8, len(steps) - 0.2)
    ax.set_xlabel(f"base value = {base:.4g}  \u2192  f(x) = base + sum = {fx:.4g}")
    ax.set_title(_title(f"{expl.method}: row {row}", note))
    ends = base + np.concatenate([[0.0], np.cumsum(steps)])
    lo, hi = float(ends.min()), float(ends.max())
    pad = 0.15 * (hi - lo) if hi > lo else max(abs(lo), 1.0) * 0.1
    ax.set_xlim(lo - pad, hi + pad)  # bars are "sticky", so margins() would not pad
    return fig


def beeswarm(
    expl: Any, max_display: int = 20, ax: Axes | None = None, output: int | None = None
) -> Figure:
    """Attributions of many rows: per feature a horizontal strip of points (jittered).

    Features are sorted by mean absolute attribution, largest on top, at most ``max_display``.
    With tabular numeric data, each point is coloured by the feature's standardised value and a
    colorbar is drawn; otherwise points have one colour. NaN padding is dropped.
    """
    _one_target(expl, "beeswarm")
    values, _, _, note = _select(expl, output)
    n, d = values.shape
    names = _feature_names(expl, d)
    data = _tabular_data(expl, d)
    with np.errstate(all="ignore"):
        importance = np.nan_to_num(np.nanmean(np.abs(values), axis=0)) if n else np.zeros(d)
    shown = np.argsort(-importance, kind="stable")[:max_display]
    fig, ax = _figure(ax, (6.4, 0.4 * len(shown) + 1.5))
    rng = np.random.default_rng(0)
    mappable = None
    for i, j in enumerate(shown):
        v = values[:, j]
        keep = ~np.isnan(v)
        y = i + rng.uniform(-0.3, 0.3, size=n)
        colours = None
        if data is not None:
            column = _numeric(data[:, j])
            if column is not None:
                with np.errstate(all="ignore"):
                    sd = np.nanstd(column)
                    z = (column - np.nanmean(column)) / (sd if sd > 0 else 1.0)
                colours = np.clip(np.nan_to_num(z), -2.0, 2.0)
        if colours is None:
            ax.scatter(v[keep], y[keep], s=12, color="0.45", alpha=0.8, linewidths=0)
        else:
            mappable = ax.scatter(
                v[keep],
                y[keep],
                s=12,
                c=colours[keep],
                cmap="coolwarm",
                vmin=-2.0,
                vmax=2.0,
                alpha=0.8,
                linewidths=0,
            )
    ax.axvline(0.0, color="0.5", linewidth=0.8)
    ax.set_yticks(np.arange(len(shown)), [names[j] for j in shown])
    ax.set_ylim(len(shown) - 0.5, -0.5)
    ax.set_xlabel("attribution")
    ax.set_title(_title(f"{expl.method}: attributions of {n} rows", note))
    if mappable is not None:
        bar_ = fig.colorbar(mappable, ax=ax, pad=0.02)
        bar_.set_label("feature value (standardised)")
    return fig


def _image_hwc(expl: Any, row: int, pos_shape: tuple[int, ...]) -> np.ndarray:
    """Row ``row`` of the data as ``(H, W)`` or ``(H, W, 3|4)`` floats rescaled to [0, 1]."""
    x = np.asarray(expl.data[row], dtype=float)
    if x.ndim == 3:
        axis = expl.channel_axis
        if axis is None:  # infer from the feature map's position shape
            if tuple(x.shape[:2]) == tuple(pos_shape[:2]):
                axis = -1
            elif tuple(x.shape[1:]) == tuple(pos_shape[-2:]):
                axis = 0
            else:
                raise InputError(
                    f"cannot tell the channel axis of image data of shape {x.shape}; "
                    "set channel_axis on the explanation (0 for (C, H, W), -1 for (H, W, C))."
                )
        x = np.moveaxis(x, axis, -1)
        if x.shape[-1] == 1:
            x = x[..., 0]
        elif x.shape[-1] not in (3, 4):
            x = x.mean(axis=-1)
    elif x.ndim != 2:
        raise InputError(
            f"image plot needs image data (n, H, W), (n, C, H, W) or (n, H, W, C); "
            f"got rows of shape {x.shape}."
        )
    lo, hi = np.nanmin(x), np.nanmax(x)
    x = (x - lo) / (hi - lo) if hi > lo else np.zeros_like(x)
    return np.nan_to_num(x)


def _boundaries(labels: np.ndarray) -> np.ndarray:
    """Boolean mask of segment boundaries (scikit-image when installed, numpy otherwise)."""
    try:
        from skimage.segmentation import find_boundaries
    except ImportError:  # pragma: no cover - skimage is optional
        edge = np.zeros(labels.shape, dtype=bool)
        edge[:-1, :] |= labels[:-1, :] != labels[1:, :]
        edge[:, :-1] |= labels[:, :-1] != labels[:, 1:]
        return edge
    return find_boundaries(labels, mode="inner")


def image(
    expl: Any,
    row: int = 0,
    ax: Axes | Sequence[Axes] | None = None,
    output: int | None = None,
    alpha: float = 0.5,
    cmap: str = "bwr",
) -> Figure:
    """The image of one row next to it with its attributions painted over it.

    Each position gets the attribution of its feature, ``values[row, feature_map[m, pos]]``
    (positions with ``-1`` get 0; ``m`` is ``row`` for per-explicand maps, else 0), drawn with
    ``cmap`` at opacity ``alpha`` and symmetric colour limits; segment boundaries are drawn as
    thin lines. ``ax`` may be a pair of axes (original, overlay) or a single axes (overlay
    only). Raises :class:`InputError` when the explanation has no image data or no feature map.
    """
    if expl.feature_map is None:
        raise InputError(
            "image plot needs a feature map (segments or patches over image positions); this "
            "explanation has none. Use bar, waterfall or beeswarm for tabular explanations."
        )
    data = getattr(expl, "data", None)
    if data is None or np.asarray(data).ndim < 3:
        raise InputError(
            "image plot needs the explained images in `data` ((n, H, W), (n, C, H, W) or "
            "(n, H, W, C)); this explanation has "
            + ("no data." if data is None else f"data of shape {np.asarray(data).shape}.")
        )
    values, _, _, note = _select(expl, output)
    row = _check_row(expl, row)
    fmap = np.asarray(expl.feature_map)
    labels = fmap[row if fmap.shape[0] > 1 else 0]
    d = values.shape[1]
    if labels.size and labels.max() >= d:
        raise FeatureMapError(
            f"the feature map names feature {int(labels.max())} but the explanation has {d}."
        )
    v = np.nan_to_num(values[row])
    heat = np.where(labels >= 0, v[np.clip(labels, 0, None)], 0.0)
    picture = _image_hwc(expl, row, labels.shape)
    if labels.ndim == 3:  # per-channel features: average the heat over channels for display
        axis = expl.channel_axis if expl.channel_axis is not None else 0
        heat = np.moveaxis(heat, axis, -1).mean(axis=-1)
        labels = np.moveaxis(labels, axis, -1)[..., 0]
    if heat.shape != picture.shape[:2]:
        raise FeatureMapError(
            f"the feature map covers positions of shape {heat.shape} but the image is "
            f"{picture.shape[:2]}."
        )
    lim = float(np.max(np.abs(heat))) or 1.0
    if ax is None:
        fig = Figure(figsize=(8.0, 4.0), layout="constrained")
        ax_orig, ax_over = fig.subplots(1, 2)
    elif isinstance(ax, (Sequence, np.ndarray)):
        ax_orig, ax_over = ax
        fig = ax_over.figure
    else:
        ax_orig, ax_over = None, ax
        fig = ax.figure
    gray = "gray" if picture.ndim == 2 else None
    if ax_orig is not None:
        ax_orig.imshow(picture, cmap=gray, vmin=0.0, vmax=1.0)
        ax_orig.set_title("original")
        ax_orig.axis("off")
    ax_over.imshow(picture, cmap=gray, vmin=0.0, vmax=1.0)
    shown = ax_over.imshow(heat, cmap=cmap, alpha=alpha, vmin=-lim, vmax=lim)
    H, W = labels.shape
    if labels.size / max(len(np.unique(labels)), 1) >= 4:  # no edges for pixel-sized segments
        # thin edges: find boundaries on a finer grid so that they cover a fraction of a pixel
        scale = max(1, 256 // max(H, W))
        fine = labels.repeat(scale, 0).repeat(scale, 1)
        edges = np.zeros(fine.shape + (4,))
        edges[_boundaries(fine)] = (0.0, 0.0, 0.0, 0.7)
        ax_over.imshow(edges, interpolation="nearest", extent=(-0.5, W - 0.5, H - 0.5, -0.5))
    ax_over.set_title(_title(f"{expl.method}: row {row}", note))
    ax_over.axis("off")
    fig.colorbar(shown, ax=ax_over, fraction=0.046, pad=0.04, label="attribution")
    return fig


class ExplanationPlots:
    """Plot accessor of an :class:`Explanation`; each method returns a matplotlib Figure.

    The methods call the functions of this module with the explanation as first argument.
    """

    def __init__(self, explanation: Explanation) -> None:
        """Bind the accessor to ``explanation``."""
        self._expl = explanation

    def bar(
        self, max_display: int = 20, ax: Axes | None = None, output: int | None = None
    ) -> Figure:
        """Mean absolute attribution per feature; see :func:`xai.plots.bar`."""
        return bar(self._expl, max_display=max_display, ax=ax, output=output)

    def waterfall(
        self,
        row: int = 0,
        max_display: int = 10,
        ax: Axes | None = None,
        output: int | None = None,
    ) -> Figure:
        """From the base value to f(x) for one row; see :func:`xai.plots.waterfall`."""
        return waterfall(self._expl, row=row, max_display=max_display, ax=ax, output=output)

    def beeswarm(
        self, max_display: int = 20, ax: Axes | None = None, output: int | None = None
    ) -> Figure:
        """Attributions of many rows per feature; see :func:`xai.plots.beeswarm`."""
        return beeswarm(self._expl, max_display=max_display, ax=ax, output=output)

    def image(
        self,
        row: int = 0,
        ax: Axes | Any | None = None,
        output: int | None = None,
        alpha: float = 0.5,
        cmap: str = "bwr",
    ) -> Figure:
        """Image and attribution overlay for one row; see :func:`xai.plots.image`."""
        return image(self._expl, row=row, ax=ax, output=output, alpha=alpha, cmap=cmap)
