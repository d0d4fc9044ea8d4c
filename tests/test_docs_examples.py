"""The python examples of the docs pages run: each page's blocks in order, as one script in a
fresh interpreter and an empty folder (a page builds on its earlier blocks, as a reader does),
printing what their ``# -> TEXT`` comments say."""

from __future__ import annotations

import pytest
from code_blocks import REPO, python_blocks, run_python

PAGES = {path.stem: python_blocks(path) for path in sorted((REPO / "docs").glob("*.md"))}
PAGES = {name: blocks for name, blocks in PAGES.items() if blocks}
# pages whose examples take ten seconds or more on two cores (a concept bank)
SLOW_PAGES = {"concepts"}


def test_docs_have_examples():
    assert {"getting-started", "axes", "methods", "metrics", "plugins"} <= set(PAGES)


@pytest.mark.parametrize("page", [
    pytest.param(name, id=name, marks=[pytest.mark.slow] if name in SLOW_PAGES else [])
    for name in PAGES])
def test_docs_page_examples_run(page, tmp_path):
    source = "\n".join(block.source for block in PAGES[page])
    run_python(source, tmp_path, f"docs/{page}.md")
