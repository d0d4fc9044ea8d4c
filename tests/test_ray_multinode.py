"""The Ray backend on a cluster of two nodes (two raylets with their own object stores, started
on this machine by Ray's ``cluster_utils``): tasks run on both nodes, objects travel between
the stores, and the values equal a local run's bit for bit. The second node declares a GPU
(Ray schedules by declared resources): tasks asking for one run there alone, and ``device=``
is checked where the tasks run, not on this (CPU-only) driver."""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest
import torch

import xai
from xai import ray_explain

if os.environ.get("XAI_REQUIRE_RAY") == "1":
    import ray
else:
    ray = pytest.importorskip("ray")


@pytest.fixture(scope="module")
def two_nodes():
    """A head node of one CPU, and a worker node of one CPU and one declared GPU; this
    module's models sent by value."""
    from ray.cluster_utils import Cluster

    if ray.is_initialized():
        ray.shutdown()
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    cluster.add_node(num_cpus=1, num_gpus=1)
    ray.init(address=cluster.address, include_dashboard=False, log_to_driver=False,
             configure_logging=False)
    cluster.wait_for_nodes()
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    yield cluster
    ray.cloudpickle.unregister_pickle_by_value(sys.modules[__name__])
    ray.shutdown()
    cluster.shutdown()


class _NodeLogging(torch.nn.Module):
    """An MLP that appends the Ray node it runs on, and the GPUs Ray made visible to it, to a
    log file (nothing on the driver)."""

    def __init__(self, log: str) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.net = torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.ReLU(),
                                       torch.nn.Linear(16, 3))
        self.log, self.driver = log, os.getpid()

    def forward(self, x):
        if os.getpid() != self.driver:
            with open(self.log, "a") as f:
                f.write(f"{ray.get_runtime_context().get_node_id()} "
                        f"{os.environ.get('CUDA_VISIBLE_DEVICES', '-')}\n")
        return self.net(x)


def test_tasks_run_on_both_nodes_and_the_values_equal_a_local_run(two_nodes, tmp_path,
                                                                   monkeypatch):
    assert len([n for n in ray.nodes() if n["Alive"]]) == 2
    rng = np.random.default_rng(0)
    X = rng.normal(size=(48, 6)).astype(np.float32)
    B = rng.normal(size=(8, 6)).astype(np.float32)
    log = tmp_path / "nodes"
    model = _NodeLogging(str(log))
    local = xai.explain(model, X, "kernelshap", background=B, seed=1, budget=400,
                        progress=False)
    monkeypatch.setattr(ray_explain, "MIN_TASK_ROWS", 6)  # eight blocks over two nodes
    remote = xai.explain(model, X, "kernelshap", background=B, seed=1, budget=400,
                         progress=False, backend="ray", workers=2)
    assert len(_logged(log)) == 2  # both nodes evaluated rows
    for name in ("values", "stderr", "base_values", "coalitions"):
        assert np.array_equal(getattr(local, name), getattr(remote, name)), name


def _logged(log) -> set[tuple[str, str]]:
    """(node id, CUDA_VISIBLE_DEVICES) of every logged model call."""
    return {tuple(line.split()) for line in log.read_text().splitlines()}


def _gpu_node() -> str:
    (node,) = [n["NodeID"] for n in ray.nodes() if n["Alive"] and n["Resources"].get("GPU")]
    return node


def _data(n: int = 24):
    rng = np.random.default_rng(0)
    return (rng.normal(size=(n, 6)).astype(np.float32),
            rng.normal(size=(8, 6)).astype(np.float32))


def test_gpu_tasks_of_explain_and_row_metrics_run_only_on_the_node_with_a_gpu(two_nodes,
                                                                             tmp_path,
                                                                             monkeypatch):
    X, B = _data()
    log = tmp_path / "nodes"
    model = _NodeLogging(str(log))
    local = xai.explain(model, X, "kernelshap", background=B, seed=1, budget=300,
                        progress=False)
    monkeypatch.setattr(ray_explain, "MIN_TASK_ROWS", 6)  # four blocks, one GPU at a time
    remote = xai.explain(model, X, "kernelshap", background=B, seed=1, budget=300,
                         progress=False, backend="ray", num_gpus=1)
    assert remote.options["workers"] == 1  # as many tasks in flight as the cluster has GPUs
    assert _logged(log) == {(_gpu_node(), "0")}  # Ray gave each task the node's GPU 0
    assert np.array_equal(local.values, remote.values)
    log.unlink()
    metric = xai.registry.get("metric", "deletion")()
    scores = metric(model, X, local, seed=3, progress=False)
    remote = metric(model, X, local, seed=3, progress=False, backend="ray", num_gpus=1)
    assert _logged(log) == {(_gpu_node(), "0")}
    assert np.array_equal(scores.per_sample, remote.per_sample, equal_nan=True)


needs_no_cuda = pytest.mark.skipif(torch.cuda.is_available(),
                                   reason="checks the refusal of a GPU the workers lack")


@needs_no_cuda
def test_a_cuda_device_is_checked_by_the_tasks_not_by_this_cpu_only_driver(two_nodes,
                                                                           tmp_path):
    from xai.errors import OptionError

    X, B = _data()
    log = tmp_path / "nodes"
    # this process has no CUDA, yet the run reaches the GPU node: the declared GPU is not a
    # real one there either, so the task refuses it by name before its first model call
    with pytest.raises(OptionError, match=r"on the Ray worker at .*asks for a CUDA GPU"):
        xai.explain(_NodeLogging(str(log)), X, "kernelshap", background=B, seed=1,
                    budget=300, progress=False, backend="ray", device="cuda")
    assert not log.exists()


@needs_no_cuda
def test_files_chunks_hold_the_gpu_they_ask_for_and_check_the_device_on_the_worker(
        two_nodes, tmp_path):
    import pandas as pd

    from xai.errors import OptionError
    from xai.explain_files import explain_files

    pytest.importorskip("pyarrow")
    X, B = _data()
    columns = [f"x{i}" for i in range(6)]
    pd.DataFrame(X, columns=columns).to_parquet(tmp_path / "rows.parquet")
    pd.DataFrame(B, columns=columns).to_parquet(tmp_path / "bg.parquet")
    log = tmp_path / "nodes"
    kw = {"method": "kernelshap", "background": tmp_path / "bg.parquet", "budget": 300,
          "seed": 1, "chunk_rows": 8, "figures": False, "progress": False}
    local = explain_files(_NodeLogging(str(log)), tmp_path / "rows.parquet",
                          out=tmp_path / "local", **kw)
    remote = explain_files(_NodeLogging(str(log)), tmp_path / "rows.parquet",
                           out=tmp_path / "ray", backend="ray", num_gpus=1, **kw)
    assert _logged(log) == {(_gpu_node(), "0")}
    assert local["rows"] == remote["rows"] == len(X)
    for name in ("values", "stderr", "base_values"):
        pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "local" / f"{name}.parquet"),
                                      pd.read_parquet(tmp_path / "ray" / f"{name}.parquet"))
    log.unlink()
    with pytest.raises(OptionError, match=r"on the Ray worker at .*asks for a CUDA GPU"):
        explain_files(_NodeLogging(str(log)), tmp_path / "rows.parquet",
                      out=tmp_path / "cuda", backend="ray", device="cuda", **kw)
    assert not log.exists()

