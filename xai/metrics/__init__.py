"""Evaluation metrics: faithfulness against the model, robustness, and
agreement with ground truth. Every metric is a registered component (``xai.registry.names(
"metric")``) called as ``metric(model, x, a, *, target=None, removal=None, seed=0,
**options) -> MetricResult``."""

from . import complexity, correlation, curves, ground_truth, perturbation, randomisation, road
from .base import Metric, MetricInputs, MetricResult, reduce_attributions


def get(name: str, **options) -> Metric:
    """The registered metric ``name`` with ``options``."""
    from .. import registry

    return registry.get("metric", name)(**options)


__all__ = ["Metric", "MetricInputs", "MetricResult", "complexity", "correlation", "curves",
           "get", "ground_truth", "perturbation", "randomisation", "reduce_attributions",
           "road"]

# ERASER, IROF, sensitivity-n, the pointing game, OpenXAI's prediction gaps, the relative
# stabilities and the attribution deviation bound register on import
from . import (  # noqa: F401
    deviation_bound,
    eraser,
    irof,
    openxai,
    pointing,
    sensitivity_n,
    stability,
)
