"""``xai explain --backend ray``: chunks as Ray tasks on a local cluster, written by the driver.

The tables must equal the local backend's bit for bit (the models compute each row alone), a
worker killed mid-run must leave every row written once, and an interrupted driver resumes."""

from __future__ import annotations

import json
import os
import textwrap
import uuid
from pathlib import Path

import pandas as pd
import pytest

from xai import explain_files as ef
from xai.cli import main
from xai.data_files import TableFile

skops_io = pytest.importorskip("skops.io")
pytest.importorskip("pyarrow")

N_ROWS = 40
COLUMNS = 6
CHUNK = 7  # six chunks, the last shorter
TREE = "sklearn.tree._tree.Tree"


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict:
    """A forest saved with skops (each row's output computed alone), its rows as CSV and as
    Parquet in row groups that cut across chunks, and background rows."""
    from sklearn.datasets import load_breast_cancer
    from sklearn.ensemble import RandomForestClassifier

    root = tmp_path_factory.mktemp("explain_files_ray")
    data = load_breast_cancer(as_frame=True)
    X = data.data.iloc[:, :COLUMNS]
    model = RandomForestClassifier(n_estimators=8, max_depth=4, random_state=0).fit(
        X, data.target)
    skops_io.dump(model, root / "model.skops")
    X.iloc[:N_ROWS].to_csv(root / "rows.csv", index=False)
    X.iloc[:N_ROWS].to_parquet(root / "rows.parquet", row_group_size=9)
    X.iloc[300:320].to_csv(root / "background.csv", index=False)
    return {"root": root}


def _kw(root: Path, **more) -> dict:
    return {"trust": [TREE], "method": "kernelshap", "budget": 1500, "seed": 4,
            "chunk_rows": CHUNK, "figures": False, "progress": False,
            "background": root / "background.csv", **more}


def _tables_equal(a: Path, b: Path, fmt: str = "parquet") -> None:
    for name in ef.TABLES:
        read = pd.read_csv if fmt == "csv" else pd.read_parquet
        left, right = read(a / f"{name}.{fmt}"), read(b / f"{name}.{fmt}")
        assert left["row"].tolist() == list(range(N_ROWS))  # each row once, in order
        pd.testing.assert_frame_equal(left, right, check_exact=True)


@pytest.mark.parametrize("data", ["rows.parquet", "rows.csv"])
def test_ray_tables_equal_the_local_backend_bit_for_bit(ray_cluster, files, tmp_path, data):
    root = files["root"]
    local = ef.explain_files(root / "model.skops", root / data, out=tmp_path / "local",
                             **_kw(root))
    on_ray = ef.explain_files(root / "model.skops", root / data, out=tmp_path / "ray",
                              backend="ray", workers=2, **_kw(root))
    _tables_equal(tmp_path / "local", tmp_path / "ray")
    assert on_ray["evaluations"] == local["evaluations"]
    assert on_ray["chunks"] == local["chunks"] == -(-N_ROWS // CHUNK)
    assert not (tmp_path / "ray" / "parts").exists()


def test_a_model_object_reaches_the_workers_through_the_object_store(ray_cluster, files,
                                                                     tmp_path):
    root = files["root"]
    model = skops_io.load(root / "model.skops", trusted=[TREE])
    kw = {**_kw(root), "trust": ()}
    ef.explain_files(model, root / "rows.parquet", out=tmp_path / "local", **kw)
    ef.explain_files(model, root / "rows.parquet", out=tmp_path / "ray", backend="ray", **kw)
    _tables_equal(tmp_path / "local", tmp_path / "ray")


def test_a_worker_reads_the_chunk_the_local_reader_gives(files):
    columns = ["mean texture", "mean radius"]
    for data in ("rows.parquet", "rows.csv"):
        table = TableFile(files["root"] / data)
        local = dict(table.chunks(CHUNK, columns))
        assert len(local) == -(-N_ROWS // CHUNK)
        for i, expected in local.items():
            pd.testing.assert_frame_equal(table.chunk(i, CHUNK, columns).reset_index(drop=True),
                                          expected.reset_index(drop=True), check_exact=True)


def _killer_module(folder: Path, marker: Path) -> str:
    """A module whose model kills its own worker process (SIGKILL, by its pid) on its first
    call anywhere, marked by ``marker``; returns the module's name."""
    name = f"killer_{uuid.uuid4().hex[:8]}"
    (folder / f"{name}.py").write_text(textwrap.dedent(f"""
        import os
        import signal
        from pathlib import Path

        import numpy as np

        MARKER = Path({str(marker)!r})


        def model(X):
            if not MARKER.exists():
                MARKER.write_text(str(os.getpid()))
                os.kill(os.getpid(), signal.SIGKILL)
            X = np.asarray(X, dtype=float)
            return np.tanh(X[:, 0] / 10) + X[:, 1] * X[:, 2] / 100 - X[:, 3] / 50
        """))
    return name


def test_a_killed_worker_is_retried_and_every_row_written_once(ray_cluster, files, tmp_path,
                                                               monkeypatch):
    root = files["root"]
    marker = tmp_path / "killed"
    monkeypatch.chdir(tmp_path)  # the model's module is importable from the driver's folder
    model = f"{_killer_module(tmp_path, marker)}:model"
    kw = {**_kw(root), "trust": [], "output_kind": "raw"}
    marker.write_text("the local run must not die")
    ef.explain_files(model, root / "rows.parquet", out=tmp_path / "local", **kw)
    marker.unlink()
    written = []
    real = ef._write_chunk
    monkeypatch.setattr(ef, "_write_chunk", lambda out, i, *a: (written.append(i),
                                                                 real(out, i, *a)))
    ef.explain_files(model, root / "rows.parquet", out=tmp_path / "ray", backend="ray",
                     workers=2, **kw)
    assert marker.exists() and int(marker.read_text()) != os.getpid()  # a worker died
    assert sorted(written) == list(range(-(-N_ROWS // CHUNK)))  # each chunk written once
    _tables_equal(tmp_path / "local", tmp_path / "ray")


def test_an_interrupted_driver_resumes_and_writes_each_missing_chunk_once(ray_cluster, files,
                                                                           tmp_path,
                                                                           monkeypatch):
    root = files["root"]
    kw = _kw(root, backend="ray", workers=2)
    ef.explain_files(root / "model.skops", root / "rows.csv", out=tmp_path / "local",
                     **_kw(root))
    real = ef._write_chunk
    written = []

    def stops_after_two(out, i, *args):
        if len(written) == 2:
            raise KeyboardInterrupt  # the driver stops with chunks in flight
        written.append(i)
        real(out, i, *args)

    monkeypatch.setattr(ef, "_write_chunk", stops_after_two)
    with pytest.raises(KeyboardInterrupt):
        ef.explain_files(root / "model.skops", root / "rows.csv", out=tmp_path / "cut", **kw)
    manifest = json.loads((tmp_path / "cut" / "manifest.json").read_text())
    assert sorted(manifest["chunks_done"]) == sorted(written) and not manifest["complete"]
    first = list(written)
    written.clear()
    monkeypatch.setattr(ef, "_write_chunk", lambda out, i, *a: (written.append(i),
                                                                 real(out, i, *a)))
    summary = ef.explain_files(root / "model.skops", root / "rows.csv", out=tmp_path / "cut",
                               **kw)
    assert sorted(first + written) == list(range(-(-N_ROWS // CHUNK)))  # the rest, once
    assert summary["rows"] == N_ROWS
    _tables_equal(tmp_path / "local", tmp_path / "cut")


def test_the_command_runs_on_ray_and_writes_csv(ray_cluster, files, tmp_path, capsys):
    root = files["root"]
    args = [str(root / "model.skops"), str(root / "rows.csv"), "--method", "kernelshap",
            "--budget", "1500", "--seed", "4", "--chunk-rows", str(CHUNK), "--background",
            str(root / "background.csv"), "--trust", TREE, "--format", "csv", "--no-figures",
            "--quiet"]
    assert main(["explain", *args, "--out", str(tmp_path / "local")]) == 0
    assert main(["explain", *args, "--out", str(tmp_path / "ray"), "--backend", "ray",
                 "--workers", "2", "--num-cpus", "1"]) == 0
    assert f"explained {N_ROWS} rows" in capsys.readouterr().out
    _tables_equal(tmp_path / "local", tmp_path / "ray", "csv")


def test_the_progress_bar_counts_rows_from_every_worker(ray_cluster, files, tmp_path, capsys):
    root = files["root"]
    ef.explain_files(root / "model.skops", root / "rows.parquet", out=tmp_path,
                     backend="ray", **{**_kw(root), "progress": True})
    assert f"{N_ROWS}/{N_ROWS} rows" in capsys.readouterr().err


@pytest.mark.parametrize("options,message", [
    ({"workers": 0}, "workers=0 is out of range"),
    ({"num_cpus": 0}, "num_cpus=0.0 is out of range"),
])
def test_bad_ray_options_are_named_errors(files, tmp_path, options, message):
    from xai.errors import OptionError

    root = files["root"]
    with pytest.raises(OptionError, match=message):
        ef.explain_files(root / "model.skops", root / "rows.csv", out=tmp_path,
                         backend="ray", **_kw(root), **options)
