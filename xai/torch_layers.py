"""The layers of a torch ReLU network in forward order, for explainers that walk a network
layer by layer instead of calling it (PatternNet's backward passes, EVA's bound propagation).

A network is a ``torch.nn.Sequential`` (nested ones too) of supported layers, a module
wrapping one such layer or sequence, or a module with an ``as_sequential()`` method giving an
equivalent one. :func:`sequential_layers` lists the layers or raises a
:class:`~xai.errors.ModelTypeError` naming the first one it cannot take, without calling the
model; :func:`check_forward` then compares the layers' composition with the model's own
output on a few rows (a wrapper's forward may do more than call its one child).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn

from .errors import ModelError, ModelTypeError

#: relative tolerance of a float64 forward pass through the layers against the model's outputs
FORWARD_RTOL = 1e-3


def sequential_layers(model: Any, method: str, supported: tuple[type, ...]) -> list[nn.Module]:
    """The layers of ``model`` in forward order (see the module docstring); ``method`` names
    the explainer in the errors, ``supported`` the layer types it takes. Convolutions must be
    ungrouped with zero padding."""
    names = ", ".join(t.__name__ for t in supported)
    if not isinstance(model, nn.Module):
        raise ModelTypeError(f"{method} needs a torch.nn.Module of {names} layers; got a "
                             f"{type(model).__name__}. Use a removal-based method such as "
                             "'kernelshap' for other models.")
    as_sequential = getattr(model, "as_sequential", None)
    if callable(as_sequential):
        model = as_sequential()
    layers: list[nn.Module] = []

    def walk(module: nn.Module, where: str) -> None:
        if isinstance(module, nn.Sequential):
            for name, child in module.named_children():
                walk(child, f"{where}.{name}" if where else name)
            return
        if isinstance(module, supported):
            if isinstance(module, nn.Conv2d) and (module.groups != 1 or
                                                  module.padding_mode != "zeros"):
                raise ModelTypeError(
                    f"{method}: layer {where or '(model)'} is a Conv2d with groups="
                    f"{module.groups}, padding_mode={module.padding_mode!r}; only ungrouped "
                    "convolutions with zero padding are supported")
            layers.append(module)
            return
        children = list(module.named_children())
        if len(children) == 1:  # a wrapper of one layer or sequence (checked on rows later)
            walk(children[0][1], f"{where}.{children[0][0]}" if where else children[0][0])
            return
        raise ModelTypeError(
            f"{method}: layer {where or '(model)'} is a {type(module).__name__}, which "
            f"{method} does not support. Supported: a torch.nn.Sequential of {names} (ReLU "
            "networks). Rewrite the model as such a Sequential, or use a removal-based method "
            "such as 'kernelshap'.")

    walk(model, "")
    return layers


def layer_weights(layer: nn.Module) -> tuple[torch.Tensor, torch.Tensor | None]:
    """A Linear or Conv2d layer's weight and bias (None without one) as float64 on the CPU."""
    w = layer.weight.detach().to("cpu", torch.float64)
    b = None if layer.bias is None else layer.bias.detach().to("cpu", torch.float64)
    return w, b


def check_forward(model: nn.Module, forward: Callable[[torch.Tensor], torch.Tensor],
                  rows: torch.Tensor, method: str) -> int:
    """Compare ``forward(rows)`` (the layers applied in sequence, float64) with the model's
    own outputs on ``rows``, in evaluation mode; a :class:`~xai.errors.ModelError` when they
    differ. One model call; returns the rows it evaluated."""
    with torch.no_grad():
        mine = forward(rows).numpy()
    param = next(model.parameters(), None)
    x = rows if param is None else rows.to(param.device, param.dtype)
    training = model.training
    model.eval()
    try:
        with torch.no_grad():
            theirs = model(x).detach().to("cpu", torch.float64).numpy()
    finally:
        model.train(training)
    if theirs.shape != mine.shape or not np.allclose(
            theirs, mine, rtol=FORWARD_RTOL, atol=FORWARD_RTOL * max(np.abs(theirs).max(), 1)):
        raise ModelError(
            f"{method}: the model's outputs differ from its layers applied in sequence "
            f"(shape {theirs.shape} vs {mine.shape}): its forward does more than the layers "
            "it holds. Give a torch.nn.Sequential of the supported layers")
    return len(rows)
