"""The ``faithfulness`` benchmark (SPEC-evaluation §1, §6) with its full settings.

    python benchmarks/faithfulness.py --out results/faithfulness

scikit-learn digits (8×8, small CNN) and breast-cancer (MLP), methods shap, lime, occlusion,
captum integrated gradients and saliency, every §1 metric that applies, 5 seeds. Re-running
the command resumes an interrupted run; see benchmarks/README.md.
"""

from __future__ import annotations

import argparse

from xai import bench

SETTINGS = {"suite": "faithfulness", "seeds": (0, 1, 2, 3, 4), "n_explain": 64,
            "timeout": 1800}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="results/faithfulness", help="output folder")
    parser.add_argument("--rerun-errors", action="store_true")
    parser.add_argument("--force", action="store_true")
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args(argv)
    bench.run(out=args.out, rerun_errors=args.rerun_errors, force=args.force,
              verbose=args.verbose, **SETTINGS)


if __name__ == "__main__":
    main()
