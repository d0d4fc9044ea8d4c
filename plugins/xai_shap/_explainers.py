"""The shap explainers registered by :mod:`xai_shap` (imported on their first lookup)."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from xai.errors import InputError, XaiError, unknown_name
from xai.external import ExternalExplainer

PEERS = "pip install 'xai[peers]'"


def _shap():
    try:
        import shap
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise XaiError(f"the shap backend needs the package 'shap' ({exc}); install it with "
                       f"{PEERS}") from None
    return shap


def _background(ctx, name: str, required: bool = True) -> np.ndarray | None:
    B = ctx.background
    if B is None:
        if required:
            raise InputError(f"{name} needs background= (rows whose values replace the hidden "
                             "features), e.g. background=X_train[:100]")
        return None
    if hasattr(B, "detach"):
        B = B.detach().cpu().numpy()
    return np.asarray(B, dtype=np.float64)


def _tabular_only(ctx, name: str) -> None:
    if ctx.kind != "tabular":
        raise InputError(f"{name} explains tabular rows (n, d); got {ctx.kind} inputs of shape "
                         f"{tuple(ctx.X.shape[1:])}. For images use 'shap.partition', or xai's "
                         "native methods (e.g. method='shap', features='slic')")


def _target_groups(ctx):
    """(target, rows) for each distinct target: shap explains one output at a time."""
    for t in np.unique(ctx.targets):
        yield int(t), np.flatnonzero(ctx.targets == t)


def _output_fn(ctx, target: int):
    def f(Z):
        return ctx.predict(np.asarray(Z, dtype=np.float64))[:, target]
    return f


def _pick_target(values: np.ndarray, base: Any, targets: np.ndarray, k: int):
    """Values (n, d) and base (n,) of each row's target from shap's outputs: (n, d) for one
    output, (n, d, k) for several. A single margin output of a binary classifier (k = 2
    probabilities in xai's adapter) is the log-odds of class 1; target 0 gets its negative."""
    values = np.asarray(values, dtype=np.float64)
    base = np.asarray(base, dtype=np.float64)
    n = len(targets)
    rows = np.arange(n)
    if values.ndim == 3:
        if base.ndim == 2:
            base = base[rows, targets]
        else:
            base = np.broadcast_to(base.reshape(-1), (n, values.shape[2]))[rows, targets]
        return values[rows, :, targets], base
    base = np.broadcast_to(base.reshape(-1)[:1] if base.size == 1 else base.reshape(-1), (n,))
    if k == 2:
        sign = np.where(targets == 1, 1.0, -1.0)
        return values * sign[:, None], base * sign
    return values, np.array(base, dtype=np.float64)


def _unwrap(model):
    """The estimator inside an xai scikit-learn adapter; any other model as is."""
    from xai.models import SklearnModel

    return model.estimator if isinstance(model, SklearnModel) else model


def _construct(method: str, needs: str, build):
    """A shap explainer that reads the model itself (its coefficients or trees); a model it
    cannot read is an InputError saying what the method needs, before any model call."""
    from xai.errors import InputError

    try:
        return build()
    except Exception as exc:  # shap's own error types vary by version
        raise InputError(f"{method} needs {needs}; shap could not read this model "
                         f"({type(exc).__name__}: {exc}). Use shap.kernel, shap.exact or xai's "
                         "'shap' for any other model") from exc


class _ShapBase(ExternalExplainer):
    per_position = True

    def _seeded(self):
        seed = self.options.get("seed")
        return None if seed is None else int(seed) % 2**32

    def _max_samples(self, B: np.ndarray) -> int:
        m = self.options.get("max_samples")
        return len(B) if m is None else int(m)

    def _per_target(self, ctx, explain_rows) -> tuple[np.ndarray, np.ndarray]:
        """Run ``explain_rows(f, rows) -> (values (r, d), base (r,))`` for each target."""
        n, p = len(ctx.X), int(np.prod(ctx.X.shape[1:]))
        values, base = np.zeros((n, p)), np.zeros(n)
        for t, rows in _target_groups(ctx):
            v, b = explain_rows(_output_fn(ctx, t), rows)
            values[rows] = np.asarray(v, dtype=np.float64).reshape(len(rows), -1)
            base[rows] = np.asarray(b, dtype=np.float64).reshape(-1)
        return values, base


class _IndependentMasked(_ShapBase):
    """Base of the tabular shap explainers over ``maskers.Independent(background)``."""

    def _independent_masker(self, shap, ctx):
        """The background rows and shap's independent masker over them."""
        _tabular_only(ctx, self.name)
        B = _background(ctx, self.name)
        return B, shap.maskers.Independent(B, max_samples=self._max_samples(B))


class ShapExact(_IndependentMasked):
    """``shap.ExactExplainer`` with ``maskers.Independent(background, max_samples)``.

    ``max_samples`` defaults to every background row (shap's own default, 100, subsamples
    larger backgrounds), so it equals xai's ``exact-shap`` with the same background.
    Cost: ``2^d * |B|`` model rows per explained row."""

    name = "shap.exact"
    defaults: ClassVar[dict[str, Any]] = {"max_samples": None}

    def attribute(self, ctx):
        shap = _shap()
        B, masker = self._independent_masker(shap, ctx)

        def run(f, rows):
            e = shap.ExactExplainer(f, masker)(ctx.X[rows], silent=True)
            return e.values, e.base_values

        values, base = self._per_target(ctx, run)
        return {"values": values, "base_values": base,
                "removal": {"name": "marginal", "background_rows": len(B)}}


class ShapPermutation(_IndependentMasked):
    """``shap.PermutationExplainer`` (antithetic permutations, shap's implementation) with
    ``maskers.Independent(background, max_samples)``; ``max_evals`` model calls of the masker
    per explained row (shap's default 500), ``seed`` seeds shap's permutations."""

    name = "shap.permutation"
    defaults: ClassVar[dict[str, Any]] = {"max_evals": 500, "max_samples": None}

    def attribute(self, ctx):
        shap = _shap()
        B, masker = self._independent_masker(shap, ctx)

        def run(f, rows):
            ex = shap.PermutationExplainer(f, masker, seed=self._seeded())
            e = ex(ctx.X[rows], max_evals=self.options["max_evals"], silent=True)
            return e.values, e.base_values

        values, base = self._per_target(ctx, run)
        return {"values": values, "base_values": base,
                "removal": {"name": "marginal", "background_rows": len(B)}}


class ShapKernel(_ShapBase):
    """``shap.KernelExplainer(f, background).shap_values(X, nsamples, l1_reg)``.

    ``l1_reg`` defaults to ``False`` here, not shap's ``"num_features(10)"``: since shap 0.47
    that default keeps only 10 features when ``d > 10`` and sets the rest to zero, an error
    floor no budget removes. With ``nsamples >= 2**d - 2`` shap enumerates
    every coalition and the result equals exact Shapley values. ``seed`` seeds numpy's global
    generator for the call (shap's Kernel draws from it) and restores its state afterwards."""

    name = "shap.kernel"
    defaults: ClassVar[dict[str, Any]] = {"nsamples": "auto", "l1_reg": False}

    def attribute(self, ctx):
        shap = _shap()
        _tabular_only(ctx, self.name)
        B = _background(ctx, self.name)
        seed = self._seeded()

        def run(f, rows):
            state = np.random.get_state()
            try:
                if seed is not None:
                    np.random.seed(seed)
                ex = shap.KernelExplainer(f, B)
                vals = ex.shap_values(ctx.X[rows], nsamples=self.options["nsamples"],
                                      l1_reg=self.options["l1_reg"], silent=True)
            finally:
                np.random.set_state(state)
            base = np.full(len(rows), float(np.asarray(ex.expected_value).reshape(-1)[0]))
            return np.asarray(vals).reshape(len(rows), -1), base

        values, base = self._per_target(ctx, run)
        return {"values": values, "base_values": base,
                "removal": {"name": "marginal", "background_rows": len(B)}}


def _channel_axis(ctx) -> int | None:
    if ctx.fmap is not None and ctx.fmap.channel_axis is not None:
        return ctx.fmap.channel_axis % 3
    from xai.features import guess_channel_axis

    cax = guess_channel_axis(tuple(ctx.X.shape[1:]))
    return None if cax is None else cax % 3


def _to_hwc(X: np.ndarray, cax: int | None) -> np.ndarray:
    """Images (n, *shape) in xai's layout -> (n, H, W, C) as shap and lime want them."""
    if cax is None:
        return X[..., None]
    return np.moveaxis(X, 1 + cax, -1)


def _from_hwc(Z: np.ndarray, cax: int | None) -> np.ndarray:
    if cax is None:
        return Z[..., 0]
    return np.moveaxis(Z, -1, 1 + cax)


class ShapPartition(_ShapBase):
    """``shap.PartitionExplainer`` (Owen values on a hierarchy of features).

    Images: ``shap.maskers.Image(mask, (H, W, C))`` where ``mask`` is ``"inpaint_telea"``
    (default), ``"inpaint_ns"``, ``"blur(kx,ky)"`` (these three need OpenCV: ``pip install
    opencv-python-headless``) or a number; shap attributes every pixel of every channel, so
    ``values`` are ``(n, C*H*W)`` (in the inputs' own layout, flattened), or summed over each
    feature with ``features=``. Tabular: ``maskers.Partition(background, max_samples,
    clustering)`` (``clustering`` default ``"correlation"``). ``max_evals`` per row (500)."""

    name = "shap.partition"
    defaults: ClassVar[dict[str, Any]] = {"max_evals": 500, "mask": "inpaint_telea", "clustering": "correlation",
                "max_samples": None}

    def attribute(self, ctx):
        shap = _shap()
        cax = _channel_axis(ctx) if ctx.kind == "image" else None
        if ctx.kind == "tabular":
            B = _background(ctx, self.name)
            masker = shap.maskers.Partition(B, max_samples=self._max_samples(B),
                                            clustering=self.options["clustering"])
            data, back = ctx.X, (lambda v: v)
            removal = {"name": "marginal", "background_rows": len(B)}
        elif ctx.kind == "image":
            mask = self.options["mask"]
            if isinstance(mask, str):
                try:
                    import cv2  # noqa: F401
                except ImportError:
                    raise XaiError(f"shap.partition with mask={mask!r} needs OpenCV (pip "
                                   "install opencv-python-headless); or pass a number, e.g. "
                                   "mask=0.0") from None
            data = _to_hwc(ctx.X, cax)
            masker = shap.maskers.Image(mask, data.shape[1:])
            removal = {"name": "shap-image", "mask": mask if isinstance(mask, str) else
                       float(np.mean(mask))}

            def back(v):
                return _from_hwc(np.asarray(v), cax)
        else:
            raise InputError(f"{self.name} explains tabular rows or images, not {ctx.kind}")

        def run(f, rows):
            def g(Z):
                Z = np.asarray(Z, dtype=np.float64)
                return f(_from_hwc(Z, cax) if ctx.kind == "image" else Z)

            ex = shap.PartitionExplainer(g, masker)
            e = ex(data[rows], max_evals=self.options["max_evals"], silent=True)
            return back(e.values), e.base_values

        values, base = self._per_target(ctx, run)
        return {"values": values.reshape(len(ctx.X), *ctx.X.shape[1:]), "base_values": base,
                "removal": removal}


class ShapTree(_ShapBase):
    """``shap.TreeExplainer`` for tree ensembles (scikit-learn forests and boosting, XGBoost,
    LightGBM, CatBoost): the model object itself is read, no rows are evaluated.

    ``feature_perturbation``: ``"interventional"`` (uses ``background=``; the default when a
    background is given) or ``"tree_path_dependent"`` (the trees' cover; default without a
    background). ``model_output``: ``"raw"`` (default), ``"probability"``, ``"log_loss"``.
    Classifiers: the values of each row's target class."""

    name = "shap.tree"
    defaults: ClassVar[dict[str, Any]] = {"model_output": "raw", "feature_perturbation": None, "check_additivity": True}

    def attribute(self, ctx):
        shap = _shap()
        _tabular_only(ctx, self.name)
        fp = self.options["feature_perturbation"]
        B = _background(ctx, self.name, required=fp == "interventional")
        if fp is None:
            fp = "tree_path_dependent" if B is None else "interventional"
        if fp not in ("interventional", "tree_path_dependent"):
            raise unknown_name("feature_perturbation", fp,
                               ("interventional", "tree_path_dependent"))
        ex = _construct(self.name, "a tree ensemble (scikit-learn forests or boosting, XGBoost, "
                        "LightGBM, CatBoost)", lambda: shap.TreeExplainer(
                            _unwrap(ctx.model), data=B if fp == "interventional" else None,
                            model_output=self.options["model_output"],
                            feature_perturbation=fp))
        vals = ex.shap_values(ctx.X, check_additivity=self.options["check_additivity"])
        k = ctx.predict(ctx.X[:1]).shape[1]
        values, base = _pick_target(vals, ex.expected_value, ctx.targets, k)
        return {"values": values, "base_values": base,
                "removal": {"name": fp.replace("_", "-"),
                            "background_rows": None if B is None else len(B)},
                "options": {"feature_perturbation": fp}}


class ShapLinear(_ShapBase):
    """``shap.LinearExplainer`` for scikit-learn linear models (the coefficients are read).

    ``feature_perturbation``: ``"interventional"`` (default; ``maskers.Independent(B,
    len(B))``, giving ``w_i (x_i - mean(B)_i)``) or ``"correlation_dependent"``
    (``maskers.Impute(B)``). Binary logistic regression: the log-odds of class 1 (negated for
    target 0)."""

    name = "shap.linear"
    defaults: ClassVar[dict[str, Any]] = {"feature_perturbation": "interventional"}

    def attribute(self, ctx):
        shap = _shap()
        _tabular_only(ctx, self.name)
        B = _background(ctx, self.name)
        fp = self.options["feature_perturbation"]
        if fp == "interventional":
            masker = shap.maskers.Independent(B, max_samples=len(B))
        elif fp == "correlation_dependent":
            masker = shap.maskers.Impute(B)
        else:
            raise unknown_name("feature_perturbation", fp,
                               ("interventional", "correlation_dependent"))
        ex = _construct(self.name, "a scikit-learn linear model (with coef_)",
                        lambda: shap.LinearExplainer(_unwrap(ctx.model), masker))
        vals = ex.shap_values(ctx.X)
        k = ctx.predict(ctx.X[:1]).shape[1]
        values, base = _pick_target(vals, ex.expected_value, ctx.targets, k)
        return {"values": values, "base_values": base,
                "removal": {"name": fp.replace("_", "-"), "background_rows": len(B)}}


EXPLAINERS = {cls.name: cls for cls in (ShapExact, ShapPermutation, ShapKernel, ShapPartition,
                                        ShapTree, ShapLinear)}

