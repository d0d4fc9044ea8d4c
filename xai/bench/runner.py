"""The benchmark runner: ``xai.bench.run`` and ``xai bench``.

A **cell** is (data set, data seed, model, method, seed, metric). Cells are grouped so that
every data set is generated, every model trained and every explanation computed once per
(data set, seed, model, method); explanations are saved as ``.npz`` (the pickle-free
:class:`~xai.Explanation` format) under ``explanations/`` and *always read back from disk*
before the metrics see them, so a resumed run scores exactly what an uninterrupted run scores.

Each finished cell appends one row to ``results.jsonl`` (flushed and fsynced). On start the
file is read (a torn last line is truncated away) and every cell whose last row is ``ok`` or
``skipped`` is not run again; ``error`` rows are kept unless ``rerun_errors``; ``force``
recomputes everything (explanations too). A cell that raises is recorded as ``error`` and the
grid continues; ``KeyboardInterrupt`` stops the run (the lock is released; nothing half-written
stays in the file).

A failure of the *environment* is not a cell's result and is never recorded as one: an
``OSError`` (a file that cannot be written, a full disk, an I/O error) or an ``ImportError`` (a
missing dependency) anywhere in a cell, or in the causes it was raised from. Such cells get no
row, so the next run retries them, and :func:`run` raises
:class:`~xai.errors.BenchEnvironmentError`. Cached files are written atomically with a SHA-256
record beside them (:func:`~xai.bench.store.publish`) and read only when they match it; a
damaged one is computed again.
"""

from __future__ import annotations

import numbers
import os
import socket
from collections.abc import Sequence
from pathlib import Path

from .._warn import warn
from ..errors import BenchEnvironmentError, OptionError
from ..progress import Progress
from ..registry import normalize
from .cells import (  # noqa: F401  (call_with_timeout, plan: the runner's public helpers)
    Cell,
    CellTimeout,
    Recorder,
    _csv,
    _environment_error,
    _EnvironmentFailure,
    _group_rows,
    _refresh_data_sidecars,
    _resolve_suite,
    _Runner,
    _versions,
    call_with_timeout,
    load_components,
    plan,
)
from .store import (
    RESULTS,
    ResultsWriter,
    RunLock,
    jsonable,
    last_per_key,
    read_rows,
)
from .suites import Suite

__all__ = ["CellTimeout", "load_components", "run"]


# ---------------------------------------------------------------- entry point

def run(suite: str | Suite, methods: str | Sequence[str] | None = None,
        metrics: str | Sequence[str] | None = None, datasets: str | Sequence[str] | None = None,
        models: str | Sequence[str] | None = None, seeds: Sequence[int] | str = (0,),
        n_explain: int | None = None, budget: int | None = None,
        out: str | os.PathLike = "bench-results", rerun_errors: bool = False,
        force: bool = False, timeout: float | None = None, progress: bool = True,
        verbose: bool = False, summary: bool = True, backend: str = "local",
        address: str | None = None, workers: int | None = None, num_cpus: float = 1,
        num_gpus: float | None = None, device: str | None = None):
    """Run (or resume) a benchmark suite and return its rows as a pandas DataFrame.

    Parameters
    ----------
    suite : a registered suite name (``"faithfulness"``, ``"suppressor"``, ``"xaitris64"``)
        or a :class:`~xai.bench.Suite`.
    methods, metrics, datasets, models : names (a list or a comma-separated string) replacing
        the suite's defaults; ``datasets`` accepts a data set's label or its registered base
        name (``"xaitris8"`` selects every XAI-TRIS 8×8 variant). Unknown names raise
        :class:`~xai.UnknownNameError` before any work.
    seeds : global seeds; each is both the data seed and the seed of its cells.
    n_explain : test rows explained per (data set, seed, model, method) (suite default).
    budget : model-evaluation budget given to the methods that take one.
    out : output folder: ``results.jsonl``, ``explanations/``, ``models/``, ``data/``,
        the summary tables and ``figures/``.
    rerun_errors : run cells whose last row is an error again.
    force : recompute every cell (and explanation); new rows are appended.
    timeout : seconds per cell (and per explanation); exceeding it records a ``Timeout`` error.
    progress, verbose : progress bar over cells; per-cell status lines.
    summary : write the summary tables and figures at the end (:func:`xai.bench.summarise`).
    backend : ``"local"`` (this process, the default; Ray is never imported) or ``"ray"``:
        every cell (or group of cells scored together) runs as a Ray task and this process
        alone writes ``results.jsonl``, as results arrive; the rows equal a local run's, bit
        for bit when ``num_cpus`` equals the local process's torch threads
        (:mod:`xai.bench.ray_grid`).
    address : the Ray cluster (``"HOST:6379"``); default ``RAY_ADDRESS``, else a connection
        already open, else a new local cluster of this machine.
    workers : Ray tasks in flight (default: the cluster's CPUs divided by ``num_cpus``).
    num_cpus, num_gpus : resources of each Ray task; ``num_gpus`` defaults to 1 when
        ``device`` is a CUDA device, else 0. Each task runs torch with ``num_cpus`` threads.
    device : where the explainers and metrics run a torch model (``"cpu"``, ``"cuda"``);
        default: where the model is. It does not change the cells' keys.

    Returns
    -------
    pandas.DataFrame with the last row of every cell of the grid (resumed cells included).

    Raises
    ------
    xai.errors.BenchLockedError
        Another run is writing to ``out`` (one writer per folder; the lock is an operating-
        system lock, so a killed run never leaves it behind).
    xai.errors.BenchEnvironmentError
        The environment failed rather than a cell: ``out`` cannot be written, the disk is
        full, a cached file cannot be read back, a dependency is missing (an ``OSError`` or
        ``ImportError`` anywhere in a cell). The cells it hit get **no** row, unlike a method
        or metric that raises for its cell's input (an ``error`` row, rerun only with
        ``rerun_errors``). An ``OSError`` stops the run at once (every later cell writes to the
        same folder); an ``ImportError`` only leaves out the cells that need the missing
        package. Finished cells stay in ``results.jsonl``, so calling ``run`` again after
        fixing the cause runs exactly the cells that are missing. ``failures`` on the error
        lists the cells it hit. ``xai bench`` exits with status 1 then.
    """
    import pandas as pd

    seeds, n_explain, budget, timeout = _checked_run_options(seeds, n_explain, budget, timeout)
    cluster = _cluster_options(backend, address, workers, num_cpus, num_gpus, device)
    load_components()
    suite_obj = _resolve_suite(suite)
    if suite_obj.groups is not None:  # cells scored together (the concepts suite)
        return _run_groups(suite_obj, methods, seeds, Path(out), force=force,
                           rerun_errors=rerun_errors, verbose=verbose, cluster=cluster)
    cells = plan(suite_obj, methods=methods, metrics=metrics, datasets=datasets,
                 models=models, seeds=seeds, n_explain=n_explain, budget=budget)
    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
        with RunLock(out):
            existing = last_per_key(read_rows(out / RESULTS, repair=True))
            todo = _cells_to_run(cells, existing, force, rerun_errors)
            grid = _run_grid
            if cluster is not None:
                from .ray_grid import run_grid as grid
            fresh, failures, not_started = grid(suite_obj, cells, todo, out, force=force,
                                                timeout=timeout, progress=progress,
                                                verbose=verbose, **_grid_options(cluster, device))
    except OSError as exc:  # the folder itself: creating it, its lock, results.jsonl
        raise _folder_error(out, exc) from exc
    if failures:
        raise _environment_error(out, failures, not_started, len(todo) - len(failures) -
                                 not_started)
    rows = [jsonable(fresh.get(c.key) or existing[c.key]) for c in cells]
    frame = pd.DataFrame(rows)
    if summary and rows:
        from .summary import summarise

        summarise(out, echo=progress)
    return frame


def _cluster_options(backend: str, address, workers, num_cpus, num_gpus, device):
    """The checked options of ``backend="ray"`` (a :class:`~xai.bench.ray_grid.Cluster`), or
    None for the local backend. Raises ``OptionError`` for an unknown backend, or Ray options
    given with the local backend."""
    from ..devices import check_device
    from ..inputs import Integer, Real

    name = normalize(backend or "local")
    if name not in ("local", "ray"):
        raise OptionError(f"backend={backend!r} is not a backend: pass 'local' (this process) "
                          "or 'ray' (a Ray cluster)")
    if device is not None and name == "local":
        device = check_device("device", device)
    if name == "local":
        if address is not None or workers is not None:
            raise OptionError("address= and workers= apply to backend='ray'; pass "
                              "backend='ray' too, or leave them out")
        return None
    from ..ray_backend import task_device
    from .ray_grid import Cluster

    num_gpus = None if num_gpus is None else Real(0.0)("num_gpus", num_gpus)
    return Cluster(address=address, workers=Integer(1, example=4)("workers", workers),
                   num_cpus=Real(0.0, low_open=True)("num_cpus", num_cpus) or 1.0,
                   num_gpus=num_gpus, device=task_device(device, num_gpus))


def _grid_options(cluster, device) -> dict:
    """The keyword arguments of the grid function beyond the local runner's: the cluster for
    Ray, the device for both."""
    if cluster is not None:
        return {"cluster": cluster}
    return {"device": device} if device is not None else {}


def _checked_run_options(seeds, n_explain, budget, timeout):
    """The run's options checked by the core rules before any work (``OptionError``)."""
    from ..inputs import Integer, Real, check_option

    if isinstance(seeds, str):
        seeds = _csv(seeds)
    if isinstance(seeds, numbers.Integral):
        seeds = [seeds]
    try:
        seeds = [check_option("seed", s if not isinstance(s, str) else int(s)) for s in seeds]
    except (TypeError, ValueError) as exc:
        if isinstance(exc, OptionError):
            raise
        raise OptionError(f"seeds={seeds!r} is not a list of seeds: pass non-negative ints, "
                          "e.g. seeds=[0, 1, 2] or '0,1,2'") from exc
    if not seeds or any(s is None for s in seeds):
        raise OptionError(f"seeds={seeds!r}: pass at least one non-negative int seed, e.g. "
                          "seeds=[0]")
    return (seeds, Integer(1, example=64)("n_explain", n_explain), check_option("budget", budget),
            Real(0.0, low_open=True)("timeout", timeout))


def _cells_to_run(cells: list[Cell], existing: dict[str, dict], force: bool,
                  rerun_errors: bool) -> list[Cell]:
    """The cells without a final row (``ok``, ``skipped``, or ``error`` unless
    ``rerun_errors``); all of them with ``force``. Warns when reused rows come from another
    xai version."""
    def done(cell: Cell) -> bool:
        return _is_final(existing.get(cell.key), force, rerun_errors)

    reused = [c for c in cells if done(c)]
    version = _versions()["xai"]
    old = {(existing[c.key].get("versions") or {}).get("xai") for c in reused} - {version}
    if old:
        warn(f"reusing {len(reused)} rows, some written by xai "
             f"{', '.join(sorted(map(str, old)))} (this is {version})")
    return [c for c in cells if not done(c)]


def _folder_error(out: Path, exc: OSError) -> BenchEnvironmentError:
    """The error for an output folder the benchmark cannot create, lock or write."""
    return BenchEnvironmentError(
        f"the benchmark cannot use its output folder {out}: {exc}. Check that the folder "
        "can be written and its disk has free space, then run the same command again; "
        "finished cells are kept.", out=out)


def _is_final(row: dict | None, force: bool, rerun_errors: bool) -> bool:
    """Whether a cell whose last row is ``row`` is not run again: ``ok`` or ``skipped``, or
    ``error`` unless ``rerun_errors``; never with ``force``."""
    if force or row is None:
        return False
    return row.get("status") in ("ok", "skipped") or \
        (row.get("status") == "error" and not rerun_errors)


def _run_groups(suite: Suite, methods, seeds, out: Path, *, force: bool,
                rerun_errors: bool, verbose: bool, cluster=None):
    """Run a suite whose cells are scored in groups (``Suite.groups``, :class:`CellGroup`):
    one computation per group that has a cell without a final row, one row per cell appended
    to ``results.jsonl`` with the grid's semantics (resume, ``force``, ``rerun_errors``; a
    group that raises gives ``error`` rows). Returns the last row of every cell."""
    import pandas as pd

    seeds = [int(s) for s in (_csv(seeds) if isinstance(seeds, str) else seeds)]
    groups = suite.groups(suite, methods=_csv(methods), seeds=seeds, out=out)
    versions, host = _versions(), socket.gethostname()
    frame_rows: list[dict] = []
    try:
        out.mkdir(parents=True, exist_ok=True)
        with RunLock(out):
            existing = last_per_key(read_rows(out / RESULTS, repair=True))
            todos = [[metric for metric, key in group.keys.items()
                      if not _is_final(existing.get(key), force, rerun_errors)]
                     for group in groups]
            with ResultsWriter(out / RESULTS) as writer:
                if cluster is None:
                    results = ((i, _group_rows(group, todo, versions, host) if todo else {})
                               for i, (group, todo) in enumerate(zip(groups, todos)))
                else:
                    from .ray_grid import run_groups

                    results = run_groups(groups, todos, cluster)
                by_group: dict[int, dict] = {}
                for i, fresh in results:  # as they arrive: in order locally
                    by_group[i] = fresh
                    for metric in groups[i].keys:
                        if metric in fresh:
                            writer.append(fresh[metric])
                    if verbose and fresh:
                        print(f"{next(iter(fresh.values()))['status']} {groups[i].label}")
                for i, group in enumerate(groups):
                    fresh = by_group.get(i, {})
                    frame_rows.extend(fresh.get(metric) or existing[key]
                                      for metric, key in group.keys.items())
    except OSError as exc:  # the folder, its lock or results.jsonl
        raise _folder_error(out, exc) from exc
    return pd.DataFrame(frame_rows)


def _run_grid(suite: Suite, cells: list[Cell], todo: list[Cell], out: Path, *, force: bool,
              timeout: float | None, progress: bool, verbose: bool, device: str | None = None
              ) -> tuple[dict[str, dict], list[dict], int]:
    """Run ``todo`` in order, appending a row per finished cell to ``results.jsonl``.

    Returns the new rows by key, the environment failures (cells left without a row) and how
    many cells were not started because an ``OSError`` stopped the run."""
    bar = Progress(f"bench {suite.name}", total=len(cells), initial=len(cells) - len(todo),
                   unit="cells", enabled=progress, leave=True)
    runner = _Runner(suite, out, force=force, timeout=timeout, verbose=verbose, bar=bar,
                     device=device)
    try:
        with ResultsWriter(out / RESULTS) as writer:
            record = Recorder(writer, bar, verbose)
            _refresh_data_sidecars(runner, cells, todo)
            last_group = None
            for number, cell in enumerate(todo):
                group = (cell.ds.name, cell.data_seed)
                if group != last_group:  # free the previous data set, models, explanations
                    runner.clear()
                    last_group = group
                try:
                    stop = record(cell, runner.run_cell(cell))
                except _EnvironmentFailure as exc:
                    stop = record(cell, failure=exc.info)
                if stop:
                    return record.fresh, record.failures, len(todo) - number - 1
    finally:
        bar.close(complete=False)  # cells left by a fatal failure stay counted as left
    return record.fresh, record.failures, 0

