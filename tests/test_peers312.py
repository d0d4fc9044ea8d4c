"""Problem 1's shapiq 1.8.0 peers (:mod:`benchmarks.performance.peers312`): the numpy MLP the
Python >= 3.12 worker explains equals the torch MLP, the worker's game counts every
coalition, and without a Python >= 3.12 the stored figures are printed, marked as stored.
The live run (a separate interpreter with shapiq 1.8.0) is a slow test, skipped unless its
environment has been built."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from benchmarks.performance import peers312, report
from benchmarks.performance.accuracy import run_accuracy
from benchmarks.performance.common import environment
from benchmarks.performance.peers312_worker import CountingGame, first_order, mlp_proba
from benchmarks.performance.problem import exact_shapley, load_problem


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return load_problem(5, epochs=30, cache_dir=tmp_path_factory.mktemp("models"))


def test_numpy_mlp_equals_the_torch_mlp(tiny):
    X = tiny.X_test[:4]
    assert peers312.model_gap(tiny, X) <= 1e-12
    Z = peers312.check_inputs(tiny, X)
    assert len(Z) == 4 + 64 + 1
    np.testing.assert_allclose(mlp_proba(peers312.numpy_weights(tiny.module), Z),
                               peers312.torch_proba(tiny, Z), rtol=0, atol=peers312.MODEL_TOLERANCE)


def test_worker_game_counts_every_coalition_and_masks_with_the_baseline(tiny):
    x = tiny.X_test[0]
    game = CountingGame(peers312.numpy_weights(tiny.module), x, tiny.mean)
    masks = np.array([[0, 0, 0, 0, 0], [1, 1, 1, 1, 1], [1, 0, 1, 0, 0]], dtype=bool)
    v = game(masks)
    assert game.rows == 3
    np.testing.assert_allclose(v, peers312.torch_proba(tiny, np.where(masks, x, tiny.mean)),
                               atol=1e-12)

    class IV:
        interaction_lookup = {(): 0, (0,): 1, (1,): 2, (0, 1): 3}  # noqa: RUF012
        values = np.array([9.0, 1.0, 2.0, 5.0])
    np.testing.assert_array_equal(first_order(IV(), 2), [1.0, 2.0])


def test_without_python312_the_stored_figures_are_printed(tiny, tmp_path, monkeypatch):
    monkeypatch.setattr(peers312, "find_python312", lambda: None)
    X = tiny.X_test[:2]
    results, why = peers312.run_peers(tiny, X, (256, 1024), [0], cache_dir=tmp_path)
    assert results == [] and "no Python >= 3.12" in why
    lines = []
    res = run_accuracy(d=5, n_points=2, budgets=(256, 1024), seeds=range(1), cache_dir=tmp_path,
                       only=[p.name for p in peers312.PEERS], log=lines.append)
    rows = res["rows"]
    assert len(rows) == len(peers312.PEERS) and all(r["budget"] == 1024 for r in rows)
    assert all(r["stored"] and peers312.STORED_MARK in r["contender"] for r in rows)
    msr = next(r for r in rows if "XGBoost" in r["contender"])
    assert (msr["error"], msr["seconds_per_point"]) == (0.0446, 0.285)
    assert any(peers312.STORED_MARK in line for line in lines)
    text = report.markdown_accuracy(res, environment())
    assert "stored (shapiq 1.8.0, 2026-12-07)" in text and "0.0446" in text


def test_stored_figures_cover_both_budgets_of_every_peer():
    rows = peers312.stored_rows((1024, 4096))
    assert len(rows) == 2 * len(peers312.PEERS)
    assert {r["budget"] for r in rows} == {1024, 4096}


def _built_environment() -> Path | None:
    """The cache folder of a built shapiq 1.8.0 environment: ``$XAI_PEERS312_CACHE`` or the
    benchmark's default output."""
    for folder in (os.environ.get("XAI_PEERS312_CACHE"), "results/performance/models"):
        if folder and (Path(folder) / f"peers312-shapiq-{peers312.SHAPIQ}" /
                       "installed.txt").exists():
            return Path(folder)
    return None


@pytest.mark.slow
@pytest.mark.skipif(_built_environment() is None,
                    reason="no shapiq 1.8.0 environment built (run problem 1 once)")
def test_live_peers_match_exact_values_when_the_budget_covers_every_coalition(tiny):
    """With a budget above ``2^d`` shapiq's estimators are exact: the values that come back
    from the other interpreter equal xai's exact Shapley values."""
    X = tiny.X_test[:2]
    only = [p.name for p in peers312.PEERS if p.cls in ("LeverageSHAP", "kADDSHAP")]
    results, why = peers312.run_peers(tiny, X, (1024,), [0], cache_dir=_built_environment(),
                                      only=only)
    assert why == "" and {r["name"] for r in results} == set(only)
    truth, _ = exact_shapley(tiny, X)
    for r in results:
        np.testing.assert_allclose(r["values"], truth, atol=1e-8)
        assert max(r["rows"]) <= 1024
