"""Removal curves: deletion and insertion (Petsiuk, Das & Saenko 2018), MoRF, LeRF and AOPC
(Samek et al. 2017) and the MoRF–LeRF gap.

Per row the features are ranked by score (decreasing, signed unless ``abs=True``; ties by the
``ties`` rule), ``step`` features are removed (deletion) or inserted (insertion) at a time and
the game's value for the row's target is recorded after each step. A curve has ``L + 1``
points, ``L = ceil(d / step)``, both ends included: ``c_0 = v(D)`` and ``c_L = v(∅)`` for
deletion. Its area is the trapezoid rule on ``u_i = min(i·step, d) / d`` in ``[0, 1]``.

All interior points of all rows go to the game in **one call** with per-row kept-masks
``(n, L - 1, d)`` (the game chunks them under its memory cap); the two ends are the game's own
``v_full`` and ``v_empty`` (shared through its cache, so a curve costs ``L - 1`` new model rows
per row and per removal draw, plus one full row per row and one empty evaluation).
"""

from __future__ import annotations

import math
import numbers
from typing import Any, ClassVar

import numpy as np

from ..errors import OptionError
from ..inputs import Flag
from ..registry import register
from .base import Metric, MetricInputs
from .checks import Choice

# ---- helpers shared with the other metric modules ------------------------------------------

def step_rule(name: str, step: Any) -> Any:
    """Rule of a ``step`` option: an int >= 1 (features per step), a float in (0, 1] (a
    fraction of the features) or None (the default)."""
    if step is None:
        return None
    fix = (f"pass an int >= 1 (features per step), a fraction in (0, 1] of the features, or "
           f"leave {name}=None (the default)")
    if isinstance(step, bool | np.bool_) or not isinstance(step, numbers.Real):
        raise OptionError(f"{name}={step!r} is not a number: {fix}")
    if isinstance(step, numbers.Integral):
        if step < 1:
            raise OptionError(f"{name}={step} is out of range (an int step must be at least 1): "
                              f"{fix}")
        return int(step)
    if not 0.0 < float(step) <= 1.0:
        raise OptionError(f"{name}={step!r} is out of range (a float step is a fraction of the "
                          f"features, in (0, 1]): {fix}")
    return float(step)


def parse_step(step: Any, d: int, option: str = "step") -> int:
    """Features per step (see :func:`step_rule`); None gives ``max(1, ceil(d / 100))``, a
    fraction ``f`` gives ``ceil(f·d)``."""
    step = step_rule(option, step)
    if step is None:
        return max(1, math.ceil(d / 100))
    if isinstance(step, int):
        return step
    return max(1, math.ceil(step * d - 1e-9))


def positions(order: np.ndarray) -> np.ndarray:
    """Inverse permutation per row: ``pos[r, j]`` = rank of feature ``j`` in ``order[r]``."""
    n, d = order.shape
    pos = np.empty_like(order)
    np.put_along_axis(pos, order, np.broadcast_to(np.arange(d), (n, d)), axis=1)
    return pos


def step_sizes(d: int, step: int) -> np.ndarray:
    """``k_i = min(i·step, d)`` for ``i = 0..L``."""
    L = math.ceil(d / step)
    return np.minimum(np.arange(L + 1) * step, d)


def trapezoid(curves: np.ndarray, k: np.ndarray, d: int) -> np.ndarray:
    """Trapezoid area of each row of ``curves`` over ``u_i = k_i / d`` on [0, 1] (own rule;
    ``np.trapz`` is gone from NumPy 2.4). Computed as ``Σ (k_i − k_{i−1})(c_i + c_{i−1}) /
    (2d)`` so that integer step widths add no rounding."""
    c = np.asarray(curves, dtype=np.float64)
    dk = np.diff(np.asarray(k)).astype(np.float64)
    return ((c[:, 1:] + c[:, :-1]) * dk).sum(axis=1) / (2.0 * d)


def removal_curve(inp: MetricInputs, order: np.ndarray, step: int,
                  mode: str) -> tuple[np.ndarray, np.ndarray]:
    """Curves ``(n, L + 1)`` and feature counts ``k`` ``(L + 1,)`` (abscissae ``u = k / d``) for ``order`` ``(n, d)``:
    ``mode="deletion"`` removes the top ``k_i`` features of the order, ``"insertion"`` keeps
    only them. One game call for all rows × interior steps."""
    n, d = order.shape
    k = step_sizes(d, step)
    L = len(k) - 1
    game = inp.game()
    v_full = game.v_full.numpy().astype(np.float64)
    v_empty = game.v_empty().numpy().astype(np.float64)
    curves = np.empty((n, L + 1), dtype=np.float64)
    first, last = (v_full, v_empty) if mode == "deletion" else (v_empty, v_full)
    curves[:, 0], curves[:, L] = first, last
    if L > 1:
        pos, ks = positions(order)[:, None, :], k[None, 1:L, None]  # rank < k_i: in T_i
        kept = pos >= ks if mode == "deletion" else pos < ks  # (n, L-1, d), in one pass
        curves[:, 1:L] = game(kept).numpy()
    return curves, k


def _normalise(curves: np.ndarray, v_full: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return curves / v_full[:, None]


class _CurveMetric(Metric):
    """Common machinery: ranking, one batched game call, optional normalisation by v(full)."""

    rows_split = True  # independent per-row scores: backend='ray' splits the rows

    needs = frozenset({"model"})
    applies_to = "any"
    stochastic = False
    default_output = "probability"
    defaults: ClassVar[dict] = {"step": None, "normalise_curve": False}
    option_rules: ClassVar[dict] = {"step": step_rule, "normalise_curve": Flag()}
    mode = "deletion"
    descending = True

    def _curves(self, inp: MetricInputs) -> tuple[np.ndarray, np.ndarray, int]:
        step = parse_step(inp.options.get("step"), inp.d)
        order = inp.order(descending=self.descending)
        curves, k = removal_curve(inp, order, step, self.mode)
        if inp.options.get("normalise_curve"):
            curves = _normalise(curves, inp.game().v_full.numpy().astype(np.float64))
        return curves, k, step

    def _settings(self, inp: MetricInputs, step: int) -> dict:
        return {"step": step, "order": "decreasing score" if self.descending else
                "increasing score", "curve": self.mode,
                "normalise": "v_full" if inp.options.get("normalise_curve") else None}

    def compute(self, inp: MetricInputs) -> dict:
        curves, k, step = self._curves(inp)
        return {"per_sample": trapezoid(curves, k, inp.d), "curves": curves,
                "extras": {"u": k / inp.d}, "settings": self._settings(inp, step)}


@register("metric", "deletion")
class Deletion(_CurveMetric):
    """Deletion AUC (Petsiuk et al. 2018): remove features by decreasing score; the area under
    ``v(D \\ T_i)`` on [0, 1] (lower is better). Options: ``step``, ``normalise_curve``."""

    name = "deletion"
    direction = "lower"
    mode = "deletion"


@register("metric", "insertion")
class Insertion(_CurveMetric):
    """Insertion AUC (Petsiuk et al. 2018): insert features by decreasing score into the fully
    removed input; the area under ``v(T_i)`` on [0, 1] (higher is better)."""

    name = "insertion"
    direction = "higher"
    mode = "insertion"


@register("metric", "morf")
class MoRF(_CurveMetric):
    """MoRF curve (Samek et al. 2017) = the deletion curve; score = its AUC (lower better)."""

    name = "morf"
    direction = "lower"
    mode = "deletion"


@register("metric", "lerf")
class LeRF(_CurveMetric):
    """LeRF curve: deletion in reversed order (least relevant, i.e. most negative when signed,
    first); score = its AUC (higher is better)."""

    name = "lerf"
    direction = "higher"
    mode = "deletion"
    descending = False


@register("metric", "aopc")
class AOPC(_CurveMetric):
    """Area over the perturbation curve (Samek et al. 2017):
    ``1/(L+1) Σ_{i=0..L} (c_0 − c_i)`` (``i = 0`` counted, as in the paper) of the MoRF curve
    (``order="morf"``, default; higher is better) or of the LeRF curve (``order="lerf"``;
    lower is better — the recorded direction is that of MoRF)."""

    name = "aopc"
    direction = "higher"
    defaults: ClassVar[dict] = {"step": None, "normalise_curve": False, "order": "morf"}
    option_rules: ClassVar[dict] = {**_CurveMetric.option_rules,
                                    "order": Choice(("morf", "lerf"), "order")}

    def compute(self, inp: MetricInputs) -> dict:
        which = inp.options["order"]
        step = parse_step(inp.options.get("step"), inp.d)
        order = inp.order(descending=which == "morf")
        curves, k = removal_curve(inp, order, step, "deletion")
        if inp.options.get("normalise_curve"):
            curves = _normalise(curves, inp.game().v_full.numpy().astype(np.float64))
        aopc = (curves[:, :1] - curves).mean(axis=1)
        settings = {"step": step, "order": which, "curve": "deletion",
                    "normalise": "v_full" if inp.options.get("normalise_curve") else None}
        return {"per_sample": aopc, "curves": curves, "extras": {"u": k / inp.d},
                "settings": settings}


@register("metric", "morf-lerf-gap")
class MoRFLeRFGap(_CurveMetric):
    """``AUC_LeRF − AUC_MoRF`` (higher is better): cancels much of the off-manifold effect
    common to both orders. ``curves`` holds the MoRF curves; ``extras`` the LeRF curves and
    both AUCs. Both orders go to the game in one call."""

    name = "morf-lerf-gap"
    direction = "higher"

    def compute(self, inp: MetricInputs) -> dict:
        step = parse_step(inp.options.get("step"), inp.d)
        morf_order = inp.order(descending=True)
        lerf_order = inp.order(descending=False)
        n = inp.n
        # one game call: stack the two orders' masks per row along the step axis
        d = inp.d
        k = step_sizes(d, step)
        L = len(k) - 1
        game = inp.game()
        v_full = game.v_full.numpy().astype(np.float64)
        v_empty = game.v_empty().numpy().astype(np.float64)
        morf = np.empty((n, L + 1))
        lerf = np.empty((n, L + 1))
        morf[:, 0] = lerf[:, 0] = v_full
        morf[:, L] = lerf[:, L] = v_empty
        if L > 1:
            kk = k[None, 1:L, None]
            kept = np.concatenate([~(positions(morf_order)[:, None, :] < kk),
                                   ~(positions(lerf_order)[:, None, :] < kk)], axis=1)
            vals = game(kept).numpy()
            morf[:, 1:L], lerf[:, 1:L] = vals[:, :L - 1], vals[:, L - 1:]
        u = k / d
        if inp.options.get("normalise_curve"):
            morf, lerf = _normalise(morf, v_full), _normalise(lerf, v_full)
        auc_m, auc_l = trapezoid(morf, k, d), trapezoid(lerf, k, d)
        settings = {"step": step, "curve": "deletion",
                    "normalise": "v_full" if inp.options.get("normalise_curve") else None}
        return {"per_sample": auc_l - auc_m, "curves": morf,
                "extras": {"u": u, "lerf_curves": lerf, "auc_morf": auc_m, "auc_lerf": auc_l},
                "settings": settings}
