"""Every python block of README.md runs on its own, as written, in a fresh interpreter and an
empty folder, and prints what its ``# -> TEXT`` comments say."""

from __future__ import annotations

import pytest
from code_blocks import REPO, python_blocks, run_python

BLOCKS = python_blocks(REPO / "README.md")
# blocks that take ten seconds or more on two cores (SAGE on 143 rows, training a CNN, a
# concept bank with ACE's segmentation and TCAV)
SLOW_HEADINGS = {"Tabular (scikit-learn)", "Concepts: CRAFT and ACE",
                 "Evaluate explanations: metrics, ground truth, xai bench"}


def test_readme_has_python_blocks():
    assert len(BLOCKS) >= 5


@pytest.mark.parametrize("block", [
    pytest.param(b, id=b.id, marks=[pytest.mark.slow] if b.heading in SLOW_HEADINGS else [])
    for b in BLOCKS])
def test_readme_block_runs_on_its_own(block, tmp_path):
    run_python(block.source, tmp_path, f"README.md line {block.line} ({block.heading})")
