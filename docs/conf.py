"""Sphinx configuration of xai's documentation (furo theme; pages in Markdown via MyST; the
API reference from the numpydoc docstrings)."""

import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
sys.path.insert(0, str(DOCS / "_ext"))

import xai

project = "xai"
author = "the xai developers"
copyright = "2026, the xai developers"
release = version = xai.__version__

extensions = [
    "myst_parser",
    "numpydoc",
    "sphinx.ext.autodoc",
    "xai_tables",
]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build"]
myst_enable_extensions = ["colon_fence"]
myst_heading_anchors = 3

html_theme = "furo"
html_title = f"xai {release}"

autodoc_typehints = "none"          # the signature shows them; numpydoc lists the parameters
autodoc_member_order = "bysource"
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_validation_checks: set[str] = set()
