"""Sphinx configuration for the aiida-sorep documentation (MyST markdown)."""

import aiida_sorep

project = 'aiida-sorep'
author = 'aiida-sorep developers'
copyright = '2026, aiida-sorep developers'
release = aiida_sorep.__version__
version = release

extensions = [
    'myst_parser',
    'sphinx.ext.autodoc',
    'sphinx.ext.napoleon',
    'sphinx.ext.mathjax',
    'sphinx.ext.viewcode',
]
myst_enable_extensions = ['dollarmath', 'amsmath', 'colon_fence', 'deflist']
myst_heading_anchors = 3
source_suffix = {'.md': 'markdown'}
exclude_patterns = ['_build']
html_theme = 'alabaster'
html_static_path: list[str] = []
autodoc_typehints = 'description'
autodoc_member_order = 'bysource'
suppress_warnings = ['myst.header']
nitpicky = False
