"""Relative stability (Agarwal et al. 2022, "Rethinking Stability for Attribution-based
Explanations"): ``relative-input-stability``, ``relative-representation-stability`` and
``relative-output-stability``.

Per row ``x``, over perturbed copies ``x' = x + z``, ``z ~ N(0, sigma²)`` per input element,
that the model predicts the same class for::

    R(x) = max_{x'} ‖(e_x − e_x') / e_x‖_p / max(‖(h(x) − h(x')) / h(x)‖_p, eps_min)

with ``h`` the input itself (RIS) or an internal representation of a torch module (RRS: the
output of the module named ``layer=``, or by default the input of the last module that owns
parameters); ROS has the plain change of the model's outputs (a torch module's logits),
``max(‖h(x) − h(x')‖_p, eps_min)``, in the denominator. Divisions are elementwise;
a zero in ``e_x`` or ``h(x)`` is replaced by ``eps_min`` (as Quantus does). ``e_x`` and every
``e_x'`` come from the given explainer, called once on the rows stacked with their copies (as
``max-sensitivity``), so a sampling explainer sees the same settings for both. Lower is better.

These are the paper's equations, which Quantus 0.6.0 and Explainiverse 0.15.2 implement too
(the tests match both on the same copies: Explainiverse exactly, Quantus where no copy changes
class). The authors' OpenXAI code computes something else and its scores are not comparable:
a ratio of whole-vector relative norms ``(‖e − e'‖/‖e‖) / (‖h − h'‖/‖h‖)``, also for the
logits of ROS, with copies whose denominator is 0 skipped; its benchmark perturbs with
``sigma=1e-5`` and takes RRS at the first hidden layer after its activation.
"""

from __future__ import annotations

import warnings
from typing import Any, ClassVar

import numpy as np
import torch

from .._warn import warn
from ..errors import InputError, ModelTypeError, OptionError
from ..inputs import Integer, Real
from ..registry import register
from .base import Metric, MetricInputs
from .perturbation import _as_attr_array, call_explainer
from .randomisation import parameter_layers


def norm_rule(name: str, p: Any) -> float:
    """``p_norm``: the order p of the norms, a number >= 1 or ``float('inf')``."""
    if isinstance(p, bool | np.bool_) or not isinstance(p, int | float | np.integer |
                                                          np.floating) or not p >= 1:
        raise OptionError(f"{name}={p!r} is not a norm order: pass a number >= 1 (2 for the "
                          "Euclidean norm) or float('inf')")
    return float(p)


def predicted_class(out: np.ndarray, output_kind: str) -> np.ndarray:
    """The class a model's outputs ``(m, k)`` predict (one output: above 0.5 for a
    probability, above 0 otherwise)."""
    if out.shape[1] > 1:
        return out.argmax(1)
    return (out[:, 0] > (0.5 if output_kind == "probability" else 0.0)).astype(np.int64)


def relative_change(ref: np.ndarray, other: np.ndarray, p: float, eps_min: float) -> np.ndarray:
    """``‖(ref − other) / ref‖_p`` over the last axis, a zero of ``ref`` replaced by
    ``eps_min``; ``ref`` ``(n, 1, P)`` broadcasts against ``other`` ``(n, N, P)``."""
    safe = np.where(ref == 0, eps_min, ref)
    return np.linalg.norm((ref - other) / safe, ord=p, axis=-1)


class RelativeStability(Metric):
    """Shared computation of the three relative stabilities; subclasses give
    :meth:`representation`."""

    direction = "lower"
    needs = frozenset({"model", "explainer"})
    applies_to = "any"
    stochastic = True
    default_output = "attributions"
    target_check = "probe"  # the explainer's calls are not a game's
    defaults: ClassVar[dict] = {"n_samples": 100, "sigma": 0.05, "p_norm": 2, "eps_min": 1e-6}
    option_rules: ClassVar[dict] = {"n_samples": Integer(1, optional=False, example=100),
                                    "sigma": Real(0.0, low_open=True, optional=False),
                                    "p_norm": norm_rule,
                                    "eps_min": Real(0.0, low_open=True, optional=False)}
    what: ClassVar[str] = "input"
    #: a row's copies are drawn from its own random stream and its score uses its own copies'
    #: explanations alone: backend='ray' splits the rows
    rows_split = True
    #: the denominator is the relative change of h (RIS, RRS) or its plain change (ROS)
    relative_h: ClassVar[bool] = True

    def check_inputs(self, inp: MetricInputs) -> None:
        if not np.issubdtype(inp.X.dtype, np.floating):
            raise InputError(f"{self.name} perturbs inputs with Gaussian noise and needs "
                             f"real-valued inputs; got dtype {inp.X.dtype}: pass x as floats "
                             "(x.astype(float))")

    def representation(self, inp: MetricInputs, rows: np.ndarray) -> tuple[np.ndarray,
                                                                           np.ndarray, int]:
        """``(h(rows) (m, R), predicted class (m,), model rows spent outside the adapter)``."""
        adapter = inp.adapter
        with adapter.session():
            out = adapter(torch.as_tensor(rows, dtype=adapter.dtype,
                                          device=adapter.device)).cpu().numpy()
        pred = predicted_class(out, adapter.output_kind)
        return self.chosen(rows, out), pred, 0

    def chosen(self, rows: np.ndarray, outputs: np.ndarray) -> np.ndarray:
        """``h`` from the rows and the model's outputs on them."""
        return rows.reshape(len(rows), -1).astype(np.float64)

    def compute(self, inp: MetricInputs) -> dict:
        o = inp.options
        n, N = inp.n, o["n_samples"]
        S = inp.X.shape[1:]
        X = inp.X.reshape(n, -1)
        noise = np.stack([inp.rng(i, 0).normal(0.0, o["sigma"], (N, X.shape[1]))
                          for i in range(n)])
        stacked = np.concatenate([X, (X[:, None, :] + noise).reshape(n * N, -1)])
        stacked = stacked.astype(inp.X.dtype, copy=False).reshape(n * (N + 1), *S)
        res = call_explainer(inp.explainer, inp.model, stacked)
        attrs, _ = _as_attr_array(res, n * (N + 1))
        h, pred, spent = self.representation(inp, stacked)
        p, eps_min = o["p_norm"], o["eps_min"]
        e_x = attrs[:n].astype(np.float64)[:, None, :]
        num = relative_change(e_x, attrs[n:].reshape(n, N, -1).astype(np.float64), p, eps_min)
        h_x, h_copies = h[:n, None, :], h[n:].reshape(n, N, -1)
        den = relative_change(h_x, h_copies, p, eps_min) if self.relative_h else \
            np.linalg.norm(h_x - h_copies, ord=p, axis=-1)
        ratio = num / np.maximum(den, eps_min)
        valid = pred[n:].reshape(n, N) == pred[:n, None]
        none_left = ~valid.any(1)
        if none_left.any():
            warn(f"{int(none_left.sum())} rows have no perturbed copy with the same "
                 f"prediction (sigma={o['sigma']:g}); their {self.name} is NaN: pass a smaller "
                 "sigma")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN rows stay NaN
            per = np.nanmax(np.where(valid, ratio, np.nan), axis=1)
        evals = int(getattr(res, "evaluations", 0) or 0)
        return {"per_sample": per,
                "extras": {"n_valid_draws": valid.sum(1), "ratios": ratio},
                "extra_evaluations": evals + spent,
                "settings": {"reference": "re-explained x", "representation": self.what,
                             "p_norm": p}}


@register("metric", "relative-input-stability", aliases=("ris",))
class RelativeInputStability(RelativeStability):
    """Relative input stability (Agarwal et al. 2022): ``max_x' ‖(e_x − e_x')/e_x‖_p /
    max(‖(x − x')/x‖_p, eps_min)`` over Gaussian copies ``x'`` with the same prediction; lower
    is better.

    Options: ``n_samples=100`` (copies per row), ``sigma=0.05`` (noise SD in input units, as
    the paper's Appendix B), ``p_norm=2`` (the order p of the norms), ``eps_min=1e-6`` (as
    Quantus; Explainiverse's default is 1e-7). Needs
    ``explainer=``; cost: one explainer call on ``n·(n_samples + 1)`` rows and as many model
    rows. ``extras``: ``n_valid_draws`` (copies with the same prediction per row), ``ratios``
    ``(n, n_samples)`` (every copy's ratio, also those with another prediction).

    Deliberate differences from Quantus 0.6.0 (``RelativeInputStability``, which the tests
    match on the same copies): a copy whose prediction changes is left out of the max (Quantus
    makes the whole row NaN, the paper takes the max over copies with the same prediction);
    the denominator is ``max(‖·‖_p, eps_min)`` as in the paper (Quantus adds ``eps_min`` only
    to an exact zero); ``e_x`` is the explainer's own explanation of ``x`` (Quantus uses
    ``a_batch``: the same for a deterministic explainer); the noise is Gaussian (Quantus's
    default is uniform); the norm is over all attribution elements (Quantus: a norm of
    per-channel norms, the same for p=2). Explainiverse 0.15.2
    (``compute_relative_input_stability``) gives the same scores on the same copies, also when
    some change class; it explains and predicts one row at a time.
    """

    name = "relative-input-stability"
    reference = ("Quantus 0.6.0 RelativeInputStability and Explainiverse 0.15.2 "
                 "compute_relative_input_stability on identical perturbed copies")
    what = "input"


@register("metric", "relative-output-stability", aliases=("ros",))
class RelativeOutputStability(RelativeStability):
    """Relative output stability (Agarwal et al. 2022): as ``relative-input-stability`` with
    the change of the model's outputs in the denominator, ``max(‖h(x) − h(x')‖_p, eps_min)``
    (not relative to ``h(x)``, as in the paper and Quantus; OpenXAI divides by ``h(x)``), with
    ``h`` a torch module's logits or a scikit-learn classifier's probabilities. Options, cost
    and the differences from Quantus 0.6.0 (``RelativeOutputStability``) as
    ``relative-input-stability``; equal to Explainiverse 0.15.2
    (``compute_relative_output_stability`` with the logits as ``logit_fn``) on the same
    copies."""

    name = "relative-output-stability"
    reference = ("Quantus 0.6.0 RelativeOutputStability and Explainiverse 0.15.2 "
                 "compute_relative_output_stability on identical perturbed copies")
    what = "output"
    relative_h = False

    def chosen(self, rows: np.ndarray, outputs: np.ndarray) -> np.ndarray:
        return outputs.reshape(len(outputs), -1).astype(np.float64)


@register("metric", "relative-representation-stability", aliases=("rrs",))
class RelativeRepresentationStability(RelativeStability):
    """Relative representation stability (Agarwal et al. 2022): as
    ``relative-input-stability`` with an internal representation ``L(x)`` of a torch module in
    the denominator: the output of the module named ``layer=`` (a name from
    ``model.named_modules()``), or by default the input of the last module that owns
    parameters (the representation the output layer reads). Options as
    ``relative-input-stability`` plus ``layer``; the copies' forward passes (one per row) are
    run on the module itself with a hook that is removed afterwards, also on an error.

    Differences from Quantus 0.6.0 (``RelativeRepresentationStability``) as
    ``relative-input-stability``; Quantus's default representation is every layer's output
    concatenated, OpenXAI's the first hidden layer after its activation: pass ``layer=`` to
    choose one. Equal to Explainiverse 0.15.2 (``compute_relative_representation_stability``
    with that layer's output as ``representation_fn``) on the same copies.
    """

    name = "relative-representation-stability"
    reference = ("Quantus 0.6.0 RelativeRepresentationStability and Explainiverse 0.15.2 "
                 "compute_relative_representation_stability on identical perturbed copies")
    what = "representation"
    defaults: ClassVar[dict] = {**RelativeStability.defaults, "layer": None}
    option_rules: ClassVar[dict] = {**RelativeStability.option_rules,
                                    "layer": lambda name, v: _layer_rule(name, v)}

    def check_inputs(self, inp: MetricInputs) -> None:
        super().check_inputs(inp)
        self._module(inp.model, inp.options["layer"])

    @staticmethod
    def _module(model: Any, layer: str | None) -> tuple[torch.nn.Module, bool]:
        """The module whose output (``layer`` given) or input (default) is the
        representation, and whether it is the output."""
        if not isinstance(model, torch.nn.Module):
            raise ModelTypeError(
                f"relative-representation-stability needs a torch.nn.Module, whose internal "
                f"layer gives the representation; got {type(model).__name__}: pass the torch "
                "module itself, or use relative-input-stability / relative-output-stability")
        if layer is None:
            layers = parameter_layers(model)
            if not layers:
                raise InputError("the model has no module with parameters whose input could "
                                 "be the representation: pass layer= (a name from "
                                 "model.named_modules())")
            return layers[-1][1], False
        modules = dict(model.named_modules())
        if layer not in modules or layer == "":
            raise OptionError(f"layer={layer!r} is not a module of the model: pass one of "
                              f"{[k for k in modules if k][:20]}")
        return modules[layer], True

    def representation(self, inp: MetricInputs, rows: np.ndarray) -> tuple[np.ndarray,
                                                                           np.ndarray, int]:
        adapter = inp.adapter
        module, output = self._module(inp.model, inp.options["layer"])
        seen: list[torch.Tensor] = []

        def keep(mod, args, out=None):
            value = out if output else args[0]
            seen.append(value.detach().reshape(len(value), -1).cpu().to(torch.float64))

        hook = module.register_forward_hook(keep) if output else \
            module.register_forward_pre_hook(keep)
        outs = []
        step = adapter.batch_size or len(rows)
        try:
            with torch.no_grad(), adapter.session():
                for s in range(0, len(rows), step):
                    x = torch.as_tensor(rows[s:s + step], dtype=adapter.dtype,
                                        device=adapter.device)
                    outs.append(inp.model(x).detach().cpu().to(torch.float64))
        finally:
            hook.remove()
        if len(seen) != len(outs):
            where = f"layer={inp.options['layer']!r}" if output else "the last layer with " \
                "parameters"
            raise InputError(f"{where} ran {len(seen)} times in {len(outs)} forward passes, so "
                             "it gives no single representation per row: pass layer= (a module "
                             "that runs once per forward pass)")
        out = torch.cat(outs).numpy()
        return torch.cat(seen).numpy(), predicted_class(out, adapter.output_kind), len(rows)


def _layer_rule(name: str, value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise OptionError(f"{name}={value!r} is not a module name: pass a name from "
                      "model.named_modules(), such as 'fc1', or leave it None (the input of "
                      "the last layer with parameters)")

