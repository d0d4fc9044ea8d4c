"""Problem 1's peers from shapiq 1.8.0, which needs Python >= 3.12, run in a separate
interpreter on a numpy copy of the same MLP.

The harness finds a Python >= 3.12 (``$XAI_PYTHON312``, this interpreter, ``python3.12`` on
the path, or pyenv's), builds once a virtual environment under the benchmark's cache folder
with ``shapiq==1.8.0``, numpy and xgboost (the RegressionMSR proxy), and runs
:mod:`.peers312_worker` in it: each estimator on every point, budget and seed, one thread,
every coalition counted as one model row, as problem 1 counts. The numpy model must equal the
torch model to 1e-6 on the explicands and on masked inputs, checked here and in the worker.
Where no such interpreter or shapiq can be had, the figures measured on 2026-12-07 are
given instead, marked as stored.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .peers312_worker import mlp_proba

SHAPIQ = "1.8.0"
MODEL_TOLERANCE = 1e-6
BUDGETS = (1024, 4096)  # the budgets of the stored figures and of the live runs
MAX_SEEDS = 3
STORED_MARK = f"stored (shapiq {SHAPIQ}, 2026-12-07)"
WORKER = Path(__file__).with_name("peers312_worker.py")


@dataclass(frozen=True)
class Peer:
    """One shapiq estimator: its class and options, and the figures of 2026-12-07 (relative
    L2 error and ms per explanation at budgets 1024 and 4096; 20 points, 3 seeds)."""

    name: str
    cls: str
    kwargs: dict = field(default_factory=dict)
    settings: str = ""
    stored: dict = field(default_factory=dict)  # budget -> (error, ms per explanation)


PEERS = (
    Peer(f"shapiq {SHAPIQ} RegressionMSR (XGBoost proxy)", "RegressionMSR",
         {"index": "SV", "proxy_model": "xgboost"},
         "XGBoost proxy + residual correction (Witter, Liu & Musco, NeurIPS 2025)",
         {1024: (0.0446, 285), 4096: (0.0106, 696)}),
    Peer(f"shapiq {SHAPIQ} OddSHAP", "OddSHAP", {},
         "odd-part Fourier regression (Fumagalli et al., ICML 2026), defaults",
         {1024: (0.0488, 436), 4096: (0.0111, 725)}),
    Peer(f"shapiq {SHAPIQ} RegressionMSR (tree proxy)", "RegressionMSR",
         {"index": "SV", "proxy_model": "tree"}, "tree proxy + residual correction",
         {1024: (0.0795, 158), 4096: (0.0300, 534)}),
    Peer(f"shapiq {SHAPIQ} LeverageSHAP", "LeverageSHAP", {},
         "leverage-score sampling, paired (Musco & Witter, ICLR 2025)",
         {1024: (0.0833, 16), 4096: (0.0313, 72)}),
    Peer(f"shapiq {SHAPIQ} PolySHAP (k=2, paired)", "PolySHAP",
         {"max_order": 2, "pairing_trick": True},
         "max_order=2, pairing_trick=True (Fumagalli, Witter & Musco, ICLR 2026)",
         {1024: (0.0851, 55), 4096: (0.0354, 356)}),
    Peer(f"shapiq {SHAPIQ} kADDSHAP", "kADDSHAP", {"max_order": 2}, "max_order=2",
         {1024: (0.0853, 98), 4096: (0.0300, 615)}),
)


def python_version(python: str) -> tuple[int, int] | None:
    """``(major, minor)`` of an interpreter, or None when it does not run."""
    try:
        out = subprocess.run([python, "-c", "import sys; print(*sys.version_info[:2])"],
                             capture_output=True, text=True, timeout=30, check=True).stdout
        major, minor = map(int, out.split())
        return major, minor
    except (OSError, subprocess.SubprocessError, ValueError):
        return None


def find_python312() -> str | None:
    """A Python >= 3.12: ``$XAI_PYTHON312``, this interpreter, ``python3.12`` (then 3.13) on
    the path, or pyenv's 3.12 (then newer); None when there is none."""
    if sys.version_info >= (3, 12):
        return sys.executable
    candidates = [os.environ.get("XAI_PYTHON312"), shutil.which("python3.12"),
                  shutil.which("python3.13")]
    root = os.environ.get("PYENV_ROOT", os.path.expanduser("~/.pyenv"))
    candidates += sorted(glob.glob(f"{root}/versions/3.1[2-9]*/bin/python"))
    for python in candidates:
        if python and (python_version(python) or (0, 0)) >= (3, 12):
            return python
    return None


def venv_python(cache_dir: str | Path, log=print) -> tuple[str | None, str]:
    """The interpreter of the cached environment with shapiq 1.8.0 (built on first use), and
    why there is none when it is None."""
    root = Path(cache_dir) / f"peers312-shapiq-{SHAPIQ}"
    python = root / "bin" / "python"
    done = root / "installed.txt"
    if done.exists() and python.exists():
        return str(python), ""
    base = find_python312()
    if base is None:
        return None, "no Python >= 3.12 on this machine"
    log(f"[p1] building {root} with {base} and shapiq=={SHAPIQ} (once)")
    try:
        if root.exists():
            shutil.rmtree(root)
        subprocess.run([base, "-m", "venv", str(root)], check=True, timeout=600,
                       capture_output=True)
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", f"shapiq=={SHAPIQ}",
                        "numpy", "xgboost"], check=True, timeout=1800, capture_output=True)
    except (OSError, subprocess.SubprocessError) as e:
        err = getattr(e, "stderr", b"") or b""
        return None, f"could not install shapiq=={SHAPIQ}: {type(e).__name__} " \
                     f"{err.decode(errors='replace')[-300:]}".strip()
    done.write_text(f"shapiq=={SHAPIQ} numpy xgboost with {base}\n")
    return str(python), ""


def numpy_weights(module: torch.nn.Module) -> dict[str, np.ndarray]:
    """The float64 weights of problem 1's MLP (``Sequential`` of Linear, Tanh, Linear, Tanh,
    Linear) as :func:`~.peers312_worker.mlp_proba` takes them."""
    linears = [m for m in module.modules() if isinstance(m, torch.nn.Linear)]
    out = {}
    for i, lin in enumerate(linears):
        out[f"W{i}"] = lin.weight.detach().double().cpu().numpy()
        out[f"b{i}"] = lin.bias.detach().double().cpu().numpy()
    return out


def check_inputs(problem, X: np.ndarray, n_masks: int = 64, seed: int = 0) -> np.ndarray:
    """The explicands and masked versions of them (random coalitions, the baseline elsewhere):
    the inputs on which the numpy model must equal the torch model."""
    rng = np.random.default_rng(seed)
    keep = rng.random((n_masks, problem.d)) < 0.5
    masked = np.where(keep, X[rng.integers(len(X), size=n_masks)], problem.mean)
    return np.concatenate([X, masked, problem.mean[None]])


def torch_proba(problem, Z: np.ndarray) -> np.ndarray:
    """P(class 1) of the torch model (not through the counter)."""
    with torch.no_grad():
        return torch.softmax(problem.module(torch.as_tensor(Z, dtype=torch.float64)),
                             -1)[:, 1].numpy()


def model_gap(problem, X: np.ndarray) -> float:
    """Largest ``|numpy model - torch model|`` on :func:`check_inputs`."""
    Z = check_inputs(problem, X)
    return float(np.max(np.abs(mlp_proba(numpy_weights(problem.module), Z) -
                               torch_proba(problem, Z))))


def stored_rows(budgets) -> list[dict]:
    """Problem 1 rows of the figures measured on 2026-12-07, marked as stored."""
    rows = []
    for peer in PEERS:
        for b in budgets:
            if b not in peer.stored:
                continue
            err, ms = peer.stored[b]
            rows.append({"contender": f"{peer.name} — {STORED_MARK}",
                         "library": f"shapiq {SHAPIQ}", "ours": False, "stored": True,
                         "settings": peer.settings + "; 20 points, 3 seeds", "budget": b,
                         "status": "ok", "error": err, "error_se": None,
                         "evaluations": float(b), "efficiency_gap": None, "coverage": None,
                         "seed_avg_error": None, "seed_avg_ratio": None,
                         "seconds_per_point": ms / 1000})
    return rows


def run_peers(problem, X: np.ndarray, budgets, seeds, *, cache_dir, only=None,
              log=print) -> tuple[list[dict], str]:
    """The live results of :data:`PEERS` at the budgets of :data:`BUDGETS` among ``budgets``
    and the first three ``seeds``: ``[{"name", "budget", "seed", "values" (n, d), "rows"
    (per point), "seconds"} | {"name", "error"}]``, and why there are none (empty list)."""
    budgets = [b for b in budgets if b in BUDGETS]
    peers = [p for p in PEERS if not only or p.name in only]
    if not budgets or not peers:
        return [], "no peer budget or peer selected"
    gap = model_gap(problem, X)
    if gap > MODEL_TOLERANCE:
        raise AssertionError(f"the numpy MLP differs from the torch MLP by {gap:.2e}")
    python, why = venv_python(cache_dir, log)
    if python is None:
        return [], why
    Z = check_inputs(problem, X)
    spec = {"weights": {k: v.tolist() for k, v in numpy_weights(problem.module).items()},
            "X": np.asarray(X).tolist(), "baseline": problem.mean.tolist(),
            "check_inputs": Z.tolist(), "check_proba": torch_proba(problem, Z).tolist(),
            "budgets": budgets, "seeds": list(seeds)[:MAX_SEEDS],
            "peers": [{"name": p.name, "class": p.cls, "kwargs": p.kwargs} for p in peers]}
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
           "MKL_NUM_THREADS": "1", "PYTHONNOUSERSITE": "1"}
    env.pop("PYTHONPATH", None)
    with tempfile.TemporaryDirectory() as tmp:
        spec_path, out_path = Path(tmp) / "spec.json", Path(tmp) / "out.json"
        spec_path.write_text(json.dumps(spec))
        try:
            subprocess.run([python, str(WORKER), str(spec_path), str(out_path)], env=env,
                           check=True, timeout=4 * 3600, capture_output=True)
        except (OSError, subprocess.SubprocessError) as e:
            err = (getattr(e, "stderr", b"") or b"").decode(errors="replace")
            return [], f"the shapiq {SHAPIQ} worker failed: {type(e).__name__} {err[-300:]}"
        out = json.loads(out_path.read_text())
    if out["model_gap"] > MODEL_TOLERANCE:
        raise AssertionError(f"the worker's numpy MLP differs from the torch MLP by "
                             f"{out['model_gap']:.2e}")
    if out["versions"]["shapiq"] != SHAPIQ:
        return [], f"the environment has shapiq {out['versions']['shapiq']}, not {SHAPIQ}"
    log(f"[p1] shapiq {SHAPIQ} peers ran in python {out['versions']['python']} (numpy "
        f"{out['versions']['numpy']}); numpy model within {out['model_gap']:.1e} of torch")
    settings = {p.name: p.settings for p in PEERS}
    for r in out["results"]:
        r["settings"] = settings[r["name"]]
    return out["results"], ""
