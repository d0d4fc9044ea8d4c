"""Ray as xai's engine for scale-out: the shared primitives of ``backend="ray"``.

Explain, the row-looping metrics, ``xai explain`` on files and ``xai bench`` all run their
work as Ray tasks through these few functions: :func:`require_ray` (the module, or a named
error saying how to install it), :func:`connect` (one connection per process: an existing
one, ``address=``, ``RAY_ADDRESS``, or a local cluster), :func:`task_options` (CPUs, GPUs and
retries of a task), :func:`task_device` (``device=`` checked for tasks on other machines),
:func:`on_worker` (torch threads, memory cap and the device's check inside a task),
:func:`share` / :func:`fetch_shared` (a run's model and shared inputs fetched once per worker
process, not once per task), :func:`as_completed` (tasks with a bound on those in flight,
results as they arrive) and :func:`unwrap` (a task's exception as the driver's named xai
error, not Ray's wrapper).

Nothing here imports Ray at module import: a local run (``backend="local"``, the default)
never loads it. Ray is the ``ray`` extra: ``pip install 'xai[ray]'``.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from .errors import ClusterError, MissingDependencyError

#: the option names of the Ray backend, taken by explain, the metrics and the bench runner
RAY_OPTIONS = ("backend", "address", "workers", "num_cpus", "num_gpus")
#: the backends: one process, or tasks on a Ray cluster
BACKENDS = ("local", "ray")
#: how often Ray reruns a task whose worker process died (a task's own exception is not retried)
MAX_RETRIES = 3


def require_ray() -> Any:
    """The ``ray`` module. Raises :class:`~xai.errors.MissingDependencyError` (naming the
    install command) when Ray is not installed."""
    try:
        import ray
    except ImportError as e:
        raise MissingDependencyError(
            f"backend='ray' needs Ray, which is not installed ({e}): pip install 'xai[ray]' "
            "(or pip install 'ray>=2.9'), or use backend='local'") from None
    return ray


def connect(address: str | None = None, **init: Any) -> Any:
    """The ``ray`` module, connected to a cluster once per process: the connection already
    open (``ray.init`` called by the user or an earlier call), else the cluster at
    ``address`` or ``RAY_ADDRESS``, else a new local cluster of this machine's CPUs.

    ``init`` goes to ``ray.init`` (e.g. ``num_cpus=2`` for a local cluster). Raises
    :class:`~xai.errors.ClusterError` when the address cannot be reached.
    """
    ray = require_ray()
    if ray.is_initialized():
        return ray
    target = address or os.environ.get("RAY_ADDRESS") or None
    try:
        _check_reachable(target)
        ray.init(address=target, include_dashboard=False, log_to_driver=False,
                 logging_level=logging.WARNING, configure_logging=False, **init)
    except (ConnectionError, TimeoutError, RuntimeError, ValueError) as e:
        where = f"address {target!r}" if target else "a new local cluster"
        raise ClusterError(
            f"cannot connect to the Ray cluster at {where}: {type(e).__name__}: {e}. Start "
            "one (ray start --head, then pass address='HOST:6379' or set RAY_ADDRESS), leave "
            "address=None for a local cluster, or use backend='local'") from None
    return ray


def _check_reachable(address: str | None, timeout: float = 3.0) -> None:
    """Raise ``ConnectionError`` at once when ``HOST:PORT`` (or ``ray://HOST:PORT``) accepts
    no TCP connection, rather than after Ray's own minute of retries."""
    if not address or address in ("auto", "local"):
        return
    host, _, port = address.split("://", 1)[-1].rpartition(":")
    if not host or not port.isdigit():
        return
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as e:
        raise ConnectionError(f"nothing answers at {host}:{port} ({e})") from None


def cluster_cpus() -> float:
    """The CPUs of the connected cluster (all nodes), at least 1."""
    import ray

    return max(float(ray.cluster_resources().get("CPU", 1.0)), 1.0)


def default_workers(num_cpus: float = 1.0) -> int:
    """Tasks in flight by default: the cluster's CPUs divided by each task's ``num_cpus``."""
    return max(1, int(cluster_cpus() // max(float(num_cpus), 1e-9)))


def task_slots(options: dict[str, Any], workers: int | None = None) -> int:
    """Tasks in flight for tasks of ``options`` (:func:`task_options`): ``workers``, else as
    many as the connected cluster's CPUs (and GPUs, for GPU tasks) hold at once. Raises
    :class:`~xai.errors.ClusterError` when the cluster has fewer CPUs or GPUs than one task
    asks for (Ray would wait for them forever)."""
    import ray

    have = ray.cluster_resources()
    for name, key in (("num_cpus", "CPU"), ("num_gpus", "GPU")):
        if options[name] > have.get(key, 0.0):
            raise ClusterError(
                f"each task asks for {name}={options[name]:g}, but the Ray cluster has "
                f"{have.get(key, 0.0):g} {key}s: pass a smaller {name}"
                + (" (or a CPU --device)" if key == "GPU" else "")
                + ", or connect to a cluster that has them (address=)")
    if workers:
        return int(workers)
    slots = default_workers(options["num_cpus"])
    if options["num_gpus"] > 0:
        slots = min(slots, max(1, int(have["GPU"] // options["num_gpus"])))
    return slots


def task_options(num_cpus: float = 1, num_gpus: float | None = None, device: Any = None,
                 max_retries: int = MAX_RETRIES) -> dict[str, Any]:
    """Keyword arguments of a remote function's ``.options(...)``: ``num_cpus`` per task,
    ``num_gpus`` (1 when ``device`` is a CUDA device and ``num_gpus`` is None, else 0), and
    ``max_retries`` reruns of a task whose worker process died."""
    if num_gpus is None:
        num_gpus = 1 if str(device or "").startswith("cuda") else 0
    return {"num_cpus": float(num_cpus), "num_gpus": float(num_gpus),
            "max_retries": int(max_retries)}


def task_device(device: Any, num_gpus: float | None = None) -> str | None:
    """``device=`` for tasks that may run on other machines: its form is checked here, and
    whether the device is there by each task before its first model call (the driver, e.g. a
    cluster's CPU head node, needs no GPU of its own). A task holding ``num_gpus`` GPUs
    (default 1 with a CUDA device) sees them as ``cuda:0`` onwards, whichever GPUs Ray gave
    it. Raises :class:`~xai.errors.OptionError` for a CUDA device that no task would see."""
    import math

    from .devices import device_name
    from .errors import OptionError

    name = device_name("device", device)
    if name is None or not name.startswith("cuda"):
        return name
    gpus = 1.0 if num_gpus is None else float(num_gpus)
    if gpus <= 0:
        raise OptionError(f"device={device!r} runs the model on a GPU, but each task holds "
                          f"num_gpus={gpus:g}: leave num_gpus out (1 with a CUDA device), "
                          "pass num_gpus > 0, or pass device='cpu'")
    index = int(name[5:] or 0)
    if index >= math.ceil(gpus):
        raise OptionError(f"device={device!r}: a Ray task holding num_gpus={gpus:g} sees "
                          f"{math.ceil(gpus)} GPU(s), numbered from 0 whichever GPUs Ray "
                          "gave it: pass device='cuda' (or num_gpus > the index)")
    return name


def on_worker(num_cpus: float = 1, memory_cap: int | str | None = None,
              device: Any = None) -> None:
    """Set up a task's process: torch threads from the CPUs the task holds, xai's memory cap
    per intermediate array (``xai.config.memory_cap``) when given, and ``device`` checked
    here, before the task's first model call (:func:`task_device`). Raises
    :class:`~xai.errors.OptionError` naming this node when the device is not on it."""
    import torch

    torch.set_num_threads(max(1, int(num_cpus)))
    if memory_cap is not None:
        from .config import config

        config.memory_cap = memory_cap
    if device is not None:
        device_here(device, f"on the Ray worker at {socket.gethostname()} (pid {os.getpid()})")


def device_here(device: Any, where: str) -> None:
    """:func:`xai.devices.check_device` in this process, its :class:`~xai.errors.OptionError`
    prefixed with ``where`` (which process of a Ray run refused the device, and why it needs
    it)."""
    from .devices import check_device
    from .errors import OptionError

    try:
        check_device("device", device)
    except OptionError as e:
        raise OptionError(f"{where}: {e}") from None


#: what this worker process last fetched with :func:`fetch_shared`: {object id: value}
_FETCHED: dict[str, Any] = {}


def share(ray: Any, value: Any) -> list:
    """``value`` put once in the object store, as a one-element list holding its reference.

    Ray fetches and unpickles a task's top-level reference arguments for every task; a list
    holding the reference reaches the task as the reference itself, and :func:`fetch_shared`
    fetches it once per worker process and run."""
    return [ray.put(value)]


def fetch_shared(holder: list, load: Callable[[Any], Any] | None = None) -> Any:
    """On a worker: the value :func:`share` put in the store (``load(value)`` when given),
    fetched on this process's first task of the run and kept for its next ones. Only the
    latest run's value is kept, so a worker holds at most one run's model and inputs."""
    import ray

    key = holder[0].hex()
    if key not in _FETCHED:
        _FETCHED.clear()
        value = ray.get(holder[0])
        _FETCHED[key] = value if load is None else load(value)
    return _FETCHED[key]


def unwrap(error: BaseException) -> BaseException:
    """The exception a task raised (its ``cause``), for Ray's ``RayTaskError`` wrapper around
    it; any other exception unchanged."""
    cause = getattr(error, "cause", None)
    seen = 0
    while cause is not None and type(error).__name__.startswith("RayTaskError") and seen < 8:
        error, cause, seen = cause, getattr(cause, "cause", None), seen + 1
    return error


def as_completed(submit: Callable[[Any], Any], items: Iterable[Any], *, workers: int,
                 ) -> Iterator[tuple[int, Any]]:
    """Run ``submit(item)`` (which returns an ``ObjectRef``) for each item, at most
    ``workers`` in flight, and yield ``(index of the item, result)`` as results arrive.

    The next items are submitted as soon as tasks finish, before their results are fetched
    and yielded: a worker does not wait while the caller handles a result (writes a chunk's
    files, say). A task's exception is raised here as itself (:func:`unwrap`); the tasks
    still in flight are then cancelled.
    """
    import ray

    pending = iter(enumerate(items))
    flight: dict[Any, int] = {}

    def fill() -> None:
        while len(flight) < max(1, int(workers)):
            nxt = next(pending, None)
            if nxt is None:
                return
            flight[submit(nxt[1])] = nxt[0]

    fill()
    try:
        while flight:
            done, _ = ray.wait(list(flight), num_returns=1)
            finished = [(ref, flight.pop(ref)) for ref in done]
            fill()
            for ref, index in finished:
                try:
                    result = ray.get(ref)
                except ray.exceptions.RayTaskError as e:  # the task's own error, unwrapped
                    raise unwrap(e) from None
                yield index, result
    finally:
        for ref in flight:
            ray.cancel(ref, force=False)
