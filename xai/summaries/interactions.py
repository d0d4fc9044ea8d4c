"""Pairwise Shapley interactions: main effects in ``values``, pairs in ``extras["interactions"]``.

``ShapleyInteractions(index="k-SII")`` computes one of the indices of
:mod:`xai.summaries.interaction_indices` (k-SII, SII, STII, FSII, BII) of order 2 on any game
(any removal and behaviour). Exact by enumeration of all ``2^d`` coalitions for small ``d``;
otherwise sampled, with standard errors:

1. **Design.** Whole size strata are enumerated from the extremes inwards while the budget
   affords them (as in KernelSHAP); the rest of the budget draws complement pairs
   ``(T, N-T)``, sizes from the Shapley kernel's size distribution over the sizes left,
   coalitions uniform within their size. The pairs are split at random into ``folds`` folds
   (default two).
2. **Surrogate.** On the enumerated strata and every fold but one, a 2-additive game
   ``g(v(∅)) + sum_i b_i [i in T] + sum_{i<j} b_ij [i,j in T]`` is fitted to ``g(v(T))`` by
   Shapley-kernel weighted least squares, exact at ``∅`` and ``N`` (Faith-Shap's regression,
   Tsai et al. 2022, as in shapiq's KernelSHAP-IQ / RegressionFSII). With the identity link
   ``g`` its index is known in closed form; with the logit link (``link="auto"`` on
   probability games, as RA-KernelSHAP's logit-scale surrogate) the surrogate game
   ``sigmoid(...)`` is not 2-additive, and its index is computed by enumerating its ``2^d``
   coalitions without model calls (for ``d <= max_exact_surrogate``, else the identity link).
3. **Residual correction.** The index of the residual game ``v - surrogate`` is added: its
   sum over the enumerated strata exactly, over the other strata by importance sampling on the
   left-out fold's pairs (each pair one unit, ``c(T) r(T) / p(T)`` averaged over its two
   coalitions), which is unbiased for any surrogate (a control variate, as in SHAP-IQ's
   unbiased estimator, Fumagalli et al. 2023).
4. Each fold is left out once and the estimates are averaged (cross-fitting). The standard
   error is that of the importance-sampling means, from the spread of the units within each
   fold; the surrogates' own randomness is left out (it cancels to first order).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ..errors import BudgetError, InputError, OptionError
from ..models import one_thread, rowwise_product
from ..registry import register
from .base import Summary, SummaryResult, as_numpy, seed_sequence
from .exact import HARD_LIMIT, enumerate_masks
from .interaction_indices import EFFICIENT, PairwiseIndex, check_index, rowwise_dot
from .kernelshap import plan_strata, size_masks, size_mass, uniform_subsets

MAX_EXACT_FEATURES = 14
ESTIMATORS = ("auto", "exact", "sampled")
MIN_PAIRS = 8  # sampled complement pairs at the least (4 per fold, for a spread)
LINKS = ("auto", "logit", "identity")
EPS = 1e-9  # probabilities are clipped to [EPS, 1 - EPS] before the logit


def symmetric_pairs(pairs: np.ndarray, d: int) -> np.ndarray:
    """``(n, P, *tail)`` pair values as a symmetric ``(n, d, d, *tail)`` array, zero on the
    diagonal."""
    n, tail = pairs.shape[0], pairs.shape[2:]
    out = np.zeros((n, d, d, *tail))
    i, j = np.triu_indices(d, 1)
    out[:, i, j] = pairs
    out[:, j, i] = pairs
    return out


@register("summary", "shap-interactions", aliases=("shapley-interactions",))
class ShapleyInteractions(Summary):
    """Pairwise Shapley interactions of ``index`` ("k-SII", "SII", "STII", "FSII", "BII").

    ``values`` holds the main effects (order-1 terms of the index: for k-SII, STII and FSII
    those that make ``values.sum() + pairs (i<j) = v(N) - v(∅)``; for SII the Shapley values,
    for BII the Banzhaf values); the result's ``extras["interactions"]`` the symmetric
    ``(n, d, d[, k])`` pair values and ``extras["interaction_stderr"]`` their standard errors.
    ``estimator="auto"`` enumerates all ``2^d`` coalitions when ``d <= max_exact_features``
    (default 14) or when ``budget`` covers them, else samples (see the module docstring);
    ``"exact"`` and ``"sampled"`` force one. ``budget`` is in model rows per explicand.
    The sampled estimator's surrogate is fitted on the scale ``link`` ("auto": logit for
    probability games, else identity; "logit"; "identity") while ``d <= max_exact_surrogate``
    (its index then costs ``2^d`` coalitions of arithmetic, no model calls), and cross-fitted
    over ``folds`` folds.
    """

    name = "shap-interactions"
    efficient = False  # the main effects alone are not; main effects + pairs are for k-SII, ...

    def __init__(self, *, order: int = 2, index: str = "k-SII", budget: int | None = None,
                 seed: int | None = None, estimator: str = "auto",
                 max_exact_features: int = MAX_EXACT_FEATURES, link: str = "auto",
                 max_exact_surrogate: int = 16, folds: int = 2) -> None:
        if order != 2:
            raise OptionError(f"shap-interactions computes pairwise interactions: order={order!r}"
                              " is not supported; pass order=2.")
        self.order = order
        self.index = check_index(index)
        if estimator not in ESTIMATORS:
            from ..errors import unknown_name

            raise unknown_name("interaction estimator", estimator, ESTIMATORS)
        if max_exact_features > HARD_LIMIT:
            raise BudgetError(f"max_exact_features={max_exact_features} exceeds the hard limit "
                              f"{HARD_LIMIT} (2^{HARD_LIMIT} coalitions)")
        if link not in LINKS:
            from ..errors import unknown_name

            raise unknown_name("link", link, LINKS)
        self.link = link
        if int(folds) < 2:
            raise OptionError(f"folds must be at least 2 (cross-fitting); got {folds!r}.")
        self.folds = int(folds)
        if int(max_exact_surrogate) > HARD_LIMIT:
            raise BudgetError(f"max_exact_surrogate={max_exact_surrogate} exceeds the hard "
                              f"limit {HARD_LIMIT} (2^{HARD_LIMIT} coalitions)")
        self.max_exact_surrogate = int(max_exact_surrogate)
        self.budget = budget
        self.seed = seed
        self.estimator = estimator
        self.max_exact_features = max_exact_features

    # -- planning
    def _exact_rows(self, game) -> int:
        return (2**game.d - 1) * game.rows_per_coalition + 1

    def _is_exact(self, game) -> bool:
        d = game.d
        if self.estimator == "exact":
            return True
        if self.estimator == "sampled":
            return False
        if d <= self.max_exact_features and (self.budget is None or
                                             self.budget >= self._exact_rows(game)):
            return True
        return d <= HARD_LIMIT and self.budget is not None and \
            self.budget >= self._exact_rows(game)

    def _coalitions(self, game) -> int:
        """Coalitions besides ``∅`` and ``N`` the sampled estimator may evaluate."""
        d, K = game.d, game.rows_per_coalition
        budget = self.budget
        if budget is None:
            budget = (2048 + d * (d - 1)) * K + 1
        return (budget - K - 1) // K

    def check(self, game) -> None:
        from ..inputs import check_option

        self.budget = check_option("budget", self.budget)
        if game.sample_rows is not None:
            raise InputError("shap-interactions needs one game per explicand; a row-sampled "
                             "dataset game (one data row per unit, as SAGE) has none. Explain "
                             "rows locally, or the dataset without row sampling.")
        d, K = game.d, game.rows_per_coalition
        if d < 2:
            raise InputError(f"pairwise interactions need at least 2 features; got d={d}.")
        if self._is_exact(game):
            if d > max(self.max_exact_features, HARD_LIMIT if self.budget else 0):
                raise BudgetError(
                    f"exact shap-interactions with d={d} features needs 2^{d} coalitions, above"
                    f" max_exact_features={self.max_exact_features}: use "
                    "estimator='sampled' (with standard errors) or group features.")
            if self.budget is not None and self.budget < self._exact_rows(game):
                raise BudgetError(
                    f"exact shap-interactions with d={d} needs {self._exact_rows(game)} model "
                    f"rows at K_rem={K}, more than budget={self.budget}: raise the budget or "
                    "use estimator='sampled'.")
            return
        n_coal = self._coalitions(game)
        if n_coal < 2 * MIN_PAIRS:
            need = 2 * MIN_PAIRS * K + K + 1
            raise BudgetError(
                f"budget {self.budget} rows is too small for sampled shap-interactions with "
                f"d={d} features at K_rem={K} rows per coalition: it needs at least {need} "
                "rows. Raise budget, shrink the background, or group features.")
        p = d + d * (d - 1) // 2
        need_bytes = 8 * p * (n_coal + 2) * 3
        if need_bytes > game.memory_cap:
            raise BudgetError(
                f"sampled shap-interactions with d={d} features and {n_coal} coalitions needs "
                f"about {need_bytes / 2**20:.0f} MiB of coefficients, more than memory_cap "
                f"({game.memory_cap / 2**20:.0f} MiB): lower budget, raise memory_cap, or "
                "group features.")

    def planned_rows(self, game) -> int:
        if self._is_exact(game):
            return game.planned_rows(2**game.d - 2)
        return game.planned_rows(self._coalitions(game))

    def describe(self) -> dict:
        return {"name": self.name, "index": self.index, "order": self.order,
                "budget": self.budget, "seed": self.seed, "estimator": self.estimator,
                "max_exact_features": self.max_exact_features, "link": self.link,
                "max_exact_surrogate": self.max_exact_surrogate, "folds": self.folds}

    # -- computing
    def __call__(self, game, rows=None) -> SummaryResult:
        rows = np.arange(game.n) if rows is None else np.asarray(rows)
        self.check(game)
        op = PairwiseIndex(self.index, game.d)
        if self._is_exact(game):
            est, se, units, coalitions, extras = self._exact(game, rows, op)
            converged = np.ones(len(rows), bool)
        else:
            est, se, units, coalitions, extras = self._sampled(game, rows, op)
            converged = np.zeros(len(rows), bool)
        d = game.d
        extras = {**extras, "interactions": symmetric_pairs(est[:, d:], d),
                  "interaction_stderr": symmetric_pairs(se[:, d:], d),
                  "efficient": self.index in EFFICIENT}
        n = len(rows)
        return SummaryResult(est[:, :d], se[:, :d], as_numpy(game.v_empty(rows)),
                             np.full(n, units), converged, np.full(n, coalitions), extras)

    def _exact(self, game, rows, op: PairwiseIndex):
        d, n = game.d, len(rows)
        tail = tuple(game.value_shape)
        p = d + op.n_pairs
        per_mask = n * max(1, math.prod(tail)) * 8 * 4 + p * 16
        block = int(max(256, min(2**d, game.memory_cap // per_mask)))
        total = np.zeros((n, p, *tail))
        for a in range(0, 2**d, block):
            masks = enumerate_masks(d, a, min(2**d, a + block))
            vals = as_numpy(game(masks, rows)).astype(np.float64)
            total += rowwise_product(torch.as_tensor(vals), torch.as_tensor(
                op.coefficients(masks))).numpy()
        return total, np.zeros_like(total), 2**d, 2**d, {"estimator": "exact"}

    def _link(self, game) -> str:
        """The surrogate's scale: logit for probability games (``link="auto"``) while its
        index can be enumerated (``d <= max_exact_surrogate``), else identity."""
        link = self.link
        if link == "auto":
            link = "logit" if game.value_scale == "probability" else "identity"
        return link if game.d <= self.max_exact_surrogate else "identity"

    def _sampled(self, game, rows, op: PairwiseIndex):
        d, n = game.d, len(rows)
        rng = np.random.default_rng(seed_sequence(self.seed))
        n_coal = self._coalitions(game)
        enum, probs = plan_strata(d, n_coal - 2 * MIN_PAIRS)  # leaves MIN_PAIRS pairs
        if not probs.any():  # the budget covers every stratum
            return self._exact(game, rows, op)
        enum_masks = np.concatenate([size_masks(d, s) for s in enum]) if enum else \
            np.zeros((0, d), bool)
        units = (n_coal - len(enum_masks)) // 2
        K = min(self.folds, units // (MIN_PAIRS // 2))
        sizes = rng.choice(d + 1, size=units, p=probs)
        T = uniform_subsets(rng, sizes, d)
        masks = np.concatenate([enum_masks, T, ~T])
        tail = tuple(game.value_shape)
        k = max(1, math.prod(tail))
        v = as_numpy(game(masks, rows)).astype(np.float64).reshape(n, len(masks), k)
        v0 = as_numpy(game.v_empty(rows)).astype(np.float64).reshape(n, k)
        vN = as_numpy(game.v_full[np.asarray(rows)]).astype(np.float64).reshape(n, k)
        link = self._link(game)
        g, ginv = _LINKS[link]
        g0 = g(v0)
        t = g(v) - g0[:, None]  # the fit's targets, on the link scale
        X = op.design(masks)
        C = op.coefficients(masks)
        n_enum = len(enum_masks)
        mass = size_mass(d)
        # kernel weight of each coalition in the fit: its size's mass over the size's count
        # for the enumerated strata; the sampled sizes' mass shared by the fold's coalitions
        w_enum = np.array([mass[s] / math.comb(d, s) for s in enum_masks.sum(1)])
        rest = float(mass[probs > 0].sum())
        p_T = probs[sizes] / np.array([math.comb(d, int(s)) for s in sizes], dtype=float)
        p_C = probs[d - sizes] / np.array([math.comb(d, int(d - s)) for s in sizes],
                                          dtype=float)
        folds = np.array_split(rng.permutation(units), K)
        est = np.zeros((n, X.shape[1], k))
        var = np.zeros_like(est)
        betas = []
        for f in range(K):
            test = folds[f]
            fit = np.concatenate([folds[h] for h in range(K) if h != f])
            rows_fit = np.concatenate([np.arange(n_enum), n_enum + fit, n_enum + units + fit])
            w = np.concatenate([w_enum, np.full(2 * len(fit), rest / (2 * len(fit)))])
            beta = _constrained_fit(X[rows_fit], w, t[:, rows_fit], g(vN) - g0)
            betas.append(beta)
            fitted = rowwise_dot(beta.transpose(0, 2, 1).reshape(n * k, -1), X.T)  # (n k, m)
            resid = v - ginv(g0[:, None] + fitted.reshape(n, k, -1).transpose(0, 2, 1))
            if n_enum:  # (n, m, k) residuals
                est += rowwise_product(torch.as_tensor(resid[:, :n_enum]),
                                       torch.as_tensor(C[:n_enum])).numpy() / K
            a, b = n_enum + test, n_enum + units + test
            z = 0.5 * (np.einsum("uq,nuk->nuqk", C[a] / p_T[test][:, None], resid[:, a]) +
                       np.einsum("uq,nuk->nuqk", C[b] / p_C[test][:, None], resid[:, b]))
            est += z.mean(1) / K
            var += z.var(1, ddof=1) / len(test) / K**2
        # the surrogates' own index: closed form on the identity scale, else by enumeration
        if link == "identity":
            est += sum(op.of_two_additive(beta) for beta in betas) / K
        else:
            est += _enumerated_index(op, np.concatenate(betas, axis=2), np.tile(g0, K), ginv,
                                     game.memory_cap).reshape(n, -1, K, k).mean(2)
        distinct = len(np.unique(np.packbits(masks, axis=1), axis=0)) + 2
        extras = {"estimator": "sampled", "link": link,
                  "enumerated_sizes": sorted(int(s) for s in enum),
                  "budget": int(self._coalitions(game) * game.rows_per_coalition
                                + game.rows_per_coalition + 1)}
        shape = (n, X.shape[1], *tail)
        return est.reshape(shape), np.sqrt(var).reshape(shape), units, distinct, extras


def _logit(v: np.ndarray) -> np.ndarray:
    v = np.clip(v, EPS, 1 - EPS)
    return np.log(v) - np.log1p(-v)


def _sigmoid(v: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * v))


_LINKS = {"identity": (lambda v: v, lambda v: v), "logit": (_logit, _sigmoid)}


def _enumerated_index(op: PairwiseIndex, beta: np.ndarray, g0: np.ndarray, ginv,
                      memory_cap: int) -> np.ndarray:
    """The index ``(n, d + P, k)`` of the surrogate games ``ginv(g0 + x_T beta)`` (``beta``
    ``(n, d + P, k)``, ``g0`` ``(n, k)``) by enumerating their ``2^d`` coalitions (no model
    calls), in blocks of coalitions whose design, coefficients and values fit ``memory_cap``."""
    n, p, k = beta.shape
    d = op.d
    W = beta.transpose(1, 0, 2).reshape(p, n * k)
    offset = g0.reshape(1, n * k)
    out = np.zeros((n * k, p))
    block = int(max(256, min(2**d, memory_cap // (8 * 3 * (2 * p + n * k)))))
    for a in range(0, 2**d, block):
        masks = enumerate_masks(d, a, min(2**d, a + block))
        out += rowwise_dot(ginv(offset.T + rowwise_dot(W.T, op.design(masks).T)),
                           op.coefficients(masks))
    return out.reshape(n, k, p).transpose(0, 2, 1)


def _constrained_fit(X: np.ndarray, w: np.ndarray, y: np.ndarray,
                     total: np.ndarray) -> np.ndarray:
    """``beta`` ``(n, p, k)`` minimising ``sum_T w_T (y_T - x_T beta)^2`` subject to
    ``sum beta = total`` (the grand coalition exact), one design for every explicand; the
    minimum-norm solution where the design does not determine every coefficient."""
    p = X.shape[1]
    K = np.zeros((p + 1, p + 1))
    K[:p, :p] = rowwise_dot(X.T, w[:, None] * X)
    K[:p, p] = K[p, :p] = 1.0
    n, _, k = y.shape
    rhs = np.concatenate([rowwise_product(torch.as_tensor(y * w[:, None]),
                                          torch.as_tensor(X)).numpy(), total[:, None]], 1)
    with one_thread():  # the same bits on any machine
        Kinv = torch.linalg.pinv(torch.as_tensor(K), hermitian=True).numpy()
    sol = rowwise_dot(rhs.transpose(0, 2, 1).reshape(n * k, p + 1), Kinv.T)  # K symmetric
    return sol[:, :p].reshape(n, k, p).transpose(0, 2, 1)
