"""The data-set contract: a registered :class:`Dataset` makes a
:class:`GroundTruthData` from a seed; generation depends only on ``(params, seed)``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from ..errors import MissingGroundTruth, unknown_name
from ..registry import define_kind


@dataclass
class GroundTruthData:
    """A generated data set with known ground truth.

    ``X`` (float32, ``(N, *S)``; images channel-first ``(N, 1, H, W)``), ``y`` (int labels),
    ``train`` / ``val`` / ``test`` (row indices), ``ground_truth`` (bool: one global mask of the
    spatial shape, or one per row ``(N, *spatial)``; None when there is none), ``kind``
    ("global" or "per_sample"), ``signal_mask`` / ``suppressor_mask`` (spatial bool, where the
    data set declares them), ``reference`` (closed-form values, e.g. the suppressor ratios of
    the 2-D suppressor problem), ``params`` and ``seed``.
    """

    name: str
    X: np.ndarray
    y: np.ndarray
    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    ground_truth: np.ndarray | None = None
    kind: str | None = "global"
    signal_mask: np.ndarray | None = None
    suppressor_mask: np.ndarray | None = None
    reference: dict = field(default_factory=dict)
    params: dict = field(default_factory=dict)
    seed: int = 0
    extras: dict = field(default_factory=dict)

    @property
    def spatial_shape(self) -> tuple[int, ...]:
        """Shape of one row without channels: ``(d,)`` tabular, ``(H, W)`` images."""
        return self.X.shape[1:] if self.X.ndim <= 3 else self.X.shape[2:]

    def mask(self, rows: np.ndarray | None = None, metric: str = "a ground-truth metric"
             ) -> np.ndarray:
        """Ground-truth masks of ``rows`` as ``(n, *spatial)`` bool."""
        if self.ground_truth is None:
            raise MissingGroundTruth(f"data set {self.name!r} has no ground truth; {metric} "
                                     "needs one")
        rows = np.arange(len(self.X)) if rows is None else np.asarray(rows)
        gt = np.asarray(self.ground_truth, dtype=bool)
        if self.kind == "per_sample":
            return gt[rows]
        return np.broadcast_to(gt, (len(rows), *gt.shape))


class Dataset:
    """Base class of registered data sets: ``make(seed=0, **params) -> GroundTruthData``.
    ``defaults`` lists the parameters and their default values; unknown ones are errors."""

    name: ClassVar[str] = "dataset"
    defaults: ClassVar[dict] = {}
    has_ground_truth: ClassVar[bool] = True

    def make(self, seed: int = 0, **params: Any) -> GroundTruthData:
        """Generate the data set for ``seed`` and ``params``."""
        for key in params:
            if key not in self.defaults:
                raise unknown_name(f"parameter of data set {self.name!r}", key, self.defaults)
        return self.generate(np.random.SeedSequence([seed, _name_key(self.name)]), seed,
                             {**self.defaults, **params})

    def generate(self, ss: np.random.SeedSequence, seed: int, params: dict) -> GroundTruthData:
        raise NotImplementedError


def _name_key(name: str) -> int:
    import zlib

    return zlib.crc32(name.encode())


def stratified_split(y: np.ndarray, fractions: tuple[float, ...],
                     rng: np.random.Generator) -> list[np.ndarray]:
    """Stratified split of row indices into parts of the given fractions (sum 1)."""
    parts: list[list[int]] = [[] for _ in fractions]
    for cls in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == cls))
        cuts = np.round(np.cumsum(fractions)[:-1] * len(idx)).astype(int)
        for p, chunk in enumerate(np.split(idx, cuts)):
            parts[p].extend(chunk.tolist())
    return [np.sort(np.asarray(p, dtype=np.int64)) for p in parts]


define_kind("dataset", Dataset)  # every data set module registers against it
