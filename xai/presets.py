"""Named methods as presets: defaults on the three axes (removal, behaviour, summary)."""

from __future__ import annotations

from dataclasses import dataclass, field

from .registry import Lazy, define_kind, register


@dataclass(frozen=True)
class Preset:
    """A named method: axis names and their default options.

    ``removal`` / ``summary`` may depend on the input kind (``{"tabular": ..., "image": ...}``
    for options); ``summary="auto"`` applies the Shapley auto rule.
    """

    name: str
    removal: str
    behaviour: str
    summary: str
    removal_options: dict = field(default_factory=dict)
    behaviour_options: dict = field(default_factory=dict)
    summary_options: dict = field(default_factory=dict)
    dataset: bool = False
    row_sampling: bool = False
    aggregate: str | None = None
    description: str = ""


define_kind("explainer", accepts=lambda obj: isinstance(obj, Preset))  # beside explain() classes

PRESETS = [
    Preset("shap", "marginal", "prediction", "auto",
           description="interventional SHAP: marginal x prediction x Shapley (auto estimator)"),
    Preset("exact-shap", "marginal", "prediction", "exact-shapley",
           description="exact Shapley values by enumeration"),
    Preset("permutation-shap", "marginal", "prediction", "permutation-shapley",
           description="Shapley values by antithetic permutation sampling"),
    Preset("kernelshap", "marginal", "prediction", "kernelshap",
           description="KernelSHAP: paired, strata enumerated, exact constraint"),
    Preset("lime", "baseline", "prediction", "lime",
           removal_options={"baseline": {"tabular": "mean", "image": "segment-mean",
                                         "tokens": "zeros"}},
           description="LIME: weighted ridge surrogate on binary samples"),
    Preset("occlusion", "baseline", "prediction", "remove-individual",
           removal_options={"baseline": {"tabular": "mean", "image": "zeros",
                                         "tokens": "zeros"}},
           description="occlusion: the drop when one feature is replaced by a baseline"),
    Preset("rise", "baseline", "prediction", "rise",
           removal_options={"baseline": "zeros"},
           description="RISE: mean value when included, smooth masks on images"),
    Preset("banzhaf", "marginal", "prediction", "banzhaf",
           description="Banzhaf values by maximum sample reuse, or by Kernel Banzhaf "
                       "(estimator='kernel')"),
    Preset("shap-interactions", "marginal", "prediction", "shap-interactions",
           description="pairwise Shapley interactions (index= k-SII, SII, STII, FSII, BII): "
                       "main effects in values, pairs in interactions"),
    Preset("sage", "marginal", "dataset-loss", "permutation-shapley",
           summary_options={"rtol": 0.025, "budget": 10**8}, dataset=True, row_sampling=True,
           aggregate="prediction",
           description="SAGE: marginal x dataset loss (E-pred) x Shapley, one data row (and, "
                       "for squared error, a random pair of background rows) per unit"),
    Preset("permutation-importance", "permutation-donor", "dataset-loss", "remove-individual",
           dataset=True, aggregate="behaviour",
           description="permutation importance: loss increase when a column is permuted"),
    Preset("lossshap", "marginal", "loss", "auto",
           description="LossSHAP: Shapley values of the per-example loss"),
    Preset("shap-kl", "marginal", "kl", "auto",
           description="SHAP-KL: Shapley values of -KL(full prediction || coalition)"),
]

for _p in PRESETS:
    register("explainer", _p.name, _p, aliases=("feature-ablation",) if _p.name == "occlusion"
             else ())

# whole explainers defined in modules that need torch: imported on their first lookup
register("explainer", "pattern", Lazy(
    "xai.datasets.gauss2d:Pattern",
    "The activation pattern (Haufe et al. 2014) as a reference explainer for any model."))
register("explainer", "patternnet", Lazy(
    "xai.pattern_net:PatternNet",
    "PatternNet (Kindermans et al. 2018): the signal the output detects, projected back "
    "through per-layer patterns fitted on background rows (torch ReLU networks)"))
register("explainer", "pattern-attribution", Lazy(
    "xai.pattern_net:PatternAttribution",
    "PatternAttribution (Kindermans et al. 2018): LRP/DTD backward pass with weights times "
    "fitted patterns (torch ReLU networks; background rows fit the patterns)"))
register("explainer", "extremal-perturbation", Lazy(
    "xai.extremal:ExtremalPerturbation",
    "Extremal perturbations (Fong et al. 2019): the smooth mask of a given area that keeps "
    "(or deletes) the target output most, blur outside it, by gradient ascent (torch images)"))
register("explainer", "eva", Lazy(
    "xai.eva:EVA",
    "EVA (Fel et al. 2023): per feature, the drop of the verified adversarial overlap (CROWN "
    "or interval bounds over an l_inf ball) when the feature is held (torch ReLU networks)"))
