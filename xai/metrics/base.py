"""The metric contract: :class:`Metric`, :class:`MetricResult`, and
:class:`MetricInputs`, which prepares what every metric needs.

A metric is called as ``metric(model, x, a, *, target=None, removal=None, seed=0, **options)``
and returns a :class:`MetricResult`. ``a`` is an :class:`~xai.Explanation` or a raw array; it
is reduced to one score per feature (``reduce="sum"`` by default) before the metric runs.
Metrics that remove features do it through a :class:`~xai.game.Game` built from the
explanation's own removal (or ``removal=``) and a prediction behaviour for the row's target,
so batching, chunking, counting, caching and NaN checks are the explainers' own. ``device=``
runs a torch module on that device for the call and puts it back afterwards, as in
:func:`xai.explain`.

Every argument is checked before the first model call (:mod:`xai.metrics.checks`): options,
the rows ``x`` (and that they are the rows an Explanation explained), the attributions and the
targets, except a target's range where the model's number of outputs is unknown: that is
checked on the first call, a prediction of the explained rows.
"""

from __future__ import annotations

import contextlib
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import torch

from .. import planner
from ..errors import InputError, ProvenanceError, ShapeError, unknown_name
from ..explanation import Explanation
from ..features import FeatureMap, image_layout
from ..inputs import Flag, check_option, prepare_inputs
from ..models import Model, as_model
from ..progress import Progress
from ..ray_backend import RAY_OPTIONS
from ..registry import define_kind
from .checks import (
    Choice,
    Rule,
    attribution_array,
    check_explained_rows,
    check_finite_attributions,
    check_metric_options,
    check_removal,
    check_target_range,
    check_target_request,
    feature_map_rule,
    refuse_categorical_frame,
)

REDUCTIONS = ("sum", "mean", "max_abs")
OUTPUTS = ("probability", "logit", "raw")


@dataclass
class MetricResult:
    """What a metric returns: per-row scores, their mean and SE, optional curves, the cost
    and every setting used (including the removal, output, target rule, sign handling and
    normalisation, so that no metric applies ``abs`` or a normalisation silently)."""

    name: str
    per_sample: np.ndarray
    aggregate: float
    se: float
    n_nan: int
    evaluations: int
    seconds: float
    settings: dict
    direction: str = "higher"
    curves: np.ndarray | None = None
    extras: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        """JSON-able summary (per-row values and curves as lists)."""
        return {"name": self.name, "aggregate": _f(self.aggregate), "se": _f(self.se),
                "n_nan": int(self.n_nan), "evaluations": int(self.evaluations),
                "seconds": float(self.seconds), "direction": self.direction,
                "settings": _jsonable(self.settings),
                "per_sample": [_f(v) for v in np.asarray(self.per_sample, float).ravel()],
                "curves": None if self.curves is None else
                np.asarray(self.curves, float).round(10).tolist()}


def _f(v) -> float | None:
    v = float(v)
    return None if np.isnan(v) else v


def _jsonable(obj):
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist() if obj.size <= 64 else f"array{tuple(obj.shape)}"
    if isinstance(obj, int | float | str | bool) or obj is None:
        return obj
    return getattr(obj, "name", type(obj).__name__)


def aggregate_rows(per_sample: np.ndarray) -> tuple[float, float, int]:
    """Mean over non-NaN rows, its SE (SD / sqrt(n_valid)) and the NaN count."""
    v = np.asarray(per_sample, dtype=np.float64).ravel()
    ok = ~np.isnan(v)
    n_ok = int(ok.sum())
    if n_ok == 0:
        return float("nan"), float("nan"), int(v.size)
    mean = float(v[ok].mean())
    se = float(v[ok].std(ddof=1) / np.sqrt(n_ok)) if n_ok > 1 else float("nan")
    return mean, se, int(v.size - n_ok)


class Metric:
    """Base class of metrics. Subclasses set the metadata, ``defaults`` (their options and
    default values) and implement :meth:`compute`.

    Metadata (class attributes, read by the registry and the tables): ``name``,
    ``direction`` ("higher", "lower" or "none"), ``needs`` (subset of {"model", "explainer",
    "ground_truth"}), ``applies_to`` ("tabular", "image", "text" or "any"), ``stochastic``,
    ``default_output`` ("probability", "logit", "raw" or "attributions"), ``reference`` (what
    the implementation is tested against: a library and version, or a closed form). "logit"
    means the log-odds of the target's probability (of the averaged probability under a
    removal), not the model's raw logit; use "raw" for that.
    """

    name: ClassVar[str] = "metric"
    direction: ClassVar[str] = "higher"
    needs: ClassVar[frozenset] = frozenset({"model"})
    applies_to: ClassVar[str] = "any"
    stochastic: ClassVar[bool] = False
    default_output: ClassVar[str] = "probability"
    reference: ClassVar[str] = ""
    defaults: ClassVar[dict] = {}

    #: checks of the metric's own options (name -> rule), run with the core rules of
    #: :data:`xai.inputs.OPTION_RULES` before any model call; see :mod:`xai.metrics.checks`
    option_rules: ClassVar[dict[str, Rule]] = {}
    #: the metric removes features with :meth:`default_removal` whatever removal made the
    #: explanation (ROAD), unless ``removal=`` is given
    own_removal: ClassVar[bool] = False
    #: the result is independent per-row scores, so ``backend="ray"`` may split the rows
    #: over tasks (:mod:`xai.ray_metrics`)
    rows_split: ClassVar[bool] = False
    #: index of the first row in the whole input (a Ray task's block): keys the rows' draws
    row_offset: int = 0
    #: extras (and settings) that are a root mean square over the rows: a Ray run joins its
    #: blocks' values weighted by their rows
    rms_extras: ClassVar[tuple[str, ...]] = ()
    #: how targets are checked against the model's outputs: ``"game"`` (the metric's first
    #: model call is its game's prediction of the explained rows, whose behaviour refuses a
    #: target out of range) or ``"probe"`` (a given target is checked on one call of the
    #: explained rows before :meth:`compute`: metrics whose model calls are not a game's)
    target_check: ClassVar[str] = "game"

    def __init__(self, **options: Any) -> None:
        self._check_names(options)
        self.options = self.checked_options({**self.defaults, **options})

    def whole_set_options(self, x: Any, options: dict) -> dict:
        """Options that the metric derives from the whole evaluated set (``x`` as given,
        ``options`` the merged ones), fixed by a Ray run on the driver so that every block
        uses the whole set's value; none by default."""
        return {}

    def _check_names(self, options: dict) -> None:
        for key in options:
            if key not in self.defaults and key not in COMMON_OPTIONS:
                raise unknown_name(f"option of metric {self.name!r}", key,
                                   list(self.defaults) + list(COMMON_OPTIONS))

    def __call__(self, model: Any, x: Any, a: Any, *, target: Any = None, removal: Any = None,
                 seed: int = 0, explainer: Any = None, ground_truth: Any = None,
                 progress: bool | str = "auto", **options: Any) -> MetricResult:
        """Score attributions ``a`` of inputs ``x`` for ``model``, every argument checked
        first (see the module docstring). ``progress``: a bar over the model rows
        (``True``, ``False`` or ``"auto"``: on a terminal or in a notebook)."""
        ray_options = {k: check_option(k, options.pop(k)) for k in RAY_OPTIONS if k in options}
        if ray_options.get("backend", "local") == "ray":
            from ..ray_metrics import metric_on_ray

            return metric_on_ray(self, model, x, a, ray_options=ray_options,
                                 aggregate_rows=aggregate_rows, progress=progress,
                                 target=target, removal=removal, seed=seed,
                                 explainer=explainer, ground_truth=ground_truth, **options)
        start = time.perf_counter()
        self._check_names(options)
        merged = self.checked_options({**self.options, **options})
        seed = check_option("seed", seed)
        if "explainer" in self.needs:
            check_explainer(self.name, explainer)
        inp = MetricInputs.prepare(self, model, x, a, target=target, removal=removal,
                                   seed=seed, explainer=explainer, ground_truth=ground_truth,
                                   options=merged)
        self.check_inputs(inp)
        placement = inp.adapter.placement() if inp.adapter is not None else \
            contextlib.nullcontext()
        with placement, Progress(f"xai {self.name}", enabled=progress,
                                 explained=inp.n) as inp.progress:
            if self.target_check == "probe" and target is not None and \
                    not isinstance(target, str):
                inp.check_targets()  # "predicted" is always in range
            out = self.compute(inp)
            # the count ends at the result's: rows the games did not count (predictions,
            # re-explanations) included
            evaluations = inp.evaluations() + int(out.get("extra_evaluations", 0))
            inp.progress.update(max(0, evaluations - inp.progress.n))
        per_sample = np.asarray(out["per_sample"], dtype=np.float64)
        mean, se, n_nan = aggregate_rows(per_sample)
        settings = {**merged, **inp.recorded(), **out.get("settings", {})}
        return MetricResult(
            name=self.name, per_sample=per_sample, aggregate=out.get("aggregate", mean),
            se=out.get("se", se), n_nan=n_nan, evaluations=evaluations,
            seconds=time.perf_counter() - start, settings=settings, direction=self.direction,
            curves=out.get("curves"), extras=out.get("extras", {}))

    def checked_options(self, options: dict) -> dict:
        """``options`` checked (core rules, the options of every metric, then
        :attr:`option_rules`) and normalised; raises OptionError or UnknownNameError."""
        rules = {**common_rules(self.default_output), **self.option_rules}
        return check_metric_options(self.name, options, rules, self.defaults)

    def check_inputs(self, inp: MetricInputs) -> None:
        """Checks that need the prepared inputs (the number of features ``inp.d``, the rows
        ``inp.X``, the model): run after :meth:`MetricInputs.prepare`, before any model call.
        Subclasses extend it; raise a named XaiError that says the fix."""

    def default_removal(self, options: dict):
        """The removal used when neither ``removal=`` nor the explanation gives one (None:
        a baseline at the explanation's recorded baseline, else zero). Not used for an
        explanation that names a removal it cannot rebuild: that is a ProvenanceError."""
        return

    def compute(self, inp: MetricInputs) -> dict:
        """Return ``{"per_sample": (n,), optional "curves", "extras", "settings",
        "aggregate", "se", "extra_evaluations"}`` (model rows spent outside the metric's
        game, e.g. by a re-run explainer)."""
        raise NotImplementedError


COMMON_OPTIONS = ("reduce", "output", "ties", "abs", "features", "batch_size", "device")


def common_rules(default_output: str) -> dict[str, Rule]:
    """Rules of the options every metric takes (``batch_size`` has a core rule)."""
    outputs = OUTPUTS if default_output in OUTPUTS else (*OUTPUTS, default_output)
    return {"reduce": Choice(REDUCTIONS, "reduction"), "ties": Choice(("random", "index")),
            "abs": Flag(), "features": feature_map_rule,
            "output": lambda name, v: None if v is None else Choice(outputs, "output")(name, v)}


def check_explainer(metric: str, explainer: Any) -> None:
    """A metric that re-explains needs an explainer it can call."""
    if explainer is None:
        raise InputError(f"{metric} re-explains perturbed inputs or models; pass explainer=… "
                         "(an xai.Explainer, an object with .explain(model, X) or a callable "
                         "(model, X) -> attributions)")
    if not (hasattr(explainer, "explain") or callable(explainer)):
        raise InputError(f"explainer must be an xai.Explainer, an object with .explain(model, "
                         f"X) or a callable (model, X) -> attributions; got "
                         f"{type(explainer).__name__}")


class MetricInputs:
    """Everything a metric needs, prepared once: the model adapter, the inputs, one score per
    feature, the feature map, the target per row, the removal, the output scale, keyed random
    generators and a lazily built game."""

    def __init__(self, *, metric: Metric, adapter: Model, model: Any, X: np.ndarray,
                 scores: np.ndarray, fmap: FeatureMap, target: Any, removal,
                 output: str, seed: int, options: dict, explanation: Explanation | None,
                 explainer: Any, ground_truth: Any, kind: str) -> None:
        self.metric, self.adapter, self.model, self.X = metric, adapter, model, X
        self.scores, self.fmap, self.removal = scores, fmap, removal
        self.output, self.seed, self.options = output, seed, options
        self.explanation, self.explainer, self.ground_truth = explanation, explainer, \
            ground_truth
        self.kind = kind
        self._target = target  # as given; resolved by the targets property
        self._targets: np.ndarray | None = None
        self._outputs: np.ndarray | None = None  # the model's outputs on X, once asked
        self._games: dict = {}
        self._evals0 = adapter.evaluations if adapter is not None else 0
        self.progress: Progress | None = None  # the bar the metric's games count rows on

    @property
    def n(self) -> int:
        return self.X.shape[0]

    @property
    def d(self) -> int:
        return self.scores.shape[1]

    @property
    def targets(self) -> np.ndarray:
        """The output per row (resolved on first use: ``"predicted"`` costs one prediction of
        the explained rows; metrics without a model get zeros)."""
        if self._targets is None:
            if "model" not in self.metric.needs:
                self._targets = np.zeros(self.n, np.int64)
            else:
                self._targets = resolve_targets(self.explanation, self._target, self.adapter,
                                                self.X, outputs=self.outputs)
        return self._targets

    def outputs(self) -> np.ndarray:
        """The model's outputs ``(n, k)`` on the explained rows (one call, then remembered)."""
        if self._outputs is None:
            adapter = self.adapter
            with adapter.session():
                self._outputs = adapter(torch.as_tensor(self.X, dtype=adapter.dtype,
                                                        device=adapter.device)).cpu().numpy()
        return self._outputs

    def check_targets(self) -> None:
        """Refuse targets out of the model's range, after at most one prediction of the
        explained rows (none when the model has answered before)."""
        k = self.adapter.n_outputs or self.outputs().shape[1]
        check_target_range(self.targets, 2 if k == 1 and self.adapter.is_classifier else k)

    # ---- preparation ------------------------------------------------------------------
    @classmethod
    def prepare(cls, metric: Metric, model, x, a, *, target, removal, seed, explainer,
                ground_truth, options) -> MetricInputs:
        """Check and reduce the inputs without calling the model: the
        rows ``x`` (:func:`xai.inputs.prepare_inputs`: numeric, finite, with a batch axis),
        that they are the rows an Explanation ``a`` explained, the attributions (one score
        per feature, finite), the targets as far as they can be checked without the model's
        number of outputs, and the removal."""
        adapter = as_model(model, output_kind=options.get("output_kind"),
                           batch_size=options.get("batch_size"),
                           device=options.get("device")) if model is not None else None
        refuse_categorical_frame(x)
        X, _, _ = prepare_inputs(adapter, x, None)
        X = X.detach().cpu().numpy() if isinstance(X, torch.Tensor) else np.asarray(X)
        if adapter is not None and adapter.batch_size is None:
            adapter.batch_size = planner.metric_batch(adapter, X)
        expl = a if isinstance(a, Explanation) else None
        if expl is not None:
            check_explained_rows(expl.data, X)
        kind = "tabular" if X.ndim == 2 else "image"
        fmap = options.get("features")
        if fmap is None:
            fmap = _feature_map_of(expl, X, kind, a)
        scores = reduce_attributions(a, X, fmap, options.get("reduce", "sum"), target)
        if "model" in metric.needs:
            check_target_request(target, X.shape[0])
        check_removal(removal)
        removal = metric_removal(metric, expl, removal, options)
        output = options.get("output") or metric.default_output
        return cls(metric=metric, adapter=adapter, model=model, X=X, scores=scores, fmap=fmap,
                   target=target, removal=removal, output=output, seed=seed,
                   options=options, explanation=expl, explainer=explainer,
                   ground_truth=ground_truth, kind=kind)

    @property
    def removal(self):
        """The removal of the metric's games; raises the ProvenanceError kept by
        :func:`metric_removal` when the explanation's own removal cannot be rebuilt (so
        metrics that remove nothing still run)."""
        if isinstance(self._removal, ProvenanceError):
            raise self._removal
        return self._removal

    @removal.setter
    def removal(self, value) -> None:
        self._removal = value

    def recorded(self) -> dict:
        """The five recorded choices: removal, output, target rule, sign, normalisation."""
        removal = None if isinstance(self._removal, ProvenanceError) else self._removal
        describe = getattr(removal, "describe", None)
        return {"removal": describe() if describe else str(removal),
                "output": self.output, "target": "given" if self.explanation is None else
                "explanation", "abs": bool(self.options.get("abs", False)),
                "normalise": self.options.get("normalise")}

    # ---- tools for metrics --------------------------------------------------------------
    def game(self, removal=None, output: str | None = None):
        """A game over the features for each row's target on the metric's output scale
        (cached per removal and output)."""
        from ..behaviours import Prediction
        from ..game import Game

        removal = removal or self.removal
        output = output or self.output
        key = (id(removal), output)
        if key not in self._games:
            self._games[key] = Game(self.adapter, self.X, removal,
                                    Prediction(target=self.targets, output=output), self.fmap,
                                    kind=self.kind, seed=self.seed, progress=self.progress)
        return self._games[key]

    def rng(self, row: int, stream: int = 0) -> np.random.Generator:
        """Generator keyed on ``(seed, metric, row, stream)``: independent of batching."""
        mid = zlib.crc32(self.metric.name.encode())
        row = int(row) + self.metric.row_offset  # the row's index in the whole input
        return np.random.default_rng(np.random.SeedSequence([self.seed, mid, row,
                                                             int(stream)]))

    def order(self, scores: np.ndarray | None = None, descending: bool = True) -> np.ndarray:
        """Feature order per row ``(n, d)`` by score, ties by a seeded permutation per row
        (``ties="random"``, default) or by index (``ties="index"``)."""
        s = self.scores if scores is None else scores
        s = np.abs(s) if self.options.get("abs") else s
        key = -s if descending else s
        if self.options.get("ties", "random") == "index":
            return np.argsort(key, axis=1, kind="stable")
        perms = np.stack([self.rng(i, 99).permutation(s.shape[1]) for i in range(len(s))])
        shuffled = np.take_along_axis(key, perms, axis=1)
        return np.take_along_axis(perms, np.argsort(shuffled, axis=1, kind="stable"), axis=1)

    def evaluations(self) -> int:
        return 0 if self.adapter is None else self.adapter.evaluations - self._evals0


def metric_removal(metric: Metric, expl: Explanation | None, removal, options: dict):
    """The removal a metric removes features with: ``removal=`` when given (an object or a
    registered name); else the explanation's own, rebuilt from what it records
    (:meth:`~xai.Explanation.rebuild_removal`, the same for an explanation in memory and one
    loaded from a file); else the metric's default; else a baseline at the explanation's
    recorded baseline value, or zero. When the explanation names a removal it cannot
    rebuild, the ProvenanceError is returned (raised when a game needs the removal), never
    another removal."""
    if removal is None and expl is not None and not metric.own_removal:
        try:
            removal = expl.rebuild_removal()
        except ProvenanceError as exc:
            return exc
    if removal is None:
        removal = metric.default_removal(options)
    if removal is None:
        from ..removals import Baseline

        return Baseline(_recorded_baseline(expl))
    if isinstance(removal, str):
        from .. import registry

        return registry.get("removal", removal)()
    return removal


def _recorded_baseline(expl: Explanation | None):
    if expl is not None:
        value = expl.removal.get("value") if isinstance(expl.removal, dict) else None
        if isinstance(value, int | float) or value in ("zeros", "mean", "median"):
            return value
        base = expl.options.get("baselines") if expl.options else None
        if isinstance(base, int | float):
            return base
    return 0.0


def _feature_map_of(expl: Explanation | None, X: np.ndarray, kind: str, a) -> FeatureMap:
    if expl is not None:
        if expl.feature_map is not None:
            return FeatureMap(expl.feature_map, kind="segment", channel_axis=expl.channel_axis,
                              per_explicand=True)
        return FeatureMap.tabular(expl.values.shape[1], expl.feature_names or None)
    if kind == "tabular":
        return FeatureMap.tabular(X.shape[1])
    cax, hw = image_layout(X.shape[1:])
    arr = attribution_array(a)
    if arr.ndim == 2 and arr.shape[1] != int(np.prod(hw)):
        raise ShapeError(
            f"attributions have shape {arr.shape} but inputs {X.shape} have "
            f"{int(np.prod(hw))} pixels; pass features= (the FeatureMap the attributions are "
            "over) or attributions per pixel")
    return FeatureMap.patches(hw, 1, channel_axis=cax)


def reduce_attributions(a, X: np.ndarray, fmap: FeatureMap, reduce: str = "sum",
                        target=None) -> np.ndarray:
    """One score per feature ``(n, d)`` from an Explanation or an array of shape ``(n, d)``,
    ``(n, *S)`` or a channel-less ``(n, H, W)`` (never broadcast to channels): the positions of
    a feature are summed (``reduce="sum"``), averaged (``"mean"``) or their largest magnitude
    kept (``"max_abs"``). Never mutates ``a``."""
    if reduce not in REDUCTIONS:
        raise unknown_name("reduction", reduce, REDUCTIONS)
    n = X.shape[0]
    if isinstance(a, Explanation):
        vals = np.asarray(a.values, dtype=np.float64)
        if vals.ndim == 3:
            t = np.asarray(a.extras.get("target", np.zeros(len(vals), int)))
            vals = vals[np.arange(len(vals)), :, t]
        arr = vals
    else:
        arr = attribution_array(a)
    if arr.shape[0] != n:
        raise ShapeError(f"x has {n} rows, attributions {arr.shape[0]}: give one row of "
                         "attributions per row of x")
    check_finite_attributions(arr)
    d = fmap.d
    if arr.ndim == 2 and arr.shape[1] == d:
        return arr
    S = X.shape[1:]
    per_pos = arr.shape[1:]
    if per_pos == S or per_pos == fmap.pos_shape:
        idx = fmap.full_index(per_pos) if per_pos != fmap.pos_shape else \
            fmap.index.reshape(fmap.index.shape[0], -1)
        idx = np.broadcast_to(idx, (n, idx.shape[1])) if idx.shape[0] == 1 else idx
        flat = arr.reshape(n, -1)
        safe = np.where(idx < 0, d, idx)
        if reduce == "max_abs":
            out = np.zeros((n, d + 1))
            np.maximum.at(out, (np.arange(n)[:, None], safe), np.abs(flat))
        else:  # per row and feature, the sum of its positions in position order
            at = (safe + np.arange(n)[:, None] * (d + 1)).ravel()
            out = np.bincount(at, weights=flat.ravel(), minlength=n * (d + 1))
            out = out.reshape(n, d + 1)
            if reduce == "mean":
                counts = np.bincount(at, minlength=n * (d + 1)).reshape(n, d + 1)
                out = out / np.maximum(counts, 1)
        return out[:, :d]
    expected = [f"({n}, {d})", f"{(n, *S)}"]
    if fmap.pos_shape != S:
        expected.append(f"{(n, *fmap.pos_shape)}")
    raise ShapeError(f"attributions have shape {arr.shape} but inputs {X.shape} have {d} "
                     f"features; expected {', '.join(expected)} or an Explanation")


def resolve_targets(expl: Explanation | None, target, adapter, X,
                    outputs: Callable[[], np.ndarray] | None = None) -> np.ndarray:
    """The output per row: the explanation's recorded target unless ``target=`` is given
    ("predicted", an int or one int per row). ``outputs`` gives the model's outputs on ``X``
    (default: one call of ``adapter``)."""
    n = X.shape[0]
    if target is None and expl is not None and "target" in expl.extras:
        return np.asarray(expl.extras["target"], dtype=np.int64)
    if target is None or (isinstance(target, str) and target == "predicted"):
        if adapter is None:
            return np.zeros(n, np.int64)
        if outputs is not None:
            out = outputs()
        else:
            with adapter.session():
                out = adapter(torch.as_tensor(X)).numpy()
        if out.shape[1] == 1:
            return (out[:, 0] > (0.5 if adapter.output_kind == "probability" else 0.0)
                    ).astype(np.int64) if adapter.output_kind != "raw" else np.zeros(n, np.int64)
        return out.argmax(1)
    check_target_request(target, n)
    arr = np.asarray(target.detach().cpu().numpy() if isinstance(target, torch.Tensor)
                     else target)
    return np.broadcast_to(arr, (n,)).astype(np.int64).copy()


define_kind("metric", Metric)  # every metric module registers against it
