"""Problem 7 of the performance benchmark (scaling): row counts, the memory probe, outputs.

Tiny sizes only; no test asserts a time.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from benchmarks.performance.common import CountingModule
from benchmarks.performance.scaling import (
    SIZES,
    contenders,
    data,
    growth,
    memory_probe,
    mlp,
    run_problem,
)


def _run(name: str, d: int, n: int, budget: int) -> int:
    c = next(c for c in contenders() if c.name == name)
    counter = CountingModule(mlp(d))
    vals = c.run(counter, data(n, d), budget, 0)
    assert np.asarray(vals).shape == (n, d) and np.isfinite(vals).all()
    return counter.rows


@pytest.mark.parametrize(("d", "budget"), [(6, 32), (8, 64), (4, 64)])
def test_kernelshap_rows_follow_the_budget(d, budget):
    """KernelSHAP: v(D) once per row, v(∅) once for all rows (the baseline does not depend on
    x), and budget - 2 sampled coalitions per row (all 2^d - 2 when the budget covers them)."""
    n = 3
    middle = min(budget - 2, 2**d - 2)
    assert _run("xai KernelSHAP", d, n, budget) == n * (middle + 1) + 1


def test_permutation_and_peer_rows_stay_within_the_budget():
    d, n, budget = 8, 3, 96
    rows = _run("xai permutation", d, n, budget)
    # whole antithetic pairs of 2(d-1) coalitions; repeated prefixes are free
    assert n * (budget - 2 * (d - 1) - 2) <= rows <= n * budget
    n_perm = (budget - 1) // d
    assert _run("captum ShapleyValueSampling", d, n, budget) == n * (n_perm * d + 1)


def test_growth_reads_rises_not_falls():
    assert growth([4.0, 2.0, 1.0]) == 0.5
    assert growth([1.0, 2.0, 1.5]) == 2.0


@pytest.mark.parametrize("numpy_background", [False, True])
def test_memory_probe_tiny_run_stays_under_a_small_cap(numpy_background):
    m = SIZES["tiny"]["memory"]
    r = memory_probe(16, "rise", coalitions=4, image=m["image"], patch=m["patch"],
                     background=m["background"], numpy_background=numpy_background,
                     timeout_s=120)
    assert r["baseline_rss"] > 0 and r["ru_maxrss"] > 0
    assert r["cap_bytes"] == 16 * 2**20  # XAI_MEMORY_CAP reached the child
    assert r["evaluations"] == 1 + 4 * m["background"]  # v(∅) once, K rows per coalition
    assert r["values_finite"]
    assert 0 <= r["extra_peak_mib"] <= 16 and r["met"]


def test_run_problem_tiny_writes_outputs(tmp_path):
    res = run_problem(tmp_path, SIZES["tiny"], cache_dir=tmp_path / "models",
                      only=["xai KernelSHAP", "xai permutation", "captum ShapleyValueSampling"],
                      log=lambda *a: None)
    for f in ("problem7.json", "problem7.md", "problem7_d.png", "problem7_rows.png"):
        assert (tmp_path / f).exists(), f
    saved = json.loads((tmp_path / "problem7.json").read_text())
    assert saved["problem"] == 7
    for key, sizes in (("d_scaling", SIZES["tiny"]["ds"]), ("rows_scaling", SIZES["tiny"]["rows"])):
        ok = [r for r in saved[key] if r["status"] == "ok"]
        assert len(ok) == 3 * len(sizes)
        assert all(r["evaluations"] > 0 and r["floor_seconds"] > 0 for r in ok)
    assert [r["status"] for r in res["memory"]] == ["ok"]
    assert {t["contender"] for t in res["targets"]["d"]} == {"xai KernelSHAP", "xai permutation"}
    md = (tmp_path / "problem7.md").read_text()
    assert "## time vs d" in md and "## time vs rows" in md and "extra peak" in md
