"""Sensitivity-n (Ancona, Ceolini, Öztireli & Gross 2018, "Towards better understanding of
gradient-based attribution methods for deep neural networks").

An attribution satisfies sensitivity-n when, for every subset ``S`` of ``n`` features, the sum
of its attributions equals the output change when ``S`` is removed. The paper measures how
close a method comes as the Pearson correlation, over random subsets ``S`` of size ``n``,
between ``Σ_{i∈S} a_i`` and ``v(D) − v(D \\ S)``, plotted as a curve over ``n``.

Per row and size ``n`` (``sizes``, or ``max(1, ⌊f·d⌋)`` for each ``f`` of ``fractions``, kept in
``1..d−1`` and made distinct), ``n_subsets`` subsets are drawn uniformly without replacement
(Floyd's algorithm on the row's keyed generator, one stream per size: a row's draws depend on
its key only, not on the batch). All rows × sizes × subsets go to the metric's game in one call;
removal is the explanation's own. ``curves`` = the correlation per row and size ``(n_rows,
n_sizes)``, ``extras["n"]`` the sizes and ``extras["curve"]`` the mean curve over rows; the
score of a row is the **mean of its curve** over the sizes (higher is better), NaN when the
correlation is undefined at some size (a constant sum or output change; warned, counted in
``n_nan``). The default output is ``"raw"``, the paper's pre-softmax target activation.

Deliberate differences from Quantus 0.6.0's ``SensitivityN``: it draws no random subsets
(at step ``n`` a row's subset is its top ``n`` features by decreasing attribution, removed
cumulatively), pairs the output change of that cumulative removal with the attribution of the
step's features alone (the paper's ``Σ_{i∈S} a_i`` only at ``n = 1``), and correlates over the
explained rows (one value per ``n``, not per row). The tests feed Quantus's subsets to this
metric in place of its draws: its game gives Quantus's output changes, and Quantus's curve is
the correlation over rows of those changes with the step's attribution. Explainiverse 0.15.2's
``compute_sensitivity_n`` follows the paper (one size per call); its draws come from
``numpy.random.default_rng(seed).choice``, ours from keyed generators, so the two agree in
distribution, and on Explainiverse's own subsets to rounding (tested).
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from ..errors import InputError, OptionError
from ..inputs import Integer
from ..registry import register
from ..subsets import floyd_draws, floyd_subsets
from .base import Metric, MetricInputs
from .correlation import pearson_rows, warn_nan
from .eraser import fraction_counts, fractions_rule

#: sizes as fractions of the features, from single features to 80 % (Quantus's
#: ``n_max_percentage``), roughly log-spaced as the paper's curves
SENSITIVITY_FRACTIONS = (0.01, 0.02, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8)


def sizes_rule(name: str, value: Any) -> tuple[int, ...] | None:
    """None, or a non-empty list of subset sizes (whole numbers >= 1; checked against the
    number of features with the inputs)."""
    if value is None:
        return None
    fix = f"pass subset sizes as whole numbers >= 1, e.g. {name}=(1, 2, 4), or leave {name}=None"
    arr = np.asarray(value).ravel() if not isinstance(value, str) else np.asarray([value])
    if arr.size == 0 or arr.dtype.kind not in "iu" or (arr < 1).any():
        raise OptionError(f"{name}={value!r} is not a list of subset sizes: {fix}")
    return tuple(int(v) for v in arr)


def subset_sizes(inp: MetricInputs) -> np.ndarray:
    """The distinct sizes ``n`` in ``1..d−1`` the curve is drawn at."""
    d = inp.d
    given = inp.options.get("sizes")
    if given is not None:
        return np.array(sorted(set(given)), dtype=np.int64)
    counts = fraction_counts(inp.options["fractions"], d)
    return np.unique(np.clip(counts, 1, d - 1))


@register("metric", "sensitivity-n")
class SensitivityN(Metric):
    """Sensitivity-n (Ancona et al. 2018): Pearson correlation, over ``n_subsets`` random
    subsets of size ``n``, of the subset's attribution sum and the output drop when it is
    removed; a curve over ``n``, scored by its mean (higher is better). Options:
    ``fractions`` (sizes as fractions of the features), ``sizes`` (explicit sizes, overriding
    ``fractions``), ``n_subsets=100``.

    Differences from Quantus 0.6.0's ``SensitivityN``: cumulative top-``n`` subsets instead of
    random ones, the step's attribution instead of the subset's sum, a correlation over rows
    instead of over subsets. Differences from Explainiverse 0.15.2's
    ``compute_sensitivity_n``: only the random draws (equal on its subsets). See
    :mod:`xai.metrics.sensitivity_n`."""

    rows_split = True  # independent per-row scores: backend='ray' splits the rows

    name = "sensitivity-n"
    direction = "higher"
    needs = frozenset({"model"})
    applies_to = "any"
    stochastic = True
    default_output = "raw"
    reference = ("closed form (linear model, baseline removal, exact attributions: 1 at "
                 "every n); the paper's Pearson definition recomputed on the drawn subsets; "
                 "Quantus 0.6.0 SensitivityN's output changes on its own subsets; "
                 "Explainiverse 0.15.2 compute_sensitivity_n on its subsets (when installed)")
    defaults: ClassVar[dict] = {"fractions": SENSITIVITY_FRACTIONS, "sizes": None,
                                "n_subsets": 100}
    option_rules: ClassVar[dict] = {"fractions": fractions_rule, "sizes": sizes_rule,
                                    "n_subsets": Integer(2, optional=False, example=100)}

    def check_inputs(self, inp: MetricInputs) -> None:
        d = inp.d
        if d < 2:
            raise InputError(f"sensitivity-n needs at least 2 features (subsets of 1..d-1 of "
                             f"them); the attributions have {d}: give features= with more "
                             "features")
        given = inp.options.get("sizes")
        if given is not None and max(given) > d - 1:
            raise OptionError(f"sizes={list(given)} holds sizes above d - 1 = {d - 1} (the "
                              f"attributions have {d} features): pass sizes in 1..{d - 1}")

    def compute(self, inp: MetricInputs) -> dict:
        sizes = subset_sizes(inp)
        R, d, n = int(inp.options["n_subsets"]), inp.d, inp.n
        removed = np.concatenate([self._draw(inp, int(m), j, R)
                                  for j, m in enumerate(sizes)], axis=1)  # (n, J·R, d)
        scores = np.abs(inp.scores) if inp.options.get("abs") else inp.scores
        sums = np.einsum("rsd,rd->rs", removed, scores)  # Σ_{i∈S} a_i
        game = inp.game()
        drops = game.v_full.numpy().astype(np.float64)[:, None] - game(~removed).numpy()
        J = len(sizes)
        r, bad = pearson_rows(sums.reshape(n * J, R), drops.reshape(n * J, R))
        curves = r.reshape(n, J)
        warn_nan(self.name, bad.reshape(n, J).any(axis=1),
                 "constant attribution sums or output changes at some size n")
        with np.errstate(invalid="ignore"):
            curve = curves.mean(axis=0)
        return {"per_sample": curves.mean(axis=1), "curves": curves,
                "extras": {"n": sizes, "fractions": sizes / d, "curve": curve},
                "settings": {"n": sizes.tolist(), "n_subsets": R,
                             "aggregate": "mean of the curve over n"}}

    @staticmethod
    def _draw(inp: MetricInputs, size: int, stream: int, R: int) -> np.ndarray:
        """Removed-masks ``(n, R, d)``: ``R`` uniform subsets of ``size`` features per row."""
        d, n = inp.d, inp.n
        m = floyd_draws(d, size)
        u = np.concatenate([inp.rng(i, stream).random((R, m)) for i in range(n)])
        return floyd_subsets(u, d, size).reshape(n, R, d)


__all__ = ["SENSITIVITY_FRACTIONS", "SensitivityN", "subset_sizes"]
