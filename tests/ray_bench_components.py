"""Test-only metrics for the Ray benchmark tests (``tests/test_bench_ray.py``): one that
kills its own worker process on its first attempt, one that cannot be interrupted by the
runner's time limit, one that sleeps in interruptible Python and one that is slow. Registered
in the driver's process only; the runner ships them to the workers."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import numpy as np

from xai import registry
from xai.metrics.base import Metric


def _scores(inp) -> dict:
    return {"per_sample": np.abs(inp.scores)[:, 0]}


class KillOnce(Metric):
    """Kills its worker process (SIGKILL, by its pid) the first time it runs: ``marker`` is
    the file that records that it did."""

    name = "test-kill-once"
    marker = ""

    def compute(self, inp):
        marker = Path(type(self).marker)
        if not marker.exists():
            marker.write_text(str(os.getpid()))
            os.kill(os.getpid(), signal.SIGKILL)
        return _scores(inp)


class Stuck(Metric):
    """Ignores the runner's alarm (as a long C call would) and sleeps."""

    name = "test-stuck"

    def compute(self, inp):
        signal.signal(signal.SIGALRM, signal.SIG_IGN)
        time.sleep(60)
        return _scores(inp)


class Sleepy(Metric):
    """Sleeps in Python, which the runner's time limit interrupts."""

    name = "test-sleepy"

    def compute(self, inp):
        time.sleep(5)
        return _scores(inp)


class Slow(Metric):
    """Takes a second."""

    name = "test-slow"

    def compute(self, inp):
        time.sleep(1.0)
        return _scores(inp)


METRICS = (KillOnce, Stuck, Sleepy, Slow)


def register() -> None:
    """Register the metrics (in this process)."""
    for cls in METRICS:
        registry.register("metric", cls.name, cls)


def unregister() -> None:
    """Remove them again."""
    for cls in METRICS:
        registry.unregister("metric", cls.name)
