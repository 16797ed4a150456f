"""Messages, errors and progress for the command line (stderr), results for stdout.

Rules: results (what a command produces: ``inspect`` output, summaries asked for) go to stdout; messages,
warnings, errors and progress go to stderr.  File names are never interpreted as markup.  Colour only when
stderr is a terminal and ``NO_COLOR`` is not set (https://no-color.org).  Progress bars only when stderr is a
terminal and ``--quiet`` was not given.  ``rich`` is imported lazily, only for a progress bar.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import BinaryIO, TextIO

import click

ProgressFn = Callable[[float], None]


_CONTROL = {c: f"\\x{c:02x}" for c in [*range(0x00, 0x20), 0x7F, *range(0x80, 0xA0)] if chr(c) not in "\n\t"}
"""Control characters (C0 but newline and tab, DEL, C1) → their ``\\xNN`` escape, for :func:`printable`."""


def printable(text: str) -> str:
    """``text`` safe for a terminal: control characters (an escape sequence in a tag) shown as ``\\xNN``."""
    return text.translate(_CONTROL)


def binary_stdin() -> BinaryIO:
    """The process's standard input as bytes (looked up on each call: click's test runner swaps it)."""
    return sys.stdin.buffer


def binary_stdout() -> BinaryIO:
    """The process's standard output as bytes (looked up on each call: click's test runner swaps it)."""
    return sys.stdout.buffer


def _colour_allowed(stream: TextIO) -> bool:
    """True when ``stream`` is a terminal and ``NO_COLOR`` is unset or empty."""
    if os.environ.get("NO_COLOR", ""):
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


class Console:
    """The one place commands print through.

    ``quiet`` drops informational messages and progress (warnings and errors still show);
    ``verbose`` adds detail messages and tracebacks on errors.
    """

    def __init__(self, *, quiet: bool = False, verbose: bool = False) -> None:
        self.quiet = quiet
        self.verbose = verbose

    @property
    def _err(self) -> TextIO:
        # Looked up on each use: click's test runner swaps sys.stderr per invocation.
        return sys.stderr

    def _line(self, text: str, *, fg: str | None = None, bold: bool = False) -> None:
        """Write one line to stderr; styling only when colour is allowed (text itself is never parsed)."""
        stream = self._err
        text = printable(text)
        if fg is not None and _colour_allowed(stream):
            text = click.style(text, fg=fg, bold=bold)
        click.echo(text, file=stream, color=_colour_allowed(stream))

    def result(self, text: str) -> None:
        """A result line on stdout (never styled; control characters escaped)."""
        click.echo(printable(text), file=sys.stdout)

    def info(self, text: str) -> None:
        """An informational message on stderr (hidden by ``--quiet``)."""
        if not self.quiet:
            self._line(text)

    def detail(self, text: str) -> None:
        """A detail message on stderr, shown only with ``--verbose``."""
        if self.verbose and not self.quiet:
            self._line(text, fg="bright_black")

    def warn(self, text: str) -> None:
        """A warning on stderr (shown even with ``--quiet``)."""
        self._line(f"spev: warning: {text}", fg="yellow")

    def error(self, text: str) -> None:
        """One error line on stderr."""
        self._line(f"spev: error: {text}", fg="red", bold=True)

    @contextmanager
    def progress(self, description: str) -> Iterator[ProgressFn | None]:
        """A progress callback taking a fraction in [0, 1], or ``None`` when no bar should show.

        A bar shows only when stderr is a terminal and not ``--quiet``; it is removed when done.
        """
        stream = self._err
        if self.quiet or not (getattr(stream, "isatty", None) and stream.isatty()):
            yield None
            return
        from rich.console import Console as RichConsole
        from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeRemainingColumn

        rich_console = RichConsole(file=stream, no_color=not _colour_allowed(stream), highlight=False)
        columns = (
            TextColumn("{task.description}", markup=False),
            BarColumn(),
            TaskProgressColumn(),
            TimeRemainingColumn(),
        )
        # no auto-refresh: no refresh thread, so `spev decode` may still fork its workers (codec)
        with Progress(*columns, console=rich_console, transient=True, auto_refresh=False) as bar:
            task = bar.add_task(description, total=1.0)

            def update(fraction: float) -> None:
                bar.update(task, completed=min(max(float(fraction), 0.0), 1.0), refresh=True)

            yield update
