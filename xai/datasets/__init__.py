"""Data sets with known ground truth (suppressor problems, XAI-TRIS), registered components:
``xai.registry.get("dataset", name)().make(seed, **params) -> GroundTruthData``; and the
harness's model trainer with its disk cache (:func:`training.train_model`)."""

from . import gauss2d, linear8x8, xaitris
from .base import Dataset, GroundTruthData, stratified_split


def make(name: str, seed: int = 0, **params) -> GroundTruthData:
    """Generate the registered data set ``name``."""
    from .. import registry

    return registry.get("dataset", name)().make(seed, **params)


__all__ = ["Dataset", "GroundTruthData", "gauss2d", "linear8x8", "make", "stratified_split",
           "xaitris"]
