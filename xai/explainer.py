"""``Explainer`` (any removal x behaviour x summary) and the one-call ``explain()``."""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from . import registry
from ._warn import warn
from .behaviours import Behaviour
from .errors import InputError, LabelError, unknown_name
from .explanation import Explanation
from .features import FeatureMap
from .game import DatasetGame, Game
from .inputs import (
    as_float_table,
    check_option,
    check_options,
    feature_map_for,
    input_kind,
    is_tokens,
    prepare_table,
)
from .models import SklearnModel, as_model
from .presets import Preset
from .progress import Progress
from .ray_backend import RAY_OPTIONS
from .registry import constructor_options as _params
from .removals import Removal
from .summaries.base import Summary, seed_sequence
from .tabular import check_removal, model_for_table

GAME_OPTIONS = ("memory_cap", "batch_size", "aggregate", "cache", "draws_per_unit",
                "memory_format")
AUTO_ESTIMATORS = ("exact-shapley", "ra-kernelshap-net", "ra-kernelshap", "kernelshap",
                   "permutation-shapley")
#: the network surrogate of ``ra-kernelshap-net`` is chosen from this many sampled coalitions
#: per explicand (below it, the pairwise surrogate of ``ra-kernelshap`` is as accurate)
NETWORK_MIN_COALITIONS = 1024


def _build(kind: str, spec: Any, options: dict, used: set[str], base: type) -> Any:
    """An axis component from a name or an object, taking the options its constructor knows."""
    if isinstance(spec, base):
        return spec
    if isinstance(spec, type) and issubclass(spec, base):
        cls = spec
    else:
        cls = registry.get(kind, spec)
    accepted = _params(cls)
    kwargs = {k: v for k, v in options.items() if k in accepted}
    used.update(kwargs)
    if kind == "removal" and "value" in accepted and "baseline" in options:
        kwargs["value"] = options["baseline"]
        used.add("baseline")
    return cls(**kwargs)


def _slice_options(options: dict, rows: np.ndarray, n: int, ndim: int) -> dict:
    """Options of a group of explicands: every per-explicand array option (first axis of length
    ``n``: one baseline row, one target per explicand) restricted to the group's ``rows``."""
    out = dict(options)
    for key, v in options.items():
        if key == "background" or isinstance(v, str) or v is None or np.ndim(v) == 0:
            continue
        if key in ("baseline", "value") and np.ndim(v) != ndim:
            continue  # a per-feature or per-column vector, shared by every explicand
        if isinstance(v, list | tuple):
            v = np.asarray(v)
        if isinstance(v, np.ndarray | torch.Tensor) and v.shape[0] == n:
            out[key] = v[torch.as_tensor(rows)] if isinstance(v, torch.Tensor) else v[rows]
    return out


def _classifies(adapter, behaviour) -> bool:
    """Whether the behaviour reads labels as classes (cross-entropy loss on a classifier)."""
    from .behaviours import Loss

    if not isinstance(behaviour, Loss):
        return False
    loss = behaviour.loss
    if loss is None:
        return bool(adapter.is_classifier) and adapter.output_kind != "raw"
    return isinstance(loss, str) and loss.lower().replace("_", "-") == "cross-entropy"


def _map_labels(adapter, behaviour, y):
    """Class labels of a scikit-learn classifier as positions in its ``classes_`` (the columns
    of ``predict_proba``): string labels and labels such as {1, 2} become 0..k-1."""
    classes = getattr(getattr(adapter, "estimator", None), "classes_", None)
    if classes is None or not isinstance(adapter, SklearnModel) or \
            not _classifies(adapter, behaviour):
        return y
    arr = np.asarray(y)
    if arr.ndim != 1:
        return y  # probability vectors, already in the columns' order
    known = list(np.asarray(classes).tolist())
    lookup = {c: i for i, c in enumerate(known)}
    labels = arr.tolist()
    unknown = sorted({lab for lab in labels if lab not in lookup}, key=str)
    if unknown:
        k = len(known)
        raise LabelError(
            f"class label {unknown[-1]!r} is not a class of the model, so the {behaviour.name} "
            f"behaviour cannot score it (unknown labels: {unknown[:10]}): the model has {k} "
            f"classes {known[:20]} (its classes_, at positions valid 0..{k - 1} of "
            "predict_proba). Give labels from classes_.")
    return np.asarray([lookup[lab] for lab in labels], dtype=np.int64)


def _unused_auto_options(options: dict, summary, removal, behaviour) -> list[str]:
    """Options the user gave for the Shapley auto rule's estimators that the chosen one, the
    removal, the behaviour and the game do not take."""
    for_auto = set().union(*(_params(registry.get("summary", s)) for s in AUTO_ESTIMATORS))
    taken = (set(_params(type(summary))) | _params(type(removal)) | _params(type(behaviour))
             | set(GAME_OPTIONS) | {"seed", "background"})
    if "value" in taken:
        taken.add("baseline")
    return sorted(k for k in options if k in for_auto and k not in taken)


@dataclass
class _Call:
    """The state of one :meth:`Explainer.explain` call (kept off the explainer, so that one
    explainer may explain from several threads)."""

    options: dict
    adapter: Any
    caller_adapter: Any
    evaluations_before: int
    X: Any
    names: list[str] | None
    table: Any
    kind: str
    method: str
    fmap: FeatureMap
    merged: dict = field(default_factory=dict)
    removal: Any = None
    behaviour: Any = None
    dataset: bool = False
    y: Any = None
    aggregate: str | None = None
    draws_per_unit: Any = "auto"
    game_options: dict = field(default_factory=dict)
    game: Any = None
    summary_object: Any = None
    estimator: str | None = None
    last_removal: Any = None
    last_behaviour: Any = None
    ignored: set = field(default_factory=set)


class Explainer:
    """Any combination of the three axes, scikit-learn style: options in the constructor,
    work in :meth:`explain`.

    ``removal``, ``behaviour`` and ``summary`` are registered names or objects; ``summary=
    "auto"`` applies the Shapley auto rule. Other keyword options are routed to the axis whose
    constructor accepts them (e.g. ``background``, ``baseline``, ``target``, ``output``,
    ``budget``, ``tol``, ``seed``, ``n_samples``, ``kernel_width``) or to the game
    (``memory_cap``, ``batch_size``, ``aggregate``); ``device`` says where a torch module
    runs (see :func:`explain`); an unknown option is an error.
    """

    #: builds the object that evaluates a dataset game's data rows elsewhere from the local
    #: game (:mod:`xai.ray_explain`); None: here
    dataset_shards = None

    def __init__(self, removal: str | Removal = "marginal",
                 behaviour: str | Behaviour = "prediction",
                 summary: str | Summary = "auto", *, method: str | None = None,
                 dataset: bool | None = None, row_sampling: bool = False,
                 progress: bool | str = "auto", preset: Preset | None = None,
                 **options: Any) -> None:
        self.removal = removal
        self.behaviour = behaviour
        self.summary = summary
        self.method = method
        self.dataset = dataset
        self.row_sampling = row_sampling
        self.progress = progress
        self.preset = preset
        self.options = options

    @classmethod
    def from_preset(cls, method: str, **options: Any) -> Explainer:
        """The explainer of a named method (``xai.registry.names("explainer")``)."""
        preset: Preset = registry.get("explainer", method)
        if not isinstance(preset, Preset):  # a whole explainer registered by a plugin
            return preset(**options)
        return cls(preset.removal, preset.behaviour, preset.summary, method=preset.name,
                   dataset=preset.dataset, row_sampling=preset.row_sampling,
                   preset=preset, **options)

    # ------------------------------------------------------------------------------------

    def explain(self, model: Any, X: Any, y: Any = None, *, background: Any = None,
                features: Any = None, output_kind: str | None = None,
                **ray_options: Any) -> Explanation:
        """Explain rows ``X`` of ``model``; returns an :class:`~xai.explanation.Explanation`.

        Every check runs before the first model call; nothing is stored on the explainer, so
        one explainer may explain from several threads. The option ``backend="ray"`` runs
        blocks of the rows as Ray tasks, with the same values (:mod:`xai.ray_explain`);
        ``ray_options`` (``backend``, ``address``, ``workers``, ``num_cpus``, ``num_gpus``)
        override the constructor's for this call."""
        if ray_options:
            unknown = set(ray_options) - set(RAY_OPTIONS)
            if unknown:
                raise unknown_name("option of Explainer.explain", min(unknown), RAY_OPTIONS)
            run = copy.copy(self)
            run.options = {**self.options, **ray_options}
            return run.explain(model, X, y, background=background, features=features,
                               output_kind=output_kind)
        if check_option("backend", self.options.get("backend", "local")) == "ray":
            from .ray_explain import explain_on_ray

            return explain_on_ray(self, model, X, y, background=background,
                                  features=features, output_kind=output_kind)
        start = time.perf_counter()
        call = self._prepare(model, X, background, features, output_kind)
        self._build_axes(call, y)
        with call.adapter.placement():  # device=: the module there for the call, then back
            results, target_parts = self._run(call)
        evaluations = call.adapter.evaluations - call.evaluations_before
        if call.adapter is not call.caller_adapter:  # the caller's adapter counts them too
            call.caller_adapter.evaluations += evaluations
        expl = self._assemble(call, results, target_parts, time.perf_counter() - start,
                              evaluations)
        expl.record_removal(call.last_removal)  # kept (and saved) so that metrics rebuild it
        return expl

    def _prepare(self, model, X, background, features, output_kind) -> _Call:
        """Options checked, the model wrapped, the inputs checked and encoded, their kind and
        feature map."""
        # types and ranges, before anything runs (the Ray backend's options are not the axes')
        options = check_options({k: v for k, v in self.options.items() if k not in RAY_OPTIONS})
        if background is not None:
            options["background"] = background
        adapter = as_model(model, batch_size=options.get("batch_size"), output_kind=output_kind,
                           device=options.get("device"))
        evaluations_before = adapter.evaluations  # a reused adapter keeps counting
        prepared = prepare_table(adapter, X, options.get("background"), options.get("baseline"))
        X, names, table = prepared.X, prepared.names, prepared.table
        if prepared.background is not None:
            options["background"] = prepared.background
        if "baseline" in options:  # a baseline row of a DataFrame, encoded like X
            options["baseline"] = prepared.baseline
        caller_adapter = adapter
        adapter = model_for_table(adapter, table, user_adapter=adapter is model)
        kind = input_kind(tuple(X.shape[1:]), is_tokens(adapter, X, features))
        if kind == "tabular":
            X = as_float_table(X)
        method = self.method or "custom"
        fmap = feature_map_for(features, X, names, kind, method)
        return _Call(options=options, adapter=adapter, caller_adapter=caller_adapter,
                     evaluations_before=evaluations_before, X=X, names=names, table=table,
                     kind=kind, method=method, fmap=fmap)

    def _merged_options(self, call: _Call) -> dict:
        """The preset's defaults for this kind of input, overridden by the user's options."""
        preset = self.preset
        if preset is None:
            return dict(call.options)
        removal_opts = {k: v[call.kind] if isinstance(v, dict) else v
                        for k, v in preset.removal_options.items()}
        return {**removal_opts, **preset.behaviour_options, **preset.summary_options,
                **call.options}

    def _build_axes(self, call: _Call, y: Any) -> None:
        """The removal and behaviour, the labels, the seed and the game's options; options no
        component takes are refused."""
        merged = self._merged_options(call)
        used: set[str] = set()
        call.removal = _build("removal", self.removal, merged, used, Removal)
        check_removal(call.removal, call.table)  # categorical columns take values of rows only
        call.behaviour = behaviour = _build("behaviour", self.behaviour, merged, used,
                                            Behaviour)
        call.dataset = behaviour.dataset if self.dataset is None else self.dataset
        given = call.dataset and getattr(behaviour, "labels", "given") == "given"
        if (behaviour.needs_labels or given) and y is None:
            raise LabelError(f"method {call.method!r} (behaviour {behaviour.name!r}) needs "
                             f"labels: pass y= with one label per explained row "
                             f"({call.X.shape[0]} rows)")
        if y is not None:
            y = _map_labels(call.adapter, behaviour, y)  # checked by the game's behaviour
        call.y = y
        game_opts = {k: merged[k] for k in GAME_OPTIONS if k in merged}
        used.update(game_opts)
        call.aggregate = game_opts.pop("aggregate", None) or (
            self.preset.aggregate if self.preset else None)
        call.draws_per_unit = game_opts.pop("draws_per_unit", "auto")
        call.game_options = game_opts
        if merged.get("seed") is None:
            merged["seed"] = int(np.random.SeedSequence().entropy % 2**63)
        known = self._known_options(call.removal, behaviour, self.summary)
        if "background" in call.options and "background" not in known:
            raise InputError(f"method {call.method!r} uses no background (its removal "
                             f"{call.removal.name!r} takes replacement values from elsewhere); "
                             "drop background=")
        unknown = set(call.options) - set(known)
        if unknown:
            raise unknown_name("option", min(unknown), known)
        call.merged = merged

    def _group_axes(self, call: _Call, rows, n_groups: int) -> tuple[Removal, Behaviour]:
        """The removal and behaviour of one group of explicands: per-explicand options
        (baseline rows, targets) follow the group's rows."""
        if n_groups == 1:
            return call.removal, call.behaviour
        merged = _slice_options(call.merged, rows, call.X.shape[0], call.X.ndim)
        removal = _build("removal", self.removal, merged, set(), Removal)
        check_removal(removal, call.table)
        return removal, _build("behaviour", self.behaviour, merged, set(), Behaviour)

    def _run(self, call: _Call) -> tuple[list, list]:
        """One game and summary per group of explicands with the same number of features,
        under one progress bar."""
        with Progress(f"xai {call.method}", enabled=self.progress,
                      explained=call.X.shape[0]) as progress:
            return self._run_groups(call, progress)

    def _run_groups(self, call: _Call, progress: Progress) -> tuple[list, list]:
        X, y = call.X, call.y
        groups = self._groups(call.fmap)
        results, target_parts = [], []
        unused_auto: set[tuple[str, str]] = set()
        for rows, sub_map in groups:
            Xg = X if isinstance(rows, slice) else (
                X[torch.as_tensor(rows)] if isinstance(X, torch.Tensor) else X[rows])
            yg = None if y is None else np.asarray(y)[rows]
            removal, behaviour = self._group_axes(call, rows, len(groups))
            game = Game(call.adapter, Xg, removal, behaviour, sub_map, y=yg,
                        aggregate=call.aggregate, seed=seed_sequence(call.merged["seed"]),
                        kind=call.kind, progress=progress, **call.game_options)
            if call.dataset:
                shards = self.dataset_shards(game) if self.dataset_shards else None
                game = DatasetGame(game, row_sampling=self.row_sampling,
                                   draws_per_unit=call.draws_per_unit, shards=shards)
            summary, estimator = self._summary(self.summary, game, call.merged)
            if estimator is not None:
                unused_auto.update((k, estimator) for k in _unused_auto_options(
                    call.options, summary, removal, behaviour))
            summary.check(game)  # budget and enumeration limits, before any model call
            progress.plan(summary.planned_rows(game), at_most=summary.stops_early)
            results.append((rows, summary(game), sub_map))
            progress.explained(len(Xg))
            targets = getattr(behaviour, "targets", None)  # resolved per row (prediction)
            if targets is not None and not call.dataset:
                target_parts.append((rows, targets.numpy()))
            call.game, call.summary_object, call.estimator = game, summary, estimator
            call.last_removal, call.last_behaviour = removal, behaviour
        for key, chosen in sorted(unused_auto):
            warn(f"option {key}={call.options[key]!r} was ignored: the Shapley auto rule chose "
                 f"the {chosen!r} estimator, which does not take {key!r} (pass "
                 f"summary={chosen!r} or another estimator to control it)")
        call.ignored = {key for key, _ in unused_auto}
        return results, target_parts

    # ------------------------------------------------------------------------------------

    @staticmethod
    def _groups(fmap: FeatureMap):
        if fmap.shared:
            return [(slice(None), fmap)]
        dj = fmap.d_per_map
        out = []
        for d in np.unique(dj):
            rows = np.flatnonzero(dj == d)
            out.append((rows, fmap.subset(rows)))
        return out

    @staticmethod
    def _summary(spec, game, options: dict) -> tuple[Summary, str | None]:
        """The summary (the Shapley auto rule's choice for ``"auto"``) and the auto rule's
        estimator name, if it chose."""
        estimator = None
        if isinstance(spec, str) and registry.normalize(spec) == "auto":
            spec = estimator = auto_estimator(game, options.get("budget"))
        summary = _build("summary", spec, options, set(), Summary)
        return summary, estimator or getattr(summary, "name", str(spec))

    @staticmethod
    def _known_options(removal, behaviour, summary) -> list[str]:
        """Options that the chosen removal, behaviour and summary (or the game) accept."""
        known = set(GAME_OPTIONS) | {"seed", "device"}
        if isinstance(summary, Summary):
            classes = [type(summary)]
        elif isinstance(summary, type):
            classes = [summary]
        elif registry.normalize(summary) == "auto":
            classes = [registry.get("summary", s) for s in AUTO_ESTIMATORS]
        else:
            classes = [registry.get("summary", summary)]
        for cls in (type(removal), type(behaviour), *classes):
            known |= _params(cls)
        if "value" in known:
            known.add("baseline")
        return sorted(known)

    @staticmethod
    def _assemble(call: _Call, results: list, target_parts: list, seconds: float,
                  evaluations: int) -> Explanation:
        """One Explanation from the groups' summary results."""
        X, fmap, game, dataset = call.X, call.fmap, call.game, call.dataset
        n = 1 if dataset else X.shape[0]
        d = fmap.d
        tail = results[0][1].values.shape[2:]
        values = np.full((n, d, *tail), np.nan)
        stderr = np.full((n, d, *tail), np.nan)
        base = np.full((n, *tail), np.nan)
        units = np.zeros(n, np.int64)
        coalitions = np.zeros(n, np.int64)
        converged = np.zeros(n, bool)
        extras: dict[str, np.ndarray] = {}
        for rows, res, _ in results:
            r = np.arange(n) if isinstance(rows, slice) else rows
            dd = res.values.shape[1]
            values[r, :dd], stderr[r, :dd] = res.values, res.stderr
            base[r] = np.asarray(res.base_values).reshape(len(r), *tail)
            units[r], coalitions[r], converged[r] = res.units, res.coalitions, res.converged
            for k, v in res.extras.items():
                if isinstance(v, np.ndarray) and len(results) == 1:
                    extras[k] = v
        if target_parts:
            target = np.zeros(n, np.int64)
            for rows, t in target_parts:
                target[np.arange(n) if isinstance(rows, slice) else rows] = t
            extras["target"] = target  # the output explained for each row
        data = None if dataset else (X.detach().cpu().numpy() if isinstance(X, torch.Tensor)
                                     else np.asarray(X))
        feature_names = fmap.names if fmap.shared else [f"segment{i}" for i in range(d)]
        opts = {k: v for k, v in call.merged.items() if k != "background" and
                k not in call.ignored and isinstance(v, int | float | str | bool | type(None))}
        if call.table is not None and call.table.categorical:  # what the codes in data mean
            opts["categories"] = call.table.categories()
        opts["estimator"] = call.estimator
        opts["kind"] = call.kind
        opts["aggregate"] = game.local_game.aggregate if dataset else game.aggregate
        if game.sample_rows:
            opts["draws_per_unit"] = game.draws_per_unit or game.local_game.K
        summary = call.summary_object
        summary_desc = summary.describe() if hasattr(summary, "describe") else {}
        summary_desc.update({k: v for k, v in results[0][1].extras.items()
                             if isinstance(v, int | float | str | list)})
        return Explanation(
            values=values, stderr=stderr, base_values=base, data=data,
            feature_names=list(feature_names),
            feature_map=None if call.kind == "tabular" else fmap.index,
            channel_axis=fmap.channel_axis, method=call.method,
            output_names=_output_names(call.adapter), removal=call.last_removal.describe(),
            behaviour=call.last_behaviour.describe(), summary=summary_desc,
            evaluations=int(evaluations), coalitions=coalitions, units=units,
            converged=converged, seconds=float(seconds), options=opts, extras=extras,
            **{k: extras.pop(k, None) for k in ("interactions", "interaction_stderr")})


def _output_names(adapter) -> list[str] | None:
    """The model's outputs named by a scikit-learn classifier's ``classes_``."""
    classes = getattr(getattr(adapter, "estimator", None), "classes_", None)
    if classes is None or adapter.n_outputs != len(classes):
        return None
    return [str(c) for c in np.asarray(classes).tolist()]


def auto_estimator(game, budget: int | None) -> str:
    """The Shapley auto rule: exact when affordable; otherwise, for games on the probability
    scale, regression-adjusted KernelSHAP (its logit-scale surrogate is where it gains: about
    0.4x KernelSHAP's error on benchmark problem 1), with the network surrogate of
    ``ra-kernelshap-net`` up to its 16 features from :data:`NETWORK_MIN_COALITIONS` sampled
    coalitions (half the error of shapiq 1.8.0's best estimator there, at about its seconds);
    KernelSHAP for other scales (where the pairwise surrogate adds nothing to paired
    sampling); permutation sampling for stochastic (row-sampled dataset) games."""
    from .summaries.network_kernelshap import MAX_EXACT_SURROGATE

    d, K = game.d, game.rows_per_coalition
    if game.sample_rows:
        return "permutation-shapley"
    if (budget is None and d <= 12) or (budget is not None and d <= 20 and
                                        (2**d - 1) * K + 1 <= budget):
        return "exact-shapley"
    if game.value_scale != "probability":
        return "kernelshap"
    enough = budget is None or budget // K >= NETWORK_MIN_COALITIONS
    return "ra-kernelshap-net" if d <= MAX_EXACT_SURROGATE and enough else "ra-kernelshap"


def explain(model: Any, X: Any, method: str = "shap", *, y: Any = None,
            background: Any = None, features: Any = None, output_kind: str | None = None,
            progress: bool | str = "auto", **options: Any) -> Explanation:
    """Explain ``model`` on rows ``X`` with a named method in one call.

    Parameters
    ----------
    model : torch module, scikit-learn estimator or function of a numpy array (of a
        DataFrame with ``X``'s columns when ``X`` is one).
    X : rows to explain: tabular ``(n, p)`` (numpy or pandas; text, category and boolean
        columns are explained as categories, see :mod:`xai.tabular`), images
        ``(n, C, H, W)`` / ``(n, H, W, C)`` / ``(n, H, W)``, or integer token ids ``(n, L)``.
    method : a preset name, e.g. ``"shap"``, ``"kernelshap"``, ``"lime"``, ``"occlusion"``,
        ``"rise"``, ``"sage"`` (``xai.methods()`` lists them).
    y : labels, for loss behaviours (``lossshap``, ``sage``, ``permutation-importance``).
    background : background rows for marginal removal; required by baseline ``"mean"`` /
        ``"median"`` (the tabular default of ``occlusion`` and ``lime``).
    features : a :class:`~xai.features.FeatureMap`, a dict of column groups, a superpixel
        method name, ``"pixels"`` or a patch size.
    output_kind : what the model returns: ``"logits"``, ``"probability"`` or ``"raw"``.
    progress : a bar over the model rows planned by the method (``xai.progress``), with the
        explained rows, rate and time left: ``True``, ``False`` or ``"auto"`` (on a terminal
        or in a notebook). Warnings are printed above it.
    options : axis options (``budget``, ``tol``, ``seed``, ``target``, ``output``,
        ``baseline``, ``max_background``, ``memory_cap``, ``batch_size``, ...), and
        ``device``: where a torch module runs (``"cpu"``, ``"cuda"``, ``"cuda:1"``,
        ``"mps"`` or a ``torch.device``; default: where its parameters are). The module and
        every synthetic input (masks, backgrounds, blends) are on that device during the
        call; the module is moved there when the call begins and put back afterwards, also
        after an error (the same parameter and buffer tensors, on their own devices), and
        the results are numpy arrays on the CPU. A device this machine lacks is an
        :class:`~xai.errors.OptionError` before any model call; scikit-learn estimators and
        functions accept only ``"cpu"``.

        ``backend="ray"`` explains the rows on a Ray cluster (``pip install 'xai[ray]'``;
        :mod:`xai.ray_explain`): the rows in blocks (at least 64 rows, at most 64 blocks; never
        a function of the number of workers), each block a Ray task running this same local
        explain, the model and background put once in the object store, and the blocks joined
        in row order into one Explanation whose values, standard errors, base values,
        coalitions, units, convergence flags and per-row extras are bit-identical to a local
        run with the same seed, for any number of workers (``seed=None``: the driver draws
        one seed for every task). ``evaluations`` sums the tasks' rows (a coalition shared by
        every row, such as v(∅), is evaluated once per block). ``address``: the cluster
        (default ``RAY_ADDRESS``, else an open connection or a new local cluster);
        ``workers``: tasks in flight (default the cluster's CPUs / ``num_cpus``);
        ``num_cpus`` per task (default 1, also its torch threads); ``num_gpus`` per task
        (default 1 when ``device`` is CUDA). ``device`` is checked by each task before its
        first model call (Ray makes a task's GPUs ``cuda:0`` onwards), so the calling
        process needs no GPU of its own. A task whose worker dies is run again (up to
        3 times); a model's error arrives as the same :class:`~xai.errors.ModelError`; no
        Ray installed is a :class:`~xai.errors.MissingDependencyError`, an unreachable
        address a :class:`~xai.errors.ClusterError`, both before any model call. Dataset
        methods (``sage``, ``permutation-importance``) run their summary in this process
        and sum each coalition's values over the data rows on Ray actors. Without
        ``backend="ray"`` nothing imports Ray.
    """
    return Explainer.from_preset(method, progress=progress, **options).explain(
        model, X, y, background=background, features=features, output_kind=output_kind)
