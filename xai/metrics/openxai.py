"""OpenXAI's prediction-gap metrics (Agarwal et al. 2022, "OpenXAI: Towards a Transparent
Evaluation of Model Explanations"): ``pgi`` and ``pgu``.

Per row, the ``k`` features of largest ``|a|`` (PGI) or all the others (PGU) are perturbed with
Gaussian noise ``N(0, sigma²)`` added to each of their input elements, and the score is the
mean over ``n_samples`` draws of ``|f(x') − f(x)|`` for the row's target on the metric's
output scale (OpenXAI: the predicted probability). Defaults are those of OpenXAI's benchmark
configuration: ``k=0.25`` (a fraction of the features, rounded as OpenXAI does: ``int(k·d)``,
at least 1), ``sigma=0.1`` (in input units, the same for every feature), ``n_samples=100``.
``auc=True`` (which that configuration sets) gives OpenXAI's area variant: the trapezoid area
of the scores at ``k = 1..K`` over ``[0, 1]`` (with the same draws for every ``k``, as OpenXAI's
per-row seed gives).

No library computes these scores on given inputs to compare with: OpenXAI's
``eval_pred_faithfulness`` needs its own model classes and perturbation objects, and
Explainiverse 0.15.2's ``compute_pgi`` / ``compute_pgu`` are, by their own documentation, a
deterministic variant that replaces the features by a baseline instead of adding noise: they
equal ``|comprehensiveness|`` / ``|sufficiency|`` at the one fraction ``k`` with ``abs=True``
and a baseline removal (tested), not these metrics. The tests check the closed form on linear
models instead.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np

from ..errors import OptionError
from ..inputs import Flag, Integer, Real
from ..registry import register
from .base import Metric, MetricInputs
from .perturbation import target_values

_BLOCK = 1 << 22  # input values per block of perturbed copies


def top_k_rule(name: str, k: Any) -> Any:
    """``k``: a fraction in (0, 1) of the features, or a whole number of them (>= 1)."""
    if isinstance(k, bool | np.bool_) or not isinstance(k, int | float | np.integer |
                                                          np.floating):
        raise OptionError(f"{name}={k!r} is not a number: pass a fraction of the features in "
                          "(0, 1) or a whole number of features >= 1")
    k = float(k)
    if not math.isfinite(k) or k <= 0 or (k >= 1 and not k.is_integer()):
        raise OptionError(f"{name}={k:g} is out of range: pass a fraction of the features in "
                          "(0, 1) or a whole number of features >= 1")
    return int(k) if k >= 1 else k


def top_k_count(k: float, d: int) -> int:
    """The number of features ``k`` stands for among ``d`` (OpenXAI's rounding of a
    fraction: ``int(k·d)``, at least 1)."""
    return int(k) if k >= 1 else max(1, int(k * d))


class PredictionGap(Metric):
    """Shared computation of PGI and PGU; ``perturb_top`` says which features are perturbed."""

    needs = frozenset({"model"})
    applies_to = "any"
    stochastic = True
    default_output = "probability"
    reference = ("OpenXAI's eval_pred_faithfulness definition; closed form "
                 "E|w_S·z| = sigma·||w_S||·sqrt(2/pi) on linear models")
    rows_split = True
    perturb_top: ClassVar[bool] = True
    defaults: ClassVar[dict] = {"k": 0.25, "sigma": 0.1, "n_samples": 100, "auc": False}
    option_rules: ClassVar[dict] = {"k": top_k_rule,
                                    "sigma": Real(0.0, low_open=True, optional=False),
                                    "n_samples": Integer(1, optional=False, example=100),
                                    "auc": Flag()}

    def check_inputs(self, inp: MetricInputs) -> None:
        k = inp.options["k"]
        if k >= 1 and k > inp.d:
            raise OptionError(f"k={k} is out of range: the attributions have {inp.d} features; "
                              f"pass k in 1..{inp.d} or a fraction in (0, 1)")

    def compute(self, inp: MetricInputs) -> dict:
        o = inp.options
        K = top_k_count(o["k"], inp.d)
        ks = range(1, K + 1) if o["auc"] else [K]
        order = inp.order(np.abs(inp.scores))  # by magnitude, as OpenXAI ranks
        gaps = np.stack([self._gaps(inp, order, k) for k in ks])  # (len(ks), n)
        if o["auc"] and K > 1:
            per_sample = np.trapezoid(gaps, np.arange(K) / (K - 1), axis=0)
        else:
            per_sample = gaps[-1]
        return {"per_sample": per_sample,
                "curves": gaps.T if o["auc"] else None,
                "extras": {"k": K, "perturbed": "top-k" if self.perturb_top else "all but top-k"},
                "settings": {"k": K, "rank": "|a|"}}

    def _gaps(self, inp: MetricInputs, order: np.ndarray, k: int) -> np.ndarray:
        """Per row, the mean |f(x') − f(x)| over the row's draws with ``k`` top features."""
        o = inp.options
        n, N = inp.n, o["n_samples"]
        X = inp.X.reshape(n, -1)
        D = X.shape[1]
        top = np.zeros((n, inp.d + 1), dtype=bool)  # column d: elements of no feature
        np.put_along_axis(top, order[:, :k], True, axis=1)
        perturbed = top if self.perturb_top else ~top
        perturbed[:, inp.d] = False
        idx = inp.fmap.full_index(inp.X.shape[1:])
        idx = np.broadcast_to(np.where(idx < 0, inp.d, idx), (n, D))
        on = np.take_along_axis(perturbed, idx, axis=1)  # (n, D) elements to perturb
        out = np.empty(n)
        step = max(1, _BLOCK // max(N * D, 1))
        for s in range(0, n, step):
            rows = np.arange(s, min(n, s + step))
            noise = np.stack([inp.rng(i, 0).normal(0.0, o["sigma"], (N, D)) for i in rows])
            Xp = X[rows, None, :] + noise * on[rows, None, :]
            Xp = Xp.reshape(len(rows) * N, *inp.X.shape[1:]).astype(inp.X.dtype, copy=False)
            v_full, vals = target_values(inp, Xp, np.repeat(rows, N))
            out[rows] = np.abs(vals.reshape(len(rows), N) - v_full[rows, None]).mean(1)
        return out


@register("metric", "pgi")
class PGI(PredictionGap):
    """Prediction gap on important features (OpenXAI, Agarwal et al. 2022): the mean
    ``|f(x') − f(x)|`` when the top-``k`` features by ``|a|`` get Gaussian noise; higher is
    better (the features the explanation calls important move the prediction).

    Options: ``k=0.25`` (fraction of the features, or a count), ``sigma=0.1`` (noise SD in
    input units), ``n_samples=100`` (draws per row), ``auc=False`` (True: OpenXAI's area over
    ``k = 1..K``; ``curves`` then holds the gap per ``k``). Cost: ``n·(n_samples + 1)`` model rows
    (``n·(K·n_samples + 1)`` with ``auc``).

    Differences from OpenXAI: the prediction watched is the row's target (OpenXAI reads column
    0 of its binary classifiers' probabilities, whose change equals that of the other class);
    noise goes to every input element of a perturbed feature (OpenXAI is tabular: one element
    per feature); discrete features are not flipped (xai perturbs real-valued inputs only); ties
    in ``|a|`` are broken by the ``ties`` option, not by ``torch.topk``; draws come from the
    row's keyed generator, not ``torch.manual_seed(row)``; ``auc`` defaults to False (one
    ``k``), OpenXAI's benchmark sets it. Differences from Explainiverse 0.15.2's
    ``compute_pgi``: it replaces the top-``k`` features with a baseline once instead of adding
    noise, which is ``|comprehensiveness|`` at the one fraction ``k`` with ``abs=True``.
    """

    name = "pgi"
    direction = "higher"
    perturb_top = True


@register("metric", "pgu")
class PGU(PredictionGap):
    """Prediction gap on unimportant features (OpenXAI, Agarwal et al. 2022): as ``pgi`` with
    every feature *outside* the top ``k`` perturbed; lower is better. Options, cost and the
    differences from OpenXAI as ``pgi``. Differences from Explainiverse 0.15.2's
    ``compute_pgu``: a baseline replacement of the other features, ``|sufficiency|`` at the
    one fraction ``k`` with ``abs=True``."""

    name = "pgu"
    direction = "lower"
    perturb_top = False
