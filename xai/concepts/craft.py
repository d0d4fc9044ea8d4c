"""CRAFT (Fel et al. 2023): crops → ``g`` → pooled activations → NMF concept bank →
coefficients of the class images → concept importance by the concept game + a summary
(Sobol total indices by default; Fel et al. 2021). See :mod:`xai.concepts.removal` for the
concept game."""

from __future__ import annotations

import inspect
import math
import time
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

from .._warn import warn
from ..errors import InputError, TargetError, XaiError
from ..explanation import Explanation
from ..progress import Progress
from .bank import ConceptBank
from .crops import crop_boxes, crop_images, default_patch_size, prototypes
from .removal import concept_game
from .split import check_split, eval_session, split_model

__all__ = ["CRAFT", "ConceptExplanation"]


class ConceptExplanation(Explanation):
    """A concept :class:`~xai.explanation.Explanation`: one feature per concept.

    ``values (n, r)``: per-image scores; ``stderr (n, r)``: per-image standard errors (NaN for
    one Sobol replicate). Concept-level arrays live in ``extras`` (so :meth:`save`/:meth:`load`
    round-trip them) and are exposed as properties: :attr:`importance`,
    :attr:`importance_stderr`, :attr:`bank`, :attr:`crop_coefficients`, :attr:`crop_boxes`,
    :attr:`prototypes`; metadata (layer, target, diagnostics) in ``options``.
    """

    _craft: CRAFT | None = None

    @property
    def concept_ids(self) -> np.ndarray:
        return np.arange(self.values.shape[1])

    @property
    def concept_names(self) -> list[str]:
        return self.names

    @property
    def importance(self) -> np.ndarray:
        return self.extras["importance"]

    @property
    def importance_stderr(self) -> np.ndarray:
        return self.extras["importance_stderr"]

    @property
    def bank(self) -> np.ndarray | None:
        return self.extras.get("bank")

    @property
    def crop_coefficients(self) -> np.ndarray | None:
        return self.extras.get("crop_coefficients")

    @property
    def crop_boxes(self) -> np.ndarray | None:
        return self.extras.get("crop_boxes")

    @property
    def prototypes(self) -> np.ndarray | None:
        """``(r, top_k)`` crop indices (``-1`` = none) of each concept's top crops."""
        return self.extras.get("prototypes")

    @property
    def diagnostics(self) -> dict:
        return dict(self.options.get("diagnostics", {}))

    @property
    def layer(self):
        return self.options.get("layer")

    @property
    def target(self):
        return self.options.get("target")

    @property
    def parent_concept(self) -> int | None:
        """The refined concept of the parent result, None for a top-level result."""
        return self.options.get("parent_concept")

    @property
    def parent_layer(self):
        return self.options.get("parent_layer")

    def order(self) -> np.ndarray:
        """Concept indices by decreasing importance."""
        return np.argsort(-np.nan_to_num(self.importance, nan=-np.inf), kind="stable")

    def to_pandas(self):  # one row per concept
        import pandas as pd

        return pd.DataFrame({"concept": self.concept_names, "importance": self.importance,
                             "stderr": self.importance_stderr},
                            index=pd.Index(self.concept_ids, name="concept_id"))

    def _fitted(self) -> CRAFT:
        if self._craft is None:
            raise XaiError("saved without its model; pass model= and layer= (or g=, h=): "
                           "craft = CRAFT(model, layer).from_result(result)")
        return self._craft

    def attribution_maps(self, images, concepts=None, method: str = "projection"):
        return self._fitted().attribution_maps(images, concepts=concepts, method=method)

    def refine(self, concept: int, layer=None, **kwargs) -> ConceptExplanation:
        """Decompose ``concept`` at an earlier layer (CRAFT's recursion); see
        :meth:`CRAFT.refine`."""
        return self._fitted().refine(concept, layer, **kwargs)


class CRAFT:
    """Concept Recursive Activation FacTorization (Fel et al. 2023), scikit-learn style: the
    constructor stores options only; :meth:`fit` runs the pipeline.

    Parameters
    ----------
    model, layer : a torch model and the name of the module to split after; or
    g, h : the two halves (``model`` then only checks ``h(g(x)) ≈ model(x)``).
    n_concepts : rank ``r`` of the NMF (10).
    patch_size, crop_mode (``"grid"``/``"random"``), crops_per_image, resize_crops : the crops
        the bank is learnt from.
    nb_design : Sobol design rows per replicate (power of two, 32); n_replicates : independent
        scrambles per image (≥ 2: the core ``SobolTotal`` runs at least two units; per-image
        SE = SD/√R).
    residual : ``"drop"`` (CRAFT) or ``"keep"``; baseline : ``0`` or ``"mean"``.
    target : an int, or None = the class most often predicted on the images.
    seed : crops, NMF and design (0). batch_size : rows per ``g`` call. top_k, max_per_image :
        prototypes (the crops that hold most of each concept).
    progress : progress bars over the crops and the importance's model rows: ``True``,
        ``False`` or ``"auto"`` (on a terminal or in a notebook).
    """

    def __init__(self, model=None, layer: str | None = None, *, g: Callable | None = None,
                 h: Callable | None = None, n_concepts: int = 10, patch_size: int | None = None,
                 crop_mode: str = "grid", crops_per_image: int = 16, resize_crops: bool = True,
                 nb_design: int = 32, n_replicates: int = 2, residual: str = "drop",
                 baseline: float | str = 0.0, target: int | None = None, seed: int = 0,
                 batch_size: int = 256, top_k: int = 10, max_per_image: int = 2,
                 nmf_max_iter: int = 500, nmf_tol: float = 1e-4,
                 progress: bool | str = "auto") -> None:
        self.model, self.layer, self.g, self.h = model, layer, g, h
        self.n_concepts, self.patch_size, self.crop_mode = n_concepts, patch_size, crop_mode
        self.crops_per_image, self.resize_crops = crops_per_image, resize_crops
        self.nb_design, self.n_replicates = nb_design, n_replicates
        self.residual, self.baseline, self.target, self.seed = residual, baseline, target, seed
        self.batch_size, self.top_k, self.max_per_image = batch_size, top_k, max_per_image
        self.nmf_max_iter, self.nmf_tol = nmf_max_iter, nmf_tol
        self.progress = progress

    # ------------------------------------------------------------------ split and checks

    def _split(self) -> tuple[Callable, Callable]:
        if getattr(self, "_gh", None) is not None:
            return self._gh
        if self.g is not None or self.h is not None:
            if self.g is None or self.h is None:
                raise InputError("pass both g= and h= (or model= and layer=)")
            gh = (self.g, self.h)
        elif self.model is not None and self.layer is not None:
            gh = split_model(self.model, self.layer)
        else:
            raise InputError("CRAFT needs model= and layer= (a module name), or g= and h=")
        self._gh = gh
        self._split_checked = False
        return gh

    def _device_dtype(self) -> tuple[torch.device, torch.dtype]:
        for m in (self.model, self.g, self.h):
            if isinstance(m, torch.nn.Module):
                for t in (*m.parameters(), *m.buffers()):
                    if t.is_floating_point():
                        return t.device, t.dtype
        return torch.device("cpu"), torch.float32

    def _check_images(self, images) -> torch.Tensor:
        x = torch.as_tensor(np.asarray(images) if not isinstance(images, torch.Tensor)
                            else images)
        shape = tuple(x.shape)
        expected = getattr(self, "input_shape_", None)
        exp_txt = f"(n, {', '.join(map(str, expected))})" if expected else "(n, C, H, W)"
        if x.ndim != 4:
            raise InputError(f"expected images {exp_txt} like the model input, got {shape}")
        if expected is None and shape[-1] in (1, 3, 4) and shape[1] not in (1, 3, 4):
            raise InputError(f"expected images (n, {shape[-1]}, {shape[1]}, {shape[2]}) "
                             f"(channels first) like the model input, got {shape}")
        if expected is not None and tuple(shape[1:]) != tuple(expected):
            raise InputError(f"expected images {exp_txt} like the model input, got {shape}")
        if shape[0] < 1:
            raise InputError("no images given")
        dev, dt = self._device_dtype()
        x = x.to(device=dev, dtype=dt)
        if not bool(torch.isfinite(x).all()):
            raise InputError("images contain NaN or infinite values")
        return x

    def _g(self, x: torch.Tensor, what: str = "images") -> torch.Tensor:
        """``g`` in chunks, float64 on the CPU, non-negativity checked (the NMF needs
        ``g ≥ 0``)."""
        g, h = self._split()
        outs = []
        with eval_session(g, h, self.model):
            for b, a in enumerate(range(0, x.shape[0], self.batch_size)):
                out = torch.as_tensor(g(x[a:a + self.batch_size])).detach()
                if not bool(torch.isfinite(out).all()):
                    raise XaiError(f"non-finite values from g in batch {b} ({what} "
                                   f"{a}–{min(x.shape[0], a + self.batch_size) - 1})")
                outs.append(out.to("cpu", torch.float64))
        A = torch.cat(outs)
        if A.ndim not in (2, 4):
            raise InputError(f"g returns shape {tuple(A.shape)}; expected (n, p) or "
                             "(n, p, H', W')")
        amax = float(A.abs().max()) if A.numel() else 0.0
        amin = float(A.min()) if A.numel() else 0.0
        if amin < -1e-6 * amax:
            name = self.layer or "g"
            hint = _next_relu(self.model, self.layer)
            raise InputError(f"activations at {name!r} are negative (min {amin:.3g}); NMF needs "
                             "non-negative activations: split after a ReLU" +
                             (f", e.g. {hint!r}" if hint else ""))
        return A.clamp_min(0)

    def _h(self, a: torch.Tensor) -> torch.Tensor:
        g, h = self._split()
        dev, dt = self._device_dtype()
        with eval_session(g, h, self.model):
            outs = [torch.as_tensor(h(a[s:s + self.batch_size].to(dev, dt))).detach()
                    .to("cpu", torch.float64) for s in range(0, a.shape[0], self.batch_size)]
        out = torch.cat(outs)
        return out[:, None] if out.ndim == 1 else out

    # ------------------------------------------------------------------ crops

    def _crops(self, x: torch.Tensor) -> tuple[torch.Tensor, np.ndarray]:
        n, _, H, W = x.shape
        ps = self.patch_size if self.patch_size is not None else default_patch_size(H, W)
        boxes = crop_boxes(n, H, W, ps, self.crop_mode, crops_per_image=self.crops_per_image,
                           seed=self.seed)
        self.patch_size_ = ps
        return x, boxes

    def _crop_activations(self, x: torch.Tensor, boxes: np.ndarray) -> torch.Tensor:
        """Pooled activations at the split of the crops ``boxes`` of ``x``, in batches."""
        step = max(1, self.batch_size)
        parts = []
        with Progress("xai craft crops", total=len(boxes), unit="crops",
                      enabled=self.progress) as bar:
            for a in range(0, len(boxes), step):
                act = self._g(crop_images(x, boxes[a:a + step], self.resize_crops), what="crops")
                parts.append(act.mean(dim=(2, 3)) if act.ndim == 4 else act)
                bar.update(min(step, len(boxes) - a))
        return torch.cat(parts)

    # ------------------------------------------------------------------ fit

    def fit(self, images, target: int | None = None) -> ConceptExplanation:
        """Learn the concept bank on crops of ``images`` (one class) and score the concepts on
        the same images with the default summary (Sobol total indices)."""
        t0 = time.perf_counter()
        self._gh = None
        self.input_shape_ = None
        self._split()
        if self.nb_design < 1 or self.nb_design & (self.nb_design - 1):
            raise InputError(f"nb_design must be a power of two (got {self.nb_design})")
        if self.n_replicates < 2:
            raise InputError(f"n_replicates must be ≥ 2 (got {self.n_replicates}): the Sobol "
                             "summary needs two scrambles for a per-image standard error")
        x = self._check_images(images)
        if self.model is not None and (self.g is not None):
            check_split(self.g, self.h, self.model, x[:self.batch_size])
        self.input_shape_ = tuple(x.shape[1:])
        acts = self._g(x)
        p = acts.shape[1]
        x, boxes = self._crops(x)
        r = self.n_concepts
        if r < 1 or r > min(len(boxes), p):
            raise InputError(f"n_concepts={r} needs ≥ {r} crops (got {len(boxes)}) and ≤ p={p} "
                             "channels; add images or lower the rank")
        if len(boxes) < 10 * r:
            warn(f"{len(boxes)} crops for {r} concepts; concepts will be unstable "
                 "(≥ 10 per concept advised)")
        A = self._crop_activations(x, boxes)
        if not bool(A.any()):
            raise InputError(f"activations at {self.layer or 'g'!r} are all zero; pick another "
                             "layer or check the images")
        self.bank_ = ConceptBank(r, max_iter=self.nmf_max_iter, tol=self.nmf_tol,
                                 seed=self.seed).fit(A.numpy())
        self.crop_boxes_ = boxes
        self.crop_activations_ = A
        self.spatial_ = acts.ndim == 4
        self._images_acts = (x, acts)
        result = self.importance(x, target=target if target is not None else self.target,
                                 _acts=acts)
        result.seconds = time.perf_counter() - t0
        self.result_ = result
        return result

    # ------------------------------------------------------------------ importance

    def _check_fitted(self) -> None:
        if getattr(self, "bank_", None) is None:
            raise XaiError("this CRAFT is not fitted; call fit(images) first")

    def importance(self, images, summary="sobol", *, target: int | None = None,
                   budget: int | None = None, tol: float | None = None,
                   seed: int | None = None, residual: str | None = None,
                   baseline: float | str | None = None, _acts=None) -> ConceptExplanation:
        """Concept importance of ``images`` with the fitted bank: the concept game
        (:mod:`xai.concepts.removal`) and any summary (``"sobol"``, ``"shapley"``,
        ``"occlusion"``, a registered name or a summary object). Returns a concept
        :class:`ConceptExplanation`."""
        self._check_fitted()
        t0 = time.perf_counter()
        x = self._check_images(images) if _acts is None else images
        acts = self._g(x) if _acts is None else _acts
        residual = residual or self.residual
        baseline = self.baseline if baseline is None else baseline
        u = self.bank_.encode(acts)
        logits = self._h(acts)
        k = logits.shape[1]
        if target is None:
            target = self.target
        if target is None:
            target = int(np.bincount(logits.argmax(1).numpy(), minlength=k).argmax())
        if not isinstance(target, int | np.integer) or not 0 <= int(target) < k:
            raise TargetError(f"target {target} out of range for {k} outputs")
        target = int(target)
        W = self.bank_.W
        names = [f"concept {i}" for i in range(W.shape[1])]
        mean = self.bank_.U.mean(0) if self.bank_.U is not None else None
        g, h = self._split()
        game = concept_game(h, W, u, activations=acts, residual=residual, baseline=baseline,
                            mean=mean, target=target, seed=seed if seed is not None
                            else self.seed, names=names)
        summ = _concept_summary(summary, self.bank_.r, nb_design=self.nb_design,
                                n_replicates=self.n_replicates, budget=budget, tol=tol,
                                seed=self.seed if seed is None else seed)
        with eval_session(g, h, self.model), Progress(
                "xai craft", enabled=self.progress, explained=len(u)) as bar:
            game.progress = bar
            bar.plan(summ.planned_rows(game), at_most=summ.stops_early)
            res = summ(game)
            v_empty = game.v_empty().numpy()
            v_full = game.v_full.numpy()
        values = np.asarray(res.values, dtype=np.float64)
        se = np.asarray(res.stderr, dtype=np.float64)
        se = np.where(np.isfinite(se), se, np.nan)
        n = values.shape[0]
        imp = values.mean(0)
        imp_se = values.std(0, ddof=1) / math.sqrt(n) if n > 1 else np.full_like(imp, np.nan)
        degenerate = np.flatnonzero(np.all(values == 0, axis=1)).tolist()
        diag = {"nmf_rel_error": getattr(self.bank_, "nmf_rel_error", None),
                "nmf_converged": getattr(self.bank_, "nmf_converged", None),
                "nmf_iterations": getattr(self.bank_, "nmf_iterations", None),
                "degenerate_images": degenerate, "sampler": "sobol-scrambled",
                "n_crops": len(self.crop_boxes_)}
        extras = {"importance": imp, "importance_stderr": imp_se, "bank": W,
                  "full_values": v_full}
        if self.bank_.U is not None:
            extras["crop_coefficients"] = self.bank_.U
            extras["crop_boxes"] = self.crop_boxes_
            extras["prototypes"] = prototypes(self.bank_.U, self.crop_boxes_[:, 0],
                                              self.top_k, self.max_per_image)
        summ_desc = summ.describe()
        result = ConceptExplanation(
            values=values, stderr=se, base_values=v_empty, feature_names=names,
            method="craft", removal=game.removal.describe(),
            behaviour=game.behaviour.describe(), summary=summ_desc,
            evaluations=int(game.rows_evaluated), seconds=time.perf_counter() - t0,
            options={"feature_kind": "concept", "layer": self.layer, "target": target,
                     "n_concepts": int(W.shape[1]), "patch_size": getattr(self, "patch_size_",
                                                                         None),
                     "crop_mode": self.crop_mode, "resize_crops": self.resize_crops,
                     "nb_design": self.nb_design, "n_replicates": self.n_replicates,
                     "residual": residual, "seed": self.seed, "diagnostics": diag,
                     "h_hash": _param_hash(h)},
            extras=extras)
        result._craft = self
        return result

    def from_result(self, result: Explanation) -> CRAFT:
        """Rebuild a fitted CRAFT from a (loaded) concept result and this object's split."""
        self._split()
        self.bank_ = ConceptBank.from_components(result.extras["bank"])
        if "crop_coefficients" in result.extras:
            self.bank_.U = np.asarray(result.extras["crop_coefficients"])
            self.crop_boxes_ = np.asarray(result.extras["crop_boxes"])
        saved = result.options.get("h_hash")
        if saved is not None and saved != _param_hash(self._gh[1]):
            warn("the parameters of h differ from those the result was made with")
        if isinstance(result, ConceptExplanation):
            result._craft = self
        self.result_ = result
        return self

    # ------------------------------------------------------------------ recursion

    def refine(self, concept: int, layer=None, *, n_concepts: int | None = None,
               quantile: float = 0.9, images=None, summary="sobol", target: int | None = None,
               budget: int | None = None, tol: float | None = None,
               seed: int | None = None) -> ConceptExplanation:
        """Recursion (Fel et al. 2023): split concept ``concept`` into sub-concepts at an
        earlier layer.

        1. the crops with ``U[:, concept]`` at or above its ``quantile`` and ``concept`` as
           their arg-max concept (at least ``n_concepts`` of them);
        2. ``A' = pool(g'(those crops))`` at ``layer`` (a module name before the fitted layer,
           or a ``(g', h')`` pair), NMF of rank ``n_concepts`` (default ``min(5, r)``) → the
           sub-bank ``W'``;
        3. sub-concept importance by the concept game at the earlier split with
           ``residual="keep"`` (forced: ``W'`` spans only part of the activations) and
           ``summary`` (default Sobol, as in :meth:`fit`), on the fit images whose parent
           coefficient exceeds its median, for the parent's target.

        Returns a :class:`ConceptExplanation` whose ``options`` record ``parent_concept``,
        ``parent_layer`` and ``quantile`` and whose ``extras`` hold ``parent_crops`` (indices of
        the selected parent crops) and ``refined_images``; its own :meth:`refine` recurses.
        ``images``: the images the parent was fitted on (needed only after :meth:`from_result`).
        """
        t0 = time.perf_counter()
        c, r2 = self._refine_arguments(concept, quantile, n_concepts)
        name, g2, h2 = _earlier_split(self.model, self.layer, layer)
        x, acts = self._fit_images(images)
        sel = self._parent_crops(c, quantile, r2)
        child = self._sub_bank(c, r2, name, g2, h2, x, sel)
        keep = self._strong_images(c, x, acts)
        if target is None:
            parent = getattr(self, "result_", None)
            target = parent.options.get("target") if parent is not None else self.target
        idx = torch.as_tensor(keep, device=x.device)
        result = child.importance(x[idx], summary=summary, target=target, budget=budget,
                                  tol=tol, seed=seed, residual="keep",
                                  _acts=child._images_acts[1][torch.as_tensor(keep)])
        result.options.update(parent_concept=c, parent_layer=self.layer,
                              quantile=float(quantile), parent_h_hash=_param_hash(self._gh[1]))
        result.extras["parent_crops"] = sel.astype(np.int64)
        result.extras["refined_images"] = keep.astype(np.int64)
        result.seconds = time.perf_counter() - t0
        child.result_ = result
        return result

    def _refine_arguments(self, concept, quantile, n_concepts) -> tuple[int, int]:
        """The checked parent concept and sub-bank rank of :meth:`refine`."""
        self._check_fitted()
        r = self.bank_.r
        if isinstance(concept, bool) or not isinstance(concept, int | np.integer) \
                or not 0 <= int(concept) < r:
            raise InputError(f"unknown concept {concept!r}; the fitted bank has concepts "
                             f"0..{r - 1}")
        if self.bank_.U is None or getattr(self, "crop_boxes_", None) is None:
            raise XaiError("refine needs the crop coefficients of the fit; fit(images) first "
                           "or rebuild from a result that has them (from_result)")
        if not isinstance(quantile, int | float | np.floating) or not 0 <= quantile <= 1:
            raise InputError(f"quantile must be in [0, 1] (got {quantile!r})")
        r2 = min(5, r) if n_concepts is None else n_concepts
        if isinstance(r2, bool) or not isinstance(r2, int | np.integer) or r2 < 1:
            raise InputError(f"n_concepts must be a positive int (got {n_concepts!r})")
        return int(concept), int(r2)

    def _fit_images(self, images) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The images of the fit and the parent's activations of them (``None`` when the images
        are given again: they are computed when needed)."""
        if images is None:
            stored = getattr(self, "_images_acts", None)
            if stored is None:
                raise XaiError("refine after loading needs the images the concepts were fitted "
                               "on: result.refine(concept, layer, images=...)")
            return stored
        x = self._check_images(images)
        n_fit = int(self.crop_boxes_[:, 0].max()) + 1
        if n_fit > x.shape[0]:
            raise InputError(f"the crops come from {n_fit} images but {x.shape[0]} were given; "
                             "pass the images of the fit")
        return x, None

    def _parent_crops(self, c: int, quantile: float, r2: int) -> np.ndarray:
        """Indices of the crops of concept ``c``: its coefficient at or above its ``quantile``
        and ``c`` their strongest concept."""
        U = self.bank_.U
        col = U[:, c]
        thr = float(np.quantile(col, quantile))
        sel = np.flatnonzero((col >= thr) & (U.argmax(1) == c) & (col > 0))
        if len(sel) < r2:
            raise InputError(f"only {len(sel)} crops select concept {c} at quantile {quantile}; "
                             f"lower quantile or n_concepts={r2}, or add images")
        if len(sel) < 10 * r2:
            warn(f"{len(sel)} crops for {r2} sub-concepts; sub-concepts will be "
                 "unstable (≥ 10 per concept advised)")
        return sel

    def _sub_bank(self, c: int, r2: int, name: str | None, g2: Callable, h2: Callable,
                  x: torch.Tensor, sel: np.ndarray) -> CRAFT:
        """A CRAFT at the earlier split ``(g2, h2)`` fitted on the parent concept's crops
        ``sel``: its NMF bank of rank ``r2`` holds the sub-concepts."""
        child = CRAFT(self.model, layer=name, g=None if name else g2, h=None if name else h2,
                      n_concepts=r2, patch_size=self.patch_size, crop_mode=self.crop_mode,
                      crops_per_image=self.crops_per_image, resize_crops=self.resize_crops,
                      nb_design=self.nb_design, n_replicates=self.n_replicates,
                      residual="keep", baseline=self.baseline, target=self.target,
                      seed=self.seed, batch_size=self.batch_size, top_k=self.top_k,
                      max_per_image=self.max_per_image, nmf_max_iter=self.nmf_max_iter,
                      nmf_tol=self.nmf_tol)
        child._gh = (g2, h2)
        child.input_shape_ = tuple(x.shape[1:])
        child.patch_size_ = getattr(self, "patch_size_", self.patch_size)
        if name is None and self.model is not None:
            check_split(g2, h2, self.model, x[:self.batch_size])
        sub_boxes = self.crop_boxes_[sel]
        A2 = child._crop_activations(x, sub_boxes)
        if not bool(A2.any()):
            raise InputError(f"activations at {name or 'g'!r} are all zero on the crops of "
                             f"concept {c}; pick another layer")
        child.bank_ = ConceptBank(r2, max_iter=self.nmf_max_iter, tol=self.nmf_tol,
                                  seed=self.seed).fit(A2.numpy())
        child.crop_boxes_ = sub_boxes
        child.crop_activations_ = A2
        acts2 = child._g(x)
        child.spatial_ = acts2.ndim == 4
        child._images_acts = (x, acts2)
        return child

    def _strong_images(self, c: int, x: torch.Tensor, acts: torch.Tensor | None) -> np.ndarray:
        """Indices of the images whose coefficient of concept ``c`` exceeds its median (at or
        above it when none exceeds it)."""
        if acts is None:
            acts = self._g(x)
        pooled = acts.mean(dim=(2, 3)) if acts.ndim == 4 else acts
        pc = self.bank_.encode(pooled)[:, c].numpy()
        if not (pc > 0).any():
            raise InputError(f"concept {c} is absent from every image (zero coefficients); "
                             "nothing to refine")
        med = float(np.median(pc))
        keep = np.flatnonzero(pc > med)
        if len(keep) == 0:
            keep = np.flatnonzero(pc >= med)
        return keep

    # ------------------------------------------------------------------ maps

    def attribution_maps(self, images, concepts=None, method: str = "projection") -> np.ndarray:
        """Concept attribution maps ``(n, r_sel, H, W)`` ≥ 0 (``"projection"``): the
        per-position coefficients of ``g(x)``, bilinearly upsampled to the image."""
        self._check_fitted()
        if method != "projection":
            raise NotImplementedError("only method='projection' is implemented")
        if np.ndim(images) == 3:
            images = images[None]
        x = self._check_images(images)
        acts = self._g(x)
        if acts.ndim != 4:
            raise InputError("projection maps need spatial activations; split before global "
                             "pooling or use method='gradient'")
        u = self.bank_.encode(acts).permute(0, 3, 1, 2)  # (n, r, H', W')
        if concepts is None:
            concepts = list(range(u.shape[1]))
        concepts = [int(c) for c in np.atleast_1d(concepts)]
        maps = F.interpolate(u[:, concepts], size=tuple(x.shape[2:]), mode="bilinear",
                             align_corners=False)
        return maps.clamp_min(0).numpy()


def _next_relu(model, layer: str | None) -> str | None:
    """The first ReLU module after ``layer`` (a split point with non-negative activations)."""
    if model is None or layer is None:
        return None
    names = [n for n, _ in model.named_modules()]
    after = names[names.index(layer) + 1:] if layer in names else []
    mods = dict(model.named_modules())
    return next((n for n in after if isinstance(mods[n], torch.nn.ReLU)), None)


def _concept_summary(summary, r: int, *, nb_design: int, n_replicates: int, budget, tol,
                     seed: int):
    """The summary object for ``summary``: ``"sobol"`` = CRAFT's Sobol total indices
    (Fel et al. 2021) on ``nb_design`` rows × ``n_replicates`` scrambles, ``"shapley"`` =
    exact up to 12 concepts and permutation sampling above, ``"occlusion"`` = remove each
    concept alone, another name = the registered summary; an object is used as it is."""
    from .. import registry
    from ..summaries import ExactShapley, PermutationShapley, RemoveIndividual, SobolTotal

    if not isinstance(summary, str):
        return summary
    key = summary.lower().replace("_", "-")
    if key in ("sobol", "sobol-total"):
        return SobolTotal(n_rows=nb_design, replicates=n_replicates, seed=seed,
                          budget=budget, tol=tol, design="continuous")
    if key == "shapley":
        if r <= 12:
            return ExactShapley(budget=budget)
        return PermutationShapley(budget=budget, tol=tol, seed=seed)
    if key == "occlusion":
        return RemoveIndividual()
    cls = registry.get("summary", key)
    params = inspect.signature(cls).parameters
    kw = {k: v for k, v in (("budget", budget), ("tol", tol), ("seed", seed))
          if k in params and v is not None}
    return cls(**kw)


def _earlier_split(model, fitted_layer: str | None,
                   layer) -> tuple[str | None, Callable, Callable]:
    """``(name, g', h')`` for ``layer`` = a module name before ``fitted_layer`` or a
    ``(g', h')`` pair."""
    if isinstance(layer, tuple | list) and len(layer) == 2 and all(map(callable, layer)):
        return None, layer[0], layer[1]
    if not isinstance(layer, str):
        raise InputError("refine needs an earlier layer: layer='<module name>' or "
                         f"layer=(g', h'); got {layer!r}")
    if model is None:
        raise InputError(f"refine at layer {layer!r} needs the model (CRAFT(model, layer)); "
                         "or pass layer=(g', h')")
    g2, h2 = split_model(model, layer)  # unknown names raise here, listing the layers
    names = [n for n, _ in model.named_modules()]
    if fitted_layer is not None and fitted_layer in names:
        def end(name: str) -> int:  # position of the module's output in module order
            return max(i for i, n in enumerate(names)
                       if n == name or n.startswith(name + "."))

        if end(layer) >= end(fitted_layer):
            raise InputError(f"{layer!r} is not before {fitted_layer!r}; refine decomposes a "
                             "concept at an earlier layer")
    return layer, g2, h2


def _param_hash(h) -> str | None:
    if not isinstance(h, torch.nn.Module):
        return None
    import hashlib

    m = hashlib.sha256()
    for _, t in sorted(h.state_dict().items()):
        m.update(t.detach().cpu().contiguous().numpy().tobytes())
    return m.hexdigest()[:16]
