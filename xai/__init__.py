"""xai: explain trained models by removing features.

Every method is a removal x behaviour x summary (Covert, Lundberg & Lee 2021); named methods
are presets on those axes. ``xai.explain(model, X, method="shap", background=...)`` is the one
call; :class:`xai.Explainer` builds any other combination.

``import xai`` is light: it imports the errors, the registry and the plugin hooks. The rest
(and torch with it) is imported on first use of a name (``xai.explain``, ``xai.metrics``, ...),
and a kind's components are imported on the first lookup of that kind in the registry.
"""

from __future__ import annotations

import importlib
from typing import Any

from . import registry as _registry
from .config import config  # the settings object (light); it shadows its module's name
from .errors import (
    BehaviourError,
    BenchEnvironmentError,
    BenchLockedError,
    BudgetError,
    FeatureMapError,
    FileFormatError,
    InputError,
    LabelError,
    MaskError,
    ModelError,
    ModelTypeError,
    OptionError,
    ProvenanceError,
    RegistrationError,
    TargetError,
    UnknownNameError,
    XaiError,
)

__version__ = "0.1.0"

# the modules that register xai's own components of each kind, imported on the first lookup
# of that kind (xai.presets also declares the whole explainers that live elsewhere lazily)
CORE_MODULES = {
    "removal": ("xai.removals", "xai.concepts.removal"),
    "behaviour": ("xai.behaviours",),
    "summary": ("xai.summaries",),
    "explainer": ("xai.presets",),
    "metric": ("xai.metrics",),
    "dataset": ("xai.datasets", "xai.concepts.primitives"),
    "suite": (),  # xai.bench.load_components imports the suites with their data sets
}


def _core_loader(modules: tuple[str, ...]):
    def load() -> None:
        for module in modules:
            importlib.import_module(module)
    return load


for _kind, _modules in CORE_MODULES.items():
    if _modules:
        _registry.add_loader(_core_loader(_modules), kinds=(_kind,))

from .plugins import hookimpl  # installs the plugin loader after the core loaders

# public names and the module that defines each, imported on first use
_LAZY = {
    "Explainer": "xai.explainer", "explain": "xai.explainer",
    "Explanation": "xai.explanation", "ExternalExplainer": "xai.external",
    "FeatureMap": "xai.features", "DatasetGame": "xai.game", "Game": "xai.game",
    "as_model": "xai.models",
}


def __getattr__(name: str) -> Any:
    """Import a public name or a submodule (``xai.metrics``) on first use."""
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    if not name.startswith("__"):
        try:
            return importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"{__name__}.{name}":
                raise
    raise AttributeError(f"module 'xai' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


def register(kind: str, name: str, obj: Any = None, **options: Any) -> Any:
    """Register a component in-process (see :func:`xai.registry.register`); xai's own
    components of ``kind`` are loaded first, so they keep their names."""
    _registry.names(kind)
    return _registry.register(kind, name, obj, **options)


def methods() -> list[str]:
    """Names of the registered methods (presets and whole explainers)."""
    return _registry.names("explainer")


__all__ = ["BehaviourError", "BenchEnvironmentError", "BenchLockedError", "BudgetError",
           "DatasetGame", "Explainer", "Explanation", "ExternalExplainer", "FeatureMap",
           "FeatureMapError", "FileFormatError", "Game", "InputError", "LabelError",
           "MaskError", "ModelError", "ModelTypeError", "OptionError", "ProvenanceError",
           "RegistrationError", "TargetError", "UnknownNameError", "XaiError", "as_model",
           "config", "explain", "hookimpl", "methods", "register"]
