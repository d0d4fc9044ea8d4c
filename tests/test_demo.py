"""The main job (``xai demo``) end to end in quick mode, and the ``xai`` command line."""

from __future__ import annotations

import json

import pytest

import xai
from xai.cli import main
from xai.demo import run_demo


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    return out, run_demo(out, quick=True, verbose=False)


def test_demo_writes_results(demo):
    out, summary = demo
    assert summary["accuracy"]["breast_cancer_mlp"] > 0.9
    assert summary["accuracy"]["digits_cnn"] > 0.8
    for name in ("summary.md", "summary.json", "benchmark.json", "benchmark.md",
                 "benchmark.png", "tabular_shap_bar.png", "tabular_shap_waterfall.png",
                 "tabular_shap_beeswarm.png", "digits_comparison.png",
                 "digits_occlusion_row0.png", "digits_kernelshap_row0.png",
                 "digits_rise_row0.png"):
        assert (out / name).is_file(), name
        assert (out / name).stat().st_size > 0, name
    for name in summary["files"]:
        assert (out / name).is_file(), name
    on_disk = json.loads((out / "summary.json").read_text())
    assert on_disk["accuracy"] == summary["accuracy"]
    methods = {(r["task"].split()[0], r["method"]) for r in on_disk["methods"]}
    for m in ("shap", "kernelshap", "lime", "occlusion", "banzhaf", "sage",
              "permutation-importance"):
        assert ("tabular", m) in methods
    for m in ("occlusion", "kernelshap", "rise"):
        assert ("digits", m) in methods
    for rec in on_disk["methods"]:
        assert rec["evaluations"] > 0 and rec["seconds"] >= 0 and rec["top_features"]


def test_demo_benchmark_and_saved_explanations(demo):
    out, _ = demo
    cells = json.loads((out / "benchmark.json").read_text())["cells"]
    ok = [c for c in cells if c["status"] == "ok"]
    assert {c["method"] for c in ok} == {"kernelshap", "permutation-shap"}
    for c in ok:
        assert 0 <= c["coverage"] <= 1 and c["rel_l2_error"] >= 0
    # the largest budget is the most accurate for each method
    for method in ("kernelshap", "permutation-shap"):
        mine = sorted((c["budget_rows"], c["rel_l2_error"]) for c in ok if c["method"] == method)
        assert mine[-1][1] <= min(e for _, e in mine) + 1e-12
    e = xai.Explanation.load(out / "explanations" / "tabular_shap.npz")
    assert e.values.shape == (5, 30)


def test_cli_methods(capsys):
    assert main(["methods"]) == 0
    printed = capsys.readouterr().out
    assert "kernelshap" in printed
    assert "marginal x prediction" in printed


def test_cli_errors(capsys):
    assert main([]) == 2
    assert main(["no-such-command"]) == 2
    assert "invalid choice" in capsys.readouterr().err


def test_cli_reports_xai_errors(monkeypatch, tmp_path, capsys):
    import xai.demo

    def fail(*args, **kwargs):
        raise xai.BudgetError("budget 10 rows is too small")

    monkeypatch.setattr(xai.demo, "run_demo", fail)
    assert main(["demo", "--out", str(tmp_path)]) == 2
    assert capsys.readouterr().err.startswith("error: budget 10 rows is too small")
