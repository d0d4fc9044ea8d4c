"""Perturbation metrics: ``infidelity``, ``max-sensitivity``, ``avg-sensitivity`` and
``local-lipschitz``.

* ``infidelity`` (Yeh et al. 2019) compares the attribution's prediction of an output change,
  ``Iᵀa``, with the change itself, ``f(x) − f(x − I)``, in squared error averaged over
  perturbations ``I``. Laws (``perturbation=``):

  - ``"subset"`` (default; contribution-type attributions): kept-masks ``m ~ Bernoulli(½)^d``
    through the metric's game, the term is ``(Σ_{i∉m} a_i − (v(full) − v(m)))²``. All rows ×
    draws go to the game in one call.
  - ``"gaussian"`` (sensitivity-type attributions: gradients, saliency): ``I ~ N(0, σ²)`` in
    input space, σ = ``sigma`` × the row's SD of x. The noise is drawn **per feature** and
    shared by the feature's positions (e.g. the channels of a pixel), so ``Iᵀa`` is exact with
    one score per feature (not per input element); for tabular data and one-channel pixel
    features this is ordinary i.i.d. noise per input element. Contribution-type explanations are refused.
  - ``"cumulative_patches"``: Quantus 0.6.0's deterministic estimator (square ``patch`` ×
    ``patch`` regions removed cumulatively in raster order through the metric's removal,
    mean over the steps); ``Iᵀa = Σ_{removed i} a_i · mean_{pos∈i}(x − x̃)`` — exactly
    Quantus's input-space product when every feature is one input element. Cross-checks only.

  ``normalise="optimal"`` (default) replaces a by βa with ``β = Σ_j Iᵀa·Δf / Σ_j (Iᵀa)²`` per
  row (β = 0 when every ``Iᵀa`` is 0); ``None`` gives the raw value.

* ``max-sensitivity`` / ``avg-sensitivity`` (Yeh et al. 2019) and ``local-lipschitz``
  (Alvarez-Melis & Jaakkola 2018) re-explain ``x + ε_j``, ``ε_j ~ U(−r, r)^D``, with the
  given ``explainer`` and identical settings and seed (common random numbers). The rows and
  all their perturbed copies (and the unperturbed rows themselves, the reference ``a(x)``) are
  stacked into **one** explainer call of ``n·(N+1)`` rows, so a sampling explainer sees the
  same settings for the reference and the perturbed copies. ``explainer_batch_size=b`` bounds
  the memory instead: calls of at most ``b`` rows (at least one row with its ``N`` copies),
  each holding whole groups (rows with their copies); results are identical for explainers
  that treat rows independently, but a sampling explainer's shared draws, adaptive stopping
  or unseeded seed then differ between calls. Calls of fewer rows were no cheaper per
  row, so the default stays one call. ``r = radius_frac × (max − min of x over the
  evaluated set)`` or ``radius=`` (absolute). Per row, ``ε`` comes from the row's keyed
  generator, so batching changes no draw.
"""

from __future__ import annotations

import warnings
from typing import Any, ClassVar

import numpy as np
import torch

from .._warn import warn
from ..errors import InputError, ShapeError
from ..explanation import Explanation
from ..inputs import Flag, Integer, Real
from ..registry import register
from .base import Metric, MetricInputs, check_explainer
from .checks import Choice, OneOf

PERTURBATIONS = ("subset", "gaussian", "cumulative_patches")
_BLOCK = 1 << 16  # float64 values per block of attribution differences (512 KB)
NORMALISE = ("optimal", None)

# Explanation methods whose attributions are contributions (they sum to an output change):
# the Gaussian infidelity law, made for sensitivities (gradients), does not apply to them.
_CONTRIBUTION_METHODS = ("integrated-gradients", "input-x-gradient", "deeplift",
                         "gradient-shap", "occlusion", "shap", "lime", "banzhaf",
                         "feature-ablation", "rise", "sage", "permutation-importance")
_SENSITIVITY_METHODS = ("saliency", "smoothgrad", "gradient", "gradcam")


# ---- shared helpers ---------------------------------------------------------------------

def target_values(inp: MetricInputs, Xs: np.ndarray,
                  rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Model outputs for the targets of ``rows`` on the metric's output scale, for input-space
    perturbations ``Xs`` ``(m, *S)`` (row ``rows[j]``'s target for ``Xs[j]``): the same
    behaviour (:class:`~xai.behaviours.Prediction`) as the metric's game. The explained rows
    are evaluated first, in a call of their own (:meth:`MetricInputs.outputs`), which fixes
    the behaviour and refuses targets out of range; all rows are counted by the adapter.
    Returns ``(values at x (n,), values at Xs (m,))``."""
    from ..behaviours import Prediction

    adapter = inp.adapter
    beh = Prediction(target=inp.targets, output=inp.output)
    full = torch.as_tensor(inp.outputs())  # one call of the explained rows: checks targets
    beh.prepare(full, None, adapter.output_kind, adapter.is_classifier)
    x = torch.as_tensor(Xs, dtype=adapter.dtype, device=adapter.device)
    with adapter.session():
        out = adapter(x).detach().cpu().to(torch.float64)
    all_rows = torch.as_tensor(np.concatenate([np.arange(inp.n), rows]))
    vals = beh(beh.on_scale(torch.cat([full, out])), all_rows).numpy()
    return vals[:inp.n], vals[inp.n:]


def _feature_index(inp: MetricInputs) -> np.ndarray:
    """Feature of each input element ``(n, D)`` (d for always-kept elements)."""
    idx = inp.fmap.full_index(inp.X.shape[1:])
    idx = np.where(idx < 0, inp.d, idx)
    return np.broadcast_to(idx, (inp.n, idx.shape[1]))


def attribution_kind(inp: MetricInputs) -> str:
    """``"contribution"``, ``"sensitivity"`` or ``"unknown"`` (raw arrays without
    ``kind=``)."""
    declared = inp.options.get("kind")
    if declared is not None:
        return declared
    expl = inp.explanation
    if expl is None:
        return "unknown"
    method = str(expl.method).lower()
    removal = expl.removal.get("name") if isinstance(expl.removal, dict) else None
    if any(s in method for s in _SENSITIVITY_METHODS) and "integrated" not in method:
        return "sensitivity"
    if any(s in method for s in _CONTRIBUTION_METHODS) or removal not in (None, "none"):
        return "contribution"
    return "unknown"


# ---- infidelity -------------------------------------------------------------------------

@register("metric", "infidelity")
class Infidelity(Metric):
    """Infidelity (Yeh et al. 2019): ``E_I[(Iᵀa − (f(x) − f(x − I)))²]`` per row, lower is
    better.

    Options: ``perturbation`` (``"subset"`` default, ``"gaussian"``, ``"cumulative_patches"``),
    ``n_perturb=64`` (draws per row; unused by ``cumulative_patches``), ``normalise``
    (``"optimal"`` default or None), ``sigma=0.1`` (Gaussian SD as a fraction of the row's SD
    of x), ``patch=4`` (cumulative patches, pixels), ``kind`` (``"sensitivity"`` or
    ``"contribution"``: declares what a raw attribution array is).

    Cost: ``n·(n_perturb + 1)`` model rows (subset, Gaussian), ``n·(n_patches + 1)``
    (cumulative patches). ``extras``: ``beta`` (per-row scale used), ``perturbation``.
    """

    rows_split = True  # independent per-row scores: backend='ray' splits the rows

    name = "infidelity"
    direction = "lower"
    needs = frozenset({"model"})
    applies_to = "any"
    stochastic = True
    default_output = "logit"
    defaults: ClassVar[dict] = {"perturbation": "subset", "n_perturb": 64,
                                "normalise": "optimal", "sigma": 0.1, "patch": 4, "kind": None}
    option_rules: ClassVar[dict] = {
        "perturbation": lambda name, v: Choice(PERTURBATIONS, "perturbation")(
            name, v.replace("-", "_") if isinstance(v, str) else v),
        "n_perturb": Integer(1, optional=False, example=64),
        "normalise": OneOf(NORMALISE, " (the optimal scale β per row, or none)"),
        "sigma": Real(0.0, low_open=True, optional=False),
        "patch": Integer(1, optional=False, example=4),
        "kind": OneOf(("sensitivity", "contribution", None),
                      ": 'sensitivity' for gradients and saliency, 'contribution' for SHAP, "
                      "LIME, occlusion, IG")}

    def check_inputs(self, inp: MetricInputs) -> None:
        law = inp.options["perturbation"]
        if law == "gaussian":
            kind = attribution_kind(inp)
            if kind != "sensitivity":
                what = (f"explanation method {inp.explanation.method!r} gives contribution-type "
                        "attributions" if kind == "contribution" else
                        "a raw attribution array of unknown kind")
                raise InputError(
                    f"perturbation='gaussian' is for sensitivity-type attributions (gradient, "
                    f"saliency), but {what}; use perturbation='subset' (contributions: SHAP, "
                    "LIME, occlusion, IG, gradient×input) or 'cumulative_patches', or pass "
                    "kind='sensitivity' for a raw gradient array")
        if law == "cumulative_patches" and inp.kind != "image":
            raise InputError("perturbation='cumulative_patches' needs image inputs (Quantus's "
                             "estimator is image-only); use perturbation='subset' for "
                             f"{inp.kind} data")

    def compute(self, inp: MetricInputs) -> dict:
        o = inp.options
        law = o["perturbation"]
        n_perturb = o["n_perturb"]
        a = inp.scores
        if law == "subset":
            ita, df = self._subset(inp, a, n_perturb)
        elif law == "gaussian":
            ita, df = self._gaussian(inp, a, n_perturb, float(o["sigma"]))
        else:
            ita, df = self._cumulative(inp, a, int(o["patch"]))
        if o["normalise"] == "optimal":
            num = (ita * df).sum(1)
            den = (ita ** 2).sum(1)
            beta = np.where(den > 0, num / np.where(den > 0, den, 1.0), 0.0)
        else:
            beta = np.ones(inp.n)
        per_sample = ((beta[:, None] * ita - df) ** 2).mean(1)
        return {"per_sample": per_sample,
                "extras": {"beta": beta, "perturbation": law, "steps": ita.shape[1]},
                "settings": {"perturbation": law}}

    @staticmethod
    def _subset(inp: MetricInputs, a: np.ndarray, n_perturb: int):
        masks = np.stack([inp.rng(i, 0).random((n_perturb, inp.d)) < 0.5
                          for i in range(inp.n)])  # (n, m, d) kept
        game = inp.game()
        v = game(masks).numpy()
        df = game.v_full.numpy()[:, None] - v
        ita = (a[:, None, :] * ~masks).sum(-1)
        return ita, df

    @staticmethod
    def _gaussian(inp: MetricInputs, a: np.ndarray, n_perturb: int, sigma: float):
        n, d = inp.n, inp.d
        X = inp.X.astype(np.float64).reshape(n, -1)
        sd = X.std(1) * sigma
        z = np.stack([inp.rng(i, 1).standard_normal((n_perturb, d)) for i in range(n)])
        z = z * sd[:, None, None]  # (n, m, d) per-feature noise
        idx = _feature_index(inp)
        zext = np.concatenate([z, np.zeros((n, n_perturb, 1))], 2)
        noise = np.take_along_axis(zext, np.broadcast_to(idx[:, None, :], (n, n_perturb,
                                                                          idx.shape[1])), 2)
        Xp = (X[:, None, :] - noise).reshape(n * n_perturb, *inp.X.shape[1:])
        v_full, vals = target_values(inp, Xp.astype(inp.X.dtype, copy=False),
                                     np.repeat(np.arange(n), n_perturb))
        df = v_full[:, None] - vals.reshape(n, n_perturb)
        ita = (z * a[:, None, :]).sum(-1)
        return ita, df

    @staticmethod
    def _cumulative(inp: MetricInputs, a: np.ndarray, patch: int):
        n, d = inp.n, inp.d
        index = inp.fmap.index  # (n_maps, *pos_shape)
        H, W = index.shape[-2:]
        ncols = -(-W // patch)
        pid = (np.arange(H)[:, None] // patch) * ncols + np.arange(W)[None, :] // patch
        pid = np.broadcast_to(pid, index.shape).reshape(index.shape[0], -1)
        flat = index.reshape(index.shape[0], -1)
        L = int(pid.max()) + 1
        fpatch = np.full((index.shape[0], d + 1), L, dtype=np.int64)
        for j in range(index.shape[0]):
            ok = flat[j] >= 0
            np.minimum.at(fpatch[j], flat[j][ok], pid[j][ok])
        fpatch = np.broadcast_to(fpatch[:, :d], (n, d))
        steps = np.arange(L)
        masks = fpatch[:, None, :] > steps[None, :, None]  # (n, L, d) kept after step k
        game = inp.game()
        v = game(masks).numpy()
        df = game.v_full.numpy()[:, None] - v
        if getattr(game.removal, "mask_free", False):  # x̃ is the same for every step
            diff = _removed_difference(game, masks[:, :1])[:, 0]  # (n, d)
            # removed after step l: the features of patches 0..l, so the sums over the
            # removed set are a running sum of the per-patch sums (O(n d), not O(n L d))
            per_patch = np.bincount((fpatch + (L + 1) * np.arange(n)[:, None]).ravel(),
                                    weights=(a * diff).ravel(), minlength=n * (L + 1))
            ita = np.cumsum(per_patch.reshape(n, L + 1)[:, :L], axis=1)
        else:
            diff = _removed_difference(game, masks)  # (n, L, d) mean of x - x̃ per feature
            ita = np.einsum("nld,nld->nl", (~masks).astype(np.float64), a[:, None, :] * diff)
        return ita, df


def _removed_difference(game, masks: np.ndarray) -> np.ndarray:
    """Per feature, the mean over its positions of ``x − x̃`` (x̃ = the removal's replacement,
    averaged over its draws with their weights) for per-row masks ``(n, m, d)``.

    Rows go to the removal in blocks of ``b`` rows × ``m`` masks (``b·m·K·D`` values under the
    game's memory cap); the per-feature means are one sparse product ``delta @ S`` with
    ``S[pos, f] = 1/|f|`` (per row when the feature map differs by row)."""
    from scipy.sparse import csr_matrix

    n, m, d = masks.shape
    out = np.empty((n, m, d))
    dev = game.X.device
    D = game.X.shape[1]
    K = game.K
    w = game.weights.to(dev, dtype=game.X.dtype)
    b = int(max(1, min(n, game.memory_cap // max(m * max(K, 2) * D * 8, 1))))

    def averaging(idx: np.ndarray):
        counts = np.bincount(idx, minlength=d + 1).astype(np.float64)
        return csr_matrix((1.0 / counts[idx], (np.arange(D), idx)), shape=(D, d + 1))

    shared = game.ctx.index.shape[0] == 1
    S = averaging(game.ctx.index[0].cpu().numpy()) if shared else None
    for s in range(0, n, b):
        r_np = np.arange(s, min(n, s + b))
        c = len(r_np)
        r = torch.as_tensor(r_np, device=dev).repeat_interleave(m)  # (c·m,)
        x = game.X[r]
        mask_t = torch.as_tensor(masks[s:s + c].reshape(c * m, d), device=dev)
        repl = game.removal.replacement(x, r, mask_t, 0, K)
        repl = torch.broadcast_to(repl, (c * m, K, D))
        rbar = repl[:, 0] if K == 1 else (repl * w[None, :, None]).sum(1)
        delta = (x.double() - rbar.double()).cpu().numpy()  # (c·m, D)
        if shared:
            out[s:s + c] = np.asarray(delta @ S)[:, :d].reshape(c, m, d)
        else:
            idx = game.ctx.index_of(torch.as_tensor(r_np, device=dev)).cpu().numpy()
            for j in range(c):
                out[s + j] = np.asarray(delta[j * m:(j + 1) * m] @ averaging(idx[j]))[:, :d]
    return out


# ---- sensitivity ------------------------------------------------------------------------

def _as_attr_array(result: Any, n_rows: int) -> tuple[np.ndarray, np.ndarray | None]:
    """Flattened attributions ``(rows, p)`` of an explainer's result (an Explanation, whose
    target output is selected, or an array/tensor), and the targets it recorded. float32 and
    float64 attributions keep their dtype (a float32 value is exact in float64, where the
    metrics compute); other dtypes become float64."""
    if isinstance(result, Explanation):
        vals = np.asarray(result.values, dtype=np.float64)
        t = result.extras.get("target")
        if vals.ndim == 3:
            tt = np.zeros(len(vals), np.int64) if t is None else np.asarray(t)
            vals = vals[np.arange(len(vals)), :, tt]
        arr, tgt = vals, None if t is None else np.asarray(t)
    else:
        arr = result.detach().cpu().numpy() if isinstance(result, torch.Tensor) else \
            np.asarray(result)
        tgt = None
    if arr.ndim == 0 or arr.shape[0] != n_rows:
        raise ShapeError(f"the explainer returned {arr.shape[0] if arr.ndim else 'no'} rows of "
                         f"attributions for {n_rows} inputs")
    if arr.dtype not in (np.float32, np.float64):
        arr = np.asarray(arr, dtype=np.float64)
    return arr.reshape(n_rows, -1), tgt


def call_explainer(explainer: Any, model: Any, X: np.ndarray):
    """Run ``explainer`` on ``X``: an object with ``.explain(model, X)`` (an
    :class:`xai.Explainer`, a captum/shap backend) or a callable ``(model, X)``."""
    check_explainer("the metric", explainer)
    if hasattr(explainer, "explain"):
        return explainer.explain(model, X)
    return explainer(model, X)


class _Sensitivity(Metric):
    """Shared machinery of the re-explaining metrics (sensitivity, local Lipschitz)."""

    direction = "lower"
    needs = frozenset({"model", "explainer"})
    applies_to = "any"
    stochastic = True
    default_output = "attributions"
    defaults: ClassVar[dict] = {"n_samples": 32, "radius_frac": 0.02, "radius": None,
                                "same_prediction": False, "explainer_batch_size": None}
    option_rules: ClassVar[dict] = {"n_samples": Integer(1, optional=False, example=32),
                                    "radius_frac": Real(0.0, low_open=True, optional=False),
                                    "radius": Real(0.0, low_open=True),
                                    "same_prediction": Flag(),
                                    "explainer_batch_size": Integer(1, example=1024)}
    target_check = "probe"  # the explainer's calls are not a game's
    # each row's perturbations come from its keyed generator and the radius is fixed on the
    # driver (whole_set_options), so backend='ray' splits the rows; an explainer whose rows
    # are explained independently (xai's: every row draws from the seed alone) gives a local
    # run's scores, as explainer_batch_size does
    rows_split = True
    rms_extras = ("explainer_se",)

    def whole_set_options(self, x: Any, options: dict) -> dict:
        """The radius from the range of the whole evaluated set (``radius_frac`` ×
        (max − min)), so that the blocks of a Ray run perturb as much as a local run."""
        if options.get("radius") is not None:
            return {}
        X = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(
            x.to_numpy() if hasattr(x, "to_numpy") else x)
        if not np.issubdtype(X.dtype, np.floating) or not float(X.max() - X.min()) > 0:
            return {}  # the blocks refuse it with the local run's error
        return {"radius": float(options["radius_frac"]) * float(X.max() - X.min())}

    def check_inputs(self, inp: MetricInputs) -> None:
        X = inp.X
        if not np.issubdtype(X.dtype, np.floating):
            raise InputError(f"{self.name} perturbs inputs continuously and needs real-valued "
                             f"inputs; got dtype {X.dtype}: pass x as floats (x.astype(float))")
        if inp.options["radius"] is None and not float(X.max() - X.min()) > 0:
            raise InputError(f"{self.name}: x is constant over the evaluated set, so the "
                             f"radius {inp.options['radius_frac']} × (max − min) is 0; pass "
                             "radius= (the perturbation radius in input units)")

    def _radius(self, inp: MetricInputs) -> float:
        o = inp.options
        if o["radius"] is not None:
            return float(o["radius"])
        return float(o["radius_frac"]) * float(inp.X.max() - inp.X.min())

    def _draws(self, inp: MetricInputs, eps_norms: bool = False):
        """Per row and draw: the distance ``‖a(x + ε_j) − a(x)‖₂`` ``(n, N)``, the reference
        norm ``‖a(x)‖₂`` ``(n,)``, ``‖ε_j‖₂`` ``(n, N)`` (with ``eps_norms``, else None) and
        the valid draws ``(n, N)``.

        The explainer sees the rows and their perturbed copies stacked, ``[x_1..x_m,
        x_1 + ε_11 .. x_1 + ε_1N, .., x_m + ε_mN]``: all ``n`` rows in one call, or
        ``explainer_batch_size`` rows per call in whole groups (a row with its ``N`` copies)."""
        o = inp.options
        N = o["n_samples"]
        batch = o.get("explainer_batch_size")
        X = inp.X
        r = self._radius(inp)
        n, S = inp.n, X.shape[1:]
        D = int(np.prod(S, dtype=np.int64))
        rows = n if batch is None else max(1, int(batch) // (N + 1))  # rows per call
        Xf = X.reshape(n, D)
        dist = np.empty((n, N))
        ref_norm = np.empty(n)
        enorm = np.empty((n, N)) if eps_norms else None
        valid = np.ones((n, N), dtype=bool)
        changed, se_parts, evals = [], [], 0
        for g0 in range(0, n, rows):
            g1 = min(n, g0 + rows)
            m = g1 - g0
            stacked = np.empty((m * (N + 1), D), dtype=X.dtype)
            stacked[:m] = Xf[g0:g1]
            copies = stacked[m:].reshape(m, N, D)
            for i in range(g0, g1):  # ε_i (N, *S) from the row's keyed generator
                eps = inp.rng(i, 2).uniform(-r, r, (N, D))
                if eps_norms:
                    enorm[i] = np.sqrt(np.einsum("jk,jk->j", eps, eps))
                # x + ε in float64, then in x's dtype (as x.astype(float64) + ε)
                np.add(Xf[i], eps, out=copies[i - g0], casting="unsafe")
            stacked = stacked.reshape(m * (N + 1), *S)
            res = call_explainer(inp.explainer, inp.model, stacked)
            evals += int(getattr(res, "evaluations", 0) or 0)
            attrs, tgt = _as_attr_array(res, m * (N + 1))
            ref = attrs[:m].astype(np.float64)
            ref_norm[g0:g1] = np.sqrt(np.einsum("ik,ik->i", ref, ref))
            pert = attrs[m:].reshape(m, N, -1)
            step = max(1, _BLOCK // (N * ref.shape[1]))  # rows whose differences stay cached
            for a in range(0, m, step):
                b = min(m, a + step)
                diff = np.subtract(pert[a:b], ref[a:b, None, :], dtype=np.float64)
                dist[g0 + a:g0 + b] = np.sqrt(np.einsum("ijk,ijk->ij", diff, diff))
            # draws the explainer explained for another output (its own "predicted" target)
            changed.append(None if tgt is None else
                           (tgt[m:].reshape(m, N) != tgt[:m, None]).sum(1))
            if o["same_prediction"]:
                valid[g0:g1] = self._same_prediction(inp, stacked, m, N)
            if isinstance(res, Explanation) and res.stderr is not None:
                se_parts.append(np.asarray(res.stderr, dtype=np.float64)[:m].reshape(m, -1))
        self._explain_evals = evals
        self._target_changed = None if any(c is None for c in changed) else \
            np.concatenate(changed)
        self._stderr = None
        if len(se_parts) == len(changed):
            se = np.concatenate(se_parts)
            self._stderr = float(np.sqrt(np.nanmean(se ** 2))) if np.isfinite(se).any() \
                else None
        self._radius_used = r
        return dist, ref_norm, enorm, valid

    @staticmethod
    def _same_prediction(inp: MetricInputs, stacked: np.ndarray, n: int, N: int) -> np.ndarray:
        adapter = inp.adapter
        with adapter.session():
            out = adapter(torch.as_tensor(stacked, dtype=adapter.dtype,
                                          device=adapter.device)).cpu().numpy()
        pred = out.argmax(1) if out.shape[1] > 1 else (out[:, 0] > (
            0.5 if adapter.output_kind == "probability" else 0.0)).astype(int)
        return pred[n:].reshape(n, N) == pred[:n, None]

    def _finish(self, inp: MetricInputs, per_sample: np.ndarray, extras: dict) -> dict:
        extras = {**extras, "radius": self._radius_used, "explainer_se": self._stderr,
                  "target_changed": self._target_changed}
        return {"per_sample": per_sample, "extras": extras,
                "extra_evaluations": getattr(self, "_explain_evals", 0),
                "settings": {"radius": self._radius_used, "reference": "re-explained x",
                             "explainer_se": self._stderr}}


class _RelativeSensitivity(_Sensitivity):
    defaults: ClassVar[dict] = {**_Sensitivity.defaults, "relative": True}
    option_rules: ClassVar[dict] = {**_Sensitivity.option_rules, "relative": Flag()}
    reducer = staticmethod(np.nanmax)

    def compute(self, inp: MetricInputs) -> dict:
        dist, norm, _, valid = self._draws(inp)  # (n, N), (n,)
        extras: dict = {}
        if inp.options["relative"]:
            zero = norm == 0
            if zero.any():
                rows = np.flatnonzero(zero)
                warn(f"attributions of rows {rows[:10].tolist()} are all zero; "
                     f"relative {self.name} is undefined there (NaN)")
            dist = dist / np.where(zero, np.nan, norm)[:, None]
        dist = np.where(valid, dist, np.nan)
        none_left = ~valid.any(1)
        if none_left.any():
            warn(f"{int(none_left.sum())} rows have no perturbed draw with the same "
                 "prediction (same_prediction=True); their score is NaN")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN rows stay NaN
            per = self.reducer(dist, axis=1)
        extras["n_valid_draws"] = valid.sum(1)
        return self._finish(inp, per, extras)


@register("metric", "max-sensitivity")
class MaxSensitivity(_RelativeSensitivity):
    """Max-sensitivity (Yeh et al. 2019): ``max_j ‖a(x+ε_j) − a(x)‖_F /
    ‖a(x)‖_F`` (``relative=True``, default; ``False``: the paper's absolute form), lower is
    better.

    Options: ``n_samples=32`` (N), ``radius_frac=0.02`` (r as a fraction of the range of x
    over the evaluated set), ``radius`` (absolute r, overrides), ``relative=True``,
    ``same_prediction=False`` (drop draws whose argmax changes; none left → NaN),
    ``explainer_batch_size=None`` (rows per explainer call, in whole groups of a row and its
    ``N`` copies; None: one call, see the module docstring). Needs ``explainer=``; cost: one
    explainer call on ``n·(N+1)`` rows (plus ``n·(N+1)`` model rows with
    ``same_prediction``). ``extras``: ``radius``, ``explainer_se`` (RMS of the reference
    explanation's standard errors, when it reports them), ``n_valid_draws``,
    ``target_changed`` (per row, draws the explainer explained for another output, when it
    records targets).
    """

    name = "max-sensitivity"
    reducer = staticmethod(np.nanmax)


@register("metric", "avg-sensitivity")
class AvgSensitivity(_RelativeSensitivity):
    """Avg-sensitivity (Yeh et al. 2019): as ``max-sensitivity`` with the mean over the
    (valid) draws instead of the max."""

    name = "avg-sensitivity"
    reducer = staticmethod(np.nanmean)


@register("metric", "local-lipschitz")
class LocalLipschitz(_Sensitivity):
    """Local Lipschitz estimate (Alvarez-Melis & Jaakkola 2018):
    ``max_j ‖a(x) − a(x+ε_j)‖₂ / ‖ε_j‖₂`` by random search over the same draws as the
    sensitivities (ε_j ~ U(−r, r)^D), lower is better. Options as ``max-sensitivity`` without
    ``relative``."""

    name = "local-lipschitz"

    def compute(self, inp: MetricInputs) -> dict:
        dist, _, eps_norm, valid = self._draws(inp, eps_norms=True)
        ratio = dist / eps_norm
        ratio = np.where(valid, ratio, -np.inf)
        per = ratio.max(1)
        per = np.where(valid.any(1), per, np.nan)
        return self._finish(inp, per, {"n_valid_draws": valid.sum(1)})
