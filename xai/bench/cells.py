"""The cells of a benchmark grid and how one cell is run: the plan of the grid
(:func:`plan`), the cached stages of a cell (data set, model, explanation) and its row
(:class:`_Runner`), time limits, the rows of groups of cells scored together, and how a finished
cell's row is recorded (:class:`Recorder`). :mod:`xai.bench.runner` runs them in this process,
:mod:`xai.bench.ray_grid` as Ray tasks; both write the same rows."""

from __future__ import annotations

import dataclasses
import datetime as _dt
import importlib
import json
import os
import pkgutil
import platform
import signal
import socket
import threading
import time
import traceback
import warnings
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .. import registry
from .._warn import warn
from ..errors import (
    BenchEnvironmentError,
    MissingGroundTruth,
    XaiError,
    unknown_name,
)
from ..registry import normalize
from .store import (
    ResultsWriter,
    is_intact,
    jsonable,
    spec_key,
    write_published,
)
from .suites import CellGroup, DataSpec, GroupResult, Suite

__all__ = ["Cell", "CellTimeout", "Recorder", "call_with_timeout", "load_components", "plan"]

EXPLANATIONS = "explanations"
MODELS = "models"
DATA = "data"


class CellTimeout(Exception):
    """A cell (or the explanation it needs) ran past ``timeout`` seconds."""


# ---------------------------------------------------------------- components

_LOADED = False
#: modules that register suites besides :mod:`xai.bench.suites` (imported by name: the runner
#: runs every suite through the same interface and depends on none of them)
SUITE_MODULES = ("xai.concepts.benchmark",)


def load_components() -> None:
    """Import every module of :mod:`xai.metrics` and :mod:`xai.datasets` (which register
    their metrics and data sets) and the shipped suites (:data:`SUITE_MODULES`). A module
    that fails to import is reported with a warning and skipped."""
    global _LOADED
    if _LOADED:
        return
    _LOADED = True
    from . import suites  # noqa: F401  (registers the shipped suites)

    for module in SUITE_MODULES:
        try:
            importlib.import_module(module)
        except Exception as exc:  # noqa: BLE001
            warn(f"could not import {module}: {exc}")
    for package in ("xai.metrics", "xai.datasets"):
        try:
            pkg = importlib.import_module(package)
        except Exception as exc:  # noqa: BLE001
            warn(f"could not import {package}: {exc}")
            continue
        for info in pkgutil.iter_modules(getattr(pkg, "__path__", [])):
            try:
                importlib.import_module(f"{package}.{info.name}")
            except Exception as exc:  # noqa: BLE001
                warn(f"could not import {package}.{info.name}: {exc}")


def _metric_meta(name: str) -> dict:
    obj = registry.get("metric", name)
    needs = getattr(obj, "needs", frozenset({"model"})) or ()
    applies = getattr(obj, "applies_to", "any") or "any"
    return {"needs": frozenset(needs),
            "applies_to": (applies,) if isinstance(applies, str) else tuple(applies),
            "direction": getattr(obj, "direction", "none"),
            "defaults": dict(getattr(obj, "defaults", {}) or {})}


def _versions() -> dict:
    """The software and machine every row records: package versions, the platform, the CPU
    count and the git commit of a source checkout (None for an installed package)."""
    import sklearn
    import torch

    import xai

    return {"xai": xai.__version__, "torch": torch.__version__, "numpy": np.__version__,
            "sklearn": sklearn.__version__, "python": platform.python_version(),
            "platform": platform.platform(), "cpus": os.cpu_count(), "commit": _git_commit()}


def _git_commit() -> str | None:
    """The commit checked out where xai is imported from, when that is a git checkout (an
    editable install); None otherwise or when git is missing."""
    import subprocess

    import xai

    root = Path(xai.__file__).resolve().parents[1]
    if not (root / ".git").exists():  # an installed package: do not report an outer repository
        return None
    try:
        done = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True,
                              text=True, timeout=10, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() or None


# ---------------------------------------------------------------- time limit

def call_with_timeout(fn: Callable[[], Any], seconds: float | None) -> Any:
    """Run ``fn()``; raise :class:`CellTimeout` after ``seconds``.

    In the main thread this uses ``SIGALRM`` (``setitimer``), which interrupts Python code
    between bytecodes; elsewhere ``fn`` runs in a daemon thread that is abandoned on timeout.
    """
    if not seconds or seconds <= 0:
        return fn()
    message = f"exceeded the time limit of {seconds:g} s (--timeout)"
    if threading.current_thread() is threading.main_thread() and hasattr(signal, "setitimer"):
        def on_alarm(signum, frame):
            raise CellTimeout(message)

        old = signal.signal(signal.SIGALRM, on_alarm)
        signal.setitimer(signal.ITIMER_REAL, float(seconds))
        try:
            return fn()
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, old)
    box: dict = {}

    def target():
        try:
            box["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 (re-raised in the caller)
            box["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        raise CellTimeout(message)
    if "error" in box:
        raise box["error"]
    return box["value"]


def _error_info(exc: BaseException, stage: str) -> dict:
    kind = "Timeout" if isinstance(exc, CellTimeout) else type(exc).__name__
    tail = traceback.format_exception(type(exc), exc, exc.__traceback__)
    return {"type": kind, "message": str(exc)[:2000], "stage": stage,
            "traceback": "".join(tail[-4:])[-4000:]}


class _StageError(Exception):
    """An earlier stage (data, model, explanation) of this cell failed."""

    def __init__(self, info: dict):
        super().__init__(info["message"])
        self.info = info


class _EnvironmentFailure(Exception):
    """The cell could not run because its environment failed (see :func:`_is_environment`);
    it gets no row. ``info`` is :func:`_error_info` plus ``fatal``: True for an ``OSError``,
    after which the run stops (every later cell writes to the same folder and disk)."""

    def __init__(self, info: dict):
        super().__init__(info["message"])
        self.info = info


def _causes(exc: BaseException) -> list[BaseException]:
    """``exc`` and the exceptions it was raised from (``raise ... from``), outermost first."""
    chain: list[BaseException] = []
    while exc is not None and all(exc is not seen for seen in chain):
        chain.append(exc)
        exc = exc.__cause__
    return chain


def _is_environment(exc: BaseException) -> bool:
    """Whether ``exc`` (or a cause it was raised from) is a failure of the environment rather
    than of the cell: an ``OSError`` (permissions, a full disk, I/O, a missing file) or an
    ``ImportError`` (a missing optional dependency)."""
    return any(isinstance(e, OSError | ImportError) for e in _causes(exc))


def _environment_info(exc: BaseException, stage: str) -> dict:
    """:func:`_error_info` plus ``fatal`` (an ``OSError`` is in the chain: stop the run) and
    ``cause`` (the ``OSError`` / ``ImportError`` that ``exc`` was raised from, if another)."""
    chain = _causes(exc)
    root = next(e for e in chain if isinstance(e, OSError | ImportError))
    cause = None if root is exc else f"{type(root).__name__}: {root}"[:2000]
    return {**_error_info(exc, stage), "cause": cause,
            "fatal": any(isinstance(e, OSError) for e in chain)}


# ---------------------------------------------------------------- the grid

@dataclasses.dataclass
class Cell:
    key: str
    spec: dict
    ds: DataSpec
    data_seed: int
    model: str
    method: str
    metric: str
    seed: int
    expl_key: str
    cell_seed: int


def _seed_of(global_seed: int, key: str) -> int:
    ss = np.random.SeedSequence([int(global_seed), int(key[:16], 16)])
    return int(ss.generate_state(1, dtype=np.uint32)[0])


def _csv(value) -> list[str] | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = value.split(",")
    return [str(v).strip() for v in value if str(v).strip()]


def _resolve_suite(suite: str | Suite) -> Suite:
    if isinstance(suite, Suite):
        return suite
    obj = registry.get("suite", suite)
    obj = obj() if isinstance(obj, type) else obj
    if not isinstance(obj, Suite):
        raise XaiError(f"suite {suite!r} is a {type(obj).__name__}, not an xai.bench.Suite")
    return obj


def _select(kind: str, given: list[str] | None, defaults: Sequence[str], known: Iterable[str]
            ) -> list[str]:
    known = list(known)
    table = {normalize(k): k for k in known}
    if given is None:
        chosen = []
        for name in defaults:
            if normalize(name) in table:
                chosen.append(normalize(name))
            else:
                warn(f"suite default {kind} {name!r} is not registered; left out of "
                     "the grid")
        return chosen
    for name in given:
        if normalize(name) not in table:
            raise unknown_name(kind, name, known)
    return list(dict.fromkeys(normalize(n) for n in given))


def plan(suite: Suite, *, methods=None, metrics=None, datasets=None, models=None,
         seeds: Sequence[int] = (0,), n_explain: int | None = None, budget: int | None = None
         ) -> list[Cell]:
    """All cells of the grid, in run order. Raises for unknown names before any work."""
    methods = _select("method", _csv(methods), suite.methods, registry.names("explainer"))
    metrics = _select("metric", _csv(metrics), suite.metrics, registry.names("metric"))
    specs = suite.data_specs()
    dnames = _csv(datasets)
    if dnames is not None:
        known = {normalize(s.name) for s in specs} | {normalize(s.base) for s in specs if s.base}
        for name in dnames:
            if normalize(name) not in known:
                raise unknown_name(f"data set of suite {suite.name!r}", name, known)
        wanted = {normalize(n) for n in dnames}
        specs = [s for s in specs if normalize(s.name) in wanted or
                 (s.base and normalize(s.base) in wanted)]
    mnames = _csv(models)
    if mnames is not None:
        known = {normalize(m) for s in specs for m in s.models}
        for name in mnames:
            if normalize(name) not in known:
                raise unknown_name(f"model of suite {suite.name!r}", name, known)
        wanted_models = {normalize(n) for n in mnames}
    else:
        wanted_models = None
    seeds = [int(s) for s in (_csv(seeds) if isinstance(seeds, str) else seeds)]
    n = int(n_explain or suite.n_explain)
    if n < 1:
        raise XaiError(f"n_explain must be at least 1; got {n}")
    if budget is None:
        budget = suite.budget
    cells = []
    for ds in specs:
        for seed in seeds:
            for model in ds.models:
                if wanted_models is not None and normalize(model) not in wanted_models:
                    continue
                for method in methods:
                    mopts = dict(suite.method_options.get(method, {}))
                    if budget is not None:
                        mopts["budget"] = int(budget)
                    group = {"suite": suite.name, "dataset": ds.name, "dataset_base": ds.base,
                             "dataset_params": ds.params, "data_seed": seed, "model": model,
                             "model_params": ds.model_params.get(model, {}), "method": method,
                             "method_options": mopts, "n_explain": n, "target": ds.target,
                             "correct_only": ds.correct_only, "background": ds.background,
                             "seed": seed}
                    expl_key = spec_key(group)
                    for metric in metrics:
                        meta = _metric_meta(metric)
                        opts = {**meta["defaults"], **suite.metric_options.get(metric, {})}
                        spec = {**group, "metric": metric, "metric_options": opts}
                        key = spec_key(spec)
                        cells.append(Cell(key=key, spec=spec, ds=ds, data_seed=seed,
                                          model=model, method=method, metric=metric, seed=seed,
                                          expl_key=expl_key, cell_seed=_seed_of(seed, key)))
    return cells


def _skip_reason(cell: Cell) -> str | None:
    meta = _metric_meta(cell.metric)
    applies = {normalize(a) for a in meta["applies_to"]}
    if "any" not in applies and normalize(cell.ds.kind) not in applies:
        return f"metric {cell.metric!r} applies to {sorted(applies)}, data set " \
               f"{cell.ds.name!r} is {cell.ds.kind}"
    if "ground_truth" in meta["needs"] and not cell.ds.has_ground_truth:
        return f"data set {cell.ds.name!r} has no ground truth; metric {cell.metric!r} needs one"
    return None


# ---------------------------------------------------------------- stages

class ReExplainer:
    """The cell's explainer, re-run by metrics that need one (sensitivity, randomisation) with
    identical settings and seed. Call as ``explainer(x)``, ``explainer(model, x)`` or
    ``explainer.explain(model, x)``; ``target=`` defaults to the original rows' targets when
    the row count matches."""

    def __init__(self, method: str, options: dict, model, background, target):
        self.method, self.options, self.model = method, dict(options), model
        self.background, self.target = background, target

    def explain(self, model, X, y=None, **kwargs):
        import xai

        opts = {**self.options, **kwargs}
        if "target" not in opts and self.target is not None and \
                len(self.target) == len(X):
            opts["target"] = self.target
        return xai.explain(model, X, method=self.method, background=self.background, y=y,
                           progress=False, **opts)

    def __call__(self, *args, **kwargs):
        if len(args) >= 2:
            return self.explain(args[0], args[1], **kwargs)
        model = kwargs.pop("model", self.model)
        return self.explain(model, args[0], **kwargs)


def _explain(model, X, method: str, background, target, options: dict, auto: set[str]):
    """``xai.explain`` with ``options``; options the runner added itself (``auto``: seed,
    global budget) are dropped for methods that do not know them."""
    import xai
    from xai.errors import UnknownNameError

    opts = dict(options)
    if target is not None:
        opts["target"] = target
    while True:
        try:
            return xai.explain(model, X, method=method, background=background,
                               progress=False, **opts), opts
        except UnknownNameError as exc:
            drop = [k for k in auto if k in opts and f"'{k}'" in str(exc)]
            if not drop:
                raise
            for k in drop:
                opts.pop(k)


def _predict(model, X) -> np.ndarray | None:
    """Predicted classes, or None for a model without classes (regressor, raw scores)."""
    from ..metrics.base import resolve_targets
    from ..models import as_model

    adapter = as_model(model)
    if not adapter.is_classifier:
        return None
    return resolve_targets(None, "predicted", adapter, np.asarray(X))


def _spatial(data) -> tuple[int, ...]:
    shape = getattr(data, "spatial_shape", None)
    return tuple(shape) if shape is not None else tuple(np.asarray(data.X).shape[1:])


def _pixel_map(expl, spatial: tuple[int, ...], rows: np.ndarray | None = None) -> list | None:
    """Mean |a| per input position (spatial shape), or None when it cannot be drawn."""
    try:
        vals = np.asarray(expl.values, dtype=np.float64)
        if vals.ndim == 3:
            t = np.asarray(expl.extras.get("target", np.zeros(len(vals), int)))
            vals = vals[np.arange(len(vals)), :, t]
        mean = np.abs(vals).mean(0)
        size = int(np.prod(spatial))
        if mean.size == size:
            return mean.reshape(spatial).tolist()
        fm = expl.feature_map
        if fm is not None:
            fm = np.asarray(fm)
            fm = fm.reshape(-1, *fm.shape[-len(spatial):])[0] if fm.ndim > len(spatial) else fm
            if fm.shape == spatial:
                return np.where(fm >= 0, mean[np.clip(fm, 0, None)], 0.0).tolist()
    except Exception:  # noqa: BLE001 (a figure input only)
        return None
    return None


def _ground_truth_subset(data, rows: np.ndarray):
    """The data set restricted to the explained rows (masks aligned with ``x``)."""
    gt = data.ground_truth
    if gt is not None and getattr(data, "kind", "global") == "per_sample":
        gt = np.asarray(gt)[rows]
    n = len(rows)
    return dataclasses.replace(data, X=np.asarray(data.X)[rows], y=np.asarray(data.y)[rows],
                               ground_truth=gt, train=np.zeros(0, np.int64),
                               val=np.zeros(0, np.int64), test=np.arange(n))


def _write_json(path: Path, obj: dict) -> None:
    """Write a sidecar as JSON, atomically and with its SHA-256 record."""
    write_published(path, lambda tmp: tmp.write_text(json.dumps(jsonable(obj))))


def _per_sample_summary(values) -> dict:
    v = np.asarray(values, dtype=np.float64).ravel()
    ok = v[~np.isnan(v)]
    if ok.size == 0:
        return {"n": int(v.size), "n_nan": int(v.size)}
    return {"n": int(v.size), "n_nan": int(v.size - ok.size), "mean": float(ok.mean()),
            "sd": float(ok.std(ddof=1)) if ok.size > 1 else None, "min": float(ok.min()),
            "median": float(np.median(ok)), "max": float(ok.max())}


class _Runner:
    def __init__(self, suite: Suite, out: Path, *, force: bool, timeout: float | None,
                 verbose: bool, bar, device: str | None = None):
        self.suite, self.out, self.force, self.timeout = suite, out, force, timeout
        self.verbose, self.bar, self.device = verbose, bar, device
        self.versions, self.host = _versions(), socket.gethostname()
        self.data: dict = {}
        self.models: dict = {}
        self.expls: dict = {}
        self.fresh_expls: set[str] = set()

    def clear(self) -> None:
        """Forget the cached data set, models and explanations (at a new data set)."""
        self.data.clear()
        self.models.clear()
        self.expls.clear()

    # -- cached stages; a failure is cached too and reported by every dependent cell
    def _stage(self, cache: dict, key, stage: str, fn: Callable[[], Any]):
        if key not in cache:
            try:
                cache[key] = ("ok", call_with_timeout(fn, self.timeout)
                              if stage == "explain" else fn())
            except Exception as exc:  # noqa: BLE001
                cache[key] = ("environment", _environment_info(exc, stage)) \
                    if _is_environment(exc) else ("error", _error_info(exc, stage))
        status, value = cache[key]
        if status == "environment":
            raise _EnvironmentFailure(value)
        if status == "error":
            raise _StageError(value)
        return value

    def get_data(self, cell: Cell):
        def make():
            data = cell.ds.make(cell.data_seed)
            self.write_data_sidecar(cell, data)
            return data

        return self._stage(self.data, (cell.ds.name, cell.data_seed), "data", make)

    def get_model(self, cell: Cell):
        data = self.get_data(cell)

        def build():
            model, info = cell.ds.models[cell.model](data, cell.seed, self.out / MODELS)
            info = dict(info or {})
            test = np.asarray(data.test)
            rows = test
            try:
                pred = _predict(model, np.asarray(data.X)[test])
                if pred is not None:
                    correct = pred == np.asarray(data.y)[test]
                    info.setdefault("test_accuracy", float(correct.mean()))
                    if cell.ds.correct_only:
                        rows = test[correct]
            except Exception as exc:  # regressors, odd outputs
                if cell.ds.correct_only:
                    raise
                info.setdefault("accuracy_error", str(exc))
            rng = np.random.default_rng(np.random.SeedSequence([cell.data_seed, 0xBE7C]))
            n = min(int(cell.spec["n_explain"]), len(rows))
            if n == 0:
                raise XaiError(f"no test rows to explain for {cell.ds.name}/{cell.model}")
            chosen = np.sort(rng.choice(rows, size=n, replace=False))
            bg_rng = np.random.default_rng(np.random.SeedSequence([cell.data_seed, 0xB6]))
            train = np.asarray(data.train)
            bg = np.sort(bg_rng.choice(train, size=min(cell.ds.background, len(train)),
                                       replace=False)) if len(train) else chosen
            return model, jsonable(info), chosen, bg

        return self._stage(self.models, (cell.ds.name, cell.data_seed, cell.model, cell.seed),
                           "model", build)

    def get_explanation(self, cell: Cell):
        from ..explanation import Explanation

        data = self.get_data(cell)
        model, _, rows, bg = self.get_model(cell)
        folder = self.out / EXPLANATIONS
        path = folder / f"{cell.expl_key[:32]}.npz"
        side_path = path.with_suffix(".json")

        def compute():
            folder.mkdir(parents=True, exist_ok=True)
            cached = is_intact(path) and is_intact(side_path)  # damaged: computed again
            if cached and not (self.force and cell.expl_key not in self.fresh_expls):
                expl = Explanation.load(path)
            else:
                X = np.asarray(data.X)[rows]
                target = None
                if cell.ds.target == "label":
                    target = np.asarray(data.y)[rows].astype(np.int64)
                elif cell.ds.target == "predicted":
                    target = "predicted"
                opts = {"seed": _seed_of(cell.seed, cell.expl_key),
                        **cell.spec["method_options"], **self._device_option()}
                auto = {"seed", "device"} | ({"budget"} if "budget" not in
                                             self.suite.method_options.get(cell.method, {})
                                             else set())
                fresh, used = _explain(model, X, cell.method, np.asarray(data.X)[bg], target,
                                       opts, auto)
                write_published(path, fresh.save)
                self.fresh_expls.add(cell.expl_key)
                side = {"dataset": cell.ds.name, "data_seed": cell.data_seed,
                        "model": cell.model, "method": cell.method, "seed": cell.seed,
                        "suite": self.suite.name, "key": cell.expl_key,
                        "options": {k: v for k, v in used.items() if k != "target"},
                        "rows": rows, "spatial_shape": _spatial(data),
                        "mean_abs": _pixel_map(fresh, _spatial(data)),
                        "seconds": fresh.seconds, "evaluations": fresh.evaluations}
                _write_json(side_path, side)
                expl = Explanation.load(path)  # what the metrics see, also after a resume
            reexplain = ReExplainer(cell.method, {**cell.spec["method_options"],
                                                  **self._device_option()},
                                    model, np.asarray(data.X)[bg],
                                    np.asarray(expl.extras["target"])
                                    if "target" in expl.extras else None)
            return expl, reexplain, path

        return self._stage(self.expls, cell.expl_key, "explain", compute)

    def _device_option(self) -> dict:
        """``device=`` for the explainers and metrics when the run names a device (the cells'
        keys do not depend on it)."""
        return {} if self.device is None else {"device": self.device}

    def data_sidecar(self, cell: Cell) -> Path:
        """The JSON file describing the cell's data set (read by the summary's figures)."""
        return self.out / DATA / f"{cell.ds.name}-seed{cell.data_seed}.json"

    def write_data_sidecar(self, cell: Cell, data) -> None:
        """Write :meth:`data_sidecar` for ``data``, the cell's generated data set."""
        path = self.data_sidecar(cell)
        path.parent.mkdir(parents=True, exist_ok=True)
        gt = getattr(data, "ground_truth", None)
        gt_mean = None
        if gt is not None:
            gt = np.asarray(gt, dtype=np.float64)
            gt_mean = gt.mean(0) if getattr(data, "kind", "global") == "per_sample" else gt
        side = {"dataset": cell.ds.name, "base": cell.ds.base, "params": cell.ds.params,
                "seed": cell.data_seed, "kind": getattr(data, "kind", None),
                "spatial_shape": _spatial(data), "ground_truth_mean": gt_mean,
                "signal_mask": getattr(data, "signal_mask", None),
                "suppressor_mask": getattr(data, "suppressor_mask", None),
                "reference": getattr(data, "reference", {}) or {}, "n": len(data.X)}
        _write_json(path, side)

    # -- one cell
    def run_cell(self, cell: Cell) -> dict:
        start = time.perf_counter()
        row = self._base_row(cell)
        reason = _skip_reason(cell)
        if reason is not None:
            row.update(status="skipped", reason=reason)
            return row
        try:
            data = self.get_data(cell)
            meta = _metric_meta(cell.metric)
            if "ground_truth" in meta["needs"] and getattr(data, "ground_truth", None) is None:
                row.update(status="skipped", reason=f"data set {cell.ds.name!r} has no "
                           f"ground truth; metric {cell.metric!r} needs one")
                return row
            model, info, rows, _ = self.get_model(cell)
            row["model_info"] = info
            expl, reexplain, path = self.get_explanation(cell)
            row.update(explain_file=str(path.relative_to(self.out)),
                       explain_seconds=float(expl.seconds),
                       explain_evaluations=int(expl.evaluations), n_rows=len(rows))
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                row.update(self._score(cell, meta, data, model, rows, expl, reexplain))
            if caught:  # kept with the cell instead of flooding the terminal
                row["warnings"] = list(dict.fromkeys(str(w.message)[:300] for w in caught))[:5]
            row["status"] = "ok"
        except _StageError as exc:
            row.update(status="error", error=exc.info)
        except MissingGroundTruth as exc:  # the data set lacks what the metric needs
            row.update(status="skipped", reason=str(exc))
        except _EnvironmentFailure:
            raise
        except Exception as exc:  # recorded; the grid continues
            if _is_environment(exc):
                raise _EnvironmentFailure(_environment_info(exc, "metric")) from exc
            row.update(status="error", error=_error_info(exc, "metric"))
        row["cell_seconds"] = time.perf_counter() - start
        return row

    def _score(self, cell, meta, data, model, rows, expl, reexplain) -> dict:
        obj = registry.get("metric", cell.metric)
        opts = dict(self.suite.metric_options.get(cell.metric, {}))
        if isinstance(obj, type):
            metric, call_opts = obj(**opts), {}
        else:
            metric, call_opts = obj, opts
        kwargs = {"seed": cell.cell_seed, **call_opts}
        if isinstance(obj, type):  # a Metric: the runner's bar counts the cells, not its rows
            kwargs.update(progress=False, **self._device_option())
        if "explainer" in meta["needs"]:
            kwargs["explainer"] = reexplain
        if "ground_truth" in meta["needs"]:
            kwargs["ground_truth"] = _ground_truth_subset(data, rows)
        X = np.asarray(data.X)[rows]
        res = call_with_timeout(lambda: metric(model, X, expl, **kwargs), self.timeout)
        if isinstance(res, int | float | np.floating):
            return {"value": float(res), "se": None, "metric_seconds": None,
                    "metric_evaluations": None, "direction": meta["direction"]}
        curves = getattr(res, "curves", None)
        curve = None
        if curves is not None:
            c = np.asarray(curves, dtype=np.float64)
            curve = (np.nanmean(c, axis=0) if c.ndim == 2 else c).round(10).tolist()
        settings = {}
        if hasattr(res, "to_dict"):
            settings = res.to_dict().get("settings", {})
        extras = {k: v for k, v in (getattr(res, "extras", None) or {}).items()
                  if isinstance(v, int | float | str | bool | np.generic)}
        return {"value": getattr(res, "aggregate", None), "se": getattr(res, "se", None),
                "direction": getattr(res, "direction", meta["direction"]),
                "per_sample": _per_sample_summary(getattr(res, "per_sample", [])),
                "n_nan": getattr(res, "n_nan", 0), "curve": curve,
                "metric_seconds": float(getattr(res, "seconds", 0.0)),
                "metric_evaluations": int(getattr(res, "evaluations", 0)),
                "settings": settings, "extras": extras}

    def _base_row(self, cell: Cell) -> dict:
        s = cell.spec
        return {"key": cell.key, "suite": s["suite"], "dataset": s["dataset"],
                "dataset_base": s["dataset_base"], "dataset_params": s["dataset_params"],
                "data_seed": cell.data_seed, "model": cell.model,
                "model_params": s["model_params"], "method": cell.method,
                "method_options": s["method_options"], "metric": cell.metric,
                "metric_options": s["metric_options"], "seed": cell.seed,
                "cell_seed": cell.cell_seed, "n_explain": s["n_explain"],
                "target": s["target"], "explain_key": cell.expl_key, "status": None,
                "value": None, "se": None, "direction": _metric_meta(cell.metric)["direction"],
                "per_sample": None, "curve": None, "explain_seconds": None,
                "explain_evaluations": None, "metric_seconds": None,
                "metric_evaluations": None, "n_rows": None, "error": None,
                "versions": self.versions, "host": self.host,
                "timestamp": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}


def _group_rows(group: CellGroup, metrics: list[str], versions: dict, host: str
                ) -> dict[str, dict]:
    """Compute ``group`` once; the rows of its cells for ``metrics``, by metric."""
    start = time.perf_counter()
    try:
        result = group.compute()
    except Exception as exc:  # noqa: BLE001 (recorded; the other groups still run)
        result = GroupResult("error", fields={"error": _error_info(exc, "explain")})
    timestamp = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    rows = {}
    for metric in metrics:
        row = {"key": group.keys[metric], **group.row, "metric": metric,
               "status": result.status, "value": result.values.get(metric),
               "direction": group.directions.get(metric, "higher"),
               "explain_seconds": result.seconds,
               "cell_seconds": time.perf_counter() - start, "versions": versions,
               "host": host, "timestamp": timestamp, "error": None, **result.fields}
        if metric in result.extras:
            row["extras"] = result.extras[metric]
        rows[metric] = jsonable(row)
    return rows


class Recorder:
    """Appends each finished cell's row to ``results.jsonl`` and counts it on the bar;
    ``fresh`` holds the rows by key, ``failures`` the cells left without a row."""

    def __init__(self, writer: ResultsWriter, bar, verbose: bool):
        self.writer, self.bar, self.verbose = writer, bar, verbose
        self.fresh: dict[str, dict] = {}
        self.failures: list[dict] = []

    def __call__(self, cell: Cell, row: dict | None = None, failure: dict | None = None
                 ) -> bool:
        """Write ``row``, or note ``failure`` (an environment failure: no row). True when the
        run must stop (an ``OSError``: every later cell writes to the same folder)."""
        if row is not None:
            try:
                self.writer.append(row)
            except OSError as exc:  # results.jsonl refused the row
                failure = _environment_info(exc, "results")
            else:
                self.fresh[cell.key] = row
                self.bar.update(1)
                if self.verbose:
                    self.bar.write(_status_line(cell, row))
                return False
        self.failures.append({**_cell_names(cell), **failure})
        if self.verbose:
            self.bar.write(f"not run ({failure['type']}: {failure['message']}) "
                           f"{_cell_label(cell)}")
        return bool(failure["fatal"])


def _refresh_data_sidecars(runner: _Runner, cells: list[Cell], todo: list[Cell]) -> None:
    """Write again the data sidecars (read by the summary's figures) that are damaged or
    missing for data sets none of whose cells runs now; the others are written anyway."""
    pending = {(c.ds.name, c.data_seed) for c in todo}
    for cell in cells:
        group = (cell.ds.name, cell.data_seed)
        if group in pending or is_intact(runner.data_sidecar(cell)):
            continue
        pending.add(group)
        try:
            runner.write_data_sidecar(cell, cell.ds.make(cell.data_seed))
        except Exception as exc:
            if _is_environment(exc):
                failure = {**_cell_names(cell), **_environment_info(exc, "data")}
                raise _environment_error(runner.out, [failure], len(todo), 0) from exc
            # otherwise the data set fails to build; its cells' rows say so


def _cell_names(cell: Cell) -> dict:
    return {"key": cell.key, "dataset": cell.ds.name, "seed": cell.seed, "model": cell.model,
            "method": cell.method, "metric": cell.metric}


def _cell_label(cell: Cell) -> str:
    return f"{cell.ds.name} seed={cell.seed} {cell.model} {cell.method} {cell.metric}"


def _status_line(cell: Cell, row: dict) -> str:
    value = row.get("value")
    shown = f"{value:.4g}" if isinstance(value, float) else \
        (row.get("error") or {}).get("type", row.get("reason", ""))
    return f"{row['status']:<7} {_cell_label(cell)}: {shown}"


def _environment_error(out: Path, failures: list[dict], not_started: int,
                       finished: int) -> BenchEnvironmentError:
    """The error that reports cells left without a row by a failing environment."""
    first = failures[0]
    where = (f"{first['dataset']} seed={first['seed']} {first['model']} {first['method']} "
             f"{first['metric']}")
    others = len(failures) - 1
    cause = f" (raised from {first['cause']})" if first.get("cause") else ""
    message = (f"the benchmark in {out} could not finish because its environment failed, not "
               f"its cells: {first['type']} in the {first['stage']} stage of {where}: "
               f"{first['message']}{cause}")
    if others:
        message += f" (and {others} more cell{'s' if others > 1 else ''})"
    if not_started:
        message += f"; the run stopped there, {not_started} more cells were not started"
    message += ". No error rows were written for these cells"
    if finished:
        message += f"; the {finished} cells that finished are recorded"
    message += (". Fix the cause (write permission or free space in the output folder, a "
                "missing package) and run the same command again: it runs only the cells "
                "without a row.")
    return BenchEnvironmentError(message, failures, out)
