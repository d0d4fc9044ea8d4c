"""Scores of the synthetic concept benchmark. Pure numpy.

Labels are integers: primitive indices ``0..5`` and the background label (6 in
:mod:`xai.concepts.primitives`); any integer labelling works. Boxes are
``(top, left, bottom, right)``, half-open (``label_map[top:bottom, left:right]``).

* :func:`crop_label` / :func:`crop_labels` — label with the largest pixel share in a crop.
* :func:`top_k_labels`, :func:`concept_purity`, :func:`coverage` — purity of a concept's
  top-k crops, primitives owning a pure concept.
* :func:`mass_share` — a concept's coefficient mass per label.
* :func:`map_alignment_iou` — IoU of a binarised concept map with a primitive mask.
* :func:`segment_label`, :func:`ace_cluster_purity` — ACE clusters.
* :func:`primitive_importance`, :func:`top1_label`, :func:`causal_margin`,
  :func:`primitive_ratio`, :func:`background_share`, :func:`spearman`,
  :func:`specificity`, :func:`ranking_report` — ranking scores.

Ties are broken towards the smallest label (deterministic).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def _majority(labels: np.ndarray, weights: np.ndarray | None = None) -> tuple[int, float]:
    """(label with the largest (weighted) count, its share); ties → smallest label."""
    labels = np.asarray(labels).ravel()
    if labels.size == 0:
        raise ValueError("no labels given")
    values, inverse = np.unique(labels, return_inverse=True)
    w = np.ones(labels.size) if weights is None else np.asarray(weights, float).ravel()
    totals = np.bincount(inverse, weights=w, minlength=len(values))
    best = int(np.argmax(totals))  # first maximum = smallest label
    total = totals.sum()
    return int(values[best]), float(totals[best] / total) if total > 0 else float("nan")


def crop_label(label_crop: np.ndarray) -> int:
    """The label with the largest pixel share in ``label_crop`` (any shape)."""
    return _majority(label_crop)[0]


def crop_labels(label_maps: np.ndarray, image_index: Sequence[int],
                boxes: np.ndarray) -> np.ndarray:
    """:func:`crop_label` of many crops: ``label_maps`` ``(N, H, W)``, ``image_index`` (n,),
    ``boxes`` ``(n, 4)`` as ``(top, left, bottom, right)``; returns ``(n,)`` int64."""
    boxes = np.asarray(boxes, int).reshape(-1, 4)
    idx = np.asarray(image_index, int).ravel()
    if len(idx) != len(boxes):
        raise ValueError(f"{len(idx)} image indices for {len(boxes)} boxes")
    return np.array([crop_label(label_maps[i, t:b, left:r])
                     for i, (t, left, b, r) in zip(idx, boxes, strict=True)], np.int64)


def top_k_labels(coefficients: np.ndarray, labels: np.ndarray, k: int = 10) -> np.ndarray:
    """Labels of each concept's ``k`` crops with the largest coefficients: ``coefficients``
    ``(n_crops, r)``, ``labels`` ``(n_crops,)`` → ``(r, min(k, n_crops))`` (largest first;
    equal coefficients keep crop order)."""
    U = np.asarray(coefficients, float)
    labels = np.asarray(labels).ravel()
    if U.ndim != 2 or U.shape[0] != labels.size:
        raise ValueError(f"coefficients {U.shape} do not match {labels.size} crop labels")
    order = np.argsort(-U, axis=0, kind="stable")[:k]
    return labels[order].T


def concept_purity(top_labels: np.ndarray) -> tuple[float, int]:
    """``(purity, majority label)`` of one concept: the share of its top-k crop labels equal
    to their most frequent label. A concept *aligns* with that label only if purity > ½."""
    label, share = _majority(top_labels)
    return share, label


def purities(top_labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """:func:`concept_purity` of every row of ``(r, k)`` labels → ``(purity (r,), label
    (r,))``."""
    res = [concept_purity(row) for row in np.asarray(top_labels)]
    return np.array([p for p, _ in res]), np.array([lab for _, lab in res], np.int64)


def covered(purity: np.ndarray, labels: np.ndarray, threshold: float = 0.5) -> list[int]:
    """Sorted labels owning at least one concept with purity strictly above ``threshold``."""
    purity, labels = np.asarray(purity, float), np.asarray(labels)
    return sorted({int(lab) for p, lab in zip(purity, labels, strict=True) if p > threshold})


def coverage(purity: np.ndarray, labels: np.ndarray, threshold: float = 0.5,
             targets: Sequence[int] = (0, 1, 2)) -> float:
    """Share of the ``targets`` labels (default: the causal primitives) owning a concept with
    purity strictly above ``threshold``."""
    own = set(covered(purity, labels, threshold))
    targets = list(targets)
    return sum(int(t) in own for t in targets) / len(targets) if targets else float("nan")


def mass_share(coefficients: np.ndarray, labels: np.ndarray, n_labels: int) -> np.ndarray:
    """``(r, n_labels)``: fraction of each concept's coefficient mass (sum of ``U[:, c]``,
    negative values clipped to 0) on crops of each label. A concept without mass gets a NaN
    row."""
    U = np.clip(np.asarray(coefficients, float), 0, None)
    labels = np.asarray(labels, int).ravel()
    if U.ndim != 2 or U.shape[0] != labels.size:
        raise ValueError(f"coefficients {U.shape} do not match {labels.size} crop labels")
    if labels.size and (labels.min() < 0 or labels.max() >= n_labels):
        raise ValueError(f"labels must lie in [0, {n_labels}); got {labels.min()}..{labels.max()}")
    onehot = np.eye(n_labels)[labels]  # (n_crops, L)
    mass = U.T @ onehot  # (r, L)
    total = mass.sum(1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, mass / np.where(total > 0, total, 1), np.nan)


def map_alignment_iou(concept_map: np.ndarray, primitive_mask: np.ndarray,
                      quantile: float = 0.9) -> float:
    """Mean IoU of a concept map binarised at its top ``quantile`` with a primitive mask.

    ``concept_map`` ``(n, H, W)`` (or ``(H, W)``), ``primitive_mask`` bool of the same shape.
    Per image, the map is binarised as ``map >= quantile(map, quantile)`` with the map's value
    strictly positive; images whose mask is empty (primitive absent) are skipped; NaN if none
    remain."""
    maps = np.asarray(concept_map, float)
    masks = np.asarray(primitive_mask, bool)
    if maps.shape != masks.shape:
        raise ValueError(f"concept map {maps.shape} and mask {masks.shape} differ in shape")
    if maps.ndim == 2:
        maps, masks = maps[None], masks[None]
    ious = []
    for m, t in zip(maps, masks, strict=True):
        if not t.any():
            continue
        b = (m >= np.quantile(m, quantile)) & (m > 0)
        union = (b | t).sum()
        ious.append((b & t).sum() / union)
    return float(np.mean(ious)) if ious else float("nan")


def segment_label(label_map: np.ndarray, segment_mask: np.ndarray) -> int:
    """Majority pixel label of a segment (``segment_mask`` bool, same shape as
    ``label_map``)."""
    seg = np.asarray(segment_mask, bool)
    if not seg.any():
        raise ValueError("empty segment")
    return crop_label(np.asarray(label_map)[seg])


def ace_cluster_purity(member_labels: Sequence[int]) -> tuple[float, int]:
    """``(purity, majority label)`` of an ACE cluster: the share of its kept members whose
    segment label (:func:`segment_label`) is the cluster's majority label."""
    label, share = _majority(np.asarray(member_labels))
    return share, label


# ---------------------------------------------------------------- ranking

def primitive_importance(importance: np.ndarray, mass: np.ndarray) -> np.ndarray:
    """Concept importances ``(r,)`` spread over labels by mass share ``(r, L)`` → ``(L,)``:
    ``Σ_c importance_c · mass[c, l]`` (concepts with a NaN mass row are left out)."""
    imp = np.asarray(importance, float).ravel()
    mass = np.asarray(mass, float)
    if mass.shape[0] != imp.size:
        raise ValueError(f"{imp.size} importances for {mass.shape[0]} mass rows")
    ok = np.isfinite(mass).all(1)
    return imp[ok] @ mass[ok]


def top1_label(importance: np.ndarray, concept_labels: np.ndarray) -> int:
    """Label of the most important concept (first on ties)."""
    return int(np.asarray(concept_labels)[int(np.argmax(np.asarray(importance, float)))])


def causal_margin(prim_importance: np.ndarray, causal: int,
                  distractors: Sequence[int]) -> float:
    """``I[causal] − max_d I[d]``, the causal primitive's lead over every distractor,
    normalised by ``Σ_l |I_l|`` (so margins are comparable across summaries)."""
    pi = np.asarray(prim_importance, float)
    total = np.abs(pi).sum()
    if total == 0:
        return 0.0
    return float((pi[causal] - max(pi[list(distractors)])) / total)


def primitive_ratio(prim_importance: np.ndarray, causal: int,
                    distractors: Sequence[int]) -> float:
    """``I[causal] / max_d I[d]`` (inf when every distractor is ≤ 0 and the causal one > 0)."""
    pi = np.asarray(prim_importance, float)
    top = max(pi[list(distractors)])
    if top <= 0:
        return float("inf") if pi[causal] > 0 else float("nan")
    return float(pi[causal] / top)


def background_share(prim_importance: np.ndarray, background: int) -> float:
    """Share of the (positive) primitive-level importance on the background label."""
    pi = np.clip(np.asarray(prim_importance, float), 0, None)
    total = pi.sum()
    return float(pi[background] / total) if total > 0 else float("nan")


def _ranks(x: np.ndarray) -> np.ndarray:
    """Ranks 1..n with ties averaged."""
    x = np.asarray(x, float)
    order = np.argsort(x, kind="stable")
    ranks = np.empty(len(x))
    ranks[order] = np.arange(1, len(x) + 1)
    for v in np.unique(x):
        tie = x == v
        ranks[tie] = ranks[tie].mean()
    return ranks


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman rank correlation (ties averaged) over the finite pairs; NaN if a side is
    constant. With the intervention truth: informative only."""
    a, b = np.asarray(a, float).ravel(), np.asarray(b, float).ravel()
    ok = np.isfinite(a) & np.isfinite(b)
    ra, rb = _ranks(a[ok]), _ranks(b[ok])
    ra, rb = ra - ra.mean(), rb - rb.mean()
    den = np.sqrt((ra ** 2).sum() * (rb ** 2).sum())
    return float((ra * rb).sum() / den) if den > 0 else float("nan")


def specificity(prim_importance: np.ndarray, causal: int,
                other_causal: Sequence[int]) -> float:
    """``1 − max_{c'} share(c')``: share = positive importance of another causal primitive
    ``c'`` (relevant to another output) over the total positive importance. 1 = this output's
    explanation gives the other causal primitives no importance."""
    pi = np.clip(np.asarray(prim_importance, float), 0, None)
    total = pi.sum()
    others = [int(c) for c in other_causal if int(c) != int(causal)]
    if total == 0 or not others:
        return float("nan") if total == 0 else 1.0
    return float(1 - pi[others].max() / total)


def ranking_report(importance: np.ndarray, mass: np.ndarray, concept_labels: np.ndarray,
                   causal: int, distractors: Sequence[int], background: int,
                   other_causal: Sequence[int] = (), truth: np.ndarray | None = None,
                   margin: float = 0.0) -> dict:
    """All ranking scores of one output: ``top1_label``, ``top1_ok``, ``primitive_importance``,
    ``margin``, ``margin_ok`` (margin > ``margin``), ``primitive_ratio``,
    ``background_share``, ``specificity`` and, when ``truth`` (this output's row of the
    intervention truth over the primitives) is given, ``spearman`` with it."""
    pi = primitive_importance(importance, mass)
    top = top1_label(importance, concept_labels)
    m = causal_margin(pi, causal, distractors)
    out = {"top1_label": top, "top1_ok": top == int(causal),
           "primitive_importance": pi.tolist(), "margin": m, "margin_ok": m > margin,
           "primitive_ratio": primitive_ratio(pi, causal, distractors),
           "background_share": background_share(pi, background),
           "specificity": specificity(pi, causal, other_causal)}
    if truth is not None:
        t = np.asarray(truth, float).ravel()
        out["spearman"] = spearman(pi[:t.size], t)
    return out
