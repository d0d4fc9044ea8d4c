"""LIME's weighted additive surrogate (Ribeiro, Singh & Guestrin 2016) on the game's
coalitions: exponential kernel on the distance to the all-kept vector, weighted ridge with an
unpenalised intercept, optional feature selection, sandwich standard errors.

Samples are antithetic pairs by default (every Bernoulli(1/2) coalition with its complement):
each sample keeps lime's distribution, so the surrogate estimated is lime's, with a lower
variance (a complement pair balances the design); the standard errors treat a pair as one
cluster.

``sampling="stratified"`` draws coalitions by strata of the number of kept features (Rashid,
Amparore, Ferrari & Verda, "Using Stratified Sampling to Improve LIME Image Explanations",
AAAI 2024): every size ``k = 0..d`` gets an equal share of the samples, drawn uniformly among
the coalitions of that size, and each sample's kernel weight is multiplied by the adjustment
factor ``W_k / (n_k / N)`` (``W_k = C(d, k) / 2^d`` the share of size ``k`` among all
coalitions, ``n_k`` of the ``N`` samples of that size), so that the weighted regression's
normal equations estimate the same moments as Bernoulli(1/2) sampling does, without bias."""

from __future__ import annotations

import numpy as np

from ..errors import unknown_name
from ..registry import register
from ..subsets import floyd_draws, floyd_subsets
from .base import SamplingSummary, as_numpy

SAMPLINGS = ("uniform", "stratified")
SELECTIONS = ("none", "auto", "forward_selection", "highest_weights", "lasso_path")
#: most bytes of working arrays :func:`cluster_score_variance` holds at a time
SANDWICH_BLOCK_BYTES = 32 * 2**20


def lime_distance(Z: np.ndarray, distance: str) -> np.ndarray:
    """Distance ``D(z)`` of binary samples ``Z`` (m, d) to the all-kept vector."""
    d = Z.shape[1]
    kept = Z.sum(1)
    if distance == "cosine":
        return 1 - np.sqrt(kept / d)
    if distance == "euclidean":
        return np.sqrt(d - kept)
    raise unknown_name("LIME distance", distance, ("cosine", "euclidean"))


def lime_weights(Z: np.ndarray, distance: str, width: float) -> np.ndarray:
    """Kernel weights ``exp(-D(z)^2 / (2 w^2))`` of binary samples ``Z`` (m, d)."""
    return np.exp(-(lime_distance(Z, distance) ** 2) / (2 * width ** 2))


#: smallest kernel weight of a coalition that keeps half the features (relative to the
#: all-kept sample's weight 1) for which a fit is more than the ridge penalty's zeros
MIN_HALF_WEIGHT = 1e-12


def check_kernel_width(width: float, distance: str, d: int) -> None:
    """``OptionError`` for a kernel so narrow that every sampled coalition gets a negligible
    weight: the ridge fit would return zeros whatever the model does."""
    from ..errors import OptionError
    from ..inputs import check_option

    width = check_option("kernel_width", width)
    half = np.zeros((1, d), dtype=bool)
    half[0, : (d + 1) // 2] = True  # keeps half the features (rounded up)
    weight = lime_weights(half, distance, width)[0]
    if d > 1 and weight < MIN_HALF_WEIGHT:
        # exp(-D^2 / (2 w^2)) >= MIN_HALF_WEIGHT  <=>  w >= D / sqrt(2 ln(1 / MIN_HALF_WEIGHT))
        smallest = lime_distance(half, distance)[0] / np.sqrt(2 * np.log(1 / MIN_HALF_WEIGHT))
        raise OptionError(
            f"kernel_width={width:g} is too small for d={d} features with the {distance} "
            f"distance: a coalition keeping half of them weighs {weight:.1e} against the "
            f"explicand's 1, so the fit would return zeros. Use kernel_width >= "
            f"{smallest:.3g} (or the default, None)")


def ridge_inverse(X: np.ndarray, w: np.ndarray, alpha: float) -> np.ndarray:
    """Inverse of the weighted ridge normal matrix ``M = Xᵀ W X + alpha I`` (the intercept,
    column 0, unpenalised): by Cholesky of the small ``(p, p)`` system; a pseudo-inverse when
    ``M`` is (numerically) singular, e.g. ``alpha = 0`` with collinear samples."""
    reg = alpha * np.eye(X.shape[1])
    reg[0, 0] = 0.0
    M = (X * w[:, None]).T @ X + reg
    try:
        L = np.linalg.cholesky(M)
    except np.linalg.LinAlgError:
        L = None
    if L is None or np.diag(L).min() ** 2 <= 1e-12 * np.diag(M).max():
        return np.linalg.pinv(M, hermitian=True)
    Li = np.linalg.solve(L, np.eye(len(M)))  # M⁻¹ = L⁻ᵀ L⁻¹
    return Li.T @ Li


def _column_sums(M: np.ndarray) -> np.ndarray:
    """Sums down the columns of ``M`` ``(m, r)``, each column's in one fixed order whatever
    ``r``: row by row over at least two columns (a zero column added), where a vector-matrix
    product's kernels and a single column's pairwise sum would round a column by ``r``."""
    return np.hstack([M, np.zeros((len(M), 1))]).sum(0)[:-1]


def cluster_score_variance(H: np.ndarray, resid: np.ndarray, starts: np.ndarray,
                           sizes: np.ndarray) -> np.ndarray:
    """``(p, r)``: ``Σ_c (Σ_{i∈c} H[:, i] resid[i, j])²`` over the clusters ``c`` of samples
    (consecutive, first sample ``starts``, ``sizes``): the meat of the cluster sandwich.

    Each ``(f, j)`` depends on column ``j`` of ``resid`` only, summed in one fixed order (a
    row's result does not depend on the others in the call). Clusters of at most two samples
    (complement pairs) take two products per cluster for all columns at once, a zero column
    standing in for a singleton's partner; larger clusters sum by ``reduceat`` per column. The
    values are the same either way, bit for bit."""
    p, m = H.shape
    r = resid.shape[1]
    if len(sizes) and sizes.max() > 2:
        return np.stack([(np.add.reduceat(H * resid[:, j], starts, axis=1) ** 2).sum(1)
                         for j in range(r)], 1)
    partner = np.where(sizes == 2, starts + 1, m)  # column m: zeros
    Hz = np.zeros((p, m + 1))
    Hz[:, :m] = H
    Ha, Hb = Hz[:, starts], Hz[:, partner]
    out = np.empty((p, r))
    block = max(1, SANDWICH_BLOCK_BYTES // (32 * (m + 1)))  # columns at a time: 4 arrays
    for a in range(0, r, block):
        RT = np.zeros((min(block, r - a), m + 1))
        RT[:, :m] = resid[:, a:a + block].T
        Ra, Rb = RT[:, starts], RT[:, partner]
        S, T = np.empty(Ra.shape), np.empty(Ra.shape)
        for f in range(p):  # (columns, clusters) per feature: each row summed on its own
            np.multiply(Ra, Ha[f], out=S)
            np.multiply(Rb, Hb[f], out=T)
            S += T
            np.multiply(S, S, out=S)
            out[f, a:a + block] = S.sum(1)
    return out


def weighted_ridge(Z: np.ndarray, y: np.ndarray, w: np.ndarray, alpha: float):
    """Solve ``min sum w (y - b0 - Z beta)^2 + alpha |beta|^2`` for many right-hand sides
    ``y`` (m, r). Returns coefficients (r, d+1) (intercept first) and the inverse matrix."""
    X = np.hstack([np.ones((len(Z), 1)), Z.astype(np.float64)])
    Minv = ridge_inverse(X, w, alpha)
    coef = (Minv @ (X.T @ (w[:, None] * y))).T
    return coef, Minv, X


def stratum_allocation(n: int, d: int, rng: np.random.Generator) -> np.ndarray:
    """Samples per size ``k = 0..d`` ``(d + 1,)``: equal shares (the paper's allocation), a
    size with fewer coalitions than its share capped at ``C(d, k)`` (it is enumerated) and the
    rest shared equally among the others; a remainder goes to sizes drawn at random."""
    from math import comb

    cap = np.array([comb(d, k) for k in range(d + 1)], dtype=object)
    alloc = np.zeros(d + 1, dtype=np.int64)
    left, open_ = int(n), np.ones(d + 1, dtype=bool)
    while left > 0 and open_.any():
        share = left // int(open_.sum())
        room = np.array([cap[k] - alloc[k] if open_[k] else 0 for k in range(d + 1)],
                        dtype=object)
        full = open_ & np.array([room[k] <= share for k in range(d + 1)])
        if full.any():  # these strata are enumerated; share the rest again
            for k in np.flatnonzero(full):
                alloc[k] += int(room[k])
                left -= int(room[k])
            open_ &= ~full
            continue
        alloc[open_] += share
        left -= share * int(open_.sum())
        extra = rng.choice(np.flatnonzero(open_), size=left, replace=False)
        alloc[extra] += 1
        left = 0
    return alloc


def stratified_coalitions(n: int, d: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` coalitions ``(n, d)`` drawn by strata of their size (:func:`stratum_allocation`):
    an enumerated stratum lists each coalition of its size once, the others draw uniformly
    random subsets of their size (Floyd's algorithm); rows are shuffled. More samples than
    the ``2^d`` coalitions enumerate them all once per ``2^d`` and allocate the rest."""
    from itertools import combinations
    from math import comb

    parts, left = [], int(n)
    while left > 0:  # more than 2^d samples: every coalition once per pass
        alloc = stratum_allocation(left, d, rng)
        left -= int(alloc.sum())
        for k, n_k in enumerate(alloc):
            if n_k == 0:
                continue
            if n_k == comb(d, k):
                Z = np.zeros((n_k, d), dtype=bool)
                for i, kept in enumerate(combinations(range(d), k)):
                    Z[i, list(kept)] = True
            else:
                Z = floyd_subsets(rng.random((n_k, floyd_draws(d, k))), d, k)
            parts.append(Z)
    Z = np.concatenate(parts) if parts else np.zeros((0, d), dtype=bool)
    return Z[rng.permutation(len(Z))]


def stratum_adjustment(Z: np.ndarray) -> np.ndarray:
    """Adjustment factors ``W_k N / n_k`` of sampled coalitions ``Z`` (m, d), ``k`` each row's
    size, ``W_k = C(d, k) / 2^d``, ``n_k`` the rows of size ``k`` among the ``N = m``: the
    stratified (Horvitz-Thompson) weights that make a weighted sum over the sample estimate
    ``N`` times the mean over all ``2^d`` coalitions. They sum to ``N`` over the sizes drawn."""
    from scipy.special import gammaln

    m, d = Z.shape
    k = Z.sum(1)
    n_k = np.bincount(k, minlength=d + 1)
    sizes = np.arange(d + 1)
    log_w = gammaln(d + 1) - gammaln(sizes + 1) - gammaln(d - sizes + 1) - d * np.log(2)
    with np.errstate(divide="ignore"):
        factor = np.exp(log_w + np.log(m) - np.log(np.maximum(n_k, 1)))
    return factor[k]


@register("summary", "lime")
class LIME(SamplingSummary):
    """LIME surrogate coefficients as feature attributions.

    Samples: the all-kept vector, then uniform coalitions. ``kernel_width`` defaults to
    ``0.75 sqrt(d)`` (euclidean, tabular) or ``0.25`` (cosine, images); ``alpha`` ridge
    penalty (1); ``feature_selection`` one of none, auto, forward_selection, highest_weights,
    lasso_path with ``num_features``; ``paired=True``: antithetic pairs (each sampled coalition
    with its complement; the same estimand, lower variance); ``sampling``: ``"uniform"``
    (Bernoulli(1/2) coalitions, lime's) or ``"stratified"`` (equal samples per coalition size,
    kernel weights times the adjustment factors that keep the estimand; see the module
    docstring). Not efficient: a local surrogate,
    not a game value.
    Unselected features get value 0 and stderr NaN. ``extras["score"]`` is the weighted R^2.
    """

    name = "lime"
    default_coalitions = 5000
    default_per_feature = 0
    fixed_coalitions = 1
    one_round = True
    keeps_rounds = True  # every coalition and value until the fit

    def __init__(self, *, budget=None, tol=None, seed=None, min_units=32,
                 kernel_width: float | None = None, distance: str | None = None,
                 alpha: float = 1.0, feature_selection: str | None = None,
                 num_features: int | None = None, paired: bool = True,
                 sampling: str = "uniform") -> None:
        super().__init__(budget=budget, tol=tol, seed=seed, min_units=min_units)
        if sampling not in SAMPLINGS:
            raise unknown_name("LIME sampling", sampling, SAMPLINGS)
        self.sampling = sampling
        self.paired = paired
        self.kernel_width = kernel_width
        self.distance = distance
        self.alpha = alpha
        sel = feature_selection or ("none" if num_features is None else "auto")
        if sel not in SELECTIONS:
            raise unknown_name("feature selection", sel, SELECTIONS)
        self.feature_selection = sel
        self.num_features = num_features

    def unit_cost(self, d):
        return 1

    def minimum_units(self, d):
        return d + 2

    def fixed_cost(self, game):
        return 1

    def default_budget_coalitions(self, game):
        return 1000 if game.kind == "image" else self.default_coalitions

    def round_masks(self, design):
        return design

    def start(self, game, rows, max_units, rng):
        image = game.kind == "image"
        distance = self.distance or ("cosine" if image else "euclidean")
        width = self.kernel_width or (0.25 if image else 0.75 * np.sqrt(game.d))
        check_kernel_width(width, distance, game.d)
        vf = as_numpy(game.v_full)[rows]
        return {"Z": [np.ones((1, game.d), dtype=bool)], "Y": {int(r): [vf[i:i + 1]]
                                                            for i, r in enumerate(rows)},
                "rows": rows, "distance": distance, "width": width, "clusters": [1]}

    def draw(self, state, n_units, d, rng):
        # clusters of the sandwich SE, in draw order (a round may join several draws)
        if self.sampling == "stratified":
            return self._draw_stratified(state, n_units, d, rng)
        if not self.paired:
            state["clusters"] += [1] * n_units
            return rng.random((n_units, d)) < 0.5
        state["clusters"] += [2] * (n_units // 2) + [1] * (n_units % 2)
        half = rng.random(((n_units + 1) // 2, d)) < 0.5
        return np.stack([half, ~half], 1).reshape(-1, d)[:n_units]  # pairs adjacent

    def _draw_stratified(self, state, n_units, d, rng):
        """Coalitions by strata of their size; with ``paired``, half of them stratified and
        each followed by its complement (size ``d - k``: equal shares stay equal)."""
        if not self.paired:
            state["clusters"] += [1] * n_units
            return stratified_coalitions(n_units, d, rng)
        state["clusters"] += [2] * (n_units // 2) + [1] * (n_units % 2)
        half = stratified_coalitions((n_units + 1) // 2, d, rng)
        return np.stack([half, ~half], 1).reshape(-1, d)[:n_units]

    def kernel_weights(self, Z, state) -> np.ndarray:
        """Regression weights of the design ``Z`` (the all-kept vector first): lime's kernel,
        times the stratum adjustment factors of the sampled rows when stratified."""
        w = lime_weights(Z, state["distance"], state["width"])
        if self.sampling == "stratified":
            w[1:] = w[1:] * stratum_adjustment(Z[1:])
        return w

    def update(self, state, design, values, active):
        if state["Z"][-1] is not design:  # once per round (blocks of explicands share it)
            state["Z"].append(design)
        vals = as_numpy(values)
        for j, i in enumerate(active):
            state["Y"][int(state["rows"][i])].append(vals[j])

    def _selects(self, d: int) -> bool:
        return not (self.feature_selection == "none" or self.num_features is None or
                    self.num_features >= d)

    def estimate(self, state, active):
        Z = np.concatenate(state["Z"])
        w = self.kernel_weights(Z, state)
        starts = np.concatenate([[0], np.cumsum(state["clusters"])[:-1]])  # of each cluster
        d = Z.shape[1]
        n = len(state["rows"])
        if not self._selects(d):
            return self._estimate_shared(state, active, Z, w, starts)
        vals, ses = [], []
        for i in active:
            y = np.concatenate(state["Y"][int(state["rows"][i])])
            tail = y.shape[1:]
            y2 = y.reshape(len(y), -1)
            r = y2.shape[1]
            beta, se = np.zeros((r, d)), np.full((r, d), np.nan)
            b0, score = np.zeros(r), np.zeros(r)
            for o in range(r):
                feats = self._select(Z, y2[:, o], w)
                coef, Minv, X = weighted_ridge(Z[:, feats], y2[:, o:o + 1], w, self.alpha)
                resid = y2[:, o] - X @ coef[0]
                half = np.add.reduceat(X * (w * resid)[:, None], starts, axis=0)
                cov = Minv @ (half.T @ half) @ Minv
                beta[o, feats] = coef[0, 1:]
                se[o, feats] = np.sqrt(np.clip(np.diag(cov)[1:], 0, None))
                b0[o] = coef[0, 0]
                ybar = np.average(y2[:, o], weights=w)
                sst = np.sum(w * (y2[:, o] - ybar) ** 2)
                score[o] = 1 - np.sum(w * resid ** 2) / sst if sst > 0 else 1.0
            if "base" not in state:
                state["base"] = np.full((n, *tail), np.nan)
                state.setdefault("extras", {})["score"] = np.full((n, *tail), np.nan)
            state["base"][i] = b0.reshape(tail)
            state["extras"]["score"][i] = score.reshape(tail)
            vals.append(np.moveaxis(beta, 0, -1).reshape(d, *tail))
            ses.append(np.moveaxis(se, 0, -1).reshape(d, *tail))
        return np.array(vals), np.array(ses)

    def _estimate_shared(self, state, active, Z, w, starts):
        """All explicands and outputs at once: the design and weights are shared, so the
        ridge system is factored once and solved for every right-hand side."""
        d = Z.shape[1]
        n = len(state["rows"])
        Y = np.stack([np.concatenate(state["Y"][int(state["rows"][i])]) for i in active], 1)
        m, na = Y.shape[:2]
        tail = Y.shape[2:]
        Y2 = Y.reshape(m, -1)  # (m, explicands * outputs)
        X = np.hstack([np.ones((m, 1)), Z.astype(np.float64)])
        H = ridge_inverse(X, w, self.alpha) @ (X * w[:, None]).T  # (d+1, m): coef = H @ y
        # one matrix-vector product per right-hand side, so that a row's result does not
        # depend on which other rows share the call (a matrix product's blocking would)
        coef = np.stack([H @ Y2[:, j] for j in range(Y2.shape[1])])  # (r, d+1)
        resid = np.stack([Y2[:, j] - X @ coef[j] for j in range(Y2.shape[1])], 1)
        # sandwich variance with a complement pair as one cluster: sum its score terms first
        var = cluster_score_variance(H, resid, starts, np.asarray(state["clusters"]))
        ybar = _column_sums(w[:, None] * Y2) / w.sum()
        sst = _column_sums(w[:, None] * (Y2 - ybar) ** 2)
        sse = _column_sums(w[:, None] * resid ** 2)
        score = np.where(sst > 0, 1 - sse / np.where(sst > 0, sst, 1), 1.0)
        beta = coef[:, 1:].reshape(na, *tail, d)
        se = np.sqrt(np.clip(var[1:].T, 0, None)).reshape(na, *tail, d)
        if "base" not in state:
            state["base"] = np.full((n, *tail), np.nan)
            state.setdefault("extras", {})["score"] = np.full((n, *tail), np.nan)
        state["base"][active] = coef[:, 0].reshape(na, *tail)
        state["extras"]["score"][active] = score.reshape(na, *tail)
        return np.moveaxis(beta, -1, 1), np.moveaxis(se, -1, 1)

    def _select(self, Z, y, w) -> np.ndarray:
        d = Z.shape[1]
        k = self.num_features
        sel = self.feature_selection
        if sel == "none" or k is None or k >= d:
            return np.arange(d)
        if sel == "auto":
            sel = "forward_selection" if k <= 6 else "highest_weights"
        if sel == "highest_weights":
            coef, _, _ = weighted_ridge(Z, y[:, None], w, self.alpha)
            return np.sort(np.argsort(-np.abs(coef[0, 1:]))[:k])
        if sel == "forward_selection":
            chosen: list[int] = []
            for _ in range(k):
                best, best_score = None, -np.inf
                for j in range(d):
                    if j in chosen:
                        continue
                    feats = chosen + [j]
                    coef, _, X = weighted_ridge(Z[:, feats], y[:, None], w, self.alpha)
                    resid = y - X @ coef[0]
                    score = -np.sum(w * resid ** 2)
                    if score > best_score:
                        best, best_score = j, score
                chosen.append(best)
            return np.sort(np.array(chosen))
        from sklearn.linear_model import lars_path

        sw = np.sqrt(w)
        Zc = Z - np.average(Z, axis=0, weights=w)
        yc = y - np.average(y, weights=w)
        _, _, coefs = lars_path(Zc * sw[:, None], yc * sw, method="lasso")
        for col in range(coefs.shape[1] - 1, -1, -1):
            nz = np.flatnonzero(coefs[:, col])
            if len(nz) <= k:
                return nz
        return np.arange(min(k, d))

    def describe(self):
        return {"name": self.name, "budget": self.budget, "seed": self.seed,
                "kernel_width": self.kernel_width, "distance": self.distance,
                "alpha": self.alpha, "feature_selection": self.feature_selection,
                "num_features": self.num_features, "paired": self.paired,
                "sampling": self.sampling}
