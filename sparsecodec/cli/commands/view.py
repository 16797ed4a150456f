"""``spev view``: one self-contained HTML page to look at, hear and read a ``.spev`` file's events."""

from __future__ import annotations

from pathlib import Path

import click

from sparsecodec.cli import verbosity_options
from sparsecodec.cli.commands import Job, console_for, run_jobs


@click.command()
@click.argument("src", metavar="IN.spev")
@click.option(
    "--audio", metavar="AUDIO", default=None, help="The original audio: A/B player and spectrogram."
)
@click.option("-o", "--output", metavar="FILE.html", default=None, help="Page to write (default: IN.html).")
@click.option("--open", "open_page", is_flag=True, help="Open the page in the default browser.")
@click.option("-f", "--force", is_flag=True, help="Overwrite an existing output.")
@verbosity_options
@click.pass_context
def command(
    ctx: click.Context, src: str, audio: str | None, output: str | None, open_page: bool, force: bool
) -> None:
    """Write one HTML page to look at, hear and read the events of IN.spev.

    \b
    spev view song.spev                      -> song.html
    spev view song.spev --audio song.wav -o song.html --open

    The page works offline (from file://, no network): a zoomable timeline of the events (y: the
    projection of 'spev plot', pitch or level), click an event to hear it alone, shift-click to play the
    full decode from there, hover to read its 32 parameters, spectrograms of the decode and the original
    (docs/view.md).  At most 15 MB: the per-event clips are short, low-rate Opus.
    """
    from sparsecodec.tools.view import ViewResult, open_in_browser, view_file

    console = console_for(ctx)
    dst = Path(output) if output else Path(src).with_suffix(".html")
    done: list[ViewResult] = []

    def work(job: Job) -> None:
        with console.progress(f"building {dst}") as bar:

            def progress(what: str, fraction: float) -> None:
                if bar is not None:
                    bar(fraction if what == "rendering clips" else 0.0)

            done.append(view_file(src, dst, audio=audio, force=force, progress=progress))

    run_jobs(console, [Job(src, str(dst))], work, force=force)  # one line naming the file on any error
    result = done[0]
    console.detail("bytes: " + ", ".join(f"{k} {v}" for k, v in result.parts.items()))
    console.detail("seconds: " + ", ".join(f"{k} {v:.1f}" for k, v in result.timings.items()))
    if result.events == 0:
        console.warn(f"{src}: no events; the page shows the header only")
    console.info(
        f"{src} -> {dst}: {result.events} events, {result.bytes / 1e6:.1f} MB "
        f"(clips {result.clip_kbps:.1f} kbps Opus), y axis {result.projection}, {result.seconds:.1f} s"
    )
    if open_page and not open_in_browser(dst):
        console.info(f"no browser to open here (no display): open {dst.resolve().as_uri()} yourself")


view = command
"""The name the root group's registry looks up."""
