"""Problem 9: explaining a data set on Ray. KernelSHAP on 20,000 rows of a tabular model (the
breast-cancer MLP pipeline of problem 8, saved with skops, rows resampled from breast-cancer
with a little noise, ``d = 30``, 10 background rows, 64 coalitions per row), timed in this
process and on a local Ray cluster with 1 and 2 workers.

Two paths, each against its own local run: ``xai explain`` on a Parquet file
(:func:`xai.explain_files.explain_files`, chunks of 1,000 rows read by the workers, tables
written by the driver), and ``xai.explain(..., backend="ray")`` on a DataFrame in memory when
this xai has it. Targets: 2 workers at least 1.7x faster than 1 worker, and 1 worker at most
1.1x the local process. Every Ray run's values must equal the local run's.

Beyond this machine: the round trip of an empty task (one at a time, and many in flight), and
the driver's cost per result row (fetching a chunk's tables from the object store, writing its
part files and manifest, joining the parts at the end; or fetching and concatenating arrays in
memory). :func:`capacity` turns them into the number of workers at which the driver becomes
the bottleneck.
"""

from __future__ import annotations

import functools
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

SIZES = {
    "full": {"n_rows": 20_000, "background": 10, "coalitions": 64, "chunk_rows": 1000,
             "workers": (1, 2), "repeats": 5, "empty_tasks": 400, "driver_chunks": 8},
    "quick": {"n_rows": 2_000, "background": 10, "coalitions": 64, "chunk_rows": 250,
              "workers": (1, 2), "repeats": 1, "empty_tasks": 100, "driver_chunks": 4},
    "tiny": {"n_rows": 48, "background": 4, "coalitions": 64, "chunk_rows": 16,
             "workers": (1, 2), "repeats": 1, "empty_tasks": 10, "driver_chunks": 2},
}
TARGET_SPEEDUP = 1.7  # 2 workers against 1
TARGET_ONE_WORKER = 1.1  # 1 Ray worker against the local process
SCALES = (10, 100, 1000)  # workers of the capacity model
TRUST = ["sklearn.neural_network._stochastic_optimizers.AdamOptimizer"]


def rows_of(X, n: int, seed: int = 0):
    """``n`` rows resampled from ``X`` with Gaussian noise of 5% of each column's spread."""
    rng = np.random.default_rng(seed)
    rows = X.iloc[rng.integers(0, len(X), n)].reset_index(drop=True)
    return rows + rng.normal(size=rows.shape) * (0.05 * X.std().to_numpy())


def interleaved(runs: dict, repeats: int, same, *, tag: str, log=print) -> dict:
    """Time each of ``runs`` (name -> function; the first is the local reference) once per
    round, ``repeats`` rounds, so that a change in the machine's load falls on every run
    alike; the median per run, every time, the load average around it, and whether its
    output equals the reference's (``same(reference output, output)``)."""
    import os

    times: dict[str, list[float]] = {name: [] for name in runs}
    outputs: dict[str, object] = {}
    loads = [os.getloadavg()[0]]
    for _ in range(repeats):
        for name, fn in runs.items():
            t = time.perf_counter()
            outputs[name] = fn()
            times[name].append(time.perf_counter() - t)
        loads.append(os.getloadavg()[0])
    reference = outputs[next(iter(runs))]
    rows = {}
    for name in runs:
        rows[name] = {"seconds": statistics.median(times[name]), "times": times[name],
                      "identical": bool(same(reference, outputs[name]))}
        log(f"[p9] {tag}, {name}: {rows[name]['seconds']:.2f}s, values equal local "
            f"{rows[name]['identical']}")
    rows["local"]["load_1min"] = loads
    return rows


def _tables(folder: Path) -> dict:
    import pandas as pd

    return {name: pd.read_parquet(folder / f"{name}.parquet")
            for name in ("values", "stderr", "base_values")}


def _same_tables(a: dict, b: dict) -> bool:
    return all(a[k].equals(b[k]) for k in a)


def time_files(model_file: Path, data: Path, background: Path, sizes: dict, work: Path, *,
               log=print) -> dict:
    """``xai explain`` on the Parquet file: local, then Ray with each number of workers."""
    from xai.explain_files import explain_files

    budget = sizes["coalitions"] * sizes["background"]
    kw = {"method": "kernelshap", "background": background, "budget": budget, "seed": 0,
          "chunk_rows": sizes["chunk_rows"], "trust": TRUST, "figures": False,
          "progress": False}
    count = iter(range(1 << 30))

    explaining: dict[int, list[float]] = {}  # seconds inside explain, summed over chunks

    def run(**backend):
        out = work / f"files-{next(count)}"  # a new folder: a finished one would be resumed
        summary = explain_files(model_file, data, out=out, **kw, **backend)
        explaining.setdefault(backend.get("workers", 0), []).append(summary["seconds"])
        return out

    if not sizes["repeats"]:  # a warm-up: the Ray runs only, once
        for w in sizes["workers"]:
            run(backend="ray", workers=w)
        return {}
    runs = {"local": run, **{f"ray {w}": functools.partial(run, backend="ray", workers=w)
                             for w in sizes["workers"]}}
    rows = interleaved(runs, sizes["repeats"], lambda a, b: _same_tables(_tables(a),
                                                                          _tables(b)),
                       tag="files", log=log)
    for name, key in zip(runs, [0, *sizes["workers"]]):
        rows[name]["explain_seconds"] = statistics.median(explaining[key])
    return rows


def time_in_memory(model, X, bg, sizes: dict, *, log=print) -> dict | None:
    """``xai.explain`` on the DataFrame: local, then ``backend="ray"`` with each number of
    workers; None when this xai's explain has no Ray backend."""
    import xai

    budget = sizes["coalitions"] * len(bg)

    def run(**backend):
        return xai.explain(model, X, method="kernelshap", background=bg, budget=budget,
                           seed=0, progress=False, **backend)
    try:
        # warm-up (every worker process imports xai and the model's libraries once), and
        # whether this xai has the Ray backend
        run(backend="ray", workers=max(sizes["workers"]))
    except TypeError as e:
        log(f"[p9] in memory: xai.explain has no Ray backend ({e})")
        return None
    runs = {"local": run, **{f"ray {w}": functools.partial(run, backend="ray", workers=w)
                             for w in sizes["workers"]}}
    rows = interleaved(runs, sizes["repeats"],
                       lambda a, b: np.array_equal(a.values, b.values), tag="in memory",
                       log=log)
    busy: dict[str, list[tuple[float, float]]] = {}
    for _ in range(max(1, sizes["repeats"] // 2)):
        for name, fn in runs.items():
            if name != "local":
                busy.setdefault(name, []).append(task_seconds(fn))
    for name, pairs in busy.items():  # the run of median wall time, its tasks' seconds
        wall, executing = sorted(pairs)[(len(pairs) - 1) // 2]
        rows[name].update(task_wall=wall, task_seconds=executing)
        log(f"[p9] in memory, {name}: tasks executing {executing:.2f}s in all, in a run of "
            f"{wall:.2f}s")
    return rows


def task_seconds(run) -> tuple[float, float]:
    """``run()``'s wall seconds, and the seconds Ray's tasks spent executing during it,
    summed over tasks (Ray's timeline): against the wall time, what Ray and the driver add;
    against another number of workers, how much slower each task runs beside the others."""
    import ray

    start, t = time.time(), time.perf_counter()
    run()
    wall = time.perf_counter() - t
    time.sleep(1.5)  # the workers report their task events about once a second
    return wall, sum(e["dur"] / 1e6 for e in ray.timeline() if e.get("ph") == "X"
                     and e.get("name") == "task:execute" and e.get("ts", 0) / 1e6 >= start)


def targets(rows: dict, workers: tuple[int, ...]) -> dict:
    """The speed-up of the most workers over 1 worker, and 1 worker over the local process."""
    one, most = rows["ray 1"]["seconds"], rows[f"ray {max(workers)}"]["seconds"]
    speedup, ratio = one / most, one / rows["local"]["seconds"]
    return {"speedup": speedup, "speedup_target": TARGET_SPEEDUP,
            "speedup_met": speedup >= TARGET_SPEEDUP, "one_worker_ratio": ratio,
            "one_worker_target": TARGET_ONE_WORKER, "one_worker_met": ratio <= TARGET_ONE_WORKER,
            "identical": all(r["identical"] for r in rows.values())}


# ---------------------------------------------------------------- beyond this machine


def _empty() -> None:
    return None


def _niceness() -> int:
    import os

    return os.nice(0)


def task_overhead(ray, n: int) -> dict:
    """Seconds per empty task: one at a time (the round trip a task adds), and ``n`` in flight
    at once (the driver's scheduling cost per task, its most tasks per second)."""
    empty = ray.remote(num_cpus=1)(_empty)
    ray.get([empty.remote() for _ in range(4)])  # workers up
    round_trips = []
    for _ in range(n):
        t = time.perf_counter()
        ray.get(empty.remote())
        round_trips.append(time.perf_counter() - t)
    t = time.perf_counter()
    ray.get([empty.remote() for _ in range(n)])
    in_flight = (time.perf_counter() - t) / n
    return {"round_trip_seconds": statistics.median(round_trips),
            "pipelined_seconds_per_task": in_flight, "tasks": n}


def _chunk_tables(layout: dict, start: int, rows: int, seed: int) -> dict:
    """A chunk result as a worker returns it (xai.explain_files' tables), of random values."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    frames = {}
    for name, cols in (("values", layout["values"]), ("stderr", layout["values"]),
                       ("base_values", layout["base"])):
        frame = pd.DataFrame(rng.normal(size=(rows, len(cols))), columns=cols)
        frame.insert(0, "row", np.arange(start, start + rows, dtype=np.int64))
        frames[name] = frame
    frames["base_values"]["target"] = "1"
    return {"frames": frames, "layout": layout, "rows": rows, "evaluations": 1,
            "seconds": 0.0, "estimator": "kernelshap"}


def _driver_chunks(ray, d: int, rows: int, chunks: int, out: Path) -> dict:
    """The driver's seconds for ``chunks`` results of ``rows`` rows: fetching each chunk's
    tables and writing its part files and manifest, joining all parts; fetching arrays of
    values and standard errors and concatenating them."""
    from xai import explain_files as ef

    names = [f"f{j}" for j in range(d)]
    layout = {"features": names, "values": names, "base": ["base_value"], "outputs": None}
    make = ray.remote(num_cpus=1)(_chunk_tables)
    arrays = ray.remote(num_cpus=1)(
        lambda r, k: (np.random.default_rng(k).normal(size=(r, d)),) * 2)
    refs = [make.remote(layout, k * rows, rows, k) for k in range(chunks)]
    ray.wait(refs, num_returns=len(refs))  # computed; only the driver's part is timed
    out.mkdir(parents=True, exist_ok=True)
    manifest = {"chunks_done": [], "rows_done": 0, "evaluations": 0, "seconds": 0.0,
                "layout": None}
    per_chunk = []
    for k, ref in enumerate(refs):
        t = time.perf_counter()
        ef._write_chunk(out, k, ray.get(ref), "parquet", manifest)
        per_chunk.append(time.perf_counter() - t)
    t = time.perf_counter()
    for name in ef.TABLES:
        ef._join([out / ef.PARTS / f"{name}-{k:06d}.parquet" for k in range(chunks)],
                 out / f"{name}.parquet", "parquet")
    join = time.perf_counter() - t
    refs = [arrays.remote(rows, k) for k in range(chunks)]
    ray.wait(refs, num_returns=len(refs))
    t = time.perf_counter()
    parts = [ray.get(ref) for ref in refs]
    values = np.concatenate([p[0] for p in parts])
    stderr = np.concatenate([p[1] for p in parts])
    memory = time.perf_counter() - t
    assert values.shape == stderr.shape == (rows * chunks, d)
    return {"files_chunk": statistics.median(per_chunk), "join_row": join / (rows * chunks),
            "memory_chunk": memory / chunks}


def driver_cost(ray, d: int, rows: int, chunks: int, work: Path) -> dict:
    """The driver's cost of a result as ``seconds per chunk + seconds per row x rows``, from
    chunks of ``rows`` and ``4 rows`` rows: the files path (fetch a chunk's tables from the
    object store, write its part files and manifest) and the in-memory path (fetch a chunk's
    values and standard errors, concatenate); and the join of the part files at the end, per
    row."""
    _driver_chunks(ray, d, rows, 2, work / "driver-warm")  # imports, first writers
    small = _driver_chunks(ray, d, rows, chunks, work / "driver-small")
    large = _driver_chunks(ray, d, 4 * rows, chunks, work / "driver-large")
    out = {"chunk_rows": [rows, 4 * rows], "chunks": chunks, "d": d,
           "join_per_row": large["join_row"]}
    for name in ("files", "memory"):
        per_row = max((large[f"{name}_chunk"] - small[f"{name}_chunk"]) / (3 * rows), 0.0)
        out[f"{name}_per_row"] = per_row
        out[f"{name}_per_chunk"] = max(small[f"{name}_chunk"] - rows * per_row, 0.0)
    return out


def capacity(rows_per_worker: float, task_seconds: float, chunk_seconds: float,
             row_seconds: float, chunk_rows: int, scales=SCALES) -> dict:
    """When the driver becomes the bottleneck. ``W`` workers of ``r`` rows/s each send
    ``W r / c`` results per second for chunks of ``c`` rows, and the driver spends ``t = task
    + chunk + c row`` seconds on each (the task's scheduling, the result's fixed and per-row
    costs): its load is ``W r t / c``, so it saturates at ``W* = c / (r t)`` workers. Larger
    chunks raise ``W*`` towards ``1 / (r row)``, which no chunk size passes; a chunk of ``c >=
    W r (task + chunk) / (0.5 - W r row)`` rows keeps the driver at most half busy."""
    fixed = task_seconds + chunk_seconds
    per_result = fixed + chunk_rows * row_seconds
    out = {"rows_per_worker_per_second": rows_per_worker, "chunk_rows": chunk_rows,
           "driver_seconds_per_result": per_result,
           "driver_rows_per_second": chunk_rows / per_result,
           "saturating_workers": chunk_rows / (rows_per_worker * per_result),
           "saturating_workers_any_chunk": (1 / (rows_per_worker * row_seconds)
                                            if row_seconds > 0 else None), "scales": []}
    for w in scales:
        room = 0.5 - w * rows_per_worker * row_seconds
        out["scales"].append({
            "workers": w, "driver_load": w * rows_per_worker * per_result / chunk_rows,
            "cluster_rows_per_second": min(w * rows_per_worker, chunk_rows / per_result),
            "chunk_rows_for_half_load": (w * rows_per_worker * fixed / room
                                         if room > 0 else None)})
    return out


# ---------------------------------------------------------------- the problem


def run_ray_scaling(sizes: dict, *, log=print, address: str | None = None) -> dict:
    import skops.io as sio

    from xai.ray_backend import connect

    from .estimator_calls import _model

    model, X = _model()
    rows, bg = rows_of(X, sizes["n_rows"]), X.iloc[100:100 + sizes["background"]]
    work = Path(tempfile.mkdtemp(prefix="xai-p9-"))
    try:
        sio.dump(model, work / "model.skops")
        rows.to_parquet(work / "rows.parquet", row_group_size=sizes["chunk_rows"])
        bg.to_parquet(work / "background.parquet")
        # Ray runs its workers at nice 15; on a machine shared with other work that starves
        # them against the local process at nice 0, so a cluster started here uses 0
        local = {} if address else {"num_cpus": max(sizes["workers"]),
                                    "_system_config": {"worker_niceness": 0}}
        ray = connect(address, **local)
        niceness = ray.get(ray.remote(num_cpus=1)(_niceness).remote())
        task = task_overhead(ray, sizes["empty_tasks"])
        log(f"[p9] empty task: {task['round_trip_seconds'] * 1e3:.2f} ms round trip, "
            f"{task['pipelined_seconds_per_task'] * 1e3:.2f} ms each with many in flight")
        driver = driver_cost(ray, X.shape[1], sizes["chunk_rows"], sizes["driver_chunks"], work)
        log(f"[p9] driver per result: files {driver['files_per_chunk'] * 1e3:.2f} ms + "
            f"{driver['files_per_row'] * 1e6:.2f} µs/row, join {driver['join_per_row'] * 1e6:.2f}"
            f" µs/row; in memory {driver['memory_per_chunk'] * 1e3:.2f} ms + "
            f"{driver['memory_per_row'] * 1e6:.2f} µs/row")
        small = {**sizes, "n_rows": min(sizes["n_rows"], 2 * max(sizes["workers"]) *
                                        sizes["chunk_rows"]), "repeats": 0}
        rows.iloc[:small["n_rows"]].to_parquet(work / "warm.parquet")
        time_files(work / "model.skops", work / "warm.parquet", work / "background.parquet",
                   {**small, "workers": (max(sizes["workers"]),)}, work / "warm")
        files = time_files(work / "model.skops", work / "rows.parquet",
                           work / "background.parquet", sizes, work, log=log)
        memory = time_in_memory(model, rows, bg, sizes, log=log)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    task_seconds = task["pipelined_seconds_per_task"]
    res = {"d": X.shape[1], "n_rows": sizes["n_rows"], "background": sizes["background"],
           "coalitions": sizes["coalitions"], "chunk_rows": sizes["chunk_rows"],
           "workers": list(sizes["workers"]), "files": files,
           "files_targets": targets(files, sizes["workers"]), "in_memory": memory,
           "in_memory_targets": None if memory is None else targets(memory, sizes["workers"]),
           "task": task, "driver": driver, "worker_niceness": niceness,
           "process_niceness": _niceness(),
           "capacity": capacity(sizes["n_rows"] / files["ray 1"]["seconds"], task_seconds,
                                driver["files_per_chunk"], driver["files_per_row"],
                                sizes["chunk_rows"])}
    if memory is not None:
        res["capacity_in_memory"] = capacity(
            sizes["n_rows"] / memory["ray 1"]["seconds"], task_seconds,
            driver["memory_per_chunk"], driver["memory_per_row"],
            _block_rows(sizes["n_rows"], sizes["chunk_rows"]))
    for name in ("files", "in_memory"):
        t = res[f"{name}_targets"]
        if t is not None:
            log(f"[p9] {name}: 2 workers {t['speedup']:.2f}x faster than 1 (target >= "
                f"{TARGET_SPEEDUP}) {'met' if t['speedup_met'] else 'NOT met'}; 1 worker "
                f"{t['one_worker_ratio']:.2f}x the local process (target <= "
                f"{TARGET_ONE_WORKER}) {'met' if t['one_worker_met'] else 'NOT met'}; "
                f"values identical {t['identical']}")
    return res


def _block_rows(n: int, default: int) -> int:
    """Rows per task of ``xai.explain(..., backend="ray")`` on ``n`` rows."""
    try:
        from xai.ray_explain import task_blocks
    except ImportError:
        return default
    a, b = task_blocks(n)[0]
    return b - a


def _timing_table(rows: dict, inside_key: str, inside_name: str) -> list[str]:
    local = rows["local"]["seconds"]
    out = [(f"| run | seconds (median) | all rounds | vs local | {inside_name} "
            "| values equal local |"), "|---|---|---|---|---|---|"]
    for name, r in rows.items():
        inside = r.get(inside_key)
        out.append(f"| {name if name == 'local' else name + ' worker(s)'} | {r['seconds']:.2f} "
                   f"| {', '.join(f'{t:.2f}' for t in r['times'])} | "
                   f"{r['seconds'] / local:.2f} | {'–' if inside is None else f'{inside:.2f}'} "
                   f"| {'yes' if r['identical'] else 'NO'} |")
    return out


def _busy_lines(rows: dict) -> list[str]:
    """What bounds the speed-up: the tasks' executing seconds with 2 workers against 1, and
    what Ray, the driver and the last blocks add to the wall time."""
    one, two = rows.get("ray 1", {}), rows.get("ray 2", {})
    if not one.get("task_seconds") or not two.get("task_seconds"):
        return []
    busy1, busy2 = one["task_seconds"], two["task_seconds"]
    return [(f"- the tasks execute {busy2 / busy1:.2f}x as long in all with 2 workers as with "
             f"1 (two processes sharing this machine's cores, memory and caches), which bounds "
             f"the speed-up at {2 * busy1 / busy2:.2f}x"),
            (f"- in one more run of each (median wall time): Ray and the driver add "
             f"{one['task_wall'] - busy1:.2f} s to the 1-worker run of {one['task_wall']:.2f} "
             f"s; the 2 workers of a {two['task_wall']:.2f} s run execute tasks for "
             f"{busy2 / (2 * two['task_wall']):.0%} of it")]


def _load_line(rows: dict) -> str:
    loads = rows["local"].get("load_1min") or []
    return ("Runs interleaved, one of each per round; load average (1 min) before the first "
            f"round and after each: {', '.join(f'{x:.2f}' for x in loads)}.")


def _targets_lines(t: dict) -> list[str]:
    return [(f"- 2 workers {t['speedup']:.2f}x faster than 1 worker (target >= "
            f"{t['speedup_target']}): **{'met' if t['speedup_met'] else 'not met'}**"),
            (f"- 1 worker {t['one_worker_ratio']:.2f}x the local process (target <= "
            f"{t['one_worker_target']}): **{'met' if t['one_worker_met'] else 'not met'}**")]


def _capacity_lines(c: dict, what: str) -> list[str]:
    limit = c["saturating_workers_any_chunk"]
    lines = [(f"{what}: a worker explains {c['rows_per_worker_per_second']:.0f} rows/s; the "
              f"driver spends {c['driver_seconds_per_result'] * 1e3:.2f} ms per result and "
              f"absorbs at most {c['driver_rows_per_second']:.3g} result rows/s in chunks of "
              f"{c['chunk_rows']} rows, so it saturates at "
              f"**{c['saturating_workers']:.0f} workers** (at most "
              f"{'unbounded' if limit is None else f'{limit:.0f}'} with any chunk size)."), "",
             "| workers | driver load | cluster rows/s | chunk rows for a half-busy driver |",
             "|---|---|---|---|"]
    for s in c["scales"]:
        chunk = ("unreachable" if s["chunk_rows_for_half_load"] is None
                 else f"{s['chunk_rows_for_half_load']:.0f}")
        lines.append(f"| {s['workers']} | {s['driver_load']:.2f} | "
                     f"{s['cluster_rows_per_second']:.3g} | {chunk} |")
    return lines


def markdown(res: dict, env: dict) -> str:
    from .report import _env_line

    task, drv = res["task"], res["driver"]
    lines = [(f"# Problem 9: KernelSHAP on {res['n_rows']} rows on Ray (d = {res['d']}, "
              f"{res['background']} background rows, {res['coalitions']} coalitions, chunks "
              f"of {res['chunk_rows']} rows)"), "", _env_line(env), "",
             (f"Ray workers at nice {res['worker_niceness']}, the local process at nice "
              f"{res['process_niceness']}."), "",
             "## xai explain on a Parquet file", "",
             *_timing_table(res["files"], "explain_seconds",
                            "seconds inside explain (all chunks)"), "",
             _load_line(res["files"]), "",
             *_targets_lines(res["files_targets"]), ""]
    if res["in_memory"] is not None:
        lines += ["## xai.explain(..., backend='ray') on a DataFrame", "",
                  *_timing_table(res["in_memory"], "task_seconds",
                                 "seconds executing tasks (all blocks, Ray's timeline)"), "",
                  _load_line(res["in_memory"]), "",
                  *_targets_lines(res["in_memory_targets"]), *_busy_lines(res["in_memory"]),
                  ""]
    lines += ["## Beyond this machine", "",
              (f"- empty task: {task['round_trip_seconds'] * 1e3:.2f} ms round trip one at a "
               f"time; {task['pipelined_seconds_per_task'] * 1e3:.2f} ms per task with "
               f"{task['tasks']} in flight (the driver's cost per task)"),
              (f"- driver per result, files: {drv['files_per_chunk'] * 1e3:.2f} ms + "
               f"{drv['files_per_row'] * 1e6:.2f} µs per row (fetch the chunk's tables, write "
               f"its part files and manifest); joining the parts at the end "
               f"{drv['join_per_row'] * 1e6:.2f} µs per row"),
              (f"- driver per result, in memory: {drv['memory_per_chunk'] * 1e3:.2f} ms + "
               f"{drv['memory_per_row'] * 1e6:.2f} µs per row (fetch values and standard "
               "errors, concatenate)"),
              f"(fitted from chunks of {drv['chunk_rows'][0]} and {drv['chunk_rows'][1]} rows)",
              "",
              *_capacity_lines(res["capacity"], "Files path"), ""]
    if "capacity_in_memory" in res:
        lines += [*_capacity_lines(res["capacity_in_memory"], "In memory"), ""]
    return "\n".join(lines)


def run_problem(out: Path, sizes: dict, *, cache_dir: Path, only=None, log=print,
                env: dict) -> dict:
    from . import report

    t = time.perf_counter()
    res = run_ray_scaling(sizes, log=log)
    res["seconds_total"] = time.perf_counter() - t
    report.publish(out, "problem9", res, env, markdown, log)
    return res
