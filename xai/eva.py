"""EVA: explanations from verified perturbation analysis (Fel, Ducoffe, Vigouroux, Cadène,
Capelle, Nicodème & Serre, "Don't Lie to Me! Robust and Efficient Explainability with Verified
Perturbation Analysis", CVPR 2023).

Instead of sampling perturbations, EVA bounds the model over a whole perturbation set with
verified perturbation analysis, so every point of the set is covered. The set is the
``l_inf`` ball ``B = {x + delta : |delta|_inf <= epsilon}``; ``B_u`` is the same ball with the
variables of feature ``u`` held at their values (``delta_u = 0``). The paper's *adversarial
overlap* of a set is how far another output can overtake the target ``c`` inside it,

    ``AO(x, B) = max_{x' in B} max_{j != c} f_j(x') - f_c(x')``,

taken here as its verified upper bound (the bound of each margin ``f_j - f_c``, propagated as
one specification, so the target's terms cancel inside the network's last affine layers). The
importance of ``u`` is the drop of the adversarial overlap when ``u`` may no longer move,

    ``EVA(x, u) = AO(x, B) - AO(x, B_u)``:

a variable the model ignores cannot help any margin, and gets zero. A model with one output
has no other class; there ``AO(x, B) = max_{x' in B} -f(x')`` (how far the output can fall),
whose drop is ``lower(f, B_u) - lower(f, B)``.

Bounds (:func:`output_bounds`), for a ``torch.nn.Sequential`` of Linear, Conv2d (ungrouped,
zero padding), ReLU, MaxPool2d, AvgPool2d, Flatten, Dropout (identity in evaluation) and
Identity layers (:mod:`xai.torch_layers`; anything else is a
:class:`~xai.errors.ModelTypeError` before any model call), in float64:

- ``"ibp"``, interval bound propagation (Gowal et al. 2018): boxes layer by layer (centre and
  radius through affine layers, endpoints through the monotone ReLU and max pooling), and the
  output's specification propagated back exactly through the affine layers after the last
  ReLU or pooling. On a network without ReLUs or pooling the bounds are the exact maximum and
  minimum over the box.
- ``"crown"`` (Zhang et al. 2018, the linear relaxation bounds that the paper uses through
  auto_LiRPA): linear bounds propagated backwards through the ReLUs with their triangle
  relaxation (upper chord; lower slope 1 where ``u >= -l``, else 0), for the pre-activations
  of every ReLU (all of a small layer's, else its unstable ones, where one box's backward
  coefficients fit :data:`BACKWARD_ELEMENTS`; else the interval bounds) and for the output.
  Max pooling is relaxed per window by its element ``i*`` of largest lower bound:
  ``max >= z_{i*}``, and ``max <= z_{i*}`` where that lower bound reaches every other
  element's upper bound, else ``max <= max_i u_i`` (a pooling with
  ``ceil_mode`` ends the backward pass instead: below it, its output's box). Every CROWN
  bound is intersected with the interval bound, so it is never looser.

Not from the paper: only the ``l_inf`` ball; the paper's hybrid scaling (empirical bounds of an
intermediate layer from samples) is not implemented; the verified bounds are computed by this
module, not by auto_LiRPA (whose registry releases need torch < 1.13).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .errors import InputError, ShapeError
from .external import ExplainContext, ExternalExplainer
from .inputs import Choice, Real
from .torch_layers import check_forward, layer_weights, sequential_layers

KERNEL_LAYERS = (nn.Linear, nn.Conv2d)
PASS_LAYERS = (nn.Dropout, nn.Identity)
#: layers that are affine maps (bounds through them are exact)
AFFINE_LAYERS = (*KERNEL_LAYERS, nn.AvgPool2d, nn.Flatten, *PASS_LAYERS)
SUPPORTED = (*AFFINE_LAYERS, nn.ReLU, nn.MaxPool2d)
BOUND_METHODS = ("crown", "ibp")
#: most float64 elements of one backward pass's coefficients (chunks of boxes otherwise; a
#: ReLU layer whose CROWN bounds need more for one box keeps its interval bounds)
BACKWARD_ELEMENTS = 2**24
#: a ReLU layer whose every neuron's CROWN bounds cost at most this many elements per box
#: gets them all (else only its unstable neurons')
ALL_NEURONS_ELEMENTS = 2**22
#: perturbation sets bounded together (explicands x (1 + features))
SET_BLOCK = 256

OPTION_RULES = {
    "epsilon": Real(0.0, low_open=True, optional=False),
    "bounds": Choice(BOUND_METHODS),
}


def network_layers(model: Any) -> list[nn.Module]:
    """The layers of ``model`` in forward order; a :class:`~xai.errors.ModelTypeError` naming
    the first layer EVA cannot bound (see the module docstring)."""
    return sequential_layers(model, "eva", SUPPORTED)


def _apply(layer: nn.Module, x: torch.Tensor, bias: bool = True) -> torch.Tensor:
    """The layer in float64 (evaluation mode); ``bias=False``: the linear part of an affine
    layer."""
    if isinstance(layer, nn.Linear):
        w, b = layer_weights(layer)
        return F.linear(x, w, b if bias else None)
    if isinstance(layer, nn.Conv2d):
        w, b = layer_weights(layer)
        return F.conv2d(x, w, b if bias else None, layer.stride, layer.padding, layer.dilation)
    if isinstance(layer, nn.ReLU):
        return torch.relu(x)
    if isinstance(layer, PASS_LAYERS):
        return x
    return layer(x)  # Flatten, AvgPool2d, MaxPool2d


def forward(layers: list[nn.Module], x: torch.Tensor) -> torch.Tensor:
    """The network's output on rows ``x`` in float64."""
    for layer in layers:
        x = _apply(layer, x)
    return x


@dataclass
class Box:
    """Elementwise bounds ``lower <= z <= upper`` of a batch of boxes ``(b, *shape)``."""

    lower: torch.Tensor
    upper: torch.Tensor

    def intersect(self, other: Box) -> Box:
        return Box(torch.maximum(self.lower, other.lower), torch.minimum(self.upper,
                                                                           other.upper))


def _interval_step(layer: nn.Module, box: Box) -> Box:
    """Interval bounds of the layer's output over the box."""
    if isinstance(layer, KERNEL_LAYERS):
        centre, radius = (box.upper + box.lower) / 2, (box.upper - box.lower) / 2
        c = _apply(layer, centre)
        w = layer_weights(layer)[0].abs()
        if isinstance(layer, nn.Linear):
            r = F.linear(radius, w)
        else:
            r = F.conv2d(radius, w, None, layer.stride, layer.padding, layer.dilation)
        return Box(c - r, c + r)
    # ReLU, max and average pooling, flatten: monotone, so the endpoints map to the endpoints
    return Box(_apply(layer, box.lower), _apply(layer, box.upper))


def _relu_relaxation(box: Box) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """CROWN's relaxation of ``relu(z)`` for ``l <= z <= u``: ``slope_lo z <= relu(z) <=
    slope_up z + shift_up``."""
    lo, up = box.lower, box.upper
    active, unstable = lo >= 0, (lo < 0) & (up > 0)
    width = torch.where(unstable, up - lo, torch.ones_like(up))
    chord = torch.where(unstable, up / width, active.double())
    shift = torch.where(unstable, -up * lo / width, torch.zeros_like(up))
    slope_lo = torch.where(unstable, (up >= -lo).double(), active.double())
    return slope_lo, chord, shift


def _relaxes(layer: nn.Module) -> bool:
    """Whether CROWN's backward pass relaxes this max pooling (else it stops below it)."""
    return isinstance(layer, nn.MaxPool2d) and not layer.ceil_mode and \
        not layer.return_indices


def _windows(layer: nn.MaxPool2d, z: torch.Tensor) -> torch.Tensor:
    """The pooling windows of ``z`` ``(b, C, H, W)``: ``(b, C, K, L)`` (``K`` elements of each
    of the ``L`` windows), padded with ``-inf`` as max pooling pads."""
    p = _pair(layer.padding)
    z = F.pad(z, (p[1], p[1], p[0], p[0]), value=-torch.inf)
    u = F.unfold(z, _pair(layer.kernel_size), _pair(layer.dilation), 0,
                 _pair(layer.stride or layer.kernel_size))
    return u.reshape(z.shape[0], z.shape[1], -1, u.shape[-1])


def _pair(v) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else tuple(v)


def _maxpool_relaxation(layer: nn.MaxPool2d, box: Box) -> tuple[torch.Tensor, torch.Tensor,
                                                                   torch.Tensor]:
    """Linear relaxation of max pooling over the box: per window, the element ``i*`` with the
    largest lower bound; ``max >= z_{i*}`` always, and ``max <= z_{i*}`` when ``i*``'s lower
    bound reaches every other element's upper bound (the window's maximum is then ``z_{i*}``),
    else ``max <= max_i u_i``. Returns the one-hot choice ``(b, C, K, L)``, whether the window
    is decided ``(b, C, L)`` and its constant upper bound ``(b, C, L)``."""
    lo, up = _windows(layer, box.lower), _windows(layer, box.upper)
    best = lo.argmax(2, keepdim=True)
    onehot = torch.zeros_like(lo).scatter_(2, best, 1.0)
    others = torch.where(onehot > 0, torch.full_like(up, -torch.inf), up).amax(2)
    decided = lo.gather(2, best)[:, :, 0] >= others
    return onehot, decided, up.amax(2)


def _maxpool_transpose(layer: nn.MaxPool2d, coef: torch.Tensor, onehot: torch.Tensor,
                       in_shape: tuple[int, ...]) -> torch.Tensor:
    """Coefficients ``coef`` ``(b, s, C, L)`` on the windows' chosen elements, moved to the
    pooling's input ``(b, s, *in_shape)`` (overlapping windows add up)."""
    b, s, C, L = coef.shape
    K = onehot.shape[2]
    per = (coef.unsqueeze(3) * onehot.unsqueeze(1)).reshape(b * s, C * K, L)
    p = _pair(layer.padding)
    H, W = in_shape[1] + 2 * p[0], in_shape[2] + 2 * p[1]
    out = F.fold(per, (H, W), _pair(layer.kernel_size), _pair(layer.dilation), 0,
                 _pair(layer.stride or layer.kernel_size))
    out = out[:, :, p[0]:p[0] + in_shape[1], p[1]:p[1] + in_shape[2]]
    return out.reshape(b, s, *in_shape)


def _transpose(layer: nn.Module, A: torch.Tensor, in_shape: tuple[int, ...]) -> torch.Tensor:
    """``A`` ``(b, s, *out)`` times the Jacobian of the affine layer's linear part:
    ``(b, s, *in)`` (the vector-Jacobian product, exact for a linear map)."""
    b, s = A.shape[:2]
    x = torch.zeros((b * s, *in_shape), dtype=torch.float64, requires_grad=True)
    with torch.enable_grad():
        y = _apply(layer, x, bias=False)
        (g,) = torch.autograd.grad(y, x, A.reshape(b * s, *A.shape[2:]))
    return g.reshape(b, s, *in_shape)


def _backward(layers: list[nn.Module], boxes: list[Box], start: int, top: int,
              spec: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Bounds of ``spec . z`` (``spec`` ``(b, s, *shape)``, ``z`` the input of layer ``top``)
    by linear bounds propagated back through ``layers[start:top]`` and concretised on
    ``boxes[start]``; ReLUs in between are relaxed on their input boxes. Returns (lower, upper)
    ``(b, s)``."""
    bounds = []
    for sign in (1.0, -1.0):  # the upper bound of spec . z, then of -spec . z
        A = sign * spec
        const = torch.zeros(spec.shape[:2], dtype=torch.float64)
        for i in range(top - 1, start - 1, -1):
            layer, box = layers[i], boxes[i]
            if isinstance(layer, nn.ReLU):
                slope_lo, chord, shift = (t.unsqueeze(1) for t in _relu_relaxation(box))
                pos, neg = A.clamp(min=0), A.clamp(max=0)
                const = const + (pos * shift).sum(tuple(range(2, A.ndim)))
                A = pos * chord + neg * slope_lo
            elif isinstance(layer, nn.MaxPool2d):
                onehot, decided, top_up = _maxpool_relaxation(layer, box)
                b_, s_ = A.shape[:2]
                flat = A.reshape(b_, s_, A.shape[2], -1)  # (b, s, C, L)
                pos, neg = flat.clamp(min=0), flat.clamp(max=0)
                decided = decided.unsqueeze(1)
                const = const + (pos * ~decided * top_up.unsqueeze(1)).sum((2, 3))
                A = _maxpool_transpose(layer, pos * decided + neg, onehot,
                                       tuple(box.lower.shape[1:]))
            else:
                in_shape = tuple(box.lower.shape[1:])
                offset = _apply(layer, torch.zeros((1, *in_shape), dtype=torch.float64))
                const = const + (A * offset.unsqueeze(1)).sum(tuple(range(2, A.ndim)))
                A = _transpose(layer, A, in_shape)
        box = boxes[start]
        centre = ((box.upper + box.lower) / 2).unsqueeze(1)
        radius = ((box.upper - box.lower) / 2).unsqueeze(1)
        dims = tuple(range(2, A.ndim))
        bounds.append(const + (A * centre).sum(dims) + (A.abs() * radius).sum(dims))
    return -bounds[1], bounds[0]


def _backward_chunked(layers, boxes, start, top, spec):
    """:func:`_backward` in chunks of boxes whose coefficients fit :data:`BACKWARD_ELEMENTS`."""
    widest = max(int(np.prod(b.lower.shape[1:])) for b in boxes[start:top + 1])
    per_box = spec.shape[1] * widest
    step = max(1, BACKWARD_ELEMENTS // max(per_box, 1))
    parts = [_backward(layers, [Box(b.lower[i:i + step], b.upper[i:i + step])
                                for b in boxes], start, top, spec[i:i + step])
             for i in range(0, spec.shape[0], step)]
    return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])


def _last_stop(layers: list[nn.Module], top: int, affine_only: bool) -> int:
    """Where a backward pass from layer ``top`` stops: after the last layer below it that
    CROWN cannot relax (max pooling with ``ceil_mode`` or ``return_indices``), or, for the
    exact affine tail of IBP, after the last non-affine layer."""
    for i in range(top - 1, -1, -1):
        layer = layers[i]
        if (isinstance(layer, nn.MaxPool2d) and not _relaxes(layer)) or (
                affine_only and not isinstance(layer, AFFINE_LAYERS)):
            return i + 1
    return 0


def output_bounds(model: Any, lower: Any, upper: Any, *, spec: Any = None,
                  method: str = "crown") -> tuple[torch.Tensor, torch.Tensor]:
    """Verified bounds of ``spec . f(x)`` over every ``x`` with ``lower <= x <= upper``.

    ``lower`` and ``upper``: ``(b, *input_shape)``; ``spec``: ``(s, k)`` or ``(b, s, k)`` linear
    combinations of the model's ``k`` outputs (default: the outputs themselves); ``method``
    ``"crown"`` or ``"ibp"`` (see the module docstring). Returns (lower, upper) ``(b, s)``
    float64. The model's layers are checked before anything is computed; the model is never
    called."""
    layers = network_layers(model)
    if method not in BOUND_METHODS:
        from .errors import unknown_name

        raise unknown_name("eva bounds", method, BOUND_METHODS)
    lo = torch.as_tensor(np.asarray(lower, dtype=np.float64))
    hi = torch.as_tensor(np.asarray(upper, dtype=np.float64))
    if lo.shape != hi.shape or bool((lo > hi).any()):
        raise ShapeError(f"output_bounds needs lower <= upper of one shape; got shapes "
                         f"{tuple(lo.shape)} and {tuple(hi.shape)}")
    with torch.no_grad():
        boxes = _boxes(layers, Box(lo, hi), method)
        k = boxes[-1].lower.shape[1]
        C = torch.eye(k, dtype=torch.float64) if spec is None else \
            torch.as_tensor(np.asarray(spec, dtype=np.float64))
        if C.ndim == 2:
            C = C.unsqueeze(0).expand(lo.shape[0], *C.shape)
        if boxes[-1].lower.ndim != 2 or C.shape[-1] != k or C.shape[0] != lo.shape[0]:
            raise ShapeError(f"spec must be (s, {k}) or ({lo.shape[0]}, s, {k}) for a model "
                             f"with outputs of shape {tuple(boxes[-1].lower.shape[1:])}; got "
                             f"{tuple(C.shape)}")
        return _spec_bounds(layers, boxes, C, method)


def _neurons(box: Box) -> int:
    return int(np.prod(box.lower.shape[1:]))


def _boxes(layers: list[nn.Module], box: Box, method: str) -> list[Box]:
    """The box at the input of every layer and, last, of the output: interval bounds, with
    every ReLU's input box tightened by CROWN (``method="crown"``)."""
    boxes = [box]
    for i, layer in enumerate(layers):
        start = _last_stop(layers, i, affine_only=False)
        if method == "crown" and isinstance(layer, nn.ReLU) and i > start:
            boxes[i] = _tighten_unstable(layers, boxes, start, i)
        boxes.append(_interval_step(layer, boxes[i]))
    return boxes


def _tighten_unstable(layers: list[nn.Module], boxes: list[Box], start: int, i: int) -> Box:
    """The box of ReLU ``i``'s input with CROWN bounds for every neuron where that is cheap
    (:data:`ALL_NEURONS_ELEMENTS`), else for its unstable neurons (those whose box straddles
    zero: the others' ReLU relaxation is exact already), one backward row per neuron;
    unchanged where one box's rows would not fit :data:`BACKWARD_ELEMENTS`."""
    box = boxes[i]
    b, shape = box.lower.shape[0], tuple(box.lower.shape[1:])
    lo, up = box.lower.reshape(b, -1), box.upper.reshape(b, -1)
    unstable = (lo < 0) & (up > 0)
    widest = max(map(_neurons, boxes[start:i + 1]))
    if lo.shape[1] * widest <= ALL_NEURONS_ELEMENTS:  # cheap: every neuron (tighter boxes
        unstable = torch.ones_like(unstable)          # also decide more max-pool windows)
    rows = int(unstable.sum(1).max()) if b else 0
    if rows == 0 or rows * widest > BACKWARD_ELEMENTS:
        return box
    # per box its unstable neurons first (stable ones fill the remaining rows, unused)
    order = torch.argsort((~unstable).to(torch.int8), dim=1, stable=True)[:, :rows]
    spec = torch.zeros((b, rows, lo.shape[1]), dtype=torch.float64)
    spec.scatter_(2, order.unsqueeze(2), 1.0)
    new_lo, new_up = _backward_chunked(layers, boxes, start, i, spec.reshape(b, rows, *shape))
    keep = unstable.gather(1, order)
    lo = lo.clone().scatter_(1, order, torch.where(keep, torch.maximum(
        lo.gather(1, order), new_lo), lo.gather(1, order)))
    up = up.clone().scatter_(1, order, torch.where(keep, torch.minimum(
        up.gather(1, order), new_up), up.gather(1, order)))
    return Box(lo.reshape(b, *shape), up.reshape(b, *shape))


def _spec_bounds(layers, boxes, C, method):
    """Bounds of ``C . f`` ``(b, s)``: the exact affine tail on the interval boxes, and for
    CROWN also the backward pass down to the last max pooling, intersected."""
    top = len(layers)
    lo, up = _backward_chunked(layers, boxes, _last_stop(layers, top, True), top, C)
    if method == "crown":
        lo2, up2 = _backward_chunked(layers, boxes, _last_stop(layers, top, False), top, C)
        lo, up = torch.maximum(lo, lo2), torch.minimum(up, up2)
    return lo, up


def margin_spec(targets: np.ndarray, k: int) -> torch.Tensor:
    """Per row the margins ``f_j - f_c`` (``j != c``, ``c`` the target) as a specification
    ``(n, k - 1, k)``; one output: ``-f`` ``(n, 1, 1)``."""
    n = len(targets)
    if k == 1:
        return -torch.ones((n, 1, 1), dtype=torch.float64)
    eye = torch.eye(k, dtype=torch.float64)
    rows = []
    for c in np.asarray(targets, dtype=np.int64):
        others = torch.cat([eye[:c], eye[c + 1:]])
        rows.append(others - eye[c])
    return torch.stack(rows)


def adversarial_overlap(layers: list[nn.Module], lower: torch.Tensor, upper: torch.Tensor,
                        spec: torch.Tensor, method: str) -> torch.Tensor:
    """Verified upper bound of the adversarial overlap of each box ``(b,)``: the largest upper
    bound of its margins ``spec`` ``(b, s, k)``."""
    boxes = _boxes(layers, Box(lower, upper), method)
    return _spec_bounds(layers, boxes, spec, method)[1].max(1).values


class EVA(ExternalExplainer):
    """EVA (Fel et al., CVPR 2023): per feature, the drop of the verified adversarial overlap
    when the feature may no longer move inside the ``l_inf`` ball of radius ``epsilon`` (see
    :mod:`xai.eva`).

    Options: ``epsilon`` (the ball's radius in input units, default 0.1), ``bounds``
    (``"crown"``, default, or ``"ibp"``). Features are the columns of a table, or the groups
    of ``features=`` (pixels of an image by default; the bounds are computed once per feature
    and row, so pass patches or superpixels for larger images). ``extras``: ``adversarial_overlap`` (the
    whole ball's, per row), ``lower`` and ``upper`` (verified bounds of the target output over
    the whole ball). ``base_values`` are zero. No model evaluations beyond the target's
    (and one call checking that the layers compute the model).
    """

    name = "eva"
    per_position = False
    defaults: ClassVar[dict[str, Any]] = {"epsilon": 0.1, "bounds": "crown"}

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        for key, rule in OPTION_RULES.items():
            self.options[key] = rule(key, self.options[key])

    def explain(self, model: Any, X: Any, y: Any = None, *, background: Any = None,
                features: Any = None, output_kind: str | None = None):
        """Explain rows ``X`` of ``model`` (see the class docstring); the layers are checked
        before any model call."""
        network_layers(model)
        return super().explain(model, X, y, background=background, features=features,
                               output_kind=output_kind)

    def attribute(self, ctx: ExplainContext) -> dict[str, Any]:
        model = ctx.torch_module()
        layers = network_layers(model)
        X = torch.as_tensor(np.asarray(ctx.X, dtype=np.float64))
        checked = check_forward(model, lambda x: forward(layers, x), X[:1], "eva")
        k = int(forward(layers, X[:1]).shape[1])
        if ctx.fmap is None:
            raise InputError("eva needs features (columns or groups of positions)")
        n, shape = len(X), tuple(X.shape[1:])
        idx = ctx.fmap.full_index(shape)
        idx = np.broadcast_to(idx, (n, idx.shape[1])) if idx.shape[0] == 1 else idx
        d = ctx.fmap.d
        eps = float(self.options["epsilon"])
        spec = margin_spec(ctx.targets, k)
        values, overlap = np.zeros((n, d)), np.zeros(n)
        # per explicand: the whole ball, then the ball with each feature held
        held = torch.as_tensor(idx[:, None, :] == np.arange(d)[None, :, None])  # (n, d, P)
        fixed = torch.as_tensor(idx < 0)  # positions outside every feature never move
        per_row = d + 1
        rows_per_block = max(1, SET_BLOCK // per_row)
        with torch.no_grad():
            for s in range(0, n, rows_per_block):
                r = slice(s, min(n, s + rows_per_block))
                m = r.stop - r.start
                radius = torch.full((m, per_row, int(np.prod(shape))), eps, dtype=torch.float64)
                radius[:, 1:] = radius[:, 1:].masked_fill(held[r], 0.0)
                radius = radius.masked_fill(fixed[r, None, :], 0.0)
                centre = X[r].reshape(m, 1, -1).expand(m, per_row, -1)
                lo = (centre - radius).reshape(m * per_row, *shape)
                hi = (centre + radius).reshape(m * per_row, *shape)
                sp = spec[r].repeat_interleave(per_row, 0)
                ao = adversarial_overlap(layers, lo, hi, sp, self.options["bounds"])
                ao = ao.reshape(m, per_row).numpy()
                overlap[r] = ao[:, 0]
                values[r] = ao[:, :1] - ao[:, 1:]
            whole = Box(X - eps, X + eps)
            target = torch.zeros((n, 1, k), dtype=torch.float64)
            target[torch.arange(n), 0, torch.as_tensor(ctx.targets)] = 1.0
            f_lo, f_up = _spec_bounds(layers, _boxes(layers, whole, self.options["bounds"]),
                                      target, self.options["bounds"])
        return {"values": values, "base_values": np.zeros(n), "evaluations": checked,
                "extras": {"adversarial_overlap": overlap, "lower": f_lo[:, 0].numpy(),
                           "upper": f_up[:, 0].numpy()},
                "options": {"epsilon": eps, "bounds": self.options["bounds"]}}
