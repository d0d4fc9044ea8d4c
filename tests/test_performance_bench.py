"""The performance benchmark's own correctness: exact values, row counters, outputs.

Tiny sizes only; no test asserts a time.
"""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pytest
import torch

from benchmarks.performance.__main__ import TINY, run
from benchmarks.performance.contenders import contenders, shapley_from_interactions
from benchmarks.performance.problem import exact_shapley, load_problem
from xai.models import call_padding


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return load_problem(5, epochs=30, cache_dir=tmp_path_factory.mktemp("models"))


def _brute_force(problem, x):
    d = problem.d

    def v(S):
        z = problem.mean.copy()
        z[list(S)] = x[list(S)]
        with torch.no_grad():
            return torch.softmax(problem.module(torch.as_tensor(z[None])), -1)[0, 1].item()
    phi = np.zeros(d)
    for i in range(d):
        rest = [j for j in range(d) if j != i]
        for k in range(d):
            w = math.factorial(k) * math.factorial(d - k - 1) / math.factorial(d)
            for S in itertools.combinations(rest, k):
                phi[i] += w * (v(S + (i,)) - v(S))
    return phi


def test_exact_values_equal_brute_force(tiny):
    X = tiny.X_test[:3]
    vals, delta = exact_shapley(tiny, X)
    for x, got in zip(X, vals):
        np.testing.assert_allclose(got, _brute_force(tiny, x), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(vals.sum(1), delta, atol=1e-12)


def test_model_cache_round_trip(tmp_path):
    a = load_problem(5, epochs=5, cache_dir=tmp_path)
    assert len(list(tmp_path.glob("mlp_*.pt"))) == 1
    b = load_problem(5, epochs=5, cache_dir=tmp_path)
    for p, q in zip(a.module.parameters(), b.module.parameters()):
        assert torch.equal(p, q)


@pytest.mark.parametrize("name", [c.name for c in contenders()])
def test_counter_sees_every_row(tiny, name):
    """Every row any contender sends to the model passes through the shared counter (a forward
    hook on the bare MLP sees the same number, less the rows xai pads a call with), and
    nominal budgets are respected."""
    c = next(c for c in contenders() if c.name == name)
    seen = []
    h = tiny.module.register_forward_hook(
        lambda m, i, o: seen.append(i[0].shape[0] - call_padding()))
    try:
        tiny.counter.reset()
        budget = 40
        X = tiny.X_test[:2]
        vals, se = c.run(tiny, X, budget, 0)
    finally:
        h.remove()
    assert vals.shape == (2, tiny.d) and np.isfinite(vals).all()
    assert tiny.counter.rows == sum(seen) > 0
    per_point = tiny.counter.rows / len(X)
    assert per_point <= budget + 2, (name, per_point)  # shap Kernel: + the point and E[f]
    if se is not None:
        assert se.shape == vals.shape


def test_shapiq_first_order_values():
    class IV:
        interaction_lookup = {(): 0, (0,): 1, (1,): 2, (0, 1): 3}  # noqa: RUF012
        values = np.array([9.0, 1.0, 2.0, 5.0])
    np.testing.assert_array_equal(shapley_from_interactions(IV(), 2), [1.0, 2.0])


def test_quick_run_writes_outputs(tmp_path):
    only = ["xai KernelSHAP", "xai permutation", "shap Kernel (l1_reg=False)",
            "shapiq KernelSHAP (paired)", "xai LIME"]
    res = run(tmp_path, sizes=TINY, only=only, log=lambda *a: None)
    for f in ("environment.json", "problem1.json", "problem1.md", "problem1.png",
              "problem2.json", "problem2.md", "models"):
        assert (tmp_path / f).exists(), f
    p1 = json.loads((tmp_path / "problem1.json").read_text())
    # problem 1 scores Shapley estimators; the LIME preset is listed there with why
    assert {r["contender"] for r in p1["rows"]} == set(only) - {"xai LIME"}
    assert "not Shapley values" in p1["not_applicable"]["xai LIME"]
    assert all(r["status"] == "ok" for r in p1["rows"])
    ours = next(r for r in p1["rows"] if r["contender"] == "xai KernelSHAP")
    assert ours["efficiency_gap"] < 1e-9 and 0 <= ours["coverage"] <= 1
    assert p1["targets"] and "ratio" in p1["targets"][0]
    assert "ratio to best peer" in (tmp_path / "problem1.md").read_text()
    p2 = json.loads((tmp_path / "problem2.json").read_text())
    assert all(r["status"] == "ok" and r["ratio_to_floor"] > 0 for r in p2["rows"])
    assert {r["contender"]: r["estimand"] for r in p2["rows"]}["xai LIME"] == "lime"
    assert set(res) == {1, 2}


def test_xai_bench_suite_performance_forwards_to_the_benchmark(monkeypatch, tmp_path):
    from benchmarks.performance import __main__ as perf
    from xai import cli

    seen = []
    monkeypatch.setattr(perf, "main", lambda argv: seen.append(argv))
    assert cli.main(["bench", "--suite", "performance", "--quick", "--out", str(tmp_path),
                     "--problems", "1,2", "--methods", "xai KernelSHAP"]) == 0
    assert seen == [["--out", str(tmp_path), "--quick", "--only", "xai KernelSHAP",
                     "--problems", "1,2"]]


def test_the_estimator_problem_times_ours_the_bare_model_and_shap_on_the_same_rows(tmp_path):
    res = run(tmp_path, sizes=TINY, problems=(8,), log=lambda *a: None)[8]
    # one explained row: the full coalition, then 64 coalitions x 10 background rows at most
    assert 0 < res["evaluations"] <= 1 + 64 * 10
    assert res["ratio"] == res["ours_seconds"] / res["bare_seconds"]
    assert res["shap"] is not None and res["shap"]["ratio"] > 0
    text = (tmp_path / "problem8.md").read_text()
    assert "bare predict_proba" in text and "shap KernelExplainer" in text
