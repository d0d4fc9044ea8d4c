"""The ``suppressor`` benchmark with its full settings.

    python benchmarks/suppressor.py --out results/suppressor

gauss2d-suppressor with its exact Bayes model, linear8x8 with a linear model, and XAI-TRIS 8×8
(LIN / MULT / RIGID / XOR × WHITE / CORR × LLR / MLP / CNN); methods shap, lime, occlusion,
captum integrated gradients and saliency, pattern; every ground-truth metric; 5 seeds (each
regenerates the data and retrains the models). Re-running the command resumes an interrupted
run; see benchmarks/README.md.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _script import run_script

SETTINGS = {"suite": "suppressor", "seeds": (0, 1, 2, 3, 4), "n_explain": 64,
            "timeout": 1800}


def main(argv: list[str] | None = None) -> None:
    """Run the suppressor suite with its full settings."""
    run_script(__doc__, SETTINGS, "results/suppressor", argv)


if __name__ == "__main__":
    main()
