"""Model-parameter randomisation test (MPRT; Adebayo et al. 2018).

On a **deep copy** of a torch model (the user's model is never touched), layers (modules that
own parameters) are re-initialised top-down one more per step (``order="cascading"``, default)
or one at a time on a fresh copy (``order="independent"``). Each layer is re-initialised by its
own ``reset_parameters()`` inside ``torch.random.fork_rng`` with the global torch generator
seeded from ``(seed, layer index)``, so the draws are reproducible and the caller's RNG state
is untouched; a layer without ``reset_parameters`` gets its own parameters redrawn from
``N(mean, sd)`` of their current values with a seeded ``torch.Generator``. After each step the
same explainer (same settings and seed) re-explains the rows, and per row the Spearman rank
correlation with the explanation of the unrandomised copy is computed for ``a`` and ``|a|``.
"""

from __future__ import annotations

import copy
from typing import Any, ClassVar

import numpy as np
import torch

from .._warn import warn
from ..errors import InputError, ModelTypeError, OptionError
from ..registry import register
from .base import Metric, MetricInputs
from .checks import Choice
from .perturbation import _as_attr_array, call_explainer

CAVEATS = (
    "MPRT is a weak, necessary sanity check, never a ranking of methods (Binder et al. 2023, "
    "'Shortcomings of top-down randomization-based sanity checks'): maps with no pixel "
    "covariance pass it trivially, and top-down randomisation keeps the scale of forward "
    "activations, so similarity need not fall even for a faithful method; maps dominated by "
    "the input (e.g. integrated gradients with a zero baseline, gradient×input) stay similar "
    "because x itself does not change.")

ORDERS = ("cascading", "independent")


def parameter_layers(module: torch.nn.Module) -> list[tuple[str, torch.nn.Module]]:
    """Modules that own parameters (not through children), in definition order."""
    return [(name, m) for name, m in module.named_modules()
            if any(True for _ in m.parameters(recurse=False))]


def _layer_seed(seed: int, index: int) -> int:
    ss = np.random.SeedSequence([int(seed), 0x4D505254, int(index)])
    return int(ss.generate_state(1, dtype=np.uint64)[0] % (2**63 - 1))


def reset_layer(layer: torch.nn.Module, seed: int, index: int) -> None:
    """Re-initialise ``layer`` reproducibly without touching the global RNG state."""
    s = _layer_seed(seed, index)
    param = next(layer.parameters(recurse=False))
    devices = [param.device.index or 0] if param.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices), torch.no_grad():
        torch.manual_seed(s)
        if hasattr(layer, "reset_parameters"):
            layer.reset_parameters()
            return
        gen = torch.Generator(device=param.device).manual_seed(s)
        for p in layer.parameters(recurse=False):
            sd = float(p.std()) if p.numel() > 1 else 1.0
            p.normal_(float(p.mean()), sd if sd > 0 else 1.0, generator=gen)


def spearman_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-row Spearman correlation (average ranks for ties); NaN for a constant row."""
    from scipy.stats import rankdata

    ra = rankdata(a, axis=1)
    rb = rankdata(b, axis=1)
    ra = ra - ra.mean(1, keepdims=True)
    rb = rb - rb.mean(1, keepdims=True)
    den = np.sqrt((ra ** 2).sum(1) * (rb ** 2).sum(1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, (ra * rb).sum(1) / np.where(den > 0, den, 1.0), np.nan)


def _layers_rule(name: str, value: Any) -> list[str] | None:
    if value is None:
        return None
    if isinstance(value, str) or not isinstance(value, list | tuple) or not value or not all(
            isinstance(v, str) for v in value):
        raise OptionError(f"{name}={value!r} is not a list of module names: pass a list such "
                          f"as {name}=['fc'] (names from model.named_modules(), top-down), or "
                          f"leave {name}=None (all layers)")
    return list(value)


@register("metric", "randomisation", aliases=("mprt", "randomization"))
class Randomisation(Metric):
    """Model-parameter randomisation (see the module docstring). A diagnostic (direction
    "none").

    Options: ``order`` (``"cascading"`` default or ``"independent"``), ``layers`` (None =
    all parameter-owning modules; or a list of module names, in top-down order of
    randomisation). Needs ``explainer=`` (an :class:`xai.Explainer`, an object with
    ``.explain(model, X)`` or a callable ``(model, X)``).

    Result: ``curves`` = per-row Spearman of ``a`` per step ``(n, L+1)`` (step 0 = the
    unrandomised copy, 1.0); ``per_sample`` = the last step's Spearman (all layers randomised
    for cascading, the lowest layer alone for independent); ``extras``: ``spearman`` and
    ``spearman_abs`` ``(n, L+1)``, ``layers`` (names in the order randomised), ``caveats``.
    Cost: ``L + 1`` explainer calls on the ``n`` rows.
    """

    name = "randomisation"
    direction = "none"
    needs = frozenset({"model", "explainer"})
    applies_to = "any"
    stochastic = False  # seeded
    default_output = "attributions"
    defaults: ClassVar[dict] = {"order": "cascading", "layers": None}
    option_rules: ClassVar[dict] = {"order": Choice(ORDERS, "order"), "layers": _layers_rule}
    target_check = "probe"  # the explainer's calls are not a game's

    def check_inputs(self, inp: MetricInputs) -> None:
        self._top_down(inp.model, inp.options["layers"])

    def _top_down(self, model: Any, wanted: list[str] | None) -> list:
        """The layers to randomise, top-down, as ``(name, module)`` of ``model``; refuses a
        model that is no torch module, owns no parameters, or lacks a named layer."""
        if not isinstance(model, torch.nn.Module):
            raise ModelTypeError(
                f"randomisation needs a torch.nn.Module, whose parameters it re-initialises "
                f"layer by layer; got {type(model).__name__}: pass the torch module itself "
                "(not a function or an adapter around it), or use a metric that does not "
                "change the model")
        layers = parameter_layers(model)
        if not layers:
            raise InputError("the model has no parameters to randomise: pass a torch module "
                             "with parameters (layers such as nn.Linear or nn.Conv2d)")
        if wanted is None:
            return layers[::-1]
        by_name = dict(layers)
        missing = [w for w in wanted if w not in by_name]
        if missing:
            raise OptionError(f"layers {missing} own no parameters in the model: pass names of "
                              f"layers that do: {list(by_name)} (or layers=None for all)")
        return [(w, by_name[w]) for w in wanted]

    def compute(self, inp: MetricInputs) -> dict:
        order = inp.options["order"]
        base = copy.deepcopy(inp.model)
        layers = parameter_layers(base)
        top_down = self._top_down(base, inp.options["layers"])
        index_of = {name: i for i, (name, _) in enumerate(layers)}
        n = inp.n
        ref, _ = _as_attr_array(call_explainer(inp.explainer, base, inp.X), n)
        sp, sp_abs = [np.ones(n)], [np.ones(n)]
        if np.ptp(ref, axis=1).min() == 0:
            warn("some rows have constant attributions on the unrandomised model; "
                 "their Spearman correlations are NaN")
        current = base if order == "independent" else copy.deepcopy(base)
        for name, _ in top_down:
            if order == "independent":
                current = copy.deepcopy(base)
            layer = dict(current.named_modules())[name]
            reset_layer(layer, inp.seed, index_of[name])
            vals, _ = _as_attr_array(call_explainer(inp.explainer, current, inp.X), n)
            sp.append(spearman_rows(ref, vals))
            sp_abs.append(spearman_rows(np.abs(ref), np.abs(vals)))
        spearman = np.stack(sp, 1)
        spearman_abs = np.stack(sp_abs, 1)
        return {"per_sample": spearman[:, -1], "curves": spearman,
                "extras": {"spearman": spearman, "spearman_abs": spearman_abs,
                           "layers": [name for name, _ in top_down], "caveats": CAVEATS},
                "settings": {"order": order, "layers": [name for name, _ in top_down]}}
