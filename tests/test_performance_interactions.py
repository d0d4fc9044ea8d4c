"""Problem 10 of the performance benchmark (pairwise interactions per evaluation): its truth
equals shapiq's exact computer, and a tiny run scores every contender on counted rows.

Tiny sizes only; no test asserts a time.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from benchmarks.performance import interactions as p10
from benchmarks.performance.problem import load_problem


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return load_problem(5, epochs=30, cache_dir=tmp_path_factory.mktemp("models"))


@pytest.mark.parametrize("index", ["k-SII", "FSII"])
def test_truth_equals_shapiq_exact_on_the_same_game(tiny, index):
    shapiq = pytest.importorskip("shapiq")
    X = tiny.X_test[:2]
    truth = p10.exact_interactions(tiny, X, index)
    i, j = np.triu_indices(tiny.d, 1)
    for r, x in enumerate(X):
        iv = shapiq.ExactComputer(lambda T, x=x: tiny.counter.proba_numpy(
            np.where(T, x, tiny.mean)), n_players=tiny.d)(index, order=2)
        look = iv.interaction_lookup
        want = [iv.values[look[(k,)]] for k in range(tiny.d)] + \
            [iv.values[look[(int(a), int(b))]] for a, b in zip(i, j)]
        np.testing.assert_allclose(truth[r], want, atol=1e-9)


def test_peers_count_the_rows_they_send(tiny):
    pytest.importorskip("shapiq")
    X = tiny.X_test[:2]
    for c in p10.contenders():
        tiny.counter.reset()
        est, se = c.run(tiny, X, 40, 0, c.indices[0])
        assert est.shape == (2, tiny.d + tiny.d * (tiny.d - 1) // 2)
        assert np.isfinite(est).all() and 0 < tiny.counter.rows <= 2 * 40
        assert (se is not None) == c.ours


def test_tiny_run_writes_a_row_per_contender_index_and_budget(tmp_path):
    pytest.importorskip("shapiq")
    from benchmarks.performance.__main__ import TINY, run

    res = run(tmp_path, sizes=TINY, problems=(10,), log=lambda *a: None)[10]
    saved = json.loads((tmp_path / "problem10.json").read_text())
    assert saved["rows"] == json.loads(json.dumps(res["rows"]))
    expected = {(c.name, index) for c in p10.contenders() for index in c.indices
                if index in p10.SIZES["tiny"]["indices"]}
    assert {(r["contender"], r["index"]) for r in res["rows"]} == expected
    assert all(r["status"] == "ok" and r["evaluations"] <= r["budget"] for r in res["rows"])
    ours = [r for r in res["rows"] if r["ours"]]
    assert all(0 <= r["coverage"] <= 1 for r in ours)
    assert {(v["index"], v["budget"]) for v in res["verdicts"]} == {
        (index, b) for index in p10.SIZES["tiny"]["indices"] for b in p10.SIZES["tiny"]["budgets"]}
    assert "best peer" in (tmp_path / "problem10.md").read_text()
