"""Metric agreement of a benchmark summary: per data set and model, the rank correlation
between every two metrics over the methods.

Metrics often disagree on which explanation method is best (LATEC: Klein et al., "Navigating
the Maze of Explainable AI: A Systematic Approach to Evaluating Methods and Metrics", NeurIPS
2024), so a verdict read off one metric may not survive another. Each metric's mean per
method is oriented so that higher is better (a metric whose direction is "lower" is negated),
and two metrics are compared by Spearman's rank correlation over the methods both scored:
1 means the same ranking, −1 the reversed one, and a value near 0 or below 0 says that the
verdict depends on the metric chosen. Tied scores get their average rank. A metric that gives
every method the same score ranks none above another, so its correlation with any metric is
NaN, with the reason in ``note``; so is a pair with fewer than two methods scored by both.
Diagnostic metrics (direction "none", such as ``randomisation``) have no better end and are
left out.

``method="kendall"`` gives Kendall's tau-b instead (the difference of concordant and
discordant method pairs, as a fraction, corrected for ties): it is the more readable of the
two for a handful of methods, and its sampling distribution is closer to normal in small
samples, but ``xai bench summarise`` reports Spearman's rho, the statistic LATEC reports.
"""

from __future__ import annotations

import itertools
import math

import numpy as np

KEYS = ["suite", "dataset", "model"]
COLUMNS = [*KEYS, "metric_a", "metric_b", "correlation", "n_methods", "note"]
METHODS = ("spearman", "kendall")
AGREEMENT_NOTE = (
    "Spearman's rho between two metrics over the methods, each metric oriented so that higher "
    "is better: 1 = the same ranking of the methods, −1 = the reversed one. Near 0 or below, "
    "the verdict depends on the metric chosen (LATEC, Klein et al., NeurIPS 2024). NaN: see "
    "the notes.")


def rank_correlation(a, b, method: str = "spearman") -> tuple[float, str]:
    """``(correlation, note)`` of the scores ``a`` and ``b`` (one per method, NaN where a
    metric has no score): Spearman's rho on average ranks or Kendall's tau-b over the methods
    scored by both; NaN with the reason in ``note`` when it is undefined."""
    from scipy.stats import kendalltau, rankdata

    if method not in METHODS:
        from ..errors import OptionError

        raise OptionError(f"method={method!r} is not a rank correlation: pass 'spearman' or "
                          "'kendall'")
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    both = np.isfinite(a) & np.isfinite(b)
    if both.sum() < 2:
        return float("nan"), f"{int(both.sum())} method(s) scored by both metrics; need 2"
    a, b = a[both], b[both]
    flat = [name for name, v in (("a", a), ("b", b)) if np.ptp(v) == 0]
    if flat:
        return float("nan"), "constant:" + ",".join(flat)
    if method == "kendall":
        return float(kendalltau(a, b).statistic), ""
    ra, rb = rankdata(a) - (len(a) + 1) / 2, rankdata(b) - (len(b) + 1) / 2
    rho = float(ra @ rb / math.sqrt((ra @ ra) * (rb @ rb)))
    return max(-1.0, min(1.0, rho)), ""


def metric_agreement(table, method: str = "spearman"):
    """The agreement frame of a summary table (:func:`xai.bench.summarise`'s: one row per
    suite, data set, model, method, output and metric with ``mean``, ``direction`` and
    ``n_ok``): per (suite, data set, model), one row per pair of metrics with the rank
    correlation of their oriented means over the methods (a method of several outputs counts
    once per output), the number of methods both scored, and a note where it is NaN."""
    import pandas as pd

    if table.empty:
        return pd.DataFrame(columns=COLUMNS)
    out = []
    for key, g in table.groupby(KEYS, sort=False, dropna=False):
        scores, _ = _oriented_scores(g)
        for m1, m2 in itertools.combinations(scores.columns, 2):
            r, note = rank_correlation(scores[m1], scores[m2], method)
            note = _explain(note, m1, m2)
            n = int((scores[m1].notna() & scores[m2].notna()).sum())
            out.append({**dict(zip(KEYS, key)), "metric_a": m1, "metric_b": m2,
                        "correlation": r, "n_methods": n, "note": note})
    return pd.DataFrame(out, columns=COLUMNS)


def _oriented_scores(g):
    """Methods × metrics of the means, negated where lower is better (higher is better
    everywhere); the diagnostic metrics left out, and their names."""
    ok = g[(g["n_ok"] > 0) & g["direction"].isin(["higher", "lower"])]
    sign = np.where(ok["direction"] == "lower", -1.0, 1.0)
    oriented = ok.assign(score=ok["mean"].astype(float) * sign,
                         item=[_item(m, o) for m, o in zip(ok["method"], ok["output"])])
    scores = oriented.pivot_table(index="item", columns="metric", values="score",
                                  aggfunc="first", sort=False)
    metrics = list(dict.fromkeys(ok["metric"]))
    diagnostic = sorted(set(g.loc[g["direction"] == "none", "metric"]))
    return scores.reindex(columns=metrics), diagnostic


def _item(method, output) -> str:
    return f"{method} → {output}" if isinstance(output, str) and output else str(method)


def _explain(note: str, m1: str, m2: str) -> str:
    if note.startswith("constant:"):
        flat = [m1 if s == "a" else m2 for s in note.split(":", 1)[1].split(",")]
        return (" and ".join(flat) + (" gives" if len(flat) == 1 else " give") +
                " every method the same score: no ranking to correlate")
    return note


def agreement_markdown(table, agreement, method: str = "spearman") -> str:
    """The agreement section of ``results.md``: per (data set, model), a metrics × metrics
    matrix of the correlations, the pairs that disagree most, and the notes of NaN cells."""
    name = {"spearman": "Spearman's rho", "kendall": "Kendall's tau-b"}[method]
    lines = ["## Metric agreement", "", AGREEMENT_NOTE.replace("Spearman's rho", name), ""]
    if agreement.empty:
        return "\n".join(lines + ["(fewer than two metrics with a direction per data set)", ""])
    for key, g in agreement.groupby(KEYS, sort=False, dropna=False):
        suite, dataset, model = key
        _, diagnostic = _oriented_scores(table[(table.suite == suite) &
                                               (table.dataset == dataset) &
                                               (table.model == model)])
        metrics, matrix = _matrix(g)
        n = int(g["n_methods"].max())
        lines += [f"### {dataset} / {model} ({suite}), {n} methods", "",
                  "| | " + " | ".join(metrics) + " |", "| --- " * (len(metrics) + 1) + "|"]
        lines += [f"| {m} | " + " | ".join(row) + " |" for m, row in zip(metrics, matrix)]
        lines.append("")
        valid = g[g["correlation"].notna()].sort_values("correlation")
        if len(valid):
            worst = valid.iloc[0]
            share = float((valid["correlation"] < 0).mean())
            lines.append(f"Most disagreeing: {worst.metric_a} vs {worst.metric_b} "
                         f"({worst.correlation:.2f}); {share:.0%} of {len(valid)} pairs "
                         "rank the methods in opposite directions (correlation < 0).")
        notes = list(dict.fromkeys(n for n in g["note"] if n))
        lines += [f"NaN: {n}." for n in notes]
        if diagnostic:
            lines.append("Left out (diagnostic, no better end): " + ", ".join(diagnostic) + ".")
        lines.append("")
    return "\n".join(lines)


def _matrix(g) -> tuple[list[str], list[list[str]]]:
    """The metrics of one group's pairs and the formatted metrics × metrics correlations."""
    metrics = list(dict.fromkeys([*g["metric_a"], *g["metric_b"]]))
    lookup = {(r.metric_a, r.metric_b): r.correlation for r in g.itertuples()}
    rows = []
    for m1 in metrics:
        row = []
        for m2 in metrics:
            r = 1.0 if m1 == m2 else lookup.get((m1, m2), lookup.get((m2, m1)))
            row.append("NaN" if r is None or math.isnan(r) else f"{r:.2f}")
        rows.append(row)
    return metrics, rows


def agreement_text(agreement) -> str:
    """The correlation matrices as aligned plain text, for the terminal."""
    parts = []
    for (suite, dataset, model), g in agreement.groupby(KEYS, sort=False, dropna=False):
        metrics, matrix = _matrix(g)
        rows = [["", *metrics], *[[m, *row] for m, row in zip(metrics, matrix)]]
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        parts += [""] if parts else []
        parts.append(f"metric agreement (Spearman over methods), {dataset} / {model}:")
        parts += ["  ".join(c.rjust(w) for c, w in zip(r, widths)) for r in rows]
    return "\n".join(parts)

