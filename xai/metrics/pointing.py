"""The pointing game (Zhang, Bargal, Lin, Brandt, Shen & Sclaroff 2018, "Top-down neural
attention by excitation backprop").

A row is a hit (1) when the maximum of its attribution map lies inside the ground-truth region
or within ``tolerance`` pixels of it (Euclidean distance to the nearest ground-truth pixel),
a miss (0) otherwise; the score is the hit rate (higher is better). The paper's tolerance is
15 pixels on its 224-pixel images; the default scales it to the image:
``15 · max(H, W) / 224`` pixels (0.54 at 8x8, so only the region itself; 4.3 at 64x64). Tables
have no distance between columns: their tolerance is 0.

The map is one score per pixel (:class:`~xai.metrics.ground_truth.GroundTruthMetric`: channels
summed), signed through ``sign="positive"`` (default: ``max(a, 0)``, whose maximum is the
signed map's whenever some score is positive) or ``sign="abs"``. When several pixels share the
maximum, the row is a hit if any of them is (as Quantus 0.6.0). A map that is constant (e.g.
all zero, or no positive score) points nowhere: its row is NaN (warned, counted in
``n_nan``). Quantus 0.6.0's ``PointingGame`` (no tolerance) and Explainiverse 0.15.2's
``compute_pointing_game`` are oracles at ``tolerance=0`` (``sign="abs"`` is Explainiverse's
``use_abs=True``); there a map without a positive score would point at its least negative
pixel, and Explainiverse refuses a constant map. Explainiverse's ``tolerance`` is a square
margin (Chebyshev distance), ours a disc (Euclidean distance).
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from scipy.ndimage import distance_transform_edt

from .._warn import warn
from ..errors import InputError
from ..inputs import Real
from ..registry import register
from .base import MetricInputs
from .ground_truth import GroundTruthMetric

#: Zhang et al.'s tolerance in pixels, and the image size it was chosen for
PAPER_TOLERANCE, PAPER_SIZE = 15.0, 224


def default_tolerance(spatial: tuple[int, ...]) -> float:
    """The paper's 15 pixels at 224 scaled to the image (0 for a table's columns)."""
    if len(spatial) != 2:
        return 0.0
    return PAPER_TOLERANCE * max(spatial) / PAPER_SIZE


@register("metric", "pointing-game")
class PointingGame(GroundTruthMetric):
    """Pointing game (Zhang et al. 2018): 1 when the map's maximum lies in the ground-truth
    region or within ``tolerance`` pixels of it, else 0; the hit rate over rows (higher is
    better). Options: ``tolerance`` (pixels; default the paper's 15 at 224 pixels scaled to the
    image), ``sign``. Differences from Quantus 0.6.0 and Explainiverse 0.15.2 (equal at
    ``tolerance=0``): a map without a positive score is NaN, not its least negative pixel;
    Explainiverse's tolerance is a square margin, ours a disc. See
    :mod:`xai.metrics.pointing`."""

    name: ClassVar[str] = "pointing-game"
    direction: ClassVar[str] = "higher"
    reference: ClassVar[str] = ("Quantus 0.6.0 PointingGame and Explainiverse 0.15.2 "
                                "compute_pointing_game on identical inputs (tolerance=0); "
                                "closed form of the tolerance on hand-made maps")
    defaults: ClassVar[dict] = {**GroundTruthMetric.defaults, "sign": "positive",
                                "tolerance": None}
    option_rules: ClassVar[dict] = {**GroundTruthMetric.option_rules,
                                    "tolerance": Real(0.0)}

    def check_inputs(self, inp: MetricInputs) -> None:
        super().check_inputs(inp)
        tol = inp.options.get("tolerance")
        if tol and inp.X.ndim == 2:
            raise InputError(f"tolerance={tol:g} pixels needs images; the columns of a table "
                             "have no distance: leave tolerance=None (0 for tables)")

    def score(self, inp, s, mask, spatial):
        tol = inp.options.get("tolerance")
        tol = default_tolerance(spatial) if tol is None else float(tol)
        peak = s == s.max(axis=1, keepdims=True)
        flat = peak.all(axis=1)
        if flat.any():
            rows = np.flatnonzero(flat)
            warn(f"{self.name}: {rows.size} row(s) ({rows[:10].tolist()}) have a constant "
                 f"map (sign={inp.options.get('sign')!r}), which points nowhere; their score is "
                 "NaN (counted in n_nan)", RuntimeWarning)
        if tol > 0:
            near = np.stack([distance_transform_edt(~m.reshape(spatial)).reshape(-1) <= tol
                             for m in mask])  # per image, not a model path
        else:
            near = mask
        hit = (peak & near).any(axis=1).astype(np.float64)
        hit[flat] = np.nan
        return {"per_sample": hit,
                "extras": {"peak": np.argmax(s, axis=1)},
                "settings": {"tolerance": tol, "tolerance_rule": "given" if
                             inp.options.get("tolerance") is not None else
                             f"{PAPER_TOLERANCE:g} px at {PAPER_SIZE} px, scaled",
                             "ties": "any maximum"}}


__all__ = ["PAPER_SIZE", "PAPER_TOLERANCE", "PointingGame", "default_tolerance"]
