"""JSON, markdown tables and the log-log figure of the performance benchmark."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np


def _f(x, fmt="{:.4f}"):
    return "–" if x is None else fmt.format(x)


def _env_line(env: dict) -> str:
    v = env["versions"]
    return (f"Measured {env['date']} on {env['machine']} ({env['cpu']}, {env['cpu_count']} CPUs, "
            f"load {', '.join(f'{x:.2f}' for x in env['loadavg'])}), 1 thread; python "
            f"{env['python']}, torch {v['torch']}, shap {v['shap']}, captum {v['captum']}, "
            f"shapiq {v['shapiq']}, xai commit {str(env.get('git_commit'))[:10]}.")


def markdown_accuracy(res: dict, env: dict) -> str:
    out = [(f"# Problem 1: Shapley accuracy per evaluation (d = {res['d']}, "
            f"{res['n_points']} points, seeds {res['seeds']})"), "", _env_line(env), "",
           ("error = mean relative L2 error against exact Shapley; evals = model rows per point "
            "counted by the shared wrapper; ratio = error / best peer's error at that budget; "
            "gap = mean |Σφ − (v(D) − v(∅))|; cov = fraction of coordinates with "
            "|error| ≤ 1.96 SE; avg/err = error of the seed-averaged estimate / mean error "
            f"(unbiased: 1/√seeds = {res['sqrt_seeds_ratio']:.2f})."), ""]
    for b in res["budgets"]:
        out += [f"## budget {b}", "", ("| contender | error | evals | ratio to best peer | gap | "
                                       "cov | avg/err | s/point |"), "|---|---|---|---|---|---|---|---|"]
        rows = [r for r in res["rows"] if r["budget"] == b]
        rows.sort(key=lambda r: (r["status"] != "ok", r.get("error", np.inf)))
        for r in rows:
            name = f"**{r['contender']}**" if r["ours"] else r["contender"]
            if r["status"] != "ok":
                out.append(f"| {name} | {r['status']}: {r['why']} | | | | | | |")
                continue
            out.append(f"| {name} | {_f(r['error'])} | {r['evaluations']:.0f} | "
                       f"{_f(r.get('ratio_to_best_peer'), '{:.2f}')} | "
                       f"{_f(r['efficiency_gap'], '{:.1e}')} | {_f(r['coverage'], '{:.3f}')} | "
                       f"{_f(r['seed_avg_ratio'], '{:.2f}')} | "
                       f"{_f(r['seconds_per_point'], '{:.4f}')} |")
        out.append("")
    out += ["## targets", ""]
    for t in res["targets"]:
        if not t["checked"]:
            continue
        line = (f"- budget {t['budget']}: ours ({t['ours']}) {t['ours_error']:.4f} vs best peer "
                f"({t['best_peer']}) {t['best_peer_error']:.4f}: ratio {t['ratio']:.2f} "
                f"(target ≤ {t['target']}) — **{'met' if t['met'] else 'not met'}**")
        if "ours_coverage" in t:
            line += (f"; SE coverage {_f(t['ours_coverage'], '{:.3f}')} (target ≈ 0.95) — "
                     f"**{'met' if t['coverage_met'] else 'not met'}**")
        out.append(line)
    out += ["", "## peers that cannot do this problem", ""]
    out += [f"- {k}: {v}" for k, v in res["not_applicable"].items()]
    return "\n".join(out) + "\n"


def markdown_throughput(res: dict, env: dict) -> str:
    out = [(f"# Problem 2: throughput ({res['n_rows']} rows × ~{res['budget']} evaluations, "
            f"d = {res['d']})"), "", _env_line(env), "",
           ("ratio = median time / floor (bare forward pass of the same MLP over the same "
            "counted rows, distinct in memory, the faster of batches of 4,096 and 16,384); "
            "slow contenders explain a subset of rows "
            "(rows column)."),
           "", ("| contender | estimand | rows | evals/row | seconds | floor s | ratio to floor | "
                "overhead µs/eval | model calls |"), "|---|---|---|---|---|---|---|---|---|"]
    rows = sorted(res["rows"], key=lambda r: (r["status"] != "ok", r.get("ratio_to_floor", 0)))
    for r in rows:
        name = f"**{r['contender']}**" if r["ours"] else r["contender"]
        est = r.get("estimand", "shapley")
        if r["status"] != "ok":
            out.append(f"| {name} | {est} | {r['status']}: {r['why']} | | | | | | |")
            continue
        out.append(f"| {name} | {est} | {r['rows_explained']} | {r['evaluations_per_row']:.0f} | "
                   f"{r['seconds']:.3f} | {r['floor_seconds']:.4f} | {r['ratio_to_floor']:.1f} | "
                   f"{r['overhead_us_per_evaluation']:.2f} | {r['model_calls']} |")
    t = res.get("target") or {}
    if t:
        out += ["", (f"- target: ours ({t['ours']}) {t['ratio_to_floor']:.2f}× floor (target "
                     f"≤ {t['target']}×) — **{'met' if t['met'] else 'not met'}**; best peer "
                     f"{t.get('best_peer')} {_f(t.get('best_peer_ratio'), '{:.1f}')}×")]
    return "\n".join(out) + "\n"


def figure_accuracy(res: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 5))
    names = sorted({r["contender"] for r in res["rows"]})
    for name in names:
        pts = sorted((r["evaluations"], r["error"], r["ours"]) for r in res["rows"]
                     if r["contender"] == name and r["status"] == "ok")
        if not pts:
            continue
        x, y, ours = zip(*pts)
        ax.plot(x, y, marker="o", lw=2.5 if ours[0] else 1.2, ls="-" if ours[0] else "--",
                label=name)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("model evaluations per point (counted)")
    ax.set_ylabel("mean relative L2 error vs exact Shapley")
    ax.set_title(f"Problem 1: d = {res['d']}, {res['n_points']} points, {len(res['seeds'])} seeds")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def publish(out, name: str, res: dict, env: dict, markdown, log=print) -> str:
    """Render ``markdown(res, env)``, write ``<name>.json`` / ``<name>.md`` under ``out`` and
    log the table: the common end of every problem. Returns the markdown."""
    md = markdown(res, env)
    write(Path(out), name, res, env, md)
    log(md)
    return md


def write(out: Path, name: str, res: dict, env: dict, md: str) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps({"environment": env, **res}, indent=1,
                                                 default=float))
    (out / f"{name}.md").write_text(md)
