"""Worst-case attribution deviation bound (after Wang & Kong, "A Practical Upper Bound for the
Worst-Case Attribution Deviations", CVPR 2023): ``attribution-deviation-bound``.

The question of the paper: over every ``x'`` in a ball ``‖x' − x‖ ≤ ε`` (l2 or l_inf), how far
can the attribution ``g(x')`` move from ``g(x)``, in Euclidean distance or in ``1 − cos``? The
paper restricts ``x'`` to inputs of the same predicted class and bounds the maximum with a
local (first-order) model of the attribution map. This module computes a bound that is
*provably* an upper bound of the maximum over the whole ball (so also of the paper's
class-constrained maximum), for the gradient (saliency) and gradient × input of a ReLU network
given as an ``nn.Sequential`` of ``Linear``, ``Conv1d``/``Conv2d``, ``AvgPool1d``/``AvgPool2d``,
``ReLU``, ``Flatten``, ``Identity`` and ``Dropout`` (eval mode) layers:

1. **Interval bounds of the activations** (interval bound propagation): the first affine layer
   maps the l2 ball exactly to ``W x + b ± ε‖W_j‖₂`` per unit (the dual norm; the l_inf ball
   to ``± ε‖W_j‖₁``), every later layer propagates boxes. A ReLU whose input interval lies
   above 0 is active on the whole ball, one below 0 inactive, the rest undecided.
2. **Interval bounds of the gradient**: the gradient of the target output is
   ``W₁ᵀ D₁ W₂ᵀ D₂ … w_t`` with ``D_l`` the ReLU patterns; propagating the interval of this
   product backwards, with ``D ∈ {0, 1}`` where a unit is undecided, gives ``[g_lo, g_hi]``
   containing ``∇f_t(x')`` for every ``x'`` in the ball.
3. **Distances**: with ``Δ_i = max(g_hi,i − g_i(x), g_i(x) − g_lo,i)``, the gradient moves by at
   most ``‖Δ‖₂``. Gradient × input ``g(x') ⊙ x'`` moves by at most the smaller of
   ``‖Δ ⊙ (|x| + ε)‖₂ + ε·max_i|∇f(x)_i|`` (l2; ``ε‖∇f(x)‖₂`` for l_inf), from
   ``g'x' − gx = (g' − g)x' + g(x' − x)``, and the interval product bound per element. For
   ``1 − cos``: a vector within distance ``B`` of ``a = g(x)`` makes an angle ``θ`` with
   ``sin θ ≤ B/‖a‖`` (the tangent construction the paper draws), so ``1 − cos θ ≤ 1 −
   √(1 − (B/‖a‖)²)`` when ``B < ‖a‖``, else the trivial 2.

On a linear model nothing is undecided, ``Δ = 0``, and the bound for gradient × input is the
exact maximum over the ball, ``ε·max_i|w_i|`` (l2) or ``ε‖w‖₂`` (l_inf). On deep networks the
bound is sound but looser than the paper's local estimate; an attack (PGD on the attribution
distance) gives the matching lower bound. The bound of ``|∇f|`` (captum's saliency takes the
absolute value) is the same, since ``||u| − |v|| ≤ |u − v|`` elementwise.
"""

from __future__ import annotations

import copy
from typing import Any, ClassVar

import numpy as np
import torch

from .. import torch_layers
from ..errors import InputError, OptionError
from ..inputs import Real
from ..registry import register
from .base import Metric, MetricInputs
from .checks import Choice, OneOf

ATTRIBUTIONS = ("gradient", "input-x-gradient")
_AFFINE = (torch.nn.Linear, torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.AvgPool1d,
           torch.nn.AvgPool2d)
_PASS = (torch.nn.Identity, torch.nn.Dropout)


def sequential_layers(model: Any) -> list[torch.nn.Module]:
    """The layers of an ``nn.Sequential`` (nested ones flattened), each of a kind the bound
    supports; raises ModelTypeError naming the first that is not."""
    return torch_layers.sequential_layers(
        model, "attribution-deviation-bound",
        _AFFINE + _PASS + (torch.nn.ReLU, torch.nn.Flatten), strict=True, grouped=True,
        instead="max-sensitivity (an empirical estimate)")


def _linear_part(layer: torch.nn.Module, transform) -> torch.nn.Module:
    """A float64 CPU copy of ``layer`` without bias, its weight mapped by ``transform``."""
    out = copy.deepcopy(layer).to("cpu", torch.float64)
    with torch.no_grad():
        if getattr(out, "weight", None) is not None:
            out.weight.copy_(transform(out.weight))
        if getattr(out, "bias", None) is not None:
            out.bias.zero_()
    return out


def _vjp(layer: torch.nn.Module, shape: tuple, cotangent: torch.Tensor) -> torch.Tensor:
    """``Wᵀ c`` of a linear (bias-free) layer, for inputs of ``shape``."""
    z = torch.zeros(shape, dtype=torch.float64, requires_grad=True)
    (g,) = torch.autograd.grad(layer(z), z, grad_outputs=cotangent)
    return g


def gradient_bounds(layers: list[torch.nn.Module], X: torch.Tensor, targets: torch.Tensor,
                    eps: float, norm: str) -> tuple[torch.Tensor, torch.Tensor]:
    """``(g_lo, g_hi)`` shaped as ``X``: elementwise bounds of the gradient of output
    ``targets[i]`` at every point of the ``norm`` ball of radius ``eps`` around ``X[i]``."""
    mid = X.to(torch.float64)
    rad = None if norm == "l2" else torch.full_like(mid, eps)  # None: still the l2 ball
    steps: list[tuple] = []
    with torch.no_grad():
        for layer in layers:
            if isinstance(layer, torch.nn.ReLU):
                rad = torch.full_like(mid, eps) if rad is None else rad
                lo, hi = mid - rad, mid + rad
                steps.append(("relu", lo > 0, (lo <= 0) & (hi > 0)))
                lo, hi = lo.clamp(min=0), hi.clamp(min=0)
                mid, rad = (lo + hi) / 2, (hi - lo) / 2
            elif isinstance(layer, torch.nn.Flatten):
                steps.append(("shape", tuple(mid.shape)))
                mid = layer(mid)
                rad = None if rad is None else layer(rad)
            elif isinstance(layer, _PASS):
                continue
            else:
                exact = _linear_part(layer, lambda w: w)
                absolute = _linear_part(layer, torch.abs)
                steps.append(("affine", exact, absolute, tuple(mid.shape)))
                if rad is None:  # the l2 ball through W: ± eps·‖W_j‖₂ per unit
                    squared = _linear_part(layer, torch.square)
                    rad = eps * torch.sqrt(squared(torch.ones_like(mid)))
                else:
                    rad = absolute(rad)
                bias = copy.deepcopy(layer).to("cpu", torch.float64)
                mid = bias(mid)
    c_mid = torch.nn.functional.one_hot(targets.long(), mid.shape[1]).to(torch.float64)
    c_rad = torch.zeros_like(c_mid)
    for step in reversed(steps):
        if step[0] == "relu":
            on, open_ = step[1], step[2]
            lo, hi = c_mid - c_rad, c_mid + c_rad
            lo = torch.where(on, lo, torch.where(open_, lo.clamp(max=0), torch.zeros_like(lo)))
            hi = torch.where(on, hi, torch.where(open_, hi.clamp(min=0), torch.zeros_like(hi)))
            c_mid, c_rad = (lo + hi) / 2, (hi - lo) / 2
        elif step[0] == "shape":
            c_mid, c_rad = c_mid.reshape(step[1]), c_rad.reshape(step[1])
        else:
            _, exact, absolute, shape = step
            c_mid, c_rad = _vjp(exact, shape, c_mid), _vjp(absolute, shape, c_rad)
    return c_mid - c_rad, c_mid + c_rad


def input_gradient(layers: list[torch.nn.Module], X: torch.Tensor,
                   targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``∇_x f_t(x)`` per row, in float64 on float64 copies of the layers, and the outputs
    ``t`` used (0 for a network with one output, whatever class a row predicts)."""
    net = torch.nn.Sequential(*[copy.deepcopy(m).to("cpu", torch.float64) for m in layers])
    net.eval()
    x = X.to(torch.float64).clone().requires_grad_(True)
    out = net(x)
    t = targets.long() if out.shape[1] > 1 else torch.zeros(len(x), dtype=torch.long)
    (g,) = torch.autograd.grad(out[torch.arange(len(x)), t].sum(), x)
    return g, t


def deviation_bound(layers: list[torch.nn.Module], X: torch.Tensor, targets: torch.Tensor,
                    eps: float, norm: str = "l2", attribution: str = "gradient",
                    distance: str = "euclidean") -> np.ndarray:
    """Per row, an upper bound of ``max_{‖x'−x‖≤eps} d(g(x'), g(x))`` (see the module
    docstring) for ``attribution`` ("gradient" or "input-x-gradient") and ``distance``
    ("euclidean" or "cosine": ``1 − cos``)."""
    n = len(X)
    g, targets = input_gradient(layers, X, targets)
    lo, hi = gradient_bounds(layers, X, targets, eps, norm)
    delta = torch.maximum(hi - g, g - lo).clamp(min=0).reshape(n, -1)
    g, lo, hi = g.reshape(n, -1), lo.reshape(n, -1), hi.reshape(n, -1)
    x = X.to(torch.float64).reshape(n, -1)
    if attribution == "gradient":
        bound, at_x = delta.norm(dim=1), g
    else:
        at_x = g * x
        step = eps * (g.abs().amax(1) if norm == "l2" else g.norm(dim=1))
        split = (delta * (x.abs() + eps)).norm(dim=1) + step
        corners = torch.stack([lo * (x - eps), lo * (x + eps), hi * (x - eps),
                               hi * (x + eps)])
        box = torch.maximum(corners.amax(0) - at_x, at_x - corners.amin(0)).norm(dim=1)
        bound = torch.minimum(split, box)
    bound = bound.numpy()
    if distance == "euclidean":
        return bound
    size = at_x.norm(dim=1).numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = bound / size
        cos = np.where(ratio < 1, 1 - np.sqrt(np.clip(1 - ratio ** 2, 0, 1)), 2.0)
    return np.where(size > 0, cos, np.nan)


@register("metric", "attribution-deviation-bound")
class AttributionDeviationBound(Metric):
    """Upper bound of the worst-case attribution deviation within an ε-ball (see the module
    docstring), lower is better: the attribution of every input within ``radius`` of ``x``
    lies within this distance of the attribution at ``x``.

    Options: ``radius`` (ε in input units) or ``radius_frac=0.02`` (ε as a fraction of the
    range of x over the evaluated set, as ``max-sensitivity``), ``norm`` (``"l2"`` default or
    ``"linf"``), ``distance`` (``"euclidean"`` default or ``"cosine"``: ``1 − cos``),
    ``attribution`` (``"gradient"`` or ``"input-x-gradient"``; default: read from the
    explanation's method, saliency or input × gradient). The attributions ``a`` name the
    method; the bound is of the gradient of the target's raw output (``output="raw"``), which
    the metric computes itself. Needs a torch ``nn.Sequential`` of the supported layers; cost:
    the prediction of the explained rows when targets are not recorded, plus one bound pass and
    one gradient pass per row on float64 copies of the layers (counted as 2 rows per row).
    ``extras``: ``radius``, ``attribution``.

    Deliberate differences from the paper: the bound holds for the whole ball (the paper
    keeps the predicted class, which only lowers the maximum) and is proved, not estimated
    from a first-order model; it covers ReLU networks and the gradient and gradient × input
    attributions only. No library implements the bound (the paper's code is not published,
    and neither Quantus 0.6.0 nor Explainiverse 0.15.2 has it), so the tests check it against
    the closed form and against attacks.
    """

    name = "attribution-deviation-bound"
    direction = "lower"
    needs = frozenset({"model"})
    applies_to = "any"
    stochastic = False
    default_output = "raw"
    reference = ("closed form on linear models (eps·max|w| for l2, eps·||w|| for l_inf); "
                 "PGD attacks on the attribution distance stay below it")
    target_check = "probe"
    defaults: ClassVar[dict] = {"radius": None, "radius_frac": 0.02, "norm": "l2",
                                "distance": "euclidean", "attribution": None}
    option_rules: ClassVar[dict] = {
        "radius": Real(0.0, low_open=True),
        "radius_frac": Real(0.0, low_open=True, optional=False),
        "norm": Choice(("l2", "linf"), "norm"),
        "distance": Choice(("euclidean", "cosine"), "distance"),
        "attribution": OneOf((*ATTRIBUTIONS, None),
                             ": 'gradient' (saliency) or 'input-x-gradient'")}

    def check_inputs(self, inp: MetricInputs) -> None:
        sequential_layers(inp.model)
        self._attribution(inp)
        if inp.output != "raw":
            raise OptionError(f"output={inp.output!r}: the bound is of the gradient of the "
                              "model's raw output; leave output unset (or pass output='raw')")
        if not np.issubdtype(inp.X.dtype, np.floating):
            raise InputError(f"attribution-deviation-bound needs real-valued inputs; got dtype "
                             f"{inp.X.dtype}: pass x as floats (x.astype(float))")
        if inp.options["radius"] is None and not float(inp.X.max() - inp.X.min()) > 0:
            raise InputError("attribution-deviation-bound: x is constant over the evaluated "
                             "set, so radius_frac × (max − min) is 0; pass radius= (ε in input "
                             "units)")

    @staticmethod
    def _attribution(inp: MetricInputs) -> str:
        chosen = inp.options["attribution"]
        if chosen is not None:
            return chosen
        method = str(getattr(inp.explanation, "method", "") or "").lower()
        if "input-x-gradient" in method or "input_x_gradient" in method:
            return "input-x-gradient"
        if "saliency" in method or method == "gradient":
            return "gradient"
        what = f"method {method!r}" if method else "a raw attribution array"
        raise InputError(f"attribution-deviation-bound bounds the gradient or gradient × input "
                         f"of the model, but the attributions come from {what}; pass "
                         "attribution='gradient' or attribution='input-x-gradient'")

    def compute(self, inp: MetricInputs) -> dict:
        o = inp.options
        eps = float(o["radius"]) if o["radius"] is not None else \
            float(o["radius_frac"]) * float(inp.X.max() - inp.X.min())
        attribution = self._attribution(inp)
        layers = sequential_layers(inp.model)
        X = torch.as_tensor(np.asarray(inp.X, dtype=np.float64))
        targets = torch.as_tensor(inp.targets)
        per = deviation_bound(layers, X, targets, eps, o["norm"], attribution, o["distance"])
        return {"per_sample": per, "extra_evaluations": 2 * inp.n,
                "extras": {"radius": eps, "attribution": attribution},
                "settings": {"radius": eps, "attribution": attribution}}
