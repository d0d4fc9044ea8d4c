"""Bad input to every registered metric: each case of a table raises a named ``XaiError`` whose
message says the problem and the fix, before the model is called.

Every metric (``xai.registry.names("metric")``) is called on a good setting (a 2-output torch
network on six 8x8 images and its occlusion explanation, an explainer, a ground-truth mask)
that one bad argument spoils. A counting hook on the network (kept by the deep copies that
randomisation makes) asserts that no model row was evaluated before the error, or, for checks
that need the model's number of outputs, at most one call on the six explained rows.
"""

from __future__ import annotations

import copy
import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.linear_model import LogisticRegression

import xai
from xai.errors import (
    InputError,
    MissingGroundTruth,
    ModelTypeError,
    OptionError,
    ShapeError,
    TargetError,
    UnknownNameError,
    XaiError,
)
from xai.models import CALL_ROW_MULTIPLE

N = 6  # explained rows
RNG = np.random.default_rng(0)
X = RNG.random((N, 1, 8, 8)).astype(np.float32)
OTHER_X = RNG.random((N, 1, 8, 8)).astype(np.float32)
GT = np.zeros((8, 8), bool)
GT[2:5, 2:5] = True
SUPPRESSOR = np.zeros((8, 8), bool)
SUPPRESSOR[6:, 6:] = True
METRICS = xai.registry.names("metric")


class Counter:
    """Model calls and rows, shared by a network and its deep copies (a forward pre-hook is a
    function, which ``copy.deepcopy`` keeps by reference)."""

    def __init__(self) -> None:
        self.calls = 0
        self.rows = 0

    def count(self, rows: int) -> None:
        self.calls += 1
        self.rows += rows


def network(counter: Counter) -> torch.nn.Module:
    """A 2-output linear network on (1, 8, 8) images whose forward calls are counted."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 2))
    net.register_forward_pre_hook(lambda module, args: counter.count(len(args[0])))
    return net


def explainer(model, rows):
    """Input times the first output: an explainer that calls the model."""
    out = model(torch.as_tensor(rows)).detach().numpy()
    return np.asarray(rows) * out[:, :1, None, None]


EXPLANATION = xai.explain(network(Counter()), X, method="occlusion", features=1,
                          progress=False)


@dataclass
class Call:
    """One metric call: ``metric(model, x, a, **kwargs)``."""

    model: Any
    x: Any
    a: Any
    kwargs: dict = field(default_factory=dict)

    def option(self, **options) -> Call:
        return replace(self, kwargs={**self.kwargs, **options})


def good_call(name: str, counter: Counter) -> Call:
    """The call of metric ``name`` on the good setting."""
    cls = xai.registry.get("metric", name)
    kwargs: dict = {}
    if "explainer" in cls.needs:
        kwargs["explainer"] = explainer
    if "ground_truth" in cls.needs:
        kwargs["ground_truth"] = GT
    if name == "suppressor-ratio":
        kwargs.update(suppressor=SUPPRESSOR, signal=GT)
    if name == "attribution-deviation-bound":  # occlusion is not an attribution it bounds
        kwargs["attribution"] = "gradient"
    return Call(network(counter), X, EXPLANATION, kwargs)


def run(name: str, call: Call):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return xai.metrics.get(name)(call.model, call.x, call.a, **call.kwargs)


def _at(a: np.ndarray, pos: tuple[int, ...], value: float = np.nan) -> np.ndarray:
    a = np.array(a, copy=True)
    a[pos] = value
    return a


def _needs(what: str) -> Callable[[str], bool]:
    return lambda name: what in xai.registry.get("metric", name).needs


def _named(*names: str) -> Callable[[str], bool]:
    return lambda name: xai.registry.get("metric", name).name in names


def _everywhere(name: str) -> bool:
    return True


CURVES = ("deletion", "insertion", "morf", "lerf", "aopc", "morf-lerf-gap", "monotonicity")
GROUPED = ("faithfulness-estimate", "monotonicity-correlation")
SENSITIVITY = ("max-sensitivity", "avg-sensitivity", "local-lipschitz")
GROUND_TRUTH = ("topk-precision", "topk-recall", "auroc", "average-precision", "emd-accuracy",
                "mass-accuracy", "pointing-game", "suppressor-ratio")
BINNED = ("comprehensiveness", "sufficiency", "sensitivity-n")
PREDICTION_GAP = ("pgi", "pgu")
STABILITY = ("relative-input-stability", "relative-output-stability",
             "relative-representation-stability")
TORCH_ONLY = ("randomisation", "relative-representation-stability",
              "attribution-deviation-bound")  # they read the torch module's layers


@dataclass
class Case:
    """One bad argument: ``spoil`` turns the good call into the bad one; ``says`` are regexes
    the message must match (the problem, the offending value, the fix); ``applies`` picks the
    metrics it concerns; ``before_model`` is True (no model call before the error) or
    ``"full"`` (the check needs the number of outputs: at most one call of the explained
    rows)."""

    id: str
    error: type[XaiError]
    spoil: Callable[[Call], Call]
    says: tuple[str, ...]
    applies: Callable[[str], bool] = _everywhere
    before_model: bool | str = True


def _option(opt: str, value: Any, error: type[XaiError], says: tuple[str, ...],
            applies: Callable[[str], bool], tag: str = "") -> Case:
    """A case that passes ``opt=value``."""
    return Case(f"{opt}-{tag or value}", error, lambda c: c.option(**{opt: value}), says,
                applies)


FIX = r"\b(pass|give|use|leave)\b"  # a message states the fix with one of these verbs

CASES = [
    # -- the explained rows x ----------------------------------------------------------------
    Case("x-nan", InputError, lambda c: replace(c, x=_at(X, (2, 0, 3, 4))),
         (r"1 NaN or infinite", r"\(2, 0, 3, 4\)", r"impute or drop")),
    Case("x-inf", InputError, lambda c: replace(c, x=_at(X, (1, 0, 0, 0), np.inf)),
         (r"1 NaN or infinite", r"\(1, 0, 0, 0\)", r"impute or drop")),
    Case("x-empty", InputError, lambda c: replace(c, x=X[:0], a=np.zeros((0, 1, 8, 8))),
         (r"no rows", r"at least one row")),
    Case("x-complex", InputError, lambda c: replace(c, x=X.astype(np.complex64)),
         (r"complex", r"\.real")),
    Case("x-text", InputError, lambda c: replace(c, x=X.astype(str)),
         (r"must be numeric", r"[Ee]ncode")),
    Case("x-ragged", InputError, lambda c: replace(c, x=[[0.0, 1.0], [2.0]]),
         (r"cannot be read as an array", r"equal shape")),
    Case("x-none", InputError, lambda c: replace(c, x=None), (r"is None", r"pass the rows")),
    Case("x-scalar", InputError, lambda c: replace(c, x=3.0), (r"scalar", r"batch")),
    Case("x-one-row-without-batch-axis", InputError, lambda c: replace(c, x=X[0, 0, 0]),
         (r"shape \(8,\)", r"give a batch")),
    # -- attributions a -----------------------------------------------------------------------
    Case("a-nan", InputError, lambda c: replace(c, a=_at(np.ones(X.shape), (4, 0, 1, 1))),
         (r"attributions contain 1 NaN or infinite", r"\(4, 0, 1, 1\)", r"rows \[4\]",
          r"do not impute", r"drop those rows")),
    Case("a-inf-in-explanation", InputError,
         lambda c: replace(c, a=replace(EXPLANATION, values=_at(EXPLANATION.values, (3, 5),
                                                                -np.inf))),
         (r"attributions contain 1 NaN or infinite", r"\(3, 5\)", r"drop those rows")),
    Case("a-complex", InputError, lambda c: replace(c, a=np.ones(X.shape, np.complex128)),
         (r"attributions are complex", r"\.real")),
    Case("a-text", InputError, lambda c: replace(c, a=np.full(X.shape, "a")),
         (r"attributions must be numbers", r"'a'", FIX)),
    Case("a-none", InputError, lambda c: replace(c, a=None),
         (r"attributions are None", r"pass an Explanation")),
    Case("a-scalar", InputError, lambda c: replace(c, a=1.0), (r"scalar", r"batch")),
    Case("a-empty", InputError, lambda c: replace(c, a=np.zeros((0, 1, 8, 8))),
         (r"no rows", r"at least one row")),
    Case("a-rows-without-elements", InputError, lambda c: replace(c, a=np.zeros((N, 0))),
         (r"no elements", r"at least one feature")),
    Case("a-other-shape", ShapeError, lambda c: replace(c, a=np.zeros((N, 1, 8, 9))),
         (r"attributions have shape \(6, 1, 8, 9\)", r"expected")),
    Case("a-other-rows", ShapeError, lambda c: replace(c, a=np.zeros((5, 1, 8, 8))),
         (r"x has 6 rows, attributions 5", r"give one row of attributions per row of x")),
    Case("a-other-feature-count", ShapeError, lambda c: replace(c, a=np.zeros((N, 17))),
         (r"\(6, 17\)", r"64 pixels", r"pass features=")),
    Case("a-not-over-the-feature-map", ShapeError,
         lambda c: replace(c, a=np.zeros((N, 64))).option(
             features=xai.FeatureMap.patches((8, 8), 2, channel_axis=0)),
         (r"attributions have shape \(6, 64\)", r"16 features", r"expected")),
    # -- x against the rows the explanation explained ----------------------------------------
    Case("explanation-of-other-rows", InputError, lambda c: replace(c, x=OTHER_X),
         (r"x differs from the rows the explanation explained", r"row 0",
          r"pass the rows that were explained", r"e\[rows\]")),
    Case("explanation-rows-reordered", InputError, lambda c: replace(c, x=X[::-1].copy()),
         (r"x differs from the rows the explanation explained", r"in 6 of 6 rows",
          r"pass the rows that were explained")),
    Case("explanation-of-more-rows", ShapeError, lambda c: replace(c, x=X[:3]),
         (r"x has 3 rows", r"explanation explained 6", r"e\[rows\]")),
    Case("explanation-other-layout", ShapeError,
         lambda c: replace(c, x=X.transpose(0, 2, 3, 1).copy()),
         (r"\(6, 8, 8, 1\)", r"\(6, 1, 8, 8\)", r"pass the rows that were explained")),
    # -- targets (metrics of a model) ---------------------------------------------------------
    Case("target-out-of-range", TargetError, lambda c: c.option(target=9),
         (r"target 9", r"2 outputs", r"0\.\.1"), _needs("model"), "full"),
    Case("target-of-one-row-out-of-range", TargetError,
         lambda c: c.option(target=np.array([0, 1, 0, 1, 0, 7])),
         (r"target 7", r"2 outputs", r"0\.\.1"), _needs("model"), "full"),
    Case("target-negative", TargetError, lambda c: c.option(target=-1),
         (r"target -1", r"output index", FIX), _needs("model")),
    Case("target-not-understood", TargetError, lambda c: c.option(target="largest"),
         (r"'largest'", r"'predicted'", FIX), _needs("model")),
    Case("target-fraction", TargetError, lambda c: c.option(target=1.5),
         (r"1\.5", r"output index", FIX), _needs("model")),
    Case("target-count", TargetError, lambda c: c.option(target=[0, 1, 0]),
         (r"3 targets", r"6 rows", r"one per row"), _needs("model")),
    # -- options every metric takes -----------------------------------------------------------
    _option("seed", -1, OptionError, (r"seed=-1", r"non-negative int"), _everywhere),
    _option("seed", "abc", OptionError, (r"seed='abc'", r"non-negative int"), _everywhere),
    _option("batch_size", 0, OptionError, (r"batch_size=0", r"at least 1", FIX), _everywhere),
    _option("batch_size", 2.5, OptionError, (r"batch_size=2\.5", r"whole number", FIX),
            _everywhere),
    _option("output", "probs", UnknownNameError, (r"'probs'", r"Did you mean 'probability'"),
            _everywhere),
    _option("reduce", "median", UnknownNameError, (r"'median'", r"sum"), _everywhere),
    _option("ties", "first", UnknownNameError, (r"'first'", r"random", r"index"), _everywhere),
    _option("abs", "yes", OptionError, (r"abs='yes'", r"True or False"), _everywhere),
    _option("features", 2, OptionError, (r"features=2", r"FeatureMap", FIX), _everywhere),
    # -- options of one metric family ---------------------------------------------------------
    _option("step", 0, OptionError, (r"step=0", r"at least 1|fraction", FIX),
            _named(*CURVES, *GROUPED)),
    _option("step", -0.5, OptionError, (r"step=-0\.5", r"fraction", FIX),
            _named(*CURVES, *GROUPED)),
    _option("step", 1.5, OptionError, (r"step=1\.5", r"fraction", FIX),
            _named(*CURVES, *GROUPED)),
    _option("step", "2", OptionError, (r"step='2'", FIX), _named(*CURVES, *GROUPED)),
    _option("step", 64, OptionError, (r"step=64", r"at least 2 groups", r"64 features", FIX),
            _named(*GROUPED), "one-group"),
    _option("normalise_curve", "yes", OptionError, (r"normalise_curve='yes'", r"True or False"),
            _named(*CURVES[:-1])),
    _option("order", "up", UnknownNameError, (r"'up'", r"Known order"),
            _named("aopc", "road", "randomisation")),
    _option("atol", -1.0, OptionError, (r"atol=-1", r">= 0", FIX), _named("monotonicity")),
    _option("atol", float("nan"), OptionError, (r"atol=nan", r">= 0", FIX),
            _named("monotonicity")),
    _option("n_subsets", 1, OptionError, (r"n_subsets=1", r"at least 2", FIX),
            _named("faithfulness-correlation", "sensitivity-n")),
    _option("n_subsets", 2.5, OptionError, (r"n_subsets=2\.5", r"whole number", FIX),
            _named("faithfulness-correlation", "sensitivity-n")),
    _option("subset_size", 0, OptionError, (r"subset_size=0", r"1\.\.63", FIX),
            _named("faithfulness-correlation")),
    _option("subset_size", 64, OptionError, (r"subset_size=64", r"1\.\.63", FIX),
            _named("faithfulness-correlation")),
    _option("subsets", [[0, 64]], OptionError, (r"subsets", r"\[0, 64\)", r"64", FIX),
            _named("faithfulness-correlation"), "out-of-range"),
    _option("row_index", [0, 1], OptionError, (r"row_index", r"2 indices", r"6 rows", FIX),
            _named("faithfulness-correlation"), "short"),
    _option("perturbation", "gauss", UnknownNameError,
            (r"'gauss'", r"Did you mean 'gaussian'"), _named("infidelity")),
    _option("n_perturb", 0, OptionError, (r"n_perturb=0", r"at least 1", FIX),
            _named("infidelity")),
    _option("sigma", 0.0, OptionError, (r"sigma=0", r"> 0", FIX),
            _named("infidelity", *PREDICTION_GAP, *STABILITY)),
    _option("patch", 0, OptionError, (r"patch=0", r"at least 1", FIX), _named("infidelity")),
    _option("normalise", "yes", OptionError, (r"normalise='yes'", r"'optimal' or None"),
            _named("infidelity")),
    _option("kind", "gradient", OptionError, (r"kind='gradient'", r"'sensitivity'"),
            _named("infidelity")),
    _option("n_samples", 0, OptionError, (r"n_samples=0", r"at least 1", FIX),
            _named(*SENSITIVITY, *PREDICTION_GAP, *STABILITY)),
    _option("radius", -1.0, OptionError, (r"radius=-1", r"> 0", FIX),
            _named(*SENSITIVITY, "attribution-deviation-bound")),
    _option("radius_frac", 0.0, OptionError, (r"radius_frac=0", r"> 0", FIX),
            _named(*SENSITIVITY, "attribution-deviation-bound")),
    _option("radius_frac", float("inf"), OptionError, (r"radius_frac=inf", r"finite", FIX),
            _named(*SENSITIVITY, "attribution-deviation-bound")),
    _option("explainer_batch_size", 0, OptionError,
            (r"explainer_batch_size=0", r"at least 1", FIX), _named(*SENSITIVITY)),
    _option("same_prediction", "yes", OptionError, (r"same_prediction='yes'", r"True or False"),
            _named(*SENSITIVITY)),
    _option("relative", "yes", OptionError, (r"relative='yes'", r"True or False"),
            _named("max-sensitivity", "avg-sensitivity", "complexity")),
    _option("percentages", [0, 50], OptionError, (r"percentages", r"\(0, 100\)", r"\b0\b", FIX),
            _named("road"), "with-0"),
    _option("percentages", [], OptionError, (r"percentages", r"empty|no percentage", FIX),
            _named("road"), "empty"),
    _option("percentages", [50, 150], OptionError, (r"percentages", r"\(0, 100\)", r"150", FIX),
            _named("road"), "with-150"),
    _option("noise", -1.0, OptionError, (r"noise=-1", r">= 0"), _named("road")),
    _option("noise", float("nan"), OptionError, (r"noise=nan", r"finite"), _named("road")),
    _option("layers", ["nope"], OptionError, (r"'nope'", r"\['1'\]", FIX),
            _named("randomisation"), "unknown"),
    _option("layers", "1", OptionError, (r"layers='1'", r"list of module names", FIX),
            _named("randomisation"), "not-a-list"),
    _option("sign", "negative", UnknownNameError, (r"'negative'", r"abs", r"positive"),
            _named(*GROUND_TRUTH)),
    _option("threshold", float("nan"), OptionError, (r"threshold=nan", r"finite"),
            _named(*GROUND_TRUTH)),
    _option("rows", [0, 1], ShapeError, (r"x has 6 rows", r"rows= 2"),
            _named(*GROUND_TRUTH[:-1]), "short"),
    _option("k", 0, OptionError, (r"k=0", r"1\.\.64", FIX), _named("topk-precision", "topk-recall")),
    _option("k", 65, OptionError, (r"k=65", r"1\.\.64", FIX),
            _named("topk-precision", "topk-recall", *PREDICTION_GAP)),
    _option("k", 1.5, OptionError, (r"k=1\.5", r"fraction of the features in \(0, 1\)", FIX),
            _named(*PREDICTION_GAP)),
    _option("k", "a", OptionError, (r"k='a' is not a number", FIX), _named(*PREDICTION_GAP),
            "text"),
    _option("auc", "yes", OptionError, (r"auc='yes'", r"True or False"),
            _named(*PREDICTION_GAP)),
    _option("p_norm", 0.5, OptionError, (r"p_norm=0\.5", r"norm order", FIX),
            _named(*STABILITY)),
    _option("eps_min", 0.0, OptionError, (r"eps_min=0", r"> 0", FIX), _named(*STABILITY)),
    _option("layer", "nope", OptionError, (r"layer='nope'", r"\['0', '1'\]", FIX),
            _named("relative-representation-stability")),
    _option("layer", 3, OptionError, (r"layer=3 is not a module name", FIX),
            _named("relative-representation-stability")),
    _option("norm", "l3", UnknownNameError, (r"'l3'", r"l2", r"linf"),
            _named("attribution-deviation-bound")),
    _option("distance", "cos", UnknownNameError, (r"'cos'", r"cosine"),
            _named("attribution-deviation-bound")),
    _option("attribution", "ig", OptionError, (r"attribution='ig'", r"'gradient'", FIX),
            _named("attribution-deviation-bound")),
    Case("deviation-bound-of-another-attribution", InputError,
         lambda c: c.option(attribution=None),
         (r"method 'occlusion'", r"pass attribution='gradient'"),
         _named("attribution-deviation-bound")),
    Case("deviation-bound-of-a-probability", OptionError, lambda c: c.option(output="probability"),
         (r"output='probability'", r"raw output", r"leave output unset"),
         _named("attribution-deviation-bound")),
    Case("deviation-bound-of-an-unsupported-layer", ModelTypeError,
         lambda c: replace(c, model=c.model.append(torch.nn.Tanh())),
         (r"layer '2' \(Tanh\)", r"ReLU", FIX), _named("attribution-deviation-bound")),
    _option("normaliser", "max", UnknownNameError, (r"'max'", r"max-distance"),
            _named("emd-accuracy")),
    _option("max_variables", 0, OptionError, (r"max_variables=0", r"at least 1", FIX),
            _named("emd-accuracy")),
    _option("fni", "yes", OptionError, (r"fni='yes'", r"True or False"), _named("emd-accuracy")),
    _option("fractions", [0, 0.5], OptionError, (r"fractions", r"\(0, 1\]", r"\b0\.0\b", FIX),
            _named(*BINNED), "with-0"),
    _option("fractions", [], OptionError, (r"fractions", r"no fraction", FIX), _named(*BINNED),
            "empty"),
    _option("fractions", ["a"], OptionError, (r"fractions", r"not a list of numbers", FIX),
            _named(*BINNED), "text"),
    _option("sizes", [0, 2], OptionError, (r"sizes=\[0, 2\]", r">= 1", FIX),
            _named("sensitivity-n"), "with-0"),
    _option("sizes", [2, 64], OptionError, (r"sizes=\[2, 64\]", r"1\.\.63", FIX),
            _named("sensitivity-n"), "above-d"),
    _option("segmentation", "slik", UnknownNameError, (r"'slik'", r"Did you mean 'slic'"),
            _named("irof")),
    _option("segment_options", 50, OptionError, (r"segment_options=50", r"dict", FIX),
            _named("irof")),
    _option("segments", 3, OptionError, (r"segments=3", r"FeatureMap", FIX), _named("irof")),
    Case("segments-of-other-images", InputError,
         lambda c: c.option(segments=xai.FeatureMap.superpixels(RNG.random((N, 1, 8, 9)))),
         (r"segments= does not fit", FIX), _named("irof")),
    _option("tolerance", -1.0, OptionError, (r"tolerance=-1", r">= 0"), _named("pointing-game")),
    Case("removal-not-a-removal", OptionError, lambda c: c.option(removal=3),
         (r"removal=3", r"registered name", FIX)),
    Case("removal-unknown-name", UnknownNameError, lambda c: c.option(removal="blurr"),
         (r"'blurr'", r"Did you mean 'blur'")),
    # -- what some metrics need besides x and a ------------------------------------------------
    Case("explainer-missing", InputError, lambda c: c.option(explainer=None),
         (r"pass explainer=",), _needs("explainer")),
    Case("explainer-not-callable", InputError, lambda c: c.option(explainer=3),
         (r"explainer must be", r"callable"), _needs("explainer")),
    Case("ground-truth-missing", MissingGroundTruth, lambda c: c.option(ground_truth=None),
         (r"needs a ground truth", r"pass ground_truth="), _named(*GROUND_TRUTH[:-1])),
    Case("ground-truth-other-shape", ShapeError,
         lambda c: c.option(ground_truth=np.ones((8, 9), bool)),
         (r"mask has shape \(8, 9\)", r"\(8, 8\)"), _named(*GROUND_TRUTH[:-1])),
    Case("suppressor-other-shape", ShapeError,
         lambda c: c.option(suppressor=np.ones((8, 9), bool)),
         (r"suppressor mask has shape \(8, 9\)", r"\(8, 8\)"), _named("suppressor-ratio")),
    Case("randomisation-of-a-function", ModelTypeError,
         lambda c: replace(c, model=CountedFunction(c.model)),
         (r"randomisation needs a torch\.nn\.Module", r"CountedFunction",
          r"parameters", FIX), _named("randomisation")),
    Case("torch-metric-of-a-function", ModelTypeError,
         lambda c: replace(c, model=CountedFunction(c.model)),
         (r"needs a torch\.nn\.(Module|Sequential)", r"CountedFunction", FIX),
         _named("relative-representation-stability", "attribution-deviation-bound")),
    Case("randomisation-of-a-parameter-free-module", InputError,
         lambda c: replace(c, model=torch.nn.Sequential(c.model[0], Counted(c.model))),
         (r"no parameters", FIX), _named("randomisation")),
]


class CountedFunction:
    """A plain callable (not a torch module) around the network: its calls are counted."""

    def __init__(self, net: torch.nn.Module) -> None:
        self.net = net

    def __call__(self, rows):
        with torch.no_grad():
            return self.net(torch.as_tensor(rows, dtype=torch.float32)).numpy()


class Counted(torch.nn.Module):
    """The network's forward, as a module that owns no parameters."""

    def __init__(self, net: torch.nn.Module) -> None:
        super().__init__()
        self.__dict__["net"] = net  # not a submodule: its parameters are not ours

    def forward(self, x):
        return self.net(x.reshape(len(x), 1, 8, 8))


CASE_IDS = [c.id for c in CASES]
assert len(set(CASE_IDS)) == len(CASE_IDS)
TABLE = [pytest.param(name, case, id=f"{name}:{case.id}")
         for case in CASES for name in METRICS if case.applies(name)]


def _says(err: BaseException, *patterns: str) -> None:
    text = str(err)
    for pat in patterns:
        assert re.search(pat, text), f"message lacks {pat!r}: {text}"


@pytest.mark.parametrize("name", METRICS)
def test_the_good_call_runs(name: str) -> None:
    """The setting the cases spoil is valid for every metric."""
    res = run(name, good_call(name, Counter()))
    assert res.per_sample.shape == (N,)


def _refused(name: str, case: Case, good: Callable[[str, Counter], Call]) -> None:
    """The spoiled call raises ``case.error`` saying ``case.says``, before the model."""
    counter = Counter()
    call = case.spoil(good(name, counter))
    with pytest.raises(case.error) as info:
        run(name, call)
    assert isinstance(info.value, XaiError)
    _says(info.value, *case.says)
    if case.before_model == "full":  # the number of outputs is known after one call
        # (a torch module's call is padded to a whole multiple of CALL_ROW_MULTIPLE rows)
        padded = -(-N // CALL_ROW_MULTIPLE) * CALL_ROW_MULTIPLE
        assert counter.calls <= 1 and counter.rows <= padded, (counter.calls, counter.rows)
    else:
        assert counter.calls == 0, f"the model was called {counter.calls} times"


@pytest.mark.parametrize("name,case", TABLE)
def test_bad_input_is_named_and_refused_before_the_model(name: str, case: Case) -> None:
    _refused(name, case, good_call)


def test_every_metric_meets_the_table() -> None:
    """Every registered metric is covered by the cases that concern all metrics."""
    covered = {name for name, case in ((p.values[0], p.values[1]) for p in TABLE)
               if case.applies is _everywhere}
    assert covered == set(METRICS)


# ---- tables: a scikit-learn classifier on four columns ------------------------------------

COLUMNS = ["age", "bmi", "bp", "s1"]
X4 = RNG.normal(size=(N, 4))
CLASSIFIER = LogisticRegression().fit(X4, (X4[:, 0] > 0).astype(int))
TABLE_EXPLANATION = xai.explain(CLASSIFIER, X4, method="occlusion", baseline=0.0,
                                progress=False)
TABLE_METRICS = [name for name in METRICS
                 if xai.registry.get("metric", name).applies_to != "image"
                 and xai.registry.get("metric", name).name not in TORCH_ONLY]


def counted_classifier(counter: Counter) -> LogisticRegression:
    """A copy of the fitted classifier whose ``predict_proba`` is counted."""
    est = copy.deepcopy(CLASSIFIER)
    predict = est.predict_proba

    def counted(rows):
        counter.count(len(rows))
        return predict(rows)
    est.predict_proba = counted
    return est


def good_table_call(name: str, counter: Counter) -> Call:
    """The call of metric ``name`` on the classifier and its occlusion explanation."""
    cls = xai.registry.get("metric", name)
    kwargs: dict = {}
    if "explainer" in cls.needs:
        kwargs["explainer"] = lambda m, Z: np.asarray(Z) * m.predict_proba(np.asarray(Z))[:, 1:]
    if "ground_truth" in cls.needs:
        kwargs["ground_truth"] = np.array([True, True, False, False])
    if name == "suppressor-ratio":
        kwargs.update(suppressor=np.array([False, False, True, False]),
                      signal=np.array([True, True, False, False]))
    return Call(counted_classifier(counter), X4, TABLE_EXPLANATION, kwargs)


def _frame(rows: np.ndarray, text_column: str | None = None) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=COLUMNS)
    if text_column is not None:
        frame[text_column] = frame[text_column].map(lambda v: "high" if v > 0 else "low")
    return frame


TABLE_CASES = [
    Case("x-wider-than-the-model", InputError,
         lambda c: replace(c, x=np.c_[X4, X4[:, :1]]), (r"\b5 columns", r"expects 4\b")),
    Case("x-frame-with-a-text-column", InputError, lambda c: replace(c, x=_frame(X4, "bp")),
         (r"categorical columns \['bp'\]", FIX)),
    Case("x-frame-with-nan", InputError, lambda c: replace(c, x=_frame(_at(X4, (2, 1)))),
         (r"1 NaN or infinite", r"\(2, 1\)", r"impute or drop")),
    Case("explanation-of-other-rows", InputError,
         lambda c: replace(c, x=RNG.normal(size=X4.shape)),
         (r"x differs from the rows the explanation explained", r"e\[rows\]")),
    Case("target-out-of-range", TargetError, lambda c: c.option(target=5),
         (r"target 5", r"2 outputs", r"0\.\.1"), _needs("model"), "full"),
    Case("tolerance-on-a-table", InputError, lambda c: c.option(tolerance=2.0),
         (r"tolerance=2 pixels needs images", r"leave tolerance=None"), _named("pointing-game")),
]


@pytest.mark.parametrize("name", TABLE_METRICS)
def test_the_good_table_call_runs(name: str) -> None:
    res = run(name, good_table_call(name, Counter()))
    assert res.per_sample.shape == (N,)


@pytest.mark.parametrize("name,case", [
    pytest.param(name, case, id=f"{name}:{case.id}")
    for case in TABLE_CASES for name in TABLE_METRICS if case.applies(name)])
def test_bad_table_input_is_named_and_refused_before_the_model(name: str, case: Case) -> None:
    _refused(name, case, good_table_call)


@pytest.mark.parametrize("name,options,error", [
    ("deletion", {"step": 0}, OptionError),
    ("road", {"noise": -1.0}, OptionError),
    ("infidelity", {"perturbation": "gauss"}, UnknownNameError),
    ("max-sensitivity", {"n_samples": 0}, OptionError),
    ("randomisation", {"layers": "fc"}, OptionError),
])
def test_options_given_to_the_constructor_are_checked_there(name, options, error) -> None:
    with pytest.raises(error, match=next(iter(options))):
        xai.metrics.get(name, **options)
