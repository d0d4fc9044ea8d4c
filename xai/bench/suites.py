"""Benchmark suites: registered components of kind ``"suite"`` that list
data sets × models × default methods × metrics.

A :class:`Suite` holds :class:`DataSpec` entries. Each names a data set (with its parameters), a
function ``make(seed) -> GroundTruthData``, its input kind (``"tabular"`` / ``"image"``, used to
skip inapplicable metrics without building anything) and its models, each a function
``build(data, seed, cache_dir) -> (model, info)``. Shipped suites:

* ``faithfulness`` — scikit-learn digits (8×8) with a small torch CNN, and scikit-learn
  breast-cancer with a torch MLP; both trained here in seconds and cached in the output folder.
  Default methods shap, lime, occlusion, captum IG, captum saliency; the faithfulness metrics.
* ``suppressor`` — ``gauss2d-suppressor`` with its exact Bayes model, ``linear8x8`` with a
  linear model, ``xaitris8`` LIN/MULT/RIGID/XOR × WHITE/CORR × LLR/MLP/CNN (models from
  :func:`xai.datasets.training.train_model`); default methods as above plus pattern,
  patternnet and pattern-attribution; the ground-truth metrics.
* ``xaitris64`` (opt-in, larger) — ``xaitris64`` × WHITE/CORR/NATURAL × LLR/MLP/CNN.

Data sets and metrics are looked up by registry name when the suite runs; a suite never
imports their modules. A suite whose cells one computation scores together defines ``groups``
instead of a grid (:class:`CellGroup`; the ``concepts`` suite of
:mod:`xai.concepts.benchmark`); the runner runs both the same way.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .. import registry
from ..registry import define_kind, register

ModelBuilder = Callable[[Any, int, Path], tuple[Any, dict]]


@dataclass
class DataSpec:
    """One data set of a suite.

    ``name``: label in the results; ``base``: the registered data set (or a plain name for
    built-in loaders); ``params``: generation parameters (recorded and part of the cell key);
    ``make(seed) -> GroundTruthData``; ``kind``: ``"tabular"`` or ``"image"``;
    ``has_ground_truth``; ``models``: name -> builder ``(data, seed, cache_dir) -> (model,
    info)``; ``model_params``: name -> recorded settings of that model; ``target``:
    ``"label"`` (explain the true label), ``"predicted"`` or ``None`` (the method's default);
    ``correct_only``: explain only test rows the model classifies correctly; ``background``:
    number of training rows given to removal-based methods as background.
    """

    name: str
    make: Callable[[int], Any]
    kind: str
    models: dict[str, ModelBuilder]
    base: str | None = None
    params: dict = field(default_factory=dict)
    model_params: dict[str, dict] = field(default_factory=dict)
    has_ground_truth: bool = True
    target: str | None = "label"
    correct_only: bool = False
    background: int = 64


@dataclass
class GroupResult:
    """What one computation of a :class:`CellGroup` gave: ``status`` (``"ok"`` or
    ``"skipped"``), ``values`` by metric (missing ones are None), ``fields`` added to every
    cell's row (e.g. ``reason``), ``extras`` by metric (the row's ``extras``) and ``seconds``
    (the explanation's time)."""

    status: str = "ok"
    values: dict[str, Any] = field(default_factory=dict)
    fields: dict[str, Any] = field(default_factory=dict)
    extras: dict[str, dict] = field(default_factory=dict)
    seconds: float | None = None


@dataclass
class CellGroup:
    """Cells of a suite that one computation scores together, e.g. every score of one
    (seed, method, output) of the concepts suite.

    ``keys``: metric -> cell key (:func:`~xai.bench.store.spec_key` of the cell's settings);
    ``row``: the fields every cell's row shares (data set, model, method, options, seed, ...);
    ``compute() -> GroupResult``; ``directions``: metric -> ``"higher"`` / ``"lower"`` /
    ``"diagnostic"`` (default ``"higher"``); ``label``: shown by ``verbose`` runs.
    """

    keys: dict[str, str]
    row: dict[str, Any]
    compute: Callable[[], GroupResult]
    directions: dict[str, str] = field(default_factory=dict)
    label: str = ""


@dataclass
class Suite:
    """A benchmark grid: data sets × models × methods × metrics (see the module docstring).

    ``method_options`` / ``metric_options`` map a method / metric name to options passed to
    ``xai.explain`` / the metric (recorded, part of the cell key). ``n_explain`` rows of the
    test split are explained per (data set, seed, model, method); ``budget`` is passed to the
    methods that take one.
    """

    name: str
    description: str
    datasets: list[DataSpec] | Callable[[], list[DataSpec]]
    methods: list[str]
    metrics: list[str]
    method_options: dict[str, dict] = field(default_factory=dict)
    metric_options: dict[str, dict] = field(default_factory=dict)
    n_explain: int = 32
    budget: int | None = None
    opt_in: bool = False
    #: cells scored together instead of the grid (the ``concepts`` suite):
    #: ``groups(suite, methods=None, seeds=[...], out=Path) -> list[CellGroup]``, run by
    #: :func:`xai.bench.run` like the grid's cells
    groups: Callable[..., list[CellGroup]] | None = None
    #: suite-level parameters of ``groups``
    params: dict = field(default_factory=dict)

    def data_specs(self) -> list[DataSpec]:
        specs = self.datasets() if callable(self.datasets) else self.datasets
        return list(specs)


define_kind("suite", accepts=lambda obj: isinstance(obj, Suite))


# ---------------------------------------------------------------- registered data sets

def registered_dataset(name: str, **params: Any) -> Callable[[int], Any]:
    """``make(seed)`` of the registered data set ``name`` with ``params``."""

    def make(seed: int):
        obj = registry.get("dataset", name)
        obj = obj() if isinstance(obj, type) else obj
        return obj.make(seed, **params)

    return make


def _has_ground_truth(name: str) -> bool:
    try:
        obj = registry.get("dataset", name)
    except Exception:  # noqa: BLE001 (not registered yet: decided when the suite runs)
        return True
    return bool(getattr(obj, "has_ground_truth", True))


def trained(arch: str) -> ModelBuilder:
    """Builder training ``arch`` with ``xai.datasets.training.train_model`` (cached)."""

    def build(data, seed: int, cache_dir: Path):
        from ..datasets.training import train_model

        model, info = train_model(data, arch, seed, str(cache_dir))
        return model, dict(info or {})

    return build


def bayes_model(data, seed: int, cache_dir: Path):
    """The exact Bayes model a data set ships in ``extras["bayes_model"]``."""
    model = data.extras.get("bayes_model") if isinstance(data.extras, dict) else None
    if model is None:
        from ..errors import XaiError

        raise XaiError(f"data set {data.name!r} has no extras['bayes_model']")
    return model, {"arch": "bayes", "trained": False}


# ---------------------------------------------------------------- built-in small models

def _model_key(spec: dict) -> str:
    import torch

    spec = {**spec, "torch": ".".join(torch.__version__.split(".")[:2])}
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:20]


def _fit_torch(net, data, seed: int, cache_dir: Path, spec: dict, epochs: int, lr: float):
    """Train ``net`` on ``data.train`` with Adam and cross-entropy on logits (full batches of
    up to 512 rows), early stopping on the validation loss; cached by a key of everything
    that determines the model."""
    import torch

    key = _model_key({**spec, "data": data.name, "params": data.params, "data_seed": data.seed,
                      "seed": seed, "epochs": epochs, "lr": lr})
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    weights, meta = cache_dir / f"{key}.pt", cache_dir / f"{key}.json"
    if weights.exists() and meta.exists():
        net.load_state_dict(torch.load(weights, weights_only=True))
        net.eval()
        return net, {**json.loads(meta.read_text()), "cached": True}
    gen = torch.Generator().manual_seed(int(seed))
    with torch.random.fork_rng():
        torch.manual_seed(int(seed))
        for mod in net.modules():
            if hasattr(mod, "reset_parameters"):
                mod.reset_parameters()
    X = torch.as_tensor(np.asarray(data.X), dtype=torch.float32)
    y = torch.as_tensor(np.asarray(data.y), dtype=torch.long)
    tr, va = torch.as_tensor(data.train), torch.as_tensor(data.val)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    loss_fn = torch.nn.CrossEntropyLoss()
    best, best_state, patience = float("inf"), None, 0
    for _ in range(epochs):
        net.train()
        perm = tr[torch.randperm(len(tr), generator=gen)]
        for start in range(0, len(perm), 512):
            idx = perm[start:start + 512]
            opt.zero_grad()
            loss_fn(net(X[idx]), y[idx]).backward()
            opt.step()
        net.eval()
        with torch.no_grad():
            val = float(loss_fn(net(X[va]), y[va]))
        if val < best - 1e-5:
            best, patience = val, 0
            best_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
        else:
            patience += 1
            if patience >= 20:
                break
    if best_state is not None:
        net.load_state_dict(best_state)
    net.eval()
    with torch.no_grad():
        te = torch.as_tensor(data.test)
        acc = float((net(X[te]).argmax(1) == y[te]).float().mean())
    info = {**spec, "test_accuracy": acc, "val_loss": best, "key": key}
    tmp = weights.with_suffix(".pt.tmp")
    torch.save(net.state_dict(), tmp)
    os.replace(tmp, weights)
    meta.write_text(json.dumps(info))
    return net, {**info, "cached": False}


def digits_cnn(data, seed: int, cache_dir: Path):
    """A small CNN on 1×8×8 digits (two conv blocks, 10 logits); trains in seconds."""
    import torch
    from torch import nn

    net = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(),
                        nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                        nn.Flatten(), nn.Linear(16 * 4 * 4, 32), nn.ReLU(), nn.Linear(32, 10))
    torch.set_num_threads(max(1, min(4, os.cpu_count() or 1)))
    return _fit_torch(net, data, seed, cache_dir, {"arch": "digits-cnn"}, epochs=60, lr=3e-3)


def tabular_mlp(data, seed: int, cache_dir: Path):
    """An MLP d→32→16→2 on standardised features."""
    from torch import nn

    d = data.X.shape[1]
    net = nn.Sequential(nn.Linear(d, 32), nn.ReLU(), nn.Linear(32, 16), nn.ReLU(),
                        nn.Linear(16, 2))
    return _fit_torch(net, data, seed, cache_dir, {"arch": "mlp-32-16"}, epochs=200, lr=1e-3)


def _split(y: np.ndarray, seed: int, fractions=(0.6, 0.2, 0.2)):
    from ..datasets.base import stratified_split

    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 20240611]))
    return stratified_split(np.asarray(y), fractions, rng)


def sklearn_digits(seed: int):
    """scikit-learn digits as ``(N, 1, 8, 8)`` float32 in [0, 1]; stratified 60/20/20 split
    drawn from ``seed``; no ground truth."""
    from sklearn.datasets import load_digits

    from ..datasets.base import GroundTruthData

    bunch = load_digits()
    X = (bunch.data / 16.0).astype(np.float32).reshape(-1, 1, 8, 8)
    y = bunch.target.astype(np.int64)
    train, val, test = _split(y, seed)
    return GroundTruthData(name="digits", X=X, y=y, train=train, val=val, test=test,
                           ground_truth=None, kind=None, params={}, seed=seed)


def sklearn_breast_cancer(seed: int):
    """scikit-learn breast-cancer (30 features), standardised with the training rows' mean
    and SD; stratified 60/20/20 split drawn from ``seed``; no ground truth."""
    from sklearn.datasets import load_breast_cancer

    from ..datasets.base import GroundTruthData

    bunch = load_breast_cancer()
    y = bunch.target.astype(np.int64)
    train, val, test = _split(y, seed)
    mu, sd = bunch.data[train].mean(0), bunch.data[train].std(0)
    X = ((bunch.data - mu) / np.where(sd > 0, sd, 1.0)).astype(np.float32)
    return GroundTruthData(name="breast-cancer", X=X, y=y, train=train, val=val, test=test,
                           ground_truth=None, kind=None, params={}, seed=seed)


# ---------------------------------------------------------------- shipped suites

FAITHFULNESS_METRICS = [
    "deletion", "insertion", "morf", "lerf", "aopc", "morf-lerf-gap", "road",
    "faithfulness-correlation", "faithfulness-estimate", "infidelity", "max-sensitivity",
    "avg-sensitivity", "local-lipschitz", "monotonicity", "monotonicity-correlation",
    "complexity", "sparseness", "randomisation", "comprehensiveness", "sufficiency", "irof",
    "sensitivity-n", "pgi", "pgu", "relative-input-stability", "relative-output-stability",
    "relative-representation-stability"]
# the relative stabilities re-explain every row's copies, as max-sensitivity (32 copies): 16
# copies each keeps the three together near its cost. attribution-deviation-bound is left out:
# it bounds gradient and gradient x input only, so it would fail for every other method
FAITHFULNESS_METRIC_OPTIONS = {name: {"n_samples": 16} for name in (
    "relative-input-stability", "relative-output-stability",
    "relative-representation-stability")}
GROUND_TRUTH_METRICS = [
    "topk-precision", "topk-recall", "auroc", "average-precision", "emd-accuracy",
    "mass-accuracy", "pointing-game", "suppressor-ratio"]
BASE_METHODS = ["shap", "lime", "occlusion", "captum.integrated-gradients", "captum.saliency"]
METHOD_OPTIONS = {"shap": {"budget": 16384}, "lime": {"budget": 1024}}


def _faithfulness_specs() -> list[DataSpec]:
    return [
        DataSpec(name="digits", base="sklearn.digits", make=sklearn_digits, kind="image",
                 models={"cnn": digits_cnn}, model_params={"cnn": {"arch": "digits-cnn"}},
                 has_ground_truth=False, target="label", background=32),
        DataSpec(name="breast-cancer", base="sklearn.breast-cancer",
                 make=sklearn_breast_cancer, kind="tabular", models={"mlp": tabular_mlp},
                 model_params={"mlp": {"arch": "mlp-32-16"}}, has_ground_truth=False,
                 target="label", background=64),
    ]


XAITRIS_SCENARIOS = ("lin", "mult", "rigid", "xor")
ARCHS = ("llr", "mlp", "cnn")


def _xaitris_specs(base: str, backgrounds: tuple[str, ...]) -> list[DataSpec]:
    specs = []
    for scenario in XAITRIS_SCENARIOS:
        for bg in backgrounds:
            params = {"scenario": scenario, "background": bg}
            specs.append(DataSpec(
                name=f"{base}-{scenario}-{bg}", base=base, params=params,
                make=registered_dataset(base, **params), kind="image",
                models={a: trained(a) for a in ARCHS},
                model_params={a: {"arch": a, "trainer": "xai.datasets.training"} for a in ARCHS},
                has_ground_truth=_has_ground_truth(base), target="label", correct_only=True,
                background=64))
    return specs


def _suppressor_specs() -> list[DataSpec]:
    return [
        DataSpec(name="gauss2d-suppressor", base="gauss2d-suppressor",
                 make=registered_dataset("gauss2d-suppressor"), kind="tabular",
                 models={"bayes": bayes_model}, model_params={"bayes": {"arch": "bayes"}},
                 has_ground_truth=_has_ground_truth("gauss2d-suppressor"), target="label",
                 background=256),
        DataSpec(name="linear8x8", base="linear8x8", make=registered_dataset("linear8x8"),
                 # the spec's linear model, fitted as an unpenalised logistic regression: Adam
                 # at lr 5e-4 stays at chance on these tiny-scale inputs (0.53 vs 0.77)
                 kind="image", models={"logreg": trained("logreg")},
                 model_params={"logreg": {"arch": "logreg",
                                          "trainer": "xai.datasets.training"}},
                 has_ground_truth=_has_ground_truth("linear8x8"), target="label",
                 correct_only=True, background=64),
        *_xaitris_specs("xaitris8", ("white", "corr")),
    ]


FAITHFULNESS = Suite(
    name="faithfulness", metric_options=FAITHFULNESS_METRIC_OPTIONS,
    description="sklearn digits (CNN) and breast-cancer (MLP), faithfulness metrics",
    datasets=_faithfulness_specs, methods=list(BASE_METHODS), metrics=FAITHFULNESS_METRICS,
    method_options=METHOD_OPTIONS, n_explain=32)

SUPPRESSOR = Suite(
    name="suppressor",
    description="gauss2d-suppressor (Bayes model), linear8x8, xaitris8 4 scenarios × "
                "WHITE/CORR × LLR/MLP/CNN; ground-truth metrics",
    datasets=_suppressor_specs,
    methods=[*BASE_METHODS, "pattern", "patternnet", "pattern-attribution"],
    metrics=GROUND_TRUTH_METRICS, method_options=METHOD_OPTIONS, n_explain=64)

XAITRIS64 = Suite(
    name="xaitris64",
    description="larger: xaitris64 4 scenarios × WHITE/CORR/NATURAL × LLR/MLP/CNN; "
                "ground-truth metrics",
    datasets=lambda: _xaitris_specs("xaitris64", ("white", "corr", "natural")),
    methods=[*BASE_METHODS, "pattern"], metrics=GROUND_TRUTH_METRICS,
    method_options={"shap": {"budget": 4096, "features": 8}, "lime": {"budget": 2048,
                                                                      "features": 8},
                    "occlusion": {"features": 8}},
    n_explain=32, opt_in=True)

for _suite in (FAITHFULNESS, SUPPRESSOR, XAITRIS64):
    register("suite", _suite.name, _suite)
