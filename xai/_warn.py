"""xai's own warnings, attributed to the first line outside the package (the caller's).

A fixed ``stacklevel`` points at the right line from one call path only; walking the stack out
of the package, as pandas' ``find_stack_level`` does, points at the user's line from every
path (an explainer, a metric, the benchmark runner).
"""

from __future__ import annotations

import os
import sys
import warnings

_PACKAGE = os.path.dirname(os.path.abspath(__file__)) + os.sep


def stack_level() -> int:
    """The ``stacklevel`` that makes ``warnings.warn``, called by the caller of this
    function, name the first frame outside the xai package."""
    frame = sys._getframe(1)  # the frame that will call warnings.warn: stacklevel 1
    level = 1
    while frame is not None and frame.f_code.co_filename.startswith(_PACKAGE):
        frame = frame.f_back
        level += 1
    return level


def warn(message: str, category: type[Warning] = UserWarning) -> None:
    """Issue an xai warning attributed to the first line outside the package."""
    warnings.warn(message, category, stacklevel=stack_level())
