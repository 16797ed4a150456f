"""``spev plot``: a PNG picture of a ``.spev`` file's events (timeline, piano roll, source spectrogram)."""

from __future__ import annotations

from pathlib import Path

import click

from sparsecodec.cli import verbosity_options
from sparsecodec.cli.commands import console_for


@click.command()
@click.argument("src", metavar="IN.spev")
@click.option("-o", "--output", metavar="FILE.png", default=None, help="Picture to write (default: IN.png).")
@click.option("--source", metavar="AUDIO", default=None, help="Add this audio's spectrogram.")
@click.option("--dpi", type=click.IntRange(20, 600), default=100, show_default=True, help="Resolution.")
@click.option("-f", "--force", is_flag=True, help="Overwrite an existing output.")
@verbosity_options
@click.pass_context
def command(
    ctx: click.Context, src: str, output: str | None, source: str | None, dpi: int, force: bool
) -> None:
    """Draw the events of IN.spev as a PNG.

    \b
    spev plot song.spev -o timeline.png
    spev plot song.spev -o timeline.png --source song.wav

    Timeline: x = time, y = 1-D t-SNE of the event vectors, colour = a fixed random projection of the
    vectors, size = level.  Below it a piano roll of the pitched events (docs/events-tools.md).
    """
    from sparsecodec.tools.plot import plot_file

    console = console_for(ctx)
    dst = Path(output) if output else Path(src).with_suffix(".png")
    plot_file(src, dst, source=source, force=force, dpi=dpi)
    console.info(f"{src} -> {dst}")


plot = command
"""The name the root group's registry looks up."""
