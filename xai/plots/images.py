"""Image overlays: the explained image next to its attributions painted over it."""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from xai.errors import FeatureMapError, InputError

from ._common import DIVERGING, centred_norm, check_row, method_label, new_figure, select, title

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["image"]

#: summaries whose scores are not measured from a zero reference: RISE's score is the mean
#: output when the feature is kept (Petsiuk, Das & Saenko 2018), so every score is near the
#: mean output and an overlay centred at zero is one colour
_NOT_ZERO_CENTRED = frozenset({"rise", "mean-when-included"})


def _reference(expl: Any, reference: float | str | None, heat: np.ndarray) -> tuple[float, str]:
    """The value drawn white and the title note for it (see :func:`image`)."""
    if reference is None:
        summary = str((getattr(expl, "summary", None) or {}).get("name", ""))
        reference = "mean" if summary in _NOT_ZERO_CENTRED else 0.0
    if isinstance(reference, str):
        if reference != "mean":
            raise InputError(
                f"reference={reference!r} is unknown: use a number (the value drawn white), "
                "'mean' (the row's mean score) or None (0, or the mean for RISE)."
            )
        return (float(np.mean(heat)) if heat.size else 0.0), "minus its mean"
    if not isinstance(reference, numbers.Real) or not np.isfinite(reference):
        raise InputError(f"reference must be a finite number, 'mean' or None; got {reference!r}.")
    return float(reference), ("" if reference == 0 else f"minus {float(reference):.4g}")


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
    output: int | str | None = None,
    alpha: float = 0.5,
    cmap: str = DIVERGING,
    reference: float | str | None = None,
) -> Figure:
    """The image of one row next to it with its attributions painted over it.

    Each position gets the attribution of its feature, ``values[row, feature_map[m, pos]]``
    (positions with ``-1`` get 0; ``m`` is ``row`` for per-explicand maps, else 0), drawn with
    ``cmap`` at opacity ``alpha``; segment boundaries are drawn as thin lines. Colours are
    centred: ``reference`` is drawn white and the limits are symmetric around it, ``±max|heat -
    reference|``. ``reference`` is 0 by default (shap's and captum's convention: red raises the
    output, blue lowers it), except for RISE, whose scores are mean outputs, all near the mean
    output: there the mean score over the image's positions is subtracted (``"mean"``) and the
    title says so. ``ax`` may be a pair of axes (original, overlay) or a single axes (overlay
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
    sel = select(expl, output)
    values, note = sel.values, sel.note
    row = check_row(len(values), row)
    fmap = np.asarray(expl.feature_map)
    labels = fmap[row if fmap.shape[0] > 1 else 0]
    d = values.shape[1]
    if labels.size and labels.max() >= d:
        raise FeatureMapError(
            f"the feature map names feature {int(labels.max())} but the explanation has {d}."
        )
    v = np.nan_to_num(values[row])
    covered = labels >= 0
    heat = v[np.clip(labels, 0, None)]
    centre, centre_note = _reference(expl, reference, heat[covered])
    heat = np.where(covered, heat - centre, 0.0)  # positions always kept are drawn white
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
    if ax is None:
        fig, (ax_orig, ax_over) = new_figure((8.0, 4.0), ncols=2)
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
    shown = ax_over.imshow(heat, cmap=cmap, alpha=alpha, norm=centred_norm(heat))
    H, W = labels.shape
    if labels.size / max(len(np.unique(labels)), 1) >= 4:  # no edges for pixel-sized segments
        # thin edges: find boundaries on a finer grid so that they cover a fraction of a pixel
        scale = max(1, 256 // max(H, W))
        fine = labels.repeat(scale, 0).repeat(scale, 1)
        edges = np.zeros(fine.shape + (4,))
        edges[_boundaries(fine)] = (0.0, 0.0, 0.0, 0.7)
        ax_over.imshow(edges, interpolation="nearest", extent=(-0.5, W - 0.5, H - 0.5, -0.5))
    head = f"{method_label(expl)}: row {row}" + (f" ({centre_note})" if centre_note else "")
    ax_over.set_title(title(head, note))
    ax_over.axis("off")
    label = "attribution" + (f" {centre_note}" if centre_note else "")
    fig.colorbar(shown, ax=ax_over, fraction=0.046, pad=0.04, label=label)
    return fig
