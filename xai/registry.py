"""Name-keyed registries of components: removals, behaviours, summaries, explainers (presets).

Each kind is a plain dict filled by :func:`register`. Names are case-insensitive and ``_`` and
``-`` are equivalent. Step 2 (plugins) puts pluggy in front of these dicts.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .errors import XaiError, unknown_name

KINDS = ("removal", "behaviour", "summary", "explainer", "metric", "dataset")

_REGISTRY: dict[str, dict[str, Any]] = {kind: {} for kind in KINDS}
_SOURCES: dict[tuple[str, str], str] = {}


def normalize(name: str) -> str:
    """Canonical form of a component name: lower case, ``_`` replaced by ``-``."""
    return str(name).strip().lower().replace("_", "-")


def register(kind: str, name: str, obj: Any = None, *, source: str = "xai",
             aliases: tuple[str, ...] = ()) -> Callable[[Any], Any] | Any:
    """Register ``obj`` as component ``name`` of ``kind``; usable as a decorator.

    Registering a second, different object under a taken name raises an error that names both
    sources.
    """
    if kind not in _REGISTRY:
        raise unknown_name("component kind", kind, KINDS)

    def add(target: Any) -> Any:
        for key in (name, *aliases):
            key = normalize(key)
            old = _REGISTRY[kind].get(key)
            if old is not None and old is not target:
                raise XaiError(
                    f"{kind} {key!r} is registered twice: by {_SOURCES[(kind, key)]} and by "
                    f"{source}. Rename one of them (e.g. prefix it with its package name)."
                )
            _REGISTRY[kind][key] = target
            _SOURCES[(kind, key)] = source
        return target

    return add if obj is None else add(obj)


def get(kind: str, name: str) -> Any:
    """Look up a registered component, raising ``UnknownNameError`` with the known names."""
    table = _REGISTRY[kind]
    key = normalize(name)
    if key not in table:
        raise unknown_name(kind, name, table)
    return table[key]


def names(kind: str) -> list[str]:
    """Sorted registered names of ``kind``."""
    return sorted(_REGISTRY[kind])


def source(kind: str, name: str) -> str:
    """Where component ``name`` of ``kind`` came from."""
    return _SOURCES[(kind, normalize(name))]
