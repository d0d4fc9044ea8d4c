"""Notebook display of explanations (xai.display) and the shared HTML helpers (xai.html)."""

from __future__ import annotations

import base64
from html.parser import HTMLParser

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from xai import display
from xai.explanation import Explanation
from xai.html import escape, figure_data_uri, table_html

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


class Page(HTMLParser):
    """The tables (caption, header, body rows), images and paragraphs of an HTML text."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.tables: list[dict] = []
        self.images: list[dict] = []
        self.paragraphs: list[str] = []
        self._cell: list[str] | None = None
        self._row: list[str] | None = None
        self._where: str | None = None
        self._text: list[str] = []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        if tag == "table":
            self.tables.append({"caption": "", "header": [], "rows": [],
                                "class": dict(attrs).get("class", "")})
        elif tag in ("caption", "p", "figcaption"):
            self._where, self._text = tag, []
        elif tag == "tr":
            self._row = []
        elif tag in ("td", "th"):
            self._cell = []
        elif tag == "img":
            self.images.append(dict(attrs))

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self._row.append("".join(self._cell).strip())
            self._cell = None
        elif tag == "tr" and self._row is not None:
            table = self.tables[-1]
            if not table["header"] and not table["rows"]:
                table["header"] = self._row
            else:
                table["rows"].append(self._row)
            self._row = None
        elif tag == self._where:
            text = "".join(self._text).strip()
            if tag == "caption":
                self.tables[-1]["caption"] = text
            else:
                self.paragraphs.append(text)
            self._where = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)
        if self._where is not None:
            self._text.append(data)

    def row_tables(self) -> list[dict]:
        return [t for t in self.tables if "xai-table" in t["class"]]

    def header(self) -> dict[str, str]:
        table = next(t for t in self.tables if "xai-header" in t["class"])
        return dict([table["header"], *table["rows"]])


def tabular(n: int = 7) -> Explanation:
    rng = np.random.default_rng(0)
    values = rng.normal(size=(n, 6))
    values[1, 5] = np.nan  # padding: a feature row 1 does not have
    return Explanation(values=values, stderr=rng.uniform(0.01, 0.1, size=(n, 6)),
                       base_values=np.full(n, 0.25), data=rng.normal(size=(n, 6)) * 100,
                       feature_names=[f"f{j}" for j in range(6)], method="kernelshap",
                       evaluations=4321, seconds=1.5)


def png_of(img: dict) -> bytes:
    prefix = "data:image/png;base64,"
    assert img["src"].startswith(prefix)
    return base64.b64decode(img["src"][len(prefix):])


def test_tables_show_the_top_features_of_each_row_with_their_values():
    e = tabular()
    page = Page(e._repr_html_())
    tables = page.row_tables()
    assert len(tables) == 5  # the first five rows
    for row, table in enumerate(tables):
        assert table["caption"].startswith(f"row {row}")
        assert table["header"] == ["feature", "value", "attribution", "stderr"]
        present = np.flatnonzero(~np.isnan(e.values[row]))
        order = present[np.argsort(-np.abs(e.values[row, present]))]
        assert [r[0] for r in table["rows"]] == [e.feature_names[j] for j in order]
        for (_, value, attribution, stderr), j in zip(table["rows"], order, strict=True):
            assert float(attribution) == pytest.approx(e.values[row, j], rel=1e-3)
            assert float(stderr) == pytest.approx(e.stderr[row, j], rel=1e-3)
            assert float(value) == pytest.approx(e.data[row, j], rel=1e-3)
    assert any("2 more rows not shown" in p for p in page.paragraphs)
    header = page.header()
    assert header["method"] == "kernelshap" and header["shape"] == "(7, 6)"
    assert header["model rows evaluated"] == "4,321" and header["base value"] == "0.25"


def test_many_rows_show_a_bar_plot_and_one_row_a_waterfall():
    open_before = plt.get_fignums()
    many = Page(tabular()._repr_html_())
    assert png_of(many.images[0]).startswith(PNG_MAGIC)
    assert "mean |attribution| over 7 rows" in many.images[0]["alt"]
    one = Page(tabular()[3]._repr_html_())
    assert one.images[0]["alt"] == "waterfall of row 0"
    assert one.row_tables()[0]["caption"].startswith("row 0, base + sum = ")
    # the figures were closed, so a notebook shows each once
    assert plt.get_fignums() == open_before


def test_outputs_get_columns_and_the_figure_names_its_output():
    rng = np.random.default_rng(1)
    e = Explanation(values=rng.normal(size=(3, 4, 2)), stderr=np.zeros((3, 4, 2)),
                    base_values=np.tile([0.3, 0.7], (3, 1)), output_names=["benign", "malignant"])
    page = Page(e._repr_html_())
    table = page.row_tables()[0]
    assert table["header"] == ["feature", "attribution: benign", "attribution: malignant"]
    top = np.argmax(np.abs(e.values[0]).max(axis=1))
    assert table["rows"][0][0] == f"feature_{top}"
    assert float(table["rows"][0][2]) == pytest.approx(e.values[0, top, 1], rel=1e-3)
    assert page.header()["standard errors"] == "all 0 (exact values)"
    assert page.header()["base value"] == "benign: 0.3; malignant: 0.7"
    assert "of output malignant" in page.images[0]["alt"]
    single = Page(e[..., "malignant"]._repr_html_())
    assert "explains malignant" in single.row_tables()[0]["caption"]


def test_images_show_the_overlay():
    patch = np.repeat(np.repeat(np.arange(4).reshape(2, 2), 4, 0), 4, 1)
    e = Explanation(values=np.arange(8.0).reshape(2, 4) - 3, stderr=None,
                    base_values=np.zeros(2), data=np.random.default_rng(0).uniform(size=(2, 3, 8, 8)),
                    feature_map=patch[None], channel_axis=0)
    page = Page(e._repr_html_())
    assert page.images[0]["alt"] == "row 0" and png_of(page.images[0]).startswith(PNG_MAGIC)
    assert page.row_tables()[0]["header"] == ["feature", "attribution"]  # no pixel values


def test_category_codes_are_shown_as_their_values():
    e = Explanation(values=np.array([[0.5, -1.0]]), stderr=None, base_values=np.zeros(1),
                    data=np.array([[1.0, 3.5]]), feature_names=["colour", "size"],
                    options={"categories": {"colour": ["red", "blue"]}})
    rows = Page(e._repr_html_()).row_tables()[0]["rows"]
    assert rows == [["size", "3.5", "-1"], ["colour", "blue", "0.5"]]


def test_large_explanations_list_only_the_first_rows():
    e = Explanation(values=np.random.default_rng(0).normal(size=(100_000, 3)), stderr=None,
                    base_values=np.zeros(100_000))
    page = Page(display.explanation_html(e, figure=False))
    assert len(page.row_tables()) == 5
    assert any("99,995 more rows not shown" in p for p in page.paragraphs)


def test_display_never_raises(monkeypatch):
    e = tabular()
    e.method = "<script>alert(1)</script>"
    assert "<script>" not in e._repr_html_() and "&lt;script&gt;" in e._repr_html_()

    def broken(expl):
        raise RuntimeError("plot failed")

    monkeypatch.setattr(display, "_default_figure", broken)
    assert "No figure: RuntimeError: plot failed" in Page(e._repr_html_()).paragraphs
    monkeypatch.setattr(display, "explanation_html", lambda expl: 1 / 0)
    text = e._repr_html_()
    assert text.startswith("<pre>Explanation(method=") and "ZeroDivisionError" in text


def test_mixed_targets_show_a_waterfall_instead_of_a_mean():
    e = tabular(3)
    e.output_names, e.extras = ["a", "b"], {"target": np.array([0, 1, 0])}
    page = Page(e._repr_html_())
    assert page.images[0]["alt"] == "waterfall of row 0"
    assert "explains b" in page.row_tables()[1]["caption"]


# ---------------------------------------------------------------- xai.html


def test_table_html_escapes_cells_and_formats_floats():
    frame = pd.DataFrame({"a<b": [1.234567, np.nan], "c": ["x & y", "<i>"]})
    page = Page(table_html(frame, caption="rows < 2", index=False))
    table = page.tables[0]
    assert table["caption"] == "rows < 2" and table["header"] == ["a<b", "c"]
    assert table["rows"] == [["1.235", "x & y"], ["NaN", "<i>"]]
    assert "<i>" not in table_html(frame)
    multi = pd.DataFrame([[1.0, 2.0]], columns=pd.MultiIndex.from_tuples([("o", "f"), ("o", "g")]))
    assert Page(table_html(multi, index=False)).tables[0]["header"] == ["o / f", "o / g"]


def test_figure_data_uri_embeds_a_png_and_closes_the_figure():
    open_before = plt.get_fignums()
    fig, ax = plt.subplots()
    ax.plot([0, 1])
    uri = figure_data_uri(fig)
    assert base64.b64decode(uri.split(",", 1)[1]).startswith(PNG_MAGIC)
    assert plt.get_fignums() == open_before
    assert escape("<a href='x'>") == "&lt;a href=&#x27;x&#x27;&gt;"


def test_dataset_explanations_are_not_called_a_row():
    e = Explanation(values=np.array([[0.2, 0.1]]), stderr=None, base_values=np.zeros(1),
                    behaviour={"name": "dataset-loss"}, method="sage")
    page = Page(e._repr_html_())
    assert page.row_tables()[0]["caption"].startswith("importance over the data set")
    assert page.images[0]["alt"] == "waterfall"
