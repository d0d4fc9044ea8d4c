"""Summaries ask of a game only what :class:`xai.protocol.SummaryGame` declares: every summary
runs on a proxy that exposes nothing else, with the same values as on the game itself."""

from __future__ import annotations

import inspect

import numpy as np
import pytest

import xai
from xai import conformance, registry
from xai.behaviours import Loss, Prediction
from xai.features import FeatureMap
from xai.game import DatasetGame, Game
from xai.models import as_model
from xai.protocol import RowSampledGame, SummaryGame
from xai.removals import Baseline, Marginal

RNG = np.random.default_rng(0)
X = RNG.normal(size=(3, 5))
BG = RNG.normal(size=(8, 5))
W = np.array([1.0, -2.0, 0.5, 0.0, 3.0])


def _game(removal=None) -> Game:
    model = as_model(lambda x: x @ W + 0.1 * x[:, 0] * x[:, 1])
    return Game(model, X, removal or Baseline(value="zeros"), Prediction(),
                FeatureMap.tabular(5), seed=0)


class Proxy:
    """Exposes a game's :class:`SummaryGame` (or :class:`RowSampledGame`) names only."""

    def __init__(self, game, protocol=SummaryGame) -> None:
        names = {n for klass in protocol.__mro__ for n in getattr(klass, "__annotations__", {})}
        names |= {n for klass in protocol.__mro__ for n in vars(klass)
                  if not n.startswith("_")} | {"__call__"}
        object.__setattr__(self, "_game", game)
        object.__setattr__(self, "_names", names)

    def __getattr__(self, name):
        if name not in self._names:
            raise AttributeError(f"a summary asked the game for {name!r}, which "
                                 "xai.protocol does not declare")
        return getattr(self._game, name)

    def __call__(self, *args, **kwargs):
        return self._game(*args, **kwargs)


def test_games_satisfy_the_protocols():
    game = _game()
    assert isinstance(game, SummaryGame)
    dataset = DatasetGame(Game(as_model(lambda x: x @ W), X, Marginal(BG), Loss(),
                               FeatureMap.tabular(5), y=X @ W, seed=0), row_sampling=True)
    assert isinstance(dataset, RowSampledGame) and dataset.sample_rows == 3
    assert game.sample_rows is None and game.value_scale == "raw"
    assert game.positions[0] == (5,)


SUMMARIES = conformance.components("summary")


@pytest.mark.parametrize("name", SUMMARIES)
def test_every_summary_runs_on_the_protocol_alone(name):
    cls = registry.get("summary", name)
    options = {"seed": 1} if "seed" in inspect.signature(cls).parameters else {}
    direct = cls(**options)(_game())
    proxied = cls(**options)(Proxy(_game()))
    np.testing.assert_array_equal(proxied.values, direct.values)


def test_a_row_sampled_summary_runs_on_the_row_sampled_protocol_alone():
    def dataset():
        local = Game(as_model(lambda x: x @ W), X, Marginal(BG), Loss(), FeatureMap.tabular(5),
                     y=X @ W + 0.3, seed=0)
        return DatasetGame(local, row_sampling=True)

    summary = registry.get("summary", "permutation-shapley")
    direct = summary(budget=2000, seed=2)(dataset())
    proxied = summary(budget=2000, seed=2)(Proxy(dataset(), RowSampledGame))
    np.testing.assert_array_equal(proxied.values, direct.values)
    assert xai  # the registry's components are loaded
