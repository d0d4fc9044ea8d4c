"""Removal axis: what the model sees when the features outside the coalition are hidden.

A removal is fitted once per game (:meth:`Removal.fit`), then supplies replacement values for
blocks of draws (:meth:`Removal.replacement`); the game combines them with the explicands by
``where(mask, x, replacement)`` (or interpolation for fractional masks) and averages over the
``n_draws`` draws with :attr:`Removal.weights`. All arrays are torch tensors, flattened over
one input row (``D`` = number of input elements).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ._warn import warn
from .config import config
from .errors import InputError, MaskError, OptionError
from .gaussian import FactorCache, cached_draws, conditional_replacement_reference
from .registry import define_kind, register


@dataclass
class GameContext:
    """What a removal may use when it is fitted: explicands, feature map and input layout."""

    X: torch.Tensor  # (n, D) flattened explicands on the model's device and dtype
    index: torch.Tensor  # (n_maps, D) feature of each position, d for always-kept positions
    d: int
    input_shape: tuple[int, ...]
    channel_axis: int | None
    seed: np.random.SeedSequence
    kind: str  # "tabular", "image" or "tokens"

    def index_of(self, rows: torch.Tensor) -> torch.Tensor:
        """Feature index of each position for explicands ``rows``: ``(c, D)`` or ``(1, D)``."""
        return self.index if self.index.shape[0] == 1 else self.index[rows]


class Removal:
    """Base class of removals. Subclasses set the capability flags and implement ``fit`` and
    ``replacement``."""

    name = "removal"
    accepts_fractional = False
    empty_depends_on_x = True
    aggregate = "prediction"  # where the expectation over draws sits by default

    n_draws: int = 1
    weights: torch.Tensor | None = None  # (n_draws,) summing to one; None = uniform
    #: the replacement values do not depend on the coalition (``replacement`` ignores
    #: ``masks``): callers may compute them once per explicand. False (safe) unless declared.
    mask_free: bool = False
    #: every replacement value is a value some row holds (an explicand, a background row, a
    #: baseline row), so a column of category codes only ever receives its own codes: such a
    #: removal may remove categorical columns (:mod:`xai.tabular`). False (safe) unless declared.
    replaces_with_rows: bool = False
    #: ``replacement`` returns the explicands' own values, bit for bit, where a boolean mask
    #: keeps a feature, so its replacements are the synthetic inputs themselves (no selection
    #: between ``x`` and them). False (safe) unless declared.
    replacements_keep_x: bool = False
    #: input columns that hold category codes (set by :func:`xai.tabular.check_removal` before
    #: the game): they take whole values only, never interpolated ones.
    categorical_columns: tuple[int, ...] = ()

    def fit(self, ctx: GameContext) -> None:
        """Prepare for a game (background fitting, blurring, draws); called before any model
        call."""
        self.ctx = ctx

    def replacement(self, x: torch.Tensor, rows: torch.Tensor, masks: torch.Tensor,
                    start: int, stop: int) -> torch.Tensor:
        """Replacement values for draws ``start:stop``: broadcastable to ``(c, stop-start, D)``.

        ``x`` are the explicands ``(c, D)`` of the pairs, ``rows`` their indices, ``masks`` the
        coalitions ``(c, d)``.
        """
        raise NotImplementedError

    def describe(self) -> dict:
        """Options that identify this removal in an Explanation."""
        return {"name": self.name}


def _to_tensor(values, ctx: GameContext) -> torch.Tensor:
    """``values`` (numpy, torch or nested lists) on the explicands' device and dtype. Floating
    numpy arrays go straight to that dtype (no float64 copy of a float32 background); other
    inputs through float64, as before."""
    if isinstance(values, torch.Tensor):
        arr = values
    else:
        arr_np = np.asarray(values)
        if arr_np.dtype.kind != "f" or not ctx.X.is_floating_point():
            arr_np = np.asarray(arr_np, dtype=np.float64)
        arr = torch.as_tensor(arr_np)
    return arr.to(device=ctx.X.device, dtype=ctx.X.dtype)


def _as_rows(values: np.ndarray | torch.Tensor, what: str, ctx: GameContext) -> torch.Tensor:
    arr = _to_tensor(values, ctx)
    D = ctx.X.shape[1]
    if arr.ndim >= 1 and tuple(arr.shape[-len(ctx.input_shape):]) == tuple(ctx.input_shape) \
            and arr.ndim == len(ctx.input_shape) + 1:
        arr = arr.reshape(arr.shape[0], D)
    elif tuple(arr.shape) == tuple(ctx.input_shape):
        arr = arr.reshape(1, D)
    else:
        raise InputError(f"{what} has shape {tuple(arr.shape)}; expected rows of shape "
                         f"{tuple(ctx.input_shape)}")
    check_finite(arr, what)
    return arr


CHECK_BLOCK_BYTES = 4 * 2**20
"""Bytes of an array that :func:`check_finite` tests at a time (its temporaries are ~2x the
block: ``torch.isfinite`` builds ``abs(x)`` and two boolean arrays)."""


def check_finite(arr: torch.Tensor | np.ndarray, what: str,
                 block_bytes: int = CHECK_BLOCK_BYTES) -> None:
    """Raise ``InputError`` naming the array, count and first position of NaN/inf values.

    The array is tested in blocks of about ``block_bytes`` along its first axis, so the check
    allocates a few blocks' worth of memory, never a multiple of the array."""
    t = torch.as_tensor(arr)
    if not t.is_floating_point():
        return
    if t.ndim == 0:
        t = t.reshape(1)
    row_bytes = max(1, t[:1].numel() * t.element_size())
    step = max(1, block_bytes // row_bytes)
    first, count = None, 0
    for a in range(0, t.shape[0], step):
        block = t[a:a + step]
        if first is None and bool(torch.isfinite(block).all()):
            continue
        bad = ~torch.isfinite(block)
        n_bad = int(bad.sum())
        if n_bad and first is None:
            first = [int(i) for i in torch.nonzero(bad)[0]]
            first[0] += a
        count += n_bad
    if first is not None:
        where = tuple(first) if torch.as_tensor(arr).ndim else ()
        raise InputError(
            f"{what} contains {count} NaN or infinite values (first at index "
            f"{where}); impute or drop them (a native_missing removal is not part of the "
            "core).")


define_kind("removal", Removal)  # before the removals below register


@register("removal", "baseline")
class Baseline(Removal):
    """Fixed baseline: removed features take the value ``r``.

    ``value`` is a scalar, a vector of length ``d`` (one value per feature), a vector of the
    input width, a tensor of the input shape, one tensor per explicand ``(n, *shape)``, or a
    shortcut: ``"zeros"``, ``"mean"`` / ``"median"`` (of the background, which is then
    required: the explained rows are never used, so a result does not depend on the batch),
    ``"segment-mean"`` (each feature's mean value in the explicand, per channel; LIME's image
    default). Fractional masks interpolate ``m*x + (1-m)*r`` on real-valued inputs; integer
    inputs (token ids) and tables with categorical columns accept only boolean masks.
    """

    name = "baseline"
    mask_free = True
    accepts_fractional = True

    def __init__(self, value: float | str | np.ndarray | torch.Tensor = "zeros",
                 background: np.ndarray | None = None) -> None:
        self.value = value
        self.background = background

    @property
    def replaces_with_rows(self) -> bool:  # type: ignore[override]
        """A baseline row (an array) or ``"mode"`` holds values of rows; scalars and the
        other shortcuts compute numbers."""
        v = self.value
        if isinstance(v, str):
            return v.lower() == "mode"
        return np.ndim(v) >= 1

    @property
    def empty_depends_on_x(self) -> bool:  # type: ignore[override]
        return isinstance(self.value, str) and self.value == "segment-mean" or (
            not isinstance(self.value, str | float | int) and np.ndim(self.value) >= 1
            and getattr(self, "_per_explicand", False))

    def fit(self, ctx: GameContext) -> None:
        super().fit(ctx)
        # interpolating integer inputs (token ids) or category codes has no meaning: boolean
        # masks only
        self.accepts_fractional = bool(ctx.X.is_floating_point()) and \
            not self.categorical_columns
        D = ctx.X.shape[1]
        v = self.value
        self._per_explicand = False
        if isinstance(v, str):
            key = v.lower().replace("_", "-")
            if key in ("zeros", "zero"):
                r = torch.zeros(1, D, dtype=ctx.X.dtype, device=ctx.X.device)
            elif key in ("mean", "median", "mode"):
                if self.background is None:
                    raise InputError(f"baseline={key!r} needs a background: pass "
                                     "background=X_train (or give baseline=0.0 or a vector)")
                src = _as_rows(self.background, "background", ctx)
                r = (src.mean(0) if key == "mean" else src.median(0).values if
                     key == "median" else src.mode(0).values)[None]
            elif key == "segment-mean":
                r = _segment_mean(ctx)
                self._per_explicand = True
            else:
                from .errors import unknown_name

                raise unknown_name("baseline shortcut", v, ["zeros", "mean", "median", "mode",
                                                           "segment-mean"])
        elif np.ndim(v) == 0:
            check_finite(torch.tensor([float(v)]), "baseline")
            r = torch.full((1, D), float(v), dtype=ctx.X.dtype, device=ctx.X.device)
        else:
            arr = _to_tensor(v, ctx)
            check_finite(arr, "baseline")
            if arr.ndim == 1 and arr.shape[0] == D:
                r = arr[None]
            elif arr.ndim == 1 and arr.shape[0] == ctx.d:
                idx = ctx.index
                if idx.shape[0] != 1:
                    raise InputError("a per-feature baseline vector needs one feature map shared "
                                     "by all explicands")
                ext = torch.cat([arr, torch.zeros(1, dtype=arr.dtype, device=arr.device)])
                r = ext[idx[0]][None]
            else:
                r = _as_rows(arr, "baseline", ctx)
                if r.shape[0] not in (1, ctx.X.shape[0]):
                    raise InputError(f"baseline has {r.shape[0]} rows; give one row or one per "
                                     f"explicand ({ctx.X.shape[0]})")
                self._per_explicand = r.shape[0] > 1
        self.r = r

    def replacement(self, x, rows, masks, start, stop):
        return (self.r[rows] if self._per_explicand else self.r)[:, None, :]

    @property
    def replacement_source(self) -> torch.Tensor:
        """Every replacement's values are rows of this tensor (the game checks it once)."""
        return self.r

    def describe(self) -> dict:
        v = self.value
        return {"name": self.name, "value": v if isinstance(v, str | int | float) else
                "array"}


def _segment_mean(ctx: GameContext) -> torch.Tensor:
    """Mean value of every feature's positions in each explicand, separately per channel."""
    n, D = ctx.X.shape
    idx = ctx.index.expand(n, D) if ctx.index.shape[0] == 1 else ctx.index
    if ctx.channel_axis is not None and len(ctx.input_shape) == 3:
        ax = ctx.channel_axis % 3
        shape = [1, 1, 1]
        shape[ax] = ctx.input_shape[ax]
        chan = torch.arange(ctx.input_shape[ax], device=ctx.X.device).reshape(shape)
        chan = chan.expand(ctx.input_shape).reshape(1, D)
    else:
        chan = torch.zeros(1, D, dtype=torch.long, device=ctx.X.device)
    key = idx + (ctx.d + 1) * chan  # (n, D)
    nkeys = (ctx.d + 1) * (int(chan.max()) + 1)
    sums = torch.zeros(n, nkeys, dtype=ctx.X.dtype, device=ctx.X.device)
    counts = torch.zeros_like(sums)
    sums.scatter_add_(1, key, ctx.X)
    counts.scatter_add_(1, key, torch.ones_like(ctx.X))
    means = sums / counts.clamp_min(1)
    return torch.gather(means, 1, key)


COVARIANCES = ("empirical", "ledoit-wolf")
BACKGROUND_SUMMARIES = ("subsample", "kmeans")


def _covariance_name(name: str) -> str:
    key = str(name).lower().replace("_", "-")
    key = {"ledoitwolf": "ledoit-wolf"}.get(key, key)
    if key not in COVARIANCES:
        from .errors import unknown_name

        raise unknown_name("covariance", name, COVARIANCES)
    return key


def _summary_name(name: str | None) -> str | None:
    if name is None:
        return None
    key = str(name).lower().replace("_", "-")
    key = {"k-means": "kmeans"}.get(key, key)
    if key not in BACKGROUND_SUMMARIES:
        from .errors import unknown_name

        raise unknown_name("background_summary", name, (*BACKGROUND_SUMMARIES, "k-means"))
    return key


def _background(background, ctx: GameContext, max_background: int | None, summary: str | None,
                seed: np.random.SeedSequence) -> tuple[torch.Tensor, torch.Tensor | None]:
    if background is None:
        raise InputError("this removal needs a background data set: pass background=X_train[:100]"
                         " (rows of the same shape as the explained inputs)")
    bg = _as_rows(background, "background", ctx)
    n_bg = bg.shape[0]
    if max_background is not None and n_bg > max_background:
        rng = np.random.default_rng(seed)
        if summary == "kmeans":
            from sklearn.cluster import KMeans

            km = KMeans(n_clusters=max_background, n_init=1,
                        random_state=int(rng.integers(2**31))).fit(bg.cpu().numpy())
            w = np.bincount(km.labels_, minlength=max_background).astype(np.float64)
            centres = torch.as_tensor(km.cluster_centers_, dtype=bg.dtype, device=bg.device)
            return centres, torch.as_tensor(w / w.sum(), dtype=torch.float64)
        keep = np.sort(rng.choice(n_bg, size=max_background, replace=False))
        warn(f"background has {n_bg} rows; using a random subsample of {max_background} "
             "(pass max_background=None to use all rows, or background_summary='kmeans' for "
             "weighted k-means centres)")
        bg = bg[torch.as_tensor(keep, device=bg.device)]
    return bg, None


@register("removal", "marginal", aliases=("interventional",))
class Marginal(Removal):
    """Marginal (interventional) removal: average the model over background rows ``b`` with
    ``x_S`` kept, ``F(x, S) = sum_n w_n f(x_S, b_n)``. A feature the model ignores is a dummy.

    ``max_background`` (default 100) caps the background: larger ones are subsampled with a
    warning, or summarised by weighted k-means centres with ``background_summary="kmeans"``.
    """

    name = "marginal"
    mask_free = True
    empty_depends_on_x = False

    @property
    def replaces_with_rows(self) -> bool:  # type: ignore[override]
        """Background rows, unless k-means replaces them by centres (averages)."""
        return self.background_summary != "kmeans"

    def __init__(self, background: np.ndarray | None = None, *, max_background: int | None = 100,
                 background_summary: str | None = None) -> None:
        self.background = background
        self.max_background = max_background
        self.background_summary = _summary_name(background_summary)

    def fit(self, ctx: GameContext) -> None:
        super().fit(ctx)
        self.bg, self.weights = _background(self.background, ctx, self.max_background,
                                            self.background_summary, ctx.seed)
        self.n_draws = self.bg.shape[0]

    def replacement(self, x, rows, masks, start, stop):
        return self.bg[None, start:stop]

    def describe(self) -> dict:
        return {"name": self.name, "background_rows": int(self.n_draws),
                "max_background": self.max_background,
                "background_summary": self.background_summary}


@register("removal", "product-marginal", aliases=("product-of-marginals",))
class ProductMarginal(Marginal):
    """Product of marginals: each removed feature takes its values from its own, independently
    drawn background row (a group's columns jointly), so dependence among removed features is
    broken too. ``n_samples`` draws per coalition with common random numbers (the same row
    indices for every coalition and explicand)."""

    name = "product-marginal"

    def __init__(self, background: np.ndarray | None = None, *, n_samples: int = 32,
                 max_background: int | None = None) -> None:
        super().__init__(background, max_background=max_background)
        self.n_samples = n_samples

    def fit(self, ctx: GameContext) -> None:
        if self.n_samples < 1:
            raise OptionError(f"n_samples={self.n_samples} gives product-marginal removal no "
                              "draws: pass n_samples >= 1 (default 32)")
        super().fit(ctx)
        rng = np.random.default_rng(ctx.seed.spawn(1)[0])
        n_bg = self.bg.shape[0]
        p = None if self.weights is None else self.weights.numpy()
        draws = rng.choice(n_bg, size=(self.n_samples, ctx.d + 1), p=p)
        self.draws = torch.as_tensor(draws, device=self.bg.device)
        self.n_draws, self.weights = self.n_samples, None
        self._shared = None
        if ctx.index.shape[0] == 1:
            self._shared = self._gather(ctx.index)[None, :, 0, :]  # (1, K, D)

    def _gather(self, idx: torch.Tensor, start: int = 0, stop: int | None = None):
        rows = self.draws[start:stop][:, idx]  # (kb, c, D) background row per position
        pos = torch.arange(idx.shape[1], device=idx.device)
        return self.bg[rows, pos]  # (kb, c, D)

    def replacement(self, x, rows, masks, start, stop):
        if self._shared is not None:
            return self._shared[:, start:stop]
        return self._gather(self.ctx.index_of(rows), start, stop).transpose(0, 1)

    def describe(self) -> dict:
        return {"name": self.name, "background_rows": int(self.bg.shape[0]),
                "n_samples": self.n_samples}


@register("removal", "conditional-gaussian")
class ConditionalGaussian(Removal):
    """Conditional Gaussian removal for real-valued tabular inputs: removed columns are drawn
    from ``N(mu, Sigma)`` conditioned on the kept columns, both fitted to the background.

    ``n_samples`` draws per coalition (common random numbers); ``n_samples=0`` plugs in the
    conditional mean (exact for linear models only). Note: this removal breaks removal-level
    dummy: a feature the model ignores can get credit through its correlation with used ones.
    """

    name = "conditional-gaussian"
    empty_depends_on_x = False
    replacements_keep_x = True

    def __init__(self, background: np.ndarray | None = None, *, n_samples: int = 32,
                 ridge: float = 1e-6, covariance: str = "empirical") -> None:
        self.background = background
        self.n_samples = n_samples
        self.ridge = ridge
        self.covariance = _covariance_name(covariance)

    def fit(self, ctx: GameContext) -> None:
        super().fit(ctx)
        if ctx.kind != "tabular":
            raise InputError("conditional-gaussian removal is only for real-valued tabular "
                             f"inputs, not {ctx.kind} inputs")
        bg, _ = _background(self.background, ctx, None, None, ctx.seed)
        B = bg.cpu().double().numpy()
        p = B.shape[1]
        if self.covariance == "ledoit-wolf":
            from sklearn.covariance import LedoitWolf

            cov = LedoitWolf().fit(B).covariance_
        else:
            cov = np.cov(B, rowvar=False, ddof=1).reshape(p, p)
            cov = cov + self.ridge * np.trace(cov) / p * np.eye(p)
        self.mu = torch.as_tensor(B.mean(0), dtype=torch.float64)
        self._mu = self.mu.numpy()
        self.cov = torch.as_tensor(cov, dtype=torch.float64)
        rng = np.random.default_rng(ctx.seed.spawn(1)[0])
        k = max(self.n_samples, 1)
        self.eps = torch.as_tensor(rng.standard_normal((k, p)), dtype=torch.float64)
        self.n_draws = k
        # factors of each distinct coalition (they do not depend on x), batched and cached;
        # at most the process-wide memory cap (xai.config.memory_cap) of them
        self._factors = FactorCache(self.cov, self.eps if self.n_samples else None,
                                    max_bytes=config.memory_cap)

    def replacement(self, x, rows, masks, start, stop):
        keep = self._kept_columns(rows, masks).numpy()
        out = cached_draws(self._factors, x.detach().cpu().double().numpy(), keep, self._mu,
                           slice(start, stop),
                           np.float32 if x.dtype == torch.float32 else np.float64)
        return torch.from_numpy(out).to(device=x.device, dtype=x.dtype)

    def replacement_reference(self, x, rows, masks, start, stop):
        """:meth:`replacement` by its definition, one factorisation per distinct coalition
        (no cache): what the tests check the batched one against."""
        keep = self._kept_columns(rows, masks).numpy()
        out = conditional_replacement_reference(x.detach().cpu().double(), keep, self.mu,
                                                self.cov, self.eps[start:stop],
                                                self.n_samples == 0)
        return out.to(device=x.device, dtype=x.dtype)

    def _kept_columns(self, rows, masks) -> torch.Tensor:
        """Kept input columns of each pair ``(c, D)`` on the CPU (always-kept ones included)."""
        idx = self.ctx.index_of(rows)
        c, D = masks.shape[0], idx.shape[1]
        ext = torch.cat([masks.bool(), torch.ones(c, 1, dtype=torch.bool, device=masks.device)],
                        1)
        return torch.gather(ext, 1, idx.expand(c, D)).cpu()

    def describe(self) -> dict:
        return {"name": self.name, "n_samples": self.n_samples, "ridge": self.ridge,
                "covariance": self.covariance}


@register("removal", "blur")
class Blur(Removal):
    """Blur removal for images: removed features show a Gaussian-blurred copy of the image
    (spatial axes only). ``sigma`` in pixels, or a string percentage of the larger side
    (default ``max(H, W) / 20``). Fractional masks blur partially. Blurring keeps low
    frequencies: the removed information is only the fine detail.

    The blur replicates the edge pixels beyond the border and truncates the kernel at 4 sigma:
    it equals ``skimage.filters.gaussian(x, sigma, mode="nearest", truncate=4.0,
    preserve_range=True)`` (scikit-image's default mode) on each channel."""

    name = "blur"
    mask_free = True
    accepts_fractional = True

    def __init__(self, sigma: float | str | None = None) -> None:
        self.sigma = sigma

    def fit(self, ctx: GameContext) -> None:
        super().fit(ctx)
        if ctx.kind != "image":
            raise InputError(f"blur removal needs image inputs (rank 2 or 3 rows), not "
                             f"{ctx.kind} inputs of shape {ctx.input_shape}")
        imgs = ctx.X.reshape(-1, *ctx.input_shape)
        if len(ctx.input_shape) == 2:
            imgs = imgs[:, None]
        elif ctx.channel_axis is not None and ctx.channel_axis % 3 == 2:
            imgs = imgs.permute(0, 3, 1, 2)
        H, W = imgs.shape[-2:]
        sigma = self.sigma
        if sigma is None:
            sigma = max(H, W) / 20
        elif isinstance(sigma, str):
            sigma = float(sigma.strip().rstrip("%")) / 100 * max(H, W)
        self.sigma_px = float(sigma)
        blurred = gaussian_blur(imgs, self.sigma_px)
        if len(ctx.input_shape) == 2:
            blurred = blurred[:, 0]
        elif ctx.channel_axis is not None and ctx.channel_axis % 3 == 2:
            blurred = blurred.permute(0, 2, 3, 1)
        self.blurred = blurred.reshape(ctx.X.shape)

    def replacement(self, x, rows, masks, start, stop):
        return self.blurred[rows][:, None, :]

    def describe(self) -> dict:
        return {"name": self.name, "sigma_px": self.sigma_px}


def gaussian_blur(images: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of ``(n, C, H, W)`` images with replicate (edge) padding, the
    kernel truncated at 4 sigma: as ``skimage.filters.gaussian(mode="nearest", truncate=4.0)``
    (scipy ``gaussian_filter`` with ``mode="nearest"``)."""
    if sigma <= 0:
        return images.clone()
    radius = int(4 * sigma + 0.5)
    t = torch.arange(-radius, radius + 1, dtype=torch.float64)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    k = (k / k.sum()).to(images.dtype).to(images.device)
    n, C, H, W = images.shape
    x = images.reshape(n * C, 1, H, W)
    x = torch.nn.functional.pad(x, (0, 0, radius, radius), mode="replicate")
    x = torch.nn.functional.conv2d(x, k.view(1, 1, -1, 1))
    x = torch.nn.functional.pad(x, (radius, radius, 0, 0), mode="replicate")
    x = torch.nn.functional.conv2d(x, k.view(1, 1, 1, -1))
    return x.reshape(n, C, H, W)


def check_fractional(removal: Removal, fractional: bool) -> None:
    """Raise ``MaskError`` when fractional masks go to a boolean-only removal."""
    if fractional and not removal.accepts_fractional:
        raise MaskError(
            f"removal {removal.name!r} accepts only boolean masks, but fractional masks were "
            "given; removals that accept fractions: baseline, blur (baseline only on real-valued "
            "inputs, not on token ids)")


@register("removal", "permutation-donor")
class PermutationDonor(Removal):
    """Removed features of data row ``r`` take the values of donor row ``pi(r)``, a random
    permutation of the explained rows themselves (permutation importance). ``redraw`` draws a
    new permutation for each repeat."""

    name = "permutation-donor"
    mask_free = True
    replaces_with_rows = True
    aggregate = "behaviour"

    def fit(self, ctx: GameContext) -> None:
        super().fit(ctx)
        self.redraw(0)

    def redraw(self, repeat: int) -> None:
        """Draw the donor permutation of repeat ``repeat`` (seeded)."""
        ss = np.random.SeedSequence(self.ctx.seed.entropy,
                                    spawn_key=(*self.ctx.seed.spawn_key, 11, repeat))
        perm = np.random.default_rng(ss).permutation(self.ctx.X.shape[0])
        self.donors = self.ctx.X[torch.as_tensor(perm, device=self.ctx.X.device)]

    def replacement(self, x, rows, masks, start, stop):
        return self.donors[rows][:, None, :]
