"""Static HTML reports of runs: `adrs report RUN` and `adrs compare RUN...`.

data.py reads a run from the store in one pass; stats.py computes intervals and the generalisation gap;
charts.py and tree.py build plotly figures; code.py highlights sources; site.py writes the pages from the
jinja2 templates in templates/, with plotly.min.js and the static files copied beside them so the site works
offline from file://. compare.py writes the comparison page.
"""
from __future__ import annotations
