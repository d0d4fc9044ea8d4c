"""Shared helpers of the oracle tests: random games given by their Möbius coefficients.

A game on ``d`` players is played through the real engine: explicands ``X = ones((n, d))`` with
``Baseline(0.0)`` make the model receive the 0/1 mask itself as its input row, so a callable
model can return any set function of the rows. ``m[T]`` (``T`` a bit mask) are Möbius
coefficients, ``v(S) = sum_{T subset S} m[T]``; the value table is their zeta transform.
"""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from helpers import TableModel

from xai.behaviours import Prediction
from xai.features import FeatureMap
from xai.game import Game
from xai.models import as_model
from xai.removals import Baseline


def zeta(m: np.ndarray, d: int) -> np.ndarray:
    """Value table ``V[S] = sum_{T subset S} m[T]`` (first axis over the ``2^d`` bit masks)."""
    V = np.array(m, dtype=np.float64, copy=True)
    idx = np.arange(2**d)
    for i in range(d):
        sel = (idx >> i) & 1 == 1
        V[sel] += V[idx[sel] ^ (1 << i)]
    return V


def mobius(V: np.ndarray, d: int) -> np.ndarray:
    """Inverse of :func:`zeta`: Möbius coefficients of a value table."""
    m = np.array(V, dtype=np.float64, copy=True)
    idx = np.arange(2**d)
    for i in range(d):
        sel = (idx >> i) & 1 == 1
        m[sel] -= m[idx[sel] ^ (1 << i)]
    return m


def members(d: int) -> np.ndarray:
    """Boolean ``(2^d, d)``: bit i of coalition number T."""
    return ((np.arange(2**d)[:, None] >> np.arange(d)[None]) & 1).astype(bool)


def shapley_mobius(m: np.ndarray, d: int) -> np.ndarray:
    """``phi_i = sum_{T ∋ i} m_T / |T|`` (Harsanyi dividends shared equally)."""
    Z = members(d)
    size = Z.sum(1)
    w = np.where(size > 0, 1.0 / np.maximum(size, 1), 0.0)
    return np.einsum("t...,td->d...", m * w.reshape(-1, *([1] * (m.ndim - 1))), Z)


def banzhaf_mobius(m: np.ndarray, d: int) -> np.ndarray:
    """``b_i = sum_{T ∋ i} m_T / 2^{|T|-1}``."""
    Z = members(d)
    size = Z.sum(1)
    w = np.where(size > 0, 2.0 ** (1 - size.astype(np.float64)), 0.0)
    return np.einsum("t...,td->d...", m * w.reshape(-1, *([1] * (m.ndim - 1))), Z)


def shapley_bruteforce(V: np.ndarray, d: int) -> np.ndarray:
    """Shapley values from the definition (loop over coalitions), independent of the library."""
    phi = np.zeros(d)
    for i in range(d):
        for S in range(2**d):
            if S >> i & 1:
                continue
            s = S.bit_count()
            phi[i] += math.factorial(s) * math.factorial(d - s - 1) / math.factorial(d) * (
                V[S | 1 << i] - V[S])
    return phi


def random_mobius(rng: np.random.Generator, d: int, density: float = 1.0,
                  k: int | None = None) -> np.ndarray:
    """``m_T ~ N(0, 1)`` kept with probability ``density`` (``m_∅`` always drawn)."""
    shape = (2**d,) if k is None else (2**d, k)
    m = rng.normal(size=shape)
    if density < 1:
        keep = rng.random(2**d) < density
        keep[0] = True
        m[~keep] = 0
    return m


def table_game(V: np.ndarray, d: int, n: int = 1, **game_options) -> Game:
    """The engine's game whose value on coalition S is ``V[S]`` for each of ``n`` explicands."""
    model = TableModel(V, d)
    return Game(as_model(model), np.ones((n, d)), Baseline(0.0), Prediction(**(
        {"target": "all"} if np.ndim(V) == 2 else {})), FeatureMap.tabular(d), **game_options)


def mobius_game(m: np.ndarray, d: int, n: int = 1, **game_options) -> Game:
    return table_game(zeta(m, d), d, n, **game_options)


def additive_table(a: np.ndarray, c: float) -> np.ndarray:
    """Value table of ``v(S) = c + sum_{i in S} a_i``."""
    return c + members(len(a)).astype(np.float64) @ a


@pytest.fixture
def threads():
    """Set torch's number of threads inside a test; restored after it."""
    before = torch.get_num_threads()
    yield torch.set_num_threads
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def games() -> SimpleNamespace:
    """The helpers above, for test modules (``games.mobius_game(m, d)`` etc.)."""
    return SimpleNamespace(zeta=zeta, mobius=mobius, members=members,
                           shapley_mobius=shapley_mobius, banzhaf_mobius=banzhaf_mobius,
                           shapley_bruteforce=shapley_bruteforce, random_mobius=random_mobius,
                           TableModel=TableModel, table_game=table_game,
                           mobius_game=mobius_game, additive_table=additive_table)


@pytest.fixture(scope="module")
def ray_cluster():
    """A local Ray cluster of two CPUs for one test module (an open connection is reused).
    Tests that take it are skipped when Ray is not installed, unless ``XAI_REQUIRE_RAY=1``
    makes a missing Ray an error."""
    import os

    if os.environ.get("XAI_REQUIRE_RAY") == "1":
        import ray
    else:
        ray = pytest.importorskip("ray")
    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
                 configure_logging=False)
    yield ray
    if started:
        ray.shutdown()
