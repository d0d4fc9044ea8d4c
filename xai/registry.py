"""Name-keyed registries of components: removals, behaviours, summaries, explainers, metrics
and data sets.

Each kind is a plain dict filled by :func:`register` (in-process, also as a decorator) or by
plugins found through pluggy and the entry-point group ``xai`` (:mod:`xai.plugins`). Names are
case-insensitive and ``_`` and ``-`` are equivalent.

Name conflicts: every plugin component is registered under its own name *and* under its
namespaced name ``<plugin>.<name>``. When two sources register the same plain name, neither
import fails; looking the plain name up raises an error naming both sources and their
namespaced names, which always work.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .errors import XaiError, unknown_name

KINDS = ("removal", "behaviour", "summary", "explainer", "metric", "dataset", "suite")


@dataclass(frozen=True)
class Source:
    """Where a component came from: the plugin (entry point) name, distribution and version."""

    plugin: str
    package: str
    version: str

    def __str__(self) -> str:
        return f"{self.package} {self.version} (plugin {self.plugin!r})"


CORE = Source("xai", "xai", "")

_REGISTRY: dict[str, dict[str, Any]] = {kind: {} for kind in KINDS}
_SOURCES: dict[tuple[str, str], Source] = {}
_CONFLICTS: dict[tuple[str, str], list[Source]] = {}


def normalize(name: str) -> str:
    """Canonical form of a component name: lower case, ``_`` replaced by ``-``."""
    return str(name).strip().lower().replace("_", "-")


def _check_kind(kind: str) -> None:
    if kind not in _REGISTRY:
        raise unknown_name("component kind", kind, KINDS)


def register(kind: str, name: str, obj: Any = None, *, source: Source | str | None = None,
             aliases: tuple[str, ...] = (), strict: bool = True) -> Callable[[Any], Any] | Any:
    """Register ``obj`` as component ``name`` of ``kind``; usable as a decorator::

        @xai.register("summary", "my-summary")
        class MySummary(xai.summaries.Summary): ...

    A different object under a taken name raises an error naming both sources
    (``strict=True``, in-process registration) or records a conflict that is reported when
    the name is looked up (``strict=False``, used for plugins).
    """
    _check_kind(kind)
    if source is None:
        source = CORE
    elif isinstance(source, str):
        source = Source(source, source, "")

    def add(target: Any) -> Any:
        for key in (name, *aliases):
            key = normalize(key)
            old = _REGISTRY[kind].get(key)
            if old is not None and old is not target:
                first = _SOURCES[(kind, key)]
                if strict:
                    raise XaiError(
                        f"{kind} {key!r} is registered twice: by {first} and by {source}. "
                        "Rename one of them (e.g. prefix it with its package name).")
                _CONFLICTS.setdefault((kind, key), [first]).append(source)
                continue
            _REGISTRY[kind][key] = target
            _SOURCES[(kind, key)] = source
        return target

    return add if obj is None else add(obj)


def unregister(kind: str, name: str) -> None:
    """Remove component ``name`` of ``kind`` (for tests and interactive sessions)."""
    key = normalize(name)
    _REGISTRY[kind].pop(key, None)
    _SOURCES.pop((kind, key), None)
    _CONFLICTS.pop((kind, key), None)


def get(kind: str, name: str) -> Any:
    """Look up a registered component, raising ``UnknownNameError`` with the known names."""
    from .plugins import load_plugins

    _check_kind(kind)
    load_plugins()
    table = _REGISTRY[kind]
    key = normalize(name)
    if (kind, key) in _CONFLICTS:
        sources = _CONFLICTS[(kind, key)]
        alts = [f"{s.plugin}.{key}" for s in sources if s is not CORE]
        raise XaiError(
            f"{kind} {key!r} is provided by several sources: "
            f"{'; '.join(str(s) for s in sources)}. Use a namespaced name "
            f"({', '.join(repr(a) for a in alts)}) or uninstall one of the plugins.")
    if key not in table:
        raise unknown_name(kind, name, table)
    return table[key]


def names(kind: str) -> list[str]:
    """Sorted registered names of ``kind``."""
    from .plugins import load_plugins

    _check_kind(kind)
    load_plugins()
    return sorted(_REGISTRY[kind])


def source(kind: str, name: str) -> Source:
    """Where component ``name`` of ``kind`` came from."""
    return _SOURCES[(kind, normalize(name))]


def conflicts() -> dict[tuple[str, str], list[Source]]:
    """Names registered by more than one source, with those sources."""
    return dict(_CONFLICTS)
