"""``spev export``: a ``.spev`` file's events as JSON, CSV or MIDI (to a file or stdout)."""

from __future__ import annotations

import click

from sparsecodec.cli import verbosity_options
from sparsecodec.cli.commands import console_for
from sparsecodec.cli.console import binary_stdout


@click.command()
@click.argument("src", metavar="IN.spev")
@click.argument("dst", metavar="[OUT]", required=False, default=None)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["json", "csv", "midi"]),
    default=None,
    help="Output format (default: from -o's suffix, else json).",
)
@click.option("-o", "--output", metavar="FILE", default=None, help="Write here instead of stdout.")
@click.option("-f", "--force", is_flag=True, help="Overwrite an existing output.")
@click.option("--pitch-bend", is_flag=True, help="MIDI: one channel per note with a bend for fine pitch.")
@click.option(
    "--tracks",
    metavar="N|auto",
    default=None,
    help="MIDI: split the notes by timbre (k-means) into N tracks (1-15), or 'auto' (1-8 by silhouette); "
    "one channel each.  Default: one track.",
)
@verbosity_options
@click.pass_context
def command(
    ctx: click.Context,
    src: str,
    dst: str | None,
    fmt: str | None,
    output: str | None,
    force: bool,
    pitch_bend: bool,
    tracks: str | None,
) -> None:
    """Export the events of IN.spev (to OUT or -o FILE, else stdout).

    \b
    spev export song.spev                      JSON on stdout
    spev export song.spev --format csv -o events.csv
    spev export song.spev -o song.mid          pitched events as MIDI notes
    spev export song.spev song.mid --tracks auto   one track per timbre
    spev export song.spev --format midi > song.mid

    JSON/CSV give every event's time (s), pitch (MIDI, empty when unpitched), f0_hz, level_db, end (s,
    where the note has decayed 30 dB or is released), velocity and all 32 dimensions; 'spev import' reads
    them back losslessly (docs/events-tools.md).
    """
    from pathlib import Path

    from sparsecodec.errors import UsageError
    from sparsecodec.tools.export import export_bytes, export_file, parse_tracks

    console = console_for(ctx)
    if dst is not None:
        if output is not None and output != dst:
            raise UsageError("give the output once: as OUT or as -o FILE")
        output = dst
    if fmt is None:
        suffix = Path(output).suffix.lower() if output and output != "-" else ""
        fmt = {".csv": "csv", ".mid": "midi", ".midi": "midi", ".smf": "midi"}.get(suffix, "json")
    if tracks is not None and fmt != "midi":
        raise UsageError("--tracks applies to MIDI export only")
    n_tracks = parse_tracks(tracks) if tracks is not None else 1
    if output is None or output == "-":
        stdout = binary_stdout()
        if fmt == "midi" and stdout.isatty():
            raise UsageError("refusing to write binary MIDI to a terminal (use -o FILE or redirect stdout)")
        data = export_bytes(src, fmt, pitch_bend=pitch_bend, tracks=n_tracks)
        stdout.write(data)
        stdout.flush()
        return
    n = export_file(src, output, fmt, force=force, pitch_bend=pitch_bend, tracks=n_tracks)
    console.info(f"{src} -> {output}: {fmt}, {n} bytes")


export = command
"""The name the root group's registry looks up."""
