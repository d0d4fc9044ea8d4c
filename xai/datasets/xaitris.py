"""XAI-TRIS tetromino data sets (Clark, Wilming & Haufe 2024):
``xaitris8`` (8x8) and ``xaitris64`` (64x64).

Parameters: ``scenario`` in {lin, mult, rigid, xor}, ``background`` in {white, corr, natural}
(natural at 64x64 only), ``alpha`` (None = the published value for the scenario and
background, :data:`ALPHA`), ``n`` (None = 10 000 / 40 000), ``scale`` ("global": one scalar
``max|X|``, as the published code; "per_sample"). Classes are exactly balanced (quarters for
XOR) and rows shuffled; the split is stratified (80/10/10 at 8x8, 90/5/5 at 64x64).
X is ``(N, 1, H, W)`` float32.

Ground truth: LIN, MULT, XOR — the union of both tetromino positions (global, 8 pixels at
8x8; at 64x64 the smoothed patterns thresholded at >= 0.05); RIGID — the per-sample mask of
the placed pattern (``kind="per_sample"``).

NATURAL backgrounds: greyscale (0.299 R + 0.587 G + 0.114 B) 64x64 crops, with random
horizontal flips, of the scikit-image images in :data:`NATURAL_IMAGES`, each rescaled to a
short side of 256 px; each crop minus its own mean. The scikit-image version and the image list
are recorded in ``extras``; a missing image is an error.
"""

from __future__ import annotations

import os
from typing import ClassVar

import numpy as np
from scipy.ndimage import gaussian_filter

from ..registry import register
from .base import Dataset, GroundTruthData, stratified_split

T_SHAPE = np.array([[1, 0], [1, 1], [1, 0]], dtype=np.float64)
L_SHAPE = np.array([[1, 0], [1, 0], [1, 1]], dtype=np.float64)
SCENARIOS = ("lin", "mult", "rigid", "xor")
BACKGROUNDS = ("white", "corr", "natural")

#: published signal-to-noise values: ALPHA[size][background][scenario]
ALPHA = {
    8: {"white": {"lin": 0.18, "mult": 0.70, "rigid": 0.65, "xor": 0.35},
        "corr": {"lin": 0.0125, "mult": 0.10, "rigid": 0.20, "xor": 0.15}},
    64: {"white": {"lin": 0.03, "mult": 0.65, "rigid": 0.575, "xor": 0.075},
         "corr": {"lin": 0.02, "mult": 0.05, "rigid": 0.375, "xor": 0.03},
         "natural": {"lin": 0.06, "mult": 0.20, "rigid": 0.03, "xor": 0.13}},
}

#: scikit-image bundled images used for NATURAL backgrounds (file names in skimage/data)
NATURAL_IMAGES = ("astronaut.png", "brick.png", "camera.png", "chelsea.png", "coffee.png",
                  "coins.png", "grass.png", "gravel.png", "hubble_deep_field.jpg", "ihc.png",
                  "moon.png", "motorcycle_left.png", "retina.jpg", "rocket.jpg")

_NATURAL_CACHE: dict = {}


def _geometry(size: int, scenario: str) -> dict:
    if size == 8:
        return {"p": 1, "anchors": ((1, 1), (4, 5)), "corr_sigma": 3.0,
                "fractions": (0.8, 0.1, 0.1), "n": 10_000}
    return {"p": 4 if scenario == "rigid" else 8, "anchors": ((8, 8), (32, 40)),
            "corr_sigma": 10.0, "fractions": (0.9, 0.05, 0.05), "n": 40_000}


def _shape(kind: int, p: int) -> np.ndarray:
    base = T_SHAPE if kind == 0 else L_SHAPE
    return np.kron(base, np.ones((p, p)))


def _place(size: int, shape: np.ndarray, top: int, left: int, p: int) -> np.ndarray:
    """The pattern on a zero canvas, smoothed (sigma 1.5 px) when p > 3."""
    canvas = np.zeros((size, size))
    h, w = shape.shape
    canvas[top:top + h, left:left + w] = shape
    if p > 3:
        canvas = gaussian_filter(canvas, 1.5, mode="constant")
    return canvas


def _fro(A: np.ndarray, chunk: int = 4096) -> float:
    """Frobenius norm accumulated in float64 (chunked, so float32 inputs are not copied)."""
    total = 0.0
    for i in range(0, len(A), chunk):
        block = A[i:i + chunk].astype(np.float64)
        total += float(np.einsum("ij,ij->", block, block))
    return float(np.sqrt(total))


def _mask(pattern: np.ndarray, p: int) -> np.ndarray:
    return pattern >= 0.05 if p > 3 else pattern != 0


def natural_images() -> tuple[list[np.ndarray], str]:
    """The greyscale source images (short side 256 px) and the scikit-image version."""
    import skimage
    from skimage import io, transform
    from skimage.util import img_as_float

    if "images" not in _NATURAL_CACHE:
        folder = os.path.join(os.path.dirname(skimage.__file__), "data")
        out = []
        for fname in NATURAL_IMAGES:
            path = os.path.join(folder, fname)
            if not os.path.exists(path):
                raise FileNotFoundError(
                    f"NATURAL background image {fname!r} is missing from scikit-image "
                    f"{skimage.__version__} ({folder}); the image list is fixed")
            img = img_as_float(io.imread(path))
            if img.ndim == 3:
                img = img[..., :3] @ np.array([0.299, 0.587, 0.114])
            factor = 256 / min(img.shape)
            img = transform.resize(img, (round(img.shape[0] * factor),
                                         round(img.shape[1] * factor)), order=1,
                                   anti_aliasing=factor < 1, preserve_range=True)
            out.append(img)
        _NATURAL_CACHE["images"] = out
    return _NATURAL_CACHE["images"], skimage.__version__


def _backgrounds(kind: str, n: int, size: int, sigma: float,
                 rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    if kind in ("white", "corr"):
        E = rng.standard_normal((n, size, size))
        if kind == "corr":
            E = gaussian_filter(E, (0, sigma, sigma), mode="reflect")
        return E, {}
    images, version = natural_images()
    which = rng.integers(len(images), size=n)
    flips = rng.random(n) < 0.5
    E = np.empty((n, size, size))
    for i in range(n):
        img = images[which[i]]
        top = rng.integers(img.shape[0] - size + 1)
        left = rng.integers(img.shape[1] - size + 1)
        crop = img[top:top + size, left:left + size]
        if flips[i]:
            crop = crop[:, ::-1]
        E[i] = crop - crop.mean()
    return E, {"skimage_version": version, "natural_images": list(NATURAL_IMAGES),
               "natural_source": which}


class _XaiTris(Dataset):
    size: ClassVar[int] = 8
    defaults: ClassVar[dict] = {"scenario": "lin", "background": "white", "alpha": None,
                                "n": None, "scale": "global"}

    def generate(self, ss: np.random.SeedSequence, seed: int, params: dict) -> GroundTruthData:
        size = self.size
        scenario, bg = str(params["scenario"]).lower(), str(params["background"]).lower()
        if scenario not in SCENARIOS:
            raise ValueError(f"scenario must be one of {SCENARIOS}; got {scenario!r}")
        if bg not in BACKGROUNDS or bg not in ALPHA[size]:
            valid = tuple(ALPHA[size])
            raise ValueError(f"background of {self.name} must be one of {valid}; got {bg!r}")
        if params["scale"] not in ("global", "per_sample"):
            raise ValueError(f"scale must be 'global' or 'per_sample'; got {params['scale']!r}")
        geo = _geometry(size, scenario)
        n = geo["n"] if params["n"] is None else int(params["n"])
        if n < 8 or (scenario == "xor" and n % 4) or n % 2:
            raise ValueError(f"n must be even and >= 8 (a multiple of 4 for xor); got {n}")
        alpha = ALPHA[size][bg][scenario] if params["alpha"] is None else float(params["alpha"])
        if not 0 <= alpha <= 1:
            raise ValueError(f"alpha must lie in [0, 1]; got {alpha}")
        rng_sig, rng_bg, rng_split = (np.random.default_rng(s) for s in ss.spawn(3))
        p = geo["p"]
        y = np.repeat([0, 1], n // 2)
        quarter = np.repeat(np.arange(4), n // 4) if scenario == "xor" else None
        order = rng_sig.permutation(n)
        y = y[order]
        P = np.zeros((n, size, size))
        ground, kind = None, "global"
        if scenario == "rigid":
            gt = np.zeros((n, size, size), bool)
            ks = rng_sig.integers(4, size=n)
            for i in range(n):
                shape = np.rot90(_shape(int(y[i]), p), int(ks[i]))
                h, w = shape.shape
                top = int(rng_sig.integers(size - h + 1))
                left = int(rng_sig.integers(size - w + 1))
                P[i] = _place(size, shape, top, left, p)
                gt[i] = _mask(P[i], p)
            ground, kind = gt, "per_sample"
        else:
            pats = [_place(size, _shape(k, p), *geo["anchors"][k], p) for k in (0, 1)]
            ground = _mask(pats[0], p) | _mask(pats[1], p)
            if scenario in ("lin", "mult"):
                P = np.where(y[:, None, None] == 0, pats[0], pats[1])
            else:  # xor: quarters (+,+), (-,-) -> class 0; (+,-), (-,+) -> class 1
                signs = np.array([[1, 1], [-1, -1], [1, -1], [-1, 1]], float)[quarter[order]]
                y = (signs[:, 0] != signs[:, 1]).astype(np.int64)
                P = signs[:, 0, None, None] * pats[0] + signs[:, 1, None, None] * pats[1]
        E, info = _backgrounds(bg, n, size, geo["corr_sigma"], rng_bg)
        dtype = np.float64 if size <= 8 else np.float32  # 40 000 x 64 x 64 rows
        Pf, Ef = P.reshape(n, -1).astype(dtype), E.reshape(n, -1).astype(dtype)
        del E
        if scenario == "mult":
            M = 1 - alpha * Pf
            X = (M / _fro(M)) * (Ef / _fro(Ef))
        else:
            X = alpha * Pf / _fro(Pf) + (1 - alpha) * Ef / _fro(Ef)
        if params["scale"] == "global":
            X = X / np.abs(X).max()
        else:
            X = X / np.abs(X).max(axis=1, keepdims=True)
        y = y.astype(np.int64)
        train, val, test = stratified_split(y, geo["fractions"], rng_split)
        return GroundTruthData(
            name=self.name, X=X.reshape(n, 1, size, size).astype(np.float32), y=y,
            train=train, val=val, test=test, ground_truth=ground, kind=kind,
            params={**params, "scenario": scenario, "background": bg, "alpha": alpha, "n": n},
            seed=seed, extras={"pattern": P.astype(np.float32), **info})


@register("dataset", "xaitris8")
class XaiTris8(_XaiTris):
    """XAI-TRIS at 8x8 (see the module docstring)."""

    name: ClassVar[str] = "xaitris8"
    size: ClassVar[int] = 8


@register("dataset", "xaitris64")
class XaiTris64(_XaiTris):
    """XAI-TRIS at 64x64 (see the module docstring)."""

    name: ClassVar[str] = "xaitris64"
    size: ClassVar[int] = 64
