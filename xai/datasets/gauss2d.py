"""The 2-D suppressor problem (Haufe et al. 2014; Wilming, Kieslich, Clark & Haufe 2023):
``gauss2d-suppressor`` and the reference explainer ``pattern`` (the activation pattern of
Haufe et al. 2014).

``z ~ Uniform{-1, +1}`` (exactly n/2 of each; ``y = (z + 1)/2``), ``x = a z + eta`` with
``a = (1, 0)`` and ``eta ~ N(0, Sigma)``, ``Sigma = [[s1^2, c s1 s2], [c s1 s2, s2^2]]``. The
feature ``x2`` is a suppressor: independent of ``y``, yet the Bayes classifier
``P(y=1 | x) = sigmoid(beta^T x)``, ``beta = 2 Sigma^-1 a``, uses it.

``reference`` holds the suppressor / signal ratios of the methods (Wilming, Kieslich, Clark &
Haufe 2023) that have a closed form or a 1-D quadrature (computed here from the parameters,
never hard-coded), under the keys listed in :data:`REFERENCE_KEYS`.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np
import torch
from scipy import integrate
from scipy.special import expit
from scipy.stats import norm

from .._warn import warn
from ..external import ExplainContext, ExternalExplainer
from ..registry import register
from .base import Dataset, GroundTruthData, stratified_split

#: what each key of ``GroundTruthData.reference`` means
REFERENCE_KEYS = {
    "weights": "weights / gradient: beta2/beta1 = r = -c s1/s2 (signed)",
    "gradient": "same as weights",
    "saliency": "|grad f|: |c| s1/s2",
    "gradient_x_input": "gradient x input = IG (zero baseline) = occlusion to 0 = interventional "
                        "SHAP with zero-mean background: |c| s1 sqrt(2/pi) / E|x1|",
    "integrated_gradients": "same as gradient_x_input",
    "occlusion_zero": "same as gradient_x_input",
    "interventional_shap": "same as gradient_x_input (zero-mean background)",
    "conditional_shap": "conditional SHAP with the exact mixture conditionals (quadrature)",
    "conditional_shap_gaussian": "conditional SHAP under a Gaussian fit of p(x) (exact folded "
                                 "normal expectations)",
    "lime_standardised": "LIME, standardised regressors: -c s1/sqrt(1+s1^2) (signed)",
    "lime_raw": "LIME with isotropic raw-space perturbations: r (signed)",
    "pfi_mse": "permutation importance, MSE, least-squares model: c^2 s1^2/(1+s1^2)",
    "pfi_accuracy": "permutation importance, accuracy of the Bayes classifier",
    "sage_mse_ls": "SAGE, marginal removal, MSE, least-squares model: 0",
    "sage_conditional_ce": "SAGE, conditional removal, cross-entropy, Bayes model: "
                           "(I12 - I1)/(I12 + I1) by quadrature",
    "partial_dependence_slope": "partial dependence slope: r (signed)",
    "partial_dependence_sd": "partial dependence sd-importance: |c| s1/sqrt(1+s1^2)",
    "dtd": "DTD w^2-rule on the linear model: c^2 s1^2/s2^2",
    "correlation": "R w, R = correlation matrix: (rho + r)/(1 + r rho) (signed)",
    "pattern": "Haufe pattern Sigma_x w: 0",
    "patternnet": "PatternNet / PatternAttribution on the linear model: 0",
    "mplot": "M-plot E[f | x2] / FIRM: 0",
    "univariate": "corr(x_j, y): 0",
}


def _folded_mean(mu, sd):
    """E|N(mu, sd^2)| (elementwise; sd = 0 gives |mu|)."""
    mu = np.asarray(mu, dtype=np.float64)
    if sd <= 0:
        return np.abs(mu)
    return sd * math.sqrt(2 / math.pi) * np.exp(-mu**2 / (2 * sd**2)) + \
        mu * (1 - 2 * norm.cdf(-mu / sd))


def _mixture_expect(func, s1: float) -> float:
    """E[func(x1, z)] with z uniform on {-1, +1} and x1 | z ~ N(z, s1^2), by quadrature."""
    total = 0.0
    for z in (-1.0, 1.0):
        val, _ = integrate.quad(lambda t, z=z: norm.pdf(t, z, s1) * func(t, z), -np.inf, np.inf,
                                epsabs=1e-12, epsrel=1e-10, limit=200)
        total += 0.5 * val
    return total


def _mutual_information(q: float) -> float:
    """I(y; x) in nats for a Bayes log-odds m ~ N(2q z, 4q) (quadrature)."""
    sd = 2 * math.sqrt(q)

    def entropy(m):
        p = expit(m)
        with np.errstate(divide="ignore", invalid="ignore"):
            h = -(p * np.log(p) + (1 - p) * np.log1p(-p))
        return np.nan_to_num(h)

    val, _ = integrate.quad(lambda m: norm.pdf(m, 2 * q, sd) * entropy(m), -np.inf, np.inf,
                            epsabs=1e-12, epsrel=1e-10, limit=200)
    return math.log(2) - val


def reference_values(s1: float = 0.8, s2: float = 0.8, c: float = 0.8) -> dict[str, float]:
    """The suppressor / signal ratios of each method for parameters (s1, s2, c), plus
    ``E|x1|``, ``E|x2|``, the Bayes accuracies and the mutual informations ``I1``, ``I12``."""
    r = -c * s1 / s2
    rho = c * s1 / math.sqrt(1 + s1**2)
    ex1 = s1 * math.sqrt(2 / math.pi) * math.exp(-1 / (2 * s1**2)) + 1 - 2 * norm.cdf(-1 / s1)
    ex2 = s2 * math.sqrt(2 / math.pi)
    gxi = abs(c) * s1 * math.sqrt(2 / math.pi) / ex1
    Sigma = np.array([[s1**2, c * s1 * s2], [c * s1 * s2, s2**2]])
    beta = 2 * np.linalg.solve(Sigma, np.array([1.0, 0.0]))
    b1, b2 = beta
    sd_cond = 0.5 * abs(b2) * s2 * math.sqrt(1 - c**2)  # sd of phi_{1,2} given (x1, z)
    k = c * s2 / s1

    # conditional SHAP, exact mixture conditionals: phi2 = b2/2 (x2 - m(x1)),
    # m(x1) = k (x1 - tanh(x1/s1^2)); given (x1, z): x2 ~ N(k (x1 - z), s2^2 (1 - c^2))
    def m(t):
        return k * (t - np.tanh(t / s1**2))

    e_phi2 = _mixture_expect(lambda t, z: _folded_mean(0.5 * b2 * (k * (t - z) - m(t)),
                                                       sd_cond), s1)
    e_phi1 = _mixture_expect(lambda t, z: _folded_mean(
        b1 * t + 0.5 * b2 * (k * (t - z) + m(t)), sd_cond), s1)
    cond_shap = e_phi2 / e_phi1 if e_phi1 > 0 else 0.0

    # conditional SHAP under a Gaussian fit: m(x1) -> rho21 x1. Both phi's are linear in x, so
    # given z they are Gaussian: exact folded-normal expectations (z = +-1 symmetric).
    rho21 = c * s1 * s2 / (1 + s1**2)
    u2 = np.array([-0.5 * b2 * rho21, 0.5 * b2])
    u1 = np.array([b1 + 0.5 * b2 * rho21, 0.5 * b2])
    e2 = float(_folded_mean(u2[0], math.sqrt(u2 @ Sigma @ u2)))
    e1 = float(_folded_mean(u1[0], math.sqrt(u1 @ Sigma @ u1)))
    cond_shap_gauss = e2 / e1 if e1 > 0 else 0.0

    acc12 = norm.cdf(1 / (s1 * math.sqrt(1 - c**2)))
    acc1 = norm.cdf(1 / s1)
    pfi_acc = (acc12 - norm.cdf(1 / (s1 * math.sqrt(1 + c**2)))) / (acc12 - 0.5)
    i1 = _mutual_information(1 / s1**2)
    i12 = _mutual_information(1 / (s1**2 * (1 - c**2)))
    lime_std = -c * s1 / math.sqrt(1 + s1**2)
    out = {
        "weights": r, "gradient": r, "saliency": abs(c) * s1 / s2,
        "gradient_x_input": gxi, "integrated_gradients": gxi, "occlusion_zero": gxi,
        "interventional_shap": gxi,
        "conditional_shap": cond_shap, "conditional_shap_gaussian": cond_shap_gauss,
        "lime_standardised": lime_std, "lime_raw": r,
        "pfi_mse": c**2 * s1**2 / (1 + s1**2), "pfi_accuracy": pfi_acc,
        "sage_mse_ls": 0.0, "sage_conditional_ce": (i12 - i1) / (i12 + i1),
        "partial_dependence_slope": r, "partial_dependence_sd": abs(lime_std),
        "dtd": c**2 * s1**2 / s2**2, "correlation": (rho + r) / (1 + r * rho),
        "pattern": 0.0, "patternnet": 0.0, "mplot": 0.0, "univariate": 0.0,
        # auxiliary quantities
        "E_abs_x1": ex1, "E_abs_x2": ex2, "rho": rho, "bayes_accuracy": acc12,
        "accuracy_x1_only": acc1, "I1": i1, "I12": i12,
    }
    return {key: float(v) for key, v in out.items()}


class BayesLinear(torch.nn.Module):
    """The exact Bayes model of the 2-D problem. ``output="logits"``: two logits
    ``(0, beta^T x)`` (softmax = the Bayes posterior); ``output="margin"``: one output
    ``beta^T x``."""

    def __init__(self, beta, output: str = "logits") -> None:
        super().__init__()
        if output not in ("logits", "margin"):
            raise ValueError(f"output must be 'logits' or 'margin'; got {output!r}")
        self.output = output
        self.register_buffer("beta", torch.as_tensor(np.asarray(beta, np.float64)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # one product with the rows (0, beta), as the Linear layer of as_sequential(): a
        # matrix-vector product x @ beta is another BLAS kernel and may differ in the last bit
        return torch.nn.functional.linear(x, self._rows(x.dtype))

    def _rows(self, dtype: torch.dtype) -> torch.Tensor:
        beta = self.beta.to(dtype)
        return beta[None] if self.output == "margin" else torch.stack([torch.zeros_like(beta),
                                                                       beta])

    def as_sequential(self) -> torch.nn.Sequential:
        """The same map as a Sequential of one bias-free float64 Linear layer (rows
        ``(0, beta)`` for the logits, ``beta`` for the margin), for explainers that walk a
        network's layers (PatternNet)."""
        rows = self._rows(torch.float64).detach()
        layer = torch.nn.Linear(rows.shape[1], len(rows), bias=False, dtype=torch.float64)
        with torch.no_grad():
            layer.weight.copy_(rows)
        layer.requires_grad_(False)
        return torch.nn.Sequential(layer)


@register("dataset", "gauss2d-suppressor")
class Gauss2dSuppressor(Dataset):
    """The 2-D suppressor data set: ``x = a z + eta`` (see the module docstring).

    Parameters: ``n`` (even; exactly n/2 rows per class), ``s1``, ``s2``, ``c`` (|c| < 1),
    ``fractions`` (stratified train/val/test split, default 0.8/0.1/0.1). ``ground_truth`` is
    the global mask ``[True, False]``; ``signal_mask = [True, False]``, ``suppressor_mask =
    [False, True]``. ``extras``: ``beta`` (Bayes, ``2 Sigma^-1 a``), ``w_ls``
    (``Sigma_x^-1 a``), ``Sigma``, ``Sigma_x``, ``background`` (the training rows),
    ``bayes_model`` (two logits ``(0, beta^T x)``), ``margin_model`` (one output
    ``beta^T x``), ``margin`` and ``predict_proba`` (numpy functions).
    """

    name: ClassVar[str] = "gauss2d-suppressor"
    defaults: ClassVar[dict] = {"n": 2000, "s1": 0.8, "s2": 0.8, "c": 0.8,
                                "fractions": (0.8, 0.1, 0.1)}

    def generate(self, ss: np.random.SeedSequence, seed: int, params: dict) -> GroundTruthData:
        n, s1, s2, c = int(params["n"]), float(params["s1"]), float(params["s2"]), \
            float(params["c"])
        if n < 2 or n % 2:
            raise ValueError(f"n must be an even number >= 2 (classes are exactly balanced); "
                             f"got {n}")
        if s1 <= 0 or s2 <= 0:
            raise ValueError(f"s1 and s2 must be > 0; got s1={s1}, s2={s2}")
        if not -1 < c < 1:
            raise ValueError(f"c must lie in (-1, 1); got {c}")
        rng_data, rng_split = (np.random.default_rng(s) for s in ss.spawn(2))
        z = np.repeat([-1.0, 1.0], n // 2)[rng_data.permutation(n)]
        Sigma = np.array([[s1**2, c * s1 * s2], [c * s1 * s2, s2**2]])
        eta = rng_data.standard_normal((n, 2)) @ np.linalg.cholesky(Sigma).T
        X = (np.outer(z, [1.0, 0.0]) + eta).astype(np.float32)
        y = ((z + 1) / 2).astype(np.int64)
        train, val, test = stratified_split(y, tuple(params["fractions"]), rng_split)
        a = np.array([1.0, 0.0])
        beta = 2 * np.linalg.solve(Sigma, a)
        Sigma_x = Sigma + np.outer(a, a)
        w_ls = np.linalg.solve(Sigma_x, a)
        ref = reference_values(s1, s2, c)

        def margin(x):
            return np.asarray(x, np.float64) @ beta

        def predict_proba(x):
            p1 = expit(margin(x))
            return np.stack([1 - p1, p1], axis=1)

        return GroundTruthData(
            name=self.name, X=X, y=y, train=train, val=val, test=test,
            ground_truth=np.array([True, False]), kind="global",
            signal_mask=np.array([True, False]), suppressor_mask=np.array([False, True]),
            reference=ref, params={**params, "fractions": list(params["fractions"])},
            seed=seed,
            extras={"beta": beta, "w_ls": w_ls, "Sigma": Sigma, "Sigma_x": Sigma_x,
                    "beta_unit": beta / np.linalg.norm(beta), "background": X[train],
                    "bayes_model": BayesLinear(beta, "logits"),
                    "margin_model": BayesLinear(beta, "margin"),
                    "margin": margin, "predict_proba": predict_proba})


def bayes_model(data: GroundTruthData, output: str = "logits") -> BayesLinear:
    """A fresh Bayes model of a ``gauss2d-suppressor`` data set (``"logits"`` or
    ``"margin"``)."""
    return BayesLinear(data.extras["beta"], output)


class Pattern(ExternalExplainer):
    """The activation pattern (Haufe et al. 2014) as a reference explainer for any model.

    On the background rows B (``background=``; the explained rows when none is given) the
    pattern of output t is ``p = Cov_B(x, f_t(x)) / Var_B(f_t)`` (per input position; for a
    linear model ``f = w^T x`` this is ``Sigma_x w / (w^T Sigma_x w)``). The attribution of row
    x is the forward-model reconstruction of its centred input from its output,

        ``values(x) = p * (f_t(x) - mean_B f_t)``,

    i.e. the least-squares regression of x on f evaluated at f(x). A feature uncorrelated
    with the output (a suppressor) gets ~0 in every row; a signal feature gets a non-zero
    value whenever f(x) differs from its background mean. ``stderr`` is the regression
    slope's standard error ``sd(residual) / (sd(f) sqrt(|B| - 2))`` times ``|f(x) - mean f|``
    (the background's sampling error of the pattern). An output that is constant on the
    background has no pattern: its rows get zeros, with a warning.
    """

    name = "pattern"
    defaults: ClassVar[dict[str, Any]] = {}
    per_position = True

    def attribute(self, ctx: ExplainContext) -> dict[str, Any]:
        B = ctx.background
        source = "background"
        if B is None:
            B, source = ctx.X, "explained rows"
        B = B.detach().cpu().numpy() if isinstance(B, torch.Tensor) else np.asarray(B)
        B = B.astype(np.float64)
        if len(B) < 3:
            raise ValueError(f"pattern needs at least 3 background rows to estimate "
                             f"covariances; got {len(B)}")
        fB = np.asarray(ctx.predict(B.astype(ctx.X.dtype)), np.float64)
        fX = np.asarray(ctx.predict(ctx.X), np.float64)
        Bc = B.reshape(len(B), -1) - B.reshape(len(B), -1).mean(0)
        n_rows = len(ctx.X)
        values = np.zeros((n_rows, Bc.shape[1]))
        stderr = np.zeros_like(values)
        constant = []
        for t in np.unique(ctx.targets):
            rows = np.flatnonzero(ctx.targets == t)
            f = fB[:, t] - fB[:, t].mean()
            var = float(f @ f) / (len(f) - 1)
            if var <= 0:
                constant.append(int(t))
                continue
            p = Bc.T @ f / (len(f) - 1) / var
            resid = Bc - np.outer(f, p)
            se = np.sqrt((resid**2).sum(0) / (len(f) - 2) / (var * (len(f) - 1)))
            dev = fX[rows, t] - fB[:, t].mean()
            values[rows] = np.outer(dev, p)
            stderr[rows] = np.outer(np.abs(dev), se)
        if constant:
            warn(f"pattern: output(s) {constant} are constant on the background; "
                 "their rows get zero attributions")
        shape = (n_rows, *ctx.X.shape[1:])
        return {"values": values.reshape(shape), "stderr": stderr.reshape(shape),
                "base_values": fB.mean(0)[ctx.targets],
                "evaluations": 0,
                "options": {"background_source": source, "background_rows": len(B)}}
