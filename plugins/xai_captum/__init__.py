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
from xai.registry import Lazy

# name: (class in xai_captum._explainers, what `xai methods` shows without importing it)
_EXPLAINERS = {
    "captum.integrated-gradients": ("IntegratedGradients",
        ("Integrated gradients (Sundararajan et al. 2017), captum "
        "``IntegratedGradients``.")),
    "captum.saliency": ("Saliency",
        ("Saliency (Simonyan et al. 2014): the gradient of the target output, "
        "captum ``Saliency``.")),
    "captum.input-x-gradient": ("InputXGradient",
        "Input x gradient, captum ``InputXGradient``."),
    "captum.smoothgrad": ("SmoothGrad",
        ("SmoothGrad (Smilkov et al. 2017): captum ``NoiseTunnel`` over "
        "``Saliency`` or ``IntegratedGradients``.")),
    "captum.gradient-shap": ("GradientShap",
        ("GradientSHAP (Lundberg & Lee 2017), captum ``GradientShap``: expected "
        "gradients with baselines drawn from the ``background=`` rows.")),
    "captum.deeplift": ("DeepLift",
        "DeepLIFT (Shrikumar et al. 2017, rescale rule), captum ``DeepLift``."),
    "captum.gradcam": ("GradCam",
        ("Grad-CAM (Selvaraju et al. 2017), captum ``LayerGradCam`` on the layer"
        " ``layer`` (a module name of ``dict(model.named_modules())``, e.g. "
        "``\"features.3\"``; default: the last ``nn.Conv2d``), upsampled to the "
        "input's spatial size with ``LayerAttribution.interpolate``.")),
    "captum.occlusion": ("Occlusion",
        ("Occlusion (Zeiler & Fergus 2014), captum ``Occlusion``: slide a window"
        " of ``baselines`` over the input and attribute the output drop to the "
        "window's positions (averaged where windows overlap).")),
}


@hookimpl
def xai_explainers() -> dict:
    """The captum explainers, by name (namespaced as ``captum.<name>``), imported on first use."""
    return {name: Lazy(f"xai_captum._explainers:{cls}", description)
            for name, (cls, description) in _EXPLAINERS.items()}
