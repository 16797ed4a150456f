"""``spev import``: write events from JSON or CSV (e.g. from ``spev export`` or another program) as .spev."""

from __future__ import annotations

import click

from sparsecodec.cli import verbosity_options
from sparsecodec.cli.commands import console_for


@click.command(name="import")
@click.argument("src", metavar="EVENTS.json|EVENTS.csv")
@click.argument("dst", metavar="OUT.spev")
@click.option("-f", "--force", is_flag=True, help="Overwrite an existing output.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["json", "csv"]),
    default=None,
    help="Input format (default: from the suffix; JSON unless .csv).",
)
@click.option(
    "--rate",
    type=click.IntRange(1000, 384000),
    default=None,
    help="Sample rate of the new file (default: the JSON header's, else 44100).",
)
@verbosity_options
@click.pass_context
def command(ctx: click.Context, src: str, dst: str, force: bool, fmt: str | None, rate: int | None) -> None:
    """Write the events of a JSON or CSV file as OUT.spev.

    \b
    spev export song.spev -o events.json
    (edit events.json with any program)
    spev import events.json edited.spev

    Every field is checked: unknown names, values outside a dimension's range and non-finite numbers are
    errors, and nothing is written.  Dimensions not given take their defaults (docs/events-tools.md).
    """
    from sparsecodec.tools.export import import_file

    console = console_for(ctx)
    n = import_file(src, dst, force=force, fmt=fmt, sample_rate=rate)
    console.info(f"{src} -> {dst}: {n} events")


import_ = command
"""The name the root group's registry looks up."""
