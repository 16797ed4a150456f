"""The ``spev`` command line: a small lazy root group; one module per command in ``sparsecodec.cli.commands``.

Start-up imports only click and this package's light modules: a command's module is imported when that
command runs, and ``spev --help`` lists commands from :data:`COMMANDS` without importing any of them.
Every error goes through :meth:`SpevGroup.invoke`: one line on stderr and the exit code of its kind
(``errors.py``); a traceback only with ``--verbose``.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import traceback
from typing import Any

import click

from sparsecodec import __version__
from sparsecodec.cli.console import printable
from sparsecodec.errors import SpevError
from sparsecodec.jobs.procs import interrupt_exit, terminate_like_interrupt

COMMANDS: dict[str, tuple[str, str]] = {
    "encode": ("sparsecodec.cli.commands.encode:encode", "Encode audio files to .spev."),
    "decode": ("sparsecodec.cli.commands.decode:decode", "Decode .spev files to WAV or FLAC."),
    "inspect": ("sparsecodec.cli.commands.inspect:inspect", "Show what a .spev file holds."),
    "test": ("sparsecodec.cli.commands.test:test", "Verify every checksum of .spev files."),
    "edit": ("sparsecodec.cli.commands.edit:edit", "Edit the events of a .spev file."),
    "plot": ("sparsecodec.cli.commands.plot:plot", "Draw the events of a .spev file."),
    "view": ("sparsecodec.cli.commands.view:view", "Write an HTML page to see and hear the events."),
    "export": ("sparsecodec.cli.commands.export:export", "Export events (MIDI, CSV, JSON)."),
    "import": ("sparsecodec.cli.commands.import_:import_", "Import events into a .spev file."),
    "batch": ("sparsecodec.cli.commands.batch:batch", "Encode or decode many files in parallel."),
}
"""Registry: name → ("module:attribute", one-line help).  Commands whose module is absent are hidden."""

CONTEXT_SETTINGS: dict[str, Any] = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


def _module_exists(target: str) -> bool:
    module = target.split(":", 1)[0]
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def set_verbosity(ctx: click.Context, quiet: bool | None = None, verbose: bool | None = None) -> None:
    """Record ``--quiet``/``--verbose`` in the context chain (any level may set them)."""
    root = ctx.find_root()
    if quiet:
        root.meta["spev.quiet"] = True
    if verbose:
        root.meta["spev.verbose"] = True


def _verbosity_callback(ctx: click.Context, param: click.Parameter, value: bool) -> bool:
    if value:
        set_verbosity(ctx, **{str(param.name): True})
    return value


def verbosity_options(f: Any) -> Any:
    """Decorator: ``-q/--quiet`` and ``-v/--verbose`` on a command (also accepted on the root group)."""
    f = click.option(
        "-v",
        "--verbose",
        is_flag=True,
        expose_value=False,
        callback=_verbosity_callback,
        help="More messages; tracebacks on errors.",
    )(f)
    f = click.option(
        "-q",
        "--quiet",
        is_flag=True,
        expose_value=False,
        callback=_verbosity_callback,
        help="Only warnings and errors on stderr.",
    )(f)
    return f


class SpevGroup(click.Group):
    """Root group: lazy command loading and the single error path."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return [name for name, (target, _) in COMMANDS.items() if _module_exists(target)]

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        entry = COMMANDS.get(cmd_name)
        if entry is None or not _module_exists(entry[0]):
            return None
        module_name, attr = entry[0].split(":", 1)
        command = getattr(importlib.import_module(module_name), attr)
        if not isinstance(command, click.Command):
            raise TypeError(f"{entry[0]} is not a click command")
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """List commands from the registry's help texts, importing none of them."""
        rows = [(name, COMMANDS[name][1]) for name in self.list_commands(ctx)]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.ClickException, click.exceptions.Abort):
            raise
        except KeyboardInterrupt as exc:
            code, message = interrupt_exit(exc)
            click.echo(message, err=True)
            ctx.exit(code)
        except SpevError as exc:
            if ctx.meta.get("spev.verbose"):
                traceback.print_exc(file=sys.stderr)
            click.echo(f"spev: error: {_one_line(exc)}", err=True)
            ctx.exit(exc.exit_code)
        except Exception as exc:
            if ctx.meta.get("spev.verbose"):
                traceback.print_exc(file=sys.stderr)
            hint = "" if ctx.meta.get("spev.verbose") else " (run with --verbose for a traceback)"
            click.echo(f"spev: internal error: {type(exc).__name__}: {_one_line(exc)}{hint}", err=True)
            ctx.exit(1)


def _one_line(exc: BaseException) -> str:
    text = printable(" ".join(str(exc).split()))
    return text or type(exc).__name__


@click.group(cls=SpevGroup, context_settings=CONTEXT_SETTINGS)
@click.version_option(__version__, "-V", "--version", prog_name="spev", message="%(prog)s %(version)s")
@verbosity_options
def cli() -> None:
    """spev: a sparse, interpretable audio codec — sound stored as a list of editable events.

    \b
    spev encode song.wav song.spev        spev decode song.spev out.wav
    spev inspect song.spev                spev test *.spev
    cat a.wav | spev encode - - | spev decode - - > b.wav

    Run 'spev COMMAND --help' for a command's options.  Exit codes: see docs/cli.md.
    """


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point (``spev``): SIGTERM is handled like Ctrl-C (clean-up, then exit 143)."""
    terminate_like_interrupt()
    try:
        cli.main(args=argv, prog_name="spev")
    except KeyboardInterrupt as exc:  # outside a command body (e.g. during import)
        code, message = interrupt_exit(exc)
        click.echo(message, err=True)
        sys.exit(code)


if __name__ == "__main__":
    main()
