"""xai: explain trained models by removing features.

Every method is a removal x behaviour x summary (Covert, Lundberg & Lee 2021); named methods
are presets on those axes. ``xai.explain(model, X, method="shap", background=...)`` is the one
call; :class:`xai.Explainer` builds any other combination.
"""

# importing these registers their components (removals, behaviours, summaries, metrics,
# data sets, concept removal)
from . import behaviours, concepts, datasets, metrics, removals, summaries  # noqa: F401
from . import presets as _presets  # noqa: F401
from .config import config
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
from .explainer import Explainer, explain
from .explanation import Explanation
from .external import ExternalExplainer
from .features import FeatureMap
from .game import DatasetGame, Game
from .models import as_model
from .plugins import hookimpl
from .registry import names as _names
from .registry import register

__version__ = "0.1.0"


def methods() -> list[str]:
    """Names of the registered methods (presets and whole explainers)."""
    return _names("explainer")


__all__ = ["BehaviourError", "BenchEnvironmentError", "BenchLockedError", "BudgetError", "DatasetGame", "Explainer", "Explanation",
           "ExternalExplainer", "FeatureMap", "FeatureMapError", "FileFormatError", "Game", "InputError",
           "LabelError", "MaskError", "ModelError", "ModelTypeError", "OptionError", "ProvenanceError",
           "RegistrationError", "TargetError", "UnknownNameError", "XaiError",
           "as_model", "config", "explain", "hookimpl", "methods", "register"]
