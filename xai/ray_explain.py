"""``explain(..., backend="ray")``: the explicands in blocks, each block a Ray task that runs
the ordinary local explain, the blocks' explanations joined in row order into one.

What is guaranteed: the values (and standard errors, base values, coalitions, units,
convergence flags and per-row extras) are bit-identical to a local run with the same seed,
whatever the number of workers or blocks. Four things make it so:

- every random draw is keyed on the seed alone: a summary draws one design per round from the
  seed and shares it by every explicand, each explicand stops on its own standard error, and
  background subsampling depends on the seed only; a driver without ``seed=`` draws one seed
  and sends it to every task;
- a row's model output does not depend on the other rows of its model call: torch modules
  and scikit-learn estimators are called on whole multiples of
  :data:`xai.models.CALL_ROW_MULTIPLE` rows (BLAS rounds the last rows of other calls
  differently), so a block of any size computes each row as the whole data set does;
- a summary's per-explicand linear algebra does not mix explicands either: sums over
  coalitions (exact, KernelSHAP, Banzhaf, RISE) use :func:`xai.models.rowwise_product`,
  KernelSHAP's fit and sandwich errors :func:`xai.models.rowwise_matmul`, LIME's R^2 sums each
  column in a fixed order (tests/test_row_independence.py: blocks of any size, no Ray);
- the driver joins the blocks by their row positions, whatever order they finish in.

What is tested (tests/test_ray_explain.py): a torch MLP (kernelshap, permutation, exact,
lime, occlusion at 1, 2 and 3 workers and 1, 3 and 6 blocks), a scikit-learn pipeline under
a stopping rule, an image CNN (blur, marginal, baseline removals), permutation importance
and the row metrics, on CPU kernels (MKL, OpenBLAS, oneDNN); tests/test_ray_multinode.py runs
tasks on two nodes (two raylets and object stores); tests/test_row_independence.py explains
in blocks of any size and with one thread or two, without Ray, the regression-adjusted
summaries and interactions included (every sigmoid is :func:`xai.models.sigmoid`, since
``torch.sigmoid`` rounds a tensor's scalar tail differently; long sums go in fixed chunks,
:func:`xai.models.rowwise_matmul`). Not covered: GPU kernels, a user
``batch_size`` that is not a multiple of :data:`~xai.models.CALL_ROW_MULTIPLE`, and
plain-function models (called on exactly the rows asked about): these keep the guarantee
only where their output per row does not depend on the call's other rows. ``evaluations``
is the tasks' sum: a coalition every row shares (v(∅)) is evaluated once per block.

Dataset games (SAGE, permutation importance) explain one row over a data set: their summary
runs on the driver, and the values of its coalitions over the data rows are summed by Ray
actors, each over whole blocks of :data:`xai.game.DATA_BLOCK_ROWS` rows, the blocks' sums
added in block order as the local game adds them, so the value is the local one exactly.
Row-sampled games (SAGE's default) split each call's units (one data row each) over the same
actors instead.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch

from . import ray_backend
from .config import config
from .errors import InputError
from .explanation import Explanation

#: explicands per task at least (fewer only when there are fewer rows)
MIN_TASK_ROWS = 64
#: blocks a data set is cut into at most, whatever the number of workers: enough to keep
#: every worker busy and the progress bar moving, few enough that a task's fixed cost
#: (its round trip, the explain call's checks and set-up) stays small beside its rows
MAX_TASKS = 64
#: blocks per worker: several, so that a worker finishing early takes another block and the
#: workers end together, but few, since each block pays a task's fixed cost
TASKS_PER_WORKER = 4


def split_options(options: dict) -> tuple[dict, dict]:
    """``options`` as (the Ray backend's: backend, address, workers, num_cpus, num_gpus;
    the rest)."""
    ray_opts = {k: v for k, v in options.items() if k in ray_backend.RAY_OPTIONS}
    return ray_opts, {k: v for k, v in options.items() if k not in ray_backend.RAY_OPTIONS}


def task_blocks(n: int, rows_per_task: int | None = None,
                workers: int | None = None) -> list[tuple[int, int]]:
    """Row ranges ``[a, b)`` of the tasks: ``rows_per_task`` rows each, by default at least
    :data:`MIN_TASK_ROWS` rows and :data:`TASKS_PER_WORKER` blocks per worker (at most
    :data:`MAX_TASKS` blocks). The values never depend on the blocks, only the time."""
    count = MAX_TASKS if workers is None else min(MAX_TASKS, TASKS_PER_WORKER * int(workers))
    size = rows_per_task or max(MIN_TASK_ROWS, -(-n // count))
    return [(a, min(n, a + size)) for a in range(0, n, size)]


def _take(obj: Any, a: int, b: int, n: int) -> Any:
    """Rows ``a:b`` of a per-row object of ``n`` rows (a DataFrame, array, tensor or list);
    anything else unchanged."""
    if obj is None or isinstance(obj, str | int | float | bool):
        return obj
    if hasattr(obj, "iloc") and len(obj) == n:
        return obj.iloc[a:b]
    if isinstance(obj, np.ndarray | torch.Tensor) and obj.ndim and obj.shape[0] == n:
        return obj[a:b]
    if isinstance(obj, list | tuple) and len(obj) == n:
        return obj[a:b]
    return obj


def _block_features(features: Any, a: int, b: int, n: int) -> Any:
    """The feature map of rows ``a:b``: a per-explicand :class:`~xai.features.FeatureMap`
    restricted to them; shared maps and names unchanged."""
    from .features import FeatureMap

    if isinstance(features, FeatureMap) and not features.shared and features.n_maps == n:
        return features.subset(np.arange(a, b))
    return features


def _explain_block(shared: list, X: Any, y: Any, features: Any, output_kind: str | None,
                   setup: dict) -> Explanation:
    """One task: the local explain of one block. ``shared`` holds the run's (explainer,
    model, background), fetched once per worker process; ``setup``: the task's CPUs, the
    driver's memory cap and the device (:func:`xai.ray_backend.on_worker`)."""
    ray_backend.on_worker(**setup)
    explainer, model, background = ray_backend.fetch_shared(shared)
    return explainer.explain(model, X, y, background=background, features=features,
                             output_kind=output_kind)


def explain_on_ray(explainer: Any, model: Any, X: Any, y: Any = None, *, background: Any = None,
                   features: Any = None, output_kind: str | None = None,
                   rows_per_task: int | None = None) -> Explanation:
    """:meth:`xai.Explainer.explain` with ``backend="ray"``: see the module docstring.

    The model and the background go once into the object store (tasks hold references);
    ``workers`` caps the tasks in flight (default: the cluster's CPUs / ``num_cpus``);
    ``num_cpus`` (default 1) and ``num_gpus`` (default 1 when ``device`` is CUDA) are what
    each task holds, its torch threads follow ``num_cpus``; a task whose worker process dies
    is run again (Ray's retries), and a model's error reaches the caller as the same named
    error.
    """
    import copy

    from .inputs import check_options
    from .progress import Progress

    start = time.perf_counter()
    # the device is checked by the tasks, where the model runs (this process may have no GPU)
    ray_opts, local_opts = split_options(check_options(
        {k: v for k, v in explainer.options.items() if k != "device"}))
    device = ray_backend.task_device(explainer.options.get("device"), ray_opts.get("num_gpus"))
    ray = ray_backend.connect(ray_opts.get("address"))  # named errors before any model call
    # every check of the local path, on the driver, before any task: and one seed for all
    if background is None and "background" in local_opts:  # to the object store, once
        background = local_opts.pop("background")
    local = copy.copy(explainer)  # the same axes, without the Ray options
    local.options, local.progress = local_opts, False
    call = local._prepare(model, X, background, features, output_kind)
    local._build_axes(call, y)
    if device is not None:
        if call.dataset:  # its summary runs, and builds its game, here
            ray_backend.device_here(device, f"method {call.method!r} on Ray runs its summary "
                                    "and builds its game in this process, so the device must "
                                    "be here as well as on the workers")
        local_opts["device"] = device
    local.options = {**local_opts, "seed": call.merged["seed"]}
    n = len(X) if not isinstance(X, np.ndarray | torch.Tensor) else X.shape[0]
    if y is not None and not call.dataset and len(y) != n:
        raise InputError(f"y has {len(y)} labels for {n} explained rows: pass one per row")
    num_cpus = ray_opts.get("num_cpus") or 1
    options = ray_backend.task_options(num_cpus, ray_opts.get("num_gpus"), device)
    workers = ray_backend.task_slots(options, ray_opts.get("workers"))
    setup = {"num_cpus": num_cpus, "memory_cap": config.memory_cap, "device": device}
    if call.dataset:
        return _explain_dataset(local, explainer.progress, ray, (model, X, y, background,
                                                                 features, output_kind),
                                workers, options, setup, start)
    blocks = task_blocks(n, rows_per_task, workers)
    remote = ray.remote(_explain_block).options(**options)
    shared = ray_backend.share(ray, (local, model, background))
    parts: dict[int, Explanation] = {}

    def submit(block: tuple[int, int]) -> Any:
        a, b = block
        return remote.remote(shared, _take(X, a, b, n), _take(y, a, b, n),
                             _block_features(features, a, b, n), output_kind, setup)

    with Progress(f"xai {call.method} on ray", total=n, unit="rows",
                  enabled=explainer.progress) as progress:
        for index, part in ray_backend.as_completed(submit, blocks, workers=workers):
            parts[index] = part
            progress.update(blocks[index][1] - blocks[index][0])
    expl = join([parts[i] for i in range(len(blocks))])
    expl.seconds = float(time.perf_counter() - start)
    expl.options = {**expl.options, "backend": "ray", "workers": int(workers)}
    return expl


def _explain_dataset(local: Any, progress: Any, ray: Any, args: tuple, workers: int,
                     options: dict, setup: dict, start: float) -> Explanation:
    """A dataset game (SAGE, permutation importance) with its data rows on Ray: the summary
    runs here, and each of its coalitions' values over the data rows is summed by
    :class:`RayShards` (one Ray actor per group of data blocks) and combined in block order,
    as the local game combines them (:func:`xai.game.blocks_mean`). Row-sampled games
    (SAGE's default) draw one data row per unit: each call's units are split over the same
    actors."""
    model, X, y, background, features, output_kind = args
    shards: list[RayShards] = []

    # actors hold their CPUs while they live: no more of them than the cluster can hold
    workers = min(int(workers), ray_backend.default_workers(options["num_cpus"]))

    def build(game: Any) -> RayShards:
        shards.append(RayShards(ray, game, workers, options, setup))
        return shards[-1]

    local.dataset_shards = build
    local.progress = progress
    try:
        expl = local.explain(model, X, y, background=background, features=features,
                             output_kind=output_kind)
    finally:
        for shard in shards:
            shard.close()
    expl.evaluations += sum(shard.evaluations for shard in shards)
    expl.seconds = float(time.perf_counter() - start)
    expl.options = {**expl.options, "backend": "ray", "workers": int(workers)}
    return expl


class _Shard:
    """A Ray actor holding the local game over every data row (removals such as permutation
    donors read all of them) and summing the values of its data blocks' rows."""

    def __init__(self, game: Any, blocks: list[tuple[int, int]], setup: dict) -> None:
        ray_backend.on_worker(**setup)
        self.game, self.blocks, self.seen = game, blocks, game.rows_evaluated
        self.repeat: int | None = None  # the removal's repeat (a restarted actor has none)

    def sums(self, masks: np.ndarray, repeat: int | None) -> tuple[list[torch.Tensor], int]:
        from .game import row_sum

        self._sync(repeat)
        lo, hi = self.blocks[0][0], self.blocks[-1][1]
        values = self.game(masks, np.arange(lo, hi))
        return [row_sum(values[a - lo:b - lo]) for a, b in self.blocks], self._rows()

    def local(self, masks: np.ndarray, data_rows: np.ndarray, draws: np.ndarray | None,
              repeat: int | None) -> tuple[torch.Tensor, int]:
        """Values of per-unit coalitions for sampled data rows (any of the game's rows)."""
        self._sync(repeat)
        # arrays from the object store are read-only: torch warns on wrapping them
        draws = None if draws is None else np.array(draws)
        return self.game(np.array(masks), np.array(data_rows), draws=draws), self._rows()

    def _sync(self, repeat: int | None) -> None:
        if repeat != self.repeat:  # the driver's game has redrawn its replacements
            self.game.redraw(repeat)
            self.repeat = repeat

    def _rows(self) -> int:
        rows, self.seen = self.game.rows_evaluated - self.seen, self.game.rows_evaluated
        return rows


class RayShards:
    """The data blocks of a dataset game (:func:`xai.game.data_blocks`) in contiguous groups,
    one Ray actor per group (at most ``workers``); :meth:`sums` gives every block's
    :func:`~xai.game.row_sum` in block order. A dead actor is restarted and its call
    retried (Ray's actor restarts); ``evaluations`` counts the actors' model rows."""

    def __init__(self, ray: Any, game: Any, workers: int, options: dict, setup: dict) -> None:
        import copy

        from .game import data_blocks

        self.ray = ray
        blocks = data_blocks(game.n)
        per = -(-len(blocks) // max(1, min(int(workers), len(blocks))))
        groups = [blocks[i:i + per] for i in range(0, len(blocks), per)]
        portable = copy.copy(game)
        portable.progress = None  # the bar stays with the driver
        ref = ray.put(portable)
        actor = ray.remote(_Shard).options(
            num_cpus=options["num_cpus"], num_gpus=options["num_gpus"],
            max_restarts=options["max_retries"], max_task_retries=options["max_retries"])
        self.actors = [actor.remote(ref, group, setup) for group in groups]
        self.evaluations = 0
        self.repeat: int | None = None

    def sums(self, masks: np.ndarray) -> list[torch.Tensor]:
        out: list[torch.Tensor] = []
        for sums in self._results([a.sums.remote(masks, self.repeat) for a in self.actors]):
            out.extend(sums)
        return out

    def local(self, masks: np.ndarray, data_rows: np.ndarray,
              draws: np.ndarray | None = None) -> torch.Tensor:
        """Values of per-unit coalitions ``masks`` (``(U, m, d)``, or ``(m, d)`` shared) for
        sampled data rows ``data_rows`` ``(U,)`` (row-sampled SAGE), the units in contiguous
        groups, one per actor (each holds every data row). A pair's value does not depend on
        the other pairs of its call, so the values are the driver's own."""
        masks = np.asarray(masks)
        groups = [g for g in np.array_split(np.arange(len(data_rows)), len(self.actors))
                  if len(g)]
        refs = [actor.local.remote(masks[g] if masks.ndim == 3 else masks, data_rows[g],
                                   None if draws is None else draws[g], self.repeat)
                for actor, g in zip(self.actors, groups)]
        return torch.cat(self._results(refs))

    def _results(self, refs: list) -> list:
        out = []
        for ref in refs:
            try:
                value, rows = self.ray.get(ref)
            except self.ray.exceptions.RayTaskError as e:  # the model's own error
                raise ray_backend.unwrap(e) from None
            out.append(value)
            self.evaluations += rows
        return out

    def redraw(self, repeat: int) -> None:
        """Fresh random replacements for repeat ``repeat``: each actor's game redraws them
        with its next call (also after a restart)."""
        self.repeat = repeat

    def close(self) -> None:
        for actor in self.actors:
            self.ray.kill(actor)


def join(parts: list[Explanation]) -> Explanation:
    """One explanation of the rows of ``parts`` in order: per-row arrays concatenated,
    evaluations summed, the rest (names, removal, options) from the first part; the removal
    object and record of the first part, with its per-explicand arrays concatenated."""
    first = parts[0]
    if len(parts) == 1:
        return first
    n_parts = [len(p) for p in parts]

    def cat(name: str) -> Any:
        arrays = [getattr(p, name) for p in parts]
        return None if arrays[0] is None else np.concatenate(arrays)

    extras = {}
    for key, value in first.extras.items():
        per_row = value.ndim and value.shape[0] == n_parts[0] and all(
            key in p.extras and p.extras[key].shape[0] == k for p, k in zip(parts, n_parts))
        extras[key] = np.concatenate([p.extras[key] for p in parts]) if per_row else value
    fmap = first.feature_map
    if fmap is not None and fmap.shape[0] == n_parts[0] and fmap.shape[0] != 1:
        fmap = np.concatenate([p.feature_map for p in parts])
    summary = dict(first.summary)
    if "max_units" in summary:  # the most units any explicand drew
        summary["max_units"] = max(p.summary.get("max_units", 0) for p in parts)
    expl = Explanation(
        values=cat("values"), stderr=cat("stderr"), base_values=cat("base_values"),
        data=cat("data"), feature_names=list(first.feature_names), feature_map=fmap,
        channel_axis=first.channel_axis, output_names=first.output_names,
        method=first.method, removal=first.removal, behaviour=first.behaviour,
        summary=summary, evaluations=int(sum(p.evaluations for p in parts)),
        coalitions=cat("coalitions"), units=cat("units"), converged=cat("converged"),
        seconds=float(sum(p.seconds for p in parts)), options=dict(first.options),
        extras=extras)
    per = set(first.removal_record.get("per_explicand", ()))
    expl.removal_object = first.removal_object
    expl.removal_record = dict(first.removal_record)
    expl.removal_arrays = {k: (np.concatenate([p.removal_arrays[k] for p in parts])
                               if k in per else v) for k, v in first.removal_arrays.items()}
    return expl
