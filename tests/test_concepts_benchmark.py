"""The synthetic concept benchmark (CRAFT / ACE on concept-primitives).

Thresholds come from calibration runs over seeds 0–4 (xai.concepts.benchmark defaults: CRAFT
n_concepts=8, patch_size=10, resize_crops=False; ACE patch_mode="in_place", n_clusters=15,
n_random=20, random_set_size=20, ranking by the game-based importance = Shapley
values of the target logit over the concepts present in each test image), n=3000,
16 epochs (at 8 epochs seeds 1 and 3 gave models that had not learnt dots: invalid runs).
Observed over seeds 0–4 (all five models valid):

* CRAFT aligned-concept purity 1.00 for every causal primitive and seed; primitive-level
  margin min 0.151 (seed 1, dots) .. max 0.635; the causal primitive ranks first for every
  output and seed at primitive level (top-1 concept: dots output, seed 1, is a stripes one).
* ACE (game, spread over labels by the pixels each concept removed) purity 1.00; margin
  min 0.147 (seed 1, dots) .. max 0.902 on seeds 0–2 — every causal primitive first.
* ACE ranked by TCAV (significant positive concepts, reported as ``tcav_margin``): fails on
  seed 0 for the checker output (margin −0.10: the checker logit is as sensitive to the dots
  direction as to checker, TCAV 1.0 for both) — TCAV measures directional sensitivity, not
  the effect of removing a concept; it ranks correctly on seeds 1, 2 and 4.
The ranking tests run on seeds 0, 1 and 2.
"""

import dataclasses

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("skimage")
pytest.importorskip("sklearn")

from xai.concepts import benchmark as B

SEED, SEEDS, N, EPOCHS = 0, (0, 1, 2), 3000, B.EPOCHS
PURITY_MIN = 0.8  # observed 1.00 (CRAFT and ACE) for every seed; a majority needs > 0.5
CRAFT_MARGIN_MIN = 0.08  # observed 0.151 (seed 1, dots) .. 0.635
ACE_MARGIN_MIN = 0.07  # observed 0.147 (seed 1, dots) .. 0.902
TCAV_OK_SEEDS = (1, 2)  # TCAV ranking holds there (fails on seed 0, checker; see above)


@pytest.fixture(scope="module")
def cache():
    """The user cache (``XAI_CACHE_DIR``): the three models train once per machine."""
    from xai.concepts.primitives import default_cache_dir

    return default_cache_dir()


_PREPARED: dict = {}


def _prep(seed, cache):
    if seed not in _PREPARED:
        prep = B._prepare(seed, N, EPOCHS, cache)
        assert prep["valid"], (seed, prep["truth"])
        _PREPARED[seed] = prep
    return _PREPARED[seed]


@pytest.fixture(scope="module")
def prepared(cache):
    return _prep(SEED, cache)


def _check_ranking(table, margin_min, key="primitive_importance", margin="margin"):
    for row in table:
        pi = np.asarray(row[key])
        j = row["j"]
        others = np.delete(pi[:6], j)
        assert pi[j] > others.max(), (row["method"], row["output"], pi.tolist())
        assert row[margin] > margin_min, (row["method"], row["output"], row[margin])


@pytest.mark.slow  # multi-seed robustness: a CNN trained per seed
@pytest.mark.parametrize("seed", SEEDS)
def test_craft_ranks_and_aligns(seed, cache):
    res = B.run_concept_benchmark(seed, ["craft"], N, EPOCHS, _prepared=_prep(seed, cache),
                                  bench_options={"iou_images": 10})
    assert res["valid"] and len(res["table"]) == 3
    _check_ranking(res["table"], CRAFT_MARGIN_MIN)
    for row in res["table"]:
        assert row["purity"] > PURITY_MIN, (seed, row["output"], row["purity"])
        assert row["coverage"] == 1.0


@pytest.mark.slow  # multi-seed robustness: a CNN trained per seed
@pytest.mark.parametrize("seed", SEEDS)
def test_ace_ranks(seed, cache):
    res = B.run_concept_benchmark(seed, ["ace"], N, EPOCHS, _prepared=_prep(seed, cache))
    _check_ranking(res["table"], ACE_MARGIN_MIN)
    for row in res["table"]:
        assert row["purity"] > PURITY_MIN, (seed, row["output"], row["purity"])
        assert row["game_evaluations"] > 0
    if seed in TCAV_OK_SEEDS:  # the TCAV ranking, reported beside the game's
        _check_ranking(res["table"], 0.0, key="tcav_primitive_importance",
                       margin="tcav_margin")


def test_concepts_suite_is_registered_and_groups_every_score(tmp_path):
    from xai import registry
    from xai.bench.runner import load_components

    load_components()
    suite = registry.get("suite", "concepts")
    assert suite is B.CONCEPTS
    groups = suite.groups(suite, seeds=[0, 1], out=tmp_path)  # nothing is computed yet
    assert len(groups) == 2 * len(suite.methods) * 3  # seeds × methods × causal outputs
    assert all(set(g.keys) == set(B.SCORES) for g in groups)
    keys = [k for g in groups for k in g.keys.values()]
    assert len(set(keys)) == len(keys) == len(groups) * len(B.SCORES)
    craft = suite.groups(suite, methods=["craft"], seeds=[0], out=tmp_path)
    assert [g.row["output"] for g in craft] == ["stripes", "checker", "dots"]
    assert craft[0].keys == groups[0].keys  # a cell's key does not depend on the others run


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
    # the summary keeps the outputs apart: one table row per (method, output, score)
    table = xai.bench.summarise(out, figures=False, echo=False)
    assert len(table) == 3 * len(B.SCORES)
    assert set(table["output"]) == {"stripes", "checker", "dots"}
    assert "craft → dots" in (out / "results.md").read_text()
