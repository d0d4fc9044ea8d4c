"""Small HTML building blocks shared by notebook displays and reports.

Everything here returns self-contained text: figures become PNG ``data:`` URIs, so a page
needs no server and no files beside it.
"""

from __future__ import annotations

import base64
import html
import io
import sys
from collections.abc import Callable
from typing import Any

import pandas as pd

__all__ = ["escape", "figure_data_uri", "table_html"]


def escape(text: Any) -> str:
    """``str(text)`` with ``&``, ``<``, ``>`` and both quotes escaped for HTML."""
    return html.escape(str(text), quote=True)


def figure_data_uri(fig: Any, *, dpi: int = 100) -> str:
    """A matplotlib figure as a ``data:image/png;base64,...`` URI; the figure is closed.

    Closing releases the figure from pyplot's registry (when it was made through pyplot), so
    rendering many figures does not accumulate open figures.
    """
    buffer = io.BytesIO()
    try:
        fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    finally:
        _close(fig)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _close(fig: Any) -> None:
    """Close ``fig`` in pyplot if pyplot is loaded and knows it."""
    pyplot = sys.modules.get("matplotlib.pyplot")
    if pyplot is not None:
        pyplot.close(fig)


def _default_float(value: float) -> str:
    return f"{value:.4g}"


def table_html(
    df: pd.DataFrame,
    *,
    caption: str | None = None,
    float_format: Callable[[float], str] = _default_float,
    index: bool = True,
    classes: str = "xai-table",
) -> str:
    """``df`` as an HTML ``<table>`` with escaped cells, an optional caption.

    Floats are written with ``float_format`` (4 significant digits by default); everything else
    with ``str``. MultiIndex columns are flattened to ``"a / b"`` headers.
    """
    frame = df.copy()
    if isinstance(frame.columns, pd.MultiIndex):
        frame.columns = [" / ".join(str(p) for p in col) for col in frame.columns]
    text = frame.to_html(
        index=index,
        escape=True,
        float_format=float_format,
        border=0,
        classes=classes,
        na_rep="NaN",
    )
    if caption is not None:
        head, sep, rest = text.partition(">")
        text = f"{head}{sep}\n  <caption>{escape(caption)}</caption>{rest}"
    return text
