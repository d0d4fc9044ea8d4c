"""Conformance checks that every registered component passes, and that plugin authors run on
their own (in the spirit of scikit-learn's ``check_estimator`` and captum's ``test_config``).

:func:`check_bad_inputs` sends one table of bad inputs (:data:`BAD_INPUTS`) through a
component and requires the named error before any model call; :func:`check_axioms` runs the
component on a linear model and checks what its kind promises (efficiency of efficient
summaries, a zero for a feature the model ignores under semivalues, Shapley's closed form
``w_i (x_i - E r_i)`` for an exact game). :func:`check` runs both::

    from xai.conformance import check
    check("summary", "my-summary")      # raises AssertionError naming the failed case
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from . import registry
from .errors import (
    InputError,
    LabelError,
    OptionError,
    UnknownNameError,
    XaiError,
)

KINDS = ("explainer", "removal", "behaviour", "summary")
D = 4
WEIGHTS = np.array([1.5, -2.0, 0.0, 0.5])  # feature 2 is a dummy: the model ignores it
RNG = np.random.default_rng(0)
X = RNG.normal(size=(3, D))
BACKGROUND = RNG.normal(size=(6, D))
Y = X @ WEIGHTS + 0.1

#: removals that replace features independently of the kept ones: under them a feature the
#: model ignores changes no value (conditional removals give it credit through correlations)
INTERVENTIONAL = frozenset({"baseline", "marginal", "interventional", "product-marginal",
                            "permutation-donor"})
#: semivalues (and their subclasses): a feature the model ignores gets exactly zero
#: (Banzhaf's maximum-sample-reuse estimate is a difference of two sample means: unbiased, but
#: not exactly zero for a dummy)
SEMIVALUES = frozenset({"exact-shapley", "exact-banzhaf", "permutation-shapley", "kernelshap",
                        "ra-kernelshap", "remove-individual", "include-individual"})


class CountingLinear(torch.nn.Module):
    """``f(x) = w·x`` as a float64 torch module that counts the rows of its forward calls."""

    def __init__(self, weights: np.ndarray = WEIGHTS) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(len(weights), 1, bias=False).double()
        with torch.no_grad():
            self.linear.weight.copy_(torch.as_tensor(weights)[None])
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return self.linear(x)


@dataclass(frozen=True)
class BadInput:
    """One bad call: ``change`` turns the valid call's keyword arguments into the bad ones;
    the component must raise one of ``errors`` before any model call."""

    id: str
    errors: tuple[type[XaiError], ...]
    change: Callable[[dict], dict]
    needs: str | None = None  # "background" or "y": only where the valid call passes it


def _with(**changes: Any) -> Callable[[dict], dict]:
    return lambda call: {**call, **changes}


def _nan_in(key: str, value: float = np.nan) -> Callable[[dict], dict]:
    def change(call: dict) -> dict:
        arr = np.array(call[key], dtype=np.float64)
        arr.flat[min(5, arr.size - 1)] = value
        return {**call, key: arr}
    return change


BAD_INPUTS: list[BadInput] = [
    BadInput("nan-in-X", (InputError,), _nan_in("X")),
    BadInput("inf-in-X", (InputError,), _nan_in("X", np.inf)),
    BadInput("empty-X", (InputError,), lambda c: {**c, "X": c["X"][:0],
                                                  **({"y": c["y"][:0]} if "y" in c else {})}),
    BadInput("X-without-columns", (InputError,), lambda c: {**c, "X": c["X"][:, :0]}),
    BadInput("complex-X", (InputError,), lambda c: {**c, "X": c["X"] + 1j}),
    BadInput("text-X", (InputError,), lambda c: {**c, "X": c["X"].astype(str)}),
    BadInput("5-D X", (InputError,), lambda c: {**c, "X": np.zeros((2, 1, 2, 2, 2))}),
    BadInput("nan-in-background", (InputError,), _nan_in("background"), needs="background"),
    BadInput("empty-background", (InputError,), lambda c: {**c, "background": c["background"][:0]},
             needs="background"),
    BadInput("nan-labels", (LabelError,), _nan_in("y"), needs="y"),
    BadInput("labels-wrong-length", (LabelError,), lambda c: {**c, "y": c["y"][:-1]}, needs="y"),
    BadInput("seed-negative", (OptionError,), _with(seed=-1)),
    BadInput("seed-text", (OptionError,), _with(seed="abc")),
    BadInput("batch-size-zero", (OptionError,), _with(batch_size=0)),
    BadInput("memory-cap-negative", (OptionError, UnknownNameError), _with(memory_cap=-1)),
    BadInput("budget-text", (OptionError, UnknownNameError), _with(budget="many")),
    BadInput("budget-nan", (OptionError, UnknownNameError), _with(budget=float("nan"))),
    BadInput("tol-negative", (OptionError, UnknownNameError), _with(tol=-1.0)),
    BadInput("unknown-option", (UnknownNameError,), _with(budgett=100)),
]


# ---- building a call for a component --------------------------------------------------------

def components(kind: str) -> list[str]:
    """One registered name per component of ``kind`` (aliases left out)."""
    seen: dict[int, str] = {}
    for name in registry.names(kind):
        obj = registry.get(kind, name)
        own = registry.normalize(getattr(obj, "name", "") or "")
        if id(obj) not in seen or registry.normalize(name) == own:
            seen[id(obj)] = name
    return sorted(seen.values())


@dataclass
class Call:
    """A valid call of one component: ``run(**kwargs)`` explains with it."""

    run: Callable[..., Any]
    kwargs: dict = field(default_factory=dict)


def _explainer_of(kind: str, name: str) -> Callable[..., Any]:
    from .explainer import Explainer, explain

    if kind == "explainer":
        return lambda model, X, **kw: explain(model, X, method=name, progress=False, **kw)
    # the component under test on its axis; the others fixed (a behaviour gets marginal removal)
    axes = {"removal": "baseline" if kind != "behaviour" else "interventional",
            "behaviour": "prediction", "summary": "exact-shapley", kind: name}
    removal, behaviour, summary = axes["removal"], axes["behaviour"], axes["summary"]

    def run(model, X, y=None, background=None, output_kind=None, **kw):
        return Explainer(removal, behaviour, summary, progress=False, **kw).explain(
            model, X, y, background=background, output_kind=output_kind)
    return run


def valid_call(kind: str, name: str, model: torch.nn.Module | None = None) -> Call | str:
    """The call of ``name`` that runs on :class:`CountingLinear` and the module's data, with a
    background and labels where the component takes them; a string saying why when the
    component does not apply to a tabular linear model (its named error)."""
    model = CountingLinear() if model is None else model
    run = _explainer_of(kind, name)
    tries = [{**kind_, **data} for kind_ in ({"output_kind": "raw"}, {})
             for data in ({"background": BACKGROUND, "y": Y}, {"background": BACKGROUND},
                          {"y": Y}, {})]
    reason = None
    for extra in tries:
        kwargs = {"X": X, **extra}
        try:
            run(model, **kwargs)
        except XaiError as exc:
            reason = f"{type(exc).__name__}: {exc}"  # the last, plainest call's
            continue
        except Exception as exc:
            raise AssertionError(f"{kind} {name!r} raised {type(exc).__name__} (not an xai "
                                 f"error) on a valid-looking call: {exc}") from exc
        return Call(run, kwargs)
    return reason or "no call ran"


# ---- the checks -----------------------------------------------------------------------------

def bad_input_outcome(call: Call, case: BadInput) -> str | None:
    """None when the bad call raised one of the case's errors before any model call; else
    what happened instead."""
    if case.needs is not None and case.needs not in call.kwargs:
        return None
    kwargs = case.change(dict(call.kwargs))
    model = CountingLinear()
    try:
        call.run(model, **kwargs)
    except case.errors:
        if model.calls:
            return f"raised only after {model.calls} model calls"
        return None
    except Exception as exc:  # noqa: BLE001 - reported as the failure
        return f"raised {type(exc).__name__} (not {'/'.join(e.__name__ for e in case.errors)})" \
               f": {exc}"
    return "returned a result"


def check_bad_inputs(kind: str, name: str) -> dict[str, str]:
    """Failures of :data:`BAD_INPUTS` for one component: case id -> what happened."""
    call = valid_call(kind, name)
    if isinstance(call, str):
        return {}
    failures = {}
    for case in BAD_INPUTS:
        outcome = bad_input_outcome(call, case)
        if outcome is not None:
            failures[case.id] = outcome
    return failures


def _summary_name(expl) -> str:
    return registry.normalize(expl.summary.get("name", "") if isinstance(expl.summary, dict)
                              else "")


def check_axioms(kind: str, name: str) -> dict[str, str]:
    """Failures of the axioms the component's kind promises on ``f(x) = w·x``: finite values of
    shape ``(n, d)``; efficiency ``sum phi + base = f(x)`` for efficient summaries; a zero for
    the ignored feature under semivalues; and for exact Shapley with a fixed baseline, the
    closed form ``w_i (x_i - r_i)``."""
    call = valid_call(kind, name)
    if isinstance(call, str):
        return {}
    expl = call.run(CountingLinear(), **call.kwargs)
    failures = {}
    values = np.asarray(expl.values)
    # one row per explained row, or one for a dataset (global) explanation
    if values.shape[0] not in (1, len(X)) or values.shape[1] != D or \
            not np.isfinite(values).all():
        failures["finite-values"] = f"values of shape {values.shape}, finite: " \
                                    f"{bool(np.isfinite(values).all())}"
        return failures
    summary = _summary_name(expl)
    behaviour = expl.behaviour.get("name") if isinstance(expl.behaviour, dict) else None
    removal = expl.removal.get("name") if isinstance(expl.removal, dict) else None
    local = values.shape[0] == len(X) and behaviour == "prediction"
    summary_cls = registry.get("summary", summary) if summary in registry.names("summary") \
        else type(None)
    efficient = bool(getattr(summary_cls, "efficient", False))
    semivalue = issubclass(summary_cls, tuple(registry.get("summary", s) for s in SEMIVALUES))
    exact_shapley = issubclass(summary_cls, registry.get("summary", "exact-shapley"))
    raw = expl.behaviour.get("output") == "raw"  # the watched value is f(x) itself
    if local and raw and efficient:
        gap = np.abs(values.sum(1) + np.asarray(expl.base_values).reshape(-1) - X @ WEIGHTS)
        if gap.max() > 1e-6:
            failures["efficiency"] = f"sum of values + base differs from f(x) by {gap.max():.3g}"
    if local and semivalue and removal in INTERVENTIONAL and \
            np.abs(values[:, 2]).max() > 1e-9:
        failures["dummy"] = f"the ignored feature got {np.abs(values[:, 2]).max():.3g}"
    if local and raw and exact_shapley and removal == "baseline":
        expected = WEIGHTS * X  # zeros baseline
        if np.abs(values - expected).max() > 1e-9:
            failures["closed-form"] = f"values differ from w_i x_i by " \
                                      f"{np.abs(values - expected).max():.3g}"
    return failures


def check(kind: str, name: str) -> None:
    """Run :func:`check_bad_inputs` and :func:`check_axioms`; ``AssertionError`` listing every
    failed case."""
    failures = {**check_bad_inputs(kind, name), **check_axioms(kind, name)}
    if failures:
        lines = "\n".join(f"  {case}: {what}" for case, what in failures.items())
        raise AssertionError(f"{kind} {name!r} fails {len(failures)} conformance checks:\n"
                             f"{lines}")
