"""Behaviour axis: the number watched for each coalition.

A behaviour is prepared once per game with the full-input outputs (and labels), then maps the
removal-averaged model outputs of many ``(explicand, coalition)`` pairs to values: ``(c,)``, or
``(c, k)`` for ``target="all"``. Loss-based behaviours return ``-loss`` so that a positive
attribution always means "this feature helps".
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from .errors import BehaviourError, LabelError, TargetError, unknown_name
from .inputs import check_labels
from .models import sigmoid, writable
from .registry import define_kind, register

OUTPUT_SCALES = ("auto", "raw", "probability", "log-odds")
#: other spellings of the output scales (the metrics' ``output="logit"`` among them)
SCALE_ALIASES = {"logit": "log-odds", "logits": "log-odds", "prob": "probability",
                 "proba": "probability"}


def output_scale(name: str) -> str:
    """The output scale called ``name`` (one of :data:`OUTPUT_SCALES` or an alias)."""
    scale = SCALE_ALIASES.get(str(name).lower(), str(name).lower())
    if scale not in OUTPUT_SCALES:
        raise unknown_name("output scale", name, OUTPUT_SCALES + ("logit",))
    return scale
LOSSES = ("cross-entropy", "squared-error")
EPS = 1e-12


def to_probability(out: torch.Tensor, output_kind: str) -> torch.Tensor:
    """Model outputs on the probability scale: softmax of logits (sigmoid when ``k = 1``)."""
    if output_kind == "probability":
        return out
    if output_kind == "logits":
        if out.shape[-1] == 1:
            return sigmoid(out)
        if out.shape[-1] == 2:  # one contiguous sigmoid, no strided reduction along a 2-wide axis
            return _softmax2(out)
        return torch.softmax(out, dim=-1)
    raise BehaviourError(
        "this behaviour needs probabilities, but the model returns raw outputs (regression or "
        "scores). Declare output_kind='logits' or 'probability' for the model if it is a "
        "classifier, or use the prediction behaviour / squared-error loss.")


def _softmax2(out: torch.Tensor) -> torch.Tensor:
    """Softmax over a last axis of two logits as ``sigmoid(±(l1 - l0))``
    (:func:`~xai.models.sigmoid`): equal to ``torch.softmax`` within 2 ulp (a softmax along a
    2-wide axis is a slow strided reduction; one contiguous sigmoid of ``(-δ, δ)`` avoids
    strided writes too)."""
    sign = torch.tensor([-1.0, 1.0], dtype=out.dtype, device=out.device)
    return sigmoid((out[..., 1:] - out[..., :1]) * sign)


def _binary(p: torch.Tensor) -> torch.Tensor:
    """A one-output probability model as two columns ``(1 - p, p)``."""
    return torch.cat([1 - p, p], dim=-1) if p.shape[-1] == 1 else p


class Behaviour:
    """Base class. ``scale`` is the scale on which draws are averaged (``"raw"`` or
    ``"probability"``); ``needs_labels`` says whether ``y`` is required."""

    name = "behaviour"
    scale = "raw"
    needs_labels = False
    dataset = False  # True for global (dataset-level) behaviours

    def prepare(self, full: torch.Tensor, y: np.ndarray | None, output_kind: str,
                is_classifier: bool) -> None:
        """Fix per-explicand quantities from the full-input raw outputs ``(n, k)``."""
        self.output_kind = output_kind

    def validate(self, y, n: int, output_kind: str, is_classifier: bool) -> None:
        """Checks that need no model call: labels present where needed, one per row and finite
        (:func:`xai.inputs.check_labels`), and a probability scale where the behaviour needs
        one."""
        if self.needs_labels and y is None:
            raise LabelError(f"the {self.name} behaviour needs labels: pass y= with one "
                             f"label per explained row ({n} rows)")
        check_labels(y, n, self.name)

    def on_scale(self, out: torch.Tensor) -> torch.Tensor:
        """Raw model outputs converted to the averaging scale."""
        return to_probability(out, self.output_kind) if self.scale == "probability" else out

    def __call__(self, F: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def value_of_draw(self, out: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        """The behaviour of raw outputs ``(c, k)`` that are each one removal draw of weight 1
        (a baseline): ``self(self.on_scale(out), rows)``, the same under either aggregate."""
        return self(self.on_scale(out), rows)

    @property
    def n_values(self) -> int | None:
        """Values per coalition: None for a scalar behaviour, k for ``target="all"``."""
        return None

    def subsample_correction(self, var_of_mean: torch.Tensor) -> torch.Tensor | None:
        """What to add to the value of a mean over a random subset of the removal's draws so
        that it is unbiased for the value of the mean over all draws, given the unbiased
        variance of the subset mean per output ``(c, k)``; None when no exact correction
        exists (the behaviour is not linear or quadratic in the mean)."""
        return None

    def describe(self) -> dict:
        return {"name": self.name}


def default_target(k: int, is_classifier: bool, scale: str, output_kind: str) -> int | str:
    """The output explained when no target is given, never mixing classes within a result
    unless it must: the positive class (1) of a binary classifier (two outputs, or one output
    on the probability scale), the predicted class of each row for more classes (recorded per
    row in ``Explanation.extras["target"]``), and output 0 of anything else."""
    binary = k == 2 or (k == 1 and scale == "probability" and
                        output_kind in ("logits", "probability"))
    if is_classifier and binary:
        return 1
    return "predicted" if is_classifier and k > 2 else 0


define_kind("behaviour", Behaviour)  # before the behaviours below register


@register("behaviour", "prediction")
class Prediction(Behaviour):
    """The model's output for a target: an int, one int per explicand, ``"predicted"`` (the
    full-input argmax) or ``"all"``; by default (:func:`default_target`) the positive class of
    a binary classifier, each row's predicted class for more classes; on the ``output`` scale
    ``"raw"``, ``"probability"`` or ``"log-odds"`` (of the averaged probability; ``"auto"`` =
    probability when the model returns probabilities, raw otherwise).

    A one-output classifier (``k = 1``, ``p = P(class 1)``) on the probability or log-odds scale
    has two targets: 0 (``1 - p``) and 1 (``p``); ``"predicted"`` is class ``p > 0.5``. On the
    raw scale its only target is 0 (the model's output itself)."""

    name = "prediction"

    def __init__(self, target: int | str | np.ndarray | None = None,
                 output: str = "auto") -> None:
        self.target = target
        self.output = output_scale(output)

    def prepare(self, full, y, output_kind, is_classifier):
        super().prepare(full, y, output_kind, is_classifier)
        out = self.output
        if out == "auto":
            out = "probability" if output_kind == "probability" else "raw"
        self.resolved_output = out
        self.scale = "raw" if out == "raw" else "probability"
        n, k = full.shape
        target = self.target
        if target is None:
            target = default_target(k, is_classifier, self.scale, output_kind)
        self.resolved_target = target
        self.k = k
        if isinstance(target, str):
            if target == "all":
                self.targets = None
                return
            if target != "predicted":
                raise TargetError(f"target {target!r} is not understood; give an output index "
                                  f"0..{k - 1}, 'predicted' or 'all'")
            if k == 1 and self.scale == "probability" and output_kind in ("logits",
                                                                         "probability"):
                # one-output classifier: p = P(class 1); the predicted class is p > 0.5
                p = to_probability(full, output_kind)[:, 0]
                idx = (p > 0.5).long()
            elif k == 1:
                idx = torch.zeros(n, dtype=torch.long)
            else:
                idx = full.argmax(dim=1)
        else:
            arr = np.atleast_1d(np.asarray(target))
            if not np.issubdtype(arr.dtype, np.integer):
                raise TargetError(f"target must be an integer output index, 'predicted' or "
                                  f"'all', got {target!r}")
            if arr.size not in (1, n):
                raise TargetError(f"target has {arr.size} entries; give one, or one per "
                                  f"explicand ({n})")
            k_eff = 2 if (k == 1 and self.scale == "probability") else k
            if arr.min() < 0 or arr.max() >= k_eff:
                raise TargetError(f"target {arr.max() if arr.max() >= k_eff else arr.min()} is "
                                  f"out of range: the model has {k_eff} outputs, valid targets "
                                  f"are 0..{k_eff - 1}")
            idx = torch.as_tensor(np.broadcast_to(arr, (n,)).copy(), dtype=torch.long)
        self.targets = idx

    def value_of_draw(self, out, rows):
        if (self.scale == "probability" and self.output_kind == "logits" and out.shape[-1] == 2
                and self.targets is not None):
            # only the target's probability, sigmoid(±(l1 - l0)): bit for bit _softmax2's
            delta = out[:, 1] - out[:, 0]
            t = self.targets
            one = self._shared_target(t)
            if one is not None:  # one target for every row: no gather
                vals = sigmoid(delta if one == 1 else -delta)
            else:
                vals = sigmoid(torch.where(t[rows] == 1, delta, -delta))
            return self._finish(vals)
        return super().value_of_draw(out, rows)

    def _shared_target(self, t: torch.Tensor) -> int | None:
        """The target shared by every row of ``t``, or None; remembered for ``t``."""
        memo = getattr(self, "_shared_memo", None)
        if memo is None or memo[0] is not t:
            one = int(t[0]) if len(t) and bool(t.min() == t.max()) else None
            self._shared_memo = memo = (t, one)
        return memo[1]

    def _finish(self, vals: torch.Tensor) -> torch.Tensor:
        """Target probabilities to the output scale (log-odds of the averaged probability)."""
        if self.resolved_output == "log-odds":
            p = vals.clamp(EPS, 1 - EPS)
            vals = torch.log(p) - torch.log1p(-p)
        return vals

    def __call__(self, F, rows):
        if self.scale == "probability" and F.shape[-1] == 1 and self.targets is not None:
            F = _binary(F)  # one-output probability p = P(class 1): columns (1 - p, p)
        vals = F if self.targets is None else F.gather(1, self.targets[rows][:, None])[:, 0]
        return self._finish(vals)

    @property
    def n_values(self):
        return self.k if self.targets is None else None

    def describe(self):
        target = self.target if self.target is not None else getattr(self, "resolved_target",
                                                                       None)
        return {"name": self.name, "target": target if isinstance(target, int | str | None)
                else "array", "output": self.resolved_output}


def _check_labels(y, n: int, k: int, behaviour: str, classification: bool) -> torch.Tensor:
    if y is None:
        raise LabelError(f"the {behaviour} behaviour needs labels: pass y= with one label per "
                         f"explained row ({n} rows)")
    y = np.asarray(y)
    if y.shape[0] != n:
        raise LabelError(f"y has {y.shape[0]} labels but {n} rows are explained; the "
                         f"{behaviour} behaviour needs one label per row")
    if y.dtype.kind not in "biuf":
        example = y.ravel()[0] if y.size else None
        raise LabelError(
            f"labels for the {behaviour} behaviour must be numeric, got {y.dtype} labels (e.g. "
            f"{example!r}); encode classes as 0..{max(k, 2) - 1} in the model's output order "
            "(labels of a scikit-learn classifier are mapped through its classes_ "
            "automatically)")
    if y.ndim > 2 or (y.ndim == 2 and y.shape[1] != (max(k, 2) if classification else k)):
        width = max(k, 2) if classification else k
        what = "class probabilities" if classification else "targets"
        raise LabelError(
            f"y has shape {tuple(y.shape)} but the model has {width} outputs: give the "
            f"{behaviour} behaviour one label per row (n,) or one row of {width} {what} per "
            f"explained row ({n}, {width})")
    if classification and y.ndim == 1:
        kk = max(k, 2)
        if not np.issubdtype(y.dtype, np.integer):
            if np.all(np.mod(y, 1) == 0):
                y = y.astype(np.int64)
            else:
                raise LabelError(f"class labels for the {behaviour} behaviour must be integers "
                                 f"0..{kk - 1} (or one probability vector per row)")
        if y.min() < 0 or y.max() >= kk:
            raise LabelError(f"class label {y.max() if y.max() >= kk else y.min()} is out of "
                             f"range for the {behaviour} behaviour: the model has {kk} classes "
                             f"(valid 0..{kk - 1})")
    return torch.as_tensor(writable(y))


def _cross_entropy(q: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    q = _binary(q).clamp(EPS, 1.0)
    if y.ndim == 1:
        return -torch.log(q.gather(1, y.long()[:, None])[:, 0])
    return -(y.to(q.dtype) * torch.log(q)).sum(1)


def _squared_error(F: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    y = y.to(F.dtype)
    if y.ndim == 1:
        y = y[:, None]
    return ((F - y) ** 2).sum(1)


@register("behaviour", "loss")
class Loss(Behaviour):
    """Per-example loss given labels ``y`` (LossSHAP): ``v(S) = -loss(F(x, S), y)``.

    ``loss`` is ``"cross-entropy"`` (on averaged probabilities, classifiers' default),
    ``"squared-error"`` (regressors' default) or a callable ``loss(pred, y) -> (rows,)``.
    """

    name = "loss"
    needs_labels = True

    def __init__(self, loss: str | Callable | None = None) -> None:
        self.loss = loss

    def validate(self, y, n, output_kind, is_classifier):
        super().validate(y, n, output_kind, is_classifier)
        loss = self.loss if self.loss is not None else (
            "cross-entropy" if is_classifier else "squared-error")
        if loss == "cross-entropy" and output_kind == "raw":
            raise BehaviourError(
                f"the {self.name} behaviour with cross-entropy needs probabilities, but the model "
                "returns raw outputs (k = 1 regression or scores). Use loss='squared-error', or "
                "declare output_kind='logits'/'probability' if the model is a classifier.")

    def prepare(self, full, y, output_kind, is_classifier):
        super().prepare(full, y, output_kind, is_classifier)
        loss = self.loss
        if loss is None:
            loss = "cross-entropy" if is_classifier else "squared-error"
        if isinstance(loss, str):
            loss = loss.lower().replace("_", "-")
            if loss not in LOSSES:
                raise unknown_name("loss", loss, LOSSES)
        if loss == "cross-entropy":
            if output_kind == "raw":
                to_probability(full, output_kind)  # raises the explanatory BehaviourError
            self.scale, self._fn = "probability", _cross_entropy
        elif loss == "squared-error":
            self.scale, self._fn = "raw", _squared_error
        else:
            self.scale, self._fn = "raw", lambda F, yy: torch.as_tensor(loss(F, yy))
        self.loss_name = loss if isinstance(loss, str) else getattr(loss, "__name__", "custom")
        self.y = _check_labels(y, full.shape[0], full.shape[1], self.name,
                               loss == "cross-entropy")

    def __call__(self, F, rows):
        return -self._fn(F, self.y[rows])

    def subsample_correction(self, var_of_mean):
        """Squared error: ``E (F̂ - y)² = (F̄ - y)² + Var F̂``, so ``-loss`` gains the variance
        back; other losses have no exact correction."""
        if self.loss_name != "squared-error":
            return None
        return var_of_mean.sum(1)

    def describe(self):
        return {"name": self.name, "loss": self.loss_name}


@register("behaviour", "kl", aliases=("kl-divergence",))
class KL(Behaviour):
    """Negative KL divergence of the coalition's predictive distribution from the full-input
    one, ``v(S) = -KL(p(x) || q(S))`` (SHAP-KL; Jethani et al. 2023): favours no class, so a
    selection cannot leak the label. Needs probabilities."""

    name = "kl"
    scale = "probability"

    def validate(self, y, n, output_kind, is_classifier):
        super().validate(y, n, output_kind, is_classifier)
        if output_kind == "raw":
            raise BehaviourError(
                "the kl behaviour compares predictive distributions and needs probabilities, but "
                "the model returns raw outputs (k = 1 regression or scores). Use the prediction "
                "behaviour (or loss='squared-error'), or declare output_kind='logits' or "
                "'probability' if the model is a classifier.")

    def prepare(self, full, y, output_kind, is_classifier):
        super().prepare(full, y, output_kind, is_classifier)
        self.p = _binary(to_probability(full, output_kind))

    def __call__(self, F, rows):
        q = _binary(F).clamp(EPS, 1.0)
        p = self.p[rows]
        terms = torch.where(p > 0, p * (torch.log(p.clamp_min(EPS)) - torch.log(q)),
                            torch.zeros_like(p))
        return -terms.sum(1)


@register("behaviour", "dataset-loss")
class DatasetLoss(Loss):
    """Dataset loss for global explanations (SAGE, permutation importance):
    ``v(S) = -(1/n) sum_r loss(F(x_r, S), y_r)``. ``y=None`` uses the model's own full-input
    output as the label (classifiers: its predicted class) when ``labels="model"``; with the
    default ``labels="given"`` missing labels are an error."""

    name = "dataset-loss"
    dataset = True

    def __init__(self, loss: str | Callable | None = None, labels: str = "given") -> None:
        super().__init__(loss)
        if labels not in ("given", "model"):
            raise unknown_name("labels option", labels, ("given", "model"))
        self.labels = labels

    def validate(self, y, n, output_kind, is_classifier):
        self.needs_labels = self.labels == "given"
        super().validate(y, n, output_kind, is_classifier)

    def prepare(self, full, y, output_kind, is_classifier):
        if y is None and self.labels == "model":
            self.needs_labels = False
            if is_classifier and output_kind != "raw":
                y = _binary(to_probability(full, output_kind)).argmax(1).numpy()
            else:
                y = full.numpy()
        super().prepare(full, y, output_kind, is_classifier)
