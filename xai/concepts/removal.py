"""The concept game (concepts as the players of a removal game; Covert, Lundberg & Lee 2021),
built on the core :class:`~xai.game.Game` unchanged.

Design
------
Concept importance is the *standard* removal game played in **coefficient space**:

* the game's explicands are the concept coefficients ``u(x)`` of each input, flattened:
  ``(r,)`` for pooled activations or ``(H', W', r)`` (one row of ``r`` per position); for
  ``residual="keep"`` the residual ``g(x) − decode(u(x))`` is appended as always-kept
  positions (feature index ``-1``);
* the feature map has one feature per concept; concept ``i`` covers coefficient ``i`` at every
  position, so a mask value ``m_i`` scales concept ``i`` everywhere;
* the removal is :class:`ConceptRemoval`, a baseline removal in coefficient space (baseline
  ``b = 0`` or the mean crop coefficient): the game's interpolation ``m·u + (1 − m)·b`` is
  exactly ``u ⊙ m + b ⊙ (1 − m)`` and fractional masks are accepted;
* the model is :class:`ConceptHead`: ``u ↦ h(decode(u))`` (``"drop"``) or
  ``u ↦ h(residual + decode(u))`` (``"keep"``, so ``F(x, 1) = h(g(x)) = f(x)`` exactly and
  ``F(x, m) = h(g(x) − decode((u − b) ⊙ (1 − m)))``).

So every summary (Sobol, Shapley, occlusion, RISE, Banzhaf, ...) applies unchanged, the game
batches, caches and counts ``h`` rows as for any other game, and ``g`` is never called inside
the game.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from ..behaviours import Behaviour, Prediction
from ..errors import InputError
from ..features import FeatureMap
from ..game import Game
from ..models import TorchModel
from ..registry import register
from ..removals import Baseline, GameContext

__all__ = ["ConceptHead", "ConceptRemoval", "concept_game"]

RESIDUALS = ("drop", "keep")


@register("removal", "concept")
class ConceptRemoval(Baseline):
    """Baseline removal in concept-coefficient space: a removed concept's coefficient takes
    its baseline ``b`` (``0``, ``"mean"`` = mean crop coefficient given by ``mean=``, or a
    vector ``(r,)``). Fractional masks interpolate ``m·u + (1 − m)·b``. Use it through
    :func:`concept_game` (or ``CRAFT.importance``), whose explicands are coefficients."""

    name = "concept"
    accepts_fractional = True

    def __init__(self, baseline: float | str | np.ndarray = 0.0, *,
                 mean: np.ndarray | None = None, residual: str = "drop") -> None:
        if residual not in RESIDUALS:
            from ..errors import unknown_name

            raise unknown_name("residual", residual, RESIDUALS)
        self.baseline = baseline
        self.mean = None if mean is None else np.asarray(mean, dtype=np.float64)
        self.residual = residual
        super().__init__(value=0.0)

    def _vector(self, r: int) -> np.ndarray:
        b = self.baseline
        if isinstance(b, str):
            if b != "mean":
                from ..errors import unknown_name

                raise unknown_name("concept baseline", b, ("mean", "0"))
            if self.mean is None:
                raise InputError("baseline='mean' needs the mean crop coefficients (mean=)")
            vec = self.mean
        else:
            vec = np.broadcast_to(np.asarray(b, dtype=np.float64), (r,))
        if vec.shape != (r,):
            raise InputError(f"the concept baseline has shape {vec.shape}; expected ({r},)")
        return np.ascontiguousarray(vec)

    def fit(self, ctx: GameContext) -> None:
        self.value = self._vector(ctx.d)
        super().fit(ctx)
        self.accepts_fractional = True

    def describe(self) -> dict:
        b = self.baseline
        return {"name": self.name, "baseline": b if isinstance(b, str | int | float) else
                "array", "residual": self.residual}


class ConceptHead(nn.Module):
    """The game's model: flattened coefficients (and residual) ``→ h(decode(u) [+ residual])``.

    Input rows: ``[u (S·r), residual (p·S)]`` with ``S`` = number of positions (1 when pooled);
    ``spatial = (H', W')`` or None.
    """

    def __init__(self, h: Callable, W: np.ndarray, spatial: tuple[int, int] | None,
                 keep: bool, dtype: torch.dtype, device: torch.device) -> None:
        super().__init__()
        self.h = h  # registered as a submodule when it is one (eval/train handled by TorchModel)
        self.register_buffer("W", torch.as_tensor(W, dtype=dtype, device=device))
        self.spatial = spatial
        self.keep = keep

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        p, r = self.W.shape
        S = 1 if self.spatial is None else self.spatial[0] * self.spatial[1]
        u = z[:, :S * r].reshape(-1, S, r)
        a = u.to(self.W.dtype) @ self.W.T  # (rows, S, p)
        if self.spatial is None:
            a = a[:, 0]
        else:
            a = a.permute(0, 2, 1).reshape(-1, p, *self.spatial)
        if self.keep:
            a = a + z[:, S * r:].reshape(a.shape).to(a.dtype)
        return self.h(a)


def _h_dtype(h: Callable) -> tuple[torch.dtype, torch.device]:
    if isinstance(h, nn.Module):
        for t in (*h.parameters(), *h.buffers()):
            if t.is_floating_point():
                return t.dtype, t.device
    return torch.float32, torch.device("cpu")


def concept_game(h: Callable, W: np.ndarray, coefficients, *, activations=None,
                 residual: str = "drop", baseline: float | str | np.ndarray = 0.0,
                 mean: np.ndarray | None = None, behaviour: Behaviour | None = None,
                 target=None, seed=None, names: list[str] | None = None, **game_kw) -> Game:
    """The concept game for explicands with coefficients ``(n, r)`` or ``(n, H', W', r)``.

    ``activations`` (``g(x)``, ``(n, p)`` or ``(n, p, H', W')``) are required for
    ``residual="keep"``. ``behaviour`` defaults to :class:`~xai.behaviours.Prediction` of
    ``target`` (the raw logit). Extra keywords go to :class:`~xai.game.Game`.
    """
    removal = ConceptRemoval(baseline, mean=mean, residual=residual)
    W = np.asarray(W, dtype=np.float64)
    p, r = W.shape
    u = torch.as_tensor(coefficients)
    if u.ndim not in (2, 4) or u.shape[-1] != r:
        raise InputError(f"coefficients must be (n, {r}) or (n, H', W', {r}); got "
                         f"{tuple(u.shape)}")
    n = u.shape[0]
    spatial = None if u.ndim == 2 else (int(u.shape[1]), int(u.shape[2]))
    S = 1 if spatial is None else spatial[0] * spatial[1]
    keep = residual == "keep"
    dtype, device = _h_dtype(h)
    parts = [u.reshape(n, S * r).to(torch.float64)]
    index = [np.tile(np.arange(r), S)]
    if keep:
        if activations is None:
            raise InputError("residual='keep' needs the activations g(x)")
        a = torch.as_tensor(activations).to(torch.float64)
        dec = u.to(torch.float64) @ torch.as_tensor(W).T
        dec = dec if spatial is None else dec.permute(0, 3, 1, 2)
        if tuple(a.shape) != tuple(dec.shape):
            raise InputError(f"activations have shape {tuple(a.shape)}; expected "
                             f"{tuple(dec.shape)} to match the coefficients")
        parts.append((a - dec).reshape(n, -1))
        index.append(np.full(p * S, -1))
    X = torch.cat(parts, 1)
    fmap = FeatureMap(np.concatenate(index), names=names or [f"concept {i}" for i in range(r)],
                      kind="concept")
    head = ConceptHead(h, W, spatial, keep, dtype, device)
    model = TorchModel(head, output_kind="logits")
    behaviour = behaviour if behaviour is not None else Prediction(target=target)
    return Game(model, X, removal, behaviour, fmap, seed=seed, kind="tabular", **game_kw)
