"""Feature maps: which input positions each of the ``d`` features (players) covers.

A :class:`FeatureMap` holds an integer index over input positions, ``index[pos] = feature``,
with ``-1`` for positions that are always kept (``fixed=``). It is either shared by all
explicands (shape ``(1, *pos_shape)``) or one per explicand (superpixels, ``(n, *pos_shape)``).
``pos_shape`` is the input shape of one row, or that shape without its channel axis (images),
in which case the map is broadcast over channels.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from ._warn import warn
from .errors import FeatureMapError, InputError, unknown_name

SUPERPIXEL_METHODS = ("slic", "quickshift", "felzenszwalb")


@dataclass
class FeatureMap:
    """Mapping of ``d`` features to input positions (see module docstring)."""

    index: np.ndarray
    names: list[str] = field(default_factory=list)
    kind: str = "custom"
    channel_axis: int | None = None
    per_explicand: bool = False

    def __post_init__(self) -> None:
        index = np.asarray(self.index)
        if not np.issubdtype(index.dtype, np.integer):
            raise FeatureMapError(f"a feature map index must hold integers, got {index.dtype}")
        self.index = index.astype(np.int64)
        if not self.per_explicand:
            self.index = self.index[None]
        self.per_explicand = False
        self._check()
        if not self.names:
            self.names = [f"{self.kind if self.kind != 'custom' else 'f'}{i}" for i in range(self.d)]
        if len(self.names) != self.d:
            raise FeatureMapError(f"{len(self.names)} feature names for {self.d} features")

    def _check(self) -> None:
        for j, idx in enumerate(self.index):
            if idx.min() < -1:
                raise FeatureMapError(
                    f"feature map {j} has index {idx.min()}: features are 0..d-1, and -1 marks "
                    "always-kept positions")
            used = np.unique(idx[idx >= 0])
            if used.size == 0:
                raise FeatureMapError("the feature map has no features (d = 0): assign at least "
                                      "one input position to a feature")
            d = int(used[-1]) + 1
            if used.size != d:
                missing = sorted(set(range(d)) - set(used.tolist()))
                raise FeatureMapError(
                    f"features {missing[:10]} of feature map {j} cover no input position (empty "
                    "features); number the features 0..d-1 without gaps")

    @property
    def shared(self) -> bool:
        """True when one map serves all explicands."""
        return self.index.shape[0] == 1

    @property
    def d_per_map(self) -> np.ndarray:
        """Number of features of each map."""
        return self.index.reshape(self.index.shape[0], -1).max(axis=1) + 1

    @property
    def d(self) -> int:
        """Number of features (the largest over per-explicand maps)."""
        return int(self.d_per_map.max())

    @property
    def pos_shape(self) -> tuple[int, ...]:
        """Shape of the positions one map covers."""
        return tuple(self.index.shape[1:])

    def subset(self, rows: np.ndarray) -> FeatureMap:
        """The maps of explicands ``rows`` (a shared map is returned as is)."""
        if self.shared:
            return self
        return FeatureMap(self.index[rows], names=[f"{self.kind}{i}" for i in
                                                   range(int(self.d_per_map[rows].max()))],
                          kind=self.kind, channel_axis=self.channel_axis, per_explicand=True)

    def full_index(self, input_shape: tuple[int, ...]) -> np.ndarray:
        """Index over every element of one input row, flattened: ``(n_maps, prod(shape))``."""
        input_shape = tuple(input_shape)
        idx = self.index
        if self.pos_shape != input_shape:
            if self.channel_axis is None or len(input_shape) != len(self.pos_shape) + 1:
                raise FeatureMapError(
                    f"the feature map covers positions of shape {self.pos_shape} but one input "
                    f"row has shape {input_shape}; build the map for this input shape")
            axis = self.channel_axis % len(input_shape)
            idx = np.expand_dims(idx, axis + 1)
            try:
                idx = np.broadcast_to(idx, (idx.shape[0], *input_shape))
            except ValueError:
                raise FeatureMapError(
                    f"the feature map covers positions of shape {self.pos_shape}, which does not "
                    f"match input rows of shape {input_shape} with channel axis {axis}") from None
        return np.ascontiguousarray(idx.reshape(idx.shape[0], -1))

    # ---- constructors ---------------------------------------------------------------------

    @classmethod
    def tabular(cls, n_columns: int, names: Sequence[str] | None = None) -> FeatureMap:
        """One feature per column."""
        names = list(names) if names is not None else [f"x{i}" for i in range(n_columns)]
        return cls(np.arange(n_columns), names=[str(n) for n in names], kind="column")

    @classmethod
    def groups(cls, groups: Mapping[str, Sequence[int | str]],
               columns: int | Sequence[str], *, fixed: Sequence[int | str] = ()) -> FeatureMap:
        """One feature per named group of columns. Every column must be in exactly one group or
        in ``fixed`` (always kept)."""
        names = [f"x{i}" for i in range(columns)] if isinstance(columns, int) else \
            [str(c) for c in columns]
        p = len(names)
        col_of = {n: i for i, n in enumerate(names)}

        def col(c: int | str) -> int:
            if isinstance(c, (int, np.integer)) and not isinstance(c, bool):
                if not 0 <= c < p:
                    raise FeatureMapError(f"column {c} is out of range 0..{p - 1}")
                return int(c)
            if c not in col_of:
                raise FeatureMapError(f"unknown column {c!r}; columns are {names}")
            return col_of[c]

        index = np.full(p, -2, dtype=np.int64)
        owner: dict[int, str] = {}
        overlaps = []
        for g, (gname, members) in enumerate(groups.items()):
            if len(members) == 0:
                raise FeatureMapError(f"feature group {gname!r} is empty; give it columns or "
                                      "drop it")
            for c in members:
                i = col(c)
                if i in owner:
                    overlaps.append(f"{names[i]!r} in {owner[i]!r} and {gname!r}")
                owner[i] = gname
                index[i] = g
        for c in fixed:
            i = col(c)
            if i in owner:
                overlaps.append(f"{names[i]!r} in {owner[i]!r} and fixed=")
            index[i] = -1
            owner[i] = "fixed"
        if overlaps:
            raise FeatureMapError("feature groups overlap: " + "; ".join(overlaps[:10]) +
                                  ". Put every column in exactly one group.")
        missing = [names[i] for i in np.flatnonzero(index == -2)]
        if missing:
            raise FeatureMapError(
                f"columns {missing[:20]} are in no feature group; add them to a group, or "
                "declare always-kept columns with fixed=")
        return cls(index, names=[str(g) for g in groups], kind="group")

    @classmethod
    def patches(cls, image_shape: tuple[int, int], size: int | tuple[int, int],
                channel_axis: int | None = 0) -> FeatureMap:
        """Square patches of ``size`` pixels over an ``(H, W)`` image (the last row and column
        of patches may be smaller)."""
        h, w = image_shape
        sh, sw = (size, size) if isinstance(size, int) else size
        if sh < 1 or sw < 1:
            raise FeatureMapError(f"patch size must be at least 1 pixel, got {size}")
        rows, cols = np.arange(h) // sh, np.arange(w) // sw
        ncols = int(cols.max()) + 1
        index = rows[:, None] * ncols + cols[None, :]
        return cls(index, names=[f"patch{i}" for i in range(int(index.max()) + 1)],
                   kind="patch", channel_axis=channel_axis)

    @classmethod
    def tokens(cls, length: int, *, fixed: Sequence[int] = ()) -> FeatureMap:
        """One feature per token position; ``fixed`` positions (padding, [CLS]) are kept."""
        index = np.full(length, -1, dtype=np.int64)
        free = np.setdiff1d(np.arange(length), np.asarray(fixed, dtype=np.int64))
        index[free] = np.arange(free.size)
        return cls(index, names=[f"token{i}" for i in free], kind="token")

    @classmethod
    def superpixels(cls, images: np.ndarray, method: str = "slic", *,
                    channel_axis: int | None = None, **options) -> FeatureMap:
        """Per-image superpixels from scikit-image (``slic``, ``quickshift``, ``felzenszwalb``).

        ``images`` is ``(n, C, H, W)``, ``(n, H, W, C)`` or ``(n, H, W)``; ``channel_axis`` is
        the axis of one image (guessed when omitted). Options go to the scikit-image function
        (defaults: slic ``n_segments=50, compactness=10, start_label=0``).
        """
        from skimage import segmentation

        images = np.asarray(images)
        if images.ndim not in (3, 4):
            raise InputError(f"superpixels need images (n, C, H, W), (n, H, W, C) or (n, H, W); "
                             f"got shape {images.shape}")
        if images.ndim == 4 and channel_axis is None:
            channel_axis = guess_channel_axis(images.shape[1:])
        method = method.lower()
        if method not in SUPERPIXEL_METHODS:
            raise unknown_name("superpixel method", method, SUPERPIXEL_METHODS)
        maps = []
        for img in images:  # segmentation is per image by nature (not a model path)
            img = img.astype(np.float64)
            if images.ndim == 4:
                img = np.moveaxis(img, channel_axis % 3, -1)
            multichannel = img.ndim == 3 and img.shape[-1] > 1
            img2 = img if img.ndim == 3 else img[..., None]
            if img2.shape[-1] == 1 and method == "quickshift":
                img2 = np.repeat(img2, 3, axis=-1)
                multichannel = True
            lo, hi = img2.min(), img2.max()
            img2 = (img2 - lo) / (hi - lo) if hi > lo else np.zeros_like(img2)
            if method == "slic":
                kw = {"n_segments": 50, "compactness": 10, "start_label": 0}
                kw.update(options)
                seg = segmentation.slic(img2, channel_axis=-1 if multichannel else None,
                                        **kw) if multichannel else \
                    segmentation.slic(img2[..., 0], channel_axis=None, **kw)
            elif method == "quickshift":
                kw = {"kernel_size": 4, "max_dist": 200, "ratio": 0.2}
                kw.update(options)
                seg = segmentation.quickshift(img2, **kw)
            else:
                kw = {"scale": 100, "sigma": 0.5, "min_size": 20}
                kw.update(options)
                seg = segmentation.felzenszwalb(img2, channel_axis=-1 if multichannel else None,
                                                **kw) if multichannel else \
                    segmentation.felzenszwalb(img2[..., 0], **kw)
            _, seg = np.unique(seg, return_inverse=True)
            maps.append(seg.reshape(img2.shape[:2]))
        index = np.stack(maps)
        few = [i for i, m in enumerate(maps) if m.max() < 1]
        if few:
            warn(f"{method} found a single segment in images {few[:10]} (flat or noise "
                 "images?); every explanation of them has one feature. Pass other "
                 "options (e.g. n_segments, compactness) or use patches.")
        return cls(index, kind="segment", per_explicand=True,
                   channel_axis=None if images.ndim == 3 else channel_axis)


def guess_channel_axis(shape: tuple[int, ...]) -> int | None:
    """Channel axis of one image: 0 for ``(C, H, W)``, -1 for ``(H, W, C)``, None for 2-D.
    A leading 1 is always a channel (``(1, 4, 4)`` is one 4x4 image, not 4 channels)."""
    if len(shape) != 3:
        return None
    if shape[0] == 1:
        return 0
    if shape[-1] == 1:
        return -1
    if shape[0] in (3, 4) and shape[-1] not in (3, 4):
        return 0
    if shape[-1] in (3, 4):
        return -1
    return 0


def image_layout(shape: tuple[int, ...]) -> tuple[int | None, tuple[int, ...]]:
    """The channel axis (:func:`guess_channel_axis`, None for a 2-D image) and the spatial
    shape ``(H, W)`` of one image of shape ``shape``."""
    shape = tuple(shape)
    cax = guess_channel_axis(shape)
    if cax is None:
        return None, shape
    return cax, tuple(s for i, s in enumerate(shape) if i != cax % len(shape))
