"""Attribution-only metrics: complexity (Bhatt et al. 2020) and
sparseness (Chalasani et al. 2020). They need no model (``model=None`` is accepted); the
magnitude |a| is part of both definitions and is recorded (``abs=True``). The caller's array
is never modified. An all-zero row is NaN (counted in ``n_nan``) with one warning.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from ..inputs import Flag
from ..registry import register
from .base import Metric, MetricInputs, MetricResult
from .correlation import warn_nan


class AttributionMetric(Metric):
    """Metric on the attributions alone: ``model`` may be None (it is never called)."""

    needs = frozenset()
    applies_to = "any"
    stochastic = False
    default_output = "attributions"

    def __call__(self, model: Any = None, x: Any = None, a: Any = None, *,
                 target: Any = None, **kwargs: Any) -> MetricResult:
        return super().__call__(model, x, a, target=target, **kwargs)

    def values(self, mag: np.ndarray, options: dict) -> np.ndarray:
        """Scores of rows with some non-zero magnitude ``mag`` (a fresh array)."""
        raise NotImplementedError

    def compute(self, inp: MetricInputs) -> dict:
        mag = np.abs(np.asarray(inp.scores, dtype=np.float64))  # a new array
        zero = ~(mag > 0).any(axis=1)
        out = np.full(inp.n, np.nan)
        if (~zero).any():
            out[~zero] = self.values(mag[~zero], inp.options)
        warn_nan(self.name, zero, "all-zero attributions, where the metric is undefined")
        return {"per_sample": out, "settings": {"abs": True, "output": "attributions",
                                                "removal": None, **self.extra_settings(inp)}}

    def extra_settings(self, inp: MetricInputs) -> dict:
        return {}


@register("metric", "complexity")
class Complexity(AttributionMetric):
    """Entropy (nats) of ``P_i = |a_i| / Σ|a_j|`` with ``0 ln 0 = 0``; ``relative=True``
    divides by ``ln d`` (NaN when d = 1). Lower is better."""

    name = "complexity"
    direction = "lower"
    defaults: ClassVar[dict] = {"relative": False}
    option_rules: ClassVar[dict] = {"relative": Flag()}

    def values(self, mag: np.ndarray, options: dict) -> np.ndarray:
        P = mag / mag.sum(axis=1, keepdims=True)
        H = 0.0 - (P * np.log(np.where(P > 0, P, 1.0))).sum(axis=1)
        if options.get("relative"):
            d = mag.shape[1]
            H = H / np.log(d) if d > 1 else np.full_like(H, np.nan)
        return H

    def extra_settings(self, inp: MetricInputs) -> dict:
        return {"relative": bool(inp.options.get("relative", False)), "unit": "nats"}


@register("metric", "sparseness")
class Sparseness(AttributionMetric):
    """Gini index of |a| sorted ascending, ``G = Σ_i (2i − d − 1) v_(i) / (d Σ v_(i))`` in
    ``[0, (d−1)/d]``, without any epsilon: (0, 0, 0, 1) → 0.75, (1, 1, 1, 1) → 0. Higher is
    better."""

    name = "sparseness"
    direction = "higher"
    defaults: ClassVar[dict] = {}

    def values(self, mag: np.ndarray, options: dict) -> np.ndarray:
        v = np.sort(mag, axis=1)
        d = v.shape[1]
        w = 2.0 * np.arange(1, d + 1) - d - 1
        return (v * w).sum(axis=1) / (d * v.sum(axis=1))


__all__ = ["AttributionMetric", "Complexity", "Sparseness"]
