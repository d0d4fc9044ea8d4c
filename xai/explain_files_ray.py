"""``xai explain`` on a Ray cluster: each chunk a task that reads its own rows, results written
by the driver.

:func:`run_chunks` puts one :class:`ChunkWork` (the data file's path, the chunking, the model's
source and the explaining function with its options and background rows) in the object store
once and submits one task per chunk, at most ``workers`` in flight. A task reads only its
chunk's rows (:meth:`xai.data_files.TableFile.chunk`: the Parquet row groups that hold it, or
the CSV lines after the ones it skips), loads the model once per worker process (a model file
or import path; a model object comes from the object store), explains the rows with the local
:func:`xai.explain` and the run's seed, and returns the chunk's output tables. The values are
therefore those of the local backend, chunk for chunk.

The driver (:func:`xai.explain_files.explain_files`) writes each result as it arrives, with
the same part files, manifest and folder lock as a local run. A task whose worker process dies
is run again by Ray (:data:`xai.ray_backend.MAX_RETRIES` times), and a chunk is written only
when its result reaches the driver, so each chunk appears once. When the driver stops, the
chunks in flight are lost with it and a rerun explains them again, as it does any chunk not
recorded in the manifest.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["ChunkWork", "run_chunks"]


@dataclass(frozen=True)
class ChunkWork:
    """What every chunk's task shares: the data file, its chunking, the model and the
    explaining function ``compute(model, frame, start) -> result``."""

    data: str
    chunk_rows: int
    columns: Sequence[str]
    compute: Callable[[Any, Any, int], Any]
    model: Any  # an absolute model file path or an import path, or the model object
    trust: tuple[str, ...] = ()
    trust_pickle: bool = False
    cwd: str = ""  # the driver's folder, where an import path's module may live

    def load_model(self) -> Any:
        """The model, loaded from its file or import path (or the object given)."""
        if not isinstance(self.model, str):
            return self.model
        from .model_files import load_model

        if self.cwd and self.cwd not in sys.path:
            sys.path.insert(0, self.cwd)
        return load_model(self.model, trust=self.trust, trust_pickle=self.trust_pickle)


def run_chunks(work: ChunkWork, chunks: Sequence[int], *, address: str | None = None,
               workers: int | None = None, num_cpus: float = 1, num_gpus: float | None = None,
               device: str | None = None) -> Iterator[tuple[int, Any]]:
    """``(i, work.compute's result for chunk i)`` for each of ``chunks``, computed as Ray tasks
    on the cluster at ``address`` (see :func:`xai.ray_backend.connect`), at most ``workers``
    at once (default: the cluster's CPUs / ``num_cpus``), in the order they finish; each task
    holds ``num_cpus`` CPUs and ``num_gpus`` GPUs, and checks ``device`` before its first
    model call."""
    from .ray_backend import as_completed, connect, share, task_options, task_slots

    if not chunks:
        return
    ray = connect(address)
    if not work.cwd:
        work = ChunkWork(**{**work.__dict__, "cwd": os.getcwd()})
    shared = share(ray, work)
    options = task_options(num_cpus, num_gpus, device)
    task = _remote(ray).options(**options)
    setup = {"num_cpus": num_cpus, "device": device}
    yield from ((chunks[k], result) for k, result in as_completed(
        lambda i: task.remote(shared, i, setup), chunks,
        workers=task_slots(options, workers)))


_REMOTE: dict[str, Any] = {}


def _remote(ray: Any) -> Any:
    """The remote function of a chunk (made once per process, when Ray is first used)."""
    if "chunk" not in _REMOTE:
        _REMOTE["chunk"] = ray.remote(_explain_chunk_task)
    return _REMOTE["chunk"]


def _explain_chunk_task(shared: list, i: int, setup: dict) -> Any:
    """On a worker: read chunk ``i`` of the shared work's data file and explain it. ``shared``
    holds the work's object reference in a list, so Ray does not fetch it for every task:
    the work and its model are loaded once per worker process and run."""
    from .data_files import TableFile
    from .ray_backend import fetch_shared, on_worker

    on_worker(**setup)
    work, model = fetch_shared(shared, lambda work: (work, work.load_model()))
    frame = TableFile(work.data, "data").chunk(i, work.chunk_rows, work.columns)
    return work.compute(model, frame, i * work.chunk_rows)
