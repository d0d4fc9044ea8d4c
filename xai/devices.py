"""Torch devices chosen with ``device=``: the name checked against the devices this machine
has, and a user's module run there for the length of one call.

``device=`` moves the module with ``nn.Module.to`` when the call begins and puts its original
tensors back when the call ends, also after an error: parameters, gradients and buffers are
the same objects holding the same storage as before, on their original devices (zennit's
discipline for every change made to a user's model). A module already on the device is not
touched, so ``device="cpu"`` for a CPU module is the same computation as no ``device=``.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any

import torch

from .errors import ModelError, OptionError

_LOCK = threading.Lock()
_PLACED: dict[torch.nn.Module, list] = {}  # module -> [calls holding it, device, saved tensors]


def available_devices() -> list[str]:
    """The devices a model can run on here: ``"cpu"``, ``"cuda:i"`` per visible CUDA GPU,
    ``"mps:0"`` when Apple's Metal backend is available."""
    names = ["cpu"]
    if torch.cuda.is_available():
        names += [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        names.append("mps:0")
    return names


def device_name(name: str, value: Any, fix: str | None = None) -> str | None:
    """The option ``device=`` as a name, without asking whether this machine has it:
    ``"cpu"``, ``"cuda"`` (the current CUDA device) or ``"cuda:i"``, ``"mps:0"``, or None.
    Raises :class:`~xai.errors.OptionError`, ending with ``fix``, for anything that is not a
    device xai runs models on. (:func:`check_device` also checks that the device is here.)"""
    if value is None:
        return None
    fix = fix or "pass 'cpu', 'cuda', 'cuda:1', 'mps', a torch.device, or None (where the " \
                 "module's parameters are)"
    if not isinstance(value, str | torch.device):
        raise OptionError(f"{name}={value!r} is not a device: {fix}")
    try:
        dev = torch.device(value)
    except (RuntimeError, ValueError):
        raise OptionError(f"{name}={value!r} is not a torch device name (a GPU is 'cuda', "
                          f"'cuda:1' or, on a Mac, 'mps'): {fix}") from None
    if dev.type == "cpu":
        return "cpu"
    if dev.type == "cuda":
        return "cuda" if dev.index is None else f"cuda:{dev.index}"
    if dev.type == "mps":
        if dev.index not in (None, 0):
            raise OptionError(f"{name}={value!r}: Apple's Metal GPU is 'mps' (one device): "
                              f"{fix}")
        return "mps:0"
    raise OptionError(f"{name}={value!r}: xai runs models on a CPU, a CUDA GPU or Apple's "
                      f"Metal GPU (MPS): {fix}")


def check_device(name: str, value: Any) -> str | None:
    """The option ``device=`` as a canonical name (``"cpu"``, ``"cuda:0"``, ``"mps:0"``;
    ``"cuda"`` is the current CUDA device), or None. Raises :class:`~xai.errors.OptionError`,
    listing the devices available, for anything this machine cannot run a model on."""
    here = available_devices()
    fix = f"pass one of {here} (e.g. {name}='cpu'), a torch.device, or None (where the " \
          "module's parameters are)"
    chosen = device_name(name, value, fix)
    if chosen is None or chosen == "cpu":
        return chosen
    if chosen.startswith("cuda"):
        if not torch.cuda.is_available():
            why = ("this torch is built without CUDA" if torch.version.cuda is None else
                   f"no CUDA GPU is visible (torch is built with CUDA {torch.version.cuda}: check "
                   "the driver and CUDA_VISIBLE_DEVICES)")
            raise OptionError(f"{name}={value!r} asks for a CUDA GPU, but {why}: {fix}")
        count = torch.cuda.device_count()
        index = torch.cuda.current_device() if chosen == "cuda" else int(chosen[5:])
        if index >= count:
            raise OptionError(f"{name}={value!r} asks for CUDA GPU {index}, but this machine "
                              f"has {count} (numbered from 0): {fix}")
        return f"cuda:{index}"
    if chosen not in here:
        raise OptionError(f"{name}={value!r} asks for Apple's Metal GPU (MPS), which is "
                          f"not available here: {fix}")
    return chosen


def refuse_device(device: Any, what: str) -> None:
    """``device=`` for a model that is not a torch module: ``"cpu"`` (where it runs) is
    accepted, another device is refused (xai cannot move the model's work there)."""
    if check_device("device", device) not in (None, "cpu"):
        raise OptionError(
            f"device={device!r} moves a torch module, but the model is a {what}, which runs "
            "where its own code puts its work: drop device= (or pass device='cpu'), or pass "
            "the torch.nn.Module itself")


def _tensors(module: torch.nn.Module) -> list[tuple]:
    """Every parameter and buffer of ``module``, with what ``nn.Module.to`` may replace:
    its entry in the module's table, its data and its gradient's data."""
    saved = []
    for sub in module.modules():
        for table in (sub._parameters, sub._buffers):
            for key, t in table.items():
                if t is None:
                    continue
                grad = t.grad
                saved.append((table, key, t, t.data, grad,
                              None if grad is None else grad.data))
    return saved


def _restore(saved: list[tuple]) -> None:
    """Put back what :func:`_tensors` saved: the same objects, data and gradients."""
    for table, key, t, data, grad, grad_data in reversed(saved):
        table[key] = t
        t.data = data
        if grad is not None:
            grad.data = grad_data
            t.grad = grad


def _on(module: torch.nn.Module, device: torch.device) -> bool:
    """Whether every parameter and buffer of ``module`` is on ``device``."""
    return all(t.device == device for t in module.parameters()) and \
        all(t.device == device for t in module.buffers())


@contextlib.contextmanager
def placed(module: torch.nn.Module, device: torch.device) -> Iterator[None]:
    """``module``'s parameters and buffers on ``device`` inside the block, and back where
    they were on exit (also after an error). Nested and concurrent blocks for the same module
    share one move; a block asking for another device while the module is held elsewhere is a
    :class:`~xai.errors.ModelError`."""
    with _LOCK:
        entry = _PLACED.get(module)
        if entry is not None:
            if entry[1] != device:
                raise ModelError(
                    f"the module is running on {entry[1]} for another explanation; it cannot "
                    f"run on {device} at the same time: wait for that call, or explain a copy "
                    "(copy.deepcopy(module)) on the other device")
            entry[0] += 1
        elif _on(module, device):  # held (so no other device takes it), not moved
            entry = _PLACED[module] = [1, device, None]
        else:
            saved = _tensors(module)
            try:
                module.to(device)
            except Exception as exc:
                _restore(saved)
                raise ModelError(f"moving the module to {device} failed ({type(exc).__name__}: "
                                 f"{exc}); the module is back where it was. Free memory on "
                                 f"{device}, or pass another device=") from exc
            entry = _PLACED[module] = [1, device, saved]
    try:
        yield
    finally:
        with _LOCK:
            entry[0] -= 1
            if entry[0] == 0:
                del _PLACED[module]
                if entry[2] is not None:
                    _restore(entry[2])
