"""The game ``v(masks)``: removal and behaviour applied to a model for many explicands.

Summaries talk only to a :class:`Game`. It builds synthetic inputs for blocks of
``(explicand, coalition, draw)`` triples with one vectorised ``where`` on the model's device,
calls the model in chunks sized under the memory cap, averages over the removal's draws with
running sums, applies the behaviour, caches the full and empty coalitions and repeated masks,
validates everything, and counts the rows it evaluates.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from . import planner
from ._warn import warn
from .behaviours import Behaviour
from .cache import CoalitionCache
from .config import config, parse_size
from .errors import InputError, MaskError
from .features import FeatureMap
from .models import MEMORY_FORMATS, Model
from .removals import GameContext, Removal, check_finite, check_fractional
from .synthesis import SyntheticInputs

#: rows of at least this many elements build grid blocks by table lookup (xai.selection)
SELECTION_MIN_ELEMENTS = 1024
#: background rows per unit of a row-sampled dataset game (SAGE) with squared-error loss.
#: A unit's variance is about A + B/K' (data row and permutation; background) for a cost
#: ∝ K': the fewest draws that still give a variance for the correction win while the
#: model's rows dominate the time. Benchmark problem 6 (64 background rows), rows ×
#: variance per unit: all 64 rows 37.5k, 8: 5.8k, 4: 3.9k, 2: 3.1k
AUTO_DRAWS_PER_UNIT = 2

#: data rows per block of a dataset game's mean: each block summed row after row, the blocks'
#: sums added in order, so that shards of the rows (Ray tasks) give the same value exactly
DATA_BLOCK_ROWS = 256


def data_blocks(n: int) -> list[tuple[int, int]]:
    """Row ranges ``[a, b)`` of :data:`DATA_BLOCK_ROWS` rows over ``n`` data rows."""
    return [(a, min(n, a + DATA_BLOCK_ROWS)) for a in range(0, n, DATA_BLOCK_ROWS)]


def row_sum(values: torch.Tensor) -> torch.Tensor:
    """The rows of ``values`` added one after another: the same bits whatever the shape, the
    threads or the rows around them (a reduction kernel's order depends on all three). A
    cumulative sum on the CPU adds along its axis in that order, in one kernel."""
    return values.cumsum(0)[-1]


def blocks_mean(sums: list[torch.Tensor], n: int) -> torch.Tensor:
    """The mean over ``n`` rows from the :func:`row_sum` of each data block, added in block
    order; ``(1, ...)``."""
    total = sums[0].clone()
    for part in sums[1:]:
        total += part
    return (total / n).unsqueeze(0)


def unique_rows(masks: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distinct rows of a boolean matrix ``(m, d)``: ``(uniq, inverse, packed)`` with ``uniq``
    and ``inverse`` as ``np.unique(masks, axis=0, return_inverse=True)`` (same order) and
    ``packed`` the ``np.packbits`` rows of ``uniq``.

    Rows are compared packed, 8 to a byte: as one big-endian integer when ``d <= 64``, else as
    one opaque byte string (compared bytewise, which is the boolean rows' lexicographic order).
    """
    m = masks.shape[0]
    packed = np.packbits(masks, axis=1)
    if m == 0:
        return masks, np.zeros(0, dtype=np.int64), packed
    first, inv = first_and_inverse(packed)
    return masks[first], inv, packed[first]


def first_and_inverse(packed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For byte rows ``(m, nb)`` (``m > 0``): the index of each distinct row's first
    occurrence and every row's distinct-row number, in the order of ``np.unique`` over the
    rows. Rows are compared as one big-endian integer when ``nb <= 8``, else as one opaque
    byte string (bytewise: the lexicographic order)."""
    m, nb = packed.shape
    if nb <= 8:
        wide = np.zeros((m, 8), dtype=np.uint8)
        wide[:, :nb] = packed
        keys = wide.view(">u8").ravel().astype(np.uint64)
    else:
        keys = np.ascontiguousarray(packed).view(np.dtype((np.void, nb))).ravel()
    _, first, inv = np.unique(keys, return_index=True, return_inverse=True)
    return first, inv.ravel()


def check_masks(masks, d: int, nrows: int, removal: Removal) -> np.ndarray:
    """Coalitions ``(m, d)`` or ``(nrows, m, d)`` as booleans, or as fractions in ``[0, 1]``
    where ``removal`` accepts them; ``MaskError`` otherwise."""
    masks = masks.cpu().numpy() if isinstance(masks, torch.Tensor) else np.asarray(masks)
    if masks.ndim not in (2, 3) or masks.shape[-1] != d:
        raise MaskError(f"masks must have shape (m, {d}) or (rows, m, {d}) for "
                        f"{d} features; got {masks.shape}")
    if masks.ndim == 3 and masks.shape[0] != nrows:
        raise MaskError(f"per-explicand masks have {masks.shape[0]} rows for {nrows} "
                        "explicands")
    if masks.dtype != bool:
        if not np.issubdtype(masks.dtype, np.number):
            raise MaskError(f"masks must be boolean or numeric, got {masks.dtype}")
        if np.isnan(masks).any() or masks.min() < 0 or masks.max() > 1:
            bad = masks[np.isnan(masks) | (masks < 0) | (masks > 1)].ravel()[0]
            raise MaskError(
                f"mask value {bad} is outside [0, 1] (removal {removal.name!r}); masks "
                "are booleans (True = feature kept) or, for removals that accept fractions "
                "(baseline, blur), values in [0, 1]")
        if np.all((masks == 0) | (masks == 1)):
            masks = masks.astype(bool)
        else:
            check_fractional(removal, True)
            masks = masks.astype(np.float64)
    return masks


def flat_explicands(X: torch.Tensor, model: Model, kind: str,
                    memory_format: str) -> torch.Tensor:
    """Explicands ``(n, D)`` on the model's device, floating ones in its dtype (token ids keep
    theirs), checked: a batch axis, finite values, images for ``"channels_last"``."""
    if X.ndim < 2:
        raise InputError(f"explicands must have a batch axis: got shape {tuple(X.shape)}")
    check_finite(X, "X")
    if memory_format == "channels_last" and X.ndim != 4:
        raise InputError(f"memory_format='channels_last' needs images (n, C, H, W); got "
                         f"inputs of shape {tuple(X.shape)} (use 'auto' or 'contiguous')")
    if not X.is_floating_point() and kind != "tokens":
        X = X.to(model.dtype)
    return X.reshape(X.shape[0], -1).to(device=model.device,
                                        dtype=model.dtype if X.is_floating_point() else None)


def position_features(feature_map: FeatureMap, n: int,
                      input_shape: tuple[int, ...]) -> np.ndarray:
    """The feature of every input element ``(1 or n, D)``, ``d`` where always kept; the map
    must have one row per explicand (or one shared) and one feature count."""
    if not feature_map.shared and feature_map.index.shape[0] != n:
        raise InputError(f"the feature map has {feature_map.index.shape[0]} per-explicand "
                         f"maps for {n} explicands")
    if not feature_map.shared and len(np.unique(feature_map.d_per_map)) > 1:
        raise InputError("explicands in one game must have the same number of features; "
                         "group them by feature count (xai.explain does this)")
    idx = feature_map.full_index(input_shape)
    return np.where(idx < 0, feature_map.d, idx)


def draws_part(behaviour: Behaviour, aggregate: str, out: torch.Tensor, w: torch.Tensor,
               rows) -> torch.Tensor:
    """The weighted sum over a block of draws ``out`` ``(c, K', k)`` (on the behaviour's
    scale) of pairs whose explicands are ``rows`` ``(c,)``: of the outputs (E-pred,
    ``aggregate="prediction"``; the behaviour follows once every draw is summed), or of each
    draw's behaviour (E-beh)."""
    if aggregate == "prediction":
        return (out * w[None, :, None]).sum(1)
    c, kb, k = out.shape
    vals = behaviour(out.reshape(-1, k), torch.as_tensor(rows).repeat_interleave(kb))
    vals = vals.reshape(c, kb, *vals.shape[1:])
    return (vals * w.reshape(1, -1, *([1] * (vals.ndim - 2)))).sum(1)


def behaviour_on_draws(behaviour: Behaviour, weights: torch.Tensor, F: torch.Tensor,
                       rows: torch.Tensor) -> torch.Tensor:
    """E-beh for x-independent outputs ``F`` of shape (1, K, k) shared by ``rows``."""
    out = behaviour.on_scale(F[0]).expand(len(rows), *F.shape[1:])
    return draws_part(behaviour, "behaviour", out, weights, rows)


class Game:
    """Cooperative game of ``n`` explicands over ``d`` features.

    Parameters
    ----------
    model : adapter (:func:`xai.models.as_model`).
    X : explicands ``(n, *input_shape)`` (numpy or torch).
    removal, behaviour : the two axes.
    feature_map : :class:`~xai.features.FeatureMap` with one shared map or one per explicand.
    y : labels for loss behaviours.
    aggregate : ``"prediction"`` (E-pred: average model outputs over draws, then apply the
        behaviour; default) or ``"behaviour"`` (E-beh: average the behaviour over draws).
    memory_cap : bytes (or ``"512MiB"``) that one intermediate array may take; default
        ``xai.config.memory_cap`` (256 MiB).
    batch_size : rows per model call; None = as many as the memory cap allows (at most
        16,384).
    seed : seed of the removal's random draws.
    kind : ``"tabular"``, ``"image"`` or ``"tokens"`` (guessed from the input rank).
    memory_format : layout of the synthetic images ``(n, C, H, W)`` passed to the model:
        ``"auto"`` (default): channels-last where a torch CNN on a CPU gives the same output
        (:meth:`~xai.synthesis.SyntheticInputs.choose_memory_format`); ``"channels_last"``
        always, ``"contiguous"`` never. Same values in every layout.
    """

    def __init__(self, model: Model, X, removal: Removal, behaviour: Behaviour,
                 feature_map: FeatureMap, *, y=None, aggregate: str | None = None,
                 memory_cap: int | str | None = None, batch_size: int | None = None,
                 seed: int | np.random.SeedSequence | None = None, kind: str | None = None,
                 cache: bool = True, progress=None, memory_format: str = "auto") -> None:
        if memory_format not in MEMORY_FORMATS:
            from .errors import unknown_name

            raise unknown_name("memory_format", memory_format, list(MEMORY_FORMATS))
        self.memory_format = memory_format
        self.model = model
        self.removal = removal
        self.behaviour = behaviour
        self.feature_map = feature_map
        self.memory_cap = parse_size(memory_cap) if memory_cap is not None else config.memory_cap
        self.batch_size = batch_size
        self.progress = progress
        X = torch.as_tensor(X) if not isinstance(X, torch.Tensor) else X
        self.n, self.input_shape = X.shape[0], tuple(X.shape[1:])
        self.kind = kind or {1: "tabular", 2: "image", 3: "image"}.get(len(self.input_shape),
                                                                          "tensor")
        self.X = flat_explicands(X, model, self.kind, memory_format)
        self.d = feature_map.d
        idx = position_features(feature_map, self.n, self.input_shape)
        self.index = torch.as_tensor(idx, device=model.device)
        ss = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)
        self.seed = ss
        self.ctx = GameContext(self.X, self.index, self.d, self.input_shape,
                               feature_map.channel_axis, ss.spawn(1)[0], self.kind)
        self.aggregate = aggregate or removal.aggregate
        if self.aggregate not in ("prediction", "behaviour"):
            from .errors import unknown_name

            raise unknown_name("aggregate option", self.aggregate, ("prediction", "behaviour"))
        removal.fit(self.ctx)
        # v(∅) is shared by all explicands only when nothing of x survives in it: the removal
        # says so, and no position is always kept (fixed=)
        self._empty_shared = not removal.empty_depends_on_x and not bool((idx == self.d).any())
        self.K = int(removal.n_draws)
        w = removal.weights
        self.weights = (torch.full((self.K,), 1.0 / self.K, dtype=torch.float64) if w is None
                        else torch.as_tensor(w, dtype=torch.float64))
        self.inputs = SyntheticInputs(self.X, self.input_shape, self.index, feature_map,
                                      self.d, removal, self.K, self.memory_cap, model.device)
        self.use_cache = cache
        self.cache = CoalitionCache(self.n, self.memory_cap)
        self._clear_cache()
        self.rows_evaluated = 0
        self._y = y
        self._prepared = False
        self._v_empty: torch.Tensor | None = None
        behaviour.validate(y, self.n, model.output_kind, model.is_classifier)

    def _prepare(self) -> None:
        """Evaluate the full coalition (one row per explicand) and fix the behaviour's targets;
        deferred to the first use so that every input check runs before any model call."""
        if self._prepared:
            return
        self.k = 1  # until the model has answered; sizes the first chunks
        step = self._rows_per_call()
        with self.model.session():
            parts = [self._model(self.X[a:a + step].reshape(-1, *self.input_shape), chunk=-1,
                                 rows=np.arange(a, min(self.n, a + step)))
                     for a in range(0, self.n, step)]
        self.full_outputs = torch.cat(parts)
        self.behaviour.prepare(self.full_outputs, self._y, self.model.output_kind,
                               self.model.is_classifier)
        self.k = self.full_outputs.shape[1]
        self._v_full = self.behaviour(self.behaviour.on_scale(self.full_outputs),
                                      torch.arange(self.n))
        self.inputs.choose_memory_format(
            self.memory_format, self.model,
            lambda z: self._model(z, chunk=-1, rows=np.arange(1)), self.full_outputs[:1])
        self._prepared = True




    @property
    def v_full(self) -> torch.Tensor:
        """``v(D)`` of every explicand (one model row each)."""
        self._prepare()
        return self._v_full

    # ---- public API (xai.protocol.SummaryGame) ------------------------------------------

    sample_rows: int | None = None  # a local game evaluates every explicand

    @property
    def rows_per_coalition(self) -> int:
        """Model rows one coalition costs per explicand (``K_rem``)."""
        return self.K

    @property
    def accepts_fractional(self) -> bool:
        """Whether the removal takes fractional masks in ``[0, 1]``."""
        return bool(self.removal.accepts_fractional)

    def planned_rows(self, coalitions: int) -> int:
        """Model rows that ``D``, ``∅`` and ``coalitions`` other distinct coalitions of every
        explicand cost: one row per explicand for ``D``, ``K_rem`` for ``∅`` (once when every
        explicand shares it) and ``K_rem`` per other coalition and explicand."""
        empty = self.K if self._empty_shared else self.n * self.K
        return self.n + empty + int(coalitions) * self.n * self.K

    def require_fractional(self) -> None:
        """Raise the removal's named error unless it accepts fractional masks."""
        check_fractional(self.removal, True)

    @property
    def positions(self) -> tuple[tuple[int, ...], str]:
        """The feature map's position shape and kind."""
        return tuple(self.feature_map.pos_shape), self.feature_map.kind

    @property
    def value_scale(self) -> str:
        """``"probability"`` when the behaviour watches probabilities, else ``"raw"``; read
        before any model call as :meth:`Behaviour.prepare` will resolve it."""
        out = getattr(self.behaviour, "resolved_output", None)
        if out is None and self.behaviour.name == "prediction":
            out = self.behaviour.output
            if out == "auto":
                out = "probability" if self.model.output_kind == "probability" else "raw"
        return "probability" if out == "probability" else "raw"

    @property
    def value_shape(self) -> tuple[int, ...]:
        """Shape of one coalition's value: ``()`` or ``(k,)`` for ``target="all"``."""
        self._prepare()
        nv = self.behaviour.n_values
        return () if nv is None else (nv,)

    def v_empty(self, rows: np.ndarray | None = None) -> torch.Tensor:
        """``v(∅)`` for explicands ``rows`` (cached)."""
        self._prepare()
        if self._v_empty is None:
            self._v_empty = self(np.zeros((1, self.d), dtype=bool))[:, 0]
        return self._v_empty if rows is None else self._v_empty[torch.as_tensor(rows)]

    def __call__(self, masks, rows: np.ndarray | None = None,
                 draws: np.ndarray | None = None) -> torch.Tensor:
        """Values of coalitions ``masks`` for explicands ``rows`` (default all).

        ``masks`` is ``(m, d)`` (the same coalitions for every explicand) or ``(len(rows), m,
        d)``; boolean (True = kept) or fractional in ``[0, 1]`` where the removal accepts it.
        Returns float64 ``(len(rows), m)`` or ``(len(rows), m, k)``.

        ``draws`` ``(len(rows), K')``: evaluate each row's coalitions on a subset of the
        removal's draws (indices into ``0..K-1``, distinct, drawn uniformly at random by the
        caller) instead of all ``K``; the value is then an unbiased estimate of the all-draws
        value, by the behaviour's :meth:`~xai.behaviours.Behaviour.subsample_correction`
        (E-pred with uniform draw weights only; no cache).
        """
        rows = np.arange(self.n) if rows is None else np.asarray(rows, dtype=np.int64)
        masks = check_masks(masks, self.d, len(rows), self.removal)
        self._prepare()
        per_row = masks.ndim == 3
        nr = len(rows)
        m = masks.shape[-2]
        if draws is not None:
            draws = self._check_draws(draws, nr)
            if not per_row:
                masks = np.broadcast_to(masks, (nr, *masks.shape))
            return self._averaged(np.repeat(rows, m), masks.reshape(nr * m, self.d),
                                  draws=np.repeat(draws, m, axis=0)).reshape(
                nr, m, *self.value_shape)
        out = torch.empty((nr, m, *self.value_shape), dtype=torch.float64)
        if not per_row:
            packed = None
            if masks.dtype == bool:
                uniq, inv, packed = unique_rows(masks)
            else:
                uniq, inv = masks, np.arange(m)
            vals = self._values_shared(uniq, rows, packed)
            if vals.shape[1] == m and bool((inv == np.arange(m)).all()):
                return vals  # already in the callers' order
            return torch.index_select(vals, 1, torch.as_tensor(inv), out=out)
        flat_rows = np.repeat(rows, m)
        flat_masks = masks.reshape(nr * m, self.d)
        inert = self.inert_features(rows) if masks.dtype == bool else None
        if inert is not None and inert.any():
            # an inert feature's bit changes no synthetic input: pairs whose masks agree on
            # the other features (the packed masks with the inert bits set) are evaluated once
            packed = np.packbits(masks, axis=2) | np.packbits(inert, axis=1)[:, None, :]
            keys = np.concatenate([flat_rows.astype(">u8")[:, None].view(np.uint8),
                                   packed.reshape(nr * m, -1)], 1)
            first, inv = first_and_inverse(keys)
            if len(first) < len(flat_rows):
                vals = self._averaged(flat_rows[first], flat_masks[first])
                return vals[torch.as_tensor(inv)].reshape(nr, m, *self.value_shape)
        vals = self._averaged(flat_rows, flat_masks)
        return vals.reshape(nr, m, *self.value_shape)


    def inert_features(self, rows: np.ndarray) -> np.ndarray | None:
        """``(len(rows), d)`` bool: the features of each explicand whose input elements equal
        their replacements in every draw, bit for bit
        (:meth:`~xai.synthesis.SyntheticInputs.inert_features`); None when the removal's
        replacements depend on the coalition."""
        self._prepare()
        return self.inputs.inert_features(rows)

    @property
    def can_redraw(self) -> bool:
        """True when the removal can draw fresh random replacements (repeats)."""
        return hasattr(self.removal, "redraw")

    def redraw(self, repeat: int) -> None:
        """Fresh random replacements for repeat ``repeat``; clears cached values."""
        self.removal.redraw(repeat)
        self._clear_cache()
        self._v_empty = None

    # ---- internals ---------------------------------------------------------------------

    def _check_draws(self, draws, nrows: int) -> np.ndarray:
        """Validate per-row draw subsets for :meth:`__call__`."""
        draws = np.asarray(draws, dtype=np.int64)
        if draws.ndim != 2 or draws.shape[0] != nrows or not 2 <= draws.shape[1] <= self.K:
            raise InputError(f"draw subsets must have shape ({nrows}, K') with 2 <= K' <= "
                             f"{self.K} (the removal's draws); got {draws.shape}")
        if draws.min() < 0 or draws.max() >= self.K:
            raise InputError(f"draw indices must lie in 0..{self.K - 1}")
        if self.aggregate != "prediction" or not torch.allclose(
                self.weights, torch.full_like(self.weights, 1.0 / self.K)):
            raise InputError("draw subsets need the E-pred aggregate and equally weighted "
                             "draws (e.g. no k-means background summary)")
        probe = self.behaviour.subsample_correction(torch.zeros(1, max(1, self.k or 1),
                                                                dtype=torch.float64))
        if probe is None:
            raise InputError(f"the {self.behaviour.name!r} behaviour has no exact correction "
                             "for a subset of the removal's draws (only squared-error losses "
                             "have one): evaluate every draw (draws_per_unit=None), or use "
                             "loss='squared-error'")
        return draws

    def _values_shared(self, uniq: np.ndarray, rows: np.ndarray,
                       packed: np.ndarray | None = None) -> torch.Tensor:
        """Values ``(len(rows), len(uniq), ...)`` of shared unique coalitions (``packed``: their
        ``np.packbits`` rows, when the caller has them)."""
        nr, mu = len(rows), len(uniq)
        out = torch.empty((nr, mu, *self.value_shape), dtype=torch.float64)
        todo = np.ones(mu, dtype=bool)
        boolean = uniq.dtype == bool
        if boolean:
            full = uniq.all(axis=1)
            if full.any():
                out[:, full] = self.v_full[torch.as_tensor(rows)][:, None]
                todo &= ~full
            empty = ~uniq.any(axis=1)
            if empty.any() and self._empty_shared and self._v_empty is not None:
                out[:, empty] = self._v_empty[torch.as_tensor(rows)][:, None]
                todo &= ~empty
            keys = None
            if self.use_cache:
                if packed is None:
                    packed = np.packbits(uniq, axis=1)
                keys = [k.tobytes() for k in packed]
                self.cache.lookup(keys, todo, rows, out)
            if empty.any() and todo[empty].any() and self._empty_shared:
                # x-independent empty coalition: evaluate once, for explicand 0's draws
                j = int(np.flatnonzero(empty)[0])
                F = self._averaged(np.zeros(1, dtype=np.int64), uniq[j:j + 1], raw=True)
                all_rows = torch.arange(self.n)
                if self.aggregate == "prediction":
                    Fbar = (self.behaviour.on_scale(F) * self.weights[None, :, None]).sum(1)
                    self._v_empty = self.behaviour(Fbar.expand(self.n, -1), all_rows)
                else:
                    self._v_empty = behaviour_on_draws(self.behaviour, self.weights, F, all_rows)
                out[:, empty] = self._v_empty[torch.as_tensor(rows)][:, None]
                todo &= ~empty
        else:
            keys = None
        idx = np.flatnonzero(todo)
        if idx.size:
            vals = self._averaged(rows, uniq[idx], shared=True).reshape(
                nr, idx.size, *self.value_shape)
            if idx.size == mu:  # every coalition evaluated: the values are the result
                out = vals
            else:
                out[:, torch.as_tensor(idx)] = vals
            if keys is not None:
                self.cache.store(keys, idx, rows, vals, self.value_shape)
        return out

    def _clear_cache(self) -> None:
        """Forget cached coalition values and the synthetic inputs' memos."""
        self.cache.clear()
        self.inputs.clear()

    def _rows_per_call(self, fractional: bool = False) -> int:
        """Rows of synthetic inputs built at a time (a block), so that the block's arrays
        (explicands, expanded masks, replacements, synthetic inputs and, for fractional masks,
        the interpolation's temporaries) stay under the memory cap together.

        The sizes are :mod:`xai.planner`'s: the user's batch size, cache-sized blocks and calls
        for a torch module on a CPU, else large blocks, one call each."""
        D = self.X.shape[1]
        item = self.X.element_size()
        arrays = 7 if fractional else 4
        bytes_per_row = D * (arrays * item + 1) + 8 * self.k * 2
        if self.memory_cap < bytes_per_row and not getattr(self, "_warned_cap", False):
            warn(f"one model input row ({bytes_per_row} bytes) exceeds the memory cap "
                 f"({self.memory_cap} bytes); evaluating one row per call")
            self._warned_cap = True
        return planner.block_rows(self.model, D * item, bytes_per_row, self.memory_cap,
                                  self.batch_size)

    def _call_rows(self) -> int | None:
        """Rows per model call within a block (:func:`xai.planner.call_rows`); None: the
        whole block in one call."""
        return planner.call_rows(self.model, self.X.shape[1] * self.X.element_size(),
                                 self.batch_size)

    def _averaged(self, rows: np.ndarray, masks: np.ndarray, raw: bool = False,
                  shared: bool = False, draws: np.ndarray | None = None) -> torch.Tensor:
        """Behaviour values of ``(explicand, coalition)`` pairs ``(P, ...)``: pair ``p`` is
        ``(rows[p], masks[p])``, or with ``shared`` every row with every mask, row-major
        (``P = len(rows) * len(masks)``, formed block by block, never all at once). The value
        is the removal average of the outputs, then the behaviour (E-pred), or the average of
        the behaviour over draws (E-beh); ``raw=True``: the per-draw raw outputs ``(P, K, k)``.
        ``draws`` ``(P, K')``: each pair averages its own draws, corrected to be unbiased."""
        nr, mu = len(rows), len(masks)
        P = nr * mu if shared else nr
        K, k = (self.K if draws is None else draws.shape[1]), self.k
        if P == 0:
            return torch.zeros((0, K, k) if raw else (0, *self.value_shape), dtype=torch.float64)
        boolean = masks.dtype == bool
        per_call = self._rows_per_call(fractional=not boolean)
        kb = min(K, per_call)  # draws per block
        cb = max(1, per_call // kb)  # pairs per block
        dev = self.model.device
        # every pair is written by exactly one block: no fill
        result = torch.empty((P, K, k) if raw else (P, *self.value_shape), dtype=torch.float64)
        grid_view = result.view(nr, mu, *result.shape[1:]) if shared else None
        masks_all = torch.as_tensor(masks, device=dev)
        rows_all = torch.as_tensor(rows, device=dev)
        single = draws is None and K == 1 and float(self.weights[0]) == 1.0  # one draw, weight 1
        # one boolean mask and one draw per pair: inputs built over the explicands' copy
        fill_x = boolean and K == 1 and draws is None and self.inputs.strategy.in_place
        # many coalitions of an explicand with one replacement each, one mask value per input
        # element (no channel broadcast, e.g. channels-last): by table lookup
        lookup = boolean and K == 1 and draws is None and self.removal.mask_free and \
            self.inputs.lookup_layout and self.X.shape[1] >= SELECTION_MIN_ELEMENTS
        chunk_id = 0
        with self.model.session():
            for i0, i1, j0, j1 in planner.pair_blocks(nr, mu, cb, shared):
                grid = j0 >= 0
                r = rows_all[i0:i1]
                mask_t = masks_all[j0:j1] if grid else masks_all[i0:i1]
                mm = j1 - j0 if grid else 1
                c = (i1 - i0) * mm  # pairs in this block
                rows_np = np.repeat(rows[i0:i1], mm) if grid else rows[i0:i1]
                in_place = not grid and fill_x  # one pair per row: built over a copy of xs
                x, xs = self.inputs.explicands(r, copy=in_place)
                plan = self.inputs.selection_plan(r) if lookup and grid else None
                mpos = None if plan is not None else \
                    self.inputs.positions(mask_t, r, grid, removed=in_place)
                acc = None
                sq = None
                for s in range(0, K, kb):
                    e = min(K, s + kb)
                    if draws is None:
                        repl = self.inputs.replacement(x, r, mask_t, grid, s, e)
                        w = self.weights[s:e]
                    else:
                        repl = self.inputs.subset_replacement(x, r, mask_t, draws[i0:i1, s:e])
                        w = torch.full((e - s,), 1.0 / K, dtype=torch.float64)
                    if plan is not None:
                        synth = self.inputs.selected(plan, xs, r, repl, mask_t)
                    else:  # boolean masks: mpos is a fresh conversion, free to spend last
                        synth = self.inputs.synthetic(xs, mpos, repl, boolean, in_place,
                                                spend_mask=boolean and kb >= K)
                    del repl
                    synth = self.inputs.model_input(synth)
                    out = self._model(synth, chunk=chunk_id, rows=rows_np)
                    del synth  # before the next chunk's inputs are built
                    chunk_id += 1
                    out = out.reshape(c, e - s, k)
                    if raw:
                        if grid:
                            grid_view[i0:i1, j0:j1, s:e] = out.reshape(i1 - i0, mm, e - s, k)
                        else:
                            result[i0:i1, s:e] = out
                        continue
                    if single:  # one draw of weight 1: the behaviour of its output
                        acc = self.behaviour.value_of_draw(out[:, 0], torch.as_tensor(rows_np))
                        break
                    out = self.behaviour.on_scale(out)
                    part = draws_part(self.behaviour, self.aggregate, out, w, rows_np)
                    if self.aggregate == "prediction" and draws is not None:
                        sqp = (out.to(torch.float64) ** 2 * w[None, :, None]).sum(1)
                        sq = sqp if sq is None else sq + sqp
                    acc = part if acc is None else acc + part
                if raw:
                    continue
                if self.aggregate == "prediction" and not single:
                    mean = acc
                    acc = self.behaviour(mean, torch.as_tensor(rows_np))
                    if draws is not None:  # unbiased variance of the subset mean, finite pop.
                        s2 = (sq - mean.to(torch.float64) ** 2).clamp_min(0) * K / (K - 1)
                        acc = acc + self.behaviour.subsample_correction(
                            s2 * (1.0 / K - 1.0 / self.K)).reshape(acc.shape)
                if grid:
                    grid_view[i0:i1, j0:j1] = acc.reshape(i1 - i0, mm, *acc.shape[1:])
                else:
                    result[i0:i1] = acc
        return result

    def _model(self, x: torch.Tensor, chunk: int, rows) -> torch.Tensor:
        call = self._call_rows()
        if call is None or x.shape[0] <= call:
            out = self.model(x, chunk=chunk, explicands=rows)
        else:
            out = self.model(x, chunk=chunk, explicands=rows, batch=call)
        self.rows_evaluated += x.shape[0]
        if self.progress is not None:
            self.progress.update(x.shape[0])
        return out


def differentiable_values(game: Game, masks: torch.Tensor, rows: np.ndarray) -> torch.Tensor:
    """Values of ``game`` on fractional masks with gradients, for optimising masks (extremal
    perturbations): pair ``p`` is ``(rows[p], masks[p])``, ``masks`` a floating tensor
    ``(len(rows), d)`` in ``[0, 1]`` (the caller keeps it there) that may require grad.

    The synthetic inputs are the same blend ``m x + (1 - m) r`` as the game's for fractional
    masks; the model is a torch module, called in eval mode with autograd on. Returns
    ``(len(rows), ...)`` in the behaviour's dtype, attached to the graph; the rows are
    counted. No cache: every call evaluates its pairs."""
    module = getattr(game.model, "module", None)
    if not isinstance(module, torch.nn.Module):
        raise InputError("values with gradients need a torch.nn.Module model; got a "
                         f"{type(game.model).__name__}")
    game.require_fractional()
    if not isinstance(masks, torch.Tensor) or not masks.is_floating_point() or \
            masks.shape != (len(rows), game.d):
        raise MaskError(f"differentiable masks must be a floating tensor of shape "
                        f"({len(rows)}, {game.d}); got {getattr(masks, 'shape', masks)}")
    game._prepare()
    from .models import _unwrap, eval_mode

    r = torch.as_tensor(np.asarray(rows, dtype=np.int64), device=game.model.device)
    x, xs = game.inputs.explicands(r)
    m = masks.to(device=game.model.device, dtype=game.X.dtype)
    mpos = game.inputs.positions(m, r, grid=False)
    repl = game.inputs.replacement(x, r, m.detach(), False, 0, game.K)
    synth = game.inputs.model_input(game.inputs.synthetic(xs, mpos, repl, boolean=False))
    with eval_mode(module, grad=True):
        out = _unwrap(game.model._forward(synth))
    game.rows_evaluated += synth.shape[0]
    game.model.evaluations += synth.shape[0]
    out = game.behaviour.on_scale(out.reshape(len(rows), game.K, -1))
    w = game.weights.to(device=out.device, dtype=out.dtype)
    part = draws_part(game.behaviour, game.aggregate, out, w, rows)
    if game.aggregate == "prediction":
        return game.behaviour(part, torch.as_tensor(rows))
    return part


class DatasetGame:
    """Global game over a data set: ``v(S)`` is the mean of the local game over its rows
    (dataset loss: SAGE, permutation importance). It presents itself as one explicand.

    With ``row_sampling=True`` (SAGE), summaries that support it draw one data row per unit
    (:meth:`local`) instead of averaging over all rows for every coalition; with
    ``draws_per_unit=K'`` every unit also takes its own random ``K'`` of the removal's ``K``
    draws (background rows), unbiased after the behaviour's correction (squared-error loss):
    a unit then costs ``K'/K`` of the rows for a small rise in its variance. ``"auto"`` uses
    :data:`AUTO_DRAWS_PER_UNIT` where the correction exists, else all draws.
    """

    n = 1

    def __init__(self, local: Game, *, row_sampling: bool = False,
                 draws_per_unit: int | str | None = None, shards=None) -> None:
        self.local_game = local
        # evaluates the data blocks' sums elsewhere (xai.ray_explain: on Ray workers)
        self.shards = shards
        self.d = local.d
        self.kind = local.kind
        self.removal = local.removal
        self.feature_map = local.feature_map
        self.memory_cap = local.memory_cap
        self.sample_rows = local.n if row_sampling else None
        if not (draws_per_unit is None or draws_per_unit == "auto" or (
                isinstance(draws_per_unit, (int, np.integer)) and not
                isinstance(draws_per_unit, bool) and 2 <= draws_per_unit <= local.K)):
            raise InputError(f"draws_per_unit must be 'auto', None or an integer in "
                             f"2..{local.K} (the removal's draws); got {draws_per_unit!r}")
        self._draws_option = draws_per_unit if row_sampling else None
        self._draws: int | None | bool = False  # resolved on first use

    @property
    def draws_per_unit(self) -> int | None:
        """Draws per unit (None: all ``K``); ``"auto"`` resolves once the behaviour is
        prepared: :data:`AUTO_DRAWS_PER_UNIT` with an exact correction, equal draw weights,
        E-pred and ``K > 2 AUTO_DRAWS_PER_UNIT``."""
        if self._draws is False:
            game, option = self.local_game, self._draws_option
            if option == "auto":
                game._prepare()
                w = game.weights
                exact = game.behaviour.subsample_correction(
                    torch.zeros(1, game.k, dtype=torch.float64)) is not None
                option = AUTO_DRAWS_PER_UNIT if (
                    exact and game.aggregate == "prediction" and game.K > 2 * AUTO_DRAWS_PER_UNIT
                    and float(w.max() - w.min()) <= 1e-12 * float(w.max())) else None
            option = None if option is None or option == game.K else int(option)
            if option is not None:  # explicit: the game checks it can (clear error if not)
                game._prepare()
                game._check_draws(np.zeros((1, option), dtype=np.int64), 1)
            self._draws = option
        return self._draws

    def draw_subsets(self, n_units: int, rng: np.random.Generator) -> np.ndarray | None:
        """Each unit's random subset of the removal's draws ``(n_units, K')`` (None: all)."""
        if self.draws_per_unit is None:
            return None
        K = self.local_game.K
        return np.argsort(rng.random((n_units, K)), axis=1)[:, :self.draws_per_unit]

    @property
    def value_shape(self) -> tuple[int, ...]:
        return self.local_game.value_shape

    @property
    def accepts_fractional(self) -> bool:
        return self.local_game.accepts_fractional

    def planned_rows(self, coalitions: int) -> int:
        """Model rows of ``D``, ``∅`` and ``coalitions`` other coalitions (each one data row's
        draws when sampling rows, else every row's)."""
        return self.local_game.planned_rows(0) + int(coalitions) * self.rows_per_coalition

    def require_fractional(self) -> None:
        self.local_game.require_fractional()

    @property
    def positions(self) -> tuple[tuple[int, ...], str]:
        return self.local_game.positions

    @property
    def value_scale(self) -> str:
        return self.local_game.value_scale

    @property
    def v_full(self) -> torch.Tensor:
        return self.local_game.v_full.mean(0, keepdim=True)

    @property
    def rows_per_coalition(self) -> int:
        """Rows per coalition: one data row's draws (or its subset of them) when sampling
        rows, else all rows'."""
        if self.sample_rows:
            return self.draws_per_unit or self.local_game.K
        return self.local_game.K * self.local_game.n

    @property
    def rows_evaluated(self) -> int:
        return self.local_game.rows_evaluated

    @property
    def can_redraw(self) -> bool:
        return self.local_game.can_redraw

    def redraw(self, repeat: int) -> None:
        self.local_game.redraw(repeat)
        if self.shards is not None:  # the shards' copies of the game draw the same
            self.shards.redraw(repeat)

    def v_empty(self, rows=None) -> torch.Tensor:
        return self.local_game.v_empty().mean(0, keepdim=True)

    def __call__(self, masks, rows=None) -> torch.Tensor:
        masks = np.asarray(masks)
        n_data = self.local_game.n
        per_mask = n_data * 8 * max(1, math.prod(self.value_shape)) * 2
        block = max(1, self.memory_cap // per_mask)
        parts = []
        for a in range(0, len(masks), block):
            if self.shards is not None:
                sums = self.shards.sums(masks[a:a + block])
            else:
                values = self.local_game(masks[a:a + block])
                sums = [row_sum(values[lo:hi]) for lo, hi in data_blocks(n_data)]
            parts.append(blocks_mean(sums, n_data))
        return torch.cat(parts, 1)

    def local(self, masks: np.ndarray, data_rows: np.ndarray,
              draws: np.ndarray | None = None) -> torch.Tensor:
        """Values of per-unit coalitions ``(U, m, d)`` for data rows ``data_rows`` ``(U,)``
        (on the draw subsets ``draws`` of :meth:`draw_subsets`, if given); with shards, the
        units are evaluated there."""
        if self.shards is not None:
            return self.shards.local(masks, data_rows, draws)
        return self.local_game(masks, data_rows, draws=draws)

    def local_empty(self, data_rows: np.ndarray) -> torch.Tensor:
        return self.local_game.v_empty(data_rows)

    def local_full(self, data_rows: np.ndarray) -> torch.Tensor:
        return self.local_game.v_full[torch.as_tensor(data_rows)]
