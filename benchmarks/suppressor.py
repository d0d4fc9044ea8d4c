"""The ``suppressor`` benchmark (SPEC-evaluation §3–§6) with its full settings.

    python benchmarks/suppressor.py --out results/suppressor

gauss2d-suppressor with its exact Bayes model, linear8x8 with a linear model, and XAI-TRIS 8×8
(LIN / MULT / RIGID / XOR × WHITE / CORR × LLR / MLP / CNN); methods shap, lime, occlusion,
captum integrated gradients and saliency, pattern; every §5 ground-truth metric; 5 seeds (each
regenerates the data and retrains the models). Re-running the command resumes an interrupted
run; see benchmarks/README.md.
"""

from __future__ import annotations

import argparse

from xai import bench

SETTINGS = {"suite": "suppressor", "seeds": (0, 1, 2, 3, 4), "n_explain": 64,
            "timeout": 1800}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="results/suppressor", help="output folder")
    parser.add_argument("--rerun-errors", action="store_true")
    parser.add_argument("--force", action="store_true")
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args(argv)
    bench.run(out=args.out, rerun_errors=args.rerun_errors, force=args.force,
              verbose=args.verbose, **SETTINGS)


if __name__ == "__main__":
    main()
