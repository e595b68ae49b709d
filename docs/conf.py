"""Sphinx configuration: the API reference is generated from the numpydoc docstrings."""

from __future__ import annotations

import fastsoftmax

project = "fastsoftmax"
author = "the fastsoftmax developers"
copyright = "2026, the fastsoftmax developers"
version = release = fastsoftmax.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.doctest",
    "numpydoc",
    "myst_parser",  # the pages other than the API reference are Markdown, as the README is
]
# Links to a page's section headings (install.md -> backends.md#builds-without-openmp).
myst_heading_anchors = 3
autosummary_generate = True
numpydoc_show_class_members = False
# The docstrings' examples run as doctests (`sphinx-build -b doctest`).
doctest_global_setup = "import numpy as np\nimport fastsoftmax as fsm"
html_theme = "alabaster"
exclude_patterns = ["_build"]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
