"""Plots of an :class:`~xai.explanation.Explanation`, drawn with matplotlib.

The plots shap users know, on xai explanations: :func:`bar`, :func:`beeswarm` and
:func:`heatmap` (all rows), :func:`scatter` (dependence on one feature), :func:`waterfall` and
:func:`decision` (from the base value to ``f(x)``), :func:`image` (attributions painted
over the explained image), and :func:`interaction_heatmap` and :func:`interaction_network`
(the pairwise interactions of ``shap-interactions``). ``expl.plot.<name>(...)`` calls the
same functions.

Every function takes the explanation first and returns a :class:`matplotlib.figure.Figure`;
it never calls ``show``. Without ``ax`` the figure is made through pyplot, so ``plt.show()``
displays it and a notebook renders it; code that makes many figures closes each one after
saving it (``plt.close(fig)``). With ``ax`` the plot is drawn there and the axes' figure is
returned.

Signed attributions are always coloured with a diverging colour map whose white is zero and
whose limits are symmetric (``±max|value|``). For ``(n, d, k)`` values, ``output=`` (an index
or an output name) chooses the output; omitting it when ``k > 1`` raises
:class:`~xai.errors.TargetError`. Titles name the method that made the explanation: its preset
name, or ``removal × behaviour × summary`` for one built from the three axes.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any

from .dependence import scatter
from .images import image
from .interactions import interaction_heatmap, interaction_network
from .overview import bar, beeswarm, heatmap
from .paths import decision, waterfall

__all__ = [
    "ExplanationPlots",
    "bar",
    "beeswarm",
    "decision",
    "heatmap",
    "image",
    "interaction_heatmap",
    "interaction_network",
    "scatter",
    "waterfall",
]


def _bound(function: Callable[..., Any]) -> Callable[..., Any]:
    """``function`` as a method of :class:`ExplanationPlots`: the bound explanation is its
    first argument; name, documentation and signature (less that argument) are the
    function's, so ``help`` and notebook completion show the real parameters."""

    @functools.wraps(function)
    def method(self: ExplanationPlots, *args: Any, **kwargs: Any) -> Any:
        return function(self._expl, *args, **kwargs)

    signature = inspect.signature(function)
    rest = list(signature.parameters.values())[1:]
    method.__signature__ = signature.replace(  # type: ignore[attr-defined]
        parameters=[inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD), *rest])
    return method


class ExplanationPlots:
    """Plot accessor of an :class:`Explanation` (``expl.plot.bar()``); each method calls the
    function of the same name in :mod:`xai.plots` with the explanation first and returns its
    matplotlib Figure."""

    def __init__(self, explanation: Any) -> None:
        """Bind the accessor to ``explanation``."""
        self._expl = explanation

    bar = _bound(bar)
    beeswarm = _bound(beeswarm)
    heatmap = _bound(heatmap)
    scatter = _bound(scatter)
    waterfall = _bound(waterfall)
    decision = _bound(decision)
    image = _bound(image)
    interaction_heatmap = _bound(interaction_heatmap)
    interaction_network = _bound(interaction_network)
