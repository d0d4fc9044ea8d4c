"""Base of whole explainers that wrap another library (captum, shap, lime, ...).

:class:`ExternalExplainer` does what every such backend needs, so that each backend only
computes attributions: input preparation and checks (the same as ``xai.explain``), the model
adapter, the default target, the feature map, aggregation of per-position attributions to
features, timing and counting, and the :class:`~xai.explanation.Explanation`.
"""

from __future__ import annotations

import time
from typing import Any, ClassVar

import numpy as np
import torch

from .errors import TargetError, unknown_name
from .explanation import Explanation
from .features import FeatureMap
from .models import Model, as_model


class ExternalExplainer:
    """Base class of whole explainers. Subclasses set ``name``, ``defaults`` (their options
    and default values) and implement :meth:`attribute`.

    Options are keyword arguments of the constructor; an unknown one is an error listing the
    known ones. ``explain(model, X, y=None, *, background=None, features=None,
    output_kind=None)`` returns an :class:`~xai.explanation.Explanation` whose ``values`` are
    per feature: per input position when ``features`` is None and the method attributes
    positions (gradients), else summed over each feature's positions.
    """

    name = "external"
    defaults: ClassVar[dict[str, Any]] = {}
    per_position = True  # attributions come per input position (gradients, occlusion)

    def __init__(self, **options: Any) -> None:
        known = set(self.defaults) | {"target", "seed", "batch_size", "progress", "device"}
        for key in options:
            if key not in known:
                raise unknown_name(f"option of {self.name}", key, known)
        from .inputs import check_options

        self.options = {**self.defaults, **check_options(options)}

    # -- to implement -------------------------------------------------------------------
    def attribute(self, ctx: ExplainContext) -> dict[str, Any]:
        """Compute attributions. Returns a dict with ``values`` (``(n, *input_shape)`` when
        ``per_position``, else ``(n, d)``) and optionally ``base_values``, ``stderr`` and
        ``extras`` (name -> array) and ``options`` (JSON-able)."""
        raise NotImplementedError

    # -- shared machinery ---------------------------------------------------------------
    def explain(self, model: Any, X: Any, y: Any = None, *, background: Any = None,
                features: Any = None, output_kind: str | None = None) -> Explanation:
        """Explain rows ``X`` of ``model`` (see the class docstring)."""
        from .inputs import check_labels, feature_map_for, input_kind, is_tokens, prepare_inputs

        start = time.perf_counter()
        adapter = as_model(model, batch_size=self.options.get("batch_size"),
                           output_kind=output_kind, device=self.options.get("device"))
        evaluations_before = adapter.evaluations  # a reused adapter keeps counting
        X, names, background = prepare_inputs(adapter, X, background)
        check_labels(y, X.shape[0], self.name)
        kind = input_kind(tuple(X.shape[1:]), is_tokens(adapter, X, features))
        Xn = X.detach().cpu().numpy() if isinstance(X, torch.Tensor) else np.asarray(X)
        if kind == "tabular":
            Xn = Xn.astype(np.float64)
        fmap = None
        if features is not None or not self.per_position or kind == "tabular":
            fmap = feature_map_for(features, Xn, names, kind, self.name)
        ctx = ExplainContext(model=model, adapter=adapter, X=Xn, y=y, background=background,
                             fmap=fmap, kind=kind, names=names, options=self.options)
        with adapter.placement():  # device=: the module there for the call, then back
            ctx.targets = ctx.resolve_targets(self.options.get("target"))
            out = self.attribute(ctx)
        values = np.asarray(out["values"], dtype=np.float64)
        stderr = out.get("stderr")
        feature_map = None
        if self.per_position and fmap is not None:
            values = aggregate(values, fmap, Xn.shape[1:])
            stderr = None if stderr is None else np.sqrt(aggregate(np.asarray(stderr) ** 2,
                                                                   fmap, Xn.shape[1:]))
            feature_names = list(fmap.names) if fmap.shared else [
                f"segment{i}" for i in range(values.shape[1])]
            feature_map = None if kind == "tabular" else fmap.index
            channel_axis = fmap.channel_axis
        elif self.per_position:  # per position: one feature per input element
            shape = Xn.shape[1:]
            values = values.reshape(len(values), -1)
            stderr = None if stderr is None else np.asarray(stderr).reshape(len(values), -1)
            feature_names = [f"pos{i}" for i in range(values.shape[1])]
            feature_map = np.arange(values.shape[1]).reshape(1, *shape)
            channel_axis = None
        else:
            feature_names = list(fmap.names) if fmap is not None and fmap.shared else \
                [f"f{i}" for i in range(values.shape[1])]
            feature_map = None if fmap is None or kind == "tabular" else fmap.index
            channel_axis = None if fmap is None else fmap.channel_axis
        n = values.shape[0]
        base = out.get("base_values")
        base = np.full(n, np.nan) if base is None else np.asarray(base, dtype=np.float64)
        opts = {k: v for k, v in self.options.items()
                if isinstance(v, int | float | str | bool | type(None))}
        opts.update(out.get("options", {}))
        opts["kind"] = kind
        return Explanation(
            values=values, stderr=None if stderr is None else np.asarray(stderr, np.float64),
            base_values=base, data=Xn, feature_names=feature_names, feature_map=feature_map,
            channel_axis=channel_axis, method=self.name,
            removal=out.get("removal", {"name": "none"}),
            behaviour={"name": "prediction", "target": "array"},
            summary={"name": self.name}, evaluations=int(adapter.evaluations - evaluations_before + out.get(
                "evaluations", 0)), coalitions=None, units=None, converged=None,
            seconds=time.perf_counter() - start, options=opts,
            extras={"target": np.asarray(ctx.targets),
                    **{k: np.asarray(v) for k, v in out.get("extras", {}).items()}})


class ExplainContext:
    """Everything a backend needs: the user's model, the adapter, inputs as numpy, labels,
    background, feature map, input kind and options; ``targets`` (one output index per row)."""

    def __init__(self, *, model, adapter: Model, X: np.ndarray, y, background, fmap, kind,
                 names, options) -> None:
        self.model, self.adapter, self.X, self.y = model, adapter, X, y
        self.background, self.fmap, self.kind, self.names = background, fmap, kind, names
        self.options = options
        self.targets: np.ndarray | None = None
        self.outputs: np.ndarray | None = None  # f(X) (rows, k) float64, by resolve_targets

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Model outputs ``(rows, k)`` through the counting adapter, as numpy float64."""
        x = torch.as_tensor(X)
        with self.adapter.session():
            return self.adapter(x).numpy()

    def resolve_targets(self, target) -> np.ndarray:
        """One output index per explicand: ``"predicted"`` (default for more than one output),
        an int, or an int per row. This evaluates the model once on the explained rows, and
        those ``n`` rows are counted in the explanation's ``evaluations``. The outputs are kept
        in :attr:`outputs` (backends reuse them instead of evaluating ``f(X)`` again)."""
        out = self.outputs = self.predict(self.X)
        k = out.shape[1]
        if target is None or (isinstance(target, str) and target == "predicted"):
            return out.argmax(1) if k > 1 else np.zeros(len(out), dtype=np.int64)
        arr = np.broadcast_to(np.asarray(target), (len(out),)).astype(np.int64)
        if arr.min() < 0 or arr.max() >= k:
            raise TargetError(f"target {target!r} is out of range: the model has {k} outputs, "
                              f"valid targets are 0..{k - 1}")
        return arr

    def torch_module(self) -> torch.nn.Module:
        """The user's model as a torch module (gradient methods need one)."""
        from .errors import InputError

        if not isinstance(self.model, torch.nn.Module):
            raise InputError(f"this method needs a torch.nn.Module (it uses gradients); got a "
                             f"{type(self.model).__name__}. Use a removal-based method such as "
                             "'kernelshap' or 'occlusion' for other models.")
        return self.model


def aggregate(values: np.ndarray, fmap: FeatureMap, input_shape: tuple[int, ...]) -> np.ndarray:
    """Sum per-position attributions ``(n, *input_shape)`` over each feature: ``(n, d)``.
    Always-kept positions are dropped."""
    n = values.shape[0]
    flat = values.reshape(n, -1)
    idx = fmap.full_index(tuple(input_shape))
    idx = np.broadcast_to(idx, (n, idx.shape[1])) if idx.shape[0] == 1 else idx
    d = fmap.d
    out = np.zeros((n, d + 1))
    np.add.at(out, (np.arange(n)[:, None], np.where(idx < 0, d, idx)), flat)
    return out[:, :d]
