"""Summary axis: how values of many coalitions become one score per feature."""

from .base import SamplingSummary, Summary, SummaryResult
from .exact import ExactBanzhaf, ExactShapley
from .individual import IncludeIndividual, RemoveIndividual

__all__ = ["ExactBanzhaf", "ExactShapley", "IncludeIndividual", "RemoveIndividual",
           "SamplingSummary", "Summary", "SummaryResult"]
