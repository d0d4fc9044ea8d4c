"""The main job: train two small models, explain them with many methods, benchmark Shapley
estimators against exact values, and write figures and a summary.

``run_demo(out_dir)`` (or ``xai demo --out DIR`` / ``python -m xai.demo --out DIR``) writes into
``out_dir``:

- ``tabular_*.png``: bar / waterfall / beeswarm / heatmap / decision / scatter plots of an MLP on
  breast_cancer (scikit-learn);
- ``digits_*.png``: image overlays of a small torch CNN on scikit-learn's 8x8 digits;
- ``benchmark.json``, ``benchmark.md``, ``benchmark.png``: KernelSHAP and permutation sampling
  against exact Shapley values, error and standard-error coverage per budget;
- ``explanations/*.npz``: every explanation, in xai's pickle-free format;
- ``summary.md``, ``summary.json``: accuracies, and per method seconds, evaluations and top
  features.

The trained CNN is cached under ``out_dir/cache/`` keyed by a hash of its training settings, so
a rerun skips training.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import re
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["main", "run_demo"]

SEED = 0
TABULAR_METHODS = ("shap", "kernelshap", "lime", "occlusion", "banzhaf")
BENCH_BUDGETS = (1000, 2000, 5000, 10000, 20000)
BENCH_SEEDS = (0, 1, 2)
BENCH_METHODS = ("kernelshap", "permutation-shap")


class _Log:
    """Progress lines with the elapsed time, flushed at once."""

    def __init__(self, verbose: bool = True) -> None:
        self.start = time.perf_counter()
        self.verbose = verbose

    def __call__(self, message: str) -> None:
        if self.verbose:
            print(f"[{time.perf_counter() - self.start:6.1f}s] {message}", flush=True)


def _save_fig(fig: Any, path: Path, files: list[str], out: Path) -> None:
    """Save ``fig`` and close it, so that the demo's many figures do not accumulate in pyplot."""
    import matplotlib.pyplot as plt

    try:
        fig.savefig(path, dpi=110)
    finally:
        plt.close(fig)
    files.append(str(path.relative_to(out)))


def _top(values: np.ndarray, names: list[str], k: int = 5) -> list[list[Any]]:
    """The ``k`` features with the largest mean absolute value, with that value."""
    score = np.nanmean(np.abs(values), axis=0)
    order = np.argsort(-score)[:k]
    return [[names[i], round(float(score[i]), 6)] for i in order]


def _record(expl: Any, task: str, label: str, names: list[str] | None = None) -> dict:
    names = names or expl.names
    rec = {
        "task": task,
        "method": label,
        "removal": expl.removal.get("name"),
        "behaviour": expl.behaviour.get("name"),
        "summary": expl.summary.get("name"),
        "estimator": expl.options.get("estimator"),
        "seconds": round(float(expl.seconds), 4),
        "evaluations": int(expl.evaluations),
        "top_features": _top(expl.values, names),
    }
    if expl.converged is not None and len(expl.converged):
        rec["converged"] = bool(np.all(expl.converged))
    return rec


# --------------------------------------------------------------------------- (a) tabular


def _breast_cancer():
    import pandas as pd
    from sklearn.datasets import load_breast_cancer
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    data = load_breast_cancer()
    X = pd.DataFrame(data.data, columns=list(data.feature_names))
    Xtr, Xte, ytr, yte = train_test_split(X, data.target, test_size=0.25, random_state=SEED,
                                          stratify=data.target)
    scaler = StandardScaler().fit(Xtr)
    # .copy(): writable arrays (pandas copy-on-write hands out read-only views)
    Xtr = pd.DataFrame(scaler.transform(Xtr), columns=X.columns).copy()
    Xte = pd.DataFrame(scaler.transform(Xte), columns=X.columns).copy()
    return Xtr, Xte, np.asarray(ytr), np.asarray(yte)


def _tabular(out: Path, quick: bool, log: _Log, files: list[str]) -> dict:
    from sklearn.neural_network import MLPClassifier

    import xai

    Xtr, Xte, ytr, yte = _breast_cancer()
    t0 = time.perf_counter()
    model = MLPClassifier(hidden_layer_sizes=(32, 16), max_iter=500, random_state=SEED)
    model.fit(Xtr, ytr)
    accuracy = float(model.score(Xte, yte))
    log(f"tabular: MLP on breast_cancer ({len(Xtr)} train / {len(Xte)} test rows, "
        f"{Xtr.shape[1]} features) trained in {time.perf_counter() - t0:.1f}s, "
        f"test accuracy {accuracy:.3f}")
    background = Xtr.iloc[:100]
    rows = Xte.iloc[:5]
    records, expls = [], {}
    for method in TABULAR_METHODS:
        # quick: 500 coalitions per row (x 100 background rows) instead of the default ~2,100
        opts = {"budget": 50_000} if quick and method in ("shap", "kernelshap", "banzhaf") \
            else {}
        expl = xai.explain(model, rows, method=method, background=background, seed=SEED,
                           progress=False, **opts)
        expls[method] = expl
        records.append(_record(expl, "tabular", method))
        expl.save(out / "explanations" / f"tabular_{method}.npz")
        log(f"tabular: {method:<22} {expl.seconds:6.2f}s {expl.evaluations:>10,d} rows  "
            f"top: {', '.join(n for n, _ in records[-1]['top_features'][:3])}")
    # global methods on the whole test set, with labels
    sage_budget = 600_000 if quick else 30_000_000  # or stops once SE < 2.5% of the range
    # (permutation importance draws its donors from the explained rows: no background)
    for method, opts in (("sage", {"budget": sage_budget, "background": background}),
                         ("permutation-importance", {})):
        expl = xai.explain(model, Xte, method=method, y=yte, seed=SEED, progress=False, **opts)
        expls[method] = expl
        rec = _record(expl, "tabular (global, test set)", method)
        if method == "sage":
            rec["budget_rows"] = sage_budget
        records.append(rec)
        expl.save(out / "explanations" / f"tabular_{method}.npz")
        log(f"tabular: {method:<22} {expl.seconds:6.2f}s {expl.evaluations:>10,d} rows  "
            f"top: {', '.join(n for n, _ in rec['top_features'][:3])}")
    # figures
    shap_e = expls["shap"]
    _save_fig(shap_e.plot.bar(max_display=12), out / "tabular_shap_bar.png", files, out)
    _save_fig(shap_e.plot.waterfall(row=0), out / "tabular_shap_waterfall.png", files, out)
    _save_fig(shap_e.plot.beeswarm(max_display=12), out / "tabular_shap_beeswarm.png", files,
              out)
    _save_fig(shap_e.plot.heatmap(), out / "tabular_shap_heatmap.png", files, out)
    _save_fig(shap_e.plot.decision(), out / "tabular_shap_decision.png", files, out)
    top = shap_e.names[int(np.argmax(np.nanmean(np.abs(shap_e.values), axis=0)))]
    _save_fig(shap_e.plot.scatter(top), out / "tabular_shap_scatter.png", files, out)
    for method in ("lime", "occlusion", "banzhaf", "kernelshap", "sage",
                   "permutation-importance"):
        _save_fig(expls[method].plot.bar(max_display=12), out / f"tabular_{method}_bar.png",
                  files, out)
    return {"accuracy": accuracy, "records": records, "model": model, "Xtr": Xtr, "Xte": Xte}


# ---------------------------------------------------------------------------- (b) digits


def _digits_net():
    import torch
    from torch import nn

    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(),
        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(32 * 4 * 4, 64), nn.ReLU(), nn.Linear(64, 10),
    ).to(torch.float32)


def _train_digits(out: Path, quick: bool, log: _Log):
    import torch
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    from torch import nn

    digits = load_digits()
    X = (digits.images / 16.0).astype(np.float32)[:, None]  # (n, 1, 8, 8) in [0, 1]
    Xtr, Xte, ytr, yte = train_test_split(X, digits.target, test_size=0.25,
                                          random_state=SEED, stratify=digits.target)
    settings = {"arch": "conv16-conv32-pool-fc64-v1", "epochs": 6 if quick else 25,
                "lr": 1e-3, "batch": 64, "seed": SEED, "test_size": 0.25,
                "max_seconds": 20.0, "torch": torch.__version__.split("+")[0]}
    key = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]
    cache = out / "cache" / f"digits_cnn_{key}.pt"
    torch.manual_seed(SEED)
    net = _digits_net()
    if cache.exists():
        net.load_state_dict(torch.load(cache, weights_only=True))
        log(f"digits: loaded the trained CNN from {cache.relative_to(out)}")
        trained = "cache"
    else:
        t0 = time.perf_counter()
        opt = torch.optim.Adam(net.parameters(), lr=settings["lr"])
        gen = torch.Generator().manual_seed(SEED)
        xt, yt = torch.from_numpy(Xtr), torch.from_numpy(ytr).long()
        net.train()
        epochs = 0
        for _ in range(settings["epochs"]):
            perm = torch.randperm(len(xt), generator=gen)
            for i in range(0, len(xt), settings["batch"]):
                idx = perm[i:i + settings["batch"]]
                opt.zero_grad()
                nn.functional.cross_entropy(net(xt[idx]), yt[idx]).backward()
                opt.step()
            epochs += 1
            if time.perf_counter() - t0 > settings["max_seconds"]:
                break
        net.eval()
        trained = f"{epochs} epochs in {time.perf_counter() - t0:.1f}s"
        if epochs == settings["epochs"]:
            cache.parent.mkdir(parents=True, exist_ok=True)
            torch.save(net.state_dict(), cache)
            log(f"digits: trained the CNN ({trained}), cached as {cache.relative_to(out)}")
        else:  # a model cut short by the time limit is not what the settings describe
            trained += f" (stopped at the {settings['max_seconds']:.0f}s limit; not cached)"
            log(f"digits: trained the CNN ({trained})")
    net.eval()
    with torch.no_grad():
        accuracy = float((net(torch.from_numpy(Xte)).argmax(1).numpy() == yte).mean())
    log(f"digits: CNN test accuracy {accuracy:.3f} ({len(Xte)} test images, 8x8)")
    return net, Xte, yte, accuracy, trained


def _heat(expl: Any, row: int) -> np.ndarray:
    """Attribution per pixel (H, W) of one row, through the feature map."""
    fmap = np.asarray(expl.feature_map)
    labels = fmap[row if fmap.shape[0] > 1 else 0]
    v = np.nan_to_num(expl.values[row])
    heat = np.where(labels >= 0, v[np.clip(labels, 0, None)], 0.0)
    return heat.reshape(heat.shape[-2:]) if heat.ndim == 3 else heat


def _digits_grid(expls: dict, images: np.ndarray, labels: np.ndarray, preds: np.ndarray):
    """Images (rows) x [image, one heat map per method] (columns), without segment edges."""
    import matplotlib.pyplot as plt

    n, names = len(images), list(expls)
    fig, axes = plt.subplots(n, len(names) + 1, squeeze=False, layout="constrained",
                             figsize=(2.2 * (len(names) + 1), 2.2 * n))
    for r in range(n):
        axes[r, 0].imshow(images[r, 0], cmap="gray", vmin=0, vmax=1)
        axes[r, 0].set_title(f"label {labels[r]}, pred {preds[r]}", fontsize=9)
        for c, name in enumerate(names, start=1):
            heat = _heat(expls[name], r)
            if name == "rise":  # RISE scores include the mean value: show the deviations
                heat = heat - heat.mean()
            lim = float(np.abs(heat).max()) or 1.0
            axes[r, c].imshow(heat, cmap="RdBu_r", vmin=-lim, vmax=lim, interpolation="nearest")
            axes[r, c].contour(images[r, 0], levels=[0.5], colors="k", linewidths=0.6)
            if r == 0:
                axes[r, c].set_title(name + (" (minus its mean)" if name == "rise" else ""),
                                     fontsize=9)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle("digits CNN: attribution to the predicted class probability "
                 "(red helps, blue hurts; black contour = the digit)", fontsize=9)
    return fig


def _digits(out: Path, quick: bool, log: _Log, files: list[str]) -> dict:
    import torch

    import xai

    net, Xte, yte, accuracy, trained = _train_digits(out, quick, log)
    images = Xte[:4]
    X = torch.from_numpy(images)
    with torch.no_grad():
        preds = net(X).argmax(1).numpy()
    runs = {
        "occlusion": lambda: xai.explain(net, X, method="occlusion", features=2,
                                         output="probability", progress=False),
        "kernelshap": lambda: xai.Explainer(
            removal="baseline", behaviour="prediction", summary="kernelshap",
            baseline="zeros", budget=2000, seed=SEED, output="probability", progress=False,
        ).explain(net, X, features=2),
        "rise": lambda: xai.explain(net, X, method="rise", features="pixels", seed=SEED,
                                    output="probability", progress=False),
    }
    features = {"occlusion": "2x2 patches", "kernelshap": "2x2 patches, zero baseline",
                "rise": "pixels, smooth masks"}
    records, expls = [], {}
    for name, fn in runs.items():
        expl = fn()
        expls[name] = expl
        rec = _record(expl, "digits", name)
        rec["features"] = features[name]
        records.append(rec)
        expl.save(out / "explanations" / f"digits_{name}.npz")
        log(f"digits: {name:<10} {expl.seconds:6.2f}s {expl.evaluations:>10,d} rows  "
            f"d={expl.values.shape[1]}")
        for row in (0, 1):
            _save_fig(expl.plot.image(row=row), out / f"digits_{name}_row{row}.png", files, out)
    _save_fig(_digits_grid(expls, images, yte[:4], preds), out / "digits_comparison.png",
              files, out)
    return {"accuracy": accuracy, "trained": trained, "records": records}


# ------------------------------------------------------------------------- (c) benchmark


def _benchmark(out: Path, tab: dict, budgets: tuple[int, ...], log: _Log,
               files: list[str]) -> dict:
    import xai

    model, Xtr, Xte = tab["model"], tab["Xtr"], tab["Xte"]
    # breast_cancer has 10 measurements, each as mean / standard error / worst: one group each
    cols = list(Xtr.columns)
    groups = {cols[i].replace("mean ", ""): [i, i + 10, i + 20] for i in range(10)}
    background = Xtr.iloc[:20]
    rows = Xte.iloc[:5]
    exact = xai.explain(model, rows, method="exact-shap", background=background,
                        features=groups, progress=False)
    truth = exact.values
    norm = np.linalg.norm(truth, axis=1)
    k_rem = len(background)
    log(f"benchmark: exact Shapley for {len(rows)} rows, d={truth.shape[1]} feature groups, "
        f"{k_rem}-row background: {exact.evaluations:,d} rows in {exact.seconds:.2f}s")
    cells = []
    for method in BENCH_METHODS:
        for budget in budgets:
            errs, covs, coal, evals, secs, notes = [], [], [], [], [], set()
            error = None
            for seed in BENCH_SEEDS:
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always")
                    try:
                        e = xai.explain(model, rows, method=method, background=background,
                                        features=groups, budget=budget, seed=seed,
                                        progress=False)
                    except xai.BudgetError as exc:
                        error = str(exc)
                        break
                notes.update(str(w.message) for w in caught)
                errs.append(float(np.mean(np.linalg.norm(e.values - truth, axis=1) / norm)))
                covs.append(float(np.mean(np.abs(e.values - truth) <= 1.96 * e.stderr)))
                coal.append(float(np.mean(e.coalitions)))
                evals.append(int(e.evaluations))
                secs.append(float(e.seconds))
            cell = {"method": method, "budget_rows": budget,
                    "budget_coalitions": budget // k_rem}
            if error is not None:
                need = re.search(r"at least (\d+) rows", error)
                cell.update(status="budget too small",
                            min_rows=int(need.group(1)) if need else None, error=error)
            else:
                cell.update(status="ok", rel_l2_error=float(np.mean(errs)),
                            rel_l2_error_sd=float(np.std(errs)), coverage=float(np.mean(covs)),
                            coalitions=float(np.mean(coal)),
                            evaluations=float(np.mean(evals)), seconds=float(np.mean(secs)),
                            seeds=len(errs), warnings=sorted(notes))
            cells.append(cell)
            if error is None:
                log(f"benchmark: {method:<16} budget {budget:>5}: rel. L2 error "
                    f"{cell['rel_l2_error']:.3f}, SE coverage {cell['coverage']:.2f}")
            else:
                log(f"benchmark: {method:<16} budget {budget:>5}: budget too small "
                    f"(needs {cell['min_rows']} rows)")
    result = {
        "problem": {"data": "breast_cancer (standardised)", "model": "MLPClassifier(32, 16)",
                    "explicands": len(rows), "features": list(groups),
                    "d": int(truth.shape[1]), "background_rows": k_rem,
                    "behaviour": "probability of the predicted class",
                    "truth": "exact-shap (enumeration of all 2^d coalitions)",
                    "budget_unit": "model rows per explicand; one coalition costs "
                                   f"{k_rem} rows (the background size)",
                    "seeds": list(BENCH_SEEDS),
                    "error": "mean over rows and seeds of ||phi_hat - phi|| / ||phi||",
                    "coverage": "fraction of coordinates with |phi_hat - phi| <= 1.96 SE"},
        "exact": {"evaluations": int(exact.evaluations), "seconds": float(exact.seconds),
                  "values": truth.tolist()},
        "cells": cells,
    }
    (out / "benchmark.json").write_text(json.dumps(result, indent=2))
    files.append("benchmark.json")
    table = _bench_table(cells)
    (out / "benchmark.md").write_text(
        "# Shapley estimators against exact values\n\n"
        f"MLP on breast_cancer, {len(rows)} test rows, d = {truth.shape[1]} feature groups "
        f"(mean / SE / worst of each measurement), marginal removal with a {k_rem}-row "
        f"background, so one coalition costs {k_rem} model rows. Truth: exact Shapley by "
        f"enumeration ({exact.evaluations:,d} rows). Seeds: {list(BENCH_SEEDS)}.\n\n"
        + table + "\n")
    files.append("benchmark.md")
    _save_fig(_bench_plot(cells, k_rem), out / "benchmark.png", files, out)
    result["table"] = table
    return result


def _bench_table(cells: list[dict]) -> str:
    header = ("| method | budget (rows) | coalitions | rel. L2 error (mean ± sd) | "
              "SE coverage | seconds |")
    lines = [header, "|---|---:|---:|---:|---:|---:|"]
    for c in cells:
        if c["status"] == "ok":
            lines.append(f"| {c['method']} | {c['budget_rows']} | {c['coalitions']:.0f} | "
                         f"{c['rel_l2_error']:.3f} ± {c['rel_l2_error_sd']:.3f} | "
                         f"{c['coverage']:.2f} | {c['seconds']:.3f} |")
        else:
            lines.append(f"| {c['method']} | {c['budget_rows']} | – | budget too small "
                         f"(needs ≥ {c['min_rows']} rows) | – | – |")
    return "\n".join(lines)


def _bench_plot(cells: list[dict], k_rem: int):
    import matplotlib.pyplot as plt

    fig, (ax, ax_cov) = plt.subplots(1, 2, figsize=(10.0, 4.2), layout="constrained")
    for method, marker in zip(BENCH_METHODS, "os"):
        ok = [c for c in cells if c["method"] == method and c["status"] == "ok"]
        if not ok:
            continue
        b = [c["budget_rows"] for c in ok]
        ax.errorbar(b, [c["rel_l2_error"] for c in ok], yerr=[c["rel_l2_error_sd"] for c in ok],
                    marker=marker, capsize=3, label=method)
        ax_cov.plot(b, [c["coverage"] for c in ok], marker=marker, label=method)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_ylabel("relative L2 error vs exact Shapley (mean ± sd over seeds)")
    ax.set_title("error")
    ax_cov.axhline(0.95, color="gray", linestyle="--", linewidth=1, label="nominal 0.95")
    ax_cov.set_xscale("log")
    ax_cov.set_ylim(0, 1.02)
    ax_cov.set_ylabel("fraction with |error| <= 1.96 SE")
    ax_cov.set_title("standard-error coverage")
    for a in (ax, ax_cov):
        a.set_xlabel(f"budget: model rows per explicand ({k_rem} rows per coalition)")
        a.grid(True, which="both", alpha=0.3)
        a.legend()
    fig.suptitle("Shapley estimators on breast_cancer (d = 10 feature groups); budgets too "
                 "small for an estimator are not drawn")
    return fig


# ------------------------------------------------------------------------------ summary


def _summary_md(summary: dict) -> str:
    lines = ["# xai demo", "",
             f"Ran in {summary['seconds']:.1f} s (quick={summary['quick']}).", "",
             "## Models", "",
             (f"- breast_cancer MLP (scikit-learn): test accuracy "
              f"**{summary['accuracy']['breast_cancer_mlp']:.3f}**"),
             (f"- digits CNN (torch, 8x8): test accuracy "
              f"**{summary['accuracy']['digits_cnn']:.3f}** ({summary['digits_training']})"), "",
             "## Explanations", "",
             ("| task | method | removal x behaviour x summary | seconds | model rows | "
              "top features (mean abs value) |"),
             "|---|---|---|---:|---:|---|"]
    for r in summary["methods"]:
        axes = f"{r['removal']} x {r['behaviour']} x {r['summary']}"
        top = ", ".join(f"{n} ({v:.3g})" for n, v in r["top_features"][:3])
        lines.append(f"| {r['task']} | {r['method']} | {axes} | {r['seconds']:.2f} | "
                     f"{r['evaluations']:,d} | {top} |")
    lines += ["", "## Benchmark", "", summary["benchmark_table"], "",
              "See `benchmark.md`, `benchmark.json` and `benchmark.png`.", "", "## Files", ""]
    lines += [f"- `{f}`" for f in summary["files"]]
    return "\n".join(lines) + "\n"


def run_demo(out_dir: str | Path = "xai-output", quick: bool = False, verbose: bool = True,
             budgets: tuple[int, ...] = BENCH_BUDGETS) -> dict:
    """Run the main job and write its results into ``out_dir``; returns the summary dict.

    ``quick=True`` trains the CNN for fewer epochs and gives SAGE a smaller budget (for tests);
    ``budgets`` are the benchmark's budgets in model rows per explicand.
    """
    import matplotlib

    if "matplotlib.pyplot" not in sys.modules:
        matplotlib.use("Agg")  # figures are only saved; never open a window
    with warnings.catch_warnings(), _one_thread():
        # torch.as_tensor on pandas' read-only (copy-on-write) arrays: harmless, only read
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        return _run(Path(out_dir), quick, verbose, tuple(int(b) for b in budgets))


@contextlib.contextmanager
def _one_thread():
    """One BLAS / torch thread: the demo's models are tiny, and on a small shared machine
    extra threads mostly wait for each other (measured: 2-10x slower with two threads)."""
    import torch

    before = torch.get_num_threads()
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - a scikit-learn dependency
        limits = contextlib.nullcontext()
    else:
        limits = threadpool_limits(1)
    torch.set_num_threads(1)
    try:
        with limits:
            yield
    finally:
        torch.set_num_threads(before)


def _run(out: Path, quick: bool, verbose: bool, budgets: tuple[int, ...]) -> dict:
    log = _Log(verbose)
    (out / "explanations").mkdir(parents=True, exist_ok=True)
    files: list[str] = []
    log(f"xai demo -> {out} (quick={quick})")
    tab = _tabular(out, quick, log, files)
    dig = _digits(out, quick, log, files)
    bench = _benchmark(out, tab, budgets, log, files)
    files += sorted(str(p.relative_to(out)) for p in (out / "explanations").glob("*.npz"))
    files += ["summary.md", "summary.json"]
    summary = {
        "quick": quick,
        "accuracy": {"breast_cancer_mlp": tab["accuracy"], "digits_cnn": dig["accuracy"]},
        "digits_training": dig["trained"],
        "methods": tab["records"] + dig["records"],
        "benchmark": {"problem": bench["problem"], "cells": bench["cells"]},
        "benchmark_table": bench["table"],
        "files": files,
    }
    summary["seconds"] = round(time.perf_counter() - log.start, 2)
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    (out / "summary.md").write_text(_summary_md(summary))
    log(f"done in {summary['seconds']:.1f}s: results in {out}/ (summary.md, summary.json, "
        f"{sum(f.endswith('.png') for f in files)} figures)")
    return summary


def main(argv: list[str] | None = None) -> int:
    """``python -m xai.demo --out DIR [--quick]``."""
    parser = argparse.ArgumentParser(prog="python -m xai.demo", description=run_demo.__doc__)
    parser.add_argument("--out", default="xai-output", help="output folder (default xai-output)")
    parser.add_argument("--quick", action="store_true", help="smaller run, for tests")
    parser.add_argument("--budgets", type=int, nargs="+", default=list(BENCH_BUDGETS),
                        help="benchmark budgets, model rows per explicand")
    args = parser.parse_args(argv)
    run_demo(args.out, quick=args.quick, budgets=tuple(args.budgets))
    return 0


if __name__ == "__main__":
    sys.exit(main())
