"""``xai bench``: benchmark suites, the resumable runner and its summary (SPEC-evaluation §6).

``xai.bench.run(suite="suppressor", out="results/suppressor")`` runs (or resumes) a suite and
returns its rows as a pandas DataFrame; ``xai.bench.summarise(out)`` writes the tables and
figures. Suites are registered components of kind ``"suite"`` (:class:`Suite`).
"""

from .runner import CellTimeout, load_components, run
from .suites import DataSpec, Suite
from .summary import summarise

__all__ = ["CellTimeout", "DataSpec", "Suite", "load_components", "run", "summarise"]
