"""Models and inputs shared by several test modules (imported as ``from helpers import ...``)."""

from __future__ import annotations

import numpy as np
import torch

from xai.features import FeatureMap
from xai.models import CallableModel


class TokenBag(torch.nn.Module):
    """Embedding bag over token ids (integer inputs): the mean embedding of a row's tokens."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.emb = torch.nn.Embedding(50, 2)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.emb(ids).mean(1)


def fingerprint_model(D: int, seed: int = 0) -> CallableModel:
    """Three row-wise fingerprints of the (flattened) input in float64: equal outputs for
    bit-equal rows, different ones (almost surely) for rows that differ anywhere."""
    W = np.random.default_rng(seed).standard_normal((3, D))

    def f(x):
        flat = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
        return np.stack([(flat * w).sum(1) for w in W], 1)
    return CallableModel(f, output_kind="raw")


def zero_patch_images(rng: np.random.Generator, n: int = 5) -> tuple[np.ndarray, FeatureMap]:
    """Images ``(n, 3, 8, 8)`` with zero regions (whole 2×2 patches, and patches zero in only
    some channels or holding -0.0), and a 16-patch feature map."""
    X = rng.normal(size=(n, 3, 8, 8)).astype(np.float32)
    X[:, :, :4, :4] = 0.0  # 4 whole patches zero in every channel: inert under baseline 0
    X[:, 0, 4:6, 4:6] = 0.0  # zero in one channel only: not inert
    X[:, :, 6:, 6:] = -0.0  # a different bit pattern than the baseline: not inert
    seg = (np.arange(8)[:, None] // 2) * 4 + np.arange(8)[None, :] // 2
    return X, FeatureMap(seg, channel_axis=0)


class TableModel:
    """Callable model ``A (rows, d) in {0,1} -> V[code(A)]``; counts the rows it sees."""

    def __init__(self, V: np.ndarray, d: int) -> None:
        self.V = np.asarray(V, dtype=np.float64)
        self.pw = 1 << np.arange(d, dtype=np.int64)
        self.rows = 0
        self.calls = 0

    def __call__(self, A: np.ndarray) -> np.ndarray:
        A = np.asarray(A)
        assert A.dtype == np.float64
        assert np.all((A == 0) | (A == 1)), "table games need binary masks"
        self.rows += A.shape[0]
        self.calls += 1
        return self.V[(A.astype(np.int64) * self.pw).sum(1)]


class CallCounter(torch.nn.Module):
    """Wraps a module and counts its forward calls (to test that bad input is refused before
    any model call)."""

    def __init__(self, inner: torch.nn.Module) -> None:
        super().__init__()
        self.inner, self.calls = inner, 0

    def forward(self, x):
        self.calls += 1
        return self.inner(x)
