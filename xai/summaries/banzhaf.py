"""Banzhaf values by maximum sample reuse (Wang & Jia 2023): every uniform coalition serves
every feature; and the summary ``banzhaf`` that picks MSR or Kernel Banzhaf
(:mod:`xai.summaries.kernel_banzhaf`) by an option."""

from __future__ import annotations

import torch

from ..errors import unknown_name
from ..models import rowwise_product
from ..registry import register
from .base import MIN_UNITS, SamplingSummary, Summary, SummaryResult, as_numpy
from .kernel_banzhaf import KernelBanzhaf  # noqa: F401 - registers "kernel-banzhaf"


@register("summary", "banzhaf-msr", aliases=("banzhaf-sampling",))
class BanzhafMSR(SamplingSummary):
    """``b_i = mean{v(S): i in S} - mean{v(S): i not in S}`` over uniform coalitions ``S``;
    ``stderr`` from the two groups' sample variances (inf until both have two samples)."""

    name = "banzhaf-msr"

    fixed_coalitions = 1

    def unit_cost(self, d):
        return 1

    def round_masks(self, design):
        return design

    def fixed_cost(self, game):
        return 1

    def start(self, game, rows, max_units, rng):
        n, d, vs = len(rows), game.d, game.value_shape
        z = lambda: torch.zeros((n, d, *vs), dtype=torch.float64)
        return {"s_in": z(), "q_in": z(), "s_out": z(), "q_out": z(),
                "m_in": torch.zeros(d, dtype=torch.float64),
                "m_out": torch.zeros(d, dtype=torch.float64)}

    def draw(self, state, n_units, d, rng):
        return rng.random((n_units, d)) < 0.5

    def update(self, state, design, values, active):
        a = torch.as_tensor(active)
        zin = torch.as_tensor(design, dtype=torch.float64)
        zout = 1 - zin
        state["s_in"][a] += rowwise_product(values, zin)
        state["q_in"][a] += rowwise_product(values ** 2, zin)
        state["s_out"][a] += rowwise_product(values, zout)
        state["q_out"][a] += rowwise_product(values ** 2, zout)
        state["m_in"] += zin.sum(0)
        state["m_out"] += zout.sum(0)

    def estimate(self, state, active):
        a = torch.as_tensor(active)
        shape = (1, -1, *([1] * (state["s_in"].ndim - 2)))
        mi, mo = state["m_in"].reshape(shape), state["m_out"].reshape(shape)
        mean_in = state["s_in"][a] / mi.clamp_min(1)
        mean_out = state["s_out"][a] / mo.clamp_min(1)
        var_in = (state["q_in"][a] - mi * mean_in ** 2) / (mi - 1).clamp_min(1)
        var_out = (state["q_out"][a] - mo * mean_out ** 2) / (mo - 1).clamp_min(1)
        se = torch.sqrt(var_in.clamp_min(0) / mi.clamp_min(1) +
                        var_out.clamp_min(0) / mo.clamp_min(1))
        se = torch.where((mi >= 2) & (mo >= 2), se, torch.full_like(se, float("inf")))
        return as_numpy(mean_in - mean_out), as_numpy(se)


#: the Banzhaf estimators that :class:`Banzhaf` chooses between, by its option ``estimator``
ESTIMATORS = {"msr": "banzhaf-msr", "kernel": "kernel-banzhaf"}


@register("summary", "banzhaf")
class Banzhaf(Summary):
    """Banzhaf values by the estimator that ``estimator`` names: ``"msr"`` (maximum sample
    reuse, the default) or ``"kernel"`` (Kernel Banzhaf: a regression on complement pairs,
    exact when the budget covers every coalition). The other options go to that estimator;
    the explanation records the estimator's own name."""

    def __init__(self, *, estimator: str = "msr", budget: int | None = None,
                 tol: float | None = None, seed: int | None = None,
                 min_units: int = MIN_UNITS) -> None:
        if estimator not in ESTIMATORS:
            raise unknown_name("Banzhaf estimator", estimator, tuple(ESTIMATORS))
        self.estimator = estimator
        self.budget = budget
        self.tol = tol
        self.seed = seed
        self.min_units = min_units
        self.name = ESTIMATORS[estimator]

    def chosen(self) -> SamplingSummary:
        """The estimator with this summary's options (built anew: summaries keep no state
        between calls)."""
        from ..registry import get

        return get("summary", ESTIMATORS[self.estimator])(
            budget=self.budget, tol=self.tol, seed=self.seed, min_units=self.min_units)

    @property
    def stops_early(self) -> bool:
        return self.tol is not None

    def check(self, game) -> None:
        self.chosen().check(game)

    def planned_rows(self, game) -> int | None:
        return self.chosen().planned_rows(game)

    def __call__(self, game, rows=None) -> SummaryResult:
        return self.chosen()(game, rows)

    def describe(self) -> dict:
        return {**self.chosen().describe(), "estimator": self.estimator}
