"""Correlation-type faithfulness metrics: faithfulness correlation (Bhatt et al. 2020) and
estimate (Alvarez-Melis & Jaakkola 2018), monotonicity (Arya et al. 2019) and monotonicity
correlation (Nguyen & Martínez 2020).

Every metric submits all rows' masks to the game in one call. A correlation with zero variance
in either argument is NaN for that row (counted in ``n_nan`` and warned), never 0.
"""

from __future__ import annotations

import math
from typing import ClassVar

import numpy as np
from scipy.stats import rankdata

from .._warn import warn
from ..errors import InputError, OptionError
from ..inputs import Integer, Real
from ..registry import register
from ..subsets import floyd_draws, floyd_subsets
from .base import Metric, MetricInputs
from .checks import row_indices_rule
from .curves import parse_step, positions, removal_curve, step_rule, step_sizes


def pearson_rows(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pearson correlation of each row pair ``(a[r], b[r])``; rows where either is constant
    are NaN. Returns ``(r, constant)``."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    constant = np.all(a == a[:, :1], axis=1) | np.all(b == b[:, :1], axis=1)
    ac = a - a.mean(axis=1, keepdims=True)
    bc = b - b.mean(axis=1, keepdims=True)
    den = np.sqrt((ac * ac).sum(axis=1) * (bc * bc).sum(axis=1))
    with np.errstate(divide="ignore", invalid="ignore"):
        r = (ac * bc).sum(axis=1) / den
    r = np.clip(r, -1.0, 1.0)
    r[constant | ~np.isfinite(r)] = np.nan
    return r, constant | ~np.isfinite(r)


def spearman_rows(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Spearman correlation per row (Pearson of average ranks, as ``scipy.stats.spearmanr``)."""
    return pearson_rows(rankdata(a, axis=1), rankdata(b, axis=1))


def warn_nan(name: str, bad: np.ndarray, what: str) -> None:
    """One warning naming how many rows became NaN and why."""
    if bad.any():
        rows = np.flatnonzero(bad)
        warn(f"{name}: {len(rows)} row(s) ({rows[:10].tolist()}) have {what}; their "
             "score is NaN (counted in n_nan), never 0", RuntimeWarning)


def _v_full(inp: MetricInputs) -> np.ndarray:
    return inp.game().v_full.numpy().astype(np.float64)


def _groups(inp: MetricInputs, order: np.ndarray, step: int) -> np.ndarray:
    """Kept-masks ``(n, G, d)`` that remove group g = features ``order[:, g·step:(g+1)·step]``
    (the last group may be smaller)."""
    pos = positions(order)
    group = pos // step
    G = math.ceil(inp.d / step)
    return group[:, None, :] != np.arange(G)[None, :, None]


def _group_sums(scores: np.ndarray, order: np.ndarray, step: int) -> np.ndarray:
    n, d = scores.shape
    G = math.ceil(d / step)
    group = positions(order) // step
    out = np.zeros((n, G))
    np.add.at(out, (np.repeat(np.arange(n), d), group.ravel()), scores.ravel())
    return out


def group_step(inp: MetricInputs) -> int:
    """The ``step`` option (features per group), checked to leave at least two groups."""
    step = parse_step(inp.options.get("step"), inp.d)
    if inp.d < 2:
        raise InputError(f"a correlation over features needs at least 2 features; the "
                         f"attributions have {inp.d}: give features= with more groups")
    if math.ceil(inp.d / step) < 2:
        raise OptionError(f"step={inp.options.get('step')!r} leaves 1 group of the {inp.d} "
                          "features, and the correlation needs at least 2 groups: pass a step "
                          f"of at most {inp.d - 1} features")
    return step


class _GroupedMetric(Metric):
    """A correlation over features, or groups of ``step`` features."""

    defaults: ClassVar[dict] = {"step": 1}
    option_rules: ClassVar[dict] = {"step": step_rule}

    def check_inputs(self, inp: MetricInputs) -> None:
        group_step(inp)


@register("metric", "faithfulness-correlation")

class FaithfulnessCorrelation(Metric):
    """Faithfulness correlation (Bhatt et al. 2020). Per row, ``n_subsets`` (R = 100) subsets
    S_r of ``subset_size`` (k = max(1, round(0.1·d)), 1 ≤ k < d) features drawn uniformly
    without replacement (Floyd's algorithm on uniforms of the row's keyed generator); score =
    Pearson over r of ``Σ_{i∈S_r} a_i`` and ``v(D) − v(D \\ S_r)``.

    Options: ``n_subsets``, ``subset_size``, ``subsets`` (explicit feature indices ``(R, k)``
    or ``(n, R, k)``, for cross-checks against other libraries' draws), ``row_index`` (the
    global indices of the rows in a larger evaluated set, so that a slice draws the same
    subsets as the whole set; default ``0..n-1``)."""

    rows_split = True  # independent per-row scores: backend='ray' splits the rows

    name = "faithfulness-correlation"
    direction = "higher"
    needs = frozenset({"model"})
    applies_to = "any"
    stochastic = True
    default_output = "logit"
    defaults: ClassVar[dict] = {"n_subsets": 100, "subset_size": None, "subsets": None,
                                "row_index": None}
    option_rules: ClassVar[dict] = {"n_subsets": Integer(2, optional=False, example=100),
                                    "row_index": row_indices_rule}

    def check_inputs(self, inp: MetricInputs) -> None:
        n, d = inp.n, inp.d
        if inp.options.get("subsets") is None:
            Integer(1, d - 1, example=max(1, round(0.1 * d)))("subset_size",
                                                             inp.options.get("subset_size"))
        else:
            self._given_subsets(inp)
        rows = inp.options.get("row_index")
        if rows is not None and len(rows) != n:
            raise OptionError(f"row_index has {len(rows)} indices for {n} rows of x: pass "
                              "one global index per row (or leave row_index=None)")

    @staticmethod
    def _given_subsets(inp: MetricInputs) -> np.ndarray:
        """The ``subsets`` option as feature indices ``(n, R, k)``, checked."""
        n, d = inp.n, inp.d
        given = inp.options["subsets"]
        try:
            idx = np.asarray(given)
        except ValueError:  # ragged
            idx = np.asarray([], dtype=object)
        if idx.ndim == 2:
            idx = np.broadcast_to(idx, (n, *idx.shape))
        if idx.dtype.kind not in "iu" or idx.ndim != 3 or idx.shape[0] != n or idx.size == 0 \
                or idx.min() < 0 or idx.max() >= d:
            got = f"values up to {idx.max()}" if idx.dtype.kind in "iu" and idx.size else \
                f"{idx.dtype} values"
            raise OptionError(f"subsets must be feature indices in [0, {d}) of shape (R, k) or "
                              f"({n}, R, k); got shape {np.shape(given)} with {got}: pass "
                              "integer indices of existing features, or leave subsets=None "
                              "(drawn)")
        return idx.astype(np.int64)

    def _removed(self, inp: MetricInputs) -> np.ndarray:
        """The subsets ``S_r`` as masks ``(n, R, d)``, True = removed."""
        n, d = inp.n, inp.d
        if inp.options.get("subsets") is not None:
            idx = self._given_subsets(inp)
            removed = np.zeros((n, idx.shape[1], d), dtype=bool)
            np.put_along_axis(removed, idx, True, axis=2)
            return removed
        R = inp.options["n_subsets"]
        k = inp.options.get("subset_size")
        k = max(1, round(0.1 * d)) if k is None else k
        rows = inp.options.get("row_index")
        rows = np.arange(n) if rows is None else rows
        # R × min(k, d - k) uniforms from each row's keyed generator, Floyd's algorithm on
        # all rows at once (a row's subsets depend on its key only, not on the batch)
        m = floyd_draws(d, int(k))
        u = np.concatenate([inp.rng(int(g), 0).random((int(R), m)) for g in rows])
        return floyd_subsets(u, d, int(k)).reshape(n, int(R), d)

    def compute(self, inp: MetricInputs) -> dict:
        removed = self._removed(inp)
        n, R, _ = removed.shape
        scores = np.abs(inp.scores) if inp.options.get("abs") else inp.scores
        s = np.stack([removed[i] @ scores[i] for i in range(n)])  # Σ_{i∈S_r} a_i, (n, R)
        delta = _v_full(inp)[:, None] - inp.game()(~removed).numpy()
        r, bad = pearson_rows(s, delta)
        warn_nan(self.name, bad, "constant attribution sums or output changes")
        given = inp.options.get("subsets") is not None
        k = int(removed[0, 0].sum())
        return {"per_sample": r, "settings": {"n_subsets": R, "subset_size": k,
                                              "subsets": "given" if given else "drawn"}}


@register("metric", "faithfulness-estimate")
class FaithfulnessEstimate(_GroupedMetric):
    """Faithfulness estimate (Alvarez-Melis & Jaakkola 2018): deterministic; Pearson over
    features (or groups of ``step`` features in decreasing score order, as Quantus's
    ``features_in_step``) of the attribution sum and ``v(D) − v(D \\ group)``."""

    name = "faithfulness-estimate"
    direction = "higher"
    needs = frozenset({"model"})
    applies_to = "any"
    stochastic = False
    default_output = "logit"

    def compute(self, inp: MetricInputs) -> dict:
        step = group_step(inp)
        scores = np.abs(inp.scores) if inp.options.get("abs") else inp.scores
        game = inp.game()
        if step == 1:
            sums = scores
            vals = game(~np.eye(inp.d, dtype=bool)).numpy()  # shared masks, order-free
        else:
            order = inp.order(descending=True)
            sums = _group_sums(scores, order, step)
            vals = game(_groups(inp, order, step)).numpy()
        r, bad = pearson_rows(sums, _v_full(inp)[:, None] - vals)
        warn_nan(self.name, bad, "constant attributions or output changes")
        return {"per_sample": r, "settings": {"step": step}}


@register("metric", "monotonicity")
class Monotonicity(Metric):
    """Monotonicity (Arya et al. 2019): from the fully removed input, insert features in order
    of **increasing** signed score (``abs=True``: increasing |a|), ``step`` at a time (default
    ``max(1, ceil(d/100))``); the row passes iff the curve never decreases
    (``c_i ≥ c_{i−1} − atol``, ``atol = 0``). ``per_sample`` = passed (0/1); ``extras["fraction"]``
    = fraction of non-decreasing steps per row. Each step really copies x into the inserted
    positions (unlike Quantus 0.6.0, whose baseline is never filled with x)."""

    name = "monotonicity"
    direction = "higher"
    needs = frozenset({"model"})
    applies_to = "any"
    stochastic = False
    default_output = "probability"
    defaults: ClassVar[dict] = {"step": None, "atol": 0.0}
    option_rules: ClassVar[dict] = {"step": step_rule, "atol": Real(0.0, optional=False)}

    def compute(self, inp: MetricInputs) -> dict:
        step = parse_step(inp.options.get("step"), inp.d)
        atol = float(inp.options["atol"])
        order = inp.order(descending=False)
        curves, k = removal_curve(inp, order, step, "insertion")
        ok = np.diff(curves, axis=1) >= -atol
        passed = ok.all(axis=1).astype(np.float64)
        fraction = ok.mean(axis=1)
        return {"per_sample": passed, "curves": curves,
                "extras": {"fraction": fraction, "mean_fraction": float(fraction.mean()),
                           "u": k / inp.d},
                "settings": {"step": step, "atol": atol, "order": "increasing score"}}


@register("metric", "monotonicity-correlation")
class MonotonicityCorrelation(_GroupedMetric):
    """Monotonicity correlation (Nguyen & Martínez 2020): Spearman over features (or groups of
    ``step`` features in increasing |a| order) of ``|a_i|`` and
    ``E[(v(D) − v(D \\ {i}))²] / v(D)²``.

    The expectation is over the removal's draws. We use the game's own value of
    ``D \\ {i}`` (the removal's draws averaged, E-pred), i.e. ``(v(D) − E v(D \\ {i}))²``;
    for deterministic removals (baseline, blur) this is exact, for stochastic removals it drops
    the variance term of the paper's K = 16 draws. The division by ``v(D)²`` is one positive
    constant per row and does not change a rank correlation (it is skipped when v(D) = 0).
    The magnitude |a| is part of the definition (recorded as ``abs=True``)."""

    name = "monotonicity-correlation"
    direction = "higher"
    needs = frozenset({"model"})
    applies_to = "any"
    stochastic = False
    default_output = "probability"

    def compute(self, inp: MetricInputs) -> dict:
        step = group_step(inp)
        mag = np.abs(inp.scores)
        game = inp.game()
        if step == 1:
            sums = mag
            vals = game(~np.eye(inp.d, dtype=bool)).numpy()
        else:
            order = inp.order(mag, descending=False)
            sums = _group_sums(mag, order, step)
            vals = game(_groups(inp, order, step)).numpy()
        v_full = _v_full(inp)
        scale = np.where(v_full == 0, 1.0, v_full) ** 2
        var = (v_full[:, None] - vals) ** 2 / scale[:, None]
        r, bad = spearman_rows(sums, var)
        warn_nan(self.name, bad, "constant |attributions| or output changes")
        return {"per_sample": r, "settings": {"step": step, "abs": True,
                                              "expectation": "game value (E-pred)"}}


__all__ = ["FaithfulnessCorrelation", "FaithfulnessEstimate", "Monotonicity",
           "MonotonicityCorrelation", "pearson_rows", "spearman_rows", "step_sizes"]
