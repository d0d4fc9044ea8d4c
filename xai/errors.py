"""Error types of xai. Every error is a ``ValueError`` that names the problem and the fix."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class XaiError(ValueError):
    """Base class of every error raised by xai for bad input or a failing model."""


class InputError(XaiError):
    """Inputs, background or baseline have the wrong shape, columns or values."""


class FeatureMapError(XaiError):
    """Feature groups or segments overlap, miss input positions, or are empty."""


class MaskError(XaiError):
    """A coalition mask has the wrong width, dtype or values for the removal."""


class TargetError(XaiError):
    """The requested output target does not exist."""


class LabelError(XaiError):
    """Labels are missing, of the wrong length, or out of range for a loss behaviour."""


class BehaviourError(XaiError):
    """The behaviour cannot be computed for this model."""


class ModelError(XaiError):
    """The model raised, or returned NaN/inf, the wrong number of rows or outputs.

    ``inputs`` holds the inputs of the failing chunk where they are known.
    """

    def __init__(self, message: str, inputs=None):
        super().__init__(message)
        self.inputs = inputs


class UnknownNameError(XaiError, KeyError):
    """An unknown method, removal, behaviour, summary or option name."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class ShapeError(InputError):
    """Attributions, inputs, targets or ground-truth masks have incompatible shapes."""


class MissingGroundTruth(XaiError):
    """A ground-truth metric was asked for on a data set without ground truth."""


class MissingInteractions(InputError):
    """An interaction plot was asked for on an explanation without pairwise interactions."""


class BudgetError(XaiError):
    """The evaluation budget is too small for the summary, or enumeration is too large."""


class OptionError(InputError):
    """An option has the wrong type or is out of range (budget, seed, batch_size, tol, ...)."""


class RegistrationError(XaiError):
    """A component cannot be registered: not of the kind's type, an empty name, or a name
    that a core component owns."""


class FileFormatError(XaiError):
    """A saved explanation or result file is damaged, truncated, crafted or of another format."""


class ProvenanceError(XaiError):
    """An explanation lacks what a metric needs to rebuild the removal that made it (e.g. a
    loaded explanation whose background was not saved)."""


class InputFileError(InputError):
    """A model or data file is missing, of an unknown kind, or cannot be read as that kind."""


class UntrustedModelError(InputFileError):
    """Loading a model file would run code or build types that were not trusted explicitly (a
    pickle without ``trust_pickle``, a skops file with types outside ``trust``)."""


class OutputConflictError(XaiError):
    """An output folder holds a run of other options or inputs, so resuming into it would mix
    two runs: choose another folder or overwrite it."""


def unknown_name(kind: str, name: object, known: Iterable[str]) -> UnknownNameError:
    """Build an :class:`UnknownNameError` listing the known names and the closest match."""
    known = sorted(set(known))
    close = difflib.get_close_matches(str(name), known, n=1, cutoff=0.5)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    return UnknownNameError(
        f"unknown {kind} {name!r}.{hint} Known {kind} names: {', '.join(known)}."
    )


class BenchLockedError(XaiError):
    """Another benchmark run holds the lock of the output folder (one writer per folder)."""


class BenchEnvironmentError(XaiError):
    """A benchmark run stopped because its environment failed (a file could not be written,
    the disk is full, a dependency is missing), not because of a cell's method or metric.

    The affected cells are not recorded, so running the same command again retries them.
    ``failures`` lists them (key, names, stage, error type and message); ``out`` is the
    output folder.
    """

    def __init__(self, message: str, failures=(), out=None):
        super().__init__(message)
        self.failures = list(failures)
        self.out = out


class ModelTypeError(InputError, TypeError):
    """The model is not of the kind a component needs (e.g. randomisation re-initialises the
    parameters of a ``torch.nn.Module`` and cannot change a plain function)."""


class MissingDependencyError(XaiError, ImportError):
    """An optional package that a feature needs is not installed; the message names the
    ``pip install`` command (an ``ImportError`` too, so ``except ImportError`` still works)."""


class IndexingError(InputError, IndexError):
    """An index of an explanation is out of range or of a kind the axis does not take."""


class UnknownLabelError(IndexingError, KeyError):
    """A feature or output name given as an index of an explanation does not exist."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class ClusterError(XaiError):
    """The Ray cluster of ``backend='ray'`` cannot be reached or started (a wrong
    ``address``/``RAY_ADDRESS``, no head node running)."""
