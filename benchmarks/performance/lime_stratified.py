"""Stratified against uniform coalition sampling for LIME, on problem 3's images.

Problem 3 (:mod:`.images`): the CNN, the photographs at 64x64 and their SLIC superpixels,
P(predicted class) with removed superpixels filled with their mean colour. Each sampling
(``"uniform"``, lime's Bernoulli(1/2) coalitions, xai's default; ``"stratified"``, equal
samples per number of kept superpixels with the adjustment factors of Rashid et al., AAAI
2024) explains every image at equal samples per image, seeds ``0..seeds-1``; the error is
problem 3's: the mean over images of ``|phi - ref|_2 / |ref|_2`` against the LIME reference
(uniform sampling at ``reference_budget`` samples per image, seed 12345, shared with problem 3
through its cache). Both samplings estimate the same surrogate, so the reference serves both.

``python -m benchmarks.performance.lime_stratified --out DIR [--quick]`` writes
``lime_stratified.{json,md}`` under ``DIR`` (models and references cached in
``DIR/models``).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from .common import environment, pinned_threads
from .images import SIZES, _ours, load_image_problem, references, relative_error
from .report import _env_line, publish

SAMPLINGS = ("uniform", "stratified")
RUNS = {"full": {"samples": (250, 1000, 4000), "seeds": 10},
        "quick": {"samples": (250, 1000), "seeds": 3}}


def run(out: Path, *, quick: bool = False, log=print) -> dict:
    """Measure both samplings at every sample size; writes ``lime_stratified.{json,md}``."""
    size = "quick" if quick else "full"
    sizes, runs = SIZES[size], RUNS[size]
    cache = Path(out) / "models"
    t0 = time.perf_counter()
    problem = load_image_problem(cache_dir=cache, log=log, **sizes)
    ref = references(problem, sizes["reference_budget"], cache)["lime"]
    log(f"[lime-stratified] superpixels {problem.d}, references ready "
        f"({time.perf_counter() - t0:.0f}s)")
    rows = []
    for samples in runs["samples"]:
        for sampling in SAMPLINGS:
            errors = [relative_error(_ours(problem, "lime", samples, seed, model=problem.module,
                                           sampling=sampling), ref)
                      for seed in range(runs["seeds"])]
            rows.append({"samples": samples, "sampling": sampling,
                         "error": float(np.mean(errors)), "error_sd": float(np.std(errors)),
                         "errors": errors})
            log(f"[lime-stratified] {samples:5d} samples {sampling:10s} error "
                f"{rows[-1]['error']:.4f} ± {rows[-1]['error_sd']:.4f}")
    res = {"run": size, **sizes, **runs, "superpixels": problem.d, "rows": rows}
    publish(out, "lime_stratified", res, environment(), markdown, log)
    return res


def markdown(res: dict, env: dict) -> str:
    by = {(r["samples"], r["sampling"]): r for r in res["rows"]}
    out = [(f"# LIME: stratified against uniform sampling, problem 3 ({len(res['superpixels'])}"
            f" images {res['size']}x{res['size']}, SLIC superpixels {res['superpixels']}, {res['seeds']} "
            "seeds)"), "", _env_line(env), "",
           ("error = mean over images and seeds of the relative L2 error against the LIME "
            f"surrogate at {res['reference_budget']} uniform samples per image (problem 3's "
            "reference); ± the standard deviation over seeds; ratio = stratified error / "
            "uniform error (below 1: stratified is better)."), "",
           "| samples / image | uniform (default) | stratified | ratio |", "|---|---|---|---|"]
    for samples in res["samples"]:
        u, s = by[samples, "uniform"], by[samples, "stratified"]
        out.append(f"| {samples} | {u['error']:.4f} ± {u['error_sd']:.4f} | "
                   f"{s['error']:.4f} ± {s['error_sd']:.4f} | {s['error'] / u['error']:.2f} |")
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--quick", action="store_true", help="2 images, fewer seeds and samples")
    a = p.parse_args(argv)
    with pinned_threads():
        run(a.out, quick=a.quick)


if __name__ == "__main__":
    main()
