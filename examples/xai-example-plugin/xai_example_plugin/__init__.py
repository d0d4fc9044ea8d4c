"""A worked third-party xai plugin.

It adds a summary and a whole explainer. Installed (``pip install .``), they are usable by
name with no change to xai: ``method="example.finite-difference"``, or
``xai.Explainer("marginal", "prediction", "first-order")``.
"""

from __future__ import annotations

import numpy as np

import xai
from xai.summaries import Summary, SummaryResult


class FirstOrder(Summary):
    """Average of the include- and remove-individual effects,
    ``a_i = ((v({i}) - v(∅)) + (v(D) - v(D \\ {i}))) / 2``: exact for additive games, and a
    cheap (2d + 2 coalitions) first-order view of games with interactions."""

    name = "first-order"

    def __call__(self, game, rows=None) -> SummaryResult:
        rows = np.arange(game.n) if rows is None else np.asarray(rows)
        eye = np.eye(game.d, dtype=bool)
        empty = game.v_empty(rows).numpy()
        full = game.v_full[rows].numpy()
        include = game(eye, rows).numpy() - empty[:, None]
        remove = full[:, None] - game(~eye, rows).numpy()
        values = (include + remove) / 2
        n = len(rows)
        return SummaryResult(values, np.zeros_like(values), empty, np.ones(n, int),
                             np.ones(n, bool), np.full(n, 2 * game.d + 2))


class FiniteDifference(xai.ExternalExplainer):
    """Gradient x (input - baseline) with central finite differences: gradient-style
    attributions for any model, differentiable or not (scikit-learn, callables)."""

    name = "example.finite-difference"
    defaults = {"step": 1e-4, "baseline": 0.0}  # noqa: RUF012 - read-only defaults
    per_position = False

    def attribute(self, ctx):
        X, h = ctx.X, self.options["step"]
        n, d = X.shape
        # all 2d perturbed copies of every row in one model call
        steps = np.concatenate([np.eye(d), -np.eye(d)]) * h
        out = ctx.predict((X[:, None, :] + steps[None]).reshape(-1, d)).reshape(n, 2 * d, -1)
        t = ctx.targets
        out = out[np.arange(n), :, t]
        grad = (out[:, :d] - out[:, d:]) / (2 * h)
        return {"values": grad * (X - self.options["baseline"])}


@xai.hookimpl
def xai_summaries():
    """The plugin's summaries, by name."""
    return {"first-order": FirstOrder}


@xai.hookimpl
def xai_explainers():
    """The plugin's whole explainers, by name."""
    return {"example.finite-difference": FiniteDifference}
