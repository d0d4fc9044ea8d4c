"""Rich display of an :class:`~xai.explanation.Explanation` in notebooks (``_repr_html_``).

The HTML holds a header (method, shape, model rows evaluated, seconds, base value), one small
table per shown row with its most important features (by ``|value|``: the feature, its input
value for tabular data, the attribution and its standard error) and the default figure as an
inline PNG: a bar plot for many rows, a waterfall for one, the image overlay for images. Only
the first ``max_rows`` rows get a table, so a large explanation displays as fast as a small one.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from xai.html import escape, figure_data_uri, table_html

__all__ = ["explanation_html", "feature_columns", "shown_data", "top_features"]

MAX_ROWS = 5
"""Rows that get a table in the notebook display."""
MAX_FEATURES = 8
"""Features listed per row, by ``|value|``."""
MAX_OUTPUTS = 4
"""Outputs of ``(n, d, k)`` values with a column in the tables."""


def feature_columns(expl: Any) -> np.ndarray | None:
    """The explained inputs when they have one column per feature (plain tabular data), else
    None (images, tokens, grouped columns)."""
    data = expl.data
    if data is None or expl.feature_map is not None:
        return None
    if data.ndim != 2 or data.shape[1] != expl.values.shape[1]:
        return None
    return data


def shown_data(expl: Any, data: np.ndarray | None = None) -> np.ndarray | None:
    """:func:`feature_columns` with category codes replaced by their values (an object array),
    as people read them; ``data`` (rows of those columns) when given instead of all rows."""
    data = feature_columns(expl) if data is None else data
    categories = expl.options.get("categories")
    if data is None or not isinstance(categories, dict) or not categories:
        return data
    from xai.tabular import display_data

    return display_data(data, expl.names, categories)


def _output_columns(expl: Any) -> list[int]:
    """Outputs that get columns: every output of ``(n, d, k)`` values up to MAX_OUTPUTS."""
    return list(range(min(expl.values.shape[2], MAX_OUTPUTS))) if expl.values.ndim == 3 else []


def top_features(expl: Any, row: int, max_features: int = MAX_FEATURES,
                 data_row: np.ndarray | None = None, *, stderr: bool = True) -> pd.DataFrame:
    """The ``max_features`` features of ``row`` with the largest ``|value|``, largest first.

    Columns: ``feature``, ``value`` (the input value, tabular data only), ``attribution`` and
    ``stderr`` (when the explanation has standard errors and ``stderr`` is true); for ``(n, d, k)`` values one
    ``attribution: <output>`` / ``stderr: <output>`` pair per output, ranked by the largest
    ``|value|`` over outputs. NaN padding (features a row does not have) is left out.
    """
    values = expl.values[row]
    stderr = None if expl.stderr is None or not stderr else expl.stderr[row]
    if values.ndim == 2:
        cols = _output_columns(expl)
        values, stderr = values[:, cols], None if stderr is None else stderr[:, cols]
        strength = np.abs(values).max(axis=1)
        labels = [f": {expl.outputs[j]}" for j in cols]
    else:
        values, stderr = values[:, None], None if stderr is None else stderr[:, None]
        strength = np.abs(values[:, 0])
        labels = [""]
    present = np.flatnonzero(~np.isnan(strength))
    order = present[np.argsort(-strength[present], kind="stable")][:max_features]
    frame = pd.DataFrame({"feature": [expl.names[j] for j in order]})
    if data_row is not None:
        frame["value"] = list(data_row[order])
    for i, label in enumerate(labels):
        frame[f"attribution{label}"] = values[order, i]
        if stderr is not None:
            frame[f"stderr{label}"] = stderr[order, i]
    return frame


def _base_text(expl: Any) -> str:
    """The base value: one number when every row shares it, else its range over rows."""
    base = expl.base_values.reshape(len(expl), -1)
    outputs = expl.outputs if expl.values.ndim == 3 else [""]
    parts = []
    for j in range(min(base.shape[1], MAX_OUTPUTS)):
        column = base[:, j]
        finite = column[np.isfinite(column)]
        if finite.size == 0:
            text = "unknown"
        elif np.all(finite == finite[0]) and finite.size == column.size:
            text = f"{finite[0]:.4g}"
        else:
            text = f"{finite.min():.4g} to {finite.max():.4g} over rows"
        parts.append(f"{outputs[j]}: {text}" if outputs[j] else text)
    return "; ".join(parts)


def _row_caption(expl: Any, row: int) -> str:
    """``row i``, with f(x) (base + sum of attributions) and the output it explains; a
    dataset-level explanation (SAGE, permutation importance) says so instead of a row."""
    from xai.plots._common import is_global

    caption = "importance over the data set" if is_global(expl) else f"row {row}"
    target = expl.extras.get("target")
    if expl.values.ndim == 2:
        total = expl.base_values[row] + np.nansum(expl.values[row])
        if np.isfinite(total):
            caption += f", base + sum = {total:.4g}"
        if target is not None and expl.output_names and np.shape(target) == (len(expl),):
            j = int(target[row])
            if 0 <= j < len(expl.output_names):
                caption += f", explains {expl.output_names[j]}"
    return caption


def _figure_output(expl: Any) -> Any:
    """The output the figure shows: the last of ``(n, d, k)`` values (a binary classifier's
    positive class), else None."""
    return expl.outputs[-1] if expl.values.ndim == 3 else None


def _default_figure(expl: Any) -> tuple[Any, str]:
    """The default figure and what it shows: the image overlay of row 0 for images, a
    waterfall for one row, a bar plot of mean ``|value|`` for many rows (a waterfall of row 0
    when the rows explain different outputs, which a mean would mix)."""
    output = _figure_output(expl)
    kwargs = {} if output is None else {"output": output}
    shown = f" of output {output}" if output is not None else ""
    if expl.feature_map is not None and expl.data is not None:
        return expl.plot.image(row=0, **kwargs), f"row 0{shown}"
    target = expl.extras.get("target")
    mixed = target is not None and expl.values.ndim == 2 and np.unique(target).size > 1
    if len(expl) == 1 or mixed:
        from xai.plots._common import is_global

        which = "" if is_global(expl) else " of row 0"
        return expl.plot.waterfall(row=0, **kwargs), f"waterfall{which}{shown}"
    return expl.plot.bar(**kwargs), f"mean |attribution| over {len(expl)} rows{shown}"


def _has_errors(expl: Any) -> bool:
    """Whether some standard error is positive (exact methods report zeros)."""
    return expl.stderr is not None and bool(np.any(expl.stderr > 0))


def _header(expl: Any) -> str:
    errors = "shown" if _has_errors(expl) else "none reported" if expl.stderr is None else \
        "all 0 (exact values)"
    items = [("method", expl.method), ("shape", expl.shape),
             ("model rows evaluated", f"{expl.evaluations:,}"),
             ("seconds", f"{expl.seconds:.3g}"), ("base value", _base_text(expl)),
             ("standard errors", errors)]
    cells = "".join(f"<tr><th style='text-align:left'>{escape(k)}</th>"
                    f"<td style='text-align:left'>{escape(v)}</td></tr>" for k, v in items)
    return f"<table class='xai-header'>{cells}</table>"


def explanation_html(expl: Any, *, max_rows: int = MAX_ROWS,
                     max_features: int = MAX_FEATURES, figure: bool = True) -> str:
    """The notebook display of ``expl``: header, top-feature tables of the first ``max_rows``
    rows, and (with ``figure``) the default figure as an inline PNG. May raise; the
    notebook hook :func:`repr_html` never does."""
    n = len(expl)
    shown_rows = list(range(min(n, max_rows)))
    data = feature_columns(expl)
    data = None if data is None else shown_data(expl, data[shown_rows])
    errors = _has_errors(expl)
    tables = [table_html(top_features(expl, row, max_features,
                                      None if data is None else data[i], stderr=errors),
                         caption=_row_caption(expl, row), index=False)
              for i, row in enumerate(shown_rows)]
    parts = [f"<div class='xai-explanation'><strong>{escape(type(expl).__name__)}</strong>",
             _header(expl),
             "<div style='display:flex;flex-wrap:wrap;gap:1em;align-items:flex-start'>",
             *tables, "</div>"]
    if n > len(shown_rows):
        parts.append(f"<p class='xai-more'>{n - len(shown_rows):,} more rows not shown "
                     f"(first {len(shown_rows)} of {n:,}).</p>")
    if expl.values.ndim == 3 and expl.values.shape[2] > MAX_OUTPUTS:
        parts.append(f"<p>Showing outputs {escape(expl.outputs[:MAX_OUTPUTS])} of "
                     f"{expl.values.shape[2]}.</p>")
    if figure:
        parts.append(_figure_html(expl))
    parts.append("</div>")
    return "\n".join(parts)


def _figure_html(expl: Any) -> str:
    """The default figure as an ``<img>``, or a note saying why there is none."""
    try:
        fig, what = _default_figure(expl)
        uri = figure_data_uri(fig)
    except Exception as exc:  # noqa: BLE001 (a display never fails over its figure)
        return f"<p class='xai-no-figure'>No figure: {escape(type(exc).__name__)}: " \
               f"{escape(exc)}</p>"
    return (f"<figure style='margin:0'><img src='{uri}' alt='{escape(what)}' "
            f"style='max-width:640px'/><figcaption>{escape(what)}</figcaption></figure>")


def repr_html(expl: Any) -> str:
    """:func:`explanation_html`, or the escaped ``repr`` when building it fails: a notebook
    display must never raise."""
    try:
        return explanation_html(expl)
    except Exception as exc:  # noqa: BLE001
        return (f"<pre>{escape(repr(expl))}</pre><p class='xai-no-display'>(no rich display: "
                f"{escape(type(exc).__name__)}: {escape(exc)})</p>")
