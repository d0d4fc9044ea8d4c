"""The HTML report pages (xai.report) read as text: what the tables hold, which figures are
drawn, what is capped and noted, and the errors. ``test_report_browser.py`` opens the same
pages in a real browser."""

from __future__ import annotations

import json
from html.parser import HTMLParser

import numpy as np
import pytest

from xai.errors import XaiError
from xai.explanation import Explanation
from xai.report import bench_html, explanation_html, mean_se


class _Tables(HTMLParser):
    """Captions and cell texts of every table of a page, and the ``src`` of every image."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.tables: list[dict] = []
        self.images: list[str] = []
        self._cell: list[str] | None = None
        self._caption = False
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        if tag == "table":
            self.tables.append({"caption": "", "rows": []})
        elif tag == "caption":
            self._caption = True
        elif tag == "tr":
            self.tables[-1]["rows"].append([])
        elif tag in ("td", "th"):
            self._cell = []
        elif tag == "img":
            self.images.append(dict(attrs)["src"])

    def handle_endtag(self, tag):
        if tag == "caption":
            self._caption = False
        elif tag in ("td", "th") and self._cell is not None:
            self.tables[-1]["rows"][-1].append("".join(self._cell).strip())
            self._cell = None

    def handle_data(self, data):
        if self._caption:
            self.tables[-1]["caption"] += data
        elif self._cell is not None:
            self._cell.append(data)

    def table(self, caption: str) -> list[list[str]]:
        found = [t["rows"] for t in self.tables if t["caption"].startswith(caption)]
        assert len(found) == 1, [t["caption"] for t in self.tables]
        return found[0]


def _tabular(n=5, d=4, k=None, stderr=True, seed=0, **kw) -> Explanation:
    rng = np.random.default_rng(seed)
    shape = (n, d) if k is None else (n, d, k)
    return Explanation(values=rng.normal(size=shape),
                       stderr=rng.uniform(0.01, 0.1, size=shape) if stderr else None,
                       base_values=np.zeros((n,) if k is None else (n, k)),
                       data=rng.normal(size=(n, d)), method="custom", **kw)


def test_mean_se_shows_four_and_two_significant_digits():
    assert mean_se(0.123456, 0.0123) == "0.1235 ± 0.012"
    assert mean_se(2.0) == "2"
    assert mean_se(float("nan"), 0.1) == "—"
    assert mean_se(1.5, float("nan")) == "1.5"


def test_values_table_holds_each_value_with_its_standard_error():
    expl = _tabular(feature_names=["age", "<b>income</b>", "c", "d"])
    page = _Tables(explanation_html(expl))
    rows = page.table("values ± standard error")
    assert rows[0] == ["row", "base value", "age", "<b>income</b>", "c", "d"]  # escaped text
    for r in range(5):
        assert rows[r + 1][0] == f"row {r}"
        assert rows[r + 1][2:] == [mean_se(v, s) for v, s in zip(expl.values[r],
                                                                   expl.stderr[r])]
    assert "<b>income</b>" not in explanation_html(expl)


def test_values_table_is_capped_to_the_rows_and_largest_features_with_a_note():
    expl = _tabular(n=30, d=25)
    expl.values[:, 3] *= 100  # the largest feature must be among those shown
    text = explanation_html(expl, max_rows=20, max_features=10)
    rows = _Tables(text).table("values ± standard error")
    assert len(rows) == 21 and len(rows[0]) == 12
    importance = np.abs(expl.values).mean(0)
    shown = sorted(np.argsort(-importance)[:10])
    assert rows[0][2:] == [expl.names[j] for j in shown]
    assert "showing the first 20 of 30 rows" in text
    assert "showing 10 of 25 features (largest mean |attribution|)" in text


def test_values_without_standard_errors_and_one_table_per_output():
    expl = _tabular(k=2, stderr=False, output_names=["benign", "malignant"])
    page = _Tables(explanation_html(expl))
    for o, name in enumerate(["benign", "malignant"]):
        rows = page.table(f"values: {name}")
        assert rows[1][2:] == [mean_se(v) for v in expl.values[0, :, o]]


def test_figures_are_drawn_for_each_output_up_to_max_outputs():
    expl = _tabular(k=3, output_names=["a", "b", "c"])
    text = explanation_html(expl, max_outputs=2)
    assert len(_Tables(text).images) == 6  # bar, beeswarm, waterfall of outputs a and b
    assert "mean |attribution| per feature: b" in text
    assert "figures of the first 2 of 3 outputs" in text and "not drawn" not in text


def test_tabular_page_embeds_bar_beeswarm_and_waterfall_as_png_data():
    page = _Tables(explanation_html(_tabular()))
    assert len(page.images) == 3
    assert all(src.startswith("data:image/png;base64,") for src in page.images)


def test_image_page_embeds_one_overlay_per_row_up_to_max_images():
    rng = np.random.default_rng(0)
    n, size = 6, 8
    fmap = (np.arange(size)[:, None] // 4 * 2 + np.arange(size)[None, :] // 4)[None]
    expl = Explanation(values=rng.normal(size=(n, 4)), stderr=None, base_values=np.zeros(n),
                       data=rng.uniform(size=(n, size, size)), feature_map=fmap)
    page = _Tables(explanation_html(expl, max_images=4))
    assert len(page.images) == 4
    assert "overlay of row 3" in explanation_html(expl, max_images=4)


def test_a_figure_the_explanation_cannot_have_is_noted_not_raised():
    expl = _tabular(n=4)
    expl.extras["target"] = np.array([0, 1, 0, 1])  # rows explain different classes: no mean
    text = explanation_html(expl)
    assert "bar plot not drawn" in text
    assert len(_Tables(text).images) == 1  # the waterfall of row 0


def test_to_html_writes_the_page_it_returns(tmp_path):
    expl = _tabular()
    text = expl.to_html(tmp_path / "deep" / "page.html")
    assert (tmp_path / "deep" / "page.html").read_text(encoding="utf-8") == text
    assert text.startswith("<!DOCTYPE html>") and "<script" not in text


def _bench_folder(tmp_path, versions):
    row = {"key": "k", "suite": "s", "dataset": "d", "model": "m", "method": "occlusion",
           "metric": "auroc", "seed": 3, "data_seed": 3, "status": "ok", "value": 0.75,
           "se": 0.05, "n_explain": 8, "versions": versions, "host": "box",
           "method_options": {"budget": 64}, "metric_options": {}}
    (tmp_path / "results.jsonl").write_text(json.dumps(row) + "\n" + '{"torn')
    (tmp_path / "results.csv").write_text(
        "suite,dataset,model,method,output,metric,mean,se,n_seeds,direction,n_ok,n_error,"
        "n_skipped,model_accuracy,explain_seconds_per_row,explain_evaluations_per_row\n"
        "s,d,m,occlusion,,auroc,0.75,0.05,1,higher,1,0,0,0.9,0.01,12\n")
    return tmp_path


def test_bench_page_shows_the_summary_and_the_run_record(tmp_path):
    versions = {"xai": "9.9", "commit": "abc123", "cpus": 7, "platform": "Plan9"}
    page = _Tables(bench_html(_bench_folder(tmp_path, versions)))
    rows = page.table("d / m (s) — test accuracy 0.900")
    assert rows[0] == ["method", "auroc ↑", "explain s/row", "evals/row"]
    assert rows[1] == ["occlusion", "0.75 ± 0.05", "0.01", "12"]
    record = {r[0]: r[1] for t in page.tables for r in t["rows"][1:] if len(r) == 2}
    assert record["git commit"] == "abc123" and record["CPUs"] == "7"
    assert record["platform"] == "Plan9" and record["seeds"] == "3"
    assert record["occlusion"] == '{"budget": 64}'
    assert record["torch"] == "not recorded"


def test_bench_page_says_the_commit_is_unknown_when_the_run_did_not_record_it(tmp_path):
    page = _Tables(bench_html(_bench_folder(tmp_path, {"xai": "0.1"})))
    assert ["git commit", "unknown (not recorded by the run)"] in page.table("versions")


def test_bench_page_of_an_unsummarised_folder_says_how_to_summarise(tmp_path):
    with pytest.raises(XaiError, match="xai bench report"):
        bench_html(tmp_path)
