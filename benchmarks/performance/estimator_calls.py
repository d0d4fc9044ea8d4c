"""Problem 8: a scikit-learn model, whose every call has a fixed cost. KernelSHAP on a
breast-cancer MLP pipeline (``StandardScaler`` + ``MLPClassifier``, fitted on a DataFrame, so
every call validates feature names), ``d = 30``, 100 background rows, 2,048 coalitions per
explained row; xai's time against the bare ``predict_proba`` over the same rows (the fastest of
a few call sizes), and shap's ``KernelExplainer`` beside it. Target: at most 1.3x the bare
model time."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

SIZES = {"full": {"n_rows": 5, "background": 100, "coalitions": 2048, "repeats": 3},
         "quick": {"n_rows": 2, "background": 50, "coalitions": 512, "repeats": 1},
         "tiny": {"n_rows": 1, "background": 10, "coalitions": 64, "repeats": 1}}
TARGET = 1.3
CALL_SIZES = (4096, 16_384, 65_536)


def _model():
    from sklearn.datasets import load_breast_cancer
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    model = make_pipeline(StandardScaler(), MLPClassifier((32, 16), max_iter=500,
                                                          random_state=0))
    return model.fit(X, y), X


def _median(fn, repeats: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return float(np.median(times)), out


def bare_seconds(model, columns, background: np.ndarray, rows: int, repeats: int) -> float:
    """The fastest time of ``predict_proba`` over ``rows`` background-like rows, in calls of
    one of :data:`CALL_SIZES` rows each (a DataFrame per call, as the pipeline expects)."""
    import pandas as pd

    Z = np.resize(background, (rows, background.shape[1]))
    best = np.inf
    for size in CALL_SIZES:
        def run(size=size):
            for a in range(0, rows, size):
                model.predict_proba(pd.DataFrame(Z[a:a + size], columns=columns))
        best = min(best, _median(run, repeats)[0])
    return best


def run_estimator_calls(sizes: dict, *, log=print) -> dict:
    import xai

    model, X = _model()
    rows, bg = X.iloc[:sizes["n_rows"]], X.iloc[100:100 + sizes["background"]]
    budget = sizes["coalitions"] * len(bg)

    def ours():
        return xai.explain(model, rows, method="kernelshap", background=bg, budget=budget,
                           seed=0, progress=False)
    ours()  # warm-up
    seconds, expl = _median(ours, sizes["repeats"])
    evaluations = int(expl.evaluations)
    bare = bare_seconds(model, X.columns, bg.to_numpy(), evaluations, sizes["repeats"])
    res = {"d": X.shape[1], "n_rows": len(rows), "background": len(bg),
           "coalitions": sizes["coalitions"], "evaluations": evaluations,
           "ours_seconds": seconds, "bare_seconds": bare, "ratio": seconds / bare,
           "target": TARGET, "met": seconds / bare <= TARGET}
    log(f"[p8] xai kernelshap {seconds:.3f}s for {evaluations} rows; bare predict_proba "
        f"{bare:.3f}s; ratio {res['ratio']:.2f} (target <= {TARGET})")
    try:
        import shap
    except ImportError:
        res["shap"] = None
        return res
    f = model.predict_proba
    explainer = shap.KernelExplainer(lambda Z: f(_frame(Z, X.columns)), bg.to_numpy())

    def peer():
        return explainer.shap_values(rows.to_numpy(), nsamples=sizes["coalitions"],
                                     silent=True)
    peer()
    shap_seconds, _ = _median(peer, sizes["repeats"])
    res["shap"] = {"seconds": shap_seconds, "ratio": shap_seconds / bare}
    log(f"[p8] shap KernelExplainer {shap_seconds:.3f}s; ratio {shap_seconds / bare:.2f}")
    return res


def _frame(Z, columns):
    import pandas as pd

    return pd.DataFrame(Z, columns=columns)


def markdown(res: dict, env: dict) -> str:
    from .report import _env_line

    shap_row = "| shap KernelExplainer | – | – |" if res.get("shap") is None else (
        f"| shap KernelExplainer | {res['shap']['seconds']:.3f} | {res['shap']['ratio']:.2f} |")
    return "\n".join([
        (f"# Problem 8: KernelSHAP on a scikit-learn pipeline (d = {res['d']}, "
        f"{res['n_rows']} rows, {res['background']} background rows, "
        f"{res['coalitions']} coalitions)"), "", _env_line(env), "",
        (f"Model rows evaluated: {res['evaluations']}. Bare: the fastest `predict_proba` over "
        f"the same number of rows in calls of {', '.join(map(str, CALL_SIZES))} rows."), "",
        "| contender | seconds | ratio to bare predict_proba |", "|---|---|---|",
        f"| bare predict_proba | {res['bare_seconds']:.3f} | 1.00 |",
        f"| **xai kernelshap** | {res['ours_seconds']:.3f} | {res['ratio']:.2f} |",
        shap_row, "",
        f"Target: at most {res['target']}x — **{'met' if res['met'] else 'not met'}**.", ""])


def run_problem(out: Path, sizes: dict, *, cache_dir: Path, only=None, log=print,
                env: dict) -> dict:
    from . import report

    t = time.perf_counter()
    res = run_estimator_calls(sizes, log=log)
    res["seconds_total"] = time.perf_counter() - t
    report.publish(out, "problem8", res, env, markdown, log)
    return res
