"""``python -m benchmarks SUITE [options]``: dispatch to a benchmark package.

Only ``performance`` is a package; ``faithfulness`` and ``suppressor`` stay scripts
(``python benchmarks/faithfulness.py``) and are forwarded here for convenience.
"""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

SUITES = ("performance", "faithfulness", "suppressor")


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in SUITES:
        sys.exit(f"usage: python -m benchmarks {{{','.join(SUITES)}}} [options]")
    suite, rest = argv[0], argv[1:]
    if suite == "performance":
        from .performance.__main__ import main as perf_main

        perf_main(rest)
        return
    script = Path(__file__).resolve().parent / f"{suite}.py"
    sys.argv = [str(script), *rest]
    runpy.run_path(str(script), run_name="__main__")


if __name__ == "__main__":
    main()
