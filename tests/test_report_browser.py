"""The HTML reports in a real browser: headless Chromium (Debian's ``chromium`` and
``chromium-driver``, driven by selenium) opens each page from ``file://``, finds its tables and
decoded figures, and takes a screenshot that is checked not to be blank.

The tests skip when the browser, its driver or selenium is missing, except with
``XAI_REQUIRE_BROWSER=1`` (set by CI), where they fail instead.
"""

from __future__ import annotations

import io
import os
import re
import subprocess
import warnings
from pathlib import Path

import numpy as np
import pytest

import xai
from xai import bench
from xai.cli import main

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--window-size=1200,1400")


def _missing() -> list[str]:
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    try:
        import selenium  # noqa: F401
    except ImportError:
        missing.append("selenium (pip install selenium)")
    return missing


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    missing = _missing()
    if missing:
        why = (f"needs {', '.join(missing)} (apt-get install chromium chromium-driver; "
               "pip install selenium)")
        if os.environ.get("XAI_REQUIRE_BROWSER") == "1":
            pytest.fail(f"XAI_REQUIRE_BROWSER=1 but the browser test {why}")
        pytest.skip(why)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}")
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def bench_run(tmp_path_factory):
    """A tiny benchmark run (two methods on the suppressor data set) and its report page."""
    out = tmp_path_factory.mktemp("bench")
    heads = {_head()}  # HEAD before and after the run (the checkout may move meanwhile)
    with warnings.catch_warnings():  # the suite's background is subsampled for shap
        warnings.filterwarnings("ignore", message="background has")
        frame = bench.run("suppressor", datasets="gauss2d-suppressor", methods="occlusion,shap",
                          metrics="auroc,suppressor-ratio", n_explain=8, out=out,
                          progress=False, summary=False)
    heads.add(_head())
    assert main(["bench", "report", str(out)]) == 0
    return out, frame, heads


def _head() -> str | None:
    """The commit checked out where xai is imported from (None outside a git checkout)."""
    root = Path(xai.__file__).resolve().parents[1]
    if not (root / ".git").exists():
        return None
    return subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True,
                          text=True, check=True).stdout.strip()


def _open(driver, page: Path) -> None:
    driver.get(page.resolve().as_uri())
    assert driver.execute_script("return document.readyState") == "complete"


_TABLES_JS = """
return Array.from(document.querySelectorAll("table.xai-table")).map(t => ({
  caption: t.caption ? t.caption.innerText : "",
  heads: Array.from(t.querySelectorAll("thead th")).map(h => h.innerText),
  rows: Array.from(t.querySelectorAll("tbody tr")).map(
    tr => Array.from(tr.querySelectorAll("th, td")).map(c => c.innerText))}));
"""


def _tables(driver) -> list[dict]:
    """Every report table as the browser renders it: caption, header texts, row texts."""
    return driver.execute_script(_TABLES_JS)


def _cell(tables: list[dict], caption: str, row: str, column: str) -> str:
    """The text of the cell of ``row`` (its first cell) and ``column`` (a header starting
    with it) in the table whose caption starts with ``caption``."""
    found = [t for t in tables if t["caption"].startswith(caption)]
    assert len(found) == 1, (caption, [t["caption"] for t in tables])
    j = next(i for i, h in enumerate(found[0]["heads"]) if h.startswith(column))
    for cells in found[0]["rows"]:
        if cells[0] == row:
            return cells[j]
    raise AssertionError(f"no row {row!r} in {caption!r}")


def _mean_and_se(text: str) -> tuple[float, float]:
    mean, se = re.fullmatch(r"(\S+) ± (\S+)", text).groups()
    return float(mean), float(se)


def _shown(value: float, digits: int) -> float:
    """``value`` rounded to the significant digits the tables show."""
    return float(f"{value:.{digits}g}")


def _decoded_images(driver) -> list[dict]:
    """Every image's source scheme, whether it finished loading and its decoded width."""
    return driver.execute_script(
        "return Array.from(document.images).map(i => ({src: i.src.slice(0, 22), "
        "complete: i.complete, width: i.naturalWidth}))")


def _assert_screenshot_not_blank(driver) -> None:
    from PIL import Image

    shot = np.asarray(Image.open(io.BytesIO(driver.get_screenshot_as_png())).convert("RGB"))
    colours = np.unique(shot.reshape(-1, 3).astype(np.int32) @ np.array([1 << 16, 1 << 8, 1]))
    non_white = np.any(shot < 245, axis=-1).mean()
    assert shot.shape[0] > 500 and shot.shape[1] > 500
    assert len(colours) > 50, f"{len(colours)} distinct colours"
    assert non_white > 0.05, f"{non_white:.1%} of the pixels are not white"


def _assert_self_contained(driver) -> None:
    """Nothing loaded from elsewhere: no scripts, style sheets or fonts; images inline."""
    from selenium.webdriver.common.by import By

    assert not driver.find_elements(By.CSS_SELECTOR, "script, link, iframe, object, embed")
    resources = driver.execute_script(
        "return performance.getEntriesByType('resource').map(e => e.name)")
    assert all(name.startswith("data:") for name in resources), resources


def test_bench_report_shows_the_summary_tables_figures_and_run_record(browser, bench_run):
    out, frame, _ = bench_run
    _open(browser, out / "report.html")
    assert browser.title == f"xai benchmark: {out.name}"
    tables = _tables(browser)
    for _, row in frame.iterrows():  # one seed: the table shows each cell's value and SE
        text = _cell(tables, "gauss2d-suppressor / bayes", row["method"], row["metric"])
        mean, se = _mean_and_se(text)
        assert (mean, se) == (_shown(row["value"], 4), _shown(row["se"], 2))
    images = _decoded_images(browser)
    assert len(images) == len(list((out / "figures").glob("*.png"))) >= 1
    assert all(i["complete"] and i["width"] > 0 for i in images), images
    assert all(i["src"] == "data:image/png;base64," for i in images)
    versions = frame["versions"].iloc[0]
    assert _cell(tables, "versions", "xai", "value") == xai.__version__
    assert _cell(tables, "versions", "git commit", "value") == (
        versions["commit"] or "unknown (not recorded by the run)")
    assert _cell(tables, "machine", "CPUs", "value") == str(os.cpu_count())
    assert _cell(tables, "run", "seeds", "value") == "0"
    _assert_self_contained(browser)
    _assert_screenshot_not_blank(browser)


def test_bench_run_records_the_commit_of_a_source_checkout(bench_run):
    _, frame, heads = bench_run
    if heads == {None}:
        pytest.skip("xai is not imported from a git checkout")
    commits = set(frame["versions"].map(lambda v: v["commit"]))
    assert len(commits) == 1 and commits <= heads


def test_explanation_page_shows_values_with_standard_errors_and_figures(browser, tmp_path):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(6, 4))
    weights = np.array([1.0, -2.0, 0.5, 0.0])
    expl = xai.explain(lambda x: x @ weights, X, method="permutation-shap",
                       background=rng.normal(size=(20, 4)), budget=2000, seed=0)
    page = tmp_path / "explanation.html"
    text = expl.to_html(page)
    assert page.read_text(encoding="utf-8") == text
    _open(browser, page)
    assert browser.title == "xai explanation: permutation-shap"
    tables = _tables(browser)
    for r, j in ((0, 0), (5, 1), (2, 3)):
        mean, se = _mean_and_se(_cell(tables, "values ± standard error", f"row {r}",
                                      expl.names[j]))
        assert (mean, se) == (_shown(expl.values[r, j], 4), _shown(expl.stderr[r, j], 2))
    images = _decoded_images(browser)
    assert len(images) == 3  # bar, beeswarm, waterfall
    assert all(i["complete"] and i["width"] > 0 for i in images), images
    _assert_self_contained(browser)
    _assert_screenshot_not_blank(browser)
