"""Problems 5 and 6 of the performance benchmark: metrics against Quantus, SAGE and
permutation importance against sage-importance and scikit-learn.

Tiny sizes only; no test asserts a time.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

pytest.importorskip("quantus")
sage = pytest.importorskip("sage")

from benchmarks.performance import global_importance as G
from benchmarks.performance import metrics as PM
from benchmarks.performance.common import CountingModule
from xai.game import AUTO_DRAWS_PER_UNIT
from xai.models import call_padding

pytestmark = pytest.mark.filterwarnings("ignore")
ENV = {"date": "today", "machine": "m", "cpu": "c", "cpu_count": 1, "loadavg": [0.0],
       "python": "3", "git_commit": None,
       "versions": {k: None for k in ("torch", "shap", "captum", "shapiq")}}


@pytest.fixture(scope="module")
def metrics_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("metrics_run")
    res = PM.run_problem(out, PM.SIZES["tiny"], cache_dir=out / "models", log=lambda *a: None,
                         env=ENV)
    return out, res


@pytest.fixture(scope="module")
def importance_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("importance_run")
    res = G.run_problem(out, G.SIZES["tiny"], cache_dir=out / "models", log=lambda *a: None,
                        env=ENV)
    return out, res


def _row(res, metric, lib):
    return next(r for r in res["rows"] if r["metric"] == metric and r["contender"] == lib)


# ---- problem 5: metrics against Quantus ----------------------------------------------------

def test_metrics_benchmark_writes_json_and_md_with_one_row_per_contender(metrics_run):
    out, res = metrics_run
    data = json.loads((out / "problem5.json").read_text())
    md = (out / "problem5.md").read_text()
    assert data["problem"] == 5 and (out / "models").exists()
    for m in PM.METRICS:
        rows = [r for r in data["rows"] if r["metric"] == m]
        assert sorted(r["contender"] for r in rows) == ["quantus", "xai"]
        assert f"| {m} |" in md
    assert _row(res, "insertion", "quantus")["status"] == "not applicable"
    assert all(r["status"] == "ok" for r in res["rows"] if r["metric"] != "insertion")


def test_metrics_benchmark_deletion_evaluates_each_distinct_input_once(metrics_run, monkeypatch):
    """Ours evaluates v(full) per row, one v(empty) and, per row, each distinct interior input
    of the curve once: steps that remove only pixels already equal to the baseline repeat the
    previous input. The distinct inputs are counted here from a plain run that evaluates every
    step (inert features off), by their bytes."""
    from xai.game import Game

    out, res = metrics_run
    sz, n, d = PM.SIZES["tiny"], res["n"], res["features"]
    L = d // sz["step"]
    X_all, _, net = PM.load_image_problem(sz["size"], epochs=sz["epochs"],
                                          cache_dir=out / "models")
    X = X_all[1500:1500 + n]
    with torch.no_grad():
        y = net(torch.as_tensor(X)).argmax(1).numpy()
    A = PM.input_x_gradient(net, X, y)
    counter = CountingModule(net).eval()
    seen = []
    forward = counter.forward
    monkeypatch.setattr(counter, "forward", lambda x: (  # the rows asked about, no padding
        seen.append(x[:len(x) - call_padding()].clone()), forward(x))[1])
    monkeypatch.setattr(Game, "inert_features", lambda self, rows: None)
    PM._ours("deletion", counter, X, A, y, sz, 0.02)
    inputs = torch.cat(seen).numpy()
    assert len(inputs) == n * (L - 1) + n + 1  # the plain run: every step
    interior = inputs[n + 1:].reshape(n, L - 1, -1)  # after v(full) and v(empty), row-major
    distinct = sum(len({step.tobytes() for step in row}) for row in interior)
    assert distinct < n * (L - 1)  # the digits have black pixels: some steps repeat
    assert _row(res, "deletion", "xai")["rows_evaluated"] == n + 1 + distinct


def test_metrics_benchmark_counts_rows_of_each_contender(metrics_run):
    _, res = metrics_run
    sz, n, d = PM.SIZES["tiny"], res["n"], res["features"]
    L = d // sz["step"]
    # ours: v(full) per row + one v(empty) + the distinct interior inputs of each row (see
    # test_metrics_benchmark_deletion_evaluates_each_distinct_input_once), at most every
    # interior step
    assert _row(res, "deletion", "xai")["rows_evaluated"] <= n * (L - 1) + n + 1
    assert _row(res, "deletion", "quantus")["rows_evaluated"] == n * L
    # ours evaluates subsets (patch sequences) that differ only in black pixels once
    R = sz["n_subsets"]
    assert _row(res, "faithfulness-correlation", "quantus")["rows_evaluated"] == n * R + n
    assert _row(res, "faithfulness-correlation", "xai")["rows_evaluated"] <= n * R + n
    patches = (res["image_shape"][-1] // sz["patch"]) ** 2
    assert _row(res, "infidelity", "quantus")["rows_evaluated"] == n * (patches + 1)
    assert _row(res, "infidelity", "xai")["rows_evaluated"] <= n * (patches + 1)
    N = sz["n_samples"]
    # one explainer call on every row and its N copies, after one prediction of the explained
    # rows that checks the integer targets against the model's number of outputs
    assert _row(res, "max-sensitivity", "xai")["rows_evaluated"] == n * (N + 1) + n
    assert _row(res, "max-sensitivity", "xai")["model_calls"] == 2
    P = len(sz["percentages"])
    assert _row(res, "road", "xai")["rows_evaluated"] == n + P * n  # MoRF only, as Quantus
    assert _row(res, "road", "quantus")["rows_evaluated"] == P * n  # MoRF only


def test_metrics_benchmark_values_equal_quantus_where_definitions_agree(metrics_run):
    _, res = metrics_run
    agree = {m["metric"]: m["agreement"] for m in res["metrics"]}
    assert agree["deletion"]["max_abs_diff"] < 1e-5
    assert agree["faithfulness-correlation"]["max_abs_diff"] < 1e-4
    assert agree["infidelity"]["max_rel_diff"] < 1e-4
    assert agree["road"]["max_abs_diff"] == 0.0
    ms = agree["max-sensitivity"]
    assert ms["max_abs_diff"] is None and np.isfinite(ms["mean_ours"])


def test_metrics_benchmark_reports_the_explainer_bound_of_max_sensitivity(metrics_run):
    out, res = metrics_run
    ms = next(m for m in res["metrics"] if m["metric"] == "max-sensitivity")
    assert ms["explainer_seconds"] > 0
    assert ms["ratio_bound_by_explainer"] == pytest.approx(ms["quantus_seconds"]
                                                          / ms["explainer_seconds"])
    assert "max-sensitivity: the benchmark's input × gradient alone" in \
        (out / "problem5.md").read_text()
    assert all("explainer_seconds" not in m for m in res["metrics"] if m is not ms)


def test_metrics_benchmark_counting_module_sees_every_row_of_ours():
    X = np.random.default_rng(0).random((3, 1, 8, 8)).astype(np.float32)
    net = PM._cnn(8).eval()
    c = CountingModule(net)
    y = np.zeros(3, dtype=int)
    A = PM.input_x_gradient(net, X, y)
    res = PM._ours("deletion", c, X, A, y, PM.SIZES["tiny"], 0.02)
    assert c.rows == res.evaluations == 3 * (16 - 1) + 3 + 1


# ---- problem 6: SAGE and permutation importance against their peers ------------------------

def test_importance_benchmark_writes_json_and_md_with_one_row_per_contender(importance_run):
    out, res = importance_run
    data = json.loads((out / "problem6.json").read_text())
    md = (out / "problem6.md").read_text()
    names = sorted(r["contender"] for r in data["rows"])
    assert names == sorted(["xai sage", G.ALL_DRAWS, "sage-importance",
                            "xai permutation-importance", "sklearn permutation_importance"])
    for name in names:
        assert name in md
    assert set(res["summary"]) == {"SAGE", "PFI"}


def test_importance_benchmark_counts_pfi_rows(importance_run):
    _, res = importance_run
    sz = G.SIZES["tiny"]
    n, d, k = sz["n"], sz["d"], sz["n_repeats"]
    for r in res["rows"]:
        if r["task"] == "PFI":  # full rows + one permuted copy per feature and repeat
            assert r["rows_evaluated"] == n + n * d * k
        elif r["contender"] == "sage-importance":  # every coalition × all background rows
            assert r["rows_evaluated"] % sz["n_background"] == 0
        else:  # ours: full rows, the empty coalition once, then 2(d-1) coalitions per unit
            per = AUTO_DRAWS_PER_UNIT if r["contender"] == "xai sage" else sz["n_background"]
            assert (r["rows_evaluated"] - n - sz["n_background"]) % (2 * (d - 1) * per) == 0


def test_importance_benchmark_pfi_agrees_with_sklearn(importance_run):
    _, res = importance_run
    assert res["summary"]["PFI"]["max_abs_z"] < 5


@pytest.fixture(scope="module")
def orthogonal_linear():
    """Columns exactly uncorrelated and centred in the sample, background = the data: the
    dataset game is exactly additive and SAGE_i = w_i² Var_n(x_i) under squared loss."""
    rng = np.random.default_rng(7)
    n, d = 100, 3
    Q, _ = np.linalg.qr(np.column_stack([np.ones(n), rng.normal(size=(n, d))]))
    X = Q[:, 1:] * np.sqrt(n) * np.array([1.0, 0.7, 1.3])
    w = np.array([2.0, 1.0, -0.5])
    lin = torch.nn.Linear(d, 1).double()
    with torch.no_grad():
        lin.weight[:] = torch.as_tensor(w)[None]
        lin.bias[:] = 0.3
    lin.eval()
    return X, X @ w + 0.3, w, lin


def test_sage_of_ours_and_sage_importance_match_closed_form_on_linear(orthogonal_linear):
    X, y, w, lin = orthogonal_linear
    truth = w ** 2 * X.var(0)
    c = CountingModule(lin)
    ours, ours_se = G.ours_sage(c, X, y, X, 0.02, seed=0)
    theirs, theirs_se = G.sage_sage(c, X, y, X, 0.02, seed=0)
    assert np.all(np.abs(ours - truth) < 4 * ours_se + 1e-9), (ours, truth, ours_se)
    assert np.all(np.abs(theirs - truth) < 4 * theirs_se + 1e-9), (theirs, truth, theirs_se)
    np.testing.assert_allclose(ours, truth, rtol=0.1)
    np.testing.assert_allclose(theirs, truth, rtol=0.1)


def test_pfi_of_ours_and_sklearn_on_linear(orthogonal_linear):
    """In-sample permutations of a centred, uncorrelated column: expectation 2 w_i² Var_n."""
    X, y, w, lin = orthogonal_linear
    truth = 2 * w ** 2 * X.var(0)
    c = CountingModule(lin)
    for fn in (G.ours_pfi, G.sklearn_pfi):
        vals, se = fn(c, X, y, 30, seed=1)
        z = (vals - truth) / se
        assert np.all(np.abs(z) < 4), (fn.__name__, vals, truth, se)
