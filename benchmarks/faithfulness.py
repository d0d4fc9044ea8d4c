"""The ``faithfulness`` benchmark with its full settings.

    python benchmarks/faithfulness.py --out results/faithfulness

scikit-learn digits (8×8, small CNN) and breast-cancer (MLP), methods shap, lime, occlusion,
captum integrated gradients and saliency, every faithfulness metric that applies, 5 seeds. Re-running
the command resumes an interrupted run; see benchmarks/README.md.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _script import run_script

SETTINGS = {"suite": "faithfulness", "seeds": (0, 1, 2, 3, 4), "n_explain": 64,
            "timeout": 1800}


def main(argv: list[str] | None = None) -> None:
    """Run the faithfulness suite with its full settings."""
    run_script(__doc__, SETTINGS, "results/faithfulness", argv)


if __name__ == "__main__":
    main()
