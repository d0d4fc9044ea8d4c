"""Performance benchmark (issue 8): xai and its peers side by side, same process, same row counter.

Problem 1 (Shapley accuracy per model evaluation) and problem 2 (throughput against a bare
forward pass) are implemented; problems 3-7 are not yet. Run
``python -m benchmarks.performance --out results/performance [--quick]``.
"""

from .common import CountingModule, environment, pinned_threads  # noqa: F401
