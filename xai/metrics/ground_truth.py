"""Ground-truth metrics: ``topk-precision``, ``topk-recall``, ``auroc``,
``average-precision``, ``emd-accuracy``, ``mass-accuracy`` and ``suppressor-ratio``.

Attributions are reduced to one score per pixel (per column for tabular data) and compared
with a binary ground-truth mask: ``ground_truth=`` is a :class:`~xai.datasets.base.
GroundTruthData` (its global or per-row masks; ``rows=`` selects the data set rows that ``x``
holds when the masks are per row and ``x`` is a subset), or an array of the spatial shape (one
global mask) or ``(n, *spatial)``. No model is needed (``model`` may be None).

Sign: magnitudes ``s = |a|`` by default (a suppressor is a false positive whatever its sign);
``sign="positive"`` uses ``max(a, 0)`` (Arras et al. 2022).

EMD (``emd-accuracy``): exact optimal transport with Euclidean pixel distances, solved as a
transportation linear programme by scipy's HiGHS (``scipy.optimize.linprog``). Because the
ground cost is a metric, mass shared by p and q stays in place (``W1(p, q) = W1(p - m, q - m)``
with ``m = min(p, q)``), so only the surplus pixels of p and the deficit pixels of q enter the
programme. With ``fni=True`` (zero cost between ground-truth pixels; q lives on G) only the mass
of p outside G moves, into G pixels with capacities q. When the programme would have more
than ``max_variables`` (default 100 000) variables — at 64x64 with a dense map — both
distributions are first summed over b x b blocks (b the smallest block size that fits; block
centres as positions) and the coarse programme is solved exactly; this changes the distance by
at most ``sqrt(2) (b - 1)`` pixels. The block size used per row is in
``extras["emd_block"]`` (1 = exact); 8x8 maps are always exact.
"""

from __future__ import annotations

import math
from typing import ClassVar

import numpy as np
from scipy import sparse
from scipy.optimize import linprog
from scipy.stats import rankdata

from .._warn import warn
from ..errors import MissingGroundTruth, ShapeError, XaiError
from ..features import image_layout
from ..inputs import Flag, Integer, Real
from ..registry import register
from .base import Metric, MetricInputs
from .checks import Choice, row_indices_rule


class GroundTruthMetric(Metric):
    """Shared machinery: the mask per row, per-pixel magnitudes, input checks."""

    needs: ClassVar[frozenset] = frozenset({"ground_truth"})
    default_output: ClassVar[str] = "attributions"
    applies_to: ClassVar[str] = "any"
    stochastic: ClassVar[bool] = False
    direction: ClassVar[str] = "higher"
    defaults: ClassVar[dict] = {"sign": "abs", "rows": None, "threshold": None}
    option_rules: ClassVar[dict] = {"sign": Choice(("abs", "positive"), "sign"),
                                    "threshold": Real(), "rows": row_indices_rule}
    needs_mask: ClassVar[bool] = True

    def check_inputs(self, inp: MetricInputs) -> None:
        rows = inp.options.get("rows")
        if rows is not None and len(rows) != inp.n:
            raise ShapeError(f"x has {inp.n} rows, rows= {len(rows)}: pass the data-set row "
                             "of each row of x (one index per row)")

    def compute(self, inp: MetricInputs) -> dict:
        sign = inp.options.get("sign", "abs")
        spatial = _spatial_shape(inp.X)
        raw = _pixel_scores(inp, spatial)
        s = np.abs(raw) if sign == "abs" else np.maximum(raw, 0.0)
        mask = _masks(self, inp, spatial) if self.needs_mask else None
        out = self.score(inp, s, mask, spatial)
        out.setdefault("settings", {}).update({
            "removal": "none", "output": "attributions", "target": "not used",
            "sign": sign, "abs": sign == "abs", "normalise": self.normalisation})
        return out

    normalisation: ClassVar[str] = "none"

    def score(self, inp: MetricInputs, s: np.ndarray, mask: np.ndarray | None,
              spatial: tuple[int, ...]) -> dict:
        raise NotImplementedError


def _spatial_shape(X: np.ndarray) -> tuple[int, ...]:
    if X.ndim == 2:
        return (X.shape[1],)
    return image_layout(X.shape[1:])[1]


def _pixel_scores(inp: MetricInputs, spatial: tuple[int, ...]) -> np.ndarray:
    """Per-pixel scores ``(n, P)`` in raster order from the per-feature scores."""
    n_pix = int(np.prod(spatial))
    if inp.d != n_pix:
        raise ShapeError(
            f"ground-truth metrics need one score per pixel: the attributions have {inp.d} "
            f"features but the inputs have {n_pix} pixels ({spatial}); pass attributions per "
            "pixel (not per superpixel, patch or channel)")
    idx = np.asarray(inp.fmap.index).reshape(inp.fmap.index.shape[0], -1)
    if idx.shape[1] != n_pix:
        raise ShapeError(f"the feature map covers {idx.shape[1]} positions; ground-truth "
                         f"metrics need one feature per pixel ({n_pix} pixels)")
    if np.array_equal(idx, np.broadcast_to(np.arange(n_pix), idx.shape)):
        return inp.scores
    idx = np.broadcast_to(idx, (inp.n, n_pix))
    if (np.sort(idx, axis=1) != np.arange(n_pix)).any():
        raise ShapeError("ground-truth metrics need one feature per pixel; the feature map "
                         "groups pixels")
    return np.take_along_axis(inp.scores, idx, axis=1)


def _masks(metric: Metric, inp: MetricInputs, spatial: tuple[int, ...]) -> np.ndarray:
    """Boolean masks ``(n, P)``, checked against the rows and the spatial shape."""
    gt = inp.ground_truth
    n = inp.n
    if gt is None:
        raise MissingGroundTruth(f"metric {metric.name!r} needs a ground truth: pass "
                                 "ground_truth= (a GroundTruthData or a mask array)")
    rows = inp.options.get("rows")
    if hasattr(gt, "mask") and hasattr(gt, "ground_truth"):
        if gt.ground_truth is None:
            raise MissingGroundTruth(f"data set {gt.name!r} has no ground truth; metric "
                                     f"{metric.name!r} needs one")
        if rows is None:
            if gt.kind == "per_sample" and len(gt.X) != n:
                raise ShapeError(f"data set {gt.name!r} has per-row ground truth for "
                                 f"{len(gt.X)} rows but x has {n}; pass rows= (the data set "
                                 "rows that x holds)")
            rows = np.arange(n) if gt.kind == "per_sample" else np.zeros(n, np.int64)
        rows = np.asarray(rows)
        if len(rows) != n:
            raise ShapeError(f"x has {n} rows, rows= {len(rows)}")
        mask = np.asarray(gt.mask(rows, metric=f"metric {metric.name!r}"))
    else:
        mask = np.asarray(gt)
    thr = inp.options.get("threshold")
    if thr is not None:
        mask = mask >= thr
    if mask.dtype != bool:
        if not np.isin(mask, (0, 1)).all():
            raise XaiError("mask must be boolean or 0/1 (after thresholding); got values "
                           f"{np.unique(mask)[:5].tolist()}")
        mask = mask.astype(bool)
    shape = tuple(mask.shape)
    full = tuple(inp.X.shape[1:])
    if shape in (spatial, full):
        mask = np.broadcast_to(mask.reshape(-1), (n, int(np.prod(spatial))))
    elif shape in ((n, *spatial), (n, *full)):
        mask = mask.reshape(n, -1)
    else:
        raise ShapeError(f"ground-truth mask has shape {shape}, inputs are {spatial}"
                         f"{'' if len(shape) == len(spatial) else f' (or {(n, *spatial)} per row)'}")
    counts = mask.sum(1)
    bad = np.flatnonzero((counts == 0) | (counts == mask.shape[1]))
    if bad.size:
        what = "empty" if counts[bad[0]] == 0 else "full"
        raise XaiError(f"ground truth of row {int(bad[0])} is {what}; {metric.name} is "
                       "undefined" + (f" ({bad.size} such rows)" if bad.size > 1 else ""))
    return mask


def _warn_zero(name: str, zero: np.ndarray) -> None:
    if zero.any():
        rows = np.flatnonzero(zero)
        warn(f"{int(zero.sum())} rows have all-zero attributions (rows "
             f"{rows[:10].tolist()}{'...' if rows.size > 10 else ''}); {name} is "
             "undefined for them and they are NaN")


# ---------------------------------------------------------------------------------------
class _TopK(GroundTruthMetric):
    defaults: ClassVar[dict] = {**GroundTruthMetric.defaults, "k": None}
    recall: ClassVar[bool] = False

    def check_inputs(self, inp: MetricInputs) -> None:
        super().check_inputs(inp)
        pixels = int(np.prod(_spatial_shape(inp.X)))
        Integer(1, pixels, example=max(1, pixels // 10))("k", inp.options.get("k"))

    def score(self, inp, s, mask, spatial):
        n, P = s.shape
        k_opt = inp.options.get("k")
        size = mask.sum(1)
        k = size if k_opt is None else np.full(n, int(k_opt))
        order = inp.order(s)  # descending, ties per the ties option
        sorted_s = np.take_along_axis(s, order, axis=1)
        sorted_g = np.take_along_axis(mask, order, axis=1)
        selected = (np.arange(P)[None] < k[:, None]) & (sorted_s > 0)
        hits = (selected & sorted_g).sum(1)
        per = hits / (size if self.recall else k)
        return {"per_sample": per.astype(np.float64),
                "settings": {"k": "|G|" if k_opt is None else int(k_opt),
                             "ties": inp.options.get("ties", "random")}}


@register("metric", "topk-precision")
class TopKPrecision(_TopK):
    """|top-k ∩ G| / k with k = |G| by default; zero scores are never selected."""

    name: ClassVar[str] = "topk-precision"


@register("metric", "topk-recall")
class TopKRecall(_TopK):
    """|top-k ∩ G| / |G| with k = |G| by default; zero scores are never selected."""

    name: ClassVar[str] = "topk-recall"
    recall: ClassVar[bool] = True


@register("metric", "auroc")
class AUROC(GroundTruthMetric):
    """Area under the ROC curve of the scores for membership of G (Mann–Whitney, ties ½)."""

    name: ClassVar[str] = "auroc"

    def score(self, inp, s, mask, spatial):
        ranks = rankdata(s, axis=1)  # average ranks
        n_pos = mask.sum(1)
        n_neg = mask.shape[1] - n_pos
        u = (ranks * mask).sum(1) - n_pos * (n_pos + 1) / 2
        return {"per_sample": u / (n_pos * n_neg)}


@register("metric", "average-precision")
class AveragePrecision(GroundTruthMetric):
    """Average precision ``sum_t (R_t - R_{t-1}) P_t`` over the distinct score thresholds
    (tied scores enter together, as scikit-learn's ``average_precision_score``)."""

    name: ClassVar[str] = "average-precision"

    def score(self, inp, s, mask, spatial):
        n, P = s.shape
        order = np.argsort(-s, axis=1, kind="stable")
        ss = np.take_along_axis(s, order, axis=1)
        g = np.take_along_axis(mask, order, axis=1)
        tp = np.cumsum(g, axis=1)
        last = np.ones((n, P), bool)
        last[:, :-1] = ss[:, :-1] != ss[:, 1:]  # end of a tie group = a threshold
        tp_thr = np.where(last, tp, 0)
        prev = np.zeros((n, P))
        prev[:, 1:] = np.maximum.accumulate(tp_thr, axis=1)[:, :-1]
        gain = np.where(last, tp - prev, 0.0)
        precision = tp / np.arange(1, P + 1)[None]
        return {"per_sample": (gain * precision).sum(1) / mask.sum(1)}


@register("metric", "mass-accuracy")
class MassAccuracy(GroundTruthMetric):
    """Importance mass accuracy ``sum_{j in G} s_j / sum_j s_j`` (Arras et al. 2022)."""

    name: ClassVar[str] = "mass-accuracy"
    normalisation: ClassVar[str] = "sum"

    def score(self, inp, s, mask, spatial):
        total = s.sum(1)
        zero = total <= 0
        _warn_zero(self.name, zero)
        with np.errstate(invalid="ignore", divide="ignore"):
            per = np.where(zero, np.nan, (s * mask).sum(1) / np.where(zero, 1, total))
        return {"per_sample": per}


# ---- EMD --------------------------------------------------------------------------------
def _coords(spatial: tuple[int, ...]) -> np.ndarray:
    if len(spatial) == 1:
        return np.stack([np.zeros(spatial[0]), np.arange(spatial[0])], 1).astype(float)
    h, w = spatial
    r, c = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    return np.stack([r.ravel(), c.ravel()], 1).astype(float)


def _transport(src_mass, src_xy, dst_mass, dst_xy, dst_inequality=False, zero_cost=None):
    """Exact min-cost transport of ``src_mass`` to ``dst_mass`` (Euclidean cost)."""
    ns, nd = len(src_mass), len(dst_mass)
    if ns == 0 or nd == 0:
        return 0.0
    cost = np.sqrt(((src_xy[:, None, :] - dst_xy[None, :, :]) ** 2).sum(-1))
    if zero_cost is not None:
        cost = np.where(zero_cost, 0.0, cost)
    eye_s = sparse.kron(sparse.eye(ns), np.ones((1, nd)), format="csr")  # row sums
    eye_d = sparse.kron(np.ones((1, ns)), sparse.eye(nd), format="csr")  # column sums
    if dst_inequality:
        res = linprog(cost.ravel(), A_ub=eye_d, b_ub=dst_mass, A_eq=eye_s, b_eq=src_mass,
                      bounds=(0, None), method="highs")
    else:
        # balance the (numerically) equal totals exactly
        dst_mass = dst_mass * (src_mass.sum() / dst_mass.sum())
        res = linprog(cost.ravel(), A_eq=sparse.vstack([eye_s, eye_d[:-1]]),
                      b_eq=np.concatenate([src_mass, dst_mass[:-1]]), bounds=(0, None),
                      method="highs")
    if res.status != 0:
        raise RuntimeError(f"EMD linear programme failed: {res.message}")
    return float(res.fun)


def _coarsen(v: np.ndarray, spatial, b: int) -> tuple[np.ndarray, np.ndarray]:
    """Sum over b x b blocks; returns the block masses and block-centre coordinates."""
    if len(spatial) == 1:
        spatial = (1, spatial[0])
    h, w = spatial
    hb, wb = math.ceil(h / b), math.ceil(w / b)
    pad = np.zeros((hb * b, wb * b))
    pad[:h, :w] = v.reshape(h, w)
    mass = pad.reshape(hb, b, wb, b).sum((1, 3))
    # centre of the block's pixels inside the image
    rc = np.array([(min(i * b + b, h) - 1 + i * b) / 2 for i in range(hb)])
    cc = np.array([(min(j * b + b, w) - 1 + j * b) / 2 for j in range(wb)])
    r, c = np.meshgrid(rc, cc, indexing="ij")
    return mass.ravel(), np.stack([r.ravel(), c.ravel()], 1)


def emd(p: np.ndarray, q: np.ndarray, spatial: tuple[int, ...], *, fni: bool = False,
        gt: np.ndarray | None = None, max_variables: int = 100_000) -> tuple[float, int]:
    """Earth mover's distance (in pixels) between distributions ``p`` and ``q`` over the
    pixels of ``spatial``; ``fni=True``: zero cost between two pixels of ``gt``. Returns the
    distance and the block size used (1 = exact)."""
    b = 1
    while True:
        if b == 1:
            pm, qm, xy = p, q, _coords(spatial)
            g = gt
        else:
            pm, xy = _coarsen(p, spatial, b)
            qm, _ = _coarsen(q, spatial, b)
            g = None if gt is None else _coarsen(gt.astype(float), spatial, b)[0] > 0
        if fni:
            out = (pm > 0) & ~g
            dst = g & (qm > 0)
            size = int(out.sum()) * int(dst.sum())
            if size <= max_variables:
                return _transport(pm[out], xy[out], qm[dst], xy[dst],
                                  dst_inequality=True), b
        else:
            diff = pm - qm
            src, dst = diff > 0, diff < 0
            size = int(src.sum()) * int(dst.sum())
            if size <= max_variables:
                return _transport(diff[src], xy[src], -diff[dst], xy[dst]), b
        b += 1


@register("metric", "emd-accuracy")
class EMDAccuracy(GroundTruthMetric):
    """``1 - EMD(s/Σs, G/ΣG)/δ`` (XAI-TRIS), exact OT with Euclidean pixel distances (see
    the module docstring). ``normaliser="max-distance"`` (default): δ = the largest pixel
    distance ``sqrt((H-1)^2 + (W-1)^2)``; ``"xai-tris"``: ``sqrt(2 H W)`` as the published
    code. ``fni=True``: FNI-EMD (zero cost between ground-truth pixels)."""

    name: ClassVar[str] = "emd-accuracy"
    defaults: ClassVar[dict] = {**GroundTruthMetric.defaults, "normaliser": "max-distance",
                                "fni": False, "max_variables": 100_000}
    option_rules: ClassVar[dict] = {
        **GroundTruthMetric.option_rules,
        "normaliser": Choice(("max-distance", "xai-tris"), "normaliser"),
        "fni": Flag(), "max_variables": Integer(1, optional=False, example=100_000)}
    normalisation: ClassVar[str] = "sum (distributions)"

    def score(self, inp, s, mask, spatial):
        norm_opt = inp.options.get("normaliser", "max-distance")
        hw = spatial if len(spatial) == 2 else (1, spatial[0])
        if norm_opt == "max-distance":
            delta = math.hypot(hw[0] - 1, hw[1] - 1)
        else:  # "xai-tris", as the option rule allows
            delta = math.sqrt(2 * hw[0] * hw[1])
        fni = bool(inp.options.get("fni", False))
        total = s.sum(1)
        zero = total <= 0
        _warn_zero(self.name, zero)
        per = np.full(len(s), np.nan)
        dist = np.full(len(s), np.nan)
        blocks = np.zeros(len(s), np.int64)
        for i in np.flatnonzero(~zero):
            p = s[i] / total[i]
            q = mask[i] / mask[i].sum()
            dist[i], blocks[i] = emd(p, q, spatial, fni=fni, gt=mask[i],
                                     max_variables=int(inp.options.get("max_variables")))
            per[i] = 1 - dist[i] / delta
        return {"per_sample": per, "extras": {"emd": dist, "emd_block": blocks},
                "settings": {"normaliser": norm_opt, "delta": delta, "fni": fni,
                             "emd_exact": bool((blocks[~zero] <= 1).all())}}


@register("metric", "suppressor-ratio")
class SuppressorRatio(GroundTruthMetric):
    """``Σ_Sup s / Σ_Sig s`` as a ratio of means over rows (Wilming, Kieslich,
    Clark & Haufe 2023).

    The suppressor and signal sets come from ``suppressor=`` / ``signal=`` (spatial masks) or
    the data set's ``suppressor_mask`` / ``signal_mask``. ``aggregate`` = mean_n(Σ_Sup s) /
    mean_n(Σ_Sig s) with the delta-method SE ``sd(A2 - R A1)/(sqrt(n) mean A1)``;
    ``per_sample`` = the per-row ratio; ``extras["share"]`` = the per-row share
    ``Σ_Sup s / (Σ_Sup s + Σ_Sig s)`` (invariant to per-row rescaling), ``extras["A_sup"]``,
    ``extras["A_sig"]``. Rows with no attribution on either set are NaN (warned)."""

    name: ClassVar[str] = "suppressor-ratio"
    direction: ClassVar[str] = "lower"
    defaults: ClassVar[dict] = {**GroundTruthMetric.defaults, "suppressor": None,
                                "signal": None}
    needs_mask: ClassVar[bool] = False
    normalisation: ClassVar[str] = "ratio of means"

    def score(self, inp, s, mask, spatial):
        gt = inp.ground_truth
        sets = {}
        for key, attr in (("suppressor", "suppressor_mask"), ("signal", "signal_mask")):
            m = inp.options.get(key)
            if m is None and gt is not None and not isinstance(gt, np.ndarray):
                m = getattr(gt, attr, None)
            if m is None:
                raise MissingGroundTruth(
                    f"metric 'suppressor-ratio' needs the {key} set: pass {key}= (a spatial "
                    "mask) or a data set that declares it")
            m = np.asarray(m)
            if m.dtype != bool:
                if not np.isin(m, (0, 1)).all():
                    raise XaiError(f"{key} mask must be boolean or 0/1")
                m = m.astype(bool)
            if m.shape not in (spatial, tuple(inp.X.shape[1:])):
                raise ShapeError(f"{key} mask has shape {m.shape}, inputs are {spatial}")
            if not m.any():
                raise XaiError(f"the {key} set is empty; suppressor-ratio is undefined")
            sets[key] = m.reshape(-1)
        a_sup = s[:, sets["suppressor"]].sum(1)
        a_sig = s[:, sets["signal"]].sum(1)
        undefined = (a_sup + a_sig) <= 0
        _warn_zero(self.name, undefined)
        ok = ~undefined
        with np.errstate(invalid="ignore", divide="ignore"):
            ratio = np.where(ok, a_sup / np.where(a_sig > 0, a_sig, np.nan), np.nan)
            ratio = np.where(ok & (a_sig <= 0), np.inf, ratio)
            share = np.where(ok, a_sup / np.where(ok, a_sup + a_sig, 1), np.nan)
        n_ok = int(ok.sum())
        if n_ok == 0 or a_sig[ok].mean() <= 0:
            agg, se = float("nan"), float("nan")
        else:
            m1, m2 = a_sig[ok].mean(), a_sup[ok].mean()
            agg = m2 / m1
            se = float(np.std(a_sup[ok] - agg * a_sig[ok], ddof=1) / (math.sqrt(n_ok) * m1)) \
                if n_ok > 1 else float("nan")
        return {"per_sample": ratio, "aggregate": float(agg), "se": se,
                "extras": {"share": share, "share_mean": float(np.nanmean(share)) if n_ok
                           else float("nan"), "A_sup": a_sup, "A_sig": a_sig}}
