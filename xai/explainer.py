"""``Explainer`` (any removal x behaviour x summary) and the one-call ``explain()``."""

from __future__ import annotations

import sys
import time
import warnings
from typing import Any

import numpy as np
import torch

from . import registry
from .behaviours import Behaviour
from .errors import FeatureMapError, InputError, LabelError, unknown_name
from .explanation import Explanation
from .features import FeatureMap, image_layout
from .game import DatasetGame, Game
from .inputs import check_labels, check_options, prepare_table
from .models import SklearnModel, TorchModel, as_model
from .presets import Preset
from .registry import constructor_options as _params
from .removals import Removal
from .summaries.base import Summary, seed_sequence
from .tabular import check_removal, model_for_table

GAME_OPTIONS = ("memory_cap", "batch_size", "aggregate", "cache", "draws_per_unit",
                "memory_format")
AUTO_ESTIMATORS = ("exact-shapley", "ra-kernelshap", "kernelshap", "permutation-shapley")


def _is_tokens(adapter, X, features) -> bool:
    """Token ids: integer 2-D inputs of a torch module, or a token feature map. Integer tables
    of scikit-learn models and callables are tabular (counts, codes)."""
    if isinstance(features, FeatureMap) and features.kind == "token":
        return True
    integer = not (X.dtype.is_floating_point if isinstance(X, torch.Tensor) else
                   np.issubdtype(X.dtype, np.floating))
    return integer and X.ndim == 2 and isinstance(adapter, TorchModel)


def _as_float_table(X):
    """Tabular inputs as float64 (numpy or torch)."""
    if isinstance(X, torch.Tensor):
        return X if X.is_floating_point() else X.to(torch.float64)
    return X.astype(np.float64)


def _kind(shape: tuple[int, ...], is_tokens: bool) -> str:
    if is_tokens:
        return "tokens"
    return "tabular" if len(shape) == 1 else "image"


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


def _feature_map(features, X, names, kind: str, method: str) -> FeatureMap:
    shape = tuple(X.shape[1:])
    if isinstance(features, FeatureMap):
        pos = features.pos_shape
        if pos != shape and (features.channel_axis is None or len(shape) != len(pos) + 1):
            raise InputError(f"X rows have shape {shape}; the feature map expects rows of shape "
                             f"{pos}. Give X with that shape, or build the feature map for X")
        return features
    if kind == "tabular":
        if features is None:
            return FeatureMap.tabular(shape[0], names)
        if isinstance(features, dict):
            return FeatureMap.groups(features, names or shape[0])
        raise FeatureMapError(f"for tabular inputs features= must be a dict of groups or a "
                              f"FeatureMap, got {features!r}")
    if kind == "tokens":
        return FeatureMap.tokens(shape[0])
    if len(shape) > 3:
        raise InputError(f"X rows have shape {shape} ({len(shape) + 1}-D inputs): give tabular "
                         "(n, p), images (n, C, H, W), (n, H, W, C) or (n, H, W), or token ids "
                         "(n, L); for other inputs pass features= a FeatureMap of that shape")
    cax, hw = image_layout(shape)
    if features is None:
        features = "pixels" if method == "rise" else "slic"
    if isinstance(features, int):
        return FeatureMap.patches(hw, features, channel_axis=cax)
    if isinstance(features, tuple) and features and features[0] == "patches":
        return FeatureMap.patches(hw, features[1], channel_axis=cax)
    if features == "pixels":
        return FeatureMap.patches(hw, 1, channel_axis=cax)
    if isinstance(features, str):
        arr = X.detach().cpu().numpy() if isinstance(X, torch.Tensor) else np.asarray(X)
        return FeatureMap.superpixels(arr, features, channel_axis=cax)
    raise FeatureMapError(f"features= {features!r} is not understood: give a FeatureMap, "
                          "'slic' / 'quickshift' / 'felzenszwalb', 'pixels', or a patch size")


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


class Explainer:
    """Any combination of the three axes, scikit-learn style: options in the constructor,
    work in :meth:`explain`.

    ``removal``, ``behaviour`` and ``summary`` are registered names or objects; ``summary=
    "auto"`` applies the Shapley auto rule. Other keyword options are routed to the axis whose
    constructor accepts them (e.g. ``background``, ``baseline``, ``target``, ``output``,
    ``budget``, ``tol``, ``seed``, ``n_samples``, ``kernel_width``) or to the game
    (``memory_cap``, ``batch_size``, ``aggregate``); an unknown option is an error.
    """

    def __init__(self, removal: str | Removal = "marginal",
                 behaviour: str | Behaviour = "prediction",
                 summary: str | Summary = "auto", *, method: str | None = None,
                 dataset: bool | None = None, row_sampling: bool = False,
                 progress: bool | str = "auto", **options: Any) -> None:
        self.removal = removal
        self.behaviour = behaviour
        self.summary = summary
        self.method = method
        self.dataset = dataset
        self.row_sampling = row_sampling
        self.progress = progress
        self.options = options

    @classmethod
    def from_preset(cls, method: str, **options: Any) -> Explainer:
        """The explainer of a named method (``xai.registry.names("explainer")``)."""
        preset: Preset = registry.get("explainer", method)
        if not isinstance(preset, Preset):  # a whole explainer registered by a plugin
            return preset(**options)
        return cls(preset.removal, preset.behaviour, preset.summary, method=preset.name,
                   dataset=preset.dataset, row_sampling=preset.row_sampling,
                   _preset=preset, **options)

    # ------------------------------------------------------------------------------------

    def explain(self, model: Any, X: Any, y: Any = None, *, background: Any = None,
                features: Any = None, output_kind: str | None = None) -> Explanation:
        """Explain rows ``X`` of ``model``; returns an :class:`~xai.explanation.Explanation`."""
        start = time.perf_counter()
        options = dict(self.options)
        preset: Preset | None = options.pop("_preset", None)
        options = check_options(options)  # types and ranges, before anything runs
        if background is not None:
            options["background"] = background
        adapter = as_model(model, batch_size=options.get("batch_size"), output_kind=output_kind)
        evaluations_before = adapter.evaluations  # a reused adapter keeps counting
        prepared = prepare_table(adapter, X, options.get("background"), options.get("baseline"))
        X, names, bg, table = prepared.X, prepared.names, prepared.background, prepared.table
        if bg is not None:
            options["background"] = bg
        if "baseline" in options:  # a baseline row of a DataFrame, encoded like X
            options["baseline"] = prepared.baseline
        caller_adapter = adapter
        adapter = model_for_table(adapter, table, user_adapter=adapter is model)
        kind = _kind(tuple(X.shape[1:]), _is_tokens(adapter, X, features))
        if kind == "tabular":
            X = _as_float_table(X)
        method = self.method or "custom"
        fmap = _feature_map(features, X, names, kind, method)
        # preset defaults that depend on the input kind
        removal_opts, summary_opts, behaviour_opts = {}, {}, {}
        if preset is not None:
            for k, v in preset.removal_options.items():
                removal_opts[k] = v[kind] if isinstance(v, dict) else v
            summary_opts, behaviour_opts = dict(preset.summary_options), \
                dict(preset.behaviour_options)
        merged = {**removal_opts, **behaviour_opts, **summary_opts, **options}
        used: set[str] = set()
        removal = _build("removal", self.removal, merged, used, Removal)
        check_removal(removal, table)  # categorical columns take values of rows only
        behaviour = _build("behaviour", self.behaviour, merged, used, Behaviour)
        dataset = behaviour.dataset if self.dataset is None else self.dataset
        if (behaviour.needs_labels or (dataset and getattr(behaviour, "labels", "given") ==
                                       "given")) and y is None:
            raise LabelError(f"method {method!r} (behaviour {behaviour.name!r}) needs labels: "
                             f"pass y= with one label per explained row ({X.shape[0]} rows)")
        if y is not None:
            y = _map_labels(adapter, behaviour, y)
            check_labels(y, X.shape[0], behaviour.name)
        game_opts = {k: merged[k] for k in GAME_OPTIONS if k in merged}
        used.update(game_opts)
        aggregate = game_opts.pop("aggregate", None) or (preset.aggregate if preset else None)
        draws_per_unit = game_opts.pop("draws_per_unit", "auto")
        seed = merged.get("seed")
        if seed is None:
            seed = int(np.random.SeedSequence().entropy % 2**63)
            merged["seed"] = seed
        used.update({"seed", "background"} & set(merged))
        summary_spec = self.summary
        known = self._known_options(removal, behaviour, summary_spec)
        if "background" in options and "background" not in known:
            raise InputError(f"method {method!r} uses no background (its removal "
                             f"{removal.name!r} takes replacement values from elsewhere); drop "
                             "background=")
        unknown = set(options) - set(known)
        if unknown:
            raise unknown_name("option", min(unknown), known)
        estimator = None
        groups = self._groups(fmap)
        results = []
        target_parts: list = []
        total_rows = 0
        progress = self._progress()
        game = None
        unused_auto: set[tuple[str, str]] = set()
        for rows, sub_map in groups:
            if isinstance(rows, slice):
                Xg = X
            else:
                Xg = X[torch.as_tensor(rows)] if isinstance(X, torch.Tensor) else X[rows]
            yg = None if y is None else np.asarray(y)[rows]
            if len(groups) == 1:
                removal_g, behaviour_g = removal, behaviour
            else:  # per-explicand options (baseline rows, targets) follow the group's rows
                merged_g = _slice_options(merged, rows, X.shape[0], X.ndim)
                removal_g = _build("removal", self.removal, merged_g, set(), Removal)
                check_removal(removal_g, table)
                behaviour_g = _build("behaviour", self.behaviour, merged_g, set(), Behaviour)
            game = Game(adapter, Xg, removal_g, behaviour_g, sub_map, y=yg, aggregate=aggregate,
                        seed=seed_sequence(seed), kind=kind, progress=progress, **game_opts)
            if dataset:
                game = DatasetGame(game, row_sampling=self.row_sampling,
                                   draws_per_unit=draws_per_unit)
            summary, estimator = self._summary(summary_spec, game, merged, used)
            if estimator is not None:
                unused_auto.update((k, estimator) for k in _unused_auto_options(
                    options, summary, removal_g, behaviour_g))
            summary.check(game)  # budget and enumeration limits, before any model call
            results.append((rows, summary(game), sub_map))
            targets = getattr(behaviour_g, "targets", None)  # resolved per row (prediction)
            if targets is not None and not dataset:
                target_parts.append((rows, targets.numpy()))
            total_rows += game.rows_evaluated
        if progress is not None:
            progress.close()
        for key, chosen in sorted(unused_auto):
            warnings.warn(f"option {key}={options[key]!r} was ignored: the Shapley auto rule "
                          f"chose the {chosen!r} estimator, which does not take {key!r} (pass "
                          f"summary={chosen!r} or another estimator to control it)",
                          stacklevel=3)
        recorded = {k: v for k, v in merged.items() if k not in {key for key, _ in unused_auto}}
        if table is not None and table.categorical:  # what the codes in e.data stand for
            recorded["categories"] = table.categories()
        self._target_parts = target_parts
        evaluations = adapter.evaluations - evaluations_before
        if adapter is not caller_adapter:  # the caller's own adapter counts the rows too
            caller_adapter.evaluations += evaluations
        expl = self._assemble(results, X, fmap, names, adapter, removal_g, behaviour_g, summary,
                              game, estimator, method, recorded, time.perf_counter() - start,
                              dataset, kind, evaluations)
        expl.record_removal(removal_g)  # kept (and saved) so that metrics rebuild it
        return expl

    # ------------------------------------------------------------------------------------

    def _progress(self):
        if self.progress is False:
            return None
        from tqdm.auto import tqdm

        disable = None if self.progress == "auto" else not self.progress
        if disable is None and not sys.stderr.isatty():
            return None
        return tqdm(unit="rows", desc="xai", disable=disable, leave=False)

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

    def _summary(self, spec, game, options: dict, used: set[str]):
        estimator = None
        if isinstance(spec, str) and registry.normalize(spec) == "auto":
            spec = auto_estimator(game, options.get("budget"))
            estimator = spec
        summary = _build("summary", spec, options, used, Summary)
        return summary, estimator or getattr(summary, "name", str(spec))

    @staticmethod
    def _known_options(removal, behaviour, summary) -> list[str]:
        """Options that the chosen removal, behaviour and summary (or the game) accept."""
        known = set(GAME_OPTIONS) | {"seed"}
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

    def _assemble(self, results, X, fmap, names, adapter, removal, behaviour, summary, game,
                  estimator, method, options, seconds, dataset, kind,
                  evaluations: int) -> Explanation:
        n = 1 if dataset else X.shape[0]
        d = fmap.d
        first = results[0][1]
        tail = first.values.shape[2:]
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
        if self._target_parts:
            target = np.zeros(n, np.int64)
            for rows, t in self._target_parts:
                target[np.arange(n) if isinstance(rows, slice) else rows] = t
            extras["target"] = target  # the output explained for each row
        data = None if dataset else (X.detach().cpu().numpy() if isinstance(X, torch.Tensor)
                                     else np.asarray(X))
        feature_names = fmap.names if fmap.shared else [f"segment{i}" for i in range(d)]
        opts = {k: v for k, v in options.items() if k != "background"
                and isinstance(v, int | float | str | bool | type(None))}
        if "categories" in options:
            opts["categories"] = options["categories"]
        opts["estimator"] = estimator
        opts["kind"] = kind
        opts["aggregate"] = game.local_game.aggregate if dataset else game.aggregate
        if game.sample_rows:
            opts["draws_per_unit"] = game.draws_per_unit or game.local_game.K
        summary_desc = summary.describe() if hasattr(summary, "describe") else {}
        summary_desc.update({k: v for k, v in results[0][1].extras.items()
                             if isinstance(v, int | float | str | list)})
        return Explanation(
            values=values, stderr=stderr, base_values=base, data=data,
            feature_names=list(feature_names),
            feature_map=None if kind == "tabular" else fmap.index,
            channel_axis=fmap.channel_axis, method=method, output_names=_output_names(adapter),
            removal=removal.describe(), behaviour=behaviour.describe(), summary=summary_desc,
            evaluations=int(evaluations), coalitions=coalitions, units=units,
            converged=converged, seconds=float(seconds), options=opts, extras=extras)


def _output_names(adapter) -> list[str] | None:
    """The model's outputs named by a scikit-learn classifier's ``classes_``."""
    classes = getattr(getattr(adapter, "estimator", None), "classes_", None)
    if classes is None or adapter.n_outputs != len(classes):
        return None
    return [str(c) for c in np.asarray(classes).tolist()]


def auto_estimator(game, budget: int | None) -> str:
    """The Shapley auto rule: exact when affordable; otherwise regression-adjusted KernelSHAP
    for games on the probability scale (its logit-scale surrogate is where it gains: about
    0.4x KernelSHAP's error on benchmark problem 1) and KernelSHAP for other scales (where
    the pairwise surrogate adds nothing to paired sampling); permutation sampling for
    stochastic (row-sampled dataset) games."""
    d, K = game.d, game.rows_per_coalition
    if game.sample_rows:
        return "permutation-shapley"
    if (budget is None and d <= 12) or (budget is not None and d <= 20 and
                                        (2**d - 1) * K + 1 <= budget):
        return "exact-shapley"
    from .summaries.regression import RegressionAdjustedKernelSHAP

    if RegressionAdjustedKernelSHAP().resolve_link(game) == "logit":
        return "ra-kernelshap"
    return "kernelshap"


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
    options : axis options (``budget``, ``tol``, ``seed``, ``target``, ``output``,
        ``baseline``, ``max_background``, ``memory_cap``, ``batch_size``, ...).
    """
    return Explainer.from_preset(method, progress=progress, **options).explain(
        model, X, y, background=background, features=features, output_kind=output_kind)
