"""ERASER's rationale faithfulness (DeYoung et al. 2020, "ERASER: A Benchmark to Evaluate
Rationalized NLP Models"): ``comprehensiveness`` and ``sufficiency``.

Per row the features are ranked by score (decreasing, signed unless ``abs=True``: ERASER keeps
the features that speak *for* the target; ties by the ``ties`` rule) and, for each fraction
``f`` of ``fractions`` (ERASER's bins 1, 5, 10, 20 and 50 %), the top ``k_f = max(1, ⌊f·d⌋)``
features form the rationale ``T_f``:

* comprehensiveness ``= mean_f [v(D) − v(D \\ T_f)]``: the output drop when the rationale is
  removed (higher is better);
* sufficiency ``= mean_f [v(D) − v(T_f)]``: the output drop when only the rationale is kept
  (lower is better).

This is ERASER's AOPC form (the mean over bins). Removal goes through the metric's game (the
explanation's own removal, as deletion and insertion), where ERASER deletes tokens; with a
baseline removal it is the tabular adaptation Explainiverse 0.15.2 computes
(``compute_comprehensiveness`` / ``compute_sufficiency``, equal per bin on identical inputs in
the tests). All rows and bins go to the game in one call. ``curves`` holds the per-bin drops ``(n, len(fractions))``,
``extras["k"]`` the feature counts.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np

from ..errors import OptionError
from ..registry import register
from .base import Metric, MetricInputs
from .curves import positions

#: ERASER's AOPC bins: 1, 5, 10, 20 and 50 % of the features
ERASER_FRACTIONS = (0.01, 0.05, 0.1, 0.2, 0.5)


def fractions_rule(name: str, value: Any) -> tuple[float, ...]:
    """A non-empty list of distinct fractions of the features, each in (0, 1]."""
    fix = f"pass fractions of the features in (0, 1], e.g. {name}={ERASER_FRACTIONS}"
    try:
        arr = np.asarray(value, dtype=np.float64).ravel()
    except (TypeError, ValueError):
        raise OptionError(f"{name}={value!r} is not a list of numbers: {fix}") from None
    if isinstance(value, str) or arr.size == 0:
        raise OptionError(f"{name}={value!r} holds no fraction: {fix}")
    bad = arr[~((arr > 0) & (arr <= 1))]  # NaN too
    if bad.size:
        raise OptionError(f"{name} must lie in (0, 1]; got {bad.tolist()} among "
                          f"{arr.tolist()}: {fix}")
    return tuple(float(f) for f in arr)


def fraction_counts(fractions: tuple[float, ...], d: int) -> np.ndarray:
    """Feature counts ``max(1, ⌊f·d⌋)`` of the fractions (ERASER's and Explainiverse's
    rounding; the 1e-9 keeps ``0.1·30`` at 3 in floating point)."""
    return np.array([max(1, math.floor(f * d + 1e-9)) for f in fractions], dtype=np.int64)


class _RationaleMetric(Metric):
    """Shared computation: the top-``k_f`` rationale per bin, one game call."""

    rows_split = True  # independent per-row scores: backend='ray' splits the rows

    needs = frozenset({"model"})
    applies_to = "any"
    stochastic = False
    default_output = "probability"
    reference = ("closed form (linear model, baseline removal, exact attributions); "
                 "Explainiverse 0.15.2 compute_comprehensiveness / compute_sufficiency on "
                 "identical inputs, per bin (when installed)")
    defaults: ClassVar[dict] = {"fractions": ERASER_FRACTIONS}
    option_rules: ClassVar[dict] = {"fractions": fractions_rule}
    #: True: keep only the rationale (sufficiency); False: remove it (comprehensiveness)
    keep_rationale: ClassVar[bool] = False

    def compute(self, inp: MetricInputs) -> dict:
        fractions = inp.options["fractions"]
        k = fraction_counts(fractions, inp.d)
        order = inp.order(descending=True)
        in_rationale = positions(order)[:, None, :] < k[None, :, None]  # (n, B, d)
        kept = in_rationale if self.keep_rationale else ~in_rationale
        game = inp.game()
        drops = game.v_full.numpy().astype(np.float64)[:, None] - game(kept).numpy()
        return {"per_sample": drops.mean(axis=1), "curves": drops,
                "extras": {"k": k, "fractions": np.asarray(fractions)},
                "settings": {"fractions": list(fractions), "k": k.tolist(),
                             "order": "decreasing score", "aggregate": "mean over bins"}}


@register("metric", "comprehensiveness")
class Comprehensiveness(_RationaleMetric):
    """ERASER comprehensiveness (DeYoung et al. 2020): the mean over ``fractions`` of
    ``v(D) − v(D \\ T_f)``, the output drop when the top ``max(1, ⌊f·d⌋)`` features are
    removed (higher is better). Options: ``fractions`` (default 0.01, 0.05, 0.1, 0.2, 0.5).

    Differences from Explainiverse 0.15.2's ``compute_comprehensiveness`` (equal per bin with
    a baseline removal): its ``int(f·d)`` takes one feature fewer where ``f·d`` falls just
    below a whole number in floating point (``0.29·100``), xai's ``⌊f·d + 1e-9⌋`` does not;
    it refuses ties across a bin's cut, xai breaks them by ``ties``. Explainiverse's
    ``compute_pgi`` is this metric at one fraction with ``abs=True``, in absolute value.
    See :mod:`xai.metrics.eraser`."""

    name = "comprehensiveness"
    direction = "higher"
    keep_rationale = False


@register("metric", "sufficiency")
class Sufficiency(_RationaleMetric):
    """ERASER sufficiency (DeYoung et al. 2020): the mean over ``fractions`` of
    ``v(D) − v(T_f)``, the output drop when only the top ``max(1, ⌊f·d⌋)`` features are kept
    (lower is better; negative when the rationale alone raises the output). Not Quantus's
    ``Sufficiency``, which is another metric (Dasgupta et al. 2022): per row, the share of the
    rows with a nearby explanation that get the same predicted class. Differences from
    Explainiverse 0.15.2's ``compute_sufficiency``: as ``comprehensiveness``; its
    ``compute_pgu`` is this metric at one fraction with ``abs=True``, in absolute value. See
    :mod:`xai.metrics.eraser`."""

    name = "sufficiency"
    direction = "lower"
    keep_rationale = True


__all__ = ["ERASER_FRACTIONS", "Comprehensiveness", "Sufficiency", "fraction_counts",
           "fractions_rule"]
