"""``explain(..., backend="ray")`` on a local two-CPU Ray cluster: values bit-identical to a
local run with the same seed, whatever the workers and blocks; every row once when a worker
dies; the model's own error and the backend's errors as named xai errors."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import xai
from xai import ray_explain
from xai.errors import ClusterError, MissingDependencyError, ModelError, OptionError

if os.environ.get("XAI_REQUIRE_RAY") == "1":
    import ray
else:
    ray = pytest.importorskip("ray")

FIELDS = ("values", "stderr", "base_values", "coalitions", "units", "converged", "data")


@pytest.fixture(scope="module")
def cluster(ray_cluster):
    """The local two-CPU cluster of conftest, with this module's models sent by value (the
    workers cannot import a test module)."""
    ray_cluster.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    yield ray_cluster
    ray_cluster.cloudpickle.unregister_pickle_by_value(sys.modules[__name__])


def _tabular(n: int = 40, p: int = 6):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(n, p)).astype(np.float32)
    return X, rng.normal(size=(12, p)).astype(np.float32), (X[:, 0] + X[:, 1] > 0).astype(int)


def _mlp(p: int = 6) -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(p, 32), torch.nn.ReLU(), torch.nn.Linear(32, 3))


def _cnn() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.ReLU(), torch.nn.Flatten(),
                               torch.nn.Linear(4 * 6 * 6, 3))


def _same(local: xai.Explanation, remote: xai.Explanation) -> None:
    for name in FIELDS:
        a, b = getattr(local, name), getattr(remote, name)
        assert (a is None) == (b is None), name
        if a is not None:
            assert a.shape == b.shape and np.array_equal(a, b, equal_nan=True), name
    for key, value in local.extras.items():
        assert np.array_equal(value, remote.extras[key], equal_nan=True), key
    assert remote.options["backend"] == "ray"


@pytest.mark.parametrize("workers, task_rows", [(1, 40), (2, 16), (3, 7)])
@pytest.mark.parametrize("method, options", [
    ("kernelshap", {"budget": 900}),
    ("permutation-shap", {"budget": 900}),
    ("exact-shap", {}),
    ("lime", {"budget": 400}),
    ("occlusion", {}),
])
def test_tabular_mlp_values_equal_a_local_run_bit_for_bit(cluster, monkeypatch, workers,
                                                          task_rows, method, options):
    X, B, _ = _tabular()
    model = _mlp()
    local = xai.explain(model, X, method, background=B, seed=3, progress=False, **options)
    monkeypatch.setattr(ray_explain, "MIN_TASK_ROWS", task_rows)  # 1, 3 and 6 blocks
    remote = xai.explain(model, X, method, background=B, seed=3, progress=False,
                         backend="ray", workers=workers, **options)
    _same(local, remote)
    assert remote.options["workers"] == workers


@pytest.mark.parametrize("method", ["shap", "kernelshap", "shap-interactions"])
def test_long_sums_on_one_cpu_workers_equal_a_two_thread_local_run(cluster, monkeypatch,
                                                                   method, threads):
    """Budgets in the thousands on a probability model (``shap`` picks ra-kernelshap-net, a
    fit over thousands of rows per explicand): each task runs on one torch thread, the local
    process on two, and BLAS splits long sums between threads."""
    X, B, _ = _tabular(n=12, p=15)  # above the exact rules of shap and shap-interactions
    model = _mlp(p=15)
    options = {"background": B, "seed": 3, "budget": 2500, "output": "probability",
               "target": 1, "progress": False}
    threads(2)
    local = xai.explain(model, X, method, **options)
    monkeypatch.setattr(ray_explain, "MIN_TASK_ROWS", 5)  # blocks of 5, 5 and 2 rows
    remote = xai.explain(model, X, method, backend="ray", workers=2, **options)
    _same(local, remote)


def test_sklearn_pipeline_with_a_stopping_rule_equals_a_local_run(cluster, monkeypatch):
    X, B, y = _tabular(p=12)
    pipe = make_pipeline(StandardScaler(), LogisticRegression()).fit(X.astype(float), y)
    explainer = xai.Explainer.from_preset("kernelshap", background=B.astype(float), seed=5,
                                          tol=0.005, budget=4000, progress=False)
    local = explainer.explain(pipe, X.astype(float))
    monkeypatch.setattr(ray_explain, "MIN_TASK_ROWS", 11)  # blocks of 11, 11, 11 and 7 rows
    remote = xai.Explainer.from_preset("kernelshap", background=B.astype(float), seed=5,
                                       tol=0.005, budget=4000, progress=False, backend="ray",
                                       workers=2).explain(pipe, X.astype(float))
    _same(local, remote)
    assert not np.all(local.units == local.units[0])  # rows stopped at different rounds


@pytest.mark.parametrize("removal, summary", [
    ("blur", "kernelshap"), ("marginal", "permutation"), ("baseline", "exact-shapley")])
def test_image_cnn_values_equal_a_local_run_bit_for_bit(cluster, monkeypatch, removal,
                                                        summary):
    rng = np.random.default_rng(1)
    X = rng.normal(size=(20, 1, 8, 8)).astype(np.float32)
    background = X[:4] if removal == "marginal" else None
    budget = {} if summary == "exact-shapley" else {"budget": 300}
    explainer = xai.Explainer(removal, "prediction", summary, seed=2, progress=False, **budget)
    local = explainer.explain(_cnn(), X, background=background, features=4)
    monkeypatch.setattr(ray_explain, "MIN_TASK_ROWS", 6)
    remote = explainer.explain(_cnn(), X, background=background, features=4, backend="ray",
                               workers=2)
    _same(local, remote)


@pytest.mark.parametrize("workers", [1, 2, 3])
def test_a_dataset_game_sums_its_data_blocks_on_workers_exactly(cluster, monkeypatch, workers):
    from xai import game

    X, _, y = _tabular()
    pipe = make_pipeline(StandardScaler(), LogisticRegression()).fit(X.astype(float), y)
    monkeypatch.setattr(game, "DATA_BLOCK_ROWS", 7)  # six blocks, the last of 5 rows
    options = {"y": y, "seed": 1, "progress": False}
    local = xai.explain(pipe, X.astype(float), "permutation-importance", **options)
    remote = xai.explain(pipe, X.astype(float), "permutation-importance", backend="ray",
                         workers=workers, **options)
    _same(local, remote)
    actors = min(workers, 2)  # no more than the cluster's CPUs
    assert remote.evaluations == local.evaluations + actors * len(X)  # v(D) per actor


@pytest.mark.parametrize("options", [{}, {"draws_per_unit": 4, "loss": "squared-error"}])
def test_row_sampled_sage_evaluates_its_units_on_workers_with_the_local_values(
        cluster, monkeypatch, options):
    from xai import game

    X, B, y = _tabular()
    pipe = make_pipeline(StandardScaler(), LogisticRegression()).fit(X.astype(float), y)
    calls = []
    monkeypatch.setattr(game.DatasetGame, "local", lambda self, *a, local=game.DatasetGame.local:
                        calls.append(self.shards) or local(self, *a))
    kw = {"y": y, "background": B.astype(float), "seed": 2, "budget": 600, "progress": False,
          **options}
    local = xai.explain(pipe, X.astype(float), "sage", **kw)
    remote = xai.explain(pipe, X.astype(float), "sage", backend="ray", workers=2, **kw)
    _same(local, remote)
    # the driver evaluated no unit: every row-sampled call went to the actors
    assert calls and all(s is None for s in calls[:len(calls) // 2]) and \
        all(s is not None for s in calls[len(calls) // 2:])
    assert remote.evaluations >= local.evaluations


class _DiesOnce(torch.nn.Module):
    """The MLP, whose worker process kills itself on its first forward (a marker file says
    it has happened)."""

    def __init__(self, inner: torch.nn.Module, marker: str) -> None:
        super().__init__()
        self.inner, self.marker, self.driver = inner, marker, os.getpid()

    def forward(self, x):
        if os.getpid() != self.driver and not os.path.exists(self.marker):
            with open(self.marker, "w") as f:
                f.write(str(os.getpid()))
            os.kill(os.getpid(), signal.SIGKILL)
        return self.inner(x)


def test_a_killed_worker_is_retried_and_every_row_appears_once(cluster, tmp_path, monkeypatch):
    X, B, _ = _tabular()
    local = xai.explain(_mlp(), X, "kernelshap", background=B, seed=4, budget=600,
                        progress=False)
    monkeypatch.setattr(ray_explain, "MIN_TASK_ROWS", 10)
    marker = tmp_path / "killed"
    remote = xai.explain(_DiesOnce(_mlp(), str(marker)), X, "kernelshap", background=B,
                         seed=4, budget=600, progress=False, backend="ray", workers=2)
    assert marker.exists() and int(marker.read_text()) != os.getpid()  # a worker died
    _same(local, remote)  # every row once, in order


def test_a_killed_dataset_actor_is_restarted_and_the_value_is_exact(cluster, tmp_path,
                                                                   monkeypatch):
    from xai import game

    X, _, _ = _tabular()
    y3 = (X[:, 0] > 0).astype(int) + (X[:, 1] > 0).astype(int)  # classes 0..2
    monkeypatch.setattr(game, "DATA_BLOCK_ROWS", 7)
    options = {"y": y3, "seed": 2, "progress": False}
    local = xai.explain(_mlp(), X, "permutation-importance", **options)
    marker = tmp_path / "killed"
    remote = xai.explain(_DiesOnce(_mlp(), str(marker)), X, "permutation-importance",
                         backend="ray", workers=2, **options)
    assert marker.exists()  # an actor's process died and was restarted
    _same(local, remote)


class _Unpickled(torch.nn.Module):
    """The MLP, which appends its process id to a log file each time it is unpickled."""

    def __init__(self, inner: torch.nn.Module, log: str) -> None:
        super().__init__()
        self.inner, self.log = inner, log

    def __setstate__(self, state) -> None:
        super().__setstate__(state)
        with open(self.log, "a") as f:
            f.write(f"{os.getpid()}\n")

    def forward(self, x):
        return self.inner(x)


def test_a_worker_fetches_the_model_once_per_run_not_once_per_task(cluster, tmp_path,
                                                                   monkeypatch):
    X, B, _ = _tabular()
    monkeypatch.setattr(ray_explain, "MIN_TASK_ROWS", 4)  # four blocks of 10 rows at 1 worker
    log, seen = tmp_path / "unpickled", 0
    for _ in range(2):
        remote = xai.explain(_Unpickled(_mlp(), str(log)), X, "kernelshap", background=B,
                             seed=4, budget=300, progress=False, backend="ray", workers=1)
        pids = log.read_text().split()[seen:]
        seen += len(pids)
        assert 1 <= len(pids) < 4 and len(pids) == len(set(pids))  # once per worker and run
    _same(xai.explain(_mlp(), X, "kernelshap", background=B, seed=4, budget=300,
                      progress=False), remote)


class _Raises(torch.nn.Module):
    def forward(self, x):
        raise ValueError("the model refuses these rows")


def test_a_model_error_in_a_task_arrives_as_the_named_error(cluster):
    X, B, _ = _tabular()
    with pytest.raises(ModelError, match="refuses these rows") as info:
        xai.explain(_Raises(), X, "kernelshap", background=B, seed=0, budget=600,
                    progress=False, backend="ray")
    assert type(info.value) is ModelError  # not Ray's wrapper


class _Counting(torch.nn.Module):
    calls = 0

    def forward(self, x):
        _Counting.calls += 1
        return x[:, :2]


def test_without_ray_installed_the_error_says_how_to_install_it(monkeypatch):
    X, B, _ = _tabular()
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray fails
    with pytest.raises(MissingDependencyError, match=r"pip install 'xai\[ray\]'"):
        xai.explain(_Counting(), X, "kernelshap", background=B, progress=False, backend="ray")
    assert _Counting.calls == 0


def test_bad_options_and_an_unreachable_address_fail_before_any_model_call():
    X, B, _ = _tabular()
    with pytest.raises(xai.errors.OptionError, match="backend"):
        xai.explain(_Counting(), X, "kernelshap", background=B, backend="spark")
    with pytest.raises(xai.errors.OptionError, match="workers"):
        xai.explain(_Counting(), X, "kernelshap", background=B, backend="ray", workers=0)
    assert _Counting.calls == 0
    script = textwrap.dedent("""
        import numpy as np, xai
        from xai.errors import ClusterError
        calls = []
        try:
            xai.explain(lambda x: calls.append(1) or x[:, :1], np.zeros((4, 3)), "occlusion",
                        baseline=0.0, backend="ray", address="127.0.0.1:1", progress=False)
        except ClusterError as e:
            print("ClusterError", "127.0.0.1:1" in str(e), "ray start" in str(e), calls)
    """)
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=120, env=env, check=False)
    assert "ClusterError True True []" in out.stdout, out.stdout + out.stderr
    assert ClusterError.__mro__[1] is xai.errors.XaiError


def test_a_local_explain_never_imports_ray():
    script = textwrap.dedent("""
        import sys, numpy as np, xai
        xai.explain(lambda x: x[:, :1], np.ones((3, 4)), "occlusion", baseline=0.0,
                    progress=False)
        xai.explain(lambda x: x[:, :1], np.ones((3, 4)), "occlusion", baseline=0.0,
                    progress=False, backend="local")
        print("ray" in sys.modules)
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=120, check=False)
    assert out.stdout.strip() == "False", out.stdout + out.stderr


@pytest.mark.parametrize("name, options", [
    ("deletion", {}), ("insertion", {}), ("faithfulness-correlation", {"n_subsets": 20}),
    ("infidelity", {})])
def test_row_metrics_equal_a_local_run(cluster, monkeypatch, name, options):
    X, B, _ = _tabular()
    model = _mlp()
    expl = xai.explain(model, X, "kernelshap", background=B, seed=0, budget=600,
                       progress=False)
    metric = xai.registry.get("metric", name)(**options)
    local = metric(model, X, expl, seed=7, progress=False)
    monkeypatch.setattr(ray_explain, "MIN_TASK_ROWS", 9)  # five blocks, the last of 4 rows
    remote = metric(model, X, expl, seed=7, progress=False, backend="ray", workers=2)
    assert np.array_equal(local.per_sample, remote.per_sample, equal_nan=True)
    assert (local.aggregate, local.se, local.n_nan) == (remote.aggregate, remote.se,
                                                       remote.n_nan)
    if local.curves is not None:
        assert np.array_equal(local.curves, remote.curves, equal_nan=True)
    assert remote.settings["backend"] == "ray"


@pytest.mark.parametrize("name", ["max-sensitivity", "avg-sensitivity", "local-lipschitz"])
@pytest.mark.parametrize("method, options", [("occlusion", {}),
                                             ("kernelshap", {"budget": 300, "seed": 3})])
def test_re_explaining_metrics_split_over_ray_equal_a_local_run(cluster, monkeypatch, name,
                                                                method, options):
    X, B, _ = _tabular(n=20)
    model = _mlp()
    expl = xai.explain(model, X, method, background=B, progress=False, **options)
    def explainer(m, Z):
        return xai.explain(m, Z, method, background=B, progress=False, **options)

    metric = xai.registry.get("metric", name)(n_samples=4)
    local = metric(model, X, expl, seed=7, explainer=explainer, progress=False)
    monkeypatch.setattr(ray_explain, "MIN_TASK_ROWS", 6)  # blocks of 6, 6, 6 and 2 rows
    remote = metric(model, X, expl, seed=7, explainer=explainer, progress=False,
                    backend="ray", workers=2)
    # the radius comes from the range of all 20 rows, not of each block's
    assert remote.extras["radius"] == local.extras["radius"]
    assert np.array_equal(local.per_sample, remote.per_sample, equal_nan=True)
    assert (local.aggregate, local.se) == (remote.aggregate, remote.se)
    # each of the 3 further explainer calls evaluates the empty coalition (at most one model
    # row per background row) once more
    assert 0 <= remote.evaluations - local.evaluations <= 3 * len(B)
    # the RMS of the reference explanations' standard errors (zero for occlusion)
    assert remote.extras["explainer_se"] == pytest.approx(local.extras["explainer_se"],
                                                          rel=1e-12)
    assert remote.settings["explainer_se"] == remote.extras["explainer_se"]


@pytest.mark.parametrize("name", ["relative-input-stability", "relative-output-stability",
                                  "relative-representation-stability"])
def test_relative_stabilities_split_over_ray_equal_a_local_run(cluster, monkeypatch, name):
    X, B, _ = _tabular(n=20)
    model = _mlp()
    expl = xai.explain(model, X, "kernelshap", background=B, budget=300, seed=3,
                       progress=False)

    def explainer(m, Z):
        return xai.explain(m, Z, "kernelshap", background=B, budget=300, seed=3,
                           progress=False)

    metric = xai.registry.get("metric", name)(n_samples=4, sigma=0.02)
    local = metric(model, X, expl, seed=7, explainer=explainer, progress=False)
    monkeypatch.setattr(ray_explain, "MIN_TASK_ROWS", 6)  # blocks of 6, 6, 6 and 2 rows
    remote = metric(model, X, expl, seed=7, explainer=explainer, progress=False,
                    backend="ray", workers=2)
    assert np.array_equal(local.per_sample, remote.per_sample, equal_nan=True)
    assert (local.aggregate, local.se, local.n_nan) == (remote.aggregate, remote.se,
                                                       remote.n_nan)
    for key in ("n_valid_draws", "ratios"):  # per-row extras, joined in row order
        assert np.array_equal(local.extras[key], remote.extras[key], equal_nan=True)


def test_a_metric_whose_result_is_not_per_row_refuses_the_ray_backend():
    X, _, _ = _tabular()
    metric = xai.registry.get("metric", "sparseness")()
    with pytest.raises(xai.errors.OptionError, match="backend='local'"):
        metric(None, X, np.abs(X), backend="ray")


class _Probe(torch.nn.Module):
    """Outputs its process's torch threads * 1000 + xai's memory cap in MiB."""

    def forward(self, x):
        from xai.config import config

        value = torch.get_num_threads() * 1000 + config.memory_cap / 2**20
        return torch.full((len(x), 1), float(value))


def test_a_task_has_torch_threads_from_its_cpus_and_the_drivers_memory_cap(cluster,
                                                                           monkeypatch):
    from xai import ray_backend
    from xai.config import config

    X, _, _ = _tabular(n=8)
    monkeypatch.setattr(config, "_memory_cap", 64 * 2**20)
    expl = xai.explain(_Probe(), X, "occlusion", baseline=0.0, backend="ray", num_cpus=2,
                       progress=False)
    assert np.all(expl.base_values == 2064.0)
    assert ray_backend.task_options(device="cuda:0")["num_gpus"] == 1.0
    assert ray_backend.task_options(device="cpu")["num_gpus"] == 0.0


@pytest.mark.parametrize("method, options, message", [
    ("kernelshap", {"device": "cuda:1", "num_gpus": 1}, "sees 1 GPU.*pass device='cuda'"),
    ("kernelshap", {"device": "cuda", "num_gpus": 0}, "holds num_gpus=0"),
    ("kernelshap", {"device": "tpu"}, "device='tpu' is not a torch device name"),
    ("kernelshap", {"device": 3}, "device=3 is not a device"),
])
def test_a_device_no_task_could_use_is_refused_before_any_task(cluster, method, options,
                                                              message):
    X, B, _ = _tabular()
    _Counting.calls = 0
    with pytest.raises(OptionError, match=message):
        xai.explain(_Counting(), X, method, background=B, progress=False, backend="ray",
                    **options)
    assert _Counting.calls == 0


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal of a missing GPU")
def test_a_dataset_game_needs_the_device_in_this_process_too(cluster):
    X, _, y = _tabular()
    pipe = _mlp()
    with pytest.raises(OptionError, match="builds its game in this process.*CUDA GPU"):
        xai.explain(pipe, X, "permutation-importance", y=y, progress=False, backend="ray",
                    device="cuda")


def test_tasks_the_cluster_cannot_hold_are_refused_instead_of_waiting_forever(cluster):
    X, B, _ = _tabular()
    _Counting.calls = 0
    with pytest.raises(ClusterError, match="num_gpus=1.*0 GPUs"):
        xai.explain(_Counting(), X, "kernelshap", background=B, progress=False,
                    backend="ray", num_gpus=1)
    with pytest.raises(ClusterError, match="num_cpus=64"):
        xai.explain(_Counting(), X, "kernelshap", background=B, progress=False,
                    backend="ray", num_cpus=64)
    assert _Counting.calls == 0


def _square(i: int) -> int:
    return i * i


def test_the_next_task_starts_before_the_caller_handles_a_result(cluster):
    from xai.ray_backend import as_completed

    square = cluster.remote(num_cpus=1)(_square)
    events = []

    def submit(i):
        events.append(("submit", i))
        return square.remote(i)

    results = {}
    for index, value in as_completed(submit, [3, 4, 5], workers=1):
        events.append(("handled", index))
        results[index] = value
    assert results == {0: 9, 1: 16, 2: 25}
    # one task in flight at a time, and each next one submitted before its predecessor's
    # result reaches the caller (which may spend a while writing it)
    assert events == [("submit", 3), ("submit", 4), ("handled", 0), ("submit", 5),
                      ("handled", 1), ("handled", 2)]
