"""PatternNet and PatternAttribution (Kindermans, Schütt, Alber, Müller, Erhan, Kim & Dähne,
"Learning how to explain neural networks: PatternNet and PatternAttribution", ICLR 2018).

For a linear neuron ``y = wᵀx`` on data ``x = s + d`` (signal and distractor), the weights also
cancel the distractor, so ``w`` alone does not show the signal; the *pattern* ``a`` does. The
paper fits one pattern per neuron of every Linear / Conv2d layer from data (the layer's inputs
``x`` and its output without bias ``y = wᵀx``), with one of two signal estimators:

- ``S_a`` (``estimator="linear"``): ``a = cov(x, y) / (wᵀ cov(x, y))``; for a single linear
  layer this is Haufe et al.'s pattern ``cov(x, y) / var(y)``.
- ``S_a+-`` (``estimator="two-component"``): for a neuron followed by a ReLU, the positive
  regime's ``a_+ = (E_+[x y] - E_+[x] E[y]) / wᵀ(E_+[x y] - E_+[x] E[y])``, ``E_+`` over the
  rows where the neuron is active (pre-activation with bias ``> 0``), ``E[y]`` over all rows;
  the negative regime's ``a_-`` likewise (kept in :attr:`PatternFit.negative`; a ReLU passes
  nothing back from it). A layer not followed by a ReLU (the output layer) takes ``S_a``.
  Where every row is in the positive regime, both estimators give the same patterns.

The explanation is a backward pass from the target output's value ``f_t(x)`` (the
network's raw output, before any softmax), gated by the ReLUs' forward activations and routed
by max pooling as the gradient is:

- **PatternNet** (``patternnet``): the weights replaced by the patterns, ``r ← Aᵀ r``: the
  signal of the input that the output detects (for a linear model ``a f(x)``).
- **PatternAttribution** (``pattern-attribution``): the weights replaced by ``w ⊙ a`` (the
  LRP/DTD backward pass with the pattern's root point): a per-input attribution (for a linear
  model ``w ⊙ a f(x)``; as ``wᵀa = 1`` per neuron, a layer passes its relevance on whole).

Networks: a ``torch.nn.Sequential`` (nested ones too) of Linear, Conv2d (ungrouped), ReLU,
Flatten, MaxPool2d, AvgPool2d, Dropout (identity in evaluation) and Identity layers; a module
wrapping one such layer or sequence; or a module with an ``as_sequential()`` method giving
an equivalent one. The computation runs in float64 on the CPU, and the model's own output on
the background must match it. Anything else is refused with a
:class:`~xai.errors.ModelTypeError` before any model call. The patterns are fitted on the
background rows (``background=``, e.g. training rows), or beforehand with :meth:`fit`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .errors import InputError, ModelTypeError, unknown_name
from .external import ExplainContext, ExternalExplainer
from .torch_layers import check_forward, layer_weights, sequential_layers

ESTIMATORS = ("two-component", "linear")
KERNEL_LAYERS = (nn.Linear, nn.Conv2d)
SHAPE_LAYERS = (nn.Flatten, nn.MaxPool2d, nn.AvgPool2d)
PASS_LAYERS = (nn.Dropout, nn.Identity)
SUPPORTED = (*KERNEL_LAYERS, nn.ReLU, *SHAPE_LAYERS, *PASS_LAYERS)
#: background rows forwarded together while the statistics accumulate
FIT_CHUNK = 64


def layer_sequence(model: Any) -> list[nn.Module]:
    """The layers of ``model`` in forward order (see the module docstring); a
    :class:`~xai.errors.ModelTypeError` naming the first layer it cannot take."""
    layers = sequential_layers(model, "patternnet", SUPPORTED)
    if not any(isinstance(m, KERNEL_LAYERS) for m in layers):
        raise ModelTypeError("patternnet: the model has no Linear or Conv2d layer to fit "
                             "patterns to")
    return layers


def _forward(layers: list[nn.Module], x: torch.Tensor) -> list[torch.Tensor]:
    """Inputs of every layer and, last, the output, in float64."""
    acts = [x]
    for layer in layers:
        if isinstance(layer, nn.Linear):
            w, b = layer_weights(layer)
            x = F.linear(x, w, b)
        elif isinstance(layer, nn.Conv2d):
            w, b = layer_weights(layer)
            x = F.conv2d(x, w, b, layer.stride, layer.padding, layer.dilation)
        elif isinstance(layer, nn.ReLU):
            x = torch.relu(x)
        elif isinstance(layer, SHAPE_LAYERS):
            x = layer(x)
        acts.append(x)
    return acts


def _followed_by_relu(layers: list[nn.Module], i: int) -> bool:
    for layer in layers[i + 1:]:
        if isinstance(layer, PASS_LAYERS):
            continue
        return isinstance(layer, nn.ReLU)
    return False


def _neuron_io(layer: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor,
                                                           torch.Tensor]:
    """Per neuron samples: inputs ``(m, fan_in)``, outputs without bias and pre-activations
    with bias ``(m, out)`` (a convolution's every position is a sample)."""
    w, b = layer_weights(layer)
    if isinstance(layer, nn.Conv2d):
        x = F.unfold(x, layer.kernel_size, layer.dilation, layer.padding, layer.stride)
        x = x.transpose(1, 2).reshape(-1, x.shape[1])
    w2 = w.reshape(w.shape[0], -1)
    y = x @ w2.T
    return x, y, y if b is None else y + b


@dataclass
class PatternFit:
    """Fitted patterns of one network: per kernel layer (by position in the layer sequence)
    the pattern used by the backward pass (``patterns``, the weight's shape), the negative
    regime's pattern of the two-component estimator (``negative``; None for ``S_a``), and
    the background rows they came from."""

    estimator: str
    patterns: dict[int, torch.Tensor]
    negative: dict[int, torch.Tensor | None]
    rows: int


def _pattern(w2: torch.Tensor, n: torch.Tensor, sx: torch.Tensor, sxy: torch.Tensor,
             mean_y: torch.Tensor) -> torch.Tensor:
    """``(E_M[x y] - E_M[x] E[y]) / wᵀ(...)`` per neuron ``(out, fan_in)`` from the masked
    sums; zero where the mask is empty or the denominator vanishes."""
    safe_n = torch.where(n > 0, n, torch.ones_like(n))
    cov = (sxy - sx * mean_y[None, :]) / safe_n[None, :]  # (fan_in, out)
    denom = (w2 * cov.T).sum(1)
    ok = (n > 0) & (denom.abs() > 1e-12 * (w2.abs() * cov.T.abs()).sum(1).clamp_min(1e-300))
    a = cov.T / torch.where(ok, denom, torch.ones_like(denom))[:, None]
    return torch.where(ok[:, None], a, torch.zeros_like(a))


def fit_patterns(model: Any, background: Any, estimator: str = "two-component") -> PatternFit:
    """Fit the signal estimator's patterns of every Linear / Conv2d layer of ``model`` on the
    ``background`` rows (see the module docstring)."""
    if estimator not in ESTIMATORS:
        raise unknown_name("patternnet estimator", estimator, ESTIMATORS)
    layers = layer_sequence(model)
    B = torch.as_tensor(np.asarray(background), dtype=torch.float64) \
        if not isinstance(background, torch.Tensor) else background.detach().to("cpu",
                                                                                 torch.float64)
    if len(B) < 2:
        raise InputError(f"patternnet needs at least 2 background rows to fit its patterns; "
                         f"got {len(B)}. Pass training rows as background=")
    kernel = [i for i, m in enumerate(layers) if isinstance(m, KERNEL_LAYERS)]
    stats: dict[int, dict[str, torch.Tensor]] = {}
    with torch.no_grad():
        for s in range(0, len(B), FIT_CHUNK):
            acts = _forward(layers, B[s:s + FIT_CHUNK])
            for i in kernel:
                x, y, pre = _neuron_io(layers[i], acts[i])
                st = stats.setdefault(i, {"m": torch.zeros(()), "sy": 0, "parts": {}})
                st["m"] = st["m"] + len(x)
                st["sy"] = st["sy"] + y.sum(0)
                regimes = {"all": torch.ones_like(pre)}
                if estimator == "two-component" and _followed_by_relu(layers, i):
                    regimes = {"pos": (pre > 0).double(), "neg": (pre <= 0).double()}
                for key, mask in regimes.items():
                    acc = st["parts"].setdefault(key, [0, 0, 0])
                    acc[0] = acc[0] + mask.sum(0)
                    acc[1] = acc[1] + x.T @ mask
                    acc[2] = acc[2] + x.T @ (y * mask)
    patterns, negative = {}, {}
    for i in kernel:
        w2 = layer_weights(layers[i])[0]
        w2 = w2.reshape(w2.shape[0], -1)
        st = stats[i]
        mean_y = st["sy"] / st["m"]
        main = st["parts"].get("pos", st["parts"].get("all"))
        patterns[i] = _pattern(w2, *main, mean_y).reshape(layers[i].weight.shape)
        neg = st["parts"].get("neg")
        negative[i] = None if neg is None else _pattern(w2, *neg, mean_y).reshape(
            layers[i].weight.shape)
    return PatternFit(estimator, patterns, negative, len(B))


def backward_pass(layers: list[nn.Module], fit: PatternFit, X: torch.Tensor,
                  targets: np.ndarray, attribution: bool) -> tuple[np.ndarray, np.ndarray]:
    """PatternNet's signal (``attribution=False``) or PatternAttribution's relevance
    (``True``) of rows ``X`` for output ``targets``; also the outputs ``f_t(x)``."""
    with torch.no_grad():
        acts = _forward(layers, X)
    out = acts[-1]
    if out.ndim != 2:
        raise ModelTypeError(f"patternnet: the model's output has shape {tuple(out.shape)}; "
                             "it needs (rows, outputs)")
    rows = torch.arange(len(X))
    t = torch.as_tensor(np.asarray(targets), dtype=torch.long)
    r = torch.zeros_like(out)
    r[rows, t] = out[rows, t]
    for i in range(len(layers) - 1, -1, -1):
        layer, x = layers[i], acts[i]
        if isinstance(layer, KERNEL_LAYERS):
            p = fit.patterns[i]
            if attribution:
                p = p * layer_weights(layer)[0]
            if isinstance(layer, nn.Linear):
                r = r @ p
            else:
                r = torch.nn.grad.conv2d_input(tuple(x.shape), p, r, layer.stride,
                                               layer.padding, layer.dilation)
        elif isinstance(layer, nn.ReLU):
            r = r * (x > 0)
        elif isinstance(layer, SHAPE_LAYERS):  # the gradient: max pooling routes to the max
            xg = x.detach().requires_grad_(True)
            with torch.enable_grad():
                r = torch.autograd.grad(layer(xg), xg, r)[0]
    return r.numpy(), out[rows, t].numpy()


class PatternNet(ExternalExplainer):
    """PatternNet (Kindermans et al., ICLR 2018): the signal the target output detects,
    projected back to the input through the fitted patterns (see :mod:`xai.pattern_net`).

    Options: ``estimator`` (``"two-component"``, the paper's ``S_a+-`` for ReLU networks,
    or ``"linear"``, ``S_a``). Patterns are fitted on ``background=`` rows; without one,
    :meth:`fit` must have been called for this model. ``base_values`` are zero;
    ``extras["output"]`` holds ``f_t(x)``.
    """

    name = "patternnet"
    defaults: ClassVar[dict[str, Any]] = {"estimator": "two-component"}
    per_position = True
    attribution = False

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        if self.options["estimator"] not in ESTIMATORS:
            raise unknown_name(f"{self.name} estimator", self.options["estimator"], ESTIMATORS)
        self.fit_: PatternFit | None = None
        self._fitted_model: Any = None

    def fit(self, model: Any, X: Any) -> PatternNet:
        """Fit the patterns of ``model`` on rows ``X`` (training or background rows); later
        calls of :meth:`explain` on this model without a background use them."""
        layers = layer_sequence(model)
        self.fit_ = fit_patterns(model, _rows_of(X), self.options["estimator"])
        self._fitted_model = model
        _check_forward(model, layers, _rows_of(X)[:FIT_CHUNK])
        return self

    def explain(self, model: Any, X: Any, y: Any = None, *, background: Any = None,
                features: Any = None, output_kind: str | None = None):
        """Explain rows ``X`` (see the class docstring); the model's layers and the fit data
        are checked before any model call."""
        layer_sequence(model)
        if background is None and (self.fit_ is None or self._fitted_model is not model):
            raise InputError(
                f"{self.name} fits its patterns from data: pass background=TRAINING_ROWS "
                f"(e.g. xai.explain(model, X, method={self.name!r}, background=X_train)), or "
                "call fit(model, X_train) on the explainer first")
        return super().explain(model, X, y, background=background, features=features,
                               output_kind=output_kind)

    def attribute(self, ctx: ExplainContext) -> dict[str, Any]:
        model = ctx.torch_module()
        layers = layer_sequence(model)
        checked = 0
        if ctx.background is not None:
            B = _rows_of(ctx.background)
            fit = fit_patterns(model, B, self.options["estimator"])
            checked = _check_forward(model, layers, B[:FIT_CHUNK])
        else:
            fit = self.fit_
        X = torch.as_tensor(np.asarray(ctx.X, dtype=np.float64))
        values, out = backward_pass(layers, fit, X, ctx.targets, self.attribution)
        return {"values": values, "base_values": np.zeros(len(values)),
                "evaluations": checked,
                "extras": {"output": out},
                "options": {"background_rows": fit.rows, "estimator": fit.estimator}}


class PatternAttribution(PatternNet):
    """PatternAttribution (Kindermans et al., ICLR 2018): the LRP/DTD backward pass from the
    target output's value with the weights replaced by weights times patterns ``w ⊙ a``
    (see :mod:`xai.pattern_net`); options as :class:`PatternNet`."""

    name = "pattern-attribution"
    attribution = True


def _rows_of(X: Any) -> torch.Tensor:
    if isinstance(X, torch.Tensor):
        return X.detach().to("cpu", torch.float64)
    if hasattr(X, "to_numpy"):
        X = X.to_numpy()
    return torch.as_tensor(np.asarray(X, dtype=np.float64))


def _check_forward(model: nn.Module, layers: list[nn.Module], B: torch.Tensor) -> int:
    """The layer sequence must compute what the model computes: one model call on background
    rows; returns the rows it evaluated."""
    return check_forward(model, lambda x: _forward(layers, x)[-1], B, "patternnet")
