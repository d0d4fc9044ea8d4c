"""Conditional-gaussian removal against the bare forward pass over the same model rows.

Three settings: problem 2's MLP and rows (``d = 16``, 200 rows, the training split as the
background) explained by permutation Shapley and KernelSHAP, the README's tabular example
(scikit-learn MLP pipeline on the 30 breast-cancer columns, 3 rows, per-example loss,
permutation Shapley, budget 20,000), and 300 correlated columns (at most 2 repeats). Each repeat times one explanation and then the floor (a
bare forward pass over the rows the explanation evaluated, :func:`.common.fastest_floor`), so
both see the same machine load; the ratio is the median over repeats.

``python -m benchmarks.performance.conditional_gaussian --out DIR [--quick] [--repeats N]
[--before JSON]``
writes ``conditional_gaussian.{json,md}`` under ``DIR``; ``--before`` adds the columns of an
earlier run (e.g. of the previous implementation) to the table.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np

from .common import environment, fastest_floor, pinned_threads
from .problem import load_problem
from .report import _env_line, write

FLOOR_BATCHES = (4096, 16_384)
#: (name, summary, draws per coalition K, budget in model rows per explained row) on problem
#: 2's MLP
P2_CASES = (("permutation-shapley, K=32", "permutation", 32, 4096),
            ("kernelshap, K=32", "kernelshap", 32, 4096),
            ("permutation-shapley, K=8", "permutation", 8, 1024))
#: the same games under marginal removal with K background rows: what the game costs with K
#: draws per coalition and no conditional draws to compute (a yardstick, not a contender)
MARGINAL_CASES = (("marginal yardstick, permutation-shapley, K=32", "permutation", 32, 4096),
                  ("marginal yardstick, permutation-shapley, K=8", "permutation", 8, 1024))


def _p2_case(problem, X, summary: str, n_samples: int, budget: int, marginal: bool = False):
    """One explanation of problem 2's rows ``X`` under conditional-gaussian removal (or
    ``marginal`` removal with ``n_samples`` background rows); returns the rows the model
    saw."""
    from xai.behaviours import Prediction
    from xai.features import FeatureMap
    from xai.game import Game
    from xai.models import as_model
    from xai.removals import ConditionalGaussian, Marginal
    from xai.summaries import KernelSHAP, PermutationShapley

    problem.counter.reset()
    removal = Marginal(problem.X_train[:n_samples]) if marginal else \
        ConditionalGaussian(problem.X_train, n_samples=n_samples)
    game = Game(as_model(problem.counter, output_kind="logits"), X, removal,
                Prediction(target=1, output="probability"), FeatureMap.tabular(problem.d),
                seed=0)
    cls = PermutationShapley if summary == "permutation" else KernelSHAP
    cls(budget=budget, seed=0)(game)
    return problem.counter.rows


def _readme_example(n_rows: int = 3):
    """The README's tabular example: (explain() -> model rows, floor module, its rows)."""
    import pandas as pd
    import torch
    from sklearn.datasets import load_breast_cancer
    from sklearn.model_selection import train_test_split
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    import xai

    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    X_train, X_test, y_train, y_test = train_test_split(X, y, random_state=0)
    model = make_pipeline(StandardScaler(), MLPClassifier((32, 16), max_iter=500,
                                                          random_state=0))
    model.fit(X_train, y_train)
    explainer = xai.Explainer(removal="conditional-gaussian", behaviour="loss",
                              summary="permutation-shapley", background=X_train,
                              budget=20_000, seed=0)

    def explain() -> int:
        return int(explainer.explain(model, X_test[:n_rows], y_test[:n_rows]).evaluations)

    def bare(rows: torch.Tensor):  # predict_proba on a frame of the same columns
        return model.predict_proba(pd.DataFrame(rows.numpy(), columns=X.columns))
    return explain, bare, X_train.to_numpy(copy=True)


def _wide_case(p: int = 300, n_rows: int = 4):
    """Many columns: ``p`` correlated Gaussian columns, a tanh of a linear score, ``n_rows``
    rows, permutation Shapley at ``4 p`` coalitions per row (32 draws each): every explicand
    meets the same coalitions, whose factors (about 240 MB) come near the default memory cap
    of the factor cache. (explain() -> model rows, floor module, its rows)."""
    import torch

    from xai.behaviours import Prediction
    from xai.features import FeatureMap
    from xai.game import Game
    from xai.models import as_model
    from xai.removals import ConditionalGaussian
    from xai.summaries import PermutationShapley

    rng = np.random.default_rng(0)
    B = rng.normal(size=(3 * p, p)) @ rng.normal(size=(p, p)) / np.sqrt(p)
    w = torch.as_tensor(rng.normal(size=p))

    seen = [0]  # rows the model received

    def bare(rows):
        seen[0] += len(rows)
        return torch.tanh(torch.as_tensor(rows) @ w)[:, None]

    def explain() -> int:
        seen[0] = 0
        game = Game(as_model(bare, output_kind="raw"), B[:n_rows], ConditionalGaussian(B),
                    Prediction(), FeatureMap.tabular(p), seed=0)
        PermutationShapley(budget=32 * 4 * p, seed=0)(game)
        return seen[0]
    return explain, bare, B


def _measure(name: str, explain, floor_module, floor_rows, repeats: int, log) -> dict:
    """Warm-up, then ``repeats`` times: one explanation, then the floor on its rows."""
    explain()
    seconds, floors, rows = [], [], 0
    for _ in range(repeats):
        t = time.perf_counter()
        rows = explain()
        seconds.append(time.perf_counter() - t)
        floors.append(fastest_floor(floor_module, floor_rows, rows, batches=FLOOR_BATCHES,
                                    repeats=3)[0])
    ratios = [s / f for s, f in zip(seconds, floors)]
    row = {"case": name, "evaluations": rows, "seconds": statistics.median(seconds),
           "floor_seconds": statistics.median(floors), "ratio_to_floor": statistics.median(ratios),
           "min_ratio": min(ratios), "max_ratio": max(ratios), "times": seconds,
           "floor_times": floors}
    log(f"[cg] {name:40s} rows {rows:8d}  {row['seconds']:8.3f}s  floor "
        f"{row['floor_seconds']:.4f}s  x{row['ratio_to_floor']:.2f} "
        f"({row['min_ratio']:.2f}-{row['max_ratio']:.2f})")
    return row


def run_conditional_gaussian(*, n_rows: int = 200, repeats: int = 5, cases=P2_CASES,
                             yardsticks=MARGINAL_CASES, readme: bool = True,
                             wide: bool = True, cache_dir=None, log=print) -> dict:
    """Every case's median seconds, floor and ratio (see the module docstring)."""
    problem = load_problem(16, cache_dir=cache_dir)
    X = np.resize(problem.X_test, (n_rows, 16))
    rows = []
    for marginal, group in ((False, cases), (True, yardsticks)):
        for name, summary, k, budget in group:
            rows.append(_measure(f"problem 2 MLP, {n_rows} rows, {name}, budget {budget}",
                                 lambda s=summary, k=k, b=budget, m=marginal:
                                 _p2_case(problem, X, s, k, b, m),
                                 problem.module, X, repeats, log))
            rows[-1].update(summary=summary, n_samples=k, budget=budget, n_rows=n_rows,
                            removal="marginal" if marginal else "conditional-gaussian")
    if readme:
        explain, bare, floor_rows = _readme_example()
        rows.append(_measure("README tabular example (sklearn MLP, 3 rows, loss)", explain,
                             bare, floor_rows, repeats, log))
    if wide:
        explain, bare, floor_rows = _wide_case()
        rows.append(_measure("300 columns, 4 rows, permutation-shapley, K=32, 1,200 "
                             "coalitions per row", explain, bare, floor_rows,
                             min(repeats, 2), log))
    return {"rows": rows, "repeats": repeats}


def markdown(res: dict, env: dict) -> str:
    """The table of :func:`run_conditional_gaussian` (with the earlier run ``res['before']``)."""
    before = {r["case"]: r for r in res.get("before", {}).get("rows", [])}
    head = "| case | model rows | seconds | floor s | ratio to floor (min-max) |"
    rule = "|---|---|---|---|---|"
    if before:
        head += " before: seconds | before: ratio | speed-up |"
        rule += "---|---|---|"
    out = ["# Conditional-gaussian removal: time against the bare forward pass", "",
           _env_line(env), "",
           (f"ratio = median over {res['repeats']} repeats of (explanation seconds / floor "
           "seconds), the floor (a bare forward pass over the rows the explanation evaluated, "
           "the faster of batches of 4,096 and 16,384) timed right after each explanation."),
           "", head, rule]
    for r in res["rows"]:
        line = (f"| {r['case']} | {r['evaluations']:,} | {r['seconds']:.3f} | "
                f"{r['floor_seconds']:.4f} | {r['ratio_to_floor']:.2f} "
                f"({r['min_ratio']:.2f}-{r['max_ratio']:.2f}) |")
        if before:
            b = before.get(r["case"])
            line += (f" {b['seconds']:.3f} | {b['ratio_to_floor']:.1f} | "
                     f"{b['seconds'] / r['seconds']:.1f}x |" if b else " - | - | - |")
        out.append(line)
    if before:
        out += ["", (f"before: {res['before'].get('label', 'earlier run')} (commit "
                f"{str(res['before']['environment'].get('git_commit'))[:10]}).")]
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, help="folder for conditional_gaussian.{json,md}")
    p.add_argument("--quick", action="store_true", help="20 rows, 2 repeats, no README case")
    p.add_argument("--before", help="conditional_gaussian.json of an earlier run to compare")
    p.add_argument("--label", default="", help="what this run measures (kept in the JSON)")
    p.add_argument("--repeats", type=int, default=5, help="timed explanations per case")
    args = p.parse_args(argv)
    out = Path(args.out)
    with pinned_threads(1):
        env = environment()
        sizes = {"n_rows": 20, "repeats": 2, "readme": False, "wide": False} if args.quick else \
            {"repeats": args.repeats}
        res = run_conditional_gaussian(cache_dir=out / "models", **sizes)
    res["label"] = args.label
    if args.before:
        res["before"] = json.loads(Path(args.before).read_text())
    md = markdown(res, env)
    write(out, "conditional_gaussian", res, env, md)
    print(md)


if __name__ == "__main__":
    main()
