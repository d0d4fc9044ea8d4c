"""Problem 7: scaling. Time per explanation as the number of features ``d`` grows and as the
number of explained rows grows, and the peak memory of one large image explanation against the
configured memory cap.

**d scaling.** A generated tabular problem per ``d``: a seeded random float32 MLP
``d -> 64 -> tanh -> 2`` (weights N(0, 1/fan_in)) on standard-normal rows, baseline the
all-zeros row (the data mean), explained output P(class 1). ``n_rows`` rows are explained at a
budget of ``per_feature * d`` model rows per explained row (``budget = c·d``).

**rows scaling.** The same generator at fixed ``d`` (16) and a fixed budget per row; 1 to
10,000 explained rows in one batch call.

Every contender's model rows are counted by the shared :class:`~.common.CountingModule`. Per
size: median seconds (one call per size after a warm-up call on the smallest size; repeats
only where one call is short), counted rows, time per counted row and the floor: a bare forward
pass of the same MLP over the same number of rows (distinct in memory), the faster of batches of
4,096 and 16,384.

**memory.** In a fresh interpreter per run (so RSS is clean): a small random-weight CNN on one
224×224×3 image, marginal removal over 100 background images (``K_rem`` = 100 model rows per
coalition), 16×16 patches (196 features), RISE and KernelSHAP, with ``XAI_MEMORY_CAP`` set.
The baseline is the RSS after imports, model and data creation and a warm-up (a 2-image
background game over a few coalitions, so first-use costs of code paths and allocator arenas
are not charged); the peak high-water mark is reset there (``/proc/self/clear_refs``) and read
from ``VmHWM`` after building the game and after the explanation. *Extra peak* = the larger of
the two peaks minus the baseline; the target is extra peak ≤ cap.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .common import CountingModule, forward_floor
from .report import _env_line, publish

SIZES = {
    "full": {"ds": (16, 64, 256, 1024), "d_rows": 4, "per_feature": 32,
             "rows": (1, 10, 100, 1000, 10_000), "rows_d": 16, "rows_budget": 256,
             "repeats": 3, "slow_s": 1.0, "peer_max_s": 20.0,
             "profile": True,
             "memory": {"image": 224, "patch": 16, "background": 100,
                        "runs": (("rise", 64, (64, 256, 1024)), ("kernelshap", None, (64, 256)),
                                 ("rise", 64, (256,), "numpy")),
                        "timeout_s": 600}},
    "quick": {"ds": (16, 64, 256), "d_rows": 2, "per_feature": 32,
              "rows": (1, 10, 100, 1000), "rows_d": 16, "rows_budget": 128,
              "repeats": 3, "slow_s": 0.5, "peer_max_s": 5.0,
              "profile": True,
              "memory": {"image": 224, "patch": 16, "background": 100,
                         "runs": (("rise", 16, (64, 256)),), "timeout_s": 300}},
    "tiny": {"ds": (4, 8), "d_rows": 2, "per_feature": 16, "rows": (1, 3), "rows_d": 4,
             "rows_budget": 32, "repeats": 1, "slow_s": 0.1, "peer_max_s": 2.0,
             "profile": True,
             "memory": {"image": 32, "patch": 8, "background": 4,
                        "runs": (("rise", 4, (16,)),), "timeout_s": 120}},
}
"""``ds``, ``d_rows``, ``per_feature``: the d series, rows explained per d and the budget
factor c (budget = c·d rows per explained row); ``rows``, ``rows_d``, ``rows_budget``: the rows
series; ``repeats`` (only where one call takes under ``slow_s``); ``peer_max_s``: a peer is
skipped at a size whose projected time (last time × work ratio) exceeds it; ``profile``:
profile ours once at the largest d; ``memory``: the image runs (``runs`` = (summary,
coalitions or None for the summary's minimum, caps in MiB[, "numpy"]); "numpy" passes the
background as a float32 numpy array instead of a torch tensor)."""

TOL = 1.5  # largest growth of a time per row from a smaller to a larger size counted as flat
HIDDEN = 64
FLOOR_BATCHES = (4096, 16_384)  # the floor is the faster of these batch sizes
ROOT = Path(__file__).resolve().parents[2]


# -- the generated problems -------------------------------------------------------------------
def mlp(d: int, *, seed: int = 0, hidden: int = HIDDEN) -> torch.nn.Module:
    """Seeded random float32 MLP ``d -> hidden -> tanh -> 2`` (weights N(0, 1/fan_in))."""
    g = torch.Generator().manual_seed(seed * 100_003 + d)
    m = torch.nn.Sequential(torch.nn.Linear(d, hidden), torch.nn.Tanh(),
                            torch.nn.Linear(hidden, 2))
    with torch.no_grad():
        for p in m.parameters():
            p.copy_(torch.randn(p.shape, generator=g) / np.sqrt(p.shape[-1]))
            p.requires_grad_(False)
    return m.eval()


def data(n: int, d: int, *, seed: int = 0) -> np.ndarray:
    """``n`` standard-normal float32 rows (the baseline, the data mean, is the zero row)."""
    return np.random.default_rng([seed, d]).standard_normal((n, d)).astype(np.float32)


def small_cnn(*, seed: int = 0, classes: int = 10) -> torch.nn.Module:
    """A small random-weight CNN for the memory run: 8×8 average pooling first (so its own
    activations are small next to the game's synthetic inputs), one 3×3 convolution, pooling
    and a linear head."""
    torch.manual_seed(seed)
    m = torch.nn.Sequential(torch.nn.AvgPool2d(8), torch.nn.Conv2d(3, 16, 3, padding=1),
                            torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(4), torch.nn.Flatten(),
                            torch.nn.Linear(256, classes))
    for p in m.parameters():
        p.requires_grad_(False)
    return m.eval()


# -- contenders -------------------------------------------------------------------------------
@dataclass
class Contender:
    name: str
    library: str
    run: Callable  # run(counter, X, budget, seed) -> values (n, d)
    settings: str
    ours: bool = False


def _proba(counter: CountingModule):
    def f(x):
        x = torch.as_tensor(x, dtype=torch.float32)
        return torch.softmax(counter(x), -1)[:, 1]
    return f


def _xai(summary: str):
    def run(counter, X, budget, seed):
        from xai import summaries
        from xai.behaviours import Prediction
        from xai.features import FeatureMap
        from xai.game import Game
        from xai.models import as_model
        from xai.removals import Baseline

        d = X.shape[1]
        game = Game(as_model(counter, output_kind="logits"), X, Baseline(np.zeros(d, np.float32)),
                    Prediction(target=1, output="probability"), FeatureMap.tabular(d))
        cls = {"kernelshap": summaries.KernelSHAP, "permutation": summaries.PermutationShapley}
        return np.asarray(cls[summary](budget=int(budget), seed=seed)(game).values)
    return run


def _captum_svs(counter, X, budget, seed):
    from captum.attr import ShapleyValueSampling

    d = X.shape[1]
    torch.manual_seed(seed)
    n_perm = max(1, (int(budget) - 1) // d)  # a permutation costs d rows, +1 for the baseline
    out = ShapleyValueSampling(_proba(counter)).attribute(
        torch.as_tensor(X), baselines=torch.zeros(1, d), n_samples=n_perm,
        perturbations_per_eval=d)
    return out.numpy()


def _shap_permutation(counter, X, budget, seed):
    import shap

    d = X.shape[1]
    f = _proba(counter)
    masker = shap.maskers.Independent(np.zeros((1, d), np.float32), max_samples=1)
    ex = shap.PermutationExplainer(lambda z: f(z).numpy(), masker, seed=seed)
    return np.asarray(ex(X, max_evals=max(int(budget), 2 * d + 1), silent=True).values)


def contenders() -> list[Contender]:
    return [
        Contender("xai KernelSHAP", "xai", _xai("kernelshap"),
                  "paired, enumerated strata, exact constraint; budget = rows per row", True),
        Contender("xai permutation", "xai", _xai("permutation"),
                  "antithetic permutation pairs; budget = rows per row", True),
        Contender("captum ShapleyValueSampling", "captum", _captum_svs,
                  "n_samples=(budget-1)//d permutations, perturbations_per_eval=d (batched "
                  "over rows)"),
        Contender("shap Permutation", "shap", _shap_permutation,
                  "PermutationExplainer, Independent masker (zero row), max_evals=budget; "
                  "a Python loop over rows"),
    ]


NOT_RUN = {
    "shap Kernel": "a Python loop over rows and a weighted regression per row; problem 2 "
                   "measures it at d = 16 (far slower than shap Permutation)",
    "captum KernelShap": "one surrogate per example built one sample at a time (~250 µs each); "
                         "problem 2 measures it",
    "shapiq approximators": "one explicand per call (a Python loop over rows); problem 2 "
                            "measures them at d = 16",
}


# -- timing ----------------------------------------------------------------------------------
def floor_seconds(module: torch.nn.Module, X: np.ndarray, n_rows: int, repeats: int = 3) -> float:
    """Bare forward pass over ``n_rows`` distinct rows, the faster of :data:`FLOOR_BATCHES`."""
    return forward_floor(module, X, n_rows, batches=FLOOR_BATCHES, repeats=repeats)


def measure(c: Contender, module: torch.nn.Module, X: np.ndarray, budget: int, *,
            repeats: int, slow_s: float) -> dict:
    """One size: median seconds (repeats only where a call is under ``slow_s``), counted rows
    and calls of the last call, floor, and the per-row ratios."""
    counter = CountingModule(module)
    times = []

    def once():
        counter.reset()
        t = time.perf_counter()
        vals = c.run(counter, X, budget, 0)
        times.append(time.perf_counter() - t)
        return vals
    vals = once()
    if times[0] < slow_s:
        for _ in range(repeats - 1):
            vals = once()
    n, d = X.shape
    if np.asarray(vals).shape != (n, d) or not np.isfinite(vals).all():
        raise RuntimeError(f"values of shape {np.asarray(vals).shape}, finite "
                           f"{bool(np.isfinite(vals).all())}; expected ({n}, {d})")
    sec = statistics.median(times)
    rows = counter.rows
    fl = floor_seconds(module, X, rows)
    return {"seconds": sec, "times": times, "seconds_per_explanation": sec / n,
            "evaluations": rows, "evaluations_per_row": rows / n, "model_calls": counter.calls,
            "us_per_evaluation": sec / rows * 1e6,
            "ns_per_evaluated_value": sec / (rows * d) * 1e9,
            "floor_seconds": fl, "floor_us_per_evaluation": fl / rows * 1e6,
            "ratio_to_floor": sec / fl}


def series(points: list[dict], sizes: dict, *, tag: str, only, log) -> list[dict]:
    """Every contender over ``points`` (dicts with ``d``, ``n``, ``budget``, ``module``,
    ``X``), smallest first; peers whose projected time exceeds ``peer_max_s`` are skipped."""
    rows = []
    for c in contenders():
        if only and c.name not in only:
            continue
        base = {"contender": c.name, "library": c.library, "ours": c.ours,
                "settings": c.settings}
        last = None  # (seconds, work) of the last size measured
        try:  # warm-up (imports, first-call caches) on one row of the smallest size
            p0 = points[0]
            c.run(CountingModule(p0["module"]), p0["X"][:1], p0["budget"], 0)
        except Exception as e:  # noqa: BLE001 - a failing peer is reported, not fatal
            why = f"{type(e).__name__}: {str(e)[:200]}"
            rows += [{**base, **_size(p), "status": "error", "why": why} for p in points]
            log(f"[p7 {tag}] {c.name}: error {why}")
            continue
        for p in points:
            work = p["n"] * p["budget"] * p["d"]
            if last is not None and not c.ours:
                projected = last[0] * work / last[1]
                if projected > sizes["peer_max_s"]:
                    rows.append({**base, **_size(p), "status": "skipped",
                                 "why": f"projected {projected:.0f} s > {sizes['peer_max_s']:.0f}"
                                        f" s (from {last[0]:.2f} s at the previous size)"})
                    log(f"[p7 {tag}] {c.name:28s} d {p['d']:5d} rows {p['n']:6d}: skipped")
                    last = (projected, work)
                    continue
            try:
                r = {**base, **_size(p), "status": "ok",
                     **measure(c, p["module"], p["X"], p["budget"], repeats=sizes["repeats"],
                               slow_s=sizes["slow_s"])}
                last = (r["seconds"], work)
                log(f"[p7 {tag}] {c.name:28s} d {p['d']:5d} rows {p['n']:6d} "
                    f"{r['seconds']:9.4f}s  evals {r['evaluations']:9d}  "
                    f"{r['us_per_evaluation']:8.3f} us/eval  floor x{r['ratio_to_floor']:.1f}")
            except Exception as e:  # noqa: BLE001
                r = {**base, **_size(p), "status": "error",
                     "why": f"{type(e).__name__}: {str(e)[:200]}"}
                log(f"[p7 {tag}] {c.name}: error {r['why']}")
            rows.append(r)
    return rows


def profile_call(c: Contender, module: torch.nn.Module, X: np.ndarray, budget: int,
                 top: int = 12) -> dict:
    """One call under cProfile: the xai functions with the most cumulative time and the
    library functions (numpy, torch, builtins) with the most own time."""
    import cProfile
    import pstats

    counter = CountingModule(module)
    prof = cProfile.Profile()
    prof.enable()
    c.run(counter, X, budget, 0)
    prof.disable()
    st = pstats.Stats(prof)
    xai_dir = os.sep + "xai" + os.sep
    mine, library = [], []
    for (file, line, fn), (_, _, tt, ct, _) in st.stats.items():
        if xai_dir in file:
            mine.append((f"{file.split(xai_dir, 1)[1]}:{line}({fn})", ct))
        elif file == "~":
            library.append((fn, tt))
        elif os.sep + "site-packages" + os.sep in file:
            library.append((f"{file.split('site-packages' + os.sep, 1)[1]}({fn})", tt))
    mine.sort(key=lambda x: -x[1])
    library.sort(key=lambda x: -x[1])
    return {"contender": c.name, "d": X.shape[1], "rows": len(X), "budget": budget,
            "total": st.total_tt, "evaluations": counter.rows, "xai": mine[:top],
            "library": library[:top // 2]}


def _size(p: dict) -> dict:
    return {"d": p["d"], "rows_explained": p["n"], "budget": p["budget"]}


def growth(values: list[float]) -> float:
    """Largest ratio of a later (larger size) value to an earlier one: ≤ 1 when the series
    never rises, > 1 by how much it rises at worst."""
    worst = 0.0
    for j in range(1, len(values)):
        worst = max(worst, values[j] / min(values[:j]))
    return worst


def scaling_targets(rows: list[dict], key: str) -> list[dict]:
    """Per contender of ours: growth of time per counted row over the series (``key`` orders
    it), and of time per evaluated value (row × d) and ratio to floor for context."""
    out = []
    for name in dict.fromkeys(r["contender"] for r in rows if r["ours"]):
        pts = sorted((r for r in rows if r["contender"] == name and r["status"] == "ok"),
                     key=lambda r: r[key])
        if len(pts) < 2:
            continue
        per_row = [r["us_per_evaluation"] for r in pts]
        per_value = [r["ns_per_evaluated_value"] for r in pts]
        floor_row = [r["floor_us_per_evaluation"] for r in pts]
        ratio = [r["ratio_to_floor"] for r in pts]
        out.append({"contender": name, "sizes": [r[key] for r in pts],
                    "largest_to_smallest_per_row": max(per_row) / min(per_row),
                    "growth_per_row": growth(per_row), "growth_per_value": growth(per_value),
                    "growth_floor_per_row": growth(floor_row),
                    "growth_ratio_to_floor": growth(ratio), "tolerance": TOL,
                    "met": bool(growth(per_row) <= TOL),
                    "met_per_value": bool(growth(per_value) <= TOL)})
    return out


# -- memory ----------------------------------------------------------------------------------
def _status_bytes(key: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _reset_peak() -> bool:
    """Reset the peak RSS (VmHWM) of this process (Linux ≥ 4.0); False where impossible."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _memory_child(spec: dict) -> dict:
    """Run in a fresh interpreter by :func:`memory_probe`: build, warm up, take the baseline,
    explain, and return RSS figures in bytes."""
    import gc
    import resource

    from xai import summaries
    from xai.behaviours import Prediction
    from xai.config import config
    from xai.features import FeatureMap
    from xai.game import Game
    from xai.models import as_model
    from xai.removals import Marginal

    torch.set_num_threads(1)
    s, n_bg = spec["image"], spec["background"]
    g = torch.Generator().manual_seed(0)
    model = small_cnn()
    X = torch.randn((1, 3, s, s), generator=g)
    bg = torch.randn((n_bg, 3, s, s), generator=g)
    fmap = FeatureMap.patches((s, s), spec["patch"], channel_axis=0)
    behaviour = Prediction(target=1, output="probability")

    def game(background):
        if spec.get("numpy_background"):
            background = background.numpy()  # shares the tensor's memory
        return Game(as_model(model, output_kind="logits"), X, Marginal(background,
                    max_background=None), behaviour, fmap, seed=0)
    warm = game(bg[:2])  # first-use costs of the same code paths, not charged to the run
    warm(np.eye(fmap.d, dtype=bool)[:4])
    del warm
    gc.collect()
    base = _status_bytes("VmRSS")
    exact = _reset_peak() and base is not None
    t0 = time.perf_counter()
    gm = game(bg)
    build_peak = _status_bytes("VmHWM") if exact else None
    after_build = _status_bytes("VmRSS")
    cls = {"rise": summaries.RISE, "kernelshap": summaries.KernelSHAP,
           "permutation": summaries.PermutationShapley}[spec["summary"]]
    summary = cls(seed=0)
    K, d = gm.rows_per_coalition, gm.d
    units = spec.get("coalitions") or summary.minimum_units(d) * summary.unit_cost(d)
    budget = summary.fixed_cost(gm) + units * K
    summary.budget = budget
    if exact:
        _reset_peak()
    res = summary(gm)
    seconds = time.perf_counter() - t0
    call_peak = _status_bytes("VmHWM") if exact else None
    ru = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * (1 if sys.platform == "darwin"
                                                               else 1024)
    if not exact:  # the process peak: an upper bound that includes imports
        build_peak = call_peak = ru
        base = base or 0
    return {"cap_bytes": int(config.memory_cap), "baseline_rss": base,
            "build_peak_over_baseline": build_peak - base,
            "after_build_over_baseline": (after_build or base) - base,
            "call_peak_over_baseline": call_peak - base,
            "call_peak_over_built": call_peak - (after_build or base),
            "extra_peak": max(build_peak, call_peak) - base, "ru_maxrss": ru,
            "peak_source": "VmHWM after clear_refs" if exact else "ru_maxrss (process peak)",
            "seconds": seconds, "evaluations": int(gm.rows_evaluated), "budget": int(budget),
            "coalitions": int(units), "rows_per_coalition": int(K), "d": int(d),
            "rows_per_call": int(gm._rows_per_call()),
            "input_bytes_per_row": int(X[0].numel() * X.element_size()),
            "background_bytes": int(bg.numel() * bg.element_size()),
            "values_finite": bool(np.isfinite(np.asarray(res.values)).all())}


def memory_probe(cap_mib: float, summary: str, *, coalitions: int | None = None,
                 image: int = 224, patch: int = 16, background: int = 100,
                 numpy_background: bool = False, timeout_s: float = 600) -> dict:
    """One memory run in a fresh interpreter with ``XAI_MEMORY_CAP`` = ``cap_mib`` MiB."""
    spec = {"summary": summary, "coalitions": coalitions, "image": image, "patch": patch,
            "background": background, "numpy_background": numpy_background}
    code = ("import json, sys; from benchmarks.performance.scaling import _memory_child; "
            "print('RESULT ' + json.dumps(_memory_child(json.loads(sys.argv[1]))))")
    env = {**os.environ, "XAI_MEMORY_CAP": f"{cap_mib}MiB",
           "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH"))
                                         if p),
           "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", code, json.dumps(spec)], capture_output=True,
                          text=True, env=env, cwd=ROOT, timeout=timeout_s, check=False)
    line = next((x for x in proc.stdout.splitlines() if x.startswith("RESULT ")), None)
    if proc.returncode != 0 or line is None:
        raise RuntimeError(f"memory run failed (exit {proc.returncode}): "
                           f"{proc.stderr.strip()[-500:]}")
    res = json.loads(line[len("RESULT "):])
    mib = 2**20
    res.update(spec, cap_mib=cap_mib, extra_peak_mib=res["extra_peak"] / mib,
               build_peak_mib=res["build_peak_over_baseline"] / mib,
               call_peak_mib=res["call_peak_over_baseline"] / mib,
               call_over_built_mib=res["call_peak_over_built"] / mib,
               baseline_mib=res["baseline_rss"] / mib, ru_maxrss_mib=res["ru_maxrss"] / mib,
               held_mib=res["after_build_over_baseline"] / mib,
               all_at_once_mib=res["evaluations"] * res["input_bytes_per_row"] / mib,
               met=bool(res["extra_peak"] <= res["cap_bytes"]),
               met_calls=bool(res["call_peak_over_built"] <= res["cap_bytes"]))
    return res


def memory_runs(m: dict, *, log) -> list[dict]:
    out = []
    for summary, coalitions, caps, *kind in m["runs"]:
        numpy_bg = kind == ["numpy"]
        for cap in caps:
            base = {"summary": summary, "cap_mib": cap, "coalitions": coalitions,
                    "numpy_background": numpy_bg}
            try:
                r = {**base, "status": "ok",
                     **memory_probe(cap, summary, coalitions=coalitions, image=m["image"],
                                    patch=m["patch"], background=m["background"],
                                    numpy_background=numpy_bg, timeout_s=m["timeout_s"])}
                log(f"[p7 mem] {summary:10s}{' (numpy bg)' if numpy_bg else ''} cap {cap:5} "
                    f"MiB: extra peak {r['extra_peak_mib']:7.1f} MiB (build "
                    f"{r['build_peak_mib']:.1f}, held {r['held_mib']:.1f}, calls "
                    f"{r['call_over_built_mib']:.1f}), {r['evaluations']} rows in "
                    f"{r['seconds']:.1f}s — {'met' if r['met'] else 'NOT met'}")
            except Exception as e:  # noqa: BLE001
                r = {**base, "status": "error", "why": f"{type(e).__name__}: {str(e)[:300]}"}
                log(f"[p7 mem] {summary} cap {cap}: error {r['why']}")
            out.append(r)
    return out


# -- the problem ------------------------------------------------------------------------------
def run_problem(out: Path, sizes: dict, *, cache_dir: Path | None = None,
                only: list[str] | None = None, log: Callable = print,
                env: dict | None = None) -> dict:
    """Run problem 7: d series, rows series, memory runs; writes ``problem7.{json,md}``,
    ``problem7_d.png`` and ``problem7_rows.png``; returns the results."""
    from .common import environment

    env = env or environment()
    out = Path(out)
    t0 = time.perf_counter()
    pts_d = []
    for d in sizes["ds"]:
        pts_d.append({"d": d, "n": sizes["d_rows"], "budget": sizes["per_feature"] * d,
                      "module": mlp(d), "X": data(sizes["d_rows"], d)})
    d_rows = series(pts_d, sizes, tag="d", only=only, log=log)
    log(f"[p7] d series {time.perf_counter() - t0:.0f}s")
    d0 = sizes["rows_d"]
    module, X_all = mlp(d0), data(max(sizes["rows"]), d0)
    pts_r = [{"d": d0, "n": n, "budget": sizes["rows_budget"], "module": module,
              "X": X_all[:n]} for n in sizes["rows"]]
    r_rows = series(pts_r, sizes, tag="rows", only=only, log=log)
    log(f"[p7] rows series {time.perf_counter() - t0:.0f}s")
    profiles = []
    if sizes.get("profile"):
        p = pts_d[-1]
        for c in contenders():
            if c.ours and (not only or c.name in only):
                profiles.append(profile_call(c, p["module"], p["X"], p["budget"]))
                log(f"[p7] profiled {c.name} at d = {p['d']}: {profiles[-1]['total']:.2f}s")
    mem = memory_runs(sizes["memory"], log=log)
    log(f"[p7] memory {time.perf_counter() - t0:.0f}s")
    res = {"problem": 7, "sizes": sizes, "hidden": HIDDEN, "tolerance": TOL,
           "d_scaling": d_rows, "rows_scaling": r_rows, "memory": mem, "profiles": profiles,
           "targets": {"d": scaling_targets(d_rows, "d"),
                       "rows": scaling_targets(r_rows, "rows_explained"),
                       "memory": {"met": bool(mem) and all(r.get("met") for r in mem),
                                  "met_calls": bool(mem) and all(r.get("met_calls")
                                                                 for r in mem),
                                  "checked": len(mem)}},
           "not_run": NOT_RUN}
    publish(out, "problem7", res, env, markdown, log)
    figure(d_rows, "d", out / "problem7_d.png",
           f"Problem 7: time vs d ({sizes['d_rows']} rows, budget {sizes['per_feature']}·d)")
    figure(r_rows, "rows_explained", out / "problem7_rows.png",
           f"Problem 7: time vs rows (d = {d0}, budget {sizes['rows_budget']} per row)")
    return res


# -- report ----------------------------------------------------------------------------------
def _table(rows: list[dict], key: str) -> list[str]:
    out = [("| contender | d | rows | budget/row | seconds | s/explanation | counted rows | "
            "µs/row | ns/(row·feature) | floor s | floor µs/row | ratio to floor |"),
           "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in sorted(rows, key=lambda r: (not r["ours"], r["contender"], r[key])):
        name = f"**{r['contender']}**" if r["ours"] else r["contender"]
        if r["status"] != "ok":
            out.append(f"| {name} | {r['d']} | {r['rows_explained']} | {r['budget']} | "
                       f"{r['status']}: {r['why']} | | | | | | | |")
            continue
        out.append(f"| {name} | {r['d']} | {r['rows_explained']} | {r['budget']} | "
                   f"{r['seconds']:.4f} | {r['seconds_per_explanation']:.2e} | "
                   f"{r['evaluations']} | {r['us_per_evaluation']:.3f} | "
                   f"{r['ns_per_evaluated_value']:.2f} | {r['floor_seconds']:.2e} | "
                   f"{r['floor_us_per_evaluation']:.3f} | {r['ratio_to_floor']:.1f} |")
    return out


def _target_lines(targets: list[dict], what: str) -> list[str]:
    out = []
    for t in targets:
        out.append(
            f"- {what}, {t['contender']}: time per counted row: largest/smallest "
            f"{t['largest_to_smallest_per_row']:.2f}, worst growth from a smaller to a larger "
            f"size {t['growth_per_row']:.2f} (target ≤ {t['tolerance']}) — "
            f"**{'met' if t['met'] else 'not met'}**; per evaluated value (row × d) "
            f"{t['growth_per_value']:.2f} — **{'met' if t['met_per_value'] else 'not met'}**; "
            f"ratio to floor grows {t['growth_ratio_to_floor']:.2f}; the floor's own time per "
            f"row grows {t['growth_floor_per_row']:.2f}")
    return out


def markdown(res: dict, env: dict) -> str:
    s = res["sizes"]
    out = ["# Problem 7: scaling (time vs d, time vs rows, memory vs cap)", "", _env_line(env), "",
           (f"Generated problem: a seeded random float32 MLP d → {res['hidden']} → tanh → 2 on "
            "standard-normal rows, baseline the zero row (the data mean), output P(class 1). "
            "counted rows = model rows seen by the shared counter; µs/row = seconds / counted "
            "rows; ns/(row·feature) = seconds / (counted rows × d); floor = bare forward of the "
            "same MLP over the counted rows (distinct in memory), the faster of batches of "
            "4,096 and 16,384. Seconds are the median of "
            f"up to {s['repeats']} calls (1 where a call takes over {s['slow_s']} s) after a "
            "warm-up call on the smallest size. Peers are skipped where the projected time "
            f"(last time × work ratio) exceeds {s['peer_max_s']} s."), "",
           (f"## time vs d ({s['d_rows']} rows explained, budget = {s['per_feature']}·d model "
            "rows per row)"), ""]
    out += _table(res["d_scaling"], "d")
    out += ["", (f"## time vs rows (d = {s['rows_d']}, budget {s['rows_budget']} model rows per "
                 "row)"), ""]
    out += _table(res["rows_scaling"], "rows_explained")
    m = s["memory"]
    out += ["", (f"## memory: one {m['image']}×{m['image']}×3 image, marginal removal over "
                 f"{m['background']} background images, {m['patch']}×{m['patch']} patches"), "",
            ("Fresh interpreter per run, `XAI_MEMORY_CAP` = cap. baseline = RSS after imports, "
             "model and data creation (the background alone is "
             f"{_bg_mib(res['memory'])}) and a warm-up game on 2 background images; build = "
             "peak while building the game (removal fit, input checks) over the baseline; held = "
             "RSS after building over the baseline; calls = peak during the summary's game "
             "calls over the RSS after building (the chunked part); extra peak = the larger of "
             "build and held + calls, over the baseline; all-at-once = counted rows × one input row's bytes (what one unchunked "
             "call would hold in synthetic inputs). Target: extra peak ≤ cap."), "",
            ("| summary | cap MiB | coalitions | counted rows | rows per call | seconds | "
             "baseline MiB | build MiB | held MiB | calls MiB | extra peak MiB | "
             "all-at-once MiB | ru_maxrss MiB | extra ≤ cap | calls ≤ cap |"),
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in res["memory"]:
        if r["status"] != "ok":
            out.append(f"| {r['summary']} | {r['cap_mib']} | {r['status']}: {r['why']} "
                       "| | | | | | | | | | | | |")
            continue
        bg = " (numpy background)" if r.get("numpy_background") else ""
        out.append(f"| {r['summary']}{bg} | {r['cap_mib']} | {r['coalitions']} | "
                   f"{r['evaluations']} | {r['rows_per_call']} | {r['seconds']:.1f} | "
                   f"{r['baseline_mib']:.0f} | {r['build_peak_mib']:.1f} | "
                   f"{r['held_mib']:.1f} | {r['call_over_built_mib']:.1f} | {r['extra_peak_mib']:.1f} | "
                   f"{r['all_at_once_mib']:.0f} | {r['ru_maxrss_mib']:.0f} | "
                   f"{'yes' if r['met'] else '**no**'} | "
                   f"{'yes' if r['met_calls'] else '**no**'} |")
    t = res["targets"]
    out += ["", "## targets", "",
            ("Time per counted row is flat or falling when its worst growth from a smaller to a "
             f"larger size is ≤ {res['tolerance']} (noise on a shared machine). Over d every "
             "row is d values wide, so the floor's own time per row grows with d too; time per "
             "evaluated value (row × d) is given beside it."), ""]
    out += _target_lines(t["d"], "d")
    out += _target_lines(t["rows"], "rows")
    bad = [r for r in res["memory"] if r["status"] == "ok" and not r["met"]]
    out.append(f"- memory: extra peak ≤ cap in {t['memory']['checked'] - len(bad)} of "
               f"{t['memory']['checked']} runs — **{'met' if t['memory']['met'] else 'not met'}**"
               + ("; over the cap: " + ", ".join(
                   f"{r['summary']}{' (numpy background)' if r.get('numpy_background') else ''}"
                   f" at {r['cap_mib']} MiB ({r['extra_peak_mib']:.0f} MiB: "
                   f"build {r['build_peak_mib']:.0f}, held {r['held_mib']:.0f}, calls "
                   f"{r['call_over_built_mib']:.0f})"
                   for r in bad) if bad else ""))
    calls_ok = [r for r in res["memory"] if r["status"] == "ok" and r["met_calls"]]
    out.append(f"- memory, the game calls alone (the chunked part; build excluded): peak ≤ cap in "
               f"{len(calls_ok)} of {t['memory']['checked']} runs — "
               f"**{'met' if t['memory']['met_calls'] else 'not met'}**")
    for p in res.get("profiles", []):
        out += ["", (f"## where the time goes: {p['contender']} at d = {p['d']} ({p['rows']} "
                     f"rows, budget {p['budget']}; cProfile, {p['total']:.2f} s in all)"), "",
                "| function (cumulative, xai code) | seconds | share |", "|---|---|---|"]
        out += [f"| `{f}` | {sec:.2f} | {sec / p['total']:.0%} |" for f, sec in p["xai"]]
        out += ["", "| library function (own time) | seconds | share |", "|---|---|---|"]
        out += [f"| `{f}` | {sec:.2f} | {sec / p['total']:.0%} |" for f, sec in p["library"]]
    out += ["", "## peers not run", ""]
    out += [f"- {k}: {v}" for k, v in res["not_run"].items()]
    return "\n".join(out) + "\n"


def _bg_mib(mem: list[dict]) -> str:
    ok = [r for r in mem if r["status"] == "ok"]
    return f"{ok[0]['background_bytes'] / 2**20:.1f} MiB" if ok else "–"


def figure(rows: list[dict], key: str, path: Path, title: str) -> None:
    """Seconds against ``key`` on log-log axes, one line per contender, the floor dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 5))
    for name in dict.fromkeys(r["contender"] for r in rows):
        pts = sorted((r[key], r["seconds"], r["floor_seconds"], r["ours"]) for r in rows
                     if r["contender"] == name and r["status"] == "ok")
        if not pts:
            continue
        x, y, fl, ours = zip(*pts)
        line, = ax.plot(x, y, marker="o", lw=2.5 if ours[0] else 1.2,
                        ls="-" if ours[0] else "--", label=name)
        if ours[0]:
            ax.plot(x, fl, ls=":", color=line.get_color(), lw=1,
                    label=f"floor (bare forward of {name}'s rows)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel({"d": "features d", "rows_explained": "rows explained"}.get(key, key))
    ax.set_ylabel("seconds per call (median)")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
