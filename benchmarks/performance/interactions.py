"""Problem 10: pairwise Shapley interactions per model evaluation on problem 1's MLP.

Truth: the exact index (k-SII or FSII, main effects and pairs) of P(class 1) with the
training-mean baseline, by xai's enumeration of all ``2^d`` coalitions in float64. Every
contender runs at each budget (model rows per point) and seed on the same counting model.
Metric: mean relative L2 error over the ``d + d(d-1)/2`` values (and over the pairs alone),
and, where a contender states standard errors, their coverage (fraction of values within
1.96 SE). Peers: shapiq's interaction approximators, each with and without its pairing
trick (shapiq's default border sampling otherwise), the better of the two counting at each
budget: SHAP-IQ, SVARM-IQ and KernelSHAP-IQ for k-SII, RegressionFSII for FSII. Target:
xai's error at most 0.5x the best peer's at every budget.

``python -m benchmarks.performance.interactions --out DIR [--quick]`` writes
``problem10.{json,md}`` under ``DIR`` (the trained MLP cached in ``DIR/models``); it also runs
as problem 10 of ``python -m benchmarks performance``.
"""

from __future__ import annotations

import argparse
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SIZES = {"full": {"d": 16, "n_points": 10, "budgets": (1024, 4096), "seeds": range(3),
                  "indices": ("k-SII", "FSII")},
         "quick": {"d": 16, "n_points": 3, "budgets": (1024, 4096), "seeds": range(2),
                   "indices": ("k-SII", "FSII")},
         "tiny": {"d": 6, "n_points": 2, "budgets": (48,), "seeds": range(2),
                  "indices": ("k-SII", "FSII")}}
TARGET_RATIO = 0.5


@dataclass
class Contender:
    name: str
    library: str
    run: object  # (problem, X, budget, seed, index) -> (values (n, d + P), stderr or None)
    settings: str
    indices: tuple[str, ...]
    ours: bool = False


def flat(expl_values: np.ndarray, pairs: np.ndarray) -> np.ndarray:
    """Main effects ``(n, d)`` and symmetric pairs ``(n, d, d)`` as ``(n, d + P)``."""
    i, j = np.triu_indices(expl_values.shape[1], 1)
    return np.concatenate([expl_values, pairs[:, i, j]], axis=1)


def exact_interactions(problem, X: np.ndarray, index: str) -> np.ndarray:
    """Truth ``(n, d + P)``: xai's exact enumeration (checked against shapiq in the tests)."""
    from xai.summaries.interactions import ShapleyInteractions

    from .problem import xai_game

    res = ShapleyInteractions(index=index, estimator="exact",
                              max_exact_features=max(20, problem.d))(xai_game(problem, X))
    return flat(res.values, res.extras["interactions"])


def _ours(problem, X, budget, seed, index):
    from xai.summaries.interactions import ShapleyInteractions

    from .problem import xai_game

    res = ShapleyInteractions(index=index, estimator="sampled", budget=int(budget),
                              seed=seed)(xai_game(problem, X))
    return (flat(res.values, res.extras["interactions"]),
            flat(res.stderr, res.extras["interaction_stderr"]))


def _shapiq(cls_name, **kw):
    def run(problem, X, budget, seed, index):
        import shapiq.approximator as A

        d = problem.d
        i_, j_ = np.triu_indices(d, 1)
        out = np.empty((len(X), d + len(i_)))
        for r, x in enumerate(X):
            def game(coalitions, x=x):
                c = np.asarray(coalitions, bool)
                return problem.counter.proba_numpy(np.where(c, x, problem.mean))
            opts = dict(kw) if cls_name == "RegressionFSII" else {**kw, "index": index}
            approx = getattr(A, cls_name)(d, max_order=2, random_state=seed, **opts)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                iv = approx.approximate(int(budget), game)
            look = iv.interaction_lookup
            out[r, :d] = [iv.values[look[(i,)]] for i in range(d)]
            out[r, d:] = [iv.values[look[(int(i), int(j))]] for i, j in zip(i_, j_)]
        return out, None
    return run


def contenders() -> list[Contender]:
    """Ours and shapiq's approximators, each with and without the pairing trick: neither
    setting is best for every peer and budget on this problem, so both run and the verdict
    takes the best row at each budget."""
    both = ("k-SII", "FSII")
    peers = [("SHAP-IQ", "SHAPIQ", ("k-SII",)), ("SVARM-IQ", "SVARMIQ", ("k-SII",)),
             ("KernelSHAP-IQ", "KernelSHAPIQ", ("k-SII",)),
             ("RegressionFSII", "RegressionFSII", ("FSII",))]
    out = [Contender("xai shap-interactions", "xai", _ours,
                     "enumerated border strata, paired kernel sampling, cross-fitted 2-additive "
                     "Faith-Shap surrogate on the logit scale + importance-sampled residual, SE",
                     both, ours=True)]
    for label, cls, indices in peers:
        for pairing in (False, True):
            out.append(Contender(f"shapiq {label}{' (paired)' if pairing else ''}", "shapiq",
                                 _shapiq(cls, pairing_trick=pairing),
                                 f"pairing_trick={pairing}", indices))
    return out


def rel_error(est: np.ndarray, truth: np.ndarray) -> np.ndarray:
    return np.linalg.norm(est - truth, axis=1) / np.linalg.norm(truth, axis=1)


def run_interactions(*, d=16, n_points=10, budgets=(1024, 4096), seeds=range(3),
                     indices=("k-SII", "FSII"), cache_dir=None, only=None, log=print) -> dict:
    from .problem import load_problem

    problem = load_problem(d, cache_dir=cache_dir)
    X = problem.X_test[:n_points]
    seeds = list(seeds)
    rows = []
    for index in indices:
        t0 = time.perf_counter()
        truth = exact_interactions(problem, X, index)
        log(f"[p10] {index} truth: {len(X)} points x 2^{d} coalitions in "
            f"{time.perf_counter() - t0:.1f}s")
        for c in contenders():
            if index not in c.indices or (only and c.name not in only):
                continue
            c.run(problem, X[:1], min(budgets), 10_000, index)  # warm-up
            for b in budgets:
                rows.append(_measure(c, problem, X, b, seeds, index, truth, log))
    res = {"d": d, "n_points": n_points, "budgets": list(budgets), "seeds": seeds,
           "indices": list(indices), "rows": rows, "target_ratio": TARGET_RATIO}
    res["verdicts"] = verdicts(rows)
    return res


def _measure(c: Contender, problem, X, budget, seeds, index, truth, log) -> dict:
    d = problem.d
    errs, pair_errs, evals, secs, covs = [], [], [], [], []
    for s in seeds:
        problem.counter.reset()
        t = time.perf_counter()
        try:
            est, se = c.run(problem, X, budget, s, index)
        except Exception as e:  # noqa: BLE001 - a peer that fails is listed with why
            why = f"{type(e).__name__}: {str(e)[:200]}"
            log(f"[p10] {index} {c.name:24s} {budget:5d}  error: {why}")
            return {"contender": c.name, "library": c.library, "ours": c.ours, "index": index,
                    "budget": budget, "status": "error", "why": why}
        secs.append(time.perf_counter() - t)
        evals.append(problem.counter.rows / len(X))
        errs.append(rel_error(est, truth).mean())
        pair_errs.append(rel_error(est[:, d:], truth[:, d:]).mean())
        if se is not None:
            covs.append(float(np.mean(np.abs(est - truth) <= 1.96 * se)))
    row = {"contender": c.name, "library": c.library, "ours": c.ours, "settings": c.settings,
           "index": index, "budget": budget, "status": "ok", "error": float(np.mean(errs)),
           "pair_error": float(np.mean(pair_errs)), "evaluations": float(np.mean(evals)),
           "ms_per_point": 1e3 * float(np.mean(secs)) / len(X),
           "coverage": float(np.mean(covs)) if covs else None}
    cov = "" if row["coverage"] is None else f"  coverage {row['coverage']:.3f}"
    log(f"[p10] {index} {c.name:24s} {budget:5d}  error {row['error']:.4f}  pairs "
        f"{row['pair_error']:.4f}  evals {row['evaluations']:.0f}{cov}")
    return row


def verdicts(rows: list[dict]) -> list[dict]:
    """Per index and budget: ours / the best peer's error, and whether the target is met."""
    out = []
    keys = sorted({(r["index"], r["budget"]) for r in rows})
    for index, budget in keys:
        ok = [r for r in rows if r["index"] == index and r["budget"] == budget
              and r["status"] == "ok"]
        ours = [r for r in ok if r["ours"]]
        peers = [r for r in ok if not r["ours"]]
        if not ours or not peers:
            continue
        best = min(peers, key=lambda r: r["error"])
        ratio = ours[0]["error"] / best["error"]
        out.append({"index": index, "budget": budget, "ours": ours[0]["error"],
                    "best_peer": best["contender"], "best_error": best["error"],
                    "ratio": ratio, "met": ratio <= TARGET_RATIO})
    return out


def markdown(res: dict, env: dict) -> str:
    from .report import _env_line

    out = [(f"# Problem 10: pairwise Shapley interactions per evaluation (d = {res['d']}, "
            f"{res['n_points']} points, seeds {res['seeds']})"), "", _env_line(env), "",
           ("Relative L2 error against exact values (all 2^d coalitions), main effects and "
            "pairs together and pairs alone; evaluations are model rows per point as counted."),
           "", ("| index | contender | budget | error | pair error | evaluations | ms/point | "
                "SE coverage |"), "|---|---|---|---|---|---|---|---|"]
    for r in res["rows"]:
        name = f"**{r['contender']}**" if r["ours"] else r["contender"]
        if r["status"] != "ok":
            out.append(f"| {r['index']} | {name} | {r['budget']} | {r['status']}: "
                       f"{r['why']} | | | | |")
            continue
        cov = "–" if r["coverage"] is None else f"{r['coverage']:.3f}"
        out.append(f"| {r['index']} | {name} | {r['budget']} | {r['error']:.4f} | "
                   f"{r['pair_error']:.4f} | {r['evaluations']:.0f} | "
                   f"{r['ms_per_point']:.1f} | {cov} |")
    out += ["", f"Target: xai's error at most {res['target_ratio']}x the best peer's.", "",
            "| index | budget | xai | best peer | its error | ratio | met |",
            "|---|---|---|---|---|---|---|"]
    for v in res["verdicts"]:
        out.append(f"| {v['index']} | {v['budget']} | {v['ours']:.4f} | {v['best_peer']} | "
                   f"{v['best_error']:.4f} | {v['ratio']:.2f} | "
                   f"{'yes' if v['met'] else 'no'} |")
    return "\n".join(out + [""])


def run_problem(out: Path, sizes: dict, *, cache_dir: Path, only=None, log=print,
                env: dict) -> dict:
    from . import report

    t = time.perf_counter()
    res = run_interactions(cache_dir=cache_dir, only=only, log=log, **sizes)
    res["seconds_total"] = time.perf_counter() - t
    report.publish(out, "problem10", res, env, markdown, log)
    return res


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--quick", action="store_true", help="3 points, 2 seeds")
    p.add_argument("--only", default=None, help="comma-separated contender names")
    a = p.parse_args(argv)
    from .common import environment, pinned_threads

    with pinned_threads(1):
        run_problem(a.out, SIZES["quick" if a.quick else "full"], cache_dir=a.out / "models",
                    only=a.only.split(",") if a.only else None, env=environment())


if __name__ == "__main__":
    main()
