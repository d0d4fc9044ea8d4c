"""``xai explain``: models from files and import paths, CSV/Parquet in chunks, resumable runs.

Values are checked against :func:`xai.explain` on the same rows and seed, bit for bit."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest
import torch

import xai
from xai import explain_files as ef
from xai.cli import main
from xai.errors import (
    InputError,
    MissingDependencyError,
    OptionError,
    OutputConflictError,
    UntrustedModelError,
)

skops_io = pytest.importorskip("skops.io")
# TorchScript files are a documented model format, though torch deprecates making them
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit:DeprecationWarning")
pytest.importorskip("pyarrow")

N_ROWS = 20
COLUMNS = 8
TREE = "sklearn.tree._tree.Tree"  # a type skops builds only when trusted


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict:
    """A classifier saved with skops and joblib, its rows as CSV and Parquet, a background.

    The forest computes each row's output alone (no matrix product across rows), so its values
    can be compared bit for bit whatever rows share a model call."""
    from sklearn.datasets import load_breast_cancer
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    root = tmp_path_factory.mktemp("explain_files")
    data = load_breast_cancer(as_frame=True)
    X = data.data.iloc[:, :COLUMNS]
    model = RandomForestClassifier(n_estimators=10, max_depth=4, random_state=0).fit(
        X, data.target)
    skops_io.dump(model, root / "model.skops")
    joblib.dump(model, root / "model.joblib")
    linear = make_pipeline(StandardScaler(), LogisticRegression()).fit(X, data.target)
    skops_io.dump(linear, root / "linear.skops")
    X.iloc[:N_ROWS].to_csv(root / "rows.csv", index=False)
    X.iloc[:N_ROWS].to_parquet(root / "rows.parquet")
    X.iloc[200:230].to_csv(root / "background.csv", index=False)
    return {"root": root, "model": model, "linear": linear, "X": X.iloc[:N_ROWS].reset_index(drop=True),
            "background": X.iloc[200:230].reset_index(drop=True)}


def _table(folder: Path, name: str, fmt: str = "parquet") -> pd.DataFrame:
    path = folder / f"{name}.{fmt}"
    return pd.read_csv(path) if fmt == "csv" else pd.read_parquet(path)


def _values(folder: Path, fmt: str = "parquet") -> np.ndarray:
    frame = _table(folder, "values", fmt)
    assert frame["row"].tolist() == list(range(len(frame)))
    return frame.drop(columns="row").to_numpy()


def _run(*argv) -> int:
    return main(["explain", *[str(a) for a in argv], "--quiet", "--trust", TREE])


def test_skops_model_on_parquet_gives_xai_explain_values_tables_summary_and_figures(files):
    root, out = files["root"], files["root"] / "skops-parquet"
    assert _run(root / "model.skops", root / "rows.parquet", "--background",
                root / "background.csv", "--method", "permutation-shap", "--budget", 3000,
                "--seed", 3, "--chunk-rows", 6, "--out", out) == 0
    expected = xai.explain(files["model"], files["X"], "permutation-shap", background=
                           files["background"], budget=3000, seed=3, progress=False)
    np.testing.assert_array_equal(_values(out), expected.values)
    values = _table(out, "values")
    assert values.columns.tolist() == ["row", *files["X"].columns]
    np.testing.assert_array_equal(_table(out, "stderr").drop(columns="row").to_numpy(),
                                  expected.stderr)
    base = _table(out, "base_values")
    np.testing.assert_array_equal(base["base_value"], expected.base_values)
    assert set(base["target"]) == {"1"}  # the positive class of classes_ [0, 1]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["rows"] == N_ROWS and summary["chunks"] == 4
    assert summary["evaluations"] > 0 and summary["estimator"] == "permutation-shapley"
    assert {"values.parquet", "summary.json", "summary.md", "bar.png"} <= set(summary["files"])
    top = summary["top_features"][0]
    assert top["feature"] == expected.names[int(np.argmax(np.abs(expected.values).mean(0)))]
    assert "top features" in (out / "summary.md").read_text()
    for png in ("bar.png", "beeswarm.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("method,budget", [("kernelshap", 2000), ("permutation-shap", 3000),
                                           ("lime", 2000)])
def test_values_do_not_depend_on_the_chunk_size(files, tmp_path, method, budget):
    results = []
    for rows in (1, 7, N_ROWS):
        ef.explain_files(files["root"] / "model.skops", files["root"] / "rows.csv",
                         out=tmp_path / str(rows), trust=[TREE], method=method, budget=budget, seed=11,
                         background=files["root"] / "background.csv", chunk_rows=rows,
                         figures=False, progress=False)
        results.append(_values(tmp_path / str(rows)))
    expected = xai.explain(files["model"], files["X"], method, background=files["background"],
                           budget=budget, seed=11, progress=False)
    for values in results:
        np.testing.assert_array_equal(values, expected.values)


def test_a_model_with_matrix_products_agrees_to_rounding_across_chunkings(files, tmp_path):
    """A BLAS matrix product may round a row's output differently (by about one ulp) with
    other rows beside it in the call, so a linear model's values match to rounding only."""
    ef.explain_files(files["root"] / "linear.skops", files["root"] / "rows.csv", out=tmp_path,
                     method="kernelshap", budget=2000, seed=11, chunk_rows=7,
                     background=files["root"] / "background.csv", figures=False,
                     progress=False)
    expected = xai.explain(files["linear"], files["X"], "kernelshap",
                           background=files["background"], budget=2000, seed=11,
                           progress=False)
    np.testing.assert_allclose(_values(tmp_path), expected.values, rtol=1e-12, atol=1e-15)


def test_joblib_model_needs_trust_pickle(files, tmp_path, capsys):
    root = files["root"]
    args = [root / "model.joblib", root / "rows.csv", "--background", root / "background.csv",
            "--out", tmp_path / "out", "--format", "csv"]
    assert _run(*args) == 2
    assert "--trust-pickle" in capsys.readouterr().err
    with pytest.raises(UntrustedModelError, match="runs whatever code"):
        ef.explain_files(root / "model.joblib", root / "rows.csv", out=tmp_path / "py")
    assert not (tmp_path / "py").exists()  # refused before anything is written
    assert _run(*args, "--trust-pickle") == 0
    assert "trusted: --trust-pickle" in capsys.readouterr().err
    expected = xai.explain(files["model"], files["X"], "shap", background=files["background"],
                           seed=0, progress=False)
    np.testing.assert_allclose(_values(tmp_path / "out", "csv"), expected.values, rtol=0,
                               atol=1e-15)  # CSV keeps 17 significant digits


def test_skops_types_outside_the_defaults_are_refused_until_trusted(tmp_path, monkeypatch,
                                                                    capsys):
    from sklearn.linear_model import LinearRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer

    (tmp_path / "xf_scale.py").write_text(
        "import numpy as np\n\ndef double(x):\n    return 2 * np.asarray(x, dtype=float)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import xf_scale

    X = pd.DataFrame(np.random.default_rng(0).normal(size=(12, 3)), columns=["a", "b", "c"])
    model = make_pipeline(FunctionTransformer(xf_scale.double), LinearRegression()).fit(
        X, X.sum(axis=1))
    skops_io.dump(model, tmp_path / "custom.skops")
    X.to_csv(tmp_path / "rows.csv", index=False)
    args = [tmp_path / "custom.skops", tmp_path / "rows.csv", "--method", "exact-shap",
            "--out", tmp_path / "out"]
    assert _run(*args) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "xf_scale.double" in err
    assert "--trust xf_scale.double" in err
    assert _run(*args, "--trust", "xf_scale.double") == 0
    expected = xai.explain(model, X, "exact-shap", background=X, seed=0, progress=False)
    np.testing.assert_allclose(_values(tmp_path / "out"), expected.values, atol=1e-12)


def test_torchscript_model_through_the_installed_command(tmp_path):
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3))
    torch.jit.script(net).save(str(tmp_path / "net.pt"))
    X = pd.DataFrame(np.random.default_rng(1).normal(size=(9, 4)).astype(np.float32),
                     columns=["w", "x", "y", "z"])
    X.to_parquet(tmp_path / "rows.parquet")
    X.iloc[:5].to_parquet(tmp_path / "bg.parquet")
    cmd = [sys.executable, "-m", "xai.cli", "explain", str(tmp_path / "net.pt"),
           str(tmp_path / "rows.parquet"), "--background", str(tmp_path / "bg.parquet"),
           "--target", "all", "--output-kind", "raw", "--chunk-rows", "4", "--device", "cpu",
           "--out", str(tmp_path / "out")]
    done = subprocess.run(cmd, check=False, capture_output=True, text=True,
                          env={**os.environ, "MPLBACKEND": "Agg"})
    assert done.returncode == 0, done.stderr
    expected = xai.explain(torch.jit.load(str(tmp_path / "net.pt")), X, "shap",
                           background=X.iloc[:5], target="all", output_kind="raw", seed=0,
                           progress=False)
    values = _table(tmp_path / "out", "values")
    # several outputs: columns feature[output], output by output
    assert values.columns.tolist()[1:6] == ["w[output_0]", "x[output_0]", "y[output_0]",
                                             "z[output_0]", "w[output_1]"]
    # a float32 matrix product rounds a row by the rows beside it in the call
    np.testing.assert_allclose(values.drop(columns="row").to_numpy(),
                               expected.values.transpose(0, 2, 1).reshape(9, -1), rtol=1e-5,
                               atol=1e-7)
    assert _table(tmp_path / "out", "base_values").columns.tolist() == [
        "row", "base_value[output_0]", "base_value[output_1]", "base_value[output_2]"]
    assert json.loads((tmp_path / "out" / "summary.json").read_text())["options"][
        "device"] == "cpu"  # a run resumes on the device it started on
    assert {f"{kind}-output_{j}.png" for kind in ("bar", "beeswarm") for j in range(3)} <= {
        p.name for p in (tmp_path / "out").iterdir()}


def test_module_callable_and_factory(tmp_path, monkeypatch):
    (tmp_path / "xf_model.py").write_text(textwrap.dedent("""
        import numpy as np

        def score(frame):
            return frame["a"].to_numpy() * 2.0 + frame["b"].to_numpy() * frame["c"].to_numpy()

        def make():
            return score
    """))
    monkeypatch.chdir(tmp_path)  # the current folder is importable, as with python -m
    monkeypatch.syspath_prepend(str(tmp_path))
    X = pd.DataFrame(np.random.default_rng(2).normal(size=(10, 3)), columns=["a", "b", "c"])
    X.to_csv("rows.csv", index=False)
    import xf_model

    expected = xai.explain(xf_model.score, X, "exact-shap", background=X, seed=0,
                           progress=False)
    for spec, out in (("xf_model:score", "out1"), ("xf_model:make()", "out2")):
        assert _run(spec, "rows.csv", "--method", "exact-shap", "--chunk-rows", 3,
                    "--out", out) == 0
        np.testing.assert_array_equal(_values(tmp_path / out), expected.values)


def test_an_interrupted_run_resumes_and_equals_an_uninterrupted_one(files, tmp_path,
                                                                    monkeypatch):
    root = files["root"]
    kw = {"trust": [TREE], "method": "permutation-shap", "budget": 2000, "seed": 5,
          "chunk_rows": 6, "figures": False, "progress": False,
          "background": root / "background.csv"}
    ef.explain_files(root / "model.skops", root / "rows.csv", out=tmp_path / "whole", **kw)
    real = ef._explain_chunk
    calls = []

    def fails_after_two(*args, **kwargs):
        calls.append(len(args[1]))
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(ef, "_explain_chunk", fails_after_two)
    with pytest.raises(KeyboardInterrupt):
        ef.explain_files(root / "model.skops", root / "rows.csv", out=tmp_path / "cut", **kw)
    manifest = json.loads((tmp_path / "cut" / "manifest.json").read_text())
    assert manifest["chunks_done"] == [0, 1] and not manifest["complete"]
    calls.clear()
    summary = ef.explain_files(root / "model.skops", root / "rows.csv", out=tmp_path / "cut",
                               **kw)
    assert calls == [6, 2]  # only chunks 2 and 3 (rows 12..19) were explained again
    assert summary["rows"] == N_ROWS and summary["chunks"] == 4
    for name in ef.TABLES:
        pd.testing.assert_frame_equal(_table(tmp_path / "cut", name),
                                      _table(tmp_path / "whole", name))
    assert not (tmp_path / "cut" / "parts").exists()
    calls.clear()  # a finished run: nothing is explained again
    ef.explain_files(root / "model.skops", root / "rows.csv", out=tmp_path / "cut", **kw)
    assert calls == []


def test_other_options_into_the_same_folder_are_refused_unless_overwrite(files, tmp_path,
                                                                         capsys):
    root = files["root"]
    args = [root / "model.skops", root / "rows.csv", "--background", root / "background.csv",
            "--no-figures", "--out", tmp_path]
    assert _run(*args, "--seed", 1) == 0
    assert _run(*args, "--seed", 2) == 2
    err = capsys.readouterr().err
    assert "options.seed: 1 -> 2" in err and "--overwrite" in err and "another --out" in err
    assert _run(*args, "--seed", 2, "--overwrite") == 0
    assert json.loads((tmp_path / "summary.json").read_text())["options"]["seed"] == 2


def test_class_names_select_targets_and_multi_class_rows_name_their_class(tmp_path):
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    iris = load_iris(as_frame=True)
    X = iris.data
    y = iris.target_names[iris.target]  # classes_ are names
    model = LogisticRegression(max_iter=500).fit(X, y)
    skops_io.dump(model, tmp_path / "iris.skops")
    rows = X.iloc[::15].reset_index(drop=True)
    rows.to_csv(tmp_path / "rows.csv", index=False)
    args = [tmp_path / "iris.skops", tmp_path / "rows.csv", "--method", "exact-shap"]
    assert _run(*args, "--target", "virginica", "--out", tmp_path / "named") == 0
    expected = xai.explain(model, rows, "exact-shap", background=rows, target=2, seed=0,
                           progress=False)
    np.testing.assert_array_equal(_values(tmp_path / "named"), expected.values)
    assert _run(*args, "--out", tmp_path / "predicted") == 0  # each row's predicted class
    base = _table(tmp_path / "predicted", "base_values")
    assert base["target"].tolist() == model.predict(rows).tolist()
    pngs = {p.name for p in (tmp_path / "predicted").glob("*.png")}
    assert {f"bar-{c}.png" for c in set(model.predict(rows))} <= pngs


def test_progress_bar_counts_input_rows(files, tmp_path, capsys):
    root = files["root"]
    ef.explain_files(root / "model.skops", root / "rows.csv", out=tmp_path, figures=False,
                     background=root / "background.csv", chunk_rows=8, progress=True,
                     trust=[TREE])
    err = capsys.readouterr().err
    assert "xai explain" in err and f"{N_ROWS}/{N_ROWS} rows" in err


@pytest.mark.parametrize("change,message", [
    (["--workers", "2"], "applies to backend 'ray' only"),
    (["--backend", "spark"], "unknown backend"),
    (["--method", "sage"], "whole data set"),
    (["--method", "lossshap"], "needs labels"),
    (["--features", "nope"], "lacks columns ['nope']"),
    (["--target", "benign"], "not an output index"),
    (["--chunk-rows", "0"], "chunk_rows must be a positive integer"),
    (["--num-gpus", "1"], "applies to backend 'ray' only"),
    (["--device", "tpu"], "device='tpu' is not a torch device name"),
])
def test_bad_options_are_named_errors(files, tmp_path, capsys, change, message):
    root = files["root"]
    assert _run(root / "model.skops", root / "rows.csv", "--out", tmp_path, *change) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err


def test_bad_files_are_named_errors(files, tmp_path, capsys):
    root = files["root"]
    (tmp_path / "rows.txt").write_text("a,b\n1,2\n")
    (tmp_path / "model.bin").write_bytes(b"\0")
    torch.save(torch.nn.Linear(2, 1), tmp_path / "saved.pt")  # not TorchScript
    other = files["background"].drop(columns=files["X"].columns[0])
    other.to_csv(tmp_path / "other.csv", index=False)
    text = files["X"].assign(kind="x")
    text.to_csv(tmp_path / "text.csv", index=False)
    torch.jit.script(torch.nn.Linear(COLUMNS + 1, 1)).save(str(tmp_path / "net.pt"))
    cases = [
        ([tmp_path / "missing.skops", root / "rows.csv"], "does not exist"),
        ([root / "model.skops", tmp_path / "missing.csv"], "does not exist"),
        ([tmp_path / "model.bin", root / "rows.csv"], "unknown kind of model file '.bin'"),
        ([root / "model.skops", tmp_path / "rows.txt"], "unknown kind '.txt'"),
        ([tmp_path / "saved.pt", root / "rows.csv"], "not a TorchScript module"),
        ([root / "model.skops", root / "rows.csv", "--background", tmp_path / "other.csv"],
         "differ from those of data"),
        ([tmp_path / "net.pt", tmp_path / "text.csv"], "columns ['kind'] hold categories"),
        (["no_such_module_xf:f", root / "rows.csv"], "cannot import module"),
    ]
    for argv, message in cases:
        assert _run(*argv, "--out", tmp_path / "out", "--overwrite") == 2, message
        err = capsys.readouterr().err
        assert err.startswith("error: ") and message in err, (message, err)


@pytest.mark.parametrize("module", ["pyarrow.parquet", "skops.io"])
def test_a_missing_dependency_names_the_extra(files, tmp_path, monkeypatch, module):
    monkeypatch.setitem(sys.modules, module, None)
    with pytest.raises(MissingDependencyError, match=r"pip install 'xai\[files\]'"):
        ef.explain_files(files["root"] / "model.skops", files["root"] / "rows.csv",
                         out=tmp_path, format="csv" if module == "skops.io" else "parquet")


def test_python_api_refuses_what_the_command_refuses(files, tmp_path):
    root = files["root"]
    with pytest.raises(UntrustedModelError, match=f"--trust {TREE}"):
        ef.explain_files(root / "model.skops", root / "rows.csv", out=tmp_path)
    with pytest.raises(OptionError, match="applies to backend 'ray' only"):
        ef.explain_files(root / "model.skops", root / "rows.csv", out=tmp_path,
                         address="localhost:6379")
    kw = {"trust": [TREE], "figures": False, "progress": False}
    ef.explain_files(root / "model.skops", root / "rows.csv", out=tmp_path,
                     background=root / "background.csv", **kw)
    with pytest.raises(OutputConflictError, match="overwrite"):
        ef.explain_files(root / "model.skops", root / "rows.csv", out=tmp_path,
                         method="exact-shap", background=root / "background.csv", **kw)
    from filelock import FileLock

    with FileLock(tmp_path / ".explain.lock"), pytest.raises(OutputConflictError,
                                                              match="another xai explain"):
        ef.explain_files(root / "model.skops", root / "rows.csv", out=tmp_path,
                         background=root / "background.csv", **kw)
    files["X"].iloc[:0].to_csv(tmp_path / "empty.csv", index=False)
    with pytest.raises(InputError, match="no rows"):
        ef.explain_files(root / "model.skops", tmp_path / "empty.csv", out=tmp_path / "e",
                         **kw)


@pytest.mark.parametrize("group_rows", [1, 3, 7, 100])
def test_chunks_leave_out_skipped_ones_and_read_only_row_groups_that_hold_wanted_ones(
        tmp_path, monkeypatch, group_rows):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from xai.data_files import TableFile

    frame = pd.DataFrame({"a": np.arange(23.0), "b": -np.arange(23.0)})
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), tmp_path / "t.parquet",
                   row_group_size=group_rows)
    frame.to_csv(tmp_path / "t.csv", index=False)
    read_groups = []
    real = pq.ParquetFile.iter_batches

    def counting(self, *args, row_groups=None, **kwargs):
        read_groups.extend(row_groups or [])
        return real(self, *args, row_groups=row_groups, **kwargs)

    monkeypatch.setattr(pq.ParquetFile, "iter_batches", counting)
    skip = {0, 2, 3, 5}
    for name in ("t.parquet", "t.csv"):
        got = list(TableFile(tmp_path / name).chunks(4, ["a", "b"], skip=skip))
        assert [i for i, _ in got] == [1, 4]
        for i, chunk in got:
            np.testing.assert_array_equal(chunk.to_numpy(), frame.iloc[4 * i:4 * i + 4])
    wanted_rows = set(range(4, 8)) | set(range(16, 20))
    assert {r // group_rows for r in wanted_rows} == set(read_groups)
