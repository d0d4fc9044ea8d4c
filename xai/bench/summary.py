"""Summary of a benchmark folder (SPEC-evaluation §6): ``xai bench summarise DIR``.

Reads ``results.jsonl`` (last row per key), and writes

* ``results.csv`` / ``results.json`` — per (suite, data set, model, method, metric): mean over
  seeds, its SE (SD over seeds / √seeds; the cell's own SE when there is one seed), the number
  of seeds, the metric's direction, the status counts and the cost columns (explanation and
  metric seconds and model evaluations per explained row);
* ``results.md`` and the terminal table — per (data set, model) a methods × metrics table of
  ``mean ± SE`` with direction arrows (↑ higher is better, ↓ lower is better, · diagnostic);
* ``agreement.csv`` and a section of ``results.md`` — per (data set, model), the rank
  correlation between every two metrics over the methods (:mod:`xai.bench.agreement`), so
  that a reader sees when the verdict depends on the metric chosen;
* ``cells.csv`` — every cell's last row, flattened;
* ``figures/`` — deletion/insertion (any curve metric) curves per method, ground truth beside
  each method's mean |attribution| map, suppressor-ratio bars with the data set's reference
  values as lines.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np

from .agreement import agreement_markdown, agreement_text, metric_agreement
from .store import RESULTS, jsonable, last_per_key, read_rows

ARROWS = {"higher": "↑", "lower": "↓"}
GROUP = ["suite", "dataset", "model", "method", "output", "metric"]
"""Summary keys; ``output`` is the explained output of suites that score several per cell
(the ``concepts`` suite: stripes / checker / dots), empty elsewhere."""


def _fmt(mean, se) -> str:
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return "—"
    if se is None or (isinstance(se, float) and math.isnan(se)):
        return f"{mean:.4g}"
    return f"{mean:.4g} ± {se:.2g}"


def _per_row(num, den):
    try:
        return float(num) / float(den) if num is not None and den else np.nan
    except (TypeError, ValueError):
        return np.nan


def _mean(values) -> float:
    v = np.asarray(values, dtype=np.float64)
    v = v[~np.isnan(v)]
    return float(v.mean()) if v.size else float("nan")


def cells_frame(out_dir):
    """Every cell's last row as a flat DataFrame (nested fields as JSON strings)."""
    import pandas as pd

    rows = list(last_per_key(read_rows(Path(out_dir) / RESULTS)).values())
    flat = []
    for r in rows:
        err = r.get("error") or {}
        flat.append({
            **{k: r.get(k) for k in ("key", "suite", "dataset", "data_seed", "model", "method",
                                     "output", "metric", "seed", "status", "value", "se", "direction",
                                     "n_rows", "explain_seconds", "explain_evaluations",
                                     "metric_seconds", "metric_evaluations", "timestamp")},
            "error_type": err.get("type"), "error_message": err.get("message"),
            "reason": r.get("reason"),
            "test_accuracy": (r.get("model_info") or {}).get("test_accuracy"),
        })
    return pd.DataFrame(flat, columns=None if flat else GROUP + ["status", "value"]), rows


def _table(cells):
    import pandas as pd

    if cells.empty:
        return pd.DataFrame(columns=GROUP + ["mean", "se", "n_seeds", "direction"])
    out = []
    cells = cells.assign(output=cells["output"].fillna("") if "output" in cells else "")
    for key, g in cells.groupby(GROUP, sort=False, dropna=False):
        ok = g[g.status == "ok"]
        vals = pd.to_numeric(ok["value"], errors="coerce").dropna()
        n = len(vals)
        mean = float(vals.mean()) if n else np.nan
        if n > 1:
            se = float(vals.std(ddof=1) / math.sqrt(n))
        elif n == 1:
            se = pd.to_numeric(ok["se"], errors="coerce").dropna()
            se = float(se.iloc[0]) if len(se) else np.nan
        else:
            se = np.nan
        direction = g["direction"].dropna().iloc[0] if g["direction"].notna().any() else "none"
        rows = pd.to_numeric(ok["n_rows"], errors="coerce")
        cost = {f"{col}_per_row": _mean([_per_row(s, r) for s, r in zip(ok[col], rows)])
                for col in ("explain_seconds", "explain_evaluations", "metric_seconds",
                            "metric_evaluations")}
        acc = pd.to_numeric(g.get("test_accuracy"), errors="coerce").dropna()
        out.append({**dict(zip(GROUP, key)), "mean": mean, "se": se, "n_seeds": n,
                    "direction": direction, "n_ok": int((g.status == "ok").sum()),
                    "n_error": int((g.status == "error").sum()),
                    "n_skipped": int((g.status == "skipped").sum()),
                    "model_accuracy": float(acc.mean()) if len(acc) else np.nan, **cost})
    return pd.DataFrame(out)


def _markdown(table) -> str:
    lines = []
    for (suite, dataset, model), g in table.groupby(["suite", "dataset", "model"], sort=False):
        acc = g["model_accuracy"].dropna()
        title = f"### {dataset} / {model} ({suite})"
        if len(acc):
            title += f" — test accuracy {acc.iloc[0]:.3f}"
        lines += [title, ""]
        metrics = list(dict.fromkeys(g["metric"]))
        heads = [f"{m} {ARROWS.get(g[g.metric == m]['direction'].iloc[0], '·')}"
                 for m in metrics]
        lines.append("| method | " + " | ".join(heads) + " | explain s/row | evals/row |")
        lines.append("| --- " * (len(metrics) + 3) + "|")
        for (method, output), gm in g.groupby(["method", "output"], sort=False):
            method = _label(method, output)
            cells = []
            for m in metrics:
                r = gm[gm.metric == m]
                if r.empty:
                    cells.append("")
                    continue
                r = r.iloc[0]
                if r["n_ok"] == 0:
                    cells.append("skipped" if r["n_skipped"] else
                                 ("error" if r["n_error"] else "—"))
                else:
                    cells.append(_fmt(r["mean"], r["se"]) + (" (!)" if r["n_error"] else ""))
            es = gm["explain_seconds_per_row"].dropna()
            ev = gm["explain_evaluations_per_row"].dropna()
            lines.append(f"| {method} | " + " | ".join(cells) +
                         f" | {es.iloc[0]:.3g} | {ev.iloc[0]:.4g} |" if len(es) else
                         f"| {method} | " + " | ".join(cells) + " | — | — |")
        lines.append("")
    return "\n".join(lines)


def _label(method, output) -> str:
    """``method`` or ``method → output`` for suites that explain several outputs."""
    return f"{method} → {output}" if isinstance(output, str) and output else str(method)


def _terminal(table) -> str:
    if table.empty:
        return "(no results)"
    rows = [("data set", "model", "method", "metric", "value", "seeds", "s/row", "evals/row")]
    for _, r in table.iterrows():
        value = (_fmt(r["mean"], r["se"]) + " " + ARROWS.get(r["direction"], "·")) \
            if r["n_ok"] else ("skipped" if r["n_skipped"] else "error")
        rows.append((str(r["dataset"]), str(r["model"]), _label(r["method"], r["output"]),
                     str(r["metric"]),
                     value, str(r["n_seeds"]),
                     "" if np.isnan(r["explain_seconds_per_row"]) else
                     f"{r['explain_seconds_per_row']:.3g}",
                     "" if np.isnan(r["explain_evaluations_per_row"]) else
                     f"{r['explain_evaluations_per_row']:.4g}"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths)) for row in rows)


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", str(name))


# ---------------------------------------------------------------- figures

def _figures(out: Path, rows: list[dict], table) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg", force=False)

    figdir = out / "figures"
    figdir.mkdir(exist_ok=True)
    ok = [r for r in rows if r.get("status") == "ok"]
    data_sides = _data_sides(out / "data")
    return (_curve_figures(figdir, ok)
            + _map_figures(figdir, _json_files(out / "explanations"), data_sides)
            + _suppressor_figures(figdir, table, data_sides))


def _json_files(folder: Path) -> list[dict]:
    """The readable JSON files of ``folder`` in name order (none when it does not exist)."""
    sides = []
    for p in sorted(folder.glob("*.json")) if folder.exists() else []:
        try:
            sides.append(json.loads(p.read_text()))
        except ValueError:
            continue
    return sides


def _data_sides(folder: Path) -> dict[str, list[dict]]:
    """The data sets' side files (ground truth, reference values) by data set name."""
    data_sides: dict[str, list[dict]] = {}
    for d in _json_files(folder):
        try:
            data_sides.setdefault(d["dataset"], []).append(d)
        except KeyError:
            continue
    return data_sides


def _save(fig, path: Path) -> Path:
    import matplotlib.pyplot as plt

    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _curve_figures(figdir: Path, ok: list[dict]) -> list[Path]:
    """Per (data set, model): one panel per curve metric, each method's mean curve."""
    import matplotlib.pyplot as plt

    groups: dict = {}
    for r in ok:
        if r.get("curve"):
            groups.setdefault((r["dataset"], r["model"]), {}).setdefault(
                r["metric"], {}).setdefault(r["method"], []).append(r["curve"])
    written = []
    for (dataset, model), per_metric in groups.items():
        names = sorted(per_metric)
        fig, axes = plt.subplots(1, len(names), figsize=(4 * len(names), 3.2), squeeze=False)
        for ax, metric in zip(axes[0], names):
            for method, curves in sorted(per_metric[metric].items()):
                length = min(len(c) for c in curves)
                c = np.nanmean(np.array([np.asarray(c[:length], float) for c in curves]), 0)
                ax.plot(np.linspace(0, 1, length), c, label=method)
            ax.set_title(metric)
            ax.set_xlabel("fraction of features")
        axes[0][0].set_ylabel("model output")
        axes[0][-1].legend(fontsize=7)
        fig.suptitle(f"{dataset} / {model}")
        fig.tight_layout()
        written.append(_save(fig, figdir / f"curves-{_safe(dataset)}-{_safe(model)}.png"))
    return written


def _map_figures(figdir: Path, sides: list[dict], data_sides: dict) -> list[Path]:
    """Per (data set, model): the ground truth beside each method's mean |attribution|."""
    import matplotlib.pyplot as plt

    maps: dict = {}
    for s in sides:
        if s.get("mean_abs") is None:
            continue
        maps.setdefault((s["dataset"], s["model"]), {}).setdefault(s["method"], []).append(
            np.asarray(s["mean_abs"], float))
    written = []
    for (dataset, model), per_method in maps.items():
        gts = [np.asarray(d["ground_truth_mean"], float) for d in data_sides.get(dataset, [])
               if d.get("ground_truth_mean") is not None]
        first = next(iter(per_method.values()))[0]
        if first.ndim < 2 and not gts:
            continue
        panels = ([("ground truth", np.mean(gts, 0))] if gts else []) + \
            [(m, np.mean(v, 0)) for m, v in sorted(per_method.items())]
        fig, axes = plt.subplots(1, len(panels), figsize=(2.4 * len(panels), 2.6),
                                 squeeze=False)
        for ax, (title, img) in zip(axes[0], panels):
            img = img if img.ndim == 2 else img.reshape(1, -1)
            ax.imshow(img, cmap="viridis" if title != "ground truth" else "gray_r")
            ax.set_title(title, fontsize=8)
            ax.set_xticks([])
            ax.set_yticks([])
        fig.suptitle(f"{dataset} / {model}: mean |attribution|", fontsize=9)
        fig.tight_layout()
        written.append(_save(fig, figdir / f"maps-{_safe(dataset)}-{_safe(model)}.png"))
    return written


def _suppressor_figures(figdir: Path, table, data_sides: dict) -> list[Path]:
    """Per (data set, model): suppressor-ratio bars with the data set's closed-form reference
    values as lines."""
    import matplotlib.pyplot as plt

    sup = table
    if not table.empty:
        sup = table[table.metric.astype(str).str.contains("suppressor-ratio")
                    & (table.n_ok > 0)]
    written = []
    for (dataset, model), g in (sup.groupby(["dataset", "model"], sort=False)
                                if not sup.empty else []):
        fig, ax = plt.subplots(figsize=(1.2 * len(g) + 2.5, 3.2))
        x = np.arange(len(g))
        ax.bar(x, g["mean"], yerr=np.nan_to_num(g["se"].to_numpy(float)), capsize=3,
               color="tab:blue", alpha=0.8)
        ax.set_xticks(x, g["method"], rotation=30, ha="right", fontsize=8)
        refs: dict[str, float] = {}
        for d in data_sides.get(dataset, []):
            for name, value in _flat_numbers(d.get("reference") or {}).items():
                refs.setdefault(name, value)
        if _reference_lines(ax, x, g["method"], refs):
            ax.legend(fontsize=7, loc="best")
        ax.set_ylabel("suppressor / signal")
        ax.set_title(f"{dataset} / {model}", fontsize=9)
        fig.tight_layout()
        written.append(_save(fig, figdir /
                             f"suppressor-ratio-{_safe(dataset)}-{_safe(model)}.png"))
    return written


def _reference_lines(ax, x, methods, refs: dict[str, float]) -> bool:
    """Draw each method's reference value over its bar; whether any was drawn."""
    labelled = False
    for xi, method in zip(x, methods):
        ref = _reference_for(method, refs)
        if ref is None:
            continue
        ax.hlines(abs(ref[1]), xi - 0.45, xi + 0.45, colors="tab:red", lw=2,
                  label=None if labelled else "closed form")
        ax.annotate(ref[0], (xi, abs(ref[1])), textcoords="offset points", xytext=(0, 3),
                    ha="center", fontsize=6, color="tab:red")
        labelled = True
    return labelled


def _reference_for(method: str, refs: dict[str, float]) -> tuple[str, float] | None:
    """The reference value of ``method``: a key equal to its name (without a backend prefix
    such as ``captum.``), or starting / ending with it (``occlusion_zero``,
    ``interventional_shap``); the first match in the data set's order."""
    m = str(method).split(".")[-1].replace("-", "_").lower()
    for key, value in refs.items():
        k = key.split(".")[-1].lower()
        if k == m:
            return key, value
    for key, value in refs.items():
        k = key.split(".")[-1].lower()
        if k.startswith(m + "_") or k.endswith("_" + m):
            return key, value
    return None


def _flat_numbers(obj, prefix: str = "") -> dict[str, float]:
    out: dict[str, float] = {}
    if isinstance(obj, dict):
        for k, v in obj.items():
            out.update(_flat_numbers(v, f"{prefix}{k}" if not prefix else f"{prefix}.{k}"))
    elif isinstance(obj, int | float) and not isinstance(obj, bool) and math.isfinite(obj):
        out[prefix or "reference"] = float(obj)
    return out


def summarise(out_dir, *, figures: bool = True, echo: bool = True):
    """Summarise a benchmark folder (see the module docstring); returns the summary table as
    a pandas DataFrame. Writes ``results.md``, ``results.csv``, ``results.json``,
    ``cells.csv`` and ``figures/`` into ``out_dir``."""
    out = Path(out_dir)
    if not (out / RESULTS).exists():
        from ..errors import XaiError

        raise XaiError(f"{out} has no {RESULTS}; run `xai bench --suite NAME --out {out}` first")
    cells, rows = cells_frame(out)
    table = _table(cells)
    agreement = metric_agreement(table)
    cells.to_csv(out / "cells.csv", index=False)
    table.to_csv(out / "results.csv", index=False)
    agreement.to_csv(out / "agreement.csv", index=False)
    status = cells["status"].value_counts().to_dict() if not cells.empty else {}
    (out / "results.json").write_text(json.dumps(jsonable(
        {"cells": len(cells), "status": status,
         "results": table.to_dict(orient="records"),
         "agreement": agreement.to_dict(orient="records")}), indent=1))
    md = [f"# Benchmark results ({out})", "",
          f"{len(cells)} cells: " + ", ".join(f"{v} {k}" for k, v in sorted(status.items())),
          "", ("Mean over seeds ± SE; ↑ higher is better, ↓ lower is better, · diagnostic. "
               "Cost columns: explanation seconds and model evaluations per explained row."),
          "",
          _markdown(table), agreement_markdown(table, agreement)]
    errors = cells[cells.status == "error"] if not cells.empty else cells
    if len(errors):
        md += ["## Errors", "", "| data set | model | method | metric | seed | error |",
               "| --- | --- | --- | --- | --- | --- |"]
        for _, r in errors.iterrows():
            msg = str(r["error_message"]).replace("|", "/").replace("\n", " ")[:160]
            md.append(f"| {r['dataset']} | {r['model']} | {r['method']} | {r['metric']} | "
                      f"{r['seed']} | {r['error_type']}: {msg} |")
    (out / "results.md").write_text("\n".join(md) + "\n")
    if figures:
        _figures(out, rows, table)
    if echo:
        print(_terminal(table))
        if not agreement.empty:
            print("\n" + agreement_text(agreement))
    return table
