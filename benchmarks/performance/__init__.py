"""Performance benchmark: xai and its peers side by side, same process, same row counter.

Problems 1-7: Shapley accuracy per model evaluation, throughput, image explanations,
integrated gradients, metrics against Quantus, global importance against sage-importance, and
scaling (time and memory). Run
``python -m benchmarks performance --out results/performance [--quick] [--problems 1,2]``.
"""

from .common import CountingModule, environment, pinned_threads  # noqa: F401
