"""Problem 1: Shapley accuracy per model evaluation.

Truth: exact Shapley values (all ``2^d`` coalitions, float64) for ``n_points`` test rows. Every
contender runs at each nominal budget (model rows per point) and seed; the shared counter gives
the rows it really evaluated. Metrics: mean relative L2 error, efficiency gap
``|sum(phi) - (v(D) - v(∅))|``, SE coverage (fraction of coordinates with
``|error| <= 1.96 SE``, where a contender states SEs), and the seed-averaging ratio
``error(mean over seeds) / mean error``, which is ``1/sqrt(seeds)`` for an unbiased estimator.
"""

from __future__ import annotations

import time

import numpy as np

from . import peers312
from .contenders import NOT_APPLICABLE, OTHER_ESTIMANDS, contenders
from .problem import exact_shapley, load_problem

TARGET_RATIO = 0.5
TARGET_BUDGETS = (1024, 4096)


def rel_error(est: np.ndarray, truth: np.ndarray) -> np.ndarray:
    return np.linalg.norm(est - truth, axis=1) / np.linalg.norm(truth, axis=1)


def score(name, library, ours, settings, budget, ests, ses, evals, secs, truth, delta,
          log=print) -> dict:
    """Problem 1's row of one contender at one budget from its estimates over the seeds
    (``ests``, ``ses``: per seed ``(n, d)`` or None), rows per point and seconds per seed."""
    errs = [rel_error(est, truth) for est in ests]
    E = np.stack(ests)
    err = float(np.mean(errs))
    avg_err = float(rel_error(E.mean(0), truth).mean())
    gap = float(np.mean(np.abs(E.sum(2) - delta)))
    cov = None
    if ses[0] is not None:
        S = np.stack(ses)
        cov = float(np.mean(np.abs(E - truth) <= 1.96 * S))
    row = {
        "contender": name, "library": library, "ours": ours, "settings": settings,
        "budget": budget, "status": "ok", "error": err,
        "error_se": float(np.std(np.mean(errs, axis=1), ddof=1) / np.sqrt(len(ests)))
        if len(ests) > 1 else None,
        "evaluations": float(np.mean(evals)), "efficiency_gap": gap, "coverage": cov,
        "seed_avg_error": avg_err,
        "seed_avg_ratio": avg_err / err if err > 0 else None,
        "seconds_per_point": float(np.median(secs)) / len(truth)}
    log(f"[p1] {name:32s} {budget:5d}  err {err:.4f}  evals {row['evaluations']:7.1f}  "
        f"gap {gap:.1e}  cov {cov if cov is None else round(cov, 3)}  "
        f"avg/err {row['seed_avg_ratio']:.2f}  ms/point {1000 * row['seconds_per_point']:.0f}")
    return row


def shapiq312_rows(problem, X, budgets, seeds, truth, delta, *, cache_dir, only=None,
                   live=True, log=print) -> list[dict]:
    """Rows of shapiq 1.8.0's estimators (:mod:`.peers312`, run in a Python >= 3.12 on a
    numpy copy of the MLP), or, where that cannot run (or ``live`` is False), the figures
    stored on 2026-12-07, marked as stored."""
    if only and not any(p.name in only for p in peers312.PEERS):
        return []
    results, why = ([], "live runs off") if not live else peers312.run_peers(
        problem, X, budgets, seeds, cache_dir=cache_dir, only=only, log=log)
    rows = []
    by_key: dict[tuple, list] = {}
    for r in results:
        if "error" in r:
            rows.extend({"contender": r["name"], "library": f"shapiq {peers312.SHAPIQ}",
                         "ours": False, "budget": b, "status": "error", "why": r["error"]}
                        for b in budgets if b in peers312.BUDGETS)
            log(f"[p1] {r['name']}  error: {r['error']}")
            continue
        by_key.setdefault((r["name"], r["budget"], r["settings"]), []).append(r)
    for (name, b, settings), runs in by_key.items():
        rows.append(score(name, f"shapiq {peers312.SHAPIQ}", False, settings, b,
                          [np.asarray(r["values"]) for r in runs], [None] * len(runs),
                          [np.mean(r["rows"]) for r in runs], [r["seconds"] for r in runs],
                          truth, delta, log))
    if not results and any(b in peers312.BUDGETS for b in budgets):
        log(f"[p1] shapiq {peers312.SHAPIQ} peers: {why}; printing the figures "
            f"{peers312.STORED_MARK}")
        for r in peers312.stored_rows(budgets):
            rows.append(r)
            log(f"[p1] {r['contender']:32s} {r['budget']:5d}  err {r['error']:.4f}  "
                f"ms/point {1000 * r['seconds_per_point']:.0f}")
    return rows


def run_accuracy(*, d=16, n_points=20, budgets=(256, 512, 1024, 2048, 4096), seeds=range(5),
                 cache_dir=None, only=None, shapiq_peers="auto", log=print) -> dict:
    """Problem 1's rows and targets. ``shapiq_peers``: shapiq 1.8.0's estimators run in a Python
    >= 3.12 where one can be had (``"auto"``), their stored figures (``"stored"``), or
    neither (``"off"``)."""
    problem = load_problem(d, cache_dir=cache_dir)
    X = problem.X_test[:n_points]
    t0 = time.perf_counter()
    truth, delta = exact_shapley(problem, X)
    log(f"[p1] truth: {len(X)} points x 2^{d} coalitions in {time.perf_counter() - t0:.1f}s "
        f"(test accuracy {problem.test_accuracy:.3f})")
    seeds = list(seeds)
    rows = []
    not_applicable = dict(NOT_APPLICABLE)
    for c in contenders():
        if c.estimand != "shapley":
            not_applicable[c.name] = OTHER_ESTIMANDS[c.estimand]
            continue
        if only and c.name not in only:
            continue
        c.run(problem, X[:1], min(budgets), 10_000)  # warm-up (imports, JIT, caches)
        for b in budgets:
            if c.max_budget is not None and b > c.max_budget:
                rows.append({"contender": c.name, "library": c.library, "ours": c.ours,
                             "budget": b, "status": "skipped", "why": c.max_budget_why})
                continue
            ests, ses, evals, secs = [], [], [], []
            status, why = "ok", ""
            for s in seeds:
                problem.counter.reset()
                t = time.perf_counter()
                try:
                    est, se = c.run(problem, X, b, s)
                except Exception as e:  # noqa: BLE001 - a peer that fails is listed with why
                    status, why = "error", f"{type(e).__name__}: {str(e)[:200]}"
                    break
                secs.append(time.perf_counter() - t)
                evals.append(problem.counter.rows / len(X))
                ests.append(est)
                ses.append(se)
            if status != "ok":
                rows.append({"contender": c.name, "library": c.library, "ours": c.ours,
                             "budget": b, "status": status, "why": why})
                log(f"[p1] {c.name:32s} {b:5d}  {status}: {why}")
                continue
            rows.append(score(c.name, c.library, c.ours, c.settings, b, ests, ses, evals,
                              secs, truth, delta, log))
    if shapiq_peers != "off":
        rows += shapiq312_rows(problem, X, budgets, seeds, truth, delta, cache_dir=cache_dir,
                               only=only, live=shapiq_peers == "auto", log=log)
    return {"problem": 1, "d": d, "n_points": len(X), "budgets": list(budgets), "seeds": seeds,
            "test_accuracy": problem.test_accuracy, "rows": rows, "targets": targets(rows, budgets),
            "not_applicable": not_applicable, "sqrt_seeds_ratio": 1 / np.sqrt(len(seeds))}


def targets(rows, budgets) -> list[dict]:
    out = []
    ok = [r for r in rows if r["status"] == "ok"]
    for b in budgets:
        ours = [r for r in ok if r["ours"] and r["budget"] == b]
        peers = [r for r in ok if not r["ours"] and r["budget"] == b]
        if not ours or not peers:
            continue
        bo = min(ours, key=lambda r: r["error"])
        bp = min(peers, key=lambda r: r["error"])
        ratio = bo["error"] / bp["error"]
        for r in ok:
            if r["budget"] == b:
                r["ratio_to_best_peer"] = r["error"] / bp["error"]
        t = {"budget": b, "ours": bo["contender"], "ours_error": bo["error"],
             "best_peer": bp["contender"], "best_peer_error": bp["error"], "ratio": ratio,
             "target": TARGET_RATIO, "met": bool(ratio <= TARGET_RATIO),
             "checked": b in TARGET_BUDGETS}
        cov = [r["coverage"] for r in ours if r["coverage"] is not None]
        if cov:
            best_cov = bo["coverage"]
            t["ours_coverage"] = best_cov
            t["coverage_met"] = bool(best_cov is not None and 0.92 <= best_cov <= 0.98)
        out.append(t)
    return out
