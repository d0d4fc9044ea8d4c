"""The captum explainers: gradient methods (integrated gradients, saliency, input x gradient,
SmoothGrad, GradientSHAP, DeepLIFT), Grad-CAM and occlusion, as :class:`xai.ExternalExplainer`
subclasses.

captum is imported inside :meth:`attribute` only, so ``import xai`` (and loading this plugin)
never imports it. Every method attributes all explained rows in one batched captum call.

Model discipline (for every method): the module is put in eval mode while attributing and the
training flag of each submodule is restored afterwards, also after an error; inputs are fresh
tensors (in the module's dtype, on its device), so nothing the user holds gets
``requires_grad``; captum uses ``torch.autograd.grad``, so parameter ``.grad`` is untouched.

Memory: methods that expand the batch (integrated gradients: rows x ``n_steps``; SmoothGrad:
rows x ``nt_samples``; occlusion: rows x perturbations per pass) process at most
``xai.config.memory_cap / (ACTIVATION_FACTOR * bytes of one input row)`` expanded rows per
forward/backward pass (and never fewer than the number of explained rows), unless the batch
option is given explicitly. On a CPU, integrated gradients' automatic batch is further bounded
by :func:`xai.planner.pass_rows` (never fewer than the explained rows): a forward and backward
pass costs more per row in large batches once the activations leave the cache.

Speed of integrated gradients (values equal to captum's up to float rounding): on a CPU, images
(4-D inputs) of a module with an ``nn.Conv2d`` taking their channels are attributed in the
channels-last memory layout (oneDNN's native layout: no reorders in each convolution and its
backward) when a one-row probe gives the same
output; captum is called with ``multiply_by_inputs=False`` and the integral of the gradients is
multiplied by ``inputs - baselines`` once (captum multiplies once per internal batch); the
module is passed to captum as a plain function (captum reads the forward's signature once per
pass, which for a module costs more than for a function); ``f(x)`` for the convergence delta is
the output already computed to resolve the targets.
"""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Iterator
from typing import Any, ClassVar

import numpy as np
import torch

from xai.config import config
from xai.errors import InputError, XaiError, unknown_name
from xai.external import ExplainContext, ExternalExplainer
from xai.features import guess_channel_axis
from xai.models import channels_last_layout, eval_mode
from xai.planner import pass_rows

ACTIVATION_FACTOR = 32
"""Assumed bytes of activations and gradients per byte of input, for automatic batch sizes."""


def _captum():
    try:
        from captum import attr
    except ImportError as exc:  # pragma: no cover - captum is installed in the test env
        raise XaiError("the captum explainers need captum: pip install 'xai[peers]' "
                       f"(or pip install captum); importing it failed: {exc}") from exc
    return attr


def _eval_mode(module: torch.nn.Module) -> contextlib.AbstractContextManager[None]:
    """Eval mode and gradients enabled; every submodule's training flag restored on exit."""
    return eval_mode(module, grad=True)


@contextlib.contextmanager
def _seeded(seed: int | None, device: torch.device) -> Iterator[None]:
    """Seed torch and numpy's global generators (captum draws from both) for the duration,
    restoring their states afterwards; no-op when ``seed`` is None."""
    if seed is None:
        yield
        return
    devices = [device.index or 0] if device.type == "cuda" else []
    np_state = np.random.get_state()
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(int(seed))
        np.random.seed(int(seed) % 2**32)
        try:
            yield
        finally:
            np.random.set_state(np_state)


class _OutputAs2D(torch.nn.Module):
    """Wraps a module returning ``(n,)`` so that it returns ``(n, 1)`` (captum targets)."""

    def __init__(self, module: torch.nn.Module) -> None:
        super().__init__()
        self.module = module

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.module(x)
        return out[:, None] if out.ndim == 1 else out.reshape(out.shape[0], -1)


class _CaptumExplainer(ExternalExplainer):
    """Shared machinery of the captum explainers."""

    name = "captum"
    gradient = True  # needs a torch module and float inputs

    # -- helpers ----------------------------------------------------------------------------
    def _setup(self, ctx: ExplainContext):
        """(module for captum, input tensor, target tensor)."""
        module = ctx.torch_module()
        if ctx.kind == "tokens" or not np.issubdtype(ctx.X.dtype, np.floating):
            raise InputError(f"{self.name} needs float inputs (it differentiates the model with "
                             "respect to them); got integer inputs (token ids?). Attribute an "
                             "embedding layer instead, or use 'captum.occlusion'.")
        adapter = ctx.adapter
        x = torch.tensor(ctx.X, dtype=adapter.dtype, device=adapter.device)
        with _eval_mode(module), torch.no_grad():
            probe = module(x[:1])
        if isinstance(probe, tuple | list):
            raise InputError(f"{self.name} needs a module returning one tensor, got "
                             f"{type(probe).__name__}; wrap the model to return its output")
        forward = module if probe.ndim == 2 else _OutputAs2D(module)
        self._probe = probe if probe.ndim == 2 else probe.reshape(1, -1)
        target = torch.as_tensor(np.asarray(ctx.targets), dtype=torch.long, device=x.device)
        return forward, x.requires_grad_(), target  # x is our own copy

    @staticmethod
    def _rows_cap(x: torch.Tensor) -> int:
        """Expanded rows per pass allowed by ``xai.config.memory_cap``."""
        row_bytes = max(1, math.prod(x.shape[1:]) * x.element_size())
        return max(1, int(config.memory_cap // (ACTIVATION_FACTOR * row_bytes)))

    @staticmethod
    def _pick(out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return out.gather(1, target[:, None].to(out.device))[:, 0]

    def _baselines(self, spec: Any, ctx: ExplainContext, x: torch.Tensor):
        """captum baselines (a float or a tensor ``(1 or n, *shape)``) and a description."""
        if spec is None or (isinstance(spec, str) and spec.lower() in ("zeros", "zero")):
            return 0.0, "zeros"
        if isinstance(spec, bool):
            raise InputError(f"baselines={spec!r} is not understood")
        if isinstance(spec, int | float | np.integer | np.floating):
            return float(spec), f"scalar {float(spec)!r}"
        if isinstance(spec, str):
            if spec.lower() == "mean":
                if ctx.background is None:
                    raise InputError(f"{self.name}: baselines='mean' is the mean of the "
                                     "background rows; pass background=")
                bg = torch.as_tensor(np.asarray(ctx.background), dtype=x.dtype)
                return bg.mean(0, keepdim=True).to(x.device), "mean of background"
            raise unknown_name("baselines", spec, ["zeros", "mean"])
        b = torch.as_tensor(spec.detach().cpu().numpy() if isinstance(spec, torch.Tensor)
                            else np.asarray(spec, dtype=np.float64))
        b = b.to(device=x.device, dtype=x.dtype)
        shape = tuple(x.shape[1:])
        if tuple(b.shape) == shape:
            return b[None], "one row"
        if tuple(b.shape[1:]) == shape and b.shape[0] in (1, x.shape[0]):
            return b, "one row" if b.shape[0] == 1 else "per row"
        raise InputError(f"{self.name}: baselines of shape {tuple(b.shape)} do not fit inputs "
                         f"of shape {tuple(x.shape)}: give a scalar, one row {shape}, or one "
                         f"row per input {tuple(x.shape)}")

    def _output_at(self, forward, b, x: torch.Tensor, target: torch.Tensor) -> np.ndarray:
        """``f(b)_t`` per explained row (``b`` a float or a tensor of 1 or n rows)."""
        if not isinstance(b, torch.Tensor):
            b = torch.full((1, *x.shape[1:]), float(b), dtype=x.dtype, device=x.device)
        with torch.no_grad():
            out = forward(b)
        out = out.expand(x.shape[0], -1) if out.shape[0] == 1 else out
        return self._pick(out, target).detach().cpu().double().numpy()

    @staticmethod
    def _np(t: torch.Tensor) -> np.ndarray:
        return t.detach().cpu().double().numpy()

    def attribute(self, ctx: ExplainContext) -> dict[str, Any]:
        attr = _captum()
        module = ctx.torch_module() if self.gradient else None
        if module is None:
            return self._attribute(attr, ctx, None, None, None)
        forward, x, target = self._setup(ctx)
        with _eval_mode(module):
            return self._attribute(attr, ctx, forward, x, target)

    def _attribute(self, attr, ctx, forward, x, target) -> dict[str, Any]:
        raise NotImplementedError


class IntegratedGradients(_CaptumExplainer):
    """Integrated gradients (Sundararajan et al. 2017), captum ``IntegratedGradients``.

    Options: ``baselines`` (None or ``"zeros"``: zeros; a scalar; one row of the input shape;
    one row per explained row; ``"mean"``: the mean of ``background=``; a background passed
    without ``baselines="mean"`` is not used), ``n_steps=50``, ``quadrature="gausslegendre"``
    (captum's ``method``: ``riemann_left|right|middle|trapezoid``, ``gausslegendre``; the
    constructor also takes it as ``method=``, but ``xai.explain`` uses ``method`` for the
    method's name), ``internal_batch_size="auto"`` (expanded rows per pass: ``"auto"``
    bounds memory by ``xai.config.memory_cap`` (see the module docstring); an int as in captum;
    None: all rows x steps in one pass), ``multiply_by_inputs=True``,
    ``memory_format="auto"`` (the layout the rows are attributed in: ``"auto"`` channels-last
    for images of a convolutional network on a CPU, see the module docstring;
    ``"channels_last"``; ``"contiguous"``: as given).

    ``extras["convergence_delta"]``: captum's delta per row, ``sum(values) - (f(x)_t -
    f(baseline)_t)``; ``options["max_abs_convergence_delta"]``. ``base_values`` are
    ``f(baseline)_t``.
    """

    name = "captum.integrated-gradients"
    defaults: ClassVar[dict[str, Any]] = {
        "baselines": None, "n_steps": 50, "quadrature": "gausslegendre",
        "internal_batch_size": "auto", "multiply_by_inputs": True, "memory_format": "auto"}

    def __init__(self, *, method: str | None = None, **options: Any) -> None:
        # captum calls the quadrature ``method``, which xai.explain() takes for the method name
        if method is not None:
            options["quadrature"] = method
        super().__init__(**options)

    def _internal_batch(self, x: torch.Tensor, expanded: int):
        """Expanded rows per pass: ``"auto"`` bounds them by the memory cap and, on a CPU, by
        :func:`xai.planner.pass_rows`, never below the explained rows (captum's minimum), in
        whole steps; None when everything fits in one pass."""
        ibs = self.options["internal_batch_size"]
        if isinstance(ibs, str):
            if ibs != "auto":
                raise unknown_name("internal_batch_size", ibs, ["auto"])
            cap = pass_rows(x, x.shape[0], self._rows_cap(x))
            return None if expanded <= cap else cap
        return ibs

    def _attribute(self, attr, ctx, forward, x, target):
        n_steps = int(self.options["n_steps"])
        b, bdesc = self._baselines(self.options["baselines"], ctx, x)
        ibs = self._internal_batch(x, x.shape[0] * n_steps)
        channels_last = channels_last_layout(self.options["memory_format"], ctx.torch_module(),
                                             forward, x, self._probe)
        # captum builds the scaled inputs from these and differentiates with respect to them
        inputs = x.detach()
        if channels_last:
            inputs = inputs.contiguous(memory_format=torch.channels_last)

        def fn(inp: torch.Tensor) -> torch.Tensor:  # captum inspects a function's signature cheaply
            return forward(inp)

        # the integral of the gradients from captum, multiplied by (inputs - baselines) once
        # here (captum's multiply_by_inputs multiplies once per internal batch)
        ig = attr.IntegratedGradients(fn, multiply_by_inputs=False)
        grads = ig.attribute(inputs, baselines=b, target=target, n_steps=n_steps,
                             method=self.options["quadrature"], internal_batch_size=ibs)
        with torch.no_grad():
            values = grads * (inputs - b) if self.options["multiply_by_inputs"] else grads
        values = self._np(values.contiguous())
        # the convergence delta from f(x) and f(baseline) evaluated once each (one row for a
        # shared baseline; f(x) is the output that resolved the targets), not captum's
        # return_convergence_delta, which evaluates the baseline expanded to every row
        base = self._output_at(forward, b, x, target)
        n = x.shape[0]
        outputs, fx_rows = getattr(ctx, "outputs", None), 0
        if outputs is None or outputs.shape[0] != n:
            with torch.no_grad():
                outputs = self._np(forward(x))
            fx_rows = n
        fx = outputs[np.arange(n), np.asarray(ctx.targets)]
        delta = values.reshape(len(values), -1).sum(1) - (fx - base)
        n_base = b.shape[0] if isinstance(b, torch.Tensor) else 1
        return {"values": values, "base_values": base,
                "extras": {"convergence_delta": delta},
                "options": {"baselines": bdesc, "internal_batch_size": ibs,
                            "memory_format": "channels_last" if channels_last else "contiguous",
                            "max_abs_convergence_delta": float(np.abs(delta).max())},
                "removal": {"name": "baseline", "baselines": bdesc},
                "evaluations": n * n_steps + fx_rows + n_base}


class Saliency(_CaptumExplainer):
    """Saliency (Simonyan et al. 2014): the gradient of the target output, captum ``Saliency``.

    Options: ``abs=True`` (absolute gradients, captum's default).
    """

    name = "captum.saliency"
    defaults: ClassVar[dict[str, Any]] = {"abs": True}

    def _attribute(self, attr, ctx, forward, x, target):
        values = attr.Saliency(forward).attribute(x, target=target, abs=self.options["abs"])
        return {"values": self._np(values), "evaluations": x.shape[0]}


class InputXGradient(_CaptumExplainer):
    """Input x gradient, captum ``InputXGradient``. No options."""

    name = "captum.input-x-gradient"
    defaults: ClassVar[dict[str, Any]] = {}

    def _attribute(self, attr, ctx, forward, x, target):
        values = attr.InputXGradient(forward).attribute(x, target=target)
        return {"values": self._np(values), "evaluations": x.shape[0]}


class SmoothGrad(_CaptumExplainer):
    """SmoothGrad (Smilkov et al. 2017): captum ``NoiseTunnel`` over ``Saliency`` or
    ``IntegratedGradients``.

    Options: ``base="saliency"`` (or ``"integrated_gradients"``), ``nt_type="smoothgrad"``
    (``smoothgrad_sq``, ``vargrad``), ``nt_samples=25``, ``stdevs=0.15``, ``relative=True``:
    the noise standard deviation is ``stdevs * (X.max() - X.min())`` over the explained rows,
    as in the paper (``relative=False``: ``stdevs`` is the absolute standard deviation, as in
    captum), ``abs=True`` (saliency base), ``baselines``, ``n_steps=50``, ``quadrature`` (IG
    base),
    ``nt_samples_batch_size="auto"`` (noisy copies per pass, bounded by
    ``xai.config.memory_cap``; an int or None as in captum). ``seed`` makes the noise
    reproducible (torch's global generator is seeded and restored).
    """

    name = "captum.smoothgrad"
    defaults: ClassVar[dict[str, Any]] = {
        "base": "saliency", "nt_type": "smoothgrad", "nt_samples": 25, "stdevs": 0.15,
        "relative": True, "abs": True, "baselines": None, "n_steps": 50,
        "quadrature": "gausslegendre", "nt_samples_batch_size": "auto"}

    def __init__(self, *, method: str | None = None, **options: Any) -> None:
        if method is not None:
            options["quadrature"] = method
        super().__init__(**options)

    def _attribute(self, attr, ctx, forward, x, target):
        o = self.options
        base = str(o["base"]).lower().replace("-", "_")
        nt_samples = int(o["nt_samples"])
        kwargs: dict[str, Any] = {}
        if base == "saliency":
            inner, steps = attr.Saliency(forward), 1
            kwargs["abs"] = o["abs"]
            bdesc = None
        elif base in ("integrated_gradients", "ig"):
            inner, steps = attr.IntegratedGradients(forward), int(o["n_steps"])
            b, bdesc = self._baselines(o["baselines"], ctx, x)
            kwargs.update(baselines=b, n_steps=steps, method=o["quadrature"])
        else:
            raise unknown_name("smoothgrad base", o["base"],
                               ["saliency", "integrated_gradients"])
        span = float(x.detach().max() - x.detach().min())
        std = float(o["stdevs"]) * (span if o["relative"] else 1.0)
        bs = o["nt_samples_batch_size"]
        if isinstance(bs, str):
            if bs != "auto":
                raise unknown_name("nt_samples_batch_size", bs, ["auto"])
            per_pass = max(1, self._rows_cap(x) // (x.shape[0] * steps))
            bs = None if per_pass >= nt_samples else per_pass
        with _seeded(o.get("seed"), x.device):
            values = attr.NoiseTunnel(inner).attribute(
                x, nt_type=o["nt_type"], nt_samples=nt_samples, nt_samples_batch_size=bs,
                stdevs=std, target=target, **kwargs)
        opts = {"noise_std": std, "nt_samples_batch_size": bs}
        if bdesc is not None:
            opts["baselines"] = bdesc
        return {"values": self._np(values), "options": opts,
                "evaluations": x.shape[0] * nt_samples * steps}


class GradientShap(_CaptumExplainer):
    """GradientSHAP (Lundberg & Lee 2017), captum ``GradientShap``: expected gradients with
    baselines drawn from the ``background=`` rows.

    Options: ``n_samples=50`` (random baseline/interpolation draws per row), ``stdevs=0.0``
    (absolute noise added to the inputs), ``baselines`` (used when no background is given:
    as for integrated gradients, default zeros). ``seed`` makes the draws reproducible (torch
    and numpy global generators are seeded, then restored). ``base_values`` are the mean of
    ``f(background)_t``; ``extras["convergence_delta"]`` is captum's delta averaged per row.
    """

    name = "captum.gradient-shap"
    defaults: ClassVar[dict[str, Any]] = {"n_samples": 50, "stdevs": 0.0, "baselines": None}

    def _attribute(self, attr, ctx, forward, x, target):
        o = self.options
        if ctx.background is not None:
            b = torch.as_tensor(np.asarray(ctx.background), dtype=x.dtype).to(x.device)
            bdesc = f"background ({b.shape[0]} rows)"
        else:
            b, bdesc = self._baselines(o["baselines"], ctx, x)
            if not isinstance(b, torch.Tensor):
                b = torch.full((1, *x.shape[1:]), float(b), dtype=x.dtype, device=x.device)
        n_samples = int(o["n_samples"])
        with _seeded(o.get("seed"), x.device):
            values, delta = attr.GradientShap(forward).attribute(
                x, baselines=b, n_samples=n_samples, stdevs=float(o["stdevs"]), target=target,
                return_convergence_delta=True)
        with torch.no_grad():
            out = forward(b)
        base = self._np(out.mean(0)[target])
        delta = self._np(delta).reshape(x.shape[0], -1).mean(1)
        return {"values": self._np(values), "base_values": base,
                "extras": {"convergence_delta": delta},
                "options": {"baselines": bdesc},
                "removal": {"name": "marginal", "baselines": bdesc},
                "evaluations": x.shape[0] * n_samples + b.shape[0]}


class DeepLift(_CaptumExplainer):
    """DeepLIFT (Shrikumar et al. 2017, rescale rule), captum ``DeepLift``.

    Options: ``baselines`` (as for integrated gradients; default zeros),
    ``multiply_by_inputs=True``. ``extras["convergence_delta"]`` per row; ``base_values`` are
    ``f(baseline)_t``. The model must use module non-linearities (``nn.ReLU``), not functional
    ones, and must not reuse a module twice (captum's requirement).
    """

    name = "captum.deeplift"
    defaults: ClassVar[dict[str, Any]] = {"baselines": None, "multiply_by_inputs": True}

    def _attribute(self, attr, ctx, forward, x, target):
        b, bdesc = self._baselines(self.options["baselines"], ctx, x)
        dl = attr.DeepLift(forward, multiply_by_inputs=self.options["multiply_by_inputs"])
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Setting forward, backward hooks")
            values, delta = dl.attribute(x, baselines=b, target=target,
                                         return_convergence_delta=True)
        delta = self._np(delta).reshape(-1)
        return {"values": self._np(values),
                "base_values": self._output_at(forward, b, x, target),
                "extras": {"convergence_delta": delta},
                "options": {"baselines": bdesc,
                            "max_abs_convergence_delta": float(np.abs(delta).max())},
                "removal": {"name": "baseline", "baselines": bdesc},
                "evaluations": 2 * x.shape[0]}


def _layer_names(module: torch.nn.Module) -> list[str]:
    return [name for name, _ in module.named_modules() if name]


class GradCam(_CaptumExplainer):
    """Grad-CAM (Selvaraju et al. 2017), captum ``LayerGradCam`` on the layer ``layer`` (a
    module name of ``dict(model.named_modules())``, e.g. ``"features.3"``; default: the last
    ``nn.Conv2d``), upsampled to the input's spatial size with
    ``LayerAttribution.interpolate``.

    Options: ``layer``, ``relu_attributions=True`` (the paper's ReLU; captum's default is
    False), ``interpolate_mode="bilinear"`` (or ``"nearest"``, ``"bicubic"``...),
    ``attribute_to_layer_input=False``.

    Images only. ``values`` have the input's shape: the upsampled map divided equally among
    the channels, so that summing over channels (as every image feature map does) gives the
    Grad-CAM map; ``extras["cam"]`` is the upsampled map ``(n, H, W)`` and
    ``extras["layer_cam"]`` the map at the layer's resolution.
    """

    name = "captum.gradcam"
    defaults: ClassVar[dict[str, Any]] = {"layer": None, "relu_attributions": True, "interpolate_mode": "bilinear",
                "attribute_to_layer_input": False}

    def _layer(self, module: torch.nn.Module):
        layers = dict(module.named_modules())
        name = self.options["layer"]
        if name is None:
            convs = [n for n, m in layers.items() if isinstance(m, torch.nn.Conv2d)]
            if not convs:
                raise InputError("captum.gradcam needs layer= (a module name); the model has no "
                                 "nn.Conv2d to default to. Available layers: "
                                 f"{', '.join(_layer_names(module))}")
            name = convs[-1]
        if isinstance(name, torch.nn.Module):
            return name, next((n for n, m in layers.items() if m is name), "<module>")
        if not isinstance(name, str) or name not in layers or not name:
            import difflib

            known = _layer_names(module)
            close = difflib.get_close_matches(str(name), known, n=1, cutoff=0.5)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise InputError(f"captum.gradcam: unknown layer {name!r}.{hint} Available layers "
                             f"(names from model.named_modules()): {', '.join(known)}")
        return layers[name], name

    def _attribute(self, attr, ctx, forward, x, target):
        if ctx.kind != "image":
            raise InputError(f"captum.gradcam explains images (n, C, H, W) or (n, H, W); got "
                             f"inputs of shape {tuple(x.shape)} ({ctx.kind})")
        o = self.options
        layer, lname = self._layer(ctx.torch_module())
        shape = tuple(x.shape[1:])
        cax = guess_channel_axis(shape)
        if cax is None:
            hw = shape
        else:
            hw = tuple(s for i, s in enumerate(shape) if i != cax % 3)
        cam = attr.LayerGradCam(forward, layer).attribute(
            x, target=target, relu_attributions=o["relu_attributions"],
            attribute_to_layer_input=o["attribute_to_layer_input"])
        if cam.ndim != 4:
            raise InputError(f"captum.gradcam: layer {lname!r} outputs shape "
                             f"{tuple(cam.shape)}; choose a convolutional layer with (n, C, h, "
                             "w) outputs")
        up = attr.LayerAttribution.interpolate(cam, hw, interpolate_mode=o["interpolate_mode"])
        up = self._np(up)[:, 0]  # (n, H, W)
        if cax is None:
            values = up
        else:
            c = shape[cax]
            values = np.broadcast_to(np.expand_dims(up / c, 1 + cax % 3),
                                     (len(up), *shape)).copy()
        return {"values": values, "extras": {"cam": up, "layer_cam": self._np(cam)[:, 0]},
                "options": {"layer": lname}, "evaluations": x.shape[0]}


class Occlusion(_CaptumExplainer):
    """Occlusion (Zeiler & Fergus 2014), captum ``Occlusion``: slide a window of
    ``baselines`` over the input and attribute the output drop to the window's positions
    (averaged where windows overlap). Needs no gradients: works for any model.

    Options: ``sliding_window_shapes`` (a tuple of the input row's rank, or an int k for a k x k
    window over all channels; default: tabular ``(1,)``, images a window ``max(1, min(H, W) //
    8)`` pixels wide over all channels), ``strides`` (default: tabular 1; images the window
    size, i.e. non-overlapping patches), ``baselines=0.0`` (a scalar or one row),
    ``perturbations_per_eval="auto"`` (bounded by ``xai.config.memory_cap``).
    """

    name = "captum.occlusion"
    gradient = False
    defaults: ClassVar[dict[str, Any]] = {"sliding_window_shapes": None, "strides": None, "baselines": 0.0,
                "perturbations_per_eval": "auto"}

    def _window(self, ctx: ExplainContext):
        shape = tuple(ctx.X.shape[1:])
        win, strides = self.options["sliding_window_shapes"], self.options["strides"]
        if len(shape) == 1 or ctx.kind != "image":
            win = (1,) * len(shape) if win is None else win
            win = (win,) if isinstance(win, int) and len(shape) == 1 else win
            return tuple(win), 1 if strides is None else strides
        cax = guess_channel_axis(shape)
        hw = shape if cax is None else tuple(s for i, s in enumerate(shape) if i != cax % 3)
        if win is None:
            win = max(1, min(hw) // 8)
        if isinstance(win, int):
            k = win
            win = [k] * len(shape)
            if cax is not None:
                win[cax % 3] = shape[cax]
            win = tuple(win)
            if strides is None:
                strides = list(win)
                if cax is not None:
                    strides[cax % 3] = 1
                strides = tuple(strides)
        elif strides is None:
            strides = tuple(win)
        if len(tuple(win)) != len(shape):
            raise InputError(f"captum.occlusion: sliding_window_shapes {win!r} must have one "
                             f"entry per axis of an input row {shape}")
        return tuple(win), strides

    def _attribute(self, attr, ctx, forward, x, target):
        adapter = ctx.adapter
        dtype = adapter.dtype if np.issubdtype(ctx.X.dtype, np.floating) else None
        x = torch.tensor(ctx.X, dtype=dtype)
        target = torch.as_tensor(np.asarray(ctx.targets), dtype=torch.long)
        win, strides = self._window(ctx)
        b, bdesc = self._baselines(self.options["baselines"], ctx, x)
        ppe = self.options["perturbations_per_eval"]
        n_windows = _count_windows(tuple(x.shape[1:]), win, strides)
        if ppe == "auto":
            ppe = int(min(n_windows, max(1, self._rows_cap(x) // x.shape[0])))

        def fwd(inp: torch.Tensor) -> torch.Tensor:
            return adapter(inp)

        with adapter.session():
            values = attr.Occlusion(fwd).attribute(
                x, sliding_window_shapes=win, strides=strides, baselines=b, target=target,
                perturbations_per_eval=ppe)
        return {"values": self._np(values),
                "options": {"sliding_window_shapes": list(win),
                            "strides": strides if isinstance(strides, int) else list(strides),
                            "baselines": bdesc, "perturbations_per_eval": ppe},
                "removal": {"name": "baseline", "baselines": bdesc}}


def _count_windows(shape, win, strides) -> int:
    strides = (strides,) * len(shape) if isinstance(strides, int) else tuple(strides)
    return int(np.prod([(s - w) // st + 1 for s, w, st in zip(shape, win, strides,
                                                                 strict=True)]))


EXPLAINERS = {cls.name: cls for cls in (IntegratedGradients, Saliency, InputXGradient,
                                         SmoothGrad, GradientShap, DeepLift, GradCam, Occlusion)}
