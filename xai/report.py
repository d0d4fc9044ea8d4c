"""Self-contained HTML reports: one page for an explanation or for a benchmark folder.

A report is a single ``.html`` file: the style sheet is inline, every figure is a PNG ``data:``
URI, and the page loads no script, font or image from elsewhere, so it opens from disk
(``file://``) without a server and can be mailed or archived as one file.

- :func:`explanation_html` (``Explanation.to_html``): how the explanation was made (method,
  removal, behaviour, summary, options, model rows evaluated, seconds), a table of values ±
  standard error per row and its figures (bar, beeswarm and waterfall for tables, overlays for
  images).
- :func:`bench_html` (``xai bench report DIR``): the tables and figures that
  :func:`xai.bench.summarise` wrote into a benchmark folder, its errors, and the run's record:
  machine, versions, git commit, seeds and options, read from ``results.jsonl``.
"""

from __future__ import annotations

import base64
import datetime as _dt
import json
import math
import os
import platform
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from xai.errors import XaiError
from xai.html import escape, figure_data_uri, table_html

__all__ = ["bench_html", "explanation_html", "mean_se", "write_page"]

ARROWS = {"higher": "↑", "lower": "↓"}
"""Header marks of a metric's direction: higher or lower is better (``·`` diagnostic)."""

_STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 2em auto;
       max-width: 1300px; padding: 0 1em; color: #1d1d1f; background: #ffffff; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; }
h2 { font-size: 1.25em; margin-top: 1.6em; border-bottom: 1px solid #d0d0d0; }
h3 { font-size: 1.05em; margin-top: 1.2em; }
p.note { color: #555; font-size: 0.9em; }
table.xai-table { border-collapse: collapse; margin: 0.6em 0; font-size: 0.88em; }
table.xai-table caption { text-align: left; font-weight: 600; padding: 0.3em 0; }
table.xai-table th, table.xai-table td { border: 1px solid #d0d0d0; padding: 0.25em 0.5em;
       text-align: right; vertical-align: top; }
table.xai-table td { white-space: nowrap; }
table.xai-table th { background: #f0f3f7; }
table.xai-table tbody th, table.xai-meta th, table.xai-meta td { text-align: left; }
table.xai-table tbody tr:nth-child(even) { background: #fafafa; }
table.xai-meta thead { display: none; }
.scroll { overflow-x: auto; }
.meta { display: inline-block; vertical-align: top; margin-right: 2em; }
figure { display: inline-block; margin: 0.5em 1em 0.5em 0; vertical-align: top; }
figure img { max-width: 100%; height: auto; border: 1px solid #e4e4e4; }
figcaption { font-size: 0.85em; color: #555; }
"""


# ---------------------------------------------------------------- page pieces

def write_page(text: str, path: str | os.PathLike) -> Path:
    """Write the page ``text`` to ``path`` (UTF-8, parent folders created); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def _page(title: str, body: Iterable[str]) -> str:
    """A whole HTML document: ``title``, the inline style sheet and the ``body`` parts."""
    written = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return "\n".join([
        "<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{escape(title)}</title>", f"<style>{_STYLE}</style>", "</head>", "<body>",
        f"<h1>{escape(title)}</h1>", *body,
        f'<p class="note">Written by xai {escape(_xai_version())} on {written}.</p>',
        "</body>", "</html>", ""])


def _xai_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("xai")
    except PackageNotFoundError:
        return "unknown"


def _section(title: str, parts: Iterable[str], anchor: str) -> str:
    return "\n".join([f'<section id="{anchor}">', f"<h2>{escape(title)}</h2>", *parts,
                      "</section>"])


def _note(text: str) -> str:
    return f'<p class="note">{escape(text)}</p>'


def _figure(uri: str, caption: str) -> str:
    return (f'<figure><img src="{uri}" alt="{escape(caption)}">'
            f"<figcaption>{escape(caption)}</figcaption></figure>")


def _table(df: pd.DataFrame, caption: str | None = None, *, index: bool = True,
           classes: str = "xai-table") -> str:
    return f'<div class="scroll">{table_html(df, caption=caption, index=index, classes=classes)}</div>'


def _key_values(pairs: Iterable[tuple[str, Any]], caption: str | None = None) -> str:
    """A two-column table of labelled values."""
    frame = pd.DataFrame([(k, _text(v)) for k, v in pairs], columns=["field", "value"])
    text = table_html(frame, caption=caption, index=False, classes="xai-table xai-meta")
    return f'<div class="meta">{text}</div>'


def _text(value: Any) -> str:
    """A short text for a metadata value: JSON for lists and dicts, ``str`` otherwise."""
    if isinstance(value, dict | list | tuple):
        return json.dumps(value, default=str, ensure_ascii=False)
    return str(value)


def mean_se(mean: Any, se: Any = None) -> str:
    """``mean ± se`` as shown in the tables (4 and 2 significant digits); ``—`` for a missing
    mean, the mean alone without a standard error."""
    if not _finite(mean):
        return "—"
    return f"{float(mean):.4g} ± {float(se):.2g}" if _finite(se) else f"{float(mean):.4g}"


def _finite(value: Any) -> bool:
    try:
        return value is not None and math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


# ---------------------------------------------------------------- an explanation

def explanation_html(expl: Any, *, max_rows: int = 20, max_features: int = 20,
                     max_images: int = 4, max_outputs: int = 4) -> str:
    """The report page of an :class:`~xai.Explanation` (see the module docstring).

    The table shows at most ``max_rows`` rows and ``max_features`` features (those of largest
    mean |attribution| when there are more, in their original order), with a note saying what
    was left out; images get an overlay for each of the first ``max_images`` rows, and the
    figures are drawn for each of the first ``max_outputs`` outputs.
    """
    header = _key_values(_how_made(expl), "how it was made")
    tables = _value_tables(expl, max_rows, max_features)
    figures = _explanation_figures(expl, max_images, max_outputs)
    return _page(f"xai explanation: {expl.method}", [
        _section("Explanation", [header], "explanation"),
        _section("Values", tables, "values"),
        _section("Figures", figures or [_note("no figures for this explanation")], "figures"),
    ])


def _how_made(expl: Any) -> list[tuple[str, Any]]:
    n, d = expl.values.shape[:2]
    k = expl.values.shape[2] if expl.values.ndim == 3 else 1
    pairs: list[tuple[str, Any]] = [
        ("method", expl.method), ("removal", _component(expl.removal)),
        ("behaviour", _component(expl.behaviour)), ("summary", _component(expl.summary)),
        ("options", expl.options), ("rows × features × outputs", f"{n} × {d} × {k}"),
        ("model rows evaluated", f"{int(expl.evaluations):,}"),
        ("seconds", f"{float(expl.seconds):.3g}"),
        ("standard errors", "yes" if expl.stderr is not None else "not reported")]
    if expl.coalitions is not None and len(expl.coalitions):
        pairs.append(("coalitions per row (mean)", f"{np.mean(expl.coalitions):.4g}"))
    if expl.converged is not None and len(expl.converged):
        pairs.append(("rows converged", f"{int(np.sum(expl.converged))} of {n}"))
    return pairs


def _component(record: dict) -> str:
    """``name (option=value, ...)`` of a removal, behaviour or summary record."""
    if not record:
        return "—"
    options = ", ".join(f"{k}={json.dumps(v, default=str)}" for k, v in record.items()
                        if k != "name")
    name = str(record.get("name", ""))
    return f"{name} ({options})" if options else name


def _value_tables(expl: Any, max_rows: int, max_features: int) -> list[str]:
    values = np.asarray(expl.values, dtype=float)
    stderr = None if expl.stderr is None else np.asarray(expl.stderr, dtype=float)
    n, d = values.shape[:2]
    if values.ndim == 2:
        values, stderr = values[..., None], None if stderr is None else stderr[..., None]
    base = np.asarray(expl.base_values, dtype=float).reshape(n, -1)
    rows = np.arange(min(n, max_rows))
    with np.errstate(all="ignore"):
        importance = np.nan_to_num(np.nanmean(np.abs(values), axis=(0, 2))) if n else np.zeros(d)
    features = np.sort(np.argsort(-importance, kind="stable")[:max_features])
    names = list(expl.names)
    notes = []
    if len(rows) < n:
        notes.append(f"showing the first {len(rows)} of {n} rows")
    if len(features) < d:
        notes.append(f"showing {len(features)} of {d} features (largest mean |attribution|)")
    caption = "values ± standard error" if stderr is not None else "values"
    tables = []
    outputs = expl.outputs if expl.values.ndim == 3 else [None]
    for o, output in enumerate(outputs):
        table = {"base value": [mean_se(base[r, o if base.shape[1] > 1 else 0]) for r in rows]}
        for j in features:
            table[names[j]] = [mean_se(values[r, j, o],
                                       None if stderr is None else stderr[r, j, o])
                               for r in rows]
        frame = pd.DataFrame(table, index=[f"row {r}" for r in rows])
        frame.columns.name = "row"
        tables.append(_table(frame, caption if output is None else f"{caption}: {output}"))
    return ([_note("; ".join(notes) + ".")] if notes else []) + tables


def _explanation_figures(expl: Any, max_images: int, max_outputs: int) -> list[str]:
    """The figures of ``expl`` (each output's, for the first ``max_outputs`` outputs); a
    figure that the explanation cannot have is replaced by a note saying why."""
    images = expl.feature_map is not None and expl.data is not None and expl.data.ndim >= 3
    n = len(expl)
    if images:
        plots = [(f"overlay of row {r}", "image", {"row": r}) for r in range(min(n, max_images))]
    else:
        plots = [("mean |attribution| per feature", "bar", {})]
        if n > 1:
            plots.append(("attributions of every row", "beeswarm", {}))
        plots.append(("row 0 from the base value to the prediction", "waterfall", {"row": 0}))
    k = expl.values.shape[2] if expl.values.ndim == 3 else 1
    outputs = [None] if expl.values.ndim == 2 else list(range(min(k, max_outputs)))
    parts = [_note(f"figures of the first {max_outputs} of {k} outputs")] \
        if len(outputs) < k else []
    for output in outputs:
        for caption, kind, kwargs in plots:
            if output is not None:
                kwargs = {**kwargs, "output": output}
                caption = f"{caption}: {expl.outputs[output]}"
            try:
                fig = getattr(expl.plot, kind)(**kwargs)
            except XaiError as exc:  # a figure this explanation cannot have: say why
                parts.append(_note(f"{kind} plot not drawn: {exc}"))
                continue
            parts.append(_figure(figure_data_uri(fig), caption))
    return parts


# ---------------------------------------------------------------- a benchmark folder

def bench_html(folder: str | os.PathLike) -> str:
    """The report page of a summarised benchmark folder (see the module docstring).

    Raises :class:`~xai.errors.XaiError` when ``folder`` has no summary: run
    ``xai bench report DIR`` (which summarises first) or ``xai bench summarise DIR``.
    """
    out = Path(folder)
    if not (out / "results.csv").is_file():
        raise XaiError(f"{out} has no benchmark summary (results.csv): run `xai bench report "
                       f"{out}`, which summarises the folder first, or `xai bench summarise "
                       f"{out}`")
    table = pd.read_csv(out / "results.csv", dtype={"output": str})
    rows = _read_jsonl(out / "results.jsonl")
    cells = pd.read_csv(out / "cells.csv") if (out / "cells.csv").is_file() else pd.DataFrame()
    figures = [_figure(_png_data_uri(p), p.stem)
               for p in sorted((out / "figures").glob("*.png"))] \
        if (out / "figures").is_dir() else []
    status = cells["status"].value_counts().to_dict() if "status" in cells else {}
    counts = ", ".join(f"{v} {k}" for k, v in sorted(status.items()))
    body = [
        _note(f"{len(cells)} cells" + (f": {counts}" if counts else "") + ". Mean over seeds "
              "± SE; ↑ higher is better, ↓ lower is better, · diagnostic. Cost columns: "
              "explanation seconds and model evaluations per explained row."),
        _section("Results", _result_tables(table) or [_note("no results")], "results"),
        *_agreement_section(out),
        _section("Figures", figures or [_note("no figures")], "figures"),
    ]
    errors = _errors_table(cells)
    if errors:
        body.append(_section("Errors", [errors], "errors"))
    body.append(_section("Run", _run_record(rows, out), "run"))
    return _page(f"xai benchmark: {out.resolve().name}", body)


def _agreement_section(out: Path) -> list[str]:
    """Per (suite, data set, model), the metrics × metrics rank correlations that
    ``xai bench summarise`` wrote into ``agreement.csv`` (no section for a folder summarised
    before it was written)."""
    if not (out / "agreement.csv").is_file():
        return []
    agreement = pd.read_csv(out / "agreement.csv", dtype={"note": str}).fillna({"note": ""})
    tables = []
    for (suite, dataset, model), g in agreement.groupby(["suite", "dataset", "model"],
                                                        sort=False):
        metrics = list(dict.fromkeys([*g["metric_a"], *g["metric_b"]]))
        mirrored = g.rename(columns={"metric_a": "metric_b", "metric_b": "metric_a"})
        frame = pd.concat([g, mirrored]).pivot(index="metric_a", columns="metric_b",
                                               values="correlation")
        frame = frame.reindex(index=metrics, columns=metrics)
        for m in metrics:
            frame.loc[m, m] = 1.0
        frame = frame.map(lambda r: "NaN" if pd.isna(r) else f"{r:.2f}")
        frame.index.name, frame.columns.name = None, "metric"
        notes = "; ".join(dict.fromkeys(n for n in g["note"] if n))
        caption = (f"metric agreement, {dataset} / {model} ({suite}): "
                   f"{int(g['n_methods'].max())} methods")
        tables.append(_table(frame, caption + (f" — NaN: {notes}" if notes else "")))
    note = _note("Spearman's rho between two metrics over the methods, each oriented so that "
                 "higher is better: 1 = the same ranking, −1 = the reversed one; near 0 or "
                 "below, the verdict depends on the metric chosen (LATEC, Klein et al., "
                 "NeurIPS 2024).")
    return [_section("Metric agreement", [note, *tables] if tables else
                     [_note("fewer than two metrics with a direction")], "agreement")]


def _read_jsonl(path: Path) -> list[dict]:
    """The rows of a results file; lines that are not JSON objects (a torn last line) are
    left out."""
    rows = []
    if path.is_file():
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                row = json.loads(line)
            except ValueError:
                continue
            if isinstance(row, dict):
                rows.append(row)
    return rows


def _png_data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def _result_tables(table: pd.DataFrame) -> list[str]:
    """Per (suite, data set, model): methods × metrics of ``mean ± SE`` and the cost columns,
    laid out like the summary's ``results.md``."""
    if table.empty:
        return []
    table = table.assign(output=table["output"].fillna(""))
    parts = []
    for (suite, dataset, model), g in table.groupby(["suite", "dataset", "model"], sort=False):
        metrics = list(dict.fromkeys(g["metric"]))
        heads = {m: f"{m} {ARROWS.get(g[g.metric == m]['direction'].iloc[0], '·')}"
                 for m in metrics}
        lines = {}
        for (method, output), gm in g.groupby(["method", "output"], sort=False):
            label = f"{method} → {output}" if output else str(method)
            line = {heads[m]: _cell(gm[gm.metric == m]) for m in metrics}
            line["explain s/row"] = _first(gm["explain_seconds_per_row"], ".3g")
            line["evals/row"] = _first(gm["explain_evaluations_per_row"], ".4g")
            lines[label] = line
        frame = pd.DataFrame.from_dict(lines, orient="index")
        frame.columns.name = "method"
        caption = f"{dataset} / {model} ({suite})"
        accuracy = pd.to_numeric(g["model_accuracy"], errors="coerce").dropna()
        if len(accuracy):
            caption += f" — test accuracy {accuracy.iloc[0]:.3f}"
        parts.append(_table(frame, caption))
    return parts


def _cell(r: pd.DataFrame) -> str:
    if r.empty:
        return ""
    r = r.iloc[0]
    if r["n_ok"] == 0:
        return "skipped" if r["n_skipped"] else ("error" if r["n_error"] else "—")
    return mean_se(r["mean"], r["se"]) + (" (!)" if r["n_error"] else "")


def _first(column: pd.Series, spec: str) -> str:
    values = pd.to_numeric(column, errors="coerce").dropna()
    return format(float(values.iloc[0]), spec) if len(values) else "—"


def _errors_table(cells: pd.DataFrame) -> str:
    if "status" not in cells or not (cells["status"] == "error").any():
        return ""
    errors = cells[cells["status"] == "error"]
    frame = pd.DataFrame({
        **{c: errors[c].astype(str) for c in ("dataset", "model", "method", "metric", "seed")},
        "error": [f"{t}: {str(m)[:300]}" for t, m in zip(errors["error_type"],
                                                        errors["error_message"])]})
    return _table(frame, "cells that raised", index=False)


def _run_record(rows: list[dict], out: Path) -> list[str]:
    """The run's record: machine, versions, commit, seeds, times and options."""
    versions = [r.get("versions") or {} for r in rows]

    def recorded(key: str, default: str = "not recorded") -> str:
        found = _distinct(v.get(key) for v in versions)
        return "; ".join(found) if found else default

    machine = [
        ("host", "; ".join(_distinct(r.get("host") for r in rows)) or "not recorded"),
        ("platform", recorded("platform")), ("CPUs", recorded("cpus"))]
    software = [(name, recorded(key)) for name, key in (
        ("xai", "xai"), ("Python", "python"), ("torch", "torch"), ("numpy", "numpy"),
        ("scikit-learn", "sklearn"))]
    software.append(("git commit", recorded("commit", "unknown (not recorded by the run)")))
    times = sorted(str(r["timestamp"]) for r in rows if r.get("timestamp"))
    run = [("folder", str(out.resolve())),
           ("suites", ", ".join(_distinct(r.get("suite") for r in rows))),
           ("rows in results.jsonl", len(rows)),
           ("first and last row", f"{times[0]} … {times[-1]}" if times else "—"),
           ("seeds", _numbers(r.get("seed") for r in rows)),
           ("data seeds", _numbers(r.get("data_seed") for r in rows)),
           ("rows explained per model", _numbers(r.get("n_explain") for r in rows)),
           ("targets", ", ".join(_distinct(r.get("target") for r in rows)) or "—")]
    parts = [_key_values(run, "run"), _key_values(machine, "machine"),
             _key_values(software, "versions")]
    for kind in ("method", "metric"):
        options = {}
        for r in rows:
            if r.get(kind) is not None:
                options.setdefault(str(r[kind]), set()).add(_text(r.get(f"{kind}_options") or {}))
        if options:
            parts.append(_key_values(((k, " | ".join(sorted(v))) for k, v in options.items()),
                                     f"{kind} options"))
    parts.append(_note(f"This page was written on {platform.platform()} "
                       f"({os.cpu_count()} CPUs), Python {platform.python_version()}."))
    return parts


def _distinct(values: Iterable[Any]) -> list[str]:
    """The distinct non-empty values as text, in order of first appearance."""
    return list(dict.fromkeys(_text(v) for v in values if v is not None and v != ""))


def _numbers(values: Iterable[Any]) -> str:
    found = sorted({int(v) for v in values if isinstance(v, int | float) and _finite(v)})
    return ", ".join(map(str, found)) or "—"
