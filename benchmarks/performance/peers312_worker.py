"""Runs shapiq's 2025-2026 Shapley estimators on problem 1's MLP inside a Python >= 3.12
interpreter (shapiq 1.8.0 needs it); started by :mod:`.peers312` as
``python peers312_worker.py SPEC.json OUT.json``.

Needs numpy and shapiq only (no torch, nothing of this repository): the MLP is the numpy
function :func:`mlp_proba` of the torch model's weights, checked against the torch model's
outputs that the spec carries. Every coalition shapiq asks for is one model row, counted by
the game, which is how the torch counter of problem 1 counts.
"""

from __future__ import annotations

import json
import sys
import time
import warnings

import numpy as np


def mlp_proba(weights: dict, x: np.ndarray) -> np.ndarray:
    """P(class 1) of problem 1's MLP ``d -> h -> h -> 2`` (tanh) in float64: the softmax of
    two logits is the logistic function of their difference."""
    h = np.tanh(x @ weights["W0"].T + weights["b0"])
    h = np.tanh(h @ weights["W1"].T + weights["b1"])
    logits = h @ weights["W2"].T + weights["b2"]
    return 1.0 / (1.0 + np.exp(logits[:, 0] - logits[:, 1]))


class CountingGame:
    """``v(S)`` of one explicand: the explicand where ``S`` keeps a feature, the baseline
    elsewhere; counts every coalition it evaluates."""

    def __init__(self, weights: dict, x: np.ndarray, baseline: np.ndarray) -> None:
        self.weights, self.x, self.baseline = weights, x, baseline
        self.rows = 0

    def __call__(self, coalitions) -> np.ndarray:
        c = np.asarray(coalitions, dtype=bool)
        self.rows += len(c)
        return mlp_proba(self.weights, np.where(c, self.x, self.baseline))


def first_order(iv, d: int) -> np.ndarray:
    """The singletons of shapiq's result: the Shapley values (kADD-SHAP keeps its pairs
    apart)."""
    phi = np.zeros(d)
    for S, j in iv.interaction_lookup.items():
        if len(S) == 1:
            phi[S[0]] = float(iv.values[j])
    return phi


def run(spec: dict) -> dict:
    import shapiq
    import shapiq.approximator as approximators

    weights = {k: np.asarray(v, dtype=np.float64) for k, v in spec["weights"].items()}
    X = np.asarray(spec["X"], dtype=np.float64)
    base = np.asarray(spec["baseline"], dtype=np.float64)
    check_in = np.asarray(spec["check_inputs"], dtype=np.float64)
    gap = float(np.max(np.abs(mlp_proba(weights, check_in) - np.asarray(spec["check_proba"]))))
    n, d = X.shape
    out = {"versions": {"shapiq": shapiq.__version__, "numpy": np.__version__,
                        "python": sys.version.split()[0]},
           "model_gap": gap, "results": []}
    for peer in spec["peers"]:
        cls = getattr(approximators, peer["class"])

        def explain(x, budget, seed, peer=peer, cls=cls):
            game = CountingGame(weights, x, base)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                iv = cls(d, random_state=seed, **peer["kwargs"]).approximate(int(budget), game)
            return first_order(iv, d), game.rows

        try:
            explain(X[0], min(spec["budgets"]), 10_000)  # warm-up (imports, first fits)
            for budget in spec["budgets"]:
                for seed in spec["seeds"]:
                    values, rows = np.empty((n, d)), []
                    t = time.perf_counter()
                    for i in range(n):
                        values[i], r = explain(X[i], budget, seed)
                        rows.append(r)
                    out["results"].append({
                        "name": peer["name"], "budget": budget, "seed": seed,
                        "values": values.tolist(), "rows": rows,
                        "seconds": time.perf_counter() - t})
        except Exception as e:  # noqa: BLE001 - a peer that fails is listed with why
            out["results"].append({"name": peer["name"], "error":
                                   f"{type(e).__name__}: {str(e)[:200]}"})
    return out


if __name__ == "__main__":
    with open(sys.argv[1]) as f:
        result = run(json.load(f))
    with open(sys.argv[2], "w") as f:
        json.dump(result, f)
