"""Model evaluations are counted per call: an adapter reused across calls, native or external
explainer, reports the rows of that call only."""

from __future__ import annotations

import numpy as np
from sklearn.linear_model import LogisticRegression

import xai
from xai.external import ExternalExplainer
from xai.models import as_model

RNG = np.random.default_rng(0)


class _Evaluate(ExternalExplainer):
    name = "test-evaluate"
    per_position = False

    def attribute(self, ctx):
        out = ctx.predict(ctx.X)
        return {"values": np.repeat(out[:, :1], ctx.X.shape[1], 1)}


def test_external_integer_table_is_tabular_and_evaluations_per_call():
    X = RNG.integers(0, 10, size=(4, 3))
    adapter = as_model(lambda a: a.sum(1).astype(float))
    counts = []
    for _ in range(3):
        e = _Evaluate().explain(adapter, X)
        assert e.options["kind"] == "tabular"
        counts.append(e.evaluations)
    assert counts == [8, 8, 8]  # resolve_targets (4 rows) + attribute (4 rows), per call


def test_evaluations_per_call_with_reused_adapter():
    X = RNG.normal(size=(100, 5))
    clf = LogisticRegression().fit(X, (X[:, 0] > 0).astype(int))
    adapter = xai.as_model(clf)
    counts = [xai.explain(adapter, X[:4], "occlusion", background=X, progress=False).evaluations
              for _ in range(3)]
    assert counts == [4 * (5 + 1)] * 3
