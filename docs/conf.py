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
]
autosummary_generate = True
numpydoc_show_class_members = False
# The docstrings' examples run as doctests (`sphinx-build -b doctest`).
doctest_global_setup = "import numpy as np\nimport fastsoftmax as fsm"
html_theme = "alabaster"
exclude_patterns = ["_build"]
