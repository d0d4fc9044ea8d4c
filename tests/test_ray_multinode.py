"""The Ray backend on a cluster of two nodes (two raylets with their own object stores, started
on this machine by Ray's ``cluster_utils``): tasks run on both nodes, objects travel between
the stores, and the values equal a local run's bit for bit."""

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
    """A head node and a worker node of one CPU each; this module's models sent by value."""
    from ray.cluster_utils import Cluster

    if ray.is_initialized():
        ray.shutdown()
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    cluster.add_node(num_cpus=1)
    ray.init(address=cluster.address, include_dashboard=False, log_to_driver=False,
             configure_logging=False)
    cluster.wait_for_nodes()
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    yield cluster
    ray.cloudpickle.unregister_pickle_by_value(sys.modules[__name__])
    ray.shutdown()
    cluster.shutdown()


class _NodeLogging(torch.nn.Module):
    """An MLP that appends the Ray node it runs on to a log file (nothing on the driver)."""

    def __init__(self, log: str) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.net = torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.ReLU(),
                                       torch.nn.Linear(16, 3))
        self.log, self.driver = log, os.getpid()

    def forward(self, x):
        if os.getpid() != self.driver:
            with open(self.log, "a") as f:
                f.write(ray.get_runtime_context().get_node_id() + "\n")
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
    assert len(set(log.read_text().split())) == 2  # both nodes evaluated rows
    for name in ("values", "stderr", "base_values", "coalitions"):
        assert np.array_equal(getattr(local, name), getattr(remote, name)), name
