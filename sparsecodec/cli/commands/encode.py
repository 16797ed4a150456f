"""``spev encode``: audio files → ``.spev``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from sparsecodec.cli import verbosity_options
from sparsecodec.cli.commands import STDIO, Job, console_for, plan_paths, run_jobs
from sparsecodec.cli.console import binary_stdin, binary_stdout

REFINE_DEFAULT_STEPS = 30
"""Steps of joint refinement when ``--refine`` is given without a number."""


device_option = click.option(
    "--device",
    type=click.Choice(["cpu", "cuda", "auto"]),
    default="cpu",
    show_default=True,
    help="Where to run.",
)
"""``--device cpu|cuda|auto``, shared by ``spev encode`` and ``spev decode``."""


def encoder_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """The encoder's settings as click options, shared by ``spev encode`` and ``spev batch encode``."""
    options = [
        click.option(
            "--kbps",
            type=click.FloatRange(min=0, min_open=True),
            default=None,
            help="Target bit rate (default 4).",
        ),
        click.option(
            "--events-per-second",
            type=click.FloatRange(min=0, min_open=True),
            default=None,
            help="Cap on events per second.",
        ),
        click.option(
            "--refine",
            type=click.IntRange(min=0),
            is_flag=False,
            flag_value=REFINE_DEFAULT_STEPS,
            default=0,
            metavar="[STEPS]",
            help=f"Jointly refine each window's events (default {REFINE_DEFAULT_STEPS} steps when given).",
        ),
        click.option(
            "--init",
            type=click.Choice(["analysis", "hybrid", "network"]),
            default=None,
            help="What proposes events: 'hybrid' (default: the spectral analysis guided by the proposal "
            "network's onsets and pitch map), 'analysis' (no network) or 'network' (the network alone).",
        ),
        click.option("--tag", "tags", multiple=True, metavar="KEY=VALUE", help="Add a tag (repeatable)."),
        click.option(
            "--format",
            "format_version",
            type=click.Choice(["1", "2"]),
            default=None,
            help="Container format: 2 (default: context-coded events, smaller) or 1 (for older readers).",
        ),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def _audio_suffix(path: Path) -> bool:
    from sparsecodec.audio.io import AUDIO_SUFFIXES

    return path.suffix.lower() in AUDIO_SUFFIXES


def encode_kwargs(
    kbps: float | None,
    events_per_second: float | None,
    refine: int,
    init: str | None,
    tags: tuple[str, ...],
    format_version: str | None = None,
) -> dict[str, Any]:
    """The values of :func:`encoder_options` as keyword arguments of :func:`sparsecodec.api.encode_file`:
    the one mapping from options to settings, for ``spev encode`` and ``spev batch encode``."""
    return {
        "kbps": kbps,
        "events_per_second": events_per_second,
        "refine": refine,
        "init": init,
        "tags": parse_tags(tags),
        "format_version": None if format_version is None else int(format_version),
    }


def parse_tags(values: tuple[str, ...]) -> dict[str, str]:
    """``("KEY=VALUE", ...)`` → dict; raises click.BadParameter on a malformed entry."""
    tags: dict[str, str] = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"{item!r} is not KEY=VALUE", param_hint="--tag")
        tags[key.strip()] = value
    return tags


@click.command()
@click.argument("paths", nargs=-1, required=True, metavar="INPUT... [OUTPUT]")
@click.option("-d", "--outdir", metavar="OUTDIR", help="Write outputs into this folder (like cp -t).")
@click.option("-r", "--recursive", is_flag=True, help="Encode the audio files inside folder inputs.")
@click.option("-f", "--force", is_flag=True, help="Overwrite existing outputs.")
@click.option(
    "--ignore-errors",
    is_flag=True,
    help="Encode what is sound in a damaged input (truncated, NaN samples) and warn, instead of failing.",
)
@click.option(
    "-j",
    "--jobs",
    type=click.IntRange(min=1),
    default=None,
    help="Processes encoding a long input's 30 s segments at once (default: the CPUs, at most 4); "
    "the output is the same for any number.",
)
@encoder_options
@device_option
@verbosity_options
@click.pass_context
def encode(
    ctx: click.Context,
    paths: tuple[str, ...],
    outdir: str | None,
    recursive: bool,
    force: bool,
    ignore_errors: bool,
    jobs: int | None,
    kbps: float | None,
    events_per_second: float | None,
    refine: int,
    init: str | None,
    tags: tuple[str, ...],
    format_version: str | None,
    device: str,
) -> None:
    """Encode audio to .spev.

    \b
    spev encode song.wav song.spev
    spev encode song.wav                       (writes song.spev)
    spev encode *.wav -d encoded/
    spev encode --recursive music/ -d encoded/
    cat song.wav | spev encode - - > song.spev

    Any rate and format soundfile reads; mono or stereo (more channels are rejected: downmix first).
    Tags: the input's own metadata (title, artist...) plus --tag KEY=VALUE.
    """
    console = console_for(ctx)
    settings = encode_kwargs(kbps, events_per_second, refine, init, tags, format_version)
    todo = plan_paths(paths, outdir=outdir, recursive=recursive, suffix=".spev", accept=_audio_suffix)

    def work(job: Job) -> None:
        from sparsecodec.api import encode_file
        from sparsecodec.errors import UsageError

        assert job.dst is not None
        stdout = binary_stdout()
        if job.dst == STDIO and stdout.isatty():
            raise UsageError("refusing to write a .spev file to a terminal (redirect stdout)")
        src = binary_stdin() if job.src == STDIO else job.src
        dst = stdout if job.dst == STDIO else job.dst
        with console.progress(f"encoding {job.src}") as progress:
            r = encode_file(
                src,
                dst,
                **settings,
                device=device,
                progress=progress,
                overwrite=force,
                ignore_errors=ignore_errors,
                workers=jobs,
            )
        for line in r.warnings:
            console.warn(line)
        console.info(
            f"{job.src} -> {job.dst}: {r.duration_s:.2f} s, {r.events} events "
            f"({r.events / max(r.duration_s, 1e-9):.1f}/s), {r.bytes} bytes, {r.kbps:.2f} kbps"
        )

    run_jobs(console, todo, work, force=force)
