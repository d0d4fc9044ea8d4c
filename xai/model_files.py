"""Models loaded from files or import paths, for ``xai explain`` (:mod:`xai.explain_files`).

- ``.skops``: a scikit-learn model saved with skops (``skops.io.dump``), loaded safely: skops
  builds only types it trusts by default and the types named in ``trust``; any other type in
  the file is refused with :class:`~xai.errors.UntrustedModelError`, which lists them.
- ``.joblib`` / ``.pkl`` / ``.pickle``: a pickle. Loading one runs whatever code the file holds,
  so it is for files you made or trust only, and is refused unless ``trust_pickle`` is set.
- ``.pt`` / ``.ts``: a TorchScript module (``torch.jit.script(model).save(path)``), loaded on
  the CPU in eval mode. A plain ``torch.save`` file is not TorchScript and is refused.
- ``package.module:name``: the object ``name`` of an importable module (a function of a
  DataFrame or array, an estimator, a torch module); ``package.module:name()`` calls ``name``
  with no arguments and explains what it returns (a factory). The current folder is importable.
"""

from __future__ import annotations

import hashlib
import importlib
import os
import re
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from .errors import InputFileError, MissingDependencyError, UntrustedModelError

__all__ = ["MODEL_SUFFIXES", "is_import_path", "load_model", "model_fingerprint"]

SKOPS_SUFFIXES = (".skops",)
PICKLE_SUFFIXES = (".joblib", ".pkl", ".pickle")
TORCHSCRIPT_SUFFIXES = (".pt", ".ts")
MODEL_SUFFIXES = SKOPS_SUFFIXES + PICKLE_SUFFIXES + TORCHSCRIPT_SUFFIXES

_IMPORT_PATH = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*(\(\))?$")
FILES_EXTRA = "pip install 'xai[files]'"


def is_import_path(spec: str) -> bool:
    """Whether ``spec`` is ``package.module:name`` (optionally ``name()``) rather than a file."""
    return bool(_IMPORT_PATH.match(str(spec))) and not os.path.exists(spec)


def load_model(spec: str | os.PathLike, *, trust: Iterable[str] = (),
               trust_pickle: bool = False) -> Any:
    """The model named by ``spec``: a ``.skops``, ``.joblib``/``.pkl``, ``.pt``/``.ts`` file or
    ``package.module:name``; see the module docstring for what each may hold."""
    spec = str(spec)
    if is_import_path(spec):
        return _import_object(spec)
    path = Path(spec)
    suffix = path.suffix.lower()
    if suffix not in MODEL_SUFFIXES:
        raise InputFileError(
            f"model {spec!r}: unknown kind of model file {suffix or '(no suffix)'!r}; give a "
            f"file ending in {', '.join(MODEL_SUFFIXES)}, or package.module:name")
    if not path.is_file():
        raise InputFileError(f"model file {spec!r} does not exist")
    if suffix in SKOPS_SUFFIXES:
        return _load_skops(path, list(trust))
    if suffix in PICKLE_SUFFIXES:
        return _load_pickle(path, trust_pickle)
    return _load_torchscript(path)


def model_fingerprint(spec: str | os.PathLike) -> dict:
    """What identifies the model of a run: the file's size and SHA-256, or the import path."""
    spec = str(spec)
    if is_import_path(spec):
        return {"import": spec}
    path = Path(spec)
    return {"path": str(path.resolve()), "bytes": path.stat().st_size, "sha256": sha256(path)}


def sha256(path: Path, block: int = 1 << 20) -> str:
    """The SHA-256 of a file, read in blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(block):
            h.update(chunk)
    return h.hexdigest()


def _load_skops(path: Path, trust: list[str]) -> Any:
    try:
        import skops.io as sio
    except ImportError as exc:
        raise MissingDependencyError(
            f"reading {path.name} needs skops: {FILES_EXTRA}") from exc
    try:
        unknown = sio.get_untrusted_types(file=path)
    except Exception as exc:  # a damaged or foreign file: skops raises many kinds
        raise InputFileError(f"model file {str(path)!r} is not a readable skops file: "
                             f"{type(exc).__name__}: {exc}") from exc
    refused = [t for t in unknown if t not in trust]
    if refused:
        flags = " ".join(f"--trust {t}" for t in refused)
        raise UntrustedModelError(
            f"model file {str(path)!r} holds types that skops does not trust by default: "
            f"{', '.join(refused)}. Building them may run their code: if you trust the file, "
            f"trust them by name ({flags}; in Python trust=[...])")
    return sio.load(path, trusted=list(unknown))


def _load_pickle(path: Path, trust_pickle: bool) -> Any:
    if not trust_pickle:
        raise UntrustedModelError(
            f"model file {str(path)!r} is a pickle, and loading a pickle runs whatever code it "
            "holds: pass --trust-pickle (trust_pickle=True) only for a file you made or trust, "
            "or save the model with skops (skops.io.dump(model, 'model.skops')) to load it "
            "safely")
    import joblib

    print(f"note: loading the pickle {path.name} (trusted: --trust-pickle)", file=sys.stderr)
    try:
        return joblib.load(path)
    except Exception as exc:
        raise InputFileError(f"model file {str(path)!r} could not be unpickled: "
                             f"{type(exc).__name__}: {exc}") from exc


def _load_torchscript(path: Path) -> Any:
    import warnings

    import torch

    try:
        with warnings.catch_warnings():  # TorchScript is deprecated in torch but still loads
            warnings.simplefilter("ignore", DeprecationWarning)
            module = torch.jit.load(str(path), map_location="cpu")
    except Exception as exc:  # torch raises RuntimeError for a torch.save file
        raise InputFileError(
            f"model file {str(path)!r} is not a TorchScript module ({type(exc).__name__}); "
            "save one with torch.jit.script(model).save(path) (or torch.jit.trace), or pass "
            "the model as package.module:name") from exc
    return module.eval()


def _import_object(spec: str) -> Any:
    module_name, _, attr = spec.partition(":")
    call = attr.endswith("()")
    attr = attr.removesuffix("()")
    if os.getcwd() not in sys.path:  # like ``python -m``: modules of the current folder
        sys.path.insert(0, os.getcwd())
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise InputFileError(f"model {spec!r}: cannot import module {module_name!r} "
                             f"({exc}); check the name and that it is on PYTHONPATH") from exc
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise InputFileError(f"model {spec!r}: {module_name!r} has no attribute {attr!r}")
        obj = getattr(obj, part)
    if call:
        obj = obj()
    if not callable(obj) and not hasattr(obj, "predict"):
        raise InputFileError(f"model {spec!r} is a {type(obj).__name__}, not a model: name a "
                             "function, an estimator or a torch module")
    return obj
