"""The lime explainers registered by :mod:`xai_lime` (imported on their first lookup)."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from xai.errors import FeatureMapError, InputError, XaiError
from xai.external import ExternalExplainer

PEERS = "pip install 'xai[peers]'"


def _import(module: str):
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise XaiError(f"the lime backend needs the package 'lime' ({exc}); install it with "
                       f"{PEERS}") from None


def _weights(local_exp, d: int) -> np.ndarray:
    out = np.zeros(d)
    for j, w in local_exp:
        out[int(j)] = w
    return out


def _selection(options) -> str:
    sel = options.get("feature_selection")
    if sel is None:
        sel = "none" if options.get("num_features") is None else "auto"
    return sel


class LimeTabular(ExternalExplainer):
    """``lime.lime_tabular.LimeTabularExplainer`` (see the module docstring)."""

    name = "lime.tabular"
    per_position = False
    defaults: ClassVar[dict[str, Any]] = {"num_samples": 5000, "kernel_width": None, "discretize_continuous": False,
                "num_features": None, "feature_selection": None,
                "sample_around_instance": False}

    def attribute(self, ctx):
        lime_tabular = _import("lime.lime_tabular")
        if ctx.kind != "tabular":
            raise InputError(f"lime.tabular explains tabular rows (n, d); got {ctx.kind} inputs "
                             "(use 'lime.image' for images)")
        if ctx.fmap is not None and not np.array_equal(ctx.fmap.index[0],
                                                       np.arange(ctx.X.shape[1])):
            raise FeatureMapError("lime.tabular explains single columns; feature groups are not "
                                  "supported by lime (use xai's native method='lime' with "
                                  "features=groups)")
        B = ctx.background
        if B is None:
            raise InputError("lime.tabular needs background= (lime's training_data: rows whose "
                             "statistics drive its sampling), e.g. background=X_train")
        B = np.asarray(B.detach().cpu().numpy() if hasattr(B, "detach") else B, np.float64)
        n, d = ctx.X.shape
        o = self.options
        kw = o["kernel_width"]
        seed = o.get("seed")
        ex = lime_tabular.LimeTabularExplainer(
            B, mode="regression", feature_names=[str(c) for c in (ctx.names or range(d))],
            kernel_width=kw, discretize_continuous=o["discretize_continuous"],
            feature_selection=_selection(o), sample_around_instance=o["sample_around_instance"],
            random_state=seed)
        num_features = d if o["num_features"] is None else int(o["num_features"])
        values, base, score = np.zeros((n, d)), np.zeros(n), np.zeros(n)
        for i in range(n):
            t = int(ctx.targets[i])
            if seed is not None:  # every row from the same seed (independent of the batch)
                ex.random_state = np.random.RandomState(int(seed) % 2**32)

            def f(Z, t=t):
                return ctx.predict(np.asarray(Z, dtype=np.float64))[:, t]

            # regression mode on the target output = lime's classification with labels=(t,)
            e = ex.explain_instance(ctx.X[i], f, num_features=num_features,
                                    num_samples=int(o["num_samples"]))
            values[i] = _weights(e.local_exp[1], d)
            base[i] = float(e.intercept[1])
            score[i] = float(e.score)
        extras = {"score": score}
        if not o["discretize_continuous"]:
            extras["contribution"] = values * (ctx.X - ex.scaler.mean_) / ex.scaler.scale_
        return {"values": values, "base_values": base, "extras": extras,
                "removal": {"name": "lime-tabular-sampling", "background_rows": len(B)},
                "options": {"kernel_width": float(kw or 0.75 * np.sqrt(d))}}


class LimeImage(ExternalExplainer):
    """``lime.lime_image.LimeImageExplainer`` on xai's feature map (see the module
    docstring). Images may be ``(C, H, W)``, ``(H, W, C)`` or ``(H, W)``; lime sees them as
    ``(H, W, 3)`` (grey images are repeated to three channels for lime and read back from the
    first one). ``hide_color=None`` (each segment's mean) needs 1 or 3 channels."""

    name = "lime.image"
    per_position = False
    defaults: ClassVar[dict[str, Any]] = {"num_samples": 1000, "kernel_width": 0.25, "hide_color": None,
                "num_features": None, "feature_selection": None}

    def attribute(self, ctx):
        lime_image = _import("lime.lime_image")
        if ctx.kind != "image":
            raise InputError(f"lime.image explains images; got {ctx.kind} inputs (use "
                             "'lime.tabular' for tables)")
        from xai.features import guess_channel_axis

        fmap = ctx.fmap
        shape = tuple(ctx.X.shape[1:])
        cax = fmap.channel_axis if fmap.channel_axis is not None else guess_channel_axis(shape)
        cax = None if len(shape) == 2 else cax % 3
        X = ctx.X if cax is None else np.moveaxis(ctx.X, 1 + cax, -1)  # (n, H, W[, C])
        grey = X.ndim == 3 or X.shape[-1] == 1
        if grey:
            X = X.reshape(X.shape[:3])
        elif X.shape[-1] != 3 and self.options["hide_color"] is None:
            raise InputError(f"lime.image with hide_color=None needs 1 or 3 channels, got "
                             f"{X.shape[-1]}; pass hide_color=<a number>")

        def to_ours(batch):
            batch = np.asarray(batch, dtype=np.float64)
            if grey:
                batch = batch[..., 0]
                return batch if cax is None else np.expand_dims(batch, 1 + cax)
            return batch if cax is None else np.moveaxis(batch, -1, 1 + cax)

        o = self.options
        seed = o.get("seed")
        ex = lime_image.LimeImageExplainer(kernel_width=o["kernel_width"],
                                           feature_selection=_selection(o), random_state=seed)
        n, d = len(X), fmap.d
        values, base, score = np.zeros((n, d)), np.zeros(n), np.zeros(n)
        batch = int(o.get("batch_size") or 100)
        tqdm = lime_image.tqdm
        lime_image.tqdm = _quiet  # lime 0.2 draws a progress bar over its samples, always
        try:
            self._rows(ctx, ex, X, fmap, to_ours, batch, values, base, score)
        finally:
            lime_image.tqdm = tqdm
        return {"values": values, "base_values": base, "extras": {"score": score},
                "removal": {"name": "baseline", "value": "segment-mean" if o["hide_color"]
                            is None else float(o["hide_color"])}}

    def _rows(self, ctx, ex, X, fmap, to_ours, batch, values, base, score) -> None:
        o = self.options
        seed = o.get("seed")
        for i in range(len(X)):
            seg = fmap.index[0 if fmap.shared else i]
            if seg.min() < 0:
                raise FeatureMapError("lime.image needs every pixel in a feature (the feature "
                                      "map has always-kept positions)")
            di = int(seg.max()) + 1
            t = int(ctx.targets[i])
            if seed is not None:
                ex.random_state = np.random.RandomState(int(seed) % 2**32)

            def predict(batch_imgs):
                return ctx.predict(to_ours(batch_imgs))

            e = ex.explain_instance(
                X[i], predict, labels=(t,), top_labels=None, hide_color=o["hide_color"],
                num_features=di if o["num_features"] is None else int(o["num_features"]),
                num_samples=int(o["num_samples"]), batch_size=batch,
                segmentation_fn=lambda _img, seg=seg: seg,
                random_seed=None if seed is None else int(seed) % 2**32)
            values[i, :di] = _weights(e.local_exp[t], di)
            base[i] = float(e.intercept[t])
            score[i] = float(e.score)


def _quiet(iterable, *args, **kwargs):
    return iterable


EXPLAINERS = {cls.name: cls for cls in (LimeTabular, LimeImage)}

