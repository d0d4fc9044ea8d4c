"""Benchmark scripts of xai (``python -m benchmarks performance --out results/performance``)."""
