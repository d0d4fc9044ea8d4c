"""Shared pieces: the counting model wrapper, thread pinning, timing and the environment record."""

from __future__ import annotations

import contextlib
import datetime as _dt
import os
import platform
import statistics
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

import numpy as np
import torch

from xai.models import call_padding


class CountingModule(torch.nn.Module):
    """Wraps a module and counts every row it sees: the one budget every contender shares.

    Ours goes through it as a ``torch.nn.Module``; the peers through :meth:`proba_numpy`
    (numpy in, P(class 1) out) or :meth:`proba_torch` (torch in, P(class 1) out), all of which
    call :meth:`forward`, so one counter sees every row.
    """

    def __init__(self, module: torch.nn.Module, target: int = 1) -> None:
        super().__init__()
        self.module = module
        self.target = target
        self.rows = 0
        self.calls = 0

    def reset(self) -> None:
        self.rows = 0
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # logits
        # the rows asked about: xai pads its calls (xai.models.CALL_ROW_MULTIPLE), the
        # padding is not part of the budget
        self.rows += int(x.shape[0]) - call_padding()
        self.calls += 1
        return self.module(x)

    @torch.no_grad()
    def proba_torch(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.as_tensor(x, dtype=torch.float64)
        if x.ndim == 1:
            x = x[None]
        return torch.softmax(self(x), dim=-1)[:, self.target]

    def proba_numpy(self, x) -> np.ndarray:
        return self.proba_torch(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float64))).numpy()


@contextlib.contextmanager
def pinned_threads(n: int = 1):
    """torch and BLAS (threadpoolctl) pinned to ``n`` threads; restored on exit."""
    from threadpoolctl import threadpool_limits

    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        with threadpool_limits(limits=n):
            yield
    finally:
        torch.set_num_threads(old)


def trained(module: torch.nn.Module, settings: str, cache_dir, train, *,
            prefix: str) -> torch.nn.Module:
    """``module`` with its weights from the cache (``<cache_dir>/<prefix>_<hash>.pt``, the hash
    of ``settings`` and torch's version) or from ``train()`` (then cached; no cache when
    ``cache_dir`` is None); returned in eval mode with its parameters frozen."""
    import hashlib

    key = hashlib.sha256(f"{settings}|torch={torch.__version__}".encode()).hexdigest()[:12]
    path = Path(cache_dir) / f"{prefix}_{key}.pt" if cache_dir is not None else None
    if path is not None and path.exists():
        module.load_state_dict(torch.load(path, weights_only=True))
    else:
        train()
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            torch.save(module.state_dict(), path)
    module.eval()
    for p in module.parameters():
        p.requires_grad_(False)
    return module


def timed(fn, repeats: int = 3, warmup: bool = True):
    """Median wall time of ``repeats`` calls after one warm-up call; returns (median, last result)."""
    if warmup:
        fn()
    times, out = [], None
    for _ in range(max(1, repeats)):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out, times


#: most bytes of distinct input rows a floor materialises; past it the block is cycled
FLOOR_DISTINCT_BYTES = 512 * 2**20


def fastest_floor(module, X, n_rows: int, *, batches=(16_384,),
                  repeats: int = 7) -> tuple[float, int]:
    """The floor every ratio is taken against: a bare forward pass of ``module`` over
    ``n_rows`` rows under ``torch.no_grad``, in calls of each of ``batches`` rows; returns
    the fastest (median of ``repeats`` after a warm-up) and its batch size.

    The rows are distinct in memory, as a contender's synthetic rows are: ``X`` tiled into
    one array (at most :data:`FLOOR_DISTINCT_BYTES`, cycled past it). A single cache-resident
    tile reused for every call understates the model's cost (~10% for the MLP of problem 2).
    Several batch sizes guard against a size that happens to run slowly (on glibc, calls
    whose activations are re-mapped from the system each time: 0.19 vs 0.30 µs/row)."""
    if n_rows <= 0:
        return 0.0, 0
    base = torch.as_tensor(np.asarray(X))
    top = max(int(b) for b in batches)
    row_bytes = max(1, base[0].numel() * base.element_size())
    m = int(min(n_rows, max(top, FLOOR_DISTINCT_BYTES // row_bytes // top * top)))
    block = base.repeat(-(-m // len(base)), *([1] * (base.ndim - 1)))[:m].contiguous()

    def fwd(batch: int) -> None:
        with torch.no_grad():
            done = 0
            while done < n_rows:
                s = done % m
                take = min(batch, n_rows - done, m - s)
                module(block[s:s + take])
                done += take
    return min((timed(lambda b=int(b): fwd(b), repeats)[0], int(b)) for b in batches)


def forward_floor(module, X, n_rows: int, *, batches=(16_384,), repeats: int = 7) -> float:
    """Seconds of :func:`fastest_floor`."""
    return fastest_floor(module, X, n_rows, batches=batches, repeats=repeats)[0]


def measure_contenders(contenders, measure, *, only=None, fields=("settings",), describe=None,
                       tag: str = "", log=print) -> list[dict]:
    """One row per contender (those named in ``only``, if given): its name, library, ``ours``
    and ``fields``, then ``status "ok"`` and ``measure(c)``'s dict, or ``status "error"`` with
    ``why`` when it raises (a failing peer is reported, not fatal). ``describe(c, row)`` gives
    the log line of a measured contender."""
    rows = []
    for c in contenders:
        if only and c.name not in only:
            continue
        base = {"contender": c.name, "library": c.library, "ours": c.ours,
                **{f: getattr(c, f) for f in fields}}
        try:
            r = {**base, "status": "ok", **measure(c)}
            if describe is not None:
                log(f"[{tag}] {describe(c, r)}")
        except Exception as e:  # noqa: BLE001 - a failing peer is reported, not fatal
            r = {**base, "status": "error", "why": f"{type(e).__name__}: {str(e)[:200]}"}
            log(f"[{tag}] {c.name}: error {r['why']}")
        rows.append(r)
    return rows


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def environment() -> dict:
    """Machine, versions, load and date of a run."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                                check=False, cwd=Path(__file__).resolve().parents[2],
                                timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = None
    return {
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": platform.node(), "platform": platform.platform(), "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(), "loadavg": list(os.getloadavg()),
        "python": sys.version.split()[0], "torch_threads": torch.get_num_threads(),
        "git_commit": commit,
        "versions": {p: _version(p) for p in ("xai", "numpy", "torch", "scikit-learn", "shap",
                                              "captum", "lime", "shapiq", "sage-importance",
                                              "threadpoolctl", "matplotlib")},
    }
