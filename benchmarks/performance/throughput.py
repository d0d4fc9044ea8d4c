"""Problem 2: throughput. ``n_rows`` rows x about ``budget`` model rows each through each
contender's batch call, against the floor: one bare forward pass of the same MLP over the same
number of rows (the rows the counter saw) in large batches.

Slow peers explain a subset of the rows (sized so one call takes about ``max_seconds``); their
floor is measured on the rows they really evaluated, so the ratio is comparable.
"""

from __future__ import annotations

import time

import numpy as np

from .common import forward_floor, timed
from .contenders import contenders
from .problem import load_problem

TARGET = 1.3
FLOOR_BATCHES = (4096, 16_384)  # the floor is the faster of these batch sizes


def floor_seconds(module, X: np.ndarray, n_rows: int, repeats: int = 7) -> float:
    """Bare forward pass over ``n_rows`` distinct rows, the faster of :data:`FLOOR_BATCHES`."""
    return forward_floor(module, X, n_rows, batches=FLOOR_BATCHES, repeats=repeats)


def run_throughput(*, d=16, n_rows=200, budget=1024, repeats=3, max_seconds=20.0,
                   cache_dir=None, only=None, log=print) -> dict:
    problem = load_problem(d, cache_dir=cache_dir)
    X_all = np.resize(problem.X_test, (n_rows, d)) if n_rows > len(problem.X_test) \
        else problem.X_test[:n_rows]
    rows = []
    for c in contenders():
        if only and c.name not in only:
            continue
        if c.max_budget is not None and budget > c.max_budget:
            pass  # throughput is measured on a subset instead of skipping
        try:
            # warm-up on 2 rows; it also sizes the subset for slow contenders
            c.run(problem, X_all[:2], budget, 0)  # first call: imports, JIT, caches
            t = time.perf_counter()
            c.run(problem, X_all[:2], budget, 0)
            per_row = (time.perf_counter() - t) / 2
            n = int(min(n_rows, max(2, max_seconds // max(per_row, 1e-9))))
            X = X_all[:n]
            counts = []

            def call(c=c, X=X, counts=counts):  # bound now: timed() calls it in this turn
                problem.counter.reset()
                out = c.run(problem, X, budget, 0)
                counts.append(problem.counter.rows)
                return out
            med, _, times = timed(call, repeats if n == n_rows else 1, warmup=False)
            counted = counts[-1]
            fl = floor_seconds(problem.module, X, counted)
            rows.append({"contender": c.name, "library": c.library, "ours": c.ours,
                         "estimand": c.estimand, "status": "ok", "rows_explained": n,
                         "evaluations": counted,
                         "evaluations_per_row": counted / n, "seconds": med,
                         "floor_seconds": fl, "ratio_to_floor": med / fl,
                         "overhead_us_per_evaluation": (med - fl) / counted * 1e6,
                         "model_calls": problem.counter.calls, "times": times,
                         "batch_call": c.batch_rows})
            r = rows[-1]
            log(f"[p2] {c.name:32s} rows {n:3d}  evals/row {r['evaluations_per_row']:7.1f}  "
                f"{med:8.3f}s  floor {fl:.4f}s  x{r['ratio_to_floor']:8.1f}  "
                f"overhead {r['overhead_us_per_evaluation']:.2f} us/eval")
        except Exception as e:  # noqa: BLE001
            rows.append({"contender": c.name, "library": c.library, "ours": c.ours,
                         "estimand": c.estimand, "status": "error",
                         "why": f"{type(e).__name__}: {str(e)[:200]}"})
            log(f"[p2] {c.name}: error {rows[-1]['why']}")
    ok = [r for r in rows if r["status"] == "ok"]
    ours = [r for r in ok if r["ours"]]
    peers = [r for r in ok if not r["ours"]]
    tgt = {}
    if ours:
        bo = min(ours, key=lambda r: r["ratio_to_floor"])
        tgt = {"ours": bo["contender"], "ratio_to_floor": bo["ratio_to_floor"], "target": TARGET,
               "met": bool(bo["ratio_to_floor"] <= TARGET)}
        if peers:
            bp = min(peers, key=lambda r: r["ratio_to_floor"])
            tgt.update(best_peer=bp["contender"], best_peer_ratio=bp["ratio_to_floor"])
    return {"problem": 2, "d": d, "n_rows": n_rows, "budget": budget, "repeats": repeats,
            "rows": rows, "target": tgt}
