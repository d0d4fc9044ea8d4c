"""Concept methods (CRAFT, ACE, TCAV): concept games over an activation split ``f = h ∘ g``.

* :class:`CRAFT` — NMF concept bank + concept importance through the concept game;
* :class:`ACE` — segment clusters at a bottleneck layer scored by TCAV with random
  counterparts and a t-test (:mod:`xai.concepts.tcav`);
* :func:`split_model` — split a torch model at a named layer;
* :class:`ConceptBank` — NMF factorisation and NNLS coefficients;
* :class:`ConceptRemoval` / :func:`concept_game` — the ``concept`` removal (registered) and
  the game over concept coefficients, on which every summary works.
"""

from . import primitives, scoring  # noqa: F401  (registers the concept-primitives data set)
from .ace import ACE
from .bank import ConceptBank, nnls
from .craft import CRAFT, ConceptExplanation
from .removal import ConceptHead, ConceptRemoval, concept_game
from .split import check_split, layer_names, split_model
from .tcav import layer_capture, tcav, train_cav

__all__ = [
    "ACE",
    "CRAFT",
    "ConceptBank",
    "ConceptExplanation",
    "ConceptHead",
    "ConceptRemoval",
    "check_split",
    "concept_game",
    "layer_capture",
    "layer_names",
    "nnls",
    "split_model",
    "tcav",
    "train_cav",
]
