"""``xai bench --backend ray`` on a local two-CPU Ray cluster: the rows equal a local run's,
a worker killed mid-run and a driver killed mid-run leave every cell exactly once, and a cell
past its time limit is cancelled and recorded as the local ``Timeout`` row."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import ray_bench_components as components
import torch

from xai import bench
from xai.bench.store import RESULTS, RunLock, read_rows

SMALL = {"suite": "suppressor", "datasets": "gauss2d-suppressor", "methods": "occlusion,shap",
         "n_explain": 8, "progress": False, "summary": False}
#: the fields of a row that depend on the run (timings, when and where), not on the cell
RUN_FIELDS = {"timestamp", "host", "cell_seconds", "explain_seconds", "metric_seconds",
              "seconds", "warnings"}


@pytest.fixture(scope="module")
def cluster(ray_cluster):
    """The local two-CPU cluster (skipped without Ray unless ``XAI_REQUIRE_RAY=1``) with the
    test metrics registered in this process only (pickled by value, so the workers need not
    import this folder); its address."""
    ray_cluster.cloudpickle.register_pickle_by_value(components)
    bench.load_components()
    components.register()
    yield ray_cluster.get_runtime_context().gcs_address
    components.unregister()
    ray_cluster.cloudpickle.unregister_pickle_by_value(components)


def _rows(out) -> list[dict]:
    return read_rows(Path(out) / RESULTS)


def _cell_values(frame) -> list[dict]:
    rows = frame.sort_values("key").to_dict("records")
    for row in rows:  # training time, and whether this process loaded the model from disk
        row["model_info"] = {k: v for k, v in (row.get("model_info") or {}).items()
                             if k not in ("seconds", "cached")}
    return [{k: "nan" if isinstance(v, float) and math.isnan(v) else v
             for k, v in row.items() if k not in RUN_FIELDS}
            for row in rows]  # NaN (no value) made comparable


def test_rows_equal_a_local_run(cluster, tmp_path):
    # a trained model (cached in the output folder by the worker that trains it, read by the
    # others), a sampling method and a gradient method on images
    grid = {**SMALL, "datasets": "linear8x8", "methods": "shap,captum.saliency",
            "metrics": "topk-precision,mass-accuracy"}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as each task (num_cpus=1): float sums depend on the threads
    try:
        local = bench.run(out=tmp_path / "local", **grid)
    finally:
        torch.set_num_threads(threads)
    on_ray = bench.run(out=tmp_path / "ray", backend="ray", **grid)
    assert len(on_ray) == 4 and set(on_ray["status"]) == {"ok"}
    assert _cell_values(on_ray) == _cell_values(local)  # bit-identical values
    written = _rows(tmp_path / "ray")
    assert sorted(r["key"] for r in written) == sorted(local["key"])
    # a complete folder: the rerun runs nothing and returns the same rows
    again = bench.run(out=tmp_path / "ray", backend="ray", **grid)
    assert len(_rows(tmp_path / "ray")) == 4 and _cell_values(again) == _cell_values(local)
    forced = bench.run(out=tmp_path / "ray", backend="ray", force=True, **grid)  # appended
    assert len(_rows(tmp_path / "ray")) == 8 and _cell_values(forced) == _cell_values(local)


def test_worker_killed_mid_run_is_retried_and_written_once(cluster, tmp_path):
    components.KillOnce.marker = str(tmp_path / "killed")
    frame = bench.run(out=tmp_path / "out", metrics="test-kill-once,topk-precision",
                      backend="ray", **SMALL)
    killed = int((tmp_path / "killed").read_text())
    assert killed != os.getpid()  # a worker process died, not this one
    assert set(frame["status"]) == {"ok"} and len(frame) == 4
    keys = [r["key"] for r in _rows(tmp_path / "out")]
    assert len(keys) == len(set(keys)) == 4


def test_cell_past_its_time_limit_is_cancelled_with_the_local_timeout_row(
        cluster, tmp_path, monkeypatch):
    from xai.bench import ray_grid

    monkeypatch.setattr(ray_grid, "CANCEL_GRACE", 1.0)
    options = {**SMALL, "methods": "occlusion", "timeout": 0.5}
    local = bench.run(out=tmp_path / "local", metrics="test-sleepy", **options)
    frame = bench.run(out=tmp_path / "ray", metrics="test-stuck,test-sleepy,topk-precision",
                      backend="ray", **options)
    rows = {r["metric"]: r for r in frame.to_dict("records")}
    expected = {k: local["error"][0][k] for k in ("type", "message", "stage")}
    assert expected == {"type": "Timeout", "stage": "metric",
                        "message": "exceeded the time limit of 0.5 s (--timeout)"}
    for metric in ("test-stuck", "test-sleepy"):  # cancelled by the driver; timed out inside
        assert rows[metric]["status"] == "error"
        assert {k: rows[metric]["error"][k] for k in expected} == expected
    assert rows["topk-precision"]["status"] == "ok"
    assert len(_rows(tmp_path / "ray")) == 3


def test_driver_killed_mid_run_resumes_without_duplicates(cluster, tmp_path):
    out = tmp_path / "out"
    script = (
        "import sys; sys.path.insert(0, sys.argv[1]); import ray_bench_components as c; "
        "import ray; ray.init(address=sys.argv[2], log_to_driver=False); "
        "ray.cloudpickle.register_pickle_by_value(c); c.register(); from xai import bench; "
        "bench.run('suppressor', datasets='gauss2d-suppressor', methods='occlusion,shap', "
        "metrics='test-slow,topk-precision,mass-accuracy', n_explain=8, progress=False, "
        "summary=False, out=sys.argv[3], backend='ray')")
    driver = subprocess.Popen([sys.executable, "-c", script, str(Path(__file__).parent),
                               cluster, str(out)], stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while not (out / RESULTS).exists() or not _rows(out):
        assert driver.poll() is None, driver.stderr.read().decode()[-2000:]
        assert time.monotonic() < deadline
        time.sleep(0.05)
    os.kill(driver.pid, signal.SIGKILL)
    driver.wait()
    before = {r["key"] for r in _rows(out)}
    assert 0 < len(before) < 6  # killed with cells left
    with RunLock(out):  # the dead driver's lock is gone
        pass
    frame = bench.run(out=out, metrics="test-slow,topk-precision,mass-accuracy",
                      backend="ray", **SMALL)
    keys = [r["key"] for r in _rows(out)]
    assert len(keys) == len(set(keys)) == 6 and set(frame["status"]) == {"ok"}
    assert before <= set(keys)


def test_local_backend_does_not_import_ray(tmp_path):
    script = ("import sys; from xai import bench; bench.run('suppressor', "
              "datasets='gauss2d-suppressor', methods='occlusion', metrics='topk-precision', "
              "n_explain=4, progress=False, summary=False, out=sys.argv[1]); "
              "assert 'ray' not in sys.modules, 'ray was imported'")
    subprocess.run([sys.executable, "-c", script, str(tmp_path)], check=True)


def test_command_line_runs_the_grid_on_ray(cluster, tmp_path, capsys):
    from xai.cli import main

    out = tmp_path / "cli"
    code = main(["bench", "--suite", "suppressor", "--datasets", "gauss2d-suppressor",
                 "--methods", "occlusion", "--metrics", "topk-precision", "--n-explain", "4",
                 "--out", str(out), "--backend", "ray", "--workers", "2", "--num-cpus", "1",
                 "--device", "cpu", "--quiet"])
    assert code == 0
    rows = _rows(out)
    assert len(rows) == 1 and rows[0]["status"] == "ok"


@pytest.mark.parametrize("options, word", [({"backend": "spark"}, "backend"),
                                           ({"workers": 2}, "backend='ray'"),
                                           ({"backend": "ray", "workers": 0}, "workers"),
                                           ({"backend": "ray", "num_cpus": -1}, "num_cpus")])
def test_bad_backend_options_fail_before_work(tmp_path, options, word):
    from xai.errors import OptionError

    with pytest.raises(OptionError, match=word):
        bench.run(out=tmp_path / "out", **{**SMALL, **options})
    assert not (tmp_path / "out").exists()


def _grouped_suite():
    """Cells scored in groups (one computation per seed, two metrics); seed 1 raises."""
    from xai.bench.store import spec_key
    from xai.bench.suites import CellGroup, GroupResult, Suite

    def compute(seed):
        if seed == 1:
            raise RuntimeError("seed 1 failed")
        return GroupResult("ok", {"a": float(seed) + 0.5, "b": 2.0 * seed}, seconds=0.1)

    def groups(suite, methods=None, seeds=(0,), out=None):
        return [CellGroup(keys={m: spec_key({"seed": s, "metric": m}) for m in ("a", "b")},
                          row={"suite": suite.name, "seed": s, "method": "m"},
                          compute=lambda s=s: compute(s), directions={}, label=f"seed {s}")
                for s in seeds]

    return Suite(name="grouped-ray", description="cells scored in groups", datasets=[],
                 methods=["m"], metrics=["a", "b"], groups=groups)


def test_grouped_suite_runs_its_groups_as_tasks(cluster, tmp_path):
    suite = _grouped_suite()
    local = bench.run(suite, seeds="0,1,2", out=tmp_path / "local", progress=False)
    on_ray = bench.run(suite, seeds="0,1,2", out=tmp_path / "ray", progress=False,
                       backend="ray")
    assert _cell_values(on_ray) == _cell_values(local)
    assert sorted(on_ray["status"]) == ["error"] * 2 + ["ok"] * 4
    assert len(_rows(tmp_path / "ray")) == 6


@pytest.mark.parametrize("options", [{"device": "cuda"}, {"num_cpus": 64}])
def test_task_the_cluster_cannot_hold_fails_before_work(cluster, tmp_path, options):
    from xai.errors import ClusterError

    with pytest.raises(ClusterError, match="the Ray cluster has"):
        bench.run(out=tmp_path / "out", backend="ray", **{**SMALL, **options})
    assert not (tmp_path / "out" / RESULTS).exists() or not _rows(tmp_path / "out")
