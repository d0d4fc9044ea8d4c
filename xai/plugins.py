"""Plugins: pluggy hook specifications and the loader of the entry-point group ``xai``.

A plugin is a module (usually its own package) that implements any of the hooks below with
``@xai.hookimpl``; each hook returns a dict ``{name: component}``. Installed packages expose
the module under the entry-point group ``xai``::

    [project.entry-points.xai]
    my_plugin = "my_package.xai_plugin"

The built-in backends in ``plugins/`` (shap, lime, captum) are loaded exactly this way.

Loading is lazy (on the first lookup of a component), once per process, and thread-safe: it
runs under a lock, and a lookup that arrives while another thread loads waits until loading has
finished. A plugin is isolated: any exception while importing it or registering its components
(``SystemExit`` included; ``KeyboardInterrupt`` is the user's and propagates) is reported with
the plugin's name (a warning, and FAILED in ``xai plugins``) and that plugin or component is
skipped, so neither ``import xai`` nor any other component fails because of one.

Names: a plugin component is registered under ``<name>`` and ``<plugin>.<name>``. A dotted
component name must use the plugin's own namespace (``captum.saliency`` from plugin
``captum``), so no plugin can make another plugin's namespaced names ambiguous. A plain name
that a core component owns is refused (reported FAILED with the reason); the plugin's
component stays reachable as ``<plugin>.<name>``. The plugin name ``xai`` is reserved for core
components (``xai.<name>``).
"""

from __future__ import annotations

import importlib.metadata
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pluggy

from . import registry
from ._warn import warn
from .errors import RegistrationError
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
    """A loaded (or failed) plugin: its name, source, components, the core names it was
    refused, and its errors, if any."""

    name: str
    source: Source
    components: dict[str, list[str]]
    error: str | None = None
    refused: list[tuple[str, str]] = field(default_factory=list)


_PM: pluggy.PluginManager | None = None
_RECORDS: dict[str, PluginRecord] = {}
_LOAD_LOCK = threading.RLock()  # held while loading; reentrant because loading registers
_LOADED = False  # set only once every entry point has been processed
_LOADING = False  # a plugin's own import may look a component up while it loads


def manager() -> pluggy.PluginManager:
    """The plugin manager (created on first use)."""
    global _PM
    with _LOAD_LOCK:
        if _PM is None:
            _PM = pluggy.PluginManager("xai")
            _PM.add_hookspecs(Hooks)
        return _PM


def _contained(record: PluginRecord, what: str, call: Callable[..., Any],
               *args: Any, **kwargs: Any) -> tuple[bool, Any]:
    """``(True, call(*args, **kwargs))``, or ``(False, None)`` after reporting on ``record``
    the exception the plugin's code raised. Every exception is contained, SystemExit
    included, since a plugin must never end the host process; KeyboardInterrupt is the
    user's and propagates."""
    try:
        return True, call(*args, **kwargs)
    except KeyboardInterrupt:
        # no warning (the user stopped it), but the half-loaded plugin is not shown as ok
        record.error = f"{record.error + '; ' if record.error else ''}{what} KeyboardInterrupt"
        raise
    except BaseException as exc:  # noqa: BLE001 - a broken plugin must never break xai
        _fail(record, f"{what} {type(exc).__name__}: {exc}")
        return False, None


def _reserved(name: str, source: Source) -> str | None:
    """Why a plugin cannot be called ``name`` or come from ``source`` (None when it can)."""
    if registry.normalize(name) + "." == registry.CORE_PREFIX:
        return (f"the plugin name {name!r} is reserved for xai's own components "
                f"('{registry.CORE_PREFIX}<name>'); rename the entry point")
    if registry.is_core(source):
        return (f"plugin {name!r} claims xai's own source {source}; give it a Source of its "
                "own (its package and version)")
    return None


def register_plugin(plugin: Any, name: str, source: Source | None = None) -> PluginRecord:
    """Register a plugin object (module or instance with hook implementations) and its
    components. Errors are recorded on the returned record and warned, never raised."""
    source = source or Source(name, name, "")
    record = PluginRecord(name, source, {})
    with _LOAD_LOCK:
        _RECORDS[name] = record
        if _reserved(name, source):
            return _fail(record, _reserved(name, source))
        ok, _ = _contained(record, "cannot register:", manager().register, plugin, name=name)
        if not ok:
            return record
        for hook, kind in HOOK_KINDS.items():
            impls = [i for i in getattr(manager().hook, hook).get_hookimpls()
                     if i.plugin is plugin]
            for impl in impls:
                _contained(record, f"hook {hook} raised", _register_hook, record, kind, hook,
                           impl)
        _note_refusals(record)
    return record


def _register_hook(record: PluginRecord, kind: str, hook: str, impl: Any) -> None:
    """Call one hook implementation and register the components it returns; a component
    that cannot be registered is reported and skipped, the others still load."""
    result = impl.function()
    if not isinstance(result, dict):
        _fail(record, f"hook {hook} returned {type(result).__name__}, not a dict "
                      "{name: component}")
        return
    for cname, obj in result.items():
        try:
            _register_component(record, kind, cname, obj)
        except RegistrationError as exc:
            _fail(record, f"hook {hook}: {exc}")


def _register_component(record: PluginRecord, kind: str, cname: Any, obj: Any) -> None:
    """Register ``obj`` under its namespaced name ``<plugin>.<name>`` and its plain name."""
    problem = registry.name_problem(cname)
    if problem:
        raise RegistrationError(problem)
    own = registry.normalize(record.name) + "."
    key = registry.normalize(cname)
    if "." in key and not key.startswith(own):
        raise RegistrationError(
            f"{kind} {cname!r}: a dotted name is namespaced, and plugin {record.name!r} may "
            f"only use its own namespace ('{own}<name>'); drop the other prefix")
    spaced = key if key.startswith(own) else own + key
    registry.register(kind, spaced, obj, source=record.source, strict=False)
    if spaced != key:
        registry.register(kind, key, obj, source=record.source, strict=False)
    # a plain name the core owns was refused: the component is there only under ``spaced``
    refused = record.source in registry.refused().get((kind, key), ())
    record.components.setdefault(kind, []).append(spaced if refused else key)


def _note_refusals(record: PluginRecord) -> None:
    """Report on ``record`` every core name its plugin was refused and not yet reported
    (also those a core registration took over after the plugin loaded)."""
    own = registry.normalize(record.name) + "."
    for (kind, key), sources in sorted(registry.refused().items()):
        if record.source not in sources or (kind, key) in record.refused:
            continue
        record.refused.append((kind, key))
        rest = (f"the plugin's is skipped under that name and stays available as "
                f"'{own}{key}'" if not key.startswith(own) else "the plugin's is skipped")
        _fail(record, f"{kind} {key!r} is a core name, so xai's own component keeps it; "
                      f"{rest}")


def _fail(record: PluginRecord, message: str) -> PluginRecord:
    record.error = message if record.error is None else f"{record.error}; {message}"
    warn(f"xai plugin {record.name!r} from {record.source.package}: {message}; "
         "skipped")
    return record


def load_plugins(refresh: bool = False) -> dict[str, PluginRecord]:
    """Load every plugin of the entry-point group ``xai`` once (again with ``refresh``: new
    and failed ones). Thread-safe: a call while another thread loads waits for it."""
    global _LOADED, _LOADING
    if _LOADED and not refresh:
        return _RECORDS
    with _LOAD_LOCK:
        if _LOADING or (_LOADED and not refresh):
            return _RECORDS
        _LOADING = True
        try:
            for ep in _entry_points():
                if ep.name not in _RECORDS or refresh:
                    _load_entry_point(ep)
            _LOADED = True
        finally:
            _LOADING = False
    return _RECORDS


def _entry_points() -> list[importlib.metadata.EntryPoint]:
    """The entry points of group ``xai`` by name; none (reported) when listing them fails."""
    record = PluginRecord("<entry points>", Source("<entry points>", "importlib.metadata", ""),
                          {})
    ok, eps = _contained(record, f"cannot list entry-point group {ENTRY_POINT_GROUP!r}:",
                         importlib.metadata.entry_points, group=ENTRY_POINT_GROUP)
    if not ok:
        _RECORDS[record.name] = record
        return []
    return sorted(eps, key=lambda e: e.name)


def _source_of(ep: importlib.metadata.EntryPoint) -> Source:
    """The plugin's source: its distribution's name and version (from the module path when
    the distribution's metadata cannot be read)."""
    try:
        dist = ep.dist
        return Source(ep.name, dist.name, dist.version)
    except Exception:  # noqa: BLE001 - metadata of a broken distribution is only cosmetic
        return Source(ep.name, ep.value.split(".")[0].split(":")[0], "")


def _load_entry_point(ep: importlib.metadata.EntryPoint) -> None:
    """Import one entry point's module and register it; failures end up on its record."""
    source = _source_of(ep)
    record = PluginRecord(ep.name, source, {})
    if _reserved(ep.name, source):
        _RECORDS[ep.name] = _fail(record, _reserved(ep.name, source))
        return
    ok, module = _contained(record, f"failed to import {ep.value!r}:", ep.load)
    if ok:
        ok, known = _contained(record, "cannot register:", manager().is_registered, module)
    if not ok:
        _RECORDS[ep.name] = record
    elif not known:
        register_plugin(module, ep.name, source)


registry.add_loader(lambda: load_plugins())  # looked up at call time, so it can be patched


def unload_plugins() -> None:
    """Forget every plugin and its components; the next lookup loads the entry points again
    (tests, or a plugin installed into a running session)."""
    global _PM, _LOADED
    with _LOAD_LOCK:
        for record in _RECORDS.values():
            if not registry.is_core(record.source):  # a refused plugin named "xai"
                registry.unregister_source(record.source)
        _RECORDS.clear()
        _PM = None
        _LOADED = False


def plugin_records() -> list[PluginRecord]:
    """Every plugin seen, loaded or failed (for ``xai plugins``)."""
    load_plugins()
    with _LOAD_LOCK:
        for record in _RECORDS.values():
            _note_refusals(record)
        return [r for _, r in sorted(_RECORDS.items())]
