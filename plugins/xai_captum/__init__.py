"""xai backend for captum: registered through the entry-point group ``xai`` as ``captum``.

Whole explainers (subclasses of :class:`xai.ExternalExplainer`), by namespaced name:

- ``captum.integrated-gradients``: baselines, n_steps=50, quadrature="gausslegendre"
  (captum's ``method``; ``xai.explain`` takes ``method`` for the name), internal_batch_size=
  "auto", multiply_by_inputs=True, memory_format="auto" (channels-last for images of a CNN on
  a CPU); convergence delta per row in ``extras["convergence_delta"]``.
- ``captum.saliency``: abs=True.
- ``captum.input-x-gradient``.
- ``captum.smoothgrad``: NoiseTunnel over saliency or integrated gradients; nt_type,
  nt_samples=25, stdevs=0.15 relative to the inputs' value range (relative=False: absolute).
- ``captum.gradient-shap``: baselines from background= rows; n_samples=50, stdevs=0.0.
- ``captum.deeplift``: baselines.
- ``captum.gradcam``: layer= (a name from ``model.named_modules()``), upsampled to the input.
- ``captum.occlusion``: sliding_window_shapes, strides, baselines (works for any model).

``_`` and ``-`` are equivalent in names (``"captum.integrated_gradients"``). captum itself is
imported only when an explainer runs (``pip install 'xai[peers]'``). See
:mod:`xai_captum._explainers` for every option.
"""

from __future__ import annotations

from xai.plugins import hookimpl


@hookimpl
def xai_explainers() -> dict:
    """The captum explainers, by name (namespaced as ``captum.<name>``)."""
    from ._explainers import EXPLAINERS

    return dict(EXPLAINERS)
