"""Explain a saved model on a CSV or Parquet file, chunk by chunk, resumably: ``xai explain``.

:func:`explain_files` reads the rows of ``data`` in chunks of ``chunk_rows``, explains each
chunk with :func:`xai.explain` and writes its values as a part file as soon as it is done; a
manifest (``manifest.json``) records the options, the fingerprints of the model, data and
background files, and the chunks done. Running the same call again skips the chunks done; a
call with other options or inputs into the same folder is refused
(:class:`~xai.errors.OutputConflictError`) unless ``overwrite=True``. When every chunk is done
the parts are joined into the output files and the figures and summary are written.

A row's values do not depend on the chunk it is read in: the summaries draw one design of
coalitions per round from the seed and share it across the explicands (see
:mod:`xai.summaries.base`), and the background sample is drawn from the seed alone, so the
values of any chunking equal those of :func:`xai.explain` on all rows with the same ``seed``:
bit for bit when the model computes each row alone (trees, elementwise functions), to
rounding when it multiplies matrices (a BLAS product may round a row's output by the rows
beside it in the call). Without ``background``, a method that needs one gets
``background_rows`` rows of ``data``, evenly spaced (one pass over a CSV file counts its rows).

With ``backend="ray"`` each chunk is a Ray task that reads its own rows and explains them the
same way (:mod:`xai.explain_files_ray`); this process writes the results as they arrive into
the same part files and manifest, so the values, the resume and the lock are those above.

Output files in ``out`` (``.parquet``, or ``.csv`` with ``format="csv"``):

- ``values``: one row per input row, a ``row`` column (the row's position in ``data``, from
  0) and one column per feature. With several outputs (``target="all"``) the columns are
  ``feature[output]`` for each output in turn, outputs named by the model's ``classes_``.
- ``stderr``: the standard errors, laid out like ``values`` (NaN where a method has none).
- ``base_values``: ``row`` and ``base_value`` (or ``base_value[output]``), and, for methods
  that explain one output per row, ``target``: the output each row explains, named by the
  model's ``classes_`` (the positive class of a binary classifier, each row's predicted class
  of a multi-class one).
- ``summary.json`` / ``summary.md``: method, options, rows, seconds, model evaluations, and
  the top features by mean ``|value|``; ``bar.png`` and ``beeswarm.png`` (one pair per
  output, ``bar-<output>.png``, with several outputs or rows that explain different classes);
  the beeswarm draws at most :data:`BEESWARM_ROWS` rows, evenly spaced, the bar every row.
- ``manifest.json``: the run's options, fingerprints and progress (what a rerun compares).
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import re
import shutil
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .data_files import TableFile, require_pyarrow
from .errors import (
    InputError,
    OptionError,
    OutputConflictError,
    TargetError,
    unknown_name,
)
from .model_files import load_model, model_fingerprint
from .progress import Progress

__all__ = ["BACKENDS", "BEESWARM_ROWS", "FORMATS", "explain_files"]

BACKENDS = ("local", "ray")
FORMATS = ("parquet", "csv")
BEESWARM_ROWS = 5000
MANIFEST = "manifest.json"
LOCK = ".explain.lock"
PARTS = "parts"
TABLES = ("values", "stderr", "base_values")
ROW = "row"
MANIFEST_VERSION = 1


def explain_files(model: Any, data: str | os.PathLike, *, out: str | os.PathLike,
                  method: str = "shap", background: str | os.PathLike | None = None,
                  target: int | str | None = None, features: Sequence[str] | None = None,
                  budget: int | None = None, seed: int = 0, chunk_rows: int = 1000,
                  format: str = "parquet", output_kind: str | None = None,
                  trust: Sequence[str] = (), trust_pickle: bool = False,
                  background_rows: int = 100, backend: str = "local",
                  address: str | None = None, workers: int | None = None, num_cpus: float = 1,
                  num_gpus: float | None = None, device: Any = None, overwrite: bool = False,
                  figures: bool = True, progress: bool | str = "auto") -> dict:
    """Explain ``model`` on every row of the CSV or Parquet file ``data`` into folder ``out``;
    returns the summary (also written as ``summary.json``).

    Parameters
    ----------
    model : a model file (``.skops``, ``.joblib``/``.pkl`` with ``trust_pickle``, TorchScript
        ``.pt``/``.ts``), ``"package.module:name"`` (see :mod:`xai.model_files`), or a model
        object.
    data : the rows to explain, a ``.csv`` or ``.parquet`` file.
    out : output folder (see the module docstring for its files).
    method : a named method (``xai.methods()``) that gives one row of values per input row.
    background : a CSV or Parquet file of background rows with the columns of ``data``; when
        the method needs one and none is given, ``background_rows`` rows of ``data``, evenly
        spaced.
    target : output to explain: an index, a class name of the model's ``classes_``,
        ``"predicted"`` or ``"all"``; default as :func:`xai.explain`.
    features : the columns of ``data`` given to the model (default: the model's
        ``feature_names_in_`` when it has them, else every column).
    budget, seed : as in :func:`xai.explain`; the seed keys every chunk alike.
    chunk_rows : rows read, explained and written at a time.
    format : ``"parquet"`` or ``"csv"`` output tables.
    output_kind : what the model returns (``"logits"``, ``"probability"``, ``"raw"``).
    trust : type names a ``.skops`` file may build beyond skops' defaults.
    trust_pickle : load a pickle (``.joblib``/``.pkl``), which runs code from the file.
    backend : ``"local"`` (this process), or ``"ray"``: each chunk is a Ray task that reads
        its own rows and explains them (see :mod:`xai.explain_files_ray`); this process writes
        the results as they arrive, with the same files, values, resume and lock.
    address : the Ray cluster (default: the connection already open, ``RAY_ADDRESS``, else a
        new local cluster); ``backend="ray"`` only.
    workers : chunks running at once on Ray (default: the cluster's CPUs / ``num_cpus``).
    num_cpus : CPUs each chunk's task holds (torch threads in the task).
    num_gpus : GPUs each chunk's task holds (default: 1 with a CUDA ``device``, else 0).
    device : where a torch model runs (``"cpu"``, ``"cuda"``, ``"cuda:1"``; default: where its
        parameters are). With ``backend="ray"`` each task checks it before its first model
        call, so this process needs no GPU. Part of the run's options: a run resumes on the
        device it started on (values on another device differ in their last bits).
    overwrite : replace a run of other options in ``out`` instead of refusing.
    figures : write ``bar.png`` and ``beeswarm.png``.
    progress : a progress bar over input rows on stderr (:class:`xai.progress.Progress`;
        ``"auto"``: on a terminal or in a notebook).
    """
    started = time.perf_counter()
    _check_options(backend, format, chunk_rows, background_rows, method)
    device = _check_ray_options(backend, address, workers, num_cpus, num_gpus, device)
    table = TableFile(data, "data")
    model_spec = model if isinstance(model, str | os.PathLike) else None
    model_obj = load_model(model, trust=trust, trust_pickle=trust_pickle) \
        if model_spec is not None else model
    columns = _model_columns(model_obj, table, features)
    target = _resolve_target(model_obj, target)
    n = table.n_rows
    bg_frame, bg_record = _background(background, table, columns, method, background_rows)
    options = {"method": method, "target": target, "features": columns, "budget": budget,
               "seed": seed, "chunk_rows": int(chunk_rows), "format": format,
               "output_kind": output_kind, "background": bg_record}
    if device is not None:  # (runs before this option have no key: they still resume)
        options["device"] = device
    run = {"version": MANIFEST_VERSION, "options": options, "data": table.fingerprint(),
           "model": model_fingerprint(model_spec) if model_spec is not None else
           {"object": f"{type(model_obj).__module__}.{type(model_obj).__qualname__}"}}
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    with _folder_lock(out):
        manifest = _open_run(out, run, overwrite)
        explain_kw = {k: v for k, v in (("budget", budget), ("target", target),
                                        ("device", device)) if v is not None}
        done = set(manifest["chunks_done"])
        # input rows against their total, the ETA from this run's rate; warnings above it
        with Progress("xai explain", total=n, unit="rows", enabled=progress,
                      initial=sum(_chunk_len(i, chunk_rows, n) for i in done)) as bar:
            compute = functools.partial(_chunk_result, method=method, background=bg_frame,
                                        seed=seed, output_kind=output_kind, options=explain_kw)
            ray = None if backend != "ray" else {
                "model": _model_source(model, model_obj), "trust": tuple(trust),
                "trust_pickle": trust_pickle, "address": address, "workers": workers,
                "num_cpus": num_cpus, "num_gpus": num_gpus, "device": device}
            results = _results(table, n, chunk_rows, columns, done, compute, model_obj, ray)
            for i, result in results:
                _write_chunk(out, i, result, format, manifest)
                bar.update(result["rows"])
        summary = _finish(out, manifest, n, format, figures)
    summary["wall_seconds"] = round(time.perf_counter() - started, 3)
    _write_summary(out, summary)
    return summary


def _results(table: TableFile, n: int, chunk_rows: int, columns: list[str], done: set,
             compute: Any, model: Any, ray: dict | None) -> Iterator[tuple[int, dict]]:
    """``(i, compute's result)`` for each chunk ``i`` not ``done``: in this process in file
    order, or (``ray``: the model's source and the cluster options) as Ray tasks that read
    their own rows, in the order they finish."""
    if ray is None:
        if len(done) * chunk_rows < n:
            for i, frame in table.chunks(chunk_rows, columns, skip=done):
                yield i, compute(model, frame, i * chunk_rows)
        return
    from .explain_files_ray import ChunkWork, run_chunks

    work = ChunkWork(data=str(table.path.resolve()), chunk_rows=chunk_rows, columns=columns,
                     compute=compute, model=ray["model"], trust=ray["trust"],
                     trust_pickle=ray["trust_pickle"])
    todo = [i for i in range(-(-n // chunk_rows)) if i not in done]
    yield from run_chunks(work, todo, address=ray["address"], workers=ray["workers"],
                          num_cpus=ray["num_cpus"], num_gpus=ray["num_gpus"],
                          device=ray["device"])


# ------------------------------------------------------------------ checks


def _check_options(backend: str, format: str, chunk_rows: int, background_rows: int,
                   method: str) -> None:
    if backend not in BACKENDS:
        raise unknown_name("backend", backend, BACKENDS)
    if format not in FORMATS:
        raise unknown_name("output format", format, FORMATS)
    if format == "parquet":
        require_pyarrow()
    for name, value in (("chunk_rows", chunk_rows), ("background_rows", background_rows)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise OptionError(f"{name} must be a positive integer, got {value!r}")
    preset = _preset(method)
    if preset is None:
        return
    from . import registry

    if preset.dataset:
        raise OptionError(f"method {method!r} explains the whole data set with one row of "
                          "values, and xai explain writes one row per input row: use "
                          f"xai.explain(model, X, {method!r}, y=...) in Python")
    if getattr(registry.get("behaviour", preset.behaviour), "needs_labels", False):
        raise OptionError(f"method {method!r} needs labels, which xai explain does not read "
                          f"yet: use xai.explain(model, X, {method!r}, y=...) in Python")


def _check_ray_options(backend: str, address: str | None, workers: int | None,
                       num_cpus: float, num_gpus: float | None, device: Any) -> str | None:
    """The Ray options checked, and the device's name (``"cuda"`` stays ``"cuda"``, so a run
    resumes on either backend): for a local run the device is checked here, for Ray only its
    form (each task checks that its machine has it)."""
    if backend != "ray":
        given = [k for k, v in (("address", address), ("workers", workers),
                                ("num_gpus", num_gpus)) if v is not None]
        if given or num_cpus != 1:
            raise OptionError(f"{', '.join(given) or 'num_cpus'} applies to backend 'ray' only; "
                              "add backend='ray' (--backend ray) or leave it out")
        from .devices import check_device, device_name

        check_device("device", device)
        return device_name("device", device)
    from .inputs import check_options
    from .ray_backend import require_ray, task_device

    check_options({"address": address, "num_cpus": num_cpus,
                   **({} if workers is None else {"workers": workers}),
                   **({} if num_gpus is None else {"num_gpus": num_gpus})})
    require_ray()
    return task_device(device, num_gpus)


def _model_source(model: Any, model_obj: Any) -> Any:
    """What a Ray task loads the model from: an absolute file path or an import path (loaded
    once per worker process), else the model object itself."""
    if not isinstance(model, str | os.PathLike):
        return model_obj
    from .model_files import is_import_path

    return str(model) if is_import_path(str(model)) else str(Path(model).resolve())


def _preset(method: str) -> Any:
    """The preset of a method name (UnknownNameError for an unknown one), None for a whole
    explainer registered by a plugin."""
    from . import registry
    from .presets import Preset

    obj = registry.get("explainer", method)
    return obj if isinstance(obj, Preset) else None


def _needs_background(method: str) -> bool:
    """Whether the method's removal takes its replacement values from background rows."""
    from . import registry
    from .registry import constructor_options

    preset = _preset(method)
    if preset is None:
        return False
    cls = registry.get("removal", preset.removal)
    if "background" not in constructor_options(cls):
        return False
    baseline = preset.removal_options.get("baseline")
    if isinstance(baseline, dict):
        baseline = baseline.get("tabular")
    return "value" not in constructor_options(cls) or baseline in ("mean", "median")


def _model_columns(model: Any, table: TableFile, features: Sequence[str] | None) -> list[str]:
    """The columns of ``table`` given to the model."""
    wanted = getattr(model, "feature_names_in_", None) if features is None else features
    if wanted is None:
        return list(table.columns)
    wanted = [str(c) for c in wanted]
    missing = [c for c in wanted if c not in table.columns]
    if missing:
        source = "features" if features is not None else "the model's feature_names_in_"
        raise InputError(f"data file {str(table.path)!r} lacks columns {missing} named by "
                         f"{source}; its columns are {table.columns}")
    return wanted


def _resolve_target(model: Any, target: int | str | None) -> int | str | None:
    """An output index for an integer string or a class name of the model's ``classes_``."""
    if not isinstance(target, str) or target in ("all", "predicted"):
        return target
    classes = getattr(model, "classes_", None)
    names = [] if classes is None else [str(c) for c in np.asarray(classes).tolist()]
    if target in names:
        return names.index(target)
    if re.fullmatch(r"-?\d+", target):
        return int(target)
    known = f"the model's classes are {names}" if names else "the model names no classes"
    raise TargetError(f"target {target!r} is not an output index, 'all', 'predicted' or a "
                      f"class name ({known})")


def _background(path: Any, table: TableFile, columns: list[str], method: str,
                rows: int) -> tuple[Any, dict | None]:
    """The background rows (a DataFrame of ``columns``, or None) and what identifies them."""
    if path is not None:
        bg = TableFile(path, "background")
        missing = [c for c in table.columns if c not in bg.columns]
        extra = [c for c in bg.columns if c not in table.columns]
        if missing or extra:
            raise InputError(f"the columns of background {str(bg.path)!r} differ from those "
                             f"of data {str(table.path)!r}: missing {missing}, extra {extra}; "
                             "give background rows with the data's columns")
        return bg.read(columns), {"file": bg.fingerprint()}
    if not _needs_background(method):
        return None, None
    n = table.n_rows
    index = np.unique(np.linspace(0, n - 1, min(rows, n)).round().astype(np.int64))
    return table.take(index, columns), {"rows_of_data": len(index)}


# ------------------------------------------------------------------ the run folder


@contextlib.contextmanager
def _folder_lock(out: Path) -> Iterator[None]:
    """An operating-system lock on ``out/.explain.lock`` while a run writes there (it dies
    with its process); a second run on the folder is refused at once."""
    from filelock import FileLock, Timeout

    lock = FileLock(out / LOCK, timeout=0)
    try:
        lock.acquire()
    except Timeout:
        raise OutputConflictError(f"another xai explain is writing to {str(out)!r}; wait for "
                                  "it to finish, or use another --out") from None
    try:
        yield
    finally:
        lock.release()


def _open_run(out: Path, run: dict, overwrite: bool) -> dict:
    """The manifest of the run in ``out``: a new one, or the one found there when it records
    the same run; a manifest of another run is refused unless ``overwrite``."""
    path = out / MANIFEST
    if path.exists():
        try:
            found = json.loads(path.read_text())
        except (OSError, ValueError):
            found = {}
        differ = sorted(k for k in ("version", "options", "data", "model")
                        if _comparable(found.get(k)) != _comparable(run[k]))
        if not differ:
            return found
        if not overwrite:
            detail = "; ".join(_difference(found.get(k), run[k], k) for k in differ)
            raise OutputConflictError(
                f"{str(out)!r} holds a run with other {', '.join(differ)} ({detail}): use "
                "another --out, or --overwrite (overwrite=True) to replace it")
        _clear(out)
    manifest = {**run, "chunks_done": [], "rows_done": 0, "evaluations": 0,
                "seconds": 0.0, "layout": None, "complete": False}
    _save_json(path, manifest)
    return manifest


def _comparable(value: Any) -> Any:
    """``value`` as JSON would give it back (tuples as lists)."""
    return json.loads(json.dumps(value, default=str))


def _difference(old: Any, new: Any, key: str) -> str:
    if isinstance(old, dict) and isinstance(new, dict):
        keys = sorted(k for k in set(old) | set(new) if
                      _comparable(old.get(k)) != _comparable(new.get(k)))
        return ", ".join(f"{key}.{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in keys)
    return f"{key}: {old!r} -> {new!r}"


def _clear(out: Path) -> None:
    """Remove the files of a previous run (only the names this module writes)."""
    shutil.rmtree(out / PARTS, ignore_errors=True)
    for name in os.listdir(out):
        stem = name.split(".")[0]
        if name == MANIFEST or stem in TABLES or stem == "summary" or (
                name.endswith(".png") and stem.split("-")[0] in ("bar", "beeswarm")):
            (out / name).unlink()


def _save_json(path: Path, obj: dict) -> None:
    """Write JSON atomically: a crash leaves the old file or the new one, never half."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, default=str))
    os.replace(tmp, path)


def _chunk_len(i: int, rows: int, n: int) -> int:
    return max(0, min(rows, n - i * rows))


# ------------------------------------------------------------------ one chunk


def _chunk_result(model: Any, frame: Any, start: int, *, method: str, background: Any,
                  seed: int, output_kind: str | None, options: dict) -> dict:
    """Explain one chunk's rows (``start`` is the first one's position in the file): its output
    tables, their layout and its counts, ready to write (on a Ray worker or locally)."""
    expl = _explain_chunk(model, frame, method, background, seed, output_kind, options)
    layout = _layout(expl)
    return {"frames": _frames(expl, start, layout), "layout": layout, "rows": len(expl),
            "evaluations": int(expl.evaluations), "seconds": float(expl.seconds),
            "estimator": expl.options.get("estimator")}


def _explain_chunk(model: Any, frame: Any, method: str, background: Any, seed: int,
                   output_kind: str | None, options: dict) -> Any:
    """The explanation of one chunk's rows."""
    from .explainer import explain

    frame = frame.reset_index(drop=True)
    return explain(model, frame, method, background=background, output_kind=output_kind,
                   progress=False, seed=seed, **options)


def _layout(expl: Any) -> dict:
    """Column names of the output tables for an explanation's shape."""
    names = expl.names
    if expl.values.ndim == 2:
        return {"features": names, "values": names, "base": ["base_value"], "outputs": None}
    outputs = expl.outputs
    return {"features": names, "values": [f"{f}[{o}]" for o in outputs for f in names],
            "base": [f"base_value[{o}]" for o in outputs], "outputs": outputs}


def _frames(expl: Any, start: int, layout: dict) -> dict:
    """The chunk's values, stderr and base values as DataFrames with a global row column."""
    import pandas as pd

    n = len(expl)
    rows = np.arange(start, start + n, dtype=np.int64)

    def flat(arr: np.ndarray) -> np.ndarray:
        return arr if arr.ndim == 2 else arr.transpose(0, 2, 1).reshape(n, -1)

    stderr = np.full(expl.values.shape, np.nan) if expl.stderr is None else expl.stderr
    out = {}
    for name, arr, cols in (("values", flat(expl.values), layout["values"]),
                            ("stderr", flat(stderr), layout["values"]),
                            ("base_values", np.asarray(expl.base_values).reshape(n, -1),
                             layout["base"])):
        frame = pd.DataFrame(arr, columns=cols)
        frame.insert(0, ROW, rows)
        out[name] = frame
    target = expl.extras.get("target")
    if target is not None and expl.values.ndim == 2:  # the output each row explains
        outputs = expl.output_names
        out["base_values"]["target"] = [outputs[t] if outputs and t < len(outputs) else str(t)
                                        for t in np.asarray(target).tolist()]
    return out


def _write_chunk(out: Path, i: int, result: dict, format: str, manifest: dict) -> None:
    """Write chunk ``i``'s part files (from :func:`_chunk_result`), then record it in the
    manifest."""
    layout = result["layout"]
    if manifest["layout"] is None:
        manifest["layout"] = layout
    elif _comparable(manifest["layout"]) != _comparable(layout):
        raise InputError(f"chunk {i} has outputs {layout['outputs']} where the first chunks had "
                         f"{manifest['layout']['outputs']}: give target= so that every chunk "
                         "explains the same outputs")
    parts = out / PARTS
    parts.mkdir(exist_ok=True)
    for name, frame in result["frames"].items():
        path = parts / f"{name}-{i:06d}.{format}"
        tmp = path.with_name(path.name + ".tmp")
        _write_table(frame, tmp, format)
        os.replace(tmp, path)
    manifest["chunks_done"] = sorted({*manifest["chunks_done"], i})
    manifest["rows_done"] += result["rows"]
    manifest["evaluations"] += result["evaluations"]
    manifest["seconds"] += result["seconds"]
    manifest.setdefault("estimator", result["estimator"])
    _save_json(out / MANIFEST, manifest)


def _write_table(frame: Any, path: Path, format: str) -> None:
    if format == "csv":
        frame.to_csv(path, index=False)
    else:
        frame.to_parquet(path, index=False, engine="pyarrow")


def _read_table(path: Path, format: str) -> Any:
    import pandas as pd

    return pd.read_csv(path) if format == "csv" else pd.read_parquet(path, engine="pyarrow")


# ------------------------------------------------------------------ the end of a run


def _finish(out: Path, manifest: dict, n: int, format: str, figures: bool) -> dict:
    """Join the parts into the output tables (once), write the figures; the summary."""
    if not manifest["complete"]:
        if manifest["layout"] is None:  # no rows: nothing was explained
            raise InputError(f"data file {manifest['data']['path']!r} has no rows to explain")
        chunks = manifest["chunks_done"]
        for name in TABLES:
            _join([out / PARTS / f"{name}-{i:06d}.{format}" for i in chunks],
                  out / f"{name}.{format}", format)
        manifest["complete"] = True
        _save_json(out / MANIFEST, manifest)
        shutil.rmtree(out / PARTS, ignore_errors=True)
        if figures:
            _figures(out, manifest, format)
    return _summary(out, manifest, n, format)


def _join(parts: list[Path], path: Path, format: str) -> None:
    """Concatenate part tables into ``path`` one part at a time (atomically replaced)."""
    tmp = path.with_name(path.name + ".tmp")
    if format == "csv":
        with open(tmp, "wb") as dst:
            for k, part in enumerate(parts):
                with open(part, "rb") as src:
                    if k:
                        src.readline()  # the header, written once
                    shutil.copyfileobj(src, dst)
    else:
        pq = require_pyarrow()
        writer = None
        try:
            for part in parts:
                table = pq.read_table(part)
                if writer is None:
                    writer = pq.ParquetWriter(tmp, table.schema)
                writer.write_table(table.cast(writer.schema))
        finally:
            if writer is not None:
                writer.close()
    os.replace(tmp, path)


def _load_explanation(out: Path, manifest: dict, format: str) -> Any:
    """The whole run as an :class:`~xai.explanation.Explanation` (values, stderr, base)."""
    from .explanation import Explanation

    layout = manifest["layout"]
    values = _read_table(out / f"values.{format}", format)
    stderr = _read_table(out / f"stderr.{format}", format)
    base = _read_table(out / f"base_values.{format}", format)
    n, outputs = len(values), layout["outputs"]

    def shaped(frame: Any) -> np.ndarray:
        arr = frame[layout["values"]].to_numpy(float)
        return arr if outputs is None else arr.reshape(n, len(outputs), -1).transpose(0, 2, 1)

    extras = {}
    if "target" in base.columns:
        codes, names = _codes(base["target"].astype(str).tolist())
        extras["target"] = codes
        outputs_for_rows = names
    else:
        outputs_for_rows = outputs
    method = manifest["options"]["method"]
    return Explanation(values=shaped(values), stderr=shaped(stderr),
                       base_values=base[layout["base"]].to_numpy(float).reshape(
                           (n,) if outputs is None else (n, len(outputs))),
                       feature_names=layout["features"],
                       output_names=outputs_for_rows, method=method,
                       evaluations=int(manifest["evaluations"]),
                       seconds=float(manifest["seconds"]), extras=extras)


def _codes(labels: list[str]) -> tuple[np.ndarray, list[str]]:
    names = sorted(set(labels))
    index = {name: k for k, name in enumerate(names)}
    return np.array([index[s] for s in labels], dtype=np.int64), names


def _figures(out: Path, manifest: dict, format: str) -> None:
    """``bar.png`` over every row and ``beeswarm.png`` over at most BEESWARM_ROWS rows, per
    output (``-<output>`` in the name) when there are several or rows explain different
    outputs."""
    import matplotlib.pyplot as plt

    expl = _load_explanation(out, manifest, format)
    data_file = TableFile(manifest["data"]["path"], "data")
    views = _output_views(expl)
    for suffix, output, rows, label in views:
        sub = expl if rows is None else expl[rows]
        n = len(sub)
        pick = np.unique(np.linspace(0, n - 1, min(BEESWARM_ROWS, n)).round().astype(np.int64))
        swarm = sub[pick]
        global_rows = pick if rows is None else np.flatnonzero(rows)[pick]
        frame = data_file.take(np.sort(global_rows), manifest["options"]["features"])
        swarm.data = _numeric_or_none(frame)
        for name, fig in (("bar", sub.plot.bar(output=output)),
                          ("beeswarm", swarm.plot.beeswarm(output=output))):
            if label:  # the output these rows explain (one per row, not an output axis)
                ax = fig.axes[0]
                ax.set_title(f"{ax.get_title()}\noutput {label}")
            fig.savefig(out / f"{name}{suffix}.png", dpi=120)
            plt.close(fig)


def _numeric_or_none(frame: Any) -> np.ndarray | None:
    """A DataFrame's values as floats for colouring, None when a column is not numeric."""
    try:
        return frame.to_numpy(float)
    except (TypeError, ValueError):
        return None


def _output_views(expl: Any) -> list[tuple[str, int | None, np.ndarray | None, str]]:
    """(file suffix, output index, row mask, output the rows explain) of each figure pair."""
    if expl.values.ndim == 3:
        return [(f"-{_safe(o)}", j, None, "") for j, o in enumerate(expl.outputs)]
    target = expl.extras.get("target")
    if target is None:
        return [("", None, None, "")]
    classes = np.unique(target)
    if len(classes) == 1:
        return [("", None, None, expl.output_names[classes[0]])]
    return [(f"-{_safe(expl.output_names[t])}", None, target == t, expl.output_names[t])
            for t in classes]


def _safe(name: str) -> str:
    return re.sub(r"[^\w.-]+", "_", str(name))


def _summary(out: Path, manifest: dict, n: int, format: str, top: int = 10) -> dict:
    """Method, options, rows, seconds, evaluations and the top features by mean |value|."""
    values = _read_table(out / f"values.{format}", format)
    mean_abs = values.drop(columns=[ROW]).abs().mean()
    layout = manifest["layout"]
    tops: dict[str, list] = {}
    groups = {"": layout["values"]} if layout["outputs"] is None else {
        o: [c for c in layout["values"] if c.endswith(f"[{o}]")] for o in layout["outputs"]}
    for output, cols in groups.items():
        ranked = mean_abs[cols].sort_values(ascending=False, kind="stable").head(top)
        tops[output] = [{"feature": c[: -len(f"[{output}]")] if output else c,
                         "mean_abs": float(v)} for c, v in ranked.items()]
    from . import __version__

    return {"method": manifest["options"]["method"], "estimator": manifest.get("estimator"),
            "options": manifest["options"], "rows": int(n), "chunks": len(
                manifest["chunks_done"]), "seconds": round(float(manifest["seconds"]), 3),
            "evaluations": int(manifest["evaluations"]),
            "top_features": tops.get("", tops), "outputs": layout["outputs"],
            "files": sorted({p.name for p in out.iterdir()
                             if p.is_file() and not p.name.startswith(".")} |
                            {"summary.json", "summary.md"}),
            "data": manifest["data"], "model": manifest["model"], "xai_version": __version__}


def _write_summary(out: Path, summary: dict) -> None:
    """``summary.json`` and a readable ``summary.md``."""
    _save_json(out / "summary.json", summary)
    o, model = summary["options"], summary["model"]
    source = model.get("path") or model.get("import") or model.get("object")
    lines = [f"# xai explain: {summary['method']}", "",
             (f"- data: `{summary['data']['path']}` ({summary['rows']} rows, "
              f"{summary['chunks']} chunks of {o['chunk_rows']})"),
             f"- model: `{source}`",
             (f"- estimator: {summary['estimator']}, seed {o['seed']}, budget {o['budget']}, "
              f"target {o['target']}"),
             (f"- model rows evaluated: {summary['evaluations']}; seconds explaining: "
              f"{summary['seconds']}"), ""]
    tops = summary["top_features"]
    for output, rows in ([("", tops)] if isinstance(tops, list) else tops.items()):
        lines += [f"## top features by mean |value|{f' ({output})' if output else ''}", "",
                  "| feature | mean abs value |", "| --- | --- |"]
        lines += [f"| {r['feature']} | {r['mean_abs']:.4g} |" for r in rows]
        lines.append("")
    (out / "summary.md").write_text("\n".join(lines))
