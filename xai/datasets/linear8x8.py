"""``linear8x8`` — signal plus correlated distractor on 8x8 images (Wilming et al.
2022)."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from scipy.linalg import expm

from ..registry import register
from .base import Dataset, GroundTruthData, stratified_split

BLOCK = np.array([[0, .5, .5, 0], [.5, 1, 1, .5], [.5, 1, 1, .5], [0, .5, .5, 0]])


def patterns() -> tuple[np.ndarray, np.ndarray]:
    """The signal pattern ``a`` and the distractor pattern ``d`` (both 8x8)."""
    a = np.zeros((8, 8))
    a[:4, :4], a[4:, :4] = BLOCK, -BLOCK
    d = np.zeros((8, 8))
    d[:4, :4], d[:4, 4:] = BLOCK, -BLOCK
    return a, d


def random_covariance(rng: np.random.Generator, dim: int = 64) -> np.ndarray:
    """``U diag(delta) U^T``: U = expm of a skew-symmetric matrix with entries U(-pi, pi),
    ``delta_i ~ U(0, 1)``, then ``delta += 0.01 max delta``."""
    upper = np.triu(rng.uniform(-np.pi, np.pi, (dim, dim)), 1)
    U = expm(upper - upper.T)
    delta = rng.uniform(0, 1, dim)
    delta = delta + 0.01 * delta.max()
    return (U * delta) @ U.T


@register("dataset", "linear8x8")
class Linear8x8(Dataset):
    """Signal + distractor + correlated noise: ``X = w S/|S|_F + (1-w)/2 D/|D|_F +
    (1-w)/2 H/|H|_F`` (Frobenius norms of the whole N x 64 matrices).

    Parameters: ``n`` (1000; the first half is class 0 with ``z = -1``), ``w`` (signal weight,
    0.04). X is ``(N, 1, 8, 8)`` float32. Split: stratified 80/20 train/test; the 80 % is
    further split stratified 90/10 into ``train`` and ``val`` (``train`` ∪ ``val`` is the
    80 %), so the fractions are 0.72/0.08/0.20.

    Ground truth: the global mask ``a != 0`` (24 pixels), also ``signal_mask``.
    ``suppressor_mask``: the 12 pixels where the distractor is non-zero and the signal zero
    (the non-zeros of the top-right block); ``extras["suppressor_block"]`` is the whole
    16-pixel top-right block. ``extras``: ``a``, ``d``, ``Sigma_noise``, ``z``, ``distractor``.
    """

    name: ClassVar[str] = "linear8x8"
    defaults: ClassVar[dict] = {"n": 1000, "w": 0.04}

    def generate(self, ss: np.random.SeedSequence, seed: int, params: dict) -> GroundTruthData:
        n, w = int(params["n"]), float(params["w"])
        if n < 10:
            raise ValueError(f"n must be >= 10; got {n}")
        if not 0 <= w <= 1:
            raise ValueError(f"w must lie in [0, 1]; got {w}")
        rng_cov, rng_data, rng_split = (np.random.default_rng(s) for s in ss.spawn(3))
        a, d = patterns()
        cov = random_covariance(rng_cov)
        z = np.where(np.arange(n) < n // 2, -1.0, 1.0)
        y = (z > 0).astype(np.int64)
        dist = rng_data.standard_normal(n)
        L = np.linalg.cholesky(cov + 1e-12 * np.eye(64))
        H = rng_data.standard_normal((n, 64)) @ L.T
        S = np.outer(z, a.ravel())
        D = np.outer(dist, d.ravel())
        X = w * S / np.linalg.norm(S) + (1 - w) / 2 * D / np.linalg.norm(D) + \
            (1 - w) / 2 * H / np.linalg.norm(H)
        train, val, test = stratified_split(y, (0.72, 0.08, 0.20), rng_split)
        signal = a != 0
        block = np.zeros((8, 8), bool)
        block[:4, 4:] = True
        return GroundTruthData(
            name=self.name, X=X.reshape(n, 1, 8, 8).astype(np.float32), y=y, train=train,
            val=val, test=test, ground_truth=signal, kind="global", signal_mask=signal,
            suppressor_mask=(d != 0) & ~signal, params=dict(params), seed=seed,
            extras={"a": a, "d": d, "Sigma_noise": cov, "z": z, "distractor": dist,
                    "suppressor_block": block})
