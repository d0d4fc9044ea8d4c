"""``python -m benchmarks.performance --out results/performance [--quick] [--problems 1,2,...]``

The performance problems (benchmarks/README.md); every contender in this process, one counting model wrapper, torch
and BLAS pinned to one thread, a warm-up call and the median of repeats. Writes
``problem<N>.{json,md}`` (and figures) and ``environment.json`` under ``--out``; trained models
are cached in ``<out>/models``.

Problems 1 and 2 live in :mod:`.accuracy` and :mod:`.throughput`; problems 3 and up are one
module each (:data:`MODULES`) with ``SIZES = {"full": ..., "quick": ..., "tiny": ...}`` and
``run_problem(out, sizes, *, cache_dir, only, log, env) -> dict``, which writes its own files.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from .common import environment, pinned_threads

FULL = {"p1": {"d": 16, "n_points": 20, "budgets": (256, 512, 1024, 2048, 4096),
               "seeds": range(5)},
        "p2": {"d": 16, "n_rows": 200, "budget": 1024, "repeats": 3, "max_seconds": 20.0}}
QUICK = {"p1": {"d": 16, "n_points": 4, "budgets": (256, 1024), "seeds": range(2)},
         "p2": {"d": 16, "n_rows": 20, "budget": 256, "repeats": 1, "max_seconds": 2.0}}
TINY = {"p1": {"d": 6, "n_points": 2, "budgets": (48,), "seeds": range(2)},  # for the tests
        "p2": {"d": 6, "n_rows": 3, "budget": 48, "repeats": 1, "max_seconds": 0.5}}
#: problem number -> module of this package implementing it (problems 3 and up)
MODULES = {3: "images", 4: "gradients", 5: "metrics", 6: "global_importance", 7: "scaling",
           8: "estimator_calls", 9: "ray_scaling", 10: "interactions"}
ALL = (1, 2, *MODULES)


def _module(number: int):
    import importlib

    return importlib.import_module(f".{MODULES[number]}", __package__)


def _size_name(sizes) -> str:
    return {id(FULL): "full", id(QUICK): "quick", id(TINY): "tiny"}.get(id(sizes), "full")


def run(out, *, sizes=None, problems=(1, 2), only=None, log=print) -> dict:
    from . import accuracy, report, throughput

    sizes = sizes or FULL
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    cache = out / "models"
    results = {}
    with pinned_threads(1):
        env = environment()
        (out / "environment.json").write_text(json.dumps(env, indent=1))
        log(report._env_line(env))
        if 1 in problems:
            t = time.perf_counter()
            res = accuracy.run_accuracy(cache_dir=cache, only=only, log=log, **sizes["p1"])
            res["seeds"] = list(res["seeds"])
            report.publish(out, "problem1", res, env, report.markdown_accuracy, log)
            report.figure_accuracy(res, out / "problem1.png")
            log(f"[p1] {time.perf_counter() - t:.0f}s")
            results[1] = res
        if 2 in problems:
            res = throughput.run_throughput(cache_dir=cache, only=only, log=log, **sizes["p2"])
            report.publish(out, "problem2", res, env, report.markdown_throughput, log)
            results[2] = res
        for number in problems:
            if number in MODULES:
                t = time.perf_counter()
                mod = _module(number)
                results[number] = mod.run_problem(out, mod.SIZES[_size_name(sizes)],
                                                  cache_dir=cache, only=only, log=log, env=env)
                log(f"[p{number}] {time.perf_counter() - t:.0f}s")
    return results


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="results/performance")
    p.add_argument("--quick", action="store_true", help="small sizes (minutes)")
    p.add_argument("--problems", default=",".join(map(str, ALL)),
                   help="comma-separated problem numbers (default: all)")
    p.add_argument("--only", default=None,
                   help="comma-separated contender names (e.g. 'xai KernelSHAP,shapiq SVARM')")
    a = p.parse_args(argv)
    probs = tuple(int(x) for x in a.problems.split(","))
    bad = [x for x in probs if x not in ALL]
    if bad:
        sys.exit(f"unknown problem(s) {bad}; the problems are {list(ALL)}")
    run(a.out, sizes=QUICK if a.quick else FULL, problems=probs,
        only=a.only.split(",") if a.only else None)


if __name__ == "__main__":
    main()
