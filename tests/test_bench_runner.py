"""The benchmark runner on a tiny suite registered here: a numpy data set
with ground truth, a linear callable model, occlusion / exact-shap, and fake metrics — so these
tests depend only on the contracts (Metric, GroundTruthData, the registry), not on the real
metrics and data sets."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import xai
from xai import bench, registry
from xai.bench.store import LOCK, RESULTS, RunLock, last_per_key, read_rows
from xai.datasets.base import GroundTruthData
from xai.errors import BenchLockedError, UnknownNameError, XaiError
from xai.metrics.base import Metric

W = np.array([1.0, -1.0, 0.5, 0.0])
STATE = {"calls": 0, "interrupt_after": None, "flaky": False}


def make_tiny(seed: int) -> GroundTruthData:
    rng = np.random.default_rng(np.random.SeedSequence([seed, 11]))
    X = rng.normal(size=(60, 4)).astype(np.float32)
    y = (X @ W > 0).astype(np.int64)
    return GroundTruthData(
        name="tiny", X=X, y=y, train=np.arange(0, 30), val=np.arange(30, 40),
        test=np.arange(40, 60), ground_truth=np.array([True, True, False, False]),
        kind="global", signal_mask=np.array([True, False, False, False]),
        suppressor_mask=np.array([False, True, False, False]),
        reference={"pattern": 0.0, "gradient": 1.0}, params={}, seed=seed)


def linear_model(data, seed, cache_dir):
    return (lambda x: np.asarray(x, np.float64) @ W), {"arch": "linear"}


def _tick():
    STATE["calls"] += 1
    if STATE["interrupt_after"] is not None and STATE["calls"] > STATE["interrupt_after"]:
        raise KeyboardInterrupt


class TinyMass(Metric):
    name = "tiny-mass"
    direction = "higher"
    needs = frozenset({"model", "ground_truth"})

    def compute(self, inp):
        _tick()
        s = np.abs(inp.scores)
        gt = inp.ground_truth.mask().reshape(len(s), -1)
        return {"per_sample": (s * gt).sum(1) / s.sum(1)}


class TinySuppressorRatio(Metric):
    name = "tiny-suppressor-ratio"
    direction = "none"
    needs = frozenset({"model", "ground_truth"})

    def compute(self, inp):
        _tick()
        s = np.abs(inp.scores)
        sup, sig = inp.ground_truth.suppressor_mask, inp.ground_truth.signal_mask
        return {"per_sample": s[:, sup].sum(1) / s[:, sig].sum(1)}


class TinyCurve(Metric):
    name = "tiny-curve"
    direction = "lower"

    def compute(self, inp):
        _tick()
        s = np.abs(np.take_along_axis(inp.scores, inp.order(), axis=1))
        total = s.sum(1, keepdims=True)
        curves = 1 - np.concatenate([np.zeros((len(s), 1)), np.cumsum(s, 1)], 1) / total
        return {"per_sample": curves.mean(1), "curves": curves}


class TinyStochastic(Metric):
    name = "tiny-stochastic"
    direction = "higher"
    stochastic = True

    def compute(self, inp):
        _tick()
        noise = np.array([inp.rng(i).normal() for i in range(inp.n)])
        return {"per_sample": inp.scores.sum(1) + noise}


class TinyImage(Metric):
    name = "tiny-image"
    applies_to = "image"

    def compute(self, inp):  # never called on the tabular data set
        raise AssertionError("an image-only metric ran on tabular data")


class TinyFlaky(Metric):
    name = "tiny-flaky"

    def compute(self, inp):
        _tick()
        if STATE["flaky"]:
            raise RuntimeError("flaky failure")
        return {"per_sample": np.ones(inp.n)}


SLOW_FINISHED: list = []  # compute calls of tiny-slow that ran to their end


class TinySlow(Metric):
    name = "tiny-slow"

    def compute(self, inp):
        time.sleep(3)
        SLOW_FINISHED.append(True)
        return {"per_sample": np.ones(inp.n)}


METRICS = [TinyMass, TinySuppressorRatio, TinyCurve, TinyStochastic, TinyImage, TinyFlaky]
TINY = bench.Suite(
    name="tiny-test", description="unit-test suite",
    datasets=[bench.DataSpec(name="tiny", base=None, make=make_tiny, kind="tabular",
                             models={"linear": linear_model}, target=None, background=16)],
    methods=["occlusion", "exact-shap"], metrics=[m.name for m in METRICS], n_explain=8)
N_CELLS = 2 * len(METRICS) * 2  # methods × metrics × seeds (0, 1)


@pytest.fixture(scope="module", autouse=True)
def tiny_components():
    bench.load_components()
    for cls in [*METRICS, TinySlow]:
        registry.register("metric", cls.name, cls)
    registry.register("suite", TINY.name, TINY)
    yield
    for cls in [*METRICS, TinySlow]:
        registry.unregister("metric", cls.name)
    registry.unregister("suite", TINY.name)


@pytest.fixture(autouse=True)
def reset_state():
    STATE.update(calls=0, interrupt_after=None, flaky=False)
    yield
    STATE.update(calls=0, interrupt_after=None, flaky=False)


def _run(out, **kw):
    kw.setdefault("seeds", (0, 1))
    return bench.run("tiny-test", out=out, progress=False, summary=kw.pop("summary", False),
                     **kw)


def _final(out) -> dict:
    return {k: (r["status"], r["value"]) for k, r in
            last_per_key(read_rows(Path(out) / RESULTS)).items()}


def _lines(out) -> list[str]:
    return (Path(out) / RESULTS).read_text().splitlines()


def _lock_is_free(out) -> bool:
    try:
        with RunLock(out):
            return True
    except BenchLockedError:
        return False


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """One uninterrupted run: the rows every resumed run must end with."""
    out = tmp_path_factory.mktemp("ref")
    STATE.update(calls=0, interrupt_after=None, flaky=False)
    frame = _run(out, summary=True)
    return out, frame


def test_rows_one_per_cell_with_fields(reference):
    out, frame = reference
    rows = [json.loads(line) for line in _lines(out)]
    assert len(rows) == N_CELLS == len(frame) == len({r["key"] for r in rows})
    status = {(r["metric"], r["status"]) for r in rows}
    assert ("tiny-image", "skipped") in status
    assert all(r["status"] == "ok" for r in rows if r["metric"] != "tiny-image")
    r = next(r for r in rows if r["metric"] == "tiny-mass")
    for field in ("key", "dataset", "data_seed", "model", "method", "metric", "seed",
                  "value", "se", "per_sample", "explain_seconds", "explain_evaluations",
                  "metric_seconds", "metric_evaluations", "n_rows", "versions", "host",
                  "timestamp", "metric_options", "method_options"):
        assert field in r, field
    assert r["n_rows"] == 8 and r["per_sample"]["n"] == 8
    assert r["versions"]["xai"] == xai.__version__
    assert 0 <= r["value"] <= 1
    curve = next(r for r in rows if r["metric"] == "tiny-curve")["curve"]
    assert len(curve) == 5 and curve[0] == pytest.approx(1.0)
    # one explanation per (data set, seed, model, method), reused by every metric
    assert len(list((Path(out) / "explanations").glob("*.npz"))) == 2 * 2
    assert _lock_is_free(out)


def test_resume_after_interrupt_matches_uninterrupted(reference, tmp_path):
    ref_out, _ = reference
    STATE["interrupt_after"] = 7
    with pytest.raises(KeyboardInterrupt):
        _run(tmp_path)
    partial = _lines(tmp_path)
    assert 0 < len(partial) < N_CELLS  # cells finished before the interrupt were kept
    assert _lock_is_free(tmp_path)  # lock released
    STATE.update(interrupt_after=None, calls=0)
    _run(tmp_path)
    keys = [json.loads(line)["key"] for line in _lines(tmp_path)]
    assert len(keys) == len(set(keys)) == N_CELLS  # no duplicates, none missing
    assert _final(tmp_path) == _final(ref_out)
    STATE["calls"] = 0
    _run(tmp_path)  # a complete folder: nothing runs again
    assert STATE["calls"] == 0 and len(_lines(tmp_path)) == N_CELLS


def test_torn_last_line_is_truncated(reference, tmp_path):
    ref_out, _ = reference
    lines = _lines(ref_out)
    torn = "\n".join(lines[:-3]) + "\n" + lines[-3][: len(lines[-3]) // 2]
    (tmp_path / RESULTS).write_text(torn)
    with pytest.warns(UserWarning, match="torn"):
        _run(tmp_path)
    keys = [json.loads(line)["key"] for line in _lines(tmp_path)]
    assert len(keys) == len(set(keys)) == N_CELLS
    assert _final(tmp_path) == _final(ref_out)


def test_errors_rerun_errors_and_force(reference, tmp_path):
    ref_out, _ = reference
    STATE["flaky"] = True
    frame = _run(tmp_path)
    errors = frame[frame.status == "error"]
    assert set(errors.metric) == {"tiny-flaky"} and len(errors) == 4
    err = errors.iloc[0]["error"]
    assert err["type"] == "RuntimeError" and "flaky failure" in err["message"]
    assert "Traceback" in err["traceback"] or "line" in err["traceback"]
    n = len(_lines(tmp_path))
    STATE["flaky"] = False
    _run(tmp_path)  # error rows are kept without --rerun-errors
    assert len(_lines(tmp_path)) == n
    frame = _run(tmp_path, rerun_errors=True)
    assert len(_lines(tmp_path)) == n + 4 and (frame.status != "error").all()
    assert _final(tmp_path) == _final(ref_out)
    _run(tmp_path, force=True)  # recompute everything: appended, same values
    assert len(_lines(tmp_path)) == n + 4 + N_CELLS
    assert _final(tmp_path) == _final(ref_out)


def test_cell_seed_independent_of_other_cells(reference):
    ref_out, frame = reference
    other = _run(Path(str(ref_out) + "-stoch"), metrics="tiny-stochastic",
                 methods=["exact-shap"])
    ref = frame[(frame.metric == "tiny-stochastic") & (frame.method == "exact-shap")]
    assert sorted(other.value) == pytest.approx(sorted(ref.value))
    assert set(other.key) <= set(frame.key)


def test_timeout_interrupts_the_cell_and_is_recorded(tmp_path):
    SLOW_FINISHED.clear()
    frame = _run(tmp_path, metrics="tiny-slow", methods="occlusion", seeds=(0,), timeout=0.3)
    assert SLOW_FINISHED == []  # the metric was stopped, not waited for
    assert frame.iloc[0]["status"] == "error"
    assert frame.iloc[0]["error"]["type"] == "Timeout"


def test_lock_prevents_second_runner(tmp_path):
    with RunLock(tmp_path), pytest.raises(XaiError, match="another benchmark run"):
        _run(tmp_path)
    assert not (tmp_path / RESULTS).exists()
    # a lock file left by a process that is gone holds no lock: nothing to take over
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (tmp_path / LOCK).write_text(f"{dead.pid} {__import__('socket').gethostname()}\n")
    _run(tmp_path, metrics="tiny-mass", seeds=(0,))
    assert _lock_is_free(tmp_path) and len(_lines(tmp_path)) == 2


@pytest.mark.parametrize("kw, word", [
    ({"suite": "tiny-tset"}, "suite"),
    ({"methods": "occlusion,shapp"}, "method"),
    ({"metrics": "tiny-mas"}, "metric"),
    ({"datasets": "tinyy"}, "data set"),
    ({"models": "cnn"}, "model"),
])
def test_unknown_names_fail_before_work(tmp_path, kw, word):
    out = tmp_path / "never"
    args = {"suite": "tiny-test", **kw}
    with pytest.raises(UnknownNameError, match=f"unknown {word}") as info:
        bench.run(out=out, progress=False, **args)
    assert "Known" in str(info.value)
    assert not out.exists() and STATE["calls"] == 0


def test_summary_tables_and_figures(reference, capsys):
    out, _ = reference
    table = bench.summarise(out, echo=True)
    printed = capsys.readouterr().out
    assert "tiny-mass" in printed and "↑" in printed
    for name in ("results.md", "results.csv", "results.json", "cells.csv"):
        assert (out / name).stat().st_size > 0
    md = (out / "results.md").read_text()
    assert "tiny-curve ↓" in md and "skipped" in md and "±" in md
    row = table[(table.metric == "tiny-mass") & (table.method == "occlusion")].iloc[0]
    assert row["n_seeds"] == 2 and np.isfinite(row["se"])
    assert row["explain_evaluations_per_row"] > 0
    figs = {p.name for p in (out / "figures").glob("*.png")}
    assert "curves-tiny-linear.png" in figs
    assert "maps-tiny-linear.png" in figs
    assert "suppressor-ratio-tiny-linear.png" in figs


def test_cli_smoke(tmp_path, capsys):
    from xai.cli import main

    out = tmp_path / "cli"
    code = main(["bench", "--suite", "tiny-test", "--methods", "occlusion", "--metrics",
                 "tiny-mass,tiny-curve", "--seeds", "0", "--n-explain", "5", "--out",
                 str(out), "--quiet"])
    assert code == 0
    rows = read_rows(out / RESULTS)
    assert len(rows) == 2 and all(r["n_rows"] == 5 for r in rows)
    assert main(["bench", "summarise", str(out)]) == 0
    assert "tiny-mass" in capsys.readouterr().out
    assert main(["bench", "--suite", "nope", "--out", str(out)]) == 2
    assert "unknown suite" in capsys.readouterr().err


def _grouped_suite(calls: list, failing: set):
    """A suite of cells scored in groups: one group per seed, two metrics each; the seeds in
    ``failing`` raise."""
    from xai.bench.store import spec_key
    from xai.bench.suites import CellGroup, GroupResult, Suite

    def compute(seed):
        calls.append(seed)
        if seed in failing:
            raise RuntimeError(f"seed {seed} failed")
        return GroupResult("ok", {"a": float(seed), "b": True}, fields={"valid": True},
                           extras={"b": {"why": "flag"}}, seconds=0.5)

    def groups(suite, methods=None, seeds=(0,), out=None):
        return [CellGroup(keys={m: spec_key({"seed": s, "metric": m}) for m in ("a", "b")},
                          row={"suite": suite.name, "seed": s, "method": "m"},
                          compute=lambda s=s: compute(s), directions={"b": "lower"},
                          label=f"seed {s}")
                for s in seeds]

    return Suite(name="grouped", description="cells scored in groups", datasets=[],
                 methods=["m"], metrics=["a", "b"], groups=groups)


def test_grouped_suite_runs_once_per_group_and_resumes(tmp_path):
    calls: list = []
    failing = {1}
    suite = _grouped_suite(calls, failing)
    out = tmp_path / "grouped"
    frame = bench.run(suite, seeds="0,1", out=out, progress=False)
    assert calls == [0, 1]  # one computation per group, not per cell
    rows = {(r["seed"], r["metric"]): r for r in read_rows(out / RESULTS)}
    assert len(rows) == len(frame) == 4
    assert rows[(0, "a")]["status"] == "ok" and rows[(0, "a")]["value"] == 0.0
    assert rows[(0, "b")]["direction"] == "lower" and rows[(0, "b")]["extras"] == {"why": "flag"}
    assert rows[(0, "a")]["versions"]["xai"] == xai.__version__
    assert rows[(1, "a")]["status"] == "error"
    assert rows[(1, "a")]["error"]["message"] == "seed 1 failed"
    bench.run(suite, seeds="0,1", out=out, progress=False)
    assert calls == [0, 1]  # resumed: error rows are final unless rerun_errors
    failing.clear()
    frame = bench.run(suite, seeds="0,1", out=out, progress=False, rerun_errors=True)
    assert calls == [0, 1, 1]
    assert set(frame["status"]) == {"ok"} and len(read_rows(out / RESULTS)) == 6


def test_progress_bar_counts_cells_toward_the_total_with_time_left(tmp_path, capsys):
    bench.run("tiny-test", out=tmp_path, seeds=(0,), progress=True, summary=False)
    err = capsys.readouterr().err
    cells = N_CELLS // 2
    assert "bench tiny-test:   0%|" in err and f"0/{cells} cells [00:00<?" in err
    last = [frame for frame in err.split("\r") if "100%" in frame][-1]
    assert f"| {cells}/{cells} cells [" in last and "<00:00, " in last  # no time left
