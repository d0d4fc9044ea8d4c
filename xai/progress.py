"""Progress bars over model rows, with a total, a rate and an ETA, and warnings written above
them.

One convention for every long loop of xai (explain, metrics, the benchmark runner, the concept
methods): a :class:`Progress` counts work done against a planned total (model rows for an
explanation, with the explained rows beside them; rows, cells or steps elsewhere). A plan may
be an estimate, as when a tolerance stops sampling early: :meth:`Progress.close` completes the
bar to the real count, so it never ends short of 100%. While a bar is shown, warnings are
printed above it (``tqdm.write``) instead of through its line.
"""

from __future__ import annotations

import sys
import warnings
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from typing import Self  # Python 3.11

#: the bar's layout when its total is known: percentage, counts with their unit, the time
#: spent and left, the rate, and the postfix (explained rows)
WITH_TOTAL = ("{desc}: {percentage:3.0f}%|{bar}| {count}/{planned}{unit} "
              "[{elapsed}<{remaining}, {speed}{unit}/s{postfix}]")
#: the same when the total is a cap that a stopping rule (``tol``) may cut short
WITH_CAP = WITH_TOTAL.replace("{count}/{planned}", "{count} of at most {planned}")
#: the layout while the total is unknown
NO_TOTAL = "{desc}: {count}{unit} [{elapsed}, {speed}{unit}/s{postfix}]"
#: counts from which the bar writes 1.05M rather than 1046505
SCALED_FROM = 10_000


def count_text(count: float | None) -> str:
    """A count as the bar shows it: exact below :data:`SCALED_FROM`, else ``1.05M``."""
    from tqdm.std import tqdm

    if count is None:
        return "?"
    return str(int(count)) if count < SCALED_FROM else tqdm.format_sizeof(count)


def rate_text(rate: float | None) -> str:
    """A rate per second as the bar shows it: three digits, ``17.6k`` from a thousand."""
    from tqdm.std import tqdm

    if not rate:
        return "?"
    return f"{rate:.3g}" if rate < 1000 else tqdm.format_sizeof(rate)


_BAR_CLASSES: dict[type, type] = {}


def _bar_class(base: type) -> type:
    """``base`` (a tqdm class) whose layouts may name ``count``, ``planned`` and ``speed``
    (the mean rate since the start; the time left uses tqdm's smoothed one)."""
    if base not in _BAR_CLASSES:
        class Bar(base):
            @property
            def format_dict(self):
                d = super().format_dict
                elapsed = d.get("elapsed") or 0
                rate = (d["n"] - (d.get("initial") or 0)) / elapsed if elapsed else None
                return {**d, "count": count_text(d["n"]), "planned": count_text(d["total"]),
                        "speed": rate_text(rate)}

        _BAR_CLASSES[base] = Bar
    return _BAR_CLASSES[base]


def shown(enabled: bool | str) -> bool:
    """Whether a bar with ``progress=enabled`` is displayed: ``True`` always, ``False`` never,
    ``"auto"`` on a terminal or in a notebook."""
    if enabled == "auto":
        stderr = sys.stderr
        return bool(getattr(stderr, "isatty", lambda: False)()) or "ipykernel" in sys.modules
    return bool(enabled)


class _AboveBar:
    """A file whose writes go above the bars (``tqdm.write``) of ``stream``."""

    def __init__(self, tqdm_class: Any, stream: TextIO | None) -> None:
        self.tqdm_class, self.stream = tqdm_class, stream

    def write(self, text: str) -> None:
        self.tqdm_class.write(text, file=self.stream, end="")

    def flush(self) -> None:
        if self.stream is not None and hasattr(self.stream, "flush"):
            self.stream.flush()


class Progress:
    """A progress bar over ``unit`` (model rows by default) toward a planned total.

    Parameters
    ----------
    desc : the bar's label, e.g. ``"xai kernelshap"``.
    total : the planned count, or None while unknown (:meth:`plan` adds to it).
    unit : what is counted.
    enabled : ``True``, ``False`` or ``"auto"`` (:func:`shown`); a hidden bar does nothing.
    explained : rows explained by the work, shown beside the count as ``done/total``.
    initial : count already done (a resumed run).
    leave : keep the finished bar on the screen.
    file : where the bar is written (default ``sys.stderr``).

    Used as a context manager (or closed with :meth:`close`): while it is open, warnings are
    printed above the bar.
    """

    def __init__(self, desc: str, *, total: int | None = None, unit: str = "model rows",
                 enabled: bool | str = "auto", explained: int | None = None,
                 initial: int = 0, leave: bool = False, file: TextIO | None = None) -> None:
        self.explained_total = explained
        self.explained_done = 0
        self._bar = None
        self._show_previous = None
        self._at_most = False
        if not shown(enabled):
            return
        from tqdm.auto import tqdm

        self._bar = _bar_class(tqdm)(
            desc=desc, total=total, unit=" " + unit, initial=initial, leave=leave, file=file,
            dynamic_ncols=True, bar_format=WITH_TOTAL if total is not None else NO_TOTAL)
        self._postfix()
        self._redirect_warnings()

    @property
    def shown(self) -> bool:
        """Whether the bar is displayed."""
        return self._bar is not None

    @property
    def n(self) -> int:
        """The count so far."""
        return 0 if self._bar is None else int(self._bar.n)

    @property
    def total(self) -> int | None:
        """The planned count (None: unknown)."""
        return None if self._bar is None or self._bar.total is None else int(self._bar.total)

    def plan(self, count: int | None, *, at_most: bool = False) -> None:
        """Add ``count`` to the planned total (``at_most``: a cap that a stopping rule may cut
        short); None makes the total unknown."""
        bar = self._bar
        if bar is None:
            return
        if count is None:
            bar.total, bar.bar_format = None, NO_TOTAL
        else:
            bar.total = (bar.total or 0) + int(count)
            self._at_most = self._at_most or at_most
            bar.bar_format = WITH_CAP if self._at_most else WITH_TOTAL
        bar.refresh()

    def update(self, count: int = 1) -> None:
        """Advance by ``count``; a total that the count overtakes grows with it."""
        bar = self._bar
        if bar is None:
            return
        if bar.total is not None and bar.n + count > bar.total:
            bar.total = bar.n + count
        bar.update(count)

    def explained(self, rows: int) -> None:
        """Mark ``rows`` more explained rows as done."""
        self.explained_done += int(rows)
        if self._bar is not None:
            self._postfix()
            self._bar.refresh()

    def write(self, text: str) -> None:
        """Print a line above the bar (or to stderr when the bar is hidden)."""
        if self._bar is None:
            print(text, file=sys.stderr)
        else:
            self._bar.write(text, file=self._bar.fp)

    def close(self, complete: bool = True) -> None:
        """Restore the warnings' printer and close the bar; with ``complete``, first complete
        it to the real count (a plan that a stopping rule cut short, or one that was unknown)
        and show it once more."""
        bar = self._bar
        if bar is None:
            return
        self._bar = None
        try:
            if complete:
                if self.explained_total is not None:
                    self.explained_done = self.explained_total
                    bar.set_postfix_str(self._postfix_text(), refresh=False)
                bar.total = bar.n
                bar.bar_format = WITH_TOTAL
                bar.refresh()
        finally:
            if self._show_previous is not None:
                warnings.showwarning = self._show_previous
                self._show_previous = None
            bar.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, kind: type[BaseException] | None, *exc: object) -> None:
        self.close(complete=kind is None)

    # ---- internals ----------------------------------------------------------------------

    def _postfix_text(self) -> str:
        if self.explained_total is None:
            return ""
        return f"explained {self.explained_done}/{self.explained_total} rows"

    def _postfix(self) -> None:
        text = self._postfix_text()
        if text:
            self._bar.set_postfix_str(text, refresh=False)

    def _redirect_warnings(self) -> None:
        """Print warnings above the bar while it is open: the printer in place is kept and
        given a file that writes through ``tqdm.write``, so recorded warnings
        (``warnings.catch_warnings(record=True)``, pytest) stay recorded."""
        previous = warnings.showwarning
        above = _AboveBar(type(self._bar), self._bar.fp)

        def show(message, category, filename, lineno, file=None, line=None):
            previous(message, category, filename, lineno,
                     above if file is None else file, line)

        self._show_previous = previous
        warnings.showwarning = show
