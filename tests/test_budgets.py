"""Budgets beyond what exists or what fits: a budget larger than every coalition buys nothing
new and finishes; one whose designs exceed memory_cap is a BudgetError, before any model call,
that says which budget fits (or that none does), with a stopping rule too. Summaries that keep
every draw's values until their fit run explicands in blocks whose values fit memory_cap."""

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


@pytest.mark.parametrize("method", ["kernelshap", "lime"])
def test_a_stopping_rule_does_not_lift_the_memory_check_of_summaries_that_keep_every_draw(
        method):
    X, B = RNG.normal(size=(1, 30)), np.zeros((3, 30))
    model = Counting()
    with pytest.raises(xai.BudgetError, match="memory_cap"):
        xai.explain(model, X, method=method, background=B, budget=10**15, tol=1e-9,
                    progress=False)
    assert model.calls == 0


@pytest.mark.parametrize("summary", ["kernelshap", "lime", "ra-kernelshap"])
@pytest.mark.parametrize("tol", [None, 1e-3])
def test_explicands_whose_kept_values_exceed_memory_cap_run_in_blocks_with_equal_values(
        summary, tol, monkeypatch):
    from xai.summaries.base import SamplingSummary

    X, B = RNG.normal(size=(25, 10)), RNG.normal(size=(2, 10))
    # a row's output does not depend on the rows beside it in a call (no matrix product),
    # so that the game's smaller blocks under the small cap change no model output
    model = lambda x: np.tanh((x * np.arange(1.0, 11.0)).sum(1)) + x[:, 0] * x[:, 1]
    # 500 coalitions of 2 model rows (marginal removal over 2 background rows)
    def explain(**cap):
        return xai.Explainer("marginal", "prediction", summary, budget=1000, seed=3, tol=tol,
                             progress=False, **cap).explain(model, X, background=B)

    whole = explain()
    blocks = []
    summarise = SamplingSummary._summarise
    monkeypatch.setattr(SamplingSummary, "_summarise",
                        lambda self, game, rows: blocks.append(len(rows)) or
                        summarise(self, game, rows))
    # 500 coalitions: designs of 40,000 bytes, values of 4,000 bytes per explicand, so a cap
    # of 40,000 bytes holds the values of 10 explicands at a time
    split = explain(memory_cap=40_000)
    assert blocks == [10, 10, 5]
    if summary == "ra-kernelshap":  # its surrogates' Shapley values go in blocks of columns
        np.testing.assert_allclose(split.values, whole.values, rtol=0, atol=1e-14)
    else:
        np.testing.assert_array_equal(split.values, whole.values)
    # the sandwich standard errors sum in blocks sized by memory_cap too: rounding apart
    np.testing.assert_allclose(split.stderr, whole.stderr, rtol=1e-12, atol=0)
    np.testing.assert_array_equal(split.base_values, whole.base_values)
    # the budget's accounting (coalitions charged, units drawn) is the same; the model rows
    # the game's coalition cache saves depend on what it holds when (its size follows
    # memory_cap), not the values
    np.testing.assert_array_equal(split.coalitions, whole.coalitions)
    np.testing.assert_array_equal(split.units, whole.units)
