"""ROAD (Rong, Leemann et al. 2022): the ``noisy-linear`` removal and the
``road`` metric.

``noisy-linear`` imputes removed pixels from their neighbours: per image, channel and removed
set, the removed pixels solve the sparse linear system "each removed pixel = weighted mean of
its 8 neighbours" (1/6 for the 4 edge neighbours, 1/12 for the 4 diagonals; neighbours outside
the image are dropped and the weights renormalised), kept pixels are fixed. I.i.d.
``N(0, noise²)`` is then added to the imputed pixels only. The solution equals Quantus 0.6.0's
``noisy_linear_imputation`` (adapted from the authors' code) at ``noise=0``.

Cost: one linear system per (image, removed set), with one unknown per removed pixel;
channels with the same removed set share it as several right-hand sides. Each system is
symmetric positive definite with at most 9 non-zeros per row. Images at most
:data:`BANDED_MAX_WIDTH` pixels on their shorter side are solved many at once: the coefficients
of all systems are built with array operations (no per-pixel loop), each system's unknowns are
put in raster order along the rows or the columns, whichever gives it the narrower band
(≤ width + 1), and systems of similar band are stacked block-diagonally into banded matrices,
one LAPACK banded Cholesky (``pbsv``) call per matrix of about 1 MB (it stays in the cache
between its assembly and its factorisation), so most of the work is in LAPACK. Larger images
use SuperLU (``scipy.sparse.linalg.spsolve``) per system: the band grows with the image's
width, and SuperLU's fill-reducing ordering keeps the factor sparser.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import torch

from ..behaviours import Prediction
from ..errors import InputError, OptionError, ShapeError
from ..registry import register
from ..removals import GameContext, Removal
from .base import Metric, MetricInputs
from .checks import Choice, check_target_range

_OFFSETS = ((-1, -1, 1 / 12), (-1, 0, 1 / 6), (-1, 1, 1 / 12), (0, -1, 1 / 6),
            (0, 1, 1 / 6), (1, -1, 1 / 12), (1, 0, 1 / 6), (1, 1, 1 / 12))
#: banded Cholesky up to this shorter side; above it the band (the width) makes the banded
#: factor denser than SuperLU's, and larger images go to SuperLU one system at a time
BANDED_MAX_WIDTH = 128
#: pixels per pass of the vectorised assembly (64 systems of 32×32: the pass's arrays, about
#: 0.5 MB each, stay in the caches);
#: float64 entries per banded matrix (1 MB: the matrix stays in cache between its assembly and
#: its factorisation)
_PASS_PIXELS = 1 << 16
_BAND_ENTRIES = 1 << 17
#: SplitMix64 (Steele, Lea & Flood 2014): the increment and the finaliser's shifts and factors
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX = (np.uint64(30), np.uint64(0xBF58476D1CE4E5B9), np.uint64(27),
        np.uint64(0x94D049BB133111EB), np.uint64(31))


def _mix64(z: np.ndarray) -> np.ndarray:
    """SplitMix64's finaliser of uint64 values ``z`` (modified in place and returned)."""
    s1, m1, s2, m2, s3 = _MIX
    z ^= z >> s1
    z *= m1
    z ^= z >> s2
    z *= m2
    z ^= z >> s3
    return z


def noisy_linear_impute(image: np.ndarray, removed: np.ndarray) -> np.ndarray:
    """Linear imputation (noise-free) of one image ``(C, H, W)`` whose pixels ``removed``
    ``(H, W)`` (boolean) are replaced by the solution of "pixel = weighted mean of its valid
    8-neighbours" with the kept pixels fixed; all ``C`` channels in one solve. A plane with no
    kept pixel (the system is singular there) is filled with zeros."""
    image = np.asarray(image, dtype=np.float64)
    return noisy_linear_impute_batch(image[None], np.asarray(removed, dtype=bool)[None])[0]


def noisy_linear_impute_batch(images: np.ndarray, removed: np.ndarray) -> np.ndarray:
    """:func:`noisy_linear_impute` of ``S`` systems at once: images ``(S, R, H, W)`` (``R``
    planes sharing a removed set) and removed sets ``(S, H, W)``; returns ``(S, R, H, W)``
    float64.

    Each system is symmetric positive definite (every 8-connected group of removed pixels
    touches a kept one unless all pixels are removed). On grids whose shorter side is at most
    :data:`BANDED_MAX_WIDTH`, the coefficients of all systems are built with array operations
    and systems are stacked block-diagonally into banded matrices of about 1 MB, each solved by
    one LAPACK ``pbsv`` (banded Cholesky) call. A system's unknowns are its removed pixels in
    raster order along the rows or along the columns, whichever gives it the narrower band
    (the cost is about proportional to unknowns × band), and systems are grouped by band so
    that a matrix's band fits all its systems with little excess. Wider grids use SuperLU per
    system, whose orderings fill less than the band. Results equal the one-system-at-a-time
    sparse LU solve to rounding (~1e-14)."""
    res = np.array(images, dtype=np.float64, copy=True)
    rem = np.asarray(removed, dtype=bool)
    if res.ndim != 4 or rem.shape != (res.shape[0], *res.shape[2:]):
        raise ShapeError(f"noisy-linear imputation needs images (S, R, H, W) and removed sets "
                         f"(S, H, W); got {res.shape} and {rem.shape}")
    S, _, H, W = res.shape
    k = rem.reshape(S, H * W).sum(1)
    res[k == H * W] = 0.0  # no kept pixel: the system is singular
    todo = np.flatnonzero((k > 0) & (k < H * W))
    if todo.size == 0:
        return res
    if min(H, W) > BANDED_MAX_WIDTH:
        for s in todo:
            res[s] = _superlu_solve(res[s], rem[s])
        return res
    sub = rem[todo]
    # band of each system with unknowns in raster order along the rows (W) and along the
    # columns (H); a side wider than BANDED_MAX_WIDTH is not an option
    big = np.iinfo(np.int64).max
    b_rows = _window_band(sub) if W <= BANDED_MAX_WIDTH else np.full(todo.size, big)
    b_cols = _window_band(sub.swapaxes(1, 2)) if H <= BANDED_MAX_WIDTH else \
        np.full(todo.size, big)
    along_cols = b_cols < b_rows
    for flag in (False, True):
        pick = np.flatnonzero(along_cols == flag)
        if pick.size == 0:
            continue
        band = np.where(flag, b_cols, b_rows)[pick]
        order = np.lexsort((k[todo[pick]], band))  # by band, then size: little excess band
        sel, band = todo[pick][order], band[order]
        per = max(1, _PASS_PIXELS // (H * W))
        for a in range(0, sel.size, per):
            _banded_solve(res, rem, sel[a:a + per], band[a:a + per], flag)
    return res


def _window_band(rem: np.ndarray) -> np.ndarray:
    """Per removed set ``(s, H, W)``: the most removed pixels among ``W + 1`` consecutive
    raster positions, a bound on the index gap between coupled unknowns (8-neighbours are at
    most ``W + 1`` positions apart) and so on the band of the system in that order."""
    s, H, W = rem.shape
    HW = H * W
    flat = np.ascontiguousarray(rem).reshape(s, HW).view(np.uint8)
    cs = np.cumsum(flat, axis=1, dtype=np.int16 if HW < 2**15 else np.int32)
    o = min(W + 1, HW - 1)
    return (cs[:, o:] - cs[:, :-o]).max(1).astype(np.int64)


def _banded_solve(res: np.ndarray, removed: np.ndarray, sel: np.ndarray, band: np.ndarray,
                  along_cols: bool) -> None:
    """Solve systems ``sel`` of ``res`` ``(S, R, H, W)`` (contiguous) with removed sets
    ``removed`` ``(S, H, W)`` (each with a kept and a removed pixel) in place by banded
    Cholesky, unknowns in raster order (of the transposed planes if ``along_cols``), system
    after system; ``band`` bounds each system's band."""
    from scipy.linalg.lapack import dpbsv

    view = res.swapaxes(2, 3) if along_cols else res
    s, (R, H, W) = sel.size, view.shape[1:]
    # every plane padded by a zero row below and a zero column on the right, and flattened:
    # the neighbour at (dh, dw) of a pixel is `dh * Wp + dw` positions away, never in another
    # plane (a left or upper neighbour outside the plane falls on padding or before the start)
    Hp, Wp = H + 1, W + 1
    P = Hp * Wp
    pad = np.zeros((s, Hp, Wp), dtype=bool)
    pad[:, :H, :W] = (removed.swapaxes(1, 2) if along_cols else removed)[sel]
    flat = pad.reshape(-1)
    unknown = np.flatnonzero(flat)  # position of each unknown
    n_u = unknown.size
    gp = np.zeros(s * P, dtype=np.int32)  # at a removed pixel: its unknown's index + 1
    gp[unknown] = np.arange(1, n_u + 1, dtype=np.int32)
    # right-hand sides: the weighted sum of the kept neighbours' values, a [1, 2, 1] x
    # [1, 2, 1] / 12 filter of the kept values (its centre falls on the removed pixel itself,
    # whose value is zeroed); diagonal: the weights of the neighbours inside the image
    v = np.zeros((s, R, Hp, Wp))
    np.copyto(v[..., :H, :W], view[sel], where=~pad[:, None, :H, :W])
    v = _filter121(v.reshape(-1), Wp)
    if R == 1:
        rhs_u = np.take(v, unknown)[:, None]
    else:
        rhs_u = v.reshape(s, R, P).transpose(0, 2, 1)[pad.reshape(s, P)]
    rhs_u /= 12
    inside = np.zeros((Hp, Wp))
    inside[:H, :W] = 1.0
    per_pos = np.empty((s, P))  # per position: the diagonal (later: its offset in res)
    per_pos[:] = _filter121(inside.reshape(-1), Wp) / 12 - 1 / 3
    diag_u = np.take(per_pos, unknown)
    # coupled pairs (unknown, removed later neighbour): column = the unknown's index + 1, band
    # row = the index gap; sorted by column
    pairs = []
    for step, w in ((1, 1 / 6), (Wp - 1, 1 / 12), (Wp, 1 / 6), (Wp + 1, 1 / 12)):
        f = np.flatnonzero(flat[:-step] & flat[step:])
        col = np.take(gp, f)
        f += step
        pairs.append((col, np.take(gp, f) - col, -w))
    # contiguous chunks of systems, each one banded matrix of about _BAND_ENTRIES entries
    first = np.concatenate([[0], np.cumsum(pad.reshape(s, -1).sum(1))]).tolist()
    band = np.asarray(band).tolist()
    chunks, lo = [], 0
    while lo < s:
        hi, b = lo + 1, band[lo]
        while hi < s and (max(b, band[hi]) + 1) * (first[hi + 1] - first[lo]) <= _BAND_ENTRIES:
            b = max(b, band[hi])
            hi += 1
        chunks.append((first[lo], first[hi], b))
        lo = hi
    starts = np.array([c[0] + 1 for c in chunks] + [first[-1] + 1], dtype=np.int32)
    cuts = [np.searchsorted(col, starts).tolist() for col, _, _ in pairs]
    buf = np.empty(max((u1 - u0) * (b + 1) for u0, u1, b in chunks))
    x = np.empty((n_u, R))
    for j, (u0, u1, b) in enumerate(chunks):
        abT = buf[:(u1 - u0) * (b + 1)].reshape(u1 - u0, b + 1)  # abT.T: LAPACK lower band
        abT.fill(0.0)
        abT[:, 0] = diag_u[u0:u1]
        flat_ab = abT.reshape(-1)
        for (col, gap, w), cut in zip(pairs, cuts):
            idx = col[cut[j]:cut[j + 1]] - (u0 + 1)
            idx *= b + 1
            idx += gap[cut[j]:cut[j + 1]]
            flat_ab[idx] = w
        _, x[u0:u1], info = dpbsv(abT.T, rhs_u[u0:u1], lower=1, overwrite_ab=1,
                                  overwrite_b=1)
        if info != 0:
            raise RuntimeError(f"noisy-linear imputation: banded Cholesky failed (info {info})")
    # write the unknowns into res through the view's strides: a map position -> offset
    st = [t // res.itemsize for t in view.strides]
    dest = per_pos.view(np.int64)
    in_plane = (np.minimum(np.arange(Hp), H - 1) * st[2])[:, None] \
        + np.minimum(np.arange(Wp), W - 1) * st[3]
    np.add((sel * st[0])[:, None], in_plane.reshape(1, P), out=dest)
    at = np.take(dest, unknown)
    if R == 1:
        np.put(res, at, x[:, 0])
    else:
        np.put(res, (at[:, None] + np.arange(R) * st[1]).ravel(), x.ravel())


def _filter121(v: np.ndarray, Wp: int) -> np.ndarray:
    """The ``[1, 2, 1] x [1, 2, 1]`` filter of zero-padded planes flattened into ``v`` (rows of
    ``Wp``), computed in ``v`` (overwritten and returned); exact at the planes' inner pixels,
    whose neighbours are inner pixels, padding or outside ``v`` (then zero)."""
    h = v * 2
    h[1:] += v[:-1]
    h[:-1] += v[1:]
    np.multiply(h, 2, out=v)
    v[Wp:] += h[:-Wp]
    v[:-Wp] += h[Wp:]
    return v


def _superlu_solve(img: np.ndarray, rem: np.ndarray) -> np.ndarray:
    """One system ``img`` ``(R, H, W)``, removed set ``rem`` ``(H, W)`` by sparse LU."""
    from scipy.sparse import csc_matrix
    from scipy.sparse.linalg import spsolve

    C, H, W = img.shape
    out = img.copy()
    ri, ci = np.nonzero(rem)
    k = ri.size
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
        inner = nv >= 0
        rows.append(eq[inner])
        cols.append(nv[inner])
        vals.append(np.full(int(inner.sum()), -w))
        rhs[eq[~inner]] += w * img[:, nr[ok][~inner], nc[ok][~inner]].T
    rows.append(np.arange(k))
    cols.append(np.arange(k))
    vals.append(diag)
    A = csc_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                   shape=(k, k))
    out[:, ri, ci] = np.asarray(spsolve(A, rhs)).reshape(k, C).T
    return out


@register("removal", "noisy-linear", aliases=("noisy_linear",))
class NoisyLinear(Removal):
    """Noisy linear imputation (ROAD; see the module docstring) for images, boolean masks only.

    ``noise`` (default 0.01, input units) is the SD of the Gaussian noise added to imputed
    pixels (only those: kept pixels stay exact); each draw is a function of the game's seed, the
    explicand's row index, the mask and the pixel's position (and channel) only, so a result
    depends on neither batching nor call order. The draws come from a counter-based generator
    vectorised over all pairs (see :meth:`_normals`), not from a NumPy generator per pair as in
    earlier versions, so they differ from those versions' draws (and from Quantus's global-RNG
    draws) but have the same distribution. ``n_draws`` is 1 (one noisy draw per coalition).
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
        self._key = None  # the noise generator's key, from ctx.seed on first use
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
        """Flattened rows ``(c, D)`` as ``(c, C, H, W)``."""
        arr = flat.reshape(len(flat), *self.ctx.input_shape)
        return arr[:, None] if self._perm is None else arr.transpose(0, *(p + 1 for p in
                                                                          self._perm))

    def _flat(self, chw: np.ndarray) -> np.ndarray:
        """Inverse of :meth:`_chw`."""
        if self._perm is None:
            return chw[:, 0].reshape(len(chw), -1)
        inv = np.argsort(self._perm)
        return chw.transpose(0, *(p + 1 for p in inv)).reshape(len(chw), -1)

    def replacement(self, x, rows, masks, start, stop):
        if masks.dtype != torch.bool:
            raise InputError("noisy-linear removal accepts only boolean masks")
        c, D = x.shape
        idx = self.ctx.index_of(rows)
        ext = torch.cat([masks, torch.ones(c, 1, dtype=torch.bool, device=masks.device)], 1)
        kept = torch.gather(ext, 1, idx.expand(c, D)).cpu().numpy()
        img = self._chw(x.detach().cpu().double().numpy())  # (c, C, H, W)
        removed = ~self._chw(kept)
        if (removed == removed[:, :1]).all():  # channels share their removed set: one system
            res = noisy_linear_impute_batch(img, removed[:, 0])
        else:  # one system per plane
            H, W = img.shape[2:]
            res = noisy_linear_impute_batch(img.reshape(-1, 1, H, W),
                                            removed.reshape(-1, H, W)).reshape(img.shape)
        if self.noise > 0:
            pos = np.flatnonzero(removed)  # the removed elements of res, (pair, C, H, W)
            z = self._normals(rows, masks, pos, removed.reshape(c, -1).sum(1),
                              removed[0].size)
            z *= self.noise
            flat = res.reshape(-1)
            z += np.take(flat, pos)
            np.put(flat, pos, z)
        return torch.as_tensor(self._flat(res), dtype=x.dtype, device=x.device)[:, None, :]

    def _normals(self, rows: torch.Tensor, masks: torch.Tensor, pos: np.ndarray,
                 counts: np.ndarray, size: int) -> np.ndarray:
        """Standard normal draws for the sorted flat positions ``pos`` of ``(c, size)``
        elements, ``counts[j]`` of them in pair ``j`` (pair ``pos // size``, element ``e = pos
        % size`` of its ``(C, H, W)`` image), each a
        function of the game's seed, the pair's explicand row, its mask and ``e`` only: a
        counter-based generator vectorised over all pairs (creating a NumPy generator per pair
        would cost as much as drawing a small image's noise).

        With ``mix`` SplitMix64's finaliser (Steele, Lea & Flood 2014), ``G`` its increment
        and arithmetic modulo 2⁶⁴: ``(k0, k1)`` = two words of the seed's ``SeedSequence``
        spawned with key 7; the mask's bits (``np.packbits``, zero-padded) as little-endian
        64-bit words ``w_1..w_m``; ``h = Σ_i mix(w_i ^ (k1 + i·G))``; the pair's key ``k =
        mix(mix(k0 + (row + 1)·G) ^ h)``; for element ``e``, ``b = mix(k + (e + 1)·G)`` (output
        ``e + 1`` of the SplitMix64 stream from ``k``) and, by Box–Muller on its two 32-bit
        halves (cuRAND's construction), ``z = sqrt(−2 ln((hi + ½)/2³²)) · cos(2π lo/2³²)``
        (``|z| < 6.8``: a larger N(0, 1) draw has probability 1e-11)."""
        if getattr(self, "_key", None) is None:
            seed = self.ctx.seed
            self._key = np.random.SeedSequence(seed.entropy, spawn_key=(
                *seed.spawn_key, 7)).generate_state(2, np.uint64)
        rows_u = rows.cpu().numpy().astype(np.uint64)
        bits = np.packbits(masks.cpu().numpy(), axis=1)  # (c, ceil(d / 8)) bytes
        bits = np.pad(bits, ((0, 0), (0, -bits.shape[1] % 8))).view("<u8").astype(np.uint64)
        bits ^= self._key[1] + np.arange(1, bits.shape[1] + 1, dtype=np.uint64) * _GOLDEN
        key = _mix64(self._key[0] + (rows_u + np.uint64(1)) * _GOLDEN)
        key ^= _mix64(bits).sum(1, dtype=np.uint64)  # wraps modulo 2**64
        key = _mix64(key)
        # k + (e + 1)·G = (pos + 1)·G + (k − j·size·G) for position pos of pair j
        key -= np.arange(len(key), dtype=np.uint64) * np.uint64(size) * _GOLDEN
        u = pos.astype(np.uint64)
        u += np.uint64(1)
        u *= _GOLDEN
        u += np.repeat(key, counts)
        u = _mix64(u)
        # Box–Muller in torch: its log and cos use SIMD kernels and run in place
        hi = torch.from_numpy((u >> np.uint64(32)).astype(np.float64))
        u &= np.uint64(0xFFFFFFFF)
        t = torch.from_numpy(u.astype(np.float64))
        r = hi.add_(0.5).mul_(2.0 ** -32).log_().mul_(-2.0).sqrt_()
        r.mul_(t.mul_(2 * np.pi * 2.0 ** -32).cos_())
        return r.numpy()

    def describe(self) -> dict:
        return {"name": self.name, "noise": self.noise}


def _percentages_rule(name: str, value) -> np.ndarray:
    """ROAD's ``percentages``: at least one number, each in (0, 100)."""
    fix = "pass percentages strictly between 0 and 100, e.g. percentages=(10, 20, ..., 90)"
    try:
        pct = np.asarray(value, dtype=np.float64).ravel()
    except (TypeError, ValueError):
        raise OptionError(f"{name}={value!r} is not a list of numbers: {fix}") from None
    if pct.size == 0:
        raise OptionError(f"{name} is empty: {fix}")
    bad = pct[~((pct > 0) & (pct < 100))]  # NaN too
    if bad.size:
        raise OptionError(f"{name} must lie in (0, 100); got {bad.tolist()} among "
                          f"{pct.tolist()}: {fix}")
    return pct


class _AllOutputs(Prediction):
    """Every output on the probability scale (ROAD's accuracy needs the argmax), with the
    rows' targets checked against the model's outputs on the first call, the prediction of
    the explained rows."""

    def __init__(self, targets: np.ndarray) -> None:
        super().__init__(target="all", output="probability")
        self.row_targets = targets

    def prepare(self, full, y, output_kind, is_classifier):
        super().prepare(full, y, output_kind, is_classifier)
        k = full.shape[1]
        check_target_range(self.row_targets, 2 if k == 1 else k)


@register("metric", "road")
class Road(Metric):
    """ROAD (Rong, Leemann et al. 2022): remove the top (MoRF) or bottom (LeRF) ``p`` % of
    features with the ``noisy-linear`` removal (default; ``removal=`` overrides) and record per
    percentage the accuracy ``1[argmax f(x̃) = t]`` and the target probability.

    ``k_p = floor(p·d/100)`` features are removed (as Quantus). ``order`` picks the removal
    orders: ``"both"`` (default), ``"morf"`` or ``"lerf"``. Scores (``extras``, for the
    orders run): ``morf`` = mean over p of MoRF accuracy (lower better), ``lerf`` = mean of
    LeRF accuracy (higher better) and, for ``"both"``, ``gap`` = lerf − morf (higher better),
    each averaged over rows. ``per_sample`` is the per-row gap (direction higher) for
    ``"both"``, else the per-row mean accuracy of the one order (direction lower for MoRF,
    higher for LeRF). ``extras`` also holds the per-row curves ``morf_accuracy``,
    ``lerf_accuracy``, ``morf_probability``, ``lerf_probability`` ``(n, P)`` of the orders run
    and ``percentages``; ``curves`` = the per-row accuracy curve of MoRF (of LeRF for
    ``order="lerf"``).

    Options: ``percentages`` (default 10, 20, …, 90; each in (0, 100)), ``noise=0.01`` (for
    the default removal), ``order``. Cost: ``P·n`` model rows and as many linear systems per
    order (Quantus's ROAD runs MoRF only: ``order="morf"`` is its setting).
    """

    name = "road"
    direction = "higher"
    needs = frozenset({"model"})
    applies_to = "image"
    stochastic = True
    default_output = "probability"
    defaults: ClassVar[dict] = {"percentages": tuple(range(10, 100, 10)), "noise": 0.01,
                                "order": "both"}
    ORDERS: ClassVar[tuple] = ("both", "morf", "lerf")
    option_rules: ClassVar[dict] = {"percentages": _percentages_rule,
                                    "order": Choice(ORDERS, "order")}
    # whatever removal made the explanation, ROAD removes with noisy linear imputation
    # unless removal= says otherwise (that is the point of ROAD)
    own_removal = True

    def __call__(self, model, x, a, *, target=None, removal=None, seed=0, **options):
        res = super().__call__(model, x, a, target=target, removal=removal, seed=seed,
                               **options)
        res.direction = "lower" if res.settings["order"] == "morf" else "higher"
        return res

    def default_removal(self, options: dict) -> NoisyLinear:
        return NoisyLinear(noise=options["noise"])

    def check_inputs(self, inp: MetricInputs) -> None:
        if inp.adapter is None or not inp.adapter.is_classifier:
            raise InputError("road measures classification accuracy and needs a classifier "
                             "(a model whose outputs are logits or probabilities); for a "
                             "regressor use a removal curve such as deletion")

    def compute(self, inp: MetricInputs) -> dict:
        from ..game import Game

        order = inp.options["order"]
        names = ("morf", "lerf") if order == "both" else (order,)
        pct = np.asarray(inp.options["percentages"], dtype=np.float64).ravel()
        n, d = inp.n, inp.d
        ks = np.floor(pct * d / 100).astype(np.int64)
        ar = np.broadcast_to(np.arange(d), (n, d))
        masks = []
        for name in names:  # kept-masks (n, P, d) per order: feature kept iff its rank >= k_p
            ranks = np.empty((n, d), dtype=np.int64)
            np.put_along_axis(ranks, inp.order(descending=name == "morf"), ar, axis=1)
            masks.append(ranks[:, None, :] >= ks[None, :, None])
        game = Game(inp.adapter, inp.X, inp.removal, _AllOutputs(inp.targets), inp.fmap,
                    kind=inp.kind, seed=inp.seed)
        probs = game(np.concatenate(masks, 1)).numpy()  # (n, len(names)·P, k)
        if probs.shape[-1] == 1:  # not reached for Prediction("all") on a one-output model
            probs = np.concatenate([1 - probs, probs], -1)
        t = inp.targets
        acc = (probs.argmax(-1) == t[:, None]).astype(np.float64)
        prob_t = np.take_along_axis(probs, t[:, None, None], 2)[..., 0]
        P = len(pct)
        extras = {"percentages": pct}
        for i, name in enumerate(names):
            extras[name] = float(acc[:, i * P:(i + 1) * P].mean())
            extras[f"{name}_accuracy"] = acc[:, i * P:(i + 1) * P]
            extras[f"{name}_probability"] = prob_t[:, i * P:(i + 1) * P]
        if order == "both":
            per_sample = extras["lerf_accuracy"].mean(1) - extras["morf_accuracy"].mean(1)
            extras["gap"] = float(per_sample.mean())
        else:
            per_sample = extras[f"{order}_accuracy"].mean(1)
        return {"per_sample": per_sample, "curves": extras[f"{names[0]}_accuracy"],
                "extras": extras,
                "settings": {"percentages": pct.tolist(), "k": ks.tolist(), "order": order,
                             "removal": inp.removal.describe()}}
