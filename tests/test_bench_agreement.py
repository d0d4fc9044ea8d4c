"""Metric agreement in the benchmark summary: the rank correlation between metrics over the
methods, on hand-made results whose rankings are known, checked against scipy's Spearman and
Kendall, and through ``xai bench summarise``."""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from xai.bench.agreement import metric_agreement, rank_correlation
from xai.cli import main
from xai.errors import OptionError

METHODS = ["shap", "lime", "occlusion", "saliency"]
# per metric: its direction and the mean per method (in METHODS order); oriented so that
# higher is better, "a" ranks shap > lime > occlusion > saliency
METRICS = {
    "a": ("higher", [4.0, 3.0, 2.0, 1.0]),
    "same-as-a": ("lower", [0.1, 0.2, 0.3, 0.4]),  # lower is better: the same ranking
    "reversed": ("higher", [1.0, 2.0, 3.0, 4.0]),
    "tied": ("higher", [2.0, 2.0, 1.0, 0.5]),
    "flat": ("higher", [0.7, 0.7, 0.7, 0.7]),
    "diagnostic": ("none", [1.0, 5.0, 2.0, 3.0]),
}


def summary_table() -> pd.DataFrame:
    """Rows as :func:`xai.bench.summarise` returns them, for one data set and model."""
    return pd.DataFrame([
        {"suite": "s", "dataset": "d", "model": "m", "method": method, "output": "",
         "metric": metric, "mean": values[i], "se": 0.1, "n_seeds": 1, "direction": direction,
         "n_ok": 1, "n_error": 0, "n_skipped": 0}
        for metric, (direction, values) in METRICS.items()
        for i, method in enumerate(METHODS)])


def _pair(agreement: pd.DataFrame, a: str, b: str) -> pd.Series:
    rows = agreement[((agreement.metric_a == a) & (agreement.metric_b == b)) |
                     ((agreement.metric_a == b) & (agreement.metric_b == a))]
    assert len(rows) == 1
    return rows.iloc[0]


def test_the_same_ranking_gives_1_and_the_reversed_one_minus_1() -> None:
    """A lower-is-better metric with the same order of goodness agrees (+1)."""
    agreement = metric_agreement(summary_table())
    assert _pair(agreement, "a", "same-as-a").correlation == pytest.approx(1.0)
    assert _pair(agreement, "a", "reversed").correlation == pytest.approx(-1.0)
    assert _pair(agreement, "same-as-a", "reversed").correlation == pytest.approx(-1.0)
    assert _pair(agreement, "a", "reversed").n_methods == 4


def test_ties_get_average_ranks_as_scipy_spearman() -> None:
    tied = METRICS["tied"][1]
    got = _pair(metric_agreement(summary_table()), "a", "tied").correlation
    expected = stats.spearmanr(METRICS["a"][1], tied).statistic  # ranks 3.5, 3.5, 2, 1
    assert got == pytest.approx(expected, abs=1e-12)
    assert 0 < got < 1


def test_a_constant_metric_gives_nan_with_a_note() -> None:
    agreement = metric_agreement(summary_table())
    flat = agreement[(agreement.metric_a == "flat") | (agreement.metric_b == "flat")]
    assert len(flat) == 4 and flat.correlation.isna().all()
    assert flat.note.str.contains("flat gives every method the same score").all()
    assert (agreement.loc[agreement.correlation.notna(), "note"] == "").all()


def test_diagnostic_metrics_are_left_out() -> None:
    agreement = metric_agreement(summary_table())
    assert "diagnostic" not in set(agreement.metric_a) | set(agreement.metric_b)
    assert len(agreement) == math.comb(5, 2)


def test_methods_missing_a_score_are_left_out_of_that_pair() -> None:
    """A method that errored for one metric (n_ok 0) drops out of that metric's pairs only;
    with one method left the correlation is NaN, not a crash."""
    table = summary_table()
    table.loc[(table.metric == "reversed") & (table.method == "saliency"), "n_ok"] = 0
    agreement = metric_agreement(table)
    row = _pair(agreement, "a", "reversed")
    assert row.n_methods == 3 and row.correlation == pytest.approx(-1.0)
    assert _pair(agreement, "a", "tied").n_methods == 4
    r, note = rank_correlation([1.0, np.nan], [2.0, 3.0])
    assert math.isnan(r) and "1 method(s) scored by both" in note


def test_kendall_is_scipys_tau_b() -> None:
    a, tied = METRICS["a"][1], METRICS["tied"][1]
    r, note = rank_correlation(a, tied, "kendall")
    assert r == pytest.approx(stats.kendalltau(a, tied).statistic) and note == ""
    with pytest.raises(OptionError, match=r"method='pearson'.*'spearman' or 'kendall'"):
        rank_correlation(a, tied, "pearson")


def test_every_data_set_and_model_gets_its_own_correlations() -> None:
    """The same metrics on a second model whose methods rank the other way for "a"."""
    first = summary_table()
    second = first.assign(model="m2")
    second.loc[second.metric == "a", "mean"] = second.loc[second.metric == "a", "mean"][::-1] \
        .to_numpy()
    agreement = metric_agreement(pd.concat([first, second], ignore_index=True))
    by_model = {m: _pair(g, "a", "same-as-a").correlation for m, g in agreement.groupby("model")}
    assert by_model == {"m": pytest.approx(1.0), "m2": pytest.approx(-1.0)}


def _write_results(folder) -> None:
    """A results.jsonl of one seed per cell, as the bench writes it (the fields the summary
    reads)."""
    lines = []
    for metric, (direction, values) in METRICS.items():
        for i, method in enumerate(METHODS):
            lines.append(json.dumps({
                "key": f"{metric}-{method}", "suite": "s", "dataset": "d", "model": "m",
                "method": method, "metric": metric, "seed": 0, "status": "ok",
                "value": values[i], "se": 0.1, "direction": direction, "n_rows": 8,
                "explain_seconds": 0.8, "explain_evaluations": 80, "metric_seconds": 0.1,
                "metric_evaluations": 8}))
    (folder / "results.jsonl").write_text("\n".join(lines) + "\n")


def test_xai_bench_summarise_writes_the_agreement(tmp_path, capsys) -> None:
    _write_results(tmp_path)
    assert main(["bench", "summarise", str(tmp_path), "--no-figures"]) == 0
    csv = pd.read_csv(tmp_path / "agreement.csv", keep_default_na=False,
                      na_values=[""]).fillna({"note": ""})
    assert _pair(csv, "a", "reversed").correlation == pytest.approx(-1.0)
    assert math.isnan(_pair(csv, "a", "flat").correlation)
    md = (tmp_path / "results.md").read_text()
    section = md[md.index("## Metric agreement"):]
    assert "Spearman's rho" in section and "### d / m (s), 4 methods" in section
    assert "| a | 1.00 | 1.00 | -1.00 |" in section
    assert "Most disagreeing: a vs reversed (-1.00)" in section
    assert "NaN: flat gives every method the same score" in section
    assert "Left out (diagnostic, no better end): diagnostic." in section
    saved = json.loads((tmp_path / "results.json").read_text())["agreement"]
    assert len(saved) == math.comb(5, 2)
    assert next(r for r in saved if {r["metric_a"], r["metric_b"]} == {"a", "flat"}
                )["correlation"] is None  # NaN is null in JSON
    out = capsys.readouterr().out
    assert "metric agreement (Spearman over methods), d / m:" in out


def test_the_html_report_shows_the_agreement_matrices(tmp_path) -> None:
    from xai.report import bench_html

    _write_results(tmp_path)
    assert main(["bench", "summarise", str(tmp_path), "--no-figures"]) == 0
    page = bench_html(tmp_path)
    section = page[page.index('<section id="agreement">'):]
    section = section[:section.index("</section>")]
    assert ("metric agreement, d / m (s): 4 methods — NaN: flat gives every method the same "
            "score") in section
    rows = {head: re.findall(r"<td>(.*?)</td>", cells)
            for head, cells in re.findall(r"<tr>\s*<th>(.*?)</th>(.*?)</tr>", section, re.DOTALL)}
    assert list(rows) == ["a", "same-as-a", "reversed", "tied", "flat"]  # no "diagnostic"
    tied = _pair(metric_agreement(summary_table()), "a", "tied").correlation
    assert rows["a"] == ["1.00", "1.00", "-1.00", f"{tied:.2f}", "NaN"]
