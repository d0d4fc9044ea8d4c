"""SPEC-concepts §5: the synthetic concept benchmark (CRAFT / ACE on concept-primitives).

Thresholds come from calibration runs (xai.concepts.benchmark defaults: CRAFT n_concepts=8,
patch_size=10, resize_crops=False; ACE patch_mode="in_place", n_clusters=15, n_random=10,
random_set_size=20, importance = TCAV score of significant positive clusters), n=3000,
8 epochs. Observed (seed 0, the fixed seed of these tests):

* CRAFT aligned-concept purity 1.00 / 1.00 / 1.00 (stripes / checker / dots); primitive-level
  margin 0.482 / 0.379 / 0.269 (ratio 4.9 / 4.8 / 2.9); background share 0.18–0.25;
  top-1 label correct for stripes and checker, not dots (a stripes concept ranks first).
* ACE cluster purity 1.00 / 1.00 / 1.00; margin 0.606 / 0.333 / 0.166 (ratio 4.1 / 2.0 / 1.6).
* Seed 2: CRAFT margins 0.511 / 0.523 / -0.081 (dots below stripes), purity 1.0 / 1.0 / 0.9;
  ACE found no significant stripes concept and ranked stripes over dots for `dots`.
  Seeds 1 and 3: model invalid at 8 epochs (dots not learnt) — the run is marked invalid.
So the ranking test is only guaranteed for seed 0 (the "dots has the smallest margin" pattern
holds for both methods there).
"""

import dataclasses

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("skimage")
pytest.importorskip("sklearn")

from xai.concepts import benchmark as B

SEED, N, EPOCHS = 0, 3000, 8
PURITY_MIN = 0.8  # observed 1.00 for every causal primitive (seed 0); spec: > 0.5
CRAFT_MARGIN_MIN = 0.10  # observed 0.269 (dots) .. 0.482
ACE_MARGIN_MIN = 0.05  # observed 0.166 (dots) .. 0.606


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("concepts-cache")


@pytest.fixture(scope="module")
def prepared(cache):
    prep = B._prepare(SEED, N, EPOCHS, cache)
    assert prep["valid"], prep["truth"]
    return prep


def _check_ranking(table, margin_min):
    for row in table:
        pi = np.asarray(row["primitive_importance"])
        j = row["j"]
        others = np.delete(pi[:6], j)
        assert pi[j] > others.max(), (row["method"], row["output"], pi.tolist())
        assert row["margin"] > margin_min, (row["method"], row["output"], row["margin"])


def test_craft_ranks_and_aligns(prepared):
    res = B.run_concept_benchmark(SEED, ["craft"], N, EPOCHS, _prepared=prepared,
                                  bench_options={"iou_images": 10})
    assert res["valid"] and len(res["table"]) == 3
    _check_ranking(res["table"], CRAFT_MARGIN_MIN)
    for row in res["table"]:
        assert row["purity"] > PURITY_MIN, (row["output"], row["purity"])
        assert row["coverage"] == 1.0


def test_ace_ranks(prepared):
    res = B.run_concept_benchmark(SEED, ["ace"], N, EPOCHS, _prepared=prepared)
    _check_ranking(res["table"], ACE_MARGIN_MIN)
    for row in res["table"]:
        assert row["purity"] > PURITY_MIN, (row["output"], row["purity"])


def test_suite_writes_rows_and_resumes(prepared, cache, tmp_path):
    import xai.bench
    from xai import registry
    from xai.bench.runner import load_components
    from xai.bench.store import read_rows

    load_components()
    suite = registry.get("suite", "concepts")
    tiny = dataclasses.replace(suite, params={
        "n": N, "epochs": EPOCHS, "cache_dir": str(cache),
        "bench_options": {"n_images": 20, "iou_images": 0}})
    out = tmp_path / "bench"
    frame = xai.bench.run(suite=tiny, methods="craft", seeds=[SEED], out=out, progress=False)
    rows = read_rows(out / "results.jsonl")
    assert len(rows) == 3 * len(B.SCORES) == len(frame)
    assert {r["status"] for r in rows} == {"ok"}
    assert {r["output"] for r in rows} == {"stripes", "checker", "dots"}
    assert len({r["key"] for r in rows}) == len(rows)
    xai.bench.run(suite=tiny, methods="craft", seeds=[SEED], out=out, progress=False)
    assert len(read_rows(out / "results.jsonl")) == len(rows)  # resumed: nothing rerun
