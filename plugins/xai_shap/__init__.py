"""xai backend for shap: registered through the entry-point group ``xai`` as ``shap``.

Whole explainers that run shap's own estimators and return an :class:`xai.Explanation`:

==================== ============================================================ =============
name                 shap estimator                                               options
==================== ============================================================ =============
``shap.exact``       ``shap.ExactExplainer``, ``maskers.Independent(B, len(B))``  max_samples
``shap.permutation`` ``shap.PermutationExplainer`` (same masker)                   max_evals,
                                                                                  max_samples
``shap.kernel``      ``shap.KernelExplainer(f, B)``                               nsamples, l1_reg
``shap.partition``   ``shap.PartitionExplainer``: images ``maskers.Image``,       max_evals, mask,
                     tabular ``maskers.Partition`` with a clustering              clustering,
                                                                                  max_samples
``shap.tree``        ``shap.TreeExplainer(model)``                                model_output,
                                                                                  feature_perturbation
``shap.linear``      ``shap.LinearExplainer(model, masker)``                      feature_perturbation
==================== ============================================================ =============

Every explainer also takes ``target`` (default ``"predicted"``), ``seed``, ``batch_size``.
The model-agnostic ones (exact, permutation, kernel, partition) call the model through xai's
counting adapter (``ExplainContext.predict``), wrapped to return the explained output only,
so ``Explanation.evaluations`` counts every row shap evaluated; tree and linear read the
fitted model object itself (scikit-learn tree ensembles and linear models) and evaluate no
rows beyond the ones that resolve the default target.

Attributions come per input position (a column; for ``shap.partition`` on images a pixel of
one channel, the positions ``shap.maskers.Image`` attributes), so these explainers have
``per_position = True``: with ``features=`` (tabular groups, or an image feature map) the
values are summed over each feature's positions. Summing column Shapley values over a group is
*not* the Shapley value of the game whose players are the groups (use xai's native methods
with ``features=`` for that); for images, sums keep shap's efficiency (``sum(values) +
base_values = f(x)``).
"""

from __future__ import annotations

from xai.plugins import hookimpl
from xai.registry import Lazy

# name: (class in xai_shap._explainers, what `xai methods` shows without importing it)
_EXPLAINERS = {
    "shap.exact": ("ShapExact",
        ("``shap.ExactExplainer`` with ``maskers.Independent(background, "
        "max_samples)``.")),
    "shap.permutation": ("ShapPermutation",
        ("``shap.PermutationExplainer`` (antithetic permutations, shap's "
        "implementation) with ``maskers.Independent(background, max_samples)``;"
        " ``max_evals`` model calls of the masker per explained row (shap's "
        "default 500), ``seed`` seeds shap's permutations.")),
    "shap.kernel": ("ShapKernel",
        ("``shap.KernelExplainer(f, background).shap_values(X, nsamples, "
        "l1_reg)``.")),
    "shap.partition": ("ShapPartition",
        "``shap.PartitionExplainer`` (Owen values on a hierarchy of features)."),
    "shap.tree": ("ShapTree",
        ("``shap.TreeExplainer`` for tree ensembles (scikit-learn forests and "
        "boosting, XGBoost, LightGBM, CatBoost): the model object itself is "
        "read, no rows are evaluated.")),
    "shap.linear": ("ShapLinear",
        ("``shap.LinearExplainer`` for scikit-learn linear models (the "
        "coefficients are read).")),
}


@hookimpl
def xai_explainers() -> dict:
    """The shap explainers, by name (namespaced as ``shap.<name>``), imported on first use."""
    return {name: Lazy(f"xai_shap._explainers:{cls}", description)
            for name, (cls, description) in _EXPLAINERS.items()}
