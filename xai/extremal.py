"""Extremal perturbations (Fong, Patrick & Vedaldi, "Understanding Deep Networks via Extremal
Perturbations and Smooth Masks", ICCV 2019).

For each image and area ``a`` the method looks for the mask ``m`` of area ``a`` that keeps the
target output highest when only the masked region is kept (``mode="preserve"``) or lowest when
only it is removed (``mode="delete"``). Removed pixels show a blurred copy of the image: the
synthetic input is the game's blend ``m x + (1 - m) blur(x)`` (the ``blur`` removal with
fractional masks), evaluated with gradients by :func:`xai.game.differentiable_values`.

The paper's three ingredients, as in its reference implementation (TorchRay's
``extremal_perturbation``, by the authors):

- **Smooth masks** (:class:`SmoothMask`): the mask is a smooth max-convolution of a
  low-resolution parameter mask ``p`` (one parameter every ``mask_step`` pixels):
  ``m(u) = smax_i k(|u - u_i| / sigma) p_i``, with the kernel
  ``k(z) = exp(-2 max(z - 1/2, 0)^2)`` and the smooth maximum
  ``smax_i y_i = sum_i y_i softmax(20 y)_i``; its smoothness is set by ``mask_sigma``.
- **Area by ranking** (:func:`ranking_penalty`): the sorted mask values should equal the
  reference vector ``r_a`` (a fraction ``a`` of ones, the rest zeros), penalised by
  ``lambda * mean((sort(m) - r_a)^2)`` with ``lambda`` growing by ``regul_growth`` per step.
- **Optimisation**: the parameters start at one and are clamped to ``[0, 1]`` after every
  step; every area of every image is optimised at once, one batch of synthetic inputs per step.

Where this differs from TorchRay: one blur level (the paper's equation) rather than TorchRay's
pyramid of blur levels interpolated by the mask value; Adam by default (``optimizer="sgd"`` is
TorchRay's SGD with momentum 0.9, dampening 0.9); no random horizontal flips of the
synthetic inputs (TorchRay's ``jitter``); mask step and kernel width scaled to the image size
(TorchRay's 7 and 21 pixels at 224 pixels); the blur's edge pixels are replicated (TorchRay
pads with zeros).
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np
import torch

from .behaviours import Prediction
from .errors import InputError, OptionError
from .external import ExplainContext, ExternalExplainer
from .game import Game, differentiable_values
from .inputs import Choice, Integer, Real
from .removals import Blur

#: TorchRay's smooth-max temperature: softmax(coldness * y) weights the max-convolution
COLDNESS = 20.0
#: how much the area penalty's weight grows over the optimisation: TorchRay's 1.0035 per step
#: over its 800 steps
FINAL_WEIGHT_GAIN = 1.0035**800
#: rows of synthetic inputs optimised together (images x areas) per block of explicands
BLOCK_ROWS = 64

OPTION_RULES = {
    "mode": Choice(("preserve", "delete")),
    "max_iter": Integer(1, optional=False, example=300),
    "mask_step": Integer(1),
    "mask_sigma": Real(0.0, low_open=True),
    "blur_sigma": Real(0.0),
    "optimizer": Choice(("adam", "sgd")),
    "learning_rate": Real(0.0, low_open=True),
    "regul_weight": Real(0.0, optional=False),
    "regul_growth": Real(1.0),
    "area_domain": Choice(("image", "padded")),
    "output": Choice(("auto", "raw", "probability", "log-odds")),
}


def check_areas(area: Any) -> list[float]:
    """The areas of ``area=`` (a float or a list of floats in ``(0, 1)``) as a list;
    :class:`~xai.errors.OptionError` otherwise."""
    items = area if isinstance(area, list | tuple | np.ndarray) else [area]
    if len(items) == 0:
        raise OptionError("area= is empty: pass a fraction such as area=0.1 or a list such as "
                          "area=[0.05, 0.1, 0.2]")
    rule = Real(0.0, 1.0, low_open=True, high_open=True, optional=False)
    return [rule("area", a) for a in items]


def smooth_kernel(z: torch.Tensor) -> torch.Tensor:
    """TorchRay's kernel of the max-convolution: one within half a kernel width, then a
    Gaussian fall-off, ``exp(-2 max(z - 1/2, 0)^2)``."""
    return torch.exp(-2 * (z - 0.5).clamp(min=0) ** 2)


class SmoothMask:
    """Smooth masks of ``shape`` ``(H, W)`` from parameter masks of :attr:`shape_in`, one
    parameter every ``step`` pixels: the smooth max-convolution of the paper, implemented as
    TorchRay's ``MaskGenerator`` (same margin, padding, kernel and pooling).

    :meth:`__call__` maps parameters ``(B, 1, *shape_in)`` to ``(cropped, full)``: the mask on
    the image ``(B, 1, H, W)`` and the mask with its margin ``(B, 1, *shape_out)`` (the area
    constraint is imposed on the latter, as in TorchRay)."""

    def __init__(self, shape: tuple[int, int], step: int, sigma: float, *,
                 dtype: torch.dtype = torch.float32, device: Any = "cpu") -> None:
        self.shape, self.step, self.sigma = tuple(shape), int(step), float(sigma)
        self.margin = self.sigma
        self.padding = 1 + math.ceil((self.margin + self.sigma) / step)
        self.radius = 1 + math.ceil(self.sigma / step)
        self.shape_in = [math.ceil(z / step) for z in self.shape]
        width = 2 * self.radius + 1
        self.shape_mid = [z + 2 * self.padding - width + 1 for z in self.shape_in]
        self.shape_up = [step * z for z in self.shape_mid]
        self.shape_out = [z - step + 1 for z in self.shape_up]
        # weight[k, u]: kernel between output pixel u and the k-th parameter of its window
        inv = [torch.tensor(zm, dtype=torch.float32) / torch.tensor(zo, dtype=torch.float32)
               for zm, zo in zip(self.shape_mid, self.shape_up)]
        uy, ux = torch.meshgrid(torch.arange(self.shape_out[0], dtype=torch.float32),
                                torch.arange(self.shape_out[1], dtype=torch.float32),
                                indexing="ij")
        weight = torch.zeros((1, width**2, *self.shape_out))
        for ky in range(width):
            for kx in range(width):
                iy = torch.floor(inv[0] * uy) + ky - self.padding
                ix = torch.floor(inv[1] * ux) + kx - self.padding
                delta = torch.sqrt((uy - (self.margin + step * iy)) ** 2 +
                                   (ux - (self.margin + step * ix)) ** 2)
                weight[0, ky * width + kx] = smooth_kernel(delta / self.sigma)
        self.weight = weight.to(dtype=dtype, device=device)

    def __call__(self, params: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        width = 2 * self.radius + 1
        windows = torch.nn.functional.unfold(params, (width, width),
                                             padding=(self.padding, self.padding))
        windows = windows.reshape(len(params), -1, *self.shape_mid)
        windows = torch.nn.functional.interpolate(windows, size=self.shape_up, mode="nearest")
        windows = torch.nn.functional.pad(windows, (0, -self.step + 1, 0, -self.step + 1))
        y = self.weight * windows
        full = (y * torch.softmax(COLDNESS * y, dim=1)).sum(dim=1, keepdim=True).clamp(0, 1)
        m = round(self.margin)
        return full[:, :, m:m + self.shape[0], m:m + self.shape[1]], full


def area_reference(size: int, areas: list[float], dtype: torch.dtype = torch.float32,
                   device: Any = "cpu") -> torch.Tensor:
    """Reference vectors ``(len(areas), size)`` of the ranking constraint: ascending, the last
    fraction ``a`` ones and the rest zeros (``int(size (1 - a))`` zeros, as TorchRay)."""
    ref = torch.ones((len(areas), size), dtype=dtype, device=device)
    for i, a in enumerate(areas):
        ref[i, :int(size * (1 - a))] = 0
    return ref


def ranking_penalty(masks: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """The area constraint by ranking: ``mean((sort(m) - r_a)^2)`` per mask, for masks
    ``(B, ...)`` and references ``(B, size)`` (:func:`area_reference`)."""
    ordered = masks.reshape(len(masks), -1).sort(dim=1)[0]
    return ((ordered - reference) ** 2).mean(dim=1)


class ExtremalPerturbation(ExternalExplainer):
    """Extremal perturbations (Fong, Patrick & Vedaldi, ICCV 2019) for torch image models:
    per image and area ``a``, the smooth mask of area ``a`` whose region, kept alone
    (``mode="preserve"``) or removed alone (``mode="delete"``), keeps the target output
    highest or lowers it most; removed pixels show the image blurred (the ``blur`` removal).

    Options: ``area`` (a fraction or a list of them; default 0.1), ``mode``, ``max_iter``
    (optimisation steps, default 300), ``mask_step`` and ``mask_sigma`` (pixels between mask
    parameters and the smoothing kernel's width; default ``max(H, W) / 32`` rounded, and three
    times that), ``blur_sigma`` (pixels; default ``max(H, W) * 20 / 224``, the paper's 20 at
    224), ``optimizer`` (``"adam"``, or ``"sgd"``: TorchRay's momentum SGD), ``learning_rate``
    (default 0.05 for Adam, 0.01 for SGD), ``regul_weight`` and ``regul_growth`` (the area
    penalty's initial weight 300, times 1.0035 per step), ``output`` (the behaviour's scale:
    ``"auto"`` = the logits of a classifier).

    ``values`` are the masks per pixel (``(n, H*W)``; the mean over areas when several are
    asked for); ``extras["masks"]`` ``(n, len(area), H*W)`` holds every area's mask,
    ``extras["areas"]`` the areas and ``extras["rewards"]`` the target output of each mask's
    synthetic input at the last step (the kept region's for preservation, the perturbed
    image's for deletion)."""

    name = "extremal-perturbation"
    per_position = False
    defaults: ClassVar[dict[str, Any]] = {
        "area": 0.1, "mode": "preserve", "max_iter": 300, "mask_step": None,
        "mask_sigma": None, "blur_sigma": None, "optimizer": "adam", "learning_rate": None,
        "regul_weight": 300.0, "regul_growth": None, "area_domain": "image", "output": "auto",
        "memory_cap": None}

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        for key, rule in OPTION_RULES.items():
            self.options[key] = rule(key, self.options[key])
        self.areas = check_areas(self.options["area"])

    def explain(self, model: Any, X: Any, y: Any = None, *, background: Any = None,
                features: Any = None, output_kind: str | None = None):
        """Explain images ``X`` of torch module ``model`` (see the class docstring); the
        features are pixels unless ``features`` says otherwise."""
        if not isinstance(model, torch.nn.Module):
            raise InputError(f"extremal-perturbation optimises masks by gradients and needs a "
                             f"torch.nn.Module; got a {type(model).__name__}. Use 'occlusion' "
                             "or 'rise' with the blur removal for other models.")
        shape = tuple(getattr(X, "shape", np.shape(X)))
        if len(shape) not in (3, 4):
            raise InputError(f"extremal-perturbation explains images (n, C, H, W), "
                             f"(n, H, W, C) or (n, H, W); got inputs of shape {shape}")
        return super().explain(model, X, y, background=background,
                               features="pixels" if features is None else features,
                               output_kind=output_kind)

    def attribute(self, ctx: ExplainContext) -> dict[str, Any]:
        opts, areas = self.options, self.areas
        fmap = ctx.fmap
        hw = tuple(fmap.pos_shape)
        if len(hw) != 2 or not fmap.shared or not np.array_equal(
                fmap.index.reshape(-1), np.arange(hw[0] * hw[1])):
            raise InputError("extremal-perturbation needs one feature per pixel "
                             "(features='pixels', the default)")
        H, W = hw
        step = opts["mask_step"] or max(1, round(max(H, W) / 32))
        sigma = opts["mask_sigma"] or 3.0 * step
        blur = opts["blur_sigma"]
        game = Game(ctx.adapter, ctx.X, Blur(max(H, W) * 20 / 224 if blur is None else blur),
                    Prediction(target=np.asarray(ctx.targets), output=opts["output"]), fmap,
                    memory_cap=opts["memory_cap"], kind="image")
        n, A = len(ctx.X), len(areas)
        masks = np.zeros((n, A, H * W))
        rewards = np.zeros((n, A))
        per_block = max(1, BLOCK_ROWS // A)
        for a in range(0, n, per_block):
            rows = np.arange(a, min(n, a + per_block))
            m, r = self._optimise(game, rows, (H, W), step, sigma)
            masks[rows] = m.reshape(len(rows), A, H * W)
            rewards[rows] = r.reshape(len(rows), A)
        return {"values": masks.mean(1), "base_values": game.v_full.numpy(),
                "extras": {"masks": masks, "areas": np.asarray(areas), "rewards": rewards},
                "removal": game.removal.describe(), "evaluations": 0,
                "options": {"mask_step": step, "mask_sigma": sigma,
                            "blur_sigma": game.removal.sigma_px}}

    def _optimise(self, game: Game, rows: np.ndarray, hw: tuple[int, int], step: int,
                  sigma: float) -> tuple[np.ndarray, np.ndarray]:
        """Masks ``(len(rows) * A, H*W)`` and their last rewards for explicands ``rows``, all
        areas optimised together."""
        opts, areas = self.options, self.areas
        dtype, device = game.X.dtype, game.X.device
        gen = SmoothMask(hw, step, sigma, dtype=dtype, device=device)
        pair_rows = np.repeat(rows, len(areas))
        params = torch.ones((len(pair_rows), 1, *gen.shape_in), dtype=dtype, device=device,
                            requires_grad=True)
        lr = opts["learning_rate"] or (0.05 if opts["optimizer"] == "adam" else 0.01)
        if opts["optimizer"] == "adam":
            optimiser = torch.optim.Adam([params], lr=lr)
        else:
            optimiser = torch.optim.SGD([params], lr=lr, momentum=0.9, dampening=0.9)
        weight = opts["regul_weight"]
        growth = opts["regul_growth"] or FINAL_WEIGHT_GAIN ** (1 / opts["max_iter"])
        size = hw[0] * hw[1] if opts["area_domain"] == "image" else int(np.prod(gen.shape_out))
        reference = area_reference(size, areas, dtype, device).repeat(len(rows), 1)
        preserve = opts["mode"] == "preserve"
        for _ in range(opts["max_iter"]):
            cropped, full = gen(params)
            mask = cropped.reshape(len(pair_rows), -1)
            value = differentiable_values(game, mask if preserve else 1 - mask, pair_rows)
            reward = value if preserve else -value
            constrained = cropped if opts["area_domain"] == "image" else full
            energy = (reward - weight * ranking_penalty(constrained, reference)).sum()
            optimiser.zero_grad()
            (-energy).backward()
            optimiser.step()
            with torch.no_grad():
                params.clamp_(0, 1)
            weight *= growth
        with torch.no_grad():
            cropped, _ = gen(params)
        return (cropped.reshape(len(pair_rows), -1).double().cpu().numpy(),
                value.detach().double().cpu().numpy())
