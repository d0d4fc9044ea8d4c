"""The tabular problem of problems 1 and 2: a seeded torch MLP on standardised breast_cancer.

The first ``d`` (16) columns of scikit-learn's breast_cancer, standardised on the training
split; a float64 MLP ``d -> 32 -> 32 -> 2`` trained briefly with a fixed seed and cached in
``<out>/models``. The explained output is P(class 1) and the baseline the training mean, so
``v(S)`` is deterministic.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .common import CountingModule, trained


@dataclass
class TabularProblem:
    X_train: np.ndarray
    X_test: np.ndarray
    mean: np.ndarray  # the baseline: training mean (zero after standardising, up to rounding)
    module: torch.nn.Module  # bare float64 MLP (logits)
    counter: CountingModule
    d: int
    test_accuracy: float


def _mlp(d: int, hidden: int) -> torch.nn.Module:
    return torch.nn.Sequential(torch.nn.Linear(d, hidden), torch.nn.Tanh(),
                               torch.nn.Linear(hidden, hidden), torch.nn.Tanh(),
                               torch.nn.Linear(hidden, 2)).double()


def load_problem(d: int = 16, *, seed: int = 0, hidden: int = 32, epochs: int = 300,
                 cache_dir: str | Path | None = None) -> TabularProblem:
    """Data, trained MLP (cached as a state dict under ``cache_dir``) and the counting wrapper."""
    from sklearn.datasets import load_breast_cancer
    from sklearn.model_selection import train_test_split

    X, y = load_breast_cancer(return_X_y=True)
    X = X[:, :d].astype(np.float64)
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.3, random_state=seed, stratify=y)
    mu, sd = Xtr.mean(0), Xtr.std(0)
    Xtr, Xte = (Xtr - mu) / sd, (Xte - mu) / sd
    torch.manual_seed(seed)
    module = _mlp(d, hidden)

    def train():
        opt = torch.optim.Adam(module.parameters(), lr=1e-2)
        xt, yt = torch.as_tensor(Xtr), torch.as_tensor(ytr)
        for _ in range(epochs):  # full batch, seeded: a few seconds at most
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(module(xt), yt)
            loss.backward()
            opt.step()
    trained(module, f"bc-mlp|d={d}|h={hidden}|e={epochs}|s={seed}", cache_dir, train,
            prefix="mlp")
    with torch.no_grad():
        acc = float((module(torch.as_tensor(Xte)).argmax(1).numpy() == yte).mean())
    return TabularProblem(Xtr, Xte, Xtr.mean(0), module, CountingModule(module), d, acc)


def exact_shapley(problem: TabularProblem, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Truth: exact Shapley values of P(class 1) with the training-mean baseline, by xai's
    enumeration of all ``2^d`` coalitions in float64. Returns (values (n, d), v(D) - v(∅))."""
    from xai.summaries.exact import ExactShapley

    game = xai_game(problem, X)
    res = ExactShapley(max_exact_features=max(20, problem.d))(game)
    vals = np.asarray(res.values, dtype=np.float64).reshape(len(X), problem.d)
    with torch.no_grad():
        p = torch.softmax(problem.module(torch.as_tensor(X)), -1)[:, 1].numpy()
        p0 = torch.softmax(problem.module(torch.as_tensor(problem.mean[None])), -1)[0, 1].item()
    return vals, p - p0


def xai_game(problem: TabularProblem, X: np.ndarray, module: torch.nn.Module | None = None):
    """xai's game for these explicands: Baseline(training mean), P(class 1), through the counter."""
    from xai.behaviours import Prediction
    from xai.features import FeatureMap
    from xai.game import Game
    from xai.models import as_model
    from xai.removals import Baseline

    return Game(as_model(module if module is not None else problem.counter, output_kind="logits"),
                np.asarray(X, dtype=np.float64), Baseline(problem.mean.copy()),
                Prediction(target=1, output="probability"), FeatureMap.tabular(problem.d))
