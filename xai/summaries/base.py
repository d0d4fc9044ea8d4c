"""Common machinery of summaries: the result type, budgets, and the sampling driver.

A summary is called on a game, ``summary(game, rows=None) -> SummaryResult``. Sampling
summaries share one driver (:class:`SamplingSummary`): rounds of units with a design drawn once
per round from the seed and shared by every active explicand, nominal budget accounting per
explicand, and early stopping when the largest standard error falls below ``tol`` (rounds
double); summaries with ``one_round`` draw a budget without a stopping rule in one round.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from ..errors import BudgetError
from ..protocol import SummaryGame
from ..registry import define_kind

MIN_UNITS = 32


@dataclass
class SummaryResult:
    """Values ``(n, d[, k])``, standard errors, base values and bookkeeping of a summary."""

    values: np.ndarray
    stderr: np.ndarray
    base_values: np.ndarray
    units: np.ndarray
    converged: np.ndarray
    coalitions: np.ndarray
    extras: dict = field(default_factory=dict)


class Summary:
    """Base class: turns a game's values on chosen coalitions into one score per feature.

    A summary asks of its game only what :class:`xai.protocol.SummaryGame` declares."""

    name = "summary"
    needs_fractional = False
    efficient = False
    needs_local = False  # True when the summary cannot run on dataset games
    stops_early = False  # a stopping rule may end it before its planned rows

    def __call__(self, game: SummaryGame, rows: np.ndarray | None = None) -> SummaryResult:
        raise NotImplementedError

    def check(self, game: SummaryGame) -> None:
        """Checks that need no model call (budget, size limits); raise ``BudgetError``."""

    def planned_rows(self, game: SummaryGame) -> int | None:
        """Model rows this summary plans to evaluate on ``game`` (a progress bar's total;
        None: unknown). A plan, not a promise: stopping rules and repeated coalitions may
        spend fewer."""
        return None

    def describe(self) -> dict:
        """Options that identify this summary in an Explanation."""
        return {"name": self.name}


def as_numpy(t) -> np.ndarray:
    return t.detach().cpu().numpy() if isinstance(t, torch.Tensor) else np.asarray(t)


def seed_sequence(seed) -> np.random.SeedSequence:
    return seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)


class SamplingSummary(Summary):
    """Base of sampling summaries: ``budget`` (model rows per explicand), ``tol`` (stop when
    ``max SE < tol``), ``seed``.

    Subclasses implement :meth:`min_units`, :meth:`draw` (the shared design of a round),
    :meth:`update` (fold one round's values into per-explicand state) and :meth:`estimate`.
    """

    default_coalitions = 2048  # default budget in coalitions, scaled by K_rem ...
    default_per_feature = 2  # ... plus this many per feature (2d for the Shapley samplers)

    def __init__(self, *, budget: int | None = None, tol: float | None = None,
                 seed: int | None = None, min_units: int = MIN_UNITS) -> None:
        self.budget = budget
        self.tol = tol
        self.seed = seed
        self.min_units = min_units

    # -- to implement
    def unit_cost(self, d: int) -> int:
        """New coalitions per unit (upper bound; repeats may cost less)."""
        raise NotImplementedError

    def fixed_cost(self, game) -> int:
        """Nominal rows of the fixed coalitions (e.g. ``∅`` and ``D``) per explicand."""
        return game.rows_per_coalition + 1

    def minimum_units(self, d: int) -> int:
        return 2

    def start(self, game, rows: np.ndarray, max_units: int, rng: np.random.Generator):
        """State before the first round (may evaluate fixed coalitions)."""
        return {}

    def draw(self, state, n_units: int, d: int, rng: np.random.Generator):
        raise NotImplementedError

    def evaluate(self, game, design, rows: np.ndarray, state):
        return game(design, rows)

    def update(self, state, design, values: torch.Tensor, active: np.ndarray) -> None:
        raise NotImplementedError

    def estimate(self, state, active: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError

    @property
    def stops_early(self) -> bool:
        """True when a stopping rule (``tol``, ``rtol``) is set."""
        return self.tol is not None or getattr(self, "rtol", None) is not None

    def stop(self, values: np.ndarray, stderr: np.ndarray) -> np.ndarray:
        """Per explicand: has it converged? NaN standard errors (features a summary leaves
        out, e.g. LIME's unselected ones) are ignored; inf ones are not converged."""
        if self.tol is None:
            return np.zeros(len(values), dtype=bool)
        se = stderr.reshape(len(stderr), -1)
        se = np.where(np.isnan(se), -np.inf, se)
        return se.max(axis=1) < self.tol

    # -- driver
    def check(self, game) -> None:
        from ..inputs import check_option

        self.budget = check_option("budget", self.budget)
        self.tol = check_option("tol", self.tol)
        budget = self.resolve_budget(game)
        if self.keeps_rounds or (self.one_round and not self.stops_early):
            self.check_memory(game, budget)  # the whole budget's designs are held at once

    def rows_bought(self, game, budget: int) -> int:
        """The model rows ``budget`` can buy: at most those of every coalition of a
        deterministic game (``2^d`` of them), as repeats are free; all of it for row-sampled
        (stochastic) games or ``d > 62``."""
        d = game.d
        if game.sample_rows is not None or d > 62:
            return budget
        every = self.fixed_cost(game) + (2**d - self.fixed_coalitions) * game.rows_per_coalition
        return min(budget, every)

    def planned_rows(self, game) -> int:
        """What the budget buys for every explicand (row-sampled games: in all)."""
        return self.rows_bought(game, self.resolve_budget(game)) * game.n

    def unit_cap(self, game, budget: int, charged: int) -> int:
        """Most units one call may draw, ``charged`` rows spent: the budget's worth when every
        coalition is new, and up to 8 times that while repeats (free) leave room, counted
        within the coalitions that exist."""
        worst = self.unit_cost(game.d) * game.rows_per_coalition
        return 8 * max(1, (self.rows_bought(game, budget) - charged) // worst)

    def check_memory(self, game, budget: int) -> None:
        """``BudgetError`` when the coalitions the budget affords in one round (one float64
        design row of ``d`` each) would not fit under ``memory_cap``; says which budget
        fits."""
        d, K = game.d, game.rows_per_coalition
        worst = self.unit_cost(d) * K
        coalitions = (self.rows_bought(game, budget) - self.fixed_cost(game)) // K
        need = 8 * d * coalitions
        if need > game.memory_cap:
            fits = self.fixed_cost(game) + max(0, game.memory_cap // (8 * d)) // \
                self.unit_cost(d) * worst
            least = self.fixed_cost(game) + self.minimum_units(d) * worst
            if fits < least:
                raise BudgetError(
                    f"{self.name} with d={d} features needs at least {least} rows of budget, "
                    f"whose designs ({8 * d * (least // K) / 2**20:.0f} MiB) exceed memory_cap "
                    f"({game.memory_cap / 2**20:.0f} MiB): raise memory_cap or group "
                    "features.")
            raise BudgetError(
                f"budget {budget} rows asks {self.name} for up to {coalitions} coalitions of "
                f"d={d} features ({need / 2**20:.0f} MiB of designs), more than memory_cap "
                f"({game.memory_cap / 2**20:.0f} MiB) allows: a budget of at most {fits} rows "
                "fits. Lower budget, raise memory_cap, or group features.")

    def resolve_budget(self, game) -> int:
        d, K = game.d, game.rows_per_coalition
        budget = self.budget
        if budget is None:
            budget = (self.default_budget_coalitions(game) + self.default_per_feature * d) * K
        need = self.fixed_cost(game) + self.minimum_units(d) * self.unit_cost(d) * K
        if budget < need:
            raise BudgetError(
                f"budget {budget} rows is too small for {self.name} with d={d} features and "
                f"{K} model rows per coalition (K_rem): it needs at least {need} rows "
                f"({(need - 1) // K + 1} coalitions). Raise budget, shrink the background "
                "(max_background), or group features.")
        return int(budget)

    def default_budget_coalitions(self, game) -> int:
        """Coalitions of the default budget (before the per-feature part)."""
        return self.default_coalitions

    def max_units(self, game, budget: int) -> int:
        """Units the budget affords when every coalition is new (the worst case)."""
        return (budget - self.fixed_cost(game)) // (self.unit_cost(game.d) *
                                                    game.rows_per_coalition)

    def merge(self, designs: list):
        """One design of the draws of a round (arrays of units: concatenated)."""
        return np.concatenate(designs)

    def round_masks(self, design) -> np.ndarray | None:
        """The boolean coalitions ``(m, d)`` of a round's design, for budget accounting;
        None when the design is not boolean (every coalition is then charged)."""
        return None

    fixed_coalitions = 2  # coalitions charged before the first unit (∅ and D)
    #: the state keeps every round's designs and each explicand's values until the estimate
    #: (a regression over all draws), so the budget's designs must fit under memory_cap
    #: whatever the rounds, and explicands are summarised in blocks whose values fit
    keeps_rounds = False
    #: without a stopping rule, draw the whole budget as one round (else rounds double); for
    #: summaries whose update reduces each explicand's values alone (a row's result must not
    #: depend on the round's size through batched reductions: a row explained alone equals
    #: the same row explained in a batch)
    one_round = False
    blockable = True  # update() accepts a round in blocks of explicands

    def kept_row_bytes(self, game, budget: int) -> int:
        """Bytes of values the state of a :attr:`keeps_rounds` summary keeps per explicand
        by the end of ``budget``: one float64 per coalition and output."""
        coalitions = self.rows_bought(game, budget) // game.rows_per_coalition
        return 8 * coalitions * max(1, int(np.prod(game.value_shape)))

    def __call__(self, game, rows: np.ndarray | None = None) -> SummaryResult:
        rows = np.arange(game.n) if rows is None else np.asarray(rows)
        self.check(game)
        if self.keeps_rounds and game.sample_rows is None:
            fit = max(1, game.memory_cap // self.kept_row_bytes(game, self.resolve_budget(game)))
            if len(rows) > fit:  # each explicand's draws follow the seed alone: same values
                return join_results([self._summarise(game, rows[s:s + fit])
                                     for s in range(0, len(rows), fit)])
        return self._summarise(game, rows)

    def _summarise(self, game, rows: np.ndarray) -> SummaryResult:
        budget = self.resolve_budget(game)
        K = game.rows_per_coalition
        worst = self.unit_cost(game.d) * K  # rows of one unit when all its coalitions are new
        ss = seed_sequence(self.seed)
        rng0 = np.random.default_rng(ss.spawn(1)[0])
        state = self.start(game, rows, self.max_units(game, budget), rng0)
        # nominal accounting: only coalitions not seen before are charged (repeats are cache hits)
        seen: set[bytes] = state.get("seen", set())
        charged = self.fixed_cost(game) + state.get("charged", 0)
        hard_cap = self.unit_cap(game, budget, charged)  # repeats are free: bound the rounds
        # doubling rounds grow no larger than memory_cap's worth of designs
        round_cap = max(1, game.memory_cap // (8 * game.d * self.unit_cost(game.d)))
        if state.get("exact"):
            hard_cap = 0
        n = len(rows)
        active = np.ones(n, dtype=bool)
        units = np.zeros(n, dtype=np.int64)
        coalitions = np.full(n, self.fixed_coalitions + len(seen), dtype=np.int64)
        converged = np.zeros(n, dtype=bool)
        final_v = final_se = None
        stale = np.zeros(n, dtype=bool)  # updated since the last estimate
        done = 0
        rnd = 0
        whole = self.one_round and not self.stops_early
        while active.any():
            # rounds double (a stopping rule is read after each); with one_round and no
            # stopping rule, one round takes what the budget affords: draws of the budget left,
            # repeated while repeats (free) leave room, evaluated together (few, large calls)
            parts, size, new, n_masks = [], 0, 0, 0
            while True:
                left = (budget - charged) // worst
                grow = left if whole else min(self.min_units if done == 0 else done,
                                              round_cap)
                part = min(grow, left, hard_cap - done - size)
                if part <= 0:
                    break
                rng = np.random.default_rng(np.random.SeedSequence(
                    ss.entropy, spawn_key=(*ss.spawn_key, 7, rnd)))
                rnd += 1
                parts.append(self.draw(state, part, game.d, rng))
                size += part
                masks = self.round_masks(parts[-1])
                if masks is None:
                    charged += part * worst
                    new += part * self.unit_cost(game.d)
                    n_masks += part * self.unit_cost(game.d)
                else:
                    before = len(seen)
                    seen.update(k.tobytes() for k in np.packbits(masks, axis=1))
                    new += len(seen) - before
                    charged += (len(seen) - before) * K
                    n_masks += len(masks)
                if not whole or masks is None:
                    break
            if not parts:
                break
            design = parts[0] if len(parts) == 1 else self.merge(parts)
            act = np.flatnonzero(active)
            # explicands in blocks, so a round's values (explicands x coalitions) stay under
            # the memory cap; the design is shared, so blocks give the same values
            per_row = 8 * 4 * max(1, int(np.prod(game.value_shape))) * n_masks
            nb = len(act) if not self.blockable else max(1, game.memory_cap // per_row)
            for s in range(0, len(act), nb):
                blk = act[s:s + nb]
                state["active"] = blk
                vals = self.evaluate(game, design, rows[blk], state)
                self.update(state, design, vals, blk)
            done += size
            units[act] = done
            coalitions[act] += new
            stale[act] = True
            if not self.stops_early:
                continue  # estimates only where a stopping rule reads them, and at the end
            v, se = self.estimate(state, act)
            if final_v is None:
                final_v = np.empty((n, *v.shape[1:]))
                final_se = np.empty((n, *se.shape[1:]))
            final_v[act], final_se[act] = v, se
            stale[act] = False
            if done >= self.min_units:
                conv = self.stop(v, se)
                converged[act[conv]] = True
                active[act[conv]] = False
        if stale.any() or final_v is None:
            act = np.flatnonzero(stale) if stale.any() else np.arange(n)
            v, se = self.estimate(state, act)
            if final_v is None:
                final_v = np.empty((n, *v.shape[1:]))
                final_se = np.empty((n, *se.shape[1:]))
            final_v[act], final_se[act] = v, se
        base = state.get("base")
        max_units = done
        extras = {"budget": budget, "max_units": max_units}
        extras.update(state.get("extras", {}))
        return SummaryResult(final_v, final_se, base if base is not None else
                             np.full(final_v.shape[:1] + final_v.shape[2:], np.nan),
                             units, converged, np.asarray(coalitions), extras)


def join_results(parts: list[SummaryResult]) -> SummaryResult:
    """One result of the results of consecutive blocks of explicands: arrays with a row per
    explicand are joined; ``max_units`` is the largest; other extras are the first block's
    (the budget and the choices the settings make, the same in every block)."""
    def rows_of(key, values):
        if key == "max_units":
            return max(values)
        if all(isinstance(v, np.ndarray) and v.ndim and len(v) == len(p.values)
               for v, p in zip(values, parts)):
            return np.concatenate(values)
        return values[0]

    first = parts[0]
    extras = {key: rows_of(key, [p.extras[key] for p in parts]) for key in first.extras}
    return SummaryResult(*(np.concatenate([getattr(p, f) for p in parts]) for f in (
        "values", "stderr", "base_values", "units", "converged", "coalitions")), extras)


define_kind("summary", Summary)  # every summary module registers against it
