"""Problem 4: integrated gradients. 32 images of problem 3's CNN, 50 steps, zero baseline,
target = the predicted class's logit: time against the floor and the completeness gap.

- time: the median over ``repeats`` calls (after a warm-up) of explaining all images.
- floor: ``n_steps`` forward + backward passes (input gradients of the summed target logits)
  of the batch of ``n_images``: what any integrated-gradients implementation must compute.
  ``floor_one_pass`` (one pass over all ``n_images * n_steps`` rows) is reported beside it.
  The floor runs the images as given (contiguous NCHW); a contender may attribute them in
  another memory layout (ours picks channels-last for a CNN on a CPU, where each pass costs
  less than the floor's), so a captum peer with channels-last inputs is measured too.
- completeness gap: per image ``|sum(attributions) - (f(x)_t - f(baseline)_t)|``, with ``f``
  evaluated by the benchmark in float64 (not the contender's own delta); mean and max over
  images, and relative to ``|f(x)_t - f(baseline)_t|``.
- evaluations: every row the shared :class:`~.common.CountingModule` saw (forward rows; the
  backward passes are not rows).
"""

from __future__ import annotations

import copy
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .common import CountingModule, measure_contenders, timed
from .report import _env_line, publish

TARGET = 1.1  # ours <= 1.1x the floor at default settings

SIZES = {
    "full": {"n_images": 32, "size": 64, "n_steps": 50, "repeats": 5, "train_steps": 300},
    "quick": {"n_images": 32, "size": 64, "n_steps": 50, "repeats": 3, "train_steps": 150},
    "tiny": {"n_images": 4, "size": 32, "n_steps": 8, "repeats": 1, "train_steps": 10},
}


@dataclass
class GradientProblem:
    module: torch.nn.Module  # bare float32 CNN (logits)
    counter: CountingModule
    images: torch.Tensor  # (n, 3, H, W) float32
    targets: torch.Tensor  # predicted class per image
    baseline: float = 0.0


def load_gradient_problem(*, n_images: int = 32, size: int = 64, train_steps: int = 300,
                          seed: int = 0, cache_dir: Path | None = None,
                          log: Callable = print, **_) -> GradientProblem:
    """Problem 3's CNN and ``n_images`` held-out random crops of the photographs."""
    from .images import random_crops, source_images, train_cnn

    module, _acc = train_cnn(size, train_steps, seed, cache_dir, log=log)
    sources = torch.as_tensor(source_images(2 * size))
    images, _ = random_crops(sources, n_images, size, torch.Generator().manual_seed(seed + 2000))
    images = images.contiguous()
    with torch.no_grad():
        targets = module(images).argmax(1)
    return GradientProblem(module, CountingModule(module), images, targets)


# -- contenders -------------------------------------------------------------------------------
@dataclass
class GradientContender:
    name: str
    library: str
    run: Callable  # (problem, n_steps) -> attributions (n, *shape) as numpy float64
    settings: str
    ours: bool = False


def _ours(problem: GradientProblem, n_steps: int, **options) -> np.ndarray:
    import xai

    ex = xai.explain(problem.counter, problem.images, method="captum.integrated_gradients",
                     target=problem.targets.numpy(), n_steps=n_steps, progress=False, **options)
    return np.asarray(ex.values, np.float64).reshape(problem.images.shape)


def _xai(**options):
    def run(problem, n_steps):
        return _ours(problem, n_steps, **options)
    return run


def _captum(internal_batch_size, channels_last: bool = False):
    def run(problem, n_steps):
        from captum.attr import IntegratedGradients

        ig = IntegratedGradients(problem.counter)
        x = problem.images.clone()
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        x.requires_grad_()
        ibs = internal_batch_size if internal_batch_size != "batch" else len(x)
        out = ig.attribute(x, baselines=problem.baseline, target=problem.targets,
                           n_steps=n_steps, internal_batch_size=ibs)
        return out.detach().double().numpy()
    return run


def contenders() -> list[GradientContender]:
    return [
        GradientContender("xai captum.integrated-gradients (default)", "xai", _xai(),
                          "xai.explain(method='captum.integrated_gradients'): gausslegendre, "
                          "internal_batch_size='auto', memory_format='auto' (channels-last "
                          "here), zero baseline", ours=True),
        GradientContender("captum IntegratedGradients (internal_batch_size=None)", "captum",
                          _captum(None), "all images x steps in one pass, gausslegendre"),
        GradientContender("captum IntegratedGradients (internal_batch_size=n_images)",
                          "captum", _captum("batch"),
                          "one step of the batch per pass (the floor's shape), gausslegendre"),
        GradientContender("captum IntegratedGradients (internal_batch_size=n_images, "
                          "channels_last)", "captum", _captum("batch", channels_last=True),
                          "as above, inputs in the channels-last memory layout (the layout "
                          "ours picks for this CNN), gausslegendre"),
    ]


NOT_APPLICABLE = {
    "shap GradientExplainer": "expected gradients over a background sample (random "
    "baselines and interpolation points), not integrated gradients from one baseline",
    "lime / shap Kernel": "removal-based, no gradients",
}


# -- measurement ------------------------------------------------------------------------------
def floor_seconds(problem: GradientProblem, n_steps: int, repeats: int = 3,
                  one_pass: bool = False) -> float:
    """``n_steps`` forward + backward passes of the batch (input gradients of the summed
    target logits), or one pass over ``n_steps`` copies when ``one_pass``; median of
    ``repeats`` after a warm-up, on the bare module."""
    module, t = problem.module, problem.targets
    x0 = problem.images
    if one_pass:
        x0 = x0.repeat(n_steps, 1, 1, 1)
        t = t.repeat(n_steps)
    alphas = [1.0] if one_pass else torch.linspace(0.5 / n_steps, 1 - 0.5 / n_steps,
                                                   n_steps).tolist()

    def passes():
        for a in alphas:
            x = (a * x0).requires_grad_()
            out = module(x).gather(1, t[:, None]).sum()
            torch.autograd.grad(out, x)
    return timed(passes, repeats)[0]


def completeness_gap(module: torch.nn.Module, images, values, targets,
                     baseline: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Per image ``|sum(values) - (f(x)_t - f(baseline)_t)|`` and ``|f(x)_t - f(baseline)_t|``,
    ``f`` evaluated in float64."""
    m64 = copy.deepcopy(module).double()
    x = torch.as_tensor(np.asarray(images, np.float64))
    t = torch.as_tensor(np.asarray(targets)).long()
    with torch.no_grad():
        fx = m64(x).gather(1, t[:, None])[:, 0]
        fb = m64(torch.full_like(x, float(baseline))).gather(1, t[:, None])[:, 0]
    delta = (fx - fb).numpy()
    s = np.asarray(values, np.float64).reshape(len(delta), -1).sum(1)
    return np.abs(s - delta), np.abs(delta)


def measure(c: GradientContender, problem: GradientProblem, n_steps: int, repeats: int) -> dict:
    c.run(problem, n_steps)  # warm-up
    times, rows, calls, out = [], [], [], None
    for _ in range(max(1, repeats)):
        problem.counter.reset()
        t = time.perf_counter()
        out = c.run(problem, n_steps)
        times.append(time.perf_counter() - t)
        rows.append(problem.counter.rows)
        calls.append(problem.counter.calls)
    gap, delta = completeness_gap(problem.module, problem.images, out, problem.targets,
                                  problem.baseline)
    return {"seconds": statistics.median(times), "times": times, "evaluations": rows[-1],
            "model_calls": calls[-1], "gap_mean": float(gap.mean()),
            "gap_max": float(gap.max()), "relative_gap_mean": float((gap / delta).mean())}


def run_problem(out: Path, sizes: dict, *, cache_dir: Path, only: list[str] | None = None,
                log: Callable = print, env: dict | None = None) -> dict:
    """Run every contender of problem 4; writes ``problem4.{json,md}``; returns the results."""
    from .common import environment

    env = env or environment()
    problem = load_gradient_problem(cache_dir=cache_dir, log=log, **sizes)
    n_steps, repeats = sizes["n_steps"], sizes["repeats"]
    floor = floor_seconds(problem, n_steps, repeats)
    floor_one = floor_seconds(problem, n_steps, repeats, one_pass=True)
    log(f"[p4] {len(problem.images)} images, {n_steps} steps: floor {floor:.3f}s "
        f"({n_steps} passes of {len(problem.images)}), one pass {floor_one:.3f}s")
    def measured(c):
        r = measure(c, problem, n_steps, repeats)
        return {**r, "ratio_to_floor": r["seconds"] / floor,
                "ratio_to_one_pass": r["seconds"] / floor_one}

    rows = measure_contenders(
        contenders(), measured, only=only, tag="p4", log=log,
        describe=lambda c, r: (f"{c.name:58s} {r['seconds']:.3f}s  x{r['ratio_to_floor']:.2f}  "
                               f"gap {r['gap_mean']:.2e} (rel {r['relative_gap_mean']:.2e})  "
                               f"evals {r['evaluations']}  calls {r['model_calls']}"))
    ok = [r for r in rows if r["status"] == "ok"]
    ours = [r for r in ok if r["ours"]]
    tgt = {}
    if ours:
        o = ours[0]
        tgt = {"ours": o["contender"], "ratio_to_floor": o["ratio_to_floor"], "target": TARGET,
               "met": bool(o["ratio_to_floor"] <= TARGET)}
        peers = [r for r in ok if not r["ours"]]
        if peers:
            bp = min(peers, key=lambda r: r["ratio_to_floor"])
            tgt.update(best_peer=bp["contender"], best_peer_ratio=bp["ratio_to_floor"])
    res = {"problem": 4, **sizes, "floor_seconds": floor, "floor_one_pass_seconds": floor_one,
           "rows": rows, "target": tgt, "not_applicable": NOT_APPLICABLE}
    publish(out, "problem4", res, env, markdown, log)
    return res


def markdown(res: dict, env: dict) -> str:
    n, s = res["n_images"], res["n_steps"]
    out = [(f"# Problem 4: integrated gradients ({n} images {res['size']}x{res['size']}, "
            f"{s} steps, zero baseline)"), "", _env_line(env), "",
           (f"floor = {s} forward+backward passes of the batch of {n} "
            f"({res['floor_seconds']:.3f}s); one pass over all {n * s} rows takes "
            f"{res['floor_one_pass_seconds']:.3f}s. gap = |Σ attributions − (f(x)_t − "
            "f(baseline)_t)| per image (f in float64), mean / max; rel = gap / |f(x)_t − "
            f"f(baseline)_t|. Time = median of {res['repeats']} calls after a warm-up."), "",
           ("| contender | seconds | ratio to floor | ratio to one pass | gap mean | gap max | "
            "rel gap | evals | model calls |"), "|---|---|---|---|---|---|---|---|---|"]
    for r in sorted(res["rows"], key=lambda r: (r["status"] != "ok",
                                                 r.get("ratio_to_floor", 0))):
        name = f"**{r['contender']}**" if r["ours"] else r["contender"]
        if r["status"] != "ok":
            out.append(f"| {name} | {r['status']}: {r['why']} | | | | | | | |")
            continue
        out.append(f"| {name} | {r['seconds']:.3f} | {r['ratio_to_floor']:.2f} | "
                   f"{r['ratio_to_one_pass']:.2f} | {r['gap_mean']:.2e} | {r['gap_max']:.2e} | "
                   f"{r['relative_gap_mean']:.2e} | {r['evaluations']} | {r['model_calls']} |")
    t = res.get("target") or {}
    if t:
        out += ["", (f"- target: ours ({t['ours']}) {t['ratio_to_floor']:.2f}x floor (target ≤ "
                     f"{t['target']}x) — **{'met' if t['met'] else 'not met'}**; best peer "
                     f"{t.get('best_peer')} {t.get('best_peer_ratio', float('nan')):.2f}x")]
    out += ["", "## peers that cannot do this problem", ""]
    out += [f"- {k}: {v}" for k, v in res["not_applicable"].items()]
    return "\n".join(out) + "\n"
