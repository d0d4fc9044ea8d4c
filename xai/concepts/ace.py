"""ACE: automatic concept-based explanations scored with TCAV.

Ghorbani, Wexler, Zou, Kim 2019, "Towards Automatic Concept-based Explanations" (NeurIPS).

Pipeline of :meth:`ACE.fit`: multi-resolution SLIC superpixels of the class images →
patches, resized to the input size or filled in place → activations at ``layer`` →
k-means on spatially averaged activations, size/diversity filters → CAVs of each kept
cluster (its ``max_members`` nearest members) against ``n_random`` random sets, TCAV scores of
held-out class images and a two-sided t-test against a random-vs-random null.

The result is a concept :class:`~xai.explanation.Explanation`: ``values (n_test, r)`` = per
test image, the fraction of the concept's CAVs with a positive directional derivative (so its
column means are the mean TCAV scores); ``extras`` hold the TCAV table, null, p-values,
significance, direction, cluster sizes, CAV accuracies, prototypes and thumbnails.
``test="null-distribution"`` replaces ACE's paired t-test with a calibrated one (see
:func:`~xai.concepts.tcav.null_distribution_test`).

:meth:`ACE.importance` is a game-based importance: the concepts present in each
image are the features of the core game (removal = fill their segments, behaviour = the
target logit), and any summary applies (Shapley by default, occlusion = ACE's
concept-destroying step). Unlike TCAV it measures what removing a concept does to the output.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from xai.errors import InputError, TargetError, XaiError
from xai.explanation import Explanation

from .._warn import warn
from ..progress import Progress
from .segments import bbox, patch, slic_segments, thumbnail
from .tcav import TCAVResult, _get_layer, layer_activations, layer_gradients, tcav

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure

__all__ = ["ACE", "plot_gallery", "plot_importance"]

PATCH_MODES = ("resize", "in_place")
FILL = 117 / 255


class _Patches(NamedTuple):
    """The segments of the discovery images as patches, embedded at the layer."""

    image_idx: np.ndarray  # (p,) image of each patch
    masks: list[np.ndarray]  # p segment masks (H, W)
    pooled: np.ndarray  # (p, channels): spatially averaged activations, what k-means sees
    flat: np.ndarray  # (p, D): flattened activations, what the CAVs see


class _Clusters(NamedTuple):
    """k-means of the patches and the clusters kept as concepts."""

    kmeans: Any
    labels: np.ndarray  # (p,) cluster of each patch
    dist: np.ndarray  # (p,) distance of each patch to its cluster centre
    kept: list[int]  # cluster numbers of the concepts
    sizes: list[int]  # patches per kept cluster
    n_images: list[int]  # images per kept cluster
    members: list[np.ndarray]  # per kept cluster, its patches nearest the centre first
    all_sizes: list[int]  # patches per cluster, kept or not


class ACE:
    """Automatic concept extraction with TCAV scores.

    ``ACE(model, layer, random_pool=None, **options)``; ``fit(images, target)`` returns the
    concept :class:`Explanation` (also kept as ``explanation_``). Images are ``(n, C, H, W)``
    in the model's input space; ``to_unit``/``from_unit`` map them to ``[0, 1]`` and back
    (default: identity; or give ``mean``/``std`` of the model normalisation).

    Defaults follow the paper: ``resolutions=(15, 50, 80)``, ``compactness=20``, ``sigma=1``,
    ``min_segment_pixels=16``, ``patch_mode="resize"``, fill ``117/255``, ``n_clusters=25``,
    ``min_cluster_size=20``, ``max_members=40``, ``n_random=20``, ``random_set_size=50``,
    SGD hinge CAVs, paired t-test at ``alpha=0.01``, no correction. ``progress`` (``True``,
    ``False`` or ``"auto"``: on a terminal or in a notebook) shows bars over the images
    segmented and the patches passed through the model.
    """


    def __init__(self, model, layer: str, *, random_pool=None, n_clusters: int = 25,
                 resolutions: tuple[int, ...] = (15, 50, 80),
                 compactness: float | tuple[float, ...] = 20.0,
                 sigma: float | tuple[float, ...] = 1.0, min_segment_pixels: int = 16,
                 min_area_fraction: float = 0.001, max_jaccard: float = 0.5,
                 scale_segments: bool = False, patch_mode: str = "resize",
                 fill: float | str = FILL, mean=None, std=None,
                 to_unit: Callable | None = None, from_unit: Callable | None = None,
                 min_cluster_size: int = 20, max_members: int = 40, n_random: int = 20,
                 random_set_size: int = 50, classifier: str = "sgd",
                 min_cav_accuracy: float = 0.0, test: str = "paired", alpha: float = 0.01,
                 correction: str | None = None, min_images: int = 10,
                 n_thumbnails: int = 10, thumbnail_size: int = 48, batch_size: int = 64,
                 seed: int = 0, progress: bool | str = "auto") -> None:
        self.model = model
        self.layer = layer
        self.random_pool = random_pool
        self.n_clusters = n_clusters
        self.resolutions = resolutions
        self.compactness = compactness
        self.sigma = sigma
        self.min_segment_pixels = min_segment_pixels
        self.min_area_fraction = min_area_fraction
        self.max_jaccard = max_jaccard
        self.scale_segments = scale_segments
        self.patch_mode = patch_mode
        self.fill = fill
        self.mean = mean
        self.std = std
        self.to_unit = to_unit
        self.from_unit = from_unit
        self.min_cluster_size = min_cluster_size
        self.max_members = max_members
        self.n_random = n_random
        self.random_set_size = random_set_size
        self.classifier = classifier
        self.min_cav_accuracy = min_cav_accuracy
        self.test = test
        self.alpha = alpha
        self.correction = correction
        self.min_images = min_images
        self.n_thumbnails = n_thumbnails
        self.thumbnail_size = thumbnail_size
        self.batch_size = batch_size
        self.seed = seed
        self.progress = progress

    # ------------------------------------------------------------------ conversions

    def _mean_std(self) -> tuple[np.ndarray, np.ndarray]:
        """The normalisation's mean and std, broadcastable over (n, C, H, W) images."""
        shape = (1, -1, 1, 1)
        m = np.reshape(np.asarray(0.0 if self.mean is None else self.mean, np.float32),
                       shape if np.ndim(self.mean) else ())
        s = np.reshape(np.asarray(1.0 if self.std is None else self.std, np.float32),
                       shape if np.ndim(self.std) else ())
        return m, s

    def _unit(self, x: np.ndarray) -> np.ndarray:
        if self.to_unit is not None:
            return np.asarray(self.to_unit(x), dtype=np.float32)
        if self.mean is not None or self.std is not None:
            m, s = self._mean_std()
            return x * s + m
        return x

    def _model_space(self, x: np.ndarray) -> np.ndarray:
        if self.from_unit is not None:
            return np.asarray(self.from_unit(x), dtype=np.float32)
        if self.mean is not None or self.std is not None:
            m, s = self._mean_std()
            return (x - m) / s
        return x

    # ------------------------------------------------------------------- validation

    def _check_options(self) -> None:
        if self.patch_mode not in PATCH_MODES:
            raise InputError(f"unknown patch_mode {self.patch_mode!r}; use one of "
                             f"{', '.join(PATCH_MODES)}")
        if int(self.n_clusters) < 1:
            raise InputError(f"n_clusters must be ≥ 1 (got {self.n_clusters})")
        if int(self.n_random) < 2:
            raise InputError(f"the t-test needs n_random ≥ 2 (got {self.n_random})")
        if int(self.n_random) < 10:
            warn(f"n_random={self.n_random} random sets; ≥ 10 advised for the t-test")
        if not self.resolutions:
            raise InputError("resolutions must name at least one SLIC n_segments")

    @staticmethod
    def _check_images(images, what: str, like: tuple | None = None) -> np.ndarray:
        if hasattr(images, "detach"):
            images = images.detach().cpu().numpy()
        x = np.asarray(images, dtype=np.float32)
        if x.ndim != 4:
            raise InputError(f"expected {what} (n, C, H, W) like the model input, got "
                             f"{x.shape}")
        if like is not None and x.shape[1:] != like:
            raise InputError(f"expected {what} (n, {', '.join(map(str, like))}) like the "
                             f"discovery images, got {x.shape}")
        if like is None and x.shape[1] not in (1, 3) and x.shape[-1] in (1, 3):
            raise InputError(f"expected {what} (n, C, H, W) like the model input, got "
                             f"{x.shape} (channels last?); move the channel axis to 1")
        if not np.all(np.isfinite(x)):
            raise InputError(f"{what} contain NaN or inf")
        return x

    def _fit_inputs(self, images, target, random_images, test_images):
        """The checked ``(x, pool, test, target)`` of :meth:`fit`: discovery images, random
        pool, test images (a held-out third of ``images`` when none are given) and target; the
        model runs once on one image so that a bad model or target fails before the work."""
        self._check_options()
        _get_layer(self.model, self.layer)
        x = self._check_images(images, "images")
        n, C, H, W = x.shape
        if n < self.min_images:
            raise InputError(f"ACE needs ≥ {self.min_images} discovery images (got {n}); "
                             "40 advised")
        if n < 30:
            warn(f"{n} discovery images; ≥ 30 advised (40 by default in the paper)")
        pool = random_images if random_images is not None else self.random_pool
        if pool is None:
            raise InputError("ACE needs random counterparts: pass random_images= to fit (or "
                             "random_pool= to ACE), inputs of other classes")
        pool = self._check_images(pool, "random images", like=(C, H, W))
        n_random, set_size = int(self.n_random), int(self.random_set_size)
        if len(pool) < set_size:
            raise InputError(f"random_pool of {len(pool)} inputs cannot give {n_random} sets "
                             f"of {set_size}; add inputs or lower random_set_size")
        if test_images is None:
            warn("no test_images given; a third of the discovery images is held out "
                 "for the TCAV scores")
            n_test = max(1, n // 3)
            test, x = x[n - n_test:], x[:n - n_test]
        else:
            test = self._check_images(test_images, "test images", like=(C, H, W))
        if not isinstance(target, (int, np.integer)) or isinstance(target, bool):
            raise TargetError(f"target must be an output index (int); got {target!r}")
        target = int(target)
        _, logits = layer_activations(self.model, self.layer, x[:1], return_logits=True)
        if not 0 <= target < logits.shape[1]:
            raise TargetError(f"target {target} out of range for {logits.shape[1]} outputs")
        return x, pool, test, target

    # ------------------------------------------------------------------------ patches

    def _fill_value(self, C: int) -> np.ndarray:
        if isinstance(self.fill, str):
            if self.fill != "mean" or getattr(self, "_mean_colour", None) is None:
                raise InputError(f"fill must be a number, per-channel values or 'mean'; got "
                                 f"{self.fill!r}")
            return self._mean_colour
        return np.broadcast_to(np.asarray(self.fill, np.float32), (C,)).astype(np.float32)

    def _patches_of(self, unit: np.ndarray, fill: np.ndarray, warn_empty: bool = True):
        """Segment every image; return the patch records and kept masks."""
        image_idx, masks = [], []
        with Progress("xai ace segments", total=len(unit), unit="images",
                      enabled=self.progress) as bar:
            for i, img in enumerate(unit):
                segs = slic_segments(img, self.resolutions, compactness=self.compactness,
                                     sigma=self.sigma, scale_segments=self.scale_segments,
                                     min_area_fraction=self.min_area_fraction,
                                     min_segment_pixels=self.min_segment_pixels,
                                     max_jaccard=self.max_jaccard)
                if not segs and warn_empty:
                    warn(f"no segment of image {i} has ≥ {self.min_segment_pixels} pixels")
                image_idx += [i] * len(segs)
                masks += segs
                bar.update(1)
        return np.asarray(image_idx, dtype=np.int64), masks

    def _patch_activations(self, unit: np.ndarray, image_idx: np.ndarray, masks: list,
                           fill: np.ndarray) -> np.ndarray:
        chunks = []
        bs = max(1, int(self.batch_size))
        with Progress("xai ace patches", total=len(masks), unit="patches",
                      enabled=self.progress) as bar:
            for start in range(0, len(masks), bs):
                batch = np.stack([patch(unit[i], m, fill, self.patch_mode) for i, m in
                                  zip(image_idx[start:start + bs], masks[start:start + bs])])
                chunks.append(layer_activations(self.model, self.layer,
                                                self._model_space(batch), batch_size=bs))
                bar.update(len(batch))
        return np.concatenate(chunks)

    # --------------------------------------------------------------------------- fit

    def fit(self, images, target: int, random_images=None, test_images=None) -> Explanation:
        """Discover concepts of class ``target`` in ``images`` and score them with TCAV.

        ``random_images`` (default: the constructor's ``random_pool``) are inputs of other
        classes, split into ``n_random`` random sets plus a null set. ``test_images`` are class
        images not used for discovery; without them the discovery images are split (a third
        for testing) with a warning. Returns the concept :class:`Explanation`.
        """
        t0 = time.perf_counter()
        x, pool, test, target = self._fit_inputs(images, target, random_images, test_images)
        unit = np.clip(self._unit(x), 0.0, 1.0)
        self._mean_colour = unit.mean(axis=(0, 2, 3)).astype(np.float32)
        fill = self._fill_value(x.shape[1])

        patches = self._discovery_patches(unit, fill)
        clusters = _cluster(patches, n_images=len(x), k=int(self.n_clusters), seed=self.seed,
                            min_cluster_size=self.min_cluster_size,
                            max_members=self.max_members)
        random_sets, n_used = self._random_activation_sets(pool)
        _, grads = layer_gradients(self.model, self.layer, test, target,
                                   batch_size=self.batch_size)
        res = tcav(grads, [patches.flat[mem] for mem in clusters.members],
                   random_sets[:-1], random_sets[-1], classifier=self.classifier,
                   seed=self.seed, test=self.test, alpha=self.alpha,
                   correction=self.correction, min_cav_accuracy=self.min_cav_accuracy)
        self._keep_fitted_state(patches, clusters, res)

        gallery = _gallery(clusters.members, patches.image_idx, patches.masks, unit, fill,
                           max_members=self.max_members, n_thumbnails=self.n_thumbnails,
                           thumbnail_size=self.thumbnail_size)
        self.explanation_ = self._fit_explanation(
            res, clusters, gallery, target=target, n_discovery=len(x),
            n_patches=len(patches.masks), n_test=len(test),
            evaluations=len(patches.masks) + n_used + len(test), t0=t0)
        return self.explanation_

    def _discovery_patches(self, unit: np.ndarray, fill: np.ndarray) -> _Patches:
        """Segments of the discovery images as patches and their activations at the layer
        (Ghorbani et al. 2019: the segments are the candidate concept examples)."""
        image_idx, masks = self._patches_of(unit, fill)
        if not masks:
            raise InputError(f"no image keeps a segment of ≥ {self.min_segment_pixels} pixels; "
                             "use larger images or lower min_segment_pixels")
        k = int(self.n_clusters)
        if len(masks) < k:
            raise InputError(f"{len(masks)} patches for {k} clusters; lower n_clusters or add "
                             "images")
        acts = self._patch_activations(unit, image_idx, masks, fill)
        flat = acts.reshape(len(acts), -1)
        if np.all(flat == flat[:1]):
            raise XaiError(f"activations at {self.layer!r} are constant over all patches; pick "
                           "another layer or check the images")
        return _Patches(image_idx, masks, _spatial_mean(acts), flat)

    def _random_activation_sets(self, pool: np.ndarray) -> tuple[list[np.ndarray], int]:
        """Activations of ``n_random`` random sets plus the null set (the last), and how many
        pool inputs they use."""
        sets = _random_set_indices(len(pool), int(self.n_random) + 1,
                                   int(self.random_set_size), self.seed)
        used = np.unique(np.concatenate(sets))
        pool_acts = layer_activations(self.model, self.layer, pool[used],
                                      batch_size=self.batch_size)
        pool_acts = pool_acts.reshape(len(used), -1)
        where = {int(u): i for i, u in enumerate(used)}
        return [pool_acts[[where[int(u)] for u in s]] for s in sets], len(used)

    def _keep_fitted_state(self, patches: _Patches, clusters: _Clusters,
                           res: TCAVResult) -> None:
        """The fitted attributes that :meth:`attribution_maps` and the gallery read."""
        kept, labels, dist = clusters.kept, clusters.labels, clusters.dist
        self.kmeans_ = clusters.kmeans
        self.concept_ids_ = np.asarray(kept)
        self.centres_ = clusters.kmeans.cluster_centers_[kept]
        self.radii_ = np.array([dist[labels == c].max() for c in kept])
        self.patch_images_ = patches.image_idx
        self.patch_masks_ = patches.masks
        self.patch_labels_ = labels
        self.members_ = clusters.members
        self.tcav_ = res

    def _fit_explanation(self, res: TCAVResult, clusters: _Clusters, gallery: dict, *,
                         target: int, n_discovery: int, n_patches: int, n_test: int,
                         evaluations: int, t0: float) -> Explanation:
        """The concept :class:`Explanation` of :meth:`fit`: per test image, the fraction of a
        concept's CAVs with a positive directional derivative (Kim et al. 2018)."""
        n_random = int(self.n_random)
        names = [f"concept {c}" for c in clusters.kept]
        extras = _tcav_extras(res, clusters, n_random)
        extras["bank"] = self.centres_.T.copy()
        extras.update(gallery)
        options = {
            "feature_kind": "concept", "layer": self.layer, "target": target,
            "concept_names": names, "n_clusters": int(self.n_clusters),
            "resolutions": list(self.resolutions), "patch_mode": self.patch_mode,
            "n_random": n_random, "random_set_size": int(self.random_set_size),
            "classifier": self.classifier, "test": self.test, "alpha": float(self.alpha),
            "correction": self.correction, "min_cluster_size": int(self.min_cluster_size),
            "max_members": int(self.max_members), "seed": int(self.seed),
            "n_patches": n_patches, "n_discovery": n_discovery,
        }
        return Explanation(
            values=np.nan_to_num(res.per_input, nan=0.0),
            stderr=np.sqrt(res.per_input * (1 - res.per_input) / n_random),
            base_values=np.zeros(n_test),
            feature_names=names,
            method="ace",
            removal={"name": "tcav"},
            behaviour={"name": "logit", "target": target},
            summary={"name": "tcav", "n_random": n_random, "test": self.test,
                     "alpha": float(self.alpha)},
            evaluations=int(evaluations),
            seconds=time.perf_counter() - t0,
            options=options,
            extras=extras,
        )

    # -------------------------------------------------------------------- after fit

    def _fitted(self) -> None:
        if not hasattr(self, "explanation_"):
            raise XaiError("this ACE is not fitted yet; call fit(images, target) first")

    def _assign(self, images):
        """Segment ``images`` and assign each segment to the nearest kept centre when
        within that cluster's largest member distance. Returns ``(x, unit, fill, image_idx,
        masks, concept)`` with ``concept[p] = -1`` for unassigned segments."""
        self._fitted()
        if hasattr(images, "ndim") and images.ndim == 3:
            images = images[None]
        x = self._check_images(images, "images")
        unit = np.clip(self._unit(x), 0.0, 1.0)
        fill = self._fill_value(x.shape[1])
        image_idx, masks = self._patches_of(unit, fill, warn_empty=False)
        if not masks:
            return x, unit, fill, image_idx, masks, np.zeros(0, dtype=np.int64)
        pooled = _spatial_mean(self._patch_activations(unit, image_idx, masks, fill))
        d = np.linalg.norm(pooled[:, None, :] - self.centres_[None], axis=2)
        near = d.argmin(axis=1)
        inside = d[np.arange(len(d)), near] <= self.radii_[near]
        return x, unit, fill, image_idx, masks, np.where(inside, near, -1)

    def attribution_maps(self, images) -> np.ndarray:
        """Masks ``(n, r, H, W)`` (bool) of the segments of ``images`` assigned to each concept.

        Each image is segmented as in :meth:`fit`; a segment belongs to the nearest kept
        cluster centre when it lies within that cluster's largest member distance. A single
        image ``(C, H, W)`` gives ``(1, r, H, W)``.
        """
        x, _, _, image_idx, masks, concept = self._assign(images)
        out = np.zeros((len(x), len(self.concept_ids_)) + x.shape[2:], dtype=bool)
        for p in np.flatnonzero(concept >= 0):
            out[image_idx[p], concept[p]] |= masks[p]
        return out

    def concept_segmentation(self, images) -> np.ndarray:
        """Per-pixel concept ``(n, H, W)`` (int, ``-1`` = no concept): every pixel of an
        assigned segment belongs to that segment's concept; where assigned segments of several
        resolutions overlap, the smallest segment wins (the finest, most specific)."""
        x, _, _, image_idx, masks, concept = self._assign(images)
        out = np.full((len(x),) + x.shape[2:], -1, dtype=np.int64)
        sizes = np.array([m.sum() for m in masks]) if masks else np.zeros(0)
        for p in sorted(np.flatnonzero(concept >= 0), key=lambda q: -sizes[q]):
            out[image_idx[p]][masks[p]] = concept[p]  # larger first, smaller overwrite
        return out

    def importance(self, images, summary: str | Any = "shapley", *, target: int | None = None,
                   **options: Any) -> Explanation:
        """Game-based concept importance: the concepts present in each
        image are the features of the core game, a concept is removed by filling all its
        segments (:meth:`concept_segmentation`) with the fill value (baseline removal), the
        behaviour is the target logit, and any summary applies (``"shapley"`` → the core's
        auto Shapley estimator, ``"occlusion"`` → ACE's concept-destroying step, a registered
        summary name or object; ``options`` such as ``budget``, ``seed`` go to the core).

        Returns an :class:`Explanation` with ``values (n, r)`` (0 for a concept absent from an
        image: a dummy feature), ``extras["importance"]`` = mean over images and
        ``extras["importance_stderr"]`` = SD/√n, ``extras["present"] (n, r)``,
        ``extras["segmentation"] (n, H, W)`` (the pixels each concept removes, ``-1`` = none)."""
        self._fitted()
        t0 = time.perf_counter()
        target = int(self.explanation_.options["target"] if target is None else target)
        seg = self.concept_segmentation(images)
        x = self._check_images(images[None] if getattr(images, "ndim", 0) == 3 else images,
                               "images")
        n, r = len(x), len(self.concept_ids_)
        present = _present_concepts(seg, r)
        values = np.zeros((n, r))
        stderr = np.zeros((n, r))
        base = np.full(n, np.nan)
        rows = np.flatnonzero(present.any(1))
        key = summary.lower().replace("_", "-") if isinstance(summary, str) else None
        spec = {"shapley": "auto", "occlusion": "remove-individual"}.get(key, summary)
        evaluations = 0
        if len(rows):
            order = [np.flatnonzero(present[i]) for i in rows]
            res = self._concept_game(x[rows], _local_concept_index(seg[rows], order, r), spec,
                                     target, options)
            v = np.asarray(res.values, dtype=np.float64).reshape(len(rows), -1)
            se = np.asarray(res.stderr, dtype=np.float64).reshape(len(rows), -1) \
                if res.stderr is not None else np.full_like(v, np.nan)
            for k, i in enumerate(rows):
                m = len(order[k])
                values[i, order[k]] = v[k, :m]
                stderr[i, order[k]] = se[k, :m]
            base[rows] = np.asarray(res.base_values, dtype=np.float64).reshape(len(rows))
            evaluations = int(res.evaluations or 0)
        imp = values.mean(0)
        imp_se = values.std(0, ddof=1) / math.sqrt(n) if n > 1 else np.full(r, np.nan)
        names = list(self.explanation_.feature_names)
        return Explanation(
            values=values, stderr=stderr, base_values=base, feature_names=names,
            method="ace", removal={"name": "baseline", "fill": "ace fill over concept segments"},
            behaviour={"name": "prediction", "target": target, "output": "raw"},
            summary={"name": str(spec if isinstance(spec, str) else type(spec).__name__)},
            evaluations=evaluations, seconds=time.perf_counter() - t0,
            options={"feature_kind": "concept", "layer": self.layer, "target": target,
                     "concept_names": names},
            extras={"importance": imp, "importance_stderr": imp_se, "present": present,
                    "segmentation": seg})

    def _concept_game(self, x: np.ndarray, index: np.ndarray, spec, target: int,
                      options: dict) -> Explanation:
        """The core explainer on the concept game of images ``x``: features = the concepts of
        each image (``index``, per explicand), removal = the fill value over their segments,
        behaviour = the raw ``target`` output."""
        from ..explainer import Explainer
        from ..features import FeatureMap
        from ..removals import Baseline

        fill_img = self._model_space(np.broadcast_to(
            self._fill_value(x.shape[1])[None, :, None, None], (1,) + x.shape[1:]).copy())[0]
        fmap = FeatureMap(index, kind="concept", channel_axis=0, per_explicand=True)
        explainer = Explainer(Baseline(fill_img), "prediction", spec, method="ace-game",
                              target=target, output="raw", **options)
        return explainer.explain(self.model, x, features=fmap, output_kind="raw")

    def plot_importance(self, ax=None) -> Figure:
        """Mean TCAV per concept with ±1.96·SE bars, the null mean and significance marks."""
        self._fitted()
        return plot_importance(self.explanation_, ax=ax)

    def plot_gallery(self, top_k: int = 10) -> Figure:
        """One row per concept (importance order): TCAV bar, then the nearest member segments."""
        self._fitted()
        return plot_gallery(self.explanation_, top_k=top_k)



# ----------------------------------------------------------------------------- helpers


def _spatial_mean(acts: np.ndarray) -> np.ndarray:
    """``(n, channels)`` activations averaged over any spatial axes."""
    return acts.reshape(acts.shape[0], acts.shape[1], -1).mean(axis=2) \
        if acts.ndim > 2 else acts


def _is_diverse(size: int, n_imgs: int, n: int) -> bool:
    """ACE's cluster filter (Ghorbani et al. 2019): a cluster of ``size`` patches from
    ``n_imgs`` of the ``n`` discovery images is kept when its patches come from many images,
    or from fewer but then from a large share of all images."""
    return (n_imgs > 0.5 * size or (n_imgs > 0.25 * size and n_imgs > 0.25 * n)
            or (n_imgs > 0.1 * size and n_imgs > 0.5 * n))


def _cluster(patches: _Patches, *, n_images: int, k: int, seed: int, min_cluster_size: int,
             max_members: int) -> _Clusters:
    """k-means of the pooled patch activations; the clusters of at least ``min_cluster_size``
    patches that pass :func:`_is_diverse` become concepts, each with its ``max_members``
    patches nearest the centre."""
    from sklearn.cluster import KMeans

    km = KMeans(n_clusters=k, n_init=10, random_state=seed).fit(patches.pooled)
    labels = km.labels_
    dist = np.linalg.norm(patches.pooled - km.cluster_centers_[labels], axis=1)
    kept, sizes, n_imgs, members = [], [], [], []
    all_sizes = []
    for c in range(k):
        idx = np.flatnonzero(labels == c)
        s, m = len(idx), len(np.unique(patches.image_idx[idx]))
        all_sizes.append(s)
        if s >= min_cluster_size and _is_diverse(s, m, n_images):
            kept.append(c)
            sizes.append(s)
            n_imgs.append(m)
            members.append(idx[np.argsort(dist[idx], kind="stable")][:max_members])
    if not kept:
        raise XaiError(f"no cluster passed the filters (sizes {sorted(all_sizes)}); lower "
                       "min_cluster_size or add images")
    return _Clusters(km, labels, dist, kept, sizes, n_imgs, members, all_sizes)


def _random_set_indices(n_pool: int, n_sets: int, set_size: int,
                        seed: int) -> list[np.ndarray]:
    """``n_sets`` random sets of ``set_size`` pool indices: disjoint when the pool is large
    enough, otherwise drawn independently (they overlap, with a warning)."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(n_pool)
    if n_pool >= n_sets * set_size:
        return [order[j * set_size:(j + 1) * set_size] for j in range(n_sets)]
    warn(f"random_pool of {n_pool} inputs cannot give {n_sets} disjoint sets of "
         f"{set_size}; the random sets overlap")
    return [np.sort(rng.choice(n_pool, set_size, replace=False)) for _ in range(n_sets)]


def _tcav_extras(res: TCAVResult, clusters: _Clusters, n_random: int) -> dict[str, Any]:
    """The TCAV table and the clusters' sizes, as the explanation's extras."""
    significant_first = np.lexsort((-res.mean, ~(res.significant & (res.direction > 0))))
    return {
        "importance": res.mean,
        "importance_stderr": res.std / np.sqrt(np.sum(np.isfinite(res.scores),
                                                      axis=1).clip(1)),
        "concept_ids": np.asarray(clusters.kept, dtype=np.int64),
        "rank": significant_first.astype(np.int64),
        "tcav_scores": res.scores,
        "tcav_std": res.std,
        "tcav_null": res.null_scores,
        "tcav_null_mean": np.asarray(res.null_mean),
        "p_values": res.p_values,
        "significant": res.significant,
        "direction": res.direction,
        "cav_accuracies": res.accuracies,
        "null_cav_accuracies": res.null_accuracies,
        "directional_derivatives": res.derivatives,
        "cluster_sizes": np.asarray(clusters.sizes, dtype=np.int64),
        "cluster_images": np.asarray(clusters.n_images, dtype=np.int64),
        "all_cluster_sizes": np.asarray(clusters.all_sizes, dtype=np.int64),
    }


def _gallery(members: list[np.ndarray], image_idx: np.ndarray, masks: list[np.ndarray],
             unit: np.ndarray, fill: np.ndarray, *, max_members: int, n_thumbnails: int,
             thumbnail_size: int) -> dict[str, np.ndarray]:
    """Each concept's prototypes (its members: patch, image, bounding box; ``-1`` pads) and
    thumbnails of its first ``n_thumbnails`` members."""
    r, m_max = len(members), int(max_members)
    C, H, W = unit.shape[1:]
    proto = np.full((r, m_max), -1, dtype=np.int64)
    proto_img = np.full((r, m_max), -1, dtype=np.int64)
    boxes = np.full((r, m_max, 4), -1, dtype=np.int64)
    t = int(min(thumbnail_size, max(H, W)))
    n_thumb = int(n_thumbnails)
    thumbs = np.zeros((r, n_thumb, t, t, C), dtype=np.uint8)
    n_thumbs = np.zeros(r, dtype=np.int64)
    for i, mem in enumerate(members):
        proto[i, :len(mem)] = mem
        proto_img[i, :len(mem)] = image_idx[mem]
        for j, p in enumerate(mem):
            boxes[i, j] = bbox(masks[p])
        for j, p in enumerate(mem[:n_thumb]):
            thumbs[i, j] = thumbnail(unit[image_idx[p]], masks[p], fill, thumbnail_size)
        n_thumbs[i] = min(len(mem), n_thumb)
    return {"prototypes": proto, "prototype_images": proto_img, "prototype_boxes": boxes,
            "thumbnails": thumbs, "n_thumbnails": n_thumbs}


def _present_concepts(seg: np.ndarray, r: int) -> np.ndarray:
    """``(n, r)`` whether each of the ``r`` concepts owns a pixel of each image's
    segmentation ``seg (n, H, W)``."""
    present = np.zeros((len(seg), r), dtype=bool)
    for i in range(len(seg)):
        present[i, np.unique(seg[i][seg[i] >= 0])] = True
    return present


def _local_concept_index(seg: np.ndarray, order: list[np.ndarray], r: int) -> np.ndarray:
    """Per image, the concept segmentation renumbered to local feature numbers
    ``0..m_i-1`` (the concepts ``order[i]`` present in it); ``-1`` = pixels of no concept
    (kept)."""
    index = np.full(seg.shape, -1, dtype=np.int64)
    for k in range(len(seg)):
        lookup = np.full(r + 1, -1, dtype=np.int64)
        lookup[order[k]] = np.arange(len(order[k]))
        index[k] = lookup[seg[k]]  # seg == -1 indexes lookup[-1] = -1
    return index


def _concept_table(expl: Explanation) -> dict:
    e = expl.extras
    if "importance" not in e or "tcav_null_mean" not in e:
        raise XaiError("this explanation is not an ACE result (no TCAV extras)")
    return e


def plot_importance(expl: Explanation, ax=None) -> Figure:
    """Bar chart of the mean TCAV per concept of an ACE explanation (also after ``load``).

    Error bars are ±1.96·SE; the dashed line is the null (random-vs-random) mean; significant
    concepts are marked ``*`` and coloured by direction (above the null: red, below: blue).
    """
    import matplotlib.pyplot as plt

    e = _concept_table(expl)
    imp, se = np.asarray(e["importance"], float), np.asarray(e["importance_stderr"], float)
    sig, direction = np.asarray(e["significant"], bool), np.asarray(e["direction"])
    order = np.asarray(e["rank"], int)
    names = np.asarray(expl.names)[order]
    if ax is None:
        fig, ax = plt.subplots(figsize=(max(4.0, 0.6 * len(imp) + 2), 3.5))
    else:
        fig = ax.figure
    colours = ["tab:red" if sig[i] and direction[i] > 0 else
               "tab:blue" if sig[i] and direction[i] < 0 else "tab:gray" for i in order]
    pos = np.arange(len(order))
    ax.bar(pos, imp[order], yerr=1.96 * se[order], color=colours, capsize=3)
    null = float(e["tcav_null_mean"])
    ax.axhline(null, ls="--", color="k", lw=1, label=f"null mean {null:.2f}")
    for p, i in zip(pos, order):
        if sig[i]:
            ax.text(p, min(1.02, imp[i] + 1.96 * se[i] + 0.02), "*+" if direction[i] > 0
                    else "*−", ha="center", va="bottom")
    ax.set_xticks(pos)
    ax.set_xticklabels(names, rotation=45, ha="right")
    ax.set_ylim(0, 1.12)
    ax.set_ylabel("TCAV score")
    opts = expl.options
    ax.set_title(f"ACE, layer {opts.get('layer')!s}, target {opts.get('target')!s} "
                 f"(* p ≤ {opts.get('alpha', 0.01)})")
    ax.legend(loc="upper right", fontsize="small")
    fig.tight_layout()
    return fig


def plot_gallery(expl: Explanation, top_k: int = 10) -> Figure:
    """One row per concept in importance order: a TCAV bar (±1.96·SE), then member thumbnails."""
    import matplotlib.pyplot as plt

    e = _concept_table(expl)
    if "thumbnails" not in e:
        raise XaiError("this ACE explanation holds no thumbnails")
    thumbs, counts = np.asarray(e["thumbnails"]), np.asarray(e["n_thumbnails"], int)
    order = np.asarray(e["rank"], int)
    imp, se = np.asarray(e["importance"], float), np.asarray(e["importance_stderr"], float)
    sig = np.asarray(e["significant"], bool)
    k = max(1, min(int(top_k), thumbs.shape[1]))
    r = len(order)
    fig, axes = plt.subplots(r, k + 1, figsize=(1.2 * (k + 1) + 1, 1.2 * r + 0.6),
                             squeeze=False, gridspec_kw={"width_ratios": [2] + [1] * k})
    null = float(e["tcav_null_mean"])
    for row, i in enumerate(order):
        bar = axes[row, 0]
        bar.barh([0], [imp[i]], xerr=[1.96 * se[i]], color="tab:red" if sig[i] else "tab:gray")
        bar.axvline(null, ls="--", color="k", lw=0.8)
        bar.set_xlim(0, 1)
        bar.set_yticks([])
        bar.set_ylabel(expl.names[i] + (" *" if sig[i] else ""), rotation=0, ha="right",
                       va="center", fontsize="small")
        if row != r - 1:
            bar.set_xticklabels([])
        for j in range(k):
            a = axes[row, j + 1]
            a.axis("off")
            if j < counts[i]:
                img = thumbs[i, j]
                a.imshow(img[..., 0] if img.shape[-1] == 1 else img,
                         cmap="gray" if img.shape[-1] == 1 else None)
    axes[-1, 0].set_xlabel("TCAV")
    opts = expl.options
    fig.suptitle(f"ACE, layer {opts.get('layer')!s}, target {opts.get('target')!s}")
    return fig
