"""Budgets beyond what exists or what fits: a budget larger than every coalition buys nothing
new and finishes; one whose designs exceed memory_cap is a BudgetError, before any model call,
that says which budget fits (or that none does)."""

from __future__ import annotations

import numpy as np
import pytest

import xai


class Counting:
    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, x):
        self.calls += 1
        return x @ np.arange(1.0, x.shape[1] + 1)


RNG = np.random.default_rng(0)


@pytest.mark.parametrize("method", ["permutation-shap", "banzhaf", "lime", "kernelshap"])
def test_a_budget_beyond_every_coalition_finishes_with_exact_sized_work(method):
    X, B = RNG.normal(size=(2, 5)), RNG.normal(size=(3, 5))
    model = Counting()
    e = xai.explain(model, X, method=method, background=B, budget=10**15, seed=0,
                    progress=False)
    assert np.isfinite(e.values).all()
    assert e.evaluations <= 2 * (2**5 * 3 + 1)  # every coalition at most once per row


def test_a_budget_whose_designs_exceed_memory_cap_says_which_budget_fits():
    X, B = RNG.normal(size=(1, 30)), np.zeros((3, 30))
    model = Counting()
    with pytest.raises(xai.BudgetError, match=r"a budget of at most \d+ rows fits") as info:
        xai.explain(model, X, method="kernelshap", background=B, budget=10**15,
                    progress=False)
    assert "memory_cap" in str(info.value) and model.calls == 0
    fits = int(str(info.value).split("at most ")[1].split(" rows")[0])
    e = xai.explain(model, X, method="kernelshap", background=B, budget=fits, seed=0,
                    progress=False)
    assert np.isfinite(e.values).all()


def test_when_no_budget_fits_the_error_says_to_raise_memory_cap():
    X, B = RNG.normal(size=(1, 2000)), np.zeros((1, 2000))
    model = Counting()
    with pytest.raises(xai.BudgetError, match=r"needs at least \d+ rows .* raise memory_cap"):
        xai.explain(model, X, method="kernelshap", background=B, memory_cap="16MiB",
                    progress=False)
    assert model.calls == 0
