"""``xai bench``: benchmark suites, the resumable runner and its summary.

``xai.bench.run(suite="suppressor", out="results/suppressor")`` runs (or resumes) a suite and
returns its rows as a pandas DataFrame; ``xai.bench.summarise(out)`` writes the tables and
figures. Suites are registered components of kind ``"suite"`` (:class:`Suite`): a grid of data
sets × models × methods × metrics, or groups of cells that one computation scores together
(:class:`CellGroup`).
"""

from .runner import CellTimeout, load_components, run
from .suites import CellGroup, DataSpec, GroupResult, Suite
from .summary import summarise

__all__ = ["CellGroup", "CellTimeout", "DataSpec", "GroupResult", "Suite", "load_components",
           "run", "summarise"]
