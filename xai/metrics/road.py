"""ROAD (Rong, Leemann et al. 2022; SPEC-evaluation §1.3): the ``noisy-linear`` removal and the
``road`` metric.

``noisy-linear`` imputes removed pixels from their neighbours: per image, channel and removed
set, the removed pixels solve the sparse linear system "each removed pixel = weighted mean of
its 8 neighbours" (1/6 for the 4 edge neighbours, 1/12 for the 4 diagonals; neighbours outside
the image are dropped and the weights renormalised), kept pixels are fixed. I.i.d.
``N(0, noise²)`` is then added to the imputed pixels only. The solution equals Quantus 0.6.0's
``noisy_linear_imputation`` (adapted from the authors' code) at ``noise=0``.

Cost: one sparse LU solve (``scipy.sparse.linalg.spsolve``) per (image, removed set); channels
with the same removed set share it as several right-hand sides. A system has one unknown per
removed pixel and at most 9 non-zeros per row, so a solve costs about O(k^1.5) for k removed
pixels of a 2-D grid: ~0.2 ms for 8×8, a few ms for 64×64, ~0.1 s for 224×224 images at 50 %.
"""

from __future__ import annotations

import zlib
from typing import ClassVar

import numpy as np
import torch

from ..errors import InputError
from ..registry import register
from ..removals import GameContext, Removal
from .base import Metric, MetricInputs

_OFFSETS = ((-1, -1, 1 / 12), (-1, 0, 1 / 6), (-1, 1, 1 / 12), (0, -1, 1 / 6),
            (0, 1, 1 / 6), (1, -1, 1 / 12), (1, 0, 1 / 6), (1, 1, 1 / 12))


def noisy_linear_impute(image: np.ndarray, removed: np.ndarray) -> np.ndarray:
    """Linear imputation (noise-free) of one image ``(C, H, W)`` whose pixels ``removed``
    ``(H, W)`` (boolean) are replaced by the solution of "pixel = weighted mean of its valid
    8-neighbours" with the kept pixels fixed; all ``C`` channels in one solve. A plane with no
    kept pixel (the system is singular there) is filled with zeros."""
    from scipy.sparse import csc_matrix
    from scipy.sparse.linalg import spsolve

    C, H, W = image.shape
    out = np.array(image, dtype=np.float64, copy=True)
    ri, ci = np.nonzero(removed)
    k = ri.size
    if k == 0:
        return out
    if k == H * W:
        out[:] = 0.0
        return out
    var = np.full((H, W), -1, dtype=np.int64)
    var[ri, ci] = np.arange(k)
    diag = np.zeros(k)
    rhs = np.zeros((k, C))
    rows, cols, vals = [], [], []
    for dh, dw, w in _OFFSETS:
        nr, nc = ri + dh, ci + dw
        ok = (nr >= 0) & (nr < H) & (nc >= 0) & (nc < W)
        diag[ok] += w
        eq = np.flatnonzero(ok)
        nv = var[nr[ok], nc[ok]]
        rem = nv >= 0
        rows.append(eq[rem])
        cols.append(nv[rem])
        vals.append(np.full(int(rem.sum()), -w))
        kept = ~rem
        rhs[eq[kept]] += w * image[:, nr[ok][kept], nc[ok][kept]].T
    rows.append(np.arange(k))
    cols.append(np.arange(k))
    vals.append(diag)
    A = csc_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                   shape=(k, k))
    sol = spsolve(A, rhs)
    out[:, ri, ci] = np.asarray(sol).reshape(k, C).T
    return out


@register("removal", "noisy-linear", aliases=("noisy_linear",))
class NoisyLinear(Removal):
    """Noisy linear imputation (ROAD; see the module docstring) for images, boolean masks only.

    ``noise`` (default 0.01, input units) is the SD of the Gaussian noise added to imputed
    pixels; its draws are keyed on the game's seed, the explicand's row index and the mask, so
    a result depends on neither batching nor call order. ``n_draws`` is 1 (one noisy draw per
    coalition).
    """

    name = "noisy-linear"
    accepts_fractional = False
    empty_depends_on_x = True
    n_draws = 1

    def __init__(self, noise: float = 0.01) -> None:
        if not float(noise) >= 0:
            raise InputError(f"noise must be >= 0; got {noise!r}")
        self.noise = float(noise)

    def fit(self, ctx: GameContext) -> None:
        super().fit(ctx)
        if ctx.kind != "image" or len(ctx.input_shape) not in (2, 3):
            raise InputError(f"noisy-linear removal needs image inputs (H, W) or (C, H, W) / "
                             f"(H, W, C), not {ctx.kind} inputs of shape {ctx.input_shape}; use "
                             "'baseline' or 'marginal' removal for tabular data")
        shape = ctx.input_shape
        if len(shape) == 2:
            self._perm = None
        elif ctx.channel_axis is not None and ctx.channel_axis % 3 == 2:
            self._perm = (2, 0, 1)  # (H, W, C) -> (C, H, W)
        else:
            self._perm = (0, 1, 2)

    def _chw(self, flat: np.ndarray) -> np.ndarray:
        """One flattened row as ``(C, H, W)``."""
        arr = flat.reshape(self.ctx.input_shape)
        return arr[None] if self._perm is None else arr.transpose(self._perm)

    def _flat(self, chw: np.ndarray) -> np.ndarray:
        if self._perm is None:
            return chw[0].ravel()
        return chw.transpose(np.argsort(self._perm)).ravel()

    def replacement(self, x, rows, masks, start, stop):
        if masks.dtype != torch.bool:
            raise InputError("noisy-linear removal accepts only boolean masks")
        c, D = x.shape
        idx = self.ctx.index_of(rows)
        ext = torch.cat([masks, torch.ones(c, 1, dtype=torch.bool, device=masks.device)], 1)
        kept = torch.gather(ext, 1, idx.expand(c, D)).cpu().numpy()
        xs = x.detach().cpu().double().numpy()
        rows_np = rows.cpu().numpy()
        masks_np = masks.cpu().numpy()
        out = np.empty((c, D))
        for j in range(c):
            img = self._chw(xs[j])
            removed = ~self._chw(kept[j])  # (C, H, W)
            res = img.copy()
            # channels with the same removed set share one solve
            keys = [removed[ch].tobytes() for ch in range(img.shape[0])]
            for key in dict.fromkeys(keys):
                chans = [ch for ch, kk in enumerate(keys) if kk == key]
                res[chans] = noisy_linear_impute(img[chans], removed[chans[0]])
            if self.noise > 0:
                res = res + self.noise * removed * self._rng(int(rows_np[j]),
                                                             masks_np[j]).standard_normal(
                    img.shape)
            out[j] = self._flat(res)
        return torch.as_tensor(out, dtype=x.dtype, device=x.device)[:, None, :]

    def _rng(self, row: int, mask: np.ndarray) -> np.random.Generator:
        key = zlib.crc32(np.packbits(mask).tobytes())
        seed = self.ctx.seed
        return np.random.default_rng(np.random.SeedSequence(
            seed.entropy, spawn_key=(*seed.spawn_key, 7, row, key)))

    def describe(self) -> dict:
        return {"name": self.name, "noise": self.noise}


@register("metric", "road")
class Road(Metric):
    """ROAD (SPEC-evaluation §1.3): remove the top (MoRF) or bottom (LeRF) ``p`` % of features
    with the ``noisy-linear`` removal (default; ``removal=`` overrides) and record per
    percentage the accuracy ``1[argmax f(x̃) = t]`` and the target probability.

    ``k_p = floor(p·d/100)`` features are removed (as Quantus). Scores (``extras``):
    ``morf`` = mean over p of MoRF accuracy (lower better), ``lerf`` = mean of LeRF accuracy
    (higher better), ``gap`` = lerf − morf (higher better), each averaged over rows; the
    per-row gap is ``per_sample`` (direction higher). ``extras`` also holds the per-row curves
    ``morf_accuracy``, ``lerf_accuracy``, ``morf_probability``, ``lerf_probability``
    ``(n, P)`` and ``percentages``. ``curves`` = the per-row MoRF accuracy curve.

    Options: ``percentages`` (default 10, 20, …, 90; each in (0, 100)), ``noise=0.01`` (for
    the default removal). Cost: ``2·P·n`` model rows and as many sparse solves.
    """

    name = "road"
    direction = "higher"
    needs = frozenset({"model"})
    applies_to = "image"
    stochastic = True
    default_output = "probability"
    defaults: ClassVar[dict] = {"percentages": tuple(range(10, 100, 10)), "noise": 0.01}

    def __call__(self, model, x, a, *, target=None, removal=None, seed=0, **options):
        # ROAD removes with noisy linear imputation unless removal= says otherwise, whatever
        # removal made the explanation (that is the point of ROAD)
        if removal is None:
            removal = NoisyLinear(noise=options.get("noise", self.options["noise"]))
        return super().__call__(model, x, a, target=target, removal=removal, seed=seed,
                                **options)

    def compute(self, inp: MetricInputs) -> dict:
        from ..behaviours import Prediction
        from ..game import Game

        pct = np.asarray(inp.options["percentages"], dtype=np.float64).ravel()
        if pct.size == 0 or (pct <= 0).any() or (pct >= 100).any():
            raise InputError(f"percentages must lie in (0, 100); got {pct.tolist()}")
        if inp.adapter is None or not inp.adapter.is_classifier:
            raise InputError("road measures classification accuracy and needs a classifier "
                             "(a model with logits or probabilities)")
        n, d = inp.n, inp.d
        ks = np.floor(pct * d / 100).astype(np.int64)
        morf = inp.order(descending=True)
        lerf = inp.order(descending=False)
        ranks = np.empty((2, n, d), dtype=np.int64)
        ar = np.broadcast_to(np.arange(d), (n, d))
        np.put_along_axis(ranks[0], morf, ar, axis=1)
        np.put_along_axis(ranks[1], lerf, ar, axis=1)
        # kept-masks (n, 2P, d): feature kept iff its rank >= k_p
        masks = np.concatenate([ranks[o][:, None, :] >= ks[None, :, None] for o in (0, 1)], 1)
        game = Game(inp.adapter, inp.X, inp.removal, Prediction(target="all",
                                                                output="probability"),
                    inp.fmap, kind=inp.kind, seed=inp.seed)
        probs = game(masks).numpy()  # (n, 2P, k)
        if probs.shape[-1] == 1:  # not reached for Prediction("all") on a one-output model
            probs = np.concatenate([1 - probs, probs], -1)
        t = inp.targets
        acc = (probs.argmax(-1) == t[:, None]).astype(np.float64)
        prob_t = np.take_along_axis(probs, t[:, None, None], 2)[..., 0]
        P = len(pct)
        morf_acc, lerf_acc = acc[:, :P], acc[:, P:]
        gap = lerf_acc.mean(1) - morf_acc.mean(1)
        extras = {"morf": float(morf_acc.mean()), "lerf": float(lerf_acc.mean()),
                  "gap": float(gap.mean()), "percentages": pct,
                  "morf_accuracy": morf_acc, "lerf_accuracy": lerf_acc,
                  "morf_probability": prob_t[:, :P], "lerf_probability": prob_t[:, P:]}
        return {"per_sample": gap, "curves": morf_acc, "extras": extras,
                "settings": {"percentages": pct.tolist(), "k": ks.tolist(),
                             "removal": inp.removal.describe()}}
