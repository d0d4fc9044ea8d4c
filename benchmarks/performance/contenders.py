"""Every contender of problems 1 and 2 behind one signature.

``run(problem, X, budget, seed) -> (values (n, d), stderr (n, d) or None)``. ``budget`` is the
nominal model rows per explained point; what each contender really evaluates is read from the
shared :class:`~.common.CountingModule`, never from the contender. Each peer gets the training
mean as its baseline and the same counting model. Peers that cannot do a problem are listed in
:data:`NOT_APPLICABLE` with the reason.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch


@dataclass
class Contender:
    name: str
    library: str
    run: Callable
    settings: str
    ours: bool = False
    max_budget: int | None = None  # larger budgets are skipped (too slow), with the reason
    max_budget_why: str = ""
    batch_rows: bool = True  # explains a batch of rows in one call (else a Python loop per row)
    sizes: dict = field(default_factory=dict)
    estimand: str = "shapley"  # problem 1 scores Shapley estimators only; problem 2 times all


# -- ours ---------------------------------------------------------------------------------------
def _xai(summary_cls, **kw):
    def run(problem, X, budget, seed):
        from .problem import xai_game

        res = summary_cls(budget=int(budget), seed=seed, **kw)(xai_game(problem, X))
        n, d = len(X), problem.d
        return (np.asarray(res.values, float).reshape(n, d),
                np.asarray(res.stderr, float).reshape(n, d))
    return run


# -- shap ---------------------------------------------------------------------------------------
def _shap_kernel(l1_reg):
    def run(problem, X, budget, seed):
        import shap

        np.random.seed(seed)  # KernelExplainer draws from the global numpy RNG
        ex = shap.KernelExplainer(problem.counter.proba_numpy, problem.mean[None])
        kw = {} if l1_reg == "default" else {"l1_reg": l1_reg}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            sv = ex.shap_values(X, nsamples=int(budget), silent=True, **kw)
        return np.asarray(sv, float).reshape(len(X), problem.d), None
    return run


def _shap_permutation(problem, X, budget, seed):
    import shap

    masker = shap.maskers.Independent(problem.mean[None], max_samples=1)
    ex = shap.PermutationExplainer(problem.counter.proba_numpy, masker, seed=seed)
    out = ex(X, max_evals=int(budget), silent=True)
    return np.asarray(out.values, float).reshape(len(X), problem.d), None


# -- captum -------------------------------------------------------------------------------------
def _captum_kernel(problem, X, budget, seed):
    from captum.attr import KernelShap

    ks = KernelShap(problem.counter.proba_torch)
    base = torch.as_tensor(problem.mean[None])
    out = np.empty((len(X), problem.d))
    torch.manual_seed(seed)
    for i, x in enumerate(torch.as_tensor(X)):  # captum fits one surrogate per example
        out[i] = ks.attribute(x[None], baselines=base, n_samples=int(budget),
                              perturbations_per_eval=int(budget)).numpy()[0]
    return out, None


def _captum_svs(problem, X, budget, seed):
    from captum.attr import ShapleyValueSampling

    d = problem.d
    svs = ShapleyValueSampling(problem.counter.proba_torch)
    torch.manual_seed(seed)
    n_perm = max(1, (int(budget) - 1) // d)  # one permutation costs d rows (+1 for the baseline)
    out = svs.attribute(torch.as_tensor(X), baselines=torch.as_tensor(problem.mean[None]),
                        n_samples=n_perm, perturbations_per_eval=d)
    return out.numpy().reshape(len(X), d), None


# -- estimators of other estimands (timed in problem 2 only) -------------------------------------
def _proba2(problem):
    """(n, 2) class probabilities through the counter (what lime's tabular explainer calls)."""
    def f(x):
        q = problem.counter.proba_numpy(x)
        return np.stack([1 - q, q], 1)
    return f


def _lime_tabular(problem, X, budget, seed):
    from lime.lime_tabular import LimeTabularExplainer

    d = problem.d
    ex = LimeTabularExplainer(problem.X_train, mode="classification", random_state=seed)
    out = np.zeros((len(X), d))
    for i, x in enumerate(X):  # lime explains one instance per call
        res = ex.explain_instance(x, _proba2(problem), labels=(1,), num_features=d,
                                  num_samples=int(budget))
        for j, w in res.as_map()[1]:
            out[i, j] = w
    return out, None


def _captum_lime(problem, X, budget, seed):
    from captum.attr import Lime

    lm = Lime(problem.counter.proba_torch)
    base = torch.as_tensor(problem.mean[None])
    out = np.empty((len(X), problem.d))
    torch.manual_seed(seed)
    for i, x in enumerate(torch.as_tensor(X)):  # one surrogate per example
        out[i] = lm.attribute(x[None], baselines=base, n_samples=int(budget),
                              perturbations_per_eval=int(budget)).numpy()[0]
    return out, None


def _shap_partition(problem, X, budget, seed):
    import shap

    masker = shap.maskers.Partition(problem.mean[None], clustering=shap.utils.hclust(
        problem.X_train, metric="correlation"))
    ex = shap.PartitionExplainer(problem.counter.proba_numpy, masker)
    out = ex(X, max_evals=int(budget), silent=True)
    return np.asarray(out.values, float).reshape(len(X), problem.d), None


# -- shapiq -------------------------------------------------------------------------------------
def _shapiq(cls_name, **kw):
    def run(problem, X, budget, seed):
        import shapiq.approximator as A

        d = problem.d
        out = np.empty((len(X), d))
        for i, x in enumerate(X):
            def game(coalitions, x=x):
                c = np.asarray(coalitions, bool)
                return problem.counter.proba_numpy(np.where(c, x, problem.mean))
            approx = getattr(A, cls_name)(d, random_state=seed, **kw)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                iv = approx.approximate(int(budget), game)
            out[i] = shapley_from_interactions(iv, d)
        return out, None
    return run


def shapley_from_interactions(iv, d: int) -> np.ndarray:
    """First-order values of shapiq's result: the Shapley values for every index used here
    (for kADD-SHAP the singletons hold the Shapley values, the pairs the interactions)."""
    phi = np.zeros(d)
    for S, j in iv.interaction_lookup.items():
        if len(S) == 1:
            phi[S[0]] = float(iv.values[j])
    return phi


def contenders() -> list[Contender]:
    slow = "captum fits one surrogate per example from samples built one at a time (~250 µs each)"
    return [
        Contender("xai KernelSHAP", "xai", _xai(_summaries().KernelSHAP),
                  "paired, enumerated strata, exact constraint, sandwich SE", ours=True),
        Contender("xai RA-KernelSHAP", "xai", _xai(_summaries().RegressionAdjustedKernelSHAP),
                  "KernelSHAP design + cross-fitted (3 folds) pairwise surrogate on the logit "
                  "scale, residual KernelSHAP, sandwich SE", ours=True),
        Contender("xai RA-KernelSHAP (network)", "xai",
                  _xai(_summaries().NetworkAdjustedKernelSHAP),
                  "RA-KernelSHAP whose cross-fitted surrogate (2 folds) adds a tanh network (16 "
                  "hidden units, 120 L-BFGS steps at 1024 rows, about 150 at 4096) on the logit "
                  "scale; exact surrogate Shapley values by enumeration, residual KernelSHAP, "
                  "sandwich SE", ours=True),
        Contender("xai RA-KernelSHAP (network, long fit)", "xai",
                  _xai(_summaries().NetworkAdjustedKernelSHAP, steps=300, folds=3),
                  "the same with 300 L-BFGS steps and 3 folds", ours=True),
        Contender("xai permutation", "xai", _xai(_summaries().PermutationShapley),
                  "antithetic permutation pairs, SE over pairs", ours=True),
        Contender("shap Kernel (default l1_reg)", "shap", _shap_kernel("default"),
                  "KernelExplainer, default l1_reg='num_features(10)'", batch_rows=False),
        Contender("shap Kernel (l1_reg=False)", "shap", _shap_kernel(False),
                  "KernelExplainer, l1_reg=False (best)", batch_rows=False),
        Contender("shap Permutation", "shap", _shap_permutation,
                  "PermutationExplainer, Independent masker (1 row), max_evals=budget",
                  batch_rows=False),
        Contender("captum KernelShap", "captum", _captum_kernel,
                  "n_samples=budget, perturbations_per_eval=budget", batch_rows=False,
                  max_budget=1024, max_budget_why=slow),
        Contender("captum ShapleyValueSampling", "captum", _captum_svs,
                  "n_samples=(budget-1)//d permutations, perturbations_per_eval=d"),
        Contender("shapiq KernelSHAP", "shapiq", _shapiq("KernelSHAP"), "default",
                  batch_rows=False),
        Contender("shapiq KernelSHAP (paired)", "shapiq", _shapiq("KernelSHAP", pairing_trick=True),
                  "pairing_trick=True", batch_rows=False),
        Contender("shapiq kADDSHAP", "shapiq", _shapiq("kADDSHAP", max_order=2), "max_order=2",
                  batch_rows=False),
        Contender("shapiq SVARM", "shapiq", _shapiq("SVARM"), "default", batch_rows=False),
        Contender("shapiq PermutationSamplingSV", "shapiq", _shapiq("PermutationSamplingSV"),
                  "default", batch_rows=False),
        Contender("xai LIME", "xai", _xai(_summaries().LIME),
                  "defaults (kernel width 0.75·√d on the binary design, ridge, paired samples), "
                  "budget samples",
                  ours=True, estimand="lime"),
        Contender("lime LimeTabularExplainer", "lime", _lime_tabular,
                  "defaults (quartile discretisation, training data), num_samples=budget",
                  batch_rows=False, estimand="lime"),
        Contender("captum Lime", "captum", _captum_lime,
                  "defaults (Lasso surrogate), n_samples=budget, perturbations_per_eval=budget "
                  "(best)", batch_rows=False, estimand="lime"),
        Contender("shap Partition", "shap", _shap_partition,
                  "PartitionExplainer, correlation clustering of the training data, the "
                  "training mean as the one background row, max_evals=budget",
                  estimand="owen"),
    ]


def _summaries():
    from xai import summaries

    return summaries


#: why a contender of :func:`contenders` is not scored in problem 1 (timed in problem 2)
OTHER_ESTIMANDS = {
    "lime": "a local linear surrogate (LIME), not Shapley values: timed in problem 2 only",
    "owen": "Owen values over a feature hierarchy, not Shapley values: timed in problem 2 only",
}

NOT_APPLICABLE = {
    "shap Exact": "exact enumeration: no budget below 2^d rows (it is the truth, not a contender)",
    "captum IntegratedGradients": "path attribution, not Shapley values of the baseline game",
    "sage-importance": "global (dataset-level) importance, not local Shapley values (problem 6)",
    "xai Banzhaf MSR": "Banzhaf values, not Shapley values",
}
