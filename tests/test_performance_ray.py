"""Problem 9 of the performance benchmark (explaining on Ray): the tiny size's outputs and the
driver's capacity model. No test asserts a time."""

from __future__ import annotations

import json

import pytest

from benchmarks.performance.ray_scaling import SIZES, capacity, run_problem

pytest.importorskip("skops.io")
pytest.importorskip("pyarrow")


def test_capacity_is_the_driver_load_model():
    # a worker explains 100 rows/s; the driver spends 1 ms per task, 1 ms per result and
    # 10 µs per row: 12 ms per chunk of 1000 rows, so 1000 / (100 * 0.012) = 833 workers
    c = capacity(100.0, 1e-3, 1e-3, 1e-5, 1000, scales=(10, 1000))
    assert c["driver_seconds_per_result"] == pytest.approx(0.012)
    assert c["saturating_workers"] == pytest.approx(1000 / 1.2)
    assert c["saturating_workers_any_chunk"] == pytest.approx(1000)
    ten, thousand = c["scales"]
    assert ten["driver_load"] == pytest.approx(10 * 100 * 0.012 / 1000)
    assert ten["cluster_rows_per_second"] == pytest.approx(1000)
    # at 1000 workers the driver's per-row cost alone would keep it fully busy
    assert thousand["driver_load"] > 1 and thousand["chunk_rows_for_half_load"] is None
    assert thousand["cluster_rows_per_second"] == pytest.approx(1000 / 0.012)
    # a half-busy driver at 10 workers: c >= 10*100*0.002 / (0.5 - 10*100*1e-5)
    assert ten["chunk_rows_for_half_load"] == pytest.approx(2 / 0.49)


def test_tiny_problem_writes_equal_values_targets_and_driver_costs(ray_cluster, tmp_path):
    res = run_problem(tmp_path, SIZES["tiny"], cache_dir=tmp_path / "models",
                      log=lambda *a: None, env=_env())
    saved = json.loads((tmp_path / "problem9.json").read_text())
    assert saved["n_rows"] == SIZES["tiny"]["n_rows"]
    for path in ("files", "in_memory"):
        if res[path] is None:
            continue
        assert set(res[path]) == {"local", "ray 1", "ray 2"}
        assert all(r["identical"] and r["seconds"] > 0 for r in res[path].values())
        t = res[f"{path}_targets"]
        assert t["identical"]
        assert t["speedup"] == res[path]["ray 1"]["seconds"] / res[path]["ray 2"]["seconds"]
    assert res["task"]["round_trip_seconds"] > 0
    drv = res["driver"]
    assert drv["files_per_chunk"] >= 0 and drv["join_per_row"] > 0
    assert res["capacity"]["saturating_workers"] > 0
    text = (tmp_path / "problem9.md").read_text()
    assert "Problem 9" in text and "saturates at" in text and "ray 2 worker(s)" in text
    # the tasks' executing seconds from Ray's timeline: positive, and never more than the
    # workers could have spent in that run's wall time
    for name, workers in (("ray 1", 1), ("ray 2", 2)):
        row = res["in_memory"][name]
        assert 0 < row["task_seconds"] <= workers * row["task_wall"]
    assert "bounds the speed-up at" in text


def _env() -> dict:
    from benchmarks.performance.common import environment

    return environment()
