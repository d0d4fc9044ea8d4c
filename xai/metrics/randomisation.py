"""Model-parameter randomisation test (MPRT; Adebayo et al. 2018; SPEC-evaluation §1.9).

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
import warnings
from typing import ClassVar

import numpy as np
import torch

from ..errors import InputError
from ..registry import register
from .base import Metric, MetricInputs
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

    def __call__(self, model, x, a, *, target=None, removal=None, seed=0, **options):
        if not isinstance(model, torch.nn.Module):
            raise TypeError(f"randomisation needs a torch.nn.Module; got "
                            f"{type(model).__name__}")
        return super().__call__(model, x, a, target=target, removal=removal, seed=seed,
                                **options)

    def compute(self, inp: MetricInputs) -> dict:
        order = inp.options["order"]
        if order not in ORDERS:
            raise InputError(f"order must be one of {ORDERS}; got {order!r}")
        if inp.explainer is None:
            raise InputError("randomisation re-explains randomised models; pass explainer=…")
        base = copy.deepcopy(inp.model)
        layers = parameter_layers(base)
        if inp.options["layers"] is not None:
            wanted = list(inp.options["layers"])
            by_name = dict(layers)
            missing = [w for w in wanted if w not in by_name]
            if missing:
                raise InputError(f"layers {missing} own no parameters in the model; layers "
                                 f"that do: {list(by_name)}")
            top_down = [(w, by_name[w]) for w in wanted]
        else:
            top_down = layers[::-1]
        if not top_down:
            raise InputError("the model has no parameters to randomise")
        index_of = {name: i for i, (name, _) in enumerate(layers)}
        n = inp.n
        ref, _ = _as_attr_array(call_explainer(inp.explainer, base, inp.X), n)
        sp, sp_abs = [np.ones(n)], [np.ones(n)]
        if np.ptp(ref, axis=1).min() == 0:
            warnings.warn("some rows have constant attributions on the unrandomised model; "
                          "their Spearman correlations are NaN", stacklevel=3)
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
