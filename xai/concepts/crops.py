"""Image crops for CRAFT (Fel et al. 2023): the concept bank is learnt from the activations of
crops of the class images, and each concept is shown by the crops that hold most of it.

A crop is a box ``(image, y0, x0, y1, x1)`` (end exclusive) of side ``patch_size``, on a grid
with 80 % stride or drawn at random; crops are resized back to the input size by default.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import InputError

__all__ = ["CROP_MODES", "crop_boxes", "crop_images", "default_patch_size", "prototypes"]

CROP_MODES = ("grid", "random")


def default_patch_size(H: int, W: int) -> int:
    """The crop side: 64 pixels of a 224-pixel image, scaled to this size (at least 8)."""
    return max(8, round(min(H, W) * 64 / 224))


def _starts(size: int, patch: int, stride: int) -> list[int]:
    """Grid offsets along one axis; the last crop ends at the border."""
    s = list(range(0, size - patch + 1, stride))
    if s[-1] != size - patch:
        s.append(size - patch)
    return s


def crop_boxes(n: int, H: int, W: int, ps: int, mode: str, *, crops_per_image: int,
               seed: int) -> np.ndarray:
    """``(n_crops, 5)`` crop boxes of side ``ps`` over ``n`` images of ``H × W``: a grid with
    stride ``0.8·ps`` (``"grid"``), or ``crops_per_image`` seeded random boxes per image
    (``"random"``)."""
    if ps > min(H, W):
        raise InputError(f"patch_size {ps} exceeds image size {min(H, W)}")
    if ps < 1:
        raise InputError(f"patch_size must be ≥ 1 (got {ps})")
    if mode == "grid":
        stride = max(1, round(0.8 * ps))
        ys, xs = _starts(H, ps, stride), _starts(W, ps, stride)
        boxes = [(i, y, x0, y + ps, x0 + ps) for i in range(n) for y in ys for x0 in xs]
    elif mode == "random":
        rng = np.random.default_rng(seed)
        boxes = []
        for i in range(n):
            for _ in range(crops_per_image):
                y, x0 = int(rng.integers(0, H - ps + 1)), int(rng.integers(0, W - ps + 1))
                boxes.append((i, y, x0, y + ps, x0 + ps))
    else:
        from ..errors import unknown_name

        raise unknown_name("crop_mode", mode, CROP_MODES)
    return np.asarray(boxes, dtype=np.int64)


def crop_images(x: torch.Tensor, boxes: np.ndarray, resize: bool) -> torch.Tensor:
    """The crops ``boxes`` of images ``x``, bilinearly resized to the input size when
    ``resize``."""
    H, W = x.shape[2:]
    crops = torch.stack([x[i, :, y0:y1, x0:x1] for i, y0, x0, y1, x1 in boxes])
    if resize and crops.shape[2:] != (H, W):
        crops = F.interpolate(crops, size=(H, W), mode="bilinear", align_corners=False)
    return crops


def prototypes(U: np.ndarray, crop_image: np.ndarray, top_k: int,
               max_per_image: int) -> np.ndarray:
    """``(r, top_k)`` indices (``-1`` = none) of each concept's crops by decreasing coefficient
    ``U (n_crops, r)``, at most ``max_per_image`` from one image and only crops that hold the
    concept (coefficient > 0); ``crop_image[i]`` is the image of crop ``i``."""
    proto = np.full((U.shape[1], top_k), -1, dtype=np.int64)
    for c in range(U.shape[1]):
        order = np.argsort(-U[:, c], kind="stable")
        per_img: dict[int, int] = {}
        j = 0
        for i in order:
            if j >= top_k or U[i, c] <= 0:
                break
            img = int(crop_image[i])
            if per_img.get(img, 0) >= max_per_image:
                continue
            per_img[img] = per_img.get(img, 0) + 1
            proto[c, j] = i
            j += 1
    return proto
