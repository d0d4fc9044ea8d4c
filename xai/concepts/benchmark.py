"""The synthetic concept benchmark: ``concept-primitives`` × a small CNN trained on it ×
CRAFT / ACE, scored by :mod:`xai.concepts.scoring`.

:func:`run_concept_benchmark` generates the data, trains (or loads) the model, checks the model
truth first (:func:`~xai.concepts.primitives.intervention_truth`,
:func:`~xai.concepts.primitives.model_valid`; an invalid model marks the run *invalid*, not
failed) and, for each causal output ``j`` (stripes, checker, dots):

* **CRAFT** is fitted on test images containing primitive ``j``; every crop gets the label with
  the largest pixel share (:func:`~xai.concepts.scoring.crop_labels`); a concept's purity is
  the share of its top-k crops (largest coefficients) with its majority label; the
  primitive-level importance spreads the concept importances over labels by mass share.
* **ACE** is fitted on test images containing ``j`` (discovery and TCAV test images are
  disjoint), random counterparts are validation/test images *without* ``j``; a segment's label
  is its majority pixel label, a cluster's purity the share of its kept members with the
  cluster's majority label, and a cluster's importance goes to that label (one-hot "mass").
  A concept's importance for the ranking is, by default (``ace_importance="game"``), its
  game-based importance of the concept game (Fel et al. 2023) (:meth:`~xai.concepts.ace.ACE.importance`:
  exact / auto Shapley values of the target logit over the concepts present in each TCAV
  test image, concepts removed by filling their segments; mean over images), spread over
  labels by what each concept removed (:func:`removed_mass`). TCAV is
  reported beside it (``tcav_margin``, ``tcav_top1_ok``: a concept's TCAV score when it is
  significant with a positive direction, 0 otherwise — ``ace_importance="significant"``
  makes that the ranking). TCAV measures directional sensitivity, not the effect of removing
  a concept: on seed 0 the checker output is as sensitive to the dots direction as to the
  checker one (TCAV 1.0 for both), although removing dots barely moves it; TCAV scores of
  unrelated concepts sit near ½, not 0, so summing raw scores rewards the label with the
  most clusters (the background).

Scores per (method, output) row: ``purity`` (of the concept aligned with the causal primitive:
the purest concept labelled ``j``, NaN if none), ``top1_purity``, ``coverage`` (of the causal
primitive: 1 if a concept labelled ``j`` has purity > ``purity_threshold``), ``top1_label`` /
``top1_ok``, ``margin`` / ``margin_ok`` (causal minus the best distractor, normalised, at
primitive level), ``primitive_ratio``, ``background_share``, ``specificity``, ``spearman``
(with the intervention truth; informative only), ``iou`` (map alignment of the aligned concept
with ``j``'s footprint), ``seconds``.

The ``concepts`` suite (:data:`CONCEPTS`, ``xai bench --suite concepts``) is run by the
benchmark runner like every suite: :func:`concept_groups` gives one group of cells per (seed,
method, output), whose one computation scores them all; the runner writes one
``results.jsonl`` row per (seed, method, output, score) with its keys and semantics
(appended, flushed and fsynced; rows whose last status is ``ok`` / ``skipped`` are not
recomputed on resume; an invalid model gives ``skipped`` rows with ``valid: false``).
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..bench.store import spec_key
from ..bench.suites import CellGroup, GroupResult, Suite
from ..progress import Progress
from ..registry import register
from . import primitives as P
from . import scoring as S

__all__ = ["ACE_DEFAULTS", "CONCEPTS", "CRAFT_DEFAULTS", "SCORES", "concept_groups",
           "run_concept_benchmark"]

#: CRAFT options of the benchmark (calibrated on seeds 0–4 at 16 epochs, see the tests).
CRAFT_DEFAULTS: dict[str, Any] = {"n_concepts": 8, "patch_size": 10, "resize_crops": False}
#: ACE options of the benchmark (``in_place`` patches: the CNN is fixed-scale).
ACE_DEFAULTS: dict[str, Any] = {"patch_mode": "in_place", "resolutions": (15, 50, 80),
                                "n_clusters": 15, "min_cluster_size": 10, "max_members": 30,
                                "n_random": 20, "random_set_size": 20, "min_images": 10}
#: Benchmark-level settings (not explainer options).
BENCH_DEFAULTS: dict[str, Any] = {"n_images": 60, "ace_images": 40, "ace_test_images": 40,
                                  "top_k": 10, "purity_threshold": 0.5,
                                  "ace_importance": "game", "ace_game_summary": "shapley", "iou_quantile": 0.9,
                                  "iou_images": 30}
#: Score names written to ``results.jsonl`` (one row each per method and output).
SCORES = ("purity", "top1_purity", "coverage", "top1_ok", "margin", "primitive_ratio",
          "background_share", "specificity", "spearman", "iou", "tcav_margin", "tcav_top1_ok",
          "seconds")
#: Training epochs of the benchmark's model (8 left seeds 1 and 3 without the dots output learnt).
EPOCHS = 16
_DIRECTION = {"background_share": "lower", "seconds": "lower", "spearman": "diagnostic"}


def _rows_with(data, rows: np.ndarray, j: int, present: bool) -> np.ndarray:
    rows = np.asarray(rows)
    return rows[(np.asarray(data.y)[rows, j] == 1) == present]


def _prepare(seed: int, n: int, epochs: int, cache_dir) -> dict:
    data = P.make(seed, n=n)
    model, info = P.train_primitives_model(data, seed, cache_dir=cache_dir, epochs=epochs)
    truth = P.intervention_truth(model, data)
    return {"data": data, "model": model, "model_info": info, "truth": truth,
            "valid": bool(P.model_valid(truth))}


def _ranking(importance, mass, labels, j: int, truth_row) -> dict:
    others = [c for c in range(len(P.CAUSAL)) if c != j]
    rep = S.ranking_report(importance, mass, labels, causal=j,
                           distractors=[d for d in range(len(P.PRIMITIVES)) if d != j],
                           background=P.BACKGROUND, other_causal=others, truth=truth_row)
    return rep


def _aligned(purity: np.ndarray, labels: np.ndarray, j: int) -> int | None:
    """Index of the purest concept labelled ``j`` (None if none)."""
    cand = np.flatnonzero(np.asarray(labels) == j)
    if cand.size == 0:
        return None
    return int(cand[np.argmax(np.asarray(purity)[cand])])


def score_craft(model, data, j: int, rows: np.ndarray, options: dict, bench: dict,
                truth_row) -> dict:
    from .craft import CRAFT

    X = np.asarray(data.X)[rows]
    t0 = time.perf_counter()
    # the benchmark's own bar counts the explainers: none inside them
    craft = CRAFT(model, layer=P.SPLIT_LAYER, **{"target": j, "progress": False, **options})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expl = craft.fit(X)
    seconds = time.perf_counter() - t0
    U = np.asarray(expl.crop_coefficients, float)
    boxes = np.asarray(expl.crop_boxes)
    lmaps = np.asarray(data.extras["label_map"])[rows]
    crop_lab = S.crop_labels(lmaps, boxes[:, 0], boxes[:, 1:5])
    top = S.top_k_labels(U, crop_lab, k=int(bench["top_k"]))
    purity, labels = S.purities(top)
    mass = S.mass_share(U, crop_lab, len(P.LABEL_NAMES))
    imp = np.asarray(expl.importance, float)
    rep = _ranking(imp, mass, labels, j, truth_row)
    a = _aligned(purity, labels, j)
    iou = float("nan")
    if a is not None and bench.get("iou_images"):
        m = min(len(rows), int(bench["iou_images"]))
        maps = craft.attribution_maps(X[:m], concepts=[a])[:, 0]
        iou = S.map_alignment_iou(maps, lmaps[:m] == j, quantile=float(bench["iou_quantile"]))
    top1 = int(np.argmax(imp))
    return {"purity": float(purity[a]) if a is not None else float("nan"),
            "top1_purity": float(purity[top1]),
            "coverage": S.coverage(purity, labels, float(bench["purity_threshold"]), [j]),
            "iou": iou, "seconds": seconds, "n_concepts": len(imp),
            "n_images": len(rows), "concept_labels": labels.tolist(),
            "concept_purity": purity.round(4).tolist(), "importance": imp.round(6).tolist(),
            **rep}


def removed_mass(values: np.ndarray, segmentation: np.ndarray, label_maps: np.ndarray,
                 fallback: np.ndarray) -> np.ndarray:
    """Mass share ``(r, L)`` of each concept over pixel labels, from the pixels the game
    removed: ``Σ_i |v_ic| · share_icl / Σ_i |v_ic|`` with ``share_icl`` the fraction of
    concept ``c``'s pixels in image ``i`` labelled ``l``; rows of concepts that never moved
    the output keep ``fallback`` (the cluster's one-hot label)."""
    values = np.abs(np.asarray(values, float))
    n, r = values.shape
    L = fallback.shape[1]
    num = np.zeros((r, L))
    for i in range(n):
        seg, lab = np.asarray(segmentation[i]), np.asarray(label_maps[i])
        for c in np.flatnonzero(values[i] > 0):
            px = lab[seg == c]
            if px.size:
                num[c] += values[i, c] * np.bincount(px, minlength=L)[:L] / px.size
    den = num.sum(1, keepdims=True)
    return np.where(den > 0, num / np.where(den > 0, den, 1), fallback)


def score_ace(model, data, j: int, rows: np.ndarray, test_rows: np.ndarray,
              random_rows: np.ndarray, options: dict, bench: dict, truth_row) -> dict:
    from .ace import ACE

    X = np.asarray(data.X)
    t0 = time.perf_counter()
    ace = ACE(model, P.SPLIT_LAYER, **{"seed": 0, "progress": False, **options})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expl = ace.fit(X[rows], j, random_images=X[random_rows], test_images=X[test_rows])
    seconds = time.perf_counter() - t0
    lmaps = np.asarray(data.extras["label_map"])[rows]
    seg_lab = np.array([S.segment_label(lmaps[i], m)
                        for i, m in zip(ace.patch_images_, ace.patch_masks_, strict=True)])
    purity, labels = [], []
    for mem in ace.members_:
        p, lab = S.ace_cluster_purity(seg_lab[mem])
        purity.append(p)
        labels.append(lab)
    purity, labels = np.asarray(purity), np.asarray(labels, np.int64)
    ex = expl.extras
    tcav_mean = np.asarray(ex["importance"], float)
    significant = np.asarray(ex["significant"], bool) & (np.asarray(ex["direction"]) > 0)
    tcav_imp = np.where(significant, np.nan_to_num(tcav_mean), 0.0)
    mass = np.eye(len(P.LABEL_NAMES))[labels]  # a cluster's importance goes to its label
    tcav_rep = _ranking(tcav_imp, mass, labels, j, truth_row)
    rule = bench.get("ace_importance", "game")
    game = None
    if rule == "game":
        t1 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            game = ace.importance(X[test_rows], bench.get("ace_game_summary", "shapley"),
                                  seed=0)
        seconds += time.perf_counter() - t1
        imp = np.asarray(game.extras["importance"], float)
        # what each concept removed: its pixels' labels in the test images, weighted by the
        # effect of the removal (a coarse "checker" segment that also covers a dots pattern
        # passes part of its importance to dots)
        mass = removed_mass(game.values, game.extras["segmentation"],
                            np.asarray(data.extras["label_map"])[test_rows], mass)
    elif rule == "significant":
        imp = tcav_imp
    elif rule == "excess":  # over the random-vs-random null
        imp = np.clip(np.nan_to_num(tcav_mean - np.asarray(ex["tcav_null_mean"], float)), 0,
                      None)
    else:
        imp = np.nan_to_num(tcav_mean)
    rep = _ranking(imp, mass, labels, j, truth_row)
    rep.update({"tcav_margin": tcav_rep["margin"], "tcav_top1_ok": tcav_rep["top1_ok"],
                "tcav_primitive_importance": tcav_rep["primitive_importance"]})
    if game is not None:
        rep["game_evaluations"] = int(game.evaluations)
    a = _aligned(purity, labels, j)
    top1 = int(np.argmax(imp))
    return {"purity": float(purity[a]) if a is not None else float("nan"),
            "top1_purity": float(purity[top1]),
            "coverage": S.coverage(purity, labels, float(bench["purity_threshold"]), [j]),
            "iou": float("nan"), "seconds": seconds, "n_concepts": len(imp),
            "n_images": len(rows), "concept_labels": labels.tolist(),
            "concept_purity": purity.round(4).tolist(), "importance": imp.round(6).tolist(),
            "tcav": np.round(tcav_mean, 4).tolist(),
            "significant": np.asarray(ex["significant"], bool).tolist(), **rep}


def run_concept_benchmark(seed: int = 0, methods: Sequence[str] = ("craft", "ace"),
                          n: int = 3000, epochs: int = EPOCHS, cache_dir=None,
                          craft_options: dict | None = None, ace_options: dict | None = None,
                          bench_options: dict | None = None, outputs: Sequence[int] | None = None,
                          progress: bool | str = "auto", _prepared: dict | None = None) -> dict:
    """Run the concept benchmark for one seed; returns ``{"seed", "valid", "truth", "model_info",
    "settings", "table"}`` where ``table`` is a list of dicts, one per (method, output) with
    the scores of the module docstring. An invalid model (``model_valid`` false) gives
    ``valid: False`` and an empty table: the explainers are not run. ``progress``: a bar over
    the (method, output) runs (``True``, ``False`` or ``"auto"``)."""
    craft_opts = {**CRAFT_DEFAULTS, **(craft_options or {})}
    ace_opts = {**ACE_DEFAULTS, **(ace_options or {})}
    bench = {**BENCH_DEFAULTS, **(bench_options or {})}
    prep = _prepared or _prepare(seed, n, epochs, cache_dir)
    data, model, truth = prep["data"], prep["model"], prep["truth"]
    info = {k: v for k, v in prep["model_info"].items() if k != "key_content"}
    out = {"seed": int(seed), "valid": prep["valid"], "truth": np.round(truth, 4).tolist(),
           "model_info": info, "table": [],
           "settings": {"n": n, "epochs": epochs, "craft": craft_opts, "ace": ace_opts,
                        "bench": bench}}
    if not prep["valid"]:
        return out
    test = np.asarray(data.test)
    pool = np.concatenate([np.asarray(data.val), test])
    outputs = range(len(P.CAUSAL)) if outputs is None else outputs
    runs = [(method, j) for method in methods for j in outputs]
    with Progress(f"xai concepts seed {seed}", total=len(runs), unit="runs",
                  enabled=progress) as bar:
        for method, j in runs:
            with_j = _rows_with(data, test, j, True)
            if method == "craft":
                res = score_craft(model, data, j, with_j[:int(bench["n_images"])], craft_opts,
                                  bench, truth[j])
            elif method == "ace":
                a, b = int(bench["ace_images"]), int(bench["ace_test_images"])
                res = score_ace(model, data, j, with_j[:a], with_j[a:a + b],
                                _rows_with(data, pool, j, False), ace_opts, bench, truth[j])
            else:
                raise ValueError(f"unknown method {method!r}; expected 'craft' or 'ace'")
            out["table"].append({"method": method, "output": P.CAUSAL[j], "j": j, **res})
            bar.update(1)
    return out


# ---------------------------------------------------------------- the suite

def concept_groups(suite: Suite, methods: Sequence[str] | None = None,
                   seeds: Sequence[int] = (0,), out: str | Path = "bench-results"
                   ) -> list[CellGroup]:
    """The cells of the ``concepts`` suite, one :class:`~xai.bench.suites.CellGroup` per
    (seed, method, output) whose computation gives every score of :data:`SCORES`; run by
    :func:`xai.bench.run`.

    ``suite.params`` may set ``n``, ``epochs``, ``craft_options``, ``ace_options``,
    ``bench_options`` and ``cache_dir`` (default ``out/models``)."""
    p = {"n": 3000, "epochs": EPOCHS, **(suite.params or {})}
    settings = {"n": int(p["n"]), "epochs": int(p["epochs"]),
                "cache_dir": p.get("cache_dir") or Path(out) / "models",
                "craft": {**CRAFT_DEFAULTS, **(p.get("craft_options") or {})},
                "ace": {**ACE_DEFAULTS, **(p.get("ace_options") or {})},
                "bench": {**BENCH_DEFAULTS, **(p.get("bench_options") or {})}}
    prepared: dict[int, dict] = {}  # the current seed's data and model, made on first need
    return [_group(suite.name, int(seed), method, j, settings, prepared)
            for seed in seeds for method in (methods or suite.methods)
            for j in range(len(P.CAUSAL))]


def _group(suite: str, seed: int, method: str, j: int, settings: dict, prepared: dict
           ) -> CellGroup:
    """The cells of one (seed, method, output ``j``): their keys, shared row fields and the
    computation that scores them."""
    model_params = {"arch": P.ARCH, "epochs": settings["epochs"]}
    spec = {"suite": suite, "dataset": P.NAME, "dataset_params": {"n": settings["n"]},
            "seed": seed, "model": "cnn", "model_params": model_params, "method": method,
            "method_options": settings[method], "bench_options": settings["bench"],
            "output": P.CAUSAL[j]}
    row = {"suite": suite, "dataset": P.NAME, "dataset_base": P.NAME,
           "dataset_params": spec["dataset_params"], "data_seed": seed, "model": "cnn",
           "model_params": model_params, "method": method,
           "method_options": settings[method], "metric_options": settings["bench"],
           "seed": seed, "output": P.CAUSAL[j], "n_explain": None, "target": j, "se": None,
           "valid": None}

    def compute() -> GroupResult:
        if seed not in prepared:  # one seed's data and model in memory at a time
            prepared.clear()
            prepared[seed] = _prepare(seed, settings["n"], settings["epochs"],
                                      settings["cache_dir"])
        return _score_group(prepared[seed], seed, method, j, settings)

    return CellGroup(keys={m: spec_key({**spec, "metric": m}) for m in SCORES}, row=row,
                     compute=compute, directions=_DIRECTION,
                     label=f"seed={seed} {method} {P.CAUSAL[j]}")


def _score_group(prep: dict, seed: int, method: str, j: int, settings: dict) -> GroupResult:
    """Every score of one (seed, method, output ``j``); ``skipped`` rows when the model is
    invalid (the explainer is not to blame)."""
    if not prep["valid"]:
        return GroupResult("skipped", fields={
            "valid": False, "reason": "model invalid: it does not rely mainly on the causal "
                                      "primitives (model truth); the explainer is not to blame"})
    res = run_concept_benchmark(seed, [method], settings["n"], settings["epochs"],
                                craft_options=settings["craft"], ace_options=settings["ace"],
                                bench_options=settings["bench"], outputs=[j],
                                progress=False, _prepared=prep)["table"][0]
    values = {m: float(v) if isinstance(v, bool | np.bool_) else v
              for m, v in ((m, res.get(m)) for m in SCORES)}
    extras = {"top1_ok": {"top1_label": res["top1_label"], "margin": res["margin"]},
              "margin": {"primitive_importance": res["primitive_importance"]}}
    return GroupResult("ok", values, fields={"valid": True}, extras=extras,
                       seconds=res["seconds"])


CONCEPTS = Suite(
    name="concepts",
    description="concept-primitives (a small CNN, split at 'g') × CRAFT / ACE; "
                "purity, coverage, IoU, top-1, margin, primitive ratio, background share, "
                "specificity, time (one row per seed × method × output × score)",
    datasets=[], methods=["craft", "ace"],
    metrics=["purity", "top1_purity", "coverage", "top1_ok", "margin", "primitive_ratio",
             "background_share", "specificity", "spearman", "iou", "seconds"],
    groups=concept_groups, params={"n": 3000, "epochs": 8})
register("suite", "concepts", CONCEPTS)
