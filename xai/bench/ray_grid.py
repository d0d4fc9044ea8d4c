"""``xai bench --backend ray``: the grid's cells run as Ray tasks; this process (the driver)
alone writes ``results.jsonl``.

Each cell runs as one task (:func:`run_cell_task`) through the local runner's own code
(:class:`~xai.bench.cells._Runner`), so a row computed on a worker equals the row of a local
run: values bit-identical for the same seeds when each task runs torch with as many threads
(``num_cpus``) as the local process (a float sum may round differently in the last bit with
another thread count); only timings, host and timestamp differ. Each task gets the driver's
``xai.config.memory_cap``. Rows
arrive in completion order (``ray.wait``) and are appended, flushed and fsynced at once, under
the run's lock, so the resume rules of the local runner hold unchanged: a cell with a final row
is not run again, and a cell in flight when the driver died has no row and runs again.

Cells share work: a data set, a trained model and an explanation serve many cells. A cell
that would build one of them first (its *leader*) runs before the cells that reuse it, which
then read the model and the explanation from the output folder instead of computing them
again in parallel; cells of different data sets, models and methods run side by side.

Failures, as locally: a cell that raises gets its ``error`` row, and a task is never retried
for an exception (``retry_exceptions=False``); a task whose *worker process* died (killed,
out of memory, a lost node) is run again by Ray (``max_retries``), and its row is written once,
when it arrives. The local per-stage time limit (``timeout``) runs in the worker as locally; a
task that still runs ``2 * timeout + CANCEL_GRACE`` seconds after it was started (code that
cannot be interrupted, such as a long C call) is cancelled (``ray.cancel(force=True)``) and
gets the local ``Timeout`` row.

Workers read and write the output folder (explanations, models, data sidecars): on a cluster of
several machines, ``out`` must be a folder every node sees at the same path (a shared file
system), and so must ``XAI_CACHE_DIR`` for data sets that cache downloads.
"""

from __future__ import annotations

import dataclasses
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from .. import registry
from ..config import config
from ..errors import UnknownNameError, XaiError
from ..progress import Progress
from ..ray_backend import connect, on_worker, task_options, task_slots, unwrap
from .cells import (
    EXPLANATIONS,
    Cell,
    CellTimeout,
    Recorder,
    _EnvironmentFailure,
    _error_info,
    _group_rows,
    _refresh_data_sidecars,
    _Runner,
    _skip_reason,
    _versions,
    load_components,
)
from .store import RESULTS, ResultsWriter, is_intact
from .suites import CellGroup, Suite

__all__ = ["CANCEL_GRACE", "Cluster", "run_cell_task", "run_grid", "run_groups",
           "task_time_limit"]

#: seconds a task may run past twice its cell's ``timeout`` before the driver cancels it
CANCEL_GRACE = 5.0


@dataclasses.dataclass(frozen=True)
class Cluster:
    """Where and how the cells run: the Ray ``address`` (None: ``RAY_ADDRESS``, a connection
    already open, or a local cluster), ``workers`` (tasks in flight; None: the cluster's CPUs
    divided by ``num_cpus``), the resources of each task and the torch ``device``."""

    address: str | None = None
    workers: int | None = None
    num_cpus: float = 1.0
    num_gpus: float | None = None
    device: str | None = None

    def slots(self) -> int:
        """Tasks in flight (:func:`xai.ray_backend.task_slots`): ``workers``, else as many as
        the connected cluster holds; ClusterError when it cannot hold one task."""
        return task_slots(self.options(), self.workers)

    def options(self) -> dict[str, Any]:
        """The ``.options(...)`` of each task: resources, retries of a task whose worker died,
        and no retry of a task that raised."""
        return {**task_options(self.num_cpus, self.num_gpus, self.device),
                "retry_exceptions": False}


def task_time_limit(timeout: float | None) -> float | None:
    """Seconds after its start at which a cell's task is cancelled: twice ``timeout`` (the
    explanation's and the metric's limits) plus :data:`CANCEL_GRACE`; None without a
    ``timeout``."""
    return None if not timeout else 2.0 * float(timeout) + CANCEL_GRACE


# ---------------------------------------------------------------- on the workers

_WORKER: dict[str, Any] = {}  # this worker process's runner, reused by the tasks of one run


class _WorkerRunner(_Runner):
    """The local runner in a worker: a data sidecar already written (by another worker) is
    kept, so workers making the same data set never write one file at the same time."""

    def write_data_sidecar(self, cell: Cell, data) -> None:
        if not is_intact(self.data_sidecar(cell)):
            super().write_data_sidecar(cell, data)


def _components(cell: Cell) -> list[tuple[str, str, Any]]:
    """The registered components a cell needs, to register on a worker that lacks them (those
    registered in the driver's process only, e.g. in a notebook)."""
    wanted = [("explainer", cell.method), ("metric", cell.metric), ("dataset", cell.ds.base)]
    found = []
    for kind, name in wanted:
        if not name:
            continue
        try:
            found.append((kind, name, registry.get(kind, name)))
        except XaiError:  # not registered (the data set of a suite is a plain function)
            continue
    return found


def _install(components: Sequence[tuple[str, str, Any]]) -> None:
    """Register on this worker the components it does not know."""
    for kind, name, obj in components:
        try:
            registry.get(kind, name)
        except UnknownNameError:
            registry.register(kind, name, obj)


STARTED = "started"


def run_cell_task(suite: Suite, cell: Cell, out: str, *, run_id: str, force: bool,
                  timeout: float | None, device: str | None, num_cpus: float,
                  memory_cap: int, fresh_expls: frozenset[str], components: list) -> Iterator:
    """Run one cell on a worker, as a Ray generator task: yields :data:`STARTED` when the
    worker begins (the driver's clock of the cell's time limit starts there, not while the
    task waits for a worker), then ``("row", row)``, or ``("environment", info)`` when its
    environment failed (no row; see :mod:`xai.bench.runner`)."""
    yield STARTED
    yield _run_cell(suite, cell, out, run_id=run_id, force=force, timeout=timeout,
                    device=device, num_cpus=num_cpus, memory_cap=memory_cap,
                    fresh_expls=fresh_expls, components=components)


def _run_cell(suite: Suite, cell: Cell, out: str, *, run_id: str, force: bool,
              timeout: float | None, device: str | None, num_cpus: float, memory_cap: int,
              fresh_expls: frozenset[str], components: list) -> tuple[str, dict]:
    """The result of :func:`run_cell_task`. The worker keeps the runner of its run between
    tasks, so its data sets, models and explanations are reused as in a local run; it runs
    torch with ``num_cpus`` threads and the driver's ``xai.config.memory_cap``."""
    on_worker(num_cpus, memory_cap)
    load_components()
    _install(components)
    key = (run_id, suite.name, out, force, timeout, device)
    if _WORKER.get("key") != key:
        _WORKER.update(key=key, group=None, runner=_WorkerRunner(
            suite, Path(out), force=force, timeout=timeout, verbose=False, bar=None,
            device=device))
    runner = _WORKER["runner"]
    runner.fresh_expls |= fresh_expls  # explanations this run already computed (force)
    group = (cell.ds.name, cell.data_seed)
    if _WORKER["group"] != group:  # free the previous data set, models, explanations
        runner.clear()
        _WORKER["group"] = group
    try:
        return "row", runner.run_cell(cell)
    except _EnvironmentFailure as exc:
        return "environment", exc.info


def run_group_task(group: CellGroup, metrics: list[str], num_cpus: float, memory_cap: int
                   ) -> dict[str, dict]:
    """The rows of a group of cells scored together, computed on a worker."""
    on_worker(num_cpus, memory_cap)
    load_components()
    import socket

    return _group_rows(group, metrics, _versions(), socket.gethostname())


# ---------------------------------------------------------------- on the driver

class _Leaders:
    """Which cells may start: a cell waits while another cell that builds its data set, model
    or explanation (its leader at that level) runs; then it reuses what that cell left."""

    def __init__(self, cells: list[Cell]):
        self.waiting = list(cells)
        self.started: set[tuple] = set()
        self.finished: set[tuple] = set()

    @staticmethod
    def levels(cell: Cell) -> tuple[tuple, ...]:
        data = ("data", cell.ds.name, cell.data_seed)
        return data, (*data, "model", cell.model, cell.seed), ("explain", cell.expl_key)

    def next(self) -> Cell | None:
        """The first waiting cell that may start now (it leads the levels nobody started)."""
        for i, cell in enumerate(self.waiting):
            levels = self.levels(cell)
            if all(lv in self.finished or lv not in self.started for lv in levels):
                self.started.update(levels)
                return self.waiting.pop(i)
        return None

    def finish(self, cell: Cell) -> None:
        """``cell`` ended (any outcome): the cells waiting for it may start."""
        self.finished.update(self.levels(cell))


def _timeout_row(runner: _Runner, cell: Cell, timeout: float, seconds: float) -> dict:
    """The local ``Timeout`` row of a cell whose task was cancelled: its stage is the
    metric's when the explanation was written, else the explanation's."""
    row = runner._base_row(cell)
    explained = is_intact(runner.out / EXPLANATIONS / f"{cell.expl_key[:32]}.npz")
    error = CellTimeout(f"exceeded the time limit of {timeout:g} s (--timeout)")
    row.update(status="error", error=_error_info(error, "metric" if explained else "explain"),
               cell_seconds=seconds)
    return row


def _crash_info(exc: BaseException) -> dict:
    """A failure (no row) for a task Ray gave up on: its worker died more often than the
    retries allow, or the cluster lost it."""
    exc = unwrap(exc)
    return {"type": type(exc).__name__, "message": str(exc)[:2000], "stage": "worker",
            "traceback": "", "cause": None, "fatal": False}


def run_grid(suite: Suite, cells: list[Cell], todo: list[Cell], out: Path, *, force: bool,
             timeout: float | None, progress: bool, verbose: bool, cluster: Cluster
             ) -> tuple[dict[str, dict], list[dict], int]:
    """Run ``todo`` as Ray tasks, appending each row to ``results.jsonl`` as it arrives; the
    Ray counterpart of :func:`xai.bench.runner._run_grid` (same returns)."""
    ray = connect(cluster.address)
    workers, suite_ref = cluster.slots(), ray.put(suite)
    remote = ray.remote(run_cell_task).options(**cluster.options())
    bar = Progress(f"bench {suite.name}", total=len(cells), initial=len(cells) - len(todo),
                   unit="cells", enabled=progress, leave=True)
    runner = _Runner(suite, out, force=force, timeout=timeout, verbose=verbose, bar=bar)
    limit, run_id = task_time_limit(timeout), uuid.uuid4().hex
    fresh_expls: set[str] = set()
    flight: dict[Any, list] = {}  # task -> [cell, when it started on its worker or None]
    leaders = _Leaders([c for c in todo if _skip_reason(c) is None])

    try:
        with ResultsWriter(out / RESULTS) as writer:
            record = Recorder(writer, bar, verbose)
            fresh, failures = record.fresh, record.failures
            _refresh_data_sidecars(runner, cells, todo)
            for cell in todo:  # a metric that does not apply: its row needs no work
                if _skip_reason(cell) is not None and record(cell, runner.run_cell(cell)):
                    return fresh, failures, len(todo) - len(fresh) - len(failures)
            while True:
                while len(flight) < workers and (cell := leaders.next()) is not None:
                    ref = remote.remote(
                        suite_ref, cell, str(out), run_id=run_id, force=force, timeout=timeout,
                        device=cluster.device, num_cpus=cluster.num_cpus,
                        memory_cap=config.memory_cap,
                        fresh_expls=frozenset(fresh_expls if force else ()),
                        components=_components(cell))
                    flight[ref] = [cell, None]
                if not flight:
                    break
                starts = [start for _, start in flight.values() if start is not None]
                wait = None if limit is None or not starts else \
                    max(0.0, min(starts) + limit - time.monotonic())
                done, _ = ray.wait(list(flight), num_returns=1, timeout=wait)
                for ref in done:
                    cell, start = flight[ref]
                    try:
                        item = ray.get(next(ref))
                    except (ray.exceptions.RayError, StopIteration) as exc:  # worker died
                        item, stop = None, record(cell, failure=_crash_info(exc))  # past retries
                    if item == STARTED:
                        flight[ref][1] = time.monotonic()
                        continue
                    del flight[ref]
                    leaders.finish(cell)
                    if item is not None:
                        kind, payload = item
                        if kind == "row" and payload.get("explain_file"):
                            fresh_expls.add(cell.expl_key)
                        stop = record(cell, payload) if kind == "row" else \
                            record(cell, failure=payload)
                    if stop:
                        return fresh, failures, len(todo) - len(fresh) - len(failures)
                now = time.monotonic()
                for ref, (cell, start) in list(flight.items()):
                    if limit is not None and start is not None and now - start >= limit:
                        ray.cancel(ref, force=True)  # the worker process is ended
                        del flight[ref]
                        leaders.finish(cell)
                        if record(cell, _timeout_row(runner, cell, timeout, now - start)):
                            return fresh, failures, len(todo) - len(fresh) - len(failures)
    finally:
        for ref in flight:  # stopped early (a fatal failure, Ctrl-C): nothing left running
            ray.cancel(ref, force=True)
        bar.close(complete=False)
    return fresh, failures, 0


def run_groups(groups: list[CellGroup], todos: list[list[str]], cluster: Cluster
               ) -> Iterator[tuple[int, dict[str, dict]]]:
    """``(index of the group, its rows by metric)`` for every group with cells to run,
    computed as Ray tasks and yielded as they arrive."""
    ray = connect(cluster.address)
    workers = cluster.slots()
    remote = ray.remote(run_group_task).options(**cluster.options())
    pending = iter([i for i, todo in enumerate(todos) if todo])
    flight: dict[Any, int] = {}
    try:
        while True:
            while len(flight) < workers and (i := next(pending, None)) is not None:
                flight[remote.remote(groups[i], todos[i], cluster.num_cpus,
                                     config.memory_cap)] = i
            if not flight:
                return
            done, _ = ray.wait(list(flight), num_returns=1)
            for ref in done:
                yield flight.pop(ref), ray.get(ref)
    finally:
        for ref in flight:
            ray.cancel(ref, force=True)
