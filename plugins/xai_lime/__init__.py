"""xai backend for lime: registered through the entry-point group ``xai`` as ``lime``.

Whole explainers that run the reference LIME implementation (``lime`` 0.2) and return an
:class:`xai.Explanation` with ``values`` ``(n, d)`` in xai's feature order (lime's
``(feature, weight)`` list mapped back to feature indices; features lime did not select get
0), ``base_values`` = lime's intercept and ``extras["score"]`` = lime's weighted R^2, for each
row's target output (default: the predicted class):

``lime.tabular``
    ``lime.lime_tabular.LimeTabularExplainer`` with ``training_data = background``; options
    ``num_samples`` (5000), ``kernel_width`` (lime's ``0.75 sqrt(d)``), ``discretize_continuous``
    (False), ``num_features`` (all), ``feature_selection`` (``"none"`` when ``num_features`` is
    None, else lime's ``"auto"``), ``sample_around_instance`` (False).
``lime.image``
    ``lime.lime_image.LimeImageExplainer`` whose ``segmentation_fn`` returns xai's feature map
    of that image (``features=``: default ``"slic"``, or any :class:`xai.FeatureMap`), so its
    values line up with xai's native ``method="lime"`` on the same map; options
    ``num_samples`` (1000), ``kernel_width`` (0.25), ``hide_color`` (None = each segment's
    mean colour, lime's default and xai's ``"segment-mean"``), ``num_features``,
    ``feature_selection``.

``seed`` seeds lime's sampler, afresh for every row (a row's explanation does not depend on
the rows explained with it). The model is called through xai's counting adapter, so
``Explanation.evaluations`` counts lime's samples.

Differences from xai's native ``method="lime"`` (both follow Ribeiro, Singh & Guestrin 2016):
on images the two are the same estimator (binary superpixel samples, cosine distance, kernel
``exp(-D^2/(2 w^2))``, ridge ``alpha = 1``) and differ only by their random samples. On tabular
data lime (with ``discretize_continuous=False``) samples continuous rows from
``N(mean(B), sd(B))``, measures distance in that standardised space and fits one coefficient
per *standard deviation* of each feature, while the native LIME samples binary
keep/replace-by-the-mean vectors and fits one coefficient per feature's *presence*.
``extras["contribution"]`` (continuous mode only) gives lime's coefficients on the native
scale, ``coef_i (x_i - mean_i) / sd_i`` (the surrogate's change when feature ``i`` moves from
the background mean to ``x_i``); for a linear model both recover ``w_i (x_i - mean_i)`` for
rows near the background mean. Because lime samples around the background mean
(``sample_around_instance=False``), rows far from it get tiny kernel weights and lime's ridge
penalty shrinks their coefficients; native LIME samples at the row itself and does not shrink
this way.
"""

from __future__ import annotations

from xai.plugins import hookimpl
from xai.registry import Lazy

# name: (class in xai_lime._explainers, what `xai methods` shows without importing it)
_EXPLAINERS = {
    "lime.tabular": ("LimeTabular",
        "``lime.lime_tabular.LimeTabularExplainer`` (see the module docstring)."),
    "lime.image": ("LimeImage",
        ("``lime.lime_image.LimeImageExplainer`` on xai's feature map (see the "
        "module docstring).")),
}


@hookimpl
def xai_explainers() -> dict:
    """The lime explainers, by name (namespaced as ``lime.<name>``), imported on first use."""
    return {name: Lazy(f"xai_lime._explainers:{cls}", description)
            for name, (cls, description) in _EXPLAINERS.items()}
