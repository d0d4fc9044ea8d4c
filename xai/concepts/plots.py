"""Plots of concept results; every function returns a matplotlib Figure."""

from __future__ import annotations

import numpy as np

__all__ = ["plot_attribution_maps", "plot_gallery", "plot_importance"]

Z = 1.96


def _title(result) -> str:
    diag = result.options.get("diagnostics", {})
    err = diag.get("nmf_rel_error")
    err_txt = f", nmf_rel_error {err:.3f}" if isinstance(err, float) else ""
    return (f"{result.method.upper()} — layer {result.options.get('layer')}, target "
            f"{result.options.get('target')}{err_txt}")


def _to_display(img) -> np.ndarray:
    a = np.asarray(img, dtype=np.float64)
    if a.ndim == 3 and a.shape[0] in (1, 3, 4) and a.shape[-1] not in (1, 3, 4):
        a = a.transpose(1, 2, 0)
    lo, hi = np.nanmin(a), np.nanmax(a)
    a = (a - lo) / (hi - lo) if hi > lo else np.zeros_like(a)
    return a[..., 0] if a.ndim == 3 and a.shape[-1] == 1 else a


def plot_importance(result, *, ax=None):
    """Bars of the mean importance with ±1.96·SE error bars, in importance order."""
    import matplotlib.pyplot as plt

    order = result.order()
    imp = result.importance[order]
    se = np.nan_to_num(result.importance_stderr[order], nan=0.0)
    if ax is None:
        fig, ax = plt.subplots(figsize=(6, 0.4 * len(order) + 1.2))
    else:
        fig = ax.figure
    names = [result.names[i] for i in order]
    ax.barh(np.arange(len(order)), imp, xerr=Z * se, color="tab:blue", capsize=3)
    ax.set_yticks(np.arange(len(order)), names)
    ax.invert_yaxis()
    ax.set_xlabel("importance (±1.96 SE)")
    ax.set_title(_title(result), fontsize=9)
    fig.tight_layout()
    return fig


def plot_gallery(result, images, top_k: int = 10):
    """One row per concept in importance order: an importance bar (shared axis, ±1.96 SE),
    then the concept's top crops (prototypes)."""
    import matplotlib.pyplot as plt

    images = np.asarray(images)
    order = result.order()
    protos = result.prototypes
    boxes = result.crop_boxes
    top_k = min(top_k, protos.shape[1]) if protos is not None else 0
    r = len(order)
    fig, axes = plt.subplots(r, top_k + 1, figsize=(1.3 * (top_k + 1) + 1.5, 1.3 * r + 0.6),
                             squeeze=False)
    vmax = float(np.nanmax(result.importance + Z * np.nan_to_num(result.importance_stderr)))
    vmax = vmax if np.isfinite(vmax) and vmax > 0 else 1.0
    for row, c in enumerate(order):
        ax = axes[row, 0]
        se = np.nan_to_num(result.importance_stderr[c])
        ax.barh([0], [result.importance[c]], xerr=[Z * se], color="tab:blue", capsize=3)
        ax.set_xlim(0, vmax * 1.05)
        ax.set_yticks([])
        ax.set_ylabel(result.names[c], fontsize=8)
        for j in range(top_k):
            a = axes[row, j + 1]
            a.axis("off")
            idx = int(protos[c, j])
            if idx < 0:
                continue
            i, y0, x0, y1, x1 = (int(v) for v in boxes[idx])
            crop = images[i][..., y0:y1, x0:x1] if images.shape[1] in (1, 3, 4) else \
                images[i][y0:y1, x0:x1]
            a.imshow(_to_display(crop))
    fig.suptitle(_title(result), fontsize=9)
    return fig


def plot_attribution_maps(result, image, concepts=None, *, alpha: float = 0.65):
    """Overlay of the projection maps of ``concepts`` (default: the 3 most important) on
    ``image``; values below each map's 90th percentile are hidden."""
    import matplotlib.pyplot as plt
    from matplotlib.colors import to_rgb
    from matplotlib.patches import Patch

    if concepts is None:
        concepts = result.order()[:3]
    concepts = [int(c) for c in np.atleast_1d(concepts)]
    maps = result.attribution_maps(np.asarray(image)[None], concepts=concepts)[0]
    fig, ax = plt.subplots(figsize=(4, 4))
    ax.imshow(_to_display(image))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    handles = []
    for j, c in enumerate(concepts):
        m = maps[j]
        thr = np.quantile(m, 0.9)
        top = m.max()
        shown = np.where(m >= thr, (m - thr) / (top - thr) if top > thr else 0.0, 0.0)
        rgb = np.asarray(to_rgb(colours[j % len(colours)]))
        overlay = np.zeros((*m.shape, 4))
        overlay[..., :3] = rgb
        overlay[..., 3] = alpha * shown
        ax.imshow(overlay)
        handles.append(Patch(color=rgb, label=result.names[c]))
    ax.legend(handles=handles, fontsize=7, loc="lower right")
    ax.axis("off")
    ax.set_title(_title(result), fontsize=8)
    return fig
