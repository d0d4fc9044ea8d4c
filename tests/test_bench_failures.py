"""The benchmark runner when its environment fails: results or caches that cannot be written,
a missing dependency, damaged cached files, a second run on the same folder and a killed run.

Environment failures leave their cells without a row (the next run retries them exactly once)
and raise ``BenchEnvironmentError``; a method or metric that raises for its input keeps its
``error`` row. Cells are tiny: one linear model on a 4-feature data set, occlusion."""

from __future__ import annotations

import errno
import json
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from xai import bench, registry
from xai.bench import store
from xai.bench.store import RESULTS, ResultsWriter, RunLock, is_intact, last_per_key, read_rows
from xai.datasets.base import GroundTruthData
from xai.errors import BenchEnvironmentError, BenchLockedError, XaiError
from xai.explanation import Explanation
from xai.metrics.base import Metric

W = np.array([1.0, -1.0, 0.5, 0.0])
FAULT: dict = {"dependency": None, "genuine": False}


def make_data(seed: int) -> GroundTruthData:
    rng = np.random.default_rng(np.random.SeedSequence([seed, 5]))
    X = rng.normal(size=(40, 4)).astype(np.float32)
    return GroundTruthData(
        name="env-data", X=X, y=(X @ W > 0).astype(np.int64), train=np.arange(0, 20),
        val=np.arange(20, 26), test=np.arange(26, 40),
        ground_truth=np.array([True, True, False, False]), kind="global",
        signal_mask=np.array([True, False, False, False]),
        suppressor_mask=np.array([False, True, False, False]), reference={}, params={},
        seed=seed)


def linear_model(data, seed, cache_dir):
    return (lambda x: np.asarray(x, np.float64) @ W), {"arch": "linear"}


class EnvSum(Metric):
    name = "env-sum"

    def compute(self, inp):
        return {"per_sample": np.abs(inp.scores).sum(1)}


class EnvTop(Metric):
    """Fails the way its environment or its input tells it to (``FAULT``)."""

    name = "env-top"

    def compute(self, inp):
        if FAULT["dependency"] is not None:
            raise FAULT["dependency"]
        if FAULT["genuine"]:
            raise RuntimeError("this metric is undefined for these rows")
        return {"per_sample": np.abs(inp.scores).max(1)}


def _missing_module() -> ImportError:
    return ModuleNotFoundError("No module named 'fancydep'", name="fancydep")


def _wrapped_missing_module() -> XaiError:
    try:
        raise _missing_module()
    except ImportError as exc:
        try:
            raise XaiError("env-top needs fancydep: pip install fancydep") from exc
        except XaiError as wrapped:
            return wrapped


SUITE = bench.Suite(
    name="env-test", description="unit-test suite for environment failures",
    datasets=[bench.DataSpec(name="env-data", base=None, make=make_data, kind="tabular",
                             models={"linear": linear_model}, target=None, background=8)],
    methods=["occlusion"], metrics=["env-sum", "env-top"], n_explain=4)
N_CELLS = 2 * 2  # metrics × seeds (0, 1)


@pytest.fixture(scope="module", autouse=True)
def components():
    bench.load_components()
    for cls in (EnvSum, EnvTop):
        registry.register("metric", cls.name, cls)
    registry.register("suite", SUITE.name, SUITE)
    yield
    for cls in (EnvSum, EnvTop):
        registry.unregister("metric", cls.name)
    registry.unregister("suite", SUITE.name)


@pytest.fixture(autouse=True)
def no_faults():
    FAULT.update(dependency=None, genuine=False)
    yield
    FAULT.update(dependency=None, genuine=False)


def _run(out, **kw):
    kw.setdefault("seeds", (0, 1))
    return bench.run("env-test", out=out, progress=False, summary=False, **kw)


def _rows(out) -> list[dict]:
    return read_rows(Path(out) / RESULTS)


def _final(out) -> dict:
    return {k: (r["status"], r["value"]) for k, r in last_per_key(_rows(out)).items()}


def _assert_complete_once(out, reference) -> None:
    keys = [r["key"] for r in _rows(out)]
    assert len(keys) == len(set(keys)) == N_CELLS  # every cell exactly once
    assert _final(out) == _final(reference)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """A clean run of the whole grid: what every recovered run must end with."""
    out = tmp_path_factory.mktemp("clean")
    _run(out)
    assert {s for s, _ in _final(out).values()} == {"ok"}
    return out


def _explanations(out) -> list[Path]:
    return sorted((Path(out) / "explanations").glob("*.npz"))


def _flip_bytes(path: Path) -> None:
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle:middle + 8] = bytes(b ^ 0xFF for b in data[middle:middle + 8])
    path.write_bytes(bytes(data))


@pytest.fixture
def loads_only_intact(monkeypatch):
    """Fails the test when the runner loads an explanation whose checksum does not match."""
    original = Explanation.load.__func__
    loaded: list[Path] = []

    def load(cls, path):
        assert is_intact(path), f"loaded the damaged file {path}"
        loaded.append(Path(path))
        return original(cls, path)

    monkeypatch.setattr(Explanation, "load", classmethod(load))
    return loaded


# ---------------------------------------------------------------- writes that fail

def test_full_disk_while_appending_a_row_records_nothing_and_the_rerun_completes_once(
        tmp_path, reference, monkeypatch):
    original = ResultsWriter._write_line
    calls = {"n": 0}

    def half_then_full(self, line):
        calls["n"] += 1
        if calls["n"] == 3:  # half the row reaches the file, then the disk is full
            self._fh.write(line[: len(line) // 2])
            raise OSError(errno.ENOSPC, "No space left on device", str(self.path))
        original(self, line)

    monkeypatch.setattr(ResultsWriter, "_write_line", half_then_full)
    with pytest.raises(BenchEnvironmentError, match="No space left on device") as info:
        _run(tmp_path)
    assert "run the same command again" in str(info.value)
    assert [f["stage"] for f in info.value.failures] == ["results"]
    text = (tmp_path / RESULTS).read_text()
    assert text.endswith("\n") and len(text.splitlines()) == 2  # no half row left behind
    assert all(r["status"] == "ok" for r in _rows(tmp_path))
    monkeypatch.setattr(ResultsWriter, "_write_line", original)
    _run(tmp_path)
    _assert_complete_once(tmp_path, reference)


def test_unwritable_explanation_cache_stops_the_run_without_error_rows(
        tmp_path, reference, monkeypatch):
    original = store.publish

    def refuse_explanations(tmp, path):
        if Path(path).suffix == ".npz":
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        original(tmp, path)

    monkeypatch.setattr(store, "publish", refuse_explanations)
    with pytest.raises(BenchEnvironmentError, match="Permission denied") as info:
        _run(tmp_path)
    failure = info.value.failures[0]
    assert failure["type"] == "PermissionError" and failure["stage"] == "explain"
    assert len(info.value.failures) == 1  # an OSError stops the run: later cells not started
    assert "3 more cells were not started" in str(info.value)
    assert _rows(tmp_path) == []  # no permanent error row
    monkeypatch.setattr(store, "publish", original)
    _run(tmp_path)  # no --rerun-errors needed
    _assert_complete_once(tmp_path, reference)


def test_output_folder_under_a_regular_file_is_an_environment_error(tmp_path, capsys):
    from xai.cli import main

    (tmp_path / "plain-file").write_text("not a folder")
    out = tmp_path / "plain-file" / "results"
    with pytest.raises(BenchEnvironmentError, match="output folder") as info:
        _run(out)
    assert str(out) in str(info.value)
    code = main(["bench", "--suite", "env-test", "--seeds", "0", "--out", str(out), "--quiet"])
    assert code == 1
    assert f"error: the benchmark cannot use its output folder {out}" in capsys.readouterr().err


# ---------------------------------------------------------------- missing dependency vs error

@pytest.mark.parametrize("failure", [_missing_module, _wrapped_missing_module],
                         ids=["import-error", "error-raised-from-import-error"])
def test_missing_dependency_leaves_only_its_cells_for_the_next_run(
        tmp_path, reference, failure):
    FAULT["dependency"] = failure()
    with pytest.raises(BenchEnvironmentError, match="fancydep") as info:
        _run(tmp_path)
    # the other metric's cells still ran; the failing ones have no row at all
    assert {f["metric"] for f in info.value.failures} == {"env-top"}
    assert len(info.value.failures) == 2
    wrapped = info.value.failures[0]["cause"]  # the ImportError behind a wrapping error
    assert wrapped is None if failure is _missing_module else "ModuleNotFoundError" in wrapped
    assert {(r["metric"], r["status"]) for r in _rows(tmp_path)} == {("env-sum", "ok")}
    FAULT["dependency"] = None  # the package is installed now
    _run(tmp_path)
    _assert_complete_once(tmp_path, reference)


def test_metric_raising_for_its_input_keeps_its_error_row(tmp_path, reference):
    FAULT["genuine"] = True
    frame = _run(tmp_path)  # no exception: a cell's own error is a result
    errors = frame[frame.status == "error"]
    assert set(errors.metric) == {"env-top"} and len(errors) == 2
    assert errors.iloc[0]["error"]["type"] == "RuntimeError"
    FAULT["genuine"] = False
    _run(tmp_path)
    assert len(_rows(tmp_path)) == N_CELLS  # kept without --rerun-errors
    _run(tmp_path, rerun_errors=True)
    assert _final(tmp_path) == _final(reference)


# ---------------------------------------------------------------- damaged cached files

@pytest.mark.parametrize("damage", ["flipped-bytes", "missing-checksum"])
def test_damaged_cached_explanation_is_recomputed(tmp_path, reference, loads_only_intact,
                                                  damage):
    _run(tmp_path, metrics="env-sum")
    for path in _explanations(tmp_path):
        if damage == "flipped-bytes":
            _flip_bytes(path)
        else:
            store.checksum_path(path).unlink()
        assert not is_intact(path)
    _run(tmp_path)  # env-top needs the explanations again
    assert all(is_intact(p) for p in _explanations(tmp_path))
    assert len(_explanations(tmp_path)) == 2
    _assert_complete_once(tmp_path, reference)


def test_rerun_errors_never_reloads_a_damaged_explanation(tmp_path, reference,
                                                          loads_only_intact):
    FAULT["genuine"] = True
    _run(tmp_path)
    for path in _explanations(tmp_path):
        _flip_bytes(path)
    FAULT["genuine"] = False
    frame = _run(tmp_path, rerun_errors=True)
    assert (frame.status == "ok").all()
    assert _final(tmp_path) == _final(reference)


def test_intact_cached_explanation_is_loaded_not_recomputed(tmp_path, loads_only_intact):
    _run(tmp_path, metrics="env-sum")
    before = {p: p.stat().st_mtime_ns for p in _explanations(tmp_path)}
    loads_only_intact.clear()
    _run(tmp_path)
    assert {p: p.stat().st_mtime_ns for p in _explanations(tmp_path)} == before
    assert sorted(loads_only_intact) == sorted(before)  # each read once from the cache


def test_damaged_data_sidecar_is_written_again(tmp_path):
    _run(tmp_path, seeds=(0,))
    sidecar = tmp_path / "data" / "env-data-seed0.json"
    clean = sidecar.read_text()
    sidecar.write_text(clean.replace('"n": 40', '"n": 41'))  # still valid JSON, wrong
    assert not is_intact(sidecar)
    _run(tmp_path, seeds=(0,))  # every cell is done: only the sidecar is written
    assert is_intact(sidecar) and json.loads(sidecar.read_text()) == json.loads(clean)
    assert len(_rows(tmp_path)) == 2


def test_publish_records_a_checksum_that_catches_changes(tmp_path):
    path = tmp_path / "cache.json"
    store.write_published(path, lambda tmp: tmp.write_text('{"a": 1}'))
    assert is_intact(path) and sorted(p.name for p in tmp_path.iterdir()) == \
        [store.PARTIAL, "cache.json", "cache.json.sha256"]
    assert not list((tmp_path / store.PARTIAL).iterdir())  # nothing left half-written
    assert store.checksum_path(path).read_text().split() == [store.sha256_of(path), path.name]
    path.write_text('{"a": 2}')
    assert not is_intact(path)
    assert not is_intact(tmp_path / "absent.json")


# ---------------------------------------------------------------- the run lock

HOLD_LOCK = """
import sys, time
from xai.bench.store import RunLock
with RunLock(sys.argv[1]):
    print("locked", flush=True)
    time.sleep(120)
"""


@pytest.fixture
def lock_holder(tmp_path):
    """Another process that holds the output folder's lock until it is killed."""
    proc = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(tmp_path)],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "locked"
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        proc.stdout.close()


def test_concurrent_run_gets_a_named_error_at_once(tmp_path, lock_holder, capsys):
    from xai.cli import main

    with pytest.raises(BenchLockedError, match="another benchmark run") as info:
        _run(tmp_path)
    assert str(tmp_path) in str(info.value)
    assert not (tmp_path / RESULTS).exists()
    code = main(["bench", "--suite", "env-test", "--out", str(tmp_path), "--quiet"])
    assert code == 2 and "another benchmark run" in capsys.readouterr().err


def test_killed_run_leaves_a_folder_the_next_run_can_lock(tmp_path, reference, lock_holder):
    lock_holder.send_signal(signal.SIGKILL)
    lock_holder.wait()
    assert (tmp_path / store.LOCK).exists()  # the file stays; no process holds a lock on it
    _run(tmp_path)
    _assert_complete_once(tmp_path, reference)
    with RunLock(tmp_path) as lock:
        assert lock.held


@pytest.mark.parametrize("options", [
    {"seeds": [-1]}, {"seeds": "a,b"}, {"seeds": []}, {"seeds": [None]}, {"n_explain": 0},
    {"budget": "many"}, {"timeout": -1.0}, {"timeout": float("nan")}])
def test_bad_run_options_are_refused_before_any_work(tmp_path, options):
    from xai.errors import OptionError

    with pytest.raises(OptionError, match=r"seed|n_explain|budget|timeout"):
        bench.run("faithfulness", out=tmp_path / "run", **options)
    assert not (tmp_path / "run").exists()
