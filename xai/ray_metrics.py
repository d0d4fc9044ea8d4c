"""``metric(model, x, a, ..., backend="ray")``: a row-looping metric's rows in blocks, each
block a Ray task that runs the same metric, the per-row scores joined in row order.

Each row's random draws are keyed on the seed and the row's index in the whole input
(:meth:`~xai.metrics.MetricInputs.rng`, offset by the block's first row), and a model call's
rows do not change each other's outputs (:data:`xai.models.CALL_ROW_MULTIPLE`), so the
per-row scores, their mean and standard error equal a local run's bit for bit. Metrics whose
result is not a set of independent per-row scores (``rows_split = False``) refuse the
backend.
"""

from __future__ import annotations

import copy
import time
from typing import Any

import numpy as np

from . import ray_backend
from .config import config
from .errors import OptionError
from .ray_explain import _take, task_blocks


def _block_attributions(a: Any, lo: int, hi: int, n: int) -> Any:
    from .explanation import Explanation

    return a[lo:hi] if isinstance(a, Explanation) else _take(np.asarray(a), lo, hi, n)


def _score_block(shared: list, x: Any, a: Any, kwargs: dict, offset: int,
                 setup: dict) -> Any:
    """One task: the metric on one block, its rows' random streams keyed on their index in
    the whole input; ``shared`` holds the run's (metric, model), fetched once per worker
    process."""
    ray_backend.on_worker(**setup)
    metric, model = ray_backend.fetch_shared(shared)
    metric = copy.copy(metric)
    metric.row_offset = offset
    return metric(model, x, a, progress=False, **kwargs)


def metric_on_ray(metric: Any, model: Any, x: Any, a: Any, *, ray_options: dict,
                  aggregate_rows: Any, progress: bool | str = "auto", **kwargs: Any) -> Any:
    """Run ``metric`` on Ray (see the module docstring); ``kwargs`` are the metric call's
    own arguments (target, removal, seed, explainer, ground_truth, options);
    ``aggregate_rows`` gives the mean, SE and NaN count of per-row scores
    (:func:`xai.metrics.base.aggregate_rows`)."""
    from .progress import Progress

    if not getattr(metric, "rows_split", False):
        raise OptionError(f"metric {metric.name!r} does not split its rows over Ray tasks (its "
                          "result is not a set of independent per-row scores): use "
                          "backend='local'")
    start = time.perf_counter()
    own = {k: v for k, v in kwargs.items() if k in metric.defaults}
    kwargs.update(metric.whole_set_options(x, {**metric.options, **own}))
    ray = ray_backend.connect(ray_options.get("address"))
    n = len(x)
    num_cpus = ray_options.get("num_cpus") or 1
    device = ray_backend.task_device(kwargs.get("device"), ray_options.get("num_gpus"))
    options = ray_backend.task_options(num_cpus, ray_options.get("num_gpus"), device)
    workers = ray_backend.task_slots(options, ray_options.get("workers"))
    blocks = task_blocks(n, workers=workers)
    remote = ray.remote(_score_block).options(**options)
    setup = {"num_cpus": num_cpus, "memory_cap": config.memory_cap, "device": device}
    shared = ray_backend.share(ray, (metric, model))
    per_row = ("target", "ground_truth")

    def submit(block: tuple[int, int]) -> Any:
        lo, hi = block
        args = {k: (_take(v, lo, hi, n) if k in per_row else v) for k, v in kwargs.items()}
        return remote.remote(shared, _take(x, lo, hi, n),
                             _block_attributions(a, lo, hi, n), args, lo, setup)

    parts: dict[int, Any] = {}
    with Progress(f"xai {metric.name} on ray", total=n, unit="rows",
                  enabled=progress) as bar:
        for index, part in ray_backend.as_completed(submit, blocks, workers=workers):
            parts[index] = part
            bar.update(blocks[index][1] - blocks[index][0])
    ordered = [parts[i] for i in range(len(blocks))]
    sizes = [hi - lo for lo, hi in blocks]
    per_sample = np.concatenate([p.per_sample for p in ordered])
    mean, se, n_nan = aggregate_rows(per_sample)
    first = ordered[0]
    extras, settings = _joined_extras(ordered, sizes), dict(first.settings)
    for key in metric.rms_extras:  # root mean squares over each block's rows, joined
        values = [p.extras.get(key) for p in ordered]
        joined = None if any(v is None for v in values) else float(
            np.sqrt(np.dot(np.square(values), sizes) / sum(sizes)))
        extras[key] = joined
        if key in settings:
            settings[key] = joined
    return type(first)(
        name=first.name, per_sample=per_sample, aggregate=mean, se=se, n_nan=n_nan,
        evaluations=int(sum(p.evaluations for p in ordered)),
        seconds=time.perf_counter() - start,
        settings={**settings, "backend": "ray", "workers": int(workers)},
        direction=first.direction,
        curves=None if first.curves is None else np.concatenate([p.curves for p in ordered]),
        extras=extras)


def _joined_extras(parts: list, sizes: list[int]) -> dict:
    """Extras of the blocks: per-row arrays (one entry per row of every block) concatenated,
    shared ones (equal in every block) kept."""
    out = {}
    for key, value in parts[0].extras.items():
        values = [p.extras.get(key) for p in parts]
        arrays = [np.asarray(v) for v in values]
        shared = all(np.array_equal(arrays[0], v) for v in arrays[1:])
        per_row = all(v.ndim and v.shape[0] == k for v, k in zip(arrays, sizes))
        out[key] = np.concatenate(arrays) if per_row and (len(set(sizes)) > 1 or not shared) \
            else value
    return out
