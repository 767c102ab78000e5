"""Progress reporting for exports and reads: a tqdm bar on a terminal, or a callback.

``progress=None`` (the default) shows a bar where people look, when the work lasts
more than a second: a widget in Jupyter (with ``ipywidgets``, the ``[notebooks]``
extra), a text bar when stderr is a terminal, and nothing when the output is piped
or the ``CI`` environment variable is set. ``True``/``False`` force it on or off; a
callable receives a :class:`ProgressUpdate` as the work moves: exporting, after
every chunk of a body received from the network, every batch of rows parsed and
every day done; reading a dataset, after every file; reading an export file,
after every batch of parsed rows. The hooks that feed it run per network chunk or
per batch of rows, never per row.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

__all__ = ["Progress", "ProgressArg", "ProgressUpdate", "make"]


@dataclass(frozen=True)
class ProgressUpdate:
    """Where an export or a read stands: windows done, bytes and rows so far, expected wait.

    Windows are an export's days, or a dataset's files when reading one; reading an
    export file reports rows only (``windows_total`` is 1 and ``windows_done`` 0
    until the file is done). Exporting, ``bytes`` (as received, compressed) grows
    as the bodies arrive and ``rows`` as they are parsed, within a day too;
    ``bytes`` goes back down when a failed download is thrown away to be tried
    again. Updates may come from the download threads.
    """

    windows_done: int
    windows_total: int
    bytes: int
    rows: int
    expected_wait: float


class _Limiter(Protocol):
    def expected_wait(self) -> float: ...


ProgressArg = bool | None | Callable[[ProgressUpdate], None]


class Progress:
    """Counts windows, bytes and rows; drives a tqdm bar and/or a callback."""

    def __init__(
        self,
        total: int,
        *,
        bar: bool,
        callback: Callable[[ProgressUpdate], None] | None,
        limiter: _Limiter | None,
        desc: str = "robotmia export",
        unit: str = "day",
        delay: float = 1.0,
    ) -> None:
        self.total = total
        self.unit = unit
        self.done = 0
        self.bytes = 0
        self.rows = 0
        self._callback = callback
        self._limiter = limiter
        self._lock = threading.Lock()
        self._bar: Any = None
        if bar:
            tqdm = _bar_class()
            self._bar = tqdm(
                total=None if unit == "row" else total,
                unit=unit,
                unit_scale=unit == "row",
                desc=desc,
                delay=delay,
                leave=False,
            )

    def window_done(self, nbytes: int = 0, rows: int = 0) -> None:
        """One more window done, with ``nbytes`` and ``rows`` not counted yet."""
        self._add(windows=1, nbytes=nbytes, rows=rows)

    def bytes_received(self, nbytes: int) -> None:
        """Count ``nbytes`` more bytes of a body (negative: a failed try thrown away)."""
        self._add(nbytes=nbytes)

    def rows_done(self, rows: int) -> None:
        """Count ``rows`` more parsed rows (reading one file: the bar counts rows)."""
        self._add(rows=rows)

    def _add(self, *, windows: int = 0, nbytes: int = 0, rows: int = 0) -> None:
        with self._lock:
            self.done += windows
            self.bytes += nbytes
            self.rows += rows
            wait = self._limiter.expected_wait() if self._limiter is not None else 0.0
            update = ProgressUpdate(self.done, self.total, self.bytes, self.rows, wait)
            if self._bar is not None:
                if self.unit == "row":
                    self._bar.update(rows)
                else:
                    postfix = {"MB": f"{self.bytes / 1e6:.1f}", "rows": f"{self.rows:,}"}
                    if wait > 1:
                        postfix["wait"] = f"{wait:.0f}s (rate limit)"
                    self._bar.set_postfix(postfix, refresh=False)
                    self._bar.update(windows)  # 0: redrawn at most every 0.1 s (tqdm)
        if self._callback is not None:
            self._callback(update)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def in_notebook() -> bool:
    """Whether this runs in a Jupyter kernel (where a bar is a widget, not stderr).

    Example:
        >>> in_notebook()
        False
    """
    ipython = sys.modules.get("IPython")
    get = getattr(ipython, "get_ipython", None)
    shell = get() if callable(get) else None
    return shell is not None and hasattr(shell, "kernel")


def _bar_class() -> Any:
    """tqdm's notebook widget in Jupyter when ipywidgets is there, else its text bar
    (never tqdm's "IProgress not found" warning)."""
    if in_notebook() and importlib.util.find_spec("ipywidgets") is not None:
        from tqdm.notebook import tqdm as widget

        return widget
    from tqdm.std import tqdm as text

    return text


def _wanted() -> bool:
    """``progress=None``: a bar in Jupyter or on a terminal, none in CI or a pipe."""
    if os.environ.get("CI", "").strip().lower() not in ("", "0", "false"):
        return False
    return in_notebook() or bool(getattr(sys.stderr, "isatty", lambda: False)())


def make(
    arg: ProgressArg,
    *,
    total: int,
    limiter: _Limiter | None = None,
    desc: str = "robotmia export",
    unit: str = "day",
) -> Progress | None:
    """Build the progress reporter a ``progress=`` argument asks for.

    ``unit`` is what the bar counts: ``"day"`` (export windows), ``"file"`` (a
    dataset's files) or ``"row"`` (rows of one export file, no known total).

    Example:
        >>> seen = []
        >>> p = make(seen.append, total=2)
        >>> p.window_done(100, 5)
        >>> seen[0].windows_done, seen[0].rows
        (1, 5)
    """
    if arg is None:  # the default: where people look, after a second of work
        if not _wanted():
            return None
        return Progress(total, bar=True, callback=None, limiter=limiter, desc=desc, unit=unit)
    if arg is False:
        return None
    if arg is True:  # asked for: shown at once, however short the work
        return Progress(
            total, bar=True, callback=None, limiter=limiter, desc=desc, unit=unit, delay=0.0
        )
    if callable(arg):
        return Progress(total, bar=False, callback=arg, limiter=limiter, desc=desc, unit=unit)
    raise ValueError(f"progress must be None, a bool or a callable, got {arg!r}")
