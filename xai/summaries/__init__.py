"""Summary axis: how values of many coalitions become one score per feature."""

from .banzhaf import BanzhafMSR
from .base import SamplingSummary, Summary, SummaryResult
from .exact import ExactBanzhaf, ExactShapley
from .individual import IncludeIndividual, RemoveIndividual
from .interactions import ShapleyInteractions
from .kernelshap import KernelSHAP
from .lime import LIME
from .network_kernelshap import NetworkAdjustedKernelSHAP
from .permutation import PermutationShapley
from .regression import RegressionAdjustedKernelSHAP
from .rise import RISE
from .sobol import SobolTotal

__all__ = [
           "LIME",
           "RISE",
           "BanzhafMSR",
           "ExactBanzhaf",
           "ExactShapley",
           "IncludeIndividual",
           "KernelSHAP",
           "NetworkAdjustedKernelSHAP",
           "PermutationShapley",
           "RegressionAdjustedKernelSHAP",
           "RemoveIndividual",
           "SamplingSummary",
           "ShapleyInteractions",
           "SobolTotal",
           "Summary",
           "SummaryResult",
]
