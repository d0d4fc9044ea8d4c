"""Plugins: pluggy hook specifications and the loader of the entry-point group ``xai``.

A plugin is a module (usually its own package) that implements any of the hooks below with
``@xai.hookimpl``; each hook returns a dict ``{name: component}``. Installed packages expose
the module under the entry-point group ``xai``::

    [project.entry-points.xai]
    my_plugin = "my_package.xai_plugin"

The built-in backends in ``plugins/`` (shap, lime, captum) are loaded exactly this way. Plugins
load lazily, on the first lookup of a component; a plugin that fails to import, or whose hook
raises or returns something that is not a dict of components, is reported (a warning, and
``xai plugins``) and skipped, so ``import xai`` never fails because of one.
"""

from __future__ import annotations

import importlib.metadata
import warnings
from dataclasses import dataclass
from typing import Any

import pluggy

from . import registry
from .registry import Source

hookspec = pluggy.HookspecMarker("xai")
hookimpl = pluggy.HookimplMarker("xai")

ENTRY_POINT_GROUP = "xai"

HOOK_KINDS = {
    "xai_removals": "removal",
    "xai_behaviours": "behaviour",
    "xai_summaries": "summary",
    "xai_explainers": "explainer",
    "xai_metrics": "metric",
    "xai_datasets": "dataset",
    "xai_suites": "suite",
}


class Hooks:
    """Hook specifications. Each returns ``{name: component}`` of one kind."""

    @hookspec
    def xai_removals(self) -> dict[str, Any]:
        """Removal classes (subclasses of :class:`xai.removals.Removal`)."""

    @hookspec
    def xai_behaviours(self) -> dict[str, Any]:
        """Behaviour classes (subclasses of :class:`xai.behaviours.Behaviour`)."""

    @hookspec
    def xai_summaries(self) -> dict[str, Any]:
        """Summary classes (subclasses of :class:`xai.summaries.Summary`)."""

    @hookspec
    def xai_explainers(self) -> dict[str, Any]:
        """Whole explainers: classes whose instances (built from keyword options) have
        ``explain(model, X, y=None, *, background=None, features=None, output_kind=None)``
        returning an :class:`xai.Explanation`; or :class:`xai.presets.Preset` objects."""

    @hookspec
    def xai_metrics(self) -> dict[str, Any]:
        """Evaluation metrics."""

    @hookspec
    def xai_datasets(self) -> dict[str, Any]:
        """Data sets (generators with known ground truth)."""

    @hookspec
    def xai_suites(self) -> dict[str, Any]:
        """Benchmark suites for ``xai bench``."""


@dataclass
class PluginRecord:
    """A loaded (or failed) plugin: its name, source, components and error, if any."""

    name: str
    source: Source
    components: dict[str, list[str]]
    error: str | None = None


_PM: pluggy.PluginManager | None = None
_RECORDS: dict[str, PluginRecord] = {}
_LOADING = False


def manager() -> pluggy.PluginManager:
    """The plugin manager (created on first use)."""
    global _PM
    if _PM is None:
        _PM = pluggy.PluginManager("xai")
        _PM.add_hookspecs(Hooks)
    return _PM


def _base_of(kind: str):
    from .behaviours import Behaviour
    from .removals import Removal
    from .summaries.base import Summary

    return {"removal": Removal, "behaviour": Behaviour, "summary": Summary}.get(kind)


def _check_component(kind: str, name: Any, obj: Any) -> str | None:
    """Why ``obj`` cannot be component ``name`` of ``kind`` (None when it can)."""
    if not isinstance(name, str) or not name.strip():
        return f"component names must be non-empty strings, got {name!r}"
    base = _base_of(kind)
    if base is not None:
        if not (isinstance(obj, type) and issubclass(obj, base)):
            return (f"{kind} {name!r} must be a subclass of {base.__module__}."
                    f"{base.__name__}, got {obj!r}")
    elif kind == "explainer":
        from .presets import Preset

        if not (isinstance(obj, Preset) or (callable(obj) and hasattr(obj, "explain"))):
            return (f"explainer {name!r} must be a Preset or a class with an explain() method, "
                    f"got {obj!r}")
    elif obj is None:
        return f"{kind} {name!r} is None"
    return None


def register_plugin(plugin: Any, name: str, source: Source | None = None) -> PluginRecord:
    """Register a plugin object (module or instance with hook implementations) and its
    components. Errors are recorded on the returned record and warned, never raised."""
    source = source or Source(name, name, "")
    record = PluginRecord(name, source, {})
    _RECORDS[name] = record
    pm = manager()
    try:
        pm.register(plugin, name=name)
    except Exception as exc:  # noqa: BLE001 - a broken plugin must never break xai
        return _fail(record, f"cannot register: {exc}")
    for hook, kind in HOOK_KINDS.items():
        impls = [i for i in getattr(pm.hook, hook).get_hookimpls() if i.plugin is plugin]
        for impl in impls:
            try:
                result = impl.function()
            except Exception as exc:  # noqa: BLE001 - isolate the plugin's failure
                _fail(record, f"hook {hook} raised {type(exc).__name__}: {exc}")
                continue
            if not isinstance(result, dict):
                _fail(record, f"hook {hook} returned {type(result).__name__}, not a dict "
                              "{name: component}")
                continue
            for cname, obj in result.items():
                problem = _check_component(kind, cname, obj)
                if problem:
                    _fail(record, f"hook {hook}: {problem}")
                    continue
                key = registry.normalize(cname)
                spaced = key if key.startswith(registry.normalize(name) + ".") else \
                    f"{registry.normalize(name)}.{key}"
                registry.register(kind, key, obj, source=source, strict=False,
                                  aliases=(spaced,) if spaced != key else ())
                record.components.setdefault(kind, []).append(key)
    return record


def _fail(record: PluginRecord, message: str) -> PluginRecord:
    record.error = message if record.error is None else f"{record.error}; {message}"
    warnings.warn(f"xai plugin {record.name!r} from {record.source.package}: {message}; "
                  "skipped", stacklevel=3)
    return record


def load_plugins(refresh: bool = False) -> dict[str, PluginRecord]:
    """Load every plugin of the entry-point group ``xai`` once (again with ``refresh``)."""
    global _LOADING
    if (_RECORDS and not refresh) or _LOADING:
        return _RECORDS
    _LOADING = True
    try:
        eps = importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)
        if not eps:
            _RECORDS.setdefault("<none>", PluginRecord("<none>", registry.CORE, {}))
        for ep in sorted(eps, key=lambda e: e.name):
            if ep.name in _RECORDS and not refresh:
                continue
            dist = getattr(ep, "dist", None)
            src = Source(ep.name, dist.name if dist else ep.value.split(".")[0],
                         dist.version if dist else "")
            try:
                module = ep.load()
            except Exception as exc:  # noqa: BLE001 - a plugin that fails to import is skipped
                record = PluginRecord(ep.name, src, {})
                _RECORDS[ep.name] = record
                _fail(record, f"failed to import {ep.value!r}: {type(exc).__name__}: {exc}")
                continue
            if manager().is_registered(module):
                continue
            register_plugin(module, ep.name, src)
    finally:
        _LOADING = False
    return _RECORDS


def plugin_records() -> list[PluginRecord]:
    """Every plugin seen, loaded or failed (for ``xai plugins``)."""
    load_plugins()
    return [r for n, r in sorted(_RECORDS.items()) if n != "<none>"]
