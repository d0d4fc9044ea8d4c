"""The command line shared by the benchmark scripts: one call of ``xai.bench.run``."""

from __future__ import annotations

import argparse

from xai import bench


def run_script(doc: str, settings: dict, default_out: str,
               argv: list[str] | None = None) -> None:
    """Parse ``--out``, ``--rerun-errors``, ``--force``, ``--verbose`` and run ``settings``."""
    parser = argparse.ArgumentParser(description=doc,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=default_out, help="output folder")
    parser.add_argument("--rerun-errors", action="store_true")
    parser.add_argument("--force", action="store_true")
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args(argv)
    bench.run(out=args.out, rerun_errors=args.rerun_errors, force=args.force,
              verbose=args.verbose, **settings)
