"""Superpixel segments and patch images for ACE (Ghorbani et al. 2019).

ACE segments each class image with SLIC at several resolutions, keeps the segments that are
large enough and do not repeat a coarser one, and turns each segment into a patch: the
segment's pixels with the rest filled by a constant, either cropped to its bounding box and
resized to the input size or left in place. Images here are in ``[0, 1]`` space,
channels first ``(C, H, W)``.
"""

from __future__ import annotations

import numpy as np

from xai.errors import InputError

__all__ = ["bbox", "patch", "per_resolution", "resize", "slic_segments", "thumbnail"]


def per_resolution(value, n: int, name: str) -> tuple:
    """``value`` as one entry per SLIC resolution (a single value is repeated)."""
    vals = tuple(np.atleast_1d(value).tolist())
    if len(vals) == 1:
        return vals * n
    if len(vals) != n:
        raise InputError(f"{name} has {len(vals)} values for {n} resolutions")
    return vals


def slic_segments(unit_img: np.ndarray, resolutions: tuple[int, ...], *,
                  compactness: float | tuple[float, ...], sigma: float | tuple[float, ...],
                  scale_segments: bool, min_area_fraction: float, min_segment_pixels: int,
                  max_jaccard: float) -> list[np.ndarray]:
    """Kept segment masks ``(H, W)`` of one ``[0,1]`` image ``(C, H, W)``.

    SLIC runs coarse resolution first; a segment is kept when it covers more than
    ``min_area_fraction`` of the image and at least ``min_segment_pixels`` pixels, and its
    Jaccard overlap with every segment kept before is at most ``max_jaccard``.
    ``scale_segments`` scales each ``n_segments`` from the paper's 299×299 inputs to this size.
    """
    from skimage.segmentation import slic

    C, H, W = unit_img.shape
    img = np.moveaxis(unit_img, 0, -1).astype(np.float64)
    multi = C > 1
    if not multi:
        img = img[..., 0]
    res = tuple(resolutions)
    comp = per_resolution(compactness, len(res), "compactness")
    sig = per_resolution(sigma, len(res), "sigma")
    kept: list[np.ndarray] = []
    for n_seg, c, s in sorted(zip(res, comp, sig), key=lambda t: t[0]):  # coarse first
        if scale_segments:
            n_seg = max(4, round(n_seg * H * W / 299 ** 2))
        labels = slic(img, n_segments=int(n_seg), compactness=float(c), sigma=float(s),
                      start_label=0, channel_axis=-1 if multi else None)
        for lab in np.unique(labels):
            mask = labels == lab
            size = int(mask.sum())
            if size / (H * W) <= min_area_fraction or size < min_segment_pixels:
                continue
            if any(np.logical_and(mask, k).sum() / np.logical_or(mask, k).sum()
                   > max_jaccard for k in kept):
                continue
            kept.append(mask)
    return kept


def bbox(mask: np.ndarray) -> tuple[int, int, int, int]:
    """Inclusive bounding box ``(y0, y1, x0, x1)`` of a non-empty mask."""
    ys, xs = np.nonzero(mask)
    return int(ys.min()), int(ys.max()), int(xs.min()), int(xs.max())


def resize(img: np.ndarray, size: tuple[int, int], order: int) -> np.ndarray:
    """Resize ``(C, h, w)`` to ``(C, *size)`` with scikit-image (bicubic for ``order=3``)."""
    from skimage.transform import resize as sk_resize

    out = sk_resize(np.moveaxis(img, 0, -1), tuple(size) + (img.shape[0],), order=order,
                    mode="edge", anti_aliasing=False, preserve_range=True)
    return np.moveaxis(out, -1, 0).astype(np.float32)


def _filled(unit_img: np.ndarray, mask: np.ndarray, fill: np.ndarray) -> np.ndarray:
    """The image with every pixel outside ``mask`` set to the per-channel ``fill``."""
    return unit_img * mask + fill[:, None, None] * (1 - mask)


def patch(unit_img: np.ndarray, mask: np.ndarray, fill: np.ndarray, mode: str) -> np.ndarray:
    """Patch of one segment in ``[0,1]`` space, ``(C, H, W)``: ``"in_place"`` keeps the segment
    where it is; ``"resize"`` crops its bounding box and resizes it (bicubic) to ``(H, W)``."""
    filled = _filled(unit_img, mask, fill)
    if mode == "in_place":
        return filled.astype(np.float32)
    y0, y1, x0, x1 = bbox(mask)
    return resize(filled[:, y0:y1 + 1, x0:x1 + 1], unit_img.shape[1:], order=3)


def thumbnail(unit_img: np.ndarray, mask: np.ndarray, fill: np.ndarray,
              size: int) -> np.ndarray:
    """Square ``uint8`` thumbnail ``(t, t, C)`` of a segment's bounding box, ``t`` = ``size``
    at most the image's longer side."""
    filled = _filled(unit_img, mask, fill)
    y0, y1, x0, x1 = bbox(mask)
    t = int(min(size, max(unit_img.shape[1:])))
    thumb = resize(filled[:, y0:y1 + 1, x0:x1 + 1], (t, t), order=1)
    return (np.clip(np.moveaxis(thumb, 0, -1), 0, 1) * 255).round().astype(np.uint8)
