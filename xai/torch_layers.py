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


def sequential_layers(model: Any, method: str, supported: tuple[type, ...], *,
                      strict: bool = False, grouped: bool = False,
                      instead: str = "a removal-based method such as 'kernelshap'"
                      ) -> list[nn.Module]:
    """The layers of ``model`` in forward order (see the module docstring); ``method`` names
    the caller in the errors, ``supported`` the layer types it takes, ``instead`` what to use
    for other networks. ``strict``: only a ``torch.nn.Sequential`` as given (no wrappers, no
    ``as_sequential()``), for callers that never compare the layers with the model's output.
    Convolutions must pad with zeros, and be ungrouped unless ``grouped``."""
    names = ", ".join(t.__name__ for t in supported)
    if not isinstance(model, nn.Sequential if strict else nn.Module):
        kind = "torch.nn.Sequential" if strict else "torch.nn.Module"
        raise ModelTypeError(f"{method} needs a {kind} of {names} layers; got a "
                             f"{type(model).__name__}: pass a {kind} of those layers, or use "
                             f"{instead} for other models")
    as_sequential = None if strict else getattr(model, "as_sequential", None)
    if callable(as_sequential):
        model = as_sequential()
    layers: list[nn.Module] = []

    def walk(module: nn.Module, where: str) -> None:
        if isinstance(module, nn.Sequential):
            for name, child in module.named_children():
                walk(child, f"{where}.{name}" if where else name)
            return
        if isinstance(module, supported):
            padding = getattr(module, "padding_mode", "zeros")
            if padding != "zeros":
                # an input element read twice by one unit (reflect or circular padding) is
                # not the linear map of distinct elements the callers propagate
                raise ModelTypeError(
                    f"{method} cannot take layer {where or '(model)'!r} "
                    f"({type(module).__name__} with padding_mode={padding!r}): it supports "
                    "zero-padded convolutions only; pass a network whose convolutions use "
                    "padding_mode='zeros'")
            if not grouped and getattr(module, "groups", 1) != 1:
                raise ModelTypeError(
                    f"{method} cannot take layer {where or '(model)'!r} "
                    f"({type(module).__name__} with groups={module.groups}): only ungrouped "
                    "convolutions are supported")
            layers.append(module)
            return
        children = list(module.named_children())
        if not strict and len(children) == 1:  # a wrapper (checked on rows later)
            walk(children[0][1], f"{where}.{children[0][0]}" if where else children[0][0])
            return
        raise ModelTypeError(
            f"{method} cannot take layer {where or '(model)'!r} ({type(module).__name__}): it "
            f"supports a torch.nn.Sequential of {names} (ReLU networks). Rewrite the model as "
            f"such a Sequential, or use {instead}.")

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
