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

from .contenders import NOT_APPLICABLE, OTHER_ESTIMANDS, contenders
from .problem import exact_shapley, load_problem

TARGET_RATIO = 0.5
TARGET_BUDGETS = (1024, 4096)


def rel_error(est: np.ndarray, truth: np.ndarray) -> np.ndarray:
    return np.linalg.norm(est - truth, axis=1) / np.linalg.norm(truth, axis=1)


def run_accuracy(*, d=16, n_points=20, budgets=(256, 512, 1024, 2048, 4096), seeds=range(5),
                 cache_dir=None, only=None, log=print) -> dict:
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
            ests, ses, errs, evals, secs = [], [], [], [], []
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
                errs.append(rel_error(est, truth))
            if status != "ok":
                rows.append({"contender": c.name, "library": c.library, "ours": c.ours,
                             "budget": b, "status": status, "why": why})
                log(f"[p1] {c.name:32s} {b:5d}  {status}: {why}")
                continue
            E = np.stack(ests)
            err = float(np.mean(errs))
            avg_err = float(rel_error(E.mean(0), truth).mean())
            gap = float(np.mean(np.abs(E.sum(2) - delta)))
            cov = None
            if ses[0] is not None:
                S = np.stack(ses)
                cov = float(np.mean(np.abs(E - truth) <= 1.96 * S))
            rows.append({
                "contender": c.name, "library": c.library, "ours": c.ours, "settings": c.settings,
                "budget": b, "status": "ok", "error": err,
                "error_se": float(np.std(np.mean(errs, axis=1), ddof=1) / np.sqrt(len(seeds)))
                if len(seeds) > 1 else None,
                "evaluations": float(np.mean(evals)), "efficiency_gap": gap, "coverage": cov,
                "seed_avg_error": avg_err,
                "seed_avg_ratio": avg_err / err if err > 0 else None,
                "seconds_per_point": float(np.median(secs)) / len(X)})
            r = rows[-1]
            log(f"[p1] {c.name:32s} {b:5d}  err {err:.4f}  evals {r['evaluations']:7.1f}  "
                f"gap {gap:.1e}  cov {cov if cov is None else round(cov, 3)}  "
                f"avg/err {r['seed_avg_ratio']:.2f}")
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
